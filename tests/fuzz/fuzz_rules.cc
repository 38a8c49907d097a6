// A model-based fuzzer of the rules engine (ledger/rules/rules.h and
// governance.cc). The bytes drive a small fixed world:
//   operator, registrar, and four organisations o0..o3 with keys derived from
//   fixed seeds (crypto::PrivateKey::FromSeed); one collective "col" whose
//   charter (1-4 gateways, their rules, callers, deadlines, required
//   assurance, the amendment and revisit rules) is read from the first bytes.
// The rest of the bytes are member actions (proposals of every kind, votes,
// interests, impacts, calls, withdrawals, assurance, member withdrawal,
// mergers by the registrar, which both organisations then confirm) and
// the passing of time, each decided by rules::DecideGroup (the write path's
// and the auditor's own decision, through tests/support/rules_harness.h) at
// increasing positions and ledger times: lapses when a deadline falls due,
// refusals recorded as the server records them.
//
// Invariants, checked after every step (a violation traps):
//   (a) no accepted reversal: a gateway that is GATEWAY_PASSED keeps that
//       status and exactly its votes, unless a revisit of it (or of an
//       earlier gateway of the same proposal) was adopted in that step;
//   (b) gateways lock in order: the passed gateways of a proposal are a
//       prefix of its gateways, at most one gateway is live (open, lapsed or
//       awaiting assurance) and it is the current one; a gateway passed
//       without a call meets its rule by its own tally;
//   (c) a refusal changes State::Snapshot() only by keeping it on the record;
//   (d) replaying the log (accepted envelopes, lapses at the same points,
//       recorded refusals) into a fresh State yields the same system events
//       and the same Snapshot();
//   (e) no open or lapsed gateway keeps a seat for an organisation merged
//       away (rules version 2: the successor took it, or it was vacated).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/event/envelope.h"
#include "ledger/event/refusal.h"
#include "ledger/rules/charter.h"
#include "ledger/rules/rules.h"
#include "ledger/rules/state.h"
#include "ledger/rules/version.h"
#include "tests/support/rules_harness.h"

namespace {

using ledger::Envelope;
using ledger::crypto::PrivateKey;
using ledger::rules::Context;
using ledger::rules::State;
namespace v1 = ledger::v1;
using Snap = absl::btree_map<std::string, std::string>;

constexpr char kLedgerId[] = "ledger-x";
constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kHour = 3600 * kSecond;
constexpr int64_t kT0 = 1'700'000'000 * kSecond;
constexpr size_t kMaxActions = 96;  // keeps one input cheap
// FUZZ_RULES_VERBOSE=1 traces every step (to read a crash input).
const bool kVerbose = std::getenv("FUZZ_RULES_VERBOSE") != nullptr;

void Trace(uint64_t position, const std::string& what, const absl::Status& status,
           const std::vector<v1::EventBody>& events) {
  if (!kVerbose) return;
  std::fprintf(stderr, "@%llu %s: %s", static_cast<unsigned long long>(position), what.c_str(),
               status.ok() ? "ok" : std::string(status.message()).c_str());
  for (const auto& e : events) std::fprintf(stderr, " -> %s", ledger::EventKind(e).c_str());
  std::fprintf(stderr, "\n");
}
const char* const kOrgs[] = {"o0", "o1", "o2", "o3"};

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "fuzz_rules: invariant violated: %s\n", what);
  __builtin_trap();
}
#define CHECK_INV(cond, what) \
  do {                        \
    if (!(cond)) Fail(what);  \
  } while (0)

