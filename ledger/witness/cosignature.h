// Signed-note verifier keys and C2SP cosignature/v1 (Ed25519) cosignatures
// (https://c2sp.org/signed-note, https://c2sp.org/tlog-cosignature).
//
// A cosignature is a note signature line on a checkpoint:
//   — <witness name> base64(key ID || u64 BE timestamp || Ed25519 signature)
// key ID = SHA-256(name || "\n" || 0x04 || public key)[:4]; the signature
// covers "cosignature/v1\ntime <timestamp>\n" followed by the checkpoint text
// (its body lines with their newlines, no signature lines). A witness says
// with it: as of that time, this is the largest tree I have seen for this
// origin, and every tree I saw before is a prefix of it.
//
// Thread contract: free functions over immutable values; any thread.
#ifndef LEDGER_WITNESS_COSIGNATURE_H_
#define LEDGER_WITNESS_COSIGNATURE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/merkle/checkpoint.h"

namespace ledger::witness {

// Signature types of signed-note verifier keys.
inline constexpr uint8_t kNoteEd25519 = 0x01;         // a log's checkpoint key
inline constexpr uint8_t kCosignatureV1Ed25519 = 0x04;  // a witness's key

// <name>+<8 hex digits of key ID>+<base64(type || 32-byte public key)>.
struct VerifierKey {
  std::string name;
  uint8_t type = 0;
  crypto::PublicKey key;
  std::string key_id;  // 4 bytes: SHA-256(name || "\n" || type || key)[:4]
  std::string text;    // the vkey string itself
};

// Signed-note key names: non-empty, no spaces or other control bytes, no '+'.
bool IsKeyName(std::string_view name);

// InvalidArgument naming what is wrong: the shape, a name with '+' or
// whitespace, a key ID that does not match, a type other than 0x01/0x04, a
// key that is not 32 bytes.
absl::StatusOr<VerifierKey> ParseVerifierKey(std::string_view vkey);
VerifierKey MakeVerifierKey(std::string_view name, uint8_t type,
                            const crypto::PublicKey& key);

// The cosignature/v1 signature line (ending in '\n') over `checkpoint_text`
// (merkle::CheckpointText, or SignedNote::text) at `timestamp` (POSIX s).
std::string Cosign(std::string_view checkpoint_text, std::string_view witness_name,
                   const crypto::PrivateKey& key, uint64_t timestamp);

struct Cosignature {
  std::string witness_name;  // the policy's name for the witness (or key name)
  uint64_t timestamp = 0;
  std::string line;  // the signature line, without its newline
};

// The witness's valid cosignature on `note`. NotFound if no line carries its
// key name and key ID; Unauthenticated if one does but does not verify (or
// its timestamp exceeds 2^63-1); InvalidArgument if such a line is not
// 76 bytes of key ID, timestamp and signature.
absl::StatusOr<Cosignature> FindCosignature(const merkle::SignedNote& note,
                                            const VerifierKey& witness);

// `note` with `signature_lines` (each ending in '\n', e.g. a witness's 200
// answer) appended, skipping lines the note already has.
std::string AddSignatureLines(std::string_view note, std::string_view signature_lines);

}  // namespace ledger::witness

#endif  // LEDGER_WITNESS_COSIGNATURE_H_
