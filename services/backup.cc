#include "services/backup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "ledger/audit/report.h"
#include "ledger/audit/verifier.h"
#include "ledger/common/files.h"
#include "ledger/crypto/sha256.h"
#include "ledger/event/envelope.h"
#include "ledger/merkle/checkpoint.h"
#include "services/store_verification.h"

namespace ledger::services {
namespace fs = std::filesystem;
namespace {

constexpr size_t kCopyChunkBytes = 1 << 20;

std::string ErrnoText() { return std::strerror(errno); }

absl::StatusOr<std::string> ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", ErrnoText()));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

bool IsBackupFileName(const std::string& name) {
  if (absl::StartsWith(name, "db/")) {
    const std::string rest = name.substr(3);
    return !rest.empty() && rest != "." && rest != ".." && rest.find('/') == std::string::npos;
  }
  const auto& pub = BackupPublicFiles();
  return std::find(pub.begin(), pub.end(), name) != pub.end();
}

absl::Status RemoveBackupTempDir(const std::string& data_dir) {
  std::error_code error;
  fs::remove_all(fs::path(data_dir) / kBackupTempDirName, error);
  if (error) {
    return absl::UnavailableError(absl::StrCat("cannot remove the unfinished backup ", data_dir, "/",
                                               kBackupTempDirName, ": ", error.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::BackupManifest> TakeSnapshot(const store::Store& source, const std::string& data_dir,
                                                const std::string& snapshot_dir, const std::string& ledger_id,
                                                const std::string& origin, const crypto::PublicKey& operator_key) {
  std::error_code error;
  if (!fs::create_directory(snapshot_dir, error) || error) {
    return absl::UnavailableError(absl::StrCat("cannot create ", snapshot_dir, ": ",
                                               error ? error.message() : "it already exists"));
  }
  ::chmod(snapshot_dir.c_str(), 0700);
  if (auto s = source.CreateCheckpoint(snapshot_dir + "/db"); !s.ok()) return s;
  for (const std::string& name : BackupPublicFiles()) {
    const fs::path from = fs::path(data_dir) / name;
    if (!fs::exists(from, error)) continue;
    fs::copy_file(from, fs::path(snapshot_dir) / name, error);
    if (error) return absl::UnavailableError(absl::StrCat("cannot copy ", from.string(), ": ", error.message()));
  }

  v1::BackupManifest manifest;
  manifest.set_format(1);
  manifest.set_ledger_id(ledger_id);
  manifest.set_origin(origin);
  manifest.set_operator_public_key(std::string(operator_key.raw()));
  manifest.set_created_unix_ns(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  {
    // What the copy holds: its own tree size and the checkpoint of it.
    auto copy = store::Store::OpenReadOnly(snapshot_dir + "/db");
    if (!copy.ok()) return copy.status();
    const uint64_t size = (*copy)->tree_size();
    auto note = (*copy)->GetCheckpoint(size);
    if (!note.ok()) {
      return absl::DataLossError(absl::StrCat("the checkpoint of the database holds ", size,
                                              " records but no signed checkpoint of that size: ",
                                              note.status().message()));
    }
    auto opened = merkle::OpenCheckpoint(*note, origin, operator_key);
    if (!opened.ok() || opened->size != size) {
      return absl::DataLossError(absl::StrCat("the signed checkpoint of size ", size, " does not verify"));
    }
    manifest.set_tree_size(size);
    manifest.set_root_hash(std::string(merkle::AsBytes(opened->root)));
    manifest.set_checkpoint_note(*note);
  }
  // Every file, db/ first (RocksDB's own LOG files are not needed and may
  // change as the copy is read).
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(snapshot_dir + "/db", error)) {
    const std::string file = entry.path().filename().string();
    if (!entry.is_regular_file(error) || absl::StartsWith(file, "LOG")) continue;
    names.push_back("db/" + file);
  }
  if (error) return absl::UnavailableError(absl::StrCat("cannot list ", snapshot_dir, "/db: ", error.message()));
  std::sort(names.begin(), names.end());
  for (const std::string& name : BackupPublicFiles()) {
    if (fs::exists(fs::path(snapshot_dir) / name, error)) names.push_back(name);
  }
  for (const std::string& name : names) {
    const uint64_t size = fs::file_size(fs::path(snapshot_dir) / name, error);
    if (error) return absl::UnavailableError(absl::StrCat("cannot stat ", snapshot_dir, "/", name, ": ", error.message()));
    v1::BackupFile* file = manifest.add_files();
    file->set_name(name);
    file->set_size(size);
  }
  return manifest;
}

v1::VerifyReport VerifyStoredLedger(const std::string& db_dir, const crypto::PublicKey& operator_key,
                                    const std::string& origin) {
  const auto start = std::chrono::steady_clock::now();
  auto opened = store::Store::OpenReadOnly(db_dir);
  if (!opened.ok()) {
    v1::VerifyReport report = audit::NewReport();
    report.set_error(absl::StrCat("cannot open the database in ", db_dir, ": ", opened.status().message()));
    return report;
  }
  const store::Store& db = **opened;
  const uint64_t size = db.tree_size();
  audit::LogVerifier verifier({.operator_key = operator_key,
                               .origin = origin,
                               .read_record = [&db](uint64_t position) { return db.GetRecord(position); }});
  std::string ledger_id;  // Genesis's, once its record has verified
  absl::Status fed = FeedStoredLog(db, 0, size, verifier, {}, [&](uint64_t position, std::string_view bytes) {
    if (position != 0) return;
    auto record = DecodeRecord(bytes, 0);
    auto envelope = record.ok() ? DecodeStoredEvent(*record) : absl::StatusOr<Envelope>(record.status());
    if (envelope.ok()) ledger_id = envelope->body.ledger_id();
  });
  if (!fed.ok()) {
    v1::VerifyReport report = verifier.Report();
    report.set_error(std::string(fed.message()));
    report.set_verified(false);
    return report;
  }
  if (verifier.Flush()) {
    if (verifier.records() != size) {
      verifier.Fail(audit::CheckId::kDensity, verifier.records(),
                    absl::StrCat("the store holds ", verifier.records(), " records; expected ", size));
    } else if (verifier.last_checkpoint_size() != size) {
      verifier.Fail(audit::CheckId::kIntegrity, size, "no signed checkpoint covers the last records");
    } else if (auto s = verifier.FinishReplay(); !s.ok()) {
      verifier.Fail(audit::CheckId::kReplay, size, std::string(s.message()));
    }
    verifier.CheckWitnessedAtEnd();
  }
  v1::VerifyReport report = verifier.Report();
  report.set_ledger_id(ledger_id);
  report.set_seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return report;
}

namespace {

// Copies backup_dir/NAME to to_dir/NAME (created, mode `mode`, synced),
// checking the bytes against the manifest's size and SHA-256.
absl::Status CopyChecked(const std::string& backup_dir, const std::string& to_dir, const v1::BackupFile& file,
                         mode_t mode) {
  const std::string from = backup_dir + "/" + file.name();
  const std::string to = to_dir + "/" + file.name();
  int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return absl::NotFoundError(absl::StrCat("backup file ", file.name(), " cannot be read: ", ErrnoText()));
  int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (out < 0) {
    ::close(in);
    return absl::UnavailableError(absl::StrCat("cannot create ", to, ": ", ErrnoText()));
  }
  crypto::Sha256Stream hash;
  std::string buffer(kCopyChunkBytes, '\0');
  uint64_t total = 0;
  absl::Status status;
  while (status.ok()) {
    ssize_t n = ::read(in, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      status = absl::UnavailableError(absl::StrCat("reading backup file ", file.name(), ": ", ErrnoText()));
      break;
    }
    if (n == 0) break;
    std::string_view chunk(buffer.data(), static_cast<size_t>(n));
    hash.Update(chunk);
    total += static_cast<uint64_t>(n);
    status = WriteAll(out, chunk);
  }
  if (status.ok() && ::fsync(out) != 0) status = absl::UnavailableError(absl::StrCat("fsync ", to, ": ", ErrnoText()));
  ::close(in);
  ::close(out);
  if (!status.ok()) return status;
  if (total != file.size()) {
    return absl::DataLossError(absl::StrCat("backup file ", file.name(), " is ", total,
                                            " bytes; the manifest says ", file.size()));
  }
  const crypto::Digest digest = hash.Peek();
  if (crypto::AsBytes(digest) != file.sha256()) {
    return absl::DataLossError(absl::StrCat("backup file ", file.name(), " does not match the manifest: SHA-256 ",
                                            crypto::ToHex(digest), ", manifest says ", crypto::ToHex(file.sha256())));
  }
  return absl::OkStatus();
}

absl::StatusOr<RestoreResult> RestoreInto(const std::string& backup_dir, const std::string& partial,
                                          const RestoreOptions& options) {
  RestoreResult result;
  auto log = [&](const std::string& line) {
    if (options.log) options.log(line);
  };
  const std::string manifest_path = backup_dir + "/" + kBackupManifestName;
  auto text = ReadWhole(manifest_path);
  if (!text.ok()) {
    return absl::NotFoundError(absl::StrCat(backup_dir, " is not a backup: ", text.status().message()));
  }
  v1::BackupManifest& manifest = result.manifest;
  if (auto s = google::protobuf::util::JsonStringToMessage(*text, &manifest); !s.ok()) {
    return absl::DataLossError(absl::StrCat(manifest_path, " is not a backup manifest: ", s.ToString()));
  }
  if (manifest.format() != 1) {
    return absl::DataLossError(absl::StrCat(manifest_path, " has format ", manifest.format(), "; this release reads 1"));
  }

  // The key the copy is verified against.
  auto backup_key = crypto::ReadPublicKeyFile(backup_dir + "/operator.pub.pem");
  if (!backup_key.ok()) return backup_key.status();
  if (backup_key->raw() != manifest.operator_public_key()) {
    return absl::DataLossError("backup file operator.pub.pem is not the operator key the manifest names");
  }
  if (options.trusted_operator_key && options.trusted_operator_key->raw() != backup_key->raw()) {
    return absl::FailedPreconditionError(absl::StrCat("the backup's operator key ", backup_key->key_id(),
                                                      " is not the trusted operator key ",
                                                      options.trusted_operator_key->key_id()));
  }
  auto checkpoint = merkle::OpenCheckpoint(manifest.checkpoint_note(), manifest.origin(), *backup_key);
  if (!checkpoint.ok()) {
    return absl::DataLossError(absl::StrCat("the manifest's signed checkpoint does not verify against operator key ",
                                            backup_key->key_id(), ": ", checkpoint.status().message()));
  }
  if (checkpoint->size != manifest.tree_size() ||
      merkle::AsBytes(checkpoint->root) != manifest.root_hash()) {
    return absl::DataLossError("the manifest's tree size or root is not its signed checkpoint's");
  }

  // Every file listed, well named, once; nothing unlisted.
  std::set<std::string> listed;
  for (const v1::BackupFile& file : manifest.files()) {
    if (!IsBackupFileName(file.name()) || !listed.insert(file.name()).second) {
      return absl::DataLossError(absl::StrCat(manifest_path, " lists \"", file.name(),
                                              "\", which is not a backup file name (or is listed twice)"));
    }
  }
  if (!listed.count("db/CURRENT")) return absl::DataLossError(absl::StrCat(manifest_path, " lists no db/CURRENT"));
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(backup_dir, error); !error && it != fs::recursive_directory_iterator();
       it.increment(error)) {
    if (it->is_directory(error)) continue;
    const std::string name = it->path().lexically_relative(backup_dir).string();
    if (name == kBackupManifestName) continue;
    if (!listed.count(name)) {
      return absl::DataLossError(absl::StrCat("backup file ", name, " is not in the manifest"));
    }
  }
  if (error) return absl::UnavailableError(absl::StrCat("cannot list ", backup_dir, ": ", error.message()));

  fs::create_directories(partial + "/db", error);
  if (error) return absl::UnavailableError(absl::StrCat("cannot create ", partial, ": ", error.message()));
  ::chmod(partial.c_str(), 0700);
  for (const v1::BackupFile& file : manifest.files()) {
    if (auto s = CopyChecked(backup_dir, partial, file, absl::StartsWith(file.name(), "db/") ? 0600 : 0644); !s.ok()) {
      return s;
    }
  }
  log(absl::StrCat("copied ", manifest.files_size(), " files; each matches its SHA-256 in the manifest"));

  if (!options.operator_private_key_file.empty()) {
    auto key = crypto::ReadPrivateKeyFile(options.operator_private_key_file);
    if (!key.ok()) return key.status();
    if (key->public_key().raw() != backup_key->raw()) {
      return absl::FailedPreconditionError(absl::StrCat(
          options.operator_private_key_file, " is the private key of ", key->public_key().key_id(),
          ", not of the backup's operator key ", backup_key->key_id()));
    }
    if (auto s = crypto::WritePrivateKeyFile(partial + "/operator.key.pem", *key); !s.ok()) return s;
    result.operator_key_placed = true;
  }

  log(absl::StrCat("verifying the copy's ", manifest.tree_size(), " records offline"));
  result.report = VerifyStoredLedger(partial + "/db", *backup_key, manifest.origin());
  if (!result.report.verified()) {
    return absl::DataLossError(absl::StrCat("the restored copy does not verify:\n",
                                            audit::FormatReportText(result.report, "the restored copy")));
  }
  if (result.report.ledger_id() != manifest.ledger_id()) {
    return absl::DataLossError(absl::StrCat("the manifest names ledger \"", manifest.ledger_id(),
                                            "\"; the verified records are of ledger \"", result.report.ledger_id(), "\""));
  }
  if (result.report.to_position() != manifest.tree_size() || result.report.root_hash() != manifest.root_hash()) {
    return absl::DataLossError(absl::StrCat("the restored copy holds ", result.report.to_position(),
                                            " records with root ", crypto::ToHex(result.report.root_hash()),
                                            "; the manifest says ", manifest.tree_size(), " with root ",
                                            crypto::ToHex(manifest.root_hash())));
  }
  return result;
}

}  // namespace

absl::StatusOr<RestoreResult> RestoreBackup(const std::string& backup_dir, const std::string& new_data_dir,
                                            const RestoreOptions& options) {
  std::string target = new_data_dir;
  while (target.size() > 1 && target.back() == '/') target.pop_back();
  std::error_code error;
  const bool target_exists = fs::exists(target, error);
  if (target_exists) {
    if (!fs::is_directory(target, error)) {
      return absl::FailedPreconditionError(absl::StrCat(target, " exists and is not a directory"));
    }
    // A fresh file system's lost+found does not count: a data volume's
    // mount point is a directory restore must be able to fill.
    for (const fs::directory_entry& entry : fs::directory_iterator(target, error)) {
      if (entry.path().filename() == "lost+found") continue;
      return absl::FailedPreconditionError(absl::StrCat(
          target, " is not empty: restore writes only into a new or empty directory (nothing was written)"));
    }
  }
  if (!fs::is_directory(backup_dir, error)) {
    return absl::NotFoundError(absl::StrCat("backup directory ", backup_dir, " does not exist"));
  }
  // Built beside the target, or inside an existing one (it may be a mount
  // point: another file system than its parent, and not removable), then
  // moved into place by renames on the same file system.
  const std::string partial = target_exists ? target + "/.restore.partial" : target + ".partial";
  if (fs::exists(partial, error)) {
    return absl::FailedPreconditionError(absl::StrCat(
        partial, " exists (an earlier restore that did not finish?); remove it and run restore again"));
  }
  auto result = RestoreInto(backup_dir, partial, options);
  if (!result.ok()) {
    fs::remove_all(partial, error);
    return result.status();
  }
  if (!target_exists) {
    fs::rename(partial, target, error);
  } else {
    std::vector<fs::path> entries;
    for (const fs::directory_entry& entry : fs::directory_iterator(partial, error)) entries.push_back(entry.path());
    for (const fs::path& entry : entries) {
      if (error) break;
      fs::rename(entry, fs::path(target) / entry.filename(), error);
    }
    if (!error) fs::remove(partial, error);
  }
  if (error) {
    std::error_code ignored;
    fs::remove_all(partial, ignored);
    return absl::UnavailableError(absl::StrCat("cannot move ", partial, " to ", target, ": ", error.message()));
  }
  if (auto s = SyncParentDir(target + "/"); !s.ok()) return s;
  if (auto s = SyncParentDir(target); !s.ok()) return s;
  return result;
}

}  // namespace ledger::services
