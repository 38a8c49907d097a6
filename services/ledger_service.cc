#include "services/ledger_service.h"

#include <algorithm>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "grpcpp/support/proto_buffer_writer.h"
#include "ledger/event/refusal.h"
#include "ledger/store/queries.h"
#include "services/grpc_status.h"
#include "services/worker.h"

namespace ledger::services {
namespace {

constexpr size_t kMaxStreamMessageRecords = 512;
constexpr size_t kMaxStreamMessageBytes = 1 << 20;
// An AppendBatchRequest larger than this is decoded on the bulk-intake
// thread (LedgerServiceImpl::bulk_intake_). The load generator's batches of
// 100 KeyAdded are ~25 KiB; a hostile batch of 1,000 maximal votes ~4 MB.
constexpr size_t kInlineBatchBytes = 256 << 10;
// One address may hold at most 1/kBulkPeerShare of the bulk-intake queue.
constexpr size_t kBulkPeerShare = 4;
// What an address may send at once under the batch byte rate: this long at
// the rate.
constexpr absl::Duration kBatchBurst = absl::Seconds(1);
// Addresses whose rate state is kept before the idle ones are dropped.
constexpr size_t kBatchRatePeersSwept = 4096;
// The furthest ahead a batch is queued for its address's rate; a batch due
// later is refused LIMIT_REACHED (and not charged), so that an address
// sending far beyond its rate, or a clock stepped back, does not fill the
// bulk-intake queue with calls due in minutes.
constexpr absl::Duration kMaxBatchRateWait = absl::Seconds(30);

// gRPC's peer string without its port ("ipv4:10.0.0.7:51234" ->
// "ipv4:10.0.0.7"): a member opening more connections is still one address.
std::string PeerAddress(const std::string& peer) {
  if (!absl::StartsWith(peer, "ipv4:") && !absl::StartsWith(peer, "ipv6:")) return peer;
  const size_t colon = peer.rfind(':');
  return colon == std::string::npos || colon < 5 ? peer : peer.substr(0, colon);
}

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context, const absl::Status& status) {
  auto* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpc(status));
  return reactor;
}

}  // namespace

// One Subscribe call. It is idle, scheduled (queued on or being run by the
// pump), writing (one write in flight), finished (Finish called) or done
// (gRPC is finished with it). Deleted by whichever of OnDone and the pump
// sees it last. Finish and StartWrite are never called under mu_, so a
// reaction that gRPC runs inline cannot deadlock on it.
class SubscribeStream final : public grpc::ServerWriteReactor<v1::SubscribeResponse> {
 public:
  SubscribeStream(LedgerServiceImpl* service, uint64_t from) : service_(service), next_(from) {}

  // Pump thread only: fill the next message and start writing it.
  void Pump() {
    {
      absl::MutexLock lock(&mu_);
      rewake_ = false;
      if (!done_ && (finished_ || writing_)) {
        scheduled_ = false;
        return;
      }
    }
    if (IsDone()) {
      delete this;
      return;
    }
    std::optional<grpc::Status> finish;
    bool write = Fill(&finish);
    {
      absl::MutexLock lock(&mu_);
      if (finished_) {
        write = false;
        finish.reset();
      } else if (stopping_ && !finish.has_value()) {
        write = false;
        finish = grpc::Status::OK;
      }
      if (finish.has_value()) finished_ = true;
      writing_ = write;
    }
    if (write) StartWrite(&response_);
    if (finish.has_value()) Finish(*finish);
    bool delete_now;
    {
      absl::MutexLock lock(&mu_);
      scheduled_ = false;
      delete_now = done_;
      if (!delete_now && rewake_) WakeLocked();
    }
    if (delete_now) delete this;
  }

  // Any thread: ask the pump to continue this stream if it is idle.
  void Wake() {
    absl::MutexLock lock(&mu_);
    WakeLocked();
  }

