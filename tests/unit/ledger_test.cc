// Tests for ledger/store/ledger: the whole write path in process, over a real
// RocksDB in a temporary directory, with real keys and a deterministic clock.
#include "ledger/store/ledger.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <array>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "ledger/audit/bundle.h"
#include "ledger/audit/replay.h"
#include "ledger/audit/verifier.h"
#include "ledger/common/thread_pool.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/crypto/sha256.h"
#include "ledger/event/envelope.h"
#include "ledger/event/refusal.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/merkle/tree.h"
#include "ledger/rules/charter.h"
#include "ledger/rules/limits.h"
#include "ledger/rules/rules.h"
#include "ledger/rules/state.h"
#include "ledger/rules/version.h"
#include "ledger/store/queries.h"
#include "ledger/witness/cosignature.h"
#include "ledger/witness/policy.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"

namespace ledger::store {
namespace {

using ::ledger::testing::TempDir;
using crypto::PrivateKey;

constexpr char kLedgerId[] = "ledger-test";
constexpr char kOrigin[] = "decision-ledger/ledger-test";
constexpr int64_t kStartTime = 1'700'000'000'000'000'000;

// The answer to one Submit, and how many times `done` ran.
struct Answer {
  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  int calls ABSL_GUARDED_BY(mu) = 0;
  absl::StatusOr<std::vector<SubmitResult>> result ABSL_GUARDED_BY(mu) =
      absl::UnknownError("not answered");

  Ledger::Done Callback() {
    return [this](absl::StatusOr<std::vector<SubmitResult>> r) {
      absl::MutexLock lock(&mu);
      ++calls;
      done = true;
      result = std::move(r);
    };
  }
  absl::StatusOr<std::vector<SubmitResult>> Wait() {
    absl::MutexLock lock(&mu);
    if (!mu.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(120))) {
      return absl::DeadlineExceededError("no answer within 120 s");
    }
    return result;
  }
  int Calls() {
    absl::MutexLock lock(&mu);
    return calls;
  }
};

std::string Raw(const PrivateKey& key) { return std::string(key.public_key().raw()); }

// A public key unique per `name`, whose private key no test uses (it never
// has to sign). A real key pair's: rules v2 refuses arbitrary 32 bytes that
// are not a usable point (WEAK_KEY).
std::string RawKeyFor(const std::string& name) {
  auto key = PrivateKey::FromSeed(crypto::AsBytes(crypto::Sha256("public key of " + name)));
  return std::string(key->public_key().raw());
}

v1::EventBody Body(const std::string& author, const std::string& idempotency_key) {
  v1::EventBody body;
  body.set_ledger_id(kLedgerId);
  body.set_author(author);
  body.set_idempotency_key(idempotency_key);
  return body;
}

// Entries of a state snapshot other than the refusal counters and (rules
// version 2) the index of refused bytes.
absl::btree_map<std::string, std::string> WithoutRefusalCounters(
    absl::btree_map<std::string, std::string> state) {
  for (auto it = state.begin(); it != state.end();) {
    const bool refusal = absl::StartsWith(it->first, rules::kRefusalCounterPrefix) ||
                         absl::StartsWith(it->first, rules::kRefusedSubmissionPrefix);
    it = refusal ? state.erase(it) : std::next(it);
  }
  return state;
}

class LedgerTest : public ::testing::Test {
 protected:
  LedgerTest() : operator_key_(PrivateKey::Generate()), registrar_key_(PrivateKey::Generate()) {}

  LedgerOptions Options(bool with_genesis = true) {
    LedgerOptions options{.data_dir = dir_.path(), .operator_key = operator_key_};
    if (with_genesis) {
      GenesisSpec spec;
      spec.ledger_id = kLedgerId;
      v1::Registrar registrar;
      registrar.set_org_id("registrar");
      registrar.set_name("The Registrar");
      registrar.add_public_keys(Raw(registrar_key_));
      spec.registrars.push_back(registrar);
      spec.rules_version = genesis_rules_version_;
      options.genesis = spec;
    }
    options.verify_threads = 2;
    options.state_cache_bytes = state_cache_bytes_;
    options.key_cache_entries = key_cache_entries_;
    options.clock = [now = now_] { return now->fetch_add(1000); };
    return options;
  }

  void OpenLedger(bool with_genesis = true) {
    auto ledger = Ledger::Open(Options(with_genesis));
    ASSERT_TRUE(ledger.ok()) << ledger.status();
    ledger_ = std::move(*ledger);
  }
  void Close() { ledger_.reset(); }

  // A verify pool of one thread, held by a task that waits on `gate`: no
  // signature is checked until the test notifies it, so nothing depends on
  // timing. Released when it goes, so a failing test does not hang.
  struct HeldVerifyPool {
    absl::Notification gate;
    ThreadPool pool{1};
    HeldVerifyPool() {
      pool.Schedule([this] { gate.WaitForNotification(); });
    }
    ~HeldVerifyPool() {
      if (!gate.HasBeenNotified()) gate.Notify();
    }
  };
  // Reopens the ledger on `held`'s pool with the options `adjust` sets.
  void ReopenOnHeldPool(HeldVerifyPool& held, const std::function<void(LedgerOptions&)>& adjust) {
    Close();
    LedgerOptions options = Options(/*with_genesis=*/false);
    options.verify_pool = &held.pool;
    adjust(options);
    auto reopened = Ledger::Open(std::move(options));
    ASSERT_TRUE(reopened.ok()) << reopened.status();
    ledger_ = std::move(*reopened);
  }

  // Back-pressure: reopens on `held` with the in-flight limit `limit` sets;
  // `events` (answered into `first`) take the only slot it leaves, and one
  // more submission (org-c's registration) is refused at once,
  // RESOURCE_EXHAUSTED LIMIT_REACHED naming `flag`; nothing of it is queued.
  void FillTheOnlySlotAndRefuseTheNext(HeldVerifyPool& held, const std::function<void(LedgerOptions&)>& limit,
                                       std::vector<v1::SignedEvent> events, Answer& first,
                                       const std::string& flag);

  void SetUp() override { OpenLedger(); }

  uint32_t genesis_rules_version_ = rules::kLatestRulesVersion;  // what a new ledger starts under
  size_t state_cache_bytes_ = store::kDefaultStateCacheBytes;
  size_t key_cache_entries_ = store::kDefaultKeyCacheEntries;

  // Stories shared with TinyStateCacheLedgerTest.
  void ReopenedStateEqualsReplayFromGenesis();
  void GovernanceProjectionAfterRestartEqualsReplay();
  void ARefusedBatchLeavesNoProposalOfTheCollectiveBehind();
  void AnEarlierLayoutsCollectiveProposalsAreMigrated(bool without_marker);

  absl::StatusOr<std::vector<SubmitResult>> Submit(std::vector<v1::SignedEvent> events) {
    Answer answer;
    ledger_->Submit(std::move(events), answer.Callback());
    auto result = answer.Wait();
    EXPECT_EQ(answer.Calls(), 1);
    return result;
  }
  SubmitResult SubmitOne(const v1::SignedEvent& event) {
    auto result = Submit({event});
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok() || result->size() != 1) return SubmitResult();
    return (*result)[0];
  }

  v1::SignedEvent Register(const std::string& org_id, std::vector<std::string> raw_keys,
                           std::string idempotency_key = "") {
    v1::EventBody body =
        Body("registrar", idempotency_key.empty() ? "register/" + org_id : idempotency_key);
    auto* event = body.mutable_organisation_registered();
    event->set_org_id(org_id);
    event->set_name(org_id + " name");
    event->set_kind("nhs-trust");
    for (auto& raw : raw_keys) event->add_public_keys(raw);
    return SealEvent(body, registrar_key_);
  }
  static v1::SignedEvent AddKey(const std::string& org_id, const std::string& raw,
                                const std::string& author, const PrivateKey& key) {
    v1::EventBody body = Body(author, "add/" + crypto::KeyIdOf(raw));
    body.mutable_key_added()->set_org_id(org_id);
    body.mutable_key_added()->set_public_key(raw);
    return SealEvent(body, key);
  }
  static v1::SignedEvent RevokeKey(const std::string& org_id, const std::string& key_id,
                                   const std::string& author, const PrivateKey& key) {
    v1::EventBody body = Body(author, "revoke/" + key_id);
    body.mutable_key_revoked()->set_org_id(org_id);
    body.mutable_key_revoked()->set_key_id(key_id);
    return SealEvent(body, key);
  }
  // Rules v2: `author` confirms the pending identity change at `change`.
  static v1::SignedEvent Confirm(uint64_t change, const std::string& author, const PrivateKey& key) {
    v1::EventBody body = Body(author, absl::StrCat("confirm/", change));
    body.mutable_identity_change_confirmed()->set_change_position(change);
    return SealEvent(body, key);
  }
  v1::SignedEvent Merge(const std::string& merged, const std::string& successor) {
    v1::EventBody body = Body("registrar", "merge/" + merged);
    body.mutable_organisation_merged()->set_merged_org_id(merged);
    body.mutable_organisation_merged()->set_successor_org_id(successor);
    return SealEvent(body, registrar_key_);
  }

  // A submission refused by a rule (FAILED_PRECONDITION) from a registered
  // organisation: none of its events is written, but the refused one is kept
  // as a SubmissionRefused record at `position` (DESIGN §3), and the state
  // changes only by the author's refusal counter.
  void ExpectOnlyRefusalRecorded(uint64_t position,
                                 const absl::btree_map<std::string, std::string>& state_before,
                                 const v1::SignedEvent& refused, v1::Reason reason) {
    EXPECT_EQ(ledger_->size(), position + 1);
    EXPECT_EQ(WithoutRefusalCounters(StoredState()), WithoutRefusalCounters(state_before));
    auto entry = ledger_->Get(position);
    ASSERT_TRUE(entry.ok()) << entry.status();
    auto record = DecodeRecord(entry->record(), position);
    ASSERT_TRUE(record.ok()) << record.status();
    auto envelope = DecodeStoredEvent(*record);
    ASSERT_TRUE(envelope.ok()) << envelope.status();
    ASSERT_TRUE(envelope->body.has_submission_refused());
    EXPECT_EQ(envelope->body.author(), ledger_->info().operator_id());
    EXPECT_EQ(envelope->signed_event.key_id(), operator_key_.public_key().key_id());
    EXPECT_EQ(envelope->body.submission_refused().signed_event(), refused.SerializeAsString());
    EXPECT_EQ(envelope->body.submission_refused().reason(), reason);
  }

  // The projected state as stored.
  absl::btree_map<std::string, std::string> StoredState() {
    rules::State state;
    absl::Status s = ledger_->store().LoadState(&state);
    EXPECT_TRUE(s.ok()) << s;
    return state.Snapshot();
  }

  // Checks a receipt against the store: its checkpoint is signed by the
  // operator for this origin, covers the record, and its root is the stored
  // tree's root at that size; the inclusion proof verifies.
  void ExpectReceiptVerifies(const v1::Receipt& receipt) {
    SCOPED_TRACE(absl::StrCat("receipt for position ", receipt.position()));
    auto checkpoint =
        merkle::OpenCheckpoint(receipt.checkpoint(), kOrigin, operator_key_.public_key());
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
    EXPECT_EQ(checkpoint->origin, kOrigin);
    EXPECT_EQ(checkpoint->size, receipt.tree_size());
    EXPECT_LT(receipt.position(), receipt.tree_size());
    auto root = merkle::RootAt(ledger_->store(), receipt.tree_size());
    ASSERT_TRUE(root.ok()) << root.status();
    EXPECT_EQ(checkpoint->root, *root);
    auto stored = ledger_->store().GetCheckpoint(receipt.tree_size());
    ASSERT_TRUE(stored.ok()) << stored.status();
    EXPECT_EQ(*stored, receipt.checkpoint());

    auto entry = ledger_->Get(receipt.position());
    ASSERT_TRUE(entry.ok()) << entry.status();
    EXPECT_EQ(receipt.leaf_hash(), merkle::AsBytes(merkle::HashLeaf(entry->record())));
    auto record = DecodeRecord(entry->record(), receipt.position());
    ASSERT_TRUE(record.ok()) << record.status();
    EXPECT_EQ(record->ledger_time_unix_ns(), receipt.ledger_time_unix_ns());
    auto proof = ledger_->InclusionProof(receipt.position(), receipt.tree_size());
    ASSERT_TRUE(proof.ok()) << proof.status();
    auto leaf = merkle::HashFromBytes(receipt.leaf_hash());
    ASSERT_TRUE(leaf.ok());
    EXPECT_TRUE(merkle::VerifyInclusion(*leaf, receipt.position(), receipt.tree_size(), *proof,
                                        checkpoint->root)
                    .ok());
  }

  // Replays every record from position 0 through the rules, as an auditor
  // would (audit::Replayer: every signature, every member event accepted,
  // exactly the recorded system events and refusals implied), and returns the
  // resulting state.
  absl::btree_map<std::string, std::string> ReplayedState() {
    audit::Replayer replayer;
    absl::Status scan = ledger_->store().ScanRecords(
        0, ledger_->size(), [&](uint64_t position, std::string_view bytes) {
          auto record = DecodeRecord(bytes, position);
          EXPECT_TRUE(record.ok()) << record.status();
          if (!record.ok()) return false;
          absl::Status replayed = replayer.Next(*record);
          EXPECT_TRUE(replayed.ok()) << replayed;
          return replayed.ok();
        });
    EXPECT_TRUE(scan.ok()) << scan;
    EXPECT_TRUE(replayer.Finish().ok()) << replayer.Finish();
    EXPECT_EQ(replayer.records(), ledger_->size());
    return replayer.state().Snapshot();
  }

  // Organisations with keys of their own, acting through the write path (the
  // governance stories below).
  void RegisterMembers(std::initializer_list<const char*> orgs) {
    for (const char* org : orgs) {
      member_keys_.emplace(org, PrivateKey::Generate());
      SubmitOne(Register(org, {Raw(member_keys_.at(org))}));
    }
  }
  absl::StatusOr<std::vector<SubmitResult>> Act(const std::string& org, const v1::EventBody& payload) {
    v1::EventBody full = Body(org, absl::StrCat("act/", ++acts_));
    full.MergeFrom(payload);
    return Submit({SealEvent(full, member_keys_.at(org))});
  }
  absl::StatusOr<std::vector<SubmitResult>> Vote(const std::string& org, const std::string& gateway,
                                                 v1::Position position) {
    v1::EventBody body;
    body.mutable_vote_cast()->set_proposal_id("p1");
    body.mutable_vote_cast()->set_gateway_id(gateway);
    body.mutable_vote_cast()->set_position(position);
    return Act(org, body);
  }
  absl::StatusOr<std::vector<SubmitResult>> Propose(const std::string& org, const std::string& proposal_id) {
    v1::EventBody body;
    body.mutable_proposal_submitted()->set_collective_id("fed");
    body.mutable_proposal_submitted()->set_proposal_id(proposal_id);
    body.mutable_proposal_submitted()->set_title(absl::StrCat("proposal ", proposal_id));
    return Act(org, body);
  }
  // Collective "fed" under `charter` (proposed by its first founder, accepted
  // by every founder), and proposal "p1" in it.
  void FormAndPropose(const v1::Charter& charter) {
    v1::EventBody proposed;
    proposed.mutable_collective_proposed()->set_collective_id("fed");
    *proposed.mutable_collective_proposed()->mutable_charter() = charter;
    ASSERT_TRUE(Act(charter.founding_members(0), proposed).ok());
    for (const std::string& org : charter.founding_members()) {
      v1::EventBody accepted;
      accepted.mutable_charter_accepted()->set_collective_id("fed");
      accepted.mutable_charter_accepted()->set_charter_digest(rules::CharterDigest(charter));
      ASSERT_TRUE(Act(org, accepted).ok());
    }
    v1::EventBody submitted;
    submitted.mutable_proposal_submitted()->set_collective_id("fed");
    submitted.mutable_proposal_submitted()->set_proposal_id("p1");
    submitted.mutable_proposal_submitted()->set_title("shared pathology");
    ASSERT_TRUE(Act(charter.founding_members(0), submitted).ok());
  }

  TempDir dir_{"ledger_test"};
  std::shared_ptr<std::atomic<int64_t>> now_ = std::make_shared<std::atomic<int64_t>>(kStartTime);
  PrivateKey operator_key_;
  PrivateKey registrar_key_;
  std::unique_ptr<Ledger> ledger_;
  std::map<std::string, PrivateKey> member_keys_;
  int acts_ = 0;
};

class TinyStateCacheLedgerTest : public LedgerTest {
 protected:
  TinyStateCacheLedgerTest() {
    state_cache_bytes_ = 1;
    key_cache_entries_ = 1;
  }
};

