// `ledgerctl demo`: a realistic scenario drawn from the Greater Manchester
// story, played against a running ledgerd. Every organisation signs its own
// events with its own key (generated for the run; `--keys-dir` keeps them).
//
// A registrar registers 15 providers, 12 commissioners and NHS England. The
// providers form a federation: four unanimity gateways (need for change,
// principles, process, nature of change), a majority final decision, NHS
// England named as caller, "where a clinical service is provided" reserved to
// the commissioners, and a 100/66/33/0% taper. Then:
//   (a) a shared back office passes every gateway; one trust is outvoted at
//       the final stage; an adversely affected trust gets a taper schedule;
//   (b) an R&D collaboration is vetoed at principles and stays blocked;
//   (c) a stroke reconfiguration deadlocks at process and NHS England calls
//       it, overruling the objectors;
//   (d) a trust tries to object to the locked need-for-change gateway of (a):
//       refused, and kept on the record;
//   (e) a proposal on where maternity services are provided is refused as a
//       reserved matter.
// It ends by printing the vetoes, overrules and refusals.
#include <filesystem>
#include <iostream>
#include <random>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/event/envelope.h"
#include "ledger/event/refusal.h"
#include "tools/ledgerctl/client.h"
#include "tools/ledgerctl/commands.h"
#include "tools/ledgerctl/keys.h"
#include "tools/ledgerctl/output.h"

namespace ledger::ctl {
namespace {

struct Org {
  std::string id;
  std::string name;
  std::string kind;
};

const std::vector<Org>& Providers() {
  static const auto* providers = new std::vector<Org>{
      {"salford-royal", "Salford Royal NHS FT", "nhs-trust"},
      {"manchester-university", "Manchester University NHS FT", "nhs-trust"},
      {"stockport", "Stockport NHS FT", "nhs-trust"},
      {"tameside-glossop", "Tameside and Glossop Integrated Care NHS FT", "nhs-trust"},
      {"wrightington-wigan-leigh", "Wrightington, Wigan and Leigh NHS FT", "nhs-trust"},
      {"bolton", "Bolton NHS FT", "nhs-trust"},
      {"northern-care-alliance", "Northern Care Alliance NHS FT", "nhs-trust"},
      {"pennine-acute", "Pennine Acute Hospitals NHS Trust", "nhs-trust"},
      {"christie", "The Christie NHS FT", "nhs-trust"},
      {"gm-mental-health", "Greater Manchester Mental Health NHS FT", "nhs-trust"},
      {"pennine-care", "Pennine Care NHS FT", "nhs-trust"},
      {"north-west-ambulance", "North West Ambulance Service NHS Trust", "nhs-trust"},
      {"bridgewater", "Bridgewater Community Healthcare NHS FT", "nhs-trust"},
      {"manchester-community", "Manchester Local Care Organisation", "nhs-trust"},
      {"trafford-community", "Trafford Local Care Organisation", "nhs-trust"},
  };
  return *providers;
}

std::vector<Org> Commissioners() {
  std::vector<Org> out;
  for (const char* place : {"bolton", "bury", "heywood-middleton-rochdale", "manchester", "oldham", "salford",
                            "stockport", "tameside-glossop", "trafford", "wigan", "north-manchester",
                            "central-manchester"}) {
    out.push_back({absl::StrCat(place, "-ccg"), absl::StrCat("NHS ", place, " CCG"), "commissioner"});
  }
  return out;
}

class Demo {
 public:
  Demo(const Invocation& in, crypto::PrivateKey registrar_key)
      : in_(in), client_(in.server, in.tls), registrar_key_(std::move(registrar_key)) {
    std::random_device device;
    run_ = absl::StrFormat("%04x", device() & 0xffff);
  }

