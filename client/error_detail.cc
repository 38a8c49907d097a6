#include "client/error_detail.h"

#include "absl/strings/str_cat.h"
#include "ledger/event/refusal.h"

namespace ledger::client {

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

absl::Status ToStatus(const char* rpc, const std::string& server, const grpc::Status& status) {
  // absl and gRPC share the canonical code numbering; the reason travels on
  // (ReasonOf) so callers can act on it.
  return Refuse(static_cast<absl::StatusCode>(status.error_code()), DetailOf(status).reason(),
                absl::StrCat(rpc, " at ", server, ": ", Describe(status)));
}

}  // namespace ledger::client
