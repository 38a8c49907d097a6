#include "ledger/store/ledger.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "glog/logging.h"
#include "ledger/crypto/sha256.h"
#include "ledger/event/refusal.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/rules/commit_group.h"
#include "ledger/rules/limits.h"
#include "ledger/rules/rules.h"

namespace ledger::store {

struct Ledger::Submission {
  std::vector<Envelope> envelopes;
  // Per event: 1 if the verify pool checked its signature; 0 if its key was
  // not known yet (added earlier in the same group) or it lies past
  // to_verify, so the sequencer checks it if it decides it.
  std::vector<char> verified;
  // The events the verify pool checks: a prefix (see EventsToVerify).
  size_t to_verify = 0;
  std::atomic<size_t> unverified{0};
  // The first event no verify task has taken (under Ledger::verify_turns_mu_).
  size_t next_to_verify = 0;
  absl::Mutex mu;
  absl::Status error ABSL_GUARDED_BY(mu);
  Done done;
};

namespace {

// Events of one submission a verify task checks; then it is another
// author's turn: a batch of 1,000 shares the pool with every other author
// instead of holding it (an unrelated append waits for at most a chunk per
// pool thread, ~16 signatures, however many batches one author sends).
constexpr size_t kVerifyChunk = 16;

// After a failed commit, overdue lapses wait this long before the next try.
constexpr int64_t kStorageRetryNanos = 1'000'000'000;
// A commit group that takes longer than this (decide, write, answer) is
// logged: every organisation's appends wait behind it.
constexpr absl::Duration kSlowCommitGroup = absl::Milliseconds(250);
// A commit group holding more signed bytes than this is freed on the verify
// pool once answered, not on the sequencer thread: a refused batch of 1,000
// maximal votes is ~12 MB of envelopes, and freeing them is latency for
// every organisation's next commit (issue 9).
constexpr size_t kReleaseOffSequencerBytes = 256 << 10;

// How many of a submission's events the verify pool checks. A submission is
// decided all or nothing, event by event in order (rules/commit_group.h), so
// no event after one that is refused whatever the state is ever decided, and
// its signature need not be checked: under rules v3, a member's vote beyond
// 1 + kMaxPositionChanges on one gateway counting only the batch's own votes
// (issue 9: a hostile batch of 1,000 votes costs ten signatures, not 1,000).
// Only a saving: an unchecked event the sequencer does reach, it checks.
size_t EventsToVerify(const std::vector<Envelope>& envelopes, uint32_t rules_version) {
  if (rules_version < rules::kRulesV3) return envelopes.size();
  absl::flat_hash_map<std::string, int> votes;  // (author, proposal, gateway)
  for (size_t i = 0; i < envelopes.size(); ++i) {
    const v1::EventBody& body = envelopes[i].body;
    if (!body.has_vote_cast()) continue;
    const std::string voter = absl::StrCat(body.author().size(), ":", body.author(), body.vote_cast().proposal_id().size(),
                                           ":", body.vote_cast().proposal_id(), body.vote_cast().gateway_id());
    if (++votes[voter] > rules::kMaxPositionChanges + 1) return i + 1;
  }
  return envelopes.size();
}

// The event index a batch's refusal names (AtBatchIndex); nullopt for an
// acceptance or a refusal that names none.
std::optional<size_t> BatchIndexOf(const absl::Status& status) {
  if (status.ok()) return std::nullopt;
  auto payload = status.GetPayload(kBatchIndexPayloadUrl);
  size_t index = 0;
  if (!payload.has_value() || !absl::SimpleAtoi(std::string(*payload), &index)) return std::nullopt;
  return index;
}

int64_t SystemClock() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Ledger::Ledger(LedgerOptions options)
    : options_(std::move(options)), operator_key_(options_.operator_key) {
  if (!options_.clock) options_.clock = SystemClock;
  if (options_.metrics != nullptr) {
    group_records_metric_ = options_.metrics->AddHistogram(
        "ledger_commit_group_records", "Records written per commit group (one synced RocksDB write).",
        {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000});
    refusals_metric_ = options_.metrics->AddCounterFamily(
        "ledger_refusals_recorded_total", "Refused submissions kept on the record (SubmissionRefused), by reason.",
        {"reason"});
  }
}

absl::StatusOr<std::unique_ptr<Ledger>> Ledger::Open(LedgerOptions options) {
  auto store = Store::Open(options.data_dir);
  if (!store.ok()) return store.status();
  std::unique_ptr<Ledger> ledger(new Ledger(std::move(options)));
  ledger->store_ = std::move(*store);
  if (auto s = ledger->Start(); !s.ok()) return s;
  return ledger;
}

absl::Status Ledger::Start() {
  if (store_->tree_size() == 0) {
    bool rebuilt = false;  // nothing to rebuild: the state is empty
    if (auto s = state_.Open(store_.get(), options_.state_cache_bytes, &rebuilt); !s.ok()) return s;
    if (!options_.genesis.has_value()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the ledger in ", options_.data_dir, " is empty and no Genesis was given"));
    }
    const GenesisSpec& spec = *options_.genesis;
    v1::EventBody body;
    body.set_ledger_id(spec.ledger_id);
    body.set_author(spec.operator_id);
    body.set_idempotency_key("genesis");
    body.set_client_time_unix_ms(options_.clock() / 1'000'000);
    v1::Genesis* genesis = body.mutable_genesis();
    genesis->set_operator_id(spec.operator_id);
    genesis->set_operator_public_key(std::string(operator_key_.public_key().raw()));
    genesis->set_origin(spec.origin.empty() ? absl::StrCat("decision-ledger/", spec.ledger_id)
                                            : spec.origin);
    for (const v1::Registrar& registrar : spec.registrars) *genesis->add_registrars() = registrar;
    genesis->set_rules_version(spec.rules_version);
    genesis->set_identity_notice_seconds(spec.identity_notice_seconds);
    auto envelope = OpenSubmission(SealEvent(body, operator_key_), /*ledger_id=*/"");
    if (!envelope.ok()) return envelope.status();
    auto submission = std::make_shared<Submission>();
    submission->envelopes.push_back(*std::move(envelope));
    submission->verified.push_back(0);
    absl::Status result;
    submission->done = [&result](absl::StatusOr<std::vector<SubmitResult>> r) { result = r.status(); };
    CommitGroup({submission});
    if (!result.ok()) return result;
  } else {
    if (auto s = LoadFromStore(); !s.ok()) return s;
  }
  // (LoadFromStore has checked that the operator key is this ledger's; a new
  // ledger's Genesis names it.)
  info_ = state_.info();
  rules_version_ = rules::RulesVersion(state_);
  verify_pool_ = options_.verify_pool;
  if (verify_pool_ == nullptr) {
    own_verify_pool_ = std::make_unique<ThreadPool>(options_.verify_threads, 0, "verify");
    verify_pool_ = own_verify_pool_.get();
  }
  sequencer_thread_ = std::thread([this] {
    NameThisThread("sequencer");
    SequencerLoop();
  });
  return absl::OkStatus();
}

absl::Status Ledger::LoadFromStore() {
  // Nothing of the projected state is loaded whole: it is read on demand.
  state_ = rules::State();
  bool rebuilt_indexes = false;
  if (auto s = state_.Open(store_.get(), options_.state_cache_bytes, &rebuilt_indexes); !s.ok()) return s;
  if (auto s = store_->LoadDroppedRefusals(&dropped_refusals_); !s.ok()) return s;
  if (!state_.has_genesis()) return absl::DataLossError("the ledger has records but no Genesis state");
  if (rebuilt_indexes) {
    LOG(WARNING) << "the ledger in " << options_.data_dir << " was written by an earlier release: its derived "
                 << "state indexes are rebuilt (once; they are written with the next commit group)";
  }
  if (state_.migrated_collective_proposals()) {
    LOG(WARNING) << "the ledger in " << options_.data_dir << " lists each collective's proposals in the collective's "
                 << "state entry (an earlier release): they move to entries of their own with the next commit group";
  }
  // Refusals recorded by a release before the refused-bytes index (rules
  // version 2 answers them from it): indexed with the derived indexes, and
  // written with them (they are pending changes of the state).
  if (rebuilt_indexes) {
    if (auto s = IndexEarlierRefusals(); !s.ok()) return s;
  }
  if (state_.info().operator_public_key() != operator_key_.public_key().raw()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the operator key ", operator_key_.public_key().key_id(),
                     " is not the operator key of the ledger in ", options_.data_dir));
  }
  auto frontier = merkle::Frontier::Load(*store_, store_->tree_size());
  if (!frontier.ok()) return frontier.status();
  frontier_ = *std::move(frontier);
  auto note = store_->GetCheckpoint(store_->tree_size());
  if (!note.ok()) return absl::DataLossError(absl::StrCat("latest checkpoint: ", note.status().message()));
  // The stored tree must still be the one the operator signed.
  auto signed_checkpoint = merkle::OpenCheckpoint(*note, state_.info().origin(), operator_key_.public_key());
  if (!signed_checkpoint.ok() || signed_checkpoint->size != store_->tree_size() ||
      signed_checkpoint->root != frontier_.Root()) {
    return Refuse(absl::StatusCode::kDataLoss, v1::DATA_CORRUPTED,
                  absl::StrCat("the stored Merkle tree of size ", store_->tree_size(),
                               " does not match the latest signed checkpoint",
                               signed_checkpoint.ok() ? "" : absl::StrCat(" (", signed_checkpoint.status().message(), ")")));
  }
  absl::MutexLock lock(&checkpoint_mu_);
  latest_checkpoint_ = *std::move(note);
  auto last = Get(store_->tree_size() - 1);
  if (!last.ok()) return last.status();
  auto record = DecodeRecord(last->record(), last->position());
  if (!record.ok()) return record.status();
  last_time_ = record->ledger_time_unix_ns();
  return absl::OkStatus();
}

