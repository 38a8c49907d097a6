#include "ledger/store/queries.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "ledger/event/envelope.h"
#include "ledger/event/refusal.h"
#include "ledger/rules/gateway_touch.h"
#include "ledger/rules/state.h"

namespace ledger::store {
namespace {

constexpr uint32_t kDefaultLimit = 100;
constexpr uint32_t kMaxLimit = 1000;

struct Page {
  size_t offset = 0;
  size_t limit = kDefaultLimit;
};

absl::StatusOr<Page> PageOf(const v1::QueryFilter& filter) {
  Page page;
  if (filter.limit() > kMaxLimit) {
    return Refuse(absl::StatusCode::kInvalidArgument, v1::OVERSIZE,
                  absl::StrCat("limit ", filter.limit(), " is over ", kMaxLimit));
  }
  if (filter.limit() != 0) page.limit = filter.limit();
  if (!filter.page_token().empty() && !absl::SimpleAtoi(filter.page_token(), &page.offset)) {
    return Malformed(absl::StrCat("page_token \"", filter.page_token(), "\" is not one this server gave"));
  }
  return page;
}

// History and ListRefusals page by position: the token ("p" and the first
// position of the next page) resumes an index scan where the last page
// stopped, so a far page costs what the first does.
constexpr size_t kMaxRefusalScan = 10'000;

struct PositionPage {
  uint64_t from = 0;  // the filter's from_position, or the token's if later
  size_t limit = kDefaultLimit;
};

std::string PositionToken(uint64_t position) { return absl::StrCat("p", position); }

absl::StatusOr<PositionPage> PositionPageOf(const v1::QueryFilter& filter) {
  PositionPage page;
  if (filter.limit() > kMaxLimit) {
    return Refuse(absl::StatusCode::kInvalidArgument, v1::OVERSIZE,
                  absl::StrCat("limit ", filter.limit(), " is over ", kMaxLimit));
  }
  if (filter.limit() != 0) page.limit = filter.limit();
  page.from = filter.from_position();
  if (!filter.page_token().empty()) {
    uint64_t position = 0;
    if (filter.page_token()[0] != 'p' || !absl::SimpleAtoi(filter.page_token().substr(1), &position)) {
      return Malformed(absl::StrCat("page_token \"", filter.page_token(), "\" is not one this server gave"));
    }
    page.from = std::max(page.from, position);
  }
  return page;
}

bool InRange(const v1::QueryFilter& filter, uint64_t position) {
  return position >= filter.from_position() && (filter.to_position() == 0 || position < filter.to_position());
}

// Slices `all` (already in answer order) into the page; sets the next token.
template <typename T, typename Response>
void Paginate(std::vector<T> all, const Page& page, Response* response,
              google::protobuf::RepeatedPtrField<T>* out) {
  for (size_t i = page.offset; i < all.size() && i < page.offset + page.limit; ++i) {
    *out->Add() = std::move(all[i]);
  }
  if (page.offset + page.limit < all.size()) response->set_next_page_token(absl::StrCat(page.offset + page.limit));
}

template <typename Message>
absl::StatusOr<Message> ReadEntry(const Store& store, absl::string_view prefix, const std::string& id,
                                  absl::string_view what, v1::Reason missing) {
  auto value = store.GetState(absl::StrCat(prefix, id));
  if (!value.ok()) return value.status();
  if (!value->has_value()) return Refuse(absl::StatusCode::kNotFound, missing, absl::StrCat("no ", what, " ", id));
  Message message;
  if (!message.ParseFromString(**value)) {
    return absl::DataLossError(absl::StrCat("projected state of ", what, " ", id, " does not decode"));
  }
  return message;
}

}  // namespace

absl::StatusOr<v1::ProposalState> Queries::Proposal(const std::string& id) const {
  return ReadEntry<v1::ProposalState>(*store_, rules::kProposalPrefix, id, "proposal", v1::UNKNOWN_PROPOSAL);
}

absl::StatusOr<std::vector<std::string>> Queries::CollectiveProposalIds(const v1::CollectiveState& collective) const {
  // A collective entry of an earlier release lists them itself until the
  // ledger's first commit group after the upgrade writes the "cp/" index.
  if (collective.proposal_ids_size() > 0) {
    return std::vector<std::string>(collective.proposal_ids().begin(), collective.proposal_ids().end());
  }
  std::vector<std::string> ids;
  const std::string prefix = rules::CollectiveProposalPrefix(collective.collective_id());
  absl::Status bad = absl::OkStatus();
  absl::Status scanned = store_->ScanState(prefix, [&](std::string_view key, std::string_view) {
    std::optional<std::string> id = rules::CollectiveProposalId(absl::string_view(key.data(), key.size()), prefix);
    if (!id.has_value()) {
      bad = absl::DataLossError(absl::StrCat("projected state index entry of collective ",
                                             collective.collective_id(), " does not decode"));
      return false;
    }
    ids.push_back(*std::move(id));
    return true;
  });
  if (!scanned.ok()) return scanned;
  if (!bad.ok()) return bad;
  return ids;
}

absl::StatusOr<v1::CollectiveState> Queries::Collective(const std::string& id) const {
  auto collective =
      ReadEntry<v1::CollectiveState>(*store_, rules::kCollectivePrefix, id, "collective", v1::UNKNOWN_COLLECTIVE);
  if (!collective.ok()) return collective.status();
  auto ids = CollectiveProposalIds(*collective);
  if (!ids.ok()) return ids.status();
  collective->clear_proposal_ids();
  for (std::string& proposal_id : *ids) collective->add_proposal_ids(std::move(proposal_id));
  return collective;
}

absl::StatusOr<v1::OrganisationView> Queries::Organisation(const std::string& id) const {
  auto org = ReadEntry<v1::OrganisationState>(*store_, rules::kOrganisationPrefix, id, "organisation", v1::UNKNOWN_ORGANISATION);
  if (!org.ok()) return org.status();
  v1::OrganisationView view;
  std::vector<std::string> key_ids;
  const std::string index_prefix = rules::OrganisationKeyIndex(id, "");
  absl::Status listed = store_->ScanState(index_prefix, [&](std::string_view key, std::string_view) {
    key_ids.emplace_back(key.substr(index_prefix.size()));
    return true;
  });
  if (!listed.ok()) return listed;
  for (const std::string& key_id : key_ids) {
    auto key = ReadEntry<v1::KeyState>(*store_, rules::kKeyPrefix, key_id, "key", v1::UNKNOWN_KEY);
    if (!key.ok()) return key.status();
    *view.add_keys() = *std::move(key);
  }
  *view.mutable_organisation() = *std::move(org);
  absl::Status decoded = absl::OkStatus();
  absl::Status scanned = store_->ScanState(std::string(rules::kCollectivePrefix),
                                           [&](std::string_view key, std::string_view value) {
    v1::CollectiveState collective;
    if (!collective.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      decoded = absl::DataLossError(absl::StrCat("projected state ", std::string(key), " does not decode"));
      return false;
    }
    const auto& members = collective.members();
    const auto& former = collective.former_members();
    if (std::find(members.begin(), members.end(), id) != members.end()) {
      view.add_collectives(collective.collective_id());
    } else if (std::find(former.begin(), former.end(), id) != former.end()) {
      view.add_former_collectives(collective.collective_id());
    }
    return true;
  });
  if (!scanned.ok()) return scanned;
  if (!decoded.ok()) return decoded;
  return view;
}

absl::StatusOr<std::vector<v1::ProposalState>> Queries::SelectProposals(const v1::QueryFilter& filter) const {
  std::vector<v1::ProposalState> out;
  if (!filter.proposal_id().empty()) {
    auto proposal = Proposal(filter.proposal_id());
    if (!proposal.ok()) return proposal.status();
    if (filter.collective_id().empty() || proposal->collective_id() == filter.collective_id()) {
      out.push_back(*std::move(proposal));
    }
    return out;
  }
  if (!filter.collective_id().empty()) {
    auto collective = ReadEntry<v1::CollectiveState>(*store_, rules::kCollectivePrefix, filter.collective_id(),
                                                     "collective", v1::UNKNOWN_COLLECTIVE);
    if (!collective.ok()) return collective.status();
    auto ids = CollectiveProposalIds(*collective);
    if (!ids.ok()) return ids.status();
    for (const std::string& id : *ids) {
      auto proposal = Proposal(id);
      if (!proposal.ok()) return proposal.status();
      out.push_back(*std::move(proposal));
    }
    return out;
  }
  absl::Status decoded = absl::OkStatus();
  absl::Status scanned = store_->ScanState(std::string(rules::kProposalPrefix),
                                           [&](std::string_view key, std::string_view value) {
    v1::ProposalState proposal;
    if (!proposal.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      decoded = absl::DataLossError(absl::StrCat("projected state ", std::string(key), " does not decode"));
      return false;
    }
    out.push_back(std::move(proposal));
    return true;
  });
  if (!scanned.ok()) return scanned;
  if (!decoded.ok()) return decoded;
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.submitted_at() < b.submitted_at(); });
  return out;
}

