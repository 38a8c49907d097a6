#include "ledger/witness/witness.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "ledger/common/files.h"
#include "ledger/crypto/sha256.h"
#include "ledger/merkle/checkpoint.h"

namespace ledger::witness {
namespace {

constexpr char kKeyFile[] = "witness.key.pem";
constexpr char kVkeyFile[] = "witness.vkey";
constexpr char kStateDir[] = "state";
constexpr char kEvidenceDir[] = "evidence";
constexpr char kLockFile[] = "LOCK";

std::string S(std::string_view v) { return std::string(v); }

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read ", path));
  return text.str();
}

// Parses a state file (the log-signed checkpoint note last cosigned) for
// `origin`.
absl::StatusOr<Witness::State> ParseState(const std::string& path, const std::string& origin,
                                          const std::string& text) {
  auto bad = [&](std::string_view what) {
    return absl::DataLossError(absl::StrCat("witness state ", path, " is corrupt (", S(what),
                                            "); refusing to start rather than forget what was cosigned"));
  };
  absl::StatusOr<merkle::SignedNote> note = merkle::ParseSignedNote(text);
  if (!note.ok()) return bad(std::string(note.status().message()));
  std::vector<std::string_view> lines;
  std::string_view rest = note->text;
  for (size_t nl; (nl = rest.find('\n')) != std::string_view::npos; rest.remove_prefix(nl + 1)) {
    lines.push_back(rest.substr(0, nl));
  }
  if (lines.size() < 3) return bad("fewer than three lines");
  if (lines[0] != origin) return bad("its origin line is not the origin it is named after");
  Witness::State state;
  if (!merkle::ParseTreeSize(lines[1], &state.size)) return bad("size is not a decimal");
  std::string root;
  if (!crypto::Base64Decode(lines[2], &root) || root.size() != state.root.size()) {
    return bad("root is not base64 of 32 bytes");
  }
  std::memcpy(state.root.data(), root.data(), root.size());
  return state;
}

Witness::Response Answer(int status, std::string body) {
  return Witness::Response{status, "text/plain; charset=utf-8", std::move(body) + "\n"};
}

}  // namespace

uint64_t SystemClockSeconds() { return static_cast<uint64_t>(std::time(nullptr)); }

Witness::Witness(std::string dir, VerifierKey vkey, crypto::PrivateKey key, Clock clock, DirectoryLock lock)
    : dir_(std::move(dir)), vkey_(std::move(vkey)), key_(std::move(key)), clock_(std::move(clock)),
      lock_(std::move(lock)) {}

Witness::~Witness() = default;

