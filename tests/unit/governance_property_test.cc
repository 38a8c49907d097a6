// Property tests of the governance rules: random charters (1–5 gateways,
// random rule kinds, quorums, abstention modes, callers, deadlines, required
// assurance, revisit rules) and random member actions — votes of random
// positions on random (often locked) gateways, interests, calls by random
// organisations, withdrawals, impacts, assurance, revisits, admissions,
// removals, amendments, mergers by the registrar (rules version 2: open
// seats pass or are vacated), and lapses as the ledger time advances.
//
// Fixed seeds (std::mt19937), so every failure reproduces; the failing seed
// and step are in the trace. Checked after every step:
//   (a) no accepted reversal: a GATEWAY_PASSED gateway's votes never change
//       again unless an adopted revisit reopened it (a revisit of gateway k
//       starts a new attempt of k and every later gateway);
//   (b) a gateway locks at most once per attempt, gateways lock in charter
//       order, and a gateway passed without a call meets its rule;
//   (c) a refusal changes State::Snapshot() only by keeping it on the record
//       (and leaves the deadline index unchanged);
//   (d) a replica fed only the log (accepted envelopes, lapses at the same
//       points, and recorded refusals) reaches the same
//       system events and the same Snapshot(); a full replay at the end too;
//   (e) Mark/RollbackTo restores the snapshot exactly, after one step and
//       after several, and redoing the same steps gives the same results;
//   (f) in some runs every submission also goes through the server's write
//       path (a real store::Ledger over RocksDB, the same ledger times): it
//       answers each as the rules did; offline replay (audit::Replayer)
//       accepts its log and reaches the same state; and deciding the same
//       submissions one group at a time with rules::DecideGroup, sealing the
//       system events with the operator key, gives its records byte for byte;
//   (g) an accepted call had a real deadlock (rules version 2: a lapse, or on
//       a unanimity gateway another elector's objection once every elector
//       but the caller has voted);
//   (h) once a merger takes effect (rules version 2: at the second of the
//       two organisations' IdentityChangeConfirmed, or when its notice
//       ends) no open or lapsed gateway keeps a seat for the organisation
//       merged away.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "ledger/audit/replay.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/crypto/sha256.h"
#include "ledger/event/envelope.h"
#include "ledger/event/refusal.h"
#include "ledger/rules/charter.h"
#include "ledger/rules/rules.h"
#include "ledger/rules/state.h"
#include "ledger/rules/version.h"
#include "ledger/store/ledger.h"
#include "tests/support/rules_harness.h"
#include "tests/support/temp_dir.h"

namespace ledger::rules {
namespace {

using crypto::PrivateKey;
using Snap = absl::btree_map<std::string, std::string>;

constexpr char kLedgerId[] = "gov-property";
constexpr int64_t kT0 = 1'700'000'000'000'000'000;
constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kHour = 3600 * kSecond;

constexpr int kRuns = 200;
constexpr int kActions = 300;
constexpr int kMirrorEvery = 40;  // every 40th run also drives the server (f)

const std::vector<std::string>& Everyone() {
  static const auto* all = new std::vector<std::string>{
      "operator", "registrar", "m0", "m1", "m2", "m3", "m4", "m5", "n0", "n1", "s0", "x0"};
  return *all;
}

// Deterministic keys, made once.
const PrivateKey& KeyOf(const std::string& org) {
  static const auto* keys = [] {
    auto* m = new std::map<std::string, PrivateKey>();
    for (const std::string& org : Everyone()) {
      std::string seed(32, '\x5a');
      std::copy(org.begin(), org.end(), seed.begin());
      m->emplace(org, *PrivateKey::FromSeed(seed));
    }
    return m;
  }();
  return keys->at(org);
}

int GatewayIndex(const v1::ProposalState& p, const std::string& id) {
  for (int i = 0; i < p.gateways_size(); ++i) {
    if (p.gateways(i).id() == id) return i;
  }
  return -1;
}

template <typename C>
bool Contains(const C& c, const std::string& v) {
  return std::find(c.begin(), c.end(), v) != c.end();
}

struct Op {
  bool lapse = false;
  Envelope envelope;
  Context context;
};

struct Outcome {
  bool accepted = false;
  absl::StatusCode code = absl::StatusCode::kOk;
  v1::Reason reason = v1::REASON_UNSPECIFIED;
  bool recorded = false;                    // a SubmissionRefused was produced
  std::vector<v1::EventBody> events;        // system events: effects, lapses, or the recorded refusal
  uint64_t width = 0;                       // positions the outcome occupies in the log

