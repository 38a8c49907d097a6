// Tests for the governance rules (ledger/rules/governance.cc, charter.cc):
// collectives, charters, proposals, locked gateways, votes and vetoes, calls,
// assurance, impacts and tapers, lapses and recorded refusals (DESIGN §2–§4).
//
// Pure: every test decides envelopes built here (SealEvent → OpenSubmission)
// on a rules::State through rules::DecideGroup, the write path's and the
// auditor's own decision (tests/support/rules_harness.h), and checks the
// system events and the projected State. A refusal changes State::Snapshot()
// only by keeping the refusal on the record.
#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/event/envelope.h"
#include "ledger/event/refusal.h"
#include "ledger/rules/charter.h"
#include "ledger/rules/commit_group.h"
#include "ledger/rules/limits.h"
#include "ledger/rules/rules.h"
#include "ledger/rules/state.h"
#include "ledger/rules/version.h"
#include "tests/support/rules_harness.h"

namespace ledger::rules {
namespace {

using crypto::PrivateKey;
using ledger::harness::ChangesBeyondRefusal;
using ledger::harness::DecideLapses;
using ledger::harness::DecideOne;
using ledger::harness::OneDecision;

constexpr char kLedgerId[] = "gov-ledger";
constexpr int64_t kT0 = 1'700'000'000'000'000'000;
constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kDay = 86'400 * kSecond;

// ------------------------------------------------------------------ payloads

v1::EventBody ProposeCollective(const std::string& id, const v1::Charter& charter) {
  v1::EventBody body;
  body.mutable_collective_proposed()->set_collective_id(id);
  *body.mutable_collective_proposed()->mutable_charter() = charter;
  return body;
}

v1::EventBody Accept(const std::string& collective, const std::string& digest) {
  v1::EventBody body;
  body.mutable_charter_accepted()->set_collective_id(collective);
  body.mutable_charter_accepted()->set_charter_digest(digest);
  return body;
}

v1::EventBody Proposal(const std::string& collective, const std::string& proposal_id,
                       const std::string& category = "service-change") {
  v1::EventBody body;
  auto* p = body.mutable_proposal_submitted();
  p->set_collective_id(collective);
  p->set_proposal_id(proposal_id);
  p->set_title("Title of " + proposal_id);
  p->set_category(category);
  p->set_summary("summary");
  p->set_document_digest(std::string(32, 'd'));
  return body;
}

v1::EventBody Amend(const std::string& collective, const std::string& proposal_id, const v1::Charter& charter) {
  v1::EventBody body = Proposal(collective, proposal_id, "governance");
  *body.mutable_proposal_submitted()->mutable_amend_charter() = charter;
  return body;
}

v1::EventBody Admit(const std::string& collective, const std::string& proposal_id, const std::string& org) {
  v1::EventBody body = Proposal(collective, proposal_id, "governance");
  body.mutable_proposal_submitted()->mutable_admit_member()->set_org_id(org);
  body.mutable_proposal_submitted()->mutable_admit_member()->set_reason("joins");
  return body;
}

v1::EventBody Remove(const std::string& collective, const std::string& proposal_id, const std::string& org) {
  v1::EventBody body = Proposal(collective, proposal_id, "governance");
  body.mutable_proposal_submitted()->mutable_remove_member()->set_org_id(org);
  body.mutable_proposal_submitted()->mutable_remove_member()->set_reason("persistent breach");
  return body;
}

v1::EventBody Revisit(const std::string& collective, const std::string& proposal_id, const std::string& target,
                      const std::string& gateway) {
  v1::EventBody body = Proposal(collective, proposal_id, "governance");
  body.mutable_proposal_submitted()->mutable_revisit()->set_proposal_id(target);
  body.mutable_proposal_submitted()->mutable_revisit()->set_gateway_id(gateway);
  return body;
}

v1::EventBody Interest(const std::string& proposal_id) {
  v1::EventBody body;
  body.mutable_interest_declared()->set_proposal_id(proposal_id);
  body.mutable_interest_declared()->set_description("provides the service");
  return body;
}

v1::EventBody Vote(const std::string& proposal_id, const std::string& gateway, v1::Position position,
                   const std::string& rationale = "considered") {
  v1::EventBody body;
  auto* v = body.mutable_vote_cast();
  v->set_proposal_id(proposal_id);
  v->set_gateway_id(gateway);
  v->set_position(position);
  v->set_rationale(rationale);
  return body;
}

v1::EventBody Impact(const std::string& proposal_id, int64_t pence) {
  v1::EventBody body;
  body.mutable_impact_declared()->set_proposal_id(proposal_id);
  body.mutable_impact_declared()->set_annual_impact_pence(pence);
  body.mutable_impact_declared()->set_description("lost activity");
  return body;
}

v1::EventBody Call(const std::string& proposal_id, const std::string& gateway, v1::Outcome outcome,
                   const std::string& rationale = "national priority") {
  v1::EventBody body;
  auto* c = body.mutable_decision_called();
  c->set_proposal_id(proposal_id);
  c->set_gateway_id(gateway);
  c->set_outcome(outcome);
  c->set_rationale(rationale);
  return body;
}

v1::EventBody Withdraw(const std::string& proposal_id) {
  v1::EventBody body;
  body.mutable_proposal_withdrawn()->set_proposal_id(proposal_id);
  body.mutable_proposal_withdrawn()->set_reason("changed plans");
  return body;
}

v1::EventBody Assure(const std::string& proposal_id, const std::string& gateway, v1::Rating rating = v1::GREEN) {
  v1::EventBody body;
  auto* a = body.mutable_assurance_recorded();
  a->set_proposal_id(proposal_id);
  a->set_gateway_id(gateway);
  a->set_opinion("sound");
  a->set_rating(rating);
  a->set_document_digest(std::string(32, 'r'));
  return body;
}

v1::EventBody Leave(const std::string& collective) {
  v1::EventBody body;
  body.mutable_member_withdrew()->set_collective_id(collective);
  body.mutable_member_withdrew()->set_reason("leaving");
  return body;
}

// ------------------------------------------------------------------ charters

v1::Gateway Gw(const std::string& id, v1::RuleKind kind = v1::UNANIMITY,
               std::vector<std::string> callers = {"nhse"}) {
  v1::Gateway gateway;
  gateway.set_id(id);
  gateway.set_name("Gateway " + id);
  gateway.mutable_rule()->set_kind(kind);
  for (auto& c : callers) gateway.add_callers(c);
  return gateway;
}

const std::vector<std::string>& Founders() {
  static const auto* f = new std::vector<std::string>{"a", "b", "c", "d"};
  return *f;
}

const std::vector<std::string>& GatewayIds() {
  static const auto* g = new std::vector<std::string>{"need", "principles", "process", "nature", "final"};
  return *g;
}

// need → principles → process → nature (unanimity) → final (majority).
v1::Charter StandardCharter() {
  v1::Charter charter;
  charter.set_name("Federation");
  for (auto& m : Founders()) charter.add_founding_members(m);
  for (int i = 0; i < 4; ++i) *charter.add_gateways() = Gw(GatewayIds()[i]);
  *charter.add_gateways() = Gw("final", v1::MAJORITY);
  charter.add_reserved_categories("clinical-provision");
  for (uint32_t p : {100u, 66u, 33u, 0u}) charter.mutable_taper()->add_percent_by_year(p);
  charter.add_assurance_bodies("senate");
  return charter;
}

v1::Charter RevisitCharter() {
  v1::Charter charter = StandardCharter();
  charter.mutable_revisit_rule()->set_kind(v1::MAJORITY);
  charter.add_revisit_callers("nhse");
  return charter;
}

std::vector<std::string> Kinds(const std::vector<v1::EventBody>& events) {
  std::vector<std::string> kinds;
  for (const auto& e : events) kinds.push_back(EventKind(e));
  return kinds;
}

std::vector<std::string> Strings(const google::protobuf::RepeatedPtrField<std::string>& r) {
  return {r.begin(), r.end()};
}

// ------------------------------------------------------------------ fixture

// A ledger in memory: Genesis (operator + registrar), then whatever a test
// submits. Positions advance by 1 + the number of system events; the ledger
// time by one second per submission.
class Ledger {
 public:
  explicit Ledger(uint32_t rules_version = kLatestRulesVersion) {
    NewKey("operator");
    NewKey("registrar");
    v1::EventBody body;
    auto* genesis = body.mutable_genesis();
    genesis->set_operator_id("operator");
    genesis->set_operator_public_key(std::string(keys_.at("operator").public_key().raw()));
    genesis->set_origin("decision-ledger/gov-test");
    genesis->set_rules_version(rules_version);
    auto* registrar = genesis->add_registrars();
    registrar->set_org_id("registrar");
    registrar->set_name("Registrar");
    registrar->add_public_keys(std::string(keys_.at("registrar").public_key().raw()));
    Ok("operator", body);
  }

  State state;
  uint64_t position = 0;
  int64_t now = kT0;
  uint64_t last_at = 0;        // position of the last accepted event
  Envelope last_envelope;      // the last submission opened
  std::optional<v1::EventBody> last_refusal;  // the last submission's, if it was recorded
  uint64_t last_refusal_at = 0;

  void NewKey(const std::string& org) { keys_.emplace(org, PrivateKey::Generate()); }

  // Decides one submission as the write path does; on acceptance returns
  // the system events it wrote (lapses due first, then those it implies).
  // `body` as `org` signs it, opened as the write path opens a submission.
  absl::StatusOr<Envelope> Seal(const std::string& org, v1::EventBody body) {
    body.set_ledger_id(kLedgerId);
    body.set_author(org);
    body.set_idempotency_key(absl::StrCat("idem-", ++counter_));
    body.set_client_time_unix_ms(now / 1'000'000);
    auto key = keys_.find(org);
    if (key == keys_.end()) return absl::NotFoundError(absl::StrCat("no key for ", org));
    return OpenSubmission(SealEvent(body, key->second), state.has_genesis() ? state.info().ledger_id() : "");
  }

  absl::StatusOr<Effects> Submit(const std::string& org, v1::EventBody body) {
    auto envelope = Seal(org, std::move(body));
    now += kSecond;
    last_refusal.reset();
    if (!envelope.ok()) return envelope.status();
    last_envelope = *envelope;
    OneDecision decision = DecideOne(state, last_envelope, Context{position, now});
    const uint64_t first = position;
    position += decision.records;
    if (!decision.ok()) {
      if (decision.refusal.has_value()) {
        last_refusal = std::move(decision.refusal);
        last_refusal_at = position - 1;
      }
      return decision.status;
    }
    last_at = first + decision.lapses.size();
    Effects effects;
    effects.system_events = decision.lapses;
    for (v1::EventBody& e : decision.system_events) effects.system_events.push_back(std::move(e));
    return effects;
  }

  // Submits and expects acceptance; returns the system events.
  std::vector<v1::EventBody> Ok(const std::string& org, v1::EventBody body) {
    const std::string what = EventKind(body);
    auto effects = Submit(org, std::move(body));
    if (!effects.ok()) {
      ADD_FAILURE() << what << " by " << org << " refused: " << effects.status() << " ("
                    << v1::Reason_Name(ReasonOf(effects.status())) << ")";
      return {};
    }
    return effects->system_events;
  }

  // Submits and expects a refusal with `code` and `reason` that changes the
  // state only by keeping the refusal on the record (a broken rule, by an
  // organisation's own key) or not at all.
  void Refused(const std::string& org, v1::EventBody body, absl::StatusCode code, v1::Reason reason) {
    const auto before = state.Snapshot();
    const auto deadlines = state.deadlines();
    const uint64_t position_before = position;
    const std::string what = EventKind(body);
    auto effects = Submit(org, std::move(body));
    ASSERT_FALSE(effects.ok()) << what << " by " << org << " was accepted, expected "
                               << v1::Reason_Name(reason);
    EXPECT_EQ(effects.status().code(), code) << effects.status();
    EXPECT_EQ(ReasonOf(effects.status()), reason)
        << "got " << v1::Reason_Name(ReasonOf(effects.status())) << ": " << effects.status();
    EXPECT_EQ(ChangesBeyondRefusal(before, state.Snapshot(), org, last_refusal.has_value(), last_refusal_at), "")
        << what << " refusal changed the state";
    EXPECT_TRUE(state.deadlines() == deadlines) << what << " refusal changed the deadline index";
    EXPECT_EQ(position, position_before + (last_refusal.has_value() ? 1 : 0));
    if (last_refusal.has_value()) {
      EXPECT_EQ(code, absl::StatusCode::kFailedPrecondition) << "only a broken rule is recorded";
      EXPECT_EQ(last_refusal->submission_refused().reason(), reason);
      EXPECT_EQ(last_refusal->submission_refused().signed_event(), last_envelope.signed_bytes);
    }
  }

  void Rule(const std::string& org, v1::EventBody body, v1::Reason reason) {
    Refused(org, std::move(body), absl::StatusCode::kFailedPrecondition, reason);
  }

  std::vector<v1::EventBody> Lapse() {
    auto lapses = DecideLapses(state, Context{position, now});
    position += lapses.size();
    return lapses;
  }

  void Register(const std::string& org) {
    NewKey(org);
    v1::EventBody body;
    auto* r = body.mutable_organisation_registered();
    r->set_org_id(org);
    r->set_name(org + " name");
    r->set_kind("nhs-trust");
    r->add_public_keys(std::string(keys_.at(org).public_key().raw()));
    Ok("registrar", body);
  }

  // The one way tests merge organisations: `merged` into `successor` by the
  // registrar, confirmed by both (rules v2: it takes effect at the second
  // confirmation); returns the system events written where it takes effect.
  std::vector<v1::EventBody> Merge(const std::string& merged, const std::string& successor) {
    v1::EventBody body;
    body.mutable_organisation_merged()->set_merged_org_id(merged);
    body.mutable_organisation_merged()->set_successor_org_id(successor);
    if (!RulesAtLeast(state, kRulesV2)) return Ok("registrar", body);
    Ok("registrar", body);
    v1::EventBody confirm;
    confirm.mutable_identity_change_confirmed()->set_change_position(last_at);
    Ok(merged, confirm);
    return Ok(successor, confirm);
  }

 private:
  std::map<std::string, PrivateKey> keys_;
  int counter_ = 0;
};

// Organisations a, b, c, d (founders), e (not a member), nhse (a national
// body, caller of every standard gateway), senate (an assurance body).
class Gov : public Ledger {
 public:
  explicit Gov(uint32_t rules_version = kLatestRulesVersion) : Ledger(rules_version) {
    for (const char* org : {"a", "b", "c", "d", "e", "nhse", "senate"}) Register(org);
  }

  const v1::CollectiveState& Collective(const std::string& id = "fed") {
    const v1::CollectiveState* c = state.FindCollective(id);
    EXPECT_NE(c, nullptr) << id;
    static const v1::CollectiveState kEmpty;
    return c == nullptr ? kEmpty : *c;
  }
  const v1::ProposalState& P(const std::string& id = "p1") {
    const v1::ProposalState* p = state.FindProposal(id);
    EXPECT_NE(p, nullptr) << id;
    static const v1::ProposalState kEmpty;
    return p == nullptr ? kEmpty : *p;
  }
  const v1::GatewayState& G(const std::string& proposal, int index) { return P(proposal).gateway_states(index); }

  // Proposes `id` (by a) and has every founder accept; returns the events of
  // the last acceptance.
  std::vector<v1::EventBody> Form(const std::string& id = "fed", const v1::Charter& charter = StandardCharter()) {
    Ok("a", ProposeCollective(id, charter));
    std::vector<v1::EventBody> last;
    for (const auto& m : charter.founding_members()) last = Ok(m, Accept(id, CharterDigest(charter)));
    return last;
  }

  void Submitted(const std::string& pid = "p1", const std::string& by = "a", const std::string& collective = "fed") {
    Ok(by, Proposal(collective, pid));
  }

  // Each of `orgs` votes `position` on `gateway`; returns the events of the last.
  std::vector<v1::EventBody> All(const std::string& pid, const std::string& gateway, v1::Position position,
                                 const std::vector<std::string>& orgs = Founders()) {
    std::vector<v1::EventBody> last;
    for (const auto& org : orgs) last = Ok(org, Vote(pid, gateway, position));
    return last;
  }

