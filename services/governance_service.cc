#include "services/governance_service.h"

#include "services/grpc_status.h"

namespace ledger::services {
namespace {

// Queries are short reads of committed state: answered inline.
template <typename Response>
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, absl::StatusOr<Response> answer,
                                 Response* response) {
  if (answer.ok()) *response = *std::move(answer);
  auto* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpc(answer.status()));
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* GovernanceServiceImpl::GetProposal(grpc::CallbackServerContext* context,
                                                             const v1::GetProposalRequest* request,
                                                             v1::ProposalState* response) {
  return Answer(context, queries_.Proposal(request->proposal_id()), response);
}
grpc::ServerUnaryReactor* GovernanceServiceImpl::ListProposals(grpc::CallbackServerContext* context,
                                                               const v1::ListProposalsRequest* request,
                                                               v1::ListProposalsResponse* response) {
  return Answer(context, queries_.Proposals(*request), response);
}
grpc::ServerUnaryReactor* GovernanceServiceImpl::GetCollective(grpc::CallbackServerContext* context,
                                                               const v1::GetCollectiveRequest* request,
                                                               v1::CollectiveState* response) {
  return Answer(context, queries_.Collective(request->collective_id()), response);
}
grpc::ServerUnaryReactor* GovernanceServiceImpl::GetOrganisation(grpc::CallbackServerContext* context,
                                                                 const v1::GetOrganisationRequest* request,
                                                                 v1::OrganisationView* response) {
  return Answer(context, queries_.Organisation(request->org_id()), response);
}
grpc::ServerUnaryReactor* GovernanceServiceImpl::ListVetoes(grpc::CallbackServerContext* context,
                                                            const v1::QueryFilter* request,
                                                            v1::ListVetoesResponse* response) {
  return Answer(context, queries_.Vetoes(*request), response);
}
grpc::ServerUnaryReactor* GovernanceServiceImpl::ListOverrules(grpc::CallbackServerContext* context,
                                                               const v1::QueryFilter* request,
                                                               v1::ListOverrulesResponse* response) {
  return Answer(context, queries_.Overrules(*request), response);
}
grpc::ServerUnaryReactor* GovernanceServiceImpl::ListRefusals(grpc::CallbackServerContext* context,
                                                              const v1::QueryFilter* request,
                                                              v1::ListRefusalsResponse* response) {
  return Answer(context, queries_.Refusals(*request), response);
}
grpc::ServerUnaryReactor* GovernanceServiceImpl::GetHistory(grpc::CallbackServerContext* context,
                                                            const v1::QueryFilter* request,
                                                            v1::HistoryResponse* response) {
  return Answer(context, queries_.History(*request), response);
}

}  // namespace ledger::services