  absl::Status Run() {
    auto info = client_.GetLedgerInfo();
    if (!info.ok()) return info.status();
    ledger_id_ = info->ledger_id();
    Say(absl::StrCat("Decision Ledger demo, run ", run_, ", against ", in_.server, " (ledger ", ledger_id_, ")"));

    // Registration: every organisation gets its own key.
    std::vector<Org> everyone = Providers();
    for (const Org& c : Commissioners()) everyone.push_back(c);
    everyone.push_back({"nhs-england", "NHS England", "national-body"});
    for (const Org& org : everyone) {
      keys_.emplace(org.id, crypto::PrivateKey::Generate());
      v1::EventBody body;
      auto* event = body.mutable_organisation_registered();
      event->set_org_id(Id(org.id));
      event->set_name(org.name);
      event->set_kind(org.kind);
      event->add_public_keys(std::string(keys_.at(org.id).public_key().raw()));
      if (auto s = Expect(registrar_id(), body, registrar_key_); !s.ok()) return s;
    }
    if (auto s = SaveKeys(); !s.ok()) return s;
    Say(absl::StrCat("registered ", everyone.size(), " organisations (15 providers, 12 commissioners, NHS England)"));

    // The federation and its charter; every provider accepts it.
    v1::EventBody proposed;
    auto* collective = proposed.mutable_collective_proposed();
    collective->set_collective_id(Id("gm-federation"));
    *collective->mutable_charter() = Charter();
    if (auto s = Expect("salford-royal", proposed); !s.ok()) return s;
    auto formed = client_.GetCollective(Id("gm-federation"));
    if (!formed.ok()) return formed.status();
    for (const Org& p : Providers()) {
      v1::EventBody body;
      body.mutable_charter_accepted()->set_collective_id(Id("gm-federation"));
      body.mutable_charter_accepted()->set_charter_digest(formed->charter_digest());
      if (auto s = Expect(p.id, body); !s.ok()) return s;
    }
    Say(absl::StrCat("collective ", Id("gm-federation"), " formed: 15 providers accepted its charter"));

    if (auto s = SharedBackOffice(); !s.ok()) return s;
    if (auto s = ResearchCollaboration(); !s.ok()) return s;
    if (auto s = StrokeReconfiguration(); !s.ok()) return s;
    if (auto s = AttemptedReversal(); !s.ok()) return s;
    if (auto s = ReservedMatter(); !s.ok()) return s;
    return Report();
  }

 private:
  static constexpr const char* kGateways[] = {"need-for-change", "principles", "process", "nature-of-change"};

  std::string Id(const std::string& base) const { return absl::StrCat(base, "-", run_); }
  std::string registrar_id() const {
    return in_.flags.Has("registrar-id") ? in_.flags.Get("registrar-id") : "registrar";
  }
  void Say(const std::string& line) { PrintLine(line); }

  v1::Charter Charter() const {
    v1::Charter charter;
    charter.set_name("Greater Manchester provider federation: terms of reference");
    for (const Org& p : Providers()) charter.add_founding_members(Id(p.id));
    for (const char* id : kGateways) {
      v1::Gateway* g = charter.add_gateways();
      g->set_id(id);
      g->mutable_rule()->set_kind(v1::UNANIMITY);
      g->add_callers(Id("nhs-england"));
    }
    v1::Gateway* final_gateway = charter.add_gateways();
    final_gateway->set_id("final-decision");
    final_gateway->mutable_rule()->set_kind(v1::MAJORITY);
    final_gateway->mutable_rule()->set_quorum_percent(75);
    final_gateway->add_callers(Id("nhs-england"));
    charter.add_reserved_categories("clinical-service-location");
    for (uint32_t percent : {100, 66, 33, 0}) charter.mutable_taper()->add_percent_by_year(percent);
    charter.mutable_amendment_rule()->set_kind(v1::SUPERMAJORITY);
    charter.mutable_amendment_rule()->set_numerator(2);
    charter.mutable_amendment_rule()->set_denominator(3);
    return charter;
  }

  // Signs `body` as `org` and appends it; returns the outcome unchanged.
  absl::StatusOr<v1::AppendResponse> Submit(const std::string& org, v1::EventBody body,
                                            const crypto::PrivateKey& key) {
    body.set_ledger_id(ledger_id_);
    body.set_author(org == registrar_id() ? org : Id(org));
    body.set_idempotency_key(absl::StrCat("demo-", run_, "-", ++sequence_));
    return client_.Append(SealEvent(body, key));
  }
  // As Submit, where the event must be accepted.
  absl::Status Expect(const std::string& org, v1::EventBody body) { return Expect(org, std::move(body), keys_.at(org)); }
  absl::Status Expect(const std::string& org, v1::EventBody body, const crypto::PrivateKey& key) {
    auto response = Submit(org, std::move(body), key);
    if (!response.ok()) return absl::Status(response.status().code(), absl::StrCat("demo: ", response.status().message()));
    return absl::OkStatus();
  }

  absl::Status Propose(const std::string& proposer, const std::string& id, const std::string& title,
                       const std::string& category) {
    v1::EventBody body;
    auto* p = body.mutable_proposal_submitted();
    p->set_collective_id(Id("gm-federation"));
    p->set_proposal_id(Id(id));
    p->set_title(title);
    p->set_category(category);
    return Expect(proposer, std::move(body));
  }

  absl::Status Vote(const std::string& org, const std::string& proposal, const std::string& gateway,
                    v1::Position position, const std::string& rationale) {
    v1::EventBody body;
    auto* vote = body.mutable_vote_cast();
    vote->set_proposal_id(Id(proposal));
    vote->set_gateway_id(gateway);
    vote->set_position(position);
    vote->set_rationale(rationale);
    return Expect(org, std::move(body));
  }

