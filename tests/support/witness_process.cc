#include "tests/support/witness_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

#ifndef WITNESS_PATH
#error "WITNESS_PATH must name the ledger-witness binary (set by tests/CMakeLists.txt)"
#endif

namespace ledger::testing {
namespace {

constexpr int kStartTimeoutMs = 20'000;
constexpr char kListeningPrefix[] = "ledger-witness listening on ";

std::string ErrnoText(const char* what) { return absl::StrCat(what, ": ", std::string(std::strerror(errno))); }

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// fork + exec WITNESS_PATH with stdout to `out_fd` and stderr to `err_fd`.
pid_t Spawn(const std::vector<std::string>& args, int out_fd, int err_fd) {
  std::vector<std::string> all = {WITNESS_PATH};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : all) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace

WitnessProcess::WitnessProcess(std::string data_dir, std::vector<std::string> args)
    : data_dir_(std::move(data_dir)), stderr_path_(data_dir_ + ".stderr.log"), args_(std::move(args)) {}

WitnessProcess::~WitnessProcess() {
  if (running()) (void)Kill();
  JoinDrain();
}

int WitnessProcess::port() const { return std::stoi(address_.substr(address_.rfind(':') + 1)); }

absl::Status WitnessProcess::Start() {
  if (running()) return absl::FailedPreconditionError("ledger-witness is already running");
  JoinDrain();
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return absl::InternalError(ErrnoText("pipe2"));
  int err = ::open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (err < 0) return absl::InternalError(ErrnoText("open stderr log"));
  std::vector<std::string> args = {"--data", data_dir_, "--listen", "127.0.0.1:0"};
  args.insert(args.end(), args_.begin(), args_.end());
  pid_t pid = Spawn(args, out[1], err);
  ::close(out[1]);
  ::close(err);
  if (pid < 0) {
    ::close(out[0]);
    return absl::InternalError(ErrnoText("fork"));
  }
  pid_ = pid;
  stdout_fd_ = out[0];
  address_.clear();
  banner_.clear();
  const int64_t deadline = NowMs() + kStartTimeoutMs;
  std::string failure;
  while (address_.empty() && failure.empty()) {
    const int64_t left = deadline - NowMs();
    if (left <= 0) {
      failure = "ledger-witness did not print its listening line in time";
      break;
    }
    pollfd p{stdout_fd_, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(left));
    if (ready <= 0) continue;
    char buffer[4096];
    ssize_t n = ::read(stdout_fd_, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failure = "ledger-witness exited before it was listening";
      break;
    }
    banner_.append(buffer, static_cast<size_t>(n));
    size_t at = banner_.find(kListeningPrefix);
    size_t nl = at == std::string::npos ? std::string::npos : banner_.find('\n', at);
    if (nl != std::string::npos) {
      address_ = banner_.substr(at + sizeof kListeningPrefix - 1, nl - at - (sizeof kListeningPrefix - 1));
    }
  }
  if (!failure.empty()) {
    ::kill(pid_, SIGKILL);
    (void)Reap();
    ::close(stdout_fd_);
    stdout_fd_ = -1;
    return absl::UnavailableError(absl::StrCat(failure, "\n--- stdout ---\n", banner_, "\n--- stderr ---\n", Stderr()));
  }
  const int fd = stdout_fd_;
  drain_ = std::thread([fd, this] {
    char buffer[4096];
    while (true) {
      ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
    }
  });
  return absl::OkStatus();
}

void WitnessProcess::JoinDrain() {
  if (drain_.joinable()) drain_.join();
  if (stdout_fd_ >= 0) {
    ::close(stdout_fd_);
    stdout_fd_ = -1;
  }
}

absl::StatusOr<int> WitnessProcess::Reap() {
  int status = 0;
  pid_t reaped;
  do {
    reaped = ::waitpid(pid_, &status, 0);
  } while (reaped < 0 && errno == EINTR);
  pid_ = -1;
  if (reaped < 0) return absl::InternalError(ErrnoText("waitpid"));
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return absl::AbortedError(absl::StrCat("ledger-witness was killed by signal ", WTERMSIG(status)));
}

absl::StatusOr<int> WitnessProcess::Stop() {
  if (!running()) return absl::FailedPreconditionError("ledger-witness is not running");
  ::kill(pid_, SIGTERM);
  auto exit = Reap();  // bounded by the ctest timeout
  JoinDrain();
  return exit;
}

absl::Status WitnessProcess::Kill() {
  if (!running()) return absl::FailedPreconditionError("ledger-witness is not running");
  ::kill(pid_, SIGKILL);
  auto exit = Reap();
  JoinDrain();
  if (exit.ok()) return absl::InternalError(absl::StrCat("ledger-witness exited with ", *exit, " before SIGKILL"));
  return absl::OkStatus();
}

std::string WitnessProcess::Stderr() const {
  std::ifstream in(stderr_path_);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int RunWitness(const std::vector<std::string>& args, std::string* stderr_text) {
  int err[2];
  if (::pipe2(err, O_CLOEXEC) != 0) return -1;
  int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  pid_t pid = Spawn(args, null_fd, err[1]);
  ::close(err[1]);
  ::close(null_fd);
  if (pid < 0) {
    ::close(err[0]);
    return -1;
  }
  stderr_text->clear();
  char buffer[4096];
  for (ssize_t n; (n = ::read(err[0], buffer, sizeof buffer)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    stderr_text->append(buffer, static_cast<size_t>(n));
  }
  ::close(err[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace ledger::testing
