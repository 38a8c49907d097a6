#include "tests/support/ledgerd_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

#ifndef LEDGERD_PATH
#error "LEDGERD_PATH must name the ledgerd binary (set by tests/CMakeLists.txt)"
#endif

namespace ledger::testing {
namespace {

// Bounds: generous for a loaded 2-core machine, far below the ctest timeout.
constexpr int kStartTimeoutMs = 20'000;
constexpr int kStopTimeoutMs = 15'000;
constexpr char kListeningPrefix[] = "ledgerd listening on ";

std::string ErrnoText(const char* what) {
  return absl::StrCat(what, ": ", std::string(std::strerror(errno)));
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The threads' stacks of a hung process, if gdb is installed (diagnostics
// only; bounded by `timeout`).
std::string StackTraces(pid_t pid) {
  if (::access("/usr/bin/gdb", X_OK) != 0) return "(gdb not installed)";
  std::string command = absl::StrCat("timeout 60 /usr/bin/gdb -p ", pid,
                                     " -batch -ex 'thread apply all bt' 2>&1");
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return "(could not run gdb)";
  std::string output;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
  ::pclose(pipe);
  return output;
}

}  // namespace

// ---------------------------------------------------------------- process

LedgerdProcess::LedgerdProcess()
    : root_("ledgerd-it"),
      data_dir_(root_.Path("data")),
      stderr_path_(root_.Path("stderr.log")) {}

LedgerdProcess::~LedgerdProcess() {
  if (running()) (void)Kill();
  JoinDrain();
  // root_ (with the data directory) is removed after this.
}

absl::Status LedgerdProcess::Start() {
  if (root_.path().empty()) return absl::InternalError("could not create a temporary directory");
  if (running()) return absl::FailedPreconditionError("ledgerd is already running");
  JoinDrain();

  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return absl::InternalError(ErrnoText("pipe2"));
  int err = ::open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (err < 0) {
    ::close(out[0]);
    ::close(out[1]);
    return absl::InternalError(ErrnoText("open stderr log"));
  }
  // Everything the child needs is prepared before fork: after it, only
  // async-signal-safe calls until exec.
  std::vector<std::string> args = {LEDGERD_PATH, "--data", data_dir_, "--listen", "127.0.0.1:0"};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(out[0]);
    ::close(out[1]);
    ::close(err);
    return absl::InternalError(ErrnoText("fork"));
  }
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);  // dup2 clears O_CLOEXEC on the copy
    ::dup2(err, STDERR_FILENO);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    // If the test process dies, so does its server.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::execv(argv[0], argv.data());
    static const char kExecFailed[] = "ledgerd_process: execv failed\n";
    (void)!::write(STDERR_FILENO, kExecFailed, sizeof kExecFailed - 1);
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err);
  pid_ = pid;
  stdout_fd_ = out[0];
  address_.clear();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stdout_.clear();
    eof_ = false;
  }

  // Read stdout until the "listening on" line, EOF (it died) or the deadline.
  const int64_t deadline = NowMs() + kStartTimeoutMs;
  std::string seen;
  std::string failure;
  while (address_.empty() && failure.empty()) {
    const int64_t left = deadline - NowMs();
    if (left <= 0) {
      failure = absl::StrCat("ledgerd did not print \"", kListeningPrefix, "...\" within ",
                             kStartTimeoutMs, " ms");
      break;
    }
    pollfd p{stdout_fd_, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) {
      failure = ErrnoText("poll");
      break;
    }
    if (ready == 0) continue;  // the deadline check above ends it
    char buffer[4096];
    ssize_t n = ::read(stdout_fd_, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failure = "ledgerd exited before it was listening";
      break;
    }
    seen.append(buffer, static_cast<size_t>(n));
    size_t line_start = 0;
    for (size_t nl; (nl = seen.find('\n', line_start)) != std::string::npos; line_start = nl + 1) {
      std::string_view line(seen.data() + line_start, nl - line_start);
      if (line.substr(0, sizeof kListeningPrefix - 1) == kListeningPrefix) {
        address_ = std::string(line.substr(sizeof kListeningPrefix - 1));
        break;
      }
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stdout_ = seen;
  }
  if (!failure.empty()) {
    // Kill (if it still runs) and reap, then say what it said.
    ::kill(pid_, SIGKILL);
    auto exit = Reap();
    ::close(stdout_fd_);
    stdout_fd_ = -1;
    return absl::UnavailableError(absl::StrCat(
        failure, " (", exit.ok() ? absl::StrCat("exit code ", *exit) : std::string(exit.status().message()),
        ")\n--- ledgerd stdout ---\n", seen, "\n--- ledgerd stderr ---\n", Stderr()));
  }
  // Keep draining stdout so the server never blocks on (or dies of) a full
  // or closed pipe when it prints its shutdown lines.
  drain_ = std::thread([this] { DrainStdout(); });
  return absl::OkStatus();
}

