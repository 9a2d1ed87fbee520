// Which config of which template version a record names
// (schedule_space/config_resolver.h, db/record_config.h): every way a stored
// reference can be unusable is refused with its own reason, and a good one
// resolves to the config it was measured with.
#include "schedule_space/config_resolver.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "db/record_config.h"
#include "schedule_space/error.h"
#include "tests/sample_record.h"

namespace ktune {
namespace {

using ::testing::HasSubstr;

const Workload kMatmul = Workload::parse("matmul(m=64,n=64,k=64)");
const Workload kDense = Workload::parse("dense(batch=1,in=64,out=32,bias=0)");

const Template& matmul_template() { return *templates_for(OpKind::kMatmul, TargetKind::kCpu).at(0); }

Target cpu_target() {
  Target t;
  t.cpu.model = "test";
  t.cpu.isa = "avx2";
  t.cpu.vector_lanes = 8;
  t.cpu.threads = 2;
  return t;
}

// A reference to config index of the matmul template, as a record stores it.
ConfigRef matmul_ref(uint64_t index) {
  const ConfigSpace space = matmul_template().space(kMatmul, cpu_target());
  return ConfigRef{matmul_template().name(), matmul_template().version(), index, space.describe(space.get(index))};
}

TEST(ConfigResolverTest, AGoodReferenceResolvesToTheConfigItNames) {
  const ConfigRef ref = matmul_ref(5);
  const ResolvedConfig r = resolve_config(ref, kMatmul, cpu_target());
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_EQ(r.problem, ResolveProblem::kNone);
  EXPECT_EQ(r.reason, "");
  EXPECT_EQ(r.tmpl, &matmul_template());
  EXPECT_EQ(r.config.index, 5u);
  EXPECT_EQ(r.space.describe(r.config), ref.config_text);
  EXPECT_EQ(r.get().index, 5u);
}

TEST(ConfigResolverTest, AnUnknownTemplateIsRefusedByName) {
  ConfigRef ref = matmul_ref(0);
  ref.template_name = "matmul_cpu_from_the_future";
  const ResolvedConfig r = resolve_config(ref, kMatmul, cpu_target());
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.problem, ResolveProblem::kUnknownTemplate);
  EXPECT_EQ(r.tmpl, nullptr);
  EXPECT_EQ(r.reason, "template 'matmul_cpu_from_the_future' is not in this build");
  EXPECT_EQ(resolve_template(ref.template_name, ref.template_version).problem, ResolveProblem::kUnknownTemplate);
}

TEST(ConfigResolverTest, AnotherTemplateVersionIsRefusedWithBothVersions) {
  const Template& t = matmul_template();
  ConfigRef ref = matmul_ref(0);
  ref.template_version = t.version() + 1;
  const ResolvedConfig r = resolve_config(ref, kMatmul, cpu_target());
  EXPECT_EQ(r.problem, ResolveProblem::kOtherVersion);
  EXPECT_EQ(r.tmpl, nullptr);
  EXPECT_EQ(r.reason, "template " + t.name() + " is version " + std::to_string(t.version()) + " in this build, not version " +
                          std::to_string(t.version() + 1));
  // The template alone (what an import checks before it has a target).
  EXPECT_EQ(resolve_template(t.name(), t.version() + 1).reason, r.reason);
  EXPECT_TRUE(resolve_template(t.name(), t.version()).ok());
}

TEST(ConfigResolverTest, ATemplateOfAnotherOperatorIsRefused) {
  const ResolvedConfig r = resolve_config(matmul_ref(0), kDense, cpu_target());
  EXPECT_EQ(r.problem, ResolveProblem::kWrongWorkload);
  EXPECT_EQ(r.tmpl, &matmul_template());
  EXPECT_THAT(r.reason, HasSubstr("template " + matmul_template().name() + ": "));
  EXPECT_THAT(r.reason, HasSubstr(kDense.key()));
  const ResolvedTemplate t = resolve_template(matmul_template().name(), matmul_template().version(), kDense);
  EXPECT_EQ(t.problem, ResolveProblem::kWrongWorkload);
  EXPECT_EQ(t.reason, r.reason);
}

TEST(ConfigResolverTest, ATemplateOfAnotherTargetKindIsRefused) {
  const Template& gpu = *templates_for(OpKind::kMatmul, TargetKind::kCuda).at(0);
  const ResolvedConfig r = resolve_config(ConfigRef{gpu.name(), gpu.version(), 0, ""}, kMatmul, cpu_target());
  EXPECT_EQ(r.problem, ResolveProblem::kWrongTarget);
  EXPECT_THAT(r.reason, HasSubstr("is for CUDA GPUs, not for " + cpu_target().device_key()));
}

TEST(ConfigResolverTest, AnIndexOutsideTheSpaceIsRefusedWithTheSpaceSize) {
  const ConfigSpace space = matmul_template().space(kMatmul, cpu_target());
  ConfigRef ref = matmul_ref(0);
  ref.config_index = space.size();
  ref.config_text = "";
  const ResolvedConfig r = resolve_config(ref, kMatmul, cpu_target());
  EXPECT_EQ(r.problem, ResolveProblem::kOutsideSpace);
  EXPECT_EQ(r.tmpl, &matmul_template());
  EXPECT_THAT(r.reason, HasSubstr("config index " + std::to_string(space.size()) + " is outside the space (" +
                                  std::to_string(space.size()) + " configs)"));
  try {
    config_at(space, space.size());
    ADD_FAILURE() << "config_at took an index past the end";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("is outside the space"));
  }
  EXPECT_EQ(config_at(space, 3).index, 3u);
}

