// Running `ledgerctl` (or any program) from a test as a user would: a child
// process with stdin /dev/null, stdout and stderr captured separately, and a
// deadline after which it is killed. No sleeps: the child is waited for with
// poll() and waitpid().
//
// RunCtl runs the ledgerctl binary of this build (LEDGERCTL_PATH, set on
// this library by tests/CMakeLists.txt). Safe to call from several threads.
// Unless LEDGER_EVIDENCE is set, every child gets a LEDGER_EVIDENCE of its
// own test process (a temporary directory), so receipts never land in $HOME.
#ifndef TESTS_SUPPORT_CTL_RUNNER_H_
#define TESTS_SUPPORT_CTL_RUNNER_H_

#include <ostream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace ledger::testing {

struct CtlResult {
  int exit_code = -1;  // -1: killed by a signal (or timed out), or never started
  std::string out;
  std::string err;
  bool timed_out = false;
  std::string command;  // for failure messages
};

// The command, its exit and both outputs (each clipped to 16 KiB), for
// failure messages.
std::string Show(const CtlResult& r);
std::ostream& operator<<(std::ostream& os, const CtlResult& r);

// Runs argv[0] (a path) with argv[1..]; SIGKILLed if it has not finished
// within `timeout_seconds`. A failure to start is exit_code -1 with the
// reason in `err`.
CtlResult RunProgram(const std::vector<std::string>& argv, int timeout_seconds);

constexpr int kCtlTimeoutSeconds = 60;
// RunProgram of ledgerctl with `args`.
CtlResult RunCtl(const std::vector<std::string>& args, int timeout_seconds = kCtlTimeoutSeconds);

// Exit 0, in time.
::testing::AssertionResult Succeeded(const CtlResult& r);
// Exit `code`, in time, a stderr naming `what` (a distinctive substring) and
// nothing on stdout.
::testing::AssertionResult Failed(const CtlResult& r, int code, const std::string& what);

}  // namespace ledger::testing

#endif  // TESTS_SUPPORT_CTL_RUNNER_H_