void ExpectRefusal(const absl::StatusOr<std::vector<SubmitResult>>& result, absl::StatusCode code,
                   v1::Reason reason) {
  ASSERT_FALSE(result.ok()) << "accepted";
  EXPECT_EQ(result.status().code(), code) << result.status();
  EXPECT_EQ(ReasonOf(result.status()), reason) << result.status();
}

void LedgerTest::FillTheOnlySlotAndRefuseTheNext(HeldVerifyPool& held,
                                                 const std::function<void(LedgerOptions&)>& limit,
                                                 std::vector<v1::SignedEvent> events, Answer& first,
                                                 const std::string& flag) {
  ASSERT_NO_FATAL_FAILURE(ReopenOnHeldPool(held, limit));
  ledger_->Submit(std::move(events), first.Callback());
  EXPECT_EQ(ledger_->inflight_submissions(), 1u);
  Answer second;
  ledger_->Submit({Register("org-c", {RawKeyFor("c1")})}, second.Callback());
  auto refused = second.Wait();
  ExpectRefusal(refused, absl::StatusCode::kResourceExhausted, v1::LIMIT_REACHED);
  EXPECT_TRUE(absl::StrContains(refused.status().message(), flag)) << refused.status();
  EXPECT_EQ(ledger_->inflight_submissions(), 1u);
}

std::optional<std::string> BatchIndex(const absl::Status& status) {
  auto payload = status.GetPayload(kBatchIndexPayloadUrl);
  if (!payload.has_value()) return std::nullopt;
  return std::string(*payload);
}

// Shuts the ledger down when a test body ends, before the test's locals that
// its callbacks refer to are destroyed (even when an assertion returns early).
struct ShutdownFirst {
  Ledger* ledger;
  ~ShutdownFirst() { ledger->Shutdown(); }
};

// ------------------------------------------------------------ Genesis, reopen

TEST_F(LedgerTest, WritesGenesisOnFirstOpen) {
  EXPECT_EQ(ledger_->size(), 1u);
  EXPECT_EQ(ledger_->info().ledger_id(), kLedgerId);
  EXPECT_EQ(ledger_->info().origin(), kOrigin);
  EXPECT_EQ(ledger_->info().operator_id(), "operator");
  EXPECT_EQ(ledger_->info().operator_public_key(), Raw(operator_key_));
  EXPECT_EQ(ledger_->operator_public_key().key_id(), operator_key_.public_key().key_id());

  auto entry = ledger_->Get(0);
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_EQ(entry->position(), 0u);
  auto record = DecodeRecord(entry->record(), 0);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_GE(record->ledger_time_unix_ns(), kStartTime);
  auto envelope = DecodeStoredEvent(*record);
  ASSERT_TRUE(envelope.ok()) << envelope.status();
  ASSERT_TRUE(envelope->body.has_genesis());
  EXPECT_EQ(envelope->body.author(), "operator");
  EXPECT_EQ(envelope->body.ledger_id(), kLedgerId);
  EXPECT_EQ(envelope->body.genesis().origin(), kOrigin);
  EXPECT_EQ(envelope->body.genesis().operator_public_key(), Raw(operator_key_));
  ASSERT_EQ(envelope->body.genesis().registrars_size(), 1);
  EXPECT_EQ(envelope->signed_event.key_id(), operator_key_.public_key().key_id());
  EXPECT_TRUE(rules::CheckSignature(rules::State(), *envelope).ok());
  EXPECT_EQ(ledger_->Get(1).status().code(), absl::StatusCode::kNotFound);

  auto note = ledger_->Checkpoint(0);
  ASSERT_TRUE(note.ok()) << note.status();
  auto checkpoint = merkle::OpenCheckpoint(*note, kOrigin, operator_key_.public_key());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->size, 1u);
  EXPECT_EQ(checkpoint->root, merkle::HashLeaf(entry->record()));
  EXPECT_EQ(*ledger_->Checkpoint(1), *note);

  auto state = StoredState();
  EXPECT_EQ(state.count("o/registrar"), 1u);
  EXPECT_EQ(state.count("o/operator"), 1u);
  EXPECT_EQ(state.count("i"), 1u);
}

TEST_F(LedgerTest, ReopenWithAnotherOperatorKeyIsFailedPrecondition) {
  Close();
  LedgerOptions options = Options(/*with_genesis=*/false);
  options.operator_key = PrivateKey::Generate();
  auto ledger = Ledger::Open(std::move(options));
  ASSERT_FALSE(ledger.ok());
  EXPECT_EQ(ledger.status().code(), absl::StatusCode::kFailedPrecondition) << ledger.status();
  // Also when a Genesis spec is given: it is ignored for an existing ledger.
  options = Options(/*with_genesis=*/true);
  options.operator_key = PrivateKey::Generate();
  ledger = Ledger::Open(std::move(options));
  EXPECT_EQ(ledger.status().code(), absl::StatusCode::kFailedPrecondition) << ledger.status();
  // The right key still opens it, unchanged.
  OpenLedger(/*with_genesis=*/false);
  EXPECT_EQ(ledger_->size(), 1u);
}

TEST(LedgerOpen, EmptyDirectoryWithoutGenesisIsFailedPrecondition) {
  TempDir dir("ledger_test");
  LedgerOptions options{.data_dir = dir.path(), .operator_key = PrivateKey::Generate()};
  options.verify_threads = 1;
  auto ledger = Ledger::Open(std::move(options));
  ASSERT_FALSE(ledger.ok());
  EXPECT_EQ(ledger.status().code(), absl::StatusCode::kFailedPrecondition) << ledger.status();
}

TEST(LedgerOpen, InvalidGenesisIsRefusedAndNothingWritten) {
  TempDir dir("ledger_test");
  LedgerOptions options{.data_dir = dir.path(), .operator_key = PrivateKey::Generate()};
  options.verify_threads = 1;
  GenesisSpec spec;
  spec.ledger_id = "no-registrars";
  options.genesis = spec;
  auto ledger = Ledger::Open(options);
  ASSERT_FALSE(ledger.ok());
  EXPECT_EQ(ReasonOf(ledger.status()), v1::MISSING_FIELD) << ledger.status();
  auto store = Store::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->tree_size(), 0u);
}

TEST_F(LedgerTest, ReopenKeepsSizeStateAndCheckpoint) {
  const PrivateKey a1 = PrivateKey::Generate();
  SubmitOne(Register("org-a", {Raw(a1)}));
  SubmitOne(AddKey("org-a", RawKeyFor("a2"), "org-a", a1));
  auto results = Submit({Register("org-b", {RawKeyFor("b1")}), Register("org-c", {RawKeyFor("c1")})});
  ASSERT_TRUE(results.ok()) << results.status();
  const uint64_t size = ledger_->size();
  ASSERT_EQ(size, 5u);
  const auto state = StoredState();
  const std::string note = *ledger_->Checkpoint(0);
  const v1::LedgerInfo info = ledger_->info();
  const int64_t last_time = (*results)[1].receipt.ledger_time_unix_ns();

  Close();
  // A clock that went backwards: ledger time must not.
  now_->store(5);
  OpenLedger(/*with_genesis=*/false);
  EXPECT_EQ(ledger_->size(), size);
  EXPECT_EQ(StoredState(), state);
  EXPECT_EQ(*ledger_->Checkpoint(0), note);
  EXPECT_EQ(ledger_->info().SerializeAsString(), info.SerializeAsString());
  for (uint64_t s = 1; s <= size; ++s) {
    SCOPED_TRACE(s);
    EXPECT_TRUE(ledger_->Checkpoint(s).ok() || s == 4) << "size " << s;
  }

  // It goes on from where it was, with keys known from the stored state.
  SubmitResult next = SubmitOne(AddKey("org-a", RawKeyFor("a3"), "org-a", a1));
  EXPECT_EQ(next.receipt.position(), size);
  EXPECT_FALSE(next.replayed);
  EXPECT_GE(next.receipt.ledger_time_unix_ns(), last_time);
  ExpectReceiptVerifies(next.receipt);
  EXPECT_EQ(ReplayedState(), StoredState());
}

// ------------------------------------------------------------ group commit

TEST_F(LedgerTest, ConcurrentSubmitsAreEachAnsweredOnceWithDensePositions) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  constexpr int kTotal = kThreads * kPerThread;

  // Sign everything first, so that the threads only submit.
  std::vector<std::vector<v1::SignedEvent>> events(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      std::string org = absl::StrCat("org-", t, "-", i);
      events[t].push_back(Register(org, {RawKeyFor(org)}));
    }
  }

  std::vector<Answer> answers(kTotal);
  ShutdownFirst shutdown_first{ledger_.get()};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        ledger_->Submit({events[t][i]}, answers[t * kPerThread + i].Callback());
      }
    });
  }
  for (auto& thread : threads) thread.join();

  std::vector<uint64_t> positions;
  std::set<uint64_t> receipt_sizes;
  std::map<uint64_t, std::string> notes;
  std::vector<v1::Receipt> receipts;
  for (int n = 0; n < kTotal; ++n) {
    auto result = answers[n].Wait();
    ASSERT_TRUE(result.ok()) << "submission " << n << ": " << result.status();
    ASSERT_EQ(result->size(), 1u);
    const SubmitResult& r = (*result)[0];
    EXPECT_FALSE(r.replayed);
    positions.push_back(r.receipt.position());
    receipt_sizes.insert(r.receipt.tree_size());
    auto [it, inserted] = notes.emplace(r.receipt.tree_size(), r.receipt.checkpoint());
    if (!inserted) {
      EXPECT_EQ(it->second, r.receipt.checkpoint()) << "two notes for one size";
    }
    receipts.push_back(r.receipt);
  }
  std::sort(positions.begin(), positions.end());
  std::vector<uint64_t> dense(kTotal);
  for (int i = 0; i < kTotal; ++i) dense[i] = i + 1;  // 0 is Genesis
  EXPECT_EQ(positions, dense);
  EXPECT_EQ(ledger_->size(), static_cast<uint64_t>(kTotal + 1));

  // Group commit: fewer checkpoints (one per commit) than events.
  int checkpoints = 0;
  for (uint64_t size = 1; size <= ledger_->size(); ++size) {
    auto note = ledger_->store().GetCheckpoint(size);
    if (note.ok()) {
      ++checkpoints;
    } else {
      EXPECT_EQ(note.status().code(), absl::StatusCode::kNotFound) << note.status();
    }
  }
  EXPECT_LT(checkpoints, kTotal + 1);
  EXPECT_LT(receipt_sizes.size(), static_cast<size_t>(kTotal));
  // Every receipt names a written checkpoint; the latest is the whole log.
  EXPECT_EQ(*receipt_sizes.rbegin(), ledger_->size());
  EXPECT_LE(receipt_sizes.size(), static_cast<size_t>(checkpoints));
  std::cout << "[ INFO ] " << kTotal << " events in " << checkpoints - 1 << " commit groups\n";

  for (const v1::Receipt& receipt : receipts) ExpectReceiptVerifies(receipt);
  // Consistency between successive checkpoints: the log only grew.
  uint64_t previous = 0;
  merkle::Hash previous_root{};
  for (const auto& [size, note] : notes) {
    auto checkpoint = merkle::OpenCheckpoint(note, kOrigin, operator_key_.public_key());
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
    if (previous > 0) {
      auto proof = ledger_->ConsistencyProof(previous, size);
      ASSERT_TRUE(proof.ok()) << proof.status();
      EXPECT_TRUE(
          merkle::VerifyConsistency(previous, size, *proof, previous_root, checkpoint->root).ok());
    }
    previous = size;
    previous_root = checkpoint->root;
  }

  ledger_->Shutdown();
  for (int n = 0; n < kTotal; ++n) EXPECT_EQ(answers[n].Calls(), 1) << "submission " << n;
  EXPECT_EQ(ReplayedState(), StoredState());
}

TEST_F(LedgerTest, ConcurrentBatchesAreContiguous) {
  constexpr int kThreads = 4;
  constexpr int kBatches = 10;
  constexpr int kBatchSize = 5;
  std::vector<Answer> answers(kThreads * kBatches);
  ShutdownFirst shutdown_first{ledger_.get()};
  std::vector<std::thread> threads;
  std::vector<std::vector<std::vector<v1::SignedEvent>>> batches(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    for (int b = 0; b < kBatches; ++b) {
      std::vector<v1::SignedEvent> batch;
      for (int i = 0; i < kBatchSize; ++i) {
        std::string org = absl::StrCat("org-", t, "-", b, "-", i);
        batch.push_back(Register(org, {RawKeyFor(org)}));
      }
      batches[t].push_back(std::move(batch));
    }
  }
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) {
        ledger_->Submit(batches[t][b], answers[t * kBatches + b].Callback());
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::set<uint64_t> all;
  for (auto& answer : answers) {
    auto result = answer.Wait();
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_EQ(result->size(), static_cast<size_t>(kBatchSize));
    for (int i = 0; i < kBatchSize; ++i) {
      EXPECT_EQ((*result)[i].receipt.position(), (*result)[0].receipt.position() + i)
          << "a batch was not written at consecutive positions";
      EXPECT_EQ((*result)[i].receipt.tree_size(), (*result)[0].receipt.tree_size());
      all.insert((*result)[i].receipt.position());
    }
  }
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kBatches * kBatchSize));
  EXPECT_EQ(*all.begin(), 1u);
  EXPECT_EQ(*all.rbegin(), static_cast<uint64_t>(kThreads * kBatches * kBatchSize));
}

// ------------------------------------------------------------ idempotency

TEST_F(LedgerTest, IdenticalRetryReturnsTheOriginalReceipt) {
  const v1::SignedEvent event = Register("org-a", {RawKeyFor("a1")});
  const SubmitResult first = SubmitOne(event);
  EXPECT_FALSE(first.replayed);
  EXPECT_EQ(first.receipt.position(), 1u);
  ExpectReceiptVerifies(first.receipt);
  const auto state = StoredState();

  const SubmitResult again = SubmitOne(event);
  EXPECT_TRUE(again.replayed);
  EXPECT_EQ(again.receipt.position(), first.receipt.position());
  EXPECT_EQ(again.receipt.ledger_time_unix_ns(), first.receipt.ledger_time_unix_ns());
  EXPECT_EQ(again.receipt.leaf_hash(), first.receipt.leaf_hash());
  ExpectReceiptVerifies(again.receipt);
  EXPECT_EQ(ledger_->size(), 2u);
  EXPECT_EQ(StoredState(), state);

  // In a batch with a new event: the retry is replayed, the new one written.
  auto mixed = Submit({event, Register("org-b", {RawKeyFor("b1")})});
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  ASSERT_EQ(mixed->size(), 2u);
  EXPECT_TRUE((*mixed)[0].replayed);
  EXPECT_EQ((*mixed)[0].receipt.position(), 1u);
  EXPECT_FALSE((*mixed)[1].replayed);
  EXPECT_EQ((*mixed)[1].receipt.position(), 2u);
  EXPECT_EQ(ledger_->size(), 3u);

  // The same event twice in one batch is written once.
  const v1::SignedEvent c = Register("org-c", {RawKeyFor("c1")});
  auto twice = Submit({c, c});
  ASSERT_TRUE(twice.ok()) << twice.status();
  ASSERT_EQ(twice->size(), 2u);
  EXPECT_FALSE((*twice)[0].replayed);
  EXPECT_TRUE((*twice)[1].replayed);
  EXPECT_EQ((*twice)[0].receipt.position(), 3u);
  EXPECT_EQ((*twice)[1].receipt.position(), 3u);
  EXPECT_EQ((*twice)[1].receipt.leaf_hash(), (*twice)[0].receipt.leaf_hash());
  EXPECT_EQ(ledger_->size(), 4u);

  // Still replayed after a restart: the idempotency index is durable.
  Close();
  OpenLedger(/*with_genesis=*/false);
  const SubmitResult after = SubmitOne(event);
  EXPECT_TRUE(after.replayed);
  EXPECT_EQ(after.receipt.position(), 1u);
  EXPECT_EQ(after.receipt.ledger_time_unix_ns(), first.receipt.ledger_time_unix_ns());
  EXPECT_EQ(ledger_->size(), 4u);
}

// A retry is answered from the idempotency index only if it is itself a
// correctly signed submission (DESIGN §3: a badly signed submission is
// refused). Copying a public event's body under a made-up key id must not
// earn a success answer.
TEST_F(LedgerTest, RetryWithoutAValidSignatureIsRefused) {
  const v1::SignedEvent event = Register("org-a", {RawKeyFor("a1")});
  SubmitOne(event);

  v1::SignedEvent forged = event;
  forged.set_key_id(std::string(32, '0'));  // no such key
  forged.set_signature(std::string(crypto::kSignatureSize, '\0'));
  ExpectRefusal(Submit({forged}), absl::StatusCode::kUnauthenticated, v1::UNKNOWN_KEY);

  // Under the real key id, with a broken signature.
  forged = event;
  std::string signature = forged.signature();
  signature[5] ^= 0x01;
  forged.set_signature(signature);
  ExpectRefusal(Submit({forged}), absl::StatusCode::kUnauthenticated, v1::BAD_SIGNATURE);
  EXPECT_EQ(ledger_->size(), 2u);
}

