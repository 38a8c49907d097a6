// The ledger engine: the write path of DESIGN §5 and the reads it serves.
//
//   Submit -> decode and bound-check (caller's thread)
//          -> verify signatures (a ThreadPool, tasks of up to 16 events, a
//             batch's later chunks queued behind other submissions)
//          -> sequencer thread: idempotency, rules, positions, Merkle nodes,
//             checkpoint; many submissions form one commit group
//          -> one synced WriteBatch -> answers -> listeners notified
//          -> a group of more than 256 KiB of events is freed on the verify
//             pool, not the sequencer thread (issue 9)
//
// Thread contract: every public method is thread-safe. Completion callbacks
// run on a ledger thread (the caller's for a refusal found while decoding,
// a verify thread for a bad signature, else the sequencer) and, like
// listeners (sequencer thread), must not block.
#ifndef LEDGER_STORE_LEDGER_H_
#define LEDGER_STORE_LEDGER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "ledger/common/metrics.h"
#include "ledger/common/thread_pool.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/event/envelope.h"
#include "ledger/merkle/tree.h"
#include "ledger/rules/state.h"
#include "ledger/rules/version.h"
#include "ledger/store/store.h"
#include "ledger/v1/record.pb.h"

namespace ledger::store {

// What a brand-new ledger is created with (ignored when opening an existing one).
struct GenesisSpec {
  std::string ledger_id;
  std::string operator_id = "operator";
  std::string origin;  // checkpoint origin; default "decision-ledger/<ledger_id>"
  std::vector<v1::Registrar> registrars;
  uint32_t rules_version = rules::kLatestRulesVersion;  // older ones: tests of old logs
  int64_t identity_notice_seconds = 0;                  // 0: the rules' default
};

inline constexpr size_t kDefaultStateCacheBytes = 64 << 20;
inline constexpr size_t kDefaultKeyCacheEntries = 100000;

struct LedgerOptions {
  std::string data_dir;  // the RocksDB directory
  crypto::PrivateKey operator_key;
  std::optional<GenesisSpec> genesis{};
  // Checks submissions' signatures; shared with others (ledgerd's auditor)
  // and outliving the ledger. Null: the ledger starts its own pool of
  // `verify_threads` threads (0: one per core).
  ThreadPool* verify_pool = nullptr;
  int verify_threads = 0;
  // Ledger time source (Unix ns). Times never go backwards whatever it says.
  std::function<int64_t()> clock{};
  size_t max_group_events = 20000;
  // About how many bytes of projected-state entries, and how many public
  // keys, are held in memory; the rest are read from RocksDB when needed.
  size_t state_cache_bytes = kDefaultStateCacheBytes;
  size_t key_cache_entries = kDefaultKeyCacheEntries;
  // Submissions accepted but not yet answered (being verified or queued for
  // the sequencer); one more is refused RESOURCE_EXHAUSTED LIMIT_REACHED
  // (ledgerd --max-inflight-submissions). 0: no limit.
  size_t max_inflight_submissions = 0;
  // The same for the signed bytes those submissions hold (ledgerd
  // --max-inflight-bytes): one more that would pass it is refused, unless
  // nothing is in flight (a lone submission always fits). 0: no limit.
  size_t max_inflight_bytes = 0;
  // If set (ledgerd --metrics-listen), the ledger registers its own metrics
  // there: ledger_commit_group_records and ledger_refusals_recorded_total.
  // Outlives the ledger.
  metrics::Registry* metrics = nullptr;
};

struct SubmitResult {
  v1::Receipt receipt;
  bool replayed = false;  // identical earlier submission; original receipt
};

class Ledger {
 public:
  // Opens the ledger in options.data_dir, writing Genesis if it is new.
  // FailedPrecondition if the operator key is not this ledger's.
  static absl::StatusOr<std::unique_ptr<Ledger>> Open(LedgerOptions options);
  ~Ledger();  // Shutdown()

  using Done = absl::AnyInvocable<void(absl::StatusOr<std::vector<SubmitResult>>)>;
  // Appends 1..kMaxBatchEvents events, all or nothing, at consecutive
  // positions. `done` runs exactly once: after the commit is durable, or with
  // the refusal (see event/refusal.h; for a batch the message names the index).
  // Signed bytes identical to accepted records are answered on the caller's
  // thread from the idempotency index (their original receipts), before any
  // signature work and without taking an in-flight slot.
  void Submit(std::vector<v1::SignedEvent> events, Done done);

