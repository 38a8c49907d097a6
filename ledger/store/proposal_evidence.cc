#include "ledger/store/proposal_evidence.h"

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "ledger/event/envelope.h"
#include "ledger/rules/gateway_touch.h"
#include "ledger/store/queries.h"

namespace ledger::store {
namespace {

// The record at `position`, decoded.
absl::StatusOr<v1::EventBody> BodyAt(const store::Store& store, uint64_t position) {
  auto bytes = store.GetRecord(position);
  if (!bytes.ok()) return bytes.status();
  auto record = DecodeRecord(*bytes, position);
  if (!record.ok()) return record.status();
  auto envelope = DecodeStoredEvent(*record);
  if (!envelope.ok()) return envelope.status();
  return envelope->body;
}

}  // namespace

absl::StatusOr<v1::VerifyProposalResponse> ProposalEvidence(const store::Store& store,
                                                            const std::string& proposal_id) {
  store::Queries queries(&store);
  auto proposal = queries.Proposal(proposal_id);
  if (!proposal.ok()) return proposal.status();
  v1::VerifyProposalResponse response;
  response.set_proposal_id(proposal->proposal_id());
  response.set_collective_id(proposal->collective_id());
  response.set_status(proposal->status());
  response.set_submitted_at(proposal->submitted_at());

  // Refused attempts on this proposal.
  v1::QueryFilter filter;
  filter.set_proposal_id(proposal->proposal_id());
  filter.set_from_position(proposal->submitted_at());
  filter.set_limit(1000);
  while (true) {
    auto page = queries.Refusals(filter);
    if (!page.ok()) return page.status();
    for (const v1::RefusalView& r : page->refusals()) {
      v1::VerifyRefusedAttempt* a = response.add_refused_attempts();
      a->set_position(r.position());
      a->set_ledger_time_unix_ns(r.ledger_time_unix_ns());
      a->set_org_id(r.org_id());
      a->set_key_id(r.key_id());
      a->set_proposal_id(r.proposal_id());
      a->set_gateway_id(r.gateway_id());
      a->set_reason(r.reason());
    }
    if (page->next_page_token().empty()) break;
    filter.set_page_token(page->next_page_token());
  }

  // Every attempt at every gateway: earlier ones (cleared by revisits) first.
  std::vector<std::pair<const v1::GatewayState*, bool>> attempts;
  for (const v1::GatewayState& g : proposal->superseded()) attempts.emplace_back(&g, true);
  for (const v1::GatewayState& g : proposal->gateway_states()) attempts.emplace_back(&g, false);

  // The accepted records about this proposal, decoded once.
  std::map<uint64_t, v1::EventBody> history;
  for (uint64_t position : proposal->history()) {
    auto body = BodyAt(store, position);
    if (!body.ok()) return body.status();
    history.emplace(position, *std::move(body));
  }

  std::vector<uint64_t> positions{proposal->submitted_at()};
  bool intact = true;
  for (size_t i = 0; i < attempts.size(); ++i) {
    const v1::GatewayState& g = *attempts[i].first;
    v1::GatewayLockEvidence* e = response.add_gateways();
    e->set_gateway_id(g.gateway_id());
    e->set_status(g.status());
    e->set_superseded(attempts[i].second);
    e->set_opened_at(g.opened_at());
    e->set_called_at(g.called_at());
    *e->mutable_tally() = g.tally();
    uint64_t reopened_at = 0;
    for (size_t j = i + 1; j < attempts.size(); ++j) {
      if (attempts[j].first->gateway_id() == g.gateway_id()) {
        reopened_at = attempts[j].first->opened_at();
        break;
      }
    }
    e->set_reopened_at(reopened_at);
    const bool locked = g.status() == v1::GATEWAY_PASSED;
    e->set_locked(locked);
    if (locked) {
      e->set_locked_at(g.decided_at());
      positions.push_back(g.decided_at());
    }
    if (g.called_at() != 0) positions.push_back(g.called_at());
    for (const std::string& member : g.electorate()) {
      v1::MemberPositionAtLock* m = e->add_positions();
      m->set_org_id(member);
      for (const v1::VoteRecord& vote : g.votes()) {  // later votes replace earlier ones
        if (vote.org_id() != member || (locked && vote.at() > g.decided_at())) continue;
        m->set_voted(true);
        m->set_position(vote.position());
        m->set_at(vote.at());
      }
      if (m->voted()) positions.push_back(m->at());
    }
    if (locked) {
      for (auto it = history.upper_bound(g.decided_at()); it != history.end(); ++it) {
        if (reopened_at != 0 && it->first >= reopened_at) break;
        if (rules::TouchesGateway(it->second, proposal->proposal_id(), g.gateway_id())) {
          e->add_touched_after_lock(it->first);
          positions.push_back(it->first);
          intact = false;
        }
      }
    }
    for (const v1::VerifyRefusedAttempt& a : response.refused_attempts()) {
      if (a.gateway_id() != g.gateway_id() || a.position() < g.opened_at()) continue;
      if (reopened_at != 0 && a.position() >= reopened_at) continue;
      e->add_refused_attempts(a.position());
    }
  }
  for (const v1::VerifyRefusedAttempt& a : response.refused_attempts()) positions.push_back(a.position());
  response.set_intact(intact);
  std::sort(positions.begin(), positions.end());
  positions.erase(std::unique(positions.begin(), positions.end()), positions.end());
  for (uint64_t p : positions) response.add_positions_to_prove(p);
  return response;
}

}  // namespace ledger::store
