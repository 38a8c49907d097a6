#include "tools/ledgerctl/client.h"

#include <algorithm>
#include <optional>
#include <chrono>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/channel.h"
#include "client/error_detail.h"
#include "ledger/event/envelope.h"
#include "grpcpp/client_context.h"

namespace ledger::ctl {
namespace {

constexpr std::chrono::seconds kUnaryDeadline(30);

// client::ToStatus, and for a plaintext client that cannot reach the
// server, the likely cause: a server that serves TLS only.
absl::Status Failed(const char* rpc, const std::string& server, bool tls, const grpc::Status& status) {
  absl::Status failed = client::ToStatus(rpc, server, status);
  if (tls || failed.code() != absl::StatusCode::kUnavailable) return failed;
  absl::Status hinted(failed.code(), absl::StrCat(failed.message(),
                                                  " (if ledgerd serves TLS, give --tls-ca FILE)"));
  failed.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) { hinted.SetPayload(url, payload); });
  return hinted;
}

// Runs one unary call with the standard deadline. Fail-fast (gRPC's default):
// the constructor has already waited for the connection.
template <typename Response, typename Call>
absl::StatusOr<Response> Unary(const char* rpc, const std::string& server, bool tls, Call call) {
  grpc::ClientContext context;
  client::PrepareCall(context, kUnaryDeadline, client::CallPolicy::kFailFast);
  Response response;
  grpc::Status status = call(&context, &response);
  if (!status.ok()) return Failed(rpc, server, tls, status);
  return response;
}

}  // namespace

LedgerClient::LedgerClient(std::string server, client::TlsOptions tls)
    : server_(std::move(server)),
      tls_(std::move(tls)),
      channel_(client::NewChannel(server_, {.tls = tls_})),
      ledger_(v1::LedgerService::NewStub(channel_)),
      audit_(v1::AuditService::NewStub(channel_)),
      governance_(v1::GovernanceService::NewStub(channel_)) {
  // A failed wait is not an error here: the first call reports it.
  (void)client::WaitForConnection(*channel_, client::kInteractiveConnectWait);
}

absl::StatusOr<v1::ListCheckpointsResponse> LedgerClient::ListCheckpoints(uint64_t from_size, uint64_t to_size) {
  v1::ListCheckpointsRequest request;
  request.set_from_size(from_size);
  request.set_to_size(to_size);
  return Unary<v1::ListCheckpointsResponse>(
      "ListCheckpoints", server_, tls_.enabled, [&](grpc::ClientContext* c, v1::ListCheckpointsResponse* r) {
        return audit_->ListCheckpoints(c, request, r);
      });
}

absl::Status LedgerClient::Verify(const v1::VerifyRequest& request,
                                  const std::function<void(const v1::VerifyProgress&)>& on_message) {
  grpc::ClientContext context;  // no deadline: verification takes as long as the log
  std::unique_ptr<grpc::ClientReader<v1::VerifyProgress>> reader = audit_->Verify(&context, request);
  v1::VerifyProgress message;
  while (reader->Read(&message)) on_message(message);
  grpc::Status status = reader->Finish();
  if (!status.ok()) return Failed("Verify", server_, tls_.enabled, status);
  return absl::OkStatus();
}

absl::StatusOr<v1::VerifyProposalResponse> LedgerClient::VerifyProposal(const std::string& proposal_id) {
  v1::VerifyProposalRequest request;
  request.set_proposal_id(proposal_id);
  return Unary<v1::VerifyProposalResponse>(
      "VerifyProposal", server_, tls_.enabled, [&](grpc::ClientContext* c, v1::VerifyProposalResponse* r) {
        return audit_->VerifyProposal(c, request, r);
      });
}

// GovernanceService calls differ only in name, request and response.
#define LEDGERCTL_GOVERNANCE_CALL(Method, Request, Response, Arg, Fill)                     \
  absl::StatusOr<Response> LedgerClient::Method(Arg) {                                     \
    Request request;                                                                       \
    Fill;                                                                                  \
    return Unary<Response>(#Method, server_, tls_.enabled, [&](grpc::ClientContext* c, Response* r) {    \
      return governance_->Method(c, request, r);                                           \
    });                                                                                    \
  }
