#include "services/backup_service.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "ledger/crypto/sha256.h"
#include "ledger/event/refusal.h"
#include "services/backup.h"
#include "services/grpc_status.h"
#include "services/worker.h"

namespace ledger::services {
namespace {

constexpr size_t kChunkBytes = 1 << 20;   // well under gRPC's 4 MiB message limit
constexpr size_t kQueuedChunks = 4;       // read ahead of the network at most this much

// One Backup call: its worker makes the snapshot and queues chunks (at most
// kQueuedChunks ahead of the network); services/worker.h writes them.
class BackupReactor final : public WorkerStreamReactor<v1::BackupChunk> {
 public:
  BackupReactor(grpc::CallbackServerContext* context, const store::Ledger* ledger, std::string data_dir,
                std::atomic<bool>* running, absl::Duration stall_timeout)
      : WorkerStreamReactor(context, {.max_queued = kQueuedChunks,
                                      .stall_timeout = stall_timeout,
                                      // Freed before the client sees the answer (as Verify's slot).
                                      .on_finish = [running] { running->store(false); },
                                      .name = "backup"}),
        ledger_(ledger),
        data_dir_(std::move(data_dir)) {
    StartWorker();
  }

 private:
  grpc::Status Work() override {
    absl::Status status = Stream();
    if (auto s = RemoveBackupTempDir(data_dir_); !s.ok()) LOG(WARNING) << s.message();
    return ToGrpc(status);
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

  // The snapshot, file by file, then the manifest.
  absl::Status Stream() {
    const std::string dir = data_dir_ + "/" + kBackupTempDirName;
    // A leftover of a backup cancelled while its worker was stopping.
    if (auto s = RemoveBackupTempDir(data_dir_); !s.ok()) return s;
    auto manifest = TakeSnapshot(ledger_->store(), data_dir_, dir, ledger_->info().ledger_id(),
                                 ledger_->info().origin(), ledger_->operator_public_key());
    if (!manifest.ok()) return manifest.status();
    LOG(INFO) << "backup: streaming a checkpoint of " << manifest->tree_size() << " records ("
              << manifest->files_size() << " files)";
    for (v1::BackupFile& file : *manifest->mutable_files()) {
      if (auto s = StreamFile(dir, &file); !s.ok()) return s;
    }
    v1::BackupChunk last;
    *last.mutable_manifest() = *std::move(manifest);
    if (!Push(std::move(last))) return absl::CancelledError("cancelled");
    return absl::OkStatus();
  }

  const store::Ledger* ledger_;
  const std::string data_dir_;
};

}  // namespace

BackupServiceImpl::BackupServiceImpl(const store::Ledger* ledger, std::string data_dir, absl::Duration stall_timeout)
    : ledger_(ledger), data_dir_(std::move(data_dir)), stall_timeout_(stall_timeout) {
  if (auto s = RemoveBackupTempDir(data_dir_); !s.ok()) LOG(WARNING) << s.message();
}

grpc::ServerWriteReactor<v1::BackupChunk>* BackupServiceImpl::Backup(grpc::CallbackServerContext* context,
                                                                     const v1::BackupRequest* /*request*/) {
  if (costly_ != nullptr) {
    if (absl::Status allowed = costly_->Check(*context, "Backup"); !allowed.ok()) {
      return new FinishedStream<v1::BackupChunk>(ToGrpc(allowed));
    }
  }
  if (running_.exchange(true)) {
    return new FinishedStream<v1::BackupChunk>(ToGrpc(Refuse(absl::StatusCode::kResourceExhausted, v1::LIMIT_REACHED,
                                            "a backup is already running, the most this server allows "
                                            "(one at a time); try again later")));
  }
  return new BackupReactor(context, ledger_, data_dir_, &running_, stall_timeout_);
}

}  // namespace ledger::services