absl::Status Ledger::IndexEarlierRefusals() {
  absl::Status indexing_failed;
  absl::Status scanned = store_->ScanKind(v1::EventBody::kSubmissionRefused, 0, [&](uint64_t position) {
    absl::StatusOr<v1::RecordEntry> entry = Get(position);
    absl::StatusOr<v1::Record> record = entry.ok() ? DecodeRecord(entry->record(), position) : entry.status();
    absl::StatusOr<Envelope> event = record.ok() ? DecodeStoredEvent(*record) : record.status();
    if (!event.ok()) {
      indexing_failed = event.status();
      return false;
    }
    const v1::SubmissionRefused& refused = event->body.submission_refused();
    rules::IndexRefusedSubmission(state_, refused.signed_event(), position, refused.reason());
    return true;
  });
  if (!scanned.ok()) return scanned;
  if (!indexing_failed.ok()) return indexing_failed;
  return state_.source_status();
}

absl::Status Ledger::RecoverFromStorageFailure() {
  const uint64_t size_before = store_->tree_size();
  if (auto s = store_->Recover(); !s.ok()) return s;
  if (auto s = LoadFromStore(); !s.ok()) return s;
  storage_failed_ = false;
  // The failed commit may have reached the disk after all: tell subscribers.
  if (store_->tree_size() != size_before) {
    absl::MutexLock lock(&listeners_mu_);
    for (auto& [id, listener] : listeners_) listener(store_->tree_size());
  }
  return absl::OkStatus();
}

