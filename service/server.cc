#include "service/server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cmath>

#include "db/jsonl.h"
#include "proto/ktune.grpc.pb.h"
#include "workers/client.h"
#include "workers/convert.h"

namespace ktune {

namespace {

constexpr int kMaxLeaseItems = 1024;
constexpr int kMaxReportResults = 4096;
constexpr size_t kMaxRegisterBytes = 64 << 10;  // a device description is a few hundred bytes
// Server threads beyond max_calls: gRPC's pollers, and calls turned away.
constexpr int kSpareThreads = 32;

grpc::Status to_status(const FarmError& e) {
  switch (e.code) {
    case FarmError::kInvalidArgument: return {grpc::StatusCode::INVALID_ARGUMENT, e.what()};
    case FarmError::kNotFound: return {grpc::StatusCode::NOT_FOUND, e.what()};
    case FarmError::kFailedPrecondition: return {grpc::StatusCode::FAILED_PRECONDITION, e.what()};
    case FarmError::kUnavailable: return {grpc::StatusCode::UNAVAILABLE, e.what()};
    case FarmError::kResourceExhausted: return {grpc::StatusCode::RESOURCE_EXHAUSTED, e.what()};
  }
  return {grpc::StatusCode::INTERNAL, e.what()};
}

// Same time whatever the first wrong byte.
bool same_secret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

grpc::Status invalid(const std::string& why) { return {grpc::StatusCode::INVALID_ARGUMENT, why}; }

}  // namespace

// Counts the calls being served against ServerOptions::max_calls.
class DaemonServer::CallLimit {
 public:
  explicit CallLimit(int max) : max_(max) {}
  // False (and nothing taken) when max calls are being served already.
  bool enter() {
    if (active_.fetch_add(1) >= max_) {
      active_.fetch_sub(1);
      return false;
    }
    return true;
  }
  void leave() { active_.fetch_sub(1); }
  int max() const { return max_; }

