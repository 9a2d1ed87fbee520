// The ONNX frontend: task extraction from hand-built models, bad files, and
// ONNX's own backend test cases (Debian's libonnx-testdata) computed with
// ktune's generated kernels and compared with their expected outputs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "frontend/onnx_exec.h"
#include "frontend/onnx_frontend.h"
#include "schedule_space/error.h"
#include "tests/kernel_check.h"
#include "tests/onnx_models.h"

namespace ktune {
namespace {

namespace fs = std::filesystem;
using testing::OnnxModelBuilder;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string key(const std::string& spec) { return Workload::parse(spec).key(); }

TEST(OnnxFrontendTest, ExtractsExactlyTheUniqueWorkloadsWithTheirWeights) {
  const ModelTasks m = onnx_tasks_from_bytes(testing::mixed_model().bytes(), "mixed.onnx");
  std::vector<std::pair<std::string, int>> got;
  for (const ModelTask& t : m.tasks) got.emplace_back(t.workload.key(), t.weight);
  const std::vector<std::pair<std::string, int>> want = {
      {key("conv2d(n=1,c=3,h=16,w=16,k=8,r=3,s=3,stride=1,pad=1)"), 1},
      {key("conv2d(n=1,c=8,h=16,w=16,k=8,r=3,s=3,stride=1,pad=1)"), 2},  // conv2a and conv2b
      {key("conv2d(n=1,c=8,h=16,w=16,k=8,r=3,s=3,stride=2,pad=0x0x1x1)"), 1},  // SAME_UPPER: the extra row at the end
      {key("conv2d(n=1,c=8,h=8,w=8,k=8,r=3,s=3,stride=1,pad=0x0x1x1)"), 1},    // asymmetric pads
      {key("depthwise_conv2d(n=1,c=8,h=7,w=7,r=3,s=3,stride=1,pad=1)"), 1},
      {key("dense(batch=1,in=8,out=10,bias=1)"), 1},  // Gemm transB=1 with a vector C
      {key("matmul(m=1,n=10,k=8)"), 1},               // Gemm transB=0
      {key("batch_matmul(b=8,m=5,n=7,k=6)"), 1},      // [2,4,5,6] x [4,6,7], batch dims broadcast
      {key("matmul(m=24,n=5,k=7)"), 1},               // [4,6,7] x [7,5]: rows flattened
  };
  EXPECT_EQ(got, want);
  EXPECT_EQ(m.tasks[1].nodes, (std::vector<std::string>{"conv2a", "conv2b"}));
  std::map<std::string, int> not_tunable;
  for (const NotTunable& n : m.not_tunable) not_tunable[n.what] = n.count;
  EXPECT_EQ(not_tunable, (std::map<std::string, int>{{"Add", 1}, {"Conv (group=2)", 1}, {"Flatten", 1},
                                                      {"GlobalAveragePool", 1}, {"Relu", 1}}));
  EXPECT_EQ(m.total_nodes, 15);
  EXPECT_EQ(m.opset, 13);
}

TEST(OnnxFrontendTest, SameLowerPutsTheExtraPaddingFirstAndGemmTransposesMapToMatmul) {
  OnnxModelBuilder b;
  b.input("x", {1, 4, 10, 10});
  b.input("a", {6, 3});  // transA: A is [K, M]
  b.weight("w", {4, 4, 2, 2});
  b.weight("bm", {5, 6});  // transB: B is [N, K]
  b.weight("c", {3, 5});
  auto* c = b.node("Conv", {"x", "w"}, {"y"});
  OnnxModelBuilder::text(c, "auto_pad", "SAME_LOWER");
  auto* g = b.node("Gemm", {"a", "bm", "c"}, {"z"});
  OnnxModelBuilder::integer(g, "transA", 1);
  OnnxModelBuilder::integer(g, "transB", 1);
  b.output("y");
  b.output("z");
  const ModelTasks m = onnx_tasks_from_bytes(b.bytes(), "m.onnx");
  ASSERT_EQ(m.tasks.size(), 2u);
  EXPECT_EQ(m.tasks[0].workload.key(), key("conv2d(n=1,c=4,h=10,w=10,k=4,r=2,s=2,pad=1x1x0x0)"));
  EXPECT_EQ(m.tasks[1].workload.key(), key("matmul(m=3,n=5,k=6)"));  // a matrix C is added after the kernel
  EXPECT_TRUE(m.nodes[1].transpose_a);
  EXPECT_TRUE(m.nodes[1].b_is_nk);
}

TEST(OnnxFrontendTest, ASymbolicInputNeedsAnOverrideNamedInTheError) {
  const std::string bytes = testing::mixed_model(-1).bytes();
  const std::string why = error_of([&] { onnx_tasks_from_bytes(bytes, "dyn.onnx"); });
  EXPECT_NE(why.find("input 'x'"), std::string::npos) << why;
  EXPECT_NE(why.find("symbolic dimension 'N'"), std::string::npos) << why;
  EXPECT_NE(why.find("--input-shape x="), std::string::npos) << why;
  const ModelTasks m = onnx_tasks_from_bytes(bytes, "dyn.onnx", {{"x", {4, 3, 16, 16}}});
  EXPECT_EQ(m.tasks[0].workload.key(), key("conv2d(n=4,c=3,h=16,w=16,k=8,r=3,s=3,pad=1)"));
  const std::string unknown = error_of([&] { onnx_tasks_from_bytes(bytes, "dyn.onnx", {{"y", {1}}, {"x", {1, 3, 16, 16}}}); });
  EXPECT_NE(unknown.find("no input 'y'"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("x, q, k"), std::string::npos) << unknown;
}

TEST(OnnxFrontendTest, BadFilesGiveClearErrors) {
  const std::string good = testing::mixed_model().bytes();
  EXPECT_NE(error_of([&] { onnx_tasks_from_bytes("this is not a model", "text.onnx"); }).find("not an ONNX model"),
            std::string::npos);
  EXPECT_NE(error_of([&] { onnx_tasks_from_bytes(good.substr(0, good.size() / 2), "half.onnx"); }).find("half.onnx"),
            std::string::npos);
  EXPECT_NE(error_of([&] { onnx_tasks_from_bytes("", "empty.onnx"); }).find("empty"), std::string::npos);
  OnnxModelBuilder future(99);
  future.input("x", {1, 3, 8, 8});
  future.weight("w", {4, 3, 3, 3});
  future.node("Conv", {"x", "w"}, {"y"});
  const std::string opset = error_of([&] { onnx_tasks_from_bytes(future.bytes(), "future.onnx"); });
  EXPECT_NE(opset.find("opset 99"), std::string::npos) << opset;
  EXPECT_NE(opset.find("up to " + std::to_string(max_supported_opset())), std::string::npos) << opset;
  EXPECT_NE(error_of([&] { load_onnx_tasks("/nonexistent/model.onnx"); }).find("cannot read"), std::string::npos);
  // A tunable node whose input shape inference cannot know.
  OnnxModelBuilder shapeless;
  shapeless.input("x", {1, 3, 8, 8});
  shapeless.input("shape", {2});
  shapeless.weight("w", {4, 4});
  auto* r = shapeless.node("Reshape", {"x", "shape"}, {"flat"});
  (void)r;
  shapeless.node("MatMul", {"flat", "w"}, {"y"}, "mm");
  const std::string missing = error_of([&] { onnx_tasks_from_bytes(shapeless.bytes(), "s.onnx"); });
  EXPECT_NE(missing.find("node 'mm'"), std::string::npos) << missing;
  EXPECT_NE(missing.find("'flat'"), std::string::npos) << missing;
  EXPECT_EQ(parse_input_shape("data=1x3x224x224"), (std::pair<std::string, std::vector<int64_t>>{"data", {1, 3, 224, 224}}));
  EXPECT_NE(error_of([] { parse_input_shape("data=1x0"); }).find("'0'"), std::string::npos);
  EXPECT_NE(error_of([] { parse_input_shape("1x3"); }).find("NAME="), std::string::npos);
}

// Found by fuzz/fuzz_onnx_model: libonnx 1.12's shape inference reads out of
// bounds (SIGSEGV in convPoolShapeInference) for a Conv without kernel_shape
// whose weight has more dimensions than its input: here 40 against 3, so it
// reads far past the input's dimensions. The model is refused with an error
// naming it, and the process that read it lives on.
TEST(OnnxFrontendTest, AModelThatCrashesOnnxShapeInferenceIsAnError) {
  OnnxModelBuilder b;
  b.input("x", {1, 1, 5});
  b.weight("w", std::vector<int64_t>(40, 1));
  b.node("Conv", {"x", "w"}, {"y"}, "conv");
  b.output("y");
  const std::string why = error_of([&] { onnx_tasks_from_bytes(b.bytes(), "bad-conv.onnx"); });
  EXPECT_NE(why.find("bad-conv.onnx"), std::string::npos) << why;
  // A good model still reads, again and again (inference runs in a child).
  EXPECT_EQ(onnx_tasks_from_bytes(testing::mixed_model().bytes(), "mixed.onnx").tasks.size(),
            onnx_tasks_from_bytes(testing::mixed_model().bytes(), "again.onnx").tasks.size());
}

// Found by fuzz/fuzz_onnx_model: a MatMul whose input is a scalar (a shape
// of rank 0) passed shape inference and then read the last dimension of an
// empty shape. It is an error naming the node.
TEST(OnnxFrontendTest, AMatMulOfAScalarIsAnError) {
  OnnxModelBuilder b;
  b.input("a", {2, 3});
  b.input("b", {});
  b.node("MatMul", {"a", "b"}, {"c"}, "mm");
  b.output("c");
  const std::string why = error_of([&] { onnx_tasks_from_bytes(b.bytes(), "scalar.onnx"); });
  EXPECT_NE(why.find("node 'mm'"), std::string::npos) << why;
  EXPECT_NE(why.find("at least 1 dimension"), std::string::npos) << why;
}

// --- ONNX's backend test cases ---

const fs::path kOnnxTestData = "/usr/share/libonnx-testdata/data/node";

std::vector<float> read_tensor(const fs::path& path, std::vector<int64_t>* dims = nullptr) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  onnx::TensorProto t;
  if (!t.ParseFromString(buf.str())) throw Error("cannot parse " + path.string());
  if (t.data_type() != onnx::TensorProto::FLOAT) throw Error(path.string() + " is not float");
  if (dims) dims->assign(t.dims().begin(), t.dims().end());
  if (t.float_data_size() > 0) return {t.float_data().begin(), t.float_data().end()};
  std::vector<float> v(t.raw_data().size() / sizeof(float));
  std::memcpy(v.data(), t.raw_data().data(), v.size() * sizeof(float));
  return v;
}

// Every single-node Conv / Gemm / MatMul case: import it, run its task's
// default kernel (the first template's first seed config, generated,
// compiled and loaded) on the stored inputs, compare with the stored output.
TEST(OnnxBackendDataTest, SupportedConvGemmAndMatmulCasesMatchTheirExpectedOutputs) {
  if (!fs::exists(kOnnxTestData)) {
    GTEST_SKIP() << kOnnxTestData << " is missing: install libonnx-testdata (scripts/install-deps.sh does)";
  }
  const Target target = detect_cpu_target(1);
  int cases = 0, supported = 0, passed = 0;
  std::vector<std::string> unsupported;
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(kOnnxTestData)) dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end());
  for (const fs::path& dir : dirs) {
    const std::string name = dir.filename().string();
    if (name.rfind("test_conv", 0) != 0 && name.rfind("test_basic_conv", 0) != 0 && name.rfind("test_gemm", 0) != 0 &&
        name.rfind("test_matmul", 0) != 0) {
      continue;
    }
    ModelTasks m;
    try {
      m = load_onnx_tasks((dir / "model.onnx").string());
    } catch (const Error& e) {
      unsupported.push_back(name + " (" + e.what() + ")");
      continue;
    }
    if (m.total_nodes != 1) continue;
    if (m.nodes.empty()) {
      // Another operator (ConvInteger, ConvTranspose, MatMulInteger): not a case of these three.
      const std::string& what = m.not_tunable.at(0).what;
      if (what.find(' ') == std::string::npos) continue;
    }
    ++cases;
    if (m.nodes.size() != 1) {
      unsupported.push_back(name + " (" + (m.not_tunable.empty() ? "?" : m.not_tunable[0].what) + ")");
      continue;
    }
    ++supported;
    const NodeMapping& node = m.nodes[0];
    const Template& tmpl = *templates_for(node.workload, TargetKind::kCpu).front();
    const ConfigSpace space = tmpl.space(node.workload, target);
    std::vector<Config> seeds = tmpl.seed_configs(node.workload, target, space);
    const Config config = seeds.empty() ? space.get(0) : seeds.front();
    ASSERT_FALSE(tmpl.check(node.workload, target, space, config)) << name;
    const ir::Program program = tmpl.instantiate(node.workload, target, space, config);
    for (const fs::path& set : {dir / "test_data_set_0"}) {
      std::vector<std::vector<float>> inputs;
      for (int i = 0; fs::exists(set / ("input_" + std::to_string(i) + ".pb")); ++i) {
        inputs.push_back(read_tensor(set / ("input_" + std::to_string(i) + ".pb")));
      }
      const std::vector<float> want = read_tensor(set / "output_0.pb");
      const std::vector<float> got = run_mapped_node(node, inputs, [&](const std::vector<std::vector<float>>& in) {
        return testing::run_program(program, in);
      });
      ASSERT_EQ(got.size(), want.size()) << name;
      const double worst = testing::max_relative_error(got, want);
      EXPECT_LT(worst, 1e-4) << name << " (" << node.workload.key() << ")";
      passed += worst < 1e-4;
    }
  }
  std::string skipped;
  for (const auto& u : unsupported) skipped += "\n  " + u;
  std::cout << "ONNX backend cases (single Conv/Gemm/MatMul nodes): " << cases << ", supported " << supported
            << ", passed " << passed << "; not supported:" << skipped << "\n";
  EXPECT_GE(supported, 20);  // every float conv, gemm and matmul case of ONNX 1.12
  EXPECT_EQ(passed, supported);
}

}  // namespace
}  // namespace ktune
