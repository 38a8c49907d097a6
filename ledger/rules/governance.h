// Governance rules: collectives, charters, proposals, locked gateways, votes,
// vetoes, calls, assurance, impacts and tapers (DESIGN §2–§3). Internal to
// rules/: callers use rules.h.
#ifndef LEDGER_RULES_GOVERNANCE_H_
#define LEDGER_RULES_GOVERNANCE_H_

#include "absl/status/status.h"
#include "ledger/rules/rules.h"

namespace ledger::rules::internal {

// True for the payloads decided here.
bool IsGovernanceEvent(const v1::EventBody& body);

// Decides one governance event (the author's key is already authorised).
// Applies it to `state` and appends implied system events to `effects`, or
// returns the refusal; the caller rolls `state` back on refusal.
absl::Status ApplyGovernance(State& state, const Envelope& envelope, const Context& context,
                             Effects* effects);

// Memberships of `merged` pass to `successor` when a merger takes effect at
// context.position (the OrganisationMerged record; under rules v2 the
// confirmation or IdentityChangeEffective that made it take effect). From rules version 2 its open seats
// and founding acceptances pass too (DESIGN §2, "Mergers and takeovers"): the
// gateways and collectives this decides are appended to `effects`, landing
// right after that position.
void TransferMemberships(State& state, const std::string& merged, const std::string& successor,
                         const Context& context, Effects* effects);

}  // namespace ledger::rules::internal

#endif  // LEDGER_RULES_GOVERNANCE_H_
