// The tuning daemon's gRPC server: the Farm service (workers) and the
// Tuning service (clients) over one DeviceFarm, JobManager and database.
//
// Listens on loopback unless told otherwise, and refuses to listen on any
// other address without a token. With a token every call must carry
// "authorization: Bearer TOKEN" or is refused with UNAUTHENTICATED. TLS
// when a certificate and key are given (and client certificates are
// required when a CA is given too). Requests are size-limited and
// validated: a bad one gets INVALID_ARGUMENT or NOT_FOUND with a message;
// one past a limit (calls at once, jobs, measurement items, workers) gets
// RESOURCE_EXHAUSTED naming the limit and the daemon flag that raises it.
#pragma once

#include <memory>
#include <string>

#include "db/database.h"
#include "service/jobs.h"
#include "workers/device_farm.h"

namespace grpc {
class Server;
}

namespace ktune {

struct ServerOptions {
  std::string listen = "127.0.0.1:7117";
  std::string token;
  std::string tls_cert, tls_key, tls_ca;  // PEM files
  int max_message_bytes = 4 << 20;  // a larger request is refused by gRPC (RESOURCE_EXHAUSTED)
  // Calls served at once (workers' leases wait in one each); more are
  // answered RESOURCE_EXHAUSTED at once, and the server's threads are
  // capped a little above it.
  int max_calls = 512;
};

// True for 127.0.0.0/8, ::1 and localhost (HOST:PORT or [HOST]:PORT).
bool is_loopback_address(const std::string& address);

class DaemonServer {
 public:
  // Starts serving; throws ktune::Error if it cannot listen or the options
  // are unsafe (a non-loopback address without a token).
  DaemonServer(Database& db, DeviceFarm& farm, JobManager& jobs, const ServerOptions& options);
  ~DaemonServer();
  int port() const { return port_; }  // the bound port (useful with :0)
  void shutdown();  // stops accepting calls and waits for running ones
  void wait();

  class CallLimit;  // calls being served against max_calls (server.cc)

 private:
  class FarmService;
  class TuningService;
  std::unique_ptr<CallLimit> calls_;
  std::unique_ptr<FarmService> farm_service_;
  std::unique_ptr<TuningService> tuning_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace ktune
