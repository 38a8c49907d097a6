#include "ledger/crypto/ed25519.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "ledger/common/files.h"
#include "ledger/crypto/sha256.h"

namespace ledger::crypto {
namespace {

static_assert(crypto_sign_PUBLICKEYBYTES == kPublicKeySize);
static_assert(crypto_sign_BYTES == kSignatureSize);
static_assert(crypto_sign_SECRETKEYBYTES == 64);
static_assert(crypto_sign_SEEDBYTES == 32);

constexpr size_t kSeedSize = crypto_sign_SEEDBYTES;
// Key files are a few hundred bytes; refuse to slurp anything absurd.
constexpr off_t kMaxKeyFileSize = 64 * 1024;

using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

// sodium_init() is idempotent but must run before any other call; a
// function-local static makes the first call thread-safe.
void EnsureSodium() {
  static const bool ready = sodium_init() >= 0;
  if (!ready) abort();  // No usable RNG: nothing safe to continue with.
}

const unsigned char* U8(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// OpenSSL leaves failures on a thread-local queue; drop them so a later,
// unrelated ERR_get_error() does not report our parse failure.
void ClearOpensslErrors() { ERR_clear_error(); }

BioPtr ReadBio(std::string_view pem) {
  if (pem.size() > static_cast<size_t>(INT_MAX)) return {nullptr, &BIO_free};
  return {BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free};
}

std::string BioContents(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  if (n <= 0 || data == nullptr) return {};
  return std::string(data, static_cast<size_t>(n));
}

std::string KeyTypeName(const EVP_PKEY* pkey) {
  const char* name = OBJ_nid2sn(EVP_PKEY_get_base_id(pkey));
  return name != nullptr ? name : "unknown";
}

// Never prompts: an encrypted PEM is rejected instead of blocking on a tty.
int NoPassphrase(char*, int, int, void*) { return -1; }

absl::Status WriteNewFile(const std::string& path, std::string_view contents,
                          mode_t mode) {
  int fd = open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode);
  if (fd < 0) {
    int err = errno;
    if (err == EEXIST) {
      return absl::AlreadyExistsError(
          absl::StrCat("key file ", path, ": already exists; refusing to overwrite"));
    }
    return absl::ErrnoToStatus(err, absl::StrCat("key file ", path, ": create"));
  }
  // The umask can only narrow the mode; fchmod pins it exactly.
  absl::Status status;
  if (fchmod(fd, mode) != 0) status = absl::ErrnoToStatus(errno, "fchmod");
  if (status.ok()) status = WriteAll(fd, contents);
  if (status.ok() && fsync(fd) != 0) status = absl::ErrnoToStatus(errno, "fsync");
  if (close(fd) != 0 && status.ok()) status = absl::ErrnoToStatus(errno, "close");
  if (!status.ok()) {
    // Leave no half-written key behind, so a retry is not refused.
    unlink(path.c_str());
    return absl::Status(status.code(),
                        absl::StrCat("key file ", path, ": ", status.message()));
  }
  status = SyncParentDir(path);
  if (!status.ok()) {
    return absl::Status(status.code(),
                        absl::StrCat("key file ", path, ": ", status.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, mode_t* mode = nullptr) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(absl::StrCat("key file ", path, ": no such file"));
    }
    return absl::ErrnoToStatus(err, absl::StrCat("key file ", path, ": open"));
  }
  std::string out;
  struct stat st;
  absl::Status status;
  if (fstat(fd, &st) != 0) {
    status = absl::ErrnoToStatus(errno, absl::StrCat("key file ", path, ": stat"));
  } else if (!S_ISREG(st.st_mode)) {
    status = absl::InvalidArgumentError(
        absl::StrCat("key file ", path, ": not a regular file"));
  } else if (st.st_size > kMaxKeyFileSize) {
    status = absl::InvalidArgumentError(
        absl::StrCat("key file ", path, ": too large for a key (", st.st_size, " bytes)"));
  } else {
    if (mode != nullptr) *mode = st.st_mode;
    out.resize(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < out.size()) {
      ssize_t n = read(fd, out.data() + got, out.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status = absl::ErrnoToStatus(errno, absl::StrCat("key file ", path, ": read"));
        break;
      }
      if (n == 0) break;  // Shrunk under us; parse what is there.
      got += static_cast<size_t>(n);
    }
    out.resize(got);
  }
  close(fd);
  if (!status.ok()) {
    sodium_memzero(out.data(), out.size());
    return status;
  }
  return out;
}

// Zeroes a string that held secret material before it is freed.
void Wipe(std::string& s) {
  if (!s.empty()) sodium_memzero(s.data(), s.size());
}

absl::Status PrefixPath(const std::string& path, const absl::Status& status) {
  return absl::Status(status.code(),
                      absl::StrCat("key file ", path, ": ", status.message()));
}

}  // namespace

std::string KeyIdOf(std::string_view raw_public_key) {
  Digest d = Sha256(raw_public_key);
  return ToHex(AsBytes(d).substr(0, 16));
}

absl::StatusOr<PublicKey> PublicKey::FromRaw(std::string_view raw) {
  if (raw.size() != kPublicKeySize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Ed25519 public key must be ", kPublicKeySize, " bytes, got ", raw.size()));
  }
  PublicKey key;
  std::memcpy(key.raw_.data(), raw.data(), kPublicKeySize);
  key.key_id_ = KeyIdOf(raw);
  return key;
}

absl::StatusOr<PublicKey> PublicKey::FromPem(std::string_view pem) {
  BioPtr bio = ReadBio(pem);
  if (!bio) return absl::InvalidArgumentError("not an Ed25519 PEM public key");
  PkeyPtr pkey(PEM_read_bio_PUBKEY(bio.get(), nullptr, &NoPassphrase, nullptr),
               &EVP_PKEY_free);
  if (!pkey) {
    ClearOpensslErrors();
    return absl::InvalidArgumentError(
        "not an Ed25519 PEM public key (no parsable \"BEGIN PUBLIC KEY\" block)");
  }
  if (EVP_PKEY_get_base_id(pkey.get()) != EVP_PKEY_ED25519) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not an Ed25519 PEM public key (key type is ", KeyTypeName(pkey.get()), ")"));
  }
  unsigned char raw[kPublicKeySize];
  size_t len = sizeof(raw);
  if (EVP_PKEY_get_raw_public_key(pkey.get(), raw, &len) != 1 || len != sizeof(raw)) {
    ClearOpensslErrors();
    return absl::InvalidArgumentError("not an Ed25519 PEM public key (bad key bytes)");
  }
  return FromRaw({reinterpret_cast<const char*>(raw), len});
}

