#include "ledger/merkle/checkpoint.h"

#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "ledger/crypto/sha256.h"

namespace ledger::merkle {
namespace {

// "— " : U+2014 EM DASH in UTF-8, then a space (signed-note signature lines).
constexpr std::string_view kSigPrefix = "\xE2\x80\x94 ";
constexpr uint8_t kAlgEd25519 = 0x01;
constexpr size_t kKeyHashSize = 4;
// The Go reference implementation refuses notes with more signature lines
// than this; so do we, to bound the work an untrusted note can cause.
constexpr size_t kMaxSignatures = 100;

std::string KeyHash(std::string_view key_name, const crypto::PublicKey& key) {
  const char alg = static_cast<char>(kAlgEd25519);
  crypto::Digest d = crypto::Sha256({key_name, "\n", std::string_view(&alg, 1), key.raw()});
  return std::string(crypto::AsBytes(d).substr(0, kKeyHashSize));
}

// Debian's Abseil is built with its own string_view, so absl::StrCat and
// absl::StrSplit do not take std::string_view; these two stand in.
std::string Cat(std::initializer_list<std::string_view> parts) {
  size_t n = 0;
  for (std::string_view p : parts) n += p.size();
  std::string out;
  out.reserve(n);
  for (std::string_view p : parts) out.append(p);
  return out;
}

// Lines of `s`, which must end in '\n' (the caller checks); no trailing piece.
std::vector<std::string_view> SplitLines(std::string_view s) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  for (size_t nl; (nl = s.find('\n', start)) != std::string_view::npos; start = nl + 1) {
    lines.push_back(s.substr(start, nl - start));
  }
  return lines;
}

absl::Status Malformed(std::string_view what) {
  return absl::InvalidArgumentError(Cat({"malformed checkpoint note: ", what}));
}

// Well-formed UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF) and no control characters other than newline: the signed-note
// rules, which also rule out CR line endings.
bool IsValidNoteText(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\n') || c == 0x7f) return false;
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

struct SignatureLine {
  std::string_view name;
  std::string blob;  // key hash || signature
};

absl::StatusOr<SignatureLine> ParseSignatureLine(std::string_view line) {
  if (line.substr(0, kSigPrefix.size()) != kSigPrefix) {
    return Malformed("signature line does not start with \"\xE2\x80\x94 \"");
  }
  line.remove_prefix(kSigPrefix.size());
  size_t space = line.find(' ');
  if (space == std::string_view::npos) {
    return Malformed("signature line has no space between key name and signature");
  }
  SignatureLine sig;
  sig.name = line.substr(0, space);
  std::string_view b64 = line.substr(space + 1);
  if (sig.name.empty() || sig.name.find('+') != std::string_view::npos) {
    return Malformed("signature line has an empty key name or one containing '+'");
  }
  if (!crypto::Base64Decode(b64, &sig.blob) || sig.blob.size() <= kKeyHashSize) {
    return Malformed("signature line does not carry base64(key hash || signature)");
  }
  return sig;
}

}  // namespace

bool ParseTreeSize(std::string_view s, uint64_t* out) {
  if (s.empty() || (s.size() > 1 && s[0] == '0')) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

std::string CheckpointText(const Checkpoint& checkpoint) {
  return Cat({checkpoint.origin, "\n", std::to_string(checkpoint.size), "\n",
              crypto::Base64Encode(crypto::AsBytes(checkpoint.root)), "\n"});
}

std::string SignCheckpoint(const Checkpoint& checkpoint, std::string_view key_name,
                           const crypto::PrivateKey& key) {
  std::string text = CheckpointText(checkpoint);
  std::string blob = KeyHash(key_name, key.public_key()) + key.Sign(text);
  return Cat({text, "\n", kSigPrefix, key_name, " ", crypto::Base64Encode(blob), "\n"});
}

absl::StatusOr<SignedNote> ParseSignedNote(std::string_view note) {
  if (!IsValidNoteText(note)) {
    return Malformed("not UTF-8 text, or contains a control character (e.g. CR)");
  }
  // Checkpoint bodies have no empty lines, so the first blank line is the
  // separator; any later "\n\n" makes the signature block malformed below.
  size_t split = note.find("\n\n");
  if (split == std::string_view::npos) return Malformed("no blank line before signatures");
  std::string_view sig_block = note.substr(split + 2);
  if (sig_block.empty() || sig_block.back() != '\n') {
    return Malformed("signature block missing or not ending in a newline");
  }
  std::vector<std::string_view> sig_lines = SplitLines(sig_block);
  if (sig_lines.size() > kMaxSignatures) return Malformed("too many signature lines");
  SignedNote parsed;
  parsed.text = std::string(note.substr(0, split + 1));
  parsed.signatures.reserve(sig_lines.size());
  for (std::string_view line : sig_lines) {
    absl::StatusOr<SignatureLine> sig = ParseSignatureLine(line);
    if (!sig.ok()) return sig.status();
    parsed.signatures.push_back(
        NoteSignature{std::string(sig->name), std::move(sig->blob), std::string(line)});
  }
  return parsed;
}

absl::StatusOr<Checkpoint> OpenCheckpoint(std::string_view note,
                                          std::string_view key_name,
                                          const crypto::PublicKey& key) {
  // Parse everything first, so a malformed note is InvalidArgument whether or
  // not it happens to be signed.
  absl::StatusOr<SignedNote> parsed = ParseSignedNote(note);
  if (!parsed.ok()) return parsed.status();
  const std::string& text = parsed->text;

  std::vector<std::string_view> lines = SplitLines(text);
  if (lines.size() < 3) {
    return Malformed("body needs origin, size and root hash lines");
  }
  Checkpoint checkpoint;
  if (lines[0].empty()) return Malformed("empty origin line");
  checkpoint.origin = std::string(lines[0]);
  if (!ParseTreeSize(lines[1], &checkpoint.size)) {
    return Malformed("tree size is not a decimal without leading zeros");
  }
  std::string root;
  if (!crypto::Base64Decode(lines[2], &root) || root.size() != checkpoint.root.size()) {
    return Malformed("root hash is not base64 of 32 bytes");
  }
  std::memcpy(checkpoint.root.data(), root.data(), root.size());
  // Lines after the root are extensions (c2sp.org/tlog-checkpoint); we carry
  // none and ignore them, but they are covered by the signature.

  const std::string want_hash = KeyHash(key_name, key);
  bool verified = false;
  for (const NoteSignature& sig : parsed->signatures) {
    if (sig.key_name != key_name || sig.blob.substr(0, kKeyHashSize) != want_hash) {
      continue;  // Another key's line, e.g. a witness co-signature.
    }
    std::string_view signature = std::string_view(sig.blob).substr(kKeyHashSize);
    // As in the Go reference: a line that claims our key but does not verify
    // fails the note, even if another line for the key does.
    if (!crypto::VerifySignature(key, text, signature)) {
      return absl::UnauthenticatedError(
          Cat({"checkpoint note: invalid signature for key ", key_name}));
    }
    verified = true;
  }
  if (!verified) {
    return absl::UnauthenticatedError(
        Cat({"checkpoint note: no valid signature by key ", key_name}));
  }
  return checkpoint;
}

std::string VerifierKey(std::string_view key_name, const crypto::PublicKey& key) {
  const char alg = static_cast<char>(kAlgEd25519);
  return Cat({key_name, "+", crypto::ToHex(KeyHash(key_name, key)), "+",
              crypto::Base64Encode(Cat({std::string_view(&alg, 1), key.raw()}))});
}

}  // namespace ledger::merkle
