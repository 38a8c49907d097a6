// Integration-test harness: a real `ledger-witness` child process
// (WITNESS_PATH, set by CMake) on a data directory the test owns.
//
// Start() runs `ledger-witness --data DIR --listen 127.0.0.1:0 ARGS...`, reads
// its stdout until "ledger-witness listening on HOST:PORT" and keeps
// draining it; stderr goes to DIR/../witness-stderr.log and is quoted when
// it fails to start. Kill() is SIGKILL (a crash); Stop() is SIGTERM.
//
// Thread contract: driven from one thread; address() may be copied out.
#ifndef TESTS_SUPPORT_WITNESS_PROCESS_H_
#define TESTS_SUPPORT_WITNESS_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ledger::testing {

class WitnessProcess {
 public:
  WitnessProcess(std::string data_dir, std::vector<std::string> args);
  ~WitnessProcess();  // SIGKILL if still running
  WitnessProcess(const WitnessProcess&) = delete;
  WitnessProcess& operator=(const WitnessProcess&) = delete;

  absl::Status Start();
  absl::StatusOr<int> Stop();  // SIGTERM; the exit code
  absl::Status Kill();         // SIGKILL and reap

  bool running() const { return pid_ > 0; }
  const std::string& address() const { return address_; }  // HOST:PORT
  int port() const;
  // Lines printed before (and including) the listening line, this run.
  const std::string& banner() const { return banner_; }
  std::string Stderr() const;

 private:
  absl::StatusOr<int> Reap();
  void JoinDrain();

  std::string data_dir_;
  std::string stderr_path_;
  std::vector<std::string> args_;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string address_;
  std::string banner_;
  std::thread drain_;
};

// Runs ledger-witness with `args` to completion (for flag errors): the exit
// code; `stderr_text` gets what it printed there.
int RunWitness(const std::vector<std::string>& args, std::string* stderr_text);

}  // namespace ledger::testing

#endif  // TESTS_SUPPORT_WITNESS_PROCESS_H_
