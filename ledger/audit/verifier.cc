#include "ledger/audit/verifier.h"

#include <chrono>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ledger/audit/bundle.h"
#include "ledger/audit/replay.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/merkle/tree.h"
#include "ledger/event/envelope.h"

namespace ledger::audit {
namespace {

enum CheckIndex { kSignatures, kIntegrity, kReplay, kNoReversal, kDensity };
constexpr size_t kBatch = 1024;  // small enough that filling and draining the pipeline is quick

std::vector<Check> FreshChecks() {
  const std::pair<const char*, const char*> checks[] = {
      {"signatures", "every record verifies under a key active for its author at that position"},
      {"integrity", "the Merkle root of the records equals every signed checkpoint; each extends the one before"},
      {"replay", "the rules accept every member event and imply exactly the recorded system events"},
      {"no reversal", "gateways lock in order, once per attempt; nothing accepted changes a locked gateway"},
      {"density", "positions run 0..n-1 without gaps; each idempotency key is used once per author"},
  };
  std::vector<Check> out;
  for (const auto& [name, meaning] : checks) {
    Check check;
    check.name = name;
    check.meaning = meaning;
    out.push_back(std::move(check));
  }
  return out;
}

// Watches gateways lock from the log itself, independently of the rules'
// own refusals: a second line of defence for check 4.
class ReversalMonitor {
 public:
  // Before `record` is applied (state is the state before it).
  std::optional<std::string> Before(const v1::EventBody& body, const rules::State& state) {
    std::string proposal, gateway;
    if (body.has_vote_cast()) {
      proposal = body.vote_cast().proposal_id();
      gateway = body.vote_cast().gateway_id();
    } else if (body.has_decision_called()) {
      proposal = body.decision_called().proposal_id();
      gateway = body.decision_called().gateway_id();
    } else {
      return std::nullopt;
    }
    if (locked_.contains({proposal, gateway})) {
      return absl::StrCat("an accepted ", EventKind(body), " by ", body.author(), " changes gateway ", gateway,
                          " of ", proposal, ", which was locked at position ", locked_.at({proposal, gateway}));
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

 private:
  absl::flat_hash_map<std::pair<std::string, std::string>, uint64_t> locked_;
};

struct Pending {
  bool is_checkpoint = false;
  uint64_t checkpoint_size = 0;
  std::string bytes;  // the record, or the checkpoint note
  std::optional<v1::Record> record;
  std::optional<Envelope> envelope;
  bool signature_verified = false;
  bool signature_bad = false;
  // A checkpoint's note, opened (signature checked) on the verify pool.
  std::optional<absl::StatusOr<merkle::Checkpoint>> opened;
};

void FailCheck(VerifyReport& report, CheckIndex index, std::optional<uint64_t> position, std::string detail) {
  Check& check = report.checks[index];
  check.passed = false;
  check.first_failing_position = position;
  check.detail = std::move(detail);
  for (Check& other : report.checks) {
    if (other.passed) other.completed = false;  // stopped before finishing them
  }
}

}  // namespace

bool VerifyReport::ok() const {
  if (!error.empty()) return false;
  for (const Check& c : checks) {
    if (!c.passed || !c.completed) return false;
  }
  return true;
}

struct LogVerifier::Impl {
  explicit Impl(LogVerifierOptions o) : options(std::move(o)) {
    report.checks = FreshChecks();
    report.threads = options.threads > 0 ? options.threads
                                         : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }

  void Fail(CheckIndex index, std::optional<uint64_t> position, std::string detail) {
    FailCheck(report, index, position, std::move(detail));
  }
  bool failed() const {
    for (const Check& c : report.checks) {
      if (!c.passed) return true;
    }
    return false;
  }

  // A record's signature to check under `key`, or (no key) a checkpoint
  // note to open under the operator key.
  using Jobs = std::vector<std::pair<Pending*, std::optional<crypto::PublicKey>>>;