  std::string Fingerprint() const {
    std::string out = absl::StrCat(accepted, "/", static_cast<int>(code), "/", reason, "/", recorded, "/");
    for (const auto& e : events) absl::StrAppend(&out, e.SerializeAsString(), "|");
    return out;
  }
};

// Runs one op against `state` as the write path (and the auditor) decide it:
// rules::DecideGroup through the shared harness. `before`: if given, a
// refusal must change the state only by keeping it on the record.
Outcome Execute(State& state, const Op& op, const Snap* before) {
  Outcome out;
  if (op.lapse) {
    out.accepted = true;
    out.events = harness::DecideLapses(state, op.context);
    out.width = out.events.size();
    return out;
  }
  // Signatures are made by this test with the right keys; the rules still
  // decide whether each key may sign for its author.
  harness::OneDecision decision = harness::DecideOne(state, op.envelope, op.context, /*signature_checked=*/true);
  out.accepted = decision.ok();
  out.code = decision.status.code();
  out.reason = ReasonOf(decision.status);
  out.recorded = decision.refusal.has_value();
  out.events = decision.AllSystemEvents();
  out.width = decision.records;
  if (!decision.ok() && before != nullptr) {
    EXPECT_EQ(harness::ChangesBeyondRefusal(*before, state.Snapshot(), op.envelope.body.author(), out.recorded,
                                            op.context.position + decision.lapses.size()),
              "")
        << "(c) refusal " << v1::Reason_Name(out.reason) << " of " << EventKind(op.envelope.body)
        << " changed the state: " << decision.status;
  }
  return out;
}

std::set<std::pair<int64_t, std::string>> ExpectedDeadlines(const State& state) {
  std::set<std::pair<int64_t, std::string>> out;
  for (const auto& [id, p] : state.proposals()) {
    if (int64_t d = OpenDeadline(p); d != 0) out.insert({d, id});
  }
  return out;
}

std::set<std::pair<int64_t, std::string>> Deadlines(const State& state) {
  return {state.deadlines().begin(), state.deadlines().end()};
}

// (f): the server's write path fed the same submissions at the same ledger
// times, and the checks of its log at the end.
class WritePathMirror {
 public:
  // Real RocksDB, on tmpfs where there is one.
  WritePathMirror() : dir_("gov_property", testing::TempDir::Medium::kTmpfsIfAny) {
    store::GenesisSpec genesis{.ledger_id = kLedgerId, .operator_id = "operator",
                               .origin = "decision-ledger/property", .registrars = {}};
    v1::Registrar& registrar = genesis.registrars.emplace_back();
    registrar.set_org_id("registrar");
    registrar.add_public_keys(std::string(KeyOf("registrar").public_key().raw()));
    store::LedgerOptions options{.data_dir = dir_.path(), .operator_key = KeyOf("operator"), .genesis = genesis};
    options.verify_threads = 1;
    options.clock = [this] { return clock_.load(); };
    auto ledger = store::Ledger::Open(std::move(options));
    EXPECT_TRUE(ledger.ok()) << ledger.status();
    if (ledger.ok()) ledger_ = *std::move(ledger);
  }

  // Submits `op` at its ledger time and expects the answer the rules gave.
  void Submit(const Op& op, const Outcome& expected) {
    if (ledger_ == nullptr) return;
    clock_ = op.context.ledger_time_unix_ns;
    sent_.push_back(op);
    absl::Notification answered;
    absl::StatusOr<std::vector<store::SubmitResult>> answer;
    ledger_->Submit({op.envelope.signed_event}, [&](absl::StatusOr<std::vector<store::SubmitResult>> r) {
      answer = std::move(r);
      answered.Notify();
    });
    answered.WaitForNotification();
    EXPECT_EQ(answer.ok(), expected.accepted) << "(f) the server decided " << EventKind(op.envelope.body)
                                              << " otherwise: " << answer.status();
    EXPECT_EQ(answer.status().code(), expected.code) << answer.status();
    EXPECT_EQ(ReasonOf(answer.status()), expected.reason) << answer.status();
  }

  void Finish(const Snap& expected_state) {
    if (ledger_ == nullptr) return;
    const uint64_t size = ledger_->size();
    std::vector<std::string> records;
    for (uint64_t position = 0; position < size; ++position) {
      auto entry = ledger_->Get(position);
      ASSERT_TRUE(entry.ok()) << entry.status();
      records.push_back(entry->record());
    }
    // The auditor's replay accepts the server's log and reaches the state
    // the rules reached in memory.
    audit::Replayer replayer;
    for (uint64_t position = 0; position < size; ++position) {
      auto record = DecodeRecord(records[position], position);
      ASSERT_TRUE(record.ok()) << record.status();
      absl::Status replayed = replayer.Next(*record);
      ASSERT_TRUE(replayed.ok()) << "(f) offline replay refused the server's log: " << replayed;
    }
    ASSERT_TRUE(replayer.Finish().ok()) << replayer.Finish();
    EXPECT_TRUE(replayer.state().Snapshot() == expected_state) << "(f) replay of the server's log reached another state";

    // The same submissions decided one group at a time, sealed and wrapped
    // as records here, give the server's records byte for byte.
    State model;
    std::vector<std::string> rebuilt;
    auto decide = [&](const Envelope& envelope, int64_t time) {
      const char checked = 0;
      rules::GroupInput input{rebuilt.size(), time, {}, nullptr};
      input.submissions.push_back(
          rules::SubmissionInput{absl::MakeConstSpan(&envelope, 1), absl::MakeConstSpan(&checked, 1)});
      for (const rules::GroupRecord& decided : rules::DecideGroup(model, input).records) {
        v1::Record record;
        record.set_position(rebuilt.size());
        record.set_ledger_time_unix_ns(time);
        record.set_signed_event(decided.member != nullptr ? decided.member->signed_bytes
                                                          : SealEvent(decided.system, KeyOf("operator")).SerializeAsString());
        rebuilt.push_back(record.SerializeAsString());
      }
      model.CommitChanges();
    };
    auto genesis_record = DecodeRecord(records.at(0), 0);
    ASSERT_TRUE(genesis_record.ok());
    auto genesis = DecodeStoredEvent(*genesis_record);
    ASSERT_TRUE(genesis.ok());
    decide(*genesis, genesis_record->ledger_time_unix_ns());
    for (const Op& op : sent_) decide(op.envelope, op.context.ledger_time_unix_ns);
    ASSERT_EQ(rebuilt.size(), records.size()) << "(f) the server wrote a different number of records";
    for (size_t i = 0; i < records.size(); ++i) {
      ASSERT_EQ(crypto::ToHex(crypto::Sha256(rebuilt[i])),
                crypto::ToHex(crypto::Sha256(records[i])))
          << "(f) record " << i << " differs from the pure decision's";
    }
    submissions_ = sent_.size();
  }