  // Ends the stream with OK once any write in flight completes.
  void Stop() {
    bool finish_now;
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      finish_now = !writing_ && !finished_ && !scheduled_;
      if (finish_now) finished_ = true;
    }
    if (finish_now) Finish(grpc::Status::OK);
  }

  void OnWriteDone(bool ok) override {
    bool finish_now = false;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if ((!ok || stopping_) && !finished_) {
        finish_now = true;
        finished_ = true;
      } else {
        WakeLocked();
      }
    }
    if (finish_now) Finish(ok ? grpc::Status::OK : grpc::Status::CANCELLED);
  }

  void OnCancel() override {
    bool finish_now;
    {
      absl::MutexLock lock(&mu_);
      finish_now = !writing_ && !finished_ && !scheduled_;
      if (finish_now) finished_ = true;
      stopping_ = true;  // a scheduled pump or a write in flight ends it
    }
    if (finish_now) Finish(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    service_->Unregister(this);  // no more wakes from commits after this
    bool delete_now;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      delete_now = !scheduled_;  // else the pump deletes it
    }
    if (delete_now) delete this;
  }

 private:
  bool IsDone() {
    absl::MutexLock lock(&mu_);
    return done_;
  }

  void WakeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (scheduled_) {
      rewake_ = true;  // the pump looks again when it is through
      return;
    }
    if (writing_ || finished_ || done_) return;
    scheduled_ = true;
    service_->Schedule(this);
  }

  // Builds the next message: records from next_, else the caught-up marker
  // once. False if there is nothing to send (or the stream must end).
  bool Fill(std::optional<grpc::Status>* finish) {
    const store::Ledger& ledger = *service_->ledger_;
    const uint64_t size = ledger.size();
    response_.Clear();
    if (next_ < size) {
      size_t bytes = 0;
      absl::Status scanned = ledger.store().ScanRecords(
          next_, std::min<uint64_t>(size, next_ + kMaxStreamMessageRecords),
          [&](uint64_t position, std::string_view record) {
            v1::RecordEntry* entry = response_.add_entries();
            entry->set_position(position);
            entry->set_record(std::string(record));
            bytes += record.size();
            return bytes < kMaxStreamMessageBytes;
          });
      if (!scanned.ok()) {
        *finish = ToGrpc(scanned);
        return false;
      }
      next_ += response_.entries_size();
      return true;
    }
    if (!caught_up_sent_) {
      response_.mutable_caught_up()->set_tree_size(size);
      caught_up_sent_ = true;
      return true;
    }
    return false;  // idle until the next commit wakes us
  }

  LedgerServiceImpl* const service_;
  // Touched only by the pump thread, or by gRPC while a write is in flight.
  uint64_t next_;
  bool caught_up_sent_ = false;
  v1::SubscribeResponse response_;

  absl::Mutex mu_;
  bool scheduled_ ABSL_GUARDED_BY(mu_) = false;
  bool rewake_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

LedgerServiceImpl::LedgerServiceImpl(store::Ledger* ledger, ThreadPool* workers, int max_subscribers,
                                     ThreadPool* bulk_intake)
    : ledger_(ledger),
      workers_(workers),
      max_subscribers_(std::max(1, max_subscribers)),
      bulk_limit_bytes_(ledger->max_inflight_bytes()),
      batch_rate_sweep_at_(kBatchRatePeersSwept),
      bulk_intake_(bulk_intake) {
  if (bulk_intake_ == nullptr) {
    own_bulk_intake_ = std::make_unique<ThreadPool>(1, kBulkWorkNice, "bulk-intake");
    bulk_intake_ = own_bulk_intake_.get();
  }
  {
    absl::MutexLock lock(&pump_mu_);
    committed_size_ = ledger_->size();
  }
  pump_ = std::thread([this] {
    NameThisThread("stream-pump");
    PumpLoop();
  });
  // Runs on the sequencer thread after every commit: publishes the size and
  // nothing else, whatever the number of streams (the pump wakes them).
  listener_id_ = ledger_->AddListener([this](uint64_t size) {
    absl::MutexLock lock(&pump_mu_);
    committed_size_ = std::max(committed_size_, size);
    pump_cv_.Signal();
  });
}

