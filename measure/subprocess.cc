#include "measure/subprocess.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "schedule_space/error.h"

extern char** environ;

namespace ktune::detail {

void BoundedText::append(const char* data, size_t n) {
  size_t to_head = std::min(n, head_limit_ - std::min(head_limit_, head_.size()));
  head_.append(data, to_head);
  data += to_head;
  n -= to_head;
  if (n == 0) return;
  tail_.append(data, n);
  if (tail_.size() > tail_limit_) {
    size_t drop = tail_.size() - tail_limit_;
    tail_.erase(0, drop);
    omitted_ += drop;
  }
}

std::string BoundedText::text() const {
  if (omitted_ == 0) return head_ + tail_;
  return head_ + "\n[... " + std::to_string(omitted_) + " bytes omitted ...]\n" + tail_;
}

std::array<int, 2> make_pipe() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw Error(std::string("cannot create a pipe: ") + strerror(errno));
  return {fds[0], fds[1]};
}

void close_fd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

pid_t spawn_in_own_group(const std::vector<std::string>& argv, int stdin_fd, int stdout_fd,
                         int stderr_fd) {
  if (argv.empty()) throw Error("cannot spawn a process: empty command");
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const int fds[3] = {stdin_fd, stdout_fd, stderr_fd};
  for (int target = 0; target < 3; ++target) {
    if (fds[target] >= 0) {
      posix_spawn_file_actions_adddup2(&actions, fds[target], target);
    } else {
      posix_spawn_file_actions_addopen(&actions, target, "/dev/null",
                                       target == 0 ? O_RDONLY : O_WRONLY, 0);
    }
  }
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);
  // The child must not inherit a blocked or ignored SIGPIPE etc. from a
  // thread of ours that was writing to a pipe at the time.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw Error("cannot run '" + argv[0] + "': " + strerror(rc));
  return pid;
}

int kill_group_and_reap(pid_t pid) {
  // The unreaped leader keeps the group id reserved, so this cannot hit an
  // unrelated process group.
  kill(-pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

int reap_or_kill(pid_t pid, double grace_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(grace_s);
  for (;;) {
    int status = 0;
    pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return status;
    if (done < 0 && errno != EINTR) return status;
    if (std::chrono::steady_clock::now() >= deadline) return kill_group_and_reap(pid);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

std::string signal_name(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGHUP: return "SIGHUP";
    case SIGPIPE: return "SIGPIPE";
    case SIGTRAP: return "SIGTRAP";
    case SIGSYS: return "SIGSYS";
    case SIGXCPU: return "SIGXCPU";
    case SIGXFSZ: return "SIGXFSZ";
    default: return "signal " + std::to_string(sig);
  }
}

std::string describe_wait_status(int status) {
  if (WIFSIGNALED(status)) return signal_name(WTERMSIG(status));
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  return "wait status " + std::to_string(status);
}

bool CommandResult::succeeded() const {
  return !timed_out && WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0;
}

CommandResult run_command(const std::vector<std::string>& argv, double timeout_s,
                          size_t output_head, size_t output_tail) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  auto ms_left = [&] {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    return static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(left.count(), 1 << 30)));
  };

  auto [read_end, write_end] = make_pipe();
  pid_t pid;
  try {
    pid = spawn_in_own_group(argv, -1, write_end, write_end);
  } catch (...) {
    close(read_end);
    close(write_end);
    throw;
  }
  close(write_end);

  CommandResult result;
  BoundedText output(output_head, output_tail);
  bool eof = false;
  while (!eof) {
    int wait_ms = ms_left();
    if (wait_ms == 0) {
      result.timed_out = true;
      break;
    }
    pollfd p{read_end, POLLIN, 0};
    int n = poll(&p, 1, wait_ms);
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    char buf[4096];
    ssize_t got = read(read_end, buf, sizeof buf);
    if (got > 0) {
      output.append(buf, static_cast<size_t>(got));
    } else if (got == 0 || errno != EINTR) {
      eof = true;
    }
  }
  close(read_end);

  if (result.timed_out) {
    kill_group_and_reap(pid);
  } else {
    // The output closed; the process normally exits right after, but one
    // that closed its output and kept running still gets no more than its time.
    double left = std::chrono::duration<double>(deadline - Clock::now()).count();
    result.wait_status = reap_or_kill(pid, std::max(0.0, left));
    result.timed_out = WIFSIGNALED(result.wait_status) && WTERMSIG(result.wait_status) == SIGKILL &&
                       Clock::now() >= deadline;
  }
  result.output = output.text();
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

}  // namespace ktune::detail
