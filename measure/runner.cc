#include "measure/runner.h"

#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <functional>
#include <poll.h>
#include <pthread.h>
#include <sstream>
#include <unistd.h>

#include "measure/runner_protocol.h"
#include "measure/subprocess.h"
#include "schedule_space/error.h"

namespace ktune {
namespace {

using Clock = std::chrono::steady_clock;

// Computing a big workload's reference (a naive loop nest in double) happens
// before the candidate starts and is not the candidate's time; it still gets
// a bound, so that a wedged runner is noticed.
constexpr double kReferenceTimeoutS = 600;

// How long a runner whose stdout closed gets to finish dying before it is
// killed (its wait status names the signal that crashed it).
constexpr double kExitGraceS = 2;

std::string format_seconds(double s) {
  std::ostringstream text;
  text << s << " s";
  return text.str();
}

// Writes all of data to a pipe whose reader may be dead. SIGPIPE is blocked
// in this thread for the write and a SIGPIPE it raised is consumed, so the
// runner's death can never kill the measuring process, whatever the
// process's SIGPIPE disposition. Returns false if the reader is gone.
bool write_to_pipe(int fd, const std::string& data) {
  sigset_t sigpipe, old_mask;
  sigemptyset(&sigpipe);
  sigaddset(&sigpipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &sigpipe, &old_mask);
  bool ok = true;
  for (size_t done = 0; done < data.size();) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ok = false;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (!ok && !sigismember(&old_mask, SIGPIPE)) {
    timespec no_wait{0, 0};
    while (sigtimedwait(&sigpipe, nullptr, &no_wait) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  return ok;
}

// Reads what fd has now without blocking (fd is O_NONBLOCK). Returns false
// at end of file.
bool read_available(int fd, const std::function<void(const char*, size_t)>& sink) {
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      sink(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

bool is_executable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

}  // namespace

RunnerProcess::RunnerProcess(std::string runner_path) : runner_path_(std::move(runner_path)) {}

RunnerProcess::~RunnerProcess() { stop(); }

void RunnerProcess::start() {
  auto to_child = detail::make_pipe();
  auto from_child = detail::make_pipe();
  auto stderr_pipe = detail::make_pipe();
  try {
    pid_ = detail::spawn_in_own_group({runner_path_}, to_child[0], from_child[1], stderr_pipe[1]);
  } catch (...) {
    for (int fd : {to_child[0], to_child[1], from_child[0], from_child[1], stderr_pipe[0],
                   stderr_pipe[1]}) {
      close(fd);
    }
    throw;
  }
  close(to_child[0]);
  close(from_child[1]);
  close(stderr_pipe[1]);
  to_child_ = to_child[1];
  from_child_ = from_child[0];
  stderr_from_child_ = stderr_pipe[0];
  fcntl(from_child_, F_SETFL, fcntl(from_child_, F_GETFL) | O_NONBLOCK);
  fcntl(stderr_from_child_, F_SETFL, fcntl(stderr_from_child_, F_GETFL) | O_NONBLOCK);
}

void RunnerProcess::stop() {
  detail::close_fd(to_child_);
  detail::close_fd(from_child_);
  detail::close_fd(stderr_from_child_);
  if (pid_ > 0) detail::kill_group_and_reap(pid_);
  pid_ = -1;
}

MeasureResult RunnerProcess::run(const RunRequest& request) {
  const auto start_time = Clock::now();
  MeasureResult result;
  auto fail = [&](MeasureError error, std::string message) {
    result.costs.clear();
    result.error = error;
    result.error_message = std::move(message);
    result.run_seconds = std::chrono::duration<double>(Clock::now() - start_time).count();
    return result;
  };

  const std::string request_line = detail::request_to_json(request).dump() + "\n";
  // A runner that died while idle (killed from outside) is not this
  // candidate's fault: start a fresh one and send the request again, once.
  bool sent = false;
  for (int attempt = 0; attempt < 2 && !sent; ++attempt) {
    if (pid_ < 0) {
      try {
        start();
      } catch (const std::exception& e) {
        return fail(MeasureError::kRuntimeError,
                    std::string("cannot start the runner: ") + e.what() +
                        " (set KTUNE_RUNNER to the ktune-runner executable)");
      }
    }
    // Whatever the previous candidate printed after its reply is not ours.
    read_available(stderr_from_child_, [](const char*, size_t) {});
    sent = write_to_pipe(to_child_, request_line);
    if (!sent) stop();
  }
  if (!sent) return fail(MeasureError::kRuntimeError, "the runner exits before reading a request");

  detail::BoundedText child_stderr(1024, 2048);
  auto with_stderr = [&](std::string message) {
    std::string text = child_stderr.text();
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    if (!text.empty()) message += "; runner stderr:\n" + text;
    return message;
  };
  auto deadline_after = [](double s) {
    return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  bool started = false;
  bool stderr_open = true;
  auto deadline = deadline_after(std::max(request.options.run_timeout_s, kReferenceTimeoutS));
  std::string pending;  // protocol bytes not yet ending in a newline
  for (;;) {
    // Handle every complete line received so far.
    for (size_t eol; (eol = pending.find('\n')) != std::string::npos;) {
      std::string line = pending.substr(0, eol);
      pending.erase(0, eol + 1);
      try {
        nlohmann::json reply = nlohmann::json::parse(line);
        if (reply.value("event", "") == "started") {
          started = true;
          deadline = deadline_after(request.options.run_timeout_s);
          continue;
        }
        detail::result_from_json(reply, result);
      } catch (const std::exception& e) {
        stop();
        return fail(MeasureError::kRuntimeError,
                    with_stderr("runner protocol error: " + std::string(e.what()) + " in '" +
                                line.substr(0, 200) + "'"));
      }
      // A kernel that computes wrong values may also have written out of
      // bounds, over the runner's own memory: the next candidate gets a
      // fresh runner.
      if (result.error == MeasureError::kWrongAnswer) stop();
      // A CUDA error can leave the context unusable for good ("sticky"):
      // after a failed GPU candidate the next one gets a fresh runner too.
      if (request.cuda.enabled && result.error != MeasureError::kNone) stop();
      result.run_seconds = std::chrono::duration<double>(Clock::now() - start_time).count();
      return result;
    }

    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      stop();
      return fail(MeasureError::kRunTimeout,
                  with_stderr(started ? "run timed out after " +
                                            format_seconds(request.options.run_timeout_s)
                                      : "the runner timed out preparing the workload's "
                                        "reference after " +
                                            format_seconds(kReferenceTimeoutS)));
    }
    pollfd fds[2] = {{from_child_, POLLIN, 0}, {stderr_open ? stderr_from_child_ : -1, POLLIN, 0}};
    int ready = poll(fds, 2, static_cast<int>(std::min<int64_t>(left.count() + 1, 1 << 30)));
    if (ready < 0 && errno != EINTR) {
      stop();
      return fail(MeasureError::kRuntimeError, std::string("poll failed: ") + strerror(errno));
    }
    auto read_stderr = [&] {
      stderr_open = stderr_open && read_available(stderr_from_child_, [&](const char* d, size_t n) {
        child_stderr.append(d, n);
      });
    };
    read_stderr();
    bool protocol_open = read_available(from_child_, [&](const char* d, size_t n) {
      pending.append(d, n);
    });
    if (!protocol_open && pending.find('\n') == std::string::npos) {
      // The runner died. Reap it first so that its stderr is complete and its
      // wait status names the signal.
      int status = detail::reap_or_kill(pid_, kExitGraceS);
      pid_ = -1;
      read_stderr();
      stop();
      return fail(MeasureError::kRuntimeError,
                  with_stderr("runner crashed: " + detail::describe_wait_status(status)));
    }
  }
}

std::string RunnerProcess::default_runner_path() {
  if (const char* env = std::getenv("KTUNE_RUNNER"); env && *env) return env;
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    std::string beside = (self.parent_path() / "ktune-runner").string();
    if (is_executable(beside)) return beside;
  }
  if (is_executable(KTUNE_RUNNER_BUILD_PATH)) return KTUNE_RUNNER_BUILD_PATH;
  return KTUNE_RUNNER_INSTALL_PATH;
}

}  // namespace ktune