absl::StatusOr<std::unique_ptr<Witness>> Witness::Open(const std::string& dir, std::string name,
                                                       std::vector<VerifierKey> logs, Clock clock) {
  namespace fs = std::filesystem;
  if (!IsKeyName(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "witness name \"", name, "\" is not a key name: it must be non-empty, without spaces or '+'"));
  }
  if (logs.empty()) return absl::InvalidArgumentError("a witness needs at least one log key");
  for (const VerifierKey& log : logs) {
    if (log.type != kNoteEd25519) {
      return absl::InvalidArgumentError(absl::StrCat(
          "log key ", log.text, " is of type ", static_cast<int>(log.type),
          "; a log's checkpoint key is an Ed25519 note key (type 1)"));
    }
  }
  if (!clock) clock = SystemClockSeconds;

  std::error_code error;
  fs::create_directories(dir, error);
  if (error) return absl::FailedPreconditionError(absl::StrCat("cannot create ", dir, ": ", error.message()));
  ::chmod(dir.c_str(), 0700);
  const std::string state_dir = dir + "/" + kStateDir;
  for (const std::string& sub : {state_dir, dir + "/" + kEvidenceDir}) {
    fs::create_directories(sub, error);
    if (error) return absl::FailedPreconditionError(absl::StrCat("cannot create ", sub, ": ", error.message()));
  }
  // The directories' own entries must survive a power cut too, or the
  // state files in them would vanish with them.
  const std::string parent = fs::absolute(dir, error).parent_path().string();
  for (const std::string& d : {dir, parent}) {
    if (absl::Status synced = SyncParentDir(d + "/"); !synced.ok()) return synced;  // d itself
  }

  auto lock = DirectoryLock::Acquire(dir, kLockFile, "ledger-witness");
  if (!lock.ok()) return lock.status();

  // The key: made once, reused ever after.
  const std::string key_path = dir + "/" + kKeyFile;
  std::vector<std::string> warnings;
  if (!fs::exists(key_path, error)) {
    absl::Status written = crypto::WritePrivateKeyFile(key_path, crypto::PrivateKey::Generate());
    if (!written.ok()) return written;
  }
  std::string exposed;
  absl::StatusOr<crypto::PrivateKey> key = crypto::ReadPrivateKeyFile(key_path, &exposed);
  if (!key.ok()) return key.status();
  if (!exposed.empty()) warnings.push_back(exposed);

  // Its verifier key: the name is fixed by the first start.
  VerifierKey vkey = MakeVerifierKey(name, kCosignatureV1Ed25519, key->public_key());
  const std::string vkey_path = dir + "/" + kVkeyFile;
  if (fs::exists(vkey_path, error)) {
    absl::StatusOr<std::string> text = ReadSmallFile(vkey_path);
    if (!text.ok()) return text.status();
    std::string_view line = *text;
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    absl::StatusOr<VerifierKey> stored = ParseVerifierKey(line);
    if (!stored.ok()) {
      return absl::DataLossError(absl::StrCat(vkey_path, " is not a verifier key: ", stored.status().message()));
    }
    if (stored->key.raw() != key->public_key().raw() || stored->type != kCosignatureV1Ed25519) {
      return absl::DataLossError(
          absl::StrCat(vkey_path, " is not the cosignature key of ", key_path, "; restore the pair"));
    }
    if (stored->name != name) {
      return absl::FailedPreconditionError(absl::StrCat(
          dir, " belongs to witness \"", stored->name, "\" (", vkey_path, "), not \"", name,
          "\": the name is part of the witness's identity; use --name ", stored->name,
          " or a new data directory"));
    }
  } else {
    absl::Status written = ReplaceFileDurably(vkey_path, vkey.text + "\n");
    if (!written.ok()) return written;
  }

  std::unique_ptr<Witness> witness(new Witness(dir, std::move(vkey), *std::move(key), std::move(clock), *std::move(lock)));
  witness->warnings_ = std::move(warnings);
  for (VerifierKey& log : logs) {
    auto& slot = witness->origins_[log.name];
    if (slot == nullptr) {
      slot = std::make_unique<Origin>();
      slot->origin = log.name;
      slot->state_path =
          absl::StrCat(state_dir, "/", crypto::ToHex(crypto::Sha256(std::string_view(log.name))));
    }
    bool duplicate = false;
    for (const VerifierKey& k : slot->keys) duplicate |= k.text == log.text;
    if (!duplicate) slot->keys.push_back(std::move(log));
  }
  for (auto& [origin, entry] : witness->origins_) {
    State state;
    state.root = merkle::EmptyRoot();
    std::string note;
    if (fs::exists(entry->state_path, error)) {
      absl::StatusOr<std::string> text = ReadSmallFile(entry->state_path);
      if (!text.ok()) return text.status();  // the Witness closes the lock
      absl::StatusOr<State> parsed = ParseState(entry->state_path, origin, *text);
      if (!parsed.ok()) return parsed.status();
      state = *parsed;
      note = *std::move(text);
    }
    absl::MutexLock lock(&entry->mu);
    entry->state = state;
    entry->note = std::move(note);
  }
  return witness;
}

std::optional<Witness::State> Witness::Latest(const std::string& origin) const {
  auto it = origins_.find(origin);
  if (it == origins_.end()) return std::nullopt;
  absl::MutexLock lock(&it->second->mu);
  return it->second->state;
}

absl::Status Witness::Persist(const Origin& origin, std::string_view note) const {
  return ReplaceFileDurably(origin.state_path, note);
}

void Witness::KeepForkEvidence(const Origin& origin, uint64_t size, std::string_view note) const {
  if (origin.note.empty()) return;  // size 0, never cosigned: nothing signed to set against it
  const std::string dir = dir_ + "/" + kEvidenceDir;
  const std::string path = absl::StrCat(dir, "/", crypto::ToHex(crypto::Sha256(std::string_view(origin.origin))).substr(0, 16),
                                        "-", size, "-", crypto::ToHex(crypto::Sha256(note)).substr(0, 16), ".notes");
  std::error_code error;
  if (std::filesystem::exists(path, error)) return;
  // Best effort: the answer (409) does not depend on it.
  (void)ReplaceFileDurably(path, absl::StrCat(origin.note, "\n", S(note)));
}

