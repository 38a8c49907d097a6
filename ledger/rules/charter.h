// Charters: validation, digests, and the arithmetic of decision rules.
// Pure; shared by the server and the auditor.
#ifndef LEDGER_RULES_CHARTER_H_
#define LEDGER_RULES_CHARTER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "ledger/rules/state.h"
#include "ledger/rules/version.h"
#include "ledger/v1/events.pb.h"

namespace ledger::rules {

// SHA-256 of the charter's deterministic serialization: what members accept.
std::string CharterDigest(const v1::Charter& charter);

// Well-formed: at least one gateway, unique non-empty gateway ids, each rule
// well-formed, every named member, caller and assurance body registered and
// not merged away. FailedPrecondition / InvalidArgument name the fault.
absl::Status ValidateCharter(const State& state, const v1::Charter& charter);

// A rule with its defaults filled in (an unset kind is unanimity).
v1::DecisionRule Normalised(const v1::DecisionRule& rule);

// Positions held by the electorate of a gateway.
struct Count {
  uint32_t electorate = 0;
  uint32_t assent = 0;
  uint32_t object = 0;
  uint32_t abstain = 0;
  uint32_t not_voted() const { return electorate - assent - object - abstain; }
};

enum class Verdict {
  kPending,     // someone has still to vote
  kPass,        // everyone has voted and the rule is met
  kCannotPass,  // everyone has voted and the rule is not met
};

// A gateway is decided once every elector has voted (until then a member may
// change its position, and nobody's vote arrives after the gateway locked).
// Unanimity: none objects and at least one assents (abstentions block only
// under ABSTENTION_COUNTS_AGAINST). Majority: more than half of the counted
// votes assent; supermajority n/d: at least n/d of them. Counted votes are
// assents and objections, plus abstentions under ABSTENTION_COUNTS_AGAINST.
// Quorum: at least quorum_percent of the electorate voted (abstentions count
// unless ABSTENTION_IGNORED).
Verdict Evaluate(const v1::DecisionRule& rule, const Count& count);

// The taper schedule for an annual impact under `policy`, in pence per year:
// impact * percent / 100 (rounded toward zero) for each year, computed
// without overflow for any int64 impact. Under rules version 1 the product
// was an int64 that wrapped beyond its range, and logs recorded the wrapped
// figure: `rules_version` 1 reproduces it (without undefined behaviour).
std::vector<int64_t> TaperSchedule(const v1::TaperPolicy& policy, int64_t annual_impact_pence,
                                   uint32_t rules_version = kLatestRulesVersion);

// Rules version 2: the largest annual impact a member may declare, in pence
// (10^15 pence, ten trillion pounds: far beyond any NHS budget, far inside
// what every sum over a proposal's impacts can hold).
inline constexpr int64_t kMaxAnnualImpactPence = 1'000'000'000'000'000;

// A category as reserved categories are matched from rules version 2: its
// ASCII letters (lowercased) and digits alone ("Clinical location",
// "CLINICAL_LOCATION", "ClinicalLocation" and "clinical-location" are one
// category). Empty when nothing is left. (Non-ASCII categories are refused
// under version 2, so a look-alike letter cannot slip one through.)
std::string NormalisedCategory(std::string_view category);

}  // namespace ledger::rules

#endif  // LEDGER_RULES_CHARTER_H_
