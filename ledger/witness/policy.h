// C2SP tlog-policy files (https://c2sp.org/tlog-policy): which logs, which
// witnesses, and which sets of cosignatures make a checkpoint trusted.
//
//   log <vkey> [<url>]
//   witness <name> <vkey> [<url>]       (url: the witness's submission prefix)
//   group <name> all|any|<k> <name>...  (members defined on earlier lines)
//   quorum <name>|none                  (exactly one)
//
// Thread contract: an immutable value after Parse; any thread.
#ifndef LEDGER_WITNESS_POLICY_H_
#define LEDGER_WITNESS_POLICY_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/witness/cosignature.h"

namespace ledger::witness {

struct PolicyWitness {
  std::string name;  // the policy's name, used by groups and reports
  VerifierKey key;   // type 0x04
  std::string url;   // submission prefix; empty if the policy gives none
};

// A checkpoint that satisfied a policy.
struct WitnessedCheckpoint {
  merkle::Checkpoint checkpoint;
  std::vector<Cosignature> cosignatures;  // every valid one, policy names
  // The earliest time by which a quorum had cosigned: the smallest T such that
  // the witnesses whose cosignature timestamp is <= T satisfy the quorum.
  // Every record the checkpoint covers existed by then. 0 with quorum none.
  uint64_t quorum_time = 0;
};

class Policy {
 public:
  // InvalidArgument naming the line number and what is wrong.
  static absl::StatusOr<Policy> Parse(std::string_view text);
  // Reads and parses a file; errors name the path (and the OS reason).
  static absl::StatusOr<Policy> Load(const std::string& path);

  const std::vector<VerifierKey>& logs() const { return logs_; }
  const std::vector<PolicyWitness>& witnesses() const { return witnesses_; }
  bool requires_cosignatures() const { return quorum_ >= 0; }

  // True if cosignatures from these witnesses (policy names) satisfy the
  // quorum.
  bool Satisfied(const absl::flat_hash_set<std::string>& cosigners) const;

  // Checks a signed checkpoint note against the policy: a valid signature by
  // one of the logs (the log whose key name is the origin), and cosignatures
  // satisfying the quorum. FailedPrecondition if the quorum is not met (names
  // who did cosign); Unauthenticated / InvalidArgument / NotFound (origin not
  // in the policy) otherwise.
  absl::StatusOr<WitnessedCheckpoint> Check(std::string_view note) const;

  // Human summary of the quorum rule, e.g. "2 of {w1, w2, w3}".
  std::string QuorumText() const;

 private:
  struct Group {
    std::string name;
    int threshold = 0;
    std::vector<int> members;  // node indexes: witnesses first, then groups
  };
  std::string NodeText(int node) const;

  std::vector<VerifierKey> logs_;
  std::vector<PolicyWitness> witnesses_;
  std::vector<Group> groups_;
  int quorum_ = -1;  // node index; -1 is "none"
};

}  // namespace ledger::witness

#endif  // LEDGER_WITNESS_POLICY_H_
