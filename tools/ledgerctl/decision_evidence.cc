// Decision evidence (decision_evidence.h): built from a server, checked
// offline; and the `evidence` and `verify-evidence` commands.
#include "tools/ledgerctl/decision_evidence.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ledger/common/files.h"
#include "ledger/crypto/sha256.h"
#include "ledger/event/envelope.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/merkle/tree.h"
#include "tools/ledgerctl/commands.h"
#include "tools/ledgerctl/keys.h"

namespace ledger::ctl {
namespace {

// visit(org, raw public key) for each key `body` registers: Genesis (the
// operator's and the registrars'), an organisation's registration, KeyAdded.
void ForEachRegisteredKey(const v1::EventBody& body,
                          const std::function<void(const std::string&, const std::string&)>& visit) {
  if (body.has_genesis()) {
    visit(body.genesis().operator_id(), body.genesis().operator_public_key());
    for (const auto& r : body.genesis().registrars()) {
      for (const std::string& raw : r.public_keys()) visit(r.org_id(), raw);
    }
  } else if (body.has_organisation_registered()) {
    for (const std::string& raw : body.organisation_registered().public_keys()) {
      visit(body.organisation_registered().org_id(), raw);
    }
  } else if (body.has_key_added()) {
    visit(body.key_added().org_id(), body.key_added().public_key());
  }
}

std::string Hex(const merkle::Hash& hash) { return crypto::ToHex(merkle::AsBytes(hash)); }

// ---------------------------------------------------------------- building

struct Builder {
  explicit Builder(LedgerClient& c) : client(c) {}
  LedgerClient& client;
  std::set<uint64_t> positions;
  Json facts = Json::array();
  Json proposals = Json::array();

  void Fact(Json fact) {
    positions.insert(fact["position"].get<uint64_t>());
    facts.push_back(std::move(fact));
  }

