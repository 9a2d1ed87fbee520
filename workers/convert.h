// Conversions between ktune's core types and the wire types of
// proto/ktune.proto. The core never sees proto types; the farm and the
// daemon convert here, at the edge.
#pragma once

#include <string>

#include "measure/measure.h"
#include "proto/ktune.pb.h"
#include "schedule_space/target.h"

namespace ktune::wire {

v1::Target to_proto(const Target& t);
// Throws ktune::Error on a target this build cannot use (not "cpu", bad
// numbers), naming the field.
Target from_proto(const v1::Target& t);

v1::MeasureOptions to_proto(const MeasureOptions& o);
MeasureOptions from_proto(const v1::MeasureOptions& o);

v1::MeasureResult to_proto(const MeasureResult& r);
// An unknown error code becomes kRuntimeError, saying so.
MeasureResult from_proto(const v1::MeasureResult& r);

// A message as one line of JSON (protobuf's JSON mapping), and back; the
// latter throws ktune::Error naming what did not parse.
std::string to_json(const google::protobuf::Message& m);
void from_json(const std::string& json, google::protobuf::Message* m, const std::string& what);

// This machine's description of a target, as a worker registers it: the
// target, host name, Target::describe(), /proc/cpuinfo's model name and the
// tool version.
// This host's name, and /proc/cpuinfo's "model name" ("" if unknown).
std::string host_name();
std::string cpu_model_name();
// The description of this machine as target t (what a worker registers with).
v1::DeviceInfo device_info(const Target& t);
// device_info(t) as one line of JSON: what Database::set_device stores.
std::string device_description_json(const Target& t);

}  // namespace ktune::wire
