// Integration-test harness: a real `ledgerd` child process on a temporary
// data directory (its gRPC client is tests/support/ledger_client.h).
//
// LedgerdProcess forks and execs the ledgerd binary (LEDGERD_PATH, set by
// CMake) as `ledgerd --data <tmp>/data --listen 127.0.0.1:0`, reads its
// stdout until the "ledgerd listening on HOST:PORT" line and keeps draining
// it afterwards; stderr goes to <tmp>/stderr.log and is quoted in every
// start-up or shutdown failure. The temporary directory lives as long as the
// LedgerdProcess, so Restart() and Kill() + Start() reuse the same ledger.
//
// Thread contract: LedgerdProcess is driven from one thread.
#ifndef TESTS_SUPPORT_LEDGERD_PROCESS_H_
#define TESTS_SUPPORT_LEDGERD_PROCESS_H_

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/support/temp_dir.h"

namespace ledger::testing {

class LedgerdProcess {
 public:
  LedgerdProcess();   // creates the temporary directory; does not start
  ~LedgerdProcess();  // SIGKILL if still running; removes the directory

  LedgerdProcess(const LedgerdProcess&) = delete;
  LedgerdProcess& operator=(const LedgerdProcess&) = delete;

  // Starts ledgerd on data_dir() and waits (bounded) for it to listen.
  // The error says why, quoting ledgerd's stderr, if it exits or hangs.
  absl::Status Start();
  // SIGTERM, then waits (bounded) for it to exit: its exit code. An error if
  // it was killed by a signal or did not stop in time (it is then killed).
  absl::StatusOr<int> Stop();
  // SIGKILL and reap (a crash, as far as the ledger can tell).
  absl::Status Kill();
  // Stop() (which must exit 0), then Start() on the same data directory.
  absl::Status Restart();

  // Arguments added after `--data DIR --listen 127.0.0.1:0` at every start.
  void set_extra_args(std::vector<std::string> args) { extra_args_ = std::move(args); }
  // Serves `dir` instead of its own directory (e.g. another process's).
  void set_data_dir(std::string dir) { data_dir_ = std::move(dir); }

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // HOST:PORT from the "listening on" line of the current run.
  const std::string& address() const { return address_; }
  const std::string& data_dir() const { return data_dir_; }
  // The running ledgerd's resident memory (VmRSS in /proc/PID/status), bytes.
  absl::StatusOr<uint64_t> ResidentBytes() const;
  // Everything ledgerd wrote to stderr so far (all runs).
  std::string Stderr() const;
  // Everything the current (or last) run wrote to stdout so far.
  std::string Stdout() const;

 private:
  void DrainStdout();  // drain thread: reads until EOF
  // Waits until stdout reaches EOF or `timeout_ms` passes; true on EOF.
  bool WaitForStdoutEof(int timeout_ms);
  absl::StatusOr<int> Reap();  // waitpid (blocking) and decode the status
  void JoinDrain();

  TempDir root_;          // removed after the destructor has killed ledgerd
  std::string data_dir_;  // root_/data
  std::string stderr_path_;
  std::vector<std::string> extra_args_;
  pid_t pid_ = -1;
  std::string address_;
  int stdout_fd_ = -1;
  std::thread drain_;

  mutable std::mutex mu_;
  std::condition_variable eof_cv_;
  std::string stdout_;  // guarded by mu_
  bool eof_ = false;    // guarded by mu_
};

}  // namespace ledger::testing

#endif  // TESTS_SUPPORT_LEDGERD_PROCESS_H_
