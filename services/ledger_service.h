// LedgerService over gRPC (callback API): translates requests, calls
// store::Ledger and store::Queries, translates answers. Never blocks in a
// reaction: Read (an index scan) runs on the worker pool.
//
// Subscribe streams keep one write in flight each; a stream that falls
// behind is refilled from RocksDB by the subscription pump thread, so a slow
// consumer holds back only itself and buffers at most one message. The
// commit listener only publishes the new tree size: the pump thread, not the
// sequencer, walks the streams to wake them. At most `max_subscribers`
// streams are open at once; one more is refused RESOURCE_EXHAUSTED.
#ifndef SERVICES_LEDGER_SERVICE_H_
#define SERVICES_LEDGER_SERVICE_H_

#include <chrono>
#include <deque>
#include <memory>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/support/byte_buffer.h"
#include "ledger/common/metrics.h"
#include "ledger/common/thread_pool.h"
#include "ledger/store/ledger.h"
#include "ledger/v1/ledger_service.grpc.pb.h"
#include "services/costly_rpcs.h"

namespace ledger::services {

class SubscribeStream;

// The generated CallbackService, with AppendBatch taking its request as raw
// bytes: a batch may be ~4 MB, and it is decoded where the service chooses
// (see AppendBatch), not on gRPC's few reaction threads. A method added to
// the proto must be added here too.
using LedgerServiceBase = v1::LedgerService::WithCallbackMethod_Append<
    v1::LedgerService::WithRawCallbackMethod_AppendBatch<v1::LedgerService::WithCallbackMethod_Get<
        v1::LedgerService::WithCallbackMethod_Read<v1::LedgerService::WithCallbackMethod_Subscribe<
            v1::LedgerService::WithCallbackMethod_GetLedgerInfo<v1::LedgerService::Service>>>>>>;

class LedgerServiceImpl final : public LedgerServiceBase {
 public:
  // `workers` runs Read; it outlives the service. `max_subscribers` >= 1.
  // `bulk_intake`: where batches over kInlineBatchBytes are decoded, one at a
  // time (a pool of one thread that outlives the service; tests hold it);
  // default: the service's own, of lower CPU priority.
  LedgerServiceImpl(store::Ledger* ledger, ThreadPool* workers, int max_subscribers = 256,
                    ThreadPool* bulk_intake = nullptr);
  ~LedgerServiceImpl() override;

  // AppendBatch bytes one address may send per second, with a second's worth
  // in a burst; beyond it, its batches wait their turn on the bulk-intake
  // thread, and one due more than 30 s ahead is refused LIMIT_REACHED (0: no
  // limit, the default). Call before the server starts.
  void LimitBatchBytesPerSecond(size_t bytes_per_second) { batch_bytes_per_second_ = bytes_per_second; }

  // A filtered Read (kinds or author) is served only to callers `policy`
  // admits (services/costly_rpcs.h); a Read by position is open to all. Call
  // before the server starts; `policy` outlives the service. Default: everyone.
  void RestrictCostlyRpcs(const CostlyRpcPolicy* policy) { costly_ = policy; }

  // Registers ledger_appends_total, ledger_append_duration_seconds and
  // ledger_subscribe_streams in `registry` (which outlives the service) and
  // keeps them. Call before the server starts.
  void ExportMetrics(metrics::Registry* registry);

  // Ends every open Subscribe stream (OK) and refuses new ones, and has
  // AppendBatch calls still waiting for the bulk-intake thread answered
  // SHUTTING_DOWN undecoded; call before shutting the server down.
  void StopStreams();

  grpc::ServerUnaryReactor* Append(grpc::CallbackServerContext* context,
                                   const v1::AppendRequest* request,
                                   v1::AppendResponse* response) override;
  // An AppendBatchRequest up to kInlineBatchBytes, from an address within its
  // byte rate, is decoded and submitted on the calling reaction thread; any
  // other on the bulk-intake thread.
  grpc::ServerUnaryReactor* AppendBatch(grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context,
                                const v1::GetRequest* request, v1::GetResponse* response) override;
  grpc::ServerUnaryReactor* Read(grpc::CallbackServerContext* context,
                                 const v1::ReadRequest* request, v1::ReadResponse* response) override;
  grpc::ServerWriteReactor<v1::SubscribeResponse>* Subscribe(
      grpc::CallbackServerContext* context, const v1::SubscribeRequest* request) override;
  grpc::ServerUnaryReactor* GetLedgerInfo(grpc::CallbackServerContext* context,
                                          const v1::GetLedgerInfoRequest* request,
                                          v1::GetLedgerInfoResponse* response) override;