  size_t submissions() const { return submissions_; }

 private:
  testing::TempDir dir_;  // declared first: it outlives the ledger in it
  std::atomic<int64_t> clock_{kT0};
  std::unique_ptr<store::Ledger> ledger_;
  std::vector<Op> sent_;
  size_t submissions_ = 0;
};

class Scenario {
 public:
  Scenario(uint32_t seed, bool mirror) : seed_(seed), rng_(seed) {
    if (mirror) mirror_ = std::make_unique<WritePathMirror>();
  }

  void Go() {
    Setup();
    for (step_ = 0; step_ < kActions; ++step_) {
      if (::testing::Test::HasFailure()) return;
      SCOPED_TRACE(absl::StrCat("seed ", seed_, " step ", step_));
      // The ledger time moves on; the server lapses what fell due first.
      now_ += Uniform(0, 2 * 3600) * kSecond;
      if (Chance(3)) now_ += Uniform(1, 3) * 24 * kHour;
      if (!primary_.deadlines().empty() && primary_.deadlines().begin()->first <= now_) {
        Op lapse;
        lapse.lapse = true;
        lapse.context = Context{position_, now_};
        Step(lapse);
      }
      std::optional<Op> op = RandomOp();
      if (op.has_value()) Step(*op);
      if (!in_segment_ && Chance(2)) BeginSegment();
      if (in_segment_ && segment_ops_.size() >= 6) EndSegment();
    }
    if (in_segment_) EndSegment();
    FinalReplay();
    if (mirror_ != nullptr) mirror_->Finish(primary_.Snapshot());
  }

  size_t mirrored() const { return mirror_ == nullptr ? 0 : mirror_->submissions(); }

  int accepted() const { return accepted_; }
  int refused() const { return refused_; }
  int passes() const { return passes_total_; }
  int adopted() const { return adopted_; }
  int reopened() const { return reopened_; }
  int locked_refusals() const { return locked_refusals_; }
  int merged() const { return merged_; }
  int calls() const { return calls_; }

 private:
  // -------------------------------------------------------------- randomness
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool Chance(int percent) { return Uniform(0, 99) < percent; }
  template <typename C>
  const typename C::value_type& Pick(const C& c) {
    return c[Uniform(0, static_cast<int>(c.size()) - 1)];
  }

  v1::DecisionRule RandomRule() {
    v1::DecisionRule rule;
    int k = Uniform(0, 99);
    if (k < 40) {
      rule.set_kind(Chance(20) ? v1::RULE_KIND_UNSPECIFIED : v1::UNANIMITY);
    } else if (k < 75) {
      rule.set_kind(v1::MAJORITY);
    } else {
      static const std::vector<std::pair<int, int>> fractions = {{2, 3}, {3, 4}, {3, 5}, {4, 5}, {1, 1}};
      auto [n, d] = Pick(fractions);
      rule.set_kind(v1::SUPERMAJORITY);
      rule.set_numerator(n);
      rule.set_denominator(d);
    }
    static const std::vector<int> quorums = {0, 0, 0, 50, 75, 100};
    rule.set_quorum_percent(Pick(quorums));
    rule.set_abstention(static_cast<v1::AbstentionMode>(Uniform(0, 2)));
    return rule;
  }

  v1::Charter RandomCharter() {
    v1::Charter charter;
    charter.set_name(absl::StrCat("charter ", Uniform(0, 1 << 20)));
    for (const auto& m : founders_) charter.add_founding_members(m);
    const int gateways = Uniform(1, 5);
    for (int i = 0; i < gateways; ++i) {
      v1::Gateway* g = charter.add_gateways();
      g->set_id(absl::StrCat("g", i));
      g->set_name(absl::StrCat("gateway ", i));
      *g->mutable_rule() = RandomRule();
      for (const char* caller : {"n0", "n1", "m0"}) {
        if (Chance(35)) g->add_callers(caller);
      }
      if (Chance(35)) g->set_deadline_seconds(Uniform(1, 48) * 3600);
      if (Chance(10)) g->set_required_assurance("s0");
    }
    charter.add_assurance_bodies("s0");
    charter.add_reserved_categories("reserved");
    for (int i = Uniform(0, 4); i > 0; --i) charter.mutable_taper()->add_percent_by_year(Uniform(0, 100));
    if (Chance(50)) *charter.mutable_amendment_rule() = RandomRule();
    if (Chance(60)) {
      *charter.mutable_revisit_rule() = RandomRule();
      if (Chance(50)) charter.add_revisit_callers("n0");
    }
    if (Chance(50)) charter.add_amendment_callers("n1");
    return charter;
  }

  // -------------------------------------------------------------- ops
  Op Submission(const std::string& org, v1::EventBody body) {
    body.set_ledger_id(kLedgerId);
    body.set_author(org);
    body.set_idempotency_key(absl::StrCat("k", ++counter_));
    Op op;
    auto envelope = OpenSubmission(SealEvent(body, KeyOf(org)), kLedgerId);
    EXPECT_TRUE(envelope.ok()) << envelope.status();
    if (envelope.ok()) op.envelope = *std::move(envelope);
    op.context = Context{position_, now_};
    return op;
  }

