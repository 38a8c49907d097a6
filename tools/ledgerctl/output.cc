#include "tools/ledgerctl/output.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "ledger/crypto/sha256.h"
#include "ledger/event/envelope.h"
#include "ledger/merkle/tree.h"

namespace ledger::ctl {

std::string DumpJson(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

absl::StatusOr<std::string> ProtoToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = false;
  auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat(
        "cannot print ", message.GetTypeName(), " as JSON: ",
        absl::string_view(status.message().data(), status.message().size())));
  }
  return out;
}

std::string FormatLedgerTime(int64_t unix_ns) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixNanos(unix_ns),
                          absl::UTCTimeZone());
}

absl::StatusOr<std::string> FormatRecord(const v1::RecordEntry& entry,
                                         uint64_t expected_position, bool json) {
  if (entry.position() != expected_position) {
    return absl::DataLossError(absl::StrCat("expected the record at position ",
                                            expected_position, ", the server sent position ",
                                            entry.position()));
  }
  absl::StatusOr<v1::Record> record = DecodeRecord(entry.record(), expected_position);
  if (!record.ok()) return record.status();
  absl::StatusOr<Envelope> envelope = DecodeStoredEvent(*record);
  if (!envelope.ok()) return envelope.status();
  const v1::EventBody& body = envelope->body;
  const std::string& kind = EventKind(body);

  if (!json) {
    return absl::StrFormat("%-6d  %s  %-20s  %-24s  %s", record->position(),
                           FormatLedgerTime(record->ledger_time_unix_ns()),
                           body.author().empty() ? "-" : body.author(),
                           kind.empty() ? "(no payload)" : kind,
                           envelope->signed_event.key_id());
  }
  absl::StatusOr<std::string> body_json = ProtoToJson(body);
  if (!body_json.ok()) return body_json.status();
  Json body_value = Json::parse(*body_json, nullptr, /*allow_exceptions=*/false);
  if (body_value.is_discarded()) {
    return absl::InternalError(absl::StrCat("protobuf printed the body of record ",
                                            record->position(), " as JSON that does not parse"));
  }
  merkle::Hash leaf = merkle::HashLeaf(entry.record());
  return DumpJson(Json{
      {"position", static_cast<uint64_t>(record->position())},
      {"ledger_time_unix_ns", static_cast<int64_t>(record->ledger_time_unix_ns())},
      {"key_id", envelope->signed_event.key_id()},
      {"signature", crypto::Base64Encode(envelope->signed_event.signature())},
      {"body", std::move(body_value)},
      {"leaf_hash", crypto::ToHex(merkle::AsBytes(leaf))}});
}

absl::StatusOr<std::string> FormatReceipt(const v1::AppendResponse& response, bool json) {
  if (json) return ProtoToJson(response);
  const v1::Receipt& receipt = response.receipt();
  std::string out = absl::StrCat(
      "position: ", receipt.position(), "\n",
      "ledger_time: ", FormatLedgerTime(receipt.ledger_time_unix_ns()), "\n",
      "leaf_hash: ", crypto::ToHex(receipt.leaf_hash()), "\n",
      "tree_size: ", receipt.tree_size());
  if (response.replayed()) {
    absl::StrAppend(&out, "\nreplayed: true (an identical earlier submission; its receipt)");
  }
  return out;
}

void PrintLine(absl::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

}  // namespace ledger::ctl
