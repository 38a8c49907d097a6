#include "ledger/witness/cosignature.h"

#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "ledger/crypto/sha256.h"

namespace ledger::witness {
namespace {

constexpr std::string_view kSigPrefix = "\xE2\x80\x94 ";  // "— "
constexpr size_t kKeyIdSize = 4;
constexpr size_t kTimestampSize = 8;

std::string KeyId(std::string_view name, uint8_t type, const crypto::PublicKey& key) {
  const char t = static_cast<char>(type);
  crypto::Digest d = crypto::Sha256({name, "\n", std::string_view(&t, 1), key.raw()});
  return std::string(crypto::AsBytes(d).substr(0, kKeyIdSize));
}

std::string SignedMessage(std::string_view checkpoint_text, uint64_t timestamp) {
  std::string message = "cosignature/v1\ntime ";
  message += std::to_string(timestamp);
  message += "\n";
  message.append(checkpoint_text);
  return message;
}

absl::Status BadKey(std::string_view vkey, std::string_view what) {
  std::string msg = "verifier key \"";
  msg.append(vkey.substr(0, 200));
  msg += "\": ";
  msg.append(what);
  return absl::InvalidArgumentError(msg);
}

}  // namespace

bool IsKeyName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '+') return false;
  }
  return true;
}

absl::StatusOr<VerifierKey> ParseVerifierKey(std::string_view vkey) {
  size_t first = vkey.find('+');
  if (first == std::string_view::npos) return BadKey(vkey, "expected <name>+<key id>+<key>");
  size_t second = vkey.find('+', first + 1);
  if (second == std::string_view::npos) return BadKey(vkey, "expected <name>+<key id>+<key>");
  std::string_view name = vkey.substr(0, first);
  std::string_view hex = vkey.substr(first + 1, second - first - 1);
  std::string_view b64 = vkey.substr(second + 1);
  if (!IsKeyName(name)) return BadKey(vkey, "key name is empty or has whitespace");
  std::string key_id;
  if (hex.size() != 2 * kKeyIdSize || !crypto::FromHex(hex, &key_id)) {
    return BadKey(vkey, "key id is not 8 hex digits");
  }
  std::string material;
  if (!crypto::Base64Decode(b64, &material) || material.empty()) {
    return BadKey(vkey, "key is not base64");
  }
  const uint8_t type = static_cast<uint8_t>(material[0]);
  if (type != kNoteEd25519 && type != kCosignatureV1Ed25519) {
    return BadKey(vkey, "signature type is neither 0x01 (Ed25519 note) nor 0x04 (cosignature/v1)");
  }
  absl::StatusOr<crypto::PublicKey> key = crypto::PublicKey::FromRaw(material.substr(1));
  if (!key.ok()) return BadKey(vkey, "public key is not 32 bytes");
  VerifierKey parsed = MakeVerifierKey(name, type, *key);
  if (parsed.key_id != key_id) return BadKey(vkey, "key id does not match the name and key");
  return parsed;
}

VerifierKey MakeVerifierKey(std::string_view name, uint8_t type, const crypto::PublicKey& key) {
  VerifierKey vkey;
  vkey.name = std::string(name);
  vkey.type = type;
  vkey.key = key;
  vkey.key_id = KeyId(name, type, key);
  const char t = static_cast<char>(type);
  std::string material(&t, 1);
  material.append(key.raw());
  vkey.text = vkey.name + "+" + crypto::ToHex(vkey.key_id) + "+" + crypto::Base64Encode(material);
  return vkey;
}

std::string Cosign(std::string_view checkpoint_text, std::string_view witness_name,
                   const crypto::PrivateKey& key, uint64_t timestamp) {
  std::string blob = KeyId(witness_name, kCosignatureV1Ed25519, key.public_key());
  for (int shift = 56; shift >= 0; shift -= 8) {
    blob.push_back(static_cast<char>((timestamp >> shift) & 0xff));
  }
  blob += key.Sign(SignedMessage(checkpoint_text, timestamp));
  std::string line(kSigPrefix);
  line.append(witness_name);
  line += " ";
  line += crypto::Base64Encode(blob);
  line += "\n";
  return line;
}

absl::StatusOr<Cosignature> FindCosignature(const merkle::SignedNote& note,
                                            const VerifierKey& witness) {
  for (const merkle::NoteSignature& sig : note.signatures) {
    if (sig.key_name != witness.name || sig.blob.substr(0, kKeyIdSize) != witness.key_id) {
      continue;
    }
    if (sig.blob.size() != kKeyIdSize + kTimestampSize + crypto::kSignatureSize) {
      return absl::InvalidArgumentError("cosignature by " + witness.name +
                                        " is not key id, timestamp and signature (76 bytes)");
    }
    uint64_t timestamp = 0;
    for (size_t i = 0; i < kTimestampSize; ++i) {
      timestamp = (timestamp << 8) | static_cast<uint8_t>(sig.blob[kKeyIdSize + i]);
    }
    if (timestamp > static_cast<uint64_t>(INT64_MAX)) {
      return absl::UnauthenticatedError("cosignature by " + witness.name +
                                        " has a timestamp beyond 2^63-1");
    }
    std::string_view signature =
        std::string_view(sig.blob).substr(kKeyIdSize + kTimestampSize);
    if (!crypto::VerifySignature(witness.key, SignedMessage(note.text, timestamp), signature)) {
      return absl::UnauthenticatedError("cosignature by " + witness.name + " does not verify");
    }
    return Cosignature{witness.name, timestamp, sig.line};
  }
  return absl::NotFoundError("no cosignature by " + witness.name);
}

std::string AddSignatureLines(std::string_view note, std::string_view signature_lines) {
  std::string out(note);
  size_t start = 0;
  while (start < signature_lines.size()) {
    size_t nl = signature_lines.find('\n', start);
    if (nl == std::string_view::npos) break;  // an unterminated last line is not a line
    std::string_view line = signature_lines.substr(start, nl - start + 1);
    start = nl + 1;
    if (line.size() <= 1) continue;
    // Already present: at the start of a line of the note.
    size_t at = out.find(line);
    bool present = false;
    while (at != std::string::npos) {
      if (at == 0 || out[at - 1] == '\n') {
        present = true;
        break;
      }
      at = out.find(line, at + 1);
    }
    if (!present) out.append(line);
  }
  return out;
}

}  // namespace ledger::witness
