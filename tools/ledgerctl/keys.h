// Key files as ledgerctl reads them.
#ifndef TOOLS_LEDGERCTL_KEYS_H_
#define TOOLS_LEDGERCTL_KEYS_H_

#include <string>

#include "absl/status/statusor.h"
#include "ledger/crypto/ed25519.h"

namespace ledger::ctl {

// The public key in `path`, which holds either a PEM public key or a PEM
// private key (whose public half is taken). Errors name the path.
absl::StatusOr<crypto::PublicKey> ReadPublicKeyFromEither(const std::string& path);

// The private key in `path` (errors name it). If group or others may read
// the file, prints one warning naming it, its mode and the chmod to stderr.
absl::StatusOr<crypto::PrivateKey> ReadPrivateKey(const std::string& path);

}  // namespace ledger::ctl

#endif  // TOOLS_LEDGERCTL_KEYS_H_
