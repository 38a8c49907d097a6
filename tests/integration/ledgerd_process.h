// Integration-test harness: a real `ledgerd` child process on a temporary
// data directory, and a small synchronous gRPC client for it.
//
// LedgerdProcess forks and execs the ledgerd binary (LEDGERD_PATH, set by
// CMake) as `ledgerd --data <tmp>/data --listen 127.0.0.1:0`, reads its
// stdout until the "ledgerd listening on HOST:PORT" line and keeps draining
// it afterwards; stderr goes to <tmp>/stderr.log and is quoted in every
// start-up or shutdown failure. The temporary directory lives as long as the
// LedgerdProcess, so Restart() and Kill() + Start() reuse the same ledger.
//
// Thread contract: LedgerdProcess is driven from one thread. LedgerClient is
// a thin wrapper over generated stubs; one client may be used from several
// threads (gRPC stubs are thread-safe), but tests usually give each thread
// its own.
#ifndef TESTS_INTEGRATION_LEDGERD_PROCESS_H_
#define TESTS_INTEGRATION_LEDGERD_PROCESS_H_

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/v1/events.pb.h"
#include "ledger/v1/ledger_service.grpc.pb.h"
#include "ledger/v1/record.pb.h"

namespace ledger::testing {

class LedgerdProcess {
 public:
  LedgerdProcess();   // creates the temporary directory; does not start
  ~LedgerdProcess();  // SIGKILL if still running; removes the directory

  LedgerdProcess(const LedgerdProcess&) = delete;
  LedgerdProcess& operator=(const LedgerdProcess&) = delete;

  // Starts ledgerd on data_dir() and waits (bounded) for it to listen.
  // The error says why, quoting ledgerd's stderr, if it exits or hangs.
  absl::Status Start();
  // SIGTERM, then waits (bounded) for it to exit: its exit code. An error if
  // it was killed by a signal or did not stop in time (it is then killed).
  absl::StatusOr<int> Stop();
  // SIGKILL and reap (a crash, as far as the ledger can tell).
  absl::Status Kill();
  // Stop() (which must exit 0), then Start() on the same data directory.
  absl::Status Restart();

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // HOST:PORT from the "listening on" line of the current run.
  const std::string& address() const { return address_; }
  const std::string& data_dir() const { return data_dir_; }
  // Everything ledgerd wrote to stderr so far (all runs).
  std::string Stderr() const;
  // Everything the current (or last) run wrote to stdout so far.
  std::string Stdout() const;

 private:
  void DrainStdout();  // drain thread: reads until EOF
  // Waits until stdout reaches EOF or `timeout_ms` passes; true on EOF.
  bool WaitForStdoutEof(int timeout_ms);
  absl::StatusOr<int> Reap();  // waitpid (blocking) and decode the status
  void JoinDrain();

  std::string root_;      // the temporary directory
  std::string data_dir_;  // root_/data
  std::string stderr_path_;
  pid_t pid_ = -1;
  std::string address_;
  int stdout_fd_ = -1;
  std::thread drain_;

  mutable std::mutex mu_;
  std::condition_variable eof_cv_;
  std::string stdout_;  // guarded by mu_
  bool eof_ = false;    // guarded by mu_
};

// An organisation as a test knows it: its id and private keys.
struct Org {
  std::string id;
  std::vector<crypto::PrivateKey> keys;
  const crypto::PrivateKey& key() const { return keys.front(); }
};

// The first registrar of a data directory: org id `registrar`, with the key
// ledgerd wrote to DIR/registrar.key.pem.
absl::StatusOr<Org> LoadRegistrar(const std::string& data_dir);

// A gRPC status as an absl::Status whose message is services::Describe's
// (code, reason and message).
absl::Status ToAbsl(const grpc::Status& status);

class LedgerClient {
 public:
  // `own_connection`: a TCP connection not shared with other channels of
  // this process (each of several concurrent clients gets its own).
  // `wait_for_ready`: calls wait (within their deadline) for the connection
  // instead of failing at once when a connection attempt fails, which a
  // loaded machine makes happen now and then. Off only for clients that
  // expect the server to die and handle UNAVAILABLE themselves.
  explicit LedgerClient(const std::string& address, bool own_connection = false,
                        bool wait_for_ready = true);

  // Fetches the ledger info (ledger id, origin, operator key) that NewBody
  // and OpenCheckpoint use. Call once before them.
  absl::Status Init();

  v1::LedgerService::Stub& ledger() { return *ledger_; }
  v1::AuditService::Stub& audit() { return *audit_; }
  const v1::GetLedgerInfoResponse& info() const { return info_; }
  const crypto::PublicKey& operator_key() const { return *operator_key_; }

  absl::StatusOr<v1::GetLedgerInfoResponse> GetLedgerInfo();
  absl::StatusOr<uint64_t> TreeSize();

  // An EventBody for this ledger by `author` with a fresh idempotency key.
  v1::EventBody NewBody(const std::string& author) const;

  grpc::Status Append(const v1::SignedEvent& event, v1::AppendResponse* response);
  // Seals `body` with `key` and appends it.
  grpc::Status AppendEvent(const v1::EventBody& body, const crypto::PrivateKey& key,
                           v1::AppendResponse* response);
  grpc::Status AppendBatch(const std::vector<v1::SignedEvent>& events,
                           v1::AppendBatchResponse* response);

  // `registrar` registers `org_id` with `key_count` fresh keys.
  absl::StatusOr<Org> RegisterOrg(const Org& registrar, const std::string& org_id,
                                  int key_count = 1, v1::Receipt* receipt = nullptr);
  // A KeyAdded event for `org_id` adding `new_key`, signed by `signer`.
  v1::SignedEvent KeyAddedEvent(const Org& signer, const std::string& org_id,
                                const crypto::PrivateKey& new_key) const;

  grpc::Status Get(uint64_t position, v1::GetResponse* response);
  absl::StatusOr<v1::RecordEntry> Get(uint64_t position);
  // GetCheckpoint(tree_size; 0 = latest), its note opened (signature
  // checked) with the operator key and origin from Init().
  absl::StatusOr<merkle::Checkpoint> GetCheckpoint(uint64_t tree_size = 0,
                                                   std::string* note = nullptr);
  // Opens a checkpoint note (e.g. of a receipt) with the operator key.
  absl::StatusOr<merkle::Checkpoint> OpenCheckpoint(const std::string& note) const;
  grpc::Status GetInclusionProof(uint64_t position, uint64_t tree_size,
                                 v1::InclusionProofResponse* response);
  // Fetches the proof of `position` in the tree of checkpoint.size and
  // verifies it for HashLeaf(record) against checkpoint.root.
  absl::Status VerifyIncluded(uint64_t position, const std::string& record,
                              const merkle::Checkpoint& checkpoint);

  // Deadline (and wait-for-ready) of every unary call made through this client.
  static constexpr int kCallTimeoutSeconds = 30;
  void PrepareCall(grpc::ClientContext* context) const;

 private:
  bool wait_for_ready_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::LedgerService::Stub> ledger_;
  std::unique_ptr<v1::AuditService::Stub> audit_;
  v1::GetLedgerInfoResponse info_;
  std::optional<crypto::PublicKey> operator_key_;
};

// Converts a merkle::Hash-sized byte string; fails if not 32 bytes.
absl::StatusOr<std::vector<merkle::Hash>> HashesFromBytes(
    const google::protobuf::RepeatedPtrField<std::string>& bytes);

}  // namespace ledger::testing

#endif  // TESTS_INTEGRATION_LEDGERD_PROCESS_H_
