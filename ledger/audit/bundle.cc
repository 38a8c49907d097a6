#include "ledger/audit/bundle.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace ledger::audit {
namespace {

std::string Varint(uint64_t value) {
  std::string out;
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<BundleWriter>> BundleWriter::Create(const std::string& path) {
  if (std::filesystem::exists(path)) {
    return absl::AlreadyExistsError(absl::StrCat("bundle ", path, " already exists; not overwriting it"));
  }
  std::unique_ptr<BundleWriter> writer(new BundleWriter());
  writer->path_ = path;
  writer->partial_ = path + ".partial";
  // Created fresh, never through a link: a link planted at the .partial name
  // would otherwise have the export overwrite whatever it points at.
  const int fd = ::open(writer->partial_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int error = errno;
    struct stat st;
    if (::lstat(writer->partial_.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat(
          writer->partial_, " is a symbolic link; refusing to write the bundle through it (remove it)"));
    }
    if (error == EEXIST) {
      return absl::FailedPreconditionError(absl::StrCat(
          writer->partial_, " already exists (another export, or one interrupted); remove it to export again"));
    }
    return absl::UnavailableError(absl::StrCat("cannot create ", writer->partial_, ": ", std::strerror(error)));
  }
  writer->created_ = true;
  writer->out_ = ::fdopen(fd, "wb");
  if (writer->out_ == nullptr) {
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("cannot write ", writer->partial_));
  }
  std::fwrite(kBundleMagic.data(), 1, kBundleMagic.size(), writer->out_);
  writer->digest_.Update(kBundleMagic);
  return writer;
}

BundleWriter::~BundleWriter() {
  if (out_ != nullptr) std::fclose(out_);
  if (created_ && !finished_) std::remove(partial_.c_str());
}

absl::Status BundleWriter::Write(const v1::BundleFrame& frame) {
  if (frame.has_record()) records_++;
  if (frame.has_checkpoint()) checkpoints_++;
  const std::string body = frame.SerializeAsString();
  const std::string bytes = Varint(body.size()) + body;
  std::fwrite(bytes.data(), 1, bytes.size(), out_);
  digest_.Update(bytes);
  if (std::ferror(out_)) return absl::UnavailableError(absl::StrCat("writing ", partial_, " failed (disk full?)"));
  return absl::OkStatus();
}

absl::Status BundleWriter::Finish() {
  v1::BundleFrame frame;
  v1::BundleFooter* footer = frame.mutable_footer();
  footer->set_records(records_);
  footer->set_checkpoints(checkpoints_);
  footer->set_digest(std::string(crypto::AsBytes(digest_.Peek())));
  const std::string body = frame.SerializeAsString();
  const std::string bytes = Varint(body.size()) + body;
  std::fwrite(bytes.data(), 1, bytes.size(), out_);
  if (std::fflush(out_) != 0 || std::ferror(out_)) {
    return absl::UnavailableError(absl::StrCat("writing ", partial_, " failed (disk full?)"));
  }
  if (::fsync(::fileno(out_)) != 0) return absl::UnavailableError(absl::StrCat("syncing ", partial_, " failed"));
  const int closed = std::fclose(out_);
  out_ = nullptr;
  if (closed != 0) return absl::UnavailableError(absl::StrCat("closing ", partial_, " failed"));
  std::error_code error;
  std::filesystem::rename(partial_, path_, error);
  if (error) return absl::UnavailableError(absl::StrCat("renaming ", partial_, ": ", error.message()));
  finished_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<BundleReader>> BundleReader::Open(const std::string& path) {
  std::unique_ptr<BundleReader> reader(new BundleReader());
  reader->path_ = path;
  reader->in_.open(path, std::ios::binary);
  if (!reader->in_) return absl::ErrnoToStatus(errno, absl::StrCat("bundle ", path));
  std::error_code error;
  reader->file_size_ = std::filesystem::file_size(path, error);
  std::string magic(kBundleMagic.size(), '\0');
  reader->in_.read(magic.data(), magic.size());
  if (!reader->in_ || magic != kBundleMagic) {
    return absl::InvalidArgumentError(
        absl::StrCat("bundle ", path, ": not a Decision Ledger evidence bundle (format 1)"));
  }
  reader->digest_.Update(magic);
  reader->offset_ = magic.size();
  return reader;
}

absl::StatusOr<std::optional<v1::BundleFrame>> BundleReader::Next() {
  if (done_) return std::nullopt;
  auto corrupt = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat("bundle ", path_, " at byte ", offset_, ": ", what));
  };
  const uint64_t frame_start = offset_;
  std::string length_bytes, body;
  if (absl::Status read = ReadFrameBytes(&length_bytes, &body); !read.ok()) return corrupt(read.message());
  offset_ += length_bytes.size() + body.size();
  v1::BundleFrame frame;
  if (!frame.ParseFromString(body) || frame.frame_case() == v1::BundleFrame::FRAME_NOT_SET) {
    offset_ = frame_start;
    return corrupt("frame does not decode");
  }
  if (frame.has_footer()) {
    const crypto::Digest digest = digest_.Peek();
    if (frame.footer().digest() != crypto::AsBytes(digest)) {
      offset_ = frame_start;
      return corrupt("the footer's digest does not match the bundle: it was altered");
    }
    if (frame.footer().records() != records_ || frame.footer().checkpoints() != checkpoints_) {
      offset_ = frame_start;
      return corrupt("the footer's counts do not match the bundle");
    }
    char extra;
    if (in_.get(extra)) return corrupt("bytes after the footer");
    done_ = true;
  } else {
    digest_.Update(length_bytes);
    digest_.Update(body);
    if (frame.has_record()) records_++;
    if (frame.has_checkpoint()) checkpoints_++;
  }
  return frame;
}

absl::Status BundleReader::ReadFrameBytes(std::string* length_bytes, std::string* body) {
  uint64_t length = 0;
  for (int shift = 0;; shift += 7) {
    char c;
    if (!in_.get(c)) return absl::DataLossError("truncated: the bundle ends before its footer");
    length_bytes->push_back(c);
    if (shift > 28) return absl::DataLossError("frame length is malformed");
    length |= static_cast<uint64_t>(static_cast<uint8_t>(c) & 0x7f) << shift;
    if ((static_cast<uint8_t>(c) & 0x80) == 0) break;
  }
  if (length > kMaxFrameBytes) return absl::DataLossError(absl::StrCat("frame of ", length, " bytes is over the limit"));
  body->assign(length, '\0');
  in_.read(body->data(), static_cast<std::streamsize>(length));
  if (static_cast<uint64_t>(in_.gcount()) != length) return absl::DataLossError("truncated frame");
  return absl::OkStatus();
}

absl::StatusOr<v1::BundleFrame> BundleReader::FrameAt(uint64_t offset, uint64_t* next) {
  auto corrupt = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat("bundle ", path_, " at byte ", offset, ": ", what));
  };
  in_.clear();
  in_.seekg(static_cast<std::streamoff>(offset));
  std::string length_bytes, body;
  if (absl::Status read = ReadFrameBytes(&length_bytes, &body); !read.ok()) return corrupt(read.message());
  v1::BundleFrame frame;
  if (!frame.ParseFromString(body)) return corrupt("frame does not decode");
  *next = offset + length_bytes.size() + body.size();
  return frame;
}

}  // namespace ledger::audit
