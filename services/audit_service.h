// AuditService over gRPC: signed checkpoints and Merkle proofs, and
// verification of the server's own log (Verify, VerifyProposal). Translates
// and calls ledger/ (audit::LogVerifier, store::ProposalEvidence); scans run
// on worker threads, never on a gRPC reaction.
#ifndef SERVICES_AUDIT_SERVICE_H_
#define SERVICES_AUDIT_SERVICE_H_

#include <algorithm>
#include <atomic>

#include "absl/time/time.h"
#include "ledger/common/thread_pool.h"
#include "ledger/store/ledger.h"
#include "ledger/v1/ledger_service.grpc.pb.h"
#include "services/costly_rpcs.h"

namespace ledger::services {

class AuditServiceImpl final : public v1::AuditService::CallbackService {
 public:
  // `verify_pool` checks signatures for Verify (shared with whoever else
  // verifies: one pool per server); `workers` runs the scans of
  // ListCheckpoints and VerifyProposal. Both outlive the service.
  // At most `max_verifications` (>= 1) Verify calls run at once; one whose
  // client reads nothing for `stall_timeout` is cancelled (ledgerd
  // --stream-stall-seconds), so a client cannot keep a slot by not reading.
  AuditServiceImpl(const store::Ledger* ledger, ThreadPool* verify_pool, ThreadPool* workers,
                   int max_verifications, absl::Duration stall_timeout)
      : ledger_(ledger), verify_pool_(verify_pool), workers_(workers),
        max_verifications_(max_verifications < 1 ? 1 : max_verifications), stall_timeout_(stall_timeout) {}

  // Verify and ListCheckpoints are served only to callers `policy` admits
  // (services/costly_rpcs.h). Call before the server starts; `policy`
  // outlives the service. Default: everyone.
  void RestrictCostlyRpcs(const CostlyRpcPolicy* policy) { costly_ = policy; }

  // Verify calls running now (ledgerd's ledger_verifications_running).
  int verifications_running() const { return std::min(verifications_.load(), max_verifications_); }

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
  // Runs on a thread of its own (never a gRPC thread), its signatures checked
  // on the verify pool, one write in flight; at most max_verifications at
  // once, more are RESOURCE_EXHAUSTED LIMIT_REACHED.
  grpc::ServerWriteReactor<v1::VerifyProgress>* Verify(grpc::CallbackServerContext* context,
                                                       const v1::VerifyRequest* request) override;
  grpc::ServerUnaryReactor* VerifyProposal(grpc::CallbackServerContext* context,
                                           const v1::VerifyProposalRequest* request,
                                           v1::VerifyProposalResponse* response) override;

 private:
  const store::Ledger* ledger_;
  ThreadPool* const verify_pool_;
  ThreadPool* const workers_;
  const int max_verifications_;
  const absl::Duration stall_timeout_;
  std::atomic<int> verifications_{0};
  const CostlyRpcPolicy* costly_ = nullptr;
};

}  // namespace ledger::services

#endif  // SERVICES_AUDIT_SERVICE_H_
