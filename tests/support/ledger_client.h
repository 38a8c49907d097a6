// Integration-test client of a real ledgerd (tests/support/ledgerd_process.h):
// a small synchronous gRPC client, the organisations a test signs as, and
// gRPC status helpers.
//
// Thread contract: LedgerClient is a thin wrapper over generated stubs; one
// client may be used from several threads (gRPC stubs are thread-safe), but
// tests usually give each thread its own.
#ifndef TESTS_SUPPORT_LEDGER_CLIENT_H_
#define TESTS_SUPPORT_LEDGER_CLIENT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/v1/events.pb.h"
#include "ledger/v1/ledger_service.grpc.pb.h"
#include "ledger/v1/record.pb.h"
#include "services/grpc_status.h"

// Fails the test (and returns) unless the grpc::Status `expr` is OK, printing
// services::Describe of it (code, reason and message).
#define ASSERT_GRPC_OK(expr)                                                   \
  do {                                                                         \
    const ::grpc::Status _status = (expr);                                     \
    ASSERT_TRUE(_status.ok()) << #expr << ": " << ::ledger::services::Describe(_status); \
  } while (0)

namespace ledger::testing {

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
  // `fixed_stream_window`: HTTP/2 flow control keeps each stream's receive
  // window at gRPC's initial size (no BDP probing), so a reader that stops
  // reading holds the server back after a few tens of KiB, however fast the
  // connection (implies `own_connection`).
  explicit LedgerClient(const std::string& address, bool own_connection = false,
                        bool wait_for_ready = true, bool fixed_stream_window = false);

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

#endif  // TESTS_SUPPORT_LEDGER_CLIENT_H_