LedgerServiceImpl::~LedgerServiceImpl() {
  ledger_->RemoveListener(listener_id_);
  {
    absl::MutexLock lock(&pump_mu_);
    pump_exit_ = true;
    pump_cv_.SignalAll();
  }
  pump_.join();
}

void LedgerServiceImpl::StopStreams() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (SubscribeStream* stream : streams_) stream->Stop();
  }
  bulk_intake_->RunTimedTasksNow();  // batches waiting for their byte rate are answered now
}

void LedgerServiceImpl::Schedule(SubscribeStream* stream) {
  absl::MutexLock lock(&pump_mu_);
  pump_queue_.push_back(stream);
  pump_cv_.Signal();
}

void LedgerServiceImpl::Unregister(SubscribeStream* stream) {
  absl::MutexLock lock(&mu_);
  if (streams_.erase(stream) > 0 && open_streams_ != nullptr) open_streams_->Add(-1);
}

void LedgerServiceImpl::ExportMetrics(metrics::Registry* registry) {
  appends_ = registry->AddCounterFamily(
      "ledger_appends_total",
      "Append and AppendBatch calls answered, by method and outcome: accepted, replayed (identical resubmission), "
      "refused (a ledger reason, in reason) or rejected (a gRPC error without one); code is the gRPC status.",
      {"method", "outcome", "code", "reason"});
  append_seconds_ = registry->AddHistogram(
      "ledger_append_duration_seconds", "Seconds from receiving an Append or AppendBatch call to its answer.",
      metrics::LatencyBuckets());
  open_streams_ = registry->AddGauge("ledger_subscribe_streams", "Subscribe streams open.");
  append_accepted_ = appends_->With({"Append", "accepted", "OK", ""});
  batch_accepted_ = appends_->With({"AppendBatch", "accepted", "OK", ""});
}

void LedgerServiceImpl::CountAppend(bool batch, const absl::Status& status, bool replayed,
                                    std::chrono::steady_clock::time_point started) {
  if (appends_ == nullptr) return;
  append_seconds_->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  if (status.ok() && !replayed) {
    (batch ? batch_accepted_ : append_accepted_)->Increment();
    return;
  }
  const char* method = batch ? "AppendBatch" : "Append";
  const v1::Reason reason = status.ok() ? v1::REASON_UNSPECIFIED : ReasonOf(status);
  const char* outcome = status.ok() ? (replayed ? "replayed" : "accepted")
                                    : (reason != v1::REASON_UNSPECIFIED ? "refused" : "rejected");
  appends_
      ->With({method, outcome, absl::StatusCodeToString(status.code()),
              reason == v1::REASON_UNSPECIFIED ? "" : v1::Reason_Name(reason)})
      ->Increment();
}

void LedgerServiceImpl::PumpLoop() {
  uint64_t woken_for = 0;  // the committed size every stream was woken for
  {
    absl::MutexLock lock(&pump_mu_);
    woken_for = committed_size_;
  }
  while (true) {
    SubscribeStream* stream = nullptr;
    bool wake_all = false;
    {
      absl::MutexLock lock(&pump_mu_);
      while (pump_queue_.empty() && !pump_exit_ && committed_size_ == woken_for) pump_cv_.Wait(&pump_mu_);
      if (committed_size_ != woken_for) {
        woken_for = committed_size_;
        wake_all = true;
      } else if (pump_queue_.empty()) {
        return;  // pump_exit_
      } else {
        stream = pump_queue_.front();
        pump_queue_.pop_front();
      }
    }
    if (wake_all) {
      // New records: every idle stream is queued (lock order: mu_, the
      // stream's, pump_mu_), then pumped in turn.
      absl::MutexLock lock(&mu_);
      for (SubscribeStream* s : streams_) s->Wake();
      continue;
    }
    stream->Pump();
  }
}

