#include "tools/ledgerctl/evidence.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ledger/common/files.h"
#include "ledger/crypto/sha256.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/merkle/tree.h"
#include "nlohmann/json.hpp"

namespace ledger::ctl {
namespace {

namespace fs = std::filesystem;

constexpr char kFormat[] = "decision-ledger-receipt/1";
constexpr char kReceiptPrefix[] = "receipt-";
constexpr char kReceiptSuffix[] = ".json";
// A receipt file is a few hundred bytes plus the note; anything near this is
// not one of ours.
constexpr uintmax_t kMaxReceiptFileBytes = 1 << 20;

void Warn(const std::string& message) {
  std::fprintf(stderr, "ledgerctl: warning: %s\n", message.c_str());
  std::fflush(stderr);
}

std::string Hex(const merkle::Hash& hash) { return crypto::ToHex(merkle::AsBytes(hash)); }

std::string ReceiptFileName(uint64_t position) {
  return absl::StrFormat("%s%020d%s", kReceiptPrefix, position, kReceiptSuffix);
}

// A second receipt for a position already saved with another record: the
// first is never replaced (it is the evidence of what the position held).
std::string ReceiptFileName(uint64_t position, const std::string& leaf_hex) {
  return absl::StrFormat("%s%020d-%s%s", kReceiptPrefix, position, leaf_hex.substr(0, 16), kReceiptSuffix);
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  std::error_code error;
  const uintmax_t size = fs::file_size(path, error);
  if (error) return absl::NotFoundError(absl::StrCat(path, ": ", error.message()));
  if (size > kMaxReceiptFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", size, " bytes, more than any receipt"));
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) return absl::DataLossError(absl::StrCat(path, ": read failed"));
  return text.str();
}

absl::Status MakeDirectory(const std::string& dir) {
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) return absl::UnavailableError(absl::StrCat("cannot create ", dir, ": ", error.message()));
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, error);
  return absl::OkStatus();
}

// The key receipts of this origin are verified under: DIR/operator.pub, or,
// if there is none yet, the server's, pinned now (trust on first use, said
// on stderr).
absl::StatusOr<crypto::PublicKey> PinnedKey(const std::string& dir, const v1::GetLedgerInfoResponse& info) {
  const std::string path = dir + "/operator.pub";
  std::error_code error;
  if (fs::exists(path, error)) return crypto::ReadPublicKeyFile(path);
  auto served = crypto::PublicKey::FromRaw(info.operator_public_key());
  if (!served.ok())
    return absl::DataLossError(absl::StrCat("GetLedgerInfo: operator key: ", served.status().message()));
  if (auto s = WriteFileAtomically(path, served->ToPem()); !s.ok()) return s;
  Warn(absl::StrCat("pinned the operator key ", served->key_id(), " the server reports for \"", info.origin(), "\" in ",
                    path, " (first receipt from this log; receipts are verified under it from now on)"));
  return *served;
}

absl::StatusOr<std::vector<merkle::Hash>> Hashes(const google::protobuf::RepeatedPtrField<std::string>& bytes) {
  std::vector<merkle::Hash> out;
  for (const std::string& b : bytes) {
    auto hash = merkle::HashFromBytes(b);
    if (!hash.ok()) return hash.status();
    out.push_back(*hash);
  }
  return out;
}

// One parsed and verified receipt file.
struct SavedReceipt {
  std::string file;
  uint64_t position = 0;
  merkle::Hash leaf{};
  std::string note;
  merkle::Checkpoint checkpoint;
};

