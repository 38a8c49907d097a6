// Governance queries: human tables by default, protobuf JSON with --json.
// Every answer shows the record positions it rests on (prove them with
// `ledgerctl prove --seq N`).
#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ledger/crypto/sha256.h"
#include "tools/ledgerctl/client.h"
#include "tools/ledgerctl/commands.h"
#include "tools/ledgerctl/output.h"

namespace ledger::ctl {
namespace {

// Columns padded to their widest cell.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string Render() const {
    std::vector<size_t> width;
    for (const auto& row : rows_) {
      width.resize(std::max(width.size(), row.size()));
      for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
    }
    std::string out;
    for (const auto& row : rows_) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) {
        absl::StrAppend(&line, row[i], i + 1 < row.size() ? std::string(width[i] - row[i].size() + 2, ' ') : "");
      }
      absl::StrAppend(&out, line, "\n");
    }
    if (rows_.size() == 1) absl::StrAppend(&out, "(none)\n");
    return out;
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};


absl::Status PrintJsonOr(const Invocation& in, const google::protobuf::Message& message,
                         const std::string& human) {
  if (in.flags.Has("json")) {
    auto json = ProtoToJson(message);
    if (!json.ok()) return json.status();
    PrintLine(*json);
  } else {
    std::string text = human;
    if (!text.empty() && text.back() == '\n') text.pop_back();
    PrintLine(text);
  }
  return absl::OkStatus();
}

// The filter the flags give (--since/--until are turned into positions).
absl::StatusOr<v1::QueryFilter> FilterFrom(const ParsedFlags& flags, LedgerClient& client) {
  v1::QueryFilter filter;
  filter.set_collective_id(flags.Get("collective"));
  filter.set_proposal_id(flags.Get("proposal"));
  filter.set_org_id(flags.Get("org"));
  filter.set_page_token(flags.Get("page-token"));
  auto from = flags.GetUint64("from", 0);
  if (!from.ok()) return from.status();
  auto to = flags.GetUint64("to", 0);
  if (!to.ok()) return to.status();
  auto limit = flags.GetUint64("limit", 0);
  if (!limit.ok()) return limit.status();
  if (*limit > 1000) return UsageError("--limit is at most 1000");
  if (absl::Status narrowed = NarrowToTimes(flags, client, *from, *to); !narrowed.ok()) return narrowed;
  filter.set_from_position(*from);
  filter.set_to_position(*to);
  filter.set_limit(static_cast<uint32_t>(*limit));
  return filter;
}

std::string NextPage(const std::string& token) {
  return token.empty() ? "" : absl::StrCat("(more: --page-token ", token, ")\n");
}

absl::Status RunProposal(const Invocation& in) {
  LedgerClient client(in.server, in.tls);
  auto p = client.GetProposal(in.flags.Arg(0));
  if (!p.ok()) return p.status();
  std::string out = absl::StrCat("proposal ", p->proposal_id(), ": ", p->submission().title(), "\n",
                                 "  collective ", p->collective_id(), " (charter version ", p->charter_version(),
                                 "), category \"", p->submission().category(), "\"\n",
                                 "  proposed by ", p->proposer(), " at position ", p->submitted_at(), "\n",
                                 "  status ", EnumText(p->status()));
  if (p->ended_at() != 0) absl::StrAppend(&out, " at position ", p->ended_at());
  absl::StrAppend(&out, "\n");
  if (!p->recused().empty()) absl::StrAppend(&out, "  recused: ", absl::StrJoin(p->recused(), ", "), "\n");
  Table gateways({"gateway", "status", "opened", "decided", "assent", "object", "abstain", "electorate", "caller"});
  for (int i = 0; i < p->gateway_states_size(); ++i) {
    const v1::GatewayState& g = p->gateway_states(i);
    gateways.Add({g.gateway_id(), EnumText(g.status()), g.opened_at() ? absl::StrCat(g.opened_at()) : "-",
                  g.decided_at() ? absl::StrCat(g.decided_at()) : "-", absl::StrCat(g.tally().assent()),
                  absl::StrCat(g.tally().object()), absl::StrCat(g.tally().abstain()),
                  absl::StrCat(g.electorate_size()), g.caller().empty() ? "-" : g.caller()});
  }
  absl::StrAppend(&out, "\n", gateways.Render());
  Table votes({"position", "gateway", "member", "vote", "rationale"});
  for (const v1::GatewayState& g : p->gateway_states()) {
    for (const v1::VoteRecord& v : g.votes()) {
      votes.Add({absl::StrCat(v.at()), g.gateway_id(), v.org_id(), EnumText(v.position()), v.rationale()});
    }
  }
  absl::StrAppend(&out, "\nvotes (a later vote of a member replaces its earlier one while the gateway is open):\n",
                  votes.Render());
  if (p->adoption().tapers_size() > 0) {
    Table tapers({"member", "annual impact (pence)", "support by year (pence)"});
    for (const v1::TaperSchedule& t : p->adoption().tapers()) {
      tapers.Add({t.org_id(), absl::StrCat(t.annual_impact_pence()), absl::StrJoin(t.support_by_year_pence(), " / ")});
    }
    absl::StrAppend(&out, "\ntapers:\n", tapers.Render());
  }
  absl::StrAppend(&out, "\nrecords: ", absl::StrJoin(p->history(), " "), "\n");
  return PrintJsonOr(in, *p, out);
}

