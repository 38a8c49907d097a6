#include "ledger/event/refusal.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace ledger {

absl::Status Refuse(absl::StatusCode code, v1::Reason reason, std::string message) {
  absl::Status status(code, message);
  status.SetPayload(kReasonPayloadUrl, absl::Cord(v1::Reason_Name(reason)));
  return status;
}

v1::Reason ReasonOf(const absl::Status& status) {
  auto payload = status.GetPayload(kReasonPayloadUrl);
  v1::Reason reason = v1::REASON_UNSPECIFIED;
  if (payload.has_value()) v1::Reason_Parse(std::string(*payload), &reason);
  return reason;
}

absl::Status AtBatchIndex(const absl::Status& status, size_t index, size_t batch_size) {
  if (batch_size == 1) return status;
  absl::Status annotated(status.code(), absl::StrCat("event ", index, ": ", status.message()));
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    annotated.SetPayload(url, payload);
  });
  annotated.SetPayload(kBatchIndexPayloadUrl, absl::Cord(absl::StrCat(index)));
  return annotated;
}

absl::Status RecordedAt(const absl::Status& refusal, uint64_t position) {
  absl::Status annotated(refusal.code(),
                         absl::StrCat(refusal.message(), "; recorded as SubmissionRefused at position ", position));
  refusal.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) { annotated.SetPayload(url, payload); });
  annotated.SetPayload(kRecordedAtPayloadUrl, absl::Cord(absl::StrCat(position)));
  return annotated;
}

}  // namespace ledger
