// The JSON lines between LocalMeasurer and ktune-runner
// (measure/runner_protocol.h), both ways: what the child reads as a request
// (and the workload key in it) and what the parent reads as a reply. Each
// side reads whatever the other process writes, which may be a stale build,
// a crashed kernel's garbage or a truncated line. A bad line throws
// ktune::Error or nlohmann::json::exception, which both sides catch.
#include <sstream>

#include "fuzz/fuzz_check.h"
#include "measure/runner_protocol.h"
#include "schedule_space/workload.h"

namespace ktune {
namespace {

void request_line(const nlohmann::json& j) {
  try {
    const RunRequest r = detail::request_from_json(j);
    (void)Workload::parse(r.workload_key);  // the runner's next step
  } catch (const Error&) {
  } catch (const nlohmann::json::exception&) {
  }
}

void reply_line(const nlohmann::json& j) {
  try {
    if (j.value("event", "") == "started") return;
    MeasureResult r;
    detail::result_from_json(j, r);
    fuzz::expect(!error_name(r.error).empty(), "an error without a name");
  } catch (const Error&) {
  } catch (const nlohmann::json::exception&) {
  }
}

}  // namespace
}  // namespace ktune

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream lines(ktune::fuzz::text_of(data, size));
  for (std::string line; std::getline(lines, line);) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      continue;
    }
    ktune::request_line(j);
    ktune::reply_line(j);
  }
  return 0;
}