  // Every provider assents at `gateway`, except those in `objectors`.
  absl::Status Round(const std::string& proposal, const std::string& gateway,
                     const absl::flat_hash_map<std::string, std::string>& objectors = {}) {
    for (const Org& p : Providers()) {
      auto it = objectors.find(p.id);
      if (auto s = it == objectors.end() ? Vote(p.id, proposal, gateway, v1::ASSENT, "agreed")
                                         : Vote(p.id, proposal, gateway, v1::OBJECT, it->second);
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }

  absl::Status SharedBackOffice() {
    const std::string id = "shared-back-office";
    if (auto s = Propose("manchester-university", id, "A shared back-office service for payroll, HR and finance",
                         "corporate-services");
        !s.ok()) {
      return s;
    }
    v1::EventBody impact;
    impact.mutable_impact_declared()->set_proposal_id(Id(id));
    impact.mutable_impact_declared()->set_annual_impact_pence(120'000'000);  // £1.2m a year
    impact.mutable_impact_declared()->set_description("loses its hosted payroll contract income");
    if (auto s = Expect("bolton", std::move(impact)); !s.ok()) return s;
    for (const char* gateway : kGateways) {
      if (auto s = Round(id, gateway); !s.ok()) return s;
    }
    if (auto s = Round(id, "final-decision", {{"christie", "specialist cancer services need their own back office"}});
        !s.ok()) {
      return s;
    }
    Say("(a) shared back office: passed every gateway; The Christie outvoted at the final decision; "
        "Bolton's £1.2m a year tapers 100/66/33/0%");
    return absl::OkStatus();
  }

  absl::Status ResearchCollaboration() {
    const std::string id = "rd-collaboration";
    if (auto s = Propose("christie", id, "A single research and development collaboration", "research"); !s.ok()) {
      return s;
    }
    if (auto s = Round(id, "need-for-change"); !s.ok()) return s;
    if (auto s = Round(id, "principles", {{"manchester-university", "our university partnership must stay separate"}});
        !s.ok()) {
      return s;
    }
    Say("(b) R&D collaboration: vetoed at principles by Manchester University; it stays blocked");
    return absl::OkStatus();
  }

  absl::Status StrokeReconfiguration() {
    const std::string id = "stroke-reconfiguration";
    if (auto s = Propose("salford-royal", id, "Reconfigure hyper-acute stroke care into three centres",
                         "service-reconfiguration");
        !s.ok()) {
      return s;
    }
    if (auto s = Round(id, "need-for-change"); !s.ok()) return s;
    if (auto s = Round(id, "principles"); !s.ok()) return s;
    if (auto s = Round(id, "process", {{"pennine-acute", "the consultation is too short"},
                                      {"tameside-glossop", "travel times for our population"}});
        !s.ok()) {
      return s;
    }
    v1::EventBody call;
    auto* c = call.mutable_decision_called();
    c->set_proposal_id(Id(id));
    c->set_gateway_id("process");
    c->set_outcome(v1::PASS);
    c->set_rationale("clinical evidence on stroke outcomes; the process meets the national assurance tests");
    if (auto s = Expect("nhs-england", std::move(call)); !s.ok()) return s;
    if (auto s = Round(id, "nature-of-change"); !s.ok()) return s;
    if (auto s = Round(id, "final-decision", {{"pennine-acute", "still opposed"}}); !s.ok()) return s;
    Say("(c) stroke reconfiguration: deadlocked at process; NHS England called it, overruling Pennine Acute "
        "and Tameside and Glossop; then adopted");
    return absl::OkStatus();
  }

  absl::Status AttemptedReversal() {
    v1::EventBody body;
    auto* vote = body.mutable_vote_cast();
    vote->set_proposal_id(Id("shared-back-office"));
    vote->set_gateway_id("need-for-change");
    vote->set_position(v1::OBJECT);
    vote->set_rationale("on reflection we no longer accept the need for change");
    auto response = Submit("stockport", std::move(body), keys_.at("stockport"));
    if (response.ok() || ReasonOf(response.status()) != v1::GATEWAY_LOCKED) {
      return absl::InternalError(absl::StrCat("demo: expected the objection to a locked gateway to be refused, got ",
                                              response.ok() ? "acceptance" : response.status().ToString()));
    }
    Say("(d) Stockport tried to object to the locked need-for-change gateway: refused and kept on the record");
    return absl::OkStatus();
  }

  absl::Status ReservedMatter() {
    v1::EventBody body;
    auto* p = body.mutable_proposal_submitted();
    p->set_collective_id(Id("gm-federation"));
    p->set_proposal_id(Id("relocate-maternity"));
    p->set_title("Move maternity services from Trafford to Manchester");
    p->set_category("clinical-service-location");
    auto response = Submit("trafford-community", std::move(body), keys_.at("trafford-community"));
    if (response.ok() || ReasonOf(response.status()) != v1::RESERVED_CATEGORY) {
      return absl::InternalError(absl::StrCat("demo: expected the reserved-matter proposal to be refused, got ",
                                              response.ok() ? "acceptance" : response.status().ToString()));
    }
    Say("(e) a proposal on where maternity services are provided: refused, a reserved matter for the commissioners");
    return absl::OkStatus();
  }

  absl::Status Report() {
    v1::QueryFilter filter;
    filter.set_collective_id(Id("gm-federation"));
    auto vetoes = client_.ListVetoes(filter);
    if (!vetoes.ok()) return vetoes.status();
    Say("\nvetoes (position, member, proposal, gateway, how it ended):");
    for (const auto& v : vetoes->vetoes()) {
      Say(absl::StrCat("  ", v.veto().at(), "  ", v.veto().org_id(), "  ", v.proposal_id(), "  ", v.veto().gateway_id(),
                       "  ", EnumText(v.veto().outcome()), "  \"", v.veto().rationale(), "\""));
    }
    auto overrules = client_.ListOverrules(filter);
    if (!overrules.ok()) return overrules.status();
    Say("\noverrules (call position, member overruled, by, proposal, gateway, rationale):");
    for (const auto& o : overrules->overrules()) {
      Say(absl::StrCat("  ", o.call_position(), "  ", o.org_id(), "  by ", o.caller(), "  ", o.proposal_id(), "  ",
                       o.gateway_id(), "  \"", o.rationale(), "\""));
    }
    auto refusals = client_.ListRefusals(filter);
    if (!refusals.ok()) return refusals.status();
    Say("\nrefusals (position, member, attempted, proposal, gateway, reason):");
    for (const auto& r : refusals->refusals()) {
      Say(absl::StrCat("  ", r.position(), "  ", r.org_id(), "  ", r.attempted_kind(), "  ", r.proposal_id(), "  ",
                       r.gateway_id().empty() ? "-" : r.gateway_id(), "  ", EnumText(r.reason()),
                       r.attempted_reversal() ? "  (attempted reversal)" : ""));
    }
    auto adopted = client_.GetProposal(Id("shared-back-office"));
    if (!adopted.ok()) return adopted.status();
    Say("\ntaper schedules of the shared back office:");
    for (const auto& t : adopted->adoption().tapers()) {
      std::string years;
      for (int64_t pence : t.support_by_year_pence()) absl::StrAppend(&years, " £", pence / 100);
      Say(absl::StrCat("  ", t.org_id(), ": £", t.annual_impact_pence() / 100, " a year; support by year:", years));
    }
    Say(absl::StrCat("\nexplore: ledgerctl --server ", in_.server, " proposal ", Id("stroke-reconfiguration")));
    return absl::OkStatus();
  }

  absl::Status SaveKeys() {
    if (!in_.flags.Has("keys-dir")) return absl::OkStatus();
    const std::string dir = in_.flags.Get("keys-dir");
    std::error_code error;
    std::filesystem::create_directories(dir, error);
    if (error) return absl::UnavailableError(absl::StrCat("demo: cannot create ", dir, ": ", error.message()));
    for (const auto& [org, key] : keys_) {
      if (auto s = crypto::WritePrivateKeyFile(absl::StrCat(dir, "/", Id(org), ".pem"), key); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  const Invocation& in_;
  LedgerClient client_;
  crypto::PrivateKey registrar_key_;
  std::string run_;
  std::string ledger_id_;
  uint64_t sequence_ = 0;
  absl::flat_hash_map<std::string, crypto::PrivateKey> keys_;
};

absl::Status RunDemo(const Invocation& in) {
  auto key = ReadPrivateKey(in.flags.Get("registrar-key"));
  if (!key.ok()) return key.status();
  Demo demo(in, *std::move(key));
  return demo.Run();
}

}  // namespace

Command DemoCommand() {
  return {{.name = "demo",
           .summary = "Play the Greater Manchester scenario against a running ledgerd.",
           .description =
               "Registers 15 providers, 12 commissioners and NHS England (each signing with its\n"
               "own key), forms a provider federation and plays five proposals: one adopted with\n"
               "an outvoted trust and a taper, one vetoed, one called by NHS England, an attempted\n"
               "reversal of a locked gateway, and a reserved matter. Ids get a per-run suffix, so\n"
               "the demo can be run again on the same ledger. Ends with the vetoes, overrules and\n"
               "refusals.",
           .flags = {{"registrar-key", "FILE", "the registrar's PEM key (a new ledgerd writes DATA/registrar.key.pem)", true},
                     {"registrar-id", "ID", "the registrar's organisation id (default registrar)"},
                     {"keys-dir", "DIR", "also write every organisation's key here"}}},
          &RunDemo};
}

}  // namespace ledger::ctl