absl::StatusOr<v1::ListProposalsResponse> Queries::Proposals(const v1::ListProposalsRequest& request) const {
  auto page = PageOf(request.filter());
  if (!page.ok()) return page.status();
  const v1::QueryFilter& filter = request.filter();
  const auto& statuses = request.statuses();
  auto summarise = [&](const v1::ProposalState& p) -> std::optional<v1::ProposalSummary> {
    if (!statuses.empty() && std::find(statuses.begin(), statuses.end(), p.status()) == statuses.end()) {
      return std::nullopt;
    }
    if (!InRange(filter, p.submitted_at())) return std::nullopt;
    if (!filter.org_id().empty() && p.proposer() != filter.org_id()) return std::nullopt;
    v1::ProposalSummary s;
    s.set_proposal_id(p.proposal_id());
    s.set_collective_id(p.collective_id());
    s.set_title(p.submission().title());
    s.set_category(p.submission().category());
    s.set_proposer(p.proposer());
    s.set_status(p.status());
    if (p.current_gateway() >= 0 && p.current_gateway() < p.gateway_states_size()) {
      s.set_current_gateway(p.gateway_states(p.current_gateway()).gateway_id());
      s.set_current_gateway_status(p.gateway_states(p.current_gateway()).status());
    }
    s.set_submitted_at(p.submitted_at());
    s.set_ended_at(p.ended_at());
    return s;
  };
  v1::ListProposalsResponse response;
  if (!filter.collective_id().empty() && filter.proposal_id().empty()) {
    // A collective's proposals in submission order ("cp/" entries): only the
    // page's proposals (and, with filters, those before it) are read, and
    // the scan stops after the page.
    auto collective = ReadEntry<v1::CollectiveState>(*store_, rules::kCollectivePrefix, filter.collective_id(),
                                                     "collective", v1::UNKNOWN_COLLECTIVE);
    if (!collective.ok()) return collective.status();
    auto ids = CollectiveProposalIds(*collective);
    if (!ids.ok()) return ids.status();
    const bool unfiltered = statuses.empty() && filter.from_position() == 0 && filter.to_position() == 0 &&
                            filter.org_id().empty();
    size_t matched = 0;
    for (const std::string& id : *ids) {
      if (unfiltered && matched < page->offset) {  // before the page: not read
        ++matched;
        continue;
      }
      auto proposal = Proposal(id);
      if (!proposal.ok()) return proposal.status();
      std::optional<v1::ProposalSummary> summary = summarise(*proposal);
      if (!summary.has_value() || matched++ < page->offset) continue;
      if (static_cast<size_t>(response.proposals_size()) == page->limit) {
        response.set_next_page_token(absl::StrCat(page->offset + page->limit));
        break;
      }
      *response.add_proposals() = *std::move(summary);
    }
    return response;
  }
  auto proposals = SelectProposals(filter);
  if (!proposals.ok()) return proposals.status();
  std::vector<v1::ProposalSummary> all;
  for (const v1::ProposalState& p : *proposals) {
    if (std::optional<v1::ProposalSummary> summary = summarise(p)) all.push_back(*std::move(summary));
  }
  Paginate(std::move(all), *page, &response, response.mutable_proposals());
  return response;
}