absl::Status Ledger::CacheKey(const v1::KeyState& key) {
  auto public_key = crypto::PublicKey::FromRaw(key.public_key());
  if (!public_key.ok()) return absl::DataLossError(absl::StrCat("stored key ", key.key_id(), " is corrupt"));
  // Bounded: over the bound the cache starts again (a key's bytes never
  // change, so any key is read back from the store when next needed).
  if (keys_.size() >= options_.key_cache_entries) keys_.clear();
  keys_.insert_or_assign(key.key_id(), *public_key);
  return absl::OkStatus();
}

std::optional<crypto::PublicKey> Ledger::VerificationKey(const std::string& key_id) {
  {
    absl::ReaderMutexLock lock(&keys_mu_);
    auto it = keys_.find(key_id);
    if (it != keys_.end()) return it->second;
  }
  // Not held: the committed key, if any. A key not found (or not committed
  // yet) leaves the signature to the sequencer's own check.
  absl::StatusOr<std::optional<std::string>> stored = store_->GetState(absl::StrCat(rules::kKeyPrefix, key_id));
  v1::KeyState key;
  if (!stored.ok() || !stored->has_value() || !key.ParseFromString(**stored) || key.key_id() != key_id) {
    return std::nullopt;
  }
  absl::MutexLock lock(&keys_mu_);
  if (!CacheKey(key).ok()) return std::nullopt;
  return keys_.find(key_id)->second;
}

Ledger::~Ledger() { Shutdown(); }

void Ledger::Shutdown() {
  absl::MutexLock lock(&shutdown_mu_);
  {
    // Submissions already accepted finish their checks (their tasks may be
    // queued behind other work on a shared pool) and reach the sequencer.
    absl::MutexLock l(&verify_mu_);
    verify_stop_ = true;
    verify_mu_.Await(absl::Condition(
        +[](int* verifying) { return *verifying == 0; }, &verifying_));
  }
  {
    absl::MutexLock l(&sequencer_mu_);
    sequencer_stop_ = true;
    sequencer_cv_.SignalAll();
  }
  if (sequencer_thread_.joinable()) sequencer_thread_.join();
}

absl::StatusOr<uint64_t> Ledger::AdoptRulesVersion(uint32_t version) {
  v1::EventBody body;
  body.set_ledger_id(info_.ledger_id());
  body.set_author(info_.operator_id());
  body.set_idempotency_key(absl::StrCat("rules-version/", version));
  body.set_client_time_unix_ms(options_.clock() / 1'000'000);
  body.mutable_rules_version_adopted()->set_version(version);
  absl::Notification done;
  absl::StatusOr<uint64_t> position;
  Submit({SealEvent(body, operator_key_)}, [&](absl::StatusOr<std::vector<SubmitResult>> result) {
    if (result.ok()) {
      position = result->front().receipt.position();
    } else {
      position = result.status();
    }
    done.Notify();
  });
  done.WaitForNotification();
  return position;
}

void Ledger::Submit(std::vector<v1::SignedEvent> events, Done done) {
  if (events.empty() || events.size() > kMaxBatchEvents) {
    done(Refuse(absl::StatusCode::kInvalidArgument,
                events.empty() ? v1::MISSING_FIELD : v1::OVERSIZE,
                absl::StrCat("a submission holds 1 to ", kMaxBatchEvents, " events, not ", events.size())));
    return;
  }
  auto submission = std::make_shared<Submission>();
  submission->envelopes.reserve(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    auto envelope = OpenSubmission(std::move(events[i]), info_.ledger_id());
    if (!envelope.ok()) {
      done(AtBatchIndex(envelope.status(), i, events.size()));
      return;
    }
    submission->envelopes.push_back(*std::move(envelope));
  }
  submission->verified.assign(events.size(), 0);
  submission->to_verify = EventsToVerify(submission->envelopes, rules_version_.load());
  submission->unverified = submission->to_verify;

  bool stopping;
  {
    absl::MutexLock lock(&verify_mu_);
    stopping = verify_stop_;
  }
  if (stopping) {
    done(Refuse(absl::StatusCode::kUnavailable, v1::SHUTTING_DOWN, "the ledger is shutting down"));
    return;
  }
  // A resubmission of accepted events: one point read per event, here.
  auto replayed = ReplayFromIndex(submission->envelopes);
  if (!replayed.ok() || replayed->has_value()) {
    if (replayed.ok()) {
      done(**std::move(replayed));
    } else {
      done(replayed.status());
    }
    return;
  }
  // Back-pressure: a bounded number of submissions between here and their
  // answer, so neither the verify pool's queue nor the sequencer's grows
  // without bound.
  const size_t limit = options_.max_inflight_submissions;
  if (inflight_.fetch_add(1) >= limit && limit != 0) {
    inflight_.fetch_sub(1);
    done(Refuse(absl::StatusCode::kResourceExhausted, v1::LIMIT_REACHED,
                absl::StrCat(limit, " submissions are in flight, the most this server takes (ledgerd "
                             "--max-inflight-submissions); try again later")));
    return;
  }
  size_t bytes = 0;
  for (const Envelope& envelope : submission->envelopes) bytes += envelope.signed_bytes.size();
  const size_t byte_limit = options_.max_inflight_bytes;
  if (const size_t before = inflight_bytes_.fetch_add(bytes); byte_limit != 0 && before != 0 && before + bytes > byte_limit) {
    inflight_bytes_.fetch_sub(bytes);
    inflight_.fetch_sub(1);
    done(Refuse(absl::StatusCode::kResourceExhausted, v1::LIMIT_REACHED,
                absl::StrCat("submissions of ", before, " bytes are in flight; ", bytes, " more would pass ",
                             byte_limit, ", the most this server holds (ledgerd --max-inflight-bytes); try again later")));
    return;
  }
  submission->done = [this, bytes, done = std::move(done)](absl::StatusOr<std::vector<SubmitResult>> result) mutable {
    inflight_.fetch_sub(1);
    inflight_bytes_.fetch_sub(bytes);
    done(std::move(result));
  };
  {
    absl::MutexLock lock(&verify_mu_);
    stopping = verify_stop_;
    if (!stopping) ++verifying_;
  }
  if (stopping) {
    submission->done(Refuse(absl::StatusCode::kUnavailable, v1::SHUTTING_DOWN, "the ledger is shutting down"));
    return;
  }
  // Queued in its signer's turn, with one pool task per chunk: each task
  // takes the next chunk in turn, whichever submission it belongs to. The
  // turn is the signing key's, not the claimed author's: no signature has
  // been checked yet, and a member that claimed a new author in each batch
  // would get a turn per batch; its signatures only verify under its keys.
  const std::string& author = submission->envelopes.front().signed_event.key_id();
  const size_t chunks = (submission->to_verify + kVerifyChunk - 1) / kVerifyChunk;
  {
    absl::MutexLock lock(&verify_turns_mu_);
    std::deque<std::shared_ptr<Submission>>& queue = verify_queues_[author];
    if (queue.empty()) verify_turns_.push_back(author);
    queue.push_back(submission);
  }
  for (size_t i = 0; i < chunks; ++i) verify_pool_->Schedule([this] { VerifyNextChunk(); });
}