LEDGERCTL_GOVERNANCE_CALL(GetProposal, v1::GetProposalRequest, v1::ProposalState,
                          const std::string& id, request.set_proposal_id(id))
LEDGERCTL_GOVERNANCE_CALL(ListProposals, v1::ListProposalsRequest, v1::ListProposalsResponse,
                          const v1::ListProposalsRequest& in, request = in)
LEDGERCTL_GOVERNANCE_CALL(GetCollective, v1::GetCollectiveRequest, v1::CollectiveState,
                          const std::string& id, request.set_collective_id(id))
LEDGERCTL_GOVERNANCE_CALL(GetOrganisation, v1::GetOrganisationRequest, v1::OrganisationView,
                          const std::string& id, request.set_org_id(id))
LEDGERCTL_GOVERNANCE_CALL(ListVetoes, v1::QueryFilter, v1::ListVetoesResponse,
                          const v1::QueryFilter& in, request = in)
LEDGERCTL_GOVERNANCE_CALL(ListOverrules, v1::QueryFilter, v1::ListOverrulesResponse,
                          const v1::QueryFilter& in, request = in)
LEDGERCTL_GOVERNANCE_CALL(ListRefusals, v1::QueryFilter, v1::ListRefusalsResponse,
                          const v1::QueryFilter& in, request = in)
LEDGERCTL_GOVERNANCE_CALL(GetHistory, v1::QueryFilter, v1::HistoryResponse,
                          const v1::QueryFilter& in, request = in)
LEDGERCTL_GOVERNANCE_CALL(ListIdentityChanges, v1::QueryFilter, v1::ListIdentityChangesResponse,
                          const v1::QueryFilter& in, request = in)
#undef LEDGERCTL_GOVERNANCE_CALL

absl::StatusOr<v1::GetLedgerInfoResponse> LedgerClient::GetLedgerInfo() {
  v1::GetLedgerInfoRequest request;
  return Unary<v1::GetLedgerInfoResponse>(
      "GetLedgerInfo", server_, tls_.enabled, [&](grpc::ClientContext* c, v1::GetLedgerInfoResponse* r) {
        return ledger_->GetLedgerInfo(c, request, r);
      });
}

absl::StatusOr<v1::AppendResponse> LedgerClient::Append(const v1::SignedEvent& event) {
  v1::AppendRequest request;
  *request.mutable_event() = event;
  return Unary<v1::AppendResponse>(
      "Append", server_, tls_.enabled, [&](grpc::ClientContext* c, v1::AppendResponse* r) {
        return ledger_->Append(c, request, r);
      });
}

absl::StatusOr<v1::RecordEntry> LedgerClient::Get(uint64_t position) {
  v1::GetRequest request;
  request.set_position(position);
  absl::StatusOr<v1::GetResponse> response = Unary<v1::GetResponse>(
      "Get", server_, tls_.enabled, [&](grpc::ClientContext* c, v1::GetResponse* r) {
        return ledger_->Get(c, request, r);
      });
  if (!response.ok()) return response.status();
  if (response->entry().position() != position) {
    return absl::DataLossError(absl::StrCat("Get at ", server_, ": asked for position ",
                                            position, ", got ",
                                            response->entry().position()));
  }
  return response->entry();
}