absl::StatusOr<SavedReceipt> ParseReceiptFile(const std::string& path, const std::string& origin,
                                              const crypto::PublicKey& key) {
  auto text = ReadSmallFile(path);
  if (!text.ok()) return text.status();
  nlohmann::json json = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return absl::InvalidArgumentError("not a JSON object");
  auto field = [&](const char* name, nlohmann::json::value_t type) -> const nlohmann::json* {
    auto it = json.find(name);
    if (it == json.end() || it->type() != type) return nullptr;
    return &*it;
  };
  const auto* format = field("format", nlohmann::json::value_t::string);
  if (format == nullptr || format->get<std::string>() != kFormat) {
    return absl::InvalidArgumentError(absl::StrCat("\"format\" is not \"", kFormat, "\""));
  }
  const auto* position = field("position", nlohmann::json::value_t::number_unsigned);
  const auto* tree_size = field("tree_size", nlohmann::json::value_t::number_unsigned);
  const auto* leaf = field("leaf_hash", nlohmann::json::value_t::string);
  const auto* note = field("checkpoint", nlohmann::json::value_t::string);
  if (position == nullptr) return absl::InvalidArgumentError("no \"position\" (a non-negative integer)");
  if (tree_size == nullptr) return absl::InvalidArgumentError("no \"tree_size\" (a non-negative integer)");
  if (leaf == nullptr) return absl::InvalidArgumentError("no \"leaf_hash\" (hex)");
  if (note == nullptr) return absl::InvalidArgumentError("no \"checkpoint\" (a signed note)");
  SavedReceipt r;
  r.file = path;
  r.position = position->get<uint64_t>();
  const std::string name = fs::path(path).filename().string();
  if (name != ReceiptFileName(r.position) && name != ReceiptFileName(r.position, leaf->get<std::string>())) {
    return absl::InvalidArgumentError(absl::StrCat("holds position ", r.position, ", not the one its name says"));
  }
  std::string leaf_bytes;
  if (!crypto::FromHex(leaf->get<std::string>(), &leaf_bytes))
    return absl::InvalidArgumentError("\"leaf_hash\" is not hex");
  auto leaf_hash = merkle::HashFromBytes(leaf_bytes);
  if (!leaf_hash.ok()) return absl::InvalidArgumentError(absl::StrCat("\"leaf_hash\": ", leaf_hash.status().message()));
  r.leaf = *leaf_hash;
  r.note = note->get<std::string>();
  auto opened = merkle::OpenCheckpoint(r.note, origin, key);
  if (!opened.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("its checkpoint does not verify under the operator key ",
                                                   key.key_id(), ": ", opened.status().message()));
  }
  r.checkpoint = *opened;
  if (r.checkpoint.size != tree_size->get<uint64_t>() || r.position >= r.checkpoint.size) {
    return absl::InvalidArgumentError(absl::StrCat("position ", r.position, " and tree size ",
                                                   tree_size->get<uint64_t>(), " do not fit its checkpoint of size ",
                                                   r.checkpoint.size));
  }
  return r;
}

}  // namespace

absl::Status WriteFileAtomically(const std::string& path, const std::string& contents) {
  return ReplaceFileDurably(path, contents, 0644);
}

absl::StatusOr<std::string> EvidenceRoot(const Invocation& in) {
  if (!in.evidence.empty()) return in.evidence;
  if (const char* env = std::getenv("LEDGER_EVIDENCE"); env != nullptr && *env != '\0') return std::string(env);
  if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg != nullptr && xdg[0] == '/') {
    return absl::StrCat(xdg, "/decision-ledger/evidence");
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && home[0] == '/') {
    return absl::StrCat(home, "/.local/state/decision-ledger/evidence");
  }
  return absl::FailedPreconditionError(
      "no evidence directory: give --evidence DIR or set LEDGER_EVIDENCE (HOME is not set)");
}

std::string OriginDirName(const std::string& origin) {
  std::string out;
  for (size_t i = 0; i < origin.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(origin[i]);
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || (c == '.' && i > 0)) {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppendFormat(&out, "%%%02X", c);
    }
  }
  return out.empty() ? "%" : out;
}

