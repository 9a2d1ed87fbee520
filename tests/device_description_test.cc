// A device's description (schedule_space/device_description.h): its JSON is
// the proto-JSON form that databases and exports of earlier builds hold, in
// both directions; bad descriptions are refused naming the field; the
// database keeps it as text (db/stored_device.h); the farm converts it
// (workers/convert.h).
#include "schedule_space/device_description.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "db/stored_device.h"
#include "schedule_space/error.h"
#include "tests/scratch_dir.h"
#include "workers/convert.h"

namespace ktune {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

DeviceDescription cpu_description() {
  DeviceDescription d;
  d.target.cpu.model = "test";
  d.target.cpu.isa = "avx2";
  d.target.cpu.vector_lanes = 8;
  d.target.cpu.threads = 2;
  d.target.cpu.l1d_bytes = 48 * 1024;
  d.host = "bench-1";
  d.description = d.target.describe();
  d.cpu_model_name = "Test CPU @ 3 GHz";
  d.tool_version = "ktune 0.1.0";
  return d;
}

DeviceDescription gpu_description() {
  DeviceDescription d;
  d.target = cuda_target_for_arch("sm_90");  // ordinal 0, cc_minor 0: left out of the JSON
  d.host = "gpu-1";
  d.tool_version = "ktune 0.1.0";
  return d;
}

// The message of the ktune::Error that parse throws ("" if none).
std::string parse_error(const std::string& text) {
  try {
    DeviceDescription::parse(text);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(DeviceDescriptionTest, JsonRoundTripGivesTheSameDescription) {
  for (const DeviceDescription& d : {cpu_description(), gpu_description()}) {
    EXPECT_EQ(DeviceDescription::from_json(d.to_json()), d) << d.to_json_text();
    EXPECT_EQ(DeviceDescription::parse(d.to_json_text()), d) << d.to_json_text();
  }
  // A device key given by the user (`ktune worker --key`) stays.
  DeviceDescription keyed = cpu_description();
  keyed.target.key = "lab/rack-3";
  const DeviceDescription back = DeviceDescription::parse(keyed.to_json_text());
  EXPECT_EQ(back.target.device_key(), "lab/rack-3");
  EXPECT_EQ(back, keyed);
}

// What earlier builds stored (wire::to_json of a v1::DeviceInfo) reads back,
// and what this build writes is that same text, so either build reads the
// other's databases and exports.
TEST(DeviceDescriptionTest, WritesAndReadsTheProtoJsonOfEarlierBuilds) {
  for (DeviceDescription d : {cpu_description(), gpu_description()}) {
    const std::string proto_json = wire::to_json(wire::to_proto(d));
    EXPECT_EQ(d.to_json_text(), proto_json);
    EXPECT_EQ(DeviceDescription::parse(proto_json), d) << proto_json;
    v1::DeviceInfo info;
    wire::from_json(d.to_json_text(), &info, "a description this build wrote");
    EXPECT_EQ(wire::from_proto(info), d);
  }
}

TEST(DeviceDescriptionTest, ReadsAStoredProtoJsonDescription) {
  // As `ktune tune` of an earlier build stored it in a database.
  const std::string stored =
      R"({"target":{"kind":"cpu","device_key":"cpu/amd-epyc-7b13/avx2/2t","cpu":{"model":"amd-epyc-7b13",)"
      R"("isa":"avx2","vector_lanes":8,"threads":2,"l1d_bytes":"32768","l2_bytes":"524288",)"
      R"("l3_bytes":"33554432","compiler":"c++","flags":["-O3","-march=native","-ffp-contract=fast"]}},)"
      R"("host":"bench-1","description":"cpu amd-epyc-7b13, avx2 (8 fp32 lanes), 2 threads",)"
      R"("cpu_model_name":"AMD EPYC 7B13","tool_version":"ktune 0.1.0"})";
  DeviceDescription want;
  want.target.cpu = CpuTarget{.model = "amd-epyc-7b13", .isa = "avx2", .vector_lanes = 8, .threads = 2,
                              .l1d_bytes = 32768, .l2_bytes = 524288, .l3_bytes = 33554432};
  want.host = "bench-1";
  want.description = "cpu amd-epyc-7b13, avx2 (8 fp32 lanes), 2 threads";
  want.cpu_model_name = "AMD EPYC 7B13";
  want.tool_version = "ktune 0.1.0";
  const DeviceDescription got = DeviceDescription::parse(stored);
  EXPECT_EQ(got, want);
  EXPECT_EQ(got.target.device_key(), "cpu/amd-epyc-7b13/avx2/2t");
  EXPECT_EQ(got.to_json_text(), stored);

  // protobuf's parser also takes lowerCamelCase names and numbers either way,
  // and ignores fields it does not know.
  const std::string camel =
      R"({"target":{"kind":"cpu","deviceKey":"cpu/amd-epyc-7b13/avx2/2t","cpu":{"model":"amd-epyc-7b13",)"
      R"("isa":"avx2","vectorLanes":"8","threads":2,"l1dBytes":32768,"l2Bytes":"524288",)"
      R"("l3Bytes":"33554432","compiler":"c++","flags":["-O3","-march=native","-ffp-contract=fast"]}},)"
      R"("host":"bench-1","description":"cpu amd-epyc-7b13, avx2 (8 fp32 lanes), 2 threads",)"
      R"("cpuModelName":"AMD EPYC 7B13","toolVersion":"ktune 0.1.0","rack":"3"})";
  EXPECT_EQ(DeviceDescription::parse(camel), want);
}

TEST(DeviceDescriptionTest, BadDescriptionsAreRefusedNamingTheField) {
  const std::string good = cpu_description().to_json_text();
  struct Case {
    std::string text, message;
  };
  auto with = [&](const std::string& from, const std::string& to) {
    std::string text = good;
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return text.replace(at, from.size(), to);
  };
  const std::vector<Case> cases = {
      {"{\"target\":", "device description is not JSON"},
      {"[1,2]", "device description: expected a JSON object, got [1,2]"},
      {R"({"host":"bench-1"})", "device description: field 'target': missing"},
      {with(R"("target":{)", R"("target":7,"x":{)"), "device description: field 'target': expected an object, got 7"},
      {with(R"("kind":"cpu")", R"("kind":"tpu")"), "field 'target.kind': 'tpu' is not a target kind (accepted: cpu, cuda)"},
      {with(R"("kind":"cpu",)", ""), "field 'target.kind': missing (accepted: cpu, cuda)"},
      {with(R"("threads":2)", R"("threads":"two")"), R"(field 'target.cpu.threads': expected an integer, got "two")"},
      {with(R"("threads":2)", R"("threads":4294967296)"), "field 'target.cpu.threads': 4294967296 is out of range"},
      {with(R"("threads":2)", R"("threads":0)"), "device description: target: cpu.threads must be positive, got 0"},
      // Found by fuzzing the daemon's requests: a thread count this large overflowed a template's seed arithmetic.
      {with(R"("threads":2)", R"("threads":536881192)"),
       "device description: target: cpu.threads must be at most 65536, got 536881192"},
      {with(R"("host":"bench-1")", R"("host":1)"), "field 'host': expected a string, got 1"},
      {with(R"(["-O3")", R"(["-O3",5)"), "field 'target.cpu.flags[1]': expected a string, got 5"},
      {with(R"("cpu":{)", R"("cpu":[],"x":{)"), "field 'target.cpu': expected an object, got []"},
      // A number too large for a double: nlohmann's out_of_range, not a parse_error (found by fuzzing).
      {with(R"("threads":2)", R"("threads":2e999)"), "device description is not JSON"},
  };
  for (const Case& c : cases) {
    const std::string message = parse_error(c.text);
    EXPECT_THAT(message, HasSubstr(c.message)) << c.text;
    EXPECT_THAT(message, StartsWith("device description")) << c.text;
  }
}

TEST(DeviceDescriptionTest, ThisMachineIsDescribedAsTheTarget) {
  const Target t = detect_cpu_target(1);
  const DeviceDescription d = describe_this_machine(t);
  EXPECT_EQ(d.target, t);
  EXPECT_EQ(d.description, t.describe());
  EXPECT_FALSE(d.host.empty());
  EXPECT_EQ(d.host, host_name());
  EXPECT_EQ(d.cpu_model_name, cpu_model_name());
  EXPECT_THAT(d.tool_version, StartsWith("ktune "));
  // The farm's registration is the same description.
  EXPECT_EQ(wire::from_proto(wire::device_info(t)).target, t);
  EXPECT_EQ(wire::device_description_json(t), d.to_json_text());
}

TEST(StoredDeviceTest, TheDatabaseKeepsTheDescriptionUnderItsDeviceKey) {
  testing::ScratchDir dir("ktune-stored-device");
  auto db = Database::open((dir / "t.db").string());
  const DeviceDescription d = cpu_description();
  EXPECT_FALSE(stored_device(*db, d.target.device_key()).has_value());
  EXPECT_TRUE(store_device(*db, d));
  EXPECT_FALSE(store_device(*db, d)) << "the same description is not written again";
  EXPECT_EQ(stored_device(*db, d.target.device_key()), d);
  EXPECT_EQ(db->device(d.target.device_key()), d.to_json_text());

  db->set_device("cpu/broken/avx2/1t", R"({"isa":"avx2"})");
  try {
    stored_device(*db, "cpu/broken/avx2/1t");
    ADD_FAILURE() << "a broken description was read";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("the description of device key cpu/broken/avx2/1t is unreadable"));
    EXPECT_THAT(e.what(), HasSubstr("field 'target': missing"));
  }
}

}  // namespace
}  // namespace ktune