TEST_F(LedgerTest, SameKeyDifferentBytesIsIdempotencyConflict) {
  SubmitOne(Register("org-a", {RawKeyFor("a1")}, "my-key"));
  const auto state = StoredState();
  ExpectRefusal(Submit({Register("org-b", {RawKeyFor("b1")}, "my-key")}),
                absl::StatusCode::kAlreadyExists, v1::IDEMPOTENCY_CONFLICT);
  EXPECT_EQ(ledger_->size(), 2u);
  EXPECT_EQ(StoredState(), state);

  // Within one batch, against an event of the same batch: nothing written.
  auto batch = Submit({Register("org-c", {RawKeyFor("c1")}, "batch-key"),
                       Register("org-d", {RawKeyFor("d1")}, "batch-key")});
  ExpectRefusal(batch, absl::StatusCode::kAlreadyExists, v1::IDEMPOTENCY_CONFLICT);
  EXPECT_EQ(BatchIndex(batch.status()), "1");
  EXPECT_EQ(ledger_->size(), 2u);
  EXPECT_EQ(StoredState(), state);
  // The key was not taken by the refused batch.
  SubmitResult d = SubmitOne(Register("org-d", {RawKeyFor("d1")}, "batch-key"));
  EXPECT_FALSE(d.replayed);
  EXPECT_EQ(d.receipt.position(), 2u);
}

// Back-pressure and the replay fast path, with the verify pool held by a
// task that waits on a gate: nothing here depends on timing.
TEST_F(LedgerTest, InflightLimitRefusesBeyondItAndAcceptedRetriesSkipTheQueue) {
  const v1::SignedEvent accepted = Register("org-a", {RawKeyFor("a1")});
  const SubmitResult original = SubmitOne(accepted);
  HeldVerifyPool held;
  Answer first;
  ASSERT_NO_FATAL_FAILURE(FillTheOnlySlotAndRefuseTheNext(
      held, [](LedgerOptions& options) { options.max_inflight_submissions = 1; },
      {Register("org-b", {RawKeyFor("b1")})}, first, "--max-inflight-submissions"));

  // The accepted event sent again is answered now, while the pool that
  // checks signatures is still held: from the idempotency index, the
  // original receipt, without a slot.
  Answer replay;
  ledger_->Submit({accepted}, replay.Callback());
  auto replayed = replay.Wait();
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  ASSERT_EQ(replayed->size(), 1u);
  EXPECT_TRUE((*replayed)[0].replayed);
  EXPECT_EQ((*replayed)[0].receipt.SerializeAsString(), original.receipt.SerializeAsString());
  // The same body under a forged signature is not: it waits for the pool
  // (here: no slot left).
  v1::SignedEvent forged = accepted;
  std::string signature = forged.signature();
  signature[3] ^= 0x01;
  forged.set_signature(signature);
  Answer forged_answer;
  ledger_->Submit({forged}, forged_answer.Callback());
  ExpectRefusal(forged_answer.Wait(), absl::StatusCode::kResourceExhausted, v1::LIMIT_REACHED);

  held.gate.Notify();
  auto written = first.Wait();
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ((*written)[0].receipt.position(), 2u);
  EXPECT_EQ(ledger_->inflight_submissions(), 0u);
  // A different event under the accepted one's idempotency key is still
  // refused by the sequencer, as before.
  ExpectRefusal(Submit({Register("org-x", {RawKeyFor("x1")}, "register/org-a")}), absl::StatusCode::kAlreadyExists,
                v1::IDEMPOTENCY_CONFLICT);
  ExpectRefusal(Submit({forged}), absl::StatusCode::kUnauthenticated, v1::BAD_SIGNATURE);
  EXPECT_EQ(ledger_->size(), 3u);
  Close();
}

// Issue 9: the verify pool takes authors in turn, a chunk each. The
// registrar's three submissions wait in the (held) pool before a member's
// one; with one pool thread, the member's is checked, and so written, right
// after the registrar's first, not behind all three.
TEST_F(LedgerTest, TheVerifyPoolTakesAuthorsInTurn) {
  RegisterMembers({"org-m"});
  HeldVerifyPool held;
  ASSERT_NO_FATAL_FAILURE(ReopenOnHeldPool(held, [](LedgerOptions&) {}));
  std::array<Answer, 3> registrar;
  for (size_t i = 0; i < registrar.size(); ++i) {
    const std::string org = absl::StrCat("org-r", i);
    ledger_->Submit({Register(org, {RawKeyFor(org)})}, registrar[i].Callback());
  }
  Answer member;
  ledger_->Submit({AddKey("org-m", RawKeyFor("m2"), "org-m", member_keys_.at("org-m"))}, member.Callback());
  held.gate.Notify();
  std::array<uint64_t, 3> positions{};
  for (size_t i = 0; i < registrar.size(); ++i) {
    auto written = registrar[i].Wait();
    ASSERT_TRUE(written.ok()) << written.status();
    positions[i] = (*written)[0].receipt.position();
  }
  auto written = member.Wait();
  ASSERT_TRUE(written.ok()) << written.status();
  const uint64_t member_position = (*written)[0].receipt.position();
  EXPECT_LT(positions[0], member_position);
  EXPECT_LT(member_position, positions[1]);
  EXPECT_LT(positions[1], positions[2]);
  Close();
}

TEST_F(LedgerTest, InflightBytesLimitRefusesBeyondItButTakesALoneSubmission) {
  HeldVerifyPool held;
  // Nothing in flight: taken, however large.
  Answer first;
  ASSERT_NO_FATAL_FAILURE(FillTheOnlySlotAndRefuseTheNext(
      held, [](LedgerOptions& options) { options.max_inflight_bytes = 1; },  // smaller than any submission
      {Register("org-a", {RawKeyFor("a1")}), Register("org-b", {RawKeyFor("b1")})}, first, "--max-inflight-bytes"));

  held.gate.Notify();
  ASSERT_TRUE(first.Wait().ok());
  EXPECT_EQ(ledger_->inflight_submissions(), 0u);
  // Its bytes were given back: the next one is taken.
  EXPECT_TRUE(Submit({Register("org-c", {RawKeyFor("c1")})}).ok());
  EXPECT_EQ(ledger_->size(), 4u);
  Close();
}

// ------------------------------------------------------------ batches

TEST_F(LedgerTest, BatchWithARefusedEventWritesNoneOfItsEvents) {
  SubmitOne(Register("org-a", {RawKeyFor("a1")}));
  const uint64_t size = ledger_->size();
  const auto state = StoredState();

  const v1::SignedEvent again = Register("org-a", {RawKeyFor("a2")}, "register/org-a-again");
  auto result = Submit({Register("org-x", {RawKeyFor("x1")}), Register("org-y", {RawKeyFor("y1")}),
                        again});
  ExpectRefusal(result, absl::StatusCode::kFailedPrecondition, v1::ORGANISATION_EXISTS);
  EXPECT_EQ(BatchIndex(result.status()), "2");
  EXPECT_TRUE(absl::StartsWith(result.status().message(), "event 2")) << result.status();
  // Neither org-x nor org-y was written; the refused attempt is on the record.
  ExpectOnlyRefusalRecorded(size, state, again, v1::ORGANISATION_EXISTS);
  EXPECT_EQ(StoredState().count("o/org-x"), 0u);

  // A refused batch next to an accepted submission in the same group does
  // not disturb it; and its events were not remembered as written.
  const uint64_t size2 = ledger_->size();
  Answer refused, accepted;
  ledger_->Submit({Register("org-a", {RawKeyFor("a3")}, "a3"), Register("org-z", {RawKeyFor("z")})},
                  refused.Callback());
  ledger_->Submit({Register("org-y", {RawKeyFor("y1")})}, accepted.Callback());
  ExpectRefusal(refused.Wait(), absl::StatusCode::kFailedPrecondition, v1::ORGANISATION_EXISTS);
  auto y = accepted.Wait();
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_FALSE((*y)[0].replayed);
  EXPECT_EQ(ledger_->size(), size2 + 2);  // org-y and one SubmissionRefused
  SubmitResult x = SubmitOne(Register("org-x", {RawKeyFor("x1")}));
  EXPECT_FALSE(x.replayed);
  EXPECT_EQ(x.receipt.position(), size2 + 2);
  EXPECT_EQ(StoredState().count("o/org-z"), 0u);
}

TEST_F(LedgerTest, RefusalsOtherThanRuleBreachesAreNotRecorded) {
  SubmitOne(Register("org-a", {RawKeyFor("a1")}, "my-key"));
  const auto state = StoredState();
  // ALREADY_EXISTS, UNAUTHENTICATED, INVALID_ARGUMENT: nothing kept.
  ExpectRefusal(Submit({Register("org-b", {RawKeyFor("b1")}, "my-key")}),
                absl::StatusCode::kAlreadyExists, v1::IDEMPOTENCY_CONFLICT);
  ExpectRefusal(Submit({AddKey("org-a", RawKeyFor("a2"), "org-a", PrivateKey::Generate())}),
                absl::StatusCode::kUnauthenticated, v1::UNKNOWN_KEY);
  ExpectRefusal(Submit({Register("bad id", {RawKeyFor("c1")})}), absl::StatusCode::kInvalidArgument,
                v1::MALFORMED);
  EXPECT_EQ(ledger_->size(), 2u);
  EXPECT_EQ(StoredState(), state);
  EXPECT_EQ(ReplayedState(), StoredState());
}

// DESIGN §4.3: replay must produce exactly the system events in the log, so a
// refusal is kept only as the log alone reproduces it: an event refused only
// because of its batch's unwritten earlier events is not recorded.
TEST_F(LedgerTest, RefusalOnlyItsOwnBatchCausedIsNotRecorded) {
  const uint64_t size = ledger_->size();
  const auto state = StoredState();
  // Refused only because of the batch's own first event, which is not written.
  const v1::SignedEvent second = Register("org-x", {RawKeyFor("x2")}, "x-again");
  auto result = Submit({Register("org-x", {RawKeyFor("x1")}), second});
  ExpectRefusal(result, absl::StatusCode::kFailedPrecondition, v1::ORGANISATION_EXISTS);
  // Alone, `second` would have been accepted: the log cannot reproduce its
  // refusal, so none is kept and nothing at all was written.
  EXPECT_EQ(ledger_->size(), size);
  EXPECT_EQ(StoredState(), state);
  EXPECT_EQ(ReplayedState(), StoredState());
}

// The same, for the message: the kept refusal must be the rules' own, not the
// batch annotation ("event 1: ...") that only the submitter's answer needs.
TEST_F(LedgerTest, RecordedRefusalOfABatchEventReplays) {
  SubmitOne(Register("org-a", {RawKeyFor("a1")}));
  const uint64_t size = ledger_->size();
  const auto state = StoredState();
  const v1::SignedEvent again = Register("org-a", {RawKeyFor("a2")}, "register/org-a-again");
  auto result = Submit({Register("org-x", {RawKeyFor("x1")}), again});
  ExpectRefusal(result, absl::StatusCode::kFailedPrecondition, v1::ORGANISATION_EXISTS);
  ASSERT_TRUE(absl::StartsWith(result.status().message(), "event 1")) << result.status();
  // The refusal is on the record, with the rules' message, not the answer's.
  ExpectOnlyRefusalRecorded(size, state, again, v1::ORGANISATION_EXISTS);
  ASSERT_OK_AND_ASSIGN(v1::RecordEntry entry, ledger_->Get(size));
  ASSERT_OK_AND_ASSIGN(v1::Record record, DecodeRecord(entry.record(), size));
  ASSERT_OK_AND_ASSIGN(Envelope envelope, DecodeStoredEvent(record));
  const std::string& kept = envelope.body.submission_refused().message();
  EXPECT_FALSE(kept.empty());
  EXPECT_FALSE(absl::StrContains(kept, "event 1")) << kept;
  EXPECT_EQ(ReplayedState(), StoredState());
}

TEST_F(LedgerTest, RecordedRefusalReplays) {
  SubmitOne(Register("org-a", {RawKeyFor("a1")}));
  const auto state = StoredState();
  const v1::SignedEvent again = Register("org-a", {RawKeyFor("a2")}, "register/org-a-again");
  ExpectRefusal(Submit({again}), absl::StatusCode::kFailedPrecondition, v1::ORGANISATION_EXISTS);
  ExpectOnlyRefusalRecorded(2, state, again, v1::ORGANISATION_EXISTS);
  EXPECT_EQ(StoredState().count("r/registrar"), 1u);
  EXPECT_EQ(ReplayedState(), StoredState());
}

TEST_F(LedgerTest, BatchWithABadSignatureChangesNothing) {
  const auto state = StoredState();
  v1::SignedEvent bad = Register("org-b", {RawKeyFor("b1")});
  std::string signature = bad.signature();
  signature[10] ^= 0x40;
  bad.set_signature(signature);
  auto result = Submit({Register("org-a", {RawKeyFor("a1")}), bad});
  ExpectRefusal(result, absl::StatusCode::kUnauthenticated, v1::BAD_SIGNATURE);
  EXPECT_EQ(BatchIndex(result.status()), "1");
  EXPECT_EQ(ledger_->size(), 1u);
  EXPECT_EQ(StoredState(), state);

  // Signed by a key nobody registered.
  v1::EventBody body = Body("registrar", "unknown-key");
  body.mutable_organisation_registered()->set_org_id("org-c");
  body.mutable_organisation_registered()->add_public_keys(RawKeyFor("c1"));
  ExpectRefusal(Submit({SealEvent(body, PrivateKey::Generate())}),
                absl::StatusCode::kUnauthenticated, v1::UNKNOWN_KEY);
  EXPECT_EQ(ledger_->size(), 1u);
}

TEST_F(LedgerTest, BatchMayUseAKeyRegisteredEarlierInTheBatch) {
  const PrivateKey y1 = PrivateKey::Generate();
  const PrivateKey y2 = PrivateKey::Generate();
  auto result = Submit({Register("org-y", {Raw(y1)}), AddKey("org-y", Raw(y2), "org-y", y1),
                        AddKey("org-y", RawKeyFor("y3"), "org-y", y2)});
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*result)[i].receipt.position(), 1 + i);
    ExpectReceiptVerifies((*result)[i].receipt);
  }
  auto state = StoredState();
  EXPECT_EQ(state.count("k/" + y2.public_key().key_id()), 1u);
  EXPECT_EQ(state.count("k/" + crypto::KeyIdOf(RawKeyFor("y3"))), 1u);

  // The new key is now known to the verify pool too.
  SubmitOne(AddKey("org-y", RawKeyFor("y4"), "org-y", y2));

  // A bad signature under a key registered in the same batch is caught by the
  // sequencer's check, and the whole batch is refused.
  const PrivateKey z1 = PrivateKey::Generate();
  v1::SignedEvent bad = AddKey("org-z", RawKeyFor("z2"), "org-z", z1);
  std::string signature = bad.signature();
  signature[0] ^= 0x01;
  bad.set_signature(signature);
  const uint64_t size = ledger_->size();
  const auto before = StoredState();
  auto refused = Submit({Register("org-z", {Raw(z1)}), bad});
  ExpectRefusal(refused, absl::StatusCode::kUnauthenticated, v1::BAD_SIGNATURE);
  EXPECT_EQ(BatchIndex(refused.status()), "1");
  EXPECT_EQ(ledger_->size(), size);
  EXPECT_EQ(StoredState(), before);
  // ...and the key of the refused registration is not usable afterwards.
  ExpectRefusal(Submit({AddKey("org-z", RawKeyFor("z3"), "org-z", z1)}),
                absl::StatusCode::kUnauthenticated, v1::UNKNOWN_KEY);
  EXPECT_EQ(ReplayedState(), StoredState());
}

