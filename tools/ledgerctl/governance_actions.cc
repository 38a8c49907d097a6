// Governance member actions: collectives, charters, proposals, votes, calls.
// Each builds its event and takes the one member path (AppendAsMember).
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "ledger/crypto/sha256.h"
#include "ledger/rules/charter.h"
#include "tools/ledgerctl/client.h"
#include "tools/ledgerctl/commands.h"
#include "tools/ledgerctl/member_actions.h"

namespace ledger::ctl {
namespace {

absl::Status Require(const ParsedFlags& flags, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (absl::Status s = NonEmpty(flags, name); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// A charter in protobuf JSON (see tools/examples/provider-federation-charter.json).
absl::StatusOr<v1::Charter> ReadCharter(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("charter ", path, ": cannot open"));
  std::ostringstream text;
  text << file.rdbuf();
  v1::Charter charter;
  auto parsed = google::protobuf::util::JsonStringToMessage(text.str(), &charter);
  if (!parsed.ok()) {
    std::string why(parsed.message().data(), parsed.message().size());
    return absl::InvalidArgumentError(absl::StrCat("charter ", path, ": not a ledger.v1.Charter in protobuf JSON: ",
                                                   why.substr(0, why.find('\n')), "; nothing was sent"));
  }
  return charter;
}

// "assent", "object", "abstain" (any case).
absl::StatusOr<v1::Position> ParsePosition(const std::string& text) {
  std::string lower = absl::AsciiStrToLower(text);
  if (lower == "assent") return v1::ASSENT;
  if (lower == "object") return v1::OBJECT;
  if (lower == "abstain") return v1::ABSTAIN;
  return UsageError(absl::StrCat("--position must be assent, object or abstain, not \"", text, "\""));
}

absl::Status RunProposeCollective(const Invocation& in) {
  if (auto s = Require(in.flags, {"collective", "charter"}); !s.ok()) return s;
  auto charter = ReadCharter(in.flags.Get("charter"));
  if (!charter.ok()) return charter.status();
  v1::EventBody body;
  body.mutable_collective_proposed()->set_collective_id(in.flags.Get("collective"));
  *body.mutable_collective_proposed()->mutable_charter() = *std::move(charter);
  return AppendAsMember(in, std::move(body));
}

absl::Status RunAcceptCharter(const Invocation& in) {
  if (auto s = Require(in.flags, {"collective"}); !s.ok()) return s;
  std::string digest;
  if (in.flags.Has("charter")) {
    // What the member read itself: the safest thing to accept.
    auto charter = ReadCharter(in.flags.Get("charter"));
    if (!charter.ok()) return charter.status();
    digest = rules::CharterDigest(*charter);
  } else if (in.flags.Has("digest")) {
    if (!crypto::FromHex(in.flags.Get("digest"), &digest) || digest.size() != 32) {
      return UsageError("--digest must be 64 hex characters (a SHA-256)");
    }
  } else {
    LedgerClient client(in.server, in.tls);
    auto collective = client.GetCollective(in.flags.Get("collective"));
    if (!collective.ok()) return collective.status();
    digest = collective->charter_digest();
  }
  v1::EventBody body;
  body.mutable_charter_accepted()->set_collective_id(in.flags.Get("collective"));
  body.mutable_charter_accepted()->set_charter_digest(digest);
  return AppendAsMember(in, std::move(body));
}

absl::Status RunPropose(const Invocation& in) {
  if (auto s = Require(in.flags, {"collective", "proposal", "title"}); !s.ok()) return s;
  v1::EventBody body;
  v1::ProposalSubmitted* p = body.mutable_proposal_submitted();
  p->set_collective_id(in.flags.Get("collective"));
  p->set_proposal_id(in.flags.Get("proposal"));
  p->set_title(in.flags.Get("title"));
  p->set_category(in.flags.Get("category"));
  p->set_summary(in.flags.Get("summary"));
  int actions = in.flags.Has("admit") + in.flags.Has("remove") + in.flags.Has("amend-charter") +
                in.flags.Has("revisit");
  if (actions > 1) return UsageError("give at most one of --admit, --remove, --amend-charter, --revisit");
  if (in.flags.Has("admit")) p->mutable_admit_member()->set_org_id(in.flags.Get("admit"));
  if (in.flags.Has("remove")) p->mutable_remove_member()->set_org_id(in.flags.Get("remove"));
  if (in.flags.Has("amend-charter")) {
    auto charter = ReadCharter(in.flags.Get("amend-charter"));
    if (!charter.ok()) return charter.status();
    *p->mutable_amend_charter() = *std::move(charter);
  }
  if (in.flags.Has("revisit")) {
    std::vector<std::string> parts = absl::StrSplit(in.flags.Get("revisit"), ':');
    if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) {
      return UsageError("--revisit takes PROPOSAL:GATEWAY");
    }
    p->mutable_revisit()->set_proposal_id(parts[0]);
    p->mutable_revisit()->set_gateway_id(parts[1]);
  }
  return AppendAsMember(in, std::move(body));
}

absl::Status RunDeclareInterest(const Invocation& in) {
  if (auto s = Require(in.flags, {"proposal"}); !s.ok()) return s;
  v1::EventBody body;
  body.mutable_interest_declared()->set_proposal_id(in.flags.Get("proposal"));
  body.mutable_interest_declared()->set_description(in.flags.Get("description"));
  return AppendAsMember(in, std::move(body));
}

absl::Status RunVote(const Invocation& in) {
  if (auto s = Require(in.flags, {"proposal", "gateway", "position"}); !s.ok()) return s;
  auto position = ParsePosition(in.flags.Get("position"));
  if (!position.ok()) return position.status();
  v1::EventBody body;
  v1::VoteCast* vote = body.mutable_vote_cast();
  vote->set_proposal_id(in.flags.Get("proposal"));
  vote->set_gateway_id(in.flags.Get("gateway"));
  vote->set_position(*position);
  vote->set_rationale(in.flags.Get("rationale"));
  return AppendAsMember(in, std::move(body));
}

absl::Status RunDeclareImpact(const Invocation& in) {
  if (auto s = Require(in.flags, {"proposal", "annual-impact-pence"}); !s.ok()) return s;
  auto pence = in.flags.GetUint64("annual-impact-pence", 0);
  if (!pence.ok()) return pence.status();
  v1::EventBody body;
  body.mutable_impact_declared()->set_proposal_id(in.flags.Get("proposal"));
  body.mutable_impact_declared()->set_annual_impact_pence(static_cast<int64_t>(*pence));
  body.mutable_impact_declared()->set_description(in.flags.Get("description"));
  return AppendAsMember(in, std::move(body));
}

absl::Status RunRecordAssurance(const Invocation& in) {
  if (auto s = Require(in.flags, {"proposal", "gateway", "rating"}); !s.ok()) return s;
  v1::Rating rating;
  if (!v1::Rating_Parse(absl::AsciiStrToUpper(in.flags.Get("rating")), &rating) ||
      rating == v1::RATING_UNSPECIFIED) {
    return UsageError("--rating must be green, amber or red");
  }
  v1::EventBody body;
  v1::AssuranceRecorded* a = body.mutable_assurance_recorded();
  a->set_proposal_id(in.flags.Get("proposal"));
  a->set_gateway_id(in.flags.Get("gateway"));
  a->set_opinion(in.flags.Get("opinion"));
  a->set_rating(rating);
  if (in.flags.Has("document-digest")) {
    std::string digest;
    if (!crypto::FromHex(in.flags.Get("document-digest"), &digest)) {
      return UsageError("--document-digest must be hex");
    }
    a->set_document_digest(digest);
  }
  return AppendAsMember(in, std::move(body));
}

absl::Status RunCall(const Invocation& in) {
  if (auto s = Require(in.flags, {"proposal", "gateway", "outcome", "rationale"}); !s.ok()) return s;
  std::string outcome = absl::AsciiStrToLower(in.flags.Get("outcome"));
  if (outcome != "pass" && outcome != "fail") return UsageError("--outcome must be pass or fail");
  v1::EventBody body;
  v1::DecisionCalled* call = body.mutable_decision_called();
  call->set_proposal_id(in.flags.Get("proposal"));
  call->set_gateway_id(in.flags.Get("gateway"));
  call->set_outcome(outcome == "pass" ? v1::PASS : v1::FAIL);
  call->set_rationale(in.flags.Get("rationale"));
  return AppendAsMember(in, std::move(body));
}

absl::Status RunWithdraw(const Invocation& in) {
  if (auto s = Require(in.flags, {"proposal"}); !s.ok()) return s;
  v1::EventBody body;
  body.mutable_proposal_withdrawn()->set_proposal_id(in.flags.Get("proposal"));
  body.mutable_proposal_withdrawn()->set_reason(in.flags.Get("reason"));
  return AppendAsMember(in, std::move(body));
}

absl::Status RunLeave(const Invocation& in) {
  if (auto s = Require(in.flags, {"collective"}); !s.ok()) return s;
  v1::EventBody body;
  body.mutable_member_withdrew()->set_collective_id(in.flags.Get("collective"));
  body.mutable_member_withdrew()->set_reason(in.flags.Get("reason"));
  return AppendAsMember(in, std::move(body));
}

Command Action(std::string name, std::string summary, std::vector<FlagSpec> flags,
               absl::Status (*run)(const Invocation&)) {
  return {{.name = std::move(name), .summary = std::move(summary), .description = kMemberDescription,
           .flags = WithMemberFlags(std::move(flags))},
          run};
}

}  // namespace

std::vector<Command> GovernanceActionCommands() {
  return {
      Action("propose-collective", "Propose a collective with its charter (protobuf JSON).",
             {{"collective", "ID", "the new collective's id", true},
              {"charter", "FILE", "the charter, e.g. tools/examples/provider-federation-charter.json", true}},
             &RunProposeCollective),
      Action("accept-charter", "Accept a collective's charter (by its digest).",
             {{"collective", "ID", "the collective", true},
              {"charter", "FILE", "accept the digest of this charter file (what you read)"},
              {"digest", "HEX", "accept this SHA-256 digest; default: the digest the server reports"}},
             &RunAcceptCharter),
      Action("propose", "Submit a proposal to a collective.",
             {{"collective", "ID", "the collective", true},
              {"proposal", "ID", "the new proposal's id", true},
              {"title", "TEXT", "its title", true},
              {"category", "CAT", "its category (a reserved one is refused)"},
              {"summary", "TEXT", "a summary"},
              {"admit", "ORG", "a proposal to admit this organisation"},
              {"remove", "ORG", "a proposal to remove this member"},
              {"amend-charter", "FILE", "a proposal to replace the charter with this one"},
              {"revisit", "PROPOSAL:GATEWAY", "a proposal to reopen a locked gateway (if the charter allows)"}},
             &RunPropose),
      Action("declare-interest", "Declare an interest in a proposal (recuses you from it).",
             {{"proposal", "ID", "the proposal", true}, {"description", "TEXT", "the interest"}},
             &RunDeclareInterest),
      Action("vote", "Vote on a proposal's open gateway.",
             {{"proposal", "ID", "the proposal", true},
              {"gateway", "ID", "the open gateway", true},
              {"position", "POS", "assent, object or abstain", true},
              {"rationale", "TEXT", "why"}},
             &RunVote),
      Action("declare-impact", "Declare the annual impact of a proposal on you (for a taper).",
             {{"proposal", "ID", "the proposal", true},
              {"annual-impact-pence", "N", "the annual impact in pence", true},
              {"description", "TEXT", "what the impact is"}},
             &RunDeclareImpact),
      Action("record-assurance", "Record an assurance opinion against a gateway.",
             {{"proposal", "ID", "the proposal", true},
              {"gateway", "ID", "the gateway", true},
              {"rating", "RAG", "green, amber or red", true},
              {"opinion", "TEXT", "the opinion"},
              {"document-digest", "HEX", "digest of the review document"}},
             &RunRecordAssurance),
      Action("call", "Call a deadlocked or lapsed gateway (a caller named in the charter).",
             {{"proposal", "ID", "the proposal", true},
              {"gateway", "ID", "the gateway", true},
              {"outcome", "pass|fail", "what the call decides", true},
              {"rationale", "TEXT", "why (required)", true}},
             &RunCall),
      Action("withdraw", "Withdraw your proposal (only before its first gateway passes).",
             {{"proposal", "ID", "the proposal", true}, {"reason", "TEXT", "why"}}, &RunWithdraw),
      Action("leave", "Withdraw from a collective (its adopted decisions still bind you).",
             {{"collective", "ID", "the collective", true}, {"reason", "TEXT", "why"}}, &RunLeave),
  };
}

}  // namespace ledger::ctl
