// Rules versions (DESIGN §4, "Logs outlive releases"). A log is decided at
// each position under the rules version in force there: named in Genesis
// (absent: version 1), or switched by an operator's RulesVersionAdopted. Every
// rule that changes what a log may contain is gated here, so a log written by
// an earlier release replays, and verifies, with every later one.
//
//   1  the first release.
//   2  insiders (issue 8): identity changes a registrar makes alone wait for a
//      notice period or the organisation's confirmation, and never touch the
//      operator; small-order keys are refused; a merger passes open seats to
//      the successor (or vacates them) and founders' acceptances too; a call
//      needs a real deadlock, and changes to the collective need the
//      charter's amendment callers; identical refused bytes are answered with
//      the original refusal and never recorded twice; attempts on a locked
//      gateway are always recorded; a member event's signed client time may
//      not run ahead of ledger time by more than kClockSkew; reserved
//      categories match case- and punctuation-insensitively; declared impacts
//      are bounded.
//   3  bounded cost (issue 9): text fields of member events are at most
//      kMaxTextBytes, and a member changes its position on one gateway at
//      most kMaxPositionChanges times (rules/limits.h).
#ifndef LEDGER_RULES_VERSION_H_
#define LEDGER_RULES_VERSION_H_

#include <cstdint>

#include "ledger/rules/state.h"

namespace ledger::rules {

inline constexpr uint32_t kRulesV1 = 1;
inline constexpr uint32_t kRulesV2 = 2;
inline constexpr uint32_t kRulesV3 = 3;
// What this release writes into a new Genesis, and the highest it can replay.
inline constexpr uint32_t kLatestRulesVersion = kRulesV3;

// The version in force for the next event decided against `state`.
inline uint32_t RulesVersion(const State& state) {
  const uint32_t version = state.info().rules_version();
  return version == 0 ? kRulesV1 : version;
}
inline bool RulesAtLeast(const State& state, uint32_t version) { return RulesVersion(state) >= version; }

// Rules version 2: how far a member event's signed client time may run ahead
// of the ledger time it is given (clocks of members and operator disagree a
// little); and, for auditors, how far ledger time may fall behind it before
// the record counts as backdated.
inline constexpr int64_t kClockSkewNanos = 5LL * 60 * 1'000'000'000;

// True if a signed client time (ms) is ahead of a ledger time (ns) by more
// than kClockSkewNanos: the one comparison the sequencer and the auditor's
// "time" check share. Compared in milliseconds, so no client time overflows
// it; exact for ledger times from 1970 on.
inline bool ClientTimeAhead(int64_t client_time_unix_ms, int64_t ledger_time_unix_ns) {
  return client_time_unix_ms > ledger_time_unix_ns / 1'000'000 + kClockSkewNanos / 1'000'000;
}

// Rules version 2: the default identity-change notice (Genesis may set it).
inline constexpr int64_t kDefaultIdentityNoticeSeconds = 14LL * 24 * 3600;
// The longest notice Genesis may name (ten years): beyond it the notice's end
// in ledger nanoseconds could overflow, and an absurd notice is a misprint.
inline constexpr int64_t kMaxIdentityNoticeSeconds = 10LL * 366 * 24 * 3600;

}  // namespace ledger::rules

#endif  // LEDGER_RULES_VERSION_H_
