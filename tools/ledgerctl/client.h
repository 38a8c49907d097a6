// ledgerctl's view of ledgerd: one channel, the LedgerService and AuditService
// stubs, and every RPC as a function returning absl::Status.
//
// The channel, connection wait and error decoding are the client library's
// (client/channel.h, client/error_detail.h).
//
// Errors name the RPC and the server and carry the server's code, reason and
// message (client::Describe), e.g.
//   "Append at 127.0.0.1:7400: FAILED_PRECONDITION (NOT_A_REGISTRAR): ..."
// Unary calls have a 30 s deadline; Subscribe has none (it follows the log
// until told to stop).
//
// Thread contract: one LedgerClient per thread (ledgerctl has one).
#ifndef TOOLS_LEDGERCTL_CLIENT_H_
#define TOOLS_LEDGERCTL_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/channel.h"
#include "grpcpp/channel.h"
#include "ledger/v1/governance_service.grpc.pb.h"
#include "ledger/v1/ledger_service.grpc.pb.h"
#include "tools/ledgerctl/flags.h"

namespace ledger::ctl {

class LedgerClient;

// --since / --until (RFC 3339, e.g. 2026-12-01T09:00:00Z): the positions
// [from, to) of the records whose ledger time is in [since, until), narrowed
// from [from, to) (to = 0: the end). Untouched when neither flag is given.
// A range with no record in it comes out as [1, 1) (to = 0 would mean "to
// the end").
absl::Status NarrowToTimes(const ParsedFlags& flags, LedgerClient& client, uint64_t& from, uint64_t& to);

class LedgerClient {
 public:
  // A channel (client/channel.h), TLS if `tls` is enabled; waits up to
  // client::kInteractiveConnectWait for the first connection. A plaintext
  // client's UNAVAILABLE errors add "(if ledgerd serves TLS, give --tls-ca FILE)".
  explicit LedgerClient(std::string server, client::TlsOptions tls = {});

  const std::string& server() const { return server_; }

  absl::StatusOr<v1::GetLedgerInfoResponse> GetLedgerInfo();
  absl::StatusOr<v1::AppendResponse> Append(const v1::SignedEvent& event);
  // The first position whose ledger time is at or after `unix_ns`, or the
  // tree size if none is: a binary search over Get (ledger time never goes
  // backwards along the log), about log2(size) calls.
  absl::StatusOr<uint64_t> FirstPositionAtOrAfter(int64_t unix_ns);
  // The entry at `position` (checked to be that position).
  absl::StatusOr<v1::RecordEntry> Get(uint64_t position);
  absl::StatusOr<v1::ReadResponse> Read(const v1::ReadRequest& request);
  // tree_size 0: the latest checkpoint.
  // witnessed: the newest checkpoint a witness quorum cosigned (tree_size 0).
  absl::StatusOr<v1::GetCheckpointResponse> GetCheckpoint(uint64_t tree_size, bool witnessed = false);
  absl::StatusOr<v1::InclusionProofResponse> GetInclusionProof(uint64_t position,
                                                               uint64_t tree_size);
  absl::StatusOr<v1::ConsistencyProofResponse> GetConsistencyProof(uint64_t from_size,
                                                                   uint64_t to_size);

  absl::StatusOr<v1::ListCheckpointsResponse> ListCheckpoints(uint64_t from_size, uint64_t to_size);
  // AuditService.Verify: `on_message` sees each progress message and the
  // final report, in order. No deadline (a long log takes a while). Returns
  // the stream's status.
  absl::Status Verify(const v1::VerifyRequest& request,
                      const std::function<void(const v1::VerifyProgress&)>& on_message);
  absl::StatusOr<v1::VerifyProposalResponse> VerifyProposal(const std::string& proposal_id);

  // GovernanceService.
  absl::StatusOr<v1::ProposalState> GetProposal(const std::string& proposal_id);
  absl::StatusOr<v1::ListProposalsResponse> ListProposals(const v1::ListProposalsRequest& request);
  absl::StatusOr<v1::CollectiveState> GetCollective(const std::string& collective_id);
  absl::StatusOr<v1::OrganisationView> GetOrganisation(const std::string& org_id);
  absl::StatusOr<v1::ListVetoesResponse> ListVetoes(const v1::QueryFilter& filter);
  absl::StatusOr<v1::ListOverrulesResponse> ListOverrules(const v1::QueryFilter& filter);
  absl::StatusOr<v1::ListRefusalsResponse> ListRefusals(const v1::QueryFilter& filter);
  absl::StatusOr<v1::HistoryResponse> GetHistory(const v1::QueryFilter& filter);
  absl::StatusOr<v1::ListIdentityChangesResponse> ListIdentityChanges(const v1::QueryFilter& filter);

  // Streams records from `from_position`. `on_entry` is called for each
  // record in order: true to continue, false to stop (the call is cancelled
  // and Subscribe returns OK), an error to stop and return it. `on_caught_up`
  // is called once, with the tree size, when the catch-up is done. Returns
  // the stream's final status if the server ends it.
  absl::Status Subscribe(
      uint64_t from_position,
      const std::function<absl::StatusOr<bool>(const v1::RecordEntry&)>& on_entry,
      const std::function<void(uint64_t tree_size)>& on_caught_up);

 private:
  std::string server_;
  client::TlsOptions tls_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::LedgerService::Stub> ledger_;
  std::unique_ptr<v1::AuditService::Stub> audit_;
  std::unique_ptr<v1::GovernanceService::Stub> governance_;
};

}  // namespace ledger::ctl

#endif  // TOOLS_LEDGERCTL_CLIENT_H_
