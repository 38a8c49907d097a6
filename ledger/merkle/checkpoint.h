// C2SP tlog-checkpoint signed notes (https://c2sp.org/tlog-checkpoint,
// https://c2sp.org/signed-note) with an Ed25519 note signature.
//
//   <origin>\n<tree size, decimal>\n<base64 root hash>\n
//   \n
//   — <key name> <base64(4-byte key hash || 64-byte signature)>\n
//
// The signature covers the note text: the first three lines with their
// newlines. Key hash = first 4 bytes of SHA-256(name || "\n" || 0x01 || pub).
#ifndef LEDGER_MERKLE_CHECKPOINT_H_
#define LEDGER_MERKLE_CHECKPOINT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/merkle/tree.h"

namespace ledger::merkle {

struct Checkpoint {
  std::string origin;
  uint64_t size = 0;
  Hash root{};
};

// A signed note split at its blank line (c2sp.org/signed-note): the text
// every signature covers (ending in a newline) and its signature lines.
struct NoteSignature {
  std::string key_name;
  std::string blob;  // base64-decoded: 4-byte key hash || signature
  std::string line;  // the whole line, without its newline
};
struct SignedNote {
  std::string text;
  std::vector<NoteSignature> signatures;
};

// Parses the note's framing (UTF-8 text, blank line, well-formed signature
// lines, at most 100 of them) without checking any signature.
// InvalidArgument names what is malformed.
absl::StatusOr<SignedNote> ParseSignedNote(std::string_view note);

// A tree size as C2SP formats write it (checkpoints, tlog-witness bodies
// and answers): ASCII decimal, no sign, no leading zeros ("0" itself is
// fine), fitting uint64.
bool ParseTreeSize(std::string_view s, uint64_t* out);

// The note text that is signed.
std::string CheckpointText(const Checkpoint& checkpoint);

// The complete signed note. `key_name` must not contain spaces, '+' or
// newlines (the origin is the usual choice).
std::string SignCheckpoint(const Checkpoint& checkpoint,
                           std::string_view key_name,
                           const crypto::PrivateKey& key);

// Parses a signed note and checks that it carries a valid signature by
// (`key_name`, `key`). Signature lines of other keys are ignored (witness
// co-signatures). InvalidArgument names what is malformed; Unauthenticated if
// no valid signature by that key is present.
absl::StatusOr<Checkpoint> OpenCheckpoint(std::string_view note,
                                          std::string_view key_name,
                                          const crypto::PublicKey& key);

// The verifier key string of the signed-note format:
// <name>+<hex key hash>+<base64(0x01 || public key)>.
std::string VerifierKey(std::string_view key_name, const crypto::PublicKey& key);

}  // namespace ledger::merkle

#endif  // LEDGER_MERKLE_CHECKPOINT_H_