grpc::ServerWriteReactor<v1::SubscribeResponse>* LedgerServiceImpl::Subscribe(
    grpc::CallbackServerContext* context, const v1::SubscribeRequest* request) {
  auto* stream = new SubscribeStream(this, request->from_position());
  bool stopping, full = false;
  {
    absl::MutexLock lock(&mu_);
    stopping = stopping_;
    full = !stopping && streams_.size() >= static_cast<size_t>(max_subscribers_);
    if (!stopping && !full) {
      streams_.insert(stream);
      if (open_streams_ != nullptr) open_streams_->Add(1);
    }
  }
  if (stopping) {
    stream->Finish(ToGrpc(Refuse(absl::StatusCode::kUnavailable, v1::SHUTTING_DOWN,
                                 "the ledger is shutting down")));
  } else if (full) {
    stream->Finish(ToGrpc(Refuse(absl::StatusCode::kResourceExhausted, v1::LIMIT_REACHED,
                                 absl::StrCat(max_subscribers_, " Subscribe streams are open, the most this server "
                                              "allows (ledgerd --max-subscribers); try again later"))));
  } else {
    stream->Wake();
  }
  return stream;
}

grpc::ServerUnaryReactor* LedgerServiceImpl::Append(grpc::CallbackServerContext* context,
                                                    const v1::AppendRequest* request,
                                                    v1::AppendResponse* response) {
  const auto started = std::chrono::steady_clock::now();
  auto* reactor = context->DefaultReactor();
  if (!request->has_event()) {
    absl::Status missing = Refuse(absl::StatusCode::kInvalidArgument, v1::MISSING_FIELD, "AppendRequest has no event");
    CountAppend(false, missing, false, started);
    reactor->Finish(ToGrpc(missing));
    return reactor;
  }
  ledger_->Submit({request->event()},
                  [this, reactor, response, started](absl::StatusOr<std::vector<store::SubmitResult>> result) {
                    const bool replayed = result.ok() && result->front().replayed;
                    if (result.ok()) {
                      *response->mutable_receipt() = std::move(result->front().receipt);
                      response->set_replayed(replayed);
                    }
                    CountAppend(false, result.status(), replayed, started);
                    reactor->Finish(ToGrpc(result.status()));
                  });
  return reactor;
}

grpc::ServerUnaryReactor* LedgerServiceImpl::AppendBatch(grpc::CallbackServerContext* context,
                                                         const grpc::ByteBuffer* request,
                                                         grpc::ByteBuffer* response) {
  const auto started = std::chrono::steady_clock::now();
  auto* reactor = context->DefaultReactor();
  // The request's bytes are taken over, not shared: gRPC would hold them
  // until the call ends, through verification and commit, uncounted. (The
  // buffer gRPC passes is its own, and not const; it is destroyed later.)
  grpc::ByteBuffer bytes;
  bytes.Swap(const_cast<grpc::ByteBuffer*>(request));
  const size_t size = bytes.Length();
  std::string peer = PeerAddress(context->peer());
  const absl::Time now = absl::Now();
  const absl::StatusOr<absl::Time> decode_at = AdmitBatch(peer, size, now);
  if (!decode_at.ok()) {
    AnswerBatch(reactor, decode_at.status(), false, started);
    return reactor;
  }
  if (*decode_at == absl::InfinitePast()) {
    DecodeAndSubmitBatch(reactor, std::move(bytes), response, started);
    return reactor;
  }
  auto decode = [this, context, reactor, bytes = std::move(bytes), response, started, size,
                 peer = std::move(peer)]() mutable {
    UnqueueBulk(peer, size);
    // A call whose client gave up, or a server stopping, costs no decoding
    // and commits nothing.
    bool stopping;
    {
      absl::MutexLock lock(&mu_);
      stopping = stopping_;
    }
    if (context->IsCancelled() || stopping) {
      AnswerBatch(reactor, context->IsCancelled()
                               ? absl::CancelledError("the client cancelled the call before its batch was decoded")
                               : Refuse(absl::StatusCode::kUnavailable, v1::SHUTTING_DOWN,
                                        "the server is shutting down"),
                  false, started);
      return;
    }
    DecodeAndSubmitBatch(reactor, std::move(bytes), response, started);
  };
  // Under mu_: StopStreams, which sets stopping_ under it, then makes every
  // waiting batch due, sees this one or has this one see it stopping.
  absl::MutexLock lock(&mu_);
  bulk_intake_->ScheduleAt(stopping_ ? now : *decode_at, std::move(decode));
  return reactor;
}

