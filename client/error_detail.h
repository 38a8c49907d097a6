// Reading a failed call's status as ledgerd sent it.
//
// Every error status from ledgerd carries a serialized ledger.v1.ErrorDetail
// (reason enum, message, batch index) in its binary details
// (grpc-status-details-bin); services/grpc_status.h writes it (ToGrpc). Act
// on the reason, never on the message text.
#ifndef CLIENT_ERROR_DETAIL_H_
#define CLIENT_ERROR_DETAIL_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"
#include "ledger/v1/record.pb.h"

namespace ledger::client {

// The ErrorDetail of a status received from ledgerd (REASON_UNSPECIFIED and
// the plain message if it carries none).
v1::ErrorDetail DetailOf(const grpc::Status& status);

// Human-readable: "FAILED_PRECONDITION (NOT_A_REGISTRAR): x is not a registrar".
std::string Describe(const grpc::Status& status);

// `status` (not OK) as an absl::Status with the same code and reason
// (ledger/event/refusal.h ReasonOf reads it) and the message
// "<rpc> at <server>: <Describe(status)>".
absl::Status ToStatus(const char* rpc, const std::string& server, const grpc::Status& status);

}  // namespace ledger::client

#endif  // CLIENT_ERROR_DETAIL_H_
