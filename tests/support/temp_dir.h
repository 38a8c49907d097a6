// Temporary directories and whole-file reads and writes for tests.
//
// TempDir creates a fresh directory under the system temporary directory
// ($TMPDIR, else /tmp) and removes it, with everything in it, when it is
// destroyed. If it cannot be created, the running test fails
// (ADD_FAILURE) and path() is empty. Not thread-safe; a TempDir is owned by
// one test or fixture.
#ifndef TESTS_SUPPORT_TEMP_DIR_H_
#define TESTS_SUPPORT_TEMP_DIR_H_

#include <string>
#include <string_view>

namespace ledger::testing {

class TempDir {
 public:
  // kTmpfsIfAny: under /dev/shm where it exists, for a test that checks
  // what is written, not how fast a shared disk syncs it.
  enum class Medium { kSystemTemp, kTmpfsIfAny };
  // The directory is named `<prefix>.XXXXXX`.
  explicit TempDir(std::string_view prefix = "ledger-test", Medium medium = Medium::kSystemTemp);
  ~TempDir();

  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // The directory ("" if it could not be created).
  const std::string& path() const { return path_; }
  // path()/name.
  std::string Path(std::string_view name) const;

 private:
  std::string path_;
};

// The whole contents of a file ("" if it cannot be read).
std::string ReadFileBytes(const std::string& path);
// Replaces a file's contents (created if absent).
void WriteFileBytes(const std::string& path, const std::string& contents);

}  // namespace ledger::testing

#endif  // TESTS_SUPPORT_TEMP_DIR_H_