absl::StatusOr<v1::ListVetoesResponse> Queries::Vetoes(const v1::QueryFilter& filter) const {
  auto page = PageOf(filter);
  if (!page.ok()) return page.status();
  auto proposals = SelectProposals(filter);
  if (!proposals.ok()) return proposals.status();
  std::vector<v1::VetoView> all;
  for (const v1::ProposalState& p : *proposals) {
    for (const v1::VetoState& veto : p.vetoes()) {
      if (!filter.org_id().empty() && veto.org_id() != filter.org_id()) continue;
      if (!InRange(filter, veto.at())) continue;
      v1::VetoView view;
      view.set_proposal_id(p.proposal_id());
      view.set_collective_id(p.collective_id());
      *view.mutable_veto() = veto;
      all.push_back(std::move(view));
    }
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.veto().at() < b.veto().at(); });
  v1::ListVetoesResponse response;
  Paginate(std::move(all), *page, &response, response.mutable_vetoes());
  return response;
}

absl::StatusOr<v1::ListOverrulesResponse> Queries::Overrules(const v1::QueryFilter& filter) const {
  auto page = PageOf(filter);
  if (!page.ok()) return page.status();
  auto proposals = SelectProposals(filter);
  if (!proposals.ok()) return proposals.status();
  std::vector<v1::OverruleView> all;
  for (const v1::ProposalState& p : *proposals) {
    for (const v1::GatewayState& gs : p.gateway_states()) {
      if (gs.caller().empty() || !InRange(filter, gs.called_at())) continue;
      for (const std::string& org : gs.overruled()) {
        if (!filter.org_id().empty() && org != filter.org_id() && gs.caller() != filter.org_id()) continue;
        v1::OverruleView view;
        view.set_proposal_id(p.proposal_id());
        view.set_collective_id(p.collective_id());
        view.set_gateway_id(gs.gateway_id());
        view.set_org_id(org);
        view.set_caller(gs.caller());
        view.set_rationale(gs.call_rationale());
        view.set_outcome(gs.status() == v1::GATEWAY_PASSED ? v1::PASS : v1::FAIL);
        view.set_call_position(gs.called_at());
        view.set_decided_position(gs.decided_at());
        all.push_back(std::move(view));
      }
    }
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return std::make_pair(a.call_position(), a.org_id()) < std::make_pair(b.call_position(), b.org_id());
  });
  v1::ListOverrulesResponse response;
  Paginate(std::move(all), *page, &response, response.mutable_overrules());
  return response;
}