void Ledger::VerifyNextChunk() {
  std::shared_ptr<Submission> submission;
  size_t begin = 0, end = 0;
  {
    absl::MutexLock lock(&verify_turns_mu_);
    if (verify_turns_.empty()) return;  // not reached: a task per chunk
    std::string author = std::move(verify_turns_.front());
    verify_turns_.pop_front();
    auto queue = verify_queues_.find(author);
    submission = queue->second.front();
    begin = submission->next_to_verify;
    end = std::min(begin + kVerifyChunk, submission->to_verify);
    submission->next_to_verify = end;
    if (end == submission->to_verify) queue->second.pop_front();
    if (queue->second.empty()) {
      verify_queues_.erase(queue);
    } else {
      verify_turns_.push_back(std::move(author));  // its next chunk waits for every other author's
    }
  }
  for (size_t i = begin; i < end; ++i) VerifyEvent(submission, i);
}

void Ledger::VerifyEvent(const std::shared_ptr<Submission>& submission, size_t index) {
  const Envelope& envelope = submission->envelopes[index];
  const std::optional<crypto::PublicKey> key = VerificationKey(envelope.signed_event.key_id());
  if (key.has_value()) {
    if (crypto::VerifyEvent(*key, envelope.signed_event.body(), envelope.signed_event.signature())) {
      submission->verified[index] = 1;
      rules::CheckRegisteredKeysAhead(envelope.body);  // off the sequencer thread
    } else {
      absl::MutexLock lock(&submission->mu);
      if (submission->error.ok()) {
        submission->error = AtBatchIndex(
            Refuse(absl::StatusCode::kUnauthenticated, v1::BAD_SIGNATURE,
                   absl::StrCat("signature does not verify under key ", key->key_id())),
            index, submission->envelopes.size());
      }
    }
  }
  if (submission->unverified.fetch_sub(1) != 1) return;
  // Last event of its submission: refuse it now, or pass it on.
  absl::Status error;
  {
    absl::MutexLock lock(&submission->mu);
    error = submission->error;
  }
  if (!error.ok()) {
    submission->done(error);
  } else {
    Enqueue(submission);
  }
  absl::MutexLock lock(&verify_mu_);
  --verifying_;
}

void Ledger::Enqueue(std::shared_ptr<Submission> submission) {
  absl::MutexLock lock(&sequencer_mu_);
  sequencer_queue_.push_back(std::move(submission));
  sequencer_cv_.Signal();
}

void Ledger::SequencerLoop() {
  while (true) {
    std::vector<std::shared_ptr<Submission>> group;
    {
      absl::MutexLock lock(&sequencer_mu_);
      // Idle: sleep until work arrives or the next gateway deadline or
      // identity notice falls due.
      while (sequencer_queue_.empty() && !sequencer_stop_) {
        const std::optional<int64_t> next_due = state_.NextDue();
        if (!next_due.has_value()) {
          sequencer_cv_.Wait(&sequencer_mu_);
          continue;
        }
        // Overdue lapses are retried no faster than kStorageRetryNanos after
        // a failed commit, so a full disk does not spin this thread.
        const int64_t due = std::max(*next_due, retry_lapses_after_);
        const int64_t wait = due - options_.clock();
        if (wait <= 0) break;
        sequencer_cv_.WaitWithTimeout(&sequencer_mu_, absl::Nanoseconds(wait));
      }
      if (sequencer_queue_.empty() && sequencer_stop_) return;
      size_t events = 0;
      while (!sequencer_queue_.empty() && events < options_.max_group_events) {
        events += sequencer_queue_.front()->envelopes.size();
        group.push_back(std::move(sequencer_queue_.front()));
        sequencer_queue_.pop_front();
      }
    }
    CommitGroup(std::move(group));
  }
}

