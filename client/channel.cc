#include "client/channel.h"

#include <fstream>
#include <iterator>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace ledger::client {
namespace {

// The file's text, checked to hold a PEM block; errors name `flag` and `path`.
absl::StatusOr<std::string> ReadPem(const char* flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(flag, ": cannot read ", path));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!absl::StrContains(text, "-----BEGIN ")) {
    return absl::NotFoundError(absl::StrCat(flag, ": ", path, " holds no PEM block"));
  }
  return text;
}

}  // namespace

absl::StatusOr<TlsOptions> LoadTls(const std::string& ca_file, const std::string& cert_file,
                                   const std::string& key_file) {
  TlsOptions tls;
  if (ca_file.empty() && cert_file.empty() && key_file.empty()) return tls;
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  tls.enabled = true;
  if (!ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPem("--tls-ca", ca_file);
    if (!ca.ok()) return ca.status();
    tls.ca_pem = *std::move(ca);
  }
  if (!cert_file.empty()) {
    absl::StatusOr<std::string> cert = ReadPem("--tls-cert", cert_file);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPem("--tls-key", key_file);
    if (!key.ok()) return key.status();
    tls.cert_pem = *std::move(cert);
    tls.key_pem = *std::move(key);
  }
  return tls;
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& server,
                                          const ChannelOptions& options) {
  grpc::ChannelArguments args;
  if (options.own_connection) {
    // Separate channels get separate TCP connections (no shared subchannel
    // pool); the index keeps their arguments, hence their subchannels, apart.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("ledger.client.connection", options.connection_index);
  }
  if (options.max_receive_message_bytes > 0) {
    args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  }
  if (options.max_send_message_bytes > 0) {
    args.SetMaxSendMessageSize(options.max_send_message_bytes);
  }
  if (!options.tls.enabled) {
    return grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), args);
  }
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = options.tls.ca_pem;
  ssl.pem_cert_chain = options.tls.cert_pem;
  ssl.pem_private_key = options.tls.key_pem;
  return grpc::CreateCustomChannel(server, grpc::SslCredentials(ssl), args);
}

bool WaitForConnection(grpc::Channel& channel, std::chrono::milliseconds timeout) {
  return channel.WaitForConnected(std::chrono::system_clock::now() + timeout);
}

void PrepareCall(grpc::ClientContext& context, std::chrono::milliseconds timeout,
                 CallPolicy policy) {
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  context.set_wait_for_ready(policy == CallPolicy::kWaitForReady);
}

}  // namespace ledger::client