TEST_F(LedgerTest, MalformedAndOversizeSubmissions) {
  ExpectRefusal(Submit({}), absl::StatusCode::kInvalidArgument, v1::MISSING_FIELD);
  std::vector<v1::SignedEvent> many(kMaxBatchEvents + 1, Register("org-a", {RawKeyFor("a1")}));
  ExpectRefusal(Submit(many), absl::StatusCode::kInvalidArgument, v1::OVERSIZE);

  v1::SignedEvent wrong_ledger = [&] {
    v1::EventBody body = Body("registrar", "wrong");
    body.set_ledger_id("another");
    body.mutable_organisation_registered()->set_org_id("org-w");
    body.mutable_organisation_registered()->add_public_keys(RawKeyFor("w1"));
    return SealEvent(body, registrar_key_);
  }();
  auto result = Submit({Register("org-a", {RawKeyFor("a1")}), wrong_ledger});
  ExpectRefusal(result, absl::StatusCode::kInvalidArgument, v1::WRONG_LEDGER);
  EXPECT_EQ(BatchIndex(result.status()), "1");

  EXPECT_EQ(ledger_->size(), 1u);
  const auto state = StoredState();
  v1::EventBody system = Body("registrar", "sys");
  system.mutable_gateway_passed()->set_proposal_id("p");
  const v1::SignedEvent forged_system = SealEvent(system, registrar_key_);
  ExpectRefusal(Submit({forged_system}), absl::StatusCode::kFailedPrecondition,
                v1::SYSTEM_EVENT_FROM_MEMBER);
  ExpectOnlyRefusalRecorded(1, state, forged_system, v1::SYSTEM_EVENT_FROM_MEMBER);
}

// ------------------------------------------------------------ replay

void LedgerTest::ReopenedStateEqualsReplayFromGenesis() {
  const PrivateKey a1 = PrivateKey::Generate();
  const PrivateKey a2 = PrivateKey::Generate();
  const PrivateKey b1 = PrivateKey::Generate();
  SubmitOne(Register("org-a", {Raw(a1)}));
  ASSERT_TRUE(Submit({Register("org-b", {Raw(b1)}), AddKey("org-a", Raw(a2), "org-a", a1)}).ok());
  SubmitOne(RevokeKey("org-a", a1.public_key().key_id(), "org-a", a2));
  // Refused: a1 is revoked.
  ExpectRefusal(Submit({AddKey("org-a", RawKeyFor("a3"), "org-a", a1)}),
                absl::StatusCode::kUnauthenticated, v1::REVOKED_KEY);
  SubmitOne(AddKey("org-b", RawKeyFor("b2"), "registrar", registrar_key_));  // pending (rules v2)
  const uint64_t merger = SubmitOne(Merge("org-b", "org-a")).receipt.position();
  SubmitOne(Confirm(merger, "org-b", b1));
  SubmitOne(Confirm(merger, "org-a", a2));  // the merger takes effect
  ExpectRefusal(Submit({AddKey("org-b", RawKeyFor("b3"), "org-b", b1)}),
                absl::StatusCode::kFailedPrecondition, v1::ORGANISATION_MERGED);
  // Several submissions in one group, one of them refused.
  Answer one, two, three;
  ledger_->Submit({Register("org-c", {RawKeyFor("c1")})}, one.Callback());
  ledger_->Submit({Register("org-c", {RawKeyFor("c2")}, "c-again")}, two.Callback());
  ledger_->Submit({AddKey("org-a", RawKeyFor("a4"), "org-a", a2)}, three.Callback());
  // The verify pool may hand `one` and `two` to the sequencer in either
  // order: whichever comes second is refused.
  auto first = one.Wait();
  auto second = two.Wait();
  EXPECT_NE(first.ok(), second.ok()) << first.status() << " / " << second.status();
  ExpectRefusal(first.ok() ? second : first, absl::StatusCode::kFailedPrecondition,
                v1::ORGANISATION_EXISTS);
  EXPECT_TRUE(three.Wait().ok());
  // 11 accepted records and 2 recorded refusals (ORGANISATION_MERGED,
  // ORGANISATION_EXISTS; REVOKED_KEY is UNAUTHENTICATED and not recorded).
  EXPECT_EQ(ledger_->size(), 13u);

  const auto live = StoredState();
  EXPECT_EQ(ReplayedState(), live);
  Close();
  OpenLedger(/*with_genesis=*/false);
  EXPECT_EQ(StoredState(), live);
  EXPECT_EQ(ReplayedState(), live);
  // The reopened ledger decides as the old one did.
  ExpectRefusal(Submit({AddKey("org-a", RawKeyFor("a5"), "org-a", a1)}),
                absl::StatusCode::kUnauthenticated, v1::REVOKED_KEY);
  SubmitOne(AddKey("org-a", RawKeyFor("a5"), "org-a", a2));
  EXPECT_EQ(ReplayedState(), StoredState());
}
TEST_F(LedgerTest, ReopenedStateEqualsReplayFromGenesis) { ReopenedStateEqualsReplayFromGenesis(); }
// Every read misses a state cache of one byte and a key cache of one key:
// the ledger decides from RocksDB alone, and must decide exactly as with everything cached.
TEST_F(TinyStateCacheLedgerTest, ReopenedStateEqualsReplayFromGenesis) { ReopenedStateEqualsReplayFromGenesis(); }

// Issue 9: a batch is decided in order, all or nothing, so the verify pool
// checks its events only up to one refused whatever the state: under rules
// v3, a member's vote beyond 1 + kMaxPositionChanges on one gateway. A
// forged signature after it is never reached: the refusal is the cap's.
// (Before v3 there is no cap: the forgery refuses the batch.)
class HostileBatchLedgerTest : public LedgerTest {
 protected:
  // Members trust-a and trust-b, and proposal p1 of their collective with
  // one unanimity gateway, "need", open.
  void OpenGatewayNeed() {
    RegisterMembers({"trust-a", "trust-b"});
    v1::Charter charter;
    for (const char* org : {"trust-a", "trust-b"}) charter.add_founding_members(org);
    v1::Gateway* gateway = charter.add_gateways();
    gateway->set_id("need");
    gateway->mutable_rule()->set_kind(v1::UNANIMITY);
    FormAndPropose(charter);
  }

  // trust-b's first vote on gateway "need" of p1 and every change it may
  // make, each submitted alone and accepted ("vote/0" ...), in order.
  std::vector<v1::SignedEvent> CastEveryAllowedVote() {
    std::vector<v1::SignedEvent> votes;
    for (int i = 0; i <= rules::kMaxPositionChanges; ++i) {
      v1::EventBody body = Body("trust-b", absl::StrCat("vote/", i));
      body.mutable_vote_cast()->set_proposal_id("p1");
      body.mutable_vote_cast()->set_gateway_id("need");
      body.mutable_vote_cast()->set_position(i % 2 == 0 ? v1::ASSENT : v1::OBJECT);
      votes.push_back(SealEvent(body, member_keys_.at("trust-b")));
      SubmitOne(votes.back());
    }
    return votes;
  }

  // trust-b's batch of `votes` votes on gateway "need" of p1, the last forged.
  absl::StatusOr<std::vector<SubmitResult>> SubmitHostileBatch(int votes) {
    OpenGatewayNeed();
    std::vector<v1::SignedEvent> batch;
    for (int i = 0; i < votes; ++i) {
      v1::EventBody body = Body("trust-b", absl::StrCat("hostile/", i));
      body.mutable_vote_cast()->set_proposal_id("p1");
      body.mutable_vote_cast()->set_gateway_id("need");
      body.mutable_vote_cast()->set_position(i % 2 == 0 ? v1::ASSENT : v1::OBJECT);
      batch.push_back(SealEvent(body, member_keys_.at("trust-b")));
    }
    std::string forged = batch.back().signature();
    forged[7] ^= 0x01;
    batch.back().set_signature(forged);
    size_before_ = ledger_->size();
    return Submit(batch);
  }
  uint64_t size_before_ = 0;
};

TEST_F(HostileBatchLedgerTest, IsCheckedOnlyUpToTheVoteBeyondThePositionCap) {
  auto result = SubmitHostileBatch(100);
  ExpectRefusal(result, absl::StatusCode::kFailedPrecondition, v1::POSITION_CHANGES_EXHAUSTED);
  EXPECT_EQ(BatchIndex(result.status()), absl::StrCat(rules::kMaxPositionChanges + 1));
  // Not recorded: only the batch's own earlier votes refuse that vote.
  EXPECT_EQ(ledger_->size(), size_before_);
  EXPECT_EQ(ReplayedState(), StoredState());
}

// The sequencer reads earlier uses of idempotency keys only for the events a
// decision can reach (the verify prefix). A replayed vote counts toward that
// prefix but changes no position, so a decision can go past it: then every
// event's earlier use is read and the group decided again, and a replay
// after the prefix is answered as the replay it is, not decided anew.
TEST_F(HostileBatchLedgerTest, AReplayPastTheVerifyPrefixIsStillAnsweredAsAReplay) {
  OpenGatewayNeed();
  const PrivateKey& key = member_keys_.at("trust-b");
  std::vector<v1::SignedEvent> batch = CastEveryAllowedVote();
  const v1::SignedEvent accepted_key = AddKey("trust-b", RawKeyFor("b2"), "trust-b", key);
  const SubmitResult original = SubmitOne(accepted_key);
  const uint64_t size = ledger_->size();
  // Every vote again, the first twice (the prefix ends there), then a new
  // event and the accepted key again: both past the prefix.
  batch.push_back(batch.front());
  ASSERT_EQ(batch.size(), rules::kMaxPositionChanges + 2u);
  batch.push_back(AddKey("trust-b", RawKeyFor("b3"), "trust-b", key));
  batch.push_back(accepted_key);
  auto result = Submit(batch);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->size(), batch.size());
  EXPECT_FALSE((*result)[batch.size() - 2].replayed);
  EXPECT_EQ((*result)[batch.size() - 2].receipt.position(), size);
  EXPECT_TRUE(result->back().replayed);
  EXPECT_EQ(result->back().receipt.position(), original.receipt.position());
  EXPECT_EQ(ledger_->size(), size + 1);  // only the new key
  EXPECT_EQ(ReplayedState(), StoredState());
}

// The same in a group of two, where deciding the first again changes how far
// the second goes. First decision: `replaying` (as above) goes past its
// prefix and is refused, the accepted key it repeats taken for a new one, so
// `reusing`, signed by the key `replaying` adds, stops at its first event
// (an unknown key) within its own prefix. Decided again, `replaying` is a
// replay with one new key, and `reusing` goes past its prefix to an
// idempotency key used earlier: unless it too was read whole, that event
// would be written a second time under the key.
TEST_F(HostileBatchLedgerTest, TwoBatchesInOneGroupAreBothReadWholeWhenOneGoesPastItsPrefix) {
  OpenGatewayNeed();
  const PrivateKey& key = member_keys_.at("trust-b");
  std::vector<v1::SignedEvent> votes = CastEveryAllowedVote();
  votes.push_back(votes.front());  // one vote too many: each batch's prefix ends here
  const v1::SignedEvent accepted_key = AddKey("trust-b", RawKeyFor("b2"), "trust-b", key);
  const SubmitResult original = SubmitOne(accepted_key);
  const v1::SignedEvent earlier = AddKey("trust-b", RawKeyFor("b6"), "trust-b", key);  // in neither batch
  SubmitOne(earlier);
  const uint64_t size = ledger_->size();

  const PrivateKey b3 = PrivateKey::Generate();
  std::vector<v1::SignedEvent> replaying = votes;
  replaying.push_back(AddKey("trust-b", Raw(b3), "trust-b", key));
  replaying.push_back(accepted_key);
  std::vector<v1::SignedEvent> reusing = {AddKey("trust-b", RawKeyFor("b4"), "trust-b", b3)};
  reusing.insert(reusing.end(), votes.begin(), votes.end());
  const std::string earlier_key = "add/" + crypto::KeyIdOf(RawKeyFor("b6"));
  v1::EventBody reused = Body("trust-b", earlier_key);  // another event under `earlier`'s key
  reused.mutable_key_added()->set_org_id("trust-b");
  reused.mutable_key_added()->set_public_key(RawKeyFor("b5"));
  reusing.push_back(SealEvent(reused, key));

  // One group, whatever the timing: the sequencer is held in the answer to
  // a registration while both batches are verified and queued behind it
  // (the pool has one thread and runs tasks in order, so a task scheduled
  // after both batches' runs once both are queued).
  HeldVerifyPool held;
  ASSERT_NO_FATAL_FAILURE(ReopenOnHeldPool(held, [](LedgerOptions&) {}));
  held.gate.Notify();
  absl::Notification holding, release;
  ledger_->Submit({Register("org-c", {RawKeyFor("c1")})},
                  [&](absl::StatusOr<std::vector<SubmitResult>>) {
                    holding.Notify();
                    release.WaitForNotification();
                  });
  holding.WaitForNotification();
  Answer replay_answer, reuse_answer;
  ledger_->Submit(replaying, replay_answer.Callback());
  ledger_->Submit(reusing, reuse_answer.Callback());
  absl::Notification both_queued;
  held.pool.Schedule([&] { both_queued.Notify(); });
  both_queued.WaitForNotification();
  const uint64_t groups = ledger_->groups_committed();
  release.Notify();

  auto replayed = replay_answer.Wait();
  auto refused = reuse_answer.Wait();
  EXPECT_EQ(ledger_->groups_committed(), groups + 1);  // both in one group
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  ASSERT_EQ(replayed->size(), replaying.size());
  EXPECT_FALSE((*replayed)[replaying.size() - 2].replayed);
  EXPECT_EQ((*replayed)[replaying.size() - 2].receipt.position(), size + 1);  // after org-c
  EXPECT_TRUE(replayed->back().replayed);
  EXPECT_EQ(replayed->back().receipt.position(), original.receipt.position());
  ExpectRefusal(refused, absl::StatusCode::kAlreadyExists, v1::IDEMPOTENCY_CONFLICT);
  EXPECT_EQ(BatchIndex(refused.status()), absl::StrCat(reusing.size() - 1));
  EXPECT_TRUE(absl::StrContains(refused.status().message(), absl::StrCat("\"", earlier_key, "\"")))
      << refused.status();
  // Counted: replay does not compare idempotency keys (the verifier's
  // density check does), so only the size shows a second use written.
  EXPECT_EQ(ledger_->size(), size + 2);  // org-c and the new key; ALREADY_EXISTS is not recorded
  EXPECT_EQ(ReplayedState(), StoredState());
  Close();
}

class HostileBatchV2LedgerTest : public HostileBatchLedgerTest {
 protected:
  void SetUp() override {
    genesis_rules_version_ = rules::kRulesV2;
    OpenLedger();
  }
};

TEST_F(HostileBatchV2LedgerTest, EveryEventIsCheckedAndTheForgeryRefusesIt) {
  auto result = SubmitHostileBatch(100);
  ExpectRefusal(result, absl::StatusCode::kUnauthenticated, v1::BAD_SIGNATURE);
  EXPECT_EQ(BatchIndex(result.status()), "99");
  EXPECT_EQ(ledger_->size(), size_before_);  // a forgery is not recorded
  EXPECT_EQ(ReplayedState(), StoredState());
}