Witness::Response Witness::AddCheckpoint(std::string_view body) {
  if (body.size() > kMaxBodyBytes) {
    return Answer(413, absl::StrCat("request body is ", body.size(), " bytes; the limit is ", kMaxBodyBytes));
  }
  // "old <size>\n"
  size_t nl = body.find('\n');
  if (nl == std::string_view::npos || body.substr(0, 4) != "old ") {
    return Answer(400, "the body must start with a line \"old <size>\"");
  }
  uint64_t old_size = 0;
  if (!merkle::ParseTreeSize(body.substr(4, nl - 4), &old_size)) {
    return Answer(400, "old size is not a decimal without leading zeros");
  }
  body.remove_prefix(nl + 1);
  // Proof lines up to the empty line.
  std::vector<merkle::Hash> proof;
  while (true) {
    nl = body.find('\n');
    if (nl == std::string_view::npos) {
      return Answer(400, "no empty line between the consistency proof and the checkpoint");
    }
    std::string_view line = body.substr(0, nl);
    body.remove_prefix(nl + 1);
    if (line.empty()) break;
    if (proof.size() == kMaxProofLines) {
      return Answer(400, absl::StrCat("more than ", kMaxProofLines, " consistency proof lines"));
    }
    std::string bytes;
    merkle::Hash hash{};
    if (!crypto::Base64Decode(line, &bytes) || bytes.size() != hash.size()) {
      return Answer(400, absl::StrCat("consistency proof line ", proof.size() + 1,
                                      " is not the base64 of a 32-byte hash"));
    }
    std::memcpy(hash.data(), bytes.data(), bytes.size());
    proof.push_back(hash);
  }
  const std::string_view note = body;
  absl::StatusOr<merkle::SignedNote> parsed = merkle::ParseSignedNote(note);
  if (!parsed.ok()) return Answer(400, std::string(parsed.status().message()));
  // The checkpoint body (origin, size, root) is checked by the one checkpoint
  // parser before anything else, so a malformed body is 400 whoever signed
  // it: OpenCheckpoint reports a malformed note as InvalidArgument before it
  // looks for a signature (here, one by our own key, which it never finds).
  if (absl::Status shape = merkle::OpenCheckpoint(note, vkey_.name, vkey_.key).status();
      absl::IsInvalidArgument(shape)) {
    return Answer(400, std::string(shape.message()));
  }
  const std::string origin_name = parsed->text.substr(0, parsed->text.find('\n'));
  auto found = origins_.find(origin_name);
  if (found == origins_.end()) return Answer(404, absl::StrCat("unknown log origin \"", origin_name, "\""));
  Origin& origin = *found->second;

  // Signatures: lines of unknown keys are ignored; a line that claims a
  // trusted key must verify (as Go's note.Open), and one must.
  const VerifierKey* signer = nullptr;
  for (const merkle::NoteSignature& sig : parsed->signatures) {
    for (const VerifierKey& key : origin.keys) {
      if (sig.key_name != key.name || sig.blob.compare(0, key.key_id.size(), key.key_id) != 0) continue;
      if (!crypto::VerifySignature(key.key, parsed->text, std::string_view(sig.blob).substr(key.key_id.size()))) {
        return Answer(403, absl::StrCat("the signature by log key ", key.text, " does not verify"));
      }
      signer = &key;
    }
  }
  if (signer == nullptr) {
    return Answer(403, absl::StrCat("no signature by a trusted key of \"", origin_name, "\""));
  }
  absl::StatusOr<merkle::Checkpoint> checkpoint = merkle::OpenCheckpoint(note, signer->name, signer->key);
  if (!checkpoint.ok()) return Answer(403, std::string(checkpoint.status().message()));
  if (old_size > checkpoint->size) {
    return Answer(400, absl::StrCat("old size ", old_size, " is greater than the checkpoint's size ",
                                    checkpoint->size));
  }

  // Check, persist and sign as one step (the spec's rollback race).
  absl::MutexLock lock(&origin.mu);
  const State stored = origin.state;
  if (old_size != stored.size) {
    return Response{409, "text/x.tlog.size", absl::StrCat(stored.size, "\n")};
  }
  if (old_size == checkpoint->size) {
    if (checkpoint->root != stored.root) {
      KeepForkEvidence(origin, stored.size, note);
      return Answer(409, absl::StrCat("the witness cosigned another root for size ", stored.size,
                                      ": a split view, kept as evidence"));
    }
    if (!proof.empty()) return Answer(422, "the consistency proof must be empty when the sizes are equal");
  } else if (old_size == 0) {
    if (!proof.empty()) return Answer(422, "the consistency proof must be empty when the old size is 0");
  } else {
    absl::Status consistent =
        merkle::VerifyConsistency(old_size, checkpoint->size, proof, stored.root, checkpoint->root);
    if (!consistent.ok()) {
      return Answer(422, absl::StrCat("consistency proof from ", old_size, " to ", checkpoint->size,
                                      " does not verify: ", consistent.message()));
    }
  }
  State next{checkpoint->size, checkpoint->root};
  if (next.size != stored.size || next.root != stored.root) {
    absl::Status persisted = Persist(origin, note);
    if (!persisted.ok()) {
      return Answer(500, absl::StrCat("cannot persist the witness state: ", persisted.message()));
    }
    origin.state = next;
    origin.note = std::string(note);
  }
  return Response{200, "text/plain; charset=utf-8", Cosign(parsed->text, vkey_.name, key_, clock_())};
}

}  // namespace ledger::witness
