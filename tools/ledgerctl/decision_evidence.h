// Decision evidence: every record a decision rests on, with an inclusion
// proof per record against one signed checkpoint, in one JSON document that
// `ledgerctl evidence` writes, `ledgerctl verify-evidence` checks offline and
// `ledgerctl report` embeds in its HTML page (where the page's own script
// checks it again). Not to be confused with evidence.h, the member-receipt
// store behind `--evidence DIR` and `ledgerctl audit`.
//
// Format (kDecisionEvidenceFormat), one JSON object:
//   format, ledger_id, origin
//   operator     {key_id, public_key (base64 of the raw 32 bytes)}
//   checkpoint   {tree_size, root_hash (hex), witnessed, note (the C2SP signed
//                 note exactly as served, with any cosignature lines)}
//   records      [{position, record (base64 of exactly the stored bytes),
//                  leaf_hash (hex), inclusion_proof [hex...]}], by position
//   keys         [{key_id, org_id, public_key (base64), registered_at}]: the
//                 signing keys, each registered by a record present
//   proposals    [{proposal_id, collective_id, title, category, proposer,
//                  status, submitted_at, ended_at, intact, gateways [...],
//                  tapers [...]}]: what the report draws
//   facts        [{kind, position, proposal_id, ...}]: each claim the report
//                 shows, and the record that says it
// Hashes are hex; record bytes and keys base64 (the format demands bytes).
#ifndef TOOLS_LEDGERCTL_DECISION_EVIDENCE_H_
#define TOOLS_LEDGERCTL_DECISION_EVIDENCE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/witness/policy.h"
#include "tools/ledgerctl/client.h"
#include "tools/ledgerctl/output.h"

namespace ledger::ctl {

inline constexpr char kDecisionEvidenceFormat[] = "decision-ledger-evidence/1";

// Builds the evidence for `proposal_ids` from the server: their records, the
// records registering the keys that signed them, and the newest witnessed
// checkpoint that covers them all (else the latest), every record proved
// against it. Checks the proofs and the checkpoint signature (under the key
// the server names) before returning, so a broken server is reported here.
absl::StatusOr<Json> BuildDecisionEvidence(LedgerClient& client,
                                           const std::vector<std::string>& proposal_ids);

// The outcome of checking evidence offline.
struct DecisionEvidenceCheck {
  bool verified = false;
  std::vector<std::string> failures;  // each says exactly what failed
  std::string operator_key_id;
  std::string origin;
  uint64_t tree_size = 0;
  std::string witnessed;  // "quorum Q met by a, b" with a policy; else empty
  size_t records = 0;
  size_t facts = 0;
  size_t signatures = 0;
};

// Checks `evidence` with no network: the checkpoint note's signature by
// `operator_key` under the evidence's origin (and `policy`'s quorum if
// given), each record's leaf hash and inclusion proof to the checkpoint
// root, each record's position, each record's signature by the key its
// author registered in a record present (system events: the operator key of
// Genesis), and each fact against the record it names.
DecisionEvidenceCheck CheckDecisionEvidence(const Json& evidence, const crypto::PublicKey& operator_key,
                                    const witness::Policy* policy);

// Parses DIR/evidence.json (errors name the file and what is wrong).
absl::StatusOr<Json> ReadDecisionEvidence(const std::string& dir);

}  // namespace ledger::ctl

#endif  // TOOLS_LEDGERCTL_DECISION_EVIDENCE_H_