  // Writes the operator's RulesVersionAdopted{version} (DESIGN §4, "Logs
  // outlive releases"): the log is decided under `version` from the next
  // position on. Blocks until it is durable; its position, or the refusal
  // (FAILED_PRECONDITION UNSUPPORTED_RULES_VERSION unless it is newer than the
  // version in force and known to this release).
  absl::StatusOr<uint64_t> AdoptRulesVersion(uint32_t version);

  // Stops accepting, finishes everything already accepted, and returns when
  // the last commit is durable. Idempotent.
  void Shutdown();

  uint64_t size() const { return store_->tree_size(); }
  // Fixed after Genesis, but for rules_version (as at Open).
  const v1::LedgerInfo& info() const { return info_; }
  const crypto::PublicKey& operator_public_key() const { return operator_key_.public_key(); }

  absl::StatusOr<v1::RecordEntry> Get(uint64_t position) const;
  // The signed checkpoint note of `tree_size` (0: the latest).
  absl::StatusOr<std::string> Checkpoint(uint64_t tree_size) const;
  // The largest checkpoint witnesses have cosigned to a policy's quorum: its
  // note with the cosignature lines. NotFound if there is none yet.
  absl::StatusOr<std::string> WitnessedCheckpoint() const;
  // Keeps `cosigned_note`, the stored note of its size with cosignature lines
  // added (checked here: same text, same operator signature line), as that
  // checkpoint's note. The caller has checked the cosignatures against its
  // policy. Any thread.
  absl::Status AddCosignatures(std::string_view cosigned_note);
  absl::StatusOr<std::vector<merkle::Hash>> InclusionProof(uint64_t position, uint64_t tree_size) const;
  absl::StatusOr<std::vector<merkle::Hash>> ConsistencyProof(uint64_t from_size, uint64_t to_size) const;
  const Store& store() const { return *store_; }

  // Commit groups and records written since Open (for the operator's log).
  uint64_t groups_committed() const { return groups_committed_.load(); }
  uint64_t records_committed() const { return records_committed_.load(); }
  size_t max_inflight_bytes() const { return options_.max_inflight_bytes; }
  // Submissions accepted and not yet answered (see max_inflight_submissions).
  size_t inflight_submissions() const { return inflight_.load(); }

  // `on_commit(new_size)` runs after every commit; must not block.
  int AddListener(std::function<void(uint64_t)> on_commit);
  void RemoveListener(int id);

 private:
  struct Submission;