  // The signatures of `pending` that can be checked against the keys known
  // now, and every checkpoint's; the rest are checked in order by the
  // replayer.
  Jobs SignatureJobs(std::vector<Pending>& pending) {
    Jobs jobs;
    for (Pending& p : pending) {
      if (p.is_checkpoint) {
        jobs.emplace_back(&p, std::nullopt);
        continue;
      }
      if (!p.envelope.has_value()) continue;
      if (p.record->position() < options.report_from) {
        p.signature_verified = true;  // before the range: trusted, not verified
        continue;
      }
      const v1::KeyState* key = replayer.state().FindKey(p.envelope->signed_event.key_id());
      if (key == nullptr) continue;
      auto public_key = crypto::PublicKey::FromRaw(key->public_key());
      if (public_key.ok()) jobs.emplace_back(&p, *public_key);
    }
    return jobs;
  }

  // Checks `jobs` on every core. The threads outlive this call: until they
  // are joined, `jobs`, the Pending elements it points at (the vector holding
  // them may be moved, not cleared) and `options` must stay alive; nothing
  // else touches those Pending elements meanwhile.
  std::vector<std::thread> StartThreads(Jobs& jobs) {
    std::vector<std::thread> threads;
    const size_t n = std::min(static_cast<size_t>(report.threads), std::max<size_t>(1, jobs.size()));
    for (size_t t = 0; t < n; ++t) {
      threads.emplace_back([this, &jobs, t, n] {
        for (size_t i = t; i < jobs.size(); i += n) {
          Pending& p = *jobs[i].first;
          if (p.is_checkpoint) {
            p.opened = merkle::OpenCheckpoint(p.bytes, options.origin, options.operator_key);
            continue;
          }
          const bool good = crypto::VerifyEvent(*jobs[i].second, p.envelope->signed_event.body(),
                                                p.envelope->signed_event.signature());
          p.signature_verified = good;
          p.signature_bad = !good;
        }
      });
    }
    return threads;
  }

  // Applies the batch in order; false once a check has failed.
  bool Apply(std::vector<Pending>& pending) {
    for (Pending& p : pending) {
      if (p.is_checkpoint) {
        const uint64_t size = p.checkpoint_size;
        auto opened = p.opened.has_value() ? *std::move(p.opened)
                                           : merkle::OpenCheckpoint(p.bytes, options.origin, options.operator_key);
        // A checkpoint's position is its last record's (or where one is missing).
        const uint64_t at = std::min(size == 0 ? 0 : size - 1, report.records);
        if (!opened.ok()) {
          Fail(kIntegrity, at, absl::StrCat("checkpoint of size ", size, ": ", opened.status().message()));
          return false;
        }
        if (opened->size != size || size != report.records) {
          Fail(kIntegrity, at, absl::StrCat("checkpoint of size ", opened->size, " stands after record ",
                                              report.records, "; expected one of size ", report.records));
          return false;
        }
        if (size <= last_checkpoint_size) {
          Fail(kIntegrity, at, "checkpoints are not in increasing size order");
          return false;
        }
        if (opened->root != frontier.Root()) {
          Fail(kIntegrity, size - 1,
               absl::StrCat("the signed root of size ", size, " is ",
                            crypto::ToHex(merkle::AsBytes(opened->root)), "; the records give ",
                            crypto::ToHex(merkle::AsBytes(frontier.Root()))));
          return false;
        }
        last_checkpoint_size = size;
        report.checkpoints++;
        continue;
      }
      const uint64_t position = report.records;
      const bool in_range = position >= options.report_from;
      if (!p.record.has_value()) {
        Fail(kDensity, position, absl::StrCat("the record at position ", position, " does not decode or is out of place"));
        return false;
      }
      if (p.signature_bad) {
        Fail(kSignatures, position, absl::StrCat("position ", position, ": the signature does not verify under key ",
                                                 p.envelope->signed_event.key_id()));
        return false;
      }
      const v1::EventBody& body = p.envelope->body;
      std::string fingerprint_input = body.author();
      fingerprint_input.push_back('\0');
      fingerprint_input += body.idempotency_key();
      const crypto::Digest digest = crypto::Sha256(fingerprint_input);
      uint64_t fingerprint = 0;
      for (int i = 0; i < 8; ++i) fingerprint = fingerprint << 8 | digest[i];
      if (!idempotency.insert(fingerprint).second && in_range) {
        Fail(kDensity, position, absl::StrCat("idempotency key \"", body.idempotency_key(), "\" of ", body.author(),
                                              " is used a second time"));
        return false;
      }
      if (auto violation = monitor.Before(body, replayer.state()); violation.has_value() && in_range) {
        Fail(kNoReversal, position, *violation);
        return false;
      }
      absl::Status replayed = replayer.Next(*p.record, *p.envelope, p.signature_verified);
      if (!replayed.ok()) {
        Fail(absl::IsUnauthenticated(replayed) ? kSignatures : kReplay, position, std::string(replayed.message()));
        return false;
      }
      if (auto violation = monitor.After(position, body, replayer.state()); violation.has_value() && in_range) {
        Fail(kNoReversal, position, *violation);
        return false;
      }
      if (position == 0 && replayer.state().info().operator_public_key() != options.operator_key.raw()) {
        Fail(kSignatures, 0, "Genesis names a different operator key from the one trusted");
        return false;
      }
      if (in_range) Count(position, body, *p.record);
      frontier.Append(merkle::HashLeaf(p.bytes));
      report.records++;
      if (options.trusted.has_value() && report.records == options.trusted->size) {
        trusted_seen = true;
        if (frontier.Root() != options.trusted->root) {
          Fail(kIntegrity, position, absl::StrCat("the trusted checkpoint of size ", options.trusted->size,
                                                  " has a different root: the history was rewritten"));
          return false;
        }
      }
    }
    return true;
  }

