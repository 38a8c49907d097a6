#include "tests/support/ctl_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

#ifndef LEDGERCTL_PATH
#error "LEDGERCTL_PATH must name the ledgerctl binary (set by tests/CMakeLists.txt)"
#endif

extern char** environ;

namespace ledger::testing {
namespace {

constexpr size_t kShownBytes = 16 * 1024;

// ledgerctl keeps every receipt in an evidence directory, by default under
// $HOME. Tests get their own, made before main (one thread yet) and removed
// at exit, unless LEDGER_EVIDENCE is already set; a test that checks the
// evidence passes --evidence DIR.
[[maybe_unused]] const bool kEvidenceIsolated = [] {
  if (std::getenv("LEDGER_EVIDENCE") != nullptr) return false;
  const char* tmp = std::getenv("TMPDIR");
  static std::string dir = absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/ledgerctl-evidence-XXXXXX");
  if (mkdtemp(dir.data()) == nullptr) return false;
  setenv("LEDGER_EVIDENCE", dir.c_str(), 1);
  std::atexit([] {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  });
  return true;
}();

std::string Clip(const std::string& text) {
  if (text.size() <= kShownBytes) return text;
  return absl::StrCat(text.substr(0, kShownBytes), "\n... (", text.size() - kShownBytes,
                      " more bytes)");
}

}  // namespace

std::string Show(const CtlResult& r) {
  std::ostringstream os;
  os << "\n$ " << r.command << "\n[exit " << r.exit_code << (r.timed_out ? ", TIMED OUT" : "")
     << "]\n[stdout]\n" << Clip(r.out) << "\n[stderr]\n" << Clip(r.err);
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const CtlResult& r) { return os << Show(r); }

CtlResult RunProgram(const std::vector<std::string>& args, int timeout_seconds) {
  CtlResult result;
  std::vector<std::string> argv_strings = args;
  result.command = absl::StrJoin(argv_strings, " ");
  if (argv_strings.empty()) {
    result.err = "RunProgram: no program";
    return result;
  }
  std::vector<char*> argv;
  for (std::string& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    result.err = absl::StrCat("pipe2: ", std::strerror(errno));
    return result;
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    result.err = absl::StrCat("pipe2: ", std::strerror(errno));
    close(out_pipe[0]);
    close(out_pipe[1]);
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  pid_t pid = -1;
  int spawned = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (spawned != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    result.err = absl::StrCat("posix_spawn ", argv[0], ": ", std::strerror(spawned));
    return result;
  }

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  struct pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      result.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    int ready = poll(fds, 2, static_cast<int>(left));
    if (ready < 0) {
      if (errno == EINTR) continue;
      kill(pid, SIGKILL);
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buffer[65536];
      ssize_t n = read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& fd : fds) {
    if (fd.fd >= 0) close(fd.fd);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

CtlResult RunCtl(const std::vector<std::string>& args, int timeout_seconds) {
  std::vector<std::string> argv{LEDGERCTL_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProgram(argv, timeout_seconds);
}

::testing::AssertionResult Succeeded(const CtlResult& r) {
  if (r.exit_code == 0 && !r.timed_out) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected exit 0" << r;
}

::testing::AssertionResult Failed(const CtlResult& r, int code, const std::string& what) {
  if (r.exit_code == code && absl::StrContains(r.err, what) && r.out.empty() && !r.timed_out) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "expected exit " << code << " and stderr containing \"" << what
         << "\" (and empty stdout)" << r;
}

}  // namespace ledger::testing
