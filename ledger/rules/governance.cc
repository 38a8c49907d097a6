#include "ledger/rules/governance.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ledger/event/refusal.h"
#include "ledger/rules/charter.h"
#include "ledger/rules/gateway_touch.h"
#include "ledger/rules/limits.h"
#include "ledger/rules/version.h"

namespace ledger::rules::internal {
namespace {

constexpr int64_t kNanosPerSecond = 1'000'000'000;
constexpr int64_t kNanosPerDay = 86'400 * kNanosPerSecond;

template <typename Container>
bool Contains(const Container& c, const std::string& value) {
  return std::find(c.begin(), c.end(), value) != c.end();
}

template <typename Container>
void Erase(Container* c, const std::string& value) {
  c->erase(std::remove(c->begin(), c->end(), value), c->end());
}

absl::Status Missing(std::string message) {
  return Refuse(absl::StatusCode::kInvalidArgument, v1::MISSING_FIELD, std::move(message));
}

// One governance decision in progress: the state, the event, and the system
// events it implies (each lands at the next position after its cause).
struct Decision {
  State& state;
  const Envelope& envelope;
  const Context& context;
  Effects* effects;

  const std::string& author() const { return envelope.body.author(); }
  uint64_t at() const { return context.position; }
  int64_t now() const { return context.ledger_time_unix_ns; }
  uint64_t next_system_position() const { return context.position + 1 + effects->system_events.size(); }
  v1::EventBody& Emit() { return effects->system_events.emplace_back(); }
};

// As the state holds it (not copied: a proposal only reads it).
absl::StatusOr<const v1::CollectiveState*> FormedCollective(const State& state, const std::string& id) {
  const v1::CollectiveState* collective = state.FindCollective(id);
  if (collective == nullptr) return RuleBroken(v1::UNKNOWN_COLLECTIVE, absl::StrCat("no collective ", id));
  if (!collective->formed()) {
    return RuleBroken(v1::COLLECTIVE_NOT_FORMED,
                      absl::StrCat("collective ", id, " is not formed: not every founding member has accepted its charter"));
  }
  return collective;
}

// The founders whose acceptances form `collective`: the charter's, as
// mergers changed them (rules version 2).
const google::protobuf::RepeatedPtrField<std::string>& Founders(const v1::CollectiveState& collective) {
  return collective.founders().empty() ? collective.charter().founding_members() : collective.founders();
}

// Forms `collective` if every founder has accepted its charter.
void FormIfAccepted(Decision& d, v1::CollectiveState& collective) {
  const auto& founders = Founders(collective);
  if (collective.formed() || !std::all_of(founders.begin(), founders.end(), [&](const std::string& m) {
        return Contains(collective.accepted_by(), m);
      })) {
    return;
  }
  collective.set_formed(true);
  collective.set_formed_at(d.next_system_position());
  collective.set_charter_version(1);
  *collective.mutable_members() = founders;
  v1::CollectiveFormed* formed = d.Emit().mutable_collective_formed();
  formed->set_collective_id(collective.collective_id());
  formed->set_charter_digest(collective.charter_digest());
  *formed->mutable_members() = collective.members();
}

// An entry the state's own invariants say exists (a proposal's collective,
// a proposal named by another). Missing only if a backed State could not read
// it or its source was altered: that is reported (so the group is refused,
// see State::source_status) and an empty entry read instead.
template <typename Message>
const Message& Existing(const State& state, const Message* found, const std::string& id) {
  static const Message* const kEmpty = new Message();
  if (found != nullptr) return *found;
  state.ReportMissing(id);
  return *kEmpty;
}

absl::StatusOr<v1::ProposalState> FindProposal(const State& state, const std::string& id) {
  const v1::ProposalState* proposal = state.FindProposal(id);
  if (proposal == nullptr) return RuleBroken(v1::UNKNOWN_PROPOSAL, absl::StrCat("no proposal ", id));
  return *proposal;
}

absl::Status RequireOpen(const v1::ProposalState& proposal) {
  if (proposal.status() == v1::PROPOSAL_OPEN) return absl::OkStatus();
  return RuleBroken(v1::PROPOSAL_CLOSED, absl::StrCat("proposal ", proposal.proposal_id(), " is ",
                                                      v1::ProposalStatus_Name(proposal.status())));
}

absl::Status RequireMember(const v1::CollectiveState& collective, const std::string& org) {
  if (Contains(collective.members(), org)) return absl::OkStatus();
  return RuleBroken(v1::NOT_A_MEMBER, absl::StrCat(org, " is not a member of ", collective.collective_id()));
}

int GatewayIndex(const v1::ProposalState& proposal, const std::string& gateway_id) {
  for (int i = 0; i < proposal.gateways_size(); ++i) {
    if (proposal.gateways(i).id() == gateway_id) return i;
  }
  return -1;
}

// Latest position of each elector, by the order of their votes.
absl::flat_hash_map<std::string, const v1::VoteRecord*> LatestVotes(const v1::GatewayState& gateway) {
  absl::flat_hash_map<std::string, const v1::VoteRecord*> latest;
  for (const v1::VoteRecord& vote : gateway.votes()) latest[vote.org_id()] = &vote;
  return latest;
}

v1::Tally MakeTally(const v1::GatewayState& gateway, uint32_t recused) {
  v1::Tally tally;
  tally.set_electorate(gateway.electorate_size());
  tally.set_recused(recused);
  auto latest = LatestVotes(gateway);
  for (const std::string& elector : gateway.electorate()) {
    auto it = latest.find(elector);
    if (it == latest.end()) continue;
    switch (it->second->position()) {
      case v1::ASSENT: tally.set_assent(tally.assent() + 1); break;
      case v1::OBJECT: tally.set_object(tally.object() + 1); break;
      case v1::ABSTAIN: tally.set_abstain(tally.abstain() + 1); break;
      default: break;
    }
    tally.add_vote_positions(it->second->at());
  }
  std::sort(tally.mutable_vote_positions()->begin(), tally.mutable_vote_positions()->end());
  *tally.mutable_seat_changes() = gateway.seat_changes();  // none before rules version 2
  return tally;
}

// Electors whose latest position is `position`.
std::vector<std::string> ElectorsHolding(const v1::GatewayState& gateway, v1::Position position) {
  std::vector<std::string> out;
  auto latest = LatestVotes(gateway);
  for (const std::string& elector : gateway.electorate()) {
    auto it = latest.find(elector);
    if (it != latest.end() && it->second->position() == position) out.push_back(elector);
  }
  return out;
}

void EndStandingVetoes(v1::ProposalState& proposal, const std::string& gateway_id,
                       v1::VetoOutcome outcome, uint64_t at) {
  for (v1::VetoState& veto : *proposal.mutable_vetoes()) {
    if (veto.outcome() == v1::VETO_STANDING && (gateway_id.empty() || veto.gateway_id() == gateway_id)) {
      veto.set_outcome(outcome);
      veto.set_ended_at(at);
    }
  }
}

void CloseLaterGateways(v1::ProposalState& proposal) {
  for (v1::GatewayState& gateway : *proposal.mutable_gateway_states()) {
    if (gateway.status() == v1::GATEWAY_PENDING || gateway.status() == v1::GATEWAY_AWAITING_ASSURANCE) {
      gateway.set_status(v1::GATEWAY_CLOSED);
    }
  }
}

// Opens gateway `index` (at record `opened_at`: what opened it): its electorate is fixed now (members, less the
// recused and the subject of a removal). If the charter requires an assurance
// opinion that has not been recorded, it waits for it instead.
void OpenGateway(Decision& d, v1::ProposalState& proposal, int index, uint64_t opened_at) {
  proposal.set_current_gateway(index);
  const v1::Gateway& gateway = proposal.gateways(index);
  v1::GatewayState& gs = *proposal.mutable_gateway_states(index);
  if (!gateway.required_assurance().empty() && !Contains(gs.assurance_bodies(), gateway.required_assurance())) {
    gs.set_status(v1::GATEWAY_AWAITING_ASSURANCE);
    return;
  }
  const v1::CollectiveState* collective = &Existing(d.state, d.state.FindCollective(proposal.collective_id()), proposal.collective_id());
  gs.set_status(v1::GATEWAY_OPEN);
  gs.set_opened_at(opened_at);
  gs.set_opened_time_unix_ns(d.now());
  if (gateway.deadline_seconds() > 0) {
    gs.set_deadline_unix_ns(d.now() + gateway.deadline_seconds() * kNanosPerSecond);
  }
  gs.clear_electorate();
  const std::string& removal_subject =
      proposal.submission().has_remove_member() ? proposal.submission().remove_member().org_id() : "";
  for (const std::string& member : collective->members()) {
    if (!Contains(proposal.recused(), member) && member != removal_subject) gs.add_electorate(member);
  }
}

void Adopt(Decision& d, v1::ProposalState& proposal);
void Reject(Decision& d, v1::ProposalState& proposal, const std::string& reason, const std::string& caller,
            const std::vector<std::string>& overruled);

// Locks the current gateway, then opens the next one or adopts the decision.
void PassGateway(Decision& d, v1::ProposalState& proposal, const std::string& caller,
                 const std::vector<std::string>& overruled, const std::string& rationale) {
  const int index = proposal.current_gateway();
  v1::GatewayState& gs = *proposal.mutable_gateway_states(index);
  gs.set_status(v1::GATEWAY_PASSED);
  gs.set_decided_at(d.next_system_position());
  *gs.mutable_tally() = MakeTally(gs, proposal.recused_size());
  gs.set_caller(caller);
  for (const std::string& org : overruled) gs.add_overruled(org);
  gs.set_call_rationale(rationale);
  EndStandingVetoes(proposal, gs.gateway_id(), v1::VETO_OVERRULED, gs.decided_at());
  proposal.add_history(d.next_system_position());

  v1::EventBody& event = d.Emit();
  v1::GatewayPassed* passed = event.mutable_gateway_passed();
  passed->set_proposal_id(proposal.proposal_id());
  passed->set_gateway_id(gs.gateway_id());
  *passed->mutable_tally() = gs.tally();
  passed->set_caller(caller);
  for (const std::string& org : overruled) passed->add_overruled(org);
  passed->set_cause_position(d.at());

  if (index + 1 < proposal.gateways_size()) {
    OpenGateway(d, proposal, index + 1, gs.decided_at());
  } else {
    Adopt(d, proposal);
  }
}

void Reject(Decision& d, v1::ProposalState& proposal, const std::string& reason, const std::string& caller,
            const std::vector<std::string>& overruled) {
  v1::GatewayState& gs = *proposal.mutable_gateway_states(proposal.current_gateway());
  gs.set_status(v1::GATEWAY_FAILED);
  gs.set_decided_at(d.next_system_position());
  *gs.mutable_tally() = MakeTally(gs, proposal.recused_size());
  gs.set_caller(caller);
  for (const std::string& org : overruled) gs.add_overruled(org);
  EndStandingVetoes(proposal, gs.gateway_id(), v1::VETO_UPHELD, gs.decided_at());
  CloseLaterGateways(proposal);
  proposal.set_status(v1::PROPOSAL_REJECTED);
  proposal.set_ended_at(d.next_system_position());
  proposal.add_history(d.next_system_position());

  v1::ProposalRejected* rejected = d.Emit().mutable_proposal_rejected();
  rejected->set_proposal_id(proposal.proposal_id());
  rejected->set_reason(reason);
  rejected->set_caller(caller);
  for (const std::string& org : overruled) rejected->add_overruled(org);
}

// Reopens a locked gateway of another proposal after an adopted revisit: a
// new attempt, with a new electorate, and every later gateway pending again.
void Reopen(Decision& d, const v1::RevisitGateway& revisit) {
  v1::ProposalState target = Existing(d.state, d.state.FindProposal(revisit.proposal_id()), revisit.proposal_id());
  const int index = GatewayIndex(target, revisit.gateway_id());
  // The target may have been decided, or the gateway already reopened, since
  // the revisit was submitted: a closed proposal stays closed (an adopted
  // decision binds) and only a locked gateway is reopened.
  if (target.status() != v1::PROPOSAL_OPEN || index < 0 ||
      target.gateway_states(index).status() != v1::GATEWAY_PASSED) {
    return;
  }
  for (int i = index; i < target.gateway_states_size(); ++i) {
    const std::string& gateway_id = target.gateways(i).id();
    EndStandingVetoes(target, gateway_id, v1::VETO_SUPERSEDED, d.at());
    v1::GatewayState& attempt = *target.mutable_gateway_states(i);
    if (attempt.status() != v1::GATEWAY_PENDING) *target.add_superseded() = attempt;  // kept for the record
    v1::GatewayState fresh;
    fresh.set_gateway_id(gateway_id);
    attempt = fresh;
  }
  target.add_history(d.at());
  OpenGateway(d, target, index, d.at());
  d.state.PutProposal(std::move(target));
}

void Adopt(Decision& d, v1::ProposalState& proposal) {
  proposal.set_status(v1::PROPOSAL_ADOPTED);
  proposal.set_current_gateway(-1);
  proposal.set_ended_at(d.next_system_position());
  proposal.add_history(d.next_system_position());

  v1::DecisionAdopted* adopted = d.Emit().mutable_decision_adopted();
  adopted->set_proposal_id(proposal.proposal_id());
  for (const v1::ImpactState& impact : proposal.impacts()) {
    v1::TaperSchedule* taper = adopted->add_tapers();
    taper->set_org_id(impact.org_id());
    taper->set_annual_impact_pence(impact.annual_impact_pence());
    for (int64_t pence : TaperSchedule(proposal.charter().taper(), impact.annual_impact_pence(), RulesVersion(d.state))) {
      taper->add_support_by_year_pence(pence);
    }
  }
  *proposal.mutable_adoption() = *adopted;

  const v1::ProposalSubmitted& submission = proposal.submission();
  if (submission.action_case() == v1::ProposalSubmitted::ACTION_NOT_SET) return;
  if (submission.has_revisit()) {
    Reopen(d, submission.revisit());  // recorded in the target's history
    return;
  }
  v1::CollectiveState collective = Existing(d.state, d.state.FindCollective(proposal.collective_id()), proposal.collective_id());
  proposal.add_history(d.next_system_position());
  switch (submission.action_case()) {
    case v1::ProposalSubmitted::kAmendCharter: {
      *collective.mutable_charter() = submission.amend_charter();
      collective.set_charter_digest(CharterDigest(submission.amend_charter()));
      collective.set_charter_version(collective.charter_version() + 1);
      v1::CharterAmended* amended = d.Emit().mutable_charter_amended();
      amended->set_collective_id(collective.collective_id());
      amended->set_version(collective.charter_version());
      *amended->mutable_charter() = collective.charter();
      amended->set_charter_digest(collective.charter_digest());
      break;
    }
    case v1::ProposalSubmitted::kAdmitMember: {
      const std::string& org = submission.admit_member().org_id();
      if (!Contains(collective.members(), org)) collective.add_members(org);
      Erase(collective.mutable_former_members(), org);
      v1::MemberAdmitted* admitted = d.Emit().mutable_member_admitted();
      admitted->set_collective_id(collective.collective_id());
      admitted->set_org_id(org);
      break;
    }
    case v1::ProposalSubmitted::kRemoveMember: {
      const std::string& org = submission.remove_member().org_id();
      Erase(collective.mutable_members(), org);
      if (!Contains(collective.former_members(), org)) collective.add_former_members(org);
      v1::MemberRemoved* removed = d.Emit().mutable_member_removed();
      removed->set_collective_id(collective.collective_id());
      removed->set_org_id(org);
      removed->set_reason(submission.remove_member().reason());
      break;
    }
    default:
      break;
  }
  d.state.PutCollective(std::move(collective));
}

// After any change to the open gateway: pass it if its rule is met; reject
// the proposal if its final gateway can no longer pass. A unanimity gateway
// that cannot pass is vetoed: it stays open until the objector changes its
// position, a call, a lapse or a withdrawal.
void Decide(Decision& d, v1::ProposalState& proposal) {
  const int index = proposal.current_gateway();
  if (proposal.status() != v1::PROPOSAL_OPEN || index < 0) return;
  const v1::GatewayState& gs = proposal.gateway_states(index);
  if (gs.status() != v1::GATEWAY_OPEN) return;
  const v1::DecisionRule rule = Normalised(proposal.gateways(index).rule());
  v1::Tally tally = MakeTally(gs, 0);
  Count count{tally.electorate(), tally.assent(), tally.object(), tally.abstain()};
  switch (Evaluate(rule, count)) {
    case Verdict::kPass:
      PassGateway(d, proposal, "", {}, "");
      break;
    case Verdict::kCannotPass:
      if (rule.kind() != v1::UNANIMITY && index + 1 == proposal.gateways_size()) {
        Reject(d, proposal, absl::StrCat("the final gateway ", gs.gateway_id(), " cannot pass: ",
                                         tally.assent(), " assent, ", tally.object(), " object, ",
                                         tally.abstain(), " abstain of ", tally.electorate()),
               "", {});
      }
      break;
    case Verdict::kPending:
      break;
  }
}

// ------------------------------------------------------------------ events

absl::Status CollectiveProposed(Decision& d) {
  const auto& event = d.envelope.body.collective_proposed();
  if (auto s = CheckId("collective id", event.collective_id()); !s.ok()) return s;
  if (d.state.FindCollective(event.collective_id()) != nullptr) {
    return RuleBroken(v1::COLLECTIVE_EXISTS, absl::StrCat("collective ", event.collective_id(), " already exists"));
  }
  if (auto s = ValidateCharter(d.state, event.charter()); !s.ok()) return s;
  v1::CollectiveState collective;
  collective.set_collective_id(event.collective_id());
  collective.set_proposed_by(d.author());
  collective.set_proposed_at(d.at());
  *collective.mutable_charter() = event.charter();
  collective.set_charter_digest(CharterDigest(event.charter()));
  d.state.PutCollective(std::move(collective));
  return absl::OkStatus();
}

absl::Status CharterAccepted(Decision& d) {
  const auto& event = d.envelope.body.charter_accepted();
  const v1::CollectiveState* found = d.state.FindCollective(event.collective_id());
  if (found == nullptr) return RuleBroken(v1::UNKNOWN_COLLECTIVE, absl::StrCat("no collective ", event.collective_id()));
  v1::CollectiveState collective = *found;
  const bool founding = Contains(Founders(collective), d.author());
  // Before formation, founding members accept; after it, admitted members do.
  if (!collective.formed() ? !founding : !Contains(collective.members(), d.author())) {
    return RuleBroken(v1::NOT_A_FOUNDING_MEMBER,
                      absl::StrCat(d.author(), " is not ", collective.formed() ? "a member" : "a founding member",
                                   " of ", collective.collective_id()));
  }
  if (Contains(collective.accepted_by(), d.author())) {
    return RuleBroken(v1::ALREADY_ACCEPTED, absl::StrCat(d.author(), " has already accepted the charter of ",
                                                         collective.collective_id()));
  }
  if (event.charter_digest() != collective.charter_digest()) {
    return RuleBroken(v1::CHARTER_DIGEST_MISMATCH,
                      absl::StrCat("the digest accepted is not that of the charter of ", collective.collective_id(),
                                   " (version ", std::max(1u, collective.charter_version()), ")"));
  }
  collective.add_accepted_by(d.author());
  FormIfAccepted(d, collective);
  d.state.PutCollective(std::move(collective));
  return absl::OkStatus();
}

// Exact text under rules version 1; from version 2 case and punctuation do
// not matter (NormalisedCategory), and a category of none never matches.
bool IsReserved(const State& state, const v1::Charter& charter, const std::string& category) {
  if (!RulesAtLeast(state, kRulesV2)) return Contains(charter.reserved_categories(), category);
  const std::string normalised = NormalisedCategory(category);
  if (normalised.empty()) return false;
  return std::any_of(charter.reserved_categories().begin(), charter.reserved_categories().end(),
                     [&](const std::string& reserved) { return NormalisedCategory(reserved) == normalised; });
}

absl::Status ProposalSubmitted(Decision& d) {
  const auto& event = d.envelope.body.proposal_submitted();
  if (auto s = CheckId("proposal id", event.proposal_id()); !s.ok()) return s;
  if (d.state.FindProposal(event.proposal_id()) != nullptr) {
    return RuleBroken(v1::PROPOSAL_EXISTS, absl::StrCat("proposal ", event.proposal_id(), " already exists"));
  }
  auto formed = FormedCollective(d.state, event.collective_id());
  if (!formed.ok()) return formed.status();
  const v1::CollectiveState* collective = *formed;
  if (auto s = RequireMember(*collective, d.author()); !s.ok()) return s;
  const v1::Charter& charter = collective->charter();
  if (RulesAtLeast(d.state, kRulesV2) &&
      std::any_of(event.category().begin(), event.category().end(), [](char c) { return (c & 0x80) != 0; })) {
    return Malformed("a proposal's category is ASCII (a look-alike letter could hide a reserved one)");
  }
  if (IsReserved(d.state, charter, event.category())) {
    return RuleBroken(v1::RESERVED_CATEGORY,
                      absl::StrCat("category \"", event.category(), "\" is reserved: collective ",
                                   collective->collective_id(), " may not decide it"));
  }

  v1::ProposalState proposal;
  proposal.set_proposal_id(event.proposal_id());
  proposal.set_collective_id(event.collective_id());
  proposal.set_proposer(d.author());
  proposal.set_submitted_at(d.at());
  *proposal.mutable_submission() = event;
  *proposal.mutable_charter() = charter;
  proposal.set_charter_version(collective->charter_version());
  proposal.add_history(d.at());

  // Ordinary decisions pass the charter's gateways; changes to the collective
  // itself pass one gateway under the amendment (or revisit) rule.
  v1::Gateway single;
  single.mutable_rule()->CopyFrom(charter.amendment_rule());
  // Rules version 2: those the charter names for changes to the collective
  // call them, not the final gateway's callers (revisits have their own).
  single.mutable_callers()->CopyFrom(RulesAtLeast(d.state, kRulesV2)
                                         ? charter.amendment_callers()
                                         : charter.gateways(charter.gateways_size() - 1).callers());
  switch (event.action_case()) {
    case v1::ProposalSubmitted::ACTION_NOT_SET:
      *proposal.mutable_gateways() = charter.gateways();
      break;
    case v1::ProposalSubmitted::kAmendCharter: {
      v1::Charter amended = event.amend_charter();
      if (auto s = ValidateCharter(d.state, amended); !s.ok()) return s;
      single.set_id("amendment");
      break;
    }
    case v1::ProposalSubmitted::kAdmitMember: {
      const std::string& org = event.admit_member().org_id();
      const v1::OrganisationState* found = d.state.FindOrganisation(org);
      if (found == nullptr || !found->merged_into().empty()) {
        return RuleBroken(v1::UNKNOWN_ORGANISATION, absl::StrCat("no active organisation ", org, " to admit"));
      }
      if (Contains(collective->members(), org)) {
        return RuleBroken(v1::ALREADY_MEMBER, absl::StrCat(org, " is already a member of ", collective->collective_id()));
      }
      single.set_id("admission");
      break;
    }
    case v1::ProposalSubmitted::kRemoveMember:
      if (auto s = RequireMember(*collective, event.remove_member().org_id()); !s.ok()) return s;
      single.set_id("removal");
      break;
    case v1::ProposalSubmitted::kRevisit: {
      const auto& revisit = event.revisit();
      if (!charter.has_revisit_rule()) {
        return RuleBroken(v1::REVISIT_NOT_ALLOWED, absl::StrCat("the charter of ", collective->collective_id(),
                                                                " does not allow a locked gateway to be revisited"));
      }
      auto target = FindProposal(d.state, revisit.proposal_id());
      if (!target.ok()) return target.status();
      if (target->collective_id() != collective->collective_id()) {
        return RuleBroken(v1::UNKNOWN_PROPOSAL, absl::StrCat("proposal ", revisit.proposal_id(), " is not of ",
                                                             collective->collective_id()));
      }
      if (auto s = RequireOpen(*target); !s.ok()) return s;
      int index = GatewayIndex(*target, revisit.gateway_id());
      if (index < 0 || target->gateway_states(index).status() != v1::GATEWAY_PASSED) {
        return RuleBroken(v1::GATEWAY_NOT_OPEN, absl::StrCat("gateway ", revisit.gateway_id(), " of ",
                                                             revisit.proposal_id(), " is not locked"));
      }
      single.set_id("revisit");
      single.mutable_rule()->CopyFrom(charter.revisit_rule());
      single.mutable_callers()->CopyFrom(charter.revisit_callers());
      break;
    }
    default:
      return Malformed("unknown proposal action");
  }
  if (event.action_case() != v1::ProposalSubmitted::ACTION_NOT_SET) *proposal.add_gateways() = single;
  for (const v1::Gateway& gateway : proposal.gateways()) {
    proposal.add_gateway_states()->set_gateway_id(gateway.id());
  }
  // The collective's entry is not rewritten: the proposal is listed under it
  // by the "cp/" index PutProposal writes (rules/state.h).
  OpenGateway(d, proposal, 0, d.at());
  Decide(d, proposal);
  d.state.PutProposal(std::move(proposal));
  return absl::OkStatus();
}

absl::Status InterestDeclared(Decision& d) {
  const auto& event = d.envelope.body.interest_declared();
  auto proposal = FindProposal(d.state, event.proposal_id());
  if (!proposal.ok()) return proposal.status();
  if (auto s = RequireOpen(*proposal); !s.ok()) return s;
  const v1::CollectiveState* collective =
      &Existing(d.state, d.state.FindCollective(proposal->collective_id()), proposal->collective_id());
  if (auto s = RequireMember(*collective, d.author()); !s.ok()) return s;
  if (Contains(proposal->recused(), d.author())) {
    return RuleBroken(v1::RECUSED, absl::StrCat(d.author(), " has already declared an interest in ", event.proposal_id()));
  }
  v1::GatewayState& gs = *proposal->mutable_gateway_states(proposal->current_gateway());
  if (LatestVotes(gs).contains(d.author())) {
    return RuleBroken(v1::ALREADY_VOTED, absl::StrCat(d.author(), " has voted on the open gateway ", gs.gateway_id(),
                                                      "; an interest must be declared before voting"));
  }
  proposal->add_recused(d.author());
  Erase(gs.mutable_electorate(), d.author());
  proposal->add_history(d.at());
  Decide(d, *proposal);
  d.state.PutProposal(*std::move(proposal));
  return absl::OkStatus();
}

absl::Status VoteCast(Decision& d) {
  const auto& event = d.envelope.body.vote_cast();
  // Read in place and changed in place (State::EditProposal): a vote copies
  // none of the proposal's votes, history or vetoes.
  const v1::ProposalState* proposal = d.state.FindProposal(event.proposal_id());
  if (proposal == nullptr) return RuleBroken(v1::UNKNOWN_PROPOSAL, absl::StrCat("no proposal ", event.proposal_id()));
  if (event.position() != v1::ASSENT && event.position() != v1::OBJECT && event.position() != v1::ABSTAIN) {
    return RuleBroken(v1::INVALID_POSITION, "a vote must assent, object or abstain");
  }
  const int index = GatewayIndex(*proposal, event.gateway_id());
  if (index < 0) {
    return RuleBroken(v1::UNKNOWN_GATEWAY, absl::StrCat("proposal ", event.proposal_id(), " has no gateway ", event.gateway_id()));
  }
  const v1::GatewayState& target = proposal->gateway_states(index);
  // The heart of it: an agreed stage cannot be reopened by one member.
  if (target.status() == v1::GATEWAY_PASSED) {
    return RuleBroken(v1::GATEWAY_LOCKED,
                      absl::StrCat("gateway ", event.gateway_id(), " of ", event.proposal_id(), " was passed at position ",
                                   target.decided_at(), " and is locked: no member can change its position on it"));
  }
  if (auto s = RequireOpen(*proposal); !s.ok()) return s;
  if (index != proposal->current_gateway() || target.status() != v1::GATEWAY_OPEN) {
    return RuleBroken(v1::GATEWAY_NOT_OPEN, absl::StrCat("gateway ", event.gateway_id(), " of ", event.proposal_id(),
                                                         " is not open (", v1::GatewayStatus_Name(target.status()), ")"));
  }
  if (Contains(proposal->recused(), d.author())) {
    return RuleBroken(v1::RECUSED, absl::StrCat(d.author(), " declared an interest in ", event.proposal_id(),
                                                " and is recused from its votes"));
  }
  if (!Contains(target.electorate(), d.author())) {
    const v1::CollectiveState* collective =
        &Existing(d.state, d.state.FindCollective(proposal->collective_id()), proposal->collective_id());
    if (!Contains(collective->members(), d.author())) {
      return RuleBroken(v1::NOT_A_MEMBER, absl::StrCat(d.author(), " is not a member of ", collective->collective_id()));
    }
    return RuleBroken(v1::NOT_ELIGIBLE, absl::StrCat(d.author(), " was not in the electorate of gateway ",
                                                     event.gateway_id(), " when it opened"));
  }
  if (RulesAtLeast(d.state, kRulesV3)) {
    const int votes = static_cast<int>(std::count_if(target.votes().begin(), target.votes().end(),
                                                     [&](const v1::VoteRecord& v) { return v.org_id() == d.author(); }));
    if (votes > kMaxPositionChanges) {
      return RuleBroken(v1::POSITION_CHANGES_EXHAUSTED,
                        absl::StrCat(d.author(), " has changed its position on gateway ", event.gateway_id(), " of ",
                                     event.proposal_id(), " ", kMaxPositionChanges, " times, the most a member may"));
    }
  }
  d.state.EditProposal(event.proposal_id(), [&](v1::ProposalState& edited) {
    v1::GatewayState& gs = *edited.mutable_gateway_states(index);
    v1::VoteRecord* vote = gs.add_votes();
    vote->set_org_id(d.author());
    vote->set_position(event.position());
    vote->set_rationale(event.rationale());
    vote->set_at(d.at());
    vote->set_time_unix_ns(d.now());
    edited.add_history(d.at());

    if (Normalised(edited.gateways(index).rule()).kind() == v1::UNANIMITY) {
      bool standing = false;
      for (v1::VetoState& veto : *edited.mutable_vetoes()) {
        if (veto.outcome() == v1::VETO_STANDING && veto.gateway_id() == gs.gateway_id() && veto.org_id() == d.author()) {
          standing = true;
          if (event.position() != v1::OBJECT) {
            veto.set_outcome(v1::VETO_WITHDRAWN);
            veto.set_ended_at(d.at());
          }
        }
      }
      if (event.position() == v1::OBJECT && !standing) {
        v1::VetoState* veto = edited.add_vetoes();
        veto->set_org_id(d.author());
        veto->set_gateway_id(gs.gateway_id());
        veto->set_at(d.at());
        veto->set_time_unix_ns(d.now());
        veto->set_rationale(event.rationale());
      }
    }
    Decide(d, edited);
  });
  return absl::OkStatus();
}

absl::Status ImpactDeclared(Decision& d) {
  const auto& event = d.envelope.body.impact_declared();
  auto proposal = FindProposal(d.state, event.proposal_id());
  if (!proposal.ok()) return proposal.status();
  if (proposal->status() == v1::PROPOSAL_ADOPTED) {
    return RuleBroken(v1::FINAL_GATEWAY_LOCKED, absl::StrCat("proposal ", event.proposal_id(),
                                                             " was adopted; impacts are declared before the final gateway locks"));
  }
  if (auto s = RequireOpen(*proposal); !s.ok()) return s;
  if (auto s = RequireMember(Existing(d.state, d.state.FindCollective(proposal->collective_id()), proposal->collective_id()),
                             d.author());
      !s.ok()) {
    return s;
  }
  if (event.annual_impact_pence() <= 0) return Malformed("annual_impact_pence must be positive");
  if (RulesAtLeast(d.state, kRulesV2) && event.annual_impact_pence() > kMaxAnnualImpactPence) {
    return Malformed(absl::StrCat("annual_impact_pence ", event.annual_impact_pence(),
                                  " is above the most a member may declare (", kMaxAnnualImpactPence, ")"));
  }
  auto* impacts = proposal->mutable_impacts();
  impacts->erase(std::remove_if(impacts->begin(), impacts->end(),
                                [&](const v1::ImpactState& i) { return i.org_id() == d.author(); }),
                 impacts->end());
  v1::ImpactState* impact = proposal->add_impacts();
  impact->set_org_id(d.author());
  impact->set_annual_impact_pence(event.annual_impact_pence());
  impact->set_description(event.description());
  impact->set_at(d.at());
  proposal->add_history(d.at());
  d.state.PutProposal(*std::move(proposal));
  return absl::OkStatus();
}

// Rules version 2: a call needs a real deadlock. Any gateway that lapsed; a
// unanimity gateway where an elector other than the caller objects once every
// elector other than the caller has voted (a caller that sits in the
// electorate cannot make the deadlock by objecting itself). A majority or
// supermajority gateway that everyone voted on decides itself.
absl::Status RequireDeadlock(const v1::GatewayState& gs, const v1::DecisionRule& raw_rule, const std::string& caller) {
  if (gs.status() == v1::GATEWAY_LAPSED) return absl::OkStatus();
  const v1::DecisionRule rule = Normalised(raw_rule);
  const std::string prefix = absl::StrCat("gateway ", gs.gateway_id(), " is not deadlocked: ");
  if (rule.kind() != v1::UNANIMITY) {
    return RuleBroken(v1::NO_DEADLOCK, absl::StrCat(prefix, "a ", v1::RuleKind_Name(rule.kind()),
                                                    " gateway decides itself once everyone has voted; it can be "
                                                    "called only after it lapsed"));
  }
  auto latest = LatestVotes(gs);
  bool objection = false;
  std::vector<std::string> waiting;
  for (const std::string& elector : gs.electorate()) {
    if (elector == caller) continue;
    auto it = latest.find(elector);
    if (it == latest.end()) {
      waiting.push_back(elector);
    } else if (it->second->position() == v1::OBJECT) {
      objection = true;
    }
  }
  if (!objection) {
    return RuleBroken(v1::NO_DEADLOCK, absl::StrCat(prefix, "no elector other than the caller objects, and it has "
                                                    "not lapsed"));
  }
  if (!waiting.empty()) {
    return RuleBroken(v1::NO_DEADLOCK, absl::StrCat(prefix, "not every elector other than the caller has voted (",
                                                    absl::StrJoin(waiting, ", "), " to vote), and it has not lapsed"));
  }
  return absl::OkStatus();
}

absl::Status DecisionCalled(Decision& d) {
  const auto& event = d.envelope.body.decision_called();
  auto proposal = FindProposal(d.state, event.proposal_id());
  if (!proposal.ok()) return proposal.status();
  const int index = GatewayIndex(*proposal, event.gateway_id());
  if (index < 0) {
    return RuleBroken(v1::UNKNOWN_GATEWAY, absl::StrCat("proposal ", event.proposal_id(), " has no gateway ", event.gateway_id()));
  }
  const v1::GatewayState& gs = proposal->gateway_states(index);
  if (gs.status() == v1::GATEWAY_PASSED) {
    return RuleBroken(v1::GATEWAY_LOCKED, absl::StrCat("gateway ", event.gateway_id(), " was passed at position ",
                                                       gs.decided_at(), " and is locked"));
  }
  if (auto s = RequireOpen(*proposal); !s.ok()) return s;
  if (index != proposal->current_gateway() ||
      (gs.status() != v1::GATEWAY_OPEN && gs.status() != v1::GATEWAY_LAPSED)) {
    return RuleBroken(v1::GATEWAY_NOT_OPEN, absl::StrCat("gateway ", event.gateway_id(), " is not open"));
  }
  if (!Contains(proposal->gateways(index).callers(), d.author())) {
    return RuleBroken(v1::NOT_A_CALLER, absl::StrCat(d.author(), " is not named by the charter to call gateway ",
                                                     event.gateway_id()));
  }
  if (event.outcome() != v1::PASS && event.outcome() != v1::FAIL) {
    return Missing("a called decision must pass or fail the gateway");
  }
  if (event.rationale().empty()) return RuleBroken(v1::RATIONALE_REQUIRED, "a called decision must give its rationale");
  std::vector<std::string> objectors = ElectorsHolding(gs, v1::OBJECT);
  if (RulesAtLeast(d.state, kRulesV2)) {
    if (auto s = RequireDeadlock(gs, proposal->gateways(index).rule(), d.author()); !s.ok()) return s;
  } else if (gs.status() != v1::GATEWAY_LAPSED && objectors.empty()) {
    return RuleBroken(v1::NO_DEADLOCK, absl::StrCat("gateway ", event.gateway_id(),
                                                    " is not deadlocked: nobody objects and it has not lapsed"));
  }
  proposal->add_history(d.at());
  proposal->mutable_gateway_states(index)->set_called_at(d.at());
  if (event.outcome() == v1::PASS) {
    PassGateway(d, *proposal, d.author(), objectors, event.rationale());
  } else {
    v1::GatewayState& mutable_gs = *proposal->mutable_gateway_states(index);
    mutable_gs.set_call_rationale(event.rationale());
    Reject(d, *proposal, absl::StrCat("called by ", d.author(), ": ", event.rationale()), d.author(),
           ElectorsHolding(gs, v1::ASSENT));
  }
  d.state.PutProposal(*std::move(proposal));
  return absl::OkStatus();
}

absl::Status ProposalWithdrawn(Decision& d) {
  const auto& event = d.envelope.body.proposal_withdrawn();
  auto proposal = FindProposal(d.state, event.proposal_id());
  if (!proposal.ok()) return proposal.status();
  if (auto s = RequireOpen(*proposal); !s.ok()) return s;
  if (proposal->proposer() != d.author()) {
    return RuleBroken(v1::NOT_PROPOSER, absl::StrCat("only the proposer ", proposal->proposer(), " may withdraw ",
                                                     event.proposal_id()));
  }
  for (const v1::GatewayState& gs : proposal->gateway_states()) {
    if (gs.status() == v1::GATEWAY_PASSED) {
      return RuleBroken(v1::WITHDRAWAL_TOO_LATE,
                        absl::StrCat("gateway ", gs.gateway_id(), " has passed: the proposal belongs to the collective"));
    }
  }
  proposal->set_status(v1::PROPOSAL_WITHDRAWN);
  proposal->set_ended_at(d.at());
  EndStandingVetoes(*proposal, "", v1::VETO_PROPOSAL_WITHDRAWN, d.at());
  for (v1::GatewayState& gs : *proposal->mutable_gateway_states()) {
    if (gs.status() == v1::GATEWAY_OPEN || gs.status() == v1::GATEWAY_LAPSED) gs.set_status(v1::GATEWAY_CLOSED);
  }
  CloseLaterGateways(*proposal);
  proposal->add_history(d.at());
  d.state.PutProposal(*std::move(proposal));
  return absl::OkStatus();
}

absl::Status AssuranceRecorded(Decision& d) {
  const auto& event = d.envelope.body.assurance_recorded();
  auto proposal = FindProposal(d.state, event.proposal_id());
  if (!proposal.ok()) return proposal.status();
  if (!Contains(proposal->charter().assurance_bodies(), d.author())) {
    return RuleBroken(v1::NOT_AN_ASSURANCE_BODY, absl::StrCat(d.author(), " is not an assurance body of the charter"));
  }
  const int index = GatewayIndex(*proposal, event.gateway_id());
  if (index < 0) {
    return RuleBroken(v1::UNKNOWN_GATEWAY, absl::StrCat("proposal ", event.proposal_id(), " has no gateway ", event.gateway_id()));
  }
  if (auto s = RequireOpen(*proposal); !s.ok()) return s;
  if (!v1::Rating_IsValid(event.rating())) return Malformed("unknown assurance rating");
  v1::GatewayState& gs = *proposal->mutable_gateway_states(index);
  gs.add_assurance_positions(d.at());
  gs.add_assurance_bodies(d.author());
  proposal->add_history(d.at());
  if (index == proposal->current_gateway() && gs.status() == v1::GATEWAY_AWAITING_ASSURANCE &&
      proposal->gateways(index).required_assurance() == d.author()) {
    OpenGateway(d, *proposal, index, d.at());
  }
  d.state.PutProposal(*std::move(proposal));
  return absl::OkStatus();
}

absl::Status MemberWithdrew(Decision& d) {
  const auto& event = d.envelope.body.member_withdrew();
  auto formed = FormedCollective(d.state, event.collective_id());
  if (!formed.ok()) return formed.status();
  v1::CollectiveState collective = **formed;
  if (auto s = RequireMember(collective, d.author()); !s.ok()) return s;
  // Adopted decisions still bind it; open gateways keep their electorates.
  Erase(collective.mutable_members(), d.author());
  collective.add_former_members(d.author());
  d.state.PutCollective(std::move(collective));
  return absl::OkStatus();
}

// ------------------------------------------------------------------ mergers

// Rules version 2. A collective not yet formed with `merged` among its
// founders: the successor's acceptance stands for merged's (merged's own does
// not carry), and if it has already accepted the collective forms now.
void PassFoundingSeats(Decision& d, const std::string& merged, const std::string& successor) {
  std::vector<std::string> ids;
  d.state.ForEachCollective([&](const v1::CollectiveState& collective) {
    if (!collective.formed() && Contains(Founders(collective), merged)) ids.push_back(collective.collective_id());
  });
  std::sort(ids.begin(), ids.end());  // the auditor replays the same order
  for (const std::string& id : ids) {
    v1::CollectiveState collective = Existing(d.state, d.state.FindCollective(id), id);
    google::protobuf::RepeatedPtrField<std::string> founders = Founders(collective);
    collective.clear_founders();
    for (const std::string& founder : founders) {
      const std::string& now = founder == merged ? successor : founder;
      if (!Contains(collective.founders(), now)) collective.add_founders(now);
    }
    FormIfAccepted(d, collective);
    d.state.PutCollective(std::move(collective));
  }
}

// Rules version 2. In the open (or lapsed, still callable) gateway of every
// open proposal whose electorate holds `merged`, the successor takes the
// seat and votes afresh; where it already sits, or may not (recused, or the
// subject of the removal), the seat is vacated: one organisation, one vote.
// Merged's standing veto ends; the gateway is decided again, since a vacated
// seat can complete its tally.
void PassOpenSeats(Decision& d, const std::string& merged, const std::string& successor) {
  auto holds_seat = [&](const v1::ProposalState& proposal) {
    if (proposal.status() != v1::PROPOSAL_OPEN || proposal.current_gateway() < 0) return false;
    const v1::GatewayState& gs = proposal.gateway_states(proposal.current_gateway());
    return (gs.status() == v1::GATEWAY_OPEN || gs.status() == v1::GATEWAY_LAPSED) &&
           Contains(gs.electorate(), merged);
  };
  std::vector<std::string> ids;
  d.state.ForEachProposal([&](const v1::ProposalState& proposal) {
    if (holds_seat(proposal)) ids.push_back(proposal.proposal_id());
  });
  std::sort(ids.begin(), ids.end());  // the auditor replays the same order
  for (const std::string& id : ids) {
    // Read afresh: deciding an earlier one may have changed it (a revisit).
    v1::ProposalState proposal = Existing(d.state, d.state.FindProposal(id), id);
    if (!holds_seat(proposal)) continue;
    v1::GatewayState& gs = *proposal.mutable_gateway_states(proposal.current_gateway());
    const v1::ProposalSubmitted& submission = proposal.submission();
    const bool barred = Contains(proposal.recused(), successor) ||
                        (submission.has_remove_member() && submission.remove_member().org_id() == successor);
    v1::SeatChange* change = gs.add_seat_changes();
    change->set_from(merged);
    change->set_at(d.at());
    if (barred || Contains(gs.electorate(), successor)) {
      Erase(gs.mutable_electorate(), merged);
    } else {
      for (std::string& elector : *gs.mutable_electorate()) {
        if (elector == merged) elector = successor;
      }
      change->set_to(successor);
    }
    for (v1::VetoState& veto : *proposal.mutable_vetoes()) {
      if (veto.outcome() == v1::VETO_STANDING && veto.gateway_id() == gs.gateway_id() && veto.org_id() == merged) {
        veto.set_outcome(v1::VETO_MERGED);
        veto.set_ended_at(d.at());
      }
    }
    proposal.add_history(d.at());
    Decide(d, proposal);
    d.state.PutProposal(std::move(proposal));
  }
}

}  // namespace

bool IsGovernanceEvent(const v1::EventBody& body) {
  switch (body.payload_case()) {
    case v1::EventBody::kCollectiveProposed:
    case v1::EventBody::kCharterAccepted:
    case v1::EventBody::kProposalSubmitted:
    case v1::EventBody::kInterestDeclared:
    case v1::EventBody::kVoteCast:
    case v1::EventBody::kImpactDeclared:
    case v1::EventBody::kDecisionCalled:
    case v1::EventBody::kProposalWithdrawn:
    case v1::EventBody::kAssuranceRecorded:
    case v1::EventBody::kMemberWithdrew:
      return true;
    default:
      return false;
  }
}

absl::Status ApplyGovernance(State& state, const Envelope& envelope, const Context& context, Effects* effects) {
  Decision d{state, envelope, context, effects};
  switch (envelope.body.payload_case()) {
    case v1::EventBody::kCollectiveProposed: return CollectiveProposed(d);
    case v1::EventBody::kCharterAccepted: return CharterAccepted(d);
    case v1::EventBody::kProposalSubmitted: return ProposalSubmitted(d);
    case v1::EventBody::kInterestDeclared: return InterestDeclared(d);
    case v1::EventBody::kVoteCast: return VoteCast(d);
    case v1::EventBody::kImpactDeclared: return ImpactDeclared(d);
    case v1::EventBody::kDecisionCalled: return DecisionCalled(d);
    case v1::EventBody::kProposalWithdrawn: return ProposalWithdrawn(d);
    case v1::EventBody::kAssuranceRecorded: return AssuranceRecorded(d);
    case v1::EventBody::kMemberWithdrew: return MemberWithdrew(d);
    default: return Malformed("not a governance event");
  }
}

void TransferMemberships(State& state, const std::string& merged, const std::string& successor,
                         const Context& context, Effects* effects) {
  std::vector<std::string> ids;
  state.ForEachCollective([&](const v1::CollectiveState& collective) {
    if (Contains(collective.members(), merged)) ids.push_back(collective.collective_id());
  });
  std::sort(ids.begin(), ids.end());  // deterministic order of journal entries
  for (const std::string& id : ids) {
    v1::CollectiveState collective = Existing(state, state.FindCollective(id), id);
    for (std::string& member : *collective.mutable_members()) {
      if (member == merged) member = successor;
    }
    // The successor may already have been a member.
    auto* members = collective.mutable_members();
    absl::flat_hash_set<std::string> seen;
    members->erase(std::remove_if(members->begin(), members->end(),
                                  [&](const std::string& m) { return !seen.insert(m).second; }),
                   members->end());
    collective.add_former_members(merged);
    state.PutCollective(std::move(collective));
  }
  if (!RulesAtLeast(state, kRulesV2)) return;
  const Envelope none;  // what follows is the merger's consequence, no member's act
  Decision d{state, none, context, effects};
  PassFoundingSeats(d, merged, successor);
  PassOpenSeats(d, merged, successor);
}

}  // namespace ledger::rules::internal