absl::Status RunProposals(const Invocation& in) {
  LedgerClient client(in.server, in.tls);
  auto filter = FilterFrom(in.flags, client);
  if (!filter.ok()) return filter.status();
  v1::ListProposalsRequest request;
  *request.mutable_filter() = *filter;
  for (const std::string& status : in.flags.GetAll("status")) {
    v1::ProposalStatus parsed;
    if (!v1::ProposalStatus_Parse("PROPOSAL_" + absl::AsciiStrToUpper(status), &parsed)) {
      return UsageError("--status must be open, adopted, rejected or withdrawn");
    }
    request.add_statuses(parsed);
  }
  auto response = client.ListProposals(request);
  if (!response.ok()) return response.status();
  Table table({"submitted", "proposal", "collective", "status", "gateway", "gateway status", "title"});
  for (const auto& s : response->proposals()) {
    table.Add({absl::StrCat(s.submitted_at()), s.proposal_id(), s.collective_id(), EnumText(s.status()),
               s.current_gateway().empty() ? "-" : s.current_gateway(),
               s.current_gateway().empty() ? "-" : EnumText(s.current_gateway_status()), s.title()});
  }
  return PrintJsonOr(in, *response, table.Render() + NextPage(response->next_page_token()));
}

absl::Status RunCollective(const Invocation& in) {
  LedgerClient client(in.server, in.tls);
  auto c = client.GetCollective(in.flags.Arg(0));
  if (!c.ok()) return c.status();
  std::string out = absl::StrCat(
      "collective ", c->collective_id(), ": ", c->charter().name(), "\n", "  proposed by ", c->proposed_by(),
      " at position ", c->proposed_at(), "\n", "  ",
      c->formed() ? absl::StrCat("formed at position ", c->formed_at(), ", charter version ", c->charter_version())
                  : absl::StrCat("not formed: accepted by ", c->accepted_by_size(), " of ",
                                 c->charter().founding_members_size(), " founding members"),
      "\n  charter digest ", crypto::ToHex(c->charter_digest()), "\n  members: ", absl::StrJoin(c->members(), ", "),
      "\n");
  if (!c->former_members().empty()) absl::StrAppend(&out, "  former members (still bound): ", absl::StrJoin(c->former_members(), ", "), "\n");
  Table gateways({"gateway", "rule", "callers", "deadline (s)"});
  for (const v1::Gateway& g : c->charter().gateways()) {
    std::string rule = EnumText(g.rule().kind() == v1::RULE_KIND_UNSPECIFIED ? v1::UNANIMITY : g.rule().kind());
    if (g.rule().kind() == v1::SUPERMAJORITY) absl::StrAppend(&rule, " ", g.rule().numerator(), "/", g.rule().denominator());
    if (g.rule().quorum_percent() > 0) absl::StrAppend(&rule, ", quorum ", g.rule().quorum_percent(), "%");
    gateways.Add({g.id(), rule, absl::StrJoin(g.callers(), ","), g.deadline_seconds() ? absl::StrCat(g.deadline_seconds()) : "-"});
  }
  absl::StrAppend(&out, "\n", gateways.Render(), "\nreserved categories: ",
                  absl::StrJoin(c->charter().reserved_categories(), ", "), "\nproposals: ",
                  absl::StrJoin(c->proposal_ids(), ", "), "\n");
  return PrintJsonOr(in, *c, out);
}