void KeepReceipt(const Invocation& in, LedgerClient& client, const v1::GetLedgerInfoResponse& info,
                 const v1::Receipt& receipt) {
  const std::string what = absl::StrCat("receipt for position ", receipt.position());
  auto root = EvidenceRoot(in);
  if (!root.ok()) {
    Warn(absl::StrCat(what, " not saved as evidence: ", root.status().message()));
    return;
  }
  const std::string dir = absl::StrCat(*root, "/", OriginDirName(info.origin()));
  if (auto s = MakeDirectory(dir); !s.ok()) {
    Warn(absl::StrCat(what, " not saved as evidence: ", s.message()));
    return;
  }
  auto key = PinnedKey(dir, info);
  if (!key.ok()) {
    Warn(absl::StrCat(what, " not saved as evidence: ", key.status().message()));
    return;
  }
  auto checkpoint = merkle::OpenCheckpoint(receipt.checkpoint(), info.origin(), *key);
  if (!checkpoint.ok()) {
    Warn(absl::StrCat(what, " NOT saved as evidence: its checkpoint does not verify under the operator key ",
                      key->key_id(), " pinned in ", dir, "/operator.pub: ", checkpoint.status().message()));
    return;
  }
  auto leaf = merkle::HashFromBytes(receipt.leaf_hash());
  if (checkpoint->size != receipt.tree_size() || receipt.position() >= checkpoint->size || !leaf.ok()) {
    Warn(absl::StrCat(what, " NOT saved as evidence: its tree size ", receipt.tree_size(), ", position and leaf hash (",
                      receipt.leaf_hash().size(), " bytes) do not fit its checkpoint of size ", checkpoint->size));
    return;
  }
  // The proof that ties the event to the signed root; without it the
  // receipt is kept all the same (audit checks inclusion at the current size).
  nlohmann::ordered_json proof = nlohmann::ordered_json::array();
  auto response = client.GetInclusionProof(receipt.position(), receipt.tree_size());
  absl::Status proved = response.status();
  if (proved.ok()) {
    auto hashes = Hashes(response->proof());
    proved = hashes.ok()
                 ? merkle::VerifyInclusion(*leaf, receipt.position(), checkpoint->size, *hashes, checkpoint->root)
                 : hashes.status();
    if (proved.ok()) {
      for (const merkle::Hash& h : *hashes) proof.push_back(Hex(h));
    }
  }
  if (!proved.ok()) {
    Warn(absl::StrCat(what, ": no verified inclusion proof at size ", checkpoint->size, " (", proved.message(),
                      "); saved without one"));
  }
  nlohmann::ordered_json json = {
      {"format", kFormat},
      {"origin", info.origin()},
      {"ledger_id", info.ledger_id()},
      {"server", in.server},
      {"operator_key_id", key->key_id()},
      {"saved_at", absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone())},
      {"position", receipt.position()},
      {"ledger_time_unix_ns", receipt.ledger_time_unix_ns()},
      {"leaf_hash", Hex(*leaf)},
      {"tree_size", receipt.tree_size()},
      {"checkpoint", receipt.checkpoint()},
      {"inclusion_proof", proof},
  };
  std::string path = absl::StrCat(dir, "/", ReceiptFileName(receipt.position()));
  if (fs::exists(path)) {
    // Saved before. The same record again (a replayed receipt) may refresh
    // it; another record at that position means the position was given out
    // twice — a rolled-back tail — and the earlier file is the proof.
    auto earlier = ReadSmallFile(path);
    nlohmann::json parsed = earlier.ok() ? nlohmann::json::parse(*earlier, nullptr, false) : nlohmann::json();
    const bool same = parsed.is_object() && parsed.value("leaf_hash", "") == Hex(*leaf);
    if (!same) {
      path = absl::StrCat(dir, "/", ReceiptFileName(receipt.position(), Hex(*leaf)));
      Warn(absl::StrCat("HISTORY REWRITTEN? position ", receipt.position(), " was receipted before for another ",
                        "record (kept in ", dir, "/", ReceiptFileName(receipt.position()),
                        "); this receipt is saved beside it: run `ledgerctl audit`"));
    }
  }
  if (auto s =
          WriteFileAtomically(path, json.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n");
      !s.ok()) {
    Warn(absl::StrCat(what, " not saved as evidence: ", s.message()));
  }
}