absl::StatusOr<v1::ListRefusalsResponse> Queries::Refusals(const v1::QueryFilter& filter) const {
  auto page = PositionPageOf(filter);
  if (!page.ok()) return page.status();
  // Candidates from the page's start on, at most kMaxRefusalScan of them: a
  // page costs at most that many decodes, however far it starts or however
  // few refusals match (the page may then be short, with a token).
  std::vector<uint64_t> positions;
  uint64_t resume_at = 0;  // non-zero: the scan stopped at its cap here
  auto collect = [&](uint64_t position) {
    if (filter.to_position() != 0 && position >= filter.to_position()) return false;
    if (positions.size() == kMaxRefusalScan) {
      resume_at = position;
      return false;
    }
    positions.push_back(position);
    return true;
  };
  // With an organisation: only the refusals of its attempts (an index).
  absl::Status scanned = filter.org_id().empty()
                             ? store_->ScanKind(v1::EventBody::kSubmissionRefused, page->from, collect)
                             : store_->ScanRefusalsOf(filter.org_id(), page->from, collect);
  if (!scanned.ok()) return scanned;
  std::vector<v1::RefusalView> all;
  for (uint64_t position : positions) {
    if (all.size() == page->limit) {
      resume_at = position;
      break;
    }
    auto bytes = store_->GetRecord(position);
    if (!bytes.ok()) return bytes.status();
    auto record = DecodeRecord(*bytes, position);
    if (!record.ok()) return record.status();
    auto outer = DecodeStoredEvent(*record);
    if (!outer.ok()) return outer.status();
    const v1::SubmissionRefused& refused = outer->body.submission_refused();
    v1::Record inner_record;
    inner_record.set_position(position);
    inner_record.set_signed_event(refused.signed_event());
    auto attempt = DecodeStoredEvent(inner_record);
    if (!attempt.ok()) return attempt.status();
    const v1::EventBody& body = attempt->body;
    v1::RefusalView view;
    view.set_position(position);
    view.set_ledger_time_unix_ns(record->ledger_time_unix_ns());
    view.set_org_id(body.author());
    view.set_key_id(attempt->signed_event.key_id());
    view.set_attempted_kind(EventKind(body));
    if (auto touched = rules::TouchedGateway(body)) {
      view.set_proposal_id(std::string(touched->proposal_id));
      view.set_gateway_id(std::string(touched->gateway_id));
    } else if (body.has_proposal_submitted()) {
      view.set_proposal_id(body.proposal_submitted().proposal_id());
    } else if (body.has_interest_declared()) {
      view.set_proposal_id(body.interest_declared().proposal_id());
    } else if (body.has_impact_declared()) {
      view.set_proposal_id(body.impact_declared().proposal_id());
    } else if (body.has_proposal_withdrawn()) {
      view.set_proposal_id(body.proposal_withdrawn().proposal_id());
    }
    view.set_reason(refused.reason());
    view.set_message(refused.message());
    view.set_attempted_reversal(refused.reason() == v1::GATEWAY_LOCKED);
    view.set_dropped_before(refused.dropped_before());
    if (!filter.org_id().empty() && view.org_id() != filter.org_id()) continue;
    if (!filter.proposal_id().empty() && view.proposal_id() != filter.proposal_id()) continue;
    if (!filter.collective_id().empty()) {
      std::string collective = body.has_proposal_submitted() ? body.proposal_submitted().collective_id() : "";
      if (collective.empty() && !view.proposal_id().empty()) {
        auto proposal = Proposal(view.proposal_id());
        if (proposal.ok()) collective = proposal->collective_id();
      }
      if (collective != filter.collective_id()) continue;
    }
    all.push_back(std::move(view));
  }
  v1::ListRefusalsResponse response;
  if (!filter.org_id().empty()) {
    auto dropped = store_->DroppedRefusals(filter.org_id());
    if (!dropped.ok()) return dropped.status();
    response.set_dropped_since_last_recorded(static_cast<uint32_t>(
        std::min<uint64_t>(*dropped, std::numeric_limits<uint32_t>::max())));
  }
  for (v1::RefusalView& view : all) *response.add_refusals() = std::move(view);
  if (resume_at != 0) response.set_next_page_token(PositionToken(resume_at));
  return response;
}

