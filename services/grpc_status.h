// The one place absl::Status becomes grpc::Status and back.
//
// Every error status carries a serialized ledger.v1.ErrorDetail (reason enum,
// message, batch index) in its binary details (grpc-status-details-bin), so a
// client gets a machine-readable reason besides the code.
#ifndef SERVICES_GRPC_STATUS_H_
#define SERVICES_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"
#include "ledger/v1/record.pb.h"

namespace ledger::services {

grpc::Status ToGrpc(const absl::Status& status);

// The ErrorDetail of a status received from ledgerd (REASON_UNSPECIFIED and
// the plain message if it carries none).
v1::ErrorDetail DetailOf(const grpc::Status& status);

// Human-readable: "FAILED_PRECONDITION (NOT_A_REGISTRAR): x is not a registrar".
std::string Describe(const grpc::Status& status);

}  // namespace ledger::services

#endif  // SERVICES_GRPC_STATUS_H_
