// The verification report: v1::VerifyReport (proto/ledger/v1/ledger_service.proto)
// is the one type the verifier fills (LogVerifier, VerifyBundle), the
// server's AuditService.Verify returns, and `ledgerctl verify`,
// `verify-server` and `audit` print. These helpers make a fresh one, record
// a failed check, and print it as text or JSON. Pure; thread-compatible.
#ifndef LEDGER_AUDIT_REPORT_H_
#define LEDGER_AUDIT_REPORT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "ledger/v1/ledger_service.pb.h"

namespace ledger::audit {

// The seven checks of DESIGN §4, and their index in VerifyReport.checks.
enum class CheckId {
  kSignatures = 0, kIntegrity = 1, kReplay = 2, kNoReversal = 3, kDensity = 4, kTime = 5, kWitnessed = 6
};

// A report with the seven checks, each passing and completed; verified.
v1::VerifyReport NewReport();

// Records that `check` failed at `position` (nullopt: at no position) with
// what was expected versus found; the checks not yet failed are marked not
// completed (verification stops at the first failure).
void FailCheck(v1::VerifyReport& report, CheckId check, std::optional<uint64_t> position, std::string detail);

// Marks `check` as not run, saying why (it still counts as passed).
void SkipCheck(v1::VerifyReport& report, CheckId check, std::string why);

// Sets report.verified: no error, and every check passed and completed.
void SetVerified(v1::VerifyReport& report);

// The report as text: a first line naming `subject` (what was verified:
// "bundle", or e.g. "log of server HOST:PORT (positions 0..n)"), one line per
// check (with the refused reversal attempts under "no reversal"), the counts,
// the speed, and VERIFIED or NOT VERIFIED.
std::string FormatReportText(const v1::VerifyReport& report, const std::string& subject);

// The report as one line of protobuf JSON (field names as in the .proto,
// every field printed even when empty; 64-bit integers are strings and
// root_hash is base64, as proto3 JSON has them).
absl::StatusOr<std::string> FormatReportJson(const v1::VerifyReport& report);

}  // namespace ledger::audit

#endif  // LEDGER_AUDIT_REPORT_H_