  void Count(uint64_t position, const v1::EventBody& body, const v1::Record& record) {
    if (body.has_gateway_passed()) report.gateways_locked++;
    if (body.has_decision_called()) report.calls++;
    if (!body.has_submission_refused()) return;
    report.refused_attempts++;
    const v1::SubmissionRefused& refused = body.submission_refused();
    if (refused.reason() != v1::GATEWAY_LOCKED) return;
    v1::SignedEvent attempt;
    v1::EventBody attempted;
    if (attempt.ParseFromString(refused.signed_event()) && attempted.ParseFromString(attempt.body())) {
      report.reversal_attempts.push_back({position, record.ledger_time_unix_ns(), attempted.author(),
                                          attempt.key_id(),
                                          attempted.has_vote_cast() ? attempted.vote_cast().proposal_id()
                                                                    : attempted.decision_called().proposal_id(),
                                          attempted.has_vote_cast() ? attempted.vote_cast().gateway_id()
                                                                    : attempted.decision_called().gateway_id(),
                                          v1::Reason_Name(refused.reason())});
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
    StartVerifying();  // keys as known before `ready` is replayed
    const bool good = Apply(ready);
    pending_records -= std::count_if(ready.begin(), ready.end(), [](const Pending& p) { return !p.is_checkpoint; });
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
    StartVerifying();
    bool good = Apply(ready);
    JoinVerifying();
    good = good && Apply(verifying);
    verifying.clear();
    pending_records = 0;
    if (good && options.on_batch) options.on_batch();
    return good;
  }

  // Starts checking the signatures of `verifying` on the pool.
  void StartVerifying() {
    verifying_jobs = SignatureJobs(verifying);
    verifying_threads = StartThreads(verifying_jobs);
  }
  void JoinVerifying() {
    for (auto& thread : verifying_threads) thread.join();
    verifying_threads.clear();
    verifying_jobs.clear();
  }
  ~Impl() { JoinVerifying(); }

  bool Push(Pending p) {
    if (failed()) return false;
    batch.push_back(std::move(p));
    if (batch.size() >= kBatch) return Rotate();
    return true;
  }

  LogVerifierOptions options;
  VerifyReport report;
  Replayer replayer;
  ReversalMonitor monitor;
  merkle::Frontier frontier;
  absl::flat_hash_set<uint64_t> idempotency;  // fingerprints of (author, key)
  uint64_t last_checkpoint_size = 0;
  bool trusted_seen = false;
  std::vector<Pending> batch;      // being read and decoded
  std::vector<Pending> verifying;  // signatures being checked on the pool
  Jobs verifying_jobs;
  std::vector<std::thread> verifying_threads;
  uint64_t pending_records = 0;  // records in `verifying` and `batch`
};

LogVerifier::LogVerifier(LogVerifierOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
LogVerifier::~LogVerifier() = default;

bool LogVerifier::AddRecord(std::string bytes) {
  if (impl_->failed()) return false;
  Pending p;
  const uint64_t expected = impl_->report.records + impl_->pending_records;
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
  impl_->Fail(static_cast<CheckIndex>(check), position, std::move(detail));
}
bool LogVerifier::failed() const { return impl_->failed(); }
uint64_t LogVerifier::records() const { return impl_->report.records; }
uint64_t LogVerifier::last_checkpoint_size() const { return impl_->last_checkpoint_size; }
bool LogVerifier::trusted_seen() const { return impl_->trusted_seen; }
absl::Status LogVerifier::FinishReplay() const { return impl_->replayer.Finish(); }
const rules::State& LogVerifier::state() const { return impl_->replayer.state(); }

VerifyReport LogVerifier::Report() const {
  VerifyReport report = impl_->report;
  const rules::State& state = impl_->replayer.state();
  report.organisations = state.organisation_count();
  report.collectives = state.collectives().size();
  report.proposals = state.proposals().size();
  for (const auto& [id, proposal] : state.proposals()) report.vetoes += proposal.vetoes_size();
  report.tree_size = report.records;
  report.root_hex = crypto::ToHex(merkle::AsBytes(impl_->frontier.Root()));
  return report;
}

VerifyReport VerifyBundle(const std::string& path, const VerifyOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  VerifyReport report;  // until the verifier exists
  report.checks = FreshChecks();
  report.threads = options.threads > 0 ? options.threads
                                       : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  auto finish = [&](VerifyReport r) {
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return r;
  };

  auto reader = BundleReader::Open(path);
  if (!reader.ok()) {
    report.error = std::string(reader.status().message());
    for (Check& c : report.checks) c.completed = false;
    return finish(report);
  }
  auto header_frame = (*reader)->Next();
  if (!header_frame.ok() || !header_frame->has_value() || !(*header_frame)->has_header()) {
    FailCheck(report, kIntegrity, std::nullopt,
              header_frame.ok() ? "the bundle does not start with a header"
                                : std::string(header_frame.status().message()));
    return finish(report);
  }
  const v1::BundleHeader header = (*header_frame)->header();
  report.ledger_id = header.ledger_id();
  if (header.format_version() != kBundleFormatVersion) {
    FailCheck(report, kIntegrity, std::nullopt, absl::StrCat("bundle format ", header.format_version(), " is not supported"));
    return finish(report);
  }
  std::optional<crypto::PublicKey> operator_key = options.operator_key;
  if (!operator_key.has_value()) {
    auto from_bundle = crypto::PublicKey::FromRaw(header.operator_public_key());
    if (!from_bundle.ok()) {
      FailCheck(report, kIntegrity, std::nullopt, "the bundle's operator key is not an Ed25519 key");
      return finish(report);
    }
    operator_key = *from_bundle;
  }
  std::optional<merkle::Checkpoint> trusted;
  if (options.trusted_checkpoint.has_value()) {
    auto opened = merkle::OpenCheckpoint(*options.trusted_checkpoint, header.origin(), *operator_key);
    if (!opened.ok()) {
      FailCheck(report, kIntegrity, std::nullopt,
                absl::StrCat("the trusted checkpoint does not verify: ", opened.status().message()));
      return finish(report);
    }
    trusted = *opened;
  }

  uint64_t batches = 0;
  LogVerifier verifier({.operator_key = *operator_key,
                        .origin = header.origin(),
                        .trusted = trusted,
                        .threads = report.threads,
                        .on_batch = [&] {
                          if (options.progress && ++batches % 4 == 0) {
                            options.progress((*reader)->offset(), (*reader)->file_size());
                          }
                        }});
  bool footer_seen = false;
  while (true) {
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
    }
  }
  if (options.progress) options.progress((*reader)->offset(), (*reader)->file_size());
  VerifyReport out = verifier.Report();
  out.ledger_id = report.ledger_id;
  return finish(std::move(out));
}

std::string FormatReport(const VerifyReport& r, bool json) {
  const double rate = r.seconds > 0 ? r.records / r.seconds : 0;
  if (!json) {
    std::string out = absl::StrCat(r.subject, " of ledger ", r.ledger_id, ": ", r.records, " records, ", r.checkpoints,
                                   " signed checkpoints, root ", r.root_hex, "\n");
    if (!r.error.empty()) absl::StrAppend(&out, "ERROR  ", r.error, "\n");
    for (const Check& c : r.checks) {
      const char* verdict = !c.passed ? "FAIL" : c.completed ? "PASS" : "----";
      absl::StrAppend(&out, absl::StrFormat("%-4s  %-12s %s", verdict, c.name, c.meaning));
      if (!c.passed) {
        absl::StrAppend(&out, "\n      first failing position: ",
                        c.first_failing_position.has_value() ? absl::StrCat(*c.first_failing_position) : "-",
                        "\n      ", c.detail);
      } else if (!c.completed) {
        absl::StrAppend(&out, "  (not completed: verification stopped)");
      }
      absl::StrAppend(&out, "\n");
      if (c.name == "no reversal") {
        for (const RefusedAttempt& a : r.reversal_attempts) {
          absl::StrAppend(&out, "      refused attempt at position ", a.position, ": ", a.org_id, " (key ",
                          a.key_id, ") on gateway ", a.gateway_id, " of ", a.proposal_id, "\n");
        }
      }
    }
    absl::StrAppend(&out, "records ", r.records, ", organisations ", r.organisations, ", collectives ", r.collectives,
                    ", proposals ", r.proposals, ", gateways locked ", r.gateways_locked, ", vetoes ", r.vetoes,
                    ", calls ", r.calls, ", refused attempts ", r.refused_attempts, "\n",
                    absl::StrFormat("verified in %.2f s on %d threads: %.0f records/s; with the %d signed "
                                    "checkpoints, %.0f signatures/s\n",
                                    r.seconds, r.threads, rate, r.checkpoints,
                                    r.seconds > 0 ? (r.records + r.checkpoints) / r.seconds : 0),
                    r.ok() ? "VERIFIED" : "NOT VERIFIED");
    return out;
  }
  auto quote = [](const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
      if (c == '"' || c == '\\') out.push_back('\\');
      if (static_cast<unsigned char>(c) < 0x20) {
        absl::StrAppend(&out, absl::StrFormat("\\u%04x", c));
        continue;
      }
      out.push_back(c);
    }
    return out + "\"";
  };
  std::string checks;
  for (const Check& c : r.checks) {
    absl::StrAppend(&checks, checks.empty() ? "" : ",", "{\"name\":", quote(c.name),
                    ",\"passed\":", c.passed ? "true" : "false", ",\"completed\":", c.completed ? "true" : "false",
                    ",\"first_failing_position\":",
                    c.first_failing_position.has_value() ? absl::StrCat(*c.first_failing_position) : "null",
                    ",\"detail\":", quote(c.detail), "}");
  }
  std::string attempts;
  for (const RefusedAttempt& a : r.reversal_attempts) {
    absl::StrAppend(&attempts, attempts.empty() ? "" : ",", "{\"position\":", a.position,
                    ",\"ledger_time_unix_ns\":", a.ledger_time_unix_ns, ",\"org_id\":", quote(a.org_id),
                    ",\"key_id\":", quote(a.key_id), ",\"proposal_id\":", quote(a.proposal_id),
                    ",\"gateway_id\":", quote(a.gateway_id), "}");
  }
  return absl::StrCat("{\"verified\":", r.ok() ? "true" : "false", ",\"error\":", quote(r.error),
                      ",\"ledger_id\":", quote(r.ledger_id), ",\"tree_size\":", r.tree_size,
                      ",\"root_hash\":", quote(r.root_hex), ",\"checks\":[", checks, "],\"counts\":{\"records\":",
                      r.records, ",\"checkpoints\":", r.checkpoints, ",\"organisations\":", r.organisations,
                      ",\"collectives\":", r.collectives, ",\"proposals\":", r.proposals,
                      ",\"gateways_locked\":", r.gateways_locked, ",\"vetoes\":", r.vetoes, ",\"calls\":", r.calls,
                      ",\"refused_attempts\":", r.refused_attempts, "},\"reversal_attempts\":[", attempts,
                      "],\"seconds\":", absl::StrFormat("%.3f", r.seconds),
                      ",\"records_per_second\":", absl::StrFormat("%.0f", rate), ",\"threads\":", r.threads, "}");
}

}  // namespace ledger::audit
