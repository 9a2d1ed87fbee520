// Error type shared by every ktune module.
//
// Inside a module, failures are thrown as ktune::Error with a message that
// names the bad input and what would be accepted. At process boundaries (CLI,
// runner, later gRPC handlers) they become exit codes, error MeasureResults or
// statuses — never a crash.
#pragma once

#include <stdexcept>
#include <string>

namespace ktune {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace ktune