  absl::Status AddProposal(const std::string& id) {
    auto state = client.GetProposal(id);
    if (!state.ok()) return state.status();
    auto lock = client.VerifyProposal(id);
    if (!lock.ok()) return lock.status();
    Json p = {{"proposal_id", state->proposal_id()},
              {"collective_id", state->collective_id()},
              {"title", state->submission().title()},
              {"category", state->submission().category()},
              {"proposer", state->proposer()},
              {"status", v1::ProposalStatus_Name(state->status())},
              {"submitted_at", state->submitted_at()},
              {"ended_at", state->ended_at()},
              {"intact", lock->intact()}};
    Fact({{"kind", "submitted"}, {"position", state->submitted_at()}, {"proposal_id", id},
          {"org_id", state->proposer()}, {"title", state->submission().title()}});

    Json gateways = Json::array();
    std::vector<std::pair<const v1::GatewayState*, bool>> attempts;
    for (const auto& g : state->superseded()) attempts.emplace_back(&g, true);
    for (const auto& g : state->gateway_states()) attempts.emplace_back(&g, false);
    for (const auto& [g, superseded] : attempts) {
      Json gw = {{"gateway_id", g->gateway_id()},
                 {"status", v1::GatewayStatus_Name(g->status())},
                 {"superseded", superseded},
                 {"opened_at", g->opened_at()},
                 {"decided_at", g->decided_at()},
                 {"called_at", g->called_at()},
                 {"caller", g->caller()},
                 {"overruled", Json(std::vector<std::string>(g->overruled().begin(), g->overruled().end()))},
                 {"call_rationale", g->call_rationale()},
                 {"electorate", g->tally().electorate()},
                 {"assent", g->tally().assent()},
                 {"object", g->tally().object()},
                 {"abstain", g->tally().abstain()},
                 {"recused", g->tally().recused()}};
      gateways.push_back(std::move(gw));
      for (const v1::VoteRecord& v : g->votes()) {
        Fact({{"kind", "vote"}, {"position", v.at()}, {"proposal_id", id}, {"gateway_id", g->gateway_id()},
              {"org_id", v.org_id()}, {"vote", v1::Position_Name(v.position())}, {"rationale", v.rationale()}});
      }
      if (g->called_at() != 0) {
        const char* outcome = g->status() == v1::GATEWAY_PASSED ? "PASS" : "FAIL";
        Fact({{"kind", "call"}, {"position", g->called_at()}, {"proposal_id", id}, {"gateway_id", g->gateway_id()},
              {"org_id", g->caller()}, {"outcome", outcome}, {"rationale", g->call_rationale()}});
      }
      if (g->status() == v1::GATEWAY_PASSED && g->decided_at() != 0) {
        Fact({{"kind", "gateway_passed"}, {"position", g->decided_at()}, {"proposal_id", id},
              {"gateway_id", g->gateway_id()}});
      }
    }
    p["gateways"] = std::move(gateways);

    for (const v1::VetoState& v : state->vetoes()) {
      Fact({{"kind", "veto"}, {"position", v.at()}, {"proposal_id", id}, {"gateway_id", v.gateway_id()},
            {"org_id", v.org_id()}, {"rationale", v.rationale()}, {"outcome", v1::VetoOutcome_Name(v.outcome())},
            {"ended_at", v.ended_at()}});
      if (v.ended_at() != 0) positions.insert(v.ended_at());
    }
    for (const v1::ImpactState& i : state->impacts()) {
      Fact({{"kind", "impact"}, {"position", i.at()}, {"proposal_id", id}, {"org_id", i.org_id()},
            {"annual_impact_pence", i.annual_impact_pence()}, {"description", i.description()}});
    }

    v1::QueryFilter filter;
    filter.set_proposal_id(id);
    filter.set_limit(1000);
    while (true) {
      auto page = client.ListOverrules(filter);
      if (!page.ok()) return page.status();
      for (const v1::OverruleView& o : page->overrules()) {
        Fact({{"kind", "overruled"}, {"position", o.decided_position()}, {"proposal_id", id},
              {"gateway_id", o.gateway_id()}, {"org_id", o.org_id()}, {"caller", o.caller()},
              {"call_position", o.call_position()}});
        positions.insert(o.call_position());
      }
      if (page->next_page_token().empty()) break;
      filter.set_page_token(page->next_page_token());
    }
    filter.clear_page_token();
    while (true) {
      auto page = client.ListRefusals(filter);
      if (!page.ok()) return page.status();
      for (const v1::RefusalView& r : page->refusals()) {
        Fact({{"kind", "refusal"}, {"position", r.position()}, {"proposal_id", id}, {"gateway_id", r.gateway_id()},
              {"org_id", r.org_id()}, {"attempted_kind", r.attempted_kind()}, {"reason", v1::Reason_Name(r.reason())},
              {"attempted_reversal", r.attempted_reversal()}, {"message", r.message()}});
      }
      if (page->next_page_token().empty()) break;
      filter.set_page_token(page->next_page_token());
    }

    Json tapers = Json::array();
    if (state->status() == v1::PROPOSAL_ADOPTED) {
      for (const v1::TaperSchedule& t : state->adoption().tapers()) {
        tapers.push_back({{"org_id", t.org_id()},
                          {"annual_impact_pence", t.annual_impact_pence()},
                          {"support_by_year_pence", Json(std::vector<int64_t>(t.support_by_year_pence().begin(),
                                                                              t.support_by_year_pence().end()))}});
      }
      Fact({{"kind", "adopted"}, {"position", state->ended_at()}, {"proposal_id", id}, {"tapers", tapers}});
    } else if (state->status() == v1::PROPOSAL_REJECTED) {
      Fact({{"kind", "rejected"}, {"position", state->ended_at()}, {"proposal_id", id}});
    } else if (state->status() == v1::PROPOSAL_WITHDRAWN) {
      Fact({{"kind", "withdrawn"}, {"position", state->ended_at()}, {"proposal_id", id}});
    }
    p["tapers"] = std::move(tapers);
    for (uint64_t position : lock->positions_to_prove()) positions.insert(position);
    for (uint64_t position : state->history()) positions.insert(position);
    proposals.push_back(std::move(p));
    return absl::OkStatus();
  }
};

struct KeyOrigin {
  std::string org_id;
  std::string raw;
  uint64_t position = 0;
};

// Every key the log registers (Genesis, OrganisationRegistered, KeyAdded),
// by key id, with the record that registered it.
absl::StatusOr<std::map<std::string, KeyOrigin>> RegisteredKeys(LedgerClient& client) {
  std::map<std::string, KeyOrigin> keys;
  v1::ReadRequest request;
  request.set_limit(1000);
  for (const char* kind : {"genesis", "organisation_registered", "key_added"}) request.add_kinds(kind);
  while (true) {
    auto page = client.Read(request);
    if (!page.ok()) return page.status();
    for (const v1::RecordEntry& entry : page->entries()) {
      auto record = DecodeRecord(entry.record(), entry.position());
      if (!record.ok()) return record.status();
      auto envelope = DecodeStoredEvent(*record);
      if (!envelope.ok()) return envelope.status();
      ForEachRegisteredKey(envelope->body, [&](const std::string& org, const std::string& raw) {
        keys.try_emplace(crypto::KeyIdOf(raw), KeyOrigin{org, raw, entry.position()});
      });
    }
    if (page->entries().empty() || page->next_position() >= page->tree_size()) break;
    request.set_from_position(page->next_position());
  }
  return keys;
}

// ---------------------------------------------------------------- checking

// Reads field `name` of `j` as T, or records a failure.
template <typename T>
bool Field(const Json& j, const char* name, T* out) {
  if (!j.is_object() || !j.contains(name)) return false;
  try {
    *out = j.at(name).get<T>();
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

std::string Str(const Json& fact, const char* name) {
  std::string s;
  Field(fact, name, &s);
  return s;
}

// Checks one fact against the body of the record at its position: the
// empty string if the record says it, else what differs.
std::string CheckFact(const Json& fact, const v1::EventBody& body, const std::map<uint64_t, v1::EventBody>& bodies) {
  const std::string kind = Str(fact, "kind");
  const std::string proposal = Str(fact, "proposal_id");
  const std::string gateway = Str(fact, "gateway_id");
  const std::string org = Str(fact, "org_id");
  auto differs = [](const char* what, const std::string& claimed, const std::string& recorded) {
    return absl::StrCat(what, " is '", recorded, "', the evidence claims '", claimed, "'");
  };
  const std::string& event_kind = EventKind(body);
  auto expect_kind = [&](const char* k) -> std::string {
    return event_kind == k ? "" : absl::StrCat("the record is a ", event_kind.empty() ? "(no payload)" : event_kind,
                                               ", the evidence claims a ", k);
  };
  if (kind == "submitted") {
    if (auto e = expect_kind("proposal_submitted"); !e.empty()) return e;
    const auto& s = body.proposal_submitted();
    if (s.proposal_id() != proposal) return differs("its proposal", proposal, s.proposal_id());
    if (body.author() != org) return differs("its author", org, body.author());
    if (s.title() != Str(fact, "title")) return differs("its title", Str(fact, "title"), s.title());
    return "";
  }
  if (kind == "vote" || kind == "veto") {
    if (auto e = expect_kind("vote_cast"); !e.empty()) return e;
    const auto& v = body.vote_cast();
    if (v.proposal_id() != proposal) return differs("its proposal", proposal, v.proposal_id());
    if (v.gateway_id() != gateway) return differs("its gateway", gateway, v.gateway_id());
    if (body.author() != org) return differs("its author", org, body.author());
    const std::string position = kind == "veto" ? "OBJECT" : Str(fact, "vote");
    if (v1::Position_Name(v.position()) != position) {
      return differs("its position", position, v1::Position_Name(v.position()));
    }
    if (v.rationale() != Str(fact, "rationale")) return differs("its rationale", Str(fact, "rationale"), v.rationale());
    uint64_t ended_at = 0;
    if (kind == "veto") Field(fact, "ended_at", &ended_at);
    // A standing veto has no end, and an ended one names the record that
    // ended it: an edited outcome cannot hide behind a zeroed end.
    if (kind == "veto" && (ended_at == 0) != (Str(fact, "outcome") == "VETO_STANDING")) {
      return absl::StrCat("a veto ", ended_at == 0 ? "without an end is STANDING" : "that ended is not STANDING",
                          ", the evidence claims ", Str(fact, "outcome"), ended_at == 0 ? "" : absl::StrCat(" ended at ", ended_at));
    }
    if (kind == "veto" && ended_at != 0) {
      auto it = bodies.find(ended_at);
      if (it == bodies.end()) return absl::StrCat("the record that ended the veto (", ended_at, ") is not in the evidence");
      const v1::EventBody& end = it->second;
      const std::string outcome = Str(fact, "outcome");
      if (outcome == "VETO_LAPSED" && !(end.has_gateway_lapsed() && end.gateway_lapsed().proposal_id() == proposal &&
                                        end.gateway_lapsed().gateway_id() == gateway)) {
        return absl::StrCat("record ", ended_at, " is not the lapse of ", gateway, " of ", proposal);
      }
      if (outcome == "VETO_PROPOSAL_WITHDRAWN" &&
          !(end.has_proposal_withdrawn() && end.proposal_withdrawn().proposal_id() == proposal)) {
        return absl::StrCat("record ", ended_at, " is not the withdrawal of ", proposal);
      }
      if (outcome == "VETO_WITHDRAWN" &&
          !(end.has_vote_cast() && end.author() == org && end.vote_cast().proposal_id() == proposal &&
            end.vote_cast().gateway_id() == gateway && end.vote_cast().position() != v1::OBJECT)) {
        return absl::StrCat("record ", ended_at, " is not ", org, " changing its position on ", gateway);
      }
      if (outcome == "VETO_OVERRULED" || outcome == "VETO_UPHELD") {
        bool ok = (end.has_decision_called() && end.decision_called().proposal_id() == proposal &&
                   end.decision_called().gateway_id() == gateway) ||
                  (end.has_gateway_passed() && end.gateway_passed().proposal_id() == proposal &&
                   end.gateway_passed().gateway_id() == gateway) ||
                  (end.has_proposal_rejected() && end.proposal_rejected().proposal_id() == proposal);
        if (!ok) return absl::StrCat("record ", ended_at, " is not a call or decision of ", proposal, " at ", gateway);
      }
    }
    return "";
  }
  if (kind == "call") {
    if (auto e = expect_kind("decision_called"); !e.empty()) return e;
    const auto& c = body.decision_called();
    if (c.proposal_id() != proposal) return differs("its proposal", proposal, c.proposal_id());
    if (c.gateway_id() != gateway) return differs("its gateway", gateway, c.gateway_id());
    if (body.author() != org) return differs("its caller", org, body.author());
    if (v1::Outcome_Name(c.outcome()) != Str(fact, "outcome")) {
      return differs("its outcome", Str(fact, "outcome"), v1::Outcome_Name(c.outcome()));
    }
    if (c.rationale() != Str(fact, "rationale")) return differs("its rationale", Str(fact, "rationale"), c.rationale());
    return "";
  }
  if (kind == "overruled") {
    const google::protobuf::RepeatedPtrField<std::string>* overruled = nullptr;
    std::string caller;
    if (body.has_gateway_passed() && body.gateway_passed().proposal_id() == proposal) {
      overruled = &body.gateway_passed().overruled();
      caller = body.gateway_passed().caller();
    } else if (body.has_proposal_rejected() && body.proposal_rejected().proposal_id() == proposal) {
      overruled = &body.proposal_rejected().overruled();
      caller = body.proposal_rejected().caller();
    } else {
      return absl::StrCat("the record is a ", event_kind, ", not a gateway_passed or proposal_rejected of ", proposal);
    }
    if (std::find(overruled->begin(), overruled->end(), org) == overruled->end()) {
      return absl::StrCat("it does not list ", org, " as overruled");
    }
    if (caller != Str(fact, "caller")) return differs("its caller", Str(fact, "caller"), caller);
    if (body.has_gateway_passed() && body.gateway_passed().gateway_id() != gateway) {
      return differs("its gateway", gateway, body.gateway_passed().gateway_id());
    }
    // The call the page attaches this overrule to is that caller's call here.
    uint64_t call_position = 0;
    if (Field(fact, "call_position", &call_position) && call_position != 0) {
      auto call = bodies.find(call_position);
      if (call == bodies.end()) return absl::StrCat("the call it names (", call_position, ") is not in the evidence");
      const v1::EventBody& c = call->second;
      if (!(c.has_decision_called() && c.author() == caller && c.decision_called().proposal_id() == proposal &&
            (gateway.empty() || c.decision_called().gateway_id() == gateway))) {
        return absl::StrCat("record ", call_position, " is not ", caller, "'s call on ", gateway, " of ", proposal);
      }
    }
    return "";
  }
  if (kind == "gateway_passed") {
    if (auto e = expect_kind("gateway_passed"); !e.empty()) return e;
    if (body.gateway_passed().proposal_id() != proposal) return differs("its proposal", proposal, body.gateway_passed().proposal_id());
    if (body.gateway_passed().gateway_id() != gateway) return differs("its gateway", gateway, body.gateway_passed().gateway_id());
    return "";
  }
  if (kind == "impact") {
    if (auto e = expect_kind("impact_declared"); !e.empty()) return e;
    const auto& i = body.impact_declared();
    if (i.proposal_id() != proposal) return differs("its proposal", proposal, i.proposal_id());
    if (body.author() != org) return differs("its author", org, body.author());
    int64_t pence = 0;
    Field(fact, "annual_impact_pence", &pence);
    if (i.annual_impact_pence() != pence) {
      return differs("its annual impact", absl::StrCat(pence), absl::StrCat(i.annual_impact_pence()));
    }
    if (i.description() != Str(fact, "description")) return differs("its description", Str(fact, "description"), i.description());
    return "";
  }
  if (kind == "refusal") {
    if (auto e = expect_kind("submission_refused"); !e.empty()) return e;
    const auto& r = body.submission_refused();
    if (v1::Reason_Name(r.reason()) != Str(fact, "reason")) return differs("its reason", Str(fact, "reason"), v1::Reason_Name(r.reason()));
    v1::SignedEvent inner;
    v1::EventBody attempted;
    if (!inner.ParseFromString(r.signed_event()) || !attempted.ParseFromString(inner.body())) {
      return "the refused event it carries does not decode";
    }
    if (attempted.author() != org) return differs("the refused event's author", org, attempted.author());
    if (EventKind(attempted) != Str(fact, "attempted_kind")) {
      return differs("the refused event's kind", Str(fact, "attempted_kind"), EventKind(attempted));
    }
    if (r.message() != Str(fact, "message")) return differs("its message", Str(fact, "message"), r.message());
    if (attempted.has_vote_cast() && (attempted.vote_cast().proposal_id() != proposal ||
                                      attempted.vote_cast().gateway_id() != gateway)) {
      return absl::StrCat("the refused vote is on ", attempted.vote_cast().gateway_id(), " of ",
                          attempted.vote_cast().proposal_id(), ", the evidence claims ", gateway, " of ", proposal);
    }
    if (attempted.has_proposal_submitted() && attempted.proposal_submitted().proposal_id() != proposal) {
      return differs("the refused proposal", proposal, attempted.proposal_submitted().proposal_id());
    }
    bool reversal = false;
    Field(fact, "attempted_reversal", &reversal);
    // As the ledger's own queries call it: a refusal on a locked gateway.
    if (reversal != (r.reason() == v1::GATEWAY_LOCKED)) {
      return absl::StrCat("a refusal ", r.reason() == v1::GATEWAY_LOCKED ? "on a locked gateway is" : "for another reason is not",
                          " an attempted reversal; the evidence claims the opposite");
    }
    if (reversal && !(attempted.has_vote_cast() && attempted.vote_cast().proposal_id() == proposal &&
                      attempted.vote_cast().gateway_id() == gateway && r.reason() == v1::GATEWAY_LOCKED)) {
      return absl::StrCat("it is not a vote on the locked gateway ", gateway, " of ", proposal,
                          " refused GATEWAY_LOCKED, as an attempted reversal must be");
    }
    return "";
  }
  if (kind == "adopted") {
    if (auto e = expect_kind("decision_adopted"); !e.empty()) return e;
    const auto& a = body.decision_adopted();
    if (a.proposal_id() != proposal) return differs("its proposal", proposal, a.proposal_id());
    Json tapers = Json::array();
    for (const v1::TaperSchedule& t : a.tapers()) {
      tapers.push_back({{"org_id", t.org_id()},
                        {"annual_impact_pence", t.annual_impact_pence()},
                        {"support_by_year_pence", Json(std::vector<int64_t>(t.support_by_year_pence().begin(),
                                                                            t.support_by_year_pence().end()))}});
    }
    if (!fact.contains("tapers") || fact["tapers"] != tapers) {
      return absl::StrCat("its tapers are ", DumpJson(tapers), ", the evidence claims ",
                          fact.contains("tapers") ? DumpJson(fact["tapers"]) : std::string("none"));
    }
    return "";
  }
  if (kind == "rejected") {
    if (auto e = expect_kind("proposal_rejected"); !e.empty()) return e;
    if (body.proposal_rejected().proposal_id() != proposal) return differs("its proposal", proposal, body.proposal_rejected().proposal_id());
    return "";
  }
  if (kind == "withdrawn") {
    if (auto e = expect_kind("proposal_withdrawn"); !e.empty()) return e;
    if (body.proposal_withdrawn().proposal_id() != proposal) return differs("its proposal", proposal, body.proposal_withdrawn().proposal_id());
    return "";
  }
  return absl::StrCat("unknown kind of fact '", kind, "'");
}

// Every fact in the evidence's `proposals` (what the report draws) that
// must also be a checked fact: the proposals' own ids are checked to have
// a `submitted` fact.
void CheckProposalsRest(const Json& evidence, std::vector<std::string>* failures) {
  std::set<std::string> submitted;
  for (const Json& f : evidence["facts"]) {
    if (Str(f, "kind") == "submitted") submitted.insert(Str(f, "proposal_id"));
  }
  if (!evidence.contains("proposals") || !evidence["proposals"].is_array()) return;
  for (const Json& p : evidence["proposals"]) {
    std::string id = Str(p, "proposal_id");
    if (submitted.count(id) == 0) failures->push_back(absl::StrCat("proposal ", id, ": no fact names the record that submitted it"));
  }
}

}  // namespace

absl::StatusOr<Json> BuildDecisionEvidence(LedgerClient& client, const std::vector<std::string>& proposal_ids) {
  auto info = client.GetLedgerInfo();
  if (!info.ok()) return info.status();
  auto operator_key = crypto::PublicKey::FromRaw(info->operator_public_key());
  if (!operator_key.ok()) {
    return absl::DataLossError(absl::StrCat("GetLedgerInfo: operator public key: ", operator_key.status().message()));
  }
  Builder builder(client);
  for (const std::string& id : proposal_ids) {
    if (auto s = builder.AddProposal(id); !s.ok()) return s;
  }

  // The records, and (to closure) the records registering the keys that
  // signed them.
  auto keys = RegisteredKeys(client);
  if (!keys.ok()) return keys.status();
  std::map<uint64_t, std::string> records;  // position -> stored bytes
  std::map<std::string, const KeyOrigin*> used_keys;
  std::vector<uint64_t> todo(builder.positions.begin(), builder.positions.end());
  while (!todo.empty()) {
    uint64_t position = todo.back();
    todo.pop_back();
    if (records.count(position) != 0) continue;
    auto entry = client.Get(position);
    if (!entry.ok()) return entry.status();
    auto record = DecodeRecord(entry->record(), position);
    if (!record.ok()) return record.status();
    auto envelope = DecodeStoredEvent(*record);
    if (!envelope.ok()) return envelope.status();
    records.emplace(position, entry->record());
    auto key = keys->find(envelope->signed_event.key_id());
    if (key == keys->end()) {
      return absl::DataLossError(absl::StrCat("record ", position, " is signed by key ",
                                              envelope->signed_event.key_id(), ", which no record registers"));
    }
    used_keys.emplace(key->first, &key->second);
    if (records.count(key->second.position) == 0) todo.push_back(key->second.position);
  }
  if (records.empty()) return absl::NotFoundError("no records to prove");
  const uint64_t last = records.rbegin()->first;

  // The newest witnessed checkpoint if it covers them all, else the latest.
  bool witnessed = true;
  auto checkpoint_response = client.GetCheckpoint(0, true);
  if (!checkpoint_response.ok() || checkpoint_response->tree_size() <= last) {
    witnessed = false;
    checkpoint_response = client.GetCheckpoint(0);
    if (!checkpoint_response.ok()) return checkpoint_response.status();
  }
  auto checkpoint = merkle::OpenCheckpoint(checkpoint_response->note(), info->origin(), *operator_key);
  if (!checkpoint.ok()) {
    return absl::Status(checkpoint.status().code(),
                        absl::StrCat("the server's checkpoint: ", checkpoint.status().message()));
  }
  if (checkpoint->size <= last) {
    return absl::FailedPreconditionError(absl::StrCat("the latest checkpoint (size ", checkpoint->size,
                                                      ") does not cover record ", last));
  }

  Json out_records = Json::array();
  for (const auto& [position, bytes] : records) {
    auto proof = client.GetInclusionProof(position, checkpoint->size);
    if (!proof.ok()) return proof.status();
    std::vector<merkle::Hash> hashes;
    Json hex = Json::array();
    for (const std::string& h : proof->proof()) {
      auto hash = merkle::HashFromBytes(h);
      if (!hash.ok()) return absl::DataLossError(absl::StrCat("inclusion proof of record ", position, ": a hash is not 32 bytes"));
      hashes.push_back(*hash);
      hex.push_back(Hex(*hash));
    }
    merkle::Hash leaf = merkle::HashLeaf(bytes);
    if (auto s = merkle::VerifyInclusion(leaf, position, checkpoint->size, hashes, checkpoint->root); !s.ok()) {
      return absl::DataLossError(absl::StrCat("the server's inclusion proof of record ", position,
                                              " does not verify: ", s.message()));
    }
    out_records.push_back({{"position", position},
                           {"record", crypto::Base64Encode(bytes)},
                           {"leaf_hash", Hex(leaf)},
                           {"inclusion_proof", std::move(hex)}});
  }
  Json out_keys = Json::array();
  for (const auto& [key_id, origin] : used_keys) {
    out_keys.push_back({{"key_id", key_id},
                        {"org_id", origin->org_id},
                        {"public_key", crypto::Base64Encode(origin->raw)},
                        {"registered_at", origin->position}});
  }
  Json evidence = {{"format", kDecisionEvidenceFormat},
                   {"ledger_id", info->ledger_id()},
                   {"origin", info->origin()},
                   {"operator", {{"key_id", operator_key->key_id()},
                                 {"public_key", crypto::Base64Encode(operator_key->raw())}}},
                   {"checkpoint", {{"tree_size", checkpoint->size},
                                   {"root_hash", Hex(checkpoint->root)},
                                   {"witnessed", witnessed},
                                   {"note", checkpoint_response->note()}}},
                   {"records", std::move(out_records)},
                   {"keys", std::move(out_keys)},
                   {"proposals", std::move(builder.proposals)},
                   {"facts", std::move(builder.facts)}};
  return evidence;
}

DecisionEvidenceCheck CheckDecisionEvidence(const Json& evidence, const crypto::PublicKey& operator_key,
                                    const witness::Policy* policy) {
  DecisionEvidenceCheck check;
  auto& failures = check.failures;
  check.operator_key_id = operator_key.key_id();
  std::string format;
  if (!Field(evidence, "format", &format) || format != kDecisionEvidenceFormat) {
    failures.push_back(absl::StrCat("not decision evidence: format is '", format, "', expected '",
                                    kDecisionEvidenceFormat, "'"));
    return check;
  }
  Field(evidence, "origin", &check.origin);
  std::string claimed_key_id;
  if (evidence.contains("operator")) Field(evidence["operator"], "key_id", &claimed_key_id);
  if (claimed_key_id != operator_key.key_id()) {
    failures.push_back(absl::StrCat("the evidence names operator key ", claimed_key_id, ", but the key you trust is ",
                                    operator_key.key_id()));
  }

  // The checkpoint.
  std::string note;
  if (!evidence.contains("checkpoint") || !Field(evidence["checkpoint"], "note", &note)) {
    failures.push_back("no checkpoint note");
    return check;
  }
  auto checkpoint = merkle::OpenCheckpoint(note, check.origin, operator_key);
  if (!checkpoint.ok()) {
    failures.push_back(absl::StrCat("checkpoint: signature by operator key ", operator_key.key_id(), " under origin '",
                                    check.origin, "' did not verify: ", checkpoint.status().message()));
    return check;
  }
  if (checkpoint->origin != check.origin) {
    failures.push_back(absl::StrCat("checkpoint: origin line '", checkpoint->origin, "' is not the evidence's origin '",
                                    check.origin, "'"));
  }
  check.tree_size = checkpoint->size;
  uint64_t claimed_size = 0;
  Field(evidence["checkpoint"], "tree_size", &claimed_size);
  if (claimed_size != checkpoint->size) {
    failures.push_back(absl::StrCat("checkpoint: tree_size says ", claimed_size, ", the signed note says ", checkpoint->size));
  }
  if (policy != nullptr) {
    auto witnessed = policy->Check(note);
    if (!witnessed.ok()) {
      failures.push_back(absl::StrCat("checkpoint: witness policy: ", witnessed.status().message()));
    } else {
      std::vector<std::string> names;
      for (const auto& c : witnessed->cosignatures) names.push_back(c.witness_name);
      check.witnessed = absl::StrCat("quorum ", policy->QuorumText(), " met by ", absl::StrJoin(names, ", "));
    }
  }

  // The records: bytes, position, leaf hash, inclusion proof.
  std::map<uint64_t, Envelope> envelopes;
  std::map<uint64_t, v1::EventBody> bodies;
  if (!evidence.contains("records") || !evidence["records"].is_array()) {
    failures.push_back("no records");
    return check;
  }
  for (const Json& r : evidence["records"]) {
    uint64_t position = 0;
    std::string b64;
    if (!Field(r, "position", &position) || !Field(r, "record", &b64)) {
      failures.push_back("a record without position or bytes");
      continue;
    }
    std::string where = absl::StrCat("record ", position);
    std::string bytes;
    if (!crypto::Base64Decode(b64, &bytes)) {
      failures.push_back(absl::StrCat(where, ": its bytes are not base64"));
      continue;
    }
    if (position >= checkpoint->size) {
      failures.push_back(absl::StrCat(where, ": beyond the checkpoint (size ", checkpoint->size, ")"));
      continue;
    }
    std::vector<merkle::Hash> proof;
    bool proof_ok = r.contains("inclusion_proof") && r["inclusion_proof"].is_array();
    if (proof_ok) {
      for (const Json& h : r["inclusion_proof"]) {
        std::string raw;
        absl::StatusOr<merkle::Hash> hash = absl::InvalidArgumentError("not hex");
        if (h.is_string() && crypto::FromHex(h.get<std::string>(), &raw)) hash = merkle::HashFromBytes(raw);
        if (!hash.ok()) {
          proof_ok = false;
          break;
        }
        proof.push_back(*hash);
      }
    }
    if (!proof_ok) {
      failures.push_back(absl::StrCat(where, ": its inclusion proof is not a list of 32-byte hex hashes"));
      continue;
    }
    merkle::Hash leaf = merkle::HashLeaf(bytes);
    if (auto s = merkle::VerifyInclusion(leaf, position, checkpoint->size, proof, checkpoint->root); !s.ok()) {
      failures.push_back(absl::StrCat(where, ": leaf hash ", Hex(leaf), " of its bytes is not in the checkpoint's tree (",
                                      "inclusion proof to root ", Hex(checkpoint->root), " failed: ", s.message(), ")"));
      continue;
    }
    auto record = DecodeRecord(bytes, position);
    if (!record.ok()) {
      failures.push_back(absl::StrCat(where, ": ", record.status().message()));
      continue;
    }
    auto envelope = DecodeStoredEvent(*record);
    if (!envelope.ok()) {
      failures.push_back(absl::StrCat(where, ": ", envelope.status().message()));
      continue;
    }
    bodies.emplace(position, envelope->body);
    envelopes.emplace(position, *std::move(envelope));
    ++check.records;
  }

  // Keys, as the proven records register them.
  std::map<std::string, KeyOrigin> keys;
  std::string operator_id;
  for (const auto& [at, envelope] : envelopes) {
    const uint64_t position = at;  // a lambda may not capture a structured binding (clang 14)
    const v1::EventBody& body = envelope.body;
    if (body.has_genesis()) {
      operator_id = body.genesis().operator_id();
      if (body.genesis().operator_public_key() != operator_key.raw()) {
        failures.push_back(absl::StrCat("record ", position, ": Genesis names operator key ",
                                        crypto::KeyIdOf(body.genesis().operator_public_key()), ", not ",
                                        operator_key.key_id()));
      }
    }
    ForEachRegisteredKey(body, [&](const std::string& org, const std::string& raw) {
      keys.try_emplace(crypto::KeyIdOf(raw), KeyOrigin{org, raw, position});
    });
  }
  for (const auto& [position, envelope] : envelopes) {
    std::string where = absl::StrCat("record ", position, " (", EventKind(envelope.body), " by ", envelope.body.author(), ")");
    const std::string& key_id = envelope.signed_event.key_id();
    auto key = keys.find(key_id);
    if (key == keys.end()) {
      failures.push_back(absl::StrCat(where, ": signed by key ", key_id, ", which no record in the evidence registers"));
      continue;
    }
    if (key->second.position > position || (key->second.position == position && !envelope.body.has_genesis())) {
      failures.push_back(absl::StrCat(where, ": signed by key ", key_id, ", registered only later, at ", key->second.position));
      continue;
    }
    const bool system = IsSystemEvent(envelope.body) || envelope.body.has_genesis();
    if (!system && key->second.org_id != envelope.body.author()) {
      failures.push_back(absl::StrCat(where, ": signed by key ", key_id, " of ", key->second.org_id, ", not of its author"));
      continue;
    }
    if (system && key->second.raw != operator_key.raw()) {
      failures.push_back(absl::StrCat(where, ": a system event not signed by the operator key"));
      continue;
    }
    auto public_key = crypto::PublicKey::FromRaw(key->second.raw);
    if (!public_key.ok() ||
        !crypto::VerifyEvent(*public_key, envelope.signed_event.body(), envelope.signed_event.signature())) {
      failures.push_back(absl::StrCat(where, ": signature by key ", key_id, " does not verify"));
      continue;
    }
    ++check.signatures;
  }

  // The facts.
  if (!evidence.contains("facts") || !evidence["facts"].is_array()) {
    failures.push_back("no facts");
  } else {
    for (const Json& fact : evidence["facts"]) {
      uint64_t position = 0;
      std::string what = absl::StrCat(Str(fact, "kind"), " of ", Str(fact, "proposal_id"));
      if (!Field(fact, "position", &position)) {
        failures.push_back(absl::StrCat("fact (", what, ") names no record position"));
        continue;
      }
      auto it = bodies.find(position);
      if (it == bodies.end()) {
        failures.push_back(absl::StrCat("fact (", what, ") rests on record ", position, ", which is not verified in the evidence"));
        continue;
      }
      std::string wrong = CheckFact(fact, it->second, bodies);
      if (!wrong.empty()) {
        failures.push_back(absl::StrCat("fact (", what, ") at record ", position, ": ", wrong));
        continue;
      }
      ++check.facts;
    }
    CheckProposalsRest(evidence, &failures);
  }
  check.verified = failures.empty();
  return check;
}

absl::StatusOr<Json> ReadDecisionEvidence(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "evidence.json").string();
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  std::stringstream text;
  text << in.rdbuf();
  Json json = Json::parse(text.str(), nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  }
  return json;
}

namespace {

absl::Status RunEvidence(const Invocation& in) {
  const std::string dir = in.flags.Get("out");
  if (in.flags.Get("proposal").empty()) return UsageError("--proposal must not be empty");
  if (dir.empty()) return UsageError("--out must not be empty");
  LedgerClient client(in.server, in.tls);
  auto evidence = BuildDecisionEvidence(client, {in.flags.Get("proposal")});
  if (!evidence.ok()) return evidence.status();
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) return absl::UnavailableError(absl::StrCat("cannot create ", dir, ": ", error.message()));
  const std::string path = (std::filesystem::path(dir) / "evidence.json").string();
  if (auto s = ReplaceFileDurably(path, evidence->dump(1) + "\n", 0644); !s.ok()) return s;
  const std::string note_path = (std::filesystem::path(dir) / "checkpoint.note").string();
  if (auto s = ReplaceFileDurably(note_path, (*evidence)["checkpoint"]["note"].get<std::string>(), 0644);
      !s.ok()) {
    return s;
  }
  PrintLine(absl::StrCat("wrote ", path, ": ", (*evidence)["records"].size(), " records, ",
                         (*evidence)["facts"].size(), " facts, proved against ",
                         (*evidence)["checkpoint"]["witnessed"].get<bool>() ? "witnessed " : "",
                         "checkpoint ", (*evidence)["checkpoint"]["tree_size"].get<uint64_t>(), " of ",
                         (*evidence)["origin"].get<std::string>()));
  PrintLine(absl::StrCat("check it offline: ledgerctl verify-evidence ", dir, " --operator-key OPERATOR_PUB_PEM"));
  return absl::OkStatus();
}

absl::Status RunVerifyEvidence(const Invocation& in) {
  auto evidence = ReadDecisionEvidence(in.flags.Arg(0));
  if (!evidence.ok()) return evidence.status();
  auto key = ReadPublicKeyFromEither(in.flags.Get("operator-key"));
  if (!key.ok()) return key.status();
  std::optional<witness::Policy> policy;
  if (in.flags.Has("witness-policy")) {
    auto loaded = witness::Policy::Load(in.flags.Get("witness-policy"));
    if (!loaded.ok()) return loaded.status();
    policy = *std::move(loaded);
  }
  DecisionEvidenceCheck check = CheckDecisionEvidence(*evidence, *key, policy.has_value() ? &*policy : nullptr);
  if (!check.verified) {
    for (const std::string& f : check.failures) std::fprintf(stderr, "NOT verified: %s\n", f.c_str());
    return absl::DataLossError(absl::StrCat("evidence in ", in.flags.Arg(0), " NOT verified (", check.failures.size(),
                                            check.failures.size() == 1 ? " failure" : " failures", ", above)"));
  }
  PrintLine(absl::StrCat("verified against checkpoint ", check.tree_size, " of ", check.origin));
  PrintLine(absl::StrCat("  operator key ", check.operator_key_id, " (from --operator-key ",
                         in.flags.Get("operator-key"), ")"));
  PrintLine(check.witnessed.empty() ? "  witnessed: not checked (no --witness-policy)"
                                    : absl::StrCat("  witnessed: ", check.witnessed));
  PrintLine(absl::StrCat("  ", check.records, " records: leaf hashes and inclusion proofs verified; ", check.signatures,
                         " signatures verified by the keys the records register"));
  PrintLine(absl::StrCat("  ", check.facts, " facts each match the record they name"));
  return absl::OkStatus();
}

}  // namespace

std::vector<Command> DecisionEvidenceCommands() {
  return {
      {{.name = "evidence",
        .summary = "Write a proposal's decision evidence (records, proofs, checkpoint) to DIR.",
        .description =
            "Writes DIR/evidence.json: every record the proposal's decision rests on (base64\n"
            "of exactly the stored bytes), the records registering the keys that signed them,\n"
            "an inclusion proof per record against one signed checkpoint (the newest witnessed\n"
            "one that covers them, else the latest; cosignature lines included), the operator\n"
            "key, and the facts (votes, vetoes, calls, overrules, refusals, adoption) with the\n"
            "record each rests on; and DIR/checkpoint.note. `verify-evidence` checks it offline;\n"
            "`report` embeds the same evidence. (Not the receipt store of --evidence.)",
        .flags = {{"proposal", "ID", "the proposal", true}, {"out", "DIR", "where to write evidence.json", true}}},
       &RunEvidence},
      {{.name = "verify-evidence",
        .args = {"DIR"},
        .summary = "Check decision evidence offline (no server).",
        .description =
            "Checks DIR/evidence.json with no network: the checkpoint's signature by the\n"
            "operator key you give (and a witness quorum with --witness-policy), every record's\n"
            "leaf hash and inclusion proof, every record's signature by the key its author\n"
            "registered in a record present, and every fact against the record it names.\n"
            "Exits 0 only if all pass; otherwise prints each failure as \"NOT verified: ...\".",
        .flags = {{"operator-key", "PUB_PEM", "the operator public key to trust", true},
                  {"witness-policy", "FILE", "also require this C2SP tlog-policy's quorum of cosignatures"}}},
       &RunVerifyEvidence},
  };
}

}  // namespace ledger::ctl
