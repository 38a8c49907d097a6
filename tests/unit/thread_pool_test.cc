// ThreadPool and TaskGroup: tasks run on the pool's own threads, a group's
// Wait returns only once all its tasks have finished (and the group may then
// be destroyed), groups sharing a pool wait only for their own tasks, and the
// pool's destructor runs everything already scheduled.
#include "ledger/common/thread_pool.h"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace ledger {
namespace {

TEST(ThreadPoolTest, RunsTasksOnItsOwnFixedThreads) {
  ThreadPool pool(3);
  EXPECT_EQ(pool.size(), 3);
  absl::Mutex mu;
  std::set<std::thread::id> seen;
  int ran = 0;
  int waiting = 0;
  {
    TaskGroup group(&pool);
    // Three tasks that each wait for the other two can only finish on three
    // threads at once.
    for (int i = 0; i < 3; ++i) {
      group.Run([&] {
        absl::MutexLock lock(&mu);
        seen.insert(std::this_thread::get_id());
        ++waiting;
        mu.AwaitWithTimeout(absl::Condition(+[](int* w) { return *w == 3; }, &waiting), absl::Seconds(60));
      });
    }
    group.Wait();
    for (int i = 0; i < 300; ++i) {
      group.Run([&] {
        absl::MutexLock lock(&mu);
        seen.insert(std::this_thread::get_id());
        ++ran;
      });
    }
    group.Wait();
  }
  EXPECT_EQ(waiting, 3);
  EXPECT_EQ(ran, 300);
  EXPECT_EQ(seen.size(), 3u) << "the pool's three threads, and no others";
  EXPECT_EQ(seen.count(std::this_thread::get_id()), 0u);
  EXPECT_GE(ThreadPool(0).size(), 1);  // one per core
}

// Bulk work yields the cores: a pool made with a nice value runs its tasks
// at it, and the caller's own priority is unchanged.
TEST(ThreadPoolTest, APoolWithANiceValueRunsItsTasksAtIt) {
  const int caller = getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
  std::atomic<int> seen{-100};
  {
    ThreadPool pool(1, kBulkWorkNice);
    TaskGroup group(&pool);
    group.Run([&seen] { seen = getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid))); });
    group.Wait();
  }
  EXPECT_EQ(seen.load(), std::min(19, caller + kBulkWorkNice));
  EXPECT_EQ(getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid))), caller);
}

// An operator reading top -H or perf sees what each thread is for; a name
// longer than Linux's 15 characters is cut, not refused.
TEST(ThreadPoolTest, APoolNamesItsThreads) {
  for (const std::string& name : {std::string("bulk-intake"), std::string("a-name-longer-than-fifteen")}) {
    std::string seen;
    {
      ThreadPool pool(1, 0, name.c_str());
      TaskGroup group(&pool);
      group.Run([&seen] {
        char comm[32] = {};
        pthread_getname_np(pthread_self(), comm, sizeof comm);
        seen = comm;
      });
      group.Wait();
    }
    EXPECT_EQ(seen, name.substr(0, 15));
  }
}

// A task scheduled for later runs no earlier than its time, and a task due
// now is not held behind it.
TEST(ThreadPoolTest, ATaskScheduledForLaterWaitsForItsTimeWithoutHoldingOthers) {
  ThreadPool pool(1);
  absl::Mutex mu;
  std::vector<std::string> order;
  absl::Time later_ran;
  const absl::Time due = absl::Now() + absl::Milliseconds(300);
  absl::Notification both;
  pool.ScheduleAt(due, [&] {
    absl::MutexLock lock(&mu);
    later_ran = absl::Now();
    order.push_back("later");
    if (order.size() == 2) both.Notify();
  });
  pool.Schedule([&] {
    absl::MutexLock lock(&mu);
    order.push_back("now");
    if (order.size() == 2) both.Notify();
  });
  const bool scheduled_before_due = absl::Now() < due;  // else both are due: either order is right
  both.WaitForNotification();
  absl::MutexLock lock(&mu);
  if (scheduled_before_due) EXPECT_EQ(order, (std::vector<std::string>{"now", "later"}));
  EXPECT_GE(later_ran, due);
}

// Destruction does not wait for a task's time: the task runs at once, and
// its owner (which checks whether it is stopping) answers it.
TEST(ThreadPoolTest, ATaskScheduledForLaterRunsAtOnceWhenThePoolIsDestroyed) {
  std::atomic<bool> ran{false};
  const absl::Time start = absl::Now();
  {
    ThreadPool pool(1);
    pool.ScheduleAt(absl::Now() + absl::Hours(1), [&ran] { ran = true; });
  }
  EXPECT_TRUE(ran.load());
  EXPECT_LT(absl::Now() - start, absl::Minutes(30));
}

// An owner stopping makes its waiting tasks due now.
TEST(ThreadPoolTest, RunTimedTasksNowRunsATaskScheduledForLater) {
  ThreadPool pool(1);
  absl::Notification ran;
  pool.ScheduleAt(absl::Now() + absl::Hours(1), [&ran] { ran.Notify(); });
  pool.RunTimedTasksNow();
  EXPECT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(60)));
}

TEST(ThreadPoolTest, WaitReturnsOnlyAfterEveryTaskFinished) {
  ThreadPool pool(2);
  for (int round = 0; round < 50; ++round) {
    std::atomic<int> done{0};
    auto group = std::make_unique<TaskGroup>(&pool);
    for (int i = 0; i < 8; ++i) {
      group->Run([&done, i] {
        if (i % 3 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
        done.fetch_add(1);
      });
    }
    group->Wait();
    EXPECT_EQ(done.load(), 8) << "round " << round;
    group.reset();  // destroyed at once after Wait: the tasks no longer touch it
  }
}

TEST(ThreadPoolTest, GroupsOnOnePoolWaitOnlyForTheirOwnTasks) {
  ThreadPool pool(2);
  absl::Notification release;
  TaskGroup slow(&pool);
  slow.Run([&] { release.WaitForNotification(); });  // holds one thread
  std::atomic<int> fast_done{0};
  TaskGroup fast(&pool);
  for (int i = 0; i < 10; ++i) fast.Run([&] { fast_done.fetch_add(1); });
  fast.Wait();  // on the other thread, while the slow task still runs
  EXPECT_EQ(fast_done.load(), 10);
  release.Notify();
  slow.Wait();
}

TEST(ThreadPoolTest, DestructorRunsWhatWasScheduled) {
  std::atomic<int> ran{0};
  {
    ThreadPool pool(1);
    absl::Notification release;
    pool.Schedule([&] { release.WaitForNotification(); });
    for (int i = 0; i < 20; ++i) pool.Schedule([&] { ran.fetch_add(1); });
    release.Notify();
  }
  EXPECT_EQ(ran.load(), 20);
}

}  // namespace
}  // namespace ledger
