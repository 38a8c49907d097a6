// A fixed set of worker threads, started once and kept for the pool's life,
// that run scheduled tasks in the order they were scheduled. One pool verifies
// signatures for both the server's write path and the auditor (LogVerifier),
// so neither starts threads per batch; services use another for long scans,
// off the gRPC reaction threads.
//
// Thread contract: Schedule, size() and every TaskGroup method are
// thread-safe. A task must never wait for another task of the same pool (it
// may be queued behind the waiter on a busy pool: a deadlock), so a TaskGroup
// is waited on from outside the pool. A task must not throw.
//
// Lifetime: the destructor runs every task already scheduled, then joins the
// threads; scheduling once destruction has begun is a bug (CHECK-fails). A
// task may outlive whatever it captured unless its owner waits for it (a
// TaskGroup does).
#ifndef LEDGER_COMMON_THREAD_POOL_H_
#define LEDGER_COMMON_THREAD_POOL_H_

#include <deque>
#include <map>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ledger {

// The nice value of pools doing one member's bulk work (decoding and
// freeing multi-megabyte batches) while other members wait for appends.
inline constexpr int kBulkWorkNice = 10;

// Names the calling thread (cut to Linux's 15 characters) for top -H, perf
// and /proc/PID/task/*/comm.
void NameThisThread(const char* name);

class ThreadPool {
 public:
  // `threads` <= 0: one per core. `nice` > 0: the threads run that much
  // lower in CPU priority than their creator (Linux gives each thread its
  // own nice value), for bulk work that must yield the cores to
  // latency-sensitive threads. `name` (at most 15 characters) names the
  // threads for top -H, perf and /proc.
  explicit ThreadPool(int threads, int nice = 0, const char* name = "pool");
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(threads_.size()); }

  // Queues `task` to run on one of the threads. The queue is unbounded:
  // callers bound what they schedule (one task per event of a bounded
  // submission, one per core per verify batch, one per call).
  void Schedule(absl::AnyInvocable<void() &&> task);
  // Queues `task` to run no earlier than `at`, without holding back tasks
  // due sooner. Destruction runs it at once, whatever its time.
  void ScheduleAt(absl::Time at, absl::AnyInvocable<void() &&> task);
  // Makes every task scheduled for later due now (an owner stopping).
  void RunTimedTasksNow();

 private:
  void Loop(int nice, const char* name);

  absl::Mutex mu_;
  absl::CondVar work_;
  std::deque<absl::AnyInvocable<void() &&>> queue_ ABSL_GUARDED_BY(mu_);
  // Tasks not yet due, earliest first (ties in the order scheduled).
  std::multimap<absl::Time, absl::AnyInvocable<void() &&>> timed_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;  // fixed after the constructor
};

// Tasks run on a pool and waited for together (fork-join): Run several, then
// Wait. The group may be destroyed as soon as Wait returns; the destructor
// waits too. Wait only from a thread that is not one of the pool's.
class TaskGroup {
 public:
  explicit TaskGroup(ThreadPool* pool) : pool_(pool) {}
  ~TaskGroup() { Wait(); }
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  void Run(absl::AnyInvocable<void() &&> task);
  // Returns once every task Run so far has finished.
  void Wait();

 private:
  ThreadPool* const pool_;
  absl::Mutex mu_;
  int pending_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ledger

#endif  // LEDGER_COMMON_THREAD_POOL_H_