absl::Status RunOrganisation(const Invocation& in) {
  LedgerClient client(in.server, in.tls);
  auto view = client.GetOrganisation(in.flags.Arg(0));
  if (!view.ok()) return view.status();
  const v1::OrganisationState& o = view->organisation();
  std::string out = absl::StrCat("organisation ", o.org_id(), ": ", o.name(), " (", o.kind(), ")",
                                 o.registrar() ? ", registrar" : "", "\n  registered at position ",
                                 o.registered_at(), "\n");
  if (!o.merged_into().empty()) absl::StrAppend(&out, "  merged into ", o.merged_into(), "\n");
  absl::StrAppend(&out, "  collectives: ", absl::StrJoin(view->collectives(), ", "), "\n");
  if (!view->former_collectives().empty()) {
    absl::StrAppend(&out, "  former collectives (still bound): ", absl::StrJoin(view->former_collectives(), ", "), "\n");
  }
  Table keys({"key id", "added at", "revoked at", "note"});
  for (const v1::KeyState& k : view->keys()) {
    // Rules v2: a key a registrar added alone signs nothing until it takes effect.
    std::string note = k.pending_change() != 0 ? absl::StrCat("not in effect (identity change ", k.pending_change(),
                                                              "): signs nothing")
                       : k.by_notice()         ? "took effect by notice"
                                               : "-";
    keys.Add({k.key_id(), absl::StrCat(k.added_at()), k.revoked() ? absl::StrCat(k.revoked_at()) : "-", note});
  }
  absl::StrAppend(&out, "\n", keys.Render());
  return PrintJsonOr(in, *view, out);
}

absl::Status RunVetoes(const Invocation& in) {
  LedgerClient client(in.server, in.tls);
  auto filter = FilterFrom(in.flags, client);
  if (!filter.ok()) return filter.status();
  auto response = client.ListVetoes(*filter);
  if (!response.ok()) return response.status();
  Table table({"position", "time", "member", "proposal", "gateway", "ended", "at", "rationale"});
  for (const auto& v : response->vetoes()) {
    table.Add({absl::StrCat(v.veto().at()), FormatLedgerTime(v.veto().time_unix_ns()), v.veto().org_id(),
               v.proposal_id(), v.veto().gateway_id(), EnumText(v.veto().outcome()),
               v.veto().ended_at() ? absl::StrCat(v.veto().ended_at()) : "-", v.veto().rationale()});
  }
  return PrintJsonOr(in, *response, table.Render() + NextPage(response->next_page_token()));
}

absl::Status RunOverrules(const Invocation& in) {
  LedgerClient client(in.server, in.tls);
  auto filter = FilterFrom(in.flags, client);
  if (!filter.ok()) return filter.status();
  auto response = client.ListOverrules(*filter);
  if (!response.ok()) return response.status();
  Table table({"call", "decided", "overruled", "caller", "proposal", "gateway", "outcome", "rationale"});
  for (const auto& o : response->overrules()) {
    table.Add({absl::StrCat(o.call_position()), absl::StrCat(o.decided_position()), o.org_id(), o.caller(),
               o.proposal_id(), o.gateway_id(), EnumText(o.outcome()), o.rationale()});
  }
  return PrintJsonOr(in, *response, table.Render() + NextPage(response->next_page_token()));
}

absl::Status RunRefusals(const Invocation& in) {
  LedgerClient client(in.server, in.tls);
  auto filter = FilterFrom(in.flags, client);
  if (!filter.ok()) return filter.status();
  auto response = client.ListRefusals(*filter);
  if (!response.ok()) return response.status();
  Table table({"position", "time", "member", "key", "attempted", "proposal", "gateway", "reason", "reversal",
               "dropped before"});
  for (const auto& r : response->refusals()) {
    table.Add({absl::StrCat(r.position()), FormatLedgerTime(r.ledger_time_unix_ns()), r.org_id(),
               r.key_id().substr(0, 12), r.attempted_kind(), r.proposal_id().empty() ? "-" : r.proposal_id(),
               r.gateway_id().empty() ? "-" : r.gateway_id(), EnumText(r.reason()),
               r.attempted_reversal() ? "YES" : "no", absl::StrCat(r.dropped_before())});
  }
  std::string dropped;
  if (!filter->org_id().empty() && response->dropped_since_last_recorded() > 0) {
    dropped = absl::StrCat(response->dropped_since_last_recorded(), " refusals of ", filter->org_id(),
                           " not recorded since its last recorded one (the operator's count)\n");
  }
  return PrintJsonOr(in, *response, table.Render() + dropped + NextPage(response->next_page_token()));
}

