// Member evidence: the signed checkpoint of every receipt ledgerctl gets,
// kept so that a member can later show what the operator acknowledged.
//
// Layout (EvidenceRoot, one subdirectory per log origin, %-escaped):
//   <root>/<origin>/operator.pub                   the operator key (PEM) the
//                                                  receipts are verified under:
//                                                  pinned from the server on the
//                                                  first receipt, or put there by
//                                                  hand beforehand
//   <root>/<origin>/receipt-<position, 20 digits>.json
//                                                  one receipt: position, ledger
//                                                  time, leaf hash, tree size,
//                                                  the checkpoint note and the
//                                                  inclusion proof at that size
//   <root>/<origin>/rewritten-<time>/              written by `audit` when the
//                                                  server no longer holds them
// A receipt is stored only if its checkpoint verifies under the pinned key
// and names the receipt's tree size; files are written atomically (temp file,
// fsync, rename). About 1 KB a receipt.
#ifndef TOOLS_LEDGERCTL_EVIDENCE_H_
#define TOOLS_LEDGERCTL_EVIDENCE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/v1/ledger_service.pb.h"
#include "ledger/v1/record.pb.h"
#include "tools/ledgerctl/client.h"
#include "tools/ledgerctl/commands.h"

namespace ledger::ctl {

// The evidence root: --evidence DIR, else $LEDGER_EVIDENCE, else
// $XDG_STATE_HOME/decision-ledger/evidence, else
// $HOME/.local/state/decision-ledger/evidence. An error if none applies.
absl::StatusOr<std::string> EvidenceRoot(const Invocation& in);

// The subdirectory name of `origin`: [A-Za-z0-9_-] and non-leading '.' kept,
// every other byte %XX.
std::string OriginDirName(const std::string& origin);

// Verifies `receipt` (its checkpoint under the pinned operator key, its tree
// size, and an inclusion proof fetched from the server) and stores it. Never
// fails the caller: a problem is a warning on stderr (the event is recorded
// whatever happens here).
void KeepReceipt(const Invocation& in, LedgerClient& client, const v1::GetLedgerInfoResponse& info,
                 const v1::Receipt& receipt);

// What `audit` found in the evidence of one origin.
struct EvidenceCheck {
  std::string dir;                   // <root>/<origin>
  bool found = false;                // the directory holds any receipt file
  uint64_t checkpoints = 0;          // distinct saved checkpoints checked
  uint64_t receipts = 0;             // receipts checked
  std::vector<std::string> skipped;  // "FILE: why", unreadable or corrupt files
  std::string served_note;           // the server's current checkpoint
  uint64_t served_size = 0;
  std::string served_root_hex;
  // Empty when the server still holds everything; otherwise one line per
  // saved checkpoint it does not extend.
  std::vector<std::string> rewritten;
  std::vector<uint64_t> lost_positions;  // receipts no longer included
  std::string copied_to;                 // where the evidence was copied on a rewrite
};

// Checks that the server's current checkpoint is consistent with every saved
// checkpoint of the server's origin and still includes every saved receipt.
// `operator_key` (from --operator-key), if given, must be the pinned one.
// Errors are for what could not be checked (server unreachable, no pinned
// key); a rewrite is reported in the result, with the evidence copied.
absl::StatusOr<EvidenceCheck> CheckEvidence(const Invocation& in, LedgerClient& client,
                                            const v1::GetLedgerInfoResponse& info,
                                            const std::optional<crypto::PublicKey>& operator_key);

// The human report of a check: HISTORY REWRITTEN block, or the summary line.
std::string FormatEvidenceCheck(const EvidenceCheck& check, const std::string& server);

// ReplaceFileDurably (ledger/common/files.h) with mode 0644: after a crash
// the file is the old one or the new one, whole.
absl::Status WriteFileAtomically(const std::string& path, const std::string& contents);

}  // namespace ledger::ctl

#endif  // TOOLS_LEDGERCTL_EVIDENCE_H_
