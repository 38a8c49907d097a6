#include "services/governance_service.h"

#include <chrono>
#include <string>

#include "client/channel.h"
#include "services/grpc_status.h"
#include "services/worker.h"

namespace ledger::services {
namespace {

using ServerClock = std::chrono::steady_clock;

// Reports the handler's elapsed time as trailing metadata
// (client::kServerTimingMetadata); call just before Finish.
void AddServerTiming(grpc::CallbackServerContext* context, ServerClock::time_point start) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(ServerClock::now() - start).count();
  context->AddTrailingMetadata(client::kServerTimingMetadata, std::to_string(ns));
}

// A point read of committed state: answered inline.
template <typename Response, typename Query>
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, Response* response, Query query) {
  const ServerClock::time_point start = ServerClock::now();
  absl::StatusOr<Response> answer = query();
  if (answer.ok()) *response = *std::move(answer);
  auto* reactor = context->DefaultReactor();
  AddServerTiming(context, start);
  reactor->Finish(ToGrpc(answer.status()));
  return reactor;
}

// A list query (a scan): answered from `workers`.
template <typename Response, typename Query>
grpc::ServerUnaryReactor* AnswerOnWorker(grpc::CallbackServerContext* context, ThreadPool* workers,
                                         Response* response, Query query) {
  const ServerClock::time_point start = ServerClock::now();
  return FinishOnWorker(context, workers, [context, start, response, query = std::move(query)]() mutable {
    absl::StatusOr<Response> answer = query();
    if (answer.ok()) *response = *std::move(answer);
    AddServerTiming(context, start);
    return answer.status();
  });
}

}  // namespace

grpc::ServerUnaryReactor* GovernanceServiceImpl::GetProposal(grpc::CallbackServerContext* context,
                                                             const v1::GetProposalRequest* request,
                                                             v1::ProposalState* response) {
  return Answer(context, response, [this, request] { return queries_.Proposal(request->proposal_id()); });
}
grpc::ServerUnaryReactor* GovernanceServiceImpl::ListProposals(grpc::CallbackServerContext* context,
                                                               const v1::ListProposalsRequest* request,
                                                               v1::ListProposalsResponse* response) {
  return AnswerOnWorker(context, workers_, response, [this, request] { return queries_.Proposals(*request); });
}
grpc::ServerUnaryReactor* GovernanceServiceImpl::GetCollective(grpc::CallbackServerContext* context,
                                                               const v1::GetCollectiveRequest* request,
                                                               v1::CollectiveState* response) {
  return Answer(context, response, [this, request] { return queries_.Collective(request->collective_id()); });
}
grpc::ServerUnaryReactor* GovernanceServiceImpl::GetOrganisation(grpc::CallbackServerContext* context,
                                                                 const v1::GetOrganisationRequest* request,
                                                                 v1::OrganisationView* response) {
  return Answer(context, response, [this, request] { return queries_.Organisation(request->org_id()); });
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
  // A proposal's history page is point reads (the proposal, then its page
  // of records in one batched read), answered inline like GetProposal: a
  // hand-off to a worker cost more than the reads on a busy machine. An
  // organisation's history scans an index, and a page over kInlineHistoryLimit
  // is a big read: those go to a worker.
  constexpr uint32_t kInlineHistoryLimit = 100;
  if (!request->proposal_id().empty() && request->limit() <= kInlineHistoryLimit) {
    return Answer(context, response, [this, request] { return queries_.History(*request); });
  }
  return AnswerOnWorker(context, workers_, response, [this, request] { return queries_.History(*request); });
}
grpc::ServerUnaryReactor* GovernanceServiceImpl::ListIdentityChanges(grpc::CallbackServerContext* context,
                                                                     const v1::QueryFilter* request,
                                                                     v1::ListIdentityChangesResponse* response) {
  return AnswerOnWorker(context, workers_, response, [this, request] { return queries_.IdentityChanges(*request); });
}

}  // namespace ledger::services