  void Setup() {
    // Genesis.
    v1::EventBody genesis_body;
    auto* genesis = genesis_body.mutable_genesis();
    genesis->set_operator_id("operator");
    genesis->set_operator_public_key(std::string(KeyOf("operator").public_key().raw()));
    genesis->set_origin("decision-ledger/property");
    genesis->set_rules_version(kLatestRulesVersion);
    auto* registrar = genesis->add_registrars();
    registrar->set_org_id("registrar");
    registrar->add_public_keys(std::string(KeyOf("registrar").public_key().raw()));
    SetupStep(Submission("operator", genesis_body));
    for (size_t i = 2; i < Everyone().size(); ++i) {
      v1::EventBody body;
      auto* r = body.mutable_organisation_registered();
      r->set_org_id(Everyone()[i]);
      r->add_public_keys(std::string(KeyOf(Everyone()[i]).public_key().raw()));
      SetupStep(Submission("registrar", body));
    }
    const int members = Uniform(3, 6);
    for (int i = 0; i < members; ++i) founders_.push_back(absl::StrCat("m", i));
    const v1::Charter charter = RandomCharter();
    v1::EventBody propose;
    propose.mutable_collective_proposed()->set_collective_id("col");
    *propose.mutable_collective_proposed()->mutable_charter() = charter;
    SetupStep(Submission(Pick(founders_), propose));
    for (const auto& m : founders_) {
      v1::EventBody accept;
      accept.mutable_charter_accepted()->set_collective_id("col");
      accept.mutable_charter_accepted()->set_charter_digest(CharterDigest(charter));
      SetupStep(Submission(m, accept));
    }
    ASSERT_NE(primary_.FindCollective("col"), nullptr);
    ASSERT_TRUE(primary_.FindCollective("col")->formed());
  }

  void SetupStep(const Op& op) {
    Step(op);
    ASSERT_TRUE(outcomes_.back().accepted) << "setup step refused: " << v1::Reason_Name(outcomes_.back().reason);
  }

  std::vector<std::string> CurrentMembers() const {
    const v1::CollectiveState* c = primary_.FindCollective("col");
    return {c->members().begin(), c->members().end()};
  }

  std::string PickOrg() {
    std::vector<std::string> members = CurrentMembers();
    if (!members.empty() && Chance(85)) return Pick(members);
    return Pick(std::vector<std::string>(Everyone().begin() + 2, Everyone().end()));
  }

  // A proposal id: usually an existing one, preferring open ones.
  std::string PickProposal() {
    if (proposals_.empty() || Chance(4)) return "ghost";
    if (Chance(70)) {
      std::vector<std::string> open;
      for (const auto& id : proposals_) {
        const v1::ProposalState* p = primary_.FindProposal(id);
        if (p != nullptr && p->status() == v1::PROPOSAL_OPEN) open.push_back(id);
      }
      if (!open.empty()) return Pick(open);
    }
    return Pick(proposals_);
  }

  // A gateway of `p`: its current one, any of its gateways (often locked), or
  // an unknown one.
  std::string PickGateway(const v1::ProposalState* p) {
    if (p == nullptr || Chance(5)) return Chance(50) ? "ghost" : absl::StrCat("g", Uniform(0, 4));
    if (p->current_gateway() >= 0 && Chance(55)) return p->gateways(p->current_gateway()).id();
    return p->gateways(Uniform(0, p->gateways_size() - 1)).id();
  }

  v1::Position PickPosition() {
    // Some runs abstain a lot, so gateways where nobody assents are reached.
    if (abstain_heavy_ && Chance(60)) return v1::ABSTAIN;
    int k = Uniform(0, 99);
    if (k < 55) return v1::ASSENT;
    if (k < 78) return v1::OBJECT;
    if (k < 96) return v1::ABSTAIN;
    return v1::POSITION_UNSPECIFIED;
  }

  v1::EventBody ProposalBody(const std::string& id, const std::string& category = "service") {
    v1::EventBody body;
    auto* s = body.mutable_proposal_submitted();
    s->set_collective_id(Chance(2) ? "nocol" : "col");
    s->set_proposal_id(id);
    s->set_title("t");
    s->set_category(category);
    return body;
  }

  std::string NewProposalId() {
    if (!proposals_.empty() && Chance(5)) return Pick(proposals_);  // PROPOSAL_EXISTS
    std::string id = absl::StrCat("p", proposals_.size());
    proposals_.push_back(id);
    return id;
  }

