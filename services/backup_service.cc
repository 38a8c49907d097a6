#include "services/backup_service.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "glog/logging.h"
#include "ledger/crypto/sha256.h"
#include "ledger/event/refusal.h"
#include "services/backup.h"
#include "services/grpc_status.h"

namespace ledger::services {
namespace {

constexpr size_t kChunkBytes = 1 << 20;   // well under gRPC's 4 MiB message limit
constexpr size_t kQueuedChunks = 4;       // read ahead of the network at most this much
// A client that reads nothing for this long loses the call: otherwise it
// would hold the one backup slot, and the snapshot's hard links would pin
// table files compaction has replaced, until the disk fills.
constexpr absl::Duration kStallTimeout = absl::Seconds(60);

// Test hook (tests/integration/backup_test.cc): with this environment
// variable set, each Backup holds its slot after its first chunk until the
// client cancels it, so a test can hold one deterministically.
bool HoldBackupsForTests() {
  static const bool hold = std::getenv("LEDGERD_TEST_HOLD_BACKUPS") != nullptr;
  return hold;
}

class FinishedWriter final : public grpc::ServerWriteReactor<v1::BackupChunk> {
 public:
  explicit FinishedWriter(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

// One Backup call: a worker thread makes the snapshot and queues chunks (at
// most kQueuedChunks ahead); the reactor writes them one at a time.
// StartWrite and Finish are never called under mu_.
class BackupReactor final : public grpc::ServerWriteReactor<v1::BackupChunk> {
 public:
  BackupReactor(grpc::CallbackServerContext* context, const store::Ledger* ledger, std::string data_dir,
                std::atomic<bool>* running)
      : context_(context), ledger_(ledger), data_dir_(std::move(data_dir)), running_(running) {
    worker_ = std::thread([this] { Run(); });
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) {
        cancelled_ = true;  // the client is gone
        queue_.clear();
      }
    }
    Pump();
  }
  void OnCancel() override {
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      queue_.clear();
    }
    Pump();
  }
  void OnDone() override {
    if (worker_.get_id() == std::this_thread::get_id()) {
      worker_.detach();
    } else {
      worker_.join();
    }
    delete this;
  }

 private:
  bool IsCancelled() {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }
  bool RoomOrCancelled() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return cancelled_ || queue_.size() < kQueuedChunks;
  }

  // Waits for room in the queue; false if the call was cancelled, or is
  // now because the client stalled.
  bool Push(v1::BackupChunk chunk) {
    bool stalled = false;
    {
      absl::MutexLock lock(&mu_);
      if (!mu_.AwaitWithTimeout(absl::Condition(this, &BackupReactor::RoomOrCancelled), kStallTimeout)) {
        stalled = true;
        cancelled_ = true;
        queue_.clear();
      }
      if (!cancelled_) queue_.push_back(std::move(chunk));
    }
    if (stalled) {
      LOG(WARNING) << "backup: the client read nothing for " << kStallTimeout << "; the call is cancelled";
      context_->TryCancel();  // (not under mu_: OnCancel takes it) ends the stalled write, so OnDone frees the slot
    }
    if (stalled || IsCancelled()) return false;
    Pump();
    return true;
  }

