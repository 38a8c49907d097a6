// The rules: a pure function from (state, event) to accepted — with the
// system events the rules imply — or refused with a reason. No I/O, no clock
// (the ledger time is an input), no randomness: the server and an auditor
// replaying the log reach identical results.
//
// Identity (Genesis, organisations, keys, mergers) is decided in rules.cc;
// collectives, proposals and gateways in governance.cc.
#ifndef LEDGER_RULES_RULES_H_
#define LEDGER_RULES_RULES_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/event/envelope.h"
#include "ledger/rules/state.h"
#include "ledger/v1/events.pb.h"

namespace ledger::rules {

// Where and when an event lands.
struct Context {
  uint64_t position = 0;
  int64_t ledger_time_unix_ns = 0;
};

struct Effects {
  // System events implied by the accepted event, to be signed by the
  // operator and appended right after it, in this order.
  std::vector<v1::EventBody> system_events;
};

// The public key that must have signed `envelope` (for Genesis, the operator
// key it names). Unauthenticated (UNKNOWN_KEY) if there is none.
absl::StatusOr<crypto::PublicKey> SigningKey(const State& state, const Envelope& envelope);

// Checks the signature bytes of `envelope` under SigningKey.
absl::Status CheckSignature(const State& state, const Envelope& envelope);

// Decides a submitted event whose signature has been checked. On acceptance
// applies it to `state` and returns the implied system events; on refusal
// leaves `state` unchanged and returns the refusal (see refusal.h):
//   Unauthenticated: the key is unknown, revoked, pending (KEY_PENDING: a
//     registrar added it alone and it has not taken effect), or not the
//     author's;
//   FailedPrecondition: a rule is broken;
absl::StatusOr<Effects> Apply(State& state, const Envelope& envelope, const Context& context);

// Makes, ahead of Apply, the check of every public key `body` registers
// (rules v2's WEAK_KEY, ~0.8 of a signature check): the answer is remembered
// (crypto::IsUsablePublicKey), so a signature-checking thread pays for it and
// not the one thread that applies events in order. Changes no decision.
void CheckRegisteredKeysAhead(const v1::EventBody& body);

// Rules version 2: InvalidArgument (CLIENT_TIME_AHEAD) if `body`'s signed
// client time runs ahead of the ledger time by more than kClockSkewNanos.
// Apply checks it for every member event after Genesis.
absl::Status CheckClientTime(const State& state, const v1::EventBody& body, const Context& context);

// Lapses every open gateway whose deadline is at or before the context's
// ledger time, returning the GatewayLapsed system events, to be appended at
// context.position onwards. The server runs it before each commit group and
// when a deadline falls due; replay runs it where the log has lapses.
std::vector<v1::EventBody> LapseDue(State& state, const Context& context);

// Rules version 2: the notice of the pending identity change at
// `change_position` has ended: it takes effect "by notice" (without the
// organisation's signature) at context.position. Returns the
// IdentityChangeEffective system event, then the system events the change
// implies (a merger's), to be appended from context.position on; nothing if
// it is not pending. DecideGroup runs it for every notice due (State::notices).
std::vector<v1::EventBody> EndNotice(State& state, uint64_t change_position, const Context& context);

// Most refusals an organisation can have recorded per day of ledger time, so
// refused submissions cannot flood the log.
inline constexpr uint32_t kMaxRecordedRefusalsPerDay = 100;

// For a validly signed submission refused with FAILED_PRECONDITION: the
// SubmissionRefused system event that keeps it on the record (counted against
// the author's daily allowance; from rules version 2 an attempt on a locked
// gateway is counted but never dropped), or nullopt when it is not recorded.
// `dropped` (optional) is set to whether it was not recorded only because the
// allowance was spent. Its dropped_before is left 0: that count is the
// operator's (store/ledger.cc), not the rules'.
std::optional<v1::EventBody> RecordRefusal(State& state, const Envelope& envelope,
                                           const absl::Status& refusal, const Context& context,
                                           bool* dropped = nullptr);

}  // namespace ledger::rules

#endif  // LEDGER_RULES_RULES_H_