std::string PublicKey::ToPem() const {
  PkeyPtr pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, raw_.data(),
                                           raw_.size()),
               &EVP_PKEY_free);
  BioPtr bio(BIO_new(BIO_s_mem()), &BIO_free);
  // Only allocation can fail here, which we cannot continue past.
  if (!pkey || !bio || PEM_write_bio_PUBKEY(bio.get(), pkey.get()) != 1) abort();
  return BioContents(bio.get());
}

PrivateKey PrivateKey::Generate() {
  EnsureSodium();
  PrivateKey key;
  unsigned char pk[kPublicKeySize];
  crypto_sign_keypair(pk, key.secret_.data());
  // PublicKey::FromRaw cannot fail on 32 bytes.
  key.public_key_ = *PublicKey::FromRaw({reinterpret_cast<const char*>(pk), sizeof(pk)});
  return key;
}

absl::StatusOr<PrivateKey> PrivateKey::FromSeed(std::string_view seed) {
  if (seed.size() != kSeedSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Ed25519 seed must be ", kSeedSize, " bytes, got ", seed.size()));
  }
  EnsureSodium();
  PrivateKey key;
  unsigned char pk[kPublicKeySize];
  crypto_sign_seed_keypair(pk, key.secret_.data(), U8(seed));
  key.public_key_ = *PublicKey::FromRaw({reinterpret_cast<const char*>(pk), sizeof(pk)});
  return key;
}

absl::StatusOr<PrivateKey> PrivateKey::FromPem(std::string_view pem) {
  BioPtr bio = ReadBio(pem);
  if (!bio) return absl::InvalidArgumentError("not an Ed25519 PEM private key");
  PkeyPtr pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, &NoPassphrase, nullptr),
               &EVP_PKEY_free);
  if (!pkey) {
    ClearOpensslErrors();
    return absl::InvalidArgumentError(
        "not an Ed25519 PEM private key (no parsable unencrypted "
        "\"BEGIN PRIVATE KEY\" block)");
  }
  if (EVP_PKEY_get_base_id(pkey.get()) != EVP_PKEY_ED25519) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not an Ed25519 PEM private key (key type is ", KeyTypeName(pkey.get()), ")"));
  }
  unsigned char seed[kSeedSize];
  size_t len = sizeof(seed);
  if (EVP_PKEY_get_raw_private_key(pkey.get(), seed, &len) != 1 || len != sizeof(seed)) {
    ClearOpensslErrors();
    sodium_memzero(seed, sizeof(seed));
    return absl::InvalidArgumentError("not an Ed25519 PEM private key (bad key bytes)");
  }
  absl::StatusOr<PrivateKey> key = FromSeed({reinterpret_cast<const char*>(seed), len});
  sodium_memzero(seed, sizeof(seed));
  return key;
}