  std::optional<Op> RandomOp() {
    // A registrar's merger accepted at the last step is confirmed by both
    // organisations, one per step, in a random order: under rules version 2
    // it takes effect at the second confirmation.
    if (!confirmations_.empty()) {
      const auto [org, change_position] = confirmations_.front();
      confirmations_.erase(confirmations_.begin());
      v1::EventBody body;
      body.mutable_identity_change_confirmed()->set_change_position(change_position);
      return Submission(org, body);
    }
    // Now and then (twice a run at most) a member, or a caller, merges into
    // another organisation: its open seats pass or are vacated once both
    // organisations have confirmed.
    if (mergers_ < 2 && Chance(1)) {
      ++mergers_;
      const std::vector<std::string> members = CurrentMembers();
      const std::string merged =
          Chance(80) && !members.empty() ? Pick(members) : Pick(std::vector<std::string>{"n1", "m0"});
      const std::string successor = Pick(std::vector<std::string>(Everyone().begin() + 2, Everyone().end()));
      v1::EventBody body;
      body.mutable_organisation_merged()->set_merged_org_id(merged);
      body.mutable_organisation_merged()->set_successor_org_id(successor);
      return Submission("registrar", body);
    }
    const int k = Uniform(0, 999);
    if (k < 80) {  // an ordinary proposal
      // One draw per statement: argument evaluation order is unspecified, and
      // the runs must be the same under every compiler.
      const std::string org = PickOrg();
      const std::string id = NewProposalId();
      const char* category = Chance(8) ? "reserved" : "service";
      return Submission(org, ProposalBody(id, category));
    }
    if (k < 530 || k >= 875) {  // a vote; the tail pushes proposals on
      const std::string pid = PickProposal();
      const v1::ProposalState* p = primary_.FindProposal(pid);
      const bool push = k >= 875;
      std::string gateway = push && p != nullptr && p->current_gateway() >= 0
                                ? p->gateways(p->current_gateway()).id()
                                : PickGateway(p);
      std::string org = PickOrg();
      if (p != nullptr && Chance(70)) {
        int idx = GatewayIndex(*p, gateway);
        if (idx >= 0 && p->gateway_states(idx).electorate_size() > 0) org = Pick(p->gateway_states(idx).electorate());
      }
      v1::EventBody body;
      auto* v = body.mutable_vote_cast();
      v->set_proposal_id(pid);
      v->set_gateway_id(gateway);
      v->set_position(push && !abstain_heavy_ ? (Chance(85) ? v1::ASSENT : v1::ABSTAIN) : PickPosition());
      v->set_rationale("r");
      return Submission(org, body);
    }
    if (k < 570) {
      v1::EventBody body;
      body.mutable_interest_declared()->set_proposal_id(PickProposal());
      return Submission(PickOrg(), body);
    }
    if (k < 660) {  // a call, by a caller or anyone
      const std::string pid = PickProposal();
      const v1::ProposalState* p = primary_.FindProposal(pid);
      std::string org = Chance(75) ? Pick(std::vector<std::string>{"n0", "n1", "m0"}) : PickOrg();
      v1::EventBody body;
      auto* c = body.mutable_decision_called();
      c->set_proposal_id(pid);
      c->set_gateway_id(PickGateway(p));
      int o = Uniform(0, 99);
      c->set_outcome(o < 60 ? v1::PASS : o < 95 ? v1::FAIL : v1::OUTCOME_UNSPECIFIED);
      if (!Chance(8)) c->set_rationale("called");
      return Submission(org, body);
    }
    if (k < 690) {
      const std::string pid = PickProposal();
      const v1::ProposalState* p = primary_.FindProposal(pid);
      v1::EventBody body;
      body.mutable_proposal_withdrawn()->set_proposal_id(pid);
      return Submission(p != nullptr && Chance(70) ? p->proposer() : PickOrg(), body);
    }
    if (k < 730) {
      v1::EventBody body;
      body.mutable_impact_declared()->set_proposal_id(PickProposal());
      body.mutable_impact_declared()->set_annual_impact_pence(Chance(5) ? 0 : Uniform(1, 5'000'000));
      return Submission(PickOrg(), body);
    }
    if (k < 760) {
      const std::string pid = PickProposal();
      v1::EventBody body;
      auto* a = body.mutable_assurance_recorded();
      a->set_proposal_id(pid);
      a->set_gateway_id(PickGateway(primary_.FindProposal(pid)));
      a->set_rating(static_cast<v1::Rating>(Uniform(0, 3)));
      return Submission(Chance(80) ? "s0" : PickOrg(), body);
    }
    if (k < 820) {  // a revisit of a (preferably locked) gateway
      const std::string target = PickProposal();
      const v1::ProposalState* p = primary_.FindProposal(target);
      std::string gateway = PickGateway(p);
      if (p != nullptr && Chance(70)) {
        std::vector<std::string> locked;
        for (const auto& gs : p->gateway_states()) {
          if (gs.status() == v1::GATEWAY_PASSED) locked.push_back(gs.gateway_id());
        }
        if (!locked.empty()) gateway = Pick(locked);
      }
      v1::EventBody body = ProposalBody(NewProposalId(), "governance");
      body.mutable_proposal_submitted()->mutable_revisit()->set_proposal_id(target);
      body.mutable_proposal_submitted()->mutable_revisit()->set_gateway_id(gateway);
      return Submission(PickOrg(), body);
    }
    if (k < 830) {
      v1::EventBody body;
      body.mutable_member_withdrew()->set_collective_id("col");
      body.mutable_member_withdrew()->set_reason("leaving");
      return Submission(PickOrg(), body);
    }
    if (k < 860) {  // admission or removal
      v1::EventBody body = ProposalBody(NewProposalId(), "governance");
      auto* change = Chance(50) ? body.mutable_proposal_submitted()->mutable_admit_member()
                                : body.mutable_proposal_submitted()->mutable_remove_member();
      change->set_org_id(Pick(std::vector<std::string>(Everyone().begin() + 2, Everyone().end())));
      return Submission(PickOrg(), body);
    }
    // k < 875: an amendment to a new random charter.
    v1::EventBody body = ProposalBody(NewProposalId(), "governance");
    *body.mutable_proposal_submitted()->mutable_amend_charter() = RandomCharter();
    return Submission(PickOrg(), body);
  }

  // -------------------------------------------------------------- stepping
  // What the op targets, for the GATEWAY_LOCKED oracle: a vote (with a valid
  // position) or a call on a gateway that is locked now must be refused so.
  bool TargetsLockedGateway(const Op& op) const {
    if (op.lapse) return false;
    const v1::EventBody& body = op.envelope.body;
    // An organisation merged away signs nothing (ORGANISATION_MERGED first).
    const v1::OrganisationState* author = primary_.FindOrganisation(body.author());
    if (author != nullptr && !author->merged_into().empty()) return false;
    std::string pid, gateway;
    if (body.has_vote_cast()) {
      const v1::Position pos = body.vote_cast().position();
      if (pos != v1::ASSENT && pos != v1::OBJECT && pos != v1::ABSTAIN) return false;
      pid = body.vote_cast().proposal_id();
      gateway = body.vote_cast().gateway_id();
    } else if (body.has_decision_called()) {
      pid = body.decision_called().proposal_id();
      gateway = body.decision_called().gateway_id();
    } else {
      return false;
    }
    const v1::ProposalState* p = primary_.FindProposal(pid);
    if (p == nullptr) return false;
    const int idx = GatewayIndex(*p, gateway);
    return idx >= 0 && p->gateway_states(idx).status() == v1::GATEWAY_PASSED;
  }