absl::Status NarrowToTimes(const ParsedFlags& flags, LedgerClient& client, uint64_t& from, uint64_t& to) {
  uint64_t bound[2] = {from, to};
  const char* names[2] = {"since", "until"};
  std::optional<absl::Time> times[2];
  // Every flag is checked before the first call to the server.
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<std::optional<absl::Time>> time = flags.GetTime(names[i]);
    if (!time.ok()) return time.status();
    times[i] = *time;
  }
  if (!times[0] && !times[1]) return absl::OkStatus();
  for (int i = 0; i < 2; ++i) {
    if (!times[i]) continue;
    absl::StatusOr<uint64_t> position = client.FirstPositionAtOrAfter(absl::ToUnixNanos(*times[i]));
    if (!position.ok()) return position.status();
    bound[i] = *position;
  }
  from = std::max(from, bound[0]);
  if (times[1]) to = to == 0 ? bound[1] : std::min(to, bound[1]);
  if (times[1] && to <= from) from = to = 1;
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> LedgerClient::FirstPositionAtOrAfter(int64_t unix_ns) {
  absl::StatusOr<v1::GetLedgerInfoResponse> info = GetLedgerInfo();
  if (!info.ok()) return info.status();
  uint64_t low = 0, high = info->tree_size();  // the answer is in [low, high]
  while (low < high) {
    const uint64_t middle = low + (high - low) / 2;
    absl::StatusOr<v1::RecordEntry> entry = Get(middle);
    if (!entry.ok()) return entry.status();
    absl::StatusOr<v1::Record> record = DecodeRecord(entry->record(), middle);
    if (!record.ok()) return record.status();
    if (record->ledger_time_unix_ns() < unix_ns) {
      low = middle + 1;
    } else {
      high = middle;
    }
  }
  return low;
}

absl::StatusOr<v1::ReadResponse> LedgerClient::Read(const v1::ReadRequest& request) {
  return Unary<v1::ReadResponse>(
      "Read", server_, tls_.enabled, [&](grpc::ClientContext* c, v1::ReadResponse* r) {
        return ledger_->Read(c, request, r);
      });
}

absl::StatusOr<v1::GetCheckpointResponse> LedgerClient::GetCheckpoint(uint64_t tree_size, bool witnessed) {
  v1::GetCheckpointRequest request;
  request.set_witnessed(witnessed);
  request.set_tree_size(tree_size);
  return Unary<v1::GetCheckpointResponse>(
      "GetCheckpoint", server_, tls_.enabled, [&](grpc::ClientContext* c, v1::GetCheckpointResponse* r) {
        return audit_->GetCheckpoint(c, request, r);
      });
}

absl::StatusOr<v1::InclusionProofResponse> LedgerClient::GetInclusionProof(
    uint64_t position, uint64_t tree_size) {
  v1::InclusionProofRequest request;
  request.set_position(position);
  request.set_tree_size(tree_size);
  return Unary<v1::InclusionProofResponse>(
      "GetInclusionProof", server_, tls_.enabled,
      [&](grpc::ClientContext* c, v1::InclusionProofResponse* r) {
        return audit_->GetInclusionProof(c, request, r);
      });
}

absl::StatusOr<v1::ConsistencyProofResponse> LedgerClient::GetConsistencyProof(
    uint64_t from_size, uint64_t to_size) {
  v1::ConsistencyProofRequest request;
  request.set_from_size(from_size);
  request.set_to_size(to_size);
  return Unary<v1::ConsistencyProofResponse>(
      "GetConsistencyProof", server_, tls_.enabled,
      [&](grpc::ClientContext* c, v1::ConsistencyProofResponse* r) {
        return audit_->GetConsistencyProof(c, request, r);
      });
}

absl::Status LedgerClient::Subscribe(
    uint64_t from_position,
    const std::function<absl::StatusOr<bool>(const v1::RecordEntry&)>& on_entry,
    const std::function<void(uint64_t tree_size)>& on_caught_up) {
  grpc::ClientContext context;  // no deadline: a subscription follows the log
  v1::SubscribeRequest request;
  request.set_from_position(from_position);
  std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader =
      ledger_->Subscribe(&context, request);
  v1::SubscribeResponse response;
  absl::Status stop;  // set when the caller ends the stream
  bool stopped = false;
  while (!stopped && reader->Read(&response)) {
    for (const v1::RecordEntry& entry : response.entries()) {
      absl::StatusOr<bool> more = on_entry(entry);
      if (!more.ok() || !*more) {
        stop = more.status();
        stopped = true;
        break;
      }
    }
    if (!stopped && response.has_caught_up()) on_caught_up(response.caught_up().tree_size());
  }
  if (stopped) {
    context.TryCancel();
    reader->Finish().IgnoreError();  // CANCELLED, by us
    return stop;
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return Failed("Subscribe", server_, tls_.enabled, status);
  return absl::OkStatus();
}

}  // namespace ledger::ctl
