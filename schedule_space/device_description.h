// A device's description: what a farm worker registers with, what `ktune
// tune` stores beside its records (Database::set_device), and what exports
// carry, so that another machine knows which device a device key names and
// can build for it (its target) without being that device.
//
// Its JSON is the shape of protobuf's JSON mapping of the farm's DeviceInfo
// message (proto/ktune.proto) as earlier builds stored it, so files and
// databases written by either build read in the other:
//   {"target":{"kind":"cpu","device_key":KEY,
//              "cpu":{"model","isa","vector_lanes":N,"threads":N,"l1d_bytes":"N",
//                     "l2_bytes":"N","l3_bytes":"N","compiler","flags":[...]},
//              "cuda":{"name","ordinal","cc_major","cc_minor","sm_count",
//                      "max_threads_per_block","shared_bytes_per_block":"N",
//                      "registers_per_block","max_registers_per_thread","warp_size"}},
//    "host":TEXT,"description":TEXT,"cpu_model_name":TEXT,"tool_version":TEXT}
// As in protobuf's mapping, 64-bit sizes are strings, a field at its zero
// value ("" / 0 / []) is left out and reads back as zero, and "cuda" is
// present for a GPU only. Reading also takes protobuf's lowerCamelCase names
// ("deviceKey", "cpuModelName") and numbers given as strings or numbers, and
// ignores fields it does not know (a newer build's).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "schedule_space/target.h"

namespace ktune {

struct DeviceDescription {
  // Where code runs. target.key is set only where the device key is not the
  // one derived from the rest (a worker's --key).
  Target target;
  std::string host;            // host name of the machine that described itself
  std::string description;     // one line, Target::describe() of a CPU ("" for a GPU)
  std::string cpu_model_name;  // /proc/cpuinfo's "model name" ("" if unknown)
  std::string tool_version;    // e.g. "ktune 0.1.0"

  bool operator==(const DeviceDescription&) const = default;

  // The JSON object above, keys in that order.
  nlohmann::ordered_json to_json() const;
  // to_json() as one line: the text Database::set_device stores.
  std::string to_json_text() const;

  // Reads the JSON object above. Throws ktune::Error "device description:
  // field 'target.cpu.threads': expected an integer, got "two"" naming the
  // field that is missing (only "target" and its "kind" must be there), of the
  // wrong type, or a value this build cannot use (check_target).
  static DeviceDescription from_json(const nlohmann::ordered_json& j);
  // from_json of a JSON text; throws ktune::Error also when it is not JSON.
  static DeviceDescription parse(const std::string& text);
};

// This machine described as target t (a worker's registration, what `ktune
// tune` stores): host_name(), t.describe() for a CPU, cpu_model_name(), this
// build's tool version.
DeviceDescription describe_this_machine(const Target& t);

// This host's name ("unknown-host" if the system does not say).
std::string host_name();

}  // namespace ktune
