// Checking the server's claims: prove (inclusion of a record in the latest
// signed checkpoint) and consistency (an older checkpoint is a prefix of the
// latest). Nothing the server says is used unless a signature or a proof
// covers it; the unsigned fields of its answers are only cross-checked.
#include <cstdio>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ledger/crypto/sha256.h"
#include "ledger/event/envelope.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/merkle/tree.h"
#include "ledger/witness/policy.h"
#include "tools/ledgerctl/client.h"
#include "tools/ledgerctl/commands.h"
#include "tools/ledgerctl/keys.h"
#include "tools/ledgerctl/output.h"

namespace ledger::ctl {
namespace {

constexpr char kTrustNote[] =
    "The checkpoint must carry a valid signature by the operator key under the\n"
    "ledger's origin. Give the key you trust with --operator-key; without it the\n"
    "key the server itself reports (GetLedgerInfo) is trusted, which proves the\n"
    "server consistent with itself, not that it is the ledger you meant.";

std::string Hex(const merkle::Hash& hash) { return crypto::ToHex(merkle::AsBytes(hash)); }

// The key and key name checkpoints must be signed with.
struct Verifier {
  std::string origin;
  std::optional<crypto::PublicKey> key;
  std::string source;  // where the key came from, for the report
};

absl::StatusOr<Verifier> LoadVerifier(const Invocation& in, LedgerClient& client) {
  absl::StatusOr<v1::GetLedgerInfoResponse> info = client.GetLedgerInfo();
  if (!info.ok()) return info.status();
  Verifier verifier;
  verifier.origin = info->origin();
  if (in.flags.Has("operator-key")) {
    absl::StatusOr<crypto::PublicKey> key = ReadPublicKeyFromEither(in.flags.Get("operator-key"));
    if (!key.ok()) return key.status();
    verifier.key = *key;
    verifier.source = absl::StrCat("--operator-key ", in.flags.Get("operator-key"));
  } else {
    absl::StatusOr<crypto::PublicKey> key = crypto::PublicKey::FromRaw(info->operator_public_key());
    if (!key.ok()) {
      return absl::DataLossError(absl::StrCat("GetLedgerInfo at ", in.server,
                                              ": operator public key: ", key.status().message()));
    }
    verifier.key = *key;
    verifier.source = "the server's own report (no --operator-key given)";
  }
  return verifier;
}

// Fetches the checkpoint of `tree_size` (0: the latest) and checks its
// signature and that the server's unsigned fields agree with the note.
// With `policy`, the newest witnessed checkpoint instead of the latest
// (tree_size 0), which must meet the policy's quorum; `witnessed` (if not
// null) gets who cosigned it.
absl::StatusOr<merkle::Checkpoint> FetchVerifiedCheckpoint(LedgerClient& client,
                                                           const Verifier& verifier,
                                                           uint64_t tree_size,
                                                           const witness::Policy* policy = nullptr,
                                                           witness::WitnessedCheckpoint* witnessed = nullptr) {
  std::string which = policy != nullptr ? std::string("witnessed checkpoint")
                      : tree_size == 0  ? std::string("latest checkpoint")
                                        : absl::StrCat("checkpoint of size ", tree_size);
  absl::StatusOr<v1::GetCheckpointResponse> response = client.GetCheckpoint(tree_size, policy != nullptr);
  if (!response.ok()) return response.status();
  if (policy != nullptr) {
    auto checked = policy->Check(response->note());
    if (!checked.ok()) {
      return absl::Status(checked.status().code(), absl::StrCat(which, ": ", checked.status().message()));
    }
    if (witnessed != nullptr) *witnessed = *std::move(checked);
  }
  absl::StatusOr<merkle::Checkpoint> checkpoint =
      merkle::OpenCheckpoint(response->note(), verifier.origin, *verifier.key);
  if (!checkpoint.ok()) {
    return absl::Status(checkpoint.status().code(),
                        absl::StrCat(which, ": signature check failed (origin '",
                                     verifier.origin, "', operator key ",
                                     verifier.key->key_id(), " from ", verifier.source,
                                     "): ", checkpoint.status().message()));
  }
  if (checkpoint->origin != verifier.origin) {
    return absl::FailedPreconditionError(absl::StrCat(
        which, ": origin line '", checkpoint->origin, "' is not the ledger's origin '",
        verifier.origin, "'"));
  }
  if (tree_size != 0 && checkpoint->size != tree_size) {
    return absl::FailedPreconditionError(absl::StrCat(
        which, ": the server sent a signed checkpoint of size ", checkpoint->size));
  }
  if (response->tree_size() != checkpoint->size ||
      response->root_hash() != merkle::AsBytes(checkpoint->root)) {
    return absl::FailedPreconditionError(absl::StrCat(
        which, ": the server's tree_size/root_hash fields disagree with its signed note"));
  }
  return checkpoint;
}

absl::StatusOr<std::vector<merkle::Hash>> DecodeProof(
    const google::protobuf::RepeatedPtrField<std::string>& proof, absl::string_view what) {
  std::vector<merkle::Hash> out;
  for (int i = 0; i < proof.size(); ++i) {
    absl::StatusOr<merkle::Hash> hash = merkle::HashFromBytes(proof[i]);
    if (!hash.ok()) {
      return absl::DataLossError(
          absl::StrCat(what, ": hash ", i, " is ", proof[i].size(), " bytes, not 32"));
    }
    out.push_back(*hash);
  }
  return out;
}

std::vector<std::string> HexAll(const std::vector<merkle::Hash>& hashes) {
  std::vector<std::string> out;
  for (const merkle::Hash& hash : hashes) out.push_back(Hex(hash));
  return out;
}

// ---------------------------------------------------------------- prove

absl::Status RunProve(const Invocation& in) {
  absl::StatusOr<uint64_t> seq = in.flags.GetUint64("seq", 0);
  if (!seq.ok()) return seq.status();
  bool json = in.flags.Has("json");

  LedgerClient client(in.server, in.tls);
  absl::StatusOr<Verifier> verifier = LoadVerifier(in, client);
  if (!verifier.ok()) return verifier.status();
  std::optional<witness::Policy> policy;
  if (in.flags.Has("witness-policy")) {
    auto loaded = witness::Policy::Load(in.flags.Get("witness-policy"));
    if (!loaded.ok()) return loaded.status();
    policy = *std::move(loaded);
  }
  witness::WitnessedCheckpoint witnessed;
  absl::StatusOr<merkle::Checkpoint> checkpoint =
      FetchVerifiedCheckpoint(client, *verifier, 0, policy.has_value() ? &*policy : nullptr, &witnessed);
  if (!checkpoint.ok()) return checkpoint.status();
  if (*seq >= checkpoint->size) {
    return absl::OutOfRangeError(absl::StrCat("record ", *seq, " is not covered by the ",
                                              policy.has_value() ? "witnessed" : "latest", " checkpoint (size ",
                                              checkpoint->size, ")"));
  }

  absl::StatusOr<v1::RecordEntry> entry = client.Get(*seq);
  if (!entry.ok()) return entry.status();
  // The record must be the one at that position, not merely some leaf.
  absl::StatusOr<v1::Record> record = DecodeRecord(entry->record(), *seq);
  if (!record.ok()) return record.status();
  merkle::Hash leaf = merkle::HashLeaf(entry->record());

  absl::StatusOr<v1::InclusionProofResponse> response =
      client.GetInclusionProof(*seq, checkpoint->size);
  if (!response.ok()) return response.status();
  if (response->leaf_index() != *seq || response->tree_size() != checkpoint->size) {
    return absl::FailedPreconditionError(absl::StrCat(
        "GetInclusionProof at ", in.server, ": asked for leaf ", *seq, " in size ",
        checkpoint->size, ", got leaf ", response->leaf_index(), " in size ",
        response->tree_size()));
  }
  absl::StatusOr<std::vector<merkle::Hash>> proof =
      DecodeProof(response->proof(), "inclusion proof");
  if (!proof.ok()) return proof.status();

  absl::Status verified = merkle::VerifyInclusion(leaf, *seq, checkpoint->size, *proof,
                                                  checkpoint->root);
  if (json) {
    Json out = {{"leaf_index", *seq},
                {"tree_size", checkpoint->size},
                {"leaf_hash", Hex(leaf)},
                {"inclusion_proof", HexAll(*proof)},
                {"root_hash", Hex(checkpoint->root)},
                {"verified", verified.ok()}};
    if (!verified.ok()) out["error"] = std::string(verified.message());
    PrintLine(DumpJson(out));
  }
  if (!verified.ok()) {
    return absl::Status(verified.code(),
                        absl::StrCat("inclusion proof of record ", *seq, " in the tree of size ",
                                     checkpoint->size, " did not verify: ",
                                     verified.message()));
  }
  if (!json) {
    PrintLine(absl::StrCat("checkpoint: ", verifier->origin, ", tree size ", checkpoint->size,
                           ", root ", Hex(checkpoint->root)));
    PrintLine(absl::StrCat("  signature: verified (operator key ", verifier->key->key_id(),
                           " from ", verifier->source, ")"));
    if (policy.has_value()) {
      std::vector<std::string> cosigners;
      for (const witness::Cosignature& c : witnessed.cosignatures) cosigners.push_back(c.witness_name);
      PrintLine(absl::StrCat("  witnessed: quorum ", policy->QuorumText(), " met at ", witnessed.quorum_time,
                             " (POSIX s) by ", absl::StrJoin(cosigners, ", ")));
    } else {
      PrintLine("  witnessed: not checked (no --witness-policy): split views were not ruled out");
    }
    PrintLine(absl::StrCat("record ", *seq, ": leaf hash ", Hex(leaf),
                           " (recomputed from the record bytes)"));
    PrintLine(absl::StrCat("  inclusion proof (", proof->size(),
                           " hashes): verified; record ", *seq,
                           " is in the signed tree of size ", checkpoint->size));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- consistency

absl::Status RunConsistency(const Invocation& in) {
  absl::StatusOr<uint64_t> from = in.flags.GetUint64("from", 0);
  if (!from.ok()) return from.status();
  // Tree size 0 asks GetCheckpoint for the latest, and nothing is provable from
  // the empty tree anyway.
  if (*from == 0) return UsageError("--from must be at least 1");
  bool json = in.flags.Has("json");

  LedgerClient client(in.server, in.tls);
  absl::StatusOr<Verifier> verifier = LoadVerifier(in, client);
  if (!verifier.ok()) return verifier.status();
  absl::StatusOr<merkle::Checkpoint> latest = FetchVerifiedCheckpoint(client, *verifier, 0);
  if (!latest.ok()) return latest.status();
  if (*from > latest->size) {
    return absl::OutOfRangeError(absl::StrCat("--from ", *from,
                                              " is beyond the latest checkpoint (size ",
                                              latest->size, ")"));
  }
  absl::StatusOr<merkle::Checkpoint> old = FetchVerifiedCheckpoint(client, *verifier, *from);
  if (!old.ok()) return old.status();

  absl::StatusOr<v1::ConsistencyProofResponse> response =
      client.GetConsistencyProof(old->size, latest->size);
  if (!response.ok()) return response.status();
  if (response->from_size() != old->size || response->to_size() != latest->size) {
    return absl::FailedPreconditionError(absl::StrCat(
        "GetConsistencyProof at ", in.server, ": asked for ", old->size, " -> ", latest->size,
        ", got ", response->from_size(), " -> ", response->to_size()));
  }
  absl::StatusOr<std::vector<merkle::Hash>> proof =
      DecodeProof(response->proof(), "consistency proof");
  if (!proof.ok()) return proof.status();

  absl::Status verified =
      merkle::VerifyConsistency(old->size, latest->size, *proof, old->root, latest->root);
  if (json) {
    Json out = {{"old_size", old->size},
                {"new_size", latest->size},
                {"old_root", Hex(old->root)},
                {"new_root", Hex(latest->root)},
                {"consistency_proof", HexAll(*proof)},
                {"verified", verified.ok()}};
    if (!verified.ok()) out["error"] = std::string(verified.message());
    PrintLine(DumpJson(out));
  }
  if (!verified.ok()) {
    return absl::Status(verified.code(),
                        absl::StrCat("consistency proof from size ", old->size, " to ",
                                     latest->size, " did not verify: ", verified.message()));
  }
  if (!json) {
    PrintLine(absl::StrCat("old checkpoint: tree size ", old->size, ", root ", Hex(old->root),
                           ": signature verified"));
    PrintLine(absl::StrCat("new checkpoint: tree size ", latest->size, ", root ",
                           Hex(latest->root), ": signature verified"));
    PrintLine(absl::StrCat("  operator key ", verifier->key->key_id(), " from ",
                           verifier->source));
    PrintLine(absl::StrCat("consistency proof (", proof->size(),
                           " hashes): verified; the tree of size ", old->size,
                           " is a prefix of the tree of size ", latest->size));
  }
  return absl::OkStatus();
}

}  // namespace

Command ProveCommand() {
  return {{.name = "prove",
           .summary = "Prove that record N is in the latest signed checkpoint.",
           .description = absl::StrCat(
               "Fetches and verifies the latest checkpoint, recomputes record N's leaf hash\n"
               "from its bytes and verifies its inclusion proof against the checkpoint's\n"
               "root. Exits 0 only if everything verifies.\n\n",
               kTrustNote,
               "\n\n--json prints one object: {\"leaf_index\":N,\"tree_size\":S,\"leaf_hash\":..,\n"
               "\"inclusion_proof\":[..],\"root_hash\":..,\"verified\":true} (hashes in hex)."),
           .flags = {{"seq", "N", "the record's position", true},
                     {"json", "", "print the proof as one JSON object"},
                     {"witness-policy", "FILE", "prove against the newest checkpoint this C2SP tlog-policy's quorum cosigned"},
                     {"operator-key", "PUB_PEM", "the operator public key to trust"}}},
          &RunProve};
}

Command ConsistencyCommand() {
  return {{.name = "consistency",
           .summary = "Prove that the checkpoint of size M is a prefix of the latest one.",
           .description = absl::StrCat(
               "Fetches and verifies both checkpoints, then verifies the consistency proof\n"
               "between them. Exits 0 only if everything verifies.\n\n",
               kTrustNote,
               "\n\n--json prints one object: {\"old_size\":M,\"new_size\":S,\"old_root\":..,\n"
               "\"new_root\":..,\"consistency_proof\":[..],\"verified\":true} (hashes in hex)."),
           .flags = {{"from", "M", "the older tree size (at least 1)", true},
                     {"json", "", "print the proof as one JSON object"},
                     {"operator-key", "PUB_PEM", "the operator public key to trust"}}},
          &RunConsistency};
}

}  // namespace ledger::ctl