absl::StatusOr<absl::Time> LedgerServiceImpl::AdmitBatch(const std::string& peer, size_t size, absl::Time now) {
  // One hold of bulk_mu_: concurrent calls from one address see each
  // other's charges, so none passes the check on a stale time.
  absl::MutexLock lock(&bulk_mu_);
  absl::Time due = now;
  if (batch_bytes_per_second_ != 0) {
    if (auto found = batch_paid_until_.find(peer); found != batch_paid_until_.end()) {
      due = std::max(now, found->second - kBatchBurst);
    }
  }
  if (size <= kInlineBatchBytes && due <= now) {
    ChargeBatchBytes(peer, size, now);
    return absl::InfinitePast();
  }
  if (due - now > kMaxBatchRateWait) {
    return Refuse(absl::StatusCode::kResourceExhausted, v1::LIMIT_REACHED,
                  absl::StrCat("batches already sent from this address would be decoded only ",
                               absl::FormatDuration(absl::Ceil(due - now, absl::Seconds(1))),
                               " from now at its rate (ledgerd --batch-bytes-per-second), and a batch waits at most ",
                               absl::FormatDuration(kMaxBatchRateWait), "; try again later"));
  }
  if (absl::Status queued = QueueBulk(peer, size); !queued.ok()) return queued;
  // Charged only once queued: a refused batch costs its address no time.
  return ChargeBatchBytes(peer, size, now);
}

absl::Time LedgerServiceImpl::ChargeBatchBytes(const std::string& peer, size_t size, absl::Time now) {
  if (batch_bytes_per_second_ == 0) return now;
  if (batch_paid_until_.size() >= batch_rate_sweep_at_) {
    for (auto it = batch_paid_until_.begin(); it != batch_paid_until_.end();) {
      if (it->second <= now) {
        batch_paid_until_.erase(it++);  // within its burst: nothing to remember
      } else {
        ++it;
      }
    }
    // The next sweep when the map has doubled: not one per call while many
    // addresses are over their rate (each is, for at most kMaxBatchRateWait).
    batch_rate_sweep_at_ = std::max(kBatchRatePeersSwept, 2 * batch_paid_until_.size());
  }
  absl::Time& paid_until = batch_paid_until_.try_emplace(peer, now).first->second;
  paid_until = std::max(paid_until, now);
  const absl::Time decode_at = std::max(now, paid_until - kBatchBurst);
  paid_until += absl::Seconds(static_cast<double>(size) / static_cast<double>(batch_bytes_per_second_));
  return decode_at;
}

absl::Status LedgerServiceImpl::QueueBulk(const std::string& peer, size_t size) {
  // Each peer (an address, whatever its ports) holds at most a quarter of
  // the queue, so that one member cannot fill it and turn every other
  // member's large batch away; a batch alone in the queue always fits.
  const size_t peer_limit = bulk_limit_bytes_ / kBulkPeerShare;
  size_t& mine = bulk_queued_by_peer_[peer];
  if (bulk_limit_bytes_ != 0 && bulk_queued_bytes_ != 0 &&
      (bulk_queued_bytes_ + size > bulk_limit_bytes_ || (mine != 0 && mine + size > peer_limit))) {
    const bool own = bulk_queued_bytes_ + size <= bulk_limit_bytes_;
    const size_t held = own ? mine : bulk_queued_bytes_;
    if (mine == 0) bulk_queued_by_peer_.erase(peer);
    return Refuse(absl::StatusCode::kResourceExhausted, v1::LIMIT_REACHED,
                  absl::StrCat("batches of ", held, " bytes ", own ? "from this address " : "",
                               "are waiting to be decoded; ", size, " more would pass ",
                               own ? peer_limit : bulk_limit_bytes_,
                               own ? ", the most one address may queue (a quarter of ledgerd --max-inflight-bytes)"
                                   : ", the most this server holds (ledgerd --max-inflight-bytes)",
                               "; try again later"));
  }
  mine += size;
  bulk_queued_bytes_ += size;
  return absl::OkStatus();
}