absl::Status RunIdentityChanges(const Invocation& in) {
  LedgerClient client(in.server, in.tls);
  auto filter = FilterFrom(in.flags, client);
  if (!filter.ok()) return filter.status();
  auto response = client.ListIdentityChanges(*filter);
  if (!response.ok()) return response.status();
  Table table({"position", "kind", "organisation", "key", "author", "status", "effective", "notice ends",
               "confirmed by", "signed by notice key"});
  for (const auto& view : response->changes()) {
    const v1::IdentityChangeState& c = view.change();
    std::string status = EnumText(c.status());
    if (c.status() == v1::IDENTITY_CHANGE_CANCELLED) {
      absl::StrAppend(&status, " at ", c.cancelled_at(), " by ", c.cancelled_by());
    }
    table.Add({absl::StrCat(c.position()), c.kind(),
               c.successor_org_id().empty() ? c.org_id() : absl::StrCat(c.org_id(), " -> ", c.successor_org_id()),
               c.key_id().empty() ? "-" : c.key_id().substr(0, 12), c.author(), status,
               c.effective_at() ? absl::StrCat(c.effective_at()) : "-", FormatLedgerTime(c.notice_ends_unix_ns()),
               c.confirmed_by().empty() ? "-" : absl::StrJoin(c.confirmed_by(), ","),
               view.signed_by_notice_key().empty() ? "-" : absl::StrJoin(view.signed_by_notice_key(), ",")});
  }
  return PrintJsonOr(in, *response, table.Render() + NextPage(response->next_page_token()));
}

absl::Status RunHistory(const Invocation& in) {
  if (in.flags.Get("proposal").empty() == in.flags.Get("org").empty()) {
    return UsageError("give exactly one of --proposal and --org");
  }
  LedgerClient client(in.server, in.tls);
  auto filter = FilterFrom(in.flags, client);
  if (!filter.ok()) return filter.status();
  auto response = client.GetHistory(*filter);
  if (!response.ok()) return response.status();
  std::string out = in.flags.Has("json") ? "" : RecordHeader() + "\n";
  for (const v1::RecordEntry& entry : response->entries()) {
    auto line = FormatRecord(entry, entry.position(), in.flags.Has("json"));
    if (!line.ok()) return line.status();
    absl::StrAppend(&out, *line, "\n");
  }
  if (!in.flags.Has("json")) absl::StrAppend(&out, NextPage(response->next_page_token()));
  if (!out.empty() && out.back() == '\n') out.pop_back();
  if (!out.empty()) PrintLine(out);
  return absl::OkStatus();
}

std::vector<FlagSpec> FilterFlags(std::vector<FlagSpec> own = {}) {
  for (FlagSpec flag : std::vector<FlagSpec>{
           {"collective", "ID", "only this collective"},
           {"proposal", "ID", "only this proposal"},
           {"org", "ID", "only this organisation"},
           {"from", "N", "only records at positions >= N", false, false, FlagValue::kNumber},
           {"to", "N", "only records at positions < N", false, false, FlagValue::kNumber},
           {"since", "TIME", "only records at or after this ledger time (RFC 3339, e.g. 2026-12-01T09:00:00Z)",
            false, false, FlagValue::kTime},
           {"until", "TIME", "only records before this ledger time (RFC 3339)", false, false, FlagValue::kTime},
           {"limit", "N", "at most N answers (default 100, at most 1000)", false, false, FlagValue::kNumber},
           {"page-token", "T", "continue from a previous answer"},
           {"json", "", "print protobuf JSON"}}) {
    own.push_back(std::move(flag));
  }
  return own;
}

}  // namespace

std::vector<Command> QueryCommands() {
  const FlagSpec json{"json", "", "print protobuf JSON"};
  return {
      {{.name = "proposal", .args = {"ID"}, .summary = "A proposal, gateway by gateway, with every vote.", .flags = {json}},
       &RunProposal},
      {{.name = "proposals", .summary = "List proposals.",
        .flags = FilterFlags({{"status", "S", "open, adopted, rejected or withdrawn", false, true}})},
       &RunProposals},
      {{.name = "collective", .args = {"ID"}, .summary = "A collective: charter, members, proposals.", .flags = {json}},
       &RunCollective},
      {{.name = "organisation", .args = {"ID"}, .summary = "An organisation: keys and memberships.", .flags = {json}},
       &RunOrganisation},
      {{.name = "vetoes", .summary = "Who objected at a unanimity gateway, and how each veto ended.", .flags = FilterFlags()},
       &RunVetoes},
      {{.name = "overrules", .summary = "Who was overruled by a called decision, by whom and why.", .flags = FilterFlags()},
       &RunOverrules},
      {{.name = "refusals", .summary = "Refused attempts on the record (attempted reversals first of all).",
        .flags = FilterFlags()},
       &RunRefusals},
      {{.name = "identity-changes",
        .summary = "Key changes and mergers a registrar made without the organisation: pending, confirmed, cancelled "
                   "or effective by notice, and what keys that took effect by notice signed.",
        .flags = FilterFlags()},
       &RunIdentityChanges},
      {{.name = "history", .summary = "Every record about a proposal (--proposal) or by an organisation (--org).",
        .flags = FilterFlags()},
       &RunHistory},
  };
}

}  // namespace ledger::ctl