void LedgerdProcess::DrainStdout() {
  char buffer[4096];
  while (true) {
    ssize_t n = ::read(stdout_fd_, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    std::lock_guard<std::mutex> lock(mu_);
    if (n <= 0) {
      eof_ = true;
      eof_cv_.notify_all();
      return;
    }
    stdout_.append(buffer, static_cast<size_t>(n));
  }
}

bool LedgerdProcess::WaitForStdoutEof(int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return eof_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] { return eof_; });
}

void LedgerdProcess::JoinDrain() {
  if (drain_.joinable()) drain_.join();
  if (stdout_fd_ >= 0) {
    ::close(stdout_fd_);
    stdout_fd_ = -1;
  }
}

absl::StatusOr<int> LedgerdProcess::Reap() {
  int status = 0;
  pid_t reaped;
  do {
    reaped = ::waitpid(pid_, &status, 0);
  } while (reaped < 0 && errno == EINTR);
  pid_ = -1;
  if (reaped < 0) return absl::InternalError(ErrnoText("waitpid"));
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) {
    return absl::AbortedError(absl::StrCat("ledgerd was killed by signal ", WTERMSIG(status), " (",
                                           std::string(::strsignal(WTERMSIG(status))), ")"));
  }
  return absl::InternalError(absl::StrCat("ledgerd ended with wait status ", status));
}

absl::StatusOr<int> LedgerdProcess::Stop() {
  if (!running()) return absl::FailedPreconditionError("ledgerd is not running");
  ::kill(pid_, SIGTERM);
  // Its stdout closes when it exits; bounded, then it is killed.
  if (!WaitForStdoutEof(kStopTimeoutMs)) {
    const std::string stacks = StackTraces(pid_);
    ::kill(pid_, SIGKILL);
    (void)Reap();
    JoinDrain();
    return absl::DeadlineExceededError(absl::StrCat(
        "ledgerd did not stop within ", kStopTimeoutMs, " ms of SIGTERM (killed)",
        "\n--- ledgerd stdout ---\n", Stdout(), "\n--- ledgerd stderr ---\n", Stderr(),
        "\n--- ledgerd threads ---\n", stacks));
  }
  auto exit = Reap();
  JoinDrain();
  if (!exit.ok()) {
    return absl::Status(exit.status().code(),
                        absl::StrCat(exit.status().message(), "\n--- ledgerd stderr ---\n", Stderr()));
  }
  return *exit;
}

absl::Status LedgerdProcess::Kill() {
  if (!running()) return absl::FailedPreconditionError("ledgerd is not running");
  ::kill(pid_, SIGKILL);
  auto exit = Reap();
  JoinDrain();
  if (exit.ok()) {
    return absl::InternalError(absl::StrCat("ledgerd exited with code ", *exit, " before SIGKILL"));
  }
  return absl::OkStatus();  // killed, as asked
}

absl::Status LedgerdProcess::Restart() {
  if (running()) {
    auto exit = Stop();
    if (!exit.ok()) return exit.status();
    if (*exit != 0) {
      return absl::InternalError(absl::StrCat("ledgerd exited with code ", *exit, " on SIGTERM",
                                              "\n--- ledgerd stderr ---\n", Stderr()));
    }
  }
  return Start();
}

absl::StatusOr<uint64_t> LedgerdProcess::ResidentBytes() const {
  if (!running()) return absl::FailedPreconditionError("ledgerd is not running");
  std::ifstream in(absl::StrCat("/proc/", pid_, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    unsigned long long kib = 0;
    if (std::sscanf(line.c_str(), "VmRSS: %llu kB", &kib) == 1) return uint64_t{kib} * 1024;
  }
  return absl::InternalError(absl::StrCat("no VmRSS in /proc/", pid_, "/status"));
}

std::string LedgerdProcess::Stderr() const {
  std::ifstream in(stderr_path_);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string LedgerdProcess::Stdout() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stdout_;
}

}  // namespace ledger::testing
