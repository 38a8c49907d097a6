#include "ledger/audit/report.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/json_util.h"
#include "ledger/crypto/sha256.h"

namespace ledger::audit {

v1::VerifyReport NewReport() {
  const std::pair<const char*, const char*> checks[] = {
      {"signatures", "every record verifies under a key active for its author at that position"},
      {"integrity", "the Merkle root of the records equals every signed checkpoint; each extends the one before"},
      {"replay", "the rules accept every member event and imply exactly the recorded system events"},
      {"no reversal", "gateways lock in order, once per attempt; nothing accepted changes a locked gateway"},
      {"density", "positions run 0..n-1 without gaps; each idempotency key is used once per author"},
      {"time", "from rules version 2, no record's ledger time is before its signed client time less the clock skew; "
               "with a witness policy, none is after its witnessed checkpoint's quorum time plus the skew"},
      {"witnessed", "the newest checkpoint carries cosignatures meeting the witness policy's quorum: no split view"},
  };
  v1::VerifyReport report;
  for (const auto& [name, meaning] : checks) {
    v1::VerifyCheck* check = report.add_checks();
    check->set_name(name);
    check->set_meaning(meaning);
    check->set_passed(true);
    check->set_completed(true);
  }
  report.set_verified(true);
  return report;
}

void FailCheck(v1::VerifyReport& report, CheckId id, std::optional<uint64_t> position, std::string detail) {
  v1::VerifyCheck& check = *report.mutable_checks(static_cast<int>(id));
  check.set_passed(false);
  if (position.has_value()) {
    check.set_first_failing_position(*position);
  } else {
    check.clear_first_failing_position();
  }
  check.set_detail(std::move(detail));
  for (v1::VerifyCheck& other : *report.mutable_checks()) {
    if (other.passed()) other.set_completed(false);  // stopped before finishing them
  }
  report.set_verified(false);
}

void SkipCheck(v1::VerifyReport& report, CheckId id, std::string why) {
  v1::VerifyCheck& check = *report.mutable_checks(static_cast<int>(id));
  check.set_skipped(true);
  check.set_detail(std::move(why));
}

void SetVerified(v1::VerifyReport& report) {
  bool verified = report.error().empty();
  for (const v1::VerifyCheck& c : report.checks()) verified = verified && c.passed() && c.completed();
  report.set_verified(verified);
}

namespace {

// What the verdict rests on: the operator key, and a checkpoint seen before.
std::string TrustedText(const v1::VerifyReport& r) {
  if (r.operator_key_id().empty()) return "";  // a server's report, or none was read
  std::string out = absl::StrCat("trusted: operator key ", r.operator_key_id(),
                                 r.operator_key_given() ? " (given with --operator-key)"
                                                        : " (the evidence's own: proves self-consistency, not who signed)");
  if (r.trusted_checkpoint_size() == 0) {
    absl::StrAppend(&out, "; no earlier checkpoint given (--trusted-checkpoint)");
  } else {
    absl::StrAppend(&out, "; trusted checkpoint of size ", r.trusted_checkpoint_size(),
                    r.trusted_checkpoint_matched() ? ": matched" : ": NOT matched");
  }
  return out + "\n";
}

}  // namespace

std::string FormatReportText(const v1::VerifyReport& r, const std::string& subject) {
  const double rate = r.seconds() > 0 ? r.records() / r.seconds() : 0;
  std::string out = absl::StrCat(subject, " of ledger ", r.ledger_id(), ": ", r.records(), " records, ",
                                 r.checkpoints(), " signed checkpoints, root ", crypto::ToHex(r.root_hash()), "\n");
  if (!r.error().empty()) absl::StrAppend(&out, "ERROR  ", r.error(), "\n");
  for (const v1::VerifyCheck& c : r.checks()) {
    const char* verdict = !c.passed() ? "FAIL" : !c.completed() ? "----" : c.skipped() ? "SKIP" : "PASS";
    absl::StrAppend(&out, absl::StrFormat("%-4s  %-12s %s", verdict, c.name(), c.meaning()));
    if (!c.passed()) {
      absl::StrAppend(&out, "\n      first failing position: ",
                      c.has_first_failing_position() ? absl::StrCat(c.first_failing_position()) : "-", "\n      ",
                      c.detail());
    } else if (!c.completed()) {
      absl::StrAppend(&out, "  (not completed: verification stopped)");
    } else if (c.skipped()) {
      absl::StrAppend(&out, "\n      ", c.detail());
    } else if (c.name() == "witnessed") {
      absl::StrAppend(&out, "\n      ", r.witnessed_checkpoints(), " witnessed checkpoints, the newest of size ",
                      r.witnessed_size(), "; quorum ", r.witness_quorum());
    }
    absl::StrAppend(&out, "\n");
    if (c.name() == "no reversal") {
      for (const v1::VerifyRefusedAttempt& a : r.reversal_attempts()) {
        absl::StrAppend(&out, "      refused attempt at position ", a.position(), ": ", a.org_id(), " (key ",
                        a.key_id(), ") on gateway ", a.gateway_id(), " of ", a.proposal_id(), "\n");
      }
    }
  }
  absl::StrAppend(&out, "records ", r.records(), ", organisations ", r.organisations(), ", collectives ",
                  r.collectives(), ", proposals ", r.proposals(), ", gateways locked ", r.gateways_locked(),
                  ", vetoes ", r.vetoes(), ", calls ", r.calls(), ", refused attempts ", r.refused_attempts(), "\n",
                  // Changes a registrar made without the organisation, and
                  // what the keys it added that way signed: for a reader to
                  // look at (ledgerctl identity-changes lists them).
                  "identity changes effective by notice ", r.identity_changes_by_notice(),
                  ", records signed by keys added by notice ", r.records_signed_by_notice_keys(), "\n",
                  TrustedText(r),
                  absl::StrFormat("%s in %.2f s on %d threads: %.0f records/s; with the %d signed "
                                  "checkpoints, %.0f signatures/s\n",
                                  r.verified() ? "verified" : "checked", r.seconds(), r.threads(), rate, r.checkpoints(),
                                  r.seconds() > 0 ? (r.records() + r.checkpoints()) / r.seconds() : 0),
                  r.verified() ? "VERIFIED" : "NOT VERIFIED");
  return out;
}

absl::StatusOr<std::string> FormatReportJson(const v1::VerifyReport& report) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(report, &out, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("the report does not print as JSON: ", status.ToString()));
  }
  return out;
}

}  // namespace ledger::audit