absl::StatusOr<v1::ListIdentityChangesResponse> Queries::IdentityChanges(const v1::QueryFilter& filter) const {
  auto page = PageOf(filter);
  if (!page.ok()) return page.status();
  std::vector<v1::IdentityChangeView> all;
  absl::Status decoded = absl::OkStatus();
  // Entries are keyed by zero-padded position: the scan is in log order.
  absl::Status scanned = store_->ScanState(std::string(rules::kIdentityChangePrefix),
                                           [&](std::string_view key, std::string_view value) {
    v1::IdentityChangeState change;
    if (!change.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      decoded = absl::DataLossError(absl::StrCat("projected state ", std::string(key), " does not decode"));
      return false;
    }
    if (filter.to_position() != 0 && change.position() >= filter.to_position()) return false;
    if (!InRange(filter, change.position())) return true;
    if (!filter.org_id().empty() && change.org_id() != filter.org_id() &&
        change.successor_org_id() != filter.org_id()) {
      return true;
    }
    *all.emplace_back().mutable_change() = std::move(change);
    return true;
  });
  if (!scanned.ok()) return scanned;
  if (!decoded.ok()) return decoded;
  v1::ListIdentityChangesResponse response;
  Paginate(std::move(all), *page, &response, response.mutable_changes());
  // Only the page's keys that took effect by notice: one prefix scan each.
  for (v1::IdentityChangeView& view : *response.mutable_changes()) {
    const v1::IdentityChangeState& change = view.change();
    if (change.status() != v1::IDENTITY_CHANGE_BY_NOTICE || change.kind() != "key_added") continue;
    const std::string prefix = absl::StrCat(rules::kNoticeKeyRecordPrefix, change.key_id(), absl::string_view("\0", 1));
    absl::Status listed = store_->ScanState(prefix, [&](std::string_view key, std::string_view value) {
      v1::NoticeKeyRecord record;
      if (!record.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
        decoded = absl::DataLossError(absl::StrCat("projected state ", std::string(key), " does not decode"));
        return false;
      }
      view.add_signed_by_notice_key(record.position());
      return true;
    });
    if (!listed.ok()) return listed;
    if (!decoded.ok()) return decoded;
  }
  return response;
}

