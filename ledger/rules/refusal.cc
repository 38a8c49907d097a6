#include "ledger/rules/refusal.h"

#include "absl/strings/cord.h"

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

}  // namespace ledger