 private:
  std::atomic<int> active_{0};
  const int max_;
};

namespace {

// Runs a handler: the call limit and the token first, then f; errors
// become statuses.
template <typename F>
grpc::Status guarded(grpc::ServerContext* ctx, const std::string& token, DaemonServer::CallLimit& calls, F&& f) {
  if (!calls.enter()) {
    spdlog::warn("refused a call from {}: {} calls being served (--max-calls)", ctx->peer(), calls.max());
    return {grpc::StatusCode::RESOURCE_EXHAUSTED,
            "the daemon is serving " + std::to_string(calls.max()) +
                " calls at once (its --max-calls limit): try again shortly, or restart it with a larger --max-calls"};
  }
  struct Leave {
    DaemonServer::CallLimit& calls;
    ~Leave() { calls.leave(); }
  } leave{calls};
  if (!token.empty()) {
    auto it = ctx->client_metadata().find("authorization");
    const std::string given = it == ctx->client_metadata().end() ? "" : std::string(it->second.data(), it->second.size());
    if (!same_secret(given, "Bearer " + token)) {
      spdlog::warn("refused a call from {}: {}", ctx->peer(),
                   it == ctx->client_metadata().end() ? "no token" : "wrong token");
      return {grpc::StatusCode::UNAUTHENTICATED,
              it == ctx->client_metadata().end() ? "this daemon needs a token (--token or KTUNE_TOKEN)"
                                                 : "wrong token"};
    }
  }
  try {
    return f();
  } catch (const FarmError& e) {
    return to_status(e);
  } catch (const Error& e) {
    return invalid(e.what());
  } catch (const std::exception& e) {
    spdlog::error("internal error serving {}: {}", ctx->peer(), e.what());
    return {grpc::StatusCode::INTERNAL, e.what()};
  }
}

}  // namespace

bool is_loopback_address(const std::string& address) {
  std::string host = address;
  if (!host.empty() && host[0] == '[') {
    host = host.substr(1, host.find(']') == std::string::npos ? std::string::npos : host.find(']') - 1);
  } else if (auto colon = host.rfind(':'); colon != std::string::npos) {
    host = host.substr(0, colon);
  }
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

class DaemonServer::FarmService final : public v1::Farm::Service {
 public:
  FarmService(Database& db, DeviceFarm& farm, std::string token, CallLimit& calls)
      : db_(db), farm_(farm), token_(std::move(token)), calls_(calls) {}

  grpc::Status Register(grpc::ServerContext* ctx, const v1::RegisterRequest* req, v1::RegisterReply* reply) override {
    return guarded(ctx, token_, calls_, [&] {
      if (req->ByteSizeLong() > kMaxRegisterBytes) {
        return invalid("register: the request is " + std::to_string(req->ByteSizeLong()) + " bytes; at most " +
                       std::to_string(kMaxRegisterBytes));
      }
      *reply = farm_.register_worker(*req);
      const std::string key = wire::from_proto(req->device().target()).device_key();
      // Kept for a restart; a worker is not refused because the disk is full.
      try {
        if (std::optional<v1::DeviceInfo> d = farm_.device(key)) db_.set_device(key, wire::to_json(*d));
      } catch (const Error& e) {
        spdlog::error("cannot store the description of device key {}: {}", key, e.what());
      }
      return grpc::Status::OK;  // the farm logs the registration
    });
  }

  grpc::Status Lease(grpc::ServerContext* ctx, const v1::LeaseRequest* req, v1::LeaseReply* reply) override {
    return guarded(ctx, token_, calls_, [&] {
      if (req->worker_id().empty()) return invalid("lease: worker_id is empty (register first)");
      if (req->max_items() < 1 || req->max_items() > kMaxLeaseItems) {
        return invalid("lease: max_items must be in 1.." + std::to_string(kMaxLeaseItems));
      }
      if (req->wait_ms() < 0 || req->wait_ms() > 30000) return invalid("lease: wait_ms must be in 0..30000");
      for (auto& item : farm_.lease(req->worker_id(), req->max_items(), std::chrono::milliseconds(req->wait_ms()))) {
        *reply->add_items() = std::move(item);
      }
      return grpc::Status::OK;
    });
  }

  grpc::Status Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* req, v1::HeartbeatReply* reply) override {
    return guarded(ctx, token_, calls_, [&] {
      if (req->worker_id().empty()) return invalid("heartbeat: worker_id is empty");
      std::vector<std::string> ids(req->item_ids().begin(), req->item_ids().end());
      for (auto& id : farm_.heartbeat(req->worker_id(), ids)) reply->add_cancelled_item_ids(std::move(id));
      return grpc::Status::OK;
    });
  }

  grpc::Status Report(grpc::ServerContext* ctx, const v1::ReportRequest* req, v1::ReportReply* reply) override {
    return guarded(ctx, token_, calls_, [&] {
      if (req->worker_id().empty()) return invalid("report: worker_id is empty");
      if (req->results_size() > kMaxReportResults) {
        return invalid("report: " + std::to_string(req->results_size()) + " results; at most " +
                       std::to_string(kMaxReportResults));
      }
      for (const auto& r : req->results()) {
        if (r.item_id().empty()) return invalid("report: a result has no item_id");
        for (double c : r.result().costs()) {
          if (!std::isfinite(c) || c < 0) return invalid("report: item " + r.item_id() + " has a cost that is not a finite non-negative number");
        }
      }
      std::vector<v1::ItemResult> results(req->results().begin(), req->results().end());
      *reply = farm_.report(req->worker_id(), results);
      return grpc::Status::OK;
    });
  }

 private:
  Database& db_;
  DeviceFarm& farm_;
  std::string token_;
  CallLimit& calls_;
};

class DaemonServer::TuningService final : public v1::Tuning::Service {
 public:
  TuningService(Database& db, JobManager& jobs, DeviceFarm& farm, std::string token, CallLimit& calls)
      : db_(db), jobs_(jobs), farm_(farm), token_(std::move(token)), calls_(calls) {}

  grpc::Status Submit(grpc::ServerContext* ctx, const v1::SubmitRequest* req, v1::SubmitReply* reply) override {
    return guarded(ctx, token_, calls_, [&] {
      reply->set_job_id(jobs_.submit(req->spec()));
      spdlog::debug("job {} submitted by {}", reply->job_id(), ctx->peer());  // JobManager logs the job
      return grpc::Status::OK;
    });
  }
  grpc::Status GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* req, v1::JobStatus* reply) override {
    return guarded(ctx, token_, calls_, [&] {
      if (req->job_id().empty()) return invalid("job_id is empty");
      *reply = jobs_.status(req->job_id());
      return grpc::Status::OK;
    });
  }
  grpc::Status ListJobs(grpc::ServerContext* ctx, const v1::ListJobsRequest*, v1::ListJobsReply* reply) override {
    return guarded(ctx, token_, calls_, [&] {
      for (auto& j : jobs_.list()) *reply->add_jobs() = std::move(j);
      return grpc::Status::OK;
    });
  }
  grpc::Status CancelJob(grpc::ServerContext* ctx, const v1::CancelJobRequest* req, v1::CancelJobReply* reply) override {
    return guarded(ctx, token_, calls_, [&] {
      if (req->job_id().empty()) return invalid("job_id is empty");
      *reply->mutable_job() = jobs_.cancel(req->job_id());
      spdlog::debug("job {} cancelled by {}", req->job_id(), ctx->peer());  // JobManager logs the job
      return grpc::Status::OK;
    });
  }
  grpc::Status ListWorkers(grpc::ServerContext* ctx, const v1::ListWorkersRequest*, v1::ListWorkersReply* reply) override {
    return guarded(ctx, token_, calls_, [&] {
      for (auto& w : farm_.workers()) *reply->add_workers() = std::move(w);
      return grpc::Status::OK;
    });
  }

