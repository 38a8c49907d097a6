#include "ledger/common/thread_pool.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace ledger {

ThreadPool::ThreadPool(int threads, int nice) {
  if (threads <= 0) threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  threads_.reserve(threads);
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this, nice] { Loop(nice); });
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

void ThreadPool::Loop(int nice) {
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
      while (queue_.empty() && !stopping_) work_.Wait(&mu_);
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
