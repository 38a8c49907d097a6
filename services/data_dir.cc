#include "services/data_dir.h"

#include <openssl/rand.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "ledger/common/files.h"
#include "ledger/crypto/sha256.h"

namespace ledger::services {
namespace fs = std::filesystem;

DataDirLayout::DataDirLayout(std::string d)
    : dir(std::move(d)),
      db(dir + "/db"),
      operator_key(dir + "/operator.key.pem"),
      operator_public_key(dir + "/operator.pub.pem"),
      registrar_key(dir + "/registrar.key.pem") {}

namespace {

// Reads the key at `path`, or creates it if absent.
absl::StatusOr<crypto::PrivateKey> LoadOrCreateKey(const std::string& path, std::vector<std::string>* warnings) {
  if (fs::exists(path)) {
    std::string exposed;
    auto key = crypto::ReadPrivateKeyFile(path, &exposed);
    if (key.ok() && !exposed.empty() && warnings != nullptr) warnings->push_back(std::move(exposed));
    return key;
  }
  crypto::PrivateKey key = crypto::PrivateKey::Generate();
  if (auto s = crypto::WritePrivateKeyFile(path, key); !s.ok()) return s;
  return key;
}

}  // namespace

absl::StatusOr<store::LedgerOptions> PrepareDataDir(const std::string& dir, const std::string& registrar_id,
                                                    std::vector<std::string>* warnings,
                                                    const std::string& registrar_key_out,
                                                    std::string* registrar_key_written) {
  DataDirLayout layout(dir);
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) return absl::UnavailableError(absl::StrCat("cannot create data directory ", dir, ": ", error.message()));
  ::chmod(dir.c_str(), 0700);

  // A ledger exists once its database does; from then on only the operator
  // key is needed (the registrar key may have been moved away).
  const bool is_new = !fs::exists(layout.db + "/CURRENT");
  if (!is_new && !fs::exists(layout.operator_key)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the ledger in ", dir, " exists but its operator key ", layout.operator_key, " is missing"));
  }
  auto operator_key = LoadOrCreateKey(layout.operator_key, warnings);
  if (!operator_key.ok()) return operator_key.status();
  if (!fs::exists(layout.operator_public_key)) {
    if (auto s = crypto::WritePublicKeyFile(layout.operator_public_key, operator_key->public_key());
        !s.ok()) {
      return s;
    }
  } else {
    // Auditors take the operator key from here: it must be this one.
    auto published = crypto::ReadPublicKeyFile(layout.operator_public_key);
    if (!published.ok()) return published.status();
    if (published->raw() != operator_key->public_key().raw()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the operator public key ", layout.operator_public_key, " (key ", published->key_id(),
          ") is not the public half of the operator private key ", layout.operator_key, " (key ",
          operator_key->public_key().key_id(), "); restore the right file, or remove ",
          layout.operator_public_key, " to have it written again"));
    }
  }

  store::LedgerOptions options{.data_dir = layout.db, .operator_key = *operator_key};
  if (is_new) {
    const std::string& registrar_key_path = registrar_key_out.empty() ? layout.registrar_key : registrar_key_out;
    auto registrar_key = LoadOrCreateKey(registrar_key_path, warnings);
    if (!registrar_key.ok()) return registrar_key.status();
    if (registrar_key_written != nullptr) *registrar_key_written = registrar_key_path;
    unsigned char id[8];
    if (RAND_bytes(id, sizeof id) != 1) return absl::InternalError("no randomness for the ledger id");
    store::GenesisSpec genesis;
    genesis.ledger_id = absl::StrCat(
        "ledger-", crypto::ToHex(std::string_view(reinterpret_cast<const char*>(id), sizeof id)));
    v1::Registrar registrar;
    registrar.set_org_id(registrar_id);
    registrar.set_name("Registrar");
    registrar.add_public_keys(std::string(registrar_key->public_key().raw()));
    genesis.registrars.push_back(std::move(registrar));
    options.genesis = std::move(genesis);
  }
  return options;
}

absl::Status WriteOperatorVkey(const std::string& dir, const std::string& vkey) {
  return ReplaceFileDurably(dir + "/operator.vkey", vkey + "\n", 0644);
}

}  // namespace ledger::services