  // Every founder assents to the first `n` standard gateways (a gateway is
  // decided once every elector has voted).
  void PassFirst(const std::string& pid, int n) {
    for (int i = 0; i < n; ++i) All(pid, GatewayIds()[i], v1::ASSENT);
  }
};

// ====================================================== the table of cases

struct Case {
  std::string name;
  std::function<void(Gov&)> setup;
  std::string author;
  std::function<v1::EventBody(Gov&)> payload;
  absl::StatusCode code = absl::StatusCode::kOk;
  v1::Reason reason = v1::REASON_UNSPECIFIED;
  std::vector<std::string> system_events = {};  // for accepted cases
};

void Nothing(Gov&) {}
void Formed(Gov& g) { g.Form(); }
void WithP1(Gov& g) { g.Form(); g.Submitted(); }
void NeedPassed(Gov& g) { WithP1(g); g.PassFirst("p1", 1); }
void P1Withdrawn(Gov& g) { WithP1(g); g.Ok("a", Withdraw("p1")); }
void P1Adopted(Gov& g) { WithP1(g); g.PassFirst("p1", 5); }
void RevisitNeedPassed(Gov& g) { g.Form("fed", RevisitCharter()); g.Submitted(); g.PassFirst("p1", 1); }
void Fed2Proposed(Gov& g) { g.Ok("a", ProposeCollective("fed2", StandardCharter())); }
void NeedDeadlocked(Gov& g) {
  WithP1(g);
  g.All("p1", "need", v1::ASSENT, {"a", "b", "c"});
  g.Ok("d", Vote("p1", "need", v1::OBJECT));
}

std::function<v1::EventBody(Gov&)> Fixed(v1::EventBody body) {
  return [body](Gov&) { return body; };
}

const std::string& Digest() {
  static const auto* d = new std::string(CharterDigest(StandardCharter()));
  return *d;
}

constexpr auto kOk = absl::StatusCode::kOk;
constexpr auto kPre = absl::StatusCode::kFailedPrecondition;
constexpr auto kArg = absl::StatusCode::kInvalidArgument;

std::vector<Case> Cases() {
  std::vector<Case> cases = {
      // ------------------------------------------------ accepted: every event type
      {"CollectiveProposed accepted", Nothing, "a", Fixed(ProposeCollective("fed", StandardCharter()))},
      {"CharterAccepted accepted (not last)", Fed2Proposed, "b", Fixed(Accept("fed2", Digest()))},
      {"CharterAccepted by the last founder forms the collective",
       [](Gov& g) {
         Fed2Proposed(g);
         for (auto m : {"a", "b", "c"}) g.Ok(m, Accept("fed2", Digest()));
       },
       "d", Fixed(Accept("fed2", Digest())), kOk, {}, {"collective_formed"}},
      {"ProposalSubmitted accepted", Formed, "b", Fixed(Proposal("fed", "p1"))},
      {"InterestDeclared accepted", WithP1, "c", Fixed(Interest("p1"))},
      {"VoteCast accepted", WithP1, "b", Fixed(Vote("p1", "need", v1::ASSENT))},
      {"VoteCast: a change of position beyond the cap (rules v3)",
       [](Gov& g) {
         WithP1(g);
         for (int i = 0; i <= kMaxPositionChanges; ++i) g.Ok("d", Vote("p1", "need", i % 2 ? v1::OBJECT : v1::ABSTAIN));
       },
       "d", Fixed(Vote("p1", "need", v1::ASSENT)), kPre, v1::POSITION_CHANGES_EXHAUSTED},
      {"VoteCast: rationale beyond the text limit (rules v3)", WithP1, "b",
       Fixed(Vote("p1", "need", v1::ASSENT, std::string(kMaxTextBytes + 1, 'r'))), kArg, v1::OVERSIZE},
      {"VoteCast by the last elector passes the gateway",
       [](Gov& g) { WithP1(g); g.All("p1", "need", v1::ASSENT, {"a", "b", "c"}); },
       "d", Fixed(Vote("p1", "need", v1::ASSENT)), kOk, {}, {"gateway_passed"}},
      {"ImpactDeclared accepted", WithP1, "d", Fixed(Impact("p1", 1'000'000))},
      {"DecisionCalled accepted", NeedDeadlocked, "nhse", Fixed(Call("p1", "need", v1::PASS)), kOk, {},
       {"gateway_passed"}},
      {"ProposalWithdrawn accepted", WithP1, "a", Fixed(Withdraw("p1"))},
      {"AssuranceRecorded accepted", WithP1, "senate", Fixed(Assure("p1", "need"))},
      {"MemberWithdrew accepted", Formed, "d", Fixed(Leave("fed"))},

      // ------------------------------------------------ CollectiveProposed
      {"CollectiveProposed: id exists", Formed, "b", Fixed(ProposeCollective("fed", StandardCharter())), kPre,
       v1::COLLECTIVE_EXISTS},
      {"CollectiveProposed: empty id", Nothing, "a", Fixed(ProposeCollective("", StandardCharter())), kArg,
       v1::MISSING_FIELD},
      {"CollectiveProposed: malformed id", Nothing, "a", Fixed(ProposeCollective("fed two", StandardCharter())),
       kArg, v1::MALFORMED},
      {"CollectiveProposed: merged founding member",
       [](Gov& g) { g.Register("x"); g.Merge("x", "e"); },
       "a",
       [](Gov&) {
         v1::Charter c = StandardCharter();
         c.add_founding_members("x");
         return ProposeCollective("fed2", c);
       },
       kPre, v1::ORGANISATION_MERGED},

      // ------------------------------------------------ CharterAccepted
      {"CharterAccepted: unknown collective", Nothing, "a", Fixed(Accept("ghost", Digest())), kPre,
       v1::UNKNOWN_COLLECTIVE},
      {"CharterAccepted: not a founding member", Fed2Proposed, "e", Fixed(Accept("fed2", Digest())), kPre,
       v1::NOT_A_FOUNDING_MEMBER},
      {"CharterAccepted: non-member after formation", Formed, "e", Fixed(Accept("fed", Digest())), kPre,
       v1::NOT_A_FOUNDING_MEMBER},
      {"CharterAccepted: twice", [](Gov& g) { Fed2Proposed(g); g.Ok("b", Accept("fed2", Digest())); }, "b",
       Fixed(Accept("fed2", Digest())), kPre, v1::ALREADY_ACCEPTED},
      {"CharterAccepted: founder again after formation", Formed, "b", Fixed(Accept("fed", Digest())), kPre,
       v1::ALREADY_ACCEPTED},
      {"CharterAccepted: wrong digest", Fed2Proposed, "b", Fixed(Accept("fed2", std::string(32, 'x'))), kPre,
       v1::CHARTER_DIGEST_MISMATCH},

      // ------------------------------------------------ ProposalSubmitted
      {"ProposalSubmitted: id exists", WithP1, "b", Fixed(Proposal("fed", "p1")), kPre, v1::PROPOSAL_EXISTS},
      {"ProposalSubmitted: empty id", Formed, "b", Fixed(Proposal("fed", "")), kArg, v1::MISSING_FIELD},
      {"ProposalSubmitted: malformed id", Formed, "b", Fixed(Proposal("fed", "p/1")), kArg, v1::MALFORMED},
      {"ProposalSubmitted: unknown collective", Formed, "b", Fixed(Proposal("ghost", "p1")), kPre,
       v1::UNKNOWN_COLLECTIVE},
      {"ProposalSubmitted: collective not formed", Fed2Proposed, "a", Fixed(Proposal("fed2", "p1")), kPre,
       v1::COLLECTIVE_NOT_FORMED},
      {"ProposalSubmitted: not a member", Formed, "e", Fixed(Proposal("fed", "p1")), kPre, v1::NOT_A_MEMBER},
      {"ProposalSubmitted: reserved category", Formed, "a", Fixed(Proposal("fed", "p1", "clinical-provision")),
       kPre, v1::RESERVED_CATEGORY},
      {"ProposalSubmitted: amendment to an invalid charter", Formed, "a",
       [](Gov&) {
         v1::Charter c = StandardCharter();
         c.clear_gateways();
         return Amend("fed", "am1", c);
       },
       kPre, v1::INVALID_CHARTER},
      {"ProposalSubmitted: admit unknown organisation", Formed, "a", Fixed(Admit("fed", "ad1", "ghost")), kPre,
       v1::UNKNOWN_ORGANISATION},
      {"ProposalSubmitted: admit merged organisation",
       [](Gov& g) { g.Form(); g.Register("x"); g.Merge("x", "e"); },
       "a", Fixed(Admit("fed", "ad1", "x")), kPre, v1::UNKNOWN_ORGANISATION},
      {"ProposalSubmitted: admit a member", Formed, "a", Fixed(Admit("fed", "ad1", "b")), kPre,
       v1::ALREADY_MEMBER},
      {"ProposalSubmitted: remove a non-member", Formed, "a", Fixed(Remove("fed", "rm1", "e")), kPre,
       v1::NOT_A_MEMBER},
      {"ProposalSubmitted: revisit without a revisit rule", NeedPassed, "b",
       Fixed(Revisit("fed", "rv1", "p1", "need")), kPre, v1::REVISIT_NOT_ALLOWED},
      {"ProposalSubmitted: revisit of an unknown proposal", RevisitNeedPassed, "b",
       Fixed(Revisit("fed", "rv1", "ghost", "need")), kPre, v1::UNKNOWN_PROPOSAL},
      {"ProposalSubmitted: revisit of a closed proposal",
       [](Gov& g) {
         g.Form("fed", RevisitCharter());
         g.Submitted();
         g.PassFirst("p1", 5);
       },
       "b", Fixed(Revisit("fed", "rv1", "p1", "need")), kPre, v1::PROPOSAL_CLOSED},
      {"ProposalSubmitted: revisit of a gateway that is not locked", RevisitNeedPassed, "b",
       Fixed(Revisit("fed", "rv1", "p1", "principles")), kPre, v1::GATEWAY_NOT_OPEN},
      {"ProposalSubmitted: revisit of an unknown gateway", RevisitNeedPassed, "b",
       Fixed(Revisit("fed", "rv1", "p1", "ghost")), kPre, v1::GATEWAY_NOT_OPEN},

      // ------------------------------------------------ InterestDeclared
      {"InterestDeclared: unknown proposal", WithP1, "b", Fixed(Interest("ghost")), kPre, v1::UNKNOWN_PROPOSAL},
      {"InterestDeclared: proposal closed", P1Withdrawn, "b", Fixed(Interest("p1")), kPre, v1::PROPOSAL_CLOSED},
      {"InterestDeclared: not a member", WithP1, "e", Fixed(Interest("p1")), kPre, v1::NOT_A_MEMBER},
      {"InterestDeclared: twice", [](Gov& g) { WithP1(g); g.Ok("c", Interest("p1")); }, "c",
       Fixed(Interest("p1")), kPre, v1::RECUSED},
      {"InterestDeclared: after voting", [](Gov& g) { WithP1(g); g.Ok("c", Vote("p1", "need", v1::ASSENT)); },
       "c", Fixed(Interest("p1")), kPre, v1::ALREADY_VOTED},

      // ------------------------------------------------ VoteCast
      {"VoteCast: unknown proposal", WithP1, "b", Fixed(Vote("ghost", "need", v1::ASSENT)), kPre,
       v1::UNKNOWN_PROPOSAL},
      {"VoteCast: no position", WithP1, "b", Fixed(Vote("p1", "need", v1::POSITION_UNSPECIFIED)), kPre,
       v1::INVALID_POSITION},
      {"VoteCast: unknown position", WithP1, "b", Fixed(Vote("p1", "need", static_cast<v1::Position>(7))), kPre,
       v1::INVALID_POSITION},
      {"VoteCast: unknown gateway", WithP1, "b", Fixed(Vote("p1", "ghost", v1::ASSENT)), kPre,
       v1::UNKNOWN_GATEWAY},
      {"VoteCast: locked gateway", NeedPassed, "b", Fixed(Vote("p1", "need", v1::OBJECT)), kPre,
       v1::GATEWAY_LOCKED},
      {"VoteCast: locked gateway of an adopted proposal", P1Adopted, "b", Fixed(Vote("p1", "need", v1::OBJECT)),
       kPre, v1::GATEWAY_LOCKED},
      {"VoteCast: proposal closed", P1Withdrawn, "b", Fixed(Vote("p1", "need", v1::ASSENT)), kPre,
       v1::PROPOSAL_CLOSED},
      {"VoteCast: gateway pending", WithP1, "b", Fixed(Vote("p1", "principles", v1::ASSENT)), kPre,
       v1::GATEWAY_NOT_OPEN},
      {"VoteCast: recused", [](Gov& g) { WithP1(g); g.Ok("c", Interest("p1")); }, "c",
       Fixed(Vote("p1", "need", v1::ASSENT)), kPre, v1::RECUSED},
      {"VoteCast: not a member", WithP1, "e", Fixed(Vote("p1", "need", v1::ASSENT)), kPre, v1::NOT_A_MEMBER},
      {"VoteCast: admitted after the gateway opened",
       [](Gov& g) {
         WithP1(g);
         g.Ok("a", Admit("fed", "ad1", "e"));
         g.All("ad1", "admission", v1::ASSENT);
       },
       "e", Fixed(Vote("p1", "need", v1::ASSENT)), kPre, v1::NOT_ELIGIBLE},

      // ------------------------------------------------ ImpactDeclared
      {"ImpactDeclared: unknown proposal", WithP1, "d", Fixed(Impact("ghost", 5)), kPre, v1::UNKNOWN_PROPOSAL},
      {"ImpactDeclared: after adoption", P1Adopted, "d", Fixed(Impact("p1", 5)), kPre, v1::FINAL_GATEWAY_LOCKED},
      {"ImpactDeclared: proposal withdrawn", P1Withdrawn, "d", Fixed(Impact("p1", 5)), kPre,
       v1::PROPOSAL_CLOSED},
      {"ImpactDeclared: not a member", WithP1, "e", Fixed(Impact("p1", 5)), kPre, v1::NOT_A_MEMBER},
      {"ImpactDeclared: not positive", WithP1, "d", Fixed(Impact("p1", 0)), kArg, v1::MALFORMED},

      // ------------------------------------------------ DecisionCalled
      {"DecisionCalled: unknown proposal", NeedDeadlocked, "nhse", Fixed(Call("ghost", "need", v1::PASS)), kPre,
       v1::UNKNOWN_PROPOSAL},
      {"DecisionCalled: unknown gateway", NeedDeadlocked, "nhse", Fixed(Call("p1", "ghost", v1::PASS)), kPre,
       v1::UNKNOWN_GATEWAY},
      {"DecisionCalled: locked gateway", NeedPassed, "nhse", Fixed(Call("p1", "need", v1::FAIL)), kPre,
       v1::GATEWAY_LOCKED},
      {"DecisionCalled: proposal closed", P1Withdrawn, "nhse", Fixed(Call("p1", "need", v1::PASS)), kPre,
       v1::PROPOSAL_CLOSED},
      {"DecisionCalled: gateway not open", NeedDeadlocked, "nhse", Fixed(Call("p1", "principles", v1::PASS)),
       kPre, v1::GATEWAY_NOT_OPEN},
      {"DecisionCalled: not a caller", NeedDeadlocked, "a", Fixed(Call("p1", "need", v1::PASS)), kPre,
       v1::NOT_A_CALLER},
      {"DecisionCalled: no outcome", NeedDeadlocked, "nhse", Fixed(Call("p1", "need", v1::OUTCOME_UNSPECIFIED)),
       kArg, v1::MISSING_FIELD},
      {"DecisionCalled: no rationale", NeedDeadlocked, "nhse", Fixed(Call("p1", "need", v1::PASS, "")), kPre,
       v1::RATIONALE_REQUIRED},
      {"DecisionCalled: no deadlock", [](Gov& g) { WithP1(g); g.Ok("a", Vote("p1", "need", v1::ASSENT)); },
       "nhse", Fixed(Call("p1", "need", v1::PASS)), kPre, v1::NO_DEADLOCK},

      // ------------------------------------------------ ProposalWithdrawn
      {"ProposalWithdrawn: unknown proposal", WithP1, "a", Fixed(Withdraw("ghost")), kPre, v1::UNKNOWN_PROPOSAL},
      {"ProposalWithdrawn: twice", P1Withdrawn, "a", Fixed(Withdraw("p1")), kPre, v1::PROPOSAL_CLOSED},
      {"ProposalWithdrawn: not the proposer", WithP1, "b", Fixed(Withdraw("p1")), kPre, v1::NOT_PROPOSER},
      {"ProposalWithdrawn: after a gateway passed", NeedPassed, "a", Fixed(Withdraw("p1")), kPre,
       v1::WITHDRAWAL_TOO_LATE},

      // ------------------------------------------------ AssuranceRecorded
      {"AssuranceRecorded: unknown proposal", WithP1, "senate", Fixed(Assure("ghost", "need")), kPre,
       v1::UNKNOWN_PROPOSAL},
      {"AssuranceRecorded: not an assurance body", WithP1, "nhse", Fixed(Assure("p1", "need")), kPre,
       v1::NOT_AN_ASSURANCE_BODY},
      {"AssuranceRecorded: unknown gateway", WithP1, "senate", Fixed(Assure("p1", "ghost")), kPre,
       v1::UNKNOWN_GATEWAY},
      {"AssuranceRecorded: proposal closed", P1Withdrawn, "senate", Fixed(Assure("p1", "need")), kPre,
       v1::PROPOSAL_CLOSED},
      {"AssuranceRecorded: unknown rating", WithP1, "senate",
       Fixed(Assure("p1", "need", static_cast<v1::Rating>(9))), kArg, v1::MALFORMED},

      // ------------------------------------------------ MemberWithdrew
      {"MemberWithdrew: unknown collective", Formed, "a", Fixed(Leave("ghost")), kPre, v1::UNKNOWN_COLLECTIVE},
      {"MemberWithdrew: not formed", Fed2Proposed, "a", Fixed(Leave("fed2")), kPre, v1::COLLECTIVE_NOT_FORMED},
      {"MemberWithdrew: not a member", Formed, "e", Fixed(Leave("fed")), kPre, v1::NOT_A_MEMBER},
      {"MemberWithdrew: twice", [](Gov& g) { g.Form(); g.Ok("d", Leave("fed")); }, "d", Fixed(Leave("fed")),
       kPre, v1::NOT_A_MEMBER},
  };

  // Every fault of a charter, on CollectiveProposed.
  struct Fault {
    std::string name;
    std::function<void(v1::Charter&)> mutate;
    v1::Reason reason = v1::INVALID_CHARTER;
  };
  const std::vector<Fault> faults = {
      {"no founding members", [](v1::Charter& c) { c.clear_founding_members(); }},
      {"founding member twice", [](v1::Charter& c) { c.add_founding_members("a"); }},
      {"no gateways", [](v1::Charter& c) { c.clear_gateways(); }},
      {"gateway without id", [](v1::Charter& c) { c.mutable_gateways(2)->clear_id(); }},
      {"gateway twice", [](v1::Charter& c) { c.mutable_gateways(2)->set_id("need"); }},
      {"quorum over 100", [](v1::Charter& c) { c.mutable_gateways(0)->mutable_rule()->set_quorum_percent(101); }},
      {"supermajority 0/0",
       [](v1::Charter& c) { c.mutable_gateways(4)->mutable_rule()->set_kind(v1::SUPERMAJORITY); }},
      {"supermajority 0/3",
       [](v1::Charter& c) {
         auto* r = c.mutable_gateways(4)->mutable_rule();
         r->set_kind(v1::SUPERMAJORITY);
         r->set_denominator(3);
       }},
      {"supermajority 4/3",
       [](v1::Charter& c) {
         auto* r = c.mutable_gateways(4)->mutable_rule();
         r->set_kind(v1::SUPERMAJORITY);
         r->set_numerator(4);
         r->set_denominator(3);
       }},
      {"supermajority 1/2 (not more than half)",
       [](v1::Charter& c) {
         auto* r = c.mutable_gateways(4)->mutable_rule();
         r->set_kind(v1::SUPERMAJORITY);
         r->set_numerator(1);
         r->set_denominator(2);
       }},
      {"unknown rule kind",
       [](v1::Charter& c) { c.mutable_gateways(1)->mutable_rule()->set_kind(static_cast<v1::RuleKind>(9)); }},
      {"unknown abstention mode",
       [](v1::Charter& c) {
         c.mutable_gateways(1)->mutable_rule()->set_abstention(static_cast<v1::AbstentionMode>(9));
       }},
      {"negative deadline", [](v1::Charter& c) { c.mutable_gateways(3)->set_deadline_seconds(-1); }},
      {"required assurance from a non-body",
       [](v1::Charter& c) { c.mutable_gateways(1)->set_required_assurance("nhse"); }},
      {"caller twice", [](v1::Charter& c) { c.mutable_gateways(0)->add_callers("nhse"); }},
      {"assurance body twice", [](v1::Charter& c) { c.add_assurance_bodies("senate"); }},
      {"amendment rule quorum over 100", [](v1::Charter& c) { c.mutable_amendment_rule()->set_quorum_percent(150); }},
      {"revisit rule supermajority 1/3",
       [](v1::Charter& c) {
         auto* r = c.mutable_revisit_rule();
         r->set_kind(v1::SUPERMAJORITY);
         r->set_numerator(1);
         r->set_denominator(3);
       }},
      {"taper over 100", [](v1::Charter& c) { c.mutable_taper()->add_percent_by_year(120); }},
      {"unknown founding member", [](v1::Charter& c) { c.add_founding_members("ghost"); }, v1::UNKNOWN_ORGANISATION},
      {"unknown caller", [](v1::Charter& c) { c.mutable_gateways(4)->add_callers("ghost"); }, v1::UNKNOWN_ORGANISATION},
      {"unknown assurance body", [](v1::Charter& c) { c.add_assurance_bodies("ghost"); }, v1::UNKNOWN_ORGANISATION},
      {"unknown revisit caller", [](v1::Charter& c) { c.add_revisit_callers("ghost"); }, v1::UNKNOWN_ORGANISATION},
      {"unknown amendment caller", [](v1::Charter& c) { c.add_amendment_callers("ghost"); },
       v1::UNKNOWN_ORGANISATION},
      {"amendment caller twice",
       [](v1::Charter& c) {
         c.add_amendment_callers("nhse");
         c.add_amendment_callers("nhse");
       }},
  };
  for (const Fault& fault : faults) {
    v1::Charter charter = StandardCharter();
    fault.mutate(charter);
    cases.push_back({"CollectiveProposed: charter with " + fault.name, Nothing, "a",
                     Fixed(ProposeCollective("fed2", charter)), kPre, fault.reason});
  }
  return cases;
}

TEST(GovernanceCases, EachCaseAcceptsOrRefusesAsExpected) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    Gov g;
    c.setup(g);
    v1::EventBody payload = c.payload(g);
    if (c.code == absl::StatusCode::kOk) {
      auto effects = g.Submit(c.author, payload);
      ASSERT_TRUE(effects.ok()) << effects.status() << " (" << v1::Reason_Name(ReasonOf(effects.status())) << ")";
      EXPECT_EQ(Kinds(effects->system_events), c.system_events);
    } else {
      g.Refused(c.author, payload, c.code, c.reason);
    }
  }
}