void Ledger::CommitGroup(std::vector<std::shared_ptr<Submission>> group) {
  const absl::Time started = absl::Now();
  if (storage_failed_) {
    // The last commit failed: nothing more is written until the store
    // resumes and the state is reloaded from what reached the disk.
    if (absl::Status recovered = RecoverFromStorageFailure(); !recovered.ok()) {
      LOG(ERROR) << "storage error: the ledger in " << options_.data_dir << " cannot resume: " << recovered;
      absl::Status failure = Refuse(absl::StatusCode::kUnavailable, v1::STORAGE,
                                    absl::StrCat("the ledger cannot write: ", recovered.message()));
      for (auto& submission : group) submission->done(failure);
      return;
    }
  }
  const size_t group_mark = state_.Mark();
  const merkle::Frontier frontier_before = frontier_;
  const int64_t now = std::max(options_.clock(), last_time_);

  // What the decision needs from storage: earlier uses of the group's
  // idempotency keys. First only those of the events a decision can reach:
  // a submission is decided in order and stops at its first refusal, and
  // its to_verify prefix ends at an event refused whatever the state, so a
  // hostile batch of 1,000 votes costs ten reads on this thread, not 1,000
  // (issue 9). Should a decision go past a prefix after all (a replayed
  // event does not change a position), the rest is read and the group is
  // decided again. A submission whose lookup fails is answered with the
  // failure and left out of the group.
  std::vector<absl::Status> outcomes(group.size());
  rules::PriorUses prior_uses;
  std::vector<size_t> looked_up(group.size(), 0);  // per submission, events read
  auto look_up = [&](size_t s, size_t end) {
    const Submission& submission = *group[s];
    for (size_t i = looked_up[s]; i < end; ++i) {
      const Envelope& envelope = submission.envelopes[i];
      auto found = store_->FindIdempotency(envelope.body.author(), envelope.body.idempotency_key());
      if (!found.ok()) {
        outcomes[s] = found.status();
        return;
      }
      if (found->has_value()) {
        prior_uses[rules::IdempotencyId(envelope.body.author(), envelope.body.idempotency_key())] =
            rules::PriorUse{(*found)->position, (*found)->body_hash};
      }
    }
    looked_up[s] = end;
  };
  rules::GroupInput input{store_->tree_size(), now, {}, &prior_uses};
  std::vector<size_t> decided;  // group index of each input submission
  auto gather = [&] {
    input.submissions.clear();
    decided.clear();
    for (size_t s = 0; s < group.size(); ++s) {
      if (!outcomes[s].ok()) continue;
      input.submissions.push_back(rules::SubmissionInput{group[s]->envelopes, group[s]->verified});
      decided.push_back(s);
    }
  };
  for (size_t s = 0; s < group.size(); ++s) {
    const size_t events = group[s]->envelopes.size();
    const size_t reachable = group[s]->to_verify;  // 0: not computed (Genesis)
    look_up(s, reachable == 0 ? events : std::min(reachable, events));
  }
  gather();
  rules::GroupDecision decision = rules::DecideGroup(state_, input);
  bool read_more = false;
  for (size_t i = 0; i < decided.size() && !read_more; ++i) {
    const size_t s = decided[i];
    if (looked_up[s] == group[s]->envelopes.size()) continue;
    const std::optional<size_t> stopped_at = BatchIndexOf(decision.submissions[i].status);
    if (stopped_at.has_value() && *stopped_at < looked_up[s]) continue;  // decided on what was read
    read_more = true;
  }
  if (read_more && state_.source_status().ok()) {
    // Every submission is read whole before the group is decided again: one
    // decided differently changes what the ones after it reach (a batch that
    // repeats an event goes past its prefix as replays), so a second round
    // on partial reads could miss an earlier use. This is the old path.
    for (size_t s = 0; s < group.size(); ++s) {
      if (outcomes[s].ok()) look_up(s, group[s]->envelopes.size());
    }
    state_.RollbackTo(group_mark);
    gather();
    decision = rules::DecideGroup(state_, input);
  }
  if (!state_.source_status().ok()) {
    // A state entry could not be read: the decisions may rest on the
    // misreading, so none is kept, and the state is reloaded before the next.
    LOG(ERROR) << "storage error: a commit group of " << group.size()
               << " submissions is refused UNAVAILABLE: " << state_.source_status();
    absl::Status failure = Refuse(absl::StatusCode::kUnavailable, v1::STORAGE,
                                  absl::StrCat("the ledger could not read its state: ", state_.source_status().message()));
    state_.RollbackTo(group_mark);
    storage_failed_ = true;
    retry_lapses_after_ = options_.clock() + kStorageRetryNanos;
    for (auto& submission : group) submission->done(failure);
    return;
  }
  std::vector<const rules::SubmissionResult*> results(group.size(), nullptr);
  for (size_t i = 0; i < decided.size(); ++i) {
    results[decided[i]] = &decision.submissions[i];
    outcomes[decided[i]] = decision.submissions[i].status;
  }

  store::CommitGroup commit;
  // The operator's own count of refusals the allowance dropped, told in the
  // author's next recorded refusal, before the operator signs it. Applied to
  // dropped_refusals_ only once written.
  absl::flat_hash_map<std::string, uint64_t> dropped_now;
  auto dropped_count = [&](const std::string& author) -> uint64_t& {
    auto [it, added] = dropped_now.try_emplace(author, 0);
    if (added) {
      if (auto stored = dropped_refusals_.find(author); stored != dropped_refusals_.end()) it->second = stored->second;
    }
    return it->second;
  };
  size_t dropped_told = 0;  // decision.dropped[..dropped_told] are counted
  auto count_dropped_before = [&](size_t record) {
    for (; dropped_told < decision.dropped.size() && decision.dropped[dropped_told].before_record <= record;
         ++dropped_told) {
      ++dropped_count(decision.dropped[dropped_told].author);
    }
  };
  commit.records.reserve(decision.records.size());
  for (rules::GroupRecord& decided_record : decision.records) {
    count_dropped_before(commit.records.size());
    if (decided_record.refused != nullptr) {
      uint64_t& dropped = dropped_count(decided_record.refused->body.author());
      decided_record.system.mutable_submission_refused()->set_dropped_before(
          static_cast<uint32_t>(std::min<uint64_t>(dropped, std::numeric_limits<uint32_t>::max())));
      dropped = 0;
    }
    const uint64_t position = input.first_position + commit.records.size();
    // System events are the ledger's own: signed by the operator.
    std::optional<v1::SignedEvent> sealed;
    if (decided_record.member == nullptr) sealed = SealEvent(decided_record.system, operator_key_);
    const v1::EventBody& body = sealed ? decided_record.system : decided_record.member->body;
    v1::Record record;
    record.set_position(position);
    record.set_ledger_time_unix_ns(now);
    record.set_signed_event(sealed ? sealed->SerializeAsString() : decided_record.member->signed_bytes);
    PendingRecord& pending = commit.records.emplace_back();
    pending.position = position;
    pending.record = record.SerializeAsString();
    pending.author = body.author();
    pending.kind = body.payload_case();
    pending.idempotency_key = body.idempotency_key();
    pending.body_hash = sealed ? crypto::Sha256(sealed->body()) : decided_record.body_hash;
    if (decided_record.refused != nullptr) pending.refused_author = decided_record.refused->body.author();
  }
  const uint64_t next = input.first_position + commit.records.size();
  count_dropped_before(decision.records.size());
  for (const auto& [author, count] : dropped_now) commit.dropped_refusals.emplace_back(author, count);
  auto keep_dropped_counts = [&] {
    for (const auto& [author, count] : dropped_now) {
      if (count == 0) {
        dropped_refusals_.erase(author);
      } else {
        dropped_refusals_[author] = count;
      }
    }
  };
  if (commit.records.empty() && !commit.dropped_refusals.empty()) {
    // Nothing recorded, but a refusal dropped: only the count changes.
    if (absl::Status written = store_->WriteDroppedRefusals(commit.dropped_refusals); written.ok()) {
      keep_dropped_counts();
    } else {
      LOG(ERROR) << "storage error: dropped-refusal counts were not written: " << written;
    }
  }

  std::string note;
  if (!commit.records.empty()) {
    // Genesis names the origin; it is known only once it is applied.
    if (info_.origin().empty()) info_ = state_.info();
    for (const PendingRecord& record : commit.records) {
      for (merkle::Node& node : frontier_.Append(merkle::HashLeaf(record.record))) {
        commit.nodes.push_back(std::move(node));
      }
    }
    commit.new_tree_size = next;
    note = merkle::SignCheckpoint(merkle::Checkpoint{info_.origin(), next, frontier_.Root()},
                                  info_.origin(), operator_key_);
    commit.checkpoint_note = note;
    commit.state_changes = state_.PendingChanges();
    if (absl::Status written = store_->Write(commit); !written.ok()) {
      // Not acknowledged: undo it and tell every caller. Whether it reached
      // the disk is known only after recovery, which reloads from the disk.
      state_.RollbackTo(group_mark);
      frontier_ = frontier_before;
      // A refusal before RocksDB saw the batch (disk nearly full) wrote
      // nothing; any other failure leaves the disk's content unknown.
      if (ReasonOf(written) != v1::STORAGE) storage_failed_ = true;
      LOG(ERROR) << "storage error: a commit group of " << commit.records.size() << " records at position "
                 << input.first_position << " was not written, its " << group.size()
                 << " submissions are refused UNAVAILABLE: " << written;
      retry_lapses_after_ = options_.clock() + kStorageRetryNanos;
      absl::Status failure = Refuse(absl::StatusCode::kUnavailable, v1::STORAGE,
                                    absl::StrCat("the ledger could not commit: ", written.message()));
      for (size_t s = 0; s < group.size(); ++s) {
        group[s]->done(outcomes[s].ok() ? failure : outcomes[s]);
      }
      return;
    }
    state_.CommitChanges();
    keep_dropped_counts();
    last_time_ = now;
    groups_committed_++;
    records_committed_ += commit.records.size();
    if (group_records_metric_ != nullptr) group_records_metric_->Observe(static_cast<double>(commit.records.size()));
    if (refusals_metric_ != nullptr) {
      for (const rules::GroupRecord& decided_record : decision.records) {
        if (decided_record.refused == nullptr) continue;
        refusals_metric_->With({v1::Reason_Name(decided_record.system.submission_refused().reason())})->Increment();
      }
    }
    rules_version_ = rules::RulesVersion(state_);
    {
      absl::MutexLock lock(&checkpoint_mu_);
      latest_checkpoint_ = note;
    }
    absl::MutexLock lock(&keys_mu_);
    for (const auto& [key, value] : commit.state_changes) {
      if (!absl::StartsWith(key, rules::kKeyPrefix) || !value.has_value()) continue;
      // The write is durable; a key that does not parse stays out of the
      // cache, so its events fall to the sequencer's own signature check.
      v1::KeyState stored;
      if (stored.ParseFromString(*value)) CacheKey(stored).IgnoreError();
    }
  }

  const uint64_t first_new = commit.records.empty() ? 0 : commit.records.front().position;
  for (size_t s = 0; s < group.size(); ++s) {
    if (!outcomes[s].ok()) {
      // Durable now: the member may be told its refusal is on the record.
      const bool recorded = results[s] != nullptr && results[s]->refusal_recorded && !commit.records.empty();
      group[s]->done(recorded ? RecordedAt(outcomes[s], results[s]->refusal_position) : outcomes[s]);
      continue;
    }
    std::vector<SubmitResult> receipts;
    absl::Status failure;
    size_t implied_at = 0;
    for (const auto& [position, replayed] : results[s]->positions) {
      if (replayed || commit.records.empty()) {
        auto result = ReceiptFor(position, replayed);
        if (!result.ok()) {
          failure = result.status();
          break;
        }
        receipts.push_back(*std::move(result));
        continue;
      }
      const PendingRecord& record = commit.records[position - first_new];
      SubmitResult result;
      result.receipt.set_position(position);
      result.receipt.set_ledger_time_unix_ns(now);
      result.receipt.set_leaf_hash(std::string(merkle::AsBytes(merkle::HashLeaf(record.record))));
      result.receipt.set_tree_size(commit.new_tree_size);
      result.receipt.set_checkpoint(note);
      // Both lists run in record order: one walk over `implied`.
      const auto& implied = results[s]->implied;
      while (implied_at < implied.size() && implied[implied_at].first < position) ++implied_at;
      for (; implied_at < implied.size() && implied[implied_at].first == position; ++implied_at) {
        v1::ImpliedRecord& record = *result.receipt.add_implied();
        record.set_position(implied[implied_at].second);
        record.set_kind(EventKind(decision.records[implied[implied_at].second - input.first_position].system));
      }
      receipts.push_back(std::move(result));
    }
    if (failure.ok()) {
      group[s]->done(std::move(receipts));
    } else {
      group[s]->done(failure);
    }
  }

  if (!commit.records.empty()) {
    absl::MutexLock lock(&listeners_mu_);
    for (auto& [id, listener] : listeners_) listener(commit.new_tree_size);
  }
  if (const absl::Duration took = absl::Now() - started; took > kSlowCommitGroup) {
    LOG(WARNING) << "slow commit group: " << group.size() << " submissions, " << commit.records.size()
                 << " records at position " << input.first_position << ", " << absl::ToDoubleMilliseconds(took)
                 << " ms";
  }
  ReleaseOffSequencer(std::move(group));
}

