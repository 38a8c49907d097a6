// How ledgerctl prints: records (a table line or a JSON object per line),
// receipts, and the small JSON objects the proof commands print.
//
// One JSON style: protobuf messages go through protobuf's JSON printer with
// the proto field names (snake_case, as our own objects; `submit` reads both
// spellings), default values printed, 64-bit integers as numbers where they
// fit in 53 bits; everything else is a Json (nlohmann-json, fields
// in the order added) printed by DumpJson. Hashes are lowercase hex;
// signatures base64.
#ifndef TOOLS_LEDGERCTL_OUTPUT_H_
#define TOOLS_LEDGERCTL_OUTPUT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/generated_enum_reflection.h"
#include "google/protobuf/message.h"
#include "ledger/v1/ledger_service.pb.h"
#include "ledger/v1/record.pb.h"
#include "nlohmann/json.hpp"

namespace ledger::ctl {

// A JSON value whose object fields keep the order they were added in.
using Json = nlohmann::ordered_json;

// `json` on one line, compact. Invalid UTF-8 in a string becomes U+FFFD
// rather than an exception.
std::string DumpJson(const Json& json);

// Protobuf JSON of `message` in that style (compact, one line).
absl::StatusOr<std::string> ProtoToJson(const google::protobuf::Message& message);

// UTC ISO-8601 with milliseconds, e.g. "2025-01-31T12:00:00.123Z".
std::string FormatLedgerTime(int64_t unix_ns);

// The header line of the human record table (RecordHeader), then per
// record one human line
//   <position>  <ledger time>  <author>  <kind>  <key id>  <what>
// where <what> names what the event is about (RecordSummary)
// or (json) one object
//   {"position":..,"ledger_time_unix_ns":..,"key_id":..,"signature":base64,
//    "body":<EventBody JSON>,"leaf_hash":hex}.
// DataLoss if the bytes do not decode or their position is not
// `expected_position`.
absl::StatusOr<std::string> FormatRecord(const v1::RecordEntry& entry,
                                         uint64_t expected_position, bool json);

std::string RecordHeader();

// What an event is about, on one line: its identifiers, enums and positions
// ("proposal_id=p gateway_id=g position=ASSENT"); for a SubmissionRefused,
// the attempt it keeps. Free text (rationales) is left out.
std::string RecordSummary(const v1::EventBody& body);

// An enum value without the prefix all its type's values share
// (GATEWAY_OPEN -> OPEN, VETO_STANDING -> STANDING, ASSENT -> ASSENT): the
// one spelling human output uses.
std::string EnumText(const google::protobuf::EnumValueDescriptor& value);
template <typename Enum>
std::string EnumText(Enum value) {
  const auto* descriptor = google::protobuf::GetEnumDescriptor<Enum>()->FindValueByNumber(value);
  return descriptor == nullptr ? absl::StrCat(static_cast<int>(value)) : EnumText(*descriptor);
}

// Human receipt ("position: N" lines) or the AppendResponse as protobuf JSON.
absl::StatusOr<std::string> FormatReceipt(const v1::AppendResponse& response, bool json);

// Writes `text` to stdout and flushes (so a pipe sees each line at once).
void PrintLine(absl::string_view text);

}  // namespace ledger::ctl

#endif  // TOOLS_LEDGERCTL_OUTPUT_H_
