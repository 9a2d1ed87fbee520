// Real processes on loopback for the farm tests: `ktune daemon` and `ktune
// worker` started as children (their output in files of a scratch folder),
// a free port, and the clients run as commands.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/ktune_command.h"
#include "tests/scratch_dir.h"

namespace ktune::testing {

using namespace std::chrono_literals;

inline const std::string kKtune = std::string(KTUNE_BIN_DIR) + "/ktune";

inline int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// A background ktune process; its stdout and stderr go to files. in_child
// runs in the child just before exec (resource limits, signal dispositions).
class Process {
 public:
  Process(const std::filesystem::path& dir, const std::string& name, std::vector<std::string> args,
          const std::map<std::string, std::string>& env = {}, const std::function<void()>& in_child = {})
      : log_(dir / (name + ".log")) {
    args.insert(args.begin(), kKtune);
    pid_ = fork();
    if (pid_ == 0) {
      int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      setenv("KTUNE_CACHE_DIR", (dir / "cache").c_str(), 1);
      unsetenv("KTUNE_TOKEN");
      for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
      if (in_child) in_child();
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(kKtune.c_str(), argv.data());
      _exit(127);
    }
  }
  ~Process() {
    if (running()) kill(SIGKILL);
  }
  bool running() {
    if (pid_ <= 0 || exited_) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return false;
    }
    return true;
  }
  void kill(int sig) {
    if (pid_ > 0 && !exited_) ::kill(pid_, sig);
    if (sig == SIGKILL) wait();
  }
  int wait() {
    if (!exited_) {
      int status = 0;
      waitpid(pid_, &status, 0);
      exited_ = true;
      code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    return code_;
  }
  std::string log() const { return testing::read_file(log_); }
  pid_t pid() const { return pid_; }

 private:
  std::filesystem::path log_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int code_ = -1;
};

inline bool eventually(const std::function<bool()>& done, std::chrono::seconds limit = 120s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return done();
}

// A daemon on a free loopback port with its database in a scratch folder,
// and workers and clients for it.
class FarmFixture : public ::testing::Test {
 protected:
  explicit FarmFixture(const std::string& name = "ktune_farm")
      : dir_(name), port_(free_port()), address_("127.0.0.1:" + std::to_string(port_)) {}

  std::unique_ptr<Process> start_daemon(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"daemon", "--listen", address_, "--db", db_path(), "--lease-timeout", "2",
                                     "--heartbeat", "0.5"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto p = std::make_unique<Process>(dir_.path(), "daemon", args);
    EXPECT_TRUE(eventually([&] { return p->log().find("listening on") != std::string::npos || !p->running(); }, 30s));
    EXPECT_TRUE(p->running()) << p->log();
    return p;
  }
  std::unique_ptr<Process> start_worker(const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"worker", "--daemon", address_, "--threads", "1", "--name", name};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<Process>(dir_.path(), name, args);
  }
  CommandOutput client(std::vector<std::string> args) {
    args.push_back("--daemon");
    args.push_back(address_);
    return run_ktune(dir_.path(), std::move(args));
  }
  std::string db_path() const { return (dir_ / "farm.db").string(); }

  // This machine's device key with one thread, as the workers derive it.
  std::string device_key() {
    CommandOutput out = run_ktune(dir_.path(), {"space", "--op", "matmul(m=8,n=8,k=8)", "--threads", "1", "--format", "json"});
    auto j = nlohmann::json::parse(out.out);
    return j.at("device_key").get<std::string>();
  }

  ScratchDir dir_;
  int port_;
  std::string address_;
};

}  // namespace ktune::testing
