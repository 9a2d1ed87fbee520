// What the daemon accepts from the network and its own database, as its
// handlers validate it: the first byte picks the message, the rest is its
// protobuf bytes (what gRPC hands a handler) or, for a stored job, its JSON.
//   0  JobSpec (Submit): JobManager::validate, then what submit() stores
//      must validate again when the daemon resumes it after a restart
//   1  a job spec as stored in the database (JSON), as resume() reads it
//   2  RegisterRequest: DeviceFarm::register_worker (the worker's device),
//      then the spaces and seeds a job builds for that device
//   3  ReportRequest: each result as the farm converts an accepted one
#include <spdlog/spdlog.h>

#include <memory>

#include "fuzz/fuzz_check.h"
#include "schedule_space/template.h"
#include "schedule_space/workload.h"
#include "service/jobs.h"
#include "workers/convert.h"
#include "workers/device_farm.h"

namespace ktune {
namespace {

void job_spec(const v1::JobSpec& spec) {
  try {
    JobManager::validate(spec);
  } catch (const FarmError& e) {
    fuzz::expect(e.code == FarmError::kInvalidArgument, std::string("a bad spec is not invalid_argument: ") + e.what());
    return;
  }
  // As submit() stores it (canonical keys), and as resume() reads it back.
  v1::JobSpec stored = spec;
  for (int i = 0; i < stored.ops_size(); ++i) stored.set_ops(i, Workload::parse(stored.ops(i)).key());
  for (int i = 0; i < stored.tasks_size(); ++i) {
    stored.mutable_tasks(i)->set_workload_key(Workload::parse(stored.tasks(i).workload_key()).key());
  }
  v1::JobSpec resumed;
  try {
    wire::from_json(wire::to_json(stored), &resumed, "stored spec");
    JobManager::validate(resumed);
  } catch (const Error& e) {
    fuzz::broken(std::string("an accepted job does not resume: ") + e.what());
  }
}

void stored_job_spec(const std::string& json) {
  v1::JobSpec spec;
  try {
    wire::from_json(json, &spec, "job in the database");
    JobManager::validate(spec);
  } catch (const Error&) {
  }
}

void register_request(const v1::RegisterRequest& request) {
  // A farm per thousand registrations: each stays registered.
  static std::unique_ptr<DeviceFarm> farm;
  static int registrations = 0;
  if (!farm || ++registrations % 1000 == 0) {
    farm.reset();
    farm = std::make_unique<DeviceFarm>();
  }
  Target target;
  try {
    const v1::RegisterReply reply = farm->register_worker(request);
    fuzz::expect(!reply.worker_id().empty(), "a registration without a worker id");
    target = wire::from_proto(request.device().target());
    fuzz::expect(farm->device(target.device_key()).has_value(),
                 "a registered device key '" + target.device_key() + "' the farm does not know");
  } catch (const FarmError&) {
    return;
  }
  // What the daemon's jobs do next with the device a worker described: the
  // spaces and analytical seeds of its templates (a job may fail on a device
  // it cannot tune for, with a message; the daemon must not crash).
  static const std::vector<Workload> workloads = {Workload::parse("matmul(m=64,n=48,k=32)"),
                                                  Workload::parse("conv2d(n=1,c=16,h=14,w=14,k=32,r=3,s=3,pad=1)")};
  for (const Workload& w : workloads) {
    for (const Template* t : templates_for(w, target.kind)) {
      try {
        const ConfigSpace space = t->space(w, target);
        for (const Config& c : t->seed_configs(w, target, space)) {
          fuzz::expect(!t->check(w, target, space, c), t->name() + ": a seed that fails its check");
        }
      } catch (const Error&) {
      }
    }
  }
}

void report_request(const v1::ReportRequest& request) {
  for (const v1::ItemResult& r : request.results()) (void)wire::from_proto(r.result());
}

}  // namespace
}  // namespace ktune

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);
    return true;
  }();
  (void)quiet;
  if (size == 0) return 0;
  const uint8_t* body = data + 1;
  const int body_size = static_cast<int>(size - 1);
  switch (data[0] % 4) {
    case 0: {
      ktune::v1::JobSpec spec;
      if (spec.ParseFromArray(body, body_size)) ktune::job_spec(spec);
      break;
    }
    case 1: ktune::stored_job_spec(ktune::fuzz::text_of(body, size - 1)); break;
    case 2: {
      ktune::v1::RegisterRequest request;
      if (request.ParseFromArray(body, body_size)) ktune::register_request(request);
      break;
    }
    case 3: {
      ktune::v1::ReportRequest request;
      if (request.ParseFromArray(body, body_size)) ktune::report_request(request);
      break;
    }
  }
  return 0;
}
