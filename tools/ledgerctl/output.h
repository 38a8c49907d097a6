// How ledgerctl prints: records (a table line or a JSON object per line),
// receipts, and the small JSON objects the proof commands print.
//
// Protobuf messages go through protobuf's JSON printer (lowerCamelCase names,
// as `submit` reads them); everything else is a Json (nlohmann-json, fields
// in the order added) printed by DumpJson. Hashes are lowercase hex;
// signatures base64.
#ifndef TOOLS_LEDGERCTL_OUTPUT_H_
#define TOOLS_LEDGERCTL_OUTPUT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
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

// Protobuf JSON of `message` (compact; lowerCamelCase names).
absl::StatusOr<std::string> ProtoToJson(const google::protobuf::Message& message);

// UTC ISO-8601 with milliseconds, e.g. "2025-01-31T12:00:00.123Z".
std::string FormatLedgerTime(int64_t unix_ns);

// Decodes a served record and formats it: one human line
//   <position>  <ledger time>  <author>  <kind>  <key id>
// or (json) one object
//   {"position":..,"ledger_time_unix_ns":..,"key_id":..,"signature":base64,
//    "body":<EventBody JSON>,"leaf_hash":hex}.
// DataLoss if the bytes do not decode or their position is not
// `expected_position`.
absl::StatusOr<std::string> FormatRecord(const v1::RecordEntry& entry,
                                         uint64_t expected_position, bool json);

// Human receipt ("position: N" lines) or the AppendResponse as protobuf JSON.
absl::StatusOr<std::string> FormatReceipt(const v1::AppendResponse& response, bool json);

// Writes `text` to stdout and flushes (so a pipe sees each line at once).
void PrintLine(absl::string_view text);

}  // namespace ledger::ctl

#endif  // TOOLS_LEDGERCTL_OUTPUT_H_
