// Deciding a commit group: the one place that fixes the order in which the
// ledger decides what a group of submissions writes. The server's write path
// (store/ledger.cc) and the auditor's replay (audit/replay.cc) both call
// DecideGroup, so they cannot drift apart on a real log (DESIGN §4: the
// server and the auditor run the same rules code).
//
// The order:
//   1. everything due at the group's ledger time is written first, by due
//      time (a gateway deadline before an identity notice due at the same
//      time; notices by position): gateway deadlines lapse (GatewayLapsed);
//      under rules v2, pending identity changes whose notice has ended take
//      effect (IdentityChangeEffective, then what a merger implies);
//   2. each submission in turn, all or nothing; for each of its events:
//      a signature the caller could not check is checked; an earlier use of
//      the (author, idempotency key) answers it with the original position
//      (same bytes) or refuses it ALREADY_EXISTS (different bytes); the rules
//      decide it; the system events it implies follow it;
//   3. a submission refused by a rule is undone whole, and its refused event,
//      decided again alone (as an auditor holding only the log will decide
//      it), is kept as SubmissionRefused if that plain refusal is a broken
//      rule (FAILED_PRECONDITION) within its author's daily allowance.
// From rules version 2, right after the signature check, SignedEvent bytes
// already recorded as refused are answered with that refusal (its code and
// reason, the message naming its position) and nothing is recorded.
//
// Deciding submissions one group at a time or one per group gives the same
// records (the lapses and notices of a time are written once, before the
// first event at that time): the replayer relies on this, feeding one
// submission at a time, and a recorded lapse or IdentityChangeEffective as a
// group with no submission.
//
// Pure: no I/O, no clock, no randomness. What storage knows about earlier
// idempotency keys, and the ledger time, are inputs. Positions count from 0.
// Thread contract: none of its own; the caller owns `state`.
#ifndef LEDGER_RULES_COMMIT_GROUP_H_
#define LEDGER_RULES_COMMIT_GROUP_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "ledger/crypto/sha256.h"
#include "ledger/event/envelope.h"
#include "ledger/rules/state.h"
#include "ledger/v1/events.pb.h"

namespace ledger::rules {

// An earlier accepted use of an (author, idempotency key).
struct PriorUse {
  uint64_t position = 0;
  crypto::Digest body_hash{};  // SHA-256 of the signed body bytes
};
// Earlier uses, keyed by IdempotencyId(author, idempotency key).
using PriorUses = absl::flat_hash_map<std::string, PriorUse>;
std::string IdempotencyId(absl::string_view author, absl::string_view idempotency_key);

// One submission: 1..kMaxBatchEvents events decided all or nothing.
struct SubmissionInput {
  absl::Span<const Envelope> envelopes;
  // Per event, non-zero if the caller has checked its signature bytes under
  // the key it names. Empty: none was checked. (Whether that key may sign
  // for its author at this position is always decided here.)
  absl::Span<const char> signature_checked;
};

struct GroupInput {
  uint64_t first_position = 0;  // where the group's first record lands
  int64_t ledger_time_unix_ns = 0;
  std::vector<SubmissionInput> submissions;
  const PriorUses* prior_uses = nullptr;  // null: no earlier uses
};

// A record the group writes.
struct GroupRecord {
  // An accepted member event (pointing into the input), stored as its
  // signed bytes ...
  const Envelope* member = nullptr;
  crypto::Digest body_hash{};  // of a member event
  // ... or, when `member` is null, a system event for the operator to sign:
  // ledger id, author and idempotency key ("system/<position>") are set.
  v1::EventBody system;
  // For a SubmissionRefused: the refused attempt (pointing into the input).
  const Envelope* refused = nullptr;
};

// Rules version 2: a validly signed refusal the daily allowance kept off the
// record. Not part of the rules' state: what the operator does with it
// (counting it into the author's next SubmissionRefused.dropped_before) is
// its own claim.
struct DroppedRefusal {
  size_t before_record = 0;  // records[before_record] and later come after it
  std::string author;
};

struct SubmissionResult {
  // OK, or the refusal (see refusal.h); for a batch its message names the
  // failing event's index, also attached as kBatchIndexPayloadUrl.
  absl::Status status;
  // When OK, per event: its position, and true if it is an earlier identical
  // submission's (nothing new was written for it).
  std::vector<std::pair<uint64_t, bool>> positions;
  bool refusal_recorded = false;  // a SubmissionRefused among the records
  uint64_t refusal_position = 0;  // ... at this position
  // When OK: (event position, position of a system event it implied), in
  // record order.
  std::vector<std::pair<uint64_t, uint64_t>> implied;
  bool refusal_dropped = false;   // a broken rule beyond the daily allowance
};

struct GroupDecision {
  std::vector<GroupRecord> records;  // records[i] lands at first_position + i
  std::vector<SubmissionResult> submissions;  // one per input submission
  std::vector<DroppedRefusal> dropped;        // in decision order
};

// Notes that the signed event `signed_event` was recorded refused at
// `position` (the refused-bytes index; the first record of them is kept).
// DecideGroup does it for every refusal it records; a store written by a
// release before the index calls it for the refusals it already holds.
void IndexRefusedSubmission(State& state, absl::string_view signed_event, uint64_t position, v1::Reason reason);

// Decides `input` against `state`, leaving the group's changes applied and
// journaled in `state` (a caller whose write then fails rolls back to a
// Mark() taken before the call).
GroupDecision DecideGroup(State& state, const GroupInput& input);

}  // namespace ledger::rules

#endif  // LEDGER_RULES_COMMIT_GROUP_H_