absl::StatusOr<EvidenceCheck> CheckEvidence(const Invocation& in, LedgerClient& client,
                                            const v1::GetLedgerInfoResponse& info,
                                            const std::optional<crypto::PublicKey>& operator_key) {
  EvidenceCheck check;
  auto root = EvidenceRoot(in);
  if (!root.ok()) {  // nothing saved anywhere: nothing to check
    check.dir = absl::StrCat("(", root.status().message(), ")");
    return check;
  }
  check.dir = absl::StrCat(*root, "/", OriginDirName(info.origin()));
  std::vector<std::string> files;
  std::error_code error;
  if (fs::is_directory(check.dir, error)) {
    for (fs::directory_iterator it(check.dir, error), end; !error && it != end; it.increment(error)) {
      const std::string name = it->path().filename().string();
      if (absl::StartsWith(name, kReceiptPrefix) && absl::EndsWith(name, kReceiptSuffix)) {
        files.push_back(it->path().string());
      }
    }
    if (error) return absl::UnavailableError(absl::StrCat("cannot list ", check.dir, ": ", error.message()));
  }
  error.clear();
  std::sort(files.begin(), files.end());
  check.found = !files.empty();
  if (!check.found) return check;

  const std::string pinned_path = check.dir + "/operator.pub";
  if (!fs::exists(pinned_path, error)) {
    return absl::FailedPreconditionError(absl::StrCat(
        pinned_path, " is missing: the saved receipts cannot be verified (put the operator's public key there)"));
  }
  auto key = crypto::ReadPublicKeyFile(pinned_path);
  if (!key.ok()) return key.status();
  if (operator_key.has_value() && operator_key->raw() != key->raw()) {
    return absl::FailedPreconditionError(absl::StrCat("the operator key ", operator_key->key_id(),
                                                      " is not the one the evidence was verified under (",
                                                      key->key_id(), ", pinned in ", pinned_path, ")"));
  }

  std::vector<SavedReceipt> receipts;
  for (const std::string& file : files) {
    auto saved = ParseReceiptFile(file, info.origin(), *key);
    if (!saved.ok()) {
      check.skipped.push_back(absl::StrCat(file, ": ", saved.status().message()));
      continue;
    }
    receipts.push_back(*std::move(saved));
  }

  auto latest = client.GetCheckpoint(0);
  if (!latest.ok()) return latest.status();
  auto now = merkle::OpenCheckpoint(latest->note(), info.origin(), *key);
  if (!now.ok()) {
    return absl::DataLossError(absl::StrCat("the latest checkpoint does not verify under the operator key ",
                                            key->key_id(), " pinned in ", pinned_path, ": ", now.status().message()));
  }
  check.served_note = latest->note();
  check.served_size = now->size;
  check.served_root_hex = Hex(now->root);

  // Each distinct saved checkpoint, with the receipts it acknowledged.
  std::map<std::pair<uint64_t, std::string>, std::vector<const SavedReceipt*>> saved_checkpoints;
  for (const SavedReceipt& r : receipts) saved_checkpoints[{r.checkpoint.size, Hex(r.checkpoint.root)}].push_back(&r);
  for (const auto& [id, acknowledged] : saved_checkpoints) {
    const auto& [size, root_hex] = id;
    const merkle::Checkpoint& saved = acknowledged.front()->checkpoint;
    std::vector<uint64_t> positions;
    for (const SavedReceipt* r : acknowledged) positions.push_back(r->position);
    std::string why;
    if (size > now->size) {
      why = absl::StrCat("beyond the server's tree of size ", now->size, ": the log was rolled back");
    } else if (size == now->size) {
      if (saved.root != now->root) why = absl::StrCat("the server now signs another root for size ", size);
    } else {
      auto proof = client.GetConsistencyProof(size, now->size);
      if (!proof.ok()) return proof.status();
      auto hashes = Hashes(proof->proof());
      absl::Status consistent =
          hashes.ok() ? merkle::VerifyConsistency(size, now->size, *hashes, saved.root, now->root) : hashes.status();
      if (!consistent.ok()) {
        why = absl::StrCat("the server's tree of size ", now->size, " does not extend it: ", consistent.message());
      }
    }
    ++check.checkpoints;
    if (!why.empty()) {
      check.rewritten.push_back(absl::StrCat("saved checkpoint size ", size, " root ", root_hex, " (",
                                             acknowledged.front()->file, ", receipts at ",
                                             absl::StrJoin(positions, ", "), "): ", why));
    }
  }
  for (const SavedReceipt& r : receipts) {
    ++check.receipts;
    if (r.position >= now->size) {
      check.lost_positions.push_back(r.position);
      continue;
    }
    auto proof = client.GetInclusionProof(r.position, now->size);
    if (!proof.ok()) return proof.status();
    auto hashes = Hashes(proof->proof());
    absl::Status included =
        hashes.ok() ? merkle::VerifyInclusion(r.leaf, r.position, now->size, *hashes, now->root) : hashes.status();
    if (!included.ok()) check.lost_positions.push_back(r.position);
  }

  if (check.rewritten.empty() && check.lost_positions.empty()) return check;
  // Copy everything this origin holds, with the server's answer, into one
  // directory to hand over; the originals stay where they are.
  const std::string stamp = absl::FormatTime("%Y%m%dT%H%M%SZ", absl::Now(), absl::UTCTimeZone());
  std::string copy = absl::StrCat(check.dir, "/rewritten-", stamp);
  for (int i = 1; fs::exists(copy, error); ++i) copy = absl::StrCat(check.dir, "/rewritten-", stamp, "-", i);
  error.clear();
  absl::Status copied = MakeDirectory(copy);
  for (const std::string& file : files) {
    if (!copied.ok()) break;
    fs::copy_file(file, fs::path(copy) / fs::path(file).filename(), error);
    if (error) copied = absl::UnavailableError(absl::StrCat("copy ", file, ": ", error.message()));
  }
  if (copied.ok()) {
    fs::copy_file(pinned_path, fs::path(copy) / "operator.pub", error);
    if (error) copied = absl::UnavailableError(absl::StrCat("copy ", pinned_path, ": ", error.message()));
  }
  if (copied.ok()) copied = WriteFileAtomically(copy + "/served-checkpoint.note", check.served_note);
  check.copied_to =
      copied.ok() ? copy : absl::StrCat("NOT COPIED (", copied.message(), "); the originals are in ", check.dir);
  if (copied.ok()) {
    (void)WriteFileAtomically(copy + "/report.txt", FormatEvidenceCheck(check, in.server) + "\n");
  }
  return check;
}

