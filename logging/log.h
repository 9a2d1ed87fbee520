// Process logging: one configuration of spdlog's default logger per process.
//
// Library code logs with plain spdlog::info(...), spdlog::warn(...), ...;
// the process entry points (`ktune daemon`, `ktune worker`) call setup()
// once at start. Every line goes to stderr through one thread-safe sink, so
// lines of different threads never interleave mid-line:
//
//   [2026-12-04 10:11:12.345] [info] [daemon] worker wA (w-1f2e-1) registered for cpu/amd-epyc/avx2/2t
//
// Before setup() (and in programs that never call it: tests, benchmarks)
// the default logger already writes to stderr, at level info, with the same
// pattern less the process name: a program's stdout stays its own.
#pragma once

#include <string>

namespace ktune::logging {

// The levels setup() accepts, most verbose first: "trace, debug, info, warn,
// error, off".
extern const char* const kLevelNames;

// Points spdlog's default logger at stderr (colored on a terminal) with the
// pattern "[%Y-%m-%d %H:%M:%S.%e] [level] [process_name] message" and the
// given level: trace, debug, info, warn, error or off. Throws ktune::Error
// naming the accepted levels for any other; the logger is then unchanged.
// Call it at process start, before threads log.
void setup(const std::string& level, const std::string& process_name);

}  // namespace ktune::logging
