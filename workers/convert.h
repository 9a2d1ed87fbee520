// Conversions between ktune's core types and the wire types of
// proto/ktune.proto. The core never sees proto types; the farm and the
// daemon convert here, at the edge.
#pragma once

#include <string>

#include "measure/measure.h"
#include "proto/ktune.pb.h"
#include "schedule_space/device_description.h"
#include "schedule_space/target.h"

namespace ktune::wire {

v1::Target to_proto(const Target& t);
// Throws ktune::Error on a target this build cannot use (a kind other than
// "cpu" or "cuda", check_target), naming the field.
Target from_proto(const v1::Target& t);

v1::DeviceInfo to_proto(const DeviceDescription& d);
// Throws ktune::Error as from_proto(v1::Target) does.
DeviceDescription from_proto(const v1::DeviceInfo& d);

v1::MeasureOptions to_proto(const MeasureOptions& o);
MeasureOptions from_proto(const v1::MeasureOptions& o);

v1::MeasureResult to_proto(const MeasureResult& r);
// An unknown error code becomes kRuntimeError, saying so.
MeasureResult from_proto(const v1::MeasureResult& r);

// A message as one line of JSON (protobuf's JSON mapping), and back; the
// latter throws ktune::Error naming what did not parse.
std::string to_json(const google::protobuf::Message& m);
void from_json(const std::string& json, google::protobuf::Message* m, const std::string& what);

// ktune::host_name() and ktune::cpu_model_name() (schedule_space/), under
// their older names.
std::string host_name();
std::string cpu_model_name();
// to_proto(describe_this_machine(t)): what a worker registers with.
v1::DeviceInfo device_info(const Target& t);
// describe_this_machine(t).to_json_text(): what Database::set_device stores.
std::string device_description_json(const Target& t);

}  // namespace ktune::wire