  explicit Ledger(LedgerOptions options);
  absl::Status Start();
  // Checks the next kVerifyChunk events of the oldest submission of the
  // author whose turn it is (a verify-pool task), and gives the turn on.
  void VerifyNextChunk() ABSL_LOCKS_EXCLUDED(verify_turns_mu_);
  // Checks the signature of event `index` (on a verify-pool thread); the last
  // event of a submission passes it to the sequencer or answers its refusal.
  void VerifyEvent(const std::shared_ptr<Submission>& submission, size_t index);
  void SequencerLoop();
  void Enqueue(std::shared_ptr<Submission> submission);
  // Decides, writes and answers one commit group. Runs on the sequencer
  // thread (or in Start, before any thread exists).
  void CommitGroup(std::vector<std::shared_ptr<Submission>> group);
  absl::StatusOr<SubmitResult> ReceiptFor(uint64_t position, bool replayed) const;
  // Drops the sequencer's references to an answered group; a large one is
  // freed on the verify pool instead (sequencer thread).
  void ReleaseOffSequencer(std::vector<std::shared_ptr<Submission>> group);
  // The replayed receipts if every envelope's signed bytes are those of an
  // accepted record (found through the idempotency index) and none is in the
  // refused-bytes index; nullopt if any is not (the sequencer decides it).
  absl::StatusOr<std::optional<std::vector<SubmitResult>>> ReplayFromIndex(
      const std::vector<Envelope>& envelopes) const;
  // After a failed commit: resumes the store and reloads the in-memory state
  // from what is on disk (the failed group may or may not have reached it).
  absl::Status RecoverFromStorageFailure();
  // Makes `key` available to the verify pool; DataLoss if its stored bytes
  // are not a public key.
  absl::Status CacheKey(const v1::KeyState& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(keys_mu_);
  // The public key `key_id` names, from the cache or the store (any thread).
  std::optional<crypto::PublicKey> VerificationKey(const std::string& key_id) ABSL_LOCKS_EXCLUDED(keys_mu_);
  // Puts the refusals of a data directory older than the refused-bytes
  // index into it (pending changes of the state).
  absl::Status IndexEarlierRefusals();
  // Loads state_, frontier_ and the latest checkpoint from the store.
  absl::Status LoadFromStore();
  // The root of the signed checkpoint of exactly `tree_size`: NotFound if
  // none was written, DataLoss if the stored note does not verify.
  absl::StatusOr<merkle::Hash> SignedRoot(uint64_t tree_size) const;
  // DataLoss unless `proof_status` is OK: a proof computed from the stored
  // tree that fails against a signed root means the tree was altered.
  static absl::Status ProofAgainstSignedRoot(const absl::Status& proof_status, uint64_t tree_size);

  LedgerOptions options_;
  crypto::PrivateKey operator_key_;
  std::unique_ptr<Store> store_;
  v1::LedgerInfo info_;

  // Sequencer-owned.
  rules::State state_;
  merkle::Frontier frontier_;
  int64_t last_time_ = 0;
  bool storage_failed_ = false;
  int64_t retry_lapses_after_ = 0;  // ledger-clock ns
  // Per author, refusals the daily allowance kept off the record since its
  // last recorded one: the next one recorded carries the count
  // (SubmissionRefused.dropped_before). As stored.
  absl::flat_hash_map<std::string, uint64_t> dropped_refusals_;

  // Public keys for verification off the sequencer thread, a bounded cache
  // (revocation is decided by the sequencer against state_).
  mutable absl::Mutex keys_mu_;
  absl::flat_hash_map<std::string, crypto::PublicKey> keys_ ABSL_GUARDED_BY(keys_mu_);

  absl::Mutex witnessed_mu_;  // orders AddCosignatures
  mutable absl::Mutex checkpoint_mu_;
  std::string latest_checkpoint_ ABSL_GUARDED_BY(checkpoint_mu_);

  std::unique_ptr<ThreadPool> own_verify_pool_;  // when options_ gave none
  ThreadPool* verify_pool_ = nullptr;
  absl::Mutex verify_mu_;
  // Submissions whose signatures are being checked: Shutdown waits for them.
  int verifying_ ABSL_GUARDED_BY(verify_mu_) = 0;
  bool verify_stop_ ABSL_GUARDED_BY(verify_mu_) = false;
  // Submissions waiting for the verify pool, in turns by signing key (the
  // first event's): one chunk per turn, so one member's many or large batches
  // do not keep another's append waiting (issue 9).
  absl::Mutex verify_turns_mu_;
  absl::flat_hash_map<std::string, std::deque<std::shared_ptr<Submission>>> verify_queues_
      ABSL_GUARDED_BY(verify_turns_mu_);
  std::deque<std::string> verify_turns_ ABSL_GUARDED_BY(verify_turns_mu_);  // signing keys with work, next first

  absl::Mutex sequencer_mu_;
  absl::CondVar sequencer_cv_;
  std::deque<std::shared_ptr<Submission>> sequencer_queue_ ABSL_GUARDED_BY(sequencer_mu_);
  bool sequencer_stop_ ABSL_GUARDED_BY(sequencer_mu_) = false;

  absl::Mutex listeners_mu_;
  absl::flat_hash_map<int, std::function<void(uint64_t)>> listeners_ ABSL_GUARDED_BY(listeners_mu_);
  int next_listener_ ABSL_GUARDED_BY(listeners_mu_) = 0;

  std::atomic<size_t> inflight_{0};
  std::atomic<size_t> inflight_bytes_{0};
  std::atomic<uint64_t> groups_committed_{0};
  std::atomic<uint64_t> records_committed_{0};
  // The rules version of the last commit (versions only rise), for the
  // verify pool's EventsToVerify: read off the sequencer thread.
  std::atomic<uint32_t> rules_version_{rules::kRulesV1};
  // In options_.metrics, or null: records per commit group written, and
  // refusals recorded, by reason (updated by the sequencer).
  metrics::Histogram* group_records_metric_ = nullptr;
  metrics::CounterFamily* refusals_metric_ = nullptr;
  absl::Mutex shutdown_mu_;
  std::thread sequencer_thread_;
};

}  // namespace ledger::store

#endif  // LEDGER_STORE_LEDGER_H_
