#include "ledger/audit/verifier.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ledger/audit/bundle.h"
#include "ledger/audit/replay.h"
#include "ledger/crypto/sha256.h"
#include "ledger/event/envelope.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/merkle/tree.h"
#include "ledger/rules/commit_group.h"
#include "ledger/rules/gateway_touch.h"
#include "ledger/rules/rules.h"
#include "ledger/rules/version.h"

namespace ledger::audit {
namespace {

constexpr size_t kBatch = 1024;  // small enough that filling and draining the pipeline is quick

// A resume point's bytes (LogVerifier::SaveResumePoint): this line, then
// little-endian integers and length-prefixed strings, then the SHA-256 of
// everything before it.
constexpr std::string_view kResumeMagic = "DLEDGER-VERIFIER-RESUME1\n";

class SaveWriter {
 public:
  void U64(uint64_t v) {
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>(v >> (8 * i)));
  }
  void Bytes(std::string_view b) {
    U64(b.size());
    out_.append(b);
  }
  std::string& out() { return out_; }

 private:
  std::string out_;
};

class SaveReader {
 public:
  explicit SaveReader(std::string_view in) : in_(in) {}
  bool U64(uint64_t* v) {
    if (in_.size() < 8) return false;
    *v = 0;
    for (int i = 7; i >= 0; --i) *v = *v << 8 | static_cast<uint8_t>(in_[i]);
    in_.remove_prefix(8);
    return true;
  }
  bool Bytes(std::string* b) {
    uint64_t n = 0;
    if (!U64(&n) || n > in_.size()) return false;
    b->assign(in_.substr(0, n));
    in_.remove_prefix(n);
    return true;
  }
  bool Raw(size_t n, std::string* b) {
    if (in_.size() < n) return false;
    b->assign(in_.substr(0, n));
    in_.remove_prefix(n);
    return true;
  }
  // A count of items of at least `min_bytes` each (bounded by what is left).
  bool Count(uint64_t* n, uint64_t min_bytes) { return U64(n) && *n <= in_.size() / min_bytes; }
  bool done() const { return in_.empty(); }

 private:
  std::string_view in_;
};

// Watches gateways lock from the log itself, independently of the rules'
// own refusals: a second line of defence for check 4.
class ReversalMonitor {
 public:
  // Before `record` is applied (state is the state before it).
  std::optional<std::string> Before(const v1::EventBody& body, const rules::State& state) {
    const std::optional<rules::GatewayRef> touched = rules::TouchedGateway(body);
    if (!touched.has_value()) return std::nullopt;
    const std::pair<std::string, std::string> key{touched->proposal_id, touched->gateway_id};
    if (auto it = locked_.find(key); it != locked_.end()) {
      return absl::StrCat("an accepted ", EventKind(body), " by ", body.author(), " changes gateway ", key.second,
                          " of ", key.first, ", which was locked at position ", it->second);
    }
    return std::nullopt;
  }
  // After `record` (at `position`) was applied.
  std::optional<std::string> After(uint64_t position, const v1::EventBody& body, const rules::State& state) {
    if (body.has_gateway_passed()) {
      const auto& passed = body.gateway_passed();
      std::pair<std::string, std::string> key{passed.proposal_id(), passed.gateway_id()};
      if (locked_.contains(key)) {
        return absl::StrCat("gateway ", passed.gateway_id(), " of ", passed.proposal_id(), " locked twice (at ",
                            locked_.at(key), " and ", position, ") in one attempt");
      }
      const v1::ProposalState* proposal = state.FindProposal(passed.proposal_id());
      if (proposal != nullptr) {
        for (const v1::Gateway& g : proposal->gateways()) {
          if (g.id() == passed.gateway_id()) break;
          if (!locked_.contains({passed.proposal_id(), g.id()})) {
            return absl::StrCat("gateway ", passed.gateway_id(), " of ", passed.proposal_id(),
                                " locked before the earlier gateway ", g.id());
          }
        }
      }
      locked_[key] = position;
    }
    if (body.has_decision_adopted()) {
      // An adopted revisit reopens its target: a new attempt begins.
      const v1::ProposalState* adopted = state.FindProposal(body.decision_adopted().proposal_id());
      if (adopted != nullptr && adopted->submission().has_revisit()) {
        const auto& revisit = adopted->submission().revisit();
        const v1::ProposalState* target = state.FindProposal(revisit.proposal_id());
        bool after = false;
        for (int i = 0; target != nullptr && i < target->gateways_size(); ++i) {
          after = after || target->gateways(i).id() == revisit.gateway_id();
          if (after) locked_.erase({revisit.proposal_id(), target->gateways(i).id()});
        }
      }
    }
    return std::nullopt;
  }

  void Save(SaveWriter& w) const {
    std::vector<std::pair<std::pair<std::string, std::string>, uint64_t>> sorted(locked_.begin(), locked_.end());
    std::sort(sorted.begin(), sorted.end());
    w.U64(sorted.size());
    for (const auto& [key, position] : sorted) {
      w.Bytes(key.first);
      w.Bytes(key.second);
      w.U64(position);
    }
  }
  bool Load(SaveReader& r) {
    uint64_t n = 0;
    if (!r.Count(&n, 24)) return false;
    for (uint64_t i = 0; i < n; ++i) {
      std::pair<std::string, std::string> key;
      uint64_t position = 0;
      if (!r.Bytes(&key.first) || !r.Bytes(&key.second) || !r.U64(&position)) return false;
      locked_[std::move(key)] = position;
    }
    return true;
  }

 private:
  absl::flat_hash_map<std::pair<std::string, std::string>, uint64_t> locked_;
};

// Check 5's memory of the (author, idempotency key) pairs used so far. Exact:
// a fingerprint only finds the candidates; the pairs are compared whole,
// reading an earlier record back when the index keeps only its position.
class IdempotencyIndex {
 public:
  IdempotencyIndex(int bits, std::function<absl::StatusOr<std::string>(uint64_t)> read_record)
      : bits_(std::clamp(bits, 1, 64)), read_record_(std::move(read_record)) {}

