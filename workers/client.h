// gRPC client plumbing shared by `ktune worker` and the client commands:
// channels (plain or TLS), the token, and turning a status into text.
#pragma once

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

namespace ktune {

struct ClientTls {
  std::string ca_file;    // PEM roots to verify the daemon; set: use TLS
  std::string cert_file;  // optional client certificate (mutual TLS)
  std::string key_file;
  bool enabled() const { return !ca_file.empty(); }
};

// Throws ktune::Error if a TLS file cannot be read.
std::shared_ptr<grpc::Channel> make_channel(const std::string& address, const ClientTls& tls = {});
// The call's metadata carries the token ("authorization: Bearer T") if set.
void prepare_context(grpc::ClientContext& context, const std::string& token, double timeout_s);
// "UNAVAILABLE: failed to connect to all addresses".
std::string status_text(const grpc::Status& status);
// Reads a whole file; throws ktune::Error naming it.
std::string read_text_file(const std::string& path, const std::string& what);

}  // namespace ktune
