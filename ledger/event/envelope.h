// Parsing and bound-checking of signed events, shared by the server's write
// path and the auditor. Decoding does no signature check (that needs the key
// registry; see rules.h) and no I/O.
#ifndef LEDGER_EVENT_ENVELOPE_H_
#define LEDGER_EVENT_ENVELOPE_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/v1/events.pb.h"
#include "ledger/v1/record.pb.h"

namespace ledger {

// Bounds on what a submission may be. Larger inputs are refused as OVERSIZE.
inline constexpr size_t kMaxBodyBytes = 64 * 1024;
inline constexpr size_t kMaxIdempotencyKeyBytes = 128;
inline constexpr size_t kMaxIdBytes = 128;  // organisation, collective, proposal ids
inline constexpr size_t kMaxBatchEvents = 1000;

// Ids (organisations, collectives, proposals) become storage keys, CLI
// arguments and parts of notes, so they are kept plain: 1..kMaxIdBytes of
// letters, digits and - _ . :. InvalidArgument names `what` and the fault.
absl::Status CheckId(absl::string_view what, absl::string_view id);

// A signed event with its body decoded.
struct Envelope {
  std::string signed_bytes;  // serialized SignedEvent, exactly as stored
  v1::SignedEvent signed_event;
  v1::EventBody body;
};

// Decodes and bound-checks a submission. InvalidArgument (MALFORMED,
// OVERSIZE, WRONG_LEDGER, MISSING_FIELD) names what is wrong. `ledger_id`
// empty means "no Genesis yet" (only a Genesis is acceptable then).
absl::StatusOr<Envelope> OpenSubmission(const v1::SignedEvent& signed_event,
                                        std::string_view ledger_id);
// The same, taking the event's bytes instead of copying them (the write
// path: one copy of a body fewer per event). On a refusal `signed_event` is
// left as it was.
absl::StatusOr<Envelope> OpenSubmission(v1::SignedEvent&& signed_event,
                                        std::string_view ledger_id);

// Serializes `body` once and signs it (kEventDomain || body) with `key`.
v1::SignedEvent SealEvent(const v1::EventBody& body, const crypto::PrivateKey& key);

// Decodes stored record bytes; DataLoss names the position if they do not
// decode or their position differs from `expected_position`.
absl::StatusOr<v1::Record> DecodeRecord(std::string_view record_bytes,
                                        uint64_t expected_position);
// Decodes the envelope of a stored record (DataLoss if it does not decode).
absl::StatusOr<Envelope> DecodeStoredEvent(const v1::Record& record);

// The payload's field name, e.g. "vote_cast"; "" when unset. Used as the
// event kind in indexes, filters and the CLI.
const std::string& EventKind(const v1::EventBody& body);
// The payload field number for a kind name, or 0 if unknown.
int EventKindNumber(std::string_view kind);

// True for events only the ledger itself writes.
bool IsSystemEvent(const v1::EventBody& body);

}  // namespace ledger

#endif  // LEDGER_EVENT_ENVELOPE_H_