absl::StatusOr<v1::HistoryResponse> Queries::History(const v1::QueryFilter& filter) const {
  auto page = PositionPageOf(filter);
  if (!page.ok()) return page.status();
  // Positions from page->from on, in order, until one past the page: the
  // cost is the page's, wherever it starts.
  std::vector<uint64_t> positions;
  auto take = [&](uint64_t p) {
    if (filter.to_position() != 0 && p >= filter.to_position()) return false;
    positions.push_back(p);
    return positions.size() < page->limit + 1;
  };
  if (!filter.proposal_id().empty()) {
    auto proposal = Proposal(filter.proposal_id());
    if (!proposal.ok()) return proposal.status();
    std::vector<uint64_t> history(proposal->history().begin(), proposal->history().end());
    std::sort(history.begin(), history.end());
    history.erase(std::unique(history.begin(), history.end()), history.end());
    for (auto it = std::lower_bound(history.begin(), history.end(), page->from); it != history.end(); ++it) {
      if (!take(*it)) break;
    }
  } else if (!filter.org_id().empty()) {
    // NotFound for an unknown organisation (one point read).
    auto org = ReadEntry<v1::OrganisationState>(*store_, rules::kOrganisationPrefix, filter.org_id(),
                                                "organisation", v1::UNKNOWN_ORGANISATION);
    if (!org.ok()) return org.status();
    absl::Status scanned = store_->ScanAuthor(filter.org_id(), page->from, take);
    if (!scanned.ok()) return scanned;
  } else {
    return Refuse(absl::StatusCode::kInvalidArgument, v1::MISSING_FIELD, "history needs a proposal_id or an org_id");
  }
  v1::HistoryResponse response;
  std::optional<uint64_t> next;
  if (positions.size() > page->limit) {
    next = positions[page->limit];
    positions.resize(page->limit);
  }
  // The page's records in one batched read (positions ascend).
  auto records = store_->GetRecords(positions);
  if (!records.ok()) return records.status();
  for (size_t i = 0; i < positions.size(); ++i) {
    v1::RecordEntry* entry = response.add_entries();
    entry->set_position(positions[i]);
    entry->set_record(std::move((*records)[i]));
  }
  if (next.has_value()) response.set_next_page_token(PositionToken(*next));
  return response;
}

