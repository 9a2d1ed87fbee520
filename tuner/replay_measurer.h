// A Measurer that answers from recorded measurements instead of compiling
// and timing: search strategies compared on the same recorded landscape,
// reproducibly and in milliseconds, and tuner tests that are deterministic.
//
// A config with no recorded measurement is answered with the error
// not_recorded (the tuning loop goes on, as for any failed candidate);
// misses() counts them, so a comparison can say how much of the search left
// the recording.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "db/database.h"
#include "measure/measure.h"

namespace ktune {

class ReplayMeasurer : public Measurer {
 public:
  // The recorded result of an input, or nullopt when there is none.
  using Lookup = std::function<std::optional<MeasureResult>(const MeasureInput&)>;
  explicit ReplayMeasurer(Lookup lookup);

  // Answers from db's records: for (workload, device key, template, template
  // version, config index), the first "search" measurement recorded (the
  // one a live search would have seen), else the first of any kind. The
  // records of a (workload, device) are read once, on first use.
  static std::unique_ptr<ReplayMeasurer> from_database(std::shared_ptr<const Database> db);

  std::vector<MeasureResult> measure(const std::vector<MeasureInput>& inputs,
                                     const MeasureOptions& options) override;

  int64_t misses() const { return misses_; }
  int64_t hits() const { return hits_; }

 private:
  Lookup lookup_;
  int64_t misses_ = 0, hits_ = 0;
};

}  // namespace ktune
