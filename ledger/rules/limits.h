// Rules version 3: what one event may make the ledger hold. Each bound keeps
// the cost of deciding, storing and undoing an event small and independent
// of what a hostile member sends (issue 9): a proposal's state is at most
// its electorate x (1 + kMaxPositionChanges) votes of at most kMaxTextBytes.
#ifndef LEDGER_RULES_LIMITS_H_
#define LEDGER_RULES_LIMITS_H_

#include <cstddef>

namespace ledger::rules {

// Every text field of a member event — rationale, description, summary,
// opinion, reason, names and titles, at any depth — in bytes of UTF-8.
// Beyond it: INVALID_ARGUMENT OVERSIZE naming the field.
inline constexpr size_t kMaxTextBytes = 4096;

// How often one member may change its position on one gateway after its
// first vote. Beyond it: FAILED_PRECONDITION POSITION_CHANGES_EXHAUSTED.
inline constexpr int kMaxPositionChanges = 8;

}  // namespace ledger::rules

#endif  // LEDGER_RULES_LIMITS_H_
