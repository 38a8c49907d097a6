// The ledgerd data directory:
//   DIR/ledgerd.lock        flock held by the ledgerd serving DIR (its pid inside)
//   DIR/db/                 RocksDB
//   DIR/operator.key.pem    operator private key (0600): signs checkpoints and system events
//   DIR/operator.pub.pem    operator public key, for auditors
//   DIR/operator.vkey       the same key as a signed-note verifier key
//                           (<origin>+<key id>+<key>), for witness and
//                           policy files; written at every start
//   DIR/registrar.key.pem   first registrar's private key (0600), written for
//                           a new ledger only, unless --registrar-key-out names
//                           another place; move it somewhere safe after set-up:
//                           the operator should not hold a registrar's key
#ifndef SERVICES_DATA_DIR_H_
#define SERVICES_DATA_DIR_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ledger/store/ledger.h"

namespace ledger::services {

inline constexpr char kDataDirLockFile[] = "ledgerd.lock";

struct DataDirLayout {
  explicit DataDirLayout(std::string dir);
  std::string dir, db, operator_key, operator_public_key, registrar_key;
};

// Opens the data directory, or initialises a new ledger in it: creates the
// directory (0700), the operator and registrar keys (0600) and a Genesis
// naming `registrar_id`. Errors name the file that is wrong; an existing
// operator.pub.pem that is not the operator key's public half is one (an
// auditor would trust the wrong key). Private key files group or others may
// read add one line each to `warnings` (for ledgerd to log). The registrar
// key goes to `registrar_key_out` if given, else to DIR/registrar.key.pem;
// `registrar_key_written` (if not null) is set to where it went for a new
// ledger, and left empty otherwise.
absl::StatusOr<store::LedgerOptions> PrepareDataDir(const std::string& dir, const std::string& registrar_id,
                                                    std::vector<std::string>* warnings = nullptr,
                                                    const std::string& registrar_key_out = "",
                                                    std::string* registrar_key_written = nullptr);

// Writes DIR/operator.vkey (`vkey` and a newline), replacing it atomically.
absl::Status WriteOperatorVkey(const std::string& dir, const std::string& vkey);

}  // namespace ledger::services

#endif  // SERVICES_DATA_DIR_H_
