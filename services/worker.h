// Long work off the gRPC reaction threads: a unary call whose answer needs a
// scan (RocksDB iteration, a proposal's history) is answered from a worker
// pool, never from the reaction that received it (STYLE: reactions never
// block).
#ifndef SERVICES_WORKER_H_
#define SERVICES_WORKER_H_

#include <utility>

#include "grpcpp/grpcpp.h"
#include "ledger/common/thread_pool.h"
#include "services/grpc_status.h"

namespace ledger::services {

// Runs `work` (returning absl::Status; it fills the response) on `workers`
// and finishes the call with its status. The request and response stay
// valid until Finish, so `work` may use them. Returns the call's reactor.
template <typename Work>
grpc::ServerUnaryReactor* FinishOnWorker(grpc::CallbackServerContext* context, ThreadPool* workers, Work work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  workers->Schedule([reactor, work = std::move(work)]() mutable { reactor->Finish(ToGrpc(work())); });
  return reactor;
}

}  // namespace ledger::services

#endif  // SERVICES_WORKER_H_