std::string FormatEvidenceCheck(const EvidenceCheck& check, const std::string& server) {
  std::string skipped;
  if (!check.skipped.empty()) {
    skipped = absl::StrCat("; ", check.skipped.size(), " evidence file(s) skipped as corrupt (see stderr)");
  }
  if (check.rewritten.empty() && check.lost_positions.empty()) {
    return absl::StrCat("evidence OK: ", check.checkpoints, " saved checkpoints and ", check.receipts, " receipts in ",
                        check.dir, " are consistent with the server's checkpoint of size ", check.served_size, " root ",
                        check.served_root_hex, skipped);
  }
  const std::string bar(72, '!');
  std::string out = absl::StrCat(bar, "\n!!! HISTORY REWRITTEN\n!!! server ", server,
                                 " no longer holds what its operator signed in receipts to you:\n");
  for (const std::string& line : check.rewritten) absl::StrAppend(&out, "!!! ", line, "\n");
  if (!check.lost_positions.empty()) {
    absl::StrAppend(&out, "!!! receipt positions lost (not included in the server's tree now): ",
                    absl::StrJoin(check.lost_positions, ", "), "\n");
  }
  absl::StrAppend(&out, "!!! the checkpoint the server signs now (size ", check.served_size, " root ",
                  check.served_root_hex, "):\n", check.served_note,
                  "!!! the saved checkpoints are signed by the operator key: keep them as evidence.\n!!! evidence: ",
                  check.copied_to.empty() ? check.dir : check.copied_to, "\n", bar);
  return out;
}

}  // namespace ledger::ctl
