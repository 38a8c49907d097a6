#include "ledger/witness/policy.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"

namespace ledger::witness {
namespace {

constexpr size_t kMaxEntries = 256;  // logs and groups each
// A cosigned note carries one line per witness and the log's; signed notes
// hold at most 100 lines (ledger/merkle/checkpoint.cc).
constexpr size_t kMaxWitnesses = 99;

std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
  return fields;
}

bool ParseThreshold(std::string_view s, int* out) {
  if (s.empty() || s.size() > 4 || s[0] == '0') return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

}  // namespace

absl::StatusOr<Policy> Policy::Parse(std::string_view text) {
  Policy policy;
  absl::flat_hash_map<std::string, int> names;  // witnesses and groups: node index
  // Groups are numbered after every witness, which is only known at the end,
  // so members are recorded as (is_group, index) and resolved afterwards.
  std::vector<std::vector<std::pair<bool, int>>> group_members;
  std::pair<bool, int> quorum{false, -1};
  bool have_quorum = false;
  bool quorum_none = false;

  int line_no = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    std::string_view line =
        text.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    start = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    auto bad = [&](std::string_view what) {
      return absl::InvalidArgumentError("witness policy line " + std::to_string(line_no) +
                                        ": " + std::string(what));
    };
    for (char c : line) {
      unsigned char u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t') || u == 0x7f) return bad("control character (only tab is allowed)");
    }
    std::vector<std::string_view> f = Fields(line);
    if (f.empty() || f[0][0] == '#') continue;

    if (f[0] == "log") {
      if (f.size() < 2 || f.size() > 3) return bad("expected: log <vkey> [<url>]");
      absl::StatusOr<VerifierKey> key = ParseVerifierKey(f[1]);
      if (!key.ok()) return bad(std::string(key.status().message()));
      if (key->type != kNoteEd25519) return bad("a log key must be an Ed25519 note key (type 0x01)");
      for (const VerifierKey& other : policy.logs_) {
        if (other.key.raw() == key->key.raw()) return bad("duplicate log key");
      }
      if (policy.logs_.size() >= kMaxEntries) return bad("too many logs");
      policy.logs_.push_back(*std::move(key));
    } else if (f[0] == "witness") {
      if (f.size() < 3 || f.size() > 4) return bad("expected: witness <name> <vkey> [<url>]");
      std::string name(f[1]);
      if (name == "none") return bad("\"none\" is reserved");
      if (names.contains(name)) return bad("name " + name + " is already defined");
      absl::StatusOr<VerifierKey> key = ParseVerifierKey(f[2]);
      if (!key.ok()) return bad(std::string(key.status().message()));
      if (key->type != kCosignatureV1Ed25519) {
        return bad("a witness key must be a cosignature/v1 Ed25519 key (type 0x04)");
      }
      for (const PolicyWitness& other : policy.witnesses_) {
        if (other.key.key.raw() == key->key.raw()) return bad("duplicate witness key");
      }
      if (policy.witnesses_.size() >= kMaxWitnesses) return bad("more than 99 witnesses (a note holds 100 signatures)");
      names[name] = static_cast<int>(policy.witnesses_.size());
      policy.witnesses_.push_back(
          PolicyWitness{name, *std::move(key), f.size() == 4 ? std::string(f[3]) : ""});
    } else if (f[0] == "group") {
      if (f.size() < 4) return bad("expected: group <name> all|any|<k> <member>...");
      std::string name(f[1]);
      if (name == "none") return bad("\"none\" is reserved");
      if (names.contains(name)) return bad("name " + name + " is already defined");
      std::vector<std::pair<bool, int>> members;
      absl::flat_hash_map<std::string, bool> seen;
      for (size_t i = 3; i < f.size(); ++i) {
        std::string member(f[i]);
        auto it = names.find(member);
        if (it == names.end()) return bad("member " + member + " is not defined on an earlier line");
        if (!seen.emplace(member, true).second) return bad("member " + member + " is listed twice");
        bool is_group = it->second < 0;
        members.emplace_back(is_group, is_group ? -it->second - 1 : it->second);
      }
      const int n = static_cast<int>(members.size());
      int k = 0;
      if (f[2] == "all") {
        k = n;
      } else if (f[2] == "any") {
        k = 1;
      } else if (!ParseThreshold(f[2], &k) || k < 1 || k > n) {
        return bad("threshold must be all, any or a number from 1 to the member count");
      }
      if (policy.groups_.size() >= kMaxEntries) return bad("too many groups");
      names[name] = -static_cast<int>(policy.groups_.size()) - 1;  // groups negative here
      policy.groups_.push_back(Group{name, k, {}});
      group_members.push_back(std::move(members));
    } else if (f[0] == "quorum") {
      if (f.size() != 2) return bad("expected: quorum <name>|none");
      if (have_quorum) return bad("a second quorum line");
      have_quorum = true;
      if (f[1] == "none") {
        quorum_none = true;
      } else {
        auto it = names.find(std::string(f[1]));
        if (it == names.end()) return bad("quorum names " + std::string(f[1]) + ", not defined earlier");
        quorum = {it->second < 0, it->second < 0 ? -it->second - 1 : it->second};
      }
    } else {
      return bad("unknown keyword " + std::string(f[0]) + " (log, witness, group, quorum)");
    }
  }
  if (!have_quorum) return absl::InvalidArgumentError("witness policy: no quorum line");

