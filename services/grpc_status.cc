#include "services/grpc_status.h"

#include "absl/strings/numbers.h"
#include "ledger/event/refusal.h"

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
  if (auto position = status.GetPayload(kRecordedAtPayloadUrl); position.has_value()) {
    uint64_t value = 0;
    if (absl::SimpleAtoi(std::string(*position), &value)) detail.set_recorded_at(value);
  }
  // absl and gRPC share the canonical code numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), detail.message(),
                      detail.SerializeAsString());
}

}  // namespace ledger::services