const PrivateKey& KeyOf(const std::string& org) {
  static const auto* keys = [] {
    auto* m = new std::map<std::string, PrivateKey>();
    for (const char* org : {"operator", "registrar", "o0", "o1", "o2", "o3"}) {
      std::string seed(32, '\x7e');
      std::copy(org, org + std::char_traits<char>::length(org), seed.begin());
      m->emplace(org, *PrivateKey::FromSeed(seed));
    }
    return m;
  }();
  return keys->at(org);
}

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  int Below(int n) { return Byte() % n; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// One entry of the log as the auditor sees it.
struct LogOp {
  enum Kind { kApply, kLapse, kRefusal } kind = kApply;
  Envelope envelope;
  Context context;
  absl::StatusCode refusal_code = absl::StatusCode::kOk;
  v1::Reason refusal_reason = v1::REASON_UNSPECIFIED;
  std::string events;  // the system events it produced, serialized
};

std::string Serialize(const std::vector<v1::EventBody>& events) {
  std::string out;
  for (const auto& e : events) absl::StrAppend(&out, e.SerializeAsString(), "|");
  return out;
}

int GatewayIndex(const v1::ProposalState& p, const std::string& id) {
  for (int i = 0; i < p.gateways_size(); ++i) {
    if (p.gateways(i).id() == id) return i;
  }
  return -1;
}

bool Live(v1::GatewayStatus s) {
  return s == v1::GATEWAY_OPEN || s == v1::GATEWAY_LAPSED || s == v1::GATEWAY_AWAITING_ASSURANCE;
}

class World {
 public:
  explicit World(Reader& in) : in_(in) {}

  void Run() {
    if (!Setup()) return;
    for (size_t step = 0; step < kMaxActions && !in_.empty(); ++step) Act();
    Replay();
  }

 private:
  // ------------------------------------------------------------ charters
  v1::DecisionRule Rule() {
    v1::DecisionRule rule;
    const uint8_t b = in_.Byte();
    switch (b % 4) {
      case 0: rule.set_kind(v1::RULE_KIND_UNSPECIFIED); break;
      case 1: rule.set_kind(v1::UNANIMITY); break;
      case 2: rule.set_kind(v1::MAJORITY); break;
      default: {
        static const std::pair<int, int> kFractions[] = {{2, 3}, {3, 4}, {4, 5}, {1, 1}};
        auto [n, d] = kFractions[(b >> 2) % 4];
        rule.set_kind(v1::SUPERMAJORITY);
        rule.set_numerator(n);
        rule.set_denominator(d);
      }
    }
    static const int kQuorums[] = {0, 0, 50, 100};
    rule.set_quorum_percent(kQuorums[(b >> 4) % 4]);
    rule.set_abstention(static_cast<v1::AbstentionMode>((b >> 6) % 3));
    return rule;
  }

  v1::Charter MakeCharter() {
    v1::Charter charter;
    charter.set_name("fuzz charter");
    const uint8_t shape = in_.Byte();
    const int founders = 3 + (shape & 1);  // o3 a founder, or one to admit later
    for (int i = 0; i < founders; ++i) charter.add_founding_members(kOrgs[i]);
    const int gateways = 1 + ((shape >> 1) % 4);
    for (int i = 0; i < gateways; ++i) {
      v1::Gateway* g = charter.add_gateways();
      g->set_id(absl::StrCat("g", i));
      g->set_name(absl::StrCat("gateway ", i));
      *g->mutable_rule() = Rule();
      const uint8_t b = in_.Byte();
      for (int k = 0; k < 4; ++k) {
        if (b & (1 << k)) g->add_callers(kOrgs[k]);
      }
      if (b & 0x10) g->set_deadline_seconds(3600 * (1 + ((b >> 5) & 3)));
      if ((b & 0xe0) == 0xe0) g->set_required_assurance("o3");
    }
    charter.add_assurance_bodies("o3");
    charter.add_reserved_categories("reserved");
    for (int i = (shape >> 3) & 3; i > 0; --i) charter.mutable_taper()->add_percent_by_year(in_.Byte() % 101);
    if (shape & 0x20) *charter.mutable_amendment_rule() = Rule();
    if (shape & 0x40) {
      *charter.mutable_revisit_rule() = Rule();
      if (shape & 0x80) charter.add_revisit_callers("o1");
    }
    // Rules version 2: changes to the collective are called by these (no
    // new input bytes, so the corpus keeps its meaning).
    *charter.mutable_amendment_callers() = charter.gateways(0).callers();
    return charter;
  }

  // ------------------------------------------------------------ steps
  // Ed25519 signing dominates the cost of an input, and most inputs share
  // their first events (the whole setup), so signatures are memoised by body
  // (signing is deterministic). Apply does not check signatures (the write
  // path does, before it), so neither does this fuzzer.
  static v1::SignedEvent SealCached(const v1::EventBody& body, const std::string& author) {
    static auto* cache = new std::map<std::string, std::string>();
    v1::SignedEvent signed_event;
    signed_event.set_body(body.SerializeAsString());
    signed_event.set_key_id(KeyOf(author).public_key().key_id());
    const std::string cache_key = absl::StrCat(author, "/", signed_event.body());
    auto it = cache->find(cache_key);
    if (it == cache->end()) {
      if (cache->size() > 200'000) cache->clear();
      it = cache->emplace(cache_key, ledger::crypto::SignEvent(KeyOf(author), signed_event.body())).first;
    }
    signed_event.set_signature(it->second);
    return signed_event;
  }

  Envelope Seal(const std::string& author, v1::EventBody body) {
    body.set_ledger_id(kLedgerId);
    body.set_author(author);
    body.set_idempotency_key(absl::StrCat("k", ++counter_));
    auto envelope = ledger::OpenSubmission(SealCached(body, author), kLedgerId);
    CHECK_INV(envelope.ok(), "a well-formed submission did not open");
    return *std::move(envelope);
  }

  // Decides one member event; returns whether it was accepted.
  bool Submit(const std::string& author, v1::EventBody body) {
    LogOp op;
    op.envelope = Seal(author, std::move(body));
    op.context = Context{position_, now_};
    const Snap before = state_.Snapshot();
    // Signatures are this fuzzer's own, made with the right keys (see
    // SealCached); the rules still decide whether a key may sign.
    ledger::harness::OneDecision decision =
        ledger::harness::DecideOne(state_, op.envelope, op.context, /*signature_checked=*/true);
    if (kVerbose) {
      std::string what = absl::StrCat(author, " ", ledger::EventKind(op.envelope.body), " ",
                                      op.envelope.body.ShortDebugString());
      Trace(position_, what, decision.status, decision.AllSystemEvents());
    }
    CHECK_INV(decision.lapses.empty(), "a lapse was due before a submission (the fuzzer lapses first)");
    if (!decision.ok()) {
      // (c) a refusal changes nothing but its own record.
      CHECK_INV(ledger::harness::ChangesBeyondRefusal(before, state_.Snapshot(), author, decision.refusal.has_value(),
                                                      position_)
                    .empty(),
                "(c) a refusal changed the state beyond its record");
      CHECK_INV(decision.status.code() != absl::StatusCode::kOk, "refusal without a code");
      if (decision.refusal.has_value()) {
        op.kind = LogOp::kRefusal;
        op.refusal_code = decision.status.code();
        op.refusal_reason = ledger::ReasonOf(decision.status);
        op.events = Serialize({*decision.refusal});
        log_.push_back(std::move(op));
        position_ += 1;
      }
      state_.CommitChanges();
      return false;
    }
    CheckStep(before_proposals_, decision.system_events);
    op.events = Serialize(decision.system_events);
    position_ += decision.records;
    log_.push_back(std::move(op));
    state_.CommitChanges();
    Remember();
    return true;
  }

  // What fell due: a gateway deadline, or (rules version 2) the end of a
  // pending identity change's notice.
  bool Due() const {
    return (!state_.deadlines().empty() && state_.deadlines().begin()->first <= now_) ||
           (!state_.notices().empty() && state_.notices().begin()->first <= now_);
  }

  void Lapse() {
    if (!Due()) return;
    LogOp op;
    op.kind = LogOp::kLapse;
    op.context = Context{position_, now_};
    std::vector<v1::EventBody> lapses = ledger::harness::DecideLapses(state_, op.context);
    Trace(position_, "lapse", absl::OkStatus(), lapses);
    CHECK_INV(!lapses.empty(), "a due deadline lapsed nothing");
    CHECK_INV(!Due(), "a lapse left a due deadline or notice");
    CheckStep(before_proposals_, lapses);
    op.events = Serialize(lapses);
    position_ += lapses.size();
    log_.push_back(std::move(op));
    state_.CommitChanges();
    Remember();
  }

  bool Setup() {
    v1::EventBody genesis_body;
    auto* genesis = genesis_body.mutable_genesis();
    genesis->set_operator_id("operator");
    genesis->set_operator_public_key(std::string(KeyOf("operator").public_key().raw()));
    genesis->set_origin("fuzz/rules");
    genesis->set_rules_version(ledger::rules::kLatestRulesVersion);
    auto* registrar = genesis->add_registrars();
    registrar->set_org_id("registrar");
    registrar->add_public_keys(std::string(KeyOf("registrar").public_key().raw()));
    CHECK_INV(Submit("operator", genesis_body), "genesis refused");
    for (const char* org : kOrgs) {
      v1::EventBody body;
      auto* r = body.mutable_organisation_registered();
      r->set_org_id(org);
      r->set_name(org);
      r->add_public_keys(std::string(KeyOf(org).public_key().raw()));
      CHECK_INV(Submit("registrar", body), "registration refused");
    }
    charter_ = MakeCharter();
    v1::EventBody propose;
    propose.mutable_collective_proposed()->set_collective_id("col");
    *propose.mutable_collective_proposed()->mutable_charter() = charter_;
    CHECK_INV(Submit("o0", propose), "a valid charter was refused");
    for (const std::string& m : charter_.founding_members()) {
      v1::EventBody accept;
      accept.mutable_charter_accepted()->set_collective_id("col");
      accept.mutable_charter_accepted()->set_charter_digest(ledger::rules::CharterDigest(charter_));
      CHECK_INV(Submit(m, accept), "a founding member's acceptance was refused");
    }
    CHECK_INV(state_.FindCollective("col") != nullptr && state_.FindCollective("col")->formed(),
              "the collective did not form");
    return true;
  }

  std::string PickProposal() {
    const int n = proposals_made_ + 1;
    const int k = in_.Below(n + 1);
    return k == n ? "nope" : absl::StrCat("p", k);
  }

  // A gateway id of the proposal (or an unknown one now and then).
  std::string PickGateway(const std::string& proposal_id) {
    const uint8_t b = in_.Byte();
    const v1::ProposalState* p = state_.FindProposal(proposal_id);
    if (p == nullptr || p->gateways_size() == 0 || b == 0xff) return "g9";
    if (b & 0x80) return p->gateways(p->current_gateway() < 0 ? 0 : p->current_gateway()).id();
    return p->gateways(b % p->gateways_size()).id();
  }

  void Act() {
    const uint8_t op = in_.Byte();
    const std::string author = kOrgs[(op >> 4) & 3];
    // Time passes a little each step, and sometimes a lot.
    now_ += static_cast<int64_t>(in_.Below(4)) * 20 * 60 * kSecond;
    if ((op >> 6) == 3) now_ += static_cast<int64_t>(in_.Below(8)) * kHour;
    Lapse();  // what fell due is lapsed before the next commit group

    v1::EventBody body;
    switch (op % 12) {
      case 0:
      case 1: {  // an ordinary proposal, or a change to the collective
        auto* s = body.mutable_proposal_submitted();
        s->set_collective_id(in_.Byte() == 0xff ? "other" : "col");
        s->set_proposal_id(absl::StrCat("p", proposals_made_));
        s->set_title("t");
        const uint8_t kind = in_.Byte();
        if (kind % 16 == 15) s->set_category("reserved");
        switch ((kind >> 4) % 8) {
          case 4: s->mutable_admit_member()->set_org_id(kOrgs[in_.Below(4)]); break;
          case 5: s->mutable_remove_member()->set_org_id(kOrgs[in_.Below(4)]); break;
          case 6: {
            v1::Charter amended = charter_;
            *amended.mutable_gateways(0)->mutable_rule() = Rule();
            *s->mutable_amend_charter() = amended;
            break;
          }
          case 7: {
            const std::string target = PickProposal();
            s->mutable_revisit()->set_proposal_id(target);
            s->mutable_revisit()->set_gateway_id(PickGateway(target));
            break;
          }
          default: break;  // ordinary
        }
        if (Submit(author, body)) ++proposals_made_;
        return;
      }
      case 2:
      case 3:
      case 4:
      case 5: {
        auto* v = body.mutable_vote_cast();
        v->set_proposal_id(PickProposal());
        v->set_gateway_id(PickGateway(v->proposal_id()));
        const uint8_t b = in_.Byte();
        v->set_position(static_cast<v1::Position>(b % 4 == 0 ? 1 + (b >> 2) % 3 : b % 4));
        if (b == 0xff) v->set_position(v1::POSITION_UNSPECIFIED);
        v->set_rationale("r");
        break;
      }
      case 6:
        body.mutable_interest_declared()->set_proposal_id(PickProposal());
        break;
      case 7: {
        auto* i = body.mutable_impact_declared();
        i->set_proposal_id(PickProposal());
        i->set_annual_impact_pence(static_cast<int64_t>(in_.Byte()) * 1000 - 1000);
        break;
      }
      case 8: {
        auto* c = body.mutable_decision_called();
        c->set_proposal_id(PickProposal());
        c->set_gateway_id(PickGateway(c->proposal_id()));
        const uint8_t b = in_.Byte();
        c->set_outcome(static_cast<v1::Outcome>(b % 3));
        if (b & 0x80) c->set_rationale("because");
        break;
      }
      case 9:
        body.mutable_proposal_withdrawn()->set_proposal_id(PickProposal());
        break;
      case 10: {
        auto* a = body.mutable_assurance_recorded();
        a->set_proposal_id(PickProposal());
        a->set_gateway_id(PickGateway(a->proposal_id()));
        a->set_rating(static_cast<v1::Rating>(in_.Below(4)));
        a->set_opinion("o");
        break;
      }
      default: {
        const int what = in_.Below(4);
        if (what == 0) {
          body.mutable_member_withdrew()->set_collective_id("col");
        } else if (what == 1) {  // a merger: open seats pass or are vacated
          // Rules version 2: the registrar's merger waits, pending at its own
          // position, until both organisations confirm it; it takes effect
          // at the second confirmation.
          const std::string successor = kOrgs[in_.Below(4)];
          body.mutable_organisation_merged()->set_merged_org_id(author);
          body.mutable_organisation_merged()->set_successor_org_id(successor);
          const uint64_t change_position = position_;  // nothing was due (Submit checks)
          if (!Submit("registrar", body)) return;
          CHECK_INV(state_.FindOrganisation(author)->merged_into().empty(),
                    "a registrar's merger took effect before it was confirmed");
          for (const std::string& org : {author, successor}) {
            v1::EventBody confirm;
            confirm.mutable_identity_change_confirmed()->set_change_position(change_position);
            CHECK_INV(Submit(org, confirm), "a merging organisation's confirmation was refused");
          }
          CHECK_INV(state_.FindOrganisation(author)->merged_into() == successor,
                    "a merger did not take effect at the second confirmation");
          return;
        } else {
          return;  // time passing only
        }
        break;
      }
    }
    Submit(author, body);
  }

  // ------------------------------------------------------------ invariants
  void Remember() {
    before_proposals_.clear();
    for (const auto& [id, p] : state_.proposals()) before_proposals_[id] = p;
  }

  void CheckStep(const std::map<std::string, v1::ProposalState>& before,
                 const std::vector<v1::EventBody>& events) {
    // Gateways reopened by a revisit adopted in this step: (proposal, first index).
    std::map<std::string, int> reopened;
    for (const v1::EventBody& e : events) {
      if (!e.has_decision_adopted()) continue;
      const v1::ProposalState* adopted = state_.FindProposal(e.decision_adopted().proposal_id());
      CHECK_INV(adopted != nullptr, "adopted an unknown proposal");
      if (!adopted->submission().has_revisit()) continue;
      const auto& revisit = adopted->submission().revisit();
      const v1::ProposalState* target = state_.FindProposal(revisit.proposal_id());
      CHECK_INV(target != nullptr, "revisited an unknown proposal");
      const int index = GatewayIndex(*target, revisit.gateway_id());
      CHECK_INV(index >= 0, "revisited an unknown gateway");
      auto [it, inserted] = reopened.emplace(revisit.proposal_id(), index);
      if (!inserted) it->second = std::min(it->second, index);
    }

    for (const auto& [id, p] : state_.proposals()) {
      // (b) passed gateways form a prefix; one live gateway at most, the current one.
      bool prefix = true;
      int live = 0;
      for (int i = 0; i < p.gateway_states_size(); ++i) {
        const v1::GatewayState& gs = p.gateway_states(i);
        CHECK_INV(gs.gateway_id() == p.gateways(i).id(), "(b) gateway states out of step with gateways");
        if (gs.status() == v1::GATEWAY_PASSED) {
          CHECK_INV(prefix, "(b) a gateway locked before an earlier one");
        } else {
          prefix = false;
        }
        if (Live(gs.status())) {
          ++live;
          CHECK_INV(p.status() == v1::PROPOSAL_OPEN, "(b) a live gateway on a closed proposal");
          CHECK_INV(i == p.current_gateway(), "(b) a live gateway that is not the current one");
        }
      }
      CHECK_INV(live <= 1, "(b) more than one live gateway");
      // (e) rules version 2: no open or lapsed gateway keeps a seat for an
      // organisation merged away.
      if (p.current_gateway() >= 0 && p.status() == v1::PROPOSAL_OPEN) {
        const v1::GatewayState& gs = p.gateway_states(p.current_gateway());
        if (gs.status() == v1::GATEWAY_OPEN || gs.status() == v1::GATEWAY_LAPSED) {
          for (const std::string& elector : gs.electorate()) {
            const v1::OrganisationState* org = state_.FindOrganisation(elector);
            CHECK_INV(org != nullptr && org->merged_into().empty(), "(e) a seat kept for a merged organisation");
          }
        }
      }
      if (p.status() == v1::PROPOSAL_ADOPTED) {
        for (const auto& gs : p.gateway_states()) {
          CHECK_INV(gs.status() == v1::GATEWAY_PASSED, "(b) adopted with a gateway not passed");
        }
      }

      // (a) no accepted reversal.
      auto prev = before.find(id);
      if (prev == before.end()) continue;
      auto r = reopened.find(id);
      const int first_reopened = r == reopened.end() ? p.gateway_states_size() : r->second;
      CHECK_INV(p.gateway_states_size() == prev->second.gateway_states_size(), "gateways changed");
      for (int i = 0; i < first_reopened; ++i) {
        const v1::GatewayState& was = prev->second.gateway_states(i);
        if (was.status() != v1::GATEWAY_PASSED) continue;
        const v1::GatewayState& now = p.gateway_states(i);
        CHECK_INV(now.status() == v1::GATEWAY_PASSED, "(a) a passed gateway was unlocked");
        CHECK_INV(now.votes_size() == was.votes_size(), "(a) the votes on a locked gateway changed");
        for (int k = 0; k < now.votes_size(); ++k) {
          CHECK_INV(now.votes(k).SerializeAsString() == was.votes(k).SerializeAsString(),
                    "(a) a vote on a locked gateway changed");
        }
        CHECK_INV(now.tally().SerializeAsString() == was.tally().SerializeAsString(),
                  "(a) the tally of a locked gateway changed");
      }
    }

    // (b) a gateway passed without a call meets its rule.
    for (const v1::EventBody& e : events) {
      if (!e.has_gateway_passed() || !e.gateway_passed().caller().empty()) continue;
      const auto& passed = e.gateway_passed();
      const v1::ProposalState* p = state_.FindProposal(passed.proposal_id());
      CHECK_INV(p != nullptr, "passed a gateway of an unknown proposal");
      const int index = GatewayIndex(*p, passed.gateway_id());
      CHECK_INV(index >= 0, "passed an unknown gateway");
      const v1::Tally& t = passed.tally();
      ledger::rules::Count count{t.electorate(), t.assent(), t.object(), t.abstain()};
      CHECK_INV(t.assent() + t.object() + t.abstain() <= t.electorate(), "(b) more votes than electors");
      CHECK_INV(ledger::rules::Evaluate(ledger::rules::Normalised(p->gateways(index).rule()), count) ==
                    ledger::rules::Verdict::kPass,
                "(b) a gateway passed without meeting its rule");
    }
  }

  // (d) the auditor's replay.
  void Replay() {
    State replica;
    for (const LogOp& op : log_) {
      switch (op.kind) {
        case LogOp::kLapse: {
          auto lapses = ledger::harness::DecideLapses(replica, op.context);
          CHECK_INV(Serialize(lapses) == op.events, "(d) replayed lapses differ");
          break;
        }
        case LogOp::kApply: {
          auto decision = ledger::harness::DecideOne(replica, op.envelope, op.context, /*signature_checked=*/true);
          CHECK_INV(decision.ok(), "(d) an accepted event is refused on replay");
          CHECK_INV(Serialize(decision.system_events) == op.events, "(d) replayed system events differ");
          break;
        }
        case LogOp::kRefusal: {
          auto decision = ledger::harness::DecideOne(replica, op.envelope, op.context, /*signature_checked=*/true);
          CHECK_INV(!decision.ok() && decision.status.code() == op.refusal_code &&
                        ledger::ReasonOf(decision.status) == op.refusal_reason,
                    "(d) a recorded refusal is not refused the same way on replay");
          CHECK_INV(decision.refusal.has_value() && Serialize({*decision.refusal}) == op.events,
                    "(d) the replayed refusal record differs");
          break;
        }
      }
      replica.CommitChanges();
    }
    CHECK_INV(replica.Snapshot() == state_.Snapshot(), "(d) replay reached a different state");
  }

  Reader& in_;
  State state_;
  v1::Charter charter_;
  uint64_t position_ = 0;
  int64_t now_ = kT0;
  uint64_t counter_ = 0;
  int proposals_made_ = 0;
  std::vector<LogOp> log_;
  std::map<std::string, v1::ProposalState> before_proposals_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader in(data, size);
  World world(in);
  world.Run();
  return 0;
}