// A data directory written before the derived-index entries existed (and
// before the refused-bytes index): the first open rebuilds them from what
// they derive from, and the next commit group writes them.
TEST_F(LedgerTest, AnEarlierReleasesDataDirectoryGetsItsDerivedIndexes) {
  RegisterMembers({"trust-a", "trust-b", "trust-c", "national"});
  v1::Charter charter;
  for (const char* org : {"trust-a", "trust-b", "trust-c"}) charter.add_founding_members(org);
  v1::Gateway* gateway = charter.add_gateways();
  gateway->set_id("need");
  gateway->mutable_rule()->set_kind(v1::UNANIMITY);
  gateway->set_deadline_seconds(10);
  FormAndPropose(charter);
  SubmitOne(AddKey("trust-a", RawKeyFor("a2"), "registrar", registrar_key_));  // pending: a notice
  ASSERT_TRUE(Vote("trust-a", "need", v1::ASSENT).ok());
  const auto locked = Vote("trust-b", "nowhere", v1::ASSENT);  // a recorded refusal
  ExpectRefusal(locked, absl::StatusCode::kFailedPrecondition, v1::UNKNOWN_GATEWAY);

  auto derived = [&] {
    std::map<std::string, std::string> entries;
    for (absl::string_view prefix : {rules::kDeadlineIndexPrefix, rules::kNoticeIndexPrefix,
                                     rules::kRefusedSubmissionPrefix, rules::kDerivedIndexesKey}) {
      EXPECT_TRUE(ledger_->store()
                      .ScanState(std::string(prefix),
                                 [&](std::string_view key, std::string_view value) {
                                   entries.emplace(key, value);
                                   return true;
                                 })
                      .ok());
    }
    return entries;
  };
  const auto before = derived();
  ASSERT_EQ(std::count_if(before.begin(), before.end(),
                          [](const auto& e) { return absl::StartsWith(e.first, rules::kDeadlineIndexPrefix); }),
            1);
  ASSERT_EQ(std::count_if(before.begin(), before.end(),
                          [](const auto& e) { return absl::StartsWith(e.first, rules::kNoticeIndexPrefix); }),
            1);
  ASSERT_EQ(std::count_if(before.begin(), before.end(),
                          [](const auto& e) { return absl::StartsWith(e.first, rules::kRefusedSubmissionPrefix); }),
            1);
  const uint64_t size = ledger_->size();
  Close();
  {
    auto store = store::Store::Open(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status();
    store::CommitGroup erase;
    for (const auto& [key, value] : before) erase.state_changes.emplace_back(key, std::nullopt);
    erase.new_tree_size = size;
    auto note = (*store)->GetCheckpoint(size);
    ASSERT_TRUE(note.ok());
    erase.checkpoint_note = *note;
    ASSERT_TRUE((*store)->Write(erase).ok());
  }
  OpenLedger(/*with_genesis=*/false);
  EXPECT_TRUE(derived().empty());
  // The rebuilt indexes decide: the deadline lapses the gateway in the next
  // group, and the next commit writes them back.
  now_->fetch_add(20'000'000'000);
  RegisterMembers({"trust-d"});
  const v1::ProposalState* proposal = nullptr;
  rules::State stored;
  ASSERT_TRUE(ledger_->store().LoadState(&stored).ok());
  proposal = stored.FindProposal("p1");
  ASSERT_NE(proposal, nullptr);
  EXPECT_EQ(proposal->gateway_states(0).status(), v1::GATEWAY_LAPSED);
  auto after = derived();
  for (const auto& [key, value] : before) {
    if (absl::StartsWith(key, rules::kDeadlineIndexPrefix)) {
      EXPECT_FALSE(after.contains(key)) << "the lapsed gateway's deadline stays indexed";
    } else {
      EXPECT_TRUE(after.contains(key)) << key;
    }
  }
  EXPECT_EQ(ReplayedState(), StoredState());
}

// ------------------------------------------------------------ a collective's proposals

// The "cp/" entries of a collective, in key order (submission order).
std::vector<std::string> CollectiveProposalEntries(const store::Store& store, const std::string& collective_id) {
  std::vector<std::string> ids;
  const std::string prefix = rules::CollectiveProposalPrefix(collective_id);
  EXPECT_TRUE(store
                  .ScanState(prefix,
                             [&](std::string_view key, std::string_view value) {
                               auto id = rules::CollectiveProposalId(absl::string_view(key.data(), key.size()), prefix);
                               EXPECT_TRUE(id.has_value()) << key;
                               EXPECT_TRUE(value.empty()) << key;
                               ids.push_back(id.value_or("?"));
                               return true;
                             })
                  .ok());
  return ids;
}

// The collective's entry as stored (not as GetCollective answers).
v1::CollectiveState StoredCollective(const store::Store& store, const std::string& collective_id) {
  v1::CollectiveState collective;
  auto value = store.GetState(absl::StrCat(rules::kCollectivePrefix, collective_id));
  EXPECT_TRUE(value.ok() && value->has_value()) << collective_id;
  if (value.ok() && value->has_value()) {
    EXPECT_TRUE(collective.ParseFromString(**value));
  }
  return collective;
}

std::vector<std::string> ListedProposals(const store::Store& store, const std::string& collective_id) {
  auto collective = store::Queries(&store).Collective(collective_id);
  EXPECT_TRUE(collective.ok()) << collective.status();
  if (!collective.ok()) return {};
  return {collective->proposal_ids().begin(), collective->proposal_ids().end()};
}

v1::Charter OneGatewayCharter() {
  v1::Charter charter;
  for (const char* org : {"trust-a", "trust-b", "trust-c"}) charter.add_founding_members(org);
  v1::Gateway* gateway = charter.add_gateways();
  gateway->set_id("need");
  gateway->mutable_rule()->set_kind(v1::UNANIMITY);
  return charter;
}

// Each proposal is an entry of its own under its collective ("cp/"): a
// submission writes it and leaves the collective's entry as it was, so the
// n-th proposal of a collective costs what the first did.
TEST_F(LedgerTest, AProposalIsListedUnderItsCollectiveWithoutRewritingIt) {
  RegisterMembers({"trust-a", "trust-b", "trust-c"});
  FormAndPropose(OneGatewayCharter());
  auto collective_entry = ledger_->store().GetState(absl::StrCat(rules::kCollectivePrefix, "fed"));
  ASSERT_TRUE(collective_entry.ok() && collective_entry->has_value());
  ASSERT_TRUE(Propose("trust-b", "p2").ok());
  ASSERT_TRUE(Propose("trust-c", "a-later-one").ok());
  EXPECT_EQ(ledger_->store().GetState(absl::StrCat(rules::kCollectivePrefix, "fed")).value(), *collective_entry)
      << "a submission rewrote the collective's entry";
  EXPECT_EQ(StoredCollective(ledger_->store(), "fed").proposal_ids_size(), 0);
  const std::vector<std::string> in_order = {"p1", "p2", "a-later-one"};  // submission order, not id order
  EXPECT_EQ(CollectiveProposalEntries(ledger_->store(), "fed"), in_order);
  EXPECT_EQ(ListedProposals(ledger_->store(), "fed"), in_order);
  v1::ListProposalsRequest request;
  request.mutable_filter()->set_collective_id("fed");
  auto listed = store::Queries(&ledger_->store()).Proposals(request);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->proposals_size(), 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(listed->proposals(i).proposal_id(), in_order[i]);
  EXPECT_TRUE(listed->next_page_token().empty());
  const uint64_t p2_at = listed->proposals(1).submitted_at();
  // Pages of two, with and without a filter, resume where the last stopped.
  request.mutable_filter()->set_limit(2);
  listed = store::Queries(&ledger_->store()).Proposals(request);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->proposals_size(), 2);
  EXPECT_EQ(listed->proposals(1).proposal_id(), "p2");
  ASSERT_FALSE(listed->next_page_token().empty());
  request.mutable_filter()->set_page_token(listed->next_page_token());
  listed = store::Queries(&ledger_->store()).Proposals(request);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->proposals_size(), 1);
  EXPECT_EQ(listed->proposals(0).proposal_id(), "a-later-one");
  EXPECT_TRUE(listed->next_page_token().empty());
  request.mutable_filter()->clear_page_token();
  request.mutable_filter()->set_limit(1);
  request.mutable_filter()->set_from_position(p2_at);  // p2 and a-later-one
  listed = store::Queries(&ledger_->store()).Proposals(request);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->proposals_size(), 1);
  EXPECT_EQ(listed->proposals(0).proposal_id(), "p2");
  request.mutable_filter()->set_page_token(listed->next_page_token());
  listed = store::Queries(&ledger_->store()).Proposals(request);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->proposals_size(), 1);
  EXPECT_EQ(listed->proposals(0).proposal_id(), "a-later-one");
  EXPECT_TRUE(listed->next_page_token().empty());
  EXPECT_EQ(ReplayedState(), StoredState());
}

// A proposal submitted in a batch that is then refused (the batch is all or
// nothing) leaves no "cp/" entry behind; submitted again alone it is listed.
void LedgerTest::ARefusedBatchLeavesNoProposalOfTheCollectiveBehind() {
  RegisterMembers({"trust-a", "trust-b", "trust-c"});
  FormAndPropose(OneGatewayCharter());
  v1::EventBody proposal = Body("trust-a", "batch/p2");
  proposal.mutable_proposal_submitted()->set_collective_id("fed");
  proposal.mutable_proposal_submitted()->set_proposal_id("p2");
  proposal.mutable_proposal_submitted()->set_title("in a refused batch");
  v1::EventBody vote = Body("trust-b", "batch/vote");
  vote.mutable_vote_cast()->set_proposal_id("p2");
  vote.mutable_vote_cast()->set_gateway_id("nowhere");
  vote.mutable_vote_cast()->set_position(v1::ASSENT);
  ExpectRefusal(Submit({SealEvent(proposal, member_keys_.at("trust-a")), SealEvent(vote, member_keys_.at("trust-b"))}),
                absl::StatusCode::kFailedPrecondition, v1::UNKNOWN_GATEWAY);
  EXPECT_EQ(CollectiveProposalEntries(ledger_->store(), "fed"), std::vector<std::string>{"p1"});
  EXPECT_EQ(ListedProposals(ledger_->store(), "fed"), std::vector<std::string>{"p1"});
  EXPECT_FALSE(StoredState().contains(absl::StrCat(rules::kProposalPrefix, "p2")));
  ASSERT_TRUE(Propose("trust-a", "p2").ok());
  EXPECT_EQ(CollectiveProposalEntries(ledger_->store(), "fed"), (std::vector<std::string>{"p1", "p2"}));
  EXPECT_EQ(ReplayedState(), StoredState());
}

TEST_F(LedgerTest, ARefusedBatchLeavesNoProposalOfTheCollectiveBehind) {
  ARefusedBatchLeavesNoProposalOfTheCollectiveBehind();
}
TEST_F(TinyStateCacheLedgerTest, ARefusedBatchLeavesNoProposalOfTheCollectiveBehind) {
  ARefusedBatchLeavesNoProposalOfTheCollectiveBehind();
}

// A data directory of a release that listed a collective's proposals in its
// entry (proposal_ids; derived-index marker "1", or none before that): the
// ledger opens it, answers from the old list until its first commit group,
// which writes the "cp/" entries and the collectives without their lists.
void LedgerTest::AnEarlierLayoutsCollectiveProposalsAreMigrated(bool without_marker) {
  RegisterMembers({"trust-a", "trust-b", "trust-c"});
  FormAndPropose(OneGatewayCharter());
  ASSERT_TRUE(Propose("trust-b", "p2").ok());
  const auto state = StoredState();
  const uint64_t size = ledger_->size();
  Close();
  {
    auto store = store::Store::Open(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status();
    store::CommitGroup earlier;
    const std::vector<std::string> ids = CollectiveProposalEntries(**store, "fed");
    ASSERT_EQ(ids, (std::vector<std::string>{"p1", "p2"}));
    ASSERT_TRUE((*store)
                    ->ScanState(std::string(rules::kCollectiveProposalPrefix),
                                [&](std::string_view key, std::string_view) {
                                  earlier.state_changes.emplace_back(std::string(key), std::nullopt);
                                  return true;
                                })
                    .ok());
    v1::CollectiveState collective = StoredCollective(**store, "fed");
    for (const std::string& id : ids) collective.add_proposal_ids(id);
    earlier.state_changes.emplace_back(absl::StrCat(rules::kCollectivePrefix, "fed"), collective.SerializeAsString());
    earlier.state_changes.emplace_back(std::string(rules::kDerivedIndexesKey),
                                       without_marker ? std::nullopt : std::optional<std::string>("1"));
    earlier.new_tree_size = size;
    auto note = (*store)->GetCheckpoint(size);
    ASSERT_TRUE(note.ok());
    earlier.checkpoint_note = *note;
    ASSERT_TRUE((*store)->Write(earlier).ok());
    ASSERT_TRUE(CollectiveProposalEntries(**store, "fed").empty());
  }
  OpenLedger(/*with_genesis=*/false);
  EXPECT_EQ(StoredCollective(ledger_->store(), "fed").proposal_ids_size(), 2) << "not the earlier layout";
  EXPECT_EQ(ListedProposals(ledger_->store(), "fed"), (std::vector<std::string>{"p1", "p2"}));
  EXPECT_EQ(StoredState(), state) << "the earlier layout loads as the current one";
  ASSERT_TRUE(Propose("trust-c", "p3").ok());
  const std::vector<std::string> all = {"p1", "p2", "p3"};
  EXPECT_EQ(CollectiveProposalEntries(ledger_->store(), "fed"), all);
  EXPECT_EQ(StoredCollective(ledger_->store(), "fed").proposal_ids_size(), 0);
  EXPECT_EQ(ListedProposals(ledger_->store(), "fed"), all);
  auto marker = ledger_->store().GetState(std::string(rules::kDerivedIndexesKey));
  ASSERT_TRUE(marker.ok() && marker->has_value());
  EXPECT_EQ(**marker, rules::kDerivedIndexesVersion);
  EXPECT_EQ(ReplayedState(), StoredState());
  // Once: a restart finds the current layout.
  Close();
  OpenLedger(/*with_genesis=*/false);
  ASSERT_TRUE(Propose("trust-a", "p4").ok());
  EXPECT_EQ(ListedProposals(ledger_->store(), "fed"), (std::vector<std::string>{"p1", "p2", "p3", "p4"}));
}

TEST_F(LedgerTest, AnEarlierLayoutsCollectiveProposalsAreMigrated) {
  AnEarlierLayoutsCollectiveProposalsAreMigrated(/*without_marker=*/false);
}
TEST_F(LedgerTest, AnEarlierLayoutsCollectiveProposalsAreMigratedWithItsIndexes) {
  AnEarlierLayoutsCollectiveProposalsAreMigrated(/*without_marker=*/true);
}

// ------------------------------------------------------------ shutdown

TEST_F(LedgerTest, ShutdownFinishesAcceptedWorkThenRefuses) {
  constexpr int kInFlight = 50;
  std::vector<Answer> answers(kInFlight);
  for (int i = 0; i < kInFlight; ++i) {
    std::string org = absl::StrCat("org-", i);
    ledger_->Submit({Register(org, {RawKeyFor(org)})}, answers[i].Callback());
  }
  ledger_->Shutdown();
  // Everything accepted before Shutdown was answered, once, and is durable.
  for (int i = 0; i < kInFlight; ++i) {
    EXPECT_EQ(answers[i].Calls(), 1) << i;
    auto result = answers[i].Wait();
    EXPECT_TRUE(result.ok()) << i << ": " << result.status();
  }
  EXPECT_EQ(ledger_->size(), static_cast<uint64_t>(kInFlight + 1));

  Answer late;
  ledger_->Submit({Register("org-late", {RawKeyFor("late")})}, late.Callback());
  auto result = late.Wait();
  ExpectRefusal(result, absl::StatusCode::kUnavailable, v1::SHUTTING_DOWN);
  ledger_->Shutdown();  // idempotent
  EXPECT_EQ(late.Calls(), 1);
  EXPECT_EQ(ledger_->size(), static_cast<uint64_t>(kInFlight + 1));

  Close();
  OpenLedger(/*with_genesis=*/false);
  EXPECT_EQ(ledger_->size(), static_cast<uint64_t>(kInFlight + 1));
}

TEST_F(LedgerTest, ListenersSeeEveryCommit) {
  absl::Mutex mu;
  std::vector<uint64_t> sizes;
  int id = ledger_->AddListener([&](uint64_t size) {
    absl::MutexLock lock(&mu);
    sizes.push_back(size);
  });
  SubmitOne(Register("org-a", {RawKeyFor("a1")}));
  SubmitOne(Register("org-b", {RawKeyFor("b1")}));
  {
    // Listeners run after the answers: wait for the second commit's call.
    absl::MutexLock lock(&mu);
    ASSERT_TRUE(mu.AwaitWithTimeout(
        absl::Condition(+[](std::vector<uint64_t>* s) { return s->size() >= 2; }, &sizes),
        absl::Seconds(60)));
  }
  ledger_->RemoveListener(id);
  SubmitOne(Register("org-c", {RawKeyFor("c1")}));
  ledger_->Shutdown();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(sizes, (std::vector<uint64_t>{2, 3}));
}

}  // namespace
}  // namespace ledger::store

