// Online backup and offline restore of a ledgerd data directory (no gRPC:
// BackupService in services/backup_service.h streams what TakeSnapshot
// makes; `ledgerctl restore` calls RestoreBackup).
//
// A backup holds:
//   db/...            a RocksDB checkpoint of DATA/db (every record committed
//                     before the checkpoint call; table files, no WAL)
//   operator.pub.pem  the operator public key (what the copy is verified against)
//   operator.vkey     the same key as a signed-note verifier key
//   MANIFEST.json     a v1::BackupManifest (protobuf JSON): tree size, root,
//                     the signed checkpoint note, and every file's size and SHA-256
// Never the operator private key (operator.key.pem) nor a registrar key:
// restore takes the private key from a file the operator names
// (--operator-private-key), or the operator copies it in afterwards.
#ifndef SERVICES_BACKUP_H_
#define SERVICES_BACKUP_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/store/store.h"
#include "ledger/v1/backup_service.pb.h"
#include "ledger/v1/ledger_service.pb.h"

namespace ledger::services {

// DATA/backup.tmp: where ledgerd builds the checkpoint it streams (inside
// the data directory, so table files are hard links, not copies).
inline constexpr char kBackupTempDirName[] = "backup.tmp";
inline constexpr char kBackupManifestName[] = "MANIFEST.json";
// The files of the data directory besides db/ that a backup carries.
inline const std::vector<std::string>& BackupPublicFiles() {
  static const auto* files = new std::vector<std::string>{"operator.pub.pem", "operator.vkey"};
  return *files;
}

// A name a backup may hold: "db/NAME" (one level, no "..") or one of
// BackupPublicFiles(). Anything else in a stream or manifest is refused.
bool IsBackupFileName(const std::string& name);

// Removes DATA/backup.tmp if a crash left one. OK if there is none.
absl::Status RemoveBackupTempDir(const std::string& data_dir);

// A point-in-time copy in `snapshot_dir` (which must not exist): the store's
// checkpoint in snapshot_dir/db and the public files of `data_dir`. The
// manifest names the tree size, root and signed checkpoint the copy holds
// (checked against `operator_key`), and every file with its size (not yet
// its SHA-256: the streamer fills that in as it reads).
absl::StatusOr<v1::BackupManifest> TakeSnapshot(const store::Store& source, const std::string& data_dir,
                                                const std::string& snapshot_dir, const std::string& ledger_id,
                                                const std::string& origin, const crypto::PublicKey& operator_key);

// The full offline verification (the checks of `ledgerctl verify`, the same
// LogVerifier) of the database in `db_dir`, opened read-only: signatures,
// density, replay, no reversal, the Merkle tree and every stored checkpoint
// against `operator_key`; the last checkpoint must cover the last record.
v1::VerifyReport VerifyStoredLedger(const std::string& db_dir, const crypto::PublicKey& operator_key,
                                    const std::string& origin);

struct RestoreOptions {
  // The operator key the restorer trusts; absent: the backup's own
  // operator.pub.pem (which must still match the manifest).
  std::optional<crypto::PublicKey> trusted_operator_key;
  // The operator private key to place in the new data directory (its public
  // half must be the backup's operator key); empty: none (copy it in before
  // starting ledgerd).
  std::string operator_private_key_file;
  std::function<void(const std::string&)> log = {};  // progress lines
};

struct RestoreResult {
  v1::BackupManifest manifest;
  v1::VerifyReport report;
  bool operator_key_placed = false;
};

// Checks every file of `backup_dir` against its manifest (a file missing,
// unlisted, of another size or SHA-256 is named), copies it to
// NEW_DATA_DIR.partial, verifies the copy (VerifyStoredLedger, and its tree
// size and root are the manifest's), then renames it to `new_data_dir`.
// Refuses a `new_data_dir` that exists and is not empty. On any error
// `new_data_dir` is untouched and the .partial directory removed.
absl::StatusOr<RestoreResult> RestoreBackup(const std::string& backup_dir, const std::string& new_data_dir,
                                            const RestoreOptions& options);

}  // namespace ledger::services

#endif  // SERVICES_BACKUP_H_