  // A job's or a device key's records as JSONL lines, in chunks well under
  // the message limit.
  grpc::Status Pull(grpc::ServerContext* ctx, const v1::PullRequest* req,
                    grpc::ServerWriter<v1::PullChunk>* writer) override {
    return guarded(ctx, token_, calls_, [&] {
      if (req->job_id().empty() == req->device_key().empty()) return invalid("give a job_id or a device_key");
      RecordFilter filter;
      filter.job = req->job_id();
      if (!req->job_id().empty()) {
        std::optional<JobRow> row = db_.job(req->job_id());
        if (!row) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no job '" + req->job_id() + "'");
        v1::JobSpec spec;
        wire::from_json(row->spec, &spec, "job " + row->id + "'s spec");
        filter.device_key = spec.device_key();
      } else {
        filter.device_key = req->device_key();
      }
      const std::vector<std::string> lines = jsonl_lines(db_, filter);
      v1::PullChunk chunk;
      size_t bytes = 0;
      for (const std::string& line : lines) {
        chunk.add_lines(line);
        bytes += line.size();
        if (bytes >= (1u << 20)) {
          if (!writer->Write(chunk)) return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
          chunk.Clear();
          bytes = 0;
        }
      }
      if (chunk.lines_size() > 0 && !writer->Write(chunk)) {
        return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
      }
      spdlog::info("{} records of {} pulled by {}", lines.size(),
                   req->job_id().empty() ? "device key " + req->device_key() : "job " + req->job_id(), ctx->peer());
      return grpc::Status::OK;
    });
  }

 private:
  Database& db_;
  JobManager& jobs_;
  DeviceFarm& farm_;
  std::string token_;
  CallLimit& calls_;
};

DaemonServer::DaemonServer(Database& db, DeviceFarm& farm, JobManager& jobs, const ServerOptions& options)
    : calls_(std::make_unique<CallLimit>(options.max_calls)),
      farm_service_(std::make_unique<FarmService>(db, farm, options.token, *calls_)),
      tuning_service_(std::make_unique<TuningService>(db, jobs, farm, options.token, *calls_)) {
  if (options.max_calls < 1) throw Error("the daemon's call limit must be >= 1");
  if (!is_loopback_address(options.listen) && options.token.empty()) {
    throw Error("listening on " + options.listen +
                " (not loopback) needs a token: give --token or set KTUNE_TOKEN, so that only your workers and "
                "clients can use the daemon");
  }
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (!options.tls_cert.empty() || !options.tls_key.empty()) {
    if (options.tls_cert.empty() || options.tls_key.empty()) throw Error("TLS needs both --tls-cert and --tls-key");
    grpc::SslServerCredentialsOptions ssl(options.tls_ca.empty()
                                              ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                              : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    ssl.pem_key_cert_pairs.push_back({read_text_file(options.tls_key, "TLS key"),
                                      read_text_file(options.tls_cert, "TLS certificate")});
    if (!options.tls_ca.empty()) ssl.pem_root_certs = read_text_file(options.tls_ca, "TLS CA file");
    creds = grpc::SslServerCredentials(ssl);
  } else {
    if (!options.tls_ca.empty()) throw Error("--tls-ca needs --tls-cert and --tls-key");
    creds = grpc::InsecureServerCredentials();
  }
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, creds, &port_);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(16 << 20);
  // A backstop under the call limit: every call being served holds a thread.
  grpc::ResourceQuota quota("ktune-daemon");
  quota.SetMaxThreads(options.max_calls + kSpareThreads);
  builder.SetResourceQuota(quota);
  builder.RegisterService(farm_service_.get());
  builder.RegisterService(tuning_service_.get());
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) throw Error("cannot listen on " + options.listen + " (address in use or invalid?)");
}

DaemonServer::~DaemonServer() { shutdown(); }

void DaemonServer::shutdown() {
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

void DaemonServer::wait() {
  if (server_) server_->Wait();
}

}  // namespace ktune
