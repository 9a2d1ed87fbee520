// A TuningLog over a test's database for one call of the tuning engine:
// tune(task, tuner, measurer, log_of(db), options), db a Database pointer
// (null: no log). The log lives until the end of the full expression.
#pragma once

#include <optional>

#include "tuner/tuning_log.h"

namespace ktune::testing {

struct log_of {
  template <typename Db>
  explicit log_of(const Db& db) {
    if (db) log.emplace(*db);
  }
  operator TuningLog*() { return log ? &*log : nullptr; }
  std::optional<DatabaseLog> log;
};

}  // namespace ktune::testing