// The table covers every governance event type and every refusal reason the
// governance rules can produce.
TEST(GovernanceCases, CoverEveryEventTypeAndReason) {
  std::set<std::string> accepted_kinds;
  std::set<v1::Reason> reasons;
  for (const Case& c : Cases()) {
    Gov g;  // payload functions do not look at the state; a fresh one is enough
    if (c.code == absl::StatusCode::kOk) {
      accepted_kinds.insert(EventKind(c.payload(g)));
    } else {
      reasons.insert(c.reason);
    }
  }
  for (const char* kind : {"collective_proposed", "charter_accepted", "proposal_submitted", "interest_declared",
                           "vote_cast", "impact_declared", "decision_called", "proposal_withdrawn",
                           "assurance_recorded", "member_withdrew"}) {
    EXPECT_TRUE(accepted_kinds.count(kind)) << kind;
  }
  for (v1::Reason r :
       {v1::COLLECTIVE_EXISTS, v1::INVALID_CHARTER, v1::UNKNOWN_ORGANISATION, v1::UNKNOWN_COLLECTIVE,
        v1::COLLECTIVE_NOT_FORMED, v1::NOT_A_FOUNDING_MEMBER, v1::ALREADY_ACCEPTED, v1::CHARTER_DIGEST_MISMATCH,
        v1::PROPOSAL_EXISTS, v1::NOT_A_MEMBER, v1::RESERVED_CATEGORY, v1::UNKNOWN_PROPOSAL, v1::PROPOSAL_CLOSED,
        v1::UNKNOWN_GATEWAY, v1::GATEWAY_LOCKED, v1::GATEWAY_NOT_OPEN, v1::RECUSED, v1::ALREADY_VOTED,
        v1::NOT_ELIGIBLE, v1::INVALID_POSITION, v1::NOT_A_CALLER, v1::NO_DEADLOCK, v1::RATIONALE_REQUIRED,
        v1::NOT_PROPOSER, v1::WITHDRAWAL_TOO_LATE, v1::NOT_AN_ASSURANCE_BODY, v1::FINAL_GATEWAY_LOCKED,
        v1::REVISIT_NOT_ALLOWED, v1::ALREADY_MEMBER, v1::MISSING_FIELD, v1::MALFORMED, v1::ORGANISATION_MERGED,
        v1::POSITION_CHANGES_EXHAUSTED, v1::OVERSIZE}) {
    EXPECT_TRUE(reasons.count(r)) << v1::Reason_Name(r);
  }
}

// ====================================================== scenarios

TEST(Governance, FormationFollowsTheLastAcceptanceOnly) {
  Gov g;
  EXPECT_TRUE(g.Ok("e", ProposeCollective("fed", StandardCharter())).empty());
  EXPECT_FALSE(g.Collective().formed());
  const std::string digest = CharterDigest(StandardCharter());
  EXPECT_EQ(g.Collective().charter_digest(), digest);
  for (const char* m : {"c", "a", "d"}) {
    EXPECT_TRUE(g.Ok(m, Accept("fed", digest)).empty()) << m;
    EXPECT_FALSE(g.Collective().formed());
    EXPECT_TRUE(g.Collective().members().empty());
  }
  g.Rule("a", Proposal("fed", "p1"), v1::COLLECTIVE_NOT_FORMED);
  auto events = g.Ok("b", Accept("fed", digest));
  ASSERT_EQ(Kinds(events), std::vector<std::string>{"collective_formed"});
  const v1::CollectiveFormed& formed = events[0].collective_formed();
  EXPECT_EQ(formed.collective_id(), "fed");
  EXPECT_EQ(formed.charter_digest(), digest);
  EXPECT_EQ(Strings(formed.members()), Founders());  // the charter's order
  const v1::CollectiveState& c = g.Collective();
  EXPECT_TRUE(c.formed());
  EXPECT_EQ(c.formed_at(), g.last_at + 1);
  EXPECT_EQ(c.charter_version(), 1u);
  EXPECT_EQ(c.proposed_by(), "e");
  EXPECT_EQ(Strings(c.accepted_by()), (std::vector<std::string>{"c", "a", "d", "b"}));
  EXPECT_EQ(g.position, g.last_at + 2);
}

TEST(Governance, FourUnanimityGatewaysThenMajorityFinalAdoptsWithTaper) {
  Gov g;
  g.Form();
  g.Submitted();
  const v1::ProposalState& p0 = g.P();
  EXPECT_EQ(p0.current_gateway(), 0);
  EXPECT_EQ(p0.gateway_states(0).status(), v1::GATEWAY_OPEN);
  EXPECT_EQ(Strings(p0.gateway_states(0).electorate()), Founders());
  for (int i = 1; i < 5; ++i) EXPECT_EQ(p0.gateway_states(i).status(), v1::GATEWAY_PENDING);
  EXPECT_TRUE(g.Ok("d", Impact("p1", 1'200'000)).empty());

  int passed = 0;
  for (int i = 0; i < 4; ++i) {
    const std::string& gw = GatewayIds()[i];
    std::vector<uint64_t> vote_positions;
    std::vector<v1::EventBody> events;
    for (const auto& m : Founders()) {
      events = g.Ok(m, Vote("p1", gw, v1::ASSENT));
      vote_positions.push_back(g.last_at);
      if (m != "d") {
        EXPECT_TRUE(events.empty()) << gw << " passed before " << m << " voted";
      }
    }
    ASSERT_EQ(Kinds(events), std::vector<std::string>{"gateway_passed"}) << gw;
    const v1::GatewayPassed& gp = events[0].gateway_passed();
    ++passed;
    EXPECT_EQ(gp.proposal_id(), "p1");
    EXPECT_EQ(gp.gateway_id(), gw);
    EXPECT_EQ(gp.tally().electorate(), 4u);
    EXPECT_EQ(gp.tally().assent(), 4u);
    EXPECT_EQ(gp.tally().object(), 0u);
    EXPECT_EQ(gp.tally().abstain(), 0u);
    EXPECT_EQ(gp.tally().recused(), 0u);
    EXPECT_EQ(std::vector<uint64_t>(gp.tally().vote_positions().begin(), gp.tally().vote_positions().end()),
              vote_positions);
    EXPECT_TRUE(gp.caller().empty());
    EXPECT_TRUE(gp.overruled().empty());
    EXPECT_EQ(gp.cause_position(), g.last_at);
    EXPECT_EQ(g.G("p1", i).status(), v1::GATEWAY_PASSED);
    EXPECT_EQ(g.G("p1", i).decided_at(), g.last_at + 1);
    EXPECT_EQ(g.G("p1", i + 1).status(), v1::GATEWAY_OPEN);
    EXPECT_EQ(g.G("p1", i + 1).opened_at(), g.last_at + 1) << "opened by the GatewayPassed record";
    EXPECT_EQ(g.P().current_gateway(), i + 1);
  }
  // Final: d objects, then a and b assent; the gateway is decided when the
  // last elector, c, has voted: 3 of 4 assent.
  EXPECT_TRUE(g.Ok("d", Vote("p1", "final", v1::OBJECT, "we lose activity")).empty());
  EXPECT_TRUE(g.Ok("a", Vote("p1", "final", v1::ASSENT)).empty());
  EXPECT_TRUE(g.Ok("b", Vote("p1", "final", v1::ASSENT)).empty());
  EXPECT_TRUE(g.P().vetoes().empty()) << "an objection at a majority gateway is not a veto";
  auto events = g.Ok("c", Vote("p1", "final", v1::ASSENT));
  ASSERT_EQ(Kinds(events), (std::vector<std::string>{"gateway_passed", "decision_adopted"}));
  ++passed;
  EXPECT_EQ(passed, 5);
  const v1::Tally& tally = events[0].gateway_passed().tally();
  EXPECT_EQ(tally.electorate(), 4u);
  EXPECT_EQ(tally.assent(), 3u);
  EXPECT_EQ(tally.object(), 1u);
  EXPECT_EQ(tally.abstain(), 0u);
  EXPECT_EQ(tally.vote_positions_size(), 4);

  const v1::DecisionAdopted& adopted = events[1].decision_adopted();
  EXPECT_EQ(adopted.proposal_id(), "p1");
  ASSERT_EQ(adopted.tapers_size(), 1);
  EXPECT_EQ(adopted.tapers(0).org_id(), "d");
  EXPECT_EQ(adopted.tapers(0).annual_impact_pence(), 1'200'000);
  std::vector<int64_t> expected = TaperSchedule(StandardCharter().taper(), 1'200'000);
  EXPECT_EQ(expected, (std::vector<int64_t>{1'200'000, 792'000, 396'000, 0}));
  EXPECT_EQ(std::vector<int64_t>(adopted.tapers(0).support_by_year_pence().begin(),
                                 adopted.tapers(0).support_by_year_pence().end()),
            expected);
  const v1::ProposalState& p = g.P();
  EXPECT_EQ(p.status(), v1::PROPOSAL_ADOPTED);
  EXPECT_EQ(p.current_gateway(), -1);
  EXPECT_EQ(p.ended_at(), g.last_at + 2);
  EXPECT_EQ(p.adoption().SerializeAsString(), adopted.SerializeAsString());
  for (int i = 0; i < 5; ++i) EXPECT_EQ(p.gateway_states(i).status(), v1::GATEWAY_PASSED);

  // Bound: no position on any gateway of the adopted decision can change.
  for (const auto& gw : GatewayIds()) g.Rule("d", Vote("p1", gw, v1::OBJECT), v1::GATEWAY_LOCKED);
}