  const int witness_count = static_cast<int>(policy.witnesses_.size());
  auto node = [&](std::pair<bool, int> m) { return m.first ? witness_count + m.second : m.second; };
  for (size_t g = 0; g < policy.groups_.size(); ++g) {
    for (const auto& m : group_members[g]) policy.groups_[g].members.push_back(node(m));
  }
  policy.quorum_ = quorum_none ? -1 : node(quorum);
  return policy;
}

absl::StatusOr<Policy> Policy::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError("witness policy " + path + ": " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  absl::StatusOr<Policy> policy = Parse(text.str());
  if (!policy.ok()) {
    return absl::InvalidArgumentError(path + ": " + std::string(policy.status().message()));
  }
  return policy;
}

bool Policy::Satisfied(const absl::flat_hash_set<std::string>& cosigners) const {
  if (quorum_ < 0) return true;
  // Bottom up, once: a group's members are always defined before it, so one
  // pass in order decides every node (a recursion would revisit groups that
  // several later groups share, exponentially often).
  const size_t witness_count = witnesses_.size();
  std::vector<char> satisfied(witness_count + groups_.size());
  for (size_t i = 0; i < witness_count; ++i) satisfied[i] = cosigners.contains(witnesses_[i].name);
  for (size_t g = 0; g < groups_.size(); ++g) {
    int met = 0;
    for (int member : groups_[g].members) met += satisfied[member];
    satisfied[witness_count + g] = met >= groups_[g].threshold;
  }
  return satisfied[quorum_];
}

std::string Policy::NodeText(int node) const {
  const int witness_count = static_cast<int>(witnesses_.size());
  if (node < witness_count) return witnesses_[node].name;
  const Group& group = groups_[node - witness_count];
  std::string out = std::to_string(group.threshold) + " of {";
  for (size_t i = 0; i < group.members.size(); ++i) {
    if (i > 0) out += ", ";
    out += NodeText(group.members[i]);
  }
  return out + "}";
}

std::string Policy::QuorumText() const { return quorum_ < 0 ? "none" : NodeText(quorum_); }

absl::StatusOr<WitnessedCheckpoint> Policy::Check(std::string_view note) const {
  absl::StatusOr<merkle::SignedNote> parsed = merkle::ParseSignedNote(note);
  if (!parsed.ok()) return parsed.status();
  std::string_view origin = std::string_view(parsed->text).substr(0, parsed->text.find('\n'));
  const VerifierKey* log = nullptr;
  for (const VerifierKey& key : logs_) {
    if (key.name == origin) log = &key;
  }
  if (log == nullptr) {
    return absl::NotFoundError("the witness policy lists no log for origin " + std::string(origin));
  }
  absl::StatusOr<merkle::Checkpoint> checkpoint = merkle::OpenCheckpoint(note, log->name, log->key);
  if (!checkpoint.ok()) return checkpoint.status();

  WitnessedCheckpoint witnessed;
  witnessed.checkpoint = *std::move(checkpoint);
  for (const PolicyWitness& witness : witnesses_) {
    absl::StatusOr<Cosignature> cosignature = FindCosignature(*parsed, witness.key);
    if (absl::IsNotFound(cosignature.status())) continue;
    if (!cosignature.ok()) return cosignature.status();
    cosignature->witness_name = witness.name;
    witnessed.cosignatures.push_back(*std::move(cosignature));
  }
  // The quorum time: add cosigners in timestamp order until the quorum holds.
  std::vector<const Cosignature*> by_time;
  for (const Cosignature& c : witnessed.cosignatures) by_time.push_back(&c);
  std::sort(by_time.begin(), by_time.end(),
            [](const Cosignature* a, const Cosignature* b) { return a->timestamp < b->timestamp; });
  absl::flat_hash_set<std::string> cosigners;
  bool satisfied = Satisfied(cosigners);
  for (const Cosignature* c : by_time) {
    if (satisfied) break;
    cosigners.insert(c->witness_name);
    if (Satisfied(cosigners)) {
      satisfied = true;
      witnessed.quorum_time = c->timestamp;
    }
  }
  if (!satisfied) {
    std::string who;
    for (const Cosignature& c : witnessed.cosignatures) who += (who.empty() ? "" : ", ") + c.witness_name;
    return absl::FailedPreconditionError(
        "checkpoint " + std::to_string(witnessed.checkpoint.size) + " of " +
        witnessed.checkpoint.origin + " is not witnessed by the policy's quorum (" +
        QuorumText() + "); cosigned by: " + (who.empty() ? "nobody" : who));
  }
  return witnessed;
}

}  // namespace ledger::witness
