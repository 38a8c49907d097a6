// Durable file writes: the one implementation of "write it so that a crash
// leaves the old file or the new one, and OK means the new one survives",
// shared by key files, the witness's state, ledgerd's operator.vkey and
// ledgerctl's evidence and monitor state.
#ifndef LEDGER_COMMON_FILES_H_
#define LEDGER_COMMON_FILES_H_

#include <sys/types.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ledger {

// Writes all of `data` to `fd` (retrying short writes and EINTR).
absl::Status WriteAll(int fd, std::string_view data);

// Fsyncs the directory holding `path`, so a new or renamed entry in it
// survives a crash as well as the file's contents.
absl::Status SyncParentDir(const std::string& path);

// Replaces `path` with `contents` atomically and durably: written to
// `path`.tmp (mode `mode`), fsynced, renamed over `path`, the directory
// fsynced. On failure the temporary file is removed and `path` is untouched.
// Errors name the file and the OS reason.
absl::Status ReplaceFileDurably(const std::string& path, std::string_view contents, mode_t mode = 0600);

// An exclusive flock on DIR/`lock_file`, held until destruction: one process
// per directory. The holder's pid is written into the file so the refusal can
// name it: "another `holder` is using DIR (pid N holds DIR/lock_file)".
// Creates DIR (0700) if it does not exist.
class DirectoryLock {
 public:
  static absl::StatusOr<DirectoryLock> Acquire(const std::string& dir, const std::string& lock_file,
                                               const std::string& holder);
  DirectoryLock(DirectoryLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  DirectoryLock& operator=(DirectoryLock&& other) noexcept;
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;
  ~DirectoryLock();

 private:
  explicit DirectoryLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace ledger

#endif  // LEDGER_COMMON_FILES_H_
