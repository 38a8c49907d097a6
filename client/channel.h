// Channels from a client to ledgerd, and the policy of each call on them.
//
// Transport: plaintext (InsecureChannelCredentials) unless ChannelOptions::tls
// is set (LoadTls): then TLS, the server checked against the given CA, and,
// with a client certificate and key, mutual TLS. Every client (ledgerctl, the
// benchmarks) builds its channels here and takes the same three flags:
// --tls-ca FILE, --tls-cert FILE, --tls-key FILE.
//
// Two ways to treat the connection, both used on purpose:
// - wait for it (kWaitForReady): a call waits, within its deadline, until a
//   connection is up, retrying failed connection attempts with gRPC's
//   backoff. Set-up calls and interactive commands use it, so a loaded
//   machine's occasional failed connect is not an error.
// - fail fast (kFailFast): a call fails at once with UNAVAILABLE if there is
//   no connection. Measured calls use it, so a server that dies mid-run ends
//   the run instead of stalling every remaining call for its deadline.
// Nothing else is retried: a call that reached the server is never resent
// here (an Append retry must be byte-identical; that is the caller's choice).
//
// Thread contract: free functions; a channel is shared by any number of
// threads (gRPC's contract).
#ifndef CLIENT_CHANNEL_H_
#define CLIENT_CHANNEL_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"

namespace ledger::client {

// TLS for a client: PEM text, read once by LoadTls.
struct TlsOptions {
  bool enabled = false;
  std::string ca_pem;    // roots the server's certificate must chain to ("": gRPC's default roots)
  std::string cert_pem;  // client certificate chain for mutual TLS ("": none)
  std::string key_pem;   // its private key
};

// Reads the files behind --tls-ca, --tls-cert and --tls-key (each may be "").
// All empty: TLS off. --tls-cert and --tls-key go together. Errors name the
// flag and the file: InvalidArgument for a usage mistake (cert without key),
// NotFound for a file that cannot be read or holds no PEM block.
absl::StatusOr<TlsOptions> LoadTls(const std::string& ca_file, const std::string& cert_file,
                                   const std::string& key_file);

struct ChannelOptions {
  // Largest message accepted / sent, in bytes; 0 keeps gRPC's default.
  int max_receive_message_bytes = 0;
  int max_send_message_bytes = 0;
  // True: this channel gets its own TCP connection instead of sharing one
  // with other channels to the same server (a load generator spreads its
  // clients over several connections). `connection_index` tells such
  // channels apart.
  bool own_connection = false;
  int connection_index = 0;
  TlsOptions tls;
};

// A channel to `server` (HOST:PORT). Connects lazily, on the first call or
// WaitForConnection.
std::shared_ptr<grpc::Channel> NewChannel(const std::string& server,
                                          const ChannelOptions& options = {});

// How long an interactive client (ledgerctl) waits for its first connection
// before its first call. gRPC calls fail at once when a connection attempt
// fails, and on a loaded machine one now and then does (then succeeds a
// backoff later); a server that is really down still gets its own clear
// UNAVAILABLE error from the first call after this.
inline constexpr std::chrono::seconds kInteractiveConnectWait(3);

// Connects `channel`, waiting up to `timeout`; false if it is not connected
// by then.
bool WaitForConnection(grpc::Channel& channel, std::chrono::milliseconds timeout);

// Trailing metadata key under which ledgerd's GovernanceService reports how
// long the call took at the server: decimal nanoseconds from the handler's
// entry to its Finish (worker-queue wait included; network and gRPC framing
// excluded). ledger_readbench prints it beside the client-side latency.
inline constexpr char kServerTimingMetadata[] = "server-timing-ns";

enum class CallPolicy { kWaitForReady, kFailFast };

// Sets the call's deadline (now + `timeout`) and its policy (above).
void PrepareCall(grpc::ClientContext& context, std::chrono::milliseconds timeout,
                 CallPolicy policy);

}  // namespace ledger::client

#endif  // CLIENT_CHANNEL_H_