namespace ledger::rules {

std::vector<v1::EventBody> LapseDue(State& state, const Context& context) {
  std::vector<v1::EventBody> lapses;
  while (!state.deadlines().empty() && state.deadlines().begin()->first <= context.ledger_time_unix_ns) {
    const std::string& id = state.deadlines().begin()->second;
    const v1::ProposalState* indexed = state.FindProposal(id);
    if (indexed == nullptr) {  // its read failed or the index is corrupt: the group is refused
      state.ReportMissing(id);
      break;
    }
    v1::ProposalState proposal = *indexed;
    const uint64_t at = context.position + lapses.size();
    v1::GatewayState& gs = *proposal.mutable_gateway_states(proposal.current_gateway());
    gs.set_status(v1::GATEWAY_LAPSED);
    gs.set_decided_at(at);
    internal::EndStandingVetoes(proposal, gs.gateway_id(), v1::VETO_LAPSED, at);
    proposal.add_history(at);
    v1::GatewayLapsed* lapsed = lapses.emplace_back().mutable_gateway_lapsed();
    lapsed->set_proposal_id(proposal.proposal_id());
    lapsed->set_gateway_id(gs.gateway_id());
    state.PutProposal(std::move(proposal));
  }
  return lapses;
}

std::optional<v1::EventBody> RecordRefusal(State& state, const Envelope& envelope, const absl::Status& refusal,
                                           const Context& context, bool* dropped) {
  if (dropped != nullptr) *dropped = false;
  if (refusal.code() != absl::StatusCode::kFailedPrecondition) return std::nullopt;
  const std::string& author = envelope.body.author();
  if (state.FindOrganisation(author) == nullptr) return std::nullopt;
  // Only an organisation's own active key can put a refusal on its record.
  const v1::KeyState* key = state.FindKey(envelope.signed_event.key_id());
  if (key == nullptr || key->org_id() != author || key->revoked()) return std::nullopt;
  v1::RefusalCounter counter;
  if (const v1::RefusalCounter* found = state.FindRefusalCounter(author)) counter = *found;
  counter.set_org_id(author);
  if (context.ledger_time_unix_ns - counter.window_start_unix_ns() >= internal::kNanosPerDay) {
    counter.set_window_start_unix_ns(context.ledger_time_unix_ns);
    counter.set_count(0);
  }
  // From rules version 2 an attempt on a locked gateway is always evidence
  // (of an attempted reversal): it counts, but the allowance never drops it.
  const v1::Reason reason = ReasonOf(refusal);
  const bool always_recorded = RulesAtLeast(state, kRulesV2) &&
                               (reason == v1::GATEWAY_LOCKED || reason == v1::FINAL_GATEWAY_LOCKED);
  if (counter.count() >= kMaxRecordedRefusalsPerDay && !always_recorded) {
    if (dropped != nullptr) *dropped = true;
    return std::nullopt;
  }
  counter.set_count(counter.count() + 1);
  state.PutRefusalCounter(std::move(counter));

  v1::EventBody body;
  v1::SubmissionRefused* refused = body.mutable_submission_refused();
  refused->set_signed_event(envelope.signed_bytes);
  refused->set_reason(reason);
  refused->set_message(std::string(refusal.message()));
  // The proposal the attempt was about keeps it in its history.
  std::string proposal_id;
  const v1::EventBody& attempt = envelope.body;
  if (auto touched = TouchedGateway(attempt)) proposal_id = std::string(touched->proposal_id);
  if (attempt.has_interest_declared()) proposal_id = attempt.interest_declared().proposal_id();
  if (attempt.has_impact_declared()) proposal_id = attempt.impact_declared().proposal_id();
  if (attempt.has_proposal_withdrawn()) proposal_id = attempt.proposal_withdrawn().proposal_id();
  if (const v1::ProposalState* found = state.FindProposal(proposal_id)) {
    v1::ProposalState proposal = *found;
    proposal.add_history(context.position);
    state.PutProposal(std::move(proposal));
  }
  return body;
}

}  // namespace ledger::rules