namespace ledger::store {
namespace {

// A governance story through the whole write path: formation, a veto, a
// lapse written when due, a call overruling the objector, adoption with a
// taper, and an attempted reversal kept on the record. The projection after a
// restart equals the state an auditor rebuilds by replaying the log.
void LedgerTest::GovernanceProjectionAfterRestartEqualsReplay() {
  RegisterMembers({"trust-a", "trust-b", "trust-c", "national"});
  v1::Charter charter;
  for (const char* org : {"trust-a", "trust-b", "trust-c"}) charter.add_founding_members(org);
  for (const char* id : {"need", "principles", "final"}) {
    v1::Gateway* g = charter.add_gateways();
    g->set_id(id);
    g->mutable_rule()->set_kind(std::string(id) == "final" ? v1::MAJORITY : v1::UNANIMITY);
    g->add_callers("national");
    if (std::string(id) == "principles") g->set_deadline_seconds(10);
  }
  for (uint32_t percent : {100, 50, 0}) charter.mutable_taper()->add_percent_by_year(percent);
  FormAndPropose(charter);
  for (const char* org : {"trust-a", "trust-b", "trust-c"}) ASSERT_TRUE(Vote(org, "need", v1::ASSENT).ok());
  ASSERT_TRUE(Vote("trust-a", "principles", v1::ASSENT).ok());
  ASSERT_TRUE(Vote("trust-b", "principles", v1::OBJECT).ok());

  // The deadline passes; the next commit writes the lapse first.
  now_->fetch_add(20'000'000'000);
  v1::EventBody impact;
  impact.mutable_impact_declared()->set_proposal_id("p1");
  impact.mutable_impact_declared()->set_annual_impact_pence(90'000);
  ASSERT_TRUE(Act("trust-c", impact).ok());
  v1::EventBody call;
  call.mutable_decision_called()->set_proposal_id("p1");
  call.mutable_decision_called()->set_gateway_id("principles");
  call.mutable_decision_called()->set_outcome(v1::PASS);
  call.mutable_decision_called()->set_rationale("the evidence is clear");
  ASSERT_TRUE(Act("national", call).ok());
  ASSERT_TRUE(Vote("trust-a", "final", v1::ASSENT).ok());
  ASSERT_TRUE(Vote("trust-b", "final", v1::ASSENT).ok());
  ASSERT_TRUE(Vote("trust-c", "final", v1::OBJECT).ok());
  auto reversal = Vote("trust-b", "need", v1::OBJECT);
  ExpectRefusal(reversal, absl::StatusCode::kFailedPrecondition, v1::GATEWAY_LOCKED);

  // Every kind of system event the story implies is in the log.
  std::set<std::string> kinds;
  ASSERT_TRUE(ledger_->store()
                  .ScanRecords(0, ledger_->size(),
                               [&](uint64_t position, std::string_view bytes) {
                                 auto record = DecodeRecord(bytes, position);
                                 auto envelope = DecodeStoredEvent(*record);
                                 kinds.insert(EventKind(envelope->body));
                                 return true;
                               })
                  .ok());
  for (const char* kind : {"collective_formed", "gateway_passed", "gateway_lapsed", "decision_adopted",
                           "submission_refused"}) {
    EXPECT_TRUE(kinds.contains(kind)) << kind;
  }
  rules::State live;
  ASSERT_TRUE(ledger_->store().LoadState(&live).ok());
  const v1::ProposalState* p1 = live.FindProposal("p1");
  ASSERT_NE(p1, nullptr);
  EXPECT_EQ(p1->status(), v1::PROPOSAL_ADOPTED);
  ASSERT_EQ(p1->adoption().tapers_size(), 1);
  EXPECT_EQ(std::vector<int64_t>(p1->adoption().tapers(0).support_by_year_pence().begin(),
                                 p1->adoption().tapers(0).support_by_year_pence().end()),
            (std::vector<int64_t>{90'000, 45'000, 0}));
  EXPECT_EQ(p1->gateway_states(1).overruled(0), "trust-b");

  Close();
  OpenLedger(/*with_genesis=*/false);
  EXPECT_EQ(StoredState(), live.Snapshot());
  EXPECT_EQ(ReplayedState(), StoredState());
}
TEST_F(LedgerTest, GovernanceProjectionAfterRestartEqualsReplay) { GovernanceProjectionAfterRestartEqualsReplay(); }
// Every read misses a state cache of one byte and a key cache of one key:
// the ledger decides from RocksDB alone, and must decide exactly as with everything cached.
TEST_F(TinyStateCacheLedgerTest, GovernanceProjectionAfterRestartEqualsReplay) { GovernanceProjectionAfterRestartEqualsReplay(); }

}  // namespace
}  // namespace ledger::store

namespace ledger::store {
namespace {

// A second "Genesis" names its own key; after the first record that key means
// nothing. It must be refused as unauthenticated and leave no refusal record
// in anyone's name (else anybody could fill an organisation's allowance).
TEST_F(LedgerTest, LaterGenesisWithItsOwnKeyIsUnauthenticatedAndNotRecorded) {
  const PrivateKey throwaway = PrivateKey::Generate();
  v1::EventBody body = Body("registrar", "fake-genesis");
  body.mutable_genesis()->set_operator_id("registrar");
  body.mutable_genesis()->set_operator_public_key(Raw(throwaway));
  body.mutable_genesis()->set_origin("decision-ledger/fake");
  body.mutable_genesis()->add_registrars()->set_org_id("someone");
  const uint64_t size = ledger_->size();
  const auto state = StoredState();
  ExpectRefusal(Submit({SealEvent(body, throwaway)}), absl::StatusCode::kUnauthenticated, v1::UNKNOWN_KEY);
  EXPECT_EQ(ledger_->size(), size);
  EXPECT_EQ(StoredState(), state);
}

}  // namespace
}  // namespace ledger::store

namespace ledger::store {
namespace {

// The offline verifier over many of its batches (so the pipeline rotates:
// signatures of one batch checked on the pool while the batch before is
// replayed, checkpoints opened on the pool, a key added in one batch and used
// in later ones) passes a good log, and names the first bad signature and the
// first bad checkpoint at their positions.
TEST_F(LedgerTest, LogVerifierOverManyBatchesPassesAndNamesTheFirstFault) {
  std::map<uint64_t, std::string> checkpoints;  // tree size -> note
  auto keep = [&](const SubmitResult& r) { checkpoints[r.receipt.tree_size()] = r.receipt.checkpoint(); };
  PrivateKey first = PrivateKey::Generate();
  PrivateKey second = PrivateKey::Generate();
  keep(SubmitOne(Register("trust", {Raw(first)})));
  const PrivateKey* signer = &first;
  for (int batch = 0; batch < 32; ++batch) {
    if (batch == 12) {  // about position 1200: a new key signs from here on
      keep(SubmitOne(AddKey("trust", Raw(second), "trust", first)));
      signer = &second;
    }
    std::vector<v1::SignedEvent> events;
    for (int i = 0; i < 100; ++i) events.push_back(AddKey("trust", Raw(PrivateKey::Generate()), "trust", *signer));
    auto results = Submit(std::move(events));
    ASSERT_TRUE(results.ok()) << results.status();
    for (const SubmitResult& r : *results) keep(r);
  }
  std::vector<std::string> records;
  ASSERT_TRUE(ledger_->store()
                  .ScanRecords(0, ledger_->size(),
                               [&](uint64_t, std::string_view bytes) {
                                 records.emplace_back(bytes);
                                 return true;
                               })
                  .ok());
  ASSERT_GT(records.size(), 3000u);

  auto verify = [&](const std::vector<std::string>& log, const std::map<uint64_t, std::string>& notes) {
    audit::LogVerifier verifier(audit::LogVerifierOptions{.operator_key = operator_key_.public_key(),
                                                          .origin = ledger_->info().origin(),
                                                          .threads = 2});
    for (size_t p = 0; p < log.size(); ++p) {
      if (!verifier.AddRecord(log[p])) break;
      auto note = notes.find(p + 1);
      if (note != notes.end() && !verifier.AddCheckpoint(note->first, note->second)) break;
    }
    if (verifier.Flush()) {
      absl::Status finished = verifier.FinishReplay();
      EXPECT_TRUE(finished.ok()) << finished;
    }
    return verifier.Report();
  };

  {
    SCOPED_TRACE("the log as written");
    const v1::VerifyReport report = verify(records, checkpoints);
    EXPECT_TRUE(report.verified()) << audit::FormatReportText(report, "log");
    EXPECT_EQ(report.records(), records.size());
    EXPECT_EQ(report.checkpoints(), checkpoints.size());
  }
  {
    SCOPED_TRACE("a bad signature at position 2500");
    std::vector<std::string> tampered = records;
    v1::Record record;
    ASSERT_TRUE(record.ParseFromString(tampered[2500]));
    v1::SignedEvent event;
    ASSERT_TRUE(event.ParseFromString(record.signed_event()));
    std::string signature = event.signature();
    signature[7] ^= 0x01;
    event.set_signature(signature);
    record.set_signed_event(event.SerializeAsString());
    tampered[2500] = record.SerializeAsString();
    const v1::VerifyReport report = verify(tampered, checkpoints);
    ASSERT_FALSE(report.verified());
    EXPECT_FALSE(report.checks(0).passed()) << audit::FormatReportText(report, "log");
    EXPECT_EQ(report.checks(0).name(), "signatures");
    ASSERT_TRUE(report.checks(0).has_first_failing_position()) << report.checks(0).detail();
    EXPECT_EQ(report.checks(0).first_failing_position(), 2500u) << report.checks(0).detail();
  }
  {
    SCOPED_TRACE("a bad checkpoint after position 2100");
    std::map<uint64_t, std::string> tampered = checkpoints;
    auto it = tampered.lower_bound(2100);
    ASSERT_NE(it, tampered.end());
    const uint64_t size = it->first;
    std::string& note = it->second;
    const size_t dash = note.rfind("\u2014 ");
    ASSERT_NE(dash, std::string::npos) << note;
    char& c = note[note.size() - 20];  // inside the signature's base64, clear of its padding
    c = c == 'A' ? 'B' : 'A';
    const v1::VerifyReport report = verify(records, tampered);
    ASSERT_FALSE(report.verified());
    EXPECT_FALSE(report.checks(1).passed()) << audit::FormatReportText(report, "log");
    EXPECT_EQ(report.checks(1).name(), "integrity");
    ASSERT_TRUE(report.checks(1).has_first_failing_position()) << report.checks(1).detail();
    EXPECT_EQ(report.checks(1).first_failing_position(), size - 1) << report.checks(1).detail();
  }
}

// The log as records, replayed from position 0 as an auditor would, and
// rewritten as a hostile operator could (re-signed with its own key).
std::vector<v1::Record> LogRecords(const Ledger& ledger) {
  std::vector<v1::Record> log;
  for (uint64_t position = 0; position < ledger.size(); ++position) {
    auto entry = ledger.Get(position);
    EXPECT_TRUE(entry.ok()) << entry.status();
    auto record = DecodeRecord(entry->record(), position);
    EXPECT_TRUE(record.ok()) << record.status();
    log.push_back(*std::move(record));
  }
  return log;
}
absl::Status ReplayAll(const std::vector<v1::Record>& log) {
  audit::Replayer replayer;
  for (const v1::Record& record : log) {
    if (absl::Status s = replayer.Next(record); !s.ok()) return s;
  }
  return replayer.Finish();
}
// `log` with the system event at `position` changed by `change` and signed
// again with `operator_key`.
std::vector<v1::Record> Resigned(std::vector<v1::Record> log, uint64_t position, const PrivateKey& operator_key,
                                 const std::function<void(v1::EventBody&)>& change) {
  v1::SignedEvent signed_event;
  EXPECT_TRUE(signed_event.ParseFromString(log.at(position).signed_event()));
  v1::EventBody body;
  EXPECT_TRUE(body.ParseFromString(signed_event.body()));
  change(body);
  log.at(position).set_signed_event(SealEvent(body, operator_key).SerializeAsString());
  return log;
}

// Rules v2, an organisation that lost its only key: the registrar adds a new
// one and revokes the old; neither takes effect before the notice ends. The
// first commit group at or after the notice's end writes both
// IdentityChangeEffective records (by position) before its submission; the
// new key then proposes and votes, and the log replays and verifies, with the
// notice changes and the new key's records counted.
TEST_F(LedgerTest, IdentityNoticeEndsInTheFirstGroupAfterItAndReplays) {
  RegisterMembers({"trust-a", "trust-b"});  // positions 1, 2
  const PrivateKey lost = member_keys_.at("trust-b");
  const PrivateKey fresh = PrivateKey::Generate();
  std::map<uint64_t, std::string> checkpoints;
  auto keep = [&](const SubmitResult& r) { checkpoints[r.receipt.tree_size()] = r.receipt.checkpoint(); };
  keep(SubmitOne(AddKey("trust-b", Raw(fresh), "registrar", registrar_key_)));                       // 3
  keep(SubmitOne(RevokeKey("trust-b", lost.public_key().key_id(), "registrar", registrar_key_)));  // 4
  ExpectRefusal(Submit({AddKey("trust-b", RawKeyFor("early"), "trust-b", fresh)}),
                absl::StatusCode::kUnauthenticated, v1::KEY_PENDING);
  EXPECT_EQ(ledger_->size(), 5u);

  now_->fetch_add(rules::kDefaultIdentityNoticeSeconds * 1'000'000'000 + 1'000'000'000);
  member_keys_.insert_or_assign("trust-b", fresh);
  v1::Charter charter;
  for (const char* org : {"trust-b", "trust-a"}) charter.add_founding_members(org);
  v1::Gateway* gateway = charter.add_gateways();
  gateway->set_id("final");
  gateway->mutable_rule()->set_kind(v1::UNANIMITY);
  FormAndPropose(charter);  // proposed by trust-b, with its new key
  auto vote = Vote("trust-b", "final", v1::ASSENT);
  ASSERT_TRUE(vote.ok()) << vote.status();
  keep((*vote)[0]);
  ExpectRefusal(Submit({AddKey("trust-b", RawKeyFor("late"), "trust-b", lost)}), absl::StatusCode::kUnauthenticated,
                v1::REVOKED_KEY);

  const std::vector<v1::Record> log = LogRecords(*ledger_);
  ASSERT_GT(log.size(), 7u);
  for (uint64_t position : {5, 6}) {
    auto envelope = DecodeStoredEvent(log[position]);
    ASSERT_TRUE(envelope.ok()) << envelope.status();
    ASSERT_TRUE(envelope->body.has_identity_change_effective()) << position << ": " << envelope->body.ShortDebugString();
    EXPECT_EQ(envelope->body.identity_change_effective().change_position(), position - 2);
    EXPECT_EQ(envelope->body.author(), ledger_->info().operator_id());
  }
  auto proposed = DecodeStoredEvent(log[7]);
  ASSERT_TRUE(proposed.ok());
  EXPECT_TRUE(proposed->body.has_collective_proposed());
  EXPECT_EQ(proposed->signed_event.key_id(), fresh.public_key().key_id());
  // Written once the notice ended, before anything signed with the new key
  // (by the group that reached that time, or by the sequencer waking for it).
  EXPECT_GE(log[5].ledger_time_unix_ns(),
            log[4].ledger_time_unix_ns() + rules::kDefaultIdentityNoticeSeconds * 1'000'000'000);
  EXPECT_LE(log[5].ledger_time_unix_ns(), log[7].ledger_time_unix_ns());

  ASSERT_TRUE(ReplayAll(log).ok()) << ReplayAll(log);
  EXPECT_EQ(ReplayedState(), StoredState());
  // An operator that names another change, or writes something else in its
  // place, is caught.
  const absl::Status other_change = ReplayAll(Resigned(log, 5, operator_key_, [](v1::EventBody& body) {
    body.mutable_identity_change_effective()->set_change_position(4);
  }));
  EXPECT_FALSE(other_change.ok());
  const absl::Status replaced = ReplayAll(Resigned(log, 5, operator_key_, [](v1::EventBody& body) {
    body.mutable_identity_change_effective()->set_change_position(4);
    body.mutable_gateway_lapsed();  // not a notice at all
  }));
  EXPECT_FALSE(replaced.ok());

  audit::LogVerifier verifier(audit::LogVerifierOptions{.operator_key = operator_key_.public_key(),
                                                        .origin = ledger_->info().origin(),
                                                        .threads = 2});
  for (size_t p = 0; p < log.size(); ++p) {
    if (!verifier.AddRecord(log[p].SerializeAsString())) break;
    auto note = checkpoints.find(p + 1);
    if (note != checkpoints.end() && !verifier.AddCheckpoint(note->first, note->second)) break;
  }
  ASSERT_TRUE(verifier.Flush());
  ASSERT_TRUE(verifier.FinishReplay().ok()) << verifier.FinishReplay();
  const v1::VerifyReport report = verifier.Report();
  EXPECT_TRUE(report.verified()) << audit::FormatReportText(report, "log");
  EXPECT_EQ(report.identity_changes_by_notice(), 2u);
  // trust-b's CollectiveProposed, CharterAccepted, ProposalSubmitted and vote.
  EXPECT_EQ(report.records_signed_by_notice_keys(), 4u);
  EXPECT_NE(audit::FormatReportText(report, "log").find("identity changes effective by notice 2"), std::string::npos);
}

// DESIGN §4 "Logs outlive releases": replay compares what the rules decide
// (reasons, contents, positions), never human-readable text, so a release
// that words a refusal differently still verifies every earlier log.
TEST_F(LedgerTest, ReplayComparesTheRefusalReasonNotItsMessage) {
  SubmitOne(Register("org-a", {RawKeyFor("a1")}));
  ExpectRefusal(Submit({Register("org-a", {RawKeyFor("a2")}, "register/org-a-again")}),
                absl::StatusCode::kFailedPrecondition, v1::ORGANISATION_EXISTS);
  ASSERT_EQ(ledger_->size(), 3u);
  const std::vector<v1::Record> log = LogRecords(*ledger_);
  ASSERT_TRUE(ReplayAll(log).ok()) << ReplayAll(log);
  const absl::Status reworded = ReplayAll(Resigned(log, 2, operator_key_, [](v1::EventBody& body) {
    ASSERT_TRUE(body.has_submission_refused());
    body.mutable_submission_refused()->set_message(
        "an organisation of that id is already registered (worded by a later release)");
  }));
  EXPECT_TRUE(reworded.ok()) << reworded;
  const absl::Status other_reason = ReplayAll(Resigned(log, 2, operator_key_, [](v1::EventBody& body) {
    body.mutable_submission_refused()->set_reason(v1::GATEWAY_LOCKED);
  }));
  EXPECT_EQ(other_reason.code(), absl::StatusCode::kFailedPrecondition) << other_reason;
  EXPECT_TRUE(absl::StrContains(other_reason.message(), "position 2")) << other_reason;
}

// The same for a rejection: its reason is text (for a call, "called by X: "
// and the rationale, whose evidence is the caller's own signed
// DecisionCalled record), but who called and who was overruled are decided
// by the rules and checked.
TEST_F(LedgerTest, ReplayComparesARejectionsCallerAndOverruledNotItsText) {
  RegisterMembers({"trust-a", "trust-b", "national"});
  v1::Charter charter;
  for (const char* org : {"trust-a", "trust-b"}) charter.add_founding_members(org);
  v1::Gateway* gateway = charter.add_gateways();
  gateway->set_id("need");
  gateway->mutable_rule()->set_kind(v1::UNANIMITY);
  gateway->add_callers("national");
  FormAndPropose(charter);
  ASSERT_TRUE(Vote("trust-a", "need", v1::ASSENT).ok());
  ASSERT_TRUE(Vote("trust-b", "need", v1::OBJECT).ok());
  v1::EventBody call;
  call.mutable_decision_called()->set_proposal_id("p1");
  call.mutable_decision_called()->set_gateway_id("need");
  call.mutable_decision_called()->set_outcome(v1::FAIL);
  call.mutable_decision_called()->set_rationale("the case is not made");
  ASSERT_TRUE(Act("national", call).ok());

  const std::vector<v1::Record> log = LogRecords(*ledger_);
  ASSERT_TRUE(ReplayAll(log).ok()) << ReplayAll(log);
  const uint64_t rejected_at = log.size() - 1;
  const absl::Status reworded = ReplayAll(Resigned(log, rejected_at, operator_key_, [](v1::EventBody& body) {
    ASSERT_TRUE(body.has_proposal_rejected());
    EXPECT_EQ(body.proposal_rejected().caller(), "national");
    EXPECT_EQ(body.proposal_rejected().overruled_size(), 1);
    body.mutable_proposal_rejected()->set_reason("rejected on a call (worded by a later release)");
  }));
  EXPECT_TRUE(reworded.ok()) << reworded;
  const absl::Status nobody_overruled = ReplayAll(Resigned(log, rejected_at, operator_key_, [](v1::EventBody& body) {
    body.mutable_proposal_rejected()->clear_overruled();
  }));
  EXPECT_EQ(nobody_overruled.code(), absl::StatusCode::kFailedPrecondition) << nobody_overruled;
  EXPECT_TRUE(absl::StrContains(nobody_overruled.message(), absl::StrCat("position ", rejected_at)))
      << nobody_overruled;
}

// DESIGN §4 "Logs outlive releases": a ledger started under rules version 1
// keeps deciding under it (what its log was written with) until the operator
// adopts a newer version, on the record; replay switches at that position.
class RulesVersionLedgerTest : public LedgerTest {
 protected:
  void SetUp() override {
    genesis_rules_version_ = rules::kRulesV1;
    OpenLedger();
  }
};

TEST_F(RulesVersionLedgerTest, AnOldLedgerDecidesUnderItsVersionUntilTheOperatorAdoptsANewer) {
  const PrivateKey a1 = PrivateKey::Generate(), b1 = PrivateKey::Generate();
  SubmitOne(Register("org-a", {Raw(a1)}));
  SubmitOne(Register("org-b", {Raw(b1)}));
  // Version 1: a registrar revokes an organisation's only key at once.
  SubmitOne(RevokeKey("org-a", a1.public_key().key_id(), "registrar", registrar_key_));
  ExpectRefusal(Submit({AddKey("org-a", Raw(PrivateKey::Generate()), "org-a", a1)}),
                absl::StatusCode::kUnauthenticated, v1::REVOKED_KEY);

  auto adopted = ledger_->AdoptRulesVersion(rules::kRulesV2);
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  // Asking again is a retry of the same adoption (its idempotency key names
  // the version); a version this release does not know is refused.
  auto again = ledger_->AdoptRulesVersion(rules::kRulesV2);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *adopted);
  auto unknown = ledger_->AdoptRulesVersion(rules::kLatestRulesVersion + 1);
  EXPECT_EQ(ReasonOf(unknown.status()), v1::UNSUPPORTED_RULES_VERSION) << unknown.status();

  // Version 2: the same revocation waits for org-b (or its notice).
  SubmitOne(RevokeKey("org-b", b1.public_key().key_id(), "registrar", registrar_key_));
  SubmitOne(AddKey("org-b", Raw(PrivateKey::Generate()), "org-b", b1));

  const std::vector<v1::Record> log = LogRecords(*ledger_);
  EXPECT_TRUE(ReplayAll(log).ok()) << ReplayAll(log);
  Close();
  OpenLedger(/*with_genesis=*/false);
  EXPECT_EQ(ledger_->info().rules_version(), rules::kRulesV2);
  EXPECT_EQ(ledger_->info().rules_version_since(), *adopted);
}

// ------------------------------------------------------------ refusals as evidence (rules version 2)

// The SubmissionRefused record at `position`.
v1::SubmissionRefused RefusalAt(const Ledger& ledger, uint64_t position) {
  auto entry = ledger.Get(position);
  EXPECT_TRUE(entry.ok()) << entry.status();
  if (!entry.ok()) return {};
  auto record = DecodeRecord(entry->record(), position);
  EXPECT_TRUE(record.ok()) << record.status();
  auto envelope = DecodeStoredEvent(*record);
  EXPECT_TRUE(envelope.ok()) << envelope.status();
  EXPECT_TRUE(envelope->body.has_submission_refused()) << EventKind(envelope->body);
  return envelope->body.submission_refused();
}

TEST_F(LedgerTest, IdenticalRefusedBytesAreAnsweredWithTheOriginalRefusalAndNothingIsWritten) {
  SubmitOne(Register("org-a", {RawKeyFor("a1")}));
  const v1::SignedEvent again = Register("org-a", {RawKeyFor("a2")}, "register/org-a-again");
  ExpectRefusal(Submit({again}), absl::StatusCode::kFailedPrecondition, v1::ORGANISATION_EXISTS);
  const uint64_t refused_at = ledger_->size() - 1;
  ASSERT_EQ(RefusalAt(*ledger_, refused_at).reason(), v1::ORGANISATION_EXISTS);
  const uint64_t size = ledger_->size();
  const auto state = StoredState();
  auto answered = [&] {
    auto result = Submit({again});
    ExpectRefusal(result, absl::StatusCode::kFailedPrecondition, v1::ORGANISATION_EXISTS);
    EXPECT_TRUE(absl::StrContains(result.status().message(), absl::StrCat("refused at position ", refused_at)))
        << result.status();
    EXPECT_EQ(ledger_->size(), size) << "nothing written";
    EXPECT_EQ(StoredState(), state) << "nothing counted";
  };
  answered();
  answered();
  // In a batch with a good event: all of it refused, nothing written.
  auto batch = Submit({Register("org-b", {RawKeyFor("b1")}), again});
  ExpectRefusal(batch, absl::StatusCode::kFailedPrecondition, v1::ORGANISATION_EXISTS);
  EXPECT_EQ(BatchIndex(batch.status()), "1");
  EXPECT_EQ(ledger_->size(), size);
  // The index is part of the stored state: it survives a restart.
  Close();
  OpenLedger();
  answered();
  EXPECT_EQ(ReplayedState(), StoredState());
}

// A log written under rules version 1 may hold the same refused bytes twice:
// it still replays (DecideGroup applies the index only from version 2).
TEST_F(RulesVersionLedgerTest, UnderRulesV1IdenticalRefusedBytesAreRecordedAgainAndReplay) {
  SubmitOne(Register("org-a", {RawKeyFor("a1")}));
  const v1::SignedEvent again = Register("org-a", {RawKeyFor("a2")}, "register/org-a-again");
  ExpectRefusal(Submit({again}), absl::StatusCode::kFailedPrecondition, v1::ORGANISATION_EXISTS);
  ExpectRefusal(Submit({again}), absl::StatusCode::kFailedPrecondition, v1::ORGANISATION_EXISTS);
  ASSERT_EQ(ledger_->size(), 4u);
  EXPECT_EQ(RefusalAt(*ledger_, 2).signed_event(), RefusalAt(*ledger_, 3).signed_event());
  EXPECT_EQ(ReplayedState(), StoredState());
}

// Refusals beyond the daily allowance are not recorded; the operator counts
// them, tells the count in the author's next recorded refusal
// (dropped_before) and shows the running count to regulators. The count is
// the operator's claim, not the rules': the log replays with it.
TEST_F(LedgerTest, DroppedRefusalsAreCountedIntoTheNextRecordedOne) {
  RegisterMembers({"trust-a"});
  v1::EventBody vote;
  vote.mutable_vote_cast()->set_proposal_id("no-such-proposal");
  vote.mutable_vote_cast()->set_gateway_id("need");
  vote.mutable_vote_cast()->set_position(v1::ASSENT);
  for (uint32_t i = 0; i < rules::kMaxRecordedRefusalsPerDay; ++i) {
    ExpectRefusal(Act("trust-a", vote), absl::StatusCode::kFailedPrecondition, v1::UNKNOWN_PROPOSAL);
  }
  EXPECT_EQ(RefusalAt(*ledger_, ledger_->size() - 1).dropped_before(), 0u);
  const uint64_t size = ledger_->size();
  for (int i = 0; i < 3; ++i) {
    ExpectRefusal(Act("trust-a", vote), absl::StatusCode::kFailedPrecondition, v1::UNKNOWN_PROPOSAL);
  }
  EXPECT_EQ(ledger_->size(), size) << "beyond the allowance: not recorded";
  Queries queries(&ledger_->store());
  v1::QueryFilter filter;
  filter.set_org_id("trust-a");
  filter.set_limit(1000);
  ASSERT_OK_AND_ASSIGN(v1::ListRefusalsResponse listed, queries.Refusals(filter));
  EXPECT_EQ(listed.dropped_since_last_recorded(), 3u);
  EXPECT_EQ(listed.refusals_size(), static_cast<int>(rules::kMaxRecordedRefusalsPerDay));

  // Kept across a restart; the next day the next refusal is recorded with it.
  Close();
  OpenLedger();
  now_->fetch_add(25LL * 3600 * 1'000'000'000);
  ExpectRefusal(Act("trust-a", vote), absl::StatusCode::kFailedPrecondition, v1::UNKNOWN_PROPOSAL);
  ASSERT_EQ(ledger_->size(), size + 1);
  EXPECT_EQ(RefusalAt(*ledger_, size).dropped_before(), 3u);
  Queries after(&ledger_->store());
  ASSERT_OK_AND_ASSIGN(listed, after.Refusals(filter));
  EXPECT_EQ(listed.dropped_since_last_recorded(), 0u);
  ASSERT_GT(listed.refusals_size(), 0);
  EXPECT_EQ(listed.refusals(listed.refusals_size() - 1).dropped_before(), 3u);
  ExpectRefusal(Act("trust-a", vote), absl::StatusCode::kFailedPrecondition, v1::UNKNOWN_PROPOSAL);
  EXPECT_EQ(RefusalAt(*ledger_, size + 1).dropped_before(), 0u);

  // The replayer (and so every verifier) ignores the count; it decides the
  // rest of the refusal.
  EXPECT_EQ(ReplayedState(), StoredState());
  const std::vector<v1::Record> log = LogRecords(*ledger_);
  EXPECT_OK(ReplayAll(Resigned(log, size, operator_key_, [](v1::EventBody& body) {
    body.mutable_submission_refused()->set_dropped_before(1000);
  })));
}

// ------------------------------------------------------------ verify: density and time

std::vector<std::string> Serialized(const std::vector<v1::Record>& log) {
  std::vector<std::string> out;
  for (const v1::Record& record : log) out.push_back(record.SerializeAsString());
  return out;
}

// Runs the verifier over `records` (no checkpoints: these tests rewrite the
// log as an operator would, who would sign new ones).
v1::VerifyReport VerifyRecords(const std::vector<std::string>& records, audit::LogVerifierOptions options,
                               audit::PipelineStats* stats = nullptr) {
  options.threads = 2;
  audit::LogVerifier verifier(std::move(options));
  for (const std::string& record : records) {
    if (!verifier.AddRecord(record)) break;
  }
  if (verifier.Flush()) {
    if (absl::Status s = verifier.FinishReplay(); !s.ok()) verifier.Fail(audit::CheckId::kReplay, std::nullopt, std::string(s.message()));
  }
  if (stats != nullptr) *stats = verifier.Stats();
  return verifier.Report();
}

const v1::VerifyCheck& Check(const v1::VerifyReport& report, audit::CheckId id) {
  return report.checks(static_cast<int>(id));
}

// A log's first batches register the keys that sign the rest. A record
// signed by a key the state does not know yet but a record in flight
// proposes is checked on the pool under that key, not in order by the
// replayer, and counts only if the state names that key by the time the
// record is replayed: a bad signature by a key added in the same batch is
// named at its position, and so is a good signature by a key added only
// after it.
TEST_F(LedgerTest, LogVerifierChecksKeysAddedInFlightOnThePoolAndHoldsThemToTheState) {
  PrivateKey first = PrivateKey::Generate();
  PrivateKey second = PrivateKey::Generate();
  SubmitOne(Register("trust", {Raw(first)}));
  auto add_keys = [&](const PrivateKey& signer, int batches) {
    for (int batch = 0; batch < batches; ++batch) {
      std::vector<v1::SignedEvent> events;
      for (int i = 0; i < 100; ++i) events.push_back(AddKey("trust", Raw(PrivateKey::Generate()), "trust", signer));
      ASSERT_TRUE(Submit(std::move(events)).ok());
    }
  };
  add_keys(first, 3);
  const uint64_t second_added = ledger_->size();
  SubmitOne(AddKey("trust", Raw(second), "trust", first));
  add_keys(second, 12);
  const std::vector<v1::Record> log = LogRecords(*ledger_);
  ASSERT_GT(log.size(), 1500u);  // past the verifier's first batch
  const audit::LogVerifierOptions options{.operator_key = operator_key_.public_key(),
                                          .origin = ledger_->info().origin()};
  {
    SCOPED_TRACE("the log as written");
    audit::PipelineStats stats;
    const v1::VerifyReport report = VerifyRecords(Serialized(log), options, &stats);
    EXPECT_TRUE(report.verified()) << audit::FormatReportText(report, "log");
    EXPECT_EQ(stats.signatures_in_order, 1u);  // Genesis, signed by the key it names
  }
  {
    SCOPED_TRACE("a bad signature by the key added in the same batch");
    std::vector<v1::Record> tampered = log;
    const uint64_t bad = second_added + 5;
    v1::SignedEvent event;
    ASSERT_TRUE(event.ParseFromString(tampered[bad].signed_event()));
    ASSERT_EQ(event.key_id(), second.public_key().key_id());
    event.mutable_signature()->at(7) ^= 1;
    tampered[bad].set_signed_event(event.SerializeAsString());
    const v1::VerifyReport report = VerifyRecords(Serialized(tampered), options);
    EXPECT_FALSE(Check(report, audit::CheckId::kSignatures).passed()) << audit::FormatReportText(report, "log");
    EXPECT_EQ(Check(report, audit::CheckId::kSignatures).first_failing_position(), bad);
  }
  {
    SCOPED_TRACE("a good signature by a key added only at the next position");
    std::vector<v1::Record> swapped = log;
    std::string early = swapped[second_added + 1].signed_event();
    swapped[second_added + 1].set_signed_event(swapped[second_added].signed_event());
    swapped[second_added].set_signed_event(std::move(early));
    const v1::VerifyReport report = VerifyRecords(Serialized(swapped), options);
    EXPECT_FALSE(Check(report, audit::CheckId::kSignatures).passed()) << audit::FormatReportText(report, "log");
    EXPECT_EQ(Check(report, audit::CheckId::kSignatures).first_failing_position(), second_added);
  }
}

TEST_F(LedgerTest, DensityComparesWholePairsSoCollidingFingerprintsPassAndARealDuplicateFails) {
  PrivateKey trust = PrivateKey::Generate();
  SubmitOne(Register("trust", {Raw(trust)}));
  for (int batch = 0; batch < 6; ++batch) {
    std::vector<v1::SignedEvent> events;
    for (int i = 0; i < 100; ++i) events.push_back(AddKey("trust", Raw(PrivateKey::Generate()), "trust", trust));
    ASSERT_TRUE(Submit(std::move(events)).ok());
  }
  ExpectRefusal(Submit({Register("trust", {RawKeyFor("t2")}, "register/trust-again")}),
                absl::StatusCode::kFailedPrecondition, v1::ORGANISATION_EXISTS);
  const uint64_t refusal = ledger_->size() - 1;
  const std::vector<v1::Record> log = LogRecords(*ledger_);
  ASSERT_GT(log.size(), 600u);
  // A hostile operator gives its refusal record Genesis's (author, key).
  const std::vector<v1::Record> duplicated = Resigned(log, refusal, operator_key_, [](v1::EventBody& body) {
    body.set_idempotency_key("genesis");
  });
  // Replay does not compare a system event's idempotency key: density must.
  ASSERT_OK(ReplayAll(duplicated));

  auto options = [&](int bits, const std::vector<v1::Record>* reread) {
    audit::LogVerifierOptions o{.operator_key = operator_key_.public_key(), .origin = ledger_->info().origin()};
    o.fingerprint_bits = bits;
    if (reread != nullptr) {
      o.read_record = [reread](uint64_t position) -> absl::StatusOr<std::string> {
        return reread->at(position).SerializeAsString();
      };
    }
    return o;
  };
  for (int bits : {64, 4, 1}) {
    for (bool exact_pairs : {false, true}) {
      SCOPED_TRACE(absl::StrCat(bits, "-bit fingerprints", exact_pairs ? ", exact pairs kept" : ", read back"));
      const v1::VerifyReport honest = VerifyRecords(Serialized(log), options(bits, exact_pairs ? nullptr : &log));
      EXPECT_TRUE(honest.verified()) << audit::FormatReportText(honest, "log");
      const v1::VerifyReport bad =
          VerifyRecords(Serialized(duplicated), options(bits, exact_pairs ? nullptr : &duplicated));
      EXPECT_FALSE(Check(bad, audit::CheckId::kDensity).passed()) << audit::FormatReportText(bad, "log");
      EXPECT_EQ(Check(bad, audit::CheckId::kDensity).first_failing_position(), refusal);
      EXPECT_TRUE(absl::StrContains(Check(bad, audit::CheckId::kDensity).detail(), "first at position 0"))
          << Check(bad, audit::CheckId::kDensity).detail();
    }
  }
  {
    SCOPED_TRACE("a record that reads back different from the one verified");
    // Read back, each record after Genesis is its successor.
    std::vector<v1::Record> shifted = log;
    for (size_t p = 1; p + 1 < shifted.size(); ++p) shifted[p] = log[p + 1];
    const v1::VerifyReport report = VerifyRecords(Serialized(log), options(4, &shifted));
    EXPECT_FALSE(report.verified());
    EXPECT_FALSE(Check(report, audit::CheckId::kIntegrity).passed()) << audit::FormatReportText(report, "log");
  }

  // The bundle verifier reads earlier records back through its sparse index.
  auto write_bundle = [&](const std::string& path, const std::vector<v1::Record>& records) {
    ASSERT_OK_AND_ASSIGN(auto writer, audit::BundleWriter::Create(path));
    v1::BundleFrame header;
    header.mutable_header()->set_format_version(audit::kBundleFormatVersion);
    header.mutable_header()->set_ledger_id(kLedgerId);
    header.mutable_header()->set_origin(ledger_->info().origin());
    header.mutable_header()->set_operator_public_key(Raw(operator_key_));
    header.mutable_header()->set_tree_size(records.size());
    ASSERT_OK(writer->Write(header));
    // Every signed checkpoint after the record completing its tree, as an
    // export has them (the re-reader skips them).
    std::map<uint64_t, std::string> notes;
    ASSERT_OK(ledger_->store().ScanCheckpoints(1, [&](uint64_t tree_size, std::string_view note) {
      notes.emplace(tree_size, std::string(note));
      return true;
    }));
    for (size_t p = 0; p < records.size(); ++p) {
      v1::BundleFrame frame;
      frame.set_record(records[p].SerializeAsString());
      ASSERT_OK(writer->Write(frame));
      if (auto note = notes.find(p + 1); note != notes.end()) {
        v1::BundleFrame checkpoint;
        checkpoint.mutable_checkpoint()->set_tree_size(note->first);
        checkpoint.mutable_checkpoint()->set_note(note->second);
        ASSERT_OK(writer->Write(checkpoint));
      }
    }
    ASSERT_OK(writer->Finish());
  };
  const std::string good = absl::StrCat(dir_.path(), "/good.bundle");
  const std::string bad = absl::StrCat(dir_.path(), "/duplicate.bundle");
  write_bundle(good, log);
  write_bundle(bad, duplicated);
  for (int bits : {64, 8}) {
    SCOPED_TRACE(absl::StrCat("bundle, ", bits, "-bit fingerprints"));
    audit::VerifyOptions options;
    options.operator_key = operator_key_.public_key();
    options.threads = 2;
    options.fingerprint_bits = bits;
    const v1::VerifyReport honest = audit::VerifyBundle(good, options);
    EXPECT_TRUE(honest.verified()) << audit::FormatReportText(honest, "bundle");
    const v1::VerifyReport report = audit::VerifyBundle(bad, options);
    EXPECT_FALSE(Check(report, audit::CheckId::kDensity).passed()) << audit::FormatReportText(report, "bundle");
    EXPECT_EQ(Check(report, audit::CheckId::kDensity).first_failing_position(), refusal);
  }
}

// A member event carrying its signed client time (ms).
v1::SignedEvent RegisterSignedAt(const std::string& org_id, int64_t client_time_unix_ms, const PrivateKey& registrar) {
  v1::EventBody body = Body("registrar", "register/" + org_id);
  body.set_client_time_unix_ms(client_time_unix_ms);
  body.mutable_organisation_registered()->set_org_id(org_id);
  body.mutable_organisation_registered()->set_name(org_id);
  body.mutable_organisation_registered()->set_kind("nhs-trust");
  body.mutable_organisation_registered()->add_public_keys(RawKeyFor(org_id));
  return SealEvent(body, registrar);
}

// `log` as an operator who backdates it would write it: every ledger time
// `by` earlier (still in order; checkpoints re-signed, so only the "time"
// check can tell).
std::vector<v1::Record> Backdated(std::vector<v1::Record> log, int64_t by) {
  for (v1::Record& record : log) record.set_ledger_time_unix_ns(record.ledger_time_unix_ns() - by);
  return log;
}

TEST_F(LedgerTest, ClientTimeAheadIsRefusedAndABackdatedRecordFailsTime) {
  const int64_t skew = rules::kClockSkewNanos;
  // Ahead of the ledger clock by more than the skew: refused, not recorded.
  const uint64_t size = ledger_->size();
  ExpectRefusal(Submit({RegisterSignedAt("org-late", (now_->load() + 2 * skew) / 1'000'000, registrar_key_)}),
                absl::StatusCode::kInvalidArgument, v1::CLIENT_TIME_AHEAD);
  EXPECT_EQ(ledger_->size(), size);
  SubmitOne(RegisterSignedAt("org-a", now_->load() / 1'000'000, registrar_key_));
  const uint64_t signed_at = ledger_->size() - 1;
  SubmitOne(Register("org-b", {RawKeyFor("b1")}));  // no client time: nothing to compare
  const std::vector<v1::Record> log = LogRecords(*ledger_);
  audit::LogVerifierOptions options{.operator_key = operator_key_.public_key(), .origin = ledger_->info().origin()};
  const v1::VerifyReport honest = VerifyRecords(Serialized(log), options);
  EXPECT_TRUE(honest.verified()) << audit::FormatReportText(honest, "log");
  EXPECT_EQ(Check(honest, audit::CheckId::kTime).name(), "time");

  const v1::VerifyReport within = VerifyRecords(Serialized(Backdated(log, skew / 2)), options);
  EXPECT_TRUE(within.verified()) << "within the clock skew\n" << audit::FormatReportText(within, "log");
  const v1::VerifyReport backdated = VerifyRecords(Serialized(Backdated(log, 3600LL * 1'000'000'000)), options);
  EXPECT_FALSE(backdated.verified());
  const v1::VerifyCheck& time = Check(backdated, audit::CheckId::kTime);
  EXPECT_FALSE(time.passed()) << audit::FormatReportText(backdated, "log");
  EXPECT_EQ(time.first_failing_position(), signed_at);
  EXPECT_TRUE(absl::StrContains(time.detail(), "backdated")) << time.detail();
  const std::string text = audit::FormatReportText(backdated, "log");
  EXPECT_TRUE(absl::StrContains(text, "FAIL  time")) << text;
}

// DESIGN §4 checks 6 and 7: a witness quorum's cosignature time bounds the
// ledger time of every record its checkpoint covers, and with a policy the
// newest checkpoint must carry the quorum. The ledger keeps cosignatures only
// on the note it signed.
TEST_F(LedgerTest, AWitnessedCheckpointBoundsLedgerTimeAndIsRequiredByAPolicy) {
  SubmitOne(Register("org-a", {RawKeyFor("a1")}));
  const uint64_t size = ledger_->size();
  auto note = ledger_->Checkpoint(size);
  ASSERT_TRUE(note.ok());
  const PrivateKey witness_key = PrivateKey::Generate();
  auto policy = witness::Policy::Parse(absl::StrCat(
      "log ", merkle::VerifierKey(ledger_->info().origin(), operator_key_.public_key()), "\nwitness w1 ",
      witness::MakeVerifierKey("witness.test/w1", witness::kCosignatureV1Ed25519, witness_key.public_key()).text,
      "\nquorum w1\n"));
  ASSERT_TRUE(policy.ok()) << policy.status();
  const std::string text = note->substr(0, note->find("\n\n") + 1);
  const int64_t now_seconds = now_->load() / 1'000'000'000;
  auto cosigned_at = [&](int64_t seconds) {
    return witness::AddSignatureLines(*note, witness::Cosign(text, "witness.test/w1", witness_key, seconds));
  };
  auto verify = [&](const std::string& checkpoint) {
    audit::LogVerifier verifier({.operator_key = operator_key_.public_key(),
                                 .origin = ledger_->info().origin(),
                                 .witness_policy = &*policy,
                                 .threads = 2});
    for (const v1::Record& record : LogRecords(*ledger_)) verifier.AddRecord(record.SerializeAsString());
    verifier.AddCheckpoint(size, checkpoint);
    if (verifier.Flush()) verifier.CheckWitnessedAtEnd();
    return verifier.Report();
  };

  const v1::VerifyReport honest = verify(cosigned_at(now_seconds + 1));
  EXPECT_TRUE(honest.verified()) << audit::FormatReportText(honest, "log");
  EXPECT_EQ(honest.witnessed_checkpoints(), 1u);
  EXPECT_EQ(honest.witnessed_size(), size);

  // The witness saw this tree an hour before the times the records carry:
  // the operator post-dated them.
  const v1::VerifyReport posted = verify(cosigned_at(now_seconds - 3600));
  const v1::VerifyCheck& time = Check(posted, audit::CheckId::kTime);
  EXPECT_FALSE(time.passed()) << audit::FormatReportText(posted, "log");
  EXPECT_EQ(time.first_failing_position(), 0u);
  EXPECT_TRUE(absl::StrContains(time.detail(), "post-dated")) << time.detail();

  const v1::VerifyReport unwitnessed = verify(*note);
  const v1::VerifyCheck& witnessed = Check(unwitnessed, audit::CheckId::kWitnessed);
  EXPECT_FALSE(witnessed.passed());
  EXPECT_TRUE(absl::StrContains(witnessed.detail(), "is not witnessed")) << witnessed.detail();

  // A cosignature line that names the witness but does not verify is forged.
  std::string forged = cosigned_at(now_seconds);
  forged[forged.size() - 10] = forged[forged.size() - 10] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(Check(verify(forged), audit::CheckId::kWitnessed).passed());

  EXPECT_TRUE(absl::IsNotFound(ledger_->WitnessedCheckpoint().status()));
  ASSERT_OK(ledger_->AddCosignatures(cosigned_at(now_seconds)));
  auto kept = ledger_->WitnessedCheckpoint();
  ASSERT_TRUE(kept.ok());
  EXPECT_TRUE(policy->Check(*kept).ok());
  // Not the note this ledger signed (another size's text under its line).
  std::string other = *kept;
  other.replace(other.find('\n') + 1, std::to_string(size).size(), std::to_string(size + 1));
  EXPECT_FALSE(ledger_->AddCosignatures(other).ok());
  // Dropping the witness's line is refused: cosignatures are only added.
  EXPECT_EQ(ledger_->AddCosignatures(*note).code(), absl::StatusCode::kInvalidArgument);
}

// A recorded refusal is held to its attempt's signed time: the operator
// cannot backdate the record of an attempt either.
TEST_F(LedgerTest, ABackdatedRefusalFailsTime) {
  SubmitOne(Register("org-a", {RawKeyFor("a1")}));
  v1::EventBody body = Body("registrar", "register/org-a-again");
  body.set_client_time_unix_ms(now_->load() / 1'000'000);
  body.mutable_organisation_registered()->set_org_id("org-a");
  body.mutable_organisation_registered()->add_public_keys(RawKeyFor("a2"));
  ExpectRefusal(Submit({SealEvent(body, registrar_key_)}), absl::StatusCode::kFailedPrecondition,
                v1::ORGANISATION_EXISTS);
  const uint64_t refusal = ledger_->size() - 1;
  const std::vector<v1::Record> log = LogRecords(*ledger_);
  audit::LogVerifierOptions options{.operator_key = operator_key_.public_key(), .origin = ledger_->info().origin()};
  EXPECT_TRUE(VerifyRecords(Serialized(log), options).verified());
  const v1::VerifyReport backdated = VerifyRecords(Serialized(Backdated(log, 3600LL * 1'000'000'000)), options);
  EXPECT_FALSE(Check(backdated, audit::CheckId::kTime).passed()) << audit::FormatReportText(backdated, "log");
  EXPECT_EQ(Check(backdated, audit::CheckId::kTime).first_failing_position(), refusal);
}

// Rules version 1 has no clock rule: its logs pass "time" whatever their times.
TEST_F(RulesVersionLedgerTest, UnderRulesV1TimeIsNotChecked) {
  SubmitOne(RegisterSignedAt("org-a", (now_->load() + 2 * rules::kClockSkewNanos) / 1'000'000, registrar_key_));
  const std::vector<v1::Record> log = LogRecords(*ledger_);
  audit::LogVerifierOptions options{.operator_key = operator_key_.public_key(), .origin = ledger_->info().origin()};
  const v1::VerifyReport report = VerifyRecords(Serialized(Backdated(log, 3600LL * 1'000'000'000)), options);
  EXPECT_TRUE(report.verified()) << audit::FormatReportText(report, "log");
}

// A store written by a release before the refused-bytes index holds no "rs/"
// entries: removes them, as that release would have left the state.
void RemoveRefusedSubmissionIndex(const std::string& path) {
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const std::string& name : names) families.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), path, families, &handles, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  int removed = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] != "state") continue;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), handles[i]));
    for (it->Seek(std::string(rules::kRefusedSubmissionPrefix));
         it->Valid() && it->key().starts_with(std::string(rules::kRefusedSubmissionPrefix)); it->Next()) {
      ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), handles[i], it->key()).ok());
      ++removed;
    }
    // That release wrote no derived-index marker either.
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), handles[i], std::string(rules::kDerivedIndexesKey)).ok());
  }
  EXPECT_GT(removed, 0) << "no refused-bytes index to remove";
  for (auto* handle : handles) db->DestroyColumnFamilyHandle(handle);
}