void Ledger::ReleaseOffSequencer(std::vector<std::shared_ptr<Submission>> group) {
  size_t bytes = 0;
  for (const auto& submission : group) {
    for (const Envelope& envelope : submission->envelopes) bytes += envelope.signed_bytes.size();
  }
  // Small groups are freed here: a task would cost more than the frees.
  if (bytes < kReleaseOffSequencerBytes || verify_pool_ == nullptr) return;
  verify_pool_->Schedule([group = std::move(group)]() mutable { group.clear(); });
}

absl::StatusOr<std::optional<std::vector<SubmitResult>>> Ledger::ReplayFromIndex(
    const std::vector<Envelope>& envelopes) const {
  // First every event must be a replay (cheap reads), and only then are
  // receipts built: a batch with one new event wastes no receipt.
  std::vector<uint64_t> positions;
  positions.reserve(envelopes.size());
  for (const Envelope& envelope : envelopes) {
    auto found = store_->FindIdempotency(envelope.body.author(), envelope.body.idempotency_key());
    if (!found.ok()) return found.status();
    // Not used, or used for another body (the sequencer refuses the conflict),
    // or its group is being written this moment (the sequencer answers).
    if (!found->has_value() || (*found)->body_hash != crypto::Sha256(envelope.signed_event.body()) ||
        (*found)->position >= store_->tree_size()) {
      return std::nullopt;
    }
    auto bytes = store_->GetRecord((*found)->position);
    if (absl::IsNotFound(bytes.status())) return std::nullopt;
    if (!bytes.ok()) return bytes.status();
    auto record = DecodeRecord(*bytes, (*found)->position);
    if (!record.ok()) return record.status();
    // The very bytes whose signature was checked when they were accepted;
    // the same body signed otherwise is checked as today.
    if (record->signed_event() != envelope.signed_bytes) return std::nullopt;
    // Bytes both refused and accepted (a rules-v1 log): the sequencer answers.
    std::string refused_key(rules::kRefusedSubmissionPrefix);
    refused_key.append(crypto::AsBytes(crypto::Sha256(envelope.signed_bytes)));
    auto refused = store_->GetState(refused_key);
    if (!refused.ok()) return refused.status();
    if (refused->has_value()) return std::nullopt;
    positions.push_back((*found)->position);
  }
  std::vector<SubmitResult> results;
  results.reserve(positions.size());
  for (uint64_t position : positions) {
    auto result = ReceiptFor(position, /*replayed=*/true);
    if (!result.ok()) return result.status();
    results.push_back(*std::move(result));
  }
  return results;
}

