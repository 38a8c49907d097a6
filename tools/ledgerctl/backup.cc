// backup: BackupService.Backup into a new directory; restore: a backup into a
// new data directory, verified offline (services/backup.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/channel.h"
#include "client/error_detail.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "ledger/audit/report.h"
#include "ledger/common/files.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/crypto/sha256.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/v1/backup_service.grpc.pb.h"
#include "services/backup.h"
#include "tools/ledgerctl/commands.h"

namespace ledger::ctl {
namespace {
namespace fs = std::filesystem;

std::string Trimmed(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

// An existing DIR that is a non-empty directory, or not a directory, is refused.
absl::Status RefuseExisting(const std::string& dir, const char* what) {
  std::error_code error;
  if (!fs::exists(dir, error)) return absl::OkStatus();
  if (!fs::is_directory(dir, error)) {
    return absl::FailedPreconditionError(absl::StrCat(dir, " exists and is not a directory"));
  }
  if (!fs::is_empty(dir, error)) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " is not empty: ", what, " writes only into a new or empty directory (nothing was written)"));
  }
  return absl::OkStatus();
}

// One file being received: written to partial/NAME, hashed as it comes.
struct Incoming {
  int fd = -1;
  uint64_t size = 0;      // announced
  uint64_t written = 0;
  std::unique_ptr<crypto::Sha256Stream> hash;
  std::string sha256;     // when closed
};

absl::Status ReceiveBackup(const Invocation& in, const std::string& partial, v1::BackupManifest* manifest,
                           uint64_t* bytes) {
  auto channel = client::NewChannel(in.server, {.tls = in.tls});
  (void)client::WaitForConnection(*channel, client::kInteractiveConnectWait);
  auto stub = v1::BackupService::NewStub(channel);
  grpc::ClientContext context;  // no deadline: a large ledger takes a while
  std::unique_ptr<grpc::ClientReader<v1::BackupChunk>> reader = stub->Backup(&context, v1::BackupRequest());
  std::map<std::string, Incoming> files;
  std::string current;
  absl::Status failed;
  auto close_current = [&]() -> absl::Status {
    if (current.empty()) return absl::OkStatus();
    Incoming& file = files[current];
    absl::Status s;
    if (::fsync(file.fd) != 0) s = absl::UnavailableError(absl::StrCat("fsync ", partial, "/", current, ": ", std::strerror(errno)));
    ::close(file.fd);
    file.fd = -1;
    file.sha256 = std::string(crypto::AsBytes(file.hash->Peek()));
    if (s.ok() && file.written != file.size) {
      s = absl::DataLossError(absl::StrCat("the server sent ", file.written, " bytes of ", current, ", announced ", file.size));
    }
    current.clear();
    return s;
  };
  bool have_manifest = false;
  v1::BackupChunk chunk;
  while (failed.ok() && reader->Read(&chunk)) {
    if (chunk.has_manifest()) {
      failed = close_current();
      *manifest = chunk.manifest();
      have_manifest = true;
      continue;
    }
    if (have_manifest) {
      failed = absl::DataLossError("the server sent file data after the manifest");
      break;
    }
    if (chunk.name() != current) {
      if (failed = close_current(); !failed.ok()) break;
      if (!services::IsBackupFileName(chunk.name()) || files.count(chunk.name()) || chunk.offset() != 0) {
        failed = absl::DataLossError(absl::StrCat("the server sent an unexpected file \"", chunk.name(), "\" at offset ",
                                                  chunk.offset()));
        break;
      }
      const std::string path = partial + "/" + chunk.name();
      Incoming& file = files[chunk.name()];
      file.fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (file.fd < 0) {
        failed = absl::UnavailableError(absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
        break;
      }
      file.size = chunk.size();
      file.hash = std::make_unique<crypto::Sha256Stream>();
      current = chunk.name();
    }
    Incoming& file = files[current];
    if (chunk.offset() != file.written || file.written + chunk.data().size() > file.size) {
      failed = absl::DataLossError(absl::StrCat("the server sent bytes of ", current, " out of order (offset ",
                                                chunk.offset(), ", have ", file.written, ")"));
      break;
    }
    file.hash->Update(chunk.data());
    if (failed = WriteAll(file.fd, chunk.data()); !failed.ok()) break;
    file.written += chunk.data().size();
    *bytes += chunk.data().size();
  }
  if (!failed.ok()) context.TryCancel();
  grpc::Status status = reader->Finish();
  if (!current.empty() && files[current].fd >= 0) ::close(files[current].fd);
  if (!failed.ok()) return failed;
  if (!status.ok()) {
    absl::Status s = client::ToStatus("Backup", in.server, status);
    return s;
  }
  if (!have_manifest) return absl::DataLossError("the server's stream ended without a manifest");
  // Every file the manifest lists arrived whole, and nothing else did.
  for (const v1::BackupFile& listed : manifest->files()) {
    auto it = files.find(listed.name());
    if (it == files.end()) return absl::DataLossError(absl::StrCat("the manifest lists ", listed.name(), ", which never came"));
    if (it->second.written != listed.size() || it->second.sha256 != listed.sha256()) {
      return absl::DataLossError(absl::StrCat("received ", listed.name(), " does not match the manifest (size ",
                                              it->second.written, " vs ", listed.size(), ", SHA-256 ",
                                              crypto::ToHex(it->second.sha256), " vs ",
                                              crypto::ToHex(listed.sha256()), ")"));
    }
    files.erase(it);
  }
  if (!files.empty()) {
    return absl::DataLossError(absl::StrCat("the server sent ", files.begin()->first, ", which the manifest does not list"));
  }
  // The manifest's checkpoint is signed by the key the backup carries.
  auto key = crypto::ReadPublicKeyFile(partial + "/operator.pub.pem");
  if (!key.ok()) return key.status();
  auto checkpoint = merkle::OpenCheckpoint(manifest->checkpoint_note(), manifest->origin(), *key);
  if (!checkpoint.ok() || checkpoint->size != manifest->tree_size()) {
    return absl::DataLossError("the manifest's signed checkpoint does not verify against the backup's operator.pub.pem");
  }
  return absl::OkStatus();
}

absl::Status SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot open ", dir, ": ", std::strerror(errno)));
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return absl::UnavailableError(absl::StrCat("fsync ", dir, ": ", std::strerror(errno)));
  return absl::OkStatus();
}

