// Child processes for the measure module: the compiler (Builder) and the
// sandboxed ktune-runner (RunnerProcess).
//
// Every child runs in its own process group, so that killing the group on a
// timeout also ends what it started (cc1plus, as, ld; threads are included
// anyway). Children are started with posix_spawnp from an argv vector, never
// through a shell, and all pipes are close-on-exec so that children spawned
// concurrently by other threads never inherit each other's pipe ends (which
// would keep a pipe open after its owner exited). Private to measure/.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <sys/types.h>
#include <vector>

namespace ktune::detail {

// Keeps the first `head` and the last `tail` bytes of a stream and how much
// was dropped in between: compiler diagnostics are most useful at the start,
// a crashing process's stderr at the end; neither may grow without bound.
class BoundedText {
 public:
  BoundedText(size_t head, size_t tail) : head_limit_(head), tail_limit_(tail) {}
  void append(const char* data, size_t n);
  // The kept text, with "[... N bytes omitted ...]" where bytes were dropped.
  std::string text() const;

 private:
  size_t head_limit_, tail_limit_;
  std::string head_, tail_;
  size_t omitted_ = 0;
};

// A pipe; both ends close-on-exec. Throws ktune::Error on failure.
std::array<int, 2> make_pipe();

// Starts argv (argv[0] looked up in PATH) in a new process group with the
// given fds as its stdin, stdout and stderr (-1: /dev/null). Throws
// ktune::Error naming the program if it cannot be started.
pid_t spawn_in_own_group(const std::vector<std::string>& argv, int stdin_fd, int stdout_fd,
                         int stderr_fd);

// SIGKILLs pid's process group and reaps pid. Returns the wait status.
int kill_group_and_reap(pid_t pid);
// Reaps pid, which is expected to exit by itself (its output just closed);
// after grace_s, kills its group. Returns the wait status.
int reap_or_kill(pid_t pid, double grace_s);

// "SIGSEGV", "SIGKILL", ..., or "signal N".
std::string signal_name(int sig);
// A wait status in words: "exit status 1" or "SIGSEGV".
std::string describe_wait_status(int status);

// Closes fd (if >= 0) and sets it to -1.
void close_fd(int& fd);

struct CommandResult {
  bool timed_out = false;  // killed after timeout_s
  int wait_status = 0;     // valid when !timed_out
  std::string output;      // stdout and stderr interleaved, bounded
  double seconds = 0;

  bool succeeded() const;  // exited with status 0
};

// Runs argv to completion or until timeout_s has passed (then its process
// group is killed), capturing stdout and stderr together. Throws
// ktune::Error if it cannot be started.
CommandResult run_command(const std::vector<std::string>& argv, double timeout_s,
                          size_t output_head = 3072, size_t output_tail = 1024);

}  // namespace ktune::detail
