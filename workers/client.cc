#include "workers/client.h"

#include <chrono>
#include <fstream>
#include <sstream>

#include "schedule_space/error.h"

namespace ktune {

std::string read_text_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + what + " " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::shared_ptr<grpc::Channel> make_channel(const std::string& address, const ClientTls& tls) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  if (!tls.enabled()) return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = read_text_file(tls.ca_file, "TLS CA file");
  if (!tls.cert_file.empty()) ssl.pem_cert_chain = read_text_file(tls.cert_file, "TLS certificate");
  if (!tls.key_file.empty()) ssl.pem_private_key = read_text_file(tls.key_file, "TLS key");
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(ssl), args);
}

void prepare_context(grpc::ClientContext& context, const std::string& token, double timeout_s) {
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
}

std::string status_text(const grpc::Status& status) {
  static const char* names[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                                "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                                "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  const int code = static_cast<int>(status.error_code());
  std::string name = code >= 0 && code <= 16 ? names[code] : std::to_string(code);
  return name + ": " + status.error_message();
}

}  // namespace ktune