absl::Status RunBackup(const Invocation& in) {
  const std::string out = Trimmed(in.flags.Get("out"));
  if (out.empty()) return UsageError("--out must not be empty");
  if (auto s = RefuseExisting(out, "backup"); !s.ok()) return s;
  const std::string partial = out + ".partial";
  std::error_code error;
  if (fs::exists(partial, error)) {
    return absl::FailedPreconditionError(
        absl::StrCat(partial, " exists (an earlier backup that did not finish?); remove it and run backup again"));
  }
  fs::create_directories(partial + "/db", error);
  if (error) return absl::UnavailableError(absl::StrCat("cannot create ", partial, ": ", error.message()));
  ::chmod(partial.c_str(), 0700);
  const auto start = std::chrono::steady_clock::now();
  v1::BackupManifest manifest;
  uint64_t bytes = 0;
  absl::Status s = ReceiveBackup(in, partial, &manifest, &bytes);
  if (s.ok()) {
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    options.preserve_proto_field_names = true;
    std::string json;
    if (auto printed = google::protobuf::util::MessageToJsonString(manifest, &json, options); !printed.ok()) {
      s = absl::InternalError(printed.ToString());
    } else {
      s = ReplaceFileDurably(partial + "/" + services::kBackupManifestName, json, 0600);
    }
  }
  if (s.ok()) s = SyncDir(partial + "/db");
  if (s.ok()) s = SyncDir(partial);
  if (s.ok()) {
    if (fs::exists(out, error)) fs::remove(out, error);  // empty (checked above)
    fs::rename(partial, out, error);
    if (error) s = absl::UnavailableError(absl::StrCat("cannot rename ", partial, " to ", out, ": ", error.message()));
  }
  if (s.ok()) s = SyncParentDir(out);
  if (!s.ok()) {
    fs::remove_all(partial, error);
    return s;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("backup of %llu records (tree size %llu, root %s) of %s written to %s: %d files, %llu bytes in %.2f s\n",
              static_cast<unsigned long long>(manifest.tree_size()),
              static_cast<unsigned long long>(manifest.tree_size()), crypto::ToHex(manifest.root_hash()).c_str(),
              manifest.ledger_id().c_str(), out.c_str(), manifest.files_size(),
              static_cast<unsigned long long>(bytes), seconds);
  std::printf("it holds every record committed before the backup began; not the operator private key "
              "(restore: ledgerctl restore %s --data NEW_DATA_DIR --operator-private-key OLD_DATA/operator.key.pem)\n",
              out.c_str());
  return absl::OkStatus();
}

absl::Status RunRestore(const Invocation& in) {
  const std::string backup = Trimmed(in.flags.Arg(0));
  const std::string data = Trimmed(in.flags.Get("data"));
  if (data.empty()) return UsageError("--data must not be empty");
  services::RestoreOptions options;
  if (in.flags.Has("operator-key")) {
    auto key = crypto::ReadPublicKeyFile(in.flags.Get("operator-key"));
    if (!key.ok()) return key.status();
    options.trusted_operator_key = *key;
  }
  options.operator_private_key_file = in.flags.Get("operator-private-key");
  options.log = [](const std::string& line) { std::fprintf(stderr, "restore: %s\n", line.c_str()); };
  auto result = services::RestoreBackup(backup, data, options);
  if (!result.ok()) return result.status();
  std::string report = audit::FormatReportText(result->report, absl::StrCat("restored copy in ", data));
  if (!report.empty() && report.back() != '\n') report.push_back('\n');
  std::fputs(report.c_str(), stdout);
  std::printf("restored %llu records (tree size %llu, root %s) of %s from %s into %s\n",
              static_cast<unsigned long long>(result->manifest.tree_size()),
              static_cast<unsigned long long>(result->manifest.tree_size()),
              crypto::ToHex(result->manifest.root_hash()).c_str(), result->manifest.ledger_id().c_str(),
              backup.c_str(), data.c_str());
  if (result->operator_key_placed) {
    std::printf("operator private key placed in %s/operator.key.pem; start it: ledgerd --data %s\n", data.c_str(),
                data.c_str());
  } else {
    std::printf("no operator private key yet: copy it in (install -m 600 OLD_DATA/operator.key.pem %s/), "
                "then: ledgerd --data %s\n",
                data.c_str(), data.c_str());
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<Command> BackupCommands() {
  return {
      {{.name = "backup",
        .summary = "copy the server's ledger while it serves (BackupService.Backup) into a new directory",
        .description =
            "Streams a RocksDB checkpoint of the server's database (every record committed before the\n"
            "call) and its operator.pub.pem and operator.vkey into DIR.partial, checks every file's\n"
            "SHA-256 against the server's manifest, writes DIR/MANIFEST.json and renames DIR.partial to\n"
            "DIR. Refuses an existing non-empty DIR. The operator private key is never in a backup.\n"
            "A costly RPC (ledgerd --costly-rpc-clients); one backup at a time per server.",
        .flags = {{.name = "out", .value_name = "DIR", .help = "the backup directory (new or empty)", .required = true}}},
       &RunBackup},
      {{.name = "restore",
        .args = {"BACKUP_DIR"},
        .summary = "a backup into a new data directory, verified offline first",
        .description =
            "Checks every file of BACKUP_DIR against its MANIFEST.json (size and SHA-256; a file\n"
            "missing, altered or unlisted is named), copies it to NEW_DATA_DIR.partial, opens the copy\n"
            "read-only and runs the checks of `ledgerctl verify` over it (against the backup's\n"
            "operator.pub.pem, or --operator-key), then renames it to NEW_DATA_DIR, after which\n"
            "`ledgerd --data NEW_DATA_DIR` serves it. Refuses an existing non-empty NEW_DATA_DIR;\n"
            "on any error nothing is left there. ledgerd also needs the operator private key:\n"
            "--operator-private-key copies it in (its public half must match), or copy it yourself.",
        .flags = {{.name = "data", .value_name = "NEW_DATA_DIR", .help = "the data directory to create", .required = true},
                  {.name = "operator-key", .value_name = "PEM",
                   .help = "the operator public key you trust (default: the backup's operator.pub.pem)"},
                  {.name = "operator-private-key", .value_name = "PEM",
                   .help = "copy this operator private key into NEW_DATA_DIR (0600)"}}},
       &RunRestore},
  };
}

}  // namespace ledger::ctl
