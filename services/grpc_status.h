// The one place absl::Status becomes grpc::Status.
//
// Every error status carries a serialized ledger.v1.ErrorDetail (reason enum,
// message, batch index) in its binary details (grpc-status-details-bin), so a
// client gets a machine-readable reason besides the code. Reading it back is
// the client library's (client/error_detail.h), re-exported here.
#ifndef SERVICES_GRPC_STATUS_H_
#define SERVICES_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "client/error_detail.h"
#include "grpcpp/support/status.h"
#include "ledger/v1/record.pb.h"

namespace ledger::services {

grpc::Status ToGrpc(const absl::Status& status);

using client::Describe;
using client::DetailOf;

}  // namespace ledger::services

#endif  // SERVICES_GRPC_STATUS_H_