TEST(Governance, LaterImpactReplacesEarlierAndEveryImpactGetsASchedule) {
  Gov g;
  g.Form();
  g.Submitted();
  g.Ok("d", Impact("p1", 999));
  g.Ok("c", Impact("p1", 500'000));
  g.Ok("d", Impact("p1", 300'000));
  g.PassFirst("p1", 4);
  auto events = g.All("p1", "final", v1::ASSENT);
  ASSERT_EQ(Kinds(events), (std::vector<std::string>{"gateway_passed", "decision_adopted"}));
  const auto& adopted = events[1].decision_adopted();
  ASSERT_EQ(adopted.tapers_size(), 2);
  EXPECT_EQ(adopted.tapers(0).org_id(), "c");
  EXPECT_EQ(adopted.tapers(1).org_id(), "d");
  EXPECT_EQ(adopted.tapers(1).annual_impact_pence(), 300'000);
  EXPECT_EQ(adopted.tapers(1).support_by_year_pence(1), 198'000);
}

TEST(Governance, VetoBlocksStandsAndIsWithdrawnWhenTheObjectorAssents) {
  Gov g;
  g.Form();
  g.Submitted();
  g.All("p1", "need", v1::ASSENT, {"a", "b"});
  EXPECT_TRUE(g.Ok("d", Vote("p1", "need", v1::OBJECT, "no need")).empty());
  const uint64_t veto_at = g.last_at;
  EXPECT_TRUE(g.Ok("c", Vote("p1", "need", v1::ASSENT)).empty()) << "a veto blocks";
  ASSERT_EQ(g.P().vetoes_size(), 1);
  EXPECT_EQ(g.P().vetoes(0).org_id(), "d");
  EXPECT_EQ(g.P().vetoes(0).gateway_id(), "need");
  EXPECT_EQ(g.P().vetoes(0).at(), veto_at);
  EXPECT_EQ(g.P().vetoes(0).rationale(), "no need");
  EXPECT_EQ(g.P().vetoes(0).outcome(), v1::VETO_STANDING);
  EXPECT_EQ(g.G("p1", 0).status(), v1::GATEWAY_OPEN);
  // Objecting again does not make a second veto; the first keeps standing.
  EXPECT_TRUE(g.Ok("d", Vote("p1", "need", v1::OBJECT, "still no")).empty());
  ASSERT_EQ(g.P().vetoes_size(), 1);
  EXPECT_EQ(g.P().vetoes(0).outcome(), v1::VETO_STANDING);

  auto events = g.Ok("d", Vote("p1", "need", v1::ASSENT, "persuaded"));
  ASSERT_EQ(Kinds(events), std::vector<std::string>{"gateway_passed"});
  EXPECT_EQ(events[0].gateway_passed().tally().assent(), 4u);
  EXPECT_EQ(events[0].gateway_passed().tally().object(), 0u);
  ASSERT_EQ(g.P().vetoes_size(), 1);
  EXPECT_EQ(g.P().vetoes(0).outcome(), v1::VETO_WITHDRAWN);
  EXPECT_EQ(g.P().vetoes(0).ended_at(), g.last_at);
  // All three of d's votes stay in the history; the latest decided.
  int d_votes = 0;
  for (const auto& v : g.G("p1", 0).votes()) d_votes += v.org_id() == "d";
  EXPECT_EQ(d_votes, 3);
  EXPECT_EQ(g.G("p1", 0).status(), v1::GATEWAY_PASSED);
}

TEST(Governance, CallPassesDeadlockedGatewayAndOverrulesTheObjectors) {
  Gov g;
  g.Form();
  g.Submitted();
  g.Ok("a", Vote("p1", "need", v1::ASSENT));
  g.Ok("b", Vote("p1", "need", v1::OBJECT));
  g.Ok("c", Vote("p1", "need", v1::ABSTAIN));
  g.Ok("d", Vote("p1", "need", v1::OBJECT));
  ASSERT_EQ(g.P().vetoes_size(), 2);
  auto events = g.Ok("nhse", Call("p1", "need", v1::PASS, "the national plan requires it"));
  ASSERT_EQ(Kinds(events), std::vector<std::string>{"gateway_passed"});
  const v1::GatewayPassed& gp = events[0].gateway_passed();
  EXPECT_EQ(gp.caller(), "nhse");
  EXPECT_EQ(Strings(gp.overruled()), (std::vector<std::string>{"b", "d"}));
  EXPECT_EQ(gp.cause_position(), g.last_at);
  EXPECT_EQ(gp.tally().assent(), 1u);
  EXPECT_EQ(gp.tally().object(), 2u);
  EXPECT_EQ(gp.tally().abstain(), 1u);
  const v1::GatewayState& gs = g.G("p1", 0);
  EXPECT_EQ(gs.status(), v1::GATEWAY_PASSED);
  EXPECT_EQ(gs.caller(), "nhse");
  EXPECT_EQ(gs.call_rationale(), "the national plan requires it");
  EXPECT_EQ(gs.called_at(), g.last_at);
  EXPECT_EQ(Strings(gs.overruled()), (std::vector<std::string>{"b", "d"}));
  for (const auto& veto : g.P().vetoes()) {
    EXPECT_EQ(veto.outcome(), v1::VETO_OVERRULED) << veto.org_id();
    EXPECT_EQ(veto.ended_at(), g.last_at + 1);
  }
  EXPECT_EQ(g.G("p1", 1).status(), v1::GATEWAY_OPEN);
  // The overruled cannot go back on it.
  g.Rule("b", Vote("p1", "need", v1::OBJECT), v1::GATEWAY_LOCKED);
  g.Rule("nhse", Call("p1", "need", v1::FAIL), v1::GATEWAY_LOCKED);
}

TEST(Governance, FailCallRejectsTheProposalAndOverrulesTheAssenters) {
  Gov g;
  g.Form();
  g.Submitted();
  g.PassFirst("p1", 1);
  g.All("p1", "principles", v1::ASSENT, {"a", "c"});
  g.Ok("b", Vote("p1", "principles", v1::OBJECT));
  g.Ok("d", Vote("p1", "principles", v1::ABSTAIN));  // deadlocked once everyone has voted
  auto events = g.Ok("nhse", Call("p1", "principles", v1::FAIL, "not affordable"));
  ASSERT_EQ(Kinds(events), std::vector<std::string>{"proposal_rejected"});
  const v1::ProposalRejected& rejected = events[0].proposal_rejected();
  EXPECT_EQ(rejected.proposal_id(), "p1");
  EXPECT_EQ(rejected.caller(), "nhse");
  EXPECT_EQ(Strings(rejected.overruled()), (std::vector<std::string>{"a", "c"}));
  EXPECT_NE(rejected.reason().find("not affordable"), std::string::npos);
  const v1::ProposalState& p = g.P();
  EXPECT_EQ(p.status(), v1::PROPOSAL_REJECTED);
  EXPECT_EQ(p.ended_at(), g.last_at + 1);
  EXPECT_EQ(p.gateway_states(0).status(), v1::GATEWAY_PASSED);
  EXPECT_EQ(p.gateway_states(1).status(), v1::GATEWAY_FAILED);
  EXPECT_EQ(p.gateway_states(1).caller(), "nhse");
  EXPECT_EQ(p.gateway_states(1).call_rationale(), "not affordable");
  for (int i = 2; i < 5; ++i) EXPECT_EQ(p.gateway_states(i).status(), v1::GATEWAY_CLOSED);
  ASSERT_EQ(p.vetoes_size(), 1);
  EXPECT_EQ(p.vetoes(0).outcome(), v1::VETO_UPHELD);
  g.Rule("d", Vote("p1", "principles", v1::ASSENT), v1::PROPOSAL_CLOSED);
}

TEST(Governance, MajorityFinalThatCannotPassRejects) {
  Gov g;
  g.Form();
  g.Submitted();
  g.PassFirst("p1", 4);
  g.All("p1", "final", v1::OBJECT, {"a", "b"});
  g.Ok("c", Vote("p1", "final", v1::ASSENT));
  auto events = g.Ok("d", Vote("p1", "final", v1::ASSENT));
  ASSERT_EQ(Kinds(events), std::vector<std::string>{"proposal_rejected"});
  EXPECT_TRUE(events[0].proposal_rejected().caller().empty());
  EXPECT_EQ(g.P().status(), v1::PROPOSAL_REJECTED);
  EXPECT_EQ(g.G("p1", 4).status(), v1::GATEWAY_FAILED);
}

// rules/commit_group.h: submissions decided together in one commit group
// write exactly what they write decided one group each at the same ledger
// time. The auditor's replay, which feeds one submission at a time, relies
// on it. The group mixes every path: a recorded refusal, a batch refused at
// its second event (the first undone, the second's refusal recorded), an
// accepted vote and its identical retry, and the votes that pass a gateway.
TEST(CommitGroup, OneGroupWritesWhatOneSubmissionAtATimeWrites) {
  Gov g;
  g.Form();
  g.Submitted();
  g.PassFirst("p1", 1);
  std::vector<std::vector<Envelope>> submissions;
  auto seal = [&](const std::string& org, v1::EventBody body) {
    auto envelope = g.Seal(org, std::move(body));
    EXPECT_TRUE(envelope.ok()) << envelope.status();
    return *std::move(envelope);
  };
  submissions.push_back({seal("a", Vote("p1", "need", v1::OBJECT))});
  submissions.push_back({seal("b", Vote("p1", "principles", v1::ASSENT)), seal("c", Vote("p1", "need", v1::OBJECT))});
  submissions.push_back({seal("b", Vote("p1", "principles", v1::ASSENT))});
  submissions.push_back(submissions.back());  // a retry of the same bytes
  submissions.push_back({seal("a", Vote("p1", "principles", v1::ASSENT)), seal("c", Vote("p1", "principles", v1::ASSENT))});
  submissions.push_back({seal("d", Vote("p1", "principles", v1::ASSENT))});
  g.state.CommitChanges();

  // Records as comparable strings: a member event's bytes, a system event's body.
  auto flatten = [](const GroupDecision& decision, std::vector<std::string>& out) {
    for (const GroupRecord& record : decision.records) {
      out.push_back(record.member != nullptr ? "member " + record.member->signed_bytes
                                             : "system " + record.system.SerializeAsString());
    }
  };
  auto outcome = [](const SubmissionResult& result) {
    std::string out = absl::StrCat(static_cast<int>(result.status.code()), "/", ReasonOf(result.status), "/",
                                   result.refusal_recorded);
    for (const auto& [position, replayed] : result.positions) absl::StrAppend(&out, " ", position, replayed ? "r" : "");
    return out;
  };
  const int64_t time = g.now + kSecond;

  State together = g.state;
  GroupInput group{g.position, time, {}, nullptr};
  for (const auto& submission : submissions) group.submissions.push_back(SubmissionInput{submission, {}});
  const GroupDecision decided_together = DecideGroup(together, group);
  std::vector<std::string> records_together, outcomes_together;
  flatten(decided_together, records_together);
  for (const SubmissionResult& result : decided_together.submissions) outcomes_together.push_back(outcome(result));

  State one_by_one = g.state;
  std::vector<std::string> records_one_by_one, outcomes_one_by_one;
  PriorUses earlier;  // what the store would hold after each group
  for (const auto& submission : submissions) {
    GroupInput single{g.position + records_one_by_one.size(), time, {SubmissionInput{submission, {}}}, &earlier};
    const GroupDecision decided = DecideGroup(one_by_one, single);
    flatten(decided, records_one_by_one);
    outcomes_one_by_one.push_back(outcome(decided.submissions.front()));
    for (const GroupRecord& record : decided.records) {
      if (record.member == nullptr) continue;
      earlier[IdempotencyId(record.member->body.author(), record.member->body.idempotency_key())] =
          PriorUse{single.first_position + static_cast<uint64_t>(&record - decided.records.data()), record.body_hash};
    }
    one_by_one.CommitChanges();
  }

  EXPECT_EQ(records_together, records_one_by_one);
  EXPECT_EQ(outcomes_together, outcomes_one_by_one);
  EXPECT_TRUE(together.Snapshot() == one_by_one.Snapshot());
  // The group did reach every path it claims to.
  ASSERT_EQ(outcomes_together.size(), 6u);
  EXPECT_EQ(ReasonOf(decided_together.submissions[0].status), v1::GATEWAY_LOCKED);
  EXPECT_TRUE(decided_together.submissions[0].refusal_recorded);
  EXPECT_EQ(ReasonOf(decided_together.submissions[1].status), v1::GATEWAY_LOCKED);
  EXPECT_TRUE(decided_together.submissions[1].refusal_recorded);
  EXPECT_TRUE(decided_together.submissions[2].status.ok());
  ASSERT_EQ(decided_together.submissions[3].positions.size(), 1u);
  EXPECT_TRUE(decided_together.submissions[3].positions[0].second) << "the retry is answered with the original";
  EXPECT_EQ(decided_together.submissions[3].positions[0].first, decided_together.submissions[2].positions[0].first);
  EXPECT_TRUE(decided_together.submissions[5].status.ok());
  EXPECT_EQ(together.FindProposal("p1")->gateway_states(1).status(), v1::GATEWAY_PASSED);
}

TEST(Governance, VoteOnLockedGatewayIsRefusedAndRecorded) {
  Gov g;
  g.Form();
  g.Submitted();
  g.PassFirst("p1", 1);
  const uint64_t at = g.position;
  auto result = g.Submit("b", Vote("p1", "need", v1::OBJECT, "we changed our mind"));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReasonOf(result.status()), v1::GATEWAY_LOCKED);
  const std::optional<v1::EventBody> recorded = g.last_refusal;
  ASSERT_TRUE(recorded.has_value());
  EXPECT_EQ(g.last_refusal_at, at);
  EXPECT_EQ(g.position, at + 1);
  ASSERT_TRUE(recorded->has_submission_refused());
  const v1::SubmissionRefused& refused = recorded->submission_refused();
  EXPECT_EQ(refused.reason(), v1::GATEWAY_LOCKED);
  EXPECT_EQ(refused.signed_event(), g.last_envelope.signed_bytes);
  EXPECT_EQ(refused.message(), std::string(result.status().message()));
  // The original signed bytes still verify and decode to the attempt.
  v1::SignedEvent original;
  ASSERT_TRUE(original.ParseFromString(refused.signed_event()));
  auto reopened = OpenSubmission(original, kLedgerId);
  ASSERT_TRUE(reopened.ok());
  EXPECT_TRUE(CheckSignature(g.state, *reopened).ok());
  EXPECT_EQ(reopened->body.author(), "b");
  EXPECT_EQ(reopened->body.vote_cast().gateway_id(), "need");
  EXPECT_EQ(reopened->body.vote_cast().position(), v1::OBJECT);
  // The proposal's history keeps the attempt; the counter counts it.
  EXPECT_EQ(g.P().history(g.P().history_size() - 1), at);
  ASSERT_NE(g.state.FindRefusalCounter("b"), nullptr);
  EXPECT_EQ(g.state.FindRefusalCounter("b")->count(), 1u);

  // An invalid (not FAILED_PRECONDITION) submission is not recorded.
  const auto before = g.state.Snapshot();
  auto malformed = g.Submit("d", Impact("p1", -5));
  ASSERT_FALSE(malformed.ok());
  EXPECT_EQ(malformed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(g.last_refusal.has_value());
  EXPECT_EQ(g.position, at + 1);
  EXPECT_TRUE(g.state.Snapshot() == before) << "an unrecorded refusal changes nothing";
}

// Rules version 1: every recorded refusal, an attempt on a locked gateway
// included, counts against the allowance and is dropped beyond it.
TEST(Governance, RecordedRefusalsAreCappedPerOrganisationPerDayUnderRulesV1) {
  Gov g(kRulesV1);
  g.Form();
  g.Submitted();
  g.PassFirst("p1", 1);
  const int64_t day_start = g.now;
  auto attempt = [&](const std::string& org) -> std::optional<v1::EventBody> {
    auto result = g.Submit(org, Vote("p1", "need", v1::OBJECT));
    EXPECT_EQ(ReasonOf(result.status()), v1::GATEWAY_LOCKED);
    return g.last_refusal;
  };
  for (uint32_t i = 0; i < kMaxRecordedRefusalsPerDay; ++i) ASSERT_TRUE(attempt("b").has_value()) << i;
  const auto before = g.state.Snapshot();
  EXPECT_FALSE(attempt("b").has_value());
  EXPECT_FALSE(attempt("b").has_value());
  EXPECT_TRUE(g.state.Snapshot() == before) << "an unrecorded refusal changes nothing";
  EXPECT_TRUE(attempt("c").has_value()) << "the allowance is per organisation";
  EXPECT_LT(g.now - day_start, kDay);
  // The next day (of ledger time, from the first recorded refusal) it resumes.
  g.now = day_start + kDay;
  EXPECT_TRUE(attempt("b").has_value());
  EXPECT_EQ(g.state.FindRefusalCounter("b")->count(), 1u);
}

// Rules version 2: an attempt on a locked gateway is evidence of an attempted
// reversal, so the allowance never drops it (it still counts); other broken
// rules beyond the allowance are dropped, and DecideGroup says so.
TEST(Governance, AttemptsOnALockedGatewayAreRecordedBeyondTheAllowance) {
  Gov g;
  g.Form();
  g.Submitted();
  g.PassFirst("p1", 1);
  auto locked = [&] {
    auto result = g.Submit("b", Vote("p1", "need", v1::OBJECT));
    EXPECT_EQ(ReasonOf(result.status()), v1::GATEWAY_LOCKED);
    return g.last_refusal.has_value();
  };
  for (uint32_t i = 0; i < kMaxRecordedRefusalsPerDay; ++i) ASSERT_TRUE(locked()) << i;
  EXPECT_TRUE(locked()) << "beyond the allowance, still recorded";
  EXPECT_TRUE(locked());
  EXPECT_EQ(g.state.FindRefusalCounter("b")->count(), kMaxRecordedRefusalsPerDay + 2) << "they still count";

  // Another broken rule by b is beyond the allowance: dropped, and reported.
  auto envelope = g.Seal("b", Vote("nope", "need", v1::ASSENT));
  ASSERT_TRUE(envelope.ok());
  const auto before = g.state.Snapshot();
  const char checked = 0;
  rules::GroupInput input{g.position, g.now, {}, nullptr};
  input.submissions.push_back(rules::SubmissionInput{absl::MakeConstSpan(&*envelope, 1), absl::MakeConstSpan(&checked, 1)});
  rules::GroupDecision decision = rules::DecideGroup(g.state, input);
  EXPECT_EQ(ReasonOf(decision.submissions[0].status), v1::UNKNOWN_PROPOSAL) << decision.submissions[0].status;
  EXPECT_FALSE(decision.submissions[0].refusal_recorded);
  EXPECT_TRUE(decision.submissions[0].refusal_dropped);
  EXPECT_TRUE(decision.records.empty());
  ASSERT_EQ(decision.dropped.size(), 1u);
  EXPECT_EQ(decision.dropped[0].author, "b");
  EXPECT_EQ(decision.dropped[0].before_record, 0u);
  EXPECT_TRUE(g.state.Snapshot() == before) << "a dropped refusal changes nothing the rules keep";
}

// Rules version 2: the identical signed bytes of a recorded refusal are
// answered with it (same code and reason, naming its position) and nothing
// is recorded; a new signature of the same attempt is a new attempt.
TEST(Governance, IdenticalRefusedBytesAreAnsweredWithTheOriginalRefusal) {
  Gov g;
  g.Form();
  g.Submitted();
  g.PassFirst("p1", 1);
  g.Rule("b", Vote("p1", "need", v1::OBJECT), v1::GATEWAY_LOCKED);
  ASSERT_TRUE(g.last_refusal.has_value());
  const uint64_t refused_at = g.last_refusal_at;
  const Envelope refused = g.last_envelope;
  const uint32_t counted = g.state.FindRefusalCounter("b")->count();
  const auto before = g.state.Snapshot();
  for (bool checked : {false, true}) {
    OneDecision again = DecideOne(g.state, refused, Context{g.position, g.now + kSecond}, checked);
    EXPECT_EQ(again.status.code(), absl::StatusCode::kFailedPrecondition) << again.status;
    EXPECT_EQ(ReasonOf(again.status), v1::GATEWAY_LOCKED);
    EXPECT_TRUE(absl::StrContains(again.status.message(), absl::StrCat("refused at position ", refused_at)))
        << again.status;
    EXPECT_EQ(again.records, 0u);
    EXPECT_TRUE(g.state.Snapshot() == before) << "nothing recorded, nothing counted";
  }
  EXPECT_EQ(g.state.FindRefusalCounter("b")->count(), counted);
  // Inside a batch too: the whole submission is refused, nothing recorded.
  auto fresh = g.Seal("b", Vote("p1", "principles", v1::ASSENT));
  ASSERT_TRUE(fresh.ok());
  const std::vector<Envelope> batch = {*fresh, refused};
  rules::GroupInput input{g.position, g.now, {}, nullptr};
  input.submissions.push_back(rules::SubmissionInput{batch, {}});
  rules::GroupDecision decision = rules::DecideGroup(g.state, input);
  EXPECT_EQ(ReasonOf(decision.submissions[0].status), v1::GATEWAY_LOCKED) << decision.submissions[0].status;
  EXPECT_TRUE(decision.records.empty());
  EXPECT_TRUE(g.state.Snapshot() == before);
  // The same attempt signed again (new idempotency key) is recorded anew.
  g.Rule("b", Vote("p1", "need", v1::OBJECT), v1::GATEWAY_LOCKED);
  EXPECT_TRUE(g.last_refusal.has_value());
}

// Rules version 1: the same bytes are decided (and recorded) again.
TEST(Governance, IdenticalRefusedBytesAreRecordedAgainUnderRulesV1) {
  Gov g(kRulesV1);
  g.Form();
  g.Submitted();
  g.PassFirst("p1", 1);
  g.Rule("b", Vote("p1", "need", v1::OBJECT), v1::GATEWAY_LOCKED);
  const Envelope refused = g.last_envelope;
  OneDecision again = DecideOne(g.state, refused, Context{g.position, g.now + kSecond});
  EXPECT_EQ(ReasonOf(again.status), v1::GATEWAY_LOCKED);
  EXPECT_TRUE(again.refusal.has_value());
  EXPECT_EQ(again.records, 1u);
}

TEST(Governance, DeadlineLapsesGatewayAndVetoesThenACallerMayDecideIt) {
  Gov g;
  v1::Charter charter = StandardCharter();
  charter.mutable_gateways(0)->set_deadline_seconds(3600);
  g.Form("fed", charter);
  g.Submitted();
  const int64_t opened = g.G("p1", 0).opened_time_unix_ns();
  EXPECT_EQ(g.G("p1", 0).deadline_unix_ns(), opened + 3600 * kSecond);
  EXPECT_EQ(g.state.deadlines().size(), 1u);
  g.All("p1", "need", v1::ASSENT, {"a", "b"});
  g.Ok("d", Vote("p1", "need", v1::OBJECT));
  g.now = opened + 3599 * kSecond;
  EXPECT_TRUE(g.Lapse().empty());
  g.now = opened + 3600 * kSecond;
  const uint64_t at = g.position;
  auto lapses = g.Lapse();
  ASSERT_EQ(Kinds(lapses), std::vector<std::string>{"gateway_lapsed"});
  EXPECT_EQ(lapses[0].gateway_lapsed().proposal_id(), "p1");
  EXPECT_EQ(lapses[0].gateway_lapsed().gateway_id(), "need");
  EXPECT_EQ(g.G("p1", 0).status(), v1::GATEWAY_LAPSED);
  EXPECT_EQ(g.G("p1", 0).decided_at(), at);
  EXPECT_EQ(g.P().current_gateway(), 0);
  ASSERT_EQ(g.P().vetoes_size(), 1);
  EXPECT_EQ(g.P().vetoes(0).outcome(), v1::VETO_LAPSED);
  EXPECT_EQ(g.P().vetoes(0).ended_at(), at);
  EXPECT_TRUE(g.state.deadlines().empty());
  EXPECT_TRUE(g.Lapse().empty()) << "a gateway lapses once";

  g.Rule("c", Vote("p1", "need", v1::ASSENT), v1::GATEWAY_NOT_OPEN);
  g.Rule("a", Call("p1", "need", v1::PASS), v1::NOT_A_CALLER);
  auto events = g.Ok("nhse", Call("p1", "need", v1::PASS, "time is up"));
  ASSERT_EQ(Kinds(events), std::vector<std::string>{"gateway_passed"});
  EXPECT_EQ(events[0].gateway_passed().caller(), "nhse");
  EXPECT_EQ(Strings(events[0].gateway_passed().overruled()), std::vector<std::string>{"d"});
  EXPECT_EQ(g.G("p1", 0).status(), v1::GATEWAY_PASSED);
  EXPECT_EQ(g.P().vetoes(0).outcome(), v1::VETO_LAPSED) << "a lapsed veto stays lapsed";
  EXPECT_EQ(g.G("p1", 1).status(), v1::GATEWAY_OPEN);
}

TEST(Governance, LapsedGatewayWithoutObjectorsMayBeCalledEitherWay) {
  Gov g;
  v1::Charter charter = StandardCharter();
  charter.mutable_gateways(0)->set_deadline_seconds(60);
  g.Form("fed", charter);
  g.Submitted();
  g.now += 61 * kSecond;
  ASSERT_EQ(g.Lapse().size(), 1u);
  auto events = g.Ok("nhse", Call("p1", "need", v1::FAIL, "no engagement"));
  ASSERT_EQ(Kinds(events), std::vector<std::string>{"proposal_rejected"});
  EXPECT_TRUE(events[0].proposal_rejected().overruled().empty());
  EXPECT_EQ(g.P().status(), v1::PROPOSAL_REJECTED);
}

// Rules v2: a gateway deadline and an identity notice that fall due by the
// same group are written by due time, before anything submitted in it.
TEST(Governance, LapsesAndIdentityNoticesDueTogetherAreWrittenByDueTime) {
  for (const bool deadline_first : {true, false}) {
    SCOPED_TRACE(deadline_first ? "deadline first" : "notice first");
    Gov g;
    v1::EventBody added;
    added.mutable_key_added()->set_org_id("e");
    added.mutable_key_added()->set_public_key(std::string(PrivateKey::Generate().public_key().raw()));
    g.Ok("registrar", added);  // pending: its notice ends a notice period from now
    const uint64_t change = g.last_at;
    const int64_t notice_ends = g.state.FindIdentityChange(change)->notice_ends_unix_ns();
    v1::Charter charter = StandardCharter();
    // Submitted 29 s before the notice ends: the deadline ends 19 s before
    // it, or 31 s after it.
    charter.mutable_gateways(0)->set_deadline_seconds(deadline_first ? 10 : 60);
    g.Form("fed", charter);
    g.now = notice_ends - 30 * kSecond;
    g.Submitted();
    ASSERT_EQ(g.state.deadlines().size(), 1u);
    ASSERT_EQ(g.state.deadlines().begin()->first < notice_ends, deadline_first);
    g.now = notice_ends + 3600 * kSecond;
    const std::vector<v1::EventBody> due = g.Lapse();
    ASSERT_EQ(due.size(), 2u);
    EXPECT_EQ(Kinds(due), deadline_first
                              ? (std::vector<std::string>{"gateway_lapsed", "identity_change_effective"})
                              : (std::vector<std::string>{"identity_change_effective", "gateway_lapsed"}));
    EXPECT_EQ(g.state.FindIdentityChange(change)->status(), v1::IDENTITY_CHANGE_BY_NOTICE);
  }
}

// Rules v2: a registrar's merger that nobody confirms takes effect when its
// notice ends, inside the IdentityChangeEffective record: memberships pass
// then, and whatever the merger implies is written right after it.
TEST(Governance, MergerByNoticeTransfersMembershipsAtTheNotice) {
  Gov g;
  g.Form();
  v1::EventBody merger;
  merger.mutable_organisation_merged()->set_merged_org_id("b");
  merger.mutable_organisation_merged()->set_successor_org_id("e");
  g.Ok("registrar", merger);
  const uint64_t change = g.last_at;
  EXPECT_EQ(Strings(g.Collective().members()), (std::vector<std::string>{"a", "b", "c", "d"})) << "pending";
  g.now = g.state.FindIdentityChange(change)->notice_ends_unix_ns();
  const uint64_t at = g.position;
  const std::vector<v1::EventBody> due = g.Lapse();
  ASSERT_FALSE(due.empty());
  EXPECT_EQ(due[0].identity_change_effective().change_position(), change);
  EXPECT_EQ(g.state.FindIdentityChange(change)->effective_at(), at);
  EXPECT_EQ(Strings(g.Collective().members()), (std::vector<std::string>{"a", "e", "c", "d"}));
  g.Refused("b", Proposal("fed", "p1"), absl::StatusCode::kFailedPrecondition, v1::ORGANISATION_MERGED);
}

TEST(Governance, RequiredAssuranceKeepsGatewayAwaitingUntilTheBodyRecords) {
  Gov g;
  v1::Charter charter = StandardCharter();
  charter.mutable_gateways(1)->set_required_assurance("senate");
  charter.mutable_gateways(1)->set_deadline_seconds(600);
  g.Form("fed", charter);
  g.Submitted();
  g.PassFirst("p1", 1);
  EXPECT_EQ(g.G("p1", 1).status(), v1::GATEWAY_AWAITING_ASSURANCE);
  EXPECT_TRUE(g.G("p1", 1).electorate().empty());
  EXPECT_EQ(g.P().current_gateway(), 1);
  EXPECT_TRUE(g.state.deadlines().empty()) << "the deadline runs from opening";
  g.Rule("a", Vote("p1", "principles", v1::ASSENT), v1::GATEWAY_NOT_OPEN);
  g.Rule("nhse", Assure("p1", "principles"), v1::NOT_AN_ASSURANCE_BODY);
  g.Rule("a", Assure("p1", "principles"), v1::NOT_AN_ASSURANCE_BODY);
  g.now += 3600 * kSecond;
  EXPECT_TRUE(g.Lapse().empty());

  EXPECT_TRUE(g.Ok("senate", Assure("p1", "principles", v1::AMBER)).empty());
  const v1::GatewayState& gs = g.G("p1", 1);
  EXPECT_EQ(gs.status(), v1::GATEWAY_OPEN);
  EXPECT_EQ(gs.opened_at(), g.last_at);
  EXPECT_EQ(Strings(gs.electorate()), Founders());
  EXPECT_EQ(std::vector<uint64_t>(gs.assurance_positions().begin(), gs.assurance_positions().end()),
            std::vector<uint64_t>{g.last_at});
  EXPECT_EQ(Strings(gs.assurance_bodies()), std::vector<std::string>{"senate"});
  EXPECT_EQ(gs.deadline_unix_ns(), g.now + 600 * kSecond);
  EXPECT_EQ(Kinds(g.All("p1", "principles", v1::ASSENT)), std::vector<std::string>{"gateway_passed"});
}

TEST(Governance, AssuranceRecordedAheadOpensTheGatewayWhenReached) {
  Gov g;
  v1::Charter charter = StandardCharter();
  charter.mutable_gateways(1)->set_required_assurance("senate");
  g.Form("fed", charter);
  g.Submitted();
  g.Ok("senate", Assure("p1", "principles", v1::GREEN));
  EXPECT_EQ(g.G("p1", 1).status(), v1::GATEWAY_PENDING);
  g.PassFirst("p1", 1);
  EXPECT_EQ(g.G("p1", 1).status(), v1::GATEWAY_OPEN);
}

TEST(Governance, DeclaredInterestRecusesTheMember) {
  Gov g;
  g.Form();
  g.Submitted();
  g.Ok("a", Vote("p1", "need", v1::ASSENT));
  EXPECT_TRUE(g.Ok("c", Interest("p1")).empty());
  EXPECT_EQ(Strings(g.P().recused()), std::vector<std::string>{"c"});
  EXPECT_EQ(Strings(g.G("p1", 0).electorate()), (std::vector<std::string>{"a", "b", "d"}));
  g.Rule("c", Vote("p1", "need", v1::ASSENT), v1::RECUSED);
  g.Ok("b", Vote("p1", "need", v1::ASSENT));
  auto events = g.Ok("d", Vote("p1", "need", v1::ASSENT));
  ASSERT_EQ(Kinds(events), std::vector<std::string>{"gateway_passed"});
  EXPECT_EQ(events[0].gateway_passed().tally().electorate(), 3u);
  EXPECT_EQ(events[0].gateway_passed().tally().assent(), 3u);
  EXPECT_EQ(events[0].gateway_passed().tally().recused(), 1u);
  EXPECT_EQ(Strings(g.G("p1", 1).electorate()), (std::vector<std::string>{"a", "b", "d"}));
  g.Rule("c", Vote("p1", "principles", v1::OBJECT), v1::RECUSED);
  // Recused only from this proposal.
  g.Submitted("p2", "b");
  EXPECT_EQ(Strings(g.G("p2", 0).electorate()), Founders());
  g.Ok("c", Vote("p2", "need", v1::ASSENT));
}

TEST(Governance, InterestOfTheLastHoldoutPassesTheGateway) {
  Gov g;
  g.Form();
  g.Submitted();
  g.All("p1", "need", v1::ASSENT, {"a", "b", "c"});
  auto events = g.Ok("d", Interest("p1"));
  ASSERT_EQ(Kinds(events), std::vector<std::string>{"gateway_passed"});
  EXPECT_EQ(events[0].gateway_passed().tally().electorate(), 3u);
}

TEST(Governance, ElectorateIsFixedWhenTheGatewayOpens) {
  Gov g;
  g.Form();
  g.Submitted();
  g.Ok("a", Vote("p1", "need", v1::ASSENT));
  g.Ok("b", Admit("fed", "ad1", "e"));
  EXPECT_EQ(Strings(g.G("ad1", 0).electorate()), Founders());
  EXPECT_TRUE(g.All("ad1", "admission", v1::ASSENT, {"a", "b", "c"}).empty());
  auto events = g.Ok("d", Vote("ad1", "admission", v1::ASSENT));
  ASSERT_EQ(Kinds(events), (std::vector<std::string>{"gateway_passed", "decision_adopted", "member_admitted"}));
  EXPECT_EQ(events[2].member_admitted().collective_id(), "fed");
  EXPECT_EQ(events[2].member_admitted().org_id(), "e");
  EXPECT_EQ(Strings(g.Collective().members()), (std::vector<std::string>{"a", "b", "c", "d", "e"}));

  g.Rule("e", Vote("p1", "need", v1::ASSENT), v1::NOT_ELIGIBLE);
  EXPECT_EQ(Strings(g.G("p1", 0).electorate()), Founders());
  // The open gateway passes with the electorate it opened with; the next one
  // includes the new member.
  EXPECT_EQ(Kinds(g.All("p1", "need", v1::ASSENT, {"b", "c", "d"})), std::vector<std::string>{"gateway_passed"});
  EXPECT_EQ(Strings(g.G("p1", 1).electorate()), (std::vector<std::string>{"a", "b", "c", "d", "e"}));
  g.Submitted("p2", "e");
  EXPECT_EQ(Strings(g.G("p2", 0).electorate()), (std::vector<std::string>{"a", "b", "c", "d", "e"}));
  g.Ok("e", Vote("p2", "need", v1::ASSENT));
  // The admitted member accepts the charter in force.
  EXPECT_TRUE(g.Ok("e", Accept("fed", g.Collective().charter_digest())).empty());
}

TEST(Governance, AmendmentAppliesOnlyToProposalsSubmittedAfterIt) {
  Gov g;
  g.Form();
  g.Submitted("old");
  g.Ok("d", Impact("old", 1'000'000));
  v1::Charter amended = StandardCharter();
  amended.clear_gateways();
  *amended.add_gateways() = Gw("only", v1::MAJORITY);
  amended.mutable_taper()->clear_percent_by_year();
  amended.mutable_taper()->add_percent_by_year(50);
  g.Ok("b", Amend("fed", "am1", amended));
  EXPECT_EQ(g.P("am1").gateways_size(), 1);
  EXPECT_EQ(g.P("am1").gateways(0).id(), "amendment");
  EXPECT_EQ(g.P("am1").gateways(0).rule().kind(), v1::RULE_KIND_UNSPECIFIED) << "default amendment rule";
  EXPECT_TRUE(g.All("am1", "amendment", v1::ASSENT, {"a", "b", "c"}).empty()) << "amendment needs unanimity";
  auto events = g.Ok("d", Vote("am1", "amendment", v1::ASSENT));
  ASSERT_EQ(Kinds(events), (std::vector<std::string>{"gateway_passed", "decision_adopted", "charter_amended"}));
  const v1::CharterAmended& ca = events[2].charter_amended();
  EXPECT_EQ(ca.collective_id(), "fed");
  EXPECT_EQ(ca.version(), 2u);
  EXPECT_EQ(ca.charter().SerializeAsString(), amended.SerializeAsString());
  EXPECT_EQ(ca.charter_digest(), CharterDigest(amended));
  EXPECT_EQ(g.Collective().charter_version(), 2u);
  EXPECT_EQ(g.Collective().charter_digest(), CharterDigest(amended));

  // Fixed rules: the old proposal keeps its five gateways and its taper.
  EXPECT_EQ(g.P("old").charter_version(), 1u);
  EXPECT_EQ(g.P("old").gateways_size(), 5);
  EXPECT_EQ(g.P("old").charter().SerializeAsString(), StandardCharter().SerializeAsString());
  g.Rule("a", Vote("old", "only", v1::ASSENT), v1::UNKNOWN_GATEWAY);
  g.Submitted("new", "c");
  EXPECT_EQ(g.P("new").charter_version(), 2u);
  ASSERT_EQ(g.P("new").gateways_size(), 1);
  EXPECT_EQ(g.P("new").gateways(0).id(), "only");
  g.Rule("a", Vote("new", "need", v1::ASSENT), v1::UNKNOWN_GATEWAY);
  g.Ok("d", Impact("new", 1'000'000));
  EXPECT_TRUE(g.All("new", "only", v1::ASSENT, {"a", "b", "c"}).empty()) << "decided once everyone voted";
  auto adopted_new = g.Ok("d", Vote("new", "only", v1::OBJECT));
  ASSERT_EQ(Kinds(adopted_new), (std::vector<std::string>{"gateway_passed", "decision_adopted"}));
  EXPECT_EQ(adopted_new[1].decision_adopted().tapers(0).support_by_year_pence_size(), 1);
  EXPECT_EQ(adopted_new[1].decision_adopted().tapers(0).support_by_year_pence(0), 500'000);

  g.PassFirst("old", 4);
  auto adopted_old = g.All("old", "final", v1::ASSENT);
  ASSERT_EQ(Kinds(adopted_old), (std::vector<std::string>{"gateway_passed", "decision_adopted"}));
  EXPECT_EQ(adopted_old[1].decision_adopted().tapers(0).support_by_year_pence_size(), 4);
  EXPECT_EQ(adopted_old[1].decision_adopted().tapers(0).support_by_year_pence(1), 660'000);
}

TEST(Governance, RemovalExcludesTheSubjectAndEmitsMemberRemoved) {
  Gov g;
  g.Form();
  g.Ok("a", Remove("fed", "rm1", "d"));
  EXPECT_EQ(Strings(g.G("rm1", 0).electorate()), (std::vector<std::string>{"a", "b", "c"}));
  g.Rule("d", Vote("rm1", "removal", v1::OBJECT), v1::NOT_ELIGIBLE);
  auto events = g.All("rm1", "removal", v1::ASSENT, {"a", "b", "c"});
  ASSERT_EQ(Kinds(events), (std::vector<std::string>{"gateway_passed", "decision_adopted", "member_removed"}));
  EXPECT_EQ(events[2].member_removed().org_id(), "d");
  EXPECT_EQ(events[2].member_removed().reason(), "persistent breach");
  EXPECT_EQ(Strings(g.Collective().members()), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(Strings(g.Collective().former_members()), std::vector<std::string>{"d"});
  g.Rule("d", Proposal("fed", "p9"), v1::NOT_A_MEMBER);
  // Readmission takes it off the former members.
  g.Ok("a", Admit("fed", "ad1", "d"));
  EXPECT_EQ(Kinds(g.All("ad1", "admission", v1::ASSENT, {"a", "b", "c"})),
            (std::vector<std::string>{"gateway_passed", "decision_adopted", "member_admitted"}));
  EXPECT_EQ(Strings(g.Collective().members()), (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_TRUE(g.Collective().former_members().empty());
}

TEST(Governance, RevisitReopensALockedGatewayOnlyByCollectiveAct) {
  Gov g;
  g.Form("fed", RevisitCharter());
  g.Submitted();
  g.PassFirst("p1", 1);
  g.Ok("a", Vote("p1", "principles", v1::ASSENT));
  const std::string locked_votes = g.G("p1", 0).SerializeAsString();

  // One member alone: its votes on the locked gateway are refused, its
  // revisit proposal does not carry without the others.
  for (auto pos : {v1::OBJECT, v1::ABSTAIN, v1::ASSENT}) g.Rule("d", Vote("p1", "need", pos), v1::GATEWAY_LOCKED);
  g.Ok("d", Revisit("fed", "rv1", "p1", "need"));
  ASSERT_EQ(g.P("rv1").gateways_size(), 1);
  EXPECT_EQ(g.P("rv1").gateways(0).id(), "revisit");
  EXPECT_EQ(g.P("rv1").gateways(0).rule().kind(), v1::MAJORITY);
  EXPECT_TRUE(g.Ok("d", Vote("rv1", "revisit", v1::ASSENT)).empty());
  EXPECT_TRUE(g.Ok("d", Vote("rv1", "revisit", v1::ASSENT, "again")).empty());
  EXPECT_TRUE(g.Ok("a", Vote("rv1", "revisit", v1::ASSENT)).empty());
  EXPECT_TRUE(g.Ok("c", Vote("rv1", "revisit", v1::OBJECT)).empty()) << "b has still to vote";
  EXPECT_EQ(g.G("p1", 0).SerializeAsString(), locked_votes) << "the locked gateway did not move";

  auto events = g.Ok("b", Vote("rv1", "revisit", v1::ASSENT));
  ASSERT_EQ(Kinds(events), (std::vector<std::string>{"gateway_passed", "decision_adopted"}));
  EXPECT_EQ(events[1].decision_adopted().proposal_id(), "rv1");
  const v1::ProposalState& p = g.P("p1");
  EXPECT_EQ(p.status(), v1::PROPOSAL_OPEN);
  EXPECT_EQ(p.current_gateway(), 0);
  EXPECT_EQ(p.gateway_states(0).status(), v1::GATEWAY_OPEN);
  EXPECT_TRUE(p.gateway_states(0).votes().empty());
  EXPECT_EQ(p.gateway_states(0).opened_at(), g.last_at);
  EXPECT_EQ(Strings(p.gateway_states(0).electorate()), Founders());
  for (int i = 1; i < 5; ++i) {
    EXPECT_EQ(p.gateway_states(i).status(), v1::GATEWAY_PENDING) << i;
    EXPECT_TRUE(p.gateway_states(i).votes().empty()) << i;
  }
  EXPECT_EQ(p.history(p.history_size() - 1), g.last_at);
  // A new attempt: d may now object, and its veto blocks.
  EXPECT_TRUE(g.Ok("d", Vote("p1", "need", v1::OBJECT)).empty());
  EXPECT_TRUE(g.All("p1", "need", v1::ASSENT, {"a", "b", "c"}).empty());
  EXPECT_EQ(g.G("p1", 0).status(), v1::GATEWAY_OPEN);
}

TEST(Governance, RevisitCanBeCalledByARevisitCaller) {
  Gov g;
  v1::Charter charter = RevisitCharter();
  charter.mutable_revisit_rule()->set_kind(v1::UNANIMITY);  // a majority one decides itself
  g.Form("fed", charter);
  g.Submitted();
  g.PassFirst("p1", 1);
  g.Ok("d", Revisit("fed", "rv1", "p1", "need"));
  g.Ok("d", Vote("rv1", "revisit", v1::ASSENT));
  g.Ok("a", Vote("rv1", "revisit", v1::OBJECT));
  g.Rule("nhse", Call("rv1", "revisit", v1::PASS), v1::NO_DEADLOCK);  // b and c have not voted
  g.All("rv1", "revisit", v1::ASSENT, {"b", "c"});
  g.Rule("e", Call("rv1", "revisit", v1::PASS), v1::NOT_A_CALLER);
  auto events = g.Ok("nhse", Call("rv1", "revisit", v1::PASS, "reopen it"));
  ASSERT_EQ(Kinds(events), (std::vector<std::string>{"gateway_passed", "decision_adopted"}));
  EXPECT_EQ(g.G("p1", 0).status(), v1::GATEWAY_OPEN);
}

// A revisit adopted after its target was decided must not reopen the decided
// proposal: an adopted decision binds, and its gateways stay locked.
TEST(Governance, RevisitAdoptedAfterTheTargetClosedChangesNothing) {
  Gov g;
  g.Form("fed", RevisitCharter());
  g.Submitted();
  g.PassFirst("p1", 4);
  g.Ok("d", Revisit("fed", "rv1", "p1", "need"));
  ASSERT_EQ(Kinds(g.All("p1", "final", v1::ASSENT)), (std::vector<std::string>{"gateway_passed", "decision_adopted"}));
  const std::string adopted = g.P("p1").SerializeAsString();
  ASSERT_EQ(Kinds(g.All("rv1", "revisit", v1::ASSENT)), (std::vector<std::string>{"gateway_passed", "decision_adopted"}));
  EXPECT_EQ(g.P("rv1").status(), v1::PROPOSAL_ADOPTED);
  EXPECT_EQ(g.P("p1").status(), v1::PROPOSAL_ADOPTED);
  EXPECT_EQ(g.G("p1", 0).status(), v1::GATEWAY_PASSED);
  EXPECT_EQ(g.P("p1").SerializeAsString(), adopted) << "the adopted decision was reopened";
  g.Rule("d", Vote("p1", "need", v1::OBJECT), v1::GATEWAY_LOCKED);
}

// KNOWN ISSUE (reported, not fixed: no VetoOutcome fits): a revisit clears the
// votes of the reopened gateway and every later one, but a veto standing on a
// later gateway keeps standing on a gateway that is now PENDING — and stays
// STANDING for ever if the proposal is then rejected at an earlier gateway.
TEST(Governance, RevisitEndsVetoesOnTheGatewaysItClears) {
  Gov g;
  g.Form("fed", RevisitCharter());
  g.Submitted();
  g.PassFirst("p1", 1);
  g.Ok("d", Vote("p1", "principles", v1::OBJECT));
  g.Ok("d", Revisit("fed", "rv1", "p1", "need"));
  g.All("rv1", "revisit", v1::ASSENT);
  ASSERT_EQ(g.G("p1", 0).status(), v1::GATEWAY_OPEN);
  ASSERT_EQ(g.G("p1", 1).status(), v1::GATEWAY_PENDING);
  g.Ok("d", Vote("p1", "need", v1::OBJECT));
  g.All("p1", "need", v1::ASSENT, {"a", "b", "c"});
  g.Ok("nhse", Call("p1", "need", v1::FAIL));
  ASSERT_EQ(g.P().status(), v1::PROPOSAL_REJECTED);
  for (const auto& veto : g.P().vetoes()) {
    EXPECT_NE(veto.outcome(), v1::VETO_STANDING) << veto.gateway_id() << " veto still standing";
  }
}

TEST(Governance, WithdrawalOnlyBeforeTheFirstGatewayPasses) {
  Gov g;
  g.Form();
  g.Submitted();
  g.Ok("b", Vote("p1", "need", v1::OBJECT));
  EXPECT_TRUE(g.Ok("a", Withdraw("p1")).empty());
  const v1::ProposalState& p = g.P();
  EXPECT_EQ(p.status(), v1::PROPOSAL_WITHDRAWN);
  EXPECT_EQ(p.ended_at(), g.last_at);
  for (const auto& gs : p.gateway_states()) EXPECT_EQ(gs.status(), v1::GATEWAY_CLOSED) << gs.gateway_id();
  ASSERT_EQ(p.vetoes_size(), 1);
  EXPECT_EQ(p.vetoes(0).outcome(), v1::VETO_PROPOSAL_WITHDRAWN);

  g.Submitted("p2");
  g.PassFirst("p2", 1);
  g.Rule("a", Withdraw("p2"), v1::WITHDRAWAL_TOO_LATE);
  g.Rule("b", Withdraw("p2"), v1::NOT_PROPOSER);
}

TEST(Governance, WithdrawnMemberKeepsItsSeatOnOpenGatewaysOnly) {
  Gov g;
  g.Form();
  g.Submitted();
  g.All("p1", "need", v1::ASSENT, {"a", "b"});
  EXPECT_TRUE(g.Ok("d", Leave("fed")).empty());
  EXPECT_EQ(Strings(g.Collective().members()), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(Strings(g.Collective().former_members()), std::vector<std::string>{"d"});
  EXPECT_EQ(Strings(g.G("p1", 0).electorate()), Founders()) << "open electorates are unchanged";
  EXPECT_TRUE(g.Ok("c", Vote("p1", "need", v1::ASSENT)).empty()) << "d's seat still counts";
  auto events = g.Ok("d", Vote("p1", "need", v1::ASSENT));
  ASSERT_EQ(Kinds(events), std::vector<std::string>{"gateway_passed"});
  EXPECT_EQ(events[0].gateway_passed().tally().electorate(), 4u);
  EXPECT_EQ(Strings(g.G("p1", 1).electorate()), (std::vector<std::string>{"a", "b", "c"}));
  g.Rule("d", Vote("p1", "principles", v1::ASSENT), v1::NOT_A_MEMBER);
  g.Rule("d", Proposal("fed", "p2"), v1::NOT_A_MEMBER);
}

TEST(Governance, MergerTransfersMembershipsToTheSuccessor) {
  Gov g;
  g.Form();
  g.Form("fed2", [] {
    v1::Charter c = StandardCharter();
    c.clear_founding_members();
    for (auto m : {"c", "d"}) c.add_founding_members(m);
    return c;
  }());
  g.Merge("b", "e");
  EXPECT_EQ(Strings(g.Collective().members()), (std::vector<std::string>{"a", "e", "c", "d"}));
  EXPECT_EQ(Strings(g.Collective().former_members()), std::vector<std::string>{"b"});
  EXPECT_EQ(Strings(g.Collective("fed2").members()), (std::vector<std::string>{"c", "d"}));
  g.Refused("b", Proposal("fed", "p1"), absl::StatusCode::kFailedPrecondition, v1::ORGANISATION_MERGED);
  g.Ok("e", Proposal("fed", "p1"));
  EXPECT_EQ(Strings(g.G("p1", 0).electorate()), (std::vector<std::string>{"a", "e", "c", "d"}));
  // A successor that was already a member holds one seat.
  g.Merge("c", "d");
  EXPECT_EQ(Strings(g.Collective().members()), (std::vector<std::string>{"a", "e", "d"}));
  EXPECT_EQ(Strings(g.Collective("fed2").members()), std::vector<std::string>{"d"});
}

// ------------------------------------------------------------------ mergers (rules version 2)
// Every merger in these tests goes through Ledger::Merge: the one place that
// makes a merger take effect.

// Where Gov::Merge makes a merger submitted now take effect: under rules v2
// the second confirmation, two records after the registrar's.
uint64_t MergerTakesEffectAt(const Gov& g) { return g.position + (RulesAtLeast(g.state, kRulesV2) ? 2 : 0); }

// The merged elector's seat passes to a successor outside the electorate,
// which votes afresh: the gateway that waited for the merged organisation
// becomes decidable, and its tally shows the seat that changed hands.

TEST(Governance, MergedElectorsSeatPassesToTheSuccessorWhichVotesAfresh) {
  Gov g;
  g.Form();
  g.Submitted();
  g.All("p1", "need", v1::ASSENT, {"a", "b", "d"});
  g.Ok("c", Vote("p1", "need", v1::OBJECT));
  ASSERT_EQ(g.P().vetoes_size(), 1);
  const uint64_t merger_at = MergerTakesEffectAt(g);
  EXPECT_TRUE(g.Merge("c", "e").empty()) << "e has still to vote";
  const v1::GatewayState& gs = g.G("p1", 0);
  EXPECT_EQ(gs.status(), v1::GATEWAY_OPEN);
  EXPECT_EQ(Strings(gs.electorate()), (std::vector<std::string>{"a", "b", "e", "d"}));
  ASSERT_EQ(gs.seat_changes_size(), 1);
  EXPECT_EQ(gs.seat_changes(0).from(), "c");
  EXPECT_EQ(gs.seat_changes(0).to(), "e");
  EXPECT_EQ(gs.seat_changes(0).at(), merger_at);
  EXPECT_EQ(g.P().vetoes(0).outcome(), v1::VETO_MERGED);
  EXPECT_EQ(g.P().vetoes(0).ended_at(), merger_at);
  EXPECT_EQ(g.P().history(g.P().history_size() - 1), merger_at);
  // c's objection no longer counts; e's vote decides.
  auto events = g.Ok("e", Vote("p1", "need", v1::ASSENT));
  ASSERT_EQ(Kinds(events), std::vector<std::string>{"gateway_passed"});
  const v1::Tally& tally = events[0].gateway_passed().tally();
  EXPECT_EQ(tally.electorate(), 4u);
  EXPECT_EQ(tally.assent(), 4u);
  EXPECT_EQ(tally.object(), 0u);
  ASSERT_EQ(tally.seat_changes_size(), 1);
  EXPECT_EQ(tally.seat_changes(0).to(), "e");
  EXPECT_EQ(g.G("p1", 0).tally().seat_changes_size(), 1);
  // The next gateway opens with the collective as the merger left it.
  EXPECT_EQ(Strings(g.G("p1", 1).electorate()), (std::vector<std::string>{"a", "b", "e", "d"}));
  EXPECT_EQ(g.G("p1", 1).seat_changes_size(), 0);
}

// A successor that already sits in the electorate keeps its one seat: the
// merged seat is vacated, and a tally the merged organisation was holding up
// completes at the merger.
TEST(Governance, MergerIntoAnElectorVacatesTheSeatAndDecidesTheGateway) {
  Gov g;
  g.Form();
  g.Submitted();
  g.All("p1", "need", v1::ASSENT, {"a", "b", "d"});
  const uint64_t merger_at = MergerTakesEffectAt(g);
  auto events = g.Merge("c", "d");
  ASSERT_EQ(Kinds(events), std::vector<std::string>{"gateway_passed"});
  const v1::GatewayPassed& passed = events[0].gateway_passed();
  EXPECT_EQ(passed.cause_position(), merger_at);
  EXPECT_TRUE(passed.caller().empty());
  EXPECT_EQ(passed.tally().electorate(), 3u);
  EXPECT_EQ(passed.tally().assent(), 3u);
  ASSERT_EQ(passed.tally().seat_changes_size(), 1);
  EXPECT_EQ(passed.tally().seat_changes(0).from(), "c");
  EXPECT_EQ(passed.tally().seat_changes(0).to(), "");
  EXPECT_EQ(passed.tally().seat_changes(0).at(), merger_at);
  EXPECT_EQ(g.G("p1", 0).status(), v1::GATEWAY_PASSED);
  EXPECT_EQ(g.G("p1", 0).decided_at(), merger_at + 1);
  EXPECT_EQ(Strings(g.G("p1", 1).electorate()), (std::vector<std::string>{"a", "b", "d"}));
}

// One organisation, one vote, whichever of the two voted: the successor's own
// position stands, and the merged organisation's vote no longer counts.
TEST(Governance, MergedVoteDoesNotCountWhenTheSuccessorHoldsASeat) {
  Gov g;
  g.Form();
  g.Submitted();
  g.Ok("c", Vote("p1", "need", v1::ASSENT));
  g.Ok("d", Vote("p1", "need", v1::OBJECT));
  g.All("p1", "need", v1::ASSENT, {"a", "b"});
  EXPECT_TRUE(g.Merge("c", "d").empty()) << "d's veto stands";
  EXPECT_EQ(Strings(g.G("p1", 0).electorate()), (std::vector<std::string>{"a", "b", "d"}));
  ASSERT_EQ(g.P().vetoes_size(), 1);
  EXPECT_EQ(g.P().vetoes(0).outcome(), v1::VETO_STANDING);
  // The call's tally counts three seats, not c's assent.
  auto events = g.Ok("nhse", Call("p1", "need", v1::PASS));
  ASSERT_EQ(Kinds(events), std::vector<std::string>{"gateway_passed"});
  EXPECT_EQ(events[0].gateway_passed().tally().electorate(), 3u);
  EXPECT_EQ(events[0].gateway_passed().tally().assent(), 2u);
  EXPECT_EQ(Strings(events[0].gateway_passed().overruled()), std::vector<std::string>{"d"});
}

// Recusals hold through a merger: a recused merged organisation stays out (no
// seat to pass), and a recused successor does not take the merged seat.
TEST(Governance, MergerRespectsRecusals) {
  Gov g;
  g.Form();
  g.Submitted();
  g.Ok("c", Interest("p1"));
  g.Merge("c", "e");
  EXPECT_EQ(Strings(g.G("p1", 0).electorate()), (std::vector<std::string>{"a", "b", "d"}));
  EXPECT_EQ(g.G("p1", 0).seat_changes_size(), 0);

  g.Submitted("p2", "a");
  g.Ok("d", Interest("p2"));
  EXPECT_EQ(Strings(g.G("p2", 0).electorate()), (std::vector<std::string>{"a", "b", "e"}));
  g.All("p2", "need", v1::ASSENT, {"a", "e"});
  // b into d: d sits in p1 (vacated) and is recused from p2 (vacated: p2 passes).
  auto events = g.Merge("b", "d");
  ASSERT_EQ(Kinds(events), std::vector<std::string>{"gateway_passed"});
  EXPECT_EQ(events[0].gateway_passed().proposal_id(), "p2");
  EXPECT_EQ(events[0].gateway_passed().tally().electorate(), 2u);
  EXPECT_EQ(Strings(g.G("p1", 0).electorate()), (std::vector<std::string>{"a", "d"}));
  ASSERT_EQ(g.G("p2", 0).seat_changes_size(), 1);
  EXPECT_EQ(g.G("p2", 0).seat_changes(0).to(), "");
  EXPECT_EQ(Strings(g.G("p2", 1).electorate()), (std::vector<std::string>{"a", "e"})) << "d stays recused";
}

// A lapsed gateway can still be called: the seat passes, and the call's tally
// shows it.
TEST(Governance, MergerPassesTheSeatOfALapsedGateway) {
  Gov g;
  v1::Charter charter = StandardCharter();
  charter.mutable_gateways(0)->set_deadline_seconds(60);
  g.Form("fed", charter);
  g.Submitted();
  g.Ok("b", Vote("p1", "need", v1::OBJECT));
  g.now += 61 * kSecond;
  ASSERT_EQ(g.Lapse().size(), 1u);
  EXPECT_TRUE(g.Merge("b", "e").empty()) << "a lapsed gateway is decided only by a call";
  EXPECT_EQ(Strings(g.G("p1", 0).electorate()), (std::vector<std::string>{"a", "e", "c", "d"}));
  EXPECT_EQ(g.P().vetoes(0).outcome(), v1::VETO_LAPSED) << "the veto had already ended";
  auto events = g.Ok("nhse", Call("p1", "need", v1::PASS, "time is up"));
  ASSERT_EQ(Kinds(events), std::vector<std::string>{"gateway_passed"});
  ASSERT_EQ(events[0].gateway_passed().tally().seat_changes_size(), 1);
  EXPECT_EQ(events[0].gateway_passed().tally().seat_changes(0).to(), "e");
  EXPECT_TRUE(events[0].gateway_passed().overruled().empty()) << "b's objection went with its seat";
}

// A collective not yet formed takes the successor's acceptance for the
// merged founder's; the merged founder's own acceptance does not carry.
TEST(Governance, SuccessorAcceptsForAFounderMergedBeforeFormation) {
  Gov g;
  g.Ok("a", ProposeCollective("fed", StandardCharter()));
  for (auto m : {"a", "b", "c"}) g.Ok(m, Accept("fed", Digest()));
  EXPECT_TRUE(g.Merge("c", "e").empty()) << "e has not accepted";
  EXPECT_FALSE(g.Collective().formed());
  EXPECT_EQ(Strings(g.Collective().founders()), (std::vector<std::string>{"a", "b", "e", "d"}));
  g.Ok("d", Accept("fed", Digest()));
  EXPECT_FALSE(g.Collective().formed()) << "c's acceptance does not stand for e's";
  auto events = g.Ok("e", Accept("fed", Digest()));
  ASSERT_EQ(Kinds(events), std::vector<std::string>{"collective_formed"});
  EXPECT_EQ(Strings(events[0].collective_formed().members()), (std::vector<std::string>{"a", "b", "e", "d"}));
  EXPECT_TRUE(g.Collective().formed());
  EXPECT_EQ(Strings(g.Collective().members()), (std::vector<std::string>{"a", "b", "e", "d"}));
  g.Ok("e", Proposal("fed", "p1"));
}

// A founder merged into another founder that has accepted: the successor's
// acceptance already stands for both, so the collective forms at the merger
// with the successor once.
TEST(Governance, FounderMergedIntoAnAcceptedFounderFormsTheCollectiveAtTheMerger) {
  Gov g;
  g.Ok("a", ProposeCollective("fed", StandardCharter()));
  for (auto m : {"a", "b", "d"}) g.Ok(m, Accept("fed", Digest()));
  const uint64_t merger_at = MergerTakesEffectAt(g);
  auto events = g.Merge("c", "d");
  ASSERT_EQ(Kinds(events), std::vector<std::string>{"collective_formed"});
  EXPECT_EQ(Strings(events[0].collective_formed().members()), (std::vector<std::string>{"a", "b", "d"}));
  EXPECT_TRUE(g.Collective().formed());
  EXPECT_EQ(g.Collective().formed_at(), merger_at + 1);
  EXPECT_EQ(Strings(g.Collective().members()), (std::vector<std::string>{"a", "b", "d"}));
}

// Rules version 1 (logs written before version 2): a merger passes
// memberships only; the open gateway keeps the merged seat.
TEST(Governance, MergerUnderRulesV1LeavesOpenSeatsAlone) {
  Gov g(kRulesV1);
  g.Form();
  g.Submitted();
  g.Ok("a", ProposeCollective("fed2", StandardCharter()));
  for (auto m : {"a", "b"}) g.Ok(m, Accept("fed2", Digest()));
  g.All("p1", "need", v1::ASSENT, {"a", "b", "d"});
  EXPECT_TRUE(g.Merge("c", "d").empty());
  EXPECT_EQ(Strings(g.G("p1", 0).electorate()), Founders());
  EXPECT_EQ(g.G("p1", 0).seat_changes_size(), 0);
  g.Merge("b", "e");
  EXPECT_TRUE(g.Collective("fed2").founders().empty());
  g.Rule("e", Accept("fed2", Digest()), v1::NOT_A_FOUNDING_MEMBER);
}

// ------------------------------------------------------------------ calls (rules version 2)

// A caller that sits in the electorate cannot make the deadlock by objecting
// itself; another elector's objection, once everyone else has voted, is one.
TEST(Governance, CallerObjectingItselfIsNoDeadlock) {
  Gov g;
  v1::Charter charter = StandardCharter();
  charter.mutable_gateways(0)->clear_callers();
  charter.mutable_gateways(0)->add_callers("a");
  g.Form("fed", charter);
  g.Submitted();
  g.Ok("a", Vote("p1", "need", v1::OBJECT));
  g.All("p1", "need", v1::ASSENT, {"b", "c", "d"});
  g.Rule("a", Call("p1", "need", v1::FAIL), v1::NO_DEADLOCK);
  g.Ok("b", Vote("p1", "need", v1::OBJECT));
  auto events = g.Ok("a", Call("p1", "need", v1::FAIL, "b objects"));
  ASSERT_EQ(Kinds(events), std::vector<std::string>{"proposal_rejected"});
}

// An objection is a deadlock only once every other elector has voted.
TEST(Governance, UnanimityObjectionBeforeEveryoneVotedIsNoDeadlock) {
  Gov g;
  g.Form();
  g.Submitted();
  g.Ok("d", Vote("p1", "need", v1::OBJECT));
  g.All("p1", "need", v1::ASSENT, {"a", "b"});
  g.Rule("nhse", Call("p1", "need", v1::PASS), v1::NO_DEADLOCK);
  g.Ok("c", Vote("p1", "need", v1::ABSTAIN));
  ASSERT_EQ(Kinds(g.Ok("nhse", Call("p1", "need", v1::PASS))), std::vector<std::string>{"gateway_passed"});
}

// A majority gateway is never deadlocked by an objection: fully voted it
// decides itself; only a lapse lets a caller decide it.
TEST(Governance, MajorityGatewayCanBeCalledOnlyAfterItLapsed) {
  Gov g;
  v1::Charter charter = StandardCharter();
  charter.mutable_gateways(4)->set_deadline_seconds(3600);
  g.Form("fed", charter);
  g.Submitted();
  g.PassFirst("p1", 4);
  g.All("p1", "final", v1::OBJECT, {"a", "b"});
  g.Ok("c", Vote("p1", "final", v1::ASSENT));
  g.Rule("nhse", Call("p1", "final", v1::PASS), v1::NO_DEADLOCK);
  g.now += 3600 * kSecond;
  ASSERT_EQ(g.Lapse().size(), 1u);
  auto events = g.Ok("nhse", Call("p1", "final", v1::PASS, "national priority"));
  ASSERT_EQ(Kinds(events), (std::vector<std::string>{"gateway_passed", "decision_adopted"}));
  EXPECT_EQ(Strings(events[0].gateway_passed().overruled()), (std::vector<std::string>{"a", "b"}));
}

// Changes to the collective are called by the charter's amendment callers,
// not by the final gateway's.
TEST(Governance, AdmissionIsCalledByAmendmentCallersOnly) {
  Gov g;
  g.Register("dhsc");
  v1::Charter charter = StandardCharter();
  charter.mutable_amendment_rule()->set_kind(v1::UNANIMITY);
  charter.add_amendment_callers("dhsc");
  g.Form("fed", charter);
  g.Ok("a", Admit("fed", "ad1", "e"));
  EXPECT_EQ(Strings(g.P("ad1").gateways(0).callers()), std::vector<std::string>{"dhsc"});
  g.Ok("d", Vote("ad1", "admission", v1::OBJECT));
  g.All("ad1", "admission", v1::ASSENT, {"a", "b", "c"});
  g.Rule("nhse", Call("ad1", "admission", v1::PASS), v1::NOT_A_CALLER);
  auto events = g.Ok("dhsc", Call("ad1", "admission", v1::PASS, "the region needs it"));
  ASSERT_EQ(Kinds(events), (std::vector<std::string>{"gateway_passed", "decision_adopted", "member_admitted"}));
  // Without amendment callers nobody may call a change to the collective.
  g.Form("fed2", StandardCharter());
  g.Ok("a", Remove("fed2", "rm1", "d"));
  g.Ok("a", Vote("rm1", "removal", v1::OBJECT));
  g.All("rm1", "removal", v1::ASSENT, {"b", "c"});
  g.Rule("nhse", Call("rm1", "removal", v1::PASS), v1::NOT_A_CALLER);
}

// Rules version 1 (logs written before version 2): any objection was a
// deadlock, a caller could object itself, the final gateway's callers called
// changes to the collective, categories matched exactly and impacts were
// unbounded.
TEST(Governance, RulesV1KeepsTheOldCallsCategoriesAndImpacts) {
  Gov g(kRulesV1);
  g.Form();
  g.Submitted();
  g.PassFirst("p1", 4);
  g.Ok("a", Vote("p1", "final", v1::OBJECT));
  ASSERT_EQ(Kinds(g.Ok("nhse", Call("p1", "final", v1::PASS))),
            (std::vector<std::string>{"gateway_passed", "decision_adopted"}));

  v1::Charter charter = StandardCharter();
  charter.mutable_gateways(0)->add_callers("a");
  charter.add_amendment_callers("ghost");  // not checked under version 1
  g.Form("fed2", charter);
  g.Ok("b", Proposal("fed2", "p2"));
  g.Ok("a", Vote("p2", "need", v1::OBJECT));
  ASSERT_EQ(Kinds(g.Ok("a", Call("p2", "need", v1::PASS))), std::vector<std::string>{"gateway_passed"});

  g.Ok("a", Admit("fed", "ad1", "e"));
  EXPECT_EQ(Strings(g.P("ad1").gateways(0).callers()), std::vector<std::string>{"nhse"});
  g.Ok("a", Vote("ad1", "admission", v1::OBJECT));
  ASSERT_EQ(Kinds(g.Ok("nhse", Call("ad1", "admission", v1::PASS))),
            (std::vector<std::string>{"gateway_passed", "decision_adopted", "member_admitted"}));

  g.Ok("a", Proposal("fed", "p3", "Clinical-Provision"));
  g.Ok("d", Impact("p3", kMaxAnnualImpactPence + 1));
}

// ------------------------------------------------------------------ categories and impacts (rules version 2)

TEST(Governance, ReservedCategoriesMatchWhateverTheCaseOrPunctuation) {
  Gov g;
  v1::Charter charter = StandardCharter();
  charter.add_reserved_categories("Clinical location");
  charter.add_reserved_categories("?!");  // nothing left to match
  g.Form("fed", charter);
  int n = 0;
  for (const char* category : {"clinical-provision", "Clinical-provision", "CLINICAL_PROVISION",
                               " clinical  provision. ", "clinical-location", "CLINICAL--Location"}) {
    g.Rule("a", Proposal("fed", absl::StrCat("p", ++n), category), v1::RESERVED_CATEGORY);
  }
  g.Ok("a", Proposal("fed", "ok1", "clinical-provisions"));
  g.Rule("a", Proposal("fed", "p-joined", "ClinicalProvision"), v1::RESERVED_CATEGORY);  // only letters count
  g.Refused("a", Proposal("fed", "p-lookalike", "\xD0\xA1linical provision"), absl::StatusCode::kInvalidArgument,
            v1::MALFORMED);  // a Cyrillic С
  g.Ok("a", Proposal("fed", "ok3", "--"));
  g.Ok("a", Proposal("fed", "ok4", ""));
}

TEST(Governance, ImpactAboveTheBoundIsMalformed) {
  Gov g;
  g.Form();
  g.Submitted();
  g.Refused("d", Impact("p1", kMaxAnnualImpactPence + 1), absl::StatusCode::kInvalidArgument, v1::MALFORMED);
  g.Refused("d", Impact("p1", std::numeric_limits<int64_t>::max()), absl::StatusCode::kInvalidArgument,
            v1::MALFORMED);
  g.Ok("d", Impact("p1", kMaxAnnualImpactPence));
  g.PassFirst("p1", 5);
  ASSERT_EQ(g.P().adoption().tapers_size(), 1);
  EXPECT_EQ(g.P().adoption().tapers(0).support_by_year_pence(1), kMaxAnnualImpactPence / 100 * 66);
}

TEST(Governance, EveryTextFieldIsBoundedUnderRulesV3) {
  const std::string at_limit(kMaxTextBytes, 'x');
  const std::string beyond(kMaxTextBytes + 1, 'x');
  Gov g;
  g.Form();
  g.Submitted();
  g.Ok("b", Vote("p1", "need", v1::ABSTAIN, at_limit));
  g.Refused("b", Vote("p1", "need", v1::ABSTAIN, beyond), absl::StatusCode::kInvalidArgument, v1::OVERSIZE);
  // Nested fields too: a gateway's name inside a proposed charter.
  v1::Charter charter = StandardCharter();
  charter.mutable_gateways(1)->set_name(beyond);
  auto refused = g.Submit("a", ProposeCollective("fed2", charter));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(ReasonOf(refused.status()), v1::OVERSIZE);
  EXPECT_NE(refused.status().message().find("collective_proposed.charter.gateways.name"), absl::string_view::npos)
      << refused.status();
  EXPECT_EQ(g.state.FindCollective("fed2"), nullptr);

  Gov v2(kRulesV2);  // logs written before the limit keep replaying
  v2.Form();
  v2.Submitted();
  v2.Ok("b", Vote("p1", "need", v1::ABSTAIN, beyond));
}

TEST(Governance, PositionChangesOnOneGatewayAreCappedUnderRulesV3) {
  Gov g;
  g.Form();
  g.Submitted();
  // A first vote and kMaxPositionChanges changes; the next is refused, and
  // recorded, and changes nothing.
  for (int i = 0; i <= kMaxPositionChanges; ++i) g.Ok("d", Vote("p1", "need", i % 2 ? v1::OBJECT : v1::ABSTAIN));
  const int votes = g.G("p1", 0).votes_size();
  g.Refused("d", Vote("p1", "need", v1::ASSENT), absl::StatusCode::kFailedPrecondition,
            v1::POSITION_CHANGES_EXHAUSTED);
  EXPECT_EQ(g.G("p1", 0).votes_size(), votes);
  // Other members, and other gateways, are not affected (d's standing
  // position is its last accepted one, an abstention).
  g.All("p1", "need", v1::ASSENT, {"a", "b", "c"});
  EXPECT_EQ(g.G("p1", 0).status(), v1::GATEWAY_PASSED);
  g.Ok("d", Vote("p1", "principles", v1::ABSTAIN));

  Gov v2(kRulesV2);
  v2.Form();
  v2.Submitted();
  for (int i = 0; i <= kMaxPositionChanges + 1; ++i) v2.Ok("d", Vote("p1", "need", i % 2 ? v1::OBJECT : v1::ABSTAIN));
}

TEST(Governance, MarkAndRollbackRestoreTheStateExactly) {
  Gov g;
  g.Form();
  g.Submitted();
  const auto before = g.state.Snapshot();
  const size_t mark = g.state.Mark();
  g.PassFirst("p1", 2);
  g.Ok("d", Impact("p1", 10));
  g.Submitted("p2");
  EXPECT_FALSE(g.state.Snapshot() == before);
  g.state.RollbackTo(mark);
  EXPECT_TRUE(g.state.Snapshot() == before);
}

// A vote changes its proposal in place and journals a delta (not the
// proposal): each vote undone on its own — objections that become vetoes, a
// withdrawn veto, the votes that pass a gateway and open the next (with its
// deadline), the one that adopts — and all of them together leave the state
// and the deadline index exactly as before.
TEST(Governance, VotesRollBackExactlyOneAtATimeAndTogether) {
  v1::Charter charter = StandardCharter();
  for (v1::Gateway& gateway : *charter.mutable_gateways()) gateway.set_deadline_seconds(3600);
  Gov g;
  g.Form("fed", charter);
  g.Submitted();
  const auto start = g.state.Snapshot();
  const auto start_deadlines = g.state.deadlines();
  const size_t outer = g.state.Mark();
  struct Step {
    std::string org, gateway;
    v1::Position position;
  };
  std::vector<Step> steps = {{"a", "need", v1::OBJECT},  {"b", "need", v1::ASSENT}, {"a", "need", v1::ASSENT},
                             {"c", "need", v1::OBJECT},  {"c", "need", v1::ABSTAIN}, {"c", "need", v1::OBJECT},
                             {"c", "need", v1::ASSENT},  {"d", "need", v1::ASSENT}};
  for (const char* gateway : {"principles", "process", "nature", "final"}) {
    for (const std::string& org : Founders()) steps.push_back({org, gateway, v1::ASSENT});
  }
  for (const Step& step : steps) {
    SCOPED_TRACE(absl::StrCat(step.org, " on ", step.gateway));
    const auto before = g.state.Snapshot();
    const auto deadlines = g.state.deadlines();
    const size_t mark = g.state.Mark();
    g.Ok(step.org, Vote("p1", step.gateway, step.position));
    EXPECT_FALSE(g.state.Snapshot() == before);
    g.state.RollbackTo(mark);
    EXPECT_TRUE(g.state.Snapshot() == before) << "the vote's undo did not restore the state";
    EXPECT_TRUE(g.state.deadlines() == deadlines) << "the vote's undo did not restore the deadline index";
    g.Ok(step.org, Vote("p1", step.gateway, step.position));
  }
  EXPECT_EQ(g.P("p1").status(), v1::PROPOSAL_ADOPTED);
  EXPECT_EQ(g.P("p1").vetoes_size(), 3);
  g.state.RollbackTo(outer);
  EXPECT_TRUE(g.state.Snapshot() == start);
  EXPECT_TRUE(g.state.deadlines() == start_deadlines);
}

// ====================================================== charter arithmetic

v1::DecisionRule Rule(v1::RuleKind kind, uint32_t quorum = 0,
                      v1::AbstentionMode abstention = v1::ABSTENTION_COUNTS_TOWARDS_QUORUM, uint32_t numerator = 0,
                      uint32_t denominator = 0) {
  v1::DecisionRule rule;
  rule.set_kind(kind);
  rule.set_quorum_percent(quorum);
  rule.set_abstention(abstention);
  rule.set_numerator(numerator);
  rule.set_denominator(denominator);
  return rule;
}

Count C(uint32_t electorate, uint32_t assent, uint32_t object, uint32_t abstain) {
  return Count{electorate, assent, object, abstain};
}

TEST(CharterEvaluate, Unanimity) {
  const auto u = Rule(v1::UNANIMITY);
  EXPECT_EQ(Evaluate(u, C(3, 3, 0, 0)), Verdict::kPass);
  EXPECT_EQ(Evaluate(u, C(3, 2, 0, 0)), Verdict::kPending);
  EXPECT_EQ(Evaluate(u, C(3, 2, 1, 0)), Verdict::kCannotPass);
  EXPECT_EQ(Evaluate(u, C(3, 1, 1, 0)), Verdict::kPending);
  EXPECT_EQ(Evaluate(u, C(3, 0, 0, 3)), Verdict::kCannotPass) << "needs at least one assent";
  EXPECT_EQ(Evaluate(v1::DecisionRule(), C(2, 2, 0, 0)), Verdict::kPass) << "unset kind is unanimity";
  EXPECT_EQ(Evaluate(v1::DecisionRule(), C(2, 1, 1, 0)), Verdict::kCannotPass);
}

TEST(CharterEvaluate, UnanimityAbstentionModes) {
  EXPECT_EQ(Evaluate(Rule(v1::UNANIMITY), C(3, 2, 0, 1)), Verdict::kPass);
  EXPECT_EQ(Evaluate(Rule(v1::UNANIMITY, 0, v1::ABSTENTION_IGNORED), C(3, 2, 0, 1)), Verdict::kPass);
  EXPECT_EQ(Evaluate(Rule(v1::UNANIMITY, 0, v1::ABSTENTION_COUNTS_AGAINST), C(3, 2, 0, 1)), Verdict::kCannotPass);
  // Quorum with ignored abstentions: 2 of 4 voted is below 75%.
  EXPECT_EQ(Evaluate(Rule(v1::UNANIMITY, 75, v1::ABSTENTION_IGNORED), C(4, 2, 0, 2)), Verdict::kCannotPass);
  EXPECT_EQ(Evaluate(Rule(v1::UNANIMITY, 75), C(4, 2, 0, 2)), Verdict::kPass);
}

// A gateway is decided only once every elector has voted (until then a member
// may still change its position).
TEST(CharterEvaluate, Majority) {
  const auto m = Rule(v1::MAJORITY);
  EXPECT_EQ(Evaluate(m, C(5, 3, 0, 0)), Verdict::kPending) << "no early pass: 2 have still to vote";
  EXPECT_EQ(Evaluate(m, C(5, 2, 2, 0)), Verdict::kPending);
  EXPECT_EQ(Evaluate(m, C(5, 3, 2, 0)), Verdict::kPass);
  EXPECT_EQ(Evaluate(m, C(5, 2, 3, 0)), Verdict::kCannotPass);
  EXPECT_EQ(Evaluate(m, C(4, 2, 2, 0)), Verdict::kCannotPass) << "half is not more than half";
  EXPECT_EQ(Evaluate(m, C(4, 0, 0, 4)), Verdict::kCannotPass) << "nobody assents";
  EXPECT_EQ(Evaluate(m, C(1, 1, 0, 0)), Verdict::kPass);
}

TEST(CharterEvaluate, MajorityAbstentionModes) {
  // 2 assent, 1 object, 1 abstain of 4.
  EXPECT_EQ(Evaluate(Rule(v1::MAJORITY), C(4, 2, 1, 1)), Verdict::kPass);
  EXPECT_EQ(Evaluate(Rule(v1::MAJORITY, 0, v1::ABSTENTION_IGNORED), C(4, 2, 1, 1)), Verdict::kPass);
  EXPECT_EQ(Evaluate(Rule(v1::MAJORITY, 0, v1::ABSTENTION_COUNTS_AGAINST), C(4, 2, 1, 1)), Verdict::kCannotPass);
  // Quorum of 100%: ignored abstentions do not count as having voted.
  EXPECT_EQ(Evaluate(Rule(v1::MAJORITY, 100), C(4, 2, 1, 1)), Verdict::kPass);
  EXPECT_EQ(Evaluate(Rule(v1::MAJORITY, 100, v1::ABSTENTION_IGNORED), C(4, 2, 1, 1)), Verdict::kCannotPass);
}

TEST(CharterEvaluate, Supermajority) {
  const auto two_thirds = Rule(v1::SUPERMAJORITY, 0, v1::ABSTENTION_COUNTS_TOWARDS_QUORUM, 2, 3);
  EXPECT_EQ(Evaluate(two_thirds, C(3, 2, 1, 0)), Verdict::kPass) << "exactly two thirds";
  EXPECT_EQ(Evaluate(two_thirds, C(3, 2, 0, 0)), Verdict::kPending);
  EXPECT_EQ(Evaluate(two_thirds, C(4, 2, 2, 0)), Verdict::kCannotPass);
  EXPECT_EQ(Evaluate(two_thirds, C(4, 3, 1, 0)), Verdict::kPass);
  EXPECT_EQ(Evaluate(two_thirds, C(5, 3, 2, 0)), Verdict::kCannotPass) << "3/5 is under 2/3";
  const auto three_quarters = Rule(v1::SUPERMAJORITY, 0, v1::ABSTENTION_COUNTS_TOWARDS_QUORUM, 3, 4);
  EXPECT_EQ(Evaluate(three_quarters, C(5, 3, 1, 1)), Verdict::kPass) << "3 of 4 counted";
  EXPECT_EQ(Evaluate(three_quarters, C(5, 3, 1, 0)), Verdict::kPending);
  EXPECT_EQ(Evaluate(Rule(v1::SUPERMAJORITY, 0, v1::ABSTENTION_IGNORED, 3, 4), C(5, 3, 1, 1)), Verdict::kPass);
  EXPECT_EQ(Evaluate(Rule(v1::SUPERMAJORITY, 0, v1::ABSTENTION_COUNTS_AGAINST, 3, 4), C(5, 3, 1, 1)),
            Verdict::kCannotPass);
  const auto all = Rule(v1::SUPERMAJORITY, 0, v1::ABSTENTION_COUNTS_TOWARDS_QUORUM, 1, 1);
  EXPECT_EQ(Evaluate(all, C(3, 2, 0, 1)), Verdict::kPass);
  EXPECT_EQ(Evaluate(all, C(3, 2, 1, 0)), Verdict::kCannotPass);
}

// With no assent at all, no rule passes: abstaining everyone must not carry a
// supermajority any more than a majority.
TEST(CharterEvaluate, NobodyAssentingNeverPasses) {
  for (auto mode : {v1::ABSTENTION_COUNTS_TOWARDS_QUORUM, v1::ABSTENTION_IGNORED, v1::ABSTENTION_COUNTS_AGAINST}) {
    SCOPED_TRACE(v1::AbstentionMode_Name(mode));
    EXPECT_EQ(Evaluate(Rule(v1::UNANIMITY, 0, mode), C(3, 0, 0, 3)), Verdict::kCannotPass);
    EXPECT_EQ(Evaluate(Rule(v1::MAJORITY, 0, mode), C(3, 0, 0, 3)), Verdict::kCannotPass);
    EXPECT_EQ(Evaluate(Rule(v1::SUPERMAJORITY, 0, mode, 2, 3), C(3, 0, 0, 3)), Verdict::kCannotPass);
    EXPECT_EQ(Evaluate(Rule(v1::SUPERMAJORITY, 0, mode, 3, 4), C(4, 0, 0, 4)), Verdict::kCannotPass);
  }
}

TEST(CharterEvaluate, Quorum) {
  // Once everyone has voted, quorum fails only on ignored abstentions.
  const auto m = Rule(v1::MAJORITY, 75);
  EXPECT_EQ(Evaluate(m, C(8, 5, 0, 0)), Verdict::kPending);
  EXPECT_EQ(Evaluate(m, C(8, 4, 1, 3)), Verdict::kPass) << "abstentions count towards quorum by default";
  const auto ignored = Rule(v1::MAJORITY, 75, v1::ABSTENTION_IGNORED);
  EXPECT_EQ(Evaluate(ignored, C(8, 5, 1, 2)), Verdict::kPass) << "6 of 8 voted: exactly 75%";
  EXPECT_EQ(Evaluate(ignored, C(8, 4, 1, 3)), Verdict::kCannotPass) << "5 of 8 voted: below quorum";
  EXPECT_EQ(Evaluate(Rule(v1::UNANIMITY, 100, v1::ABSTENTION_IGNORED), C(3, 2, 0, 1)), Verdict::kCannotPass);
  EXPECT_EQ(Evaluate(Rule(v1::UNANIMITY, 100), C(3, 2, 0, 1)), Verdict::kPass);
}

TEST(CharterEvaluate, EmptyElectorateWaitsForACallOrLapse) {
  for (auto kind : {v1::UNANIMITY, v1::MAJORITY, v1::SUPERMAJORITY}) {
    EXPECT_EQ(Evaluate(Rule(kind, 0, v1::ABSTENTION_COUNTS_TOWARDS_QUORUM, 2, 3), C(0, 0, 0, 0)),
              Verdict::kPending);
  }
}

TEST(CharterTaper, ScheduleFollowsThePolicy) {
  v1::TaperPolicy policy;
  for (uint32_t p : {100u, 66u, 33u, 0u}) policy.add_percent_by_year(p);
  EXPECT_EQ(TaperSchedule(policy, 1'000'000), (std::vector<int64_t>{1'000'000, 660'000, 330'000, 0}));
  EXPECT_EQ(TaperSchedule(policy, 333), (std::vector<int64_t>{333, 219, 109, 0})) << "rounds down";
  // Version 1 logs recorded the int64 product as it wrapped: replay must
  // reproduce it. 2^62 * 66 wraps to -2^63 (66 = 64 + 2: 2^68 + 2^63).
  const int64_t huge = int64_t{1} << 62;
  EXPECT_EQ(TaperSchedule(policy, huge, kRulesV1)[1], std::numeric_limits<int64_t>::min() / 100);
  EXPECT_EQ(TaperSchedule(policy, huge)[1], static_cast<int64_t>(static_cast<__int128>(huge) * 66 / 100));
  EXPECT_TRUE(TaperSchedule(v1::TaperPolicy(), 1'000'000).empty());
  v1::TaperPolicy big;
  big.add_percent_by_year(100);
  big.add_percent_by_year(50);
  EXPECT_EQ(TaperSchedule(big, 4'000'000'000'000), (std::vector<int64_t>{4'000'000'000'000, 2'000'000'000'000}));
}

// A member chooses its impact: no int64 impact overflows the arithmetic, and
// wherever impact * percent fitted in int64 the result is the same as that.
TEST(CharterTaper, NoImpactOverflowsAndSmallOnesAreUnchanged) {
  v1::TaperPolicy policy;
  for (uint32_t p : {100u, 99u, 66u, 33u, 1u, 0u}) policy.add_percent_by_year(p);
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(TaperSchedule(policy, kMax),
            (std::vector<int64_t>{kMax, 9131138316486228048, 6087425544324152032, 3043712772162076016,
                                  92233720368547758, 0}));
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  EXPECT_EQ(TaperSchedule(policy, kMin)[0], kMin);
  EXPECT_EQ(TaperSchedule(policy, kMin)[2], -6087425544324152033) << "rounds toward zero, as before";
  std::mt19937_64 random(8);
  for (int i = 0; i < 10'000; ++i) {
    const int64_t impact = static_cast<int64_t>(random() % static_cast<uint64_t>(kMax / 100)) * (i % 2 ? 1 : -1);
    std::vector<int64_t> before;
    for (uint32_t p : policy.percent_by_year()) before.push_back(impact * p / 100);
    ASSERT_EQ(TaperSchedule(policy, impact), before) << impact;
  }
}

TEST(CharterCategory, NormalisedCategoryIgnoresCaseAndPunctuation) {
  EXPECT_EQ(NormalisedCategory("Clinical-location"), "clinicallocation");
  EXPECT_EQ(NormalisedCategory("clinical location"), "clinicallocation");
  EXPECT_EQ(NormalisedCategory("CLINICAL_LOCATION"), "clinicallocation");
  EXPECT_EQ(NormalisedCategory("ClinicalLocation"), "clinicallocation");
  EXPECT_EQ(NormalisedCategory("  --Clinical  /  Location 2--"), "clinicallocation2");
  EXPECT_EQ(NormalisedCategory("é"), "") << "non-ASCII bytes are dropped (and refused by the rules)";
  EXPECT_EQ(NormalisedCategory(""), "");
  EXPECT_EQ(NormalisedCategory("_-_ "), "");
}

TEST(CharterDigestTest, DigestIsStableAndSensitive) {
  v1::Charter a = StandardCharter();
  v1::Charter b = StandardCharter();
  EXPECT_EQ(CharterDigest(a), CharterDigest(b));
  EXPECT_EQ(CharterDigest(a).size(), 32u);
  b.mutable_gateways(4)->mutable_rule()->set_quorum_percent(50);
  EXPECT_NE(CharterDigest(a), CharterDigest(b));
}

}  // namespace
}  // namespace ledger::rules