void LedgerServiceImpl::UnqueueBulk(const std::string& peer, size_t size) {
  absl::MutexLock lock(&bulk_mu_);
  bulk_queued_bytes_ -= size;
  auto it = bulk_queued_by_peer_.find(peer);
  if ((it->second -= size) == 0) bulk_queued_by_peer_.erase(it);
}

void LedgerServiceImpl::DecodeAndSubmitBatch(grpc::ServerUnaryReactor* reactor, grpc::ByteBuffer request,
                                             grpc::ByteBuffer* response,
                                             std::chrono::steady_clock::time_point started) {
  std::vector<v1::SignedEvent> events;
  {
    // Freed here, once its events are moved out, not when the call is done
    // (which may be on the sequencer thread, inside Finish).
    v1::AppendBatchRequest batch;
    if (!grpc::SerializationTraits<v1::AppendBatchRequest>::Deserialize(&request, &batch).ok()) {
      AnswerBatch(reactor,
                  Refuse(absl::StatusCode::kInvalidArgument, v1::MALFORMED,
                         "the request is not a valid ledger.v1.AppendBatchRequest message"),
                  false, started);
      return;
    }
    events.reserve(batch.events_size());
    for (v1::SignedEvent& event : *batch.mutable_events()) events.push_back(std::move(event));
  }
  ledger_->Submit(std::move(events),
                  [this, reactor, response, started](absl::StatusOr<std::vector<store::SubmitResult>> result) {
                    bool replayed = result.ok();
                    v1::AppendBatchResponse answer;
                    if (result.ok()) {
                      for (store::SubmitResult& r : *result) {
                        replayed = replayed && r.replayed;
                        *answer.add_receipts() = std::move(r.receipt);
                      }
                      bool own_buffer = false;
                      grpc::Status serialized =
                          grpc::SerializationTraits<v1::AppendBatchResponse>::Serialize(answer, response, &own_buffer);
                      if (!serialized.ok()) {
                        AnswerBatch(reactor, absl::InternalError(serialized.error_message()), false, started);
                        return;
                      }
                    }
                    AnswerBatch(reactor, result.status(), replayed, started);
                  });
}

void LedgerServiceImpl::AnswerBatch(grpc::ServerUnaryReactor* reactor, const absl::Status& status, bool replayed,
                                    std::chrono::steady_clock::time_point started) {
  CountAppend(true, status, replayed, started);
  reactor->Finish(ToGrpc(status));
}

grpc::ServerUnaryReactor* LedgerServiceImpl::Get(grpc::CallbackServerContext* context,
                                                 const v1::GetRequest* request,
                                                 v1::GetResponse* response) {
  auto entry = ledger_->Get(request->position());
  if (entry.ok()) *response->mutable_entry() = *std::move(entry);
  return FinishNow(context, entry.status());
}

grpc::ServerUnaryReactor* LedgerServiceImpl::Read(grpc::CallbackServerContext* context,
                                                  const v1::ReadRequest* request,
                                                  v1::ReadResponse* response) {
  if (costly_ != nullptr && (request->kinds_size() > 0 || !request->author().empty())) {
    if (absl::Status allowed = costly_->Check(*context, "Read with filters (kinds or author)"); !allowed.ok()) {
      return FinishNow(context, allowed);
    }
  }
  return FinishOnWorker(context, workers_, [this, request, response] {
    auto page = store::Queries(&ledger_->store()).Read(*request);
    if (!page.ok()) return page.status();
    *response = *std::move(page);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* LedgerServiceImpl::GetLedgerInfo(grpc::CallbackServerContext* context,
                                                           const v1::GetLedgerInfoRequest* request,
                                                           v1::GetLedgerInfoResponse* response) {
  const v1::LedgerInfo& info = ledger_->info();
  response->set_ledger_id(info.ledger_id());
  response->set_origin(info.origin());
  response->set_operator_id(info.operator_id());
  response->set_operator_public_key(info.operator_public_key());
  response->set_tree_size(ledger_->size());
  return FinishNow(context, absl::OkStatus());
}

}  // namespace ledger::services