// Rules version 2 answers the identical bytes of a recorded refusal with the
// original refusal, refusals recorded before the ledger adopted it included —
// even those a release before the index wrote (indexed again at start-up).
TEST_F(RulesVersionLedgerTest, RefusalsFromBeforeTheUpgradeAreNotRecordedAgainAfterIt) {
  SubmitOne(Register("org-a", {Raw(PrivateKey::Generate())}));
  const v1::SignedEvent again = Register("org-a", {Raw(PrivateKey::Generate())}, "register/org-a-again");
  ExpectRefusal(Submit({again}), absl::StatusCode::kFailedPrecondition, v1::ORGANISATION_EXISTS);
  const uint64_t refused_at = ledger_->size() - 1;
  Close();
  RemoveRefusedSubmissionIndex(dir_.path());
  OpenLedger(/*with_genesis=*/false);
  ASSERT_TRUE(ledger_->AdoptRulesVersion(rules::kRulesV2).ok());
  const uint64_t size = ledger_->size();
  auto result = Submit({again});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(ReasonOf(result.status()), v1::ORGANISATION_EXISTS) << result.status();
  EXPECT_TRUE(absl::StrContains(result.status().message(), absl::StrCat("refused at position ", refused_at)))
      << result.status();
  EXPECT_EQ(ledger_->size(), size) << "the identical bytes were recorded again";
  const std::vector<v1::Record> log = LogRecords(*ledger_);
  EXPECT_TRUE(ReplayAll(log).ok()) << ReplayAll(log);
}

}  // namespace
}  // namespace ledger::store
