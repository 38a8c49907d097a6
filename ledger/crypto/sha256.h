// SHA-256 (OpenSSL). Stateless helpers; safe from any thread.
#ifndef LEDGER_CRYPTO_SHA256_H_
#define LEDGER_CRYPTO_SHA256_H_

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace ledger::crypto {

using Digest = std::array<uint8_t, 32>;

// SHA-256 of the concatenation of `parts`.
Digest Sha256(std::initializer_list<std::string_view> parts);
inline Digest Sha256(std::string_view data) { return Sha256({data}); }

// Incremental SHA-256, for streams too large to hold (bundles).
class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;
  void Update(std::string_view data);
  // The digest of everything so far; the stream may continue.
  Digest Peek() const;

 private:
  void* ctx_;  // EVP_MD_CTX
};

std::string_view AsBytes(const Digest& d);
std::string ToHex(std::string_view bytes);
inline std::string ToHex(const Digest& d) { return ToHex(AsBytes(d)); }
// Lowercase or uppercase hex; false on odd length or a non-hex character.
bool FromHex(std::string_view hex, std::string* out);

std::string Base64Encode(std::string_view bytes);
// Standard alphabet with padding; false on anything else.
bool Base64Decode(std::string_view text, std::string* out);

}  // namespace ledger::crypto

#endif  // LEDGER_CRYPTO_SHA256_H_
