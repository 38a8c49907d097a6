#include "ledger/rules/charter.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "ledger/crypto/sha256.h"
#include "ledger/event/refusal.h"
#include "ledger/rules/version.h"

namespace ledger::rules {
namespace {

// Keeps opened time + deadline far inside int64 nanoseconds.
constexpr int64_t kMaxDeadlineSeconds = int64_t{100} * 365 * 24 * 3600;

absl::Status BadCharter(std::string message) {
  return RuleBroken(v1::INVALID_CHARTER, absl::StrCat("charter: ", message));
}

absl::Status ValidateRule(const std::string& where, const v1::DecisionRule& rule) {
  if (rule.quorum_percent() > 100) {
    return BadCharter(absl::StrCat(where, " quorum_percent ", rule.quorum_percent(), " is over 100"));
  }
  if (rule.kind() == v1::SUPERMAJORITY &&
      (rule.denominator() == 0 || rule.numerator() == 0 || rule.numerator() > rule.denominator() ||
       2 * rule.numerator() <= rule.denominator())) {
    return BadCharter(absl::StrCat(where, " supermajority ", rule.numerator(), "/", rule.denominator(),
                                   " must be more than a half and at most 1"));
  }
  if (!v1::RuleKind_IsValid(rule.kind()) || !v1::AbstentionMode_IsValid(rule.abstention())) {
    return BadCharter(absl::StrCat(where, " has an unknown rule kind or abstention mode"));
  }
  return absl::OkStatus();
}

absl::Status CheckOrganisations(const State& state, const std::string& what,
                                const google::protobuf::RepeatedPtrField<std::string>& ids) {
  absl::flat_hash_set<std::string> seen;
  for (const std::string& id : ids) {
    const v1::OrganisationState* org = state.FindOrganisation(id);
    if (org == nullptr) return RuleBroken(v1::UNKNOWN_ORGANISATION, absl::StrCat("charter: ", what, " ", id, " is not registered"));
    if (!org->merged_into().empty()) {
      return RuleBroken(v1::ORGANISATION_MERGED, absl::StrCat("charter: ", what, " ", id, " was merged into ", org->merged_into()));
    }
    if (!seen.insert(id).second) return BadCharter(absl::StrCat(what, " ", id, " is named twice"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string CharterDigest(const v1::Charter& charter) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    charter.SerializeToCodedStream(&coded);
  }
  return std::string(crypto::AsBytes(crypto::Sha256(bytes)));
}

absl::Status ValidateCharter(const State& state, const v1::Charter& charter) {
  if (charter.founding_members().empty()) return BadCharter("no founding members");
  if (auto s = CheckOrganisations(state, "founding member", charter.founding_members()); !s.ok()) return s;
  if (auto s = CheckOrganisations(state, "assurance body", charter.assurance_bodies()); !s.ok()) return s;
  if (auto s = CheckOrganisations(state, "revisit caller", charter.revisit_callers()); !s.ok()) return s;
  if (RulesAtLeast(state, kRulesV2)) {
    if (auto s = CheckOrganisations(state, "amendment caller", charter.amendment_callers()); !s.ok()) return s;
  }
  if (charter.gateways().empty()) return BadCharter("no gateways");
  absl::flat_hash_set<std::string> ids;
  for (const v1::Gateway& gateway : charter.gateways()) {
    if (gateway.id().empty()) return BadCharter("a gateway has no id");
    if (!ids.insert(gateway.id()).second) return BadCharter(absl::StrCat("gateway ", gateway.id(), " appears twice"));
    if (auto s = ValidateRule(absl::StrCat("gateway ", gateway.id()), gateway.rule()); !s.ok()) return s;
    if (auto s = CheckOrganisations(state, absl::StrCat("caller of gateway ", gateway.id()), gateway.callers()); !s.ok()) return s;
    if (gateway.deadline_seconds() < 0 || gateway.deadline_seconds() > kMaxDeadlineSeconds) {
      return BadCharter(absl::StrCat("gateway ", gateway.id(), " deadline must be 0 to ", kMaxDeadlineSeconds,
                                     " seconds (100 years)"));
    }
    if (!gateway.required_assurance().empty() &&
        std::find(charter.assurance_bodies().begin(), charter.assurance_bodies().end(),
                  gateway.required_assurance()) == charter.assurance_bodies().end()) {
      return BadCharter(absl::StrCat("gateway ", gateway.id(), " requires assurance from ",
                                     gateway.required_assurance(), ", who is not an assurance body"));
    }
  }
  if (auto s = ValidateRule("amendment rule", charter.amendment_rule()); !s.ok()) return s;
  if (charter.has_revisit_rule()) {
    if (auto s = ValidateRule("revisit rule", charter.revisit_rule()); !s.ok()) return s;
  }
  for (uint32_t percent : charter.taper().percent_by_year()) {
    if (percent > 100) return BadCharter(absl::StrCat("taper percentage ", percent, " is over 100"));
  }
  return absl::OkStatus();
}

v1::DecisionRule Normalised(const v1::DecisionRule& rule) {
  v1::DecisionRule out = rule;
  if (out.kind() == v1::RULE_KIND_UNSPECIFIED) out.set_kind(v1::UNANIMITY);
  return out;
}

Verdict Evaluate(const v1::DecisionRule& raw_rule, const Count& count) {
  const v1::DecisionRule rule = Normalised(raw_rule);
  const uint64_t electorate = count.electorate;
  if (electorate == 0) return Verdict::kPending;  // nobody can decide it: only a call or a lapse
  const bool abstain_against = rule.abstention() == v1::ABSTENTION_COUNTS_AGAINST;
  const uint64_t voted = count.assent + count.object +
                         (rule.abstention() == v1::ABSTENTION_IGNORED ? 0 : count.abstain);
  const bool quorum = voted * 100 >= uint64_t{rule.quorum_percent()} * electorate;
  if (count.not_voted() > 0) return Verdict::kPending;
  const uint64_t against = count.object + (abstain_against ? count.abstain : 0);
  const uint64_t assent = count.assent;
  bool pass;
  if (rule.kind() == v1::UNANIMITY) {
    pass = against == 0 && assent > 0;
  } else {
    // Without a single assent nothing passes (if every counted vote were an
    // abstention the supermajority test alone would).
    const uint64_t counted = assent + against;
    pass = assent > 0 && (rule.kind() == v1::MAJORITY
                              ? assent * 2 > counted
                              : assent * rule.denominator() >= uint64_t{rule.numerator()} * counted);
  }
  return pass && quorum ? Verdict::kPass : Verdict::kCannotPass;
}

std::vector<int64_t> TaperSchedule(const v1::TaperPolicy& policy, int64_t annual_impact_pence,
                                   uint32_t rules_version) {
  std::vector<int64_t> schedule;
  for (uint32_t percent : policy.percent_by_year()) {
    if (rules_version < kRulesV2) {
      const uint64_t wrapped = static_cast<uint64_t>(annual_impact_pence) * percent;
      schedule.push_back(static_cast<int64_t>(wrapped) / 100);
      continue;
    }
    // A member chooses the impact: multiply in 128 bits so no int64 impact
    // can overflow (the quotient fits whenever percent <= 100, which
    // ValidateCharter ensures), rounding as the int64 formula always did.
    const __int128 pence = static_cast<__int128>(annual_impact_pence) * percent / 100;
    schedule.push_back(static_cast<int64_t>(pence));
  }
  return schedule;
}

std::string NormalisedCategory(std::string_view category) {
  std::string out;
  for (char c : category) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) out.push_back(c);
    if (c >= 'A' && c <= 'Z') out.push_back(static_cast<char>(c - 'A' + 'a'));
  }
  return out;
}

}  // namespace ledger::rules
