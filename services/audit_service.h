// AuditService over gRPC: signed checkpoints and Merkle proofs, and
// verification of the server's own log (Verify, VerifyProposal).
#ifndef SERVICES_AUDIT_SERVICE_H_
#define SERVICES_AUDIT_SERVICE_H_

#include <atomic>

#include "ledger/store/ledger.h"
#include "ledger/v1/ledger_service.grpc.pb.h"

namespace ledger::services {

class AuditServiceImpl final : public v1::AuditService::CallbackService {
 public:
  explicit AuditServiceImpl(const store::Ledger* ledger) : ledger_(ledger) {}

  grpc::ServerUnaryReactor* GetCheckpoint(grpc::CallbackServerContext* context,
                                          const v1::GetCheckpointRequest* request,
                                          v1::GetCheckpointResponse* response) override;
  grpc::ServerUnaryReactor* GetInclusionProof(grpc::CallbackServerContext* context,
                                              const v1::InclusionProofRequest* request,
                                              v1::InclusionProofResponse* response) override;
  grpc::ServerUnaryReactor* GetConsistencyProof(grpc::CallbackServerContext* context,
                                                const v1::ConsistencyProofRequest* request,
                                                v1::ConsistencyProofResponse* response) override;
  grpc::ServerUnaryReactor* ListCheckpoints(grpc::CallbackServerContext* context,
                                            const v1::ListCheckpointsRequest* request,
                                            v1::ListCheckpointsResponse* response) override;
  // Runs on a worker thread of its own (never a gRPC thread), one write in
  // flight; at most kMaxVerifications at once, more are RESOURCE_EXHAUSTED.
  grpc::ServerWriteReactor<v1::VerifyProgress>* Verify(grpc::CallbackServerContext* context,
                                                       const v1::VerifyRequest* request) override;
  grpc::ServerUnaryReactor* VerifyProposal(grpc::CallbackServerContext* context,
                                           const v1::VerifyProposalRequest* request,
                                           v1::VerifyProposalResponse* response) override;

  static constexpr int kMaxVerifications = 2;

 private:
  const store::Ledger* ledger_;
  std::atomic<int> verifications_{0};
};

}  // namespace ledger::services

#endif  // SERVICES_AUDIT_SERVICE_H_