  // The earlier position that used (author, key), or nullopt (and the pair
  // is now used at `position`). An error if an earlier record cannot be read
  // back, or reads back different from what was verified.
  absl::StatusOr<std::optional<uint64_t>> Use(const std::string& author, const std::string& key, uint64_t position) {
    if (!read_record_) {
      auto [it, added] = exact_.try_emplace(rules::IdempotencyId(author, key), position);
      if (added) return std::nullopt;
      return it->second;
    }
    const uint64_t fingerprint = Fingerprint(author, key);
    auto [it, added] = first_.try_emplace(fingerprint, position);
    if (added) return std::nullopt;
    std::vector<uint64_t> candidates = {it->second};
    auto more = others_.find(fingerprint);
    if (more != others_.end()) candidates.insert(candidates.end(), more->second.begin(), more->second.end());
    for (uint64_t earlier : candidates) {
      auto pair = PairAt(earlier, fingerprint);
      if (!pair.ok()) return pair.status();
      if (pair->first == author && pair->second == key) return earlier;
    }
    others_[fingerprint].push_back(position);  // a different pair sharing the fingerprint
    return std::nullopt;
  }

 void Save(SaveWriter& w) const {
    w.U64(read_record_ ? bits_ : 0);  // 0: the exact pairs
    if (!read_record_) {
      w.U64(exact_.size());
      for (const auto& [pair, position] : exact_) {
        w.Bytes(pair);
        w.U64(position);
      }
      return;
    }
    w.U64(first_.size());
    for (const auto& [fingerprint, position] : first_) {
      w.U64(fingerprint);
      w.U64(position);
    }
    w.U64(others_.size());
    for (const auto& [fingerprint, positions] : others_) {
      w.U64(fingerprint);
      w.U64(positions.size());
      for (uint64_t p : positions) w.U64(p);
    }
  }
  // Empty on success, else what does not fit.
  std::string Load(SaveReader& r) {
    uint64_t mode = 0;
    if (!r.U64(&mode)) return "truncated";
    const uint64_t expected = read_record_ ? bits_ : 0;
    if (mode != expected) {
      return absl::StrCat("it was saved with an idempotency index of ", mode, " fingerprint bits; this verifier keeps ",
                          expected, " (0: whole pairs)");
    }
    uint64_t n = 0;
    if (!read_record_) {
      if (!r.Count(&n, 16)) return "truncated";
      for (uint64_t i = 0; i < n; ++i) {
        std::string pair;
        uint64_t position = 0;
        if (!r.Bytes(&pair) || !r.U64(&position)) return "truncated";
        exact_[std::move(pair)] = position;
      }
      return "";
    }
    if (!r.Count(&n, 16)) return "truncated";
    first_.reserve(n);
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t fingerprint = 0, position = 0;
      if (!r.U64(&fingerprint) || !r.U64(&position)) return "truncated";
      first_[fingerprint] = position;
    }
    if (!r.Count(&n, 16)) return "truncated";
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t fingerprint = 0, count = 0;
      if (!r.U64(&fingerprint) || !r.Count(&count, 8)) return "truncated";
      std::vector<uint64_t>& positions = others_[fingerprint];
      for (uint64_t k = 0; k < count; ++k) {
        uint64_t p = 0;
        if (!r.U64(&p)) return "truncated";
        positions.push_back(p);
      }
    }
    return "";
  }

 private:
  uint64_t Fingerprint(const std::string& author, const std::string& key) const {
    const crypto::Digest digest = crypto::Sha256(rules::IdempotencyId(author, key));
    uint64_t fingerprint = 0;
    for (int i = 0; i < 8; ++i) fingerprint = fingerprint << 8 | digest[i];
    return bits_ == 64 ? fingerprint : fingerprint >> (64 - bits_);
  }

  absl::StatusOr<std::pair<std::string, std::string>> PairAt(uint64_t position, uint64_t fingerprint) const {
    auto bytes = read_record_(position);
    if (!bytes.ok()) {
      return absl::Status(bytes.status().code(), absl::StrCat("reading back the record at position ", position,
                                                              ": ", bytes.status().message()));
    }
    auto record = DecodeRecord(*bytes, position);
    auto envelope = record.ok() ? DecodeStoredEvent(*record) : absl::StatusOr<Envelope>(record.status());
    if (!envelope.ok() || Fingerprint(envelope->body.author(), envelope->body.idempotency_key()) != fingerprint) {
      return absl::DataLossError(
          absl::StrCat("the record at position ", position, " reads back different from the one verified"));
    }
    return std::make_pair(envelope->body.author(), envelope->body.idempotency_key());
  }

  int bits_;  // not const: a resumed index is moved in
  std::function<absl::StatusOr<std::string>(uint64_t)> read_record_;
  absl::flat_hash_map<uint64_t, uint64_t> first_;                 // fingerprint -> first position
  absl::flat_hash_map<uint64_t, std::vector<uint64_t>> others_;   // later distinct pairs sharing it
  absl::flat_hash_map<std::string, uint64_t> exact_;              // without read_record_: pair -> position
};

