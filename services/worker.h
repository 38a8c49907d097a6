// Long work off the gRPC reaction threads (STYLE: reactions never block).
//  - FinishOnWorker: a unary call whose answer needs a scan (RocksDB
//    iteration, an organisation's history, a long page) is answered from a worker pool, never
//    from the reaction that received it.
//  - WorkerStreamReactor: a server stream whose messages a thread of its own
//    produces (Backup, Verify): a queue, one write in flight, Finish once
//    the thread is done and everything queued is written.
//  - FinishedStream: a server stream refused before any work.
#ifndef SERVICES_WORKER_H_
#define SERVICES_WORKER_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "glog/logging.h"
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

// A server stream answered at once with `status` and no message (a call
// refused before any work). Deletes itself when done.
template <typename Message>
class FinishedStream final : public grpc::ServerWriteReactor<Message> {
 public:
  explicit FinishedStream(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

// One server-streaming call whose messages a worker thread of its own
// produces. A subclass implements Work() (run on that thread; it returns the
// call's final status) and calls StartWorker() at the end of its
// constructor; Work() hands messages to Push(). The reactor writes them one
// at a time (the next from OnWriteDone: that is the back-pressure) and
// finishes once Work() has returned and everything queued is written, or at
// once when the client cancels or goes away (what is queued is dropped, and
// Push() answers false from then on).
//
// Thread contract: Push(), PushReplacing() and Cancelled() are for the
// worker; the reactions come from gRPC. StartWrite and Finish are never
// called under mu_ (they may run reactions inline). The object
// deletes itself in OnDone, after joining the worker (or detaching it when
// OnDone runs on the worker itself, which then touches nothing more).
template <typename Message>
class WorkerStreamReactor : public grpc::ServerWriteReactor<Message> {
 public:
  struct Options {
    // Push() waits while this many messages are queued (0: no bound).
    size_t max_queued = 0;
    // A client that reads nothing for this long while Push() waits for room,
    // or while the last messages wait to be written after Work() returned,
    // loses the call (CANCELLED; logged with `name`).
    absl::Duration stall_timeout = absl::InfiniteDuration();
    // Called once, just before Finish: frees the call's slot (a limit on
    // concurrent calls) before the client can see the answer, so a client
    // that calls again at once is not refused by its own finished call.
    std::function<void()> on_finish;
    const char* name = "stream";
  };

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) CancelLocked();  // the client is gone
    }
    Pump();
  }
  void OnCancel() override {
    {
      absl::MutexLock lock(&mu_);
      CancelLocked();
    }
    Pump();
  }
  void OnDone() override {
    if (worker_.get_id() == std::this_thread::get_id()) {
      worker_.detach();
    } else {
      worker_.join();
    }
    delete this;
  }

 protected:
  WorkerStreamReactor(grpc::CallbackServerContext* context, Options options)
      : context_(context), options_(std::move(options)) {}
  ~WorkerStreamReactor() override = default;

  // Runs on the worker thread; its answer is the call's status (CANCELLED
  // instead of OK when the call was cancelled).
  virtual grpc::Status Work() = 0;

  // Starts the worker; the last thing a subclass's constructor does.
  void StartWorker() ABSL_LOCKS_EXCLUDED(mu_) {
    // Assigned under mu_, which the worker takes first: worker_ is set before
    // anything the worker does (its Finish, and so OnDone, which joins it).
    absl::MutexLock lock(&mu_);
    worker_ = std::thread([this] {
      { absl::MutexLock started(&mu_); }
      grpc::Status status = Work();
      Drain();
      {
        absl::MutexLock lock(&mu_);
        worker_done_ = true;
        final_status_ = std::move(status);
      }
      Pump();  // `this` may be gone after this
    });
  }

  // Queues `message` for writing, waiting for room (Options::max_queued).
  // False if the call is cancelled (then or while waiting, or now because
  // the client stalled): the worker should stop.
  bool Push(Message message) { return Queue(std::move(message), /*replaceable=*/false); }

  // As Push, but a message pushed this way that is still queued (not yet
  // being written) is replaced by the next one pushed this way: progress
  // reports, of which only the latest matters.
  bool PushReplacing(Message message) { return Queue(std::move(message), /*replaceable=*/true); }

  bool Cancelled() {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }

 private:
  void CancelLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    cancelled_ = true;
    queue_.clear();
    back_replaceable_ = false;
  }
  bool RoomOrCancelled() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return cancelled_ || options_.max_queued == 0 || queue_.size() < options_.max_queued;
  }

  bool Drained() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return cancelled_ || queue_.size() + (writing_ ? 1 : 0) <= drain_target_;
  }

  // With a stall timeout: waits, message by message, for what is queued to
  // be written, so a client that stops reading the last messages loses the
  // call too (and frees its slot) instead of holding it.
  void Drain() ABSL_LOCKS_EXCLUDED(mu_) {
    if (options_.stall_timeout == absl::InfiniteDuration()) return;
    bool stalled = false;
    {
      absl::MutexLock lock(&mu_);
      while (!cancelled_ && (writing_ || !queue_.empty())) {
        drain_target_ = queue_.size() + (writing_ ? 1 : 0) - 1;
        if (!mu_.AwaitWithTimeout(absl::Condition(this, &WorkerStreamReactor::Drained), options_.stall_timeout)) {
          stalled = true;
          CancelLocked();
        }
      }
    }
    if (stalled) StallCancel();
  }

  void StallCancel() ABSL_LOCKS_EXCLUDED(mu_) {
    LOG(WARNING) << options_.name << ": the client read nothing for " << options_.stall_timeout
                 << "; the call is cancelled";
    // (Not under mu_: OnCancel takes it.) Ends the stalled write, so the
    // call finishes and its slot is freed.
    context_->TryCancel();
  }

  bool Queue(Message message, bool replaceable) ABSL_LOCKS_EXCLUDED(mu_) {
    bool stalled = false;
    bool queued = false;
    {
      absl::MutexLock lock(&mu_);
      if (replaceable && back_replaceable_ && !queue_.empty()) {
        queue_.back() = std::move(message);
        queued = true;
      } else {
        if (!mu_.AwaitWithTimeout(absl::Condition(this, &WorkerStreamReactor::RoomOrCancelled),
                                  options_.stall_timeout)) {
          stalled = true;
          CancelLocked();
        }
        if (!cancelled_) {
          queue_.push_back(std::move(message));
          back_replaceable_ = replaceable;
          queued = true;
        }
      }
    }
    if (stalled) StallCancel();
    if (!queued) return false;
    Pump();
    return true;
  }

  // Starts the next write, or finishes once the worker is done and
  // everything is written (or the call is cancelled). Never under mu_.
  void Pump() ABSL_LOCKS_EXCLUDED(mu_) {
    enum { kNothing, kWrite, kFinish } action = kNothing;
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (writing_ || finished_) return;
      if (!queue_.empty() && !cancelled_) {
        current_ = std::move(queue_.front());
        queue_.pop_front();
        if (queue_.empty()) back_replaceable_ = false;
        writing_ = true;
        action = kWrite;
      } else if (worker_done_) {
        finished_ = true;
        status = cancelled_ && final_status_.ok() ? grpc::Status(grpc::StatusCode::CANCELLED, "cancelled")
                                                  : final_status_;
        action = kFinish;
      }
    }
    if (action == kWrite) this->StartWrite(&current_);
    if (action == kFinish) {
      if (options_.on_finish) options_.on_finish();
      this->Finish(status);  // `this` may be gone after this
    }
  }

  grpc::CallbackServerContext* const context_;
  const Options options_;
  std::thread worker_;

  absl::Mutex mu_;
  std::deque<Message> queue_ ABSL_GUARDED_BY(mu_);
  bool back_replaceable_ ABSL_GUARDED_BY(mu_) = false;  // queue_.back() came from PushReplacing
  size_t drain_target_ ABSL_GUARDED_BY(mu_) = 0;         // Drain waits until this few are left
  Message current_;  // the write in flight (touched only by Pump, one at a time: writing_)
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool worker_done_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ledger::services

#endif  // SERVICES_WORKER_H_
