// Runs the real `ktune` executable in a test: argv directly (no shell),
// stdout and stderr captured, the artifact cache inside the test's directory.
#pragma once

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/run_command.h"

namespace ktune::testing {

struct CommandOutput {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// bin/ktune args..., run with `dir` holding its output files and cache.
inline CommandOutput run_ktune(const std::filesystem::path& dir, std::vector<std::string> args) {
  const std::filesystem::path out_path = dir / "stdout", err_path = dir / "stderr";
  const std::string exe = std::string(KTUNE_BIN_DIR) + "/ktune";
  args.insert(args.begin(), exe);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 1);
    dup2(open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
    setenv("KTUNE_CACHE_DIR", (dir / "cache").c_str(), 1);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(exe.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), read_file(out_path),
          read_file(err_path)};
}

}  // namespace ktune::testing
