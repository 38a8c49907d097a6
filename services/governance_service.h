// GovernanceService over gRPC: translates store::Queries answers. Point reads
// (one proposal, collective, organisation) are answered inline; list queries
// scan, so they run on `workers`, off the gRPC reaction threads. Every answer
// carries trailing metadata client::kServerTimingMetadata ("server-timing-ns"):
// the handler's elapsed time, queue wait included.
#ifndef SERVICES_GOVERNANCE_SERVICE_H_
#define SERVICES_GOVERNANCE_SERVICE_H_

#include "ledger/common/thread_pool.h"
#include "ledger/store/queries.h"
#include "ledger/v1/governance_service.grpc.pb.h"

namespace ledger::services {

class GovernanceServiceImpl final : public v1::GovernanceService::CallbackService {
 public:
  GovernanceServiceImpl(const store::Store* store, ThreadPool* workers) : queries_(store), workers_(workers) {}

  grpc::ServerUnaryReactor* GetProposal(grpc::CallbackServerContext* context, const v1::GetProposalRequest* request,
                                        v1::ProposalState* response) override;
  grpc::ServerUnaryReactor* ListProposals(grpc::CallbackServerContext* context,
                                          const v1::ListProposalsRequest* request,
                                          v1::ListProposalsResponse* response) override;
  grpc::ServerUnaryReactor* GetCollective(grpc::CallbackServerContext* context,
                                          const v1::GetCollectiveRequest* request,
                                          v1::CollectiveState* response) override;
  grpc::ServerUnaryReactor* GetOrganisation(grpc::CallbackServerContext* context,
                                            const v1::GetOrganisationRequest* request,
                                            v1::OrganisationView* response) override;
  grpc::ServerUnaryReactor* ListVetoes(grpc::CallbackServerContext* context, const v1::QueryFilter* request,
                                       v1::ListVetoesResponse* response) override;
  grpc::ServerUnaryReactor* ListOverrules(grpc::CallbackServerContext* context, const v1::QueryFilter* request,
                                          v1::ListOverrulesResponse* response) override;
  grpc::ServerUnaryReactor* ListRefusals(grpc::CallbackServerContext* context, const v1::QueryFilter* request,
                                         v1::ListRefusalsResponse* response) override;
  grpc::ServerUnaryReactor* GetHistory(grpc::CallbackServerContext* context, const v1::QueryFilter* request,
                                       v1::HistoryResponse* response) override;
  grpc::ServerUnaryReactor* ListIdentityChanges(grpc::CallbackServerContext* context, const v1::QueryFilter* request,
                                                v1::ListIdentityChangesResponse* response) override;

 private:
  store::Queries queries_;
  ThreadPool* const workers_;
};

}  // namespace ledger::services

#endif  // SERVICES_GOVERNANCE_SERVICE_H_