  void Pump() {
    enum { kNothing, kWrite, kFinish } action = kNothing;
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (writing_ || finished_) return;
      if (!queue_.empty() && !cancelled_) {
        current_ = std::move(queue_.front());
        queue_.pop_front();
        writing_ = true;
        action = kWrite;
      } else if (worker_done_) {
        finished_ = true;
        status = cancelled_ && final_status_.ok() ? grpc::Status(grpc::StatusCode::CANCELLED, "cancelled")
                                                  : final_status_;
        action = kFinish;
      }
    }
    if (action == kWrite) StartWrite(&current_);
    if (action == kFinish) {
      // Free before the client sees the answer (as Verify's slot).
      running_->store(false);
      Finish(status);  // `this` may be gone after this
    }
  }

  void Complete(const absl::Status& status) {
    if (auto s = RemoveBackupTempDir(data_dir_); !s.ok()) LOG(WARNING) << s.message();
    {
      absl::MutexLock lock(&mu_);
      worker_done_ = true;
      final_status_ = ToGrpc(status);
    }
    Pump();
  }

  // Streams one file of the snapshot, filling in its SHA-256.
  absl::Status StreamFile(const std::string& dir, v1::BackupFile* file) {
    const std::string path = dir + "/" + file->name();
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
    crypto::Sha256Stream hash;
    uint64_t offset = 0;
    absl::Status status;
    bool sent_any = false;
    while (true) {
      std::string data(kChunkBytes, '\0');
      ssize_t n = ::read(fd, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        status = absl::UnavailableError(absl::StrCat("reading ", path, ": ", std::strerror(errno)));
        break;
      }
      if (n == 0 && sent_any) break;
      data.resize(static_cast<size_t>(n));
      hash.Update(data);
      v1::BackupChunk chunk;
      chunk.set_name(file->name());
      chunk.set_offset(offset);
      chunk.set_size(file->size());
      chunk.set_data(std::move(data));
      offset += static_cast<uint64_t>(n);
      sent_any = true;
      if (!Push(std::move(chunk))) {
        status = absl::CancelledError("cancelled");
        break;
      }
      if (n == 0) break;
      if (HoldBackupsForTests()) {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(&cancelled_));
        status = absl::CancelledError("cancelled");
        break;
      }
    }
    ::close(fd);
    if (!status.ok()) return status;
    if (offset != file->size()) {
      return absl::InternalError(absl::StrCat(path, " changed while it was read (", offset, " bytes, listed ",
                                              file->size(), ")"));
    }
    file->set_sha256(std::string(crypto::AsBytes(hash.Peek())));
    return absl::OkStatus();
  }

  void Run() {
    const std::string dir = data_dir_ + "/" + kBackupTempDirName;
    // A leftover of a backup cancelled while its worker was stopping.
    if (auto s = RemoveBackupTempDir(data_dir_); !s.ok()) return Complete(s);
    auto manifest = TakeSnapshot(ledger_->store(), data_dir_, dir, ledger_->info().ledger_id(),
                                 ledger_->info().origin(), ledger_->operator_public_key());
    if (!manifest.ok()) return Complete(manifest.status());
    LOG(INFO) << "backup: streaming a checkpoint of " << manifest->tree_size() << " records ("
              << manifest->files_size() << " files)";
    for (v1::BackupFile& file : *manifest->mutable_files()) {
      if (auto s = StreamFile(dir, &file); !s.ok()) return Complete(s);
    }
    v1::BackupChunk last;
    *last.mutable_manifest() = *std::move(manifest);
    if (!Push(std::move(last))) return Complete(absl::CancelledError("cancelled"));
    Complete(absl::OkStatus());
  }

  grpc::CallbackServerContext* const context_;
  const store::Ledger* ledger_;
  const std::string data_dir_;
  std::atomic<bool>* running_;
  std::thread worker_;

  absl::Mutex mu_;
  std::deque<v1::BackupChunk> queue_ ABSL_GUARDED_BY(mu_);
  v1::BackupChunk current_;  // the write in flight (the reactor's only)
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool worker_done_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

BackupServiceImpl::BackupServiceImpl(const store::Ledger* ledger, std::string data_dir)
    : ledger_(ledger), data_dir_(std::move(data_dir)) {
  if (auto s = RemoveBackupTempDir(data_dir_); !s.ok()) LOG(WARNING) << s.message();
}

grpc::ServerWriteReactor<v1::BackupChunk>* BackupServiceImpl::Backup(grpc::CallbackServerContext* context,
                                                                     const v1::BackupRequest* /*request*/) {
  if (costly_ != nullptr) {
    if (absl::Status allowed = costly_->Check(*context, "Backup"); !allowed.ok()) {
      return new FinishedWriter(ToGrpc(allowed));
    }
  }
  if (running_.exchange(true)) {
    return new FinishedWriter(ToGrpc(Refuse(absl::StatusCode::kResourceExhausted, v1::LIMIT_REACHED,
                                            "a backup is already running, the most this server allows "
                                            "(one at a time); try again later")));
  }
  return new BackupReactor(context, ledger_, data_dir_, &running_);
}

}  // namespace ledger::services