// A template whose knobs changed without a version bump decodes the stored
// index as another config: the stored text catches it.
TEST(ConfigResolverTest, AnIndexThatDecodesToAnotherConfigIsRefused) {
  ConfigRef ref = matmul_ref(5);
  ref.config_text = "tile_m=[16] an older knob list";
  const ResolvedConfig r = resolve_config(ref, kMatmul, cpu_target());
  EXPECT_EQ(r.problem, ResolveProblem::kOtherConfig);
  EXPECT_THAT(r.reason, HasSubstr("'tile_m=[16] an older knob list'"));
  EXPECT_THAT(r.reason, HasSubstr("decodes it as"));
  try {
    r.get();
    ADD_FAILURE() << "get() of an unusable reference returned a config";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), r.reason);
  }
}

TEST(RecordConfigTest, AUsableRecordIsASuccessOfACurrentTemplate) {
  const Template& t = matmul_template();
  const ConfigRef ref = matmul_ref(7);
  Record r = testing::sample_record(kMatmul.key(), cpu_target().device_key(), t.name(), t.version(), 7, {1e-3});
  r.config_text = ref.config_text;
  EXPECT_TRUE(template_current(r));
  EXPECT_TRUE(usable(r));
  const ResolvedConfig resolved = resolve(r, cpu_target());
  ASSERT_TRUE(resolved.ok()) << resolved.reason;
  EXPECT_EQ(resolved.config.index, 7u);

  Record failed = r;
  failed.result.costs.clear();
  failed.result.error = MeasureError::kWrongAnswer;
  EXPECT_TRUE(template_current(failed));
  EXPECT_FALSE(usable(failed));

  Record old = r;
  old.template_version = t.version() - 1;
  EXPECT_FALSE(template_current(old));
  EXPECT_FALSE(usable(old));
  EXPECT_EQ(resolve(old, cpu_target()).problem, ResolveProblem::kOtherVersion);

  Record unreadable = r;
  unreadable.workload_key = "matmul(m=0)";
  const ResolvedConfig bad = resolve(unreadable, cpu_target());
  EXPECT_EQ(bad.problem, ResolveProblem::kUnreadableWorkload);
  EXPECT_THAT(bad.reason, HasSubstr("workload 'matmul(m=0)'"));
}

}  // namespace
}  // namespace ktune
