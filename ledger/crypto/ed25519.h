// Ed25519 keys, signing and verification.
//
// Signing and verification use libsodium: measured on our 2-core machine it
// verifies ~2.3x faster than OpenSSL 3.0, and it rejects non-canonical
// encodings and small-order points, which OpenSSL accepts. The server and the
// auditor both verify through VerifySignature here, so they agree on every
// edge case. OpenSSL is used only for PEM (PKCS#8 / SubjectPublicKeyInfo).
//
// Thread contract: PublicKey and PrivateKey are immutable values after
// construction and may be used from any thread.
#ifndef LEDGER_CRYPTO_ED25519_H_
#define LEDGER_CRYPTO_ED25519_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace ledger::crypto {

// Every event signature covers this prefix followed by the body bytes, so a
// signature over an event can never be replayed as a signature of anything
// else (checkpoints are signed-note texts, which never start with it).
inline constexpr std::string_view kEventDomain = "decision-ledger/v1 signed event\n";

inline constexpr size_t kPublicKeySize = 32;
inline constexpr size_t kSignatureSize = 64;

// Key id: lowercase hex of the first 16 bytes of SHA-256(raw public key).
std::string KeyIdOf(std::string_view raw_public_key);

class PublicKey {
 public:
  // InvalidArgument unless `raw` is 32 bytes.
  static absl::StatusOr<PublicKey> FromRaw(std::string_view raw);
  // SubjectPublicKeyInfo PEM ("-----BEGIN PUBLIC KEY-----").
  static absl::StatusOr<PublicKey> FromPem(std::string_view pem);

  std::string_view raw() const {
    return {reinterpret_cast<const char*>(raw_.data()), raw_.size()};
  }
  const std::string& key_id() const { return key_id_; }
  std::string ToPem() const;

 private:
  std::array<uint8_t, kPublicKeySize> raw_{};
  std::string key_id_;
};

class PrivateKey {
 public:
  static PrivateKey Generate();
  // From the 32-byte RFC 8032 seed.
  static absl::StatusOr<PrivateKey> FromSeed(std::string_view seed);
  // PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----") as written by ToPem or
  // `openssl genpkey -algorithm ed25519`.
  static absl::StatusOr<PrivateKey> FromPem(std::string_view pem);

  PrivateKey(const PrivateKey&) = default;
  PrivateKey& operator=(const PrivateKey&) = default;
  ~PrivateKey();

  const PublicKey& public_key() const { return public_key_; }
  std::string ToPem() const;
  // 64-byte Ed25519 signature of `message`.
  std::string Sign(std::string_view message) const;

 private:
  PrivateKey() = default;
  std::array<uint8_t, 64> secret_{};  // libsodium layout: seed || public key
  PublicKey public_key_;
};

// True only for a valid, canonical signature of `message` by `key`.
bool VerifySignature(const PublicKey& key, std::string_view message,
                     std::string_view signature);

// True if `raw` is a canonical encoding of a point on the curve, in the
// prime-order subgroup and not of small order. A small-order key (the
// identity point 01 00..00, say) admits signatures that verify for many
// messages under sloppy verifiers, and no honest key pair produces one: rules
// version 2 refuses such keys when they are registered (WEAK_KEY).
// The answer is remembered for recently checked keys (a bounded cache, any
// thread), so the check can be made ahead of time off the thread that needs
// it: the ledger's verify pool checks the keys an event registers, and the
// sequencer's rules find the answer ready (the check costs ~0.8 of a verify).
bool IsUsablePublicKey(std::string_view raw);

// Domain-separated event signatures (kEventDomain || body).
std::string SignEvent(const PrivateKey& key, std::string_view body);
bool VerifyEvent(const PublicKey& key, std::string_view body,
                 std::string_view signature);

// Writes a PEM private key with mode 0600 (refuses to overwrite an existing
// file). Reads one back; errors name the path and what was wrong. With
// `exposed`, sets it to a warning naming the file, its mode and the fix when
// group or others may read it (empty otherwise), for the program to print.
absl::Status WritePrivateKeyFile(const std::string& path, const PrivateKey& key);
absl::StatusOr<PrivateKey> ReadPrivateKeyFile(const std::string& path, std::string* exposed = nullptr);
absl::Status WritePublicKeyFile(const std::string& path, const PublicKey& key);
absl::StatusOr<PublicKey> ReadPublicKeyFile(const std::string& path);

}  // namespace ledger::crypto

#endif  // LEDGER_CRYPTO_ED25519_H_
