// Test support: an exported kernel library used the way a user would, from a
// fresh CMake project that holds only a tiny program and add_subdirectory()
// of the exported tree.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/ktune_command.h"

namespace ktune::testing {

// Writes dir/user (CMakeLists.txt, main.cc = program), configures it with
// cmake (plus cmake_args), builds it and runs it, all output in *log_text;
// the first non-zero exit code, or the program's.
inline int build_and_run_user_project(const std::filesystem::path& dir, const std::filesystem::path& kernels,
                                      const std::string& program, const std::vector<std::string>& cmake_args,
                                      std::string* log_text) {
  const std::filesystem::path user = dir / "user";
  std::filesystem::create_directories(user);
  std::ofstream(user / "CMakeLists.txt")
      << "cmake_minimum_required(VERSION 3.18)\nproject(user CXX)\nset(CMAKE_CXX_STANDARD 17)\n"
      << "add_subdirectory(" << kernels.string() << " kernels)\n"
      << "add_executable(user main.cc)\ntarget_link_libraries(user PRIVATE ktune::kernels)\n";
  std::ofstream(user / "main.cc") << program;
  const std::filesystem::path log = dir / "user.log";
  std::vector<std::string> configure = {"cmake", "-S", user.string(), "-B", (user / "build").string()};
  configure.insert(configure.end(), cmake_args.begin(), cmake_args.end());
  int rc = run_command(configure, dir, log);
  if (rc == 0) rc = run_command({"cmake", "--build", (user / "build").string(), "-j2"}, dir, log);
  if (rc == 0) rc = run_command({(user / "build" / "user").string()}, dir, log);
  *log_text = read_file(log);
  return rc;
}

}  // namespace ktune::testing
