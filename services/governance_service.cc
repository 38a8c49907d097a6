#include "services/governance_service.h"

#include "services/grpc_status.h"
#include "services/worker.h"

namespace ledger::services {
namespace {

// A point read of committed state: answered inline.
template <typename Response>
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, absl::StatusOr<Response> answer,
                                 Response* response) {
  if (answer.ok()) *response = *std::move(answer);
  auto* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpc(answer.status()));
  return reactor;
}

// A list query (a scan): answered from `workers`.
template <typename Response, typename Query>
grpc::ServerUnaryReactor* AnswerOnWorker(grpc::CallbackServerContext* context, ThreadPool* workers,
                                         Response* response, Query query) {
  return FinishOnWorker(context, workers, [response, query = std::move(query)]() mutable {
    absl::StatusOr<Response> answer = query();
    if (answer.ok()) *response = *std::move(answer);
    return answer.status();
  });
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
  return AnswerOnWorker(context, workers_, response, [this, request] { return queries_.Proposals(*request); });
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
  return AnswerOnWorker(context, workers_, response, [this, request] { return queries_.Vetoes(*request); });
}
grpc::ServerUnaryReactor* GovernanceServiceImpl::ListOverrules(grpc::CallbackServerContext* context,
                                                               const v1::QueryFilter* request,
                                                               v1::ListOverrulesResponse* response) {
  return AnswerOnWorker(context, workers_, response, [this, request] { return queries_.Overrules(*request); });
}
grpc::ServerUnaryReactor* GovernanceServiceImpl::ListRefusals(grpc::CallbackServerContext* context,
                                                              const v1::QueryFilter* request,
                                                              v1::ListRefusalsResponse* response) {
  return AnswerOnWorker(context, workers_, response, [this, request] { return queries_.Refusals(*request); });
}
grpc::ServerUnaryReactor* GovernanceServiceImpl::GetHistory(grpc::CallbackServerContext* context,
                                                            const v1::QueryFilter* request,
                                                            v1::HistoryResponse* response) {
  return AnswerOnWorker(context, workers_, response, [this, request] { return queries_.History(*request); });
}
grpc::ServerUnaryReactor* GovernanceServiceImpl::ListIdentityChanges(grpc::CallbackServerContext* context,
                                                                     const v1::QueryFilter* request,
                                                                     v1::ListIdentityChangesResponse* response) {
  return AnswerOnWorker(context, workers_, response, [this, request] { return queries_.IdentityChanges(*request); });
}

}  // namespace ledger::services