// Check 6's finding: `what`, signed at `client_ms`, was given the ledger
// time of `record`, earlier by more than the clock skew.
std::string BackdatedBy(const std::string& what, int64_t client_ms, const v1::Record& record) {
  return absl::StrCat(what, " was signed at client time ", client_ms, " ms, but the ledger time given it is ",
                      record.ledger_time_unix_ns() / 1'000'000, " ms: earlier by more than the clock skew of ",
                      rules::kClockSkewNanos / 1'000'000'000, " s (backdated)");
}

// Check 6 (rules version 2): the operator gave this record a ledger time more
// than the clock skew before the time its member signed (backdating). A
// recorded refusal is held to its attempt's signed time the same way. System
// events' own client times are the operator's, like the ledger time: nothing
// to compare.
std::optional<std::string> Backdated(const v1::Record& record, const v1::EventBody& body, bool system) {
  if (!system) {
    if (!rules::ClientTimeAhead(body.client_time_unix_ms(), record.ledger_time_unix_ns())) return std::nullopt;
    return BackdatedBy(absl::StrCat("the ", EventKind(body), " by ", body.author()), body.client_time_unix_ms(),
                       record);
  }
  if (!body.has_submission_refused()) return std::nullopt;
  v1::SignedEvent attempt;
  v1::EventBody attempted;
  if (!attempt.ParseFromString(body.submission_refused().signed_event()) ||
      !attempted.ParseFromString(attempt.body())) {
    return std::nullopt;  // replay names it
  }
  if (!rules::ClientTimeAhead(attempted.client_time_unix_ms(), record.ledger_time_unix_ns())) return std::nullopt;
  return BackdatedBy(absl::StrCat("the refused ", EventKind(attempted), " by ", attempted.author()),
                     attempted.client_time_unix_ms(), record);
}

struct Pending {
  bool is_checkpoint = false;
  uint64_t checkpoint_size = 0;
  std::string bytes;  // the record, or the checkpoint note
  std::optional<v1::Record> record;
  std::optional<Envelope> envelope;
  bool signature_verified = false;
  // The key the pool checked the signature under (null: not checked there).
  // It may come from a record not yet replayed: Apply holds the signature
  // good only if it is the key the state names when the record is replayed.
  std::shared_ptr<const crypto::PublicKey> verified_under;
  bool signature_bad = false;
  // A checkpoint's note, opened (signature checked) on the verify pool.
  std::optional<absl::StatusOr<merkle::Checkpoint>> opened;
};

int PoolThreads(int threads) {
  return threads > 0 ? threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

}  // namespace

struct LogVerifier::Impl {
  explicit Impl(LogVerifierOptions o)
      : options(std::move(o)),
        own_pool(options.pool != nullptr ? nullptr : std::make_unique<ThreadPool>(PoolThreads(options.threads))),
        pool(options.pool != nullptr ? options.pool : own_pool.get()),
        verifying_group(pool) {
    report.set_threads(pool->size());
  }

  void Fail(CheckId check, std::optional<uint64_t> position, std::string detail) {
    FailCheck(report, check, position, std::move(detail));
  }
  bool failed() const { return !report.verified(); }

  // A record to check the signature of (under its verified_under key), or a
  // checkpoint note to open under the operator key.
  using Jobs = std::vector<Pending*>;

  // The key `key_id` names: as the state knows it, else as a record in
  // flight proposes it (`proposed`, may be null); null if neither.
  // Remembered, so that a record costs no key decoding (nor the SHA-256 of
  // its key id).
  std::shared_ptr<const crypto::PublicKey> KeyFor(const std::string& key_id,
                                                  const absl::flat_hash_map<std::string, std::string_view>* proposed) {
    std::string_view raw;
    if (const v1::KeyState* key = replayer.state().FindKey(key_id)) {
      raw = key->public_key();
    } else if (proposed == nullptr) {
      return nullptr;
    } else if (auto it = proposed->find(key_id); it != proposed->end()) {
      raw = it->second;
    } else {
      return nullptr;
    }
    auto [it, added] = public_keys.try_emplace(key_id);
    if (added || it->second->raw() != raw) {
      auto key = crypto::PublicKey::FromRaw(raw);
      if (!key.ok()) {
        public_keys.erase(it);
        return nullptr;
      }
      it->second = std::make_shared<const crypto::PublicKey>(*std::move(key));
    }
    return it->second;
  }

  // The signatures of `pending` that can be checked now, and every
  // checkpoint's; the rest are checked in order by the replayer. A record
  // signed by a key the state does not know yet is checked under the key a
  // record in `pending` or `ready` (the batch replayed while `pending` is
  // verified) proposes with that id, if any, rather than in order on the
  // replaying thread: a log's first batches register most of its keys.
  Jobs SignatureJobs(std::vector<Pending>& pending, const std::vector<Pending>& ready) {
    if (public_keys.size() > kPublicKeysRemembered) public_keys.clear();  // in-flight records keep theirs
    Jobs jobs;
    std::vector<Pending*> unknown_key;
    for (Pending& p : pending) {
      if (p.is_checkpoint) {
        jobs.push_back(&p);
        continue;
      }
      if (!p.envelope.has_value()) continue;
      if (p.record->position() < options.report_from) {
        p.signature_verified = true;  // before the range: trusted, not verified
        continue;
      }
      p.verified_under = KeyFor(p.envelope->signed_event.key_id(), nullptr);
      if (p.verified_under != nullptr) {
        jobs.push_back(&p);
      } else {
        unknown_key.push_back(&p);
      }
    }
    if (unknown_key.empty()) return jobs;
    absl::flat_hash_map<std::string, std::string_view> proposed;  // key id -> raw key
    for (const std::vector<Pending>* batch : {&ready, static_cast<const std::vector<Pending>*>(&pending)}) {
      for (const Pending& p : *batch) {
        if (p.envelope.has_value()) ProposedKeys(p.envelope->body, proposed);
      }
    }
    for (Pending* p : unknown_key) {
      p->verified_under = KeyFor(p->envelope->signed_event.key_id(), &proposed);
      if (p->verified_under != nullptr) jobs.push_back(p);
    }
    return jobs;
  }

  // The keys `body` would register, by key id (whether the rules accept
  // them is decided when it is replayed).
  static void ProposedKeys(const v1::EventBody& body, absl::flat_hash_map<std::string, std::string_view>& out) {
    auto add = [&](const std::string& raw) {
      if (raw.size() == crypto::kPublicKeySize) out.try_emplace(crypto::KeyIdOf(raw), raw);
    };
    switch (body.payload_case()) {
      case v1::EventBody::kGenesis:
        add(body.genesis().operator_public_key());
        for (const v1::Registrar& r : body.genesis().registrars()) {
          for (const std::string& raw : r.public_keys()) add(raw);
        }
        break;
      case v1::EventBody::kOrganisationRegistered:
        for (const std::string& raw : body.organisation_registered().public_keys()) add(raw);
        break;
      case v1::EventBody::kKeyAdded:
        add(body.key_added().public_key());
        break;
      default:
        break;
    }
  }

  // Checks `jobs` on the pool, one task per pool thread, each taking the
  // next chunk of jobs until none is left (so a thread the scheduler holds
  // back leaves its share to the others), and the replaying thread joins in
  // once it has replayed (JoinVerifying). The tasks outlive this call: until
  // `verifying_group` is waited for, `jobs`, the Pending elements it points
  // at (the vector holding them may be moved, not cleared) and `options` must
  // stay alive; nothing else touches those Pending elements meanwhile.
  void StartTasks(Jobs& jobs) {
    next_job.store(0, std::memory_order_relaxed);
    const size_t chunks = (jobs.size() + kJobsPerChunk - 1) / kJobsPerChunk;
    const size_t n = std::min(static_cast<size_t>(pool->size()), chunks);
    for (size_t t = 0; t < n; ++t) {
      verifying_group.Run([this, &jobs] {
        const auto start = std::chrono::steady_clock::now();
        TakeJobs(jobs);
        const auto took = std::chrono::steady_clock::now() - start;
        pool_nanos.fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(took).count(),
                             std::memory_order_relaxed);
      });
    }
  }
  static constexpr size_t kJobsPerChunk = 16;
  void TakeJobs(Jobs& jobs) {
    while (true) {
      const size_t begin = next_job.fetch_add(kJobsPerChunk, std::memory_order_relaxed);
      if (begin >= jobs.size()) return;
      const size_t end = std::min(begin + kJobsPerChunk, jobs.size());
      for (size_t i = begin; i < end; ++i) {
        Pending& p = *jobs[i];
        if (p.is_checkpoint) {
          p.opened = merkle::OpenCheckpoint(p.bytes, options.origin, options.operator_key);
          continue;
        }
        const bool good = crypto::VerifyEvent(*p.verified_under, p.envelope->signed_event.body(),
                                              p.envelope->signed_event.signature());
        p.signature_verified = good;
        p.signature_bad = !good;
        if (good) rules::CheckRegisteredKeysAhead(p.envelope->body);  // off the replay thread
      }
    }
  }

  // Applies the batch in order; false once a check has failed.
  bool Apply(std::vector<Pending>& pending) {
    for (Pending& p : pending) {
      if (p.is_checkpoint) {
        const uint64_t size = p.checkpoint_size;
        auto opened = p.opened.has_value() ? *std::move(p.opened)
                                           : merkle::OpenCheckpoint(p.bytes, options.origin, options.operator_key);
        // A checkpoint's position is its last record's (or where one is missing).
        const uint64_t at = std::min(size == 0 ? 0 : size - 1, records);
        if (!opened.ok()) {
          Fail(CheckId::kIntegrity, at, absl::StrCat("checkpoint of size ", size, ": ", opened.status().message()));
          return false;
        }
        if (opened->size != size || size != records) {
          Fail(CheckId::kIntegrity, at, absl::StrCat("checkpoint of size ", opened->size, " stands after record ",
                                              records, "; expected one of size ", records));
          return false;
        }
        if (size <= last_checkpoint_size) {
          Fail(CheckId::kIntegrity, at, "checkpoints are not in increasing size order");
          return false;
        }
        if (opened->root != frontier.Root()) {
          Fail(CheckId::kIntegrity, size - 1,
               absl::StrCat("the signed root of size ", size, " is ",
                            crypto::ToHex(merkle::AsBytes(opened->root)), "; the records give ",
                            crypto::ToHex(merkle::AsBytes(frontier.Root()))));
          return false;
        }
        last_checkpoint_size = size;
        report.set_checkpoints(report.checkpoints() + 1);
        if (options.witness_policy != nullptr && !CheckWitnessed(size, p.bytes)) return false;
        continue;
      }
      const uint64_t position = records;
      const bool in_range = position >= options.report_from;
      if (!p.record.has_value()) {
        Fail(CheckId::kDensity, position, absl::StrCat("the record at position ", position, " does not decode or is out of place"));
        return false;
      }
      // Checked under a key the state does not name (now) as that key id's:
      // not checked at all (the replayer checks it in order).
      const bool under_named_key = p.verified_under == nullptr || UnderNamedKey(p);
      if (p.signature_bad && under_named_key) {
        Fail(CheckId::kSignatures, position, absl::StrCat("position ", position, ": the signature does not verify under key ",
                                                 p.envelope->signed_event.key_id()));
        return false;
      }
      const bool signature_verified = p.signature_verified && under_named_key;
      if (!signature_verified) ++stats.signatures_in_order;
      const v1::EventBody& body = p.envelope->body;
      auto earlier = idempotency.Use(body.author(), body.idempotency_key(), position);
      if (!earlier.ok()) {
        Fail(absl::IsDataLoss(earlier.status()) ? CheckId::kIntegrity : CheckId::kDensity, position,
             absl::StrCat("idempotency key \"", body.idempotency_key(), "\" of ", body.author(),
                          " could not be compared with an earlier use: ", earlier.status().message()));
        return false;
      }
      if (earlier->has_value() && in_range) {
        Fail(CheckId::kDensity, position, absl::StrCat("idempotency key \"", body.idempotency_key(), "\" of ", body.author(),
                                              " is used a second time (first at position ", **earlier, ")"));
        return false;
      }
      if (in_range && rules::RulesAtLeast(replayer.state(), rules::kRulesV2)) {
        const bool system = replayer.state().has_genesis() && IsSystemEvent(body);
        if (auto backdated = Backdated(*p.record, body, system)) {
          Fail(CheckId::kTime, position, *backdated);
          return false;
        }
      }
      if (auto violation = monitor.Before(body, replayer.state()); violation.has_value() && in_range) {
        Fail(CheckId::kNoReversal, position, *violation);
        return false;
      }
      absl::Status replayed = replayer.Next(*p.record, *p.envelope, signature_verified);
      if (!replayed.ok()) {
        Fail(absl::IsUnauthenticated(replayed) ? CheckId::kSignatures : CheckId::kReplay, position, std::string(replayed.message()));
        return false;
      }
      if (auto violation = monitor.After(position, body, replayer.state()); violation.has_value() && in_range) {
        Fail(CheckId::kNoReversal, position, *violation);
        return false;
      }
      if (position == 0 && replayer.state().info().operator_public_key() != options.operator_key.raw()) {
        Fail(CheckId::kSignatures, 0, "Genesis names a different operator key from the one trusted");
        return false;
      }
      if (in_range) Count(position, body, *p.record);
      if (options.witness_policy != nullptr) NoteLedgerTime(position, p.record->ledger_time_unix_ns());
      frontier.Append(merkle::HashLeaf(p.bytes));
      records++;
      if (options.trusted.has_value() && records == options.trusted->size) {
        trusted_seen = true;
        if (frontier.Root() != options.trusted->root) {
          Fail(CheckId::kIntegrity, position, absl::StrCat("the trusted checkpoint of size ", options.trusted->size,
                                                  " has a different root: the history was rewritten"));
          return false;
        }
      }
    }
    return true;
  }

  // Whether the key `p` was checked under is the one the state names by its
  // key id now, before `p` is replayed.
  bool UnderNamedKey(const Pending& p) const {
    const v1::KeyState* key = replayer.state().FindKey(p.envelope->signed_event.key_id());
    return key != nullptr && key->public_key() == p.verified_under->raw();
  }

  // Check 6's later half: the ledger times of the records not yet covered by
  // a witnessed checkpoint, as the first position of each second (ledger
  // time never decreases, so that is enough to name the first late record).
  void NoteLedgerTime(uint64_t position, int64_t ledger_time_ns) {
    const int64_t second = ledger_time_ns / 1'000'000'000;
    if (unwitnessed_seconds.empty() || unwitnessed_seconds.back().first != second) {
      unwitnessed_seconds.emplace_back(second, position);
    }
  }

  // A checkpoint that passed integrity, against the witness policy: a quorum
  // makes it witnessed and bounds the time of every record it newly covers;
  // a cosignature by a policy witness that does not verify is a forgery.
  bool CheckWitnessed(uint64_t size, const std::string& note) {
    auto witnessed = options.witness_policy->Check(note);
    if (!witnessed.ok()) {
      if (!absl::IsFailedPrecondition(witnessed.status())) {
        Fail(CheckId::kWitnessed, size - 1,
             absl::StrCat("checkpoint of size ", size, ": ", witnessed.status().message()));
        return false;
      }
      last_witness_refusal = std::string(witnessed.status().message());
      return true;
    }
    const int64_t bound = static_cast<int64_t>(witnessed->quorum_time) + rules::kClockSkewNanos / 1'000'000'000;
    if (options.witness_policy->requires_cosignatures()) {
      for (const auto& [second, position] : unwitnessed_seconds) {
        if (second > bound && position >= options.report_from) {
          Fail(CheckId::kTime, position,
               absl::StrCat("the record at position ", position, " has ledger time ", second,
                            " (POSIX s), later than ", witnessed->quorum_time, ", when the witnesses' quorum had ",
                            "cosigned checkpoint ", size, " which includes it, by more than the clock skew of ",
                            rules::kClockSkewNanos / 1'000'000'000, " s (post-dated)"));
          return false;
        }
      }
    }
    unwitnessed_seconds.clear();
    last_witness_refusal.clear();
    last_witnessed_size = size;
    report.set_witnessed_checkpoints(report.witnessed_checkpoints() + 1);
    report.set_witnessed_size(size);
    return true;
  }

  void Count(uint64_t position, const v1::EventBody& body, const v1::Record& record) {
    if (body.has_gateway_passed()) report.set_gateways_locked(report.gateways_locked() + 1);
    if (body.has_decision_called()) report.set_calls(report.calls() + 1);
    if (!body.has_submission_refused()) return;
    report.set_refused_attempts(report.refused_attempts() + 1);
    const v1::SubmissionRefused& refused = body.submission_refused();
    if (refused.reason() != v1::GATEWAY_LOCKED) return;
    v1::SignedEvent attempt;
    v1::EventBody attempted;
    if (attempt.ParseFromString(refused.signed_event()) && attempted.ParseFromString(attempt.body())) {
      v1::VerifyRefusedAttempt* a = report.add_reversal_attempts();
      a->set_position(position);
      a->set_ledger_time_unix_ns(record.ledger_time_unix_ns());
      a->set_org_id(attempted.author());
      a->set_key_id(attempt.key_id());
      if (auto touched = rules::TouchedGateway(attempted)) {
        a->set_proposal_id(std::string(touched->proposal_id));
        a->set_gateway_id(std::string(touched->gateway_id));
      }
      a->set_reason(refused.reason());
    }
  }

  // A three-stage pipeline: while the pool checks the signatures of one
  // batch, this thread replays the batch before it and then reads and
  // decodes the next, so the cores are never left waiting for each other.
  bool Rotate() {
    JoinVerifying();
    std::vector<Pending> ready = std::move(verifying);
    verifying = std::move(batch);
    batch.clear();
    StartVerifying(ready);  // keys as known before `ready` is replayed
    const bool good = TimedApply(ready);
    pending_records -= std::count_if(ready.begin(), ready.end(), [](const Pending& p) { return !p.is_checkpoint; });
    // The next batch is read into this one's storage: freeing the slots of
    // a thousand records had the allocator consolidate its heap every batch.
    ready.clear();
    batch = std::move(ready);
    if (good && options.on_batch) options.on_batch();
    return good;
  }

  // Drains the pipeline: replays what is verified while the last batch is
  // verified, then that.
  bool Flush() {
    JoinVerifying();
    if (failed()) return false;
    std::vector<Pending> ready = std::move(verifying);
    verifying = std::move(batch);
    batch.clear();
    StartVerifying(ready);
    bool good = TimedApply(ready);
    JoinVerifying();
    good = good && TimedApply(verifying);
    verifying.clear();
    pending_records = 0;
    if (good && options.on_batch) options.on_batch();
    return good;
  }

  // Starts checking the signatures of `verifying` on the pool (`ready` is
  // the batch replayed meanwhile).
  void StartVerifying(const std::vector<Pending>& ready) {
    verifying_jobs = SignatureJobs(verifying, ready);
    StartTasks(verifying_jobs);
  }
  void JoinVerifying() {
    const auto start = std::chrono::steady_clock::now();
    TakeJobs(verifying_jobs);  // rather than wait idle
    const auto helped = std::chrono::steady_clock::now();
    verifying_group.Wait();
    verifying_jobs.clear();
    stats.helping_seconds += std::chrono::duration<double>(helped - start).count();
    stats.waiting_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - helped).count();
  }
  bool TimedApply(std::vector<Pending>& pending) {
    const auto start = std::chrono::steady_clock::now();
    const bool good = Apply(pending);
    stats.replay_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return good;
  }
  ~Impl() { JoinVerifying(); }

  bool Push(Pending p) {
    if (failed()) return false;
    batch.push_back(std::move(p));
    if (batch.size() >= kBatch) return Rotate();
    return true;
  }

  LogVerifierOptions options;
  std::unique_ptr<ThreadPool> own_pool;  // started once, when options.pool is not given
  ThreadPool* const pool;                // options.pool or own_pool
  v1::VerifyReport report = NewReport();
  uint64_t records = 0;  // applied
  Replayer replayer;
  ReversalMonitor monitor;
  merkle::Frontier frontier;
  IdempotencyIndex idempotency{options.fingerprint_bits, options.read_record};
  uint64_t last_checkpoint_size = 0;
  bool trusted_seen = false;
  uint64_t last_witnessed_size = 0;
  std::string last_witness_refusal;  // why the last checkpoint is not witnessed
  std::vector<std::pair<int64_t, uint64_t>> unwitnessed_seconds;  // (ledger second, first position)
  std::vector<Pending> batch;      // being read and decoded
  std::vector<Pending> verifying;  // signatures being checked on the pool
  Jobs verifying_jobs;
  // Keys as decoded for signature checks, by key id (see KeyFor).
  static constexpr size_t kPublicKeysRemembered = 1 << 16;
  absl::flat_hash_map<std::string, std::shared_ptr<const crypto::PublicKey>> public_keys;
  std::atomic<size_t> next_job{0};  // the next of verifying_jobs to take
  TaskGroup verifying_group;  // the tasks checking `verifying`
  uint64_t pending_records = 0;  // records in `verifying` and `batch`
  PipelineStats stats;  // but for the pool's time:
  std::atomic<int64_t> pool_nanos{0};
};

LogVerifier::LogVerifier(LogVerifierOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
LogVerifier::~LogVerifier() = default;

bool LogVerifier::AddRecord(std::string bytes) {
  if (impl_->failed()) return false;
  Pending p;
  const uint64_t expected = impl_->records + impl_->pending_records;
  auto record = DecodeRecord(bytes, expected);
  if (record.ok()) {
    auto envelope = DecodeStoredEvent(*record);
    if (envelope.ok()) {
      p.record = *std::move(record);
      p.envelope = *std::move(envelope);
    }
  }
  p.bytes = std::move(bytes);
  impl_->pending_records++;
  return impl_->Push(std::move(p));
}

bool LogVerifier::AddCheckpoint(uint64_t tree_size, std::string note) {
  Pending p;
  p.is_checkpoint = true;
  p.checkpoint_size = tree_size;
  p.bytes = std::move(note);
  return impl_->Push(std::move(p));
}

bool LogVerifier::Flush() { return impl_->Flush(); }
void LogVerifier::Fail(CheckId check, std::optional<uint64_t> position, std::string detail) {
  impl_->Fail(check, position, std::move(detail));
}
bool LogVerifier::failed() const { return impl_->failed(); }
uint64_t LogVerifier::records() const { return impl_->records; }
uint64_t LogVerifier::last_checkpoint_size() const { return impl_->last_checkpoint_size; }
bool LogVerifier::trusted_seen() const { return impl_->trusted_seen; }
absl::Status LogVerifier::FinishReplay() const { return impl_->replayer.Finish(); }

bool LogVerifier::CheckWitnessedAtEnd() {
  Impl& v = *impl_;
  if (v.failed()) return false;
  const witness::Policy* policy = v.options.witness_policy;
  if (policy == nullptr) {
    SkipCheck(v.report, CheckId::kWitnessed,
              "no witness policy given (--witness-policy): split views were not ruled out, only this history checked");
    return true;
  }
  v.report.set_witness_quorum(policy->QuorumText());
  if (!policy->requires_cosignatures()) {
    SkipCheck(v.report, CheckId::kWitnessed, "the witness policy's quorum is none: split views were not ruled out");
    return true;
  }
  if (v.last_witnessed_size == v.last_checkpoint_size && v.last_checkpoint_size > 0) return true;
  v.Fail(CheckId::kWitnessed, v.last_checkpoint_size == 0 ? 0 : v.last_checkpoint_size - 1,
         absl::StrCat("the newest checkpoint (size ", v.last_checkpoint_size, ") is not witnessed: ",
                      v.last_witness_refusal.empty() ? "no cosignatures" : v.last_witness_refusal,
                      v.last_witnessed_size == 0 ? "; no checkpoint in it is"
                                                 : absl::StrCat("; the newest witnessed one has size ",
                                                                v.last_witnessed_size)));
  return false;
}
const rules::State& LogVerifier::state() const { return impl_->replayer.state(); }

absl::StatusOr<std::string> LogVerifier::SaveResumePoint() const {
  const Impl& v = *impl_;
  if (v.failed()) return absl::FailedPreconditionError("a failed verification has no resume point");
  if (v.pending_records != 0 || !v.batch.empty() || !v.verifying.empty()) {
    return absl::FailedPreconditionError("records are still buffered: Flush() first");
  }
  if (v.replayer.owes()) {
    return absl::FailedPreconditionError("the rules still owe system events: not a point to resume from");
  }
  SaveWriter w;
  w.out().append(kResumeMagic);
  w.U64(v.records);
  w.U64(static_cast<uint64_t>(v.replayer.last_time()));
  w.U64(v.last_checkpoint_size);
  w.U64(v.frontier.edge().size());
  for (const merkle::Node& node : v.frontier.edge()) {
    w.U64(static_cast<uint64_t>(node.level));
    w.U64(node.index);
    w.out().append(merkle::AsBytes(node.hash));
  }
  const absl::btree_map<std::string, std::string> entries = v.replayer.state().Snapshot();
  w.U64(entries.size());
  for (const auto& [key, value] : entries) {
    w.Bytes(key);
    w.Bytes(value);
  }
  v.monitor.Save(w);
  v.idempotency.Save(w);
  const crypto::Digest digest = crypto::Sha256(w.out());
  w.out().append(crypto::AsBytes(digest));
  return std::move(w.out());
}

absl::Status LogVerifier::Resume(std::string_view saved) {
  Impl& v = *impl_;
  if (v.records != 0 || v.pending_records != 0 || v.replayer.records() != 0) {
    return absl::FailedPreconditionError("a verifier can only resume before its first record");
  }
  auto corrupt = [](absl::string_view what) {
    return absl::DataLossError(absl::StrCat("the saved verifier state is corrupt: ", what));
  };
  if (saved.size() < kResumeMagic.size() + 32 || saved.substr(0, kResumeMagic.size()) != kResumeMagic) {
    return corrupt("it does not start with the format line \"DLEDGER-VERIFIER-RESUME1\"");
  }
  const std::string_view body = saved.substr(0, saved.size() - 32);
  const crypto::Digest digest = crypto::Sha256(body);
  if (saved.substr(body.size()) != crypto::AsBytes(digest)) {
    return corrupt("its SHA-256 does not match its contents (changed or truncated)");
  }
  SaveReader r(body.substr(kResumeMagic.size()));
  uint64_t records = 0, last_time = 0, last_checkpoint = 0, edges = 0;
  if (!r.U64(&records) || !r.U64(&last_time) || !r.U64(&last_checkpoint) || !r.Count(&edges, 48)) {
    return corrupt("truncated header");
  }
  absl::flat_hash_map<std::pair<int, uint64_t>, merkle::Hash> nodes;
  for (uint64_t i = 0; i < edges; ++i) {
    uint64_t level = 0, index = 0;
    std::string raw;
    if (!r.U64(&level) || !r.U64(&index) || level > 63 || !r.Raw(32, &raw)) return corrupt("a Merkle frontier node");
    auto hash = merkle::HashFromBytes(raw);
    if (!hash.ok()) return corrupt("a Merkle frontier node");
    nodes[{static_cast<int>(level), index}] = *hash;
  }
  class SavedNodes : public merkle::NodeReader {
   public:
    explicit SavedNodes(const absl::flat_hash_map<std::pair<int, uint64_t>, merkle::Hash>& nodes) : nodes_(nodes) {}
    absl::StatusOr<merkle::Hash> ReadNode(int level, uint64_t index) const override {
      auto it = nodes_.find({level, index});
      if (it == nodes_.end()) return absl::DataLossError("the Merkle frontier does not match the position");
      return it->second;
    }

   private:
    const absl::flat_hash_map<std::pair<int, uint64_t>, merkle::Hash>& nodes_;
  };
  auto frontier = merkle::Frontier::Load(SavedNodes(nodes), records);
  if (!frontier.ok() || frontier->edge().size() != edges) return corrupt("the Merkle frontier does not match the position");
  uint64_t entries_count = 0;
  if (!r.Count(&entries_count, 16)) return corrupt("truncated rules state");
  absl::btree_map<std::string, std::string> entries;
  for (uint64_t i = 0; i < entries_count; ++i) {
    std::string key, value;
    if (!r.Bytes(&key) || !r.Bytes(&value)) return corrupt("truncated rules state");
    entries.emplace(std::move(key), std::move(value));
  }
  ReversalMonitor monitor;
  if (!monitor.Load(r)) return corrupt("truncated locked gateways");
  IdempotencyIndex idempotency{v.options.fingerprint_bits, v.options.read_record};
  if (std::string why = idempotency.Load(r); !why.empty()) {
    if (why == "truncated") return corrupt("truncated idempotency index");
    return absl::FailedPreconditionError(absl::StrCat("the saved verifier state does not fit: ", why));
  }
  if (!r.done()) return corrupt("bytes after the idempotency index");
  if (last_checkpoint > records) return corrupt("its last checkpoint is beyond its position");
  if (v.options.trusted.has_value() && v.options.trusted->size == records &&
      frontier->Root() != v.options.trusted->root) {
    return absl::FailedPreconditionError(
        absl::StrCat("the saved verifier state (", records, " records, root ", crypto::ToHex(merkle::AsBytes(frontier->Root())),
                     ") does not give the trusted checkpoint's root ", crypto::ToHex(merkle::AsBytes(v.options.trusted->root))));
  }
  if (v.options.trusted.has_value() && v.options.trusted->size < records) {
    return absl::FailedPreconditionError(absl::StrCat("the saved verifier state is at ", records,
                                                      " records, past the trusted checkpoint of size ",
                                                      v.options.trusted->size));
  }
  // Last, as it cannot be undone: the rules state.
  if (auto s = v.replayer.Resume(entries, records, static_cast<int64_t>(last_time)); !s.ok()) {
    v.Fail(CheckId::kReplay, std::nullopt, absl::StrCat("resuming: ", s.message()));
    return corrupt(s.message());
  }
  if (records > 0 && v.replayer.state().info().operator_public_key() != v.options.operator_key.raw()) {
    v.Fail(CheckId::kSignatures, std::nullopt, "resuming: the saved Genesis names a different operator key");
    return absl::FailedPreconditionError("the saved verifier state's Genesis names a different operator key");
  }
  v.monitor = std::move(monitor);
  v.idempotency = std::move(idempotency);
  v.frontier = *std::move(frontier);
  v.records = records;
  v.last_checkpoint_size = last_checkpoint;
  v.trusted_seen = v.options.trusted.has_value() && v.options.trusted->size == records;
  return absl::OkStatus();
}

PipelineStats LogVerifier::Stats() const {
  PipelineStats stats = impl_->stats;
  stats.pool_seconds = impl_->pool_nanos.load(std::memory_order_relaxed) / 1e9;
  return stats;
}

v1::VerifyReport LogVerifier::Report() const {
  v1::VerifyReport report = impl_->report;
  const rules::State& state = impl_->replayer.state();
  report.set_organisations(state.organisation_count());
  report.set_collectives(state.collectives().size());
  report.set_proposals(state.proposals().size());
  uint64_t vetoes = 0;
  for (const auto& [id, proposal] : state.proposals()) vetoes += proposal.vetoes_size();
  report.set_vetoes(vetoes);
  uint64_t by_notice = 0;
  for (const auto& [id, change] : state.identity_changes()) {
    if (change.status() == v1::IDENTITY_CHANGE_BY_NOTICE) ++by_notice;
  }
  report.set_identity_changes_by_notice(by_notice);
  report.set_records_signed_by_notice_keys(state.notice_key_records().size());
  const uint64_t records = impl_->records;
  const uint64_t from = impl_->options.report_from;
  report.set_from_position(from);
  report.set_to_position(records);
  report.set_records(records - std::min(records, from));
  report.set_root_hash(std::string(merkle::AsBytes(impl_->frontier.Root())));
  SetVerified(report);
  return report;
}

v1::VerifyReport VerifyBundle(const std::string& path, const VerifyOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  v1::VerifyReport report = NewReport();  // until the verifier exists
  report.set_threads(PoolThreads(options.threads));
  auto finish = [&](v1::VerifyReport r) {
    r.set_seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    SetVerified(r);
    return r;
  };

  auto reader = BundleReader::Open(path);
  if (!reader.ok()) {
    report.set_error(std::string(reader.status().message()));
    for (v1::VerifyCheck& c : *report.mutable_checks()) c.set_completed(false);
    return finish(report);
  }
  auto header_frame = (*reader)->Next();
  if (!header_frame.ok() || !header_frame->has_value() || !(*header_frame)->has_header()) {
    FailCheck(report, CheckId::kIntegrity, std::nullopt,
              header_frame.ok() ? "the bundle does not start with a header"
                                : std::string(header_frame.status().message()));
    return finish(report);
  }
  const v1::BundleHeader header = (*header_frame)->header();
  report.set_ledger_id(header.ledger_id());
  if (header.format_version() != kBundleFormatVersion) {
    FailCheck(report, CheckId::kIntegrity, std::nullopt, absl::StrCat("bundle format ", header.format_version(), " is not supported"));
    return finish(report);
  }
  std::optional<crypto::PublicKey> operator_key = options.operator_key;
  if (!operator_key.has_value()) {
    auto from_bundle = crypto::PublicKey::FromRaw(header.operator_public_key());
    if (!from_bundle.ok()) {
      FailCheck(report, CheckId::kIntegrity, std::nullopt, "the bundle's operator key is not an Ed25519 key");
      return finish(report);
    }
    operator_key = *from_bundle;
  }
  std::optional<merkle::Checkpoint> trusted;
  if (options.trusted_checkpoint.has_value()) {
    auto opened = merkle::OpenCheckpoint(*options.trusted_checkpoint, header.origin(), *operator_key);
    if (!opened.ok()) {
      FailCheck(report, CheckId::kIntegrity, std::nullopt,
                absl::StrCat("the trusted checkpoint does not verify: ", opened.status().message()));
      return finish(report);
    }
    trusted = *opened;
  }

  // Earlier records are read back (to compare idempotency pairs whose
  // fingerprints collide) through a sparse index: the offset of every
  // kRecordsPerOffset-th record, and a second reader of the file.
  constexpr uint64_t kRecordsPerOffset = 256;
  std::vector<uint64_t> record_offsets;
  uint64_t records_read = 0;
  std::unique_ptr<BundleReader> rereader;
  auto read_record = [&](uint64_t position) -> absl::StatusOr<std::string> {
    if (position >= records_read || position / kRecordsPerOffset >= record_offsets.size()) {
      return absl::InternalError(absl::StrCat("record ", position, " has not been read"));
    }
    if (rereader == nullptr) {
      auto opened = BundleReader::Open(path);
      if (!opened.ok()) return opened.status();
      rereader = *std::move(opened);
    }
    uint64_t offset = record_offsets[position / kRecordsPerOffset];
    for (uint64_t at = position / kRecordsPerOffset * kRecordsPerOffset;;) {
      auto frame = rereader->FrameAt(offset, &offset);
      if (!frame.ok()) return frame.status();
      if (!frame->has_record()) continue;  // a checkpoint between records
      if (at++ == position) return std::move(*frame->mutable_record());
    }
  };

  uint64_t batches = 0;
  LogVerifier verifier({.operator_key = *operator_key,
                        .origin = header.origin(),
                        .trusted = trusted,
                        .witness_policy = options.witness_policy.has_value() ? &*options.witness_policy : nullptr,
                        .threads = options.threads,
                        .on_batch =
                            [&] {
                              if (options.progress && ++batches % 4 == 0) {
                                options.progress((*reader)->offset(), (*reader)->file_size());
                              }
                            },
                        .read_record = read_record,
                        .fingerprint_bits = options.fingerprint_bits});
  bool footer_seen = false;
  while (true) {
    const uint64_t frame_offset = (*reader)->offset();
    auto frame = (*reader)->Next();
    if (!frame.ok()) {
      // Records already read are checked first: a flipped byte inside a
      // record is named at its position, not as the bundle digest it breaks.
      if (verifier.Flush()) {
        verifier.Fail(CheckId::kIntegrity, verifier.records(), std::string(frame.status().message()));
      }
      break;
    }
    if (!frame->has_value()) break;
    v1::BundleFrame& f = **frame;
    if (f.has_footer()) {
      footer_seen = true;
      continue;
    }
    if (f.has_header()) {
      verifier.Fail(CheckId::kIntegrity, verifier.records(), "a second header inside the bundle");
      break;
    }
    if (f.has_record()) {
      if (records_read % kRecordsPerOffset == 0) record_offsets.push_back(frame_offset);
      ++records_read;
    }
    const bool more = f.has_checkpoint() ? verifier.AddCheckpoint(f.checkpoint().tree_size(),
                                                                  std::move(*f.mutable_checkpoint()->mutable_note()))
                                         : verifier.AddRecord(std::move(*f.mutable_record()));
    if (!more) break;
  }
  if (verifier.Flush()) {
    if (!footer_seen) {
      verifier.Fail(CheckId::kIntegrity, verifier.records(), "the bundle has no footer");
    } else if (verifier.records() != header.tree_size()) {
      verifier.Fail(CheckId::kDensity, verifier.records(),
                    absl::StrCat("the header promises ", header.tree_size(), " records; the bundle holds ",
                                 verifier.records()));
    } else if (verifier.last_checkpoint_size() != verifier.records()) {
      verifier.Fail(CheckId::kIntegrity, verifier.records(), "no signed checkpoint covers the last records");
    } else if (trusted.has_value() && !verifier.trusted_seen()) {
      verifier.Fail(CheckId::kIntegrity, std::nullopt,
                    absl::StrCat("the trusted checkpoint of size ", trusted->size, " is larger than the bundle (",
                                 verifier.records(), " records)"));
    } else if (auto s = verifier.FinishReplay(); !s.ok()) {
      verifier.Fail(CheckId::kReplay, verifier.records(), std::string(s.message()));
    } else {
      verifier.CheckWitnessedAtEnd();
    }
  }
  if (options.progress) options.progress((*reader)->offset(), (*reader)->file_size());
  v1::VerifyReport out = verifier.Report();
  if (options.stats != nullptr) *options.stats = verifier.Stats();
  out.set_ledger_id(report.ledger_id());
  out.set_operator_key_id(operator_key->key_id());
  out.set_operator_key_given(options.operator_key.has_value());
  if (trusted.has_value()) {
    out.set_trusted_checkpoint_size(trusted->size);
    out.set_trusted_checkpoint_matched(verifier.trusted_seen() && out.verified());
  }
  return finish(std::move(out));
}

}  // namespace ledger::audit