  // Rules version 2's deadlock, from the state before a call: a lapse, or on
  // a unanimity gateway an objection by an elector other than the caller
  // once every elector other than the caller has voted.
  bool Deadlocked(const Op& op) const {
    if (op.lapse || !op.envelope.body.has_decision_called()) return false;
    const auto& call = op.envelope.body.decision_called();
    const v1::ProposalState* p = primary_.FindProposal(call.proposal_id());
    if (p == nullptr) return false;
    const int idx = GatewayIndex(*p, call.gateway_id());
    if (idx < 0) return false;
    const v1::GatewayState& gs = p->gateway_states(idx);
    if (gs.status() == v1::GATEWAY_LAPSED) return true;
    if (Normalised(p->gateways(idx).rule()).kind() != v1::UNANIMITY) return false;
    std::map<std::string, v1::Position> latest;
    for (const v1::VoteRecord& vote : gs.votes()) latest[vote.org_id()] = vote.position();
    bool objection = false;
    for (const std::string& elector : gs.electorate()) {
      if (elector == op.envelope.body.author()) continue;
      auto it = latest.find(elector);
      if (it == latest.end()) return false;
      objection |= it->second == v1::OBJECT;
    }
    return objection;
  }

  void Step(const Op& op) {
    const bool expect_locked = TargetsLockedGateway(op);
    const bool deadlocked = Deadlocked(op);
    const auto deadlines_before = Deadlines(primary_);
    // (c), and (e) for one step.
    const size_t mark = primary_.Mark();
    Outcome out = Execute(primary_, op, &snapshot_);
    if (Chance(25)) {
      primary_.RollbackTo(mark);
      EXPECT_TRUE(primary_.Snapshot() == snapshot_) << "(e) RollbackTo did not restore the state";
      EXPECT_EQ(Deadlines(primary_), deadlines_before) << "(e) RollbackTo did not restore the deadline index";
      Outcome again = Execute(primary_, op, nullptr);
      EXPECT_EQ(again.Fingerprint(), out.Fingerprint()) << "(e) redoing a rolled-back step differs";
    }
    if (!out.accepted && !out.recorded) {
      EXPECT_EQ(Deadlines(primary_), deadlines_before) << "(c) refusal changed the deadline index";
    }
    if (!op.lapse && op.envelope.body.has_decision_called() && out.accepted) {
      EXPECT_TRUE(deadlocked) << "(g) a call without a real deadlock was accepted";
      calls_++;
    }
    if (!op.lapse && op.envelope.body.has_organisation_merged() && out.accepted) {
      // Rules version 2: a registrar's merger waits, pending at its own
      // position (after any lapses written first), for both organisations.
      const auto& merger = op.envelope.body.organisation_merged();
      const uint64_t change_position = position_ + out.width - 1;
      const v1::IdentityChangeState* change = primary_.FindIdentityChange(change_position);
      EXPECT_TRUE(change != nullptr && change->status() == v1::IDENTITY_CHANGE_PENDING &&
                  change->org_id() == merger.merged_org_id() &&
                  change->successor_org_id() == merger.successor_org_id())
          << "the merger is not pending at " << change_position;
      const v1::OrganisationState* merged = primary_.FindOrganisation(merger.merged_org_id());
      EXPECT_TRUE(merged != nullptr && merged->merged_into().empty()) << "a merger took effect unconfirmed";
      confirmations_ = {{merger.merged_org_id(), change_position}, {merger.successor_org_id(), change_position}};
      if (Chance(50)) std::swap(confirmations_[0], confirmations_[1]);
    }
    if (!op.lapse && op.envelope.body.has_identity_change_confirmed()) {
      EXPECT_TRUE(out.accepted) << "(h) a merging organisation's confirmation was refused: "
                                << v1::Reason_Name(out.reason);
    }
    // (h) once a merger takes effect (here: at the second confirmation), no
    // open or lapsed gateway keeps a seat for the organisation merged away.
    for (const std::string& org : Everyone()) {
      const v1::OrganisationState* state = primary_.FindOrganisation(org);
      if (state == nullptr || state->merged_into().empty() || merged_away_.count(org) > 0) continue;
      merged_away_.insert(org);
      EXPECT_TRUE(!op.lapse && op.envelope.body.has_identity_change_confirmed() && confirmations_.empty())
          << "(h) " << org << " was merged by something other than the second confirmation";
      for (const auto& [id, p] : primary_.proposals()) {
        if (p.status() != v1::PROPOSAL_OPEN || p.current_gateway() < 0) continue;
        const v1::GatewayState& gs = p.gateway_states(p.current_gateway());
        if (gs.status() != v1::GATEWAY_OPEN && gs.status() != v1::GATEWAY_LAPSED) continue;
        EXPECT_FALSE(Contains(gs.electorate(), org)) << "(h) " << id << " keeps a seat for merged " << org;
      }
      merged_++;
    }
    if (expect_locked) {
      EXPECT_FALSE(out.accepted) << "a vote or call on a locked gateway was accepted";
      EXPECT_EQ(out.reason, v1::GATEWAY_LOCKED);
      locked_refusals_++;
    }
    position_ += out.width;
    if (!op.lapse) (out.accepted ? accepted_ : refused_)++;
    // (f): the server has its own Genesis, and writes a lapse with the next
    // submission (the same records: lapses due are decided first).
    if (mirror_ != nullptr && !op.lapse && !op.envelope.body.has_genesis()) mirror_->Submit(op, out);

    // (d): the replica sees only what the log holds.
    const bool logged = out.accepted || out.recorded;
    if (logged) {
      Outcome replayed = Execute(replica_, op, nullptr);
      EXPECT_EQ(replayed.Fingerprint(), out.Fingerprint())
          << "(d) replica differs on " << (op.lapse ? "lapse" : EventKind(op.envelope.body));
      log_.push_back(op);
      logged_outcomes_.push_back(out);
    }
    outcomes_.push_back(out);
    if (in_segment_) segment_ops_.push_back({op, out});

    CheckInvariants(out);
    snapshot_ = primary_.Snapshot();
    EXPECT_EQ(Deadlines(primary_), ExpectedDeadlines(primary_)) << "deadline index out of step";
    if (step_ % 10 == 0 || step_ + 1 == kActions) {
      EXPECT_TRUE(replica_.Snapshot() == snapshot_) << "(d) replica state differs";
    }
    if (!in_segment_) primary_.CommitChanges();
    replica_.CommitChanges();
  }

