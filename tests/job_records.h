// What a job stored, as the tests that check budgets count it.
#pragma once

#include <map>
#include <string>

#include "db/database.h"

namespace ktune::testing {

// "workload|template#config" -> the job's search records of it, in the
// database at path.
inline std::map<std::string, int> job_search_records(const std::string& path, const std::string& job) {
  auto db = Database::open(path);
  std::map<std::string, int> n;
  for (const Record& r : db->records("", {})) {
    if (r.job == job && r.kind == "search") {
      ++n[r.workload_key + "|" + r.template_name + "#" + std::to_string(r.config_index)];
    }
  }
  return n;
}

inline int total(const std::map<std::string, int>& counts) {
  int t = 0;
  for (const auto& [key, n] : counts) t += n;
  return t;
}

}  // namespace ktune::testing