absl::StatusOr<SubmitResult> Ledger::ReceiptFor(uint64_t position, bool replayed) const {
  auto entry = Get(position);
  if (!entry.ok()) return entry.status();
  auto record = DecodeRecord(entry->record(), position);
  if (!record.ok()) return record.status();
  SubmitResult result;
  result.replayed = replayed;
  result.receipt.set_position(position);
  result.receipt.set_ledger_time_unix_ns(record->ledger_time_unix_ns());
  result.receipt.set_leaf_hash(std::string(merkle::AsBytes(merkle::HashLeaf(entry->record()))));
  // The original receipt: the checkpoint that first included it.
  auto checkpoint = store_->FirstCheckpointIncluding(position);
  if (!checkpoint.ok()) return checkpoint.status();
  // Handed out only if it is still the note the operator signed.
  auto opened = merkle::OpenCheckpoint(checkpoint->second, info_.origin(), operator_key_.public_key());
  if (!opened.ok() || opened->size != checkpoint->first) {
    return Refuse(absl::StatusCode::kDataLoss, v1::DATA_CORRUPTED,
                  absl::StrCat("stored checkpoint of size ", checkpoint->first, " was altered",
                               opened.ok() ? "" : absl::StrCat(": ", opened.status().message())));
  }
  result.receipt.set_tree_size(checkpoint->first);
  result.receipt.set_checkpoint(std::move(checkpoint->second));
  return result;
}

absl::StatusOr<v1::RecordEntry> Ledger::Get(uint64_t position) const {
  auto bytes = store_->GetRecord(position);
  if (!bytes.ok()) return bytes.status();
  if (auto record = DecodeRecord(*bytes, position); !record.ok()) return record.status();
  v1::RecordEntry entry;
  entry.set_position(position);
  entry.set_record(*std::move(bytes));
  return entry;
}

absl::StatusOr<std::string> Ledger::Checkpoint(uint64_t tree_size) const {
  if (tree_size == 0) {
    absl::MutexLock lock(&checkpoint_mu_);
    return latest_checkpoint_;
  }
  return store_->GetCheckpoint(tree_size);
}

absl::StatusOr<std::string> Ledger::WitnessedCheckpoint() const {
  absl::StatusOr<uint64_t> size = store_->WitnessedSize();
  if (!size.ok()) return size.status();
  if (*size == 0) return absl::NotFoundError("no checkpoint has been witnessed yet");
  return store_->GetCheckpoint(*size);
}

