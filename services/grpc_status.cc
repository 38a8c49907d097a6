#include "services/grpc_status.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "ledger/rules/refusal.h"

namespace ledger::services {

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  v1::ErrorDetail detail;
  detail.set_reason(ReasonOf(status));
  detail.set_message(std::string(status.message()));
  if (auto index = status.GetPayload(kBatchIndexPayloadUrl); index.has_value()) {
    uint32_t value = 0;
    if (absl::SimpleAtoi(std::string(*index), &value)) detail.set_batch_index(value);
  }
  // absl and gRPC share the canonical code numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), detail.message(),
                      detail.SerializeAsString());
}

v1::ErrorDetail DetailOf(const grpc::Status& status) {
  v1::ErrorDetail detail;
  if (status.error_details().empty() || !detail.ParseFromString(status.error_details())) {
    detail.Clear();
    detail.set_message(status.error_message());
  }
  return detail;
}

std::string Describe(const grpc::Status& status) {
  static const char* const kCodes[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
      "UNAUTHENTICATED"};
  int code = status.error_code();
  std::string name = code >= 0 && code <= 16 ? kCodes[code] : absl::StrCat("code ", code);
  v1::ErrorDetail detail = DetailOf(status);
  if (detail.reason() != v1::REASON_UNSPECIFIED) {
    absl::StrAppend(&name, " (", v1::Reason_Name(detail.reason()), ")");
  }
  return absl::StrCat(name, ": ", status.error_message());
}

}  // namespace ledger::services
