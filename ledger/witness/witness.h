// A C2SP tlog-witness v1 witness (https://c2sp.org/tlog-witness), without
// the HTTP: the add-checkpoint request body in, the HTTP answer out.
// services/witness_main.cc (`ledger-witness`) serves it over HTTP.
//
// A witness has a name and an Ed25519 key (its cosignature/v1 verifier key,
// type 0x04), and trusts a fixed set of log keys (signed-note verifier keys,
// type 0x01). A log is identified by its origin line, which is the name of its
// verifier key. For each origin the witness remembers the latest (size, root)
// it cosigned, and cosigns a checkpoint only if it is consistent with that:
// it never cosigns two roots for one size, nor a smaller tree after a larger
// one, across restarts and SIGKILL (the state is persisted durably before the
// answer is produced).
//
// The data directory:
//   DIR/witness.key.pem     the witness's private key (0600), made on first use
//   DIR/witness.vkey        its verifier key "<name>+<key ID>+<base64>", one line
//   DIR/state/<hex SHA-256(origin)>
//                           the log-signed checkpoint note last cosigned for
//                           one origin (its size and root are the state)
//   DIR/evidence/<origin hash>-<size>-<note hash>.notes
//                           a split view: the note cosigned at that size, an
//                           empty line, and a log-signed note with another
//                           root for the same size (answered 409)
//   DIR/LOCK                held (flock) while a Witness has DIR open
// A state file is replaced atomically (write DIR/state/<h>.tmp, fsync,
// rename, fsync DIR/state). A state file that does not parse fails Open
// (DataLoss): starting afresh would let the witness cosign a rollback.
//
// Answers, in the order the checks are made (tlog-witness v1):
//   413 body larger than kMaxBodyBytes
//   400 malformed body: first line not "old <decimal without leading zeros>",
//       a proof line not base64 of 32 bytes, more than 63 proof lines, no
//       empty line, or a checkpoint note that does not parse
//   404 the origin is not one of the trusted logs
//   403 no valid signature by a trusted key of that origin (or one that claims
//       a trusted key and does not verify)
//   400 old size greater than the checkpoint size
//   409 old size is not the stored size: Content-Type text/x.tlog.size, body
//       "<stored size>\n"
//   409 old size == checkpoint size == stored size but the root differs
//   422 consistency proof does not verify (it must be empty when the old
//       size is 0 or equal to the checkpoint size)
//   500 the state could not be persisted (nothing is cosigned)
//   200 one cosignature/v1 signature line "— <name> <base64>\n"
// A never-seen origin has stored size 0 (root: the empty tree's).
//
// Thread contract: AddCheckpoint may be called from any number of threads;
// requests for one origin are serialised (check, persist, sign under one
// lock per origin), requests for different origins run in parallel.
#ifndef LEDGER_WITNESS_WITNESS_H_
#define LEDGER_WITNESS_WITNESS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "ledger/common/files.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/merkle/tree.h"
#include "ledger/witness/cosignature.h"

namespace ledger::witness {

// POSIX seconds; the timestamp of each cosignature.
using Clock = std::function<uint64_t()>;
uint64_t SystemClockSeconds();

class Witness {
 public:
  static constexpr size_t kMaxBodyBytes = 64 << 10;
  static constexpr size_t kMaxProofLines = 63;

  // Opens DIR (created 0700 if absent, with a fresh key). `name` is the
  // witness's key name (signed-note rules: non-empty, no spaces, no '+');
  // an existing DIR refuses a name other than the one in DIR/witness.vkey
  // (FailedPrecondition: the name is part of the key ID, so of the identity
  // verifiers trust). `logs` are the trusted log keys (type 0x01; at least
  // one). FailedPrecondition if another Witness (any process) has DIR open.
  static absl::StatusOr<std::unique_ptr<Witness>> Open(const std::string& dir, std::string name,
                                                       std::vector<VerifierKey> logs,
                                                       Clock clock = SystemClockSeconds);
  ~Witness();
  Witness(const Witness&) = delete;
  Witness& operator=(const Witness&) = delete;

  const VerifierKey& vkey() const { return vkey_; }
  // Lines for the operator about Open (e.g. a key file others may read).
  const std::vector<std::string>& warnings() const { return warnings_; }

  struct Response {
    int status = 0;
    std::string content_type;
    std::string body;
  };
  Response AddCheckpoint(std::string_view request_body);

  // The latest cosigned (size, root) of `origin`; nullopt if it is not a
  // trusted origin. Size 0 and the empty root if never cosigned.
  struct State {
    uint64_t size = 0;
    merkle::Hash root{};
  };
  std::optional<State> Latest(const std::string& origin) const;

 private:
  struct Origin {
    std::string origin;
    std::vector<VerifierKey> keys;
    std::string state_path;
    mutable absl::Mutex mu;
    State state ABSL_GUARDED_BY(mu);
    std::string note ABSL_GUARDED_BY(mu);  // as persisted; empty if never cosigned
  };

  Witness(std::string dir, VerifierKey vkey, crypto::PrivateKey key, Clock clock, DirectoryLock lock);
  // Replaces the origin's state file with `note` (atomically, durably).
  absl::Status Persist(const Origin& origin, std::string_view note) const;
  // A log-signed checkpoint with the stored size and another root: keeps
  // both notes in DIR/evidence/ (best effort).
  void KeepForkEvidence(const Origin& origin, uint64_t size, std::string_view note) const
      ABSL_SHARED_LOCKS_REQUIRED(origin.mu);

  const std::string dir_;
  const VerifierKey vkey_;
  const crypto::PrivateKey key_;
  const Clock clock_;
  const DirectoryLock lock_;  // held while open
  std::vector<std::string> warnings_;
  // Built by Open, never changed after: read without a lock.
  std::map<std::string, std::unique_ptr<Origin>, std::less<>> origins_;
};

}  // namespace ledger::witness

#endif  // LEDGER_WITNESS_WITNESS_H_