namespace {

constexpr uint32_t kDefaultReadLimit = 100;
constexpr uint32_t kMaxReadLimit = 1000;
// Filtered reads stop after looking at this many candidates, so one request
// cannot scan the whole log; the client continues from next_position.
constexpr uint64_t kMaxReadScan = 100'000;

}  // namespace

absl::StatusOr<v1::ReadResponse> Queries::Read(const v1::ReadRequest& request) const {
  uint32_t limit = request.limit() == 0 ? kDefaultReadLimit : request.limit();
  if (limit > kMaxReadLimit) {
    return Refuse(absl::StatusCode::kInvalidArgument, v1::OVERSIZE,
                  absl::StrCat("limit ", limit, " is over ", kMaxReadLimit));
  }
  std::vector<int> kinds;  // distinct
  for (const std::string& kind : request.kinds()) {
    int number = EventKindNumber(kind);
    if (number == 0) {
      return Malformed(absl::StrCat("unknown event kind \"", kind, "\" (kinds are payload names such as vote_cast)"));
    }
    if (std::find(kinds.begin(), kinds.end(), number) == kinds.end()) kinds.push_back(number);
  }
  const Store& store = *store_;
  const uint64_t size = store.tree_size();
  const uint64_t from = request.from_position();
  v1::ReadResponse response;
  response.set_tree_size(size);

  // Candidate positions from the narrowest index; every candidate is then
  // checked against all filters.
  std::vector<uint64_t> candidates;
  uint64_t scanned_to = size;  // candidates cover [from, scanned_to)
  auto collect = [&](uint64_t position) {
    if (position >= size) return false;  // committed after `size` was read
    candidates.push_back(position);
    if (candidates.size() >= kMaxReadScan) {
      scanned_to = position + 1;
      return false;
    }
    return true;
  };
  absl::Status status;
  if (!request.author().empty() && kinds.empty()) {
    status = store.ScanAuthor(request.author(), from, collect);
  } else if (!kinds.empty()) {
    // The first `limit` positions of the union are among the first `limit`
    // of each kind (of each (author, kind) when an author is given: every
    // candidate then matches, nothing is decoded to filter).
    for (int kind : kinds) {
      size_t before = candidates.size();
      auto scan = [&](const Store::PositionVisitor& visit) {
        return request.author().empty() ? store.ScanKind(kind, from, visit)
                                        : store.ScanAuthorKind(request.author(), kind, from, visit);
      };
      status = scan([&](uint64_t p) {
        if (p >= size) return false;
        candidates.push_back(p);
        return candidates.size() - before < limit;
      });
      if (!status.ok()) break;
      if (candidates.size() - before == limit) {
        scanned_to = std::min(scanned_to, candidates.back() + 1);
      }
    }
    std::sort(candidates.begin(), candidates.end());
    candidates.erase(std::upper_bound(candidates.begin(), candidates.end(), scanned_to - 1), candidates.end());
  } else {
    for (uint64_t p = from; p < size && candidates.size() < limit; ++p) candidates.push_back(p);
    if (candidates.size() == limit) scanned_to = candidates.back() + 1;
  }
  if (!status.ok()) return status;

  uint64_t next = scanned_to;
  for (uint64_t position : candidates) {
    if (static_cast<uint32_t>(response.entries_size()) == limit) {
      next = position;
      break;
    }
    auto bytes = store.GetRecord(position);
    if (!bytes.ok()) return bytes.status();
    auto record = DecodeRecord(*bytes, position);
    if (!record.ok()) return record.status();
    v1::RecordEntry* entry = response.add_entries();
    entry->set_position(position);
    entry->set_record(*std::move(bytes));
  }
  response.set_next_position(std::max(next, from));
  return response;
}

}  // namespace ledger::store
