// The evidence bundle file (proto/ledger/v1/bundle.proto): a versioned,
// streamed format written by `ledgerctl export` and read by `ledgerctl
// verify`. Neither side holds more than one frame in memory.
//
// Thread contract: one writer or reader per file, used from one thread.
#ifndef LEDGER_AUDIT_BUNDLE_H_
#define LEDGER_AUDIT_BUNDLE_H_

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "ledger/crypto/sha256.h"
#include "ledger/v1/bundle.pb.h"

namespace ledger::audit {

inline constexpr std::string_view kBundleMagic = "DLEDGER-BUNDLE1\n";
inline constexpr uint32_t kBundleFormatVersion = 1;
// Larger frames are refused: no record comes near it, and a reader must not
// be made to allocate what a corrupt length says.
inline constexpr size_t kMaxFrameBytes = 16 << 20;

class BundleWriter {
 public:
  // Writes to `path`.partial and renames it to `path` on Finish, so a bundle
  // that exists is complete. Refuses to overwrite an existing `path`, and
  // creates `path`.partial only if nothing is there (never through a
  // symbolic link: FailedPrecondition naming it).
  static absl::StatusOr<std::unique_ptr<BundleWriter>> Create(const std::string& path);
  ~BundleWriter();

  absl::Status Write(const v1::BundleFrame& frame);
  // Writes the footer (counts and digest), syncs and renames.
  absl::Status Finish();

 private:
  BundleWriter() = default;
  std::string path_, partial_;
  std::FILE* out_ = nullptr;  // the .partial file, created by Create
  crypto::Sha256Stream digest_;
  uint64_t records_ = 0, checkpoints_ = 0;
  bool created_ = false;  // partial_ is ours to remove if unfinished
  bool finished_ = false;
};

class BundleReader {
 public:
  // InvalidArgument if `path` is not a bundle (names the path).
  static absl::StatusOr<std::unique_ptr<BundleReader>> Open(const std::string& path);

  // The next frame, or nullopt after the footer. A truncated or malformed
  // frame, a footer whose digest or counts do not match, or bytes after the
  // footer are DataLoss naming the byte offset.
  absl::StatusOr<std::optional<v1::BundleFrame>> Next();
  // Random access, for a second reader of the same file (its sequential
  // state is not kept): the frame starting at byte `offset`, and sets
  // *next to the byte after it. Checks only that the frame decodes: the
  // digest is checked by the reader that streams the whole bundle.
  absl::StatusOr<v1::BundleFrame> FrameAt(uint64_t offset, uint64_t* next);
  uint64_t offset() const { return offset_; }
  uint64_t file_size() const { return file_size_; }

 private:
  BundleReader() = default;
  // Reads one frame at the stream's position: its length prefix (varint) and
  // its bytes. An error names what was wrong, without where.
  absl::Status ReadFrameBytes(std::string* length_bytes, std::string* body);
  std::string path_;
  std::ifstream in_;
  crypto::Sha256Stream digest_;
  uint64_t offset_ = 0, file_size_ = 0;
  uint64_t records_ = 0, checkpoints_ = 0;
  bool done_ = false;
};

}  // namespace ledger::audit

#endif  // LEDGER_AUDIT_BUNDLE_H_