 private:
  friend class SubscribeStream;
  void Schedule(SubscribeStream* stream);  // queue a refill on the pump
  void PumpLoop();
  void Unregister(SubscribeStream* stream);
  // Counts one Append/AppendBatch answer (ledger_appends_total) and its
  // latency; no-op without ExportMetrics.
  void CountAppend(bool batch, const absl::Status& status, bool replayed,
                   std::chrono::steady_clock::time_point started);
  // Counts `size` bytes from `peer` into the bulk-intake queue, or refuses
  // them (LIMIT_REACHED) beyond the queue's or the peer's share of it.
  absl::Status QueueBulk(const std::string& peer, size_t size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(bulk_mu_);
  void UnqueueBulk(const std::string& peer, size_t size);
  // Decides what becomes of a batch of `size` bytes from `peer`, arriving
  // `now`, and counts it: InfinitePast to decode it at once where it
  // arrived (small, its address within its rate); else queued for the
  // bulk-intake thread (QueueBulk) and the time to decode it at; or a
  // refusal (over the queue's bounds, or due over kMaxBatchRateWait ahead).
  absl::StatusOr<absl::Time> AdmitBatch(const std::string& peer, size_t size, absl::Time now);
  // Charges `peer` `size` bytes at batch_bytes_per_second_; returns when
  // the batch may be decoded (now, or later).
  absl::Time ChargeBatchBytes(const std::string& peer, size_t size, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(bulk_mu_);
  // Counts an AppendBatch answer (CountAppend) and finishes the call with it.
  void AnswerBatch(grpc::ServerUnaryReactor* reactor, const absl::Status& status, bool replayed,
                   std::chrono::steady_clock::time_point started);
  // Decodes one AppendBatchRequest, submits its events and answers.
  void DecodeAndSubmitBatch(grpc::ServerUnaryReactor* reactor, grpc::ByteBuffer request, grpc::ByteBuffer* response,
                            std::chrono::steady_clock::time_point started);

  store::Ledger* ledger_;
  ThreadPool* const workers_;
  const CostlyRpcPolicy* costly_ = nullptr;
  const int max_subscribers_;
  int listener_id_;
  metrics::CounterFamily* appends_ = nullptr;
  metrics::Histogram* append_seconds_ = nullptr;
  metrics::Gauge* open_streams_ = nullptr;
  // The common case without the family's lock: Append, AppendBatch accepted.
  metrics::Counter* append_accepted_ = nullptr;
  metrics::Counter* batch_accepted_ = nullptr;

  // Lock order: mu_, then a stream's own mutex, then pump_mu_.
  absl::Mutex mu_;
  absl::flat_hash_set<SubscribeStream*> streams_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  absl::Mutex pump_mu_;
  absl::CondVar pump_cv_;
  std::deque<SubscribeStream*> pump_queue_ ABSL_GUARDED_BY(pump_mu_);
  bool pump_exit_ ABSL_GUARDED_BY(pump_mu_) = false;
  // Set by the commit listener; the pump wakes every stream when it grows.
  uint64_t committed_size_ ABSL_GUARDED_BY(pump_mu_) = 0;
  std::thread pump_;

  // Batches larger than kInlineBatchBytes wait here to be decoded and
  // submitted, one at a time, on a thread of lower CPU priority: a member
  // sending 4 MB batches (issue 9's hostile member) holds neither gRPC's
  // reaction threads nor, when the cores are busy, the CPU that other
  // members' appends need. Bounded by bulk_limit_bytes_ of raw requests
  // queued, and a quarter of that from one address; one more is refused
  // LIMIT_REACHED. Queued calls are answered without decoding once their
  // client has cancelled or the server stops. Last members: the service's
  // own pool is destroyed (its queue run out) first.
  const size_t bulk_limit_bytes_;
  absl::Mutex bulk_mu_;
  size_t bulk_queued_bytes_ ABSL_GUARDED_BY(bulk_mu_) = 0;
  absl::flat_hash_map<std::string, size_t> bulk_queued_by_peer_ ABSL_GUARDED_BY(bulk_mu_);
  // The byte rate per address (LimitBatchBytesPerSecond): for each address
  // that sent a batch lately, the time its sending would be paid for at the
  // rate. A batch is decoded no earlier than a second before that time: a
  // member looping over 4 MB batches then costs ledgerd a bounded share of
  // the cores, whatever their rate on the wire (issue 9).
  size_t batch_bytes_per_second_ = 0;
  absl::flat_hash_map<std::string, absl::Time> batch_paid_until_ ABSL_GUARDED_BY(bulk_mu_);
  size_t batch_rate_sweep_at_ ABSL_GUARDED_BY(bulk_mu_);  // kBatchRatePeersSwept, then doubling
  std::unique_ptr<ThreadPool> own_bulk_intake_;
  ThreadPool* bulk_intake_;
};

}  // namespace ledger::services

#endif  // SERVICES_LEDGER_SERVICE_H_
