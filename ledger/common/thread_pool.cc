#include "ledger/common/thread_pool.h"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

namespace ledger {

void NameThisThread(const char* name) {
  char truncated[16];  // Linux's limit, with the terminating NUL
  std::snprintf(truncated, sizeof truncated, "%s", name);
  pthread_setname_np(pthread_self(), truncated);
}

ThreadPool::ThreadPool(int threads, int nice, const char* name) {
  if (threads <= 0) threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  threads_.reserve(threads);
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this, nice, name = std::string(name)] { Loop(nice, name.c_str()); });
}

ThreadPool::~ThreadPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    work_.SignalAll();
  }
  for (std::thread& thread : threads_) thread.join();
}

void ThreadPool::Schedule(absl::AnyInvocable<void() &&> task) {
  absl::MutexLock lock(&mu_);
  if (stopping_) {  // our own invariant: owners stop scheduling before they destroy the pool
    std::fprintf(stderr, "ThreadPool::Schedule after destruction began\n");
    std::abort();
  }
  queue_.push_back(std::move(task));
  work_.Signal();
}

void ThreadPool::ScheduleAt(absl::Time at, absl::AnyInvocable<void() &&> task) {
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    std::fprintf(stderr, "ThreadPool::ScheduleAt after destruction began\n");
    std::abort();
  }
  timed_.emplace(at, std::move(task));
  work_.SignalAll();  // a waiting thread may have to wake sooner
}

void ThreadPool::RunTimedTasksNow() {
  absl::MutexLock lock(&mu_);
  for (auto& [at, task] : timed_) queue_.push_back(std::move(task));
  timed_.clear();
  work_.SignalAll();
}

void ThreadPool::Loop(int nice, const char* name) {
  NameThisThread(name);
  if (nice > 0) {
    // Relative to what the thread inherited, so a server started niced keeps
    // the difference (and never asks for more priority than it has).
    const id_t self = static_cast<id_t>(syscall(SYS_gettid));
    errno = 0;
    const int inherited = getpriority(PRIO_PROCESS, self);
    if ((inherited == -1 && errno != 0) || setpriority(PRIO_PROCESS, self, std::min(19, inherited + nice)) != 0) {
      std::fprintf(stderr, "ThreadPool: could not lower a thread's priority by %d: %s\n", nice, std::strerror(errno));
    }
  }
  while (true) {
    absl::AnyInvocable<void() &&> task;
    {
      absl::MutexLock lock(&mu_);
      while (true) {
        // Tasks that fell due join the queue in their time's order; once
        // stopping, every timed task is due. (No clock read in pools that
        // have none: the verify pool takes tasks by the thousand.)
        if (!timed_.empty()) {
          const absl::Time now = absl::Now();
          while (!timed_.empty() && (stopping_ || timed_.begin()->first <= now)) {
            queue_.push_back(std::move(timed_.begin()->second));
            timed_.erase(timed_.begin());
          }
        }
        if (!queue_.empty() || stopping_) break;
        if (timed_.empty()) {
          work_.Wait(&mu_);
        } else {
          work_.WaitWithDeadline(&mu_, timed_.begin()->first);
        }
      }
      if (queue_.empty()) return;  // stopping, and everything scheduled has run
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    std::move(task)();
  }
}

void TaskGroup::Run(absl::AnyInvocable<void() &&> task) {
  {
    absl::MutexLock lock(&mu_);
    pending_++;
  }
  pool_->Schedule([this, task = std::move(task)]() mutable {
    std::move(task)();
    absl::MutexLock lock(&mu_);  // Wait returns only after this is released
    pending_--;
  });
}

void TaskGroup::Wait() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* pending) { return *pending == 0; }, &pending_));
}

}  // namespace ledger
