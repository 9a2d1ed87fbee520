#include "cli/progress.h"

#include <cmath>
#include <unistd.h>

namespace ktune::cli {

std::string format_duration(double seconds) {
  char buf[64];
  if (seconds < 60) {
    std::snprintf(buf, sizeof buf, "%.1f s", seconds);
  } else {
    int s = static_cast<int>(std::lround(seconds));
    std::snprintf(buf, sizeof buf, "%d min %02d s", s / 60, s % 60);
  }
  return buf;
}

ProgressDisplay::ProgressDisplay(std::string label, FILE* out)
    : label_(std::move(label)), out_(out), tty_(isatty(fileno(out)) != 0) {}

void ProgressDisplay::update(const TuneProgress& p) {
  double eta = p.trials_done > 0
                   ? p.elapsed_s / p.trials_done * std::max(0, p.trials_total - p.trials_done)
                   : 0;
  char line[512];
  std::snprintf(line, sizeof line, "%s  %d/%d trials  best %.2f GFLOP/s  errors %d  elapsed %s  ETA %s",
                label_.c_str(), p.trials_done, p.trials_total, p.best_gflops, p.errors,
                format_duration(p.elapsed_s).c_str(), format_duration(eta).c_str());
  if (tty_) {
    std::fprintf(out_, "\r\033[K%s", line);
    drawn_ = true;
  } else {
    std::fprintf(out_, "%s\n", line);
  }
  std::fflush(out_);
}

void ProgressDisplay::finish() {
  if (tty_ && drawn_) std::fprintf(out_, "\n");
  drawn_ = false;
  std::fflush(out_);
}

}  // namespace ktune::cli
