// The no-reversal evidence of one proposal (DESIGN §4, check 4), from the
// server's store: each gateway attempt, where it locked, every elector's
// position at the lock, whatever accepted record touched it after the lock
// (a violation), and the refused attempts, with every position an auditor
// should ask an inclusion proof for. AuditService.VerifyProposal serves it.
//
// Reads committed state and records only, so it is safe from any thread; it
// reads every record in the proposal's history, so callers run it off
// latency-sensitive threads (never on a gRPC reaction).
#ifndef LEDGER_STORE_PROPOSAL_EVIDENCE_H_
#define LEDGER_STORE_PROPOSAL_EVIDENCE_H_

#include <string>

#include "absl/status/statusor.h"
#include "ledger/store/store.h"
#include "ledger/v1/ledger_service.pb.h"

namespace ledger::store {

// NotFound (UNKNOWN_PROPOSAL) if there is no such proposal; DataLoss if a
// stored record or state does not decode.
absl::StatusOr<v1::VerifyProposalResponse> ProposalEvidence(const store::Store& store,
                                                            const std::string& proposal_id);

}  // namespace ledger::store

#endif  // LEDGER_STORE_PROPOSAL_EVIDENCE_H_