  // (e) over several steps: mark, run a few, roll back, check, redo them.
  void BeginSegment() {
    in_segment_ = true;
    segment_mark_ = primary_.Mark();
    segment_snapshot_ = snapshot_;
    segment_position_ = position_;
    segment_ops_.clear();
  }

  void EndSegment() {
    in_segment_ = false;
    const Snap end = snapshot_;
    primary_.RollbackTo(segment_mark_);
    EXPECT_TRUE(primary_.Snapshot() == segment_snapshot_) << "(e) multi-step RollbackTo did not restore the state";
    for (const auto& [op, out] : segment_ops_) {
      Outcome again = Execute(primary_, op, nullptr);
      EXPECT_EQ(again.Fingerprint(), out.Fingerprint()) << "(e) redoing a rolled-back segment differs";
    }
    EXPECT_TRUE(primary_.Snapshot() == end) << "(e) redone segment ends elsewhere";
    primary_.CommitChanges();
    segment_ops_.clear();
  }

  void CheckInvariants(const Outcome& out) {
    for (const v1::EventBody& e : out.events) {
      if (e.has_gateway_passed()) {
        const v1::GatewayPassed& gp = e.gateway_passed();
        const v1::ProposalState* p = primary_.FindProposal(gp.proposal_id());
        ASSERT_NE(p, nullptr);
        const int idx = GatewayIndex(*p, gp.gateway_id());
        ASSERT_GE(idx, 0);
        passes_total_++;
        EXPECT_EQ(++passes_[std::make_pair(gp.proposal_id(), idx)], 1)
            << "(b) gateway " << gp.gateway_id() << " of " << gp.proposal_id() << " locked twice in one attempt";
        for (int j = 0; j < idx; ++j) {
          EXPECT_EQ(p->gateway_states(j).status(), v1::GATEWAY_PASSED)
              << "(b) " << gp.gateway_id() << " passed before gateway " << j;
        }
        const v1::Gateway& gateway = p->gateways(idx);
        if (gp.caller().empty()) {
          const v1::Tally& t = gp.tally();
          EXPECT_EQ(Evaluate(gateway.rule(), Count{t.electorate(), t.assent(), t.object(), t.abstain()}),
                    Verdict::kPass)
              << "(b) " << gp.gateway_id() << " passed without meeting its rule: " << t.ShortDebugString();
          EXPECT_GT(t.assent(), 0u) << "(b) passed with no assent: " << t.ShortDebugString() << " rule "
                                    << gateway.rule().ShortDebugString();
        } else {
          EXPECT_TRUE(Contains(gateway.callers(), gp.caller())) << "(b) called by " << gp.caller();
        }
      }
      if (e.has_decision_adopted()) {
        adopted_++;
        const v1::ProposalState* r = primary_.FindProposal(e.decision_adopted().proposal_id());
        ASSERT_NE(r, nullptr);
        if (r->submission().has_revisit()) {
          // A new attempt of the revisited gateway and every later one.
          const auto& revisit = r->submission().revisit();
          const v1::ProposalState* target = primary_.FindProposal(revisit.proposal_id());
          ASSERT_NE(target, nullptr);
          const int j = GatewayIndex(*target, revisit.gateway_id());
          ASSERT_GE(j, 0);
          // (A revisit whose gateway is no longer locked, or whose target has
          // closed, since it was submitted changes nothing.)
          const bool reopened = locked_.count({target->proposal_id(), j}) > 0 &&
                                target->gateway_states(j).status() != v1::GATEWAY_PASSED;
          if (reopened) {
            for (int i = j; i < target->gateway_states_size(); ++i) {
              locked_.erase({target->proposal_id(), i});
              passes_.erase({target->proposal_id(), i});
            }
            reopened_++;
            EXPECT_EQ(target->status(), v1::PROPOSAL_OPEN) << "(a) a revisit reopened a closed proposal";
            const v1::GatewayStatus status = target->gateway_states(j).status();
            EXPECT_TRUE(status == v1::GATEWAY_OPEN || status == v1::GATEWAY_AWAITING_ASSURANCE)
                << v1::GatewayStatus_Name(status);
            EXPECT_EQ(target->current_gateway(), j);
            EXPECT_TRUE(target->gateway_states(j).votes().empty());
          }
        }
      }
    }
    // Every proposal's gateways: locked ones unchanged, in charter order.
    for (const auto& [id, p] : primary_.proposals()) {
      bool seen_unpassed = false;
      int leading_passed = 0;
      for (int i = 0; i < p.gateway_states_size(); ++i) {
        const v1::GatewayState& gs = p.gateway_states(i);
        const std::pair<std::string, int> key{id, i};
        if (gs.status() == v1::GATEWAY_PASSED) {
          EXPECT_FALSE(seen_unpassed) << "(b) " << id << " gateway " << i << " passed after an unpassed one";
          if (!seen_unpassed) leading_passed++;
          std::string votes;
          for (const auto& v : gs.votes()) votes += v.SerializeAsString();
          auto [it, inserted] = locked_.try_emplace(key, votes);
          if (!inserted) {
            EXPECT_EQ(it->second, votes) << "(a) the votes of locked gateway " << i << " of " << id << " changed";
          }
        } else {
          seen_unpassed = true;
          EXPECT_EQ(locked_.count(key), 0u) << "(a) gateway " << i << " of " << id << " was unlocked without a revisit";
        }
      }
      if (p.status() == v1::PROPOSAL_OPEN) {
        EXPECT_EQ(p.current_gateway(), leading_passed) << id;
      }
      if (p.status() == v1::PROPOSAL_ADOPTED) {
        EXPECT_EQ(leading_passed, p.gateway_states_size()) << id << " adopted with a gateway not passed";
      }
    }
  }

