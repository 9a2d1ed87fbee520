// What every harness shares: the input as text, and how a broken property
// is reported (an abort libFuzzer records as a crash, with the message).
//
// A harness calls the real parsing code and lets the documented error of
// bad input (ktune::Error, and where a header says so nlohmann's JSON
// exceptions) end the run normally; anything else — another exception
// type, a crash, a sanitizer report, a hang — is a finding.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "schedule_space/target.h"

namespace ktune::fuzz {

// A fixed CPU target (AVX2, 2 threads), not this machine's: spaces and
// findings are the same on every machine.
inline Target cpu_target() {
  Target t;
  t.kind = TargetKind::kCpu;
  t.cpu.model = "fuzz";
  t.cpu.isa = "avx2";
  t.cpu.vector_lanes = 8;
  t.cpu.threads = 2;
  return t;
}

inline std::string text_of(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

[[noreturn]] inline void broken(const std::string& what) {
  std::fprintf(stderr, "ktune fuzz: property broken: %s\n", what.c_str());
  std::abort();
}

inline void expect(bool ok, const std::string& what) {
  if (!ok) broken(what);
}

}  // namespace ktune::fuzz