absl::Status Ledger::AddCosignatures(std::string_view cosigned_note) {
  absl::StatusOr<merkle::SignedNote> cosigned = merkle::ParseSignedNote(cosigned_note);
  if (!cosigned.ok()) return cosigned.status();
  auto opened = merkle::OpenCheckpoint(cosigned_note, info_.origin(), operator_key_.public_key());
  if (!opened.ok()) return opened.status();
  absl::MutexLock lock(&witnessed_mu_);  // read, compare and replace as one
  absl::StatusOr<std::string> stored_note = store_->GetCheckpoint(opened->size);
  if (!stored_note.ok()) return stored_note.status();
  absl::StatusOr<merkle::SignedNote> stored = merkle::ParseSignedNote(*stored_note);
  if (!stored.ok()) return absl::DataLossError(absl::StrCat("stored checkpoint of size ", opened->size, ": ",
                                                           stored.status().message()));
  if (stored->text != cosigned->text) {
    return absl::InvalidArgumentError(
        absl::StrCat("the cosigned checkpoint of size ", opened->size, " is not the one this ledger signed"));
  }
  for (const merkle::NoteSignature& line : stored->signatures) {
    bool kept = false;
    for (const merkle::NoteSignature& other : cosigned->signatures) kept = kept || other.line == line.line;
    if (!kept) {
      return absl::InvalidArgumentError(
          absl::StrCat("the cosigned checkpoint of size ", opened->size, " drops a signature line it had"));
    }
  }
  if (cosigned->signatures.size() == stored->signatures.size()) return absl::OkStatus();  // nothing new
  return store_->PutWitnessedCheckpoint(opened->size, cosigned_note);
}

absl::StatusOr<std::vector<merkle::Hash>> Ledger::InclusionProof(uint64_t position,
                                                                 uint64_t tree_size) const {
  const uint64_t size = store_->tree_size();
  if (tree_size == 0) tree_size = size;
  if (tree_size > size) {
    return Refuse(absl::StatusCode::kNotFound, v1::NO_SUCH_CHECKPOINT,
                  absl::StrCat("the log has ", size, " records, not ", tree_size));
  }
  if (position >= tree_size) {
    return Refuse(absl::StatusCode::kNotFound, v1::NO_SUCH_POSITION,
                  absl::StrCat("position ", position, " is not in a tree of size ", tree_size));
  }
  auto proof = merkle::InclusionProof(*store_, position, tree_size);
  if (!proof.ok()) return proof.status();
  // Served only if it verifies against the operator's signed root.
  auto root = SignedRoot(tree_size);
  if (absl::IsNotFound(root.status())) return proof;  // no checkpoint at this size to check against
  if (!root.ok()) return root.status();
  auto record = store_->GetRecord(position);
  if (!record.ok()) return record.status();
  auto verified = merkle::VerifyInclusion(merkle::HashLeaf(*record), position, tree_size, *proof, *root);
  if (auto s = ProofAgainstSignedRoot(verified, tree_size); !s.ok()) return s;
  return proof;
}

absl::StatusOr<merkle::Hash> Ledger::SignedRoot(uint64_t tree_size) const {
  auto note = store_->GetCheckpoint(tree_size);
  if (!note.ok()) return note.status();
  auto checkpoint = merkle::OpenCheckpoint(*note, info_.origin(), operator_key_.public_key());
  if (!checkpoint.ok() || checkpoint->size != tree_size) {
    return Refuse(absl::StatusCode::kDataLoss, v1::DATA_CORRUPTED,
                  absl::StrCat("stored checkpoint of size ", tree_size, " was altered",
                               checkpoint.ok() ? "" : absl::StrCat(": ", checkpoint.status().message())));
  }
  return checkpoint->root;
}

absl::Status Ledger::ProofAgainstSignedRoot(const absl::Status& proof_status, uint64_t tree_size) {
  if (proof_status.ok()) return absl::OkStatus();
  return Refuse(absl::StatusCode::kDataLoss, v1::DATA_CORRUPTED,
                absl::StrCat("a proof from the stored tree does not verify against the signed checkpoint of size ",
                             tree_size, ": the stored tree was altered (", proof_status.message(), ")"));
}

absl::StatusOr<std::vector<merkle::Hash>> Ledger::ConsistencyProof(uint64_t from_size,
                                                                   uint64_t to_size) const {
  const uint64_t size = store_->tree_size();
  if (to_size == 0) to_size = size;
  if (to_size > size) {
    return Refuse(absl::StatusCode::kNotFound, v1::NO_SUCH_CHECKPOINT,
                  absl::StrCat("the log has ", size, " records, not ", to_size));
  }
  if (from_size > to_size) {
    return Malformed(absl::StrCat("cannot prove size ", from_size, " consistent with smaller size ", to_size));
  }
  auto proof = merkle::ConsistencyProof(*store_, from_size, to_size);
  if (!proof.ok() || from_size == 0 || from_size == to_size) return proof;
  auto old_root = SignedRoot(from_size);
  auto new_root = SignedRoot(to_size);
  if (absl::IsNotFound(old_root.status()) || absl::IsNotFound(new_root.status())) return proof;
  if (!old_root.ok()) return old_root.status();
  if (!new_root.ok()) return new_root.status();
  auto verified = merkle::VerifyConsistency(from_size, to_size, *proof, *old_root, *new_root);
  if (auto s = ProofAgainstSignedRoot(verified, to_size); !s.ok()) return s;
  return proof;
}

int Ledger::AddListener(std::function<void(uint64_t)> on_commit) {
  absl::MutexLock lock(&listeners_mu_);
  int id = next_listener_++;
  listeners_.emplace(id, std::move(on_commit));
  return id;
}

void Ledger::RemoveListener(int id) {
  absl::MutexLock lock(&listeners_mu_);
  listeners_.erase(id);
}

}  // namespace ledger::store
