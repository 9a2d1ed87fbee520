// Progress display for tuning runs: one redrawn status line on a terminal,
// plain log lines otherwise (so logs and CI output stay readable).
#pragma once

#include <cstdio>
#include <string>

#include "tuner/tuner.h"

namespace ktune::cli {

class ProgressDisplay {
 public:
  // Writes to out (stderr by default); `label` names what is tuned.
  ProgressDisplay(std::string label, FILE* out = stderr);
  void update(const TuneProgress& p);
  // Ends the status line (terminal) so later output starts on a new line.
  void finish();

 private:
  std::string label_;
  FILE* out_;
  bool tty_;
  bool drawn_ = false;
};

// "12.3 s", "4 min 05 s".
std::string format_duration(double seconds);

}  // namespace ktune::cli
