// Offline verification of an evidence bundle: the seven checks of DESIGN §4,
// with the same rules code as the server. Streams the bundle (bounded memory
// but for a 16-byte fingerprint and position per record, and a sparse offset
// index to re-read an earlier record) and verifies
// signatures on a persistent thread pool (ledger/common/thread_pool.h). The
// findings are a v1::VerifyReport (ledger/audit/report.h).
#ifndef LEDGER_AUDIT_VERIFIER_H_
#define LEDGER_AUDIT_VERIFIER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ledger/audit/report.h"
#include "ledger/common/thread_pool.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/rules/state.h"
#include "ledger/witness/policy.h"

namespace ledger::audit {

// Where the verification's time went (`verify --bench`): the thread that
// reads and replays the log against the pool that checks signatures. The
// replaying thread's time not counted here went to reading and decoding.
struct PipelineStats {
  double replay_seconds = 0;   // applying batches in order: rules, Merkle tree, the other checks
  double helping_seconds = 0;  // the replaying thread checking the pool's signatures, once it had replayed
  double waiting_seconds = 0;  // the replaying thread waiting for the pool's last signatures of a batch
  double pool_seconds = 0;     // the pool's threads checking signatures, summed
  // Records whose signature the replayer checked itself, in order: their
  // key was neither known nor proposed by a record in flight when batched.
  uint64_t signatures_in_order = 0;
};

struct VerifyOptions {
  // The operator key the auditor trusts. Without it the bundle's own key is
  // used (and must match Genesis), which proves consistency, not provenance.
  std::optional<crypto::PublicKey> operator_key;
  // A checkpoint note the auditor obtained independently (e.g. from a
  // witness): the bundle must contain its tree, with the same root.
  std::optional<std::string> trusted_checkpoint;
  // A C2SP tlog-policy: the bundle's newest checkpoint must carry its
  // quorum's cosignatures (check 7), and no record's ledger time may be later
  // than its witnessed checkpoint's quorum time plus the clock skew (check
  // 6). Without one, check 7 is skipped: split views are not ruled out.
  std::optional<witness::Policy> witness_policy;
  int threads = 0;  // 0: one per core (a pool started once for the bundle)
  // Called now and then with (bytes read, bundle size).
  std::function<void(uint64_t, uint64_t)> progress;
  // Tests only: see LogVerifierOptions::fingerprint_bits.
  int fingerprint_bits = 64;
  // If set, filled in with where the time went.
  PipelineStats* stats = nullptr;
};

v1::VerifyReport VerifyBundle(const std::string& path, const VerifyOptions& options);

// The checks themselves, fed a log in order: one implementation for the
// offline bundle verifier (VerifyBundle feeds it the bundle's frames), the
// server's AuditService.Verify (its own store) and `ledgerctl audit` (records
// read from a server). Records are batched; each batch's signatures are
// verified on the pool while this thread applies the batch before it in order
// (density, no reversal, replay, Merkle root, checkpoints).
//
// Thread contract: not thread-safe; one LogVerifier per log, fed from one
// thread, which must not be a thread of the pool it verifies on. Several
// LogVerifiers (and the server's write path) may share one pool.
struct LogVerifierOptions {
  crypto::PublicKey operator_key;  // checkpoints and Genesis must name it
  std::string origin;              // checkpoint origin (note key name)
  // A checkpoint obtained independently (already opened): when the log
  // reaches its size, the root must be its root.
  std::optional<merkle::Checkpoint> trusted = {};
  // Checkpoints are checked against it as they come (see VerifyOptions), and
  // CheckWitnessedAtEnd() judges the last one. Not owned; outlives the
  // verifier. nullptr: check 7 is skipped.
  const witness::Policy* witness_policy = nullptr;
  // The pool signatures are verified on, shared and outliving the verifier;
  // nullptr: the verifier starts its own of `threads` threads (0: one per
  // core) once, and keeps it until it is destroyed.
  ThreadPool* pool = nullptr;
  int threads = 0;
  // Range verification: records before `report_from` are still replayed (the
  // rules need the state before the range) and still go into the Merkle
  // tree, but their signatures are trusted rather than verified, and
  // density and no-reversal findings are reported only at positions >=
  // report_from. Replay findings are reported wherever they are (a state the
  // range rests on that does not replay is a finding about the range).
  uint64_t report_from = 0;
  // Called after each batch is applied (about every thousand records).
  std::function<void()> on_batch = {};
  // Density: each (author, idempotency key) is kept as a fingerprint and the
  // position that used it. A fingerprint seen before only prefilters: the
  // earlier record is read back through `read_record` (the stored bytes of
  // a record already fed) and the pairs are compared whole. Without it the
  // verifier keeps every pair whole (memory grows with the keys' length).
  std::function<absl::StatusOr<std::string>(uint64_t position)> read_record = {};
  // Tests only: how many bits of the fingerprint are kept (1..64), to force
  // collisions.
  int fingerprint_bits = 64;
};

class LogVerifier {
 public:
  explicit LogVerifier(LogVerifierOptions options);
  ~LogVerifier();
  LogVerifier(const LogVerifier&) = delete;
  LogVerifier& operator=(const LogVerifier&) = delete;

  // The next record (its stored bytes, a serialised v1::Record). False once a
  // check has failed: feed nothing more.
  bool AddRecord(std::string bytes);
  // A signed checkpoint note, right after the record that completes its tree.
  bool AddCheckpoint(uint64_t tree_size, std::string note);
  // Verifies and applies whatever is buffered. False if a check has failed.
  bool Flush();
  // Records a failed check (verification stops; the checks not yet failed
  // are marked not completed).
  void Fail(CheckId check, std::optional<uint64_t> position, std::string detail);
  bool failed() const;

  uint64_t records() const;               // applied so far
  uint64_t last_checkpoint_size() const;  // of the last checkpoint applied
  bool trusted_seen() const;              // the trusted checkpoint's size was reached
  // At the end of the log: with a policy, the last checkpoint applied (which
  // the caller relies on) must be witnessed; without one, check 7 is marked
  // skipped. Fails or marks the report; false if it failed.
  bool CheckWitnessedAtEnd();
  // At the end of the log: every system event the rules implied was written.
  absl::Status FinishReplay() const;
  const rules::State& state() const;

  // A resume point: everything the checks remember after the records applied
  // so far (position, Merkle frontier, rules state, locked gateways, the
  // idempotency index, the last checkpoint's size), serialized with a SHA-256
  // of itself, so that a later LogVerifier over the same log continues from
  // here instead of replaying from 0 (`ledgerctl audit --state`). Only after
  // Flush() with nothing failed and nothing owed (FinishReplay() is OK).
  absl::StatusOr<std::string> SaveResumePoint() const;
  // Continues from a resume point saved by SaveResumePoint of a verifier with
  // the same read_record presence and fingerprint_bits; only before the first
  // record is fed. The next record fed is at position records(). DataLoss if
  // the bytes are corrupt; FailedPrecondition if they do not fit these
  // options (an options.trusted checkpoint of the saved size with another
  // root included). On error the verifier is failed() or unchanged: start a
  // new one.
  absl::Status Resume(std::string_view saved);

  // The report so far, with the counts, range (from_position = report_from,
  // to_position = the records applied, records = those of them in the range),
  // root and threads filled in; ledger_id and seconds are the caller's.
  v1::VerifyReport Report() const;
  // Where the time went so far.
  PipelineStats Stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ledger::audit

#endif  // LEDGER_AUDIT_VERIFIER_H_
