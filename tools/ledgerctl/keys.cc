// keygen, and reading public keys from either kind of PEM file.
#include "tools/ledgerctl/keys.h"

#include <sys/stat.h>

#include <cstdio>
#include <filesystem>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "ledger/crypto/sha256.h"
#include "tools/ledgerctl/commands.h"
#include "tools/ledgerctl/output.h"

namespace ledger::ctl {

absl::StatusOr<crypto::PrivateKey> ReadPrivateKey(const std::string& path) {
  std::string exposed;
  absl::StatusOr<crypto::PrivateKey> key = crypto::ReadPrivateKeyFile(path, &exposed);
  if (key.ok() && !exposed.empty()) std::fprintf(stderr, "ledgerctl: %s\n", exposed.c_str());
  return key;
}

absl::StatusOr<crypto::PublicKey> ReadPublicKeyFromEither(const std::string& path) {
  absl::StatusOr<crypto::PublicKey> as_public = crypto::ReadPublicKeyFile(path);
  if (as_public.ok() || absl::IsNotFound(as_public.status())) return as_public;
  absl::StatusOr<crypto::PrivateKey> as_private = ReadPrivateKey(path);
  if (as_private.ok()) return as_private->public_key();
  return absl::InvalidArgumentError(absl::StrCat(
      "key file ", path, ": neither a PEM Ed25519 public key nor a PEM private key (",
      as_public.status().message(), ")"));
}

namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

absl::Status RunKeygen(const Invocation& in) {
  const std::string& out = in.flags.Get("out");
  const std::string& public_out = in.flags.Get("public-out");
  if (out.empty()) return UsageError("--out must name a file");
  if (in.flags.Has("public-out")) {
    if (public_out.empty()) return UsageError("--public-out must name a file");
    if (public_out == out) return UsageError("--public-out and --out name the same file");
    // Check before writing anything, so a refusal leaves no lone private key.
    if (Exists(public_out)) {
      return absl::AlreadyExistsError(
          absl::StrCat("key file ", public_out, ": already exists; refusing to overwrite"));
    }
  }
  // A path under a directory not yet made (README: var/keys/NAME.pem) gets
  // its directories, private to the user like the key itself.
  for (const std::string& file : {out, public_out}) {
    const std::filesystem::path parent = std::filesystem::path(file).parent_path();
    std::error_code error;
    if (parent.empty() || std::filesystem::exists(parent, error)) continue;
    if (!std::filesystem::create_directories(parent, error) && error) {
      return absl::FailedPreconditionError(
          absl::StrCat("key file ", file, ": cannot create directory ", parent.string(), ": ", error.message()));
    }
    std::filesystem::permissions(parent, std::filesystem::perms::owner_all, error);
  }
  crypto::PrivateKey key = crypto::PrivateKey::Generate();
  if (absl::Status s = crypto::WritePrivateKeyFile(out, key); !s.ok()) return s;
  if (!public_out.empty()) {
    if (absl::Status s = crypto::WritePublicKeyFile(public_out, key.public_key()); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(s.message(), " (the private key was written to ",
                                                 out, ")"));
    }
  }
  PrintLine(absl::StrCat("key_id: ", key.public_key().key_id()));
  PrintLine(absl::StrCat("public_key (hex): ", absl::BytesToHexString(absl::string_view(key.public_key().raw().data(), key.public_key().raw().size()))));
  return absl::OkStatus();
}

}  // namespace

Command KeygenCommand() {
  return {{.name = "keygen",
           .summary = "Generate an Ed25519 key pair (no server needed).",
           .description =
               "Writes the private key as PKCS#8 PEM with mode 0600 (an existing file is\n"
               "never overwritten) and prints its key id and the raw public key in base64,\n"
               "the form KeyAdded and OrganisationRegistered carry.",
           .flags = {{"out", "FILE", "where to write the private key", true},
                     {"public-out", "FILE", "also write the public key (PEM) here"}}},
          &RunKeygen};
}

}  // namespace ledger::ctl