  // (d) at the end: a fresh State fed the log from Genesis.
  void FinalReplay() {
    State fresh;
    std::string expected, got;
    for (size_t i = 0; i < log_.size(); ++i) {
      Outcome out = Execute(fresh, log_[i], nullptr);
      absl::StrAppend(&got, out.Fingerprint(), "\n");
      absl::StrAppend(&expected, logged_outcomes_[i].Fingerprint(), "\n");
    }
    EXPECT_EQ(got, expected) << "(d) replay from Genesis produced different system events";
    EXPECT_TRUE(fresh.Snapshot() == primary_.Snapshot()) << "(d) replay from Genesis reached a different state";
    EXPECT_EQ(Deadlines(fresh), Deadlines(primary_));
  }

  const uint32_t seed_;
  std::mt19937 rng_;
  const bool abstain_heavy_ = seed_ % 5 == 1;
  int step_ = -1;
  State primary_;
  State replica_;
  std::unique_ptr<WritePathMirror> mirror_;
  Snap snapshot_;  // of primary_, before the next step
  uint64_t position_ = 0;
  int64_t now_ = kT0;
  int counter_ = 0;
  std::vector<std::string> founders_;
  std::vector<std::string> proposals_;
  // Confirmations of the merger accepted last, still to submit: (org, change position).
  std::vector<std::pair<std::string, uint64_t>> confirmations_;
  std::set<std::string> merged_away_;  // organisations seen merged, for (h)
  std::vector<Op> log_;
  std::vector<Outcome> logged_outcomes_;
  std::vector<Outcome> outcomes_;
  std::map<std::pair<std::string, int>, std::string> locked_;  // votes when first seen locked
  std::map<std::pair<std::string, int>, int> passes_;          // GatewayPassed per attempt

  bool in_segment_ = false;
  size_t segment_mark_ = 0;
  Snap segment_snapshot_;
  uint64_t segment_position_ = 0;
  std::vector<std::pair<Op, Outcome>> segment_ops_;

  int accepted_ = 0, refused_ = 0, passes_total_ = 0, adopted_ = 0, reopened_ = 0, locked_refusals_ = 0;
  int mergers_ = 0, merged_ = 0, calls_ = 0;
};

TEST(GovernanceProperty, RandomChartersAndActionsKeepTheInvariants) {
  const auto start = std::chrono::steady_clock::now();
  int accepted = 0, refused = 0, passes = 0, adopted = 0, reopened = 0, locked = 0, merged = 0, calls = 0;
  size_t mirrored = 0;
  for (int run = 0; run < kRuns; ++run) {
    Scenario r(static_cast<uint32_t>(20240 + run), /*mirror=*/run % kMirrorEvery == 0);
    r.Go();
    mirrored += r.mirrored();
    accepted += r.accepted();
    refused += r.refused();
    passes += r.passes();
    adopted += r.adopted();
    reopened += r.reopened();
    locked += r.locked_refusals();
    merged += r.merged();
    calls += r.calls();
    if (HasFailure()) {
      ADD_FAILURE() << "first failing seed: " << 20240 + run;
      break;
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%d runs: %d accepted, %d refused (%d on locked gateways), %d gateways passed, %d adopted, "
              "%d reopened by revisits, %d calls, %d mergers, %zu submissions also through the server's write "
              "path, %.1f s\n",
              kRuns, accepted, refused, locked, passes, adopted, reopened, calls, merged, mirrored, seconds);
  // The generator must actually reach the interesting corners.
  EXPECT_GT(passes, kRuns * 5);
  EXPECT_GT(adopted, kRuns);
  EXPECT_GT(locked, kRuns * 4);
  EXPECT_GT(reopened, 0);
  EXPECT_GT(calls, kRuns / 4);
  EXPECT_GT(merged, kRuns / 2);
  EXPECT_GT(mirrored, static_cast<size_t>(kRuns / kMirrorEvery * kActions / 2));
}

}  // namespace
}  // namespace ledger::rules
