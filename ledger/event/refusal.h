// Refusals: an absl::Status whose code is the gRPC-compatible class of error
// and whose payload carries the machine-readable ledger.v1.Reason.
#ifndef LEDGER_EVENT_REFUSAL_H_
#define LEDGER_EVENT_REFUSAL_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "ledger/v1/events.pb.h"

namespace ledger {

inline constexpr char kReasonPayloadUrl[] = "type.googleapis.com/ledger.v1.Reason";
// Set on a refusal of one event of a batch: its index, in decimal.
inline constexpr char kBatchIndexPayloadUrl[] = "type.googleapis.com/ledger.v1.BatchIndex";

// Set on a refusal that was kept on the record: the position of the
// SubmissionRefused keeping it, in decimal.
inline constexpr char kRecordedAtPayloadUrl[] = "type.googleapis.com/ledger.v1.RecordedAt";

// A status with `code`, `message` and `reason` attached.
absl::Status Refuse(absl::StatusCode code, v1::Reason reason, std::string message);

// The reason attached by Refuse, or REASON_UNSPECIFIED.
v1::Reason ReasonOf(const absl::Status& status);

// For the refusal of event `index` of a batch of `batch_size`: the same code
// and reason, the message prefixed "event <index>: " and the index attached
// as kBatchIndexPayloadUrl. A single event's refusal is returned unchanged.
absl::Status AtBatchIndex(const absl::Status& status, size_t index, size_t batch_size);

// `refusal`, told that it is on the record: the message ends "; recorded as
// SubmissionRefused at position <position>" and the position is attached as
// kRecordedAtPayloadUrl.
absl::Status RecordedAt(const absl::Status& refusal, uint64_t position);

// Shorthands for the common classes.
inline absl::Status Malformed(std::string message) {
  return Refuse(absl::StatusCode::kInvalidArgument, v1::MALFORMED, std::move(message));
}
inline absl::Status RuleBroken(v1::Reason reason, std::string message) {
  return Refuse(absl::StatusCode::kFailedPrecondition, reason, std::move(message));
}

}  // namespace ledger

#endif  // LEDGER_EVENT_REFUSAL_H_