PrivateKey::~PrivateKey() { sodium_memzero(secret_.data(), secret_.size()); }

std::string PrivateKey::ToPem() const {
  PkeyPtr pkey(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, secret_.data(),
                                            kSeedSize),
               &EVP_PKEY_free);
  // Secure-heap memory BIO: its buffer is cleansed when freed.
  BioPtr bio(BIO_new(BIO_s_secmem()), &BIO_free);
  if (!pkey || !bio ||
      PEM_write_bio_PrivateKey(bio.get(), pkey.get(), nullptr, nullptr, 0, nullptr,
                               nullptr) != 1) {
    abort();  // Only allocation can fail here.
  }
  return BioContents(bio.get());
}

std::string PrivateKey::Sign(std::string_view message) const {
  std::string sig(kSignatureSize, '\0');
  crypto_sign_detached(reinterpret_cast<unsigned char*>(sig.data()), nullptr,
                       U8(message), message.size(), secret_.data());
  return sig;
}

bool IsUsablePublicKey(std::string_view raw) {
  if (raw.size() != crypto_core_ed25519_BYTES) return false;
  // A pure function of the 32 bytes: remembered, up to kRemembered keys
  // (then forgotten all at once), under one mutex held only for lookups.
  constexpr size_t kRemembered = 1 << 16;
  static absl::Mutex mu(absl::kConstInit);
  static auto* remembered ABSL_GUARDED_BY(mu) = new absl::flat_hash_map<std::string, bool>();
  {
    absl::MutexLock lock(&mu);
    if (auto it = remembered->find(absl::string_view(raw.data(), raw.size())); it != remembered->end()) {
      return it->second;
    }
  }
  EnsureSodium();
  const bool usable = crypto_core_ed25519_is_valid_point(U8(raw)) == 1;
  absl::MutexLock lock(&mu);
  if (remembered->size() >= kRemembered) remembered->clear();
  remembered->emplace(std::string(raw), usable);
  return usable;
}

bool VerifySignature(const PublicKey& key, std::string_view message,
                     std::string_view signature) {
  if (signature.size() != kSignatureSize) return false;
  EnsureSodium();
  // libsodium rejects non-canonical S, small-order R and A, and non-canonical
  // A encodings; see the edge-case tests.
  return crypto_sign_verify_detached(U8(signature), U8(message), message.size(),
                                     U8(key.raw())) == 0;
}

namespace {
std::string EventMessage(std::string_view body) {
  std::string message;
  message.reserve(kEventDomain.size() + body.size());
  message.append(kEventDomain).append(body);
  return message;
}
}  // namespace

std::string SignEvent(const PrivateKey& key, std::string_view body) {
  return key.Sign(EventMessage(body));
}

bool VerifyEvent(const PublicKey& key, std::string_view body,
                 std::string_view signature) {
  return VerifySignature(key, EventMessage(body), signature);
}

absl::Status WritePrivateKeyFile(const std::string& path, const PrivateKey& key) {
  std::string pem = key.ToPem();
  absl::Status status = WriteNewFile(path, pem, 0600);
  Wipe(pem);
  return status;
}

absl::StatusOr<PrivateKey> ReadPrivateKeyFile(const std::string& path, std::string* exposed) {
  mode_t mode = 0;
  absl::StatusOr<std::string> pem = ReadSmallFile(path, &mode);
  if (!pem.ok()) return pem.status();
  // The mode of the file read (fstat of the same descriptor), not of
  // whatever is at the path now.
  if (exposed != nullptr) {
    exposed->clear();
    if ((mode & 077) != 0) {
      char octal[8];
      std::snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(mode & 07777));
      *exposed = absl::StrCat("warning: private key file ", path, " has mode ", octal,
                              ": readable by group or others; chmod 600 ", path);
    }
  }
  absl::StatusOr<PrivateKey> key = PrivateKey::FromPem(*pem);
  Wipe(*pem);
  if (!key.ok()) return PrefixPath(path, key.status());
  return key;
}

absl::Status WritePublicKeyFile(const std::string& path, const PublicKey& key) {
  return WriteNewFile(path, key.ToPem(), 0644);
}

absl::StatusOr<PublicKey> ReadPublicKeyFile(const std::string& path) {
  absl::StatusOr<std::string> pem = ReadSmallFile(path);
  if (!pem.ok()) return pem.status();
  absl::StatusOr<PublicKey> key = PublicKey::FromPem(*pem);
  if (!key.ok()) return PrefixPath(path, key.status());
  return key;
}

}  // namespace ledger::crypto
