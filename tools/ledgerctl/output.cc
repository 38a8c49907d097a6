#include "tools/ledgerctl/output.h"

#include <cstdio>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "ledger/crypto/sha256.h"
#include "ledger/event/envelope.h"
#include "ledger/merkle/tree.h"

namespace ledger::ctl {

namespace {
constexpr absl::string_view kRecordLineFormat = "%-6s  %-24s  %-20s  %-24s  %-32s  %s";
}  // namespace

std::string RecordHeader() {
  return absl::StrFormat(kRecordLineFormat, "pos", "ledger time (UTC)", "author", "kind", "key id", "what");
}

std::string DumpJson(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

namespace {

// Beyond 2^53 a JSON number loses precision in JavaScript: a string then.
Json JsonInteger(int64_t value) {
  constexpr int64_t kExact = int64_t{1} << 53;
  if (value <= kExact && value >= -kExact) return value;
  return absl::StrCat(value);
}

// Protobuf's JSON prints 64-bit integers as strings (a JavaScript number
// holds 53 bits exactly). Ours are positions, counts and times: printed as
// numbers when they fit in 53 bits, as strings otherwise, field by field.
void IntegersAsNumbers(const google::protobuf::Descriptor& descriptor, Json& object) {
  using google::protobuf::FieldDescriptor;
  if (!object.is_object() || absl::StartsWith(descriptor.full_name(), "google.protobuf.")) return;
  constexpr uint64_t kExact = uint64_t{1} << 53;
  auto convert = [&](const FieldDescriptor& field, Json& value) {
    if (field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      IntegersAsNumbers(*field.message_type(), value);
      return;
    }
    if (!value.is_string()) return;
    const std::string& text = value.get_ref<const std::string&>();
    if (field.cpp_type() == FieldDescriptor::CPPTYPE_INT64) {
      int64_t number = 0;
      if (absl::SimpleAtoi(text, &number) && number <= static_cast<int64_t>(kExact) &&
          number >= -static_cast<int64_t>(kExact)) {
        value = number;
      }
    } else if (field.cpp_type() == FieldDescriptor::CPPTYPE_UINT64) {
      uint64_t number = 0;
      if (absl::SimpleAtoi(text, &number) && number <= kExact) value = number;
    }
  };
  for (int i = 0; i < descriptor.field_count(); ++i) {
    const FieldDescriptor& field = *descriptor.field(i);
    auto found = object.find(field.name());
    if (found == object.end() || field.is_map()) continue;
    if (field.is_repeated() && found->is_array()) {
      for (Json& element : *found) convert(field, element);
    } else {
      convert(field, *found);
    }
  }
}

}  // namespace

absl::StatusOr<std::string> ProtoToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;     // snake_case, as the .proto files and our own JSON
  options.always_print_primitive_fields = true;  // defaults too: a standing veto's outcome (0) says VETO_STANDING
  auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat(
        "cannot print ", message.GetTypeName(), " as JSON: ",
        absl::string_view(status.message().data(), status.message().size())));
  }
  Json json = Json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return absl::InternalError(absl::StrCat("protobuf printed ", message.GetTypeName(), " as JSON that does not parse"));
  }
  IntegersAsNumbers(*message.GetDescriptor(), json);
  return DumpJson(json);
}

std::string FormatLedgerTime(int64_t unix_ns) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixNanos(unix_ns),
                          absl::UTCTimeZone());
}

std::string EnumText(const google::protobuf::EnumValueDescriptor& value) {
  // The prefix every value of the enum shares, up to an underscore.
  const google::protobuf::EnumDescriptor& type = *value.type();
  std::string prefix = type.value(0)->name();
  for (int i = 1; i < type.value_count(); ++i) {
    const std::string& name = type.value(i)->name();
    size_t common = 0;
    while (common < prefix.size() && common < name.size() && prefix[common] == name[common]) ++common;
    prefix.resize(common);
  }
  prefix.resize(type.value_count() > 1 && prefix.rfind('_') != std::string::npos ? prefix.rfind('_') + 1 : 0);
  return value.name().substr(prefix.size());
}

namespace {

// A value from a record, fit for one terminal line: a hostile member chooses
// the strings of its own events (and of the attempt a refusal keeps), so
// control characters are escaped and the length capped.
std::string Printable(absl::string_view value) {
  constexpr size_t kMaxShown = 128;
  std::string out = absl::CHexEscape(value.substr(0, kMaxShown));
  if (value.size() > kMaxShown) absl::StrAppend(&out, "...");
  return out;
}

std::string Summary(const v1::EventBody& body, bool nested) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection& reflection = *body.GetReflection();
  const FieldDescriptor* payload_field =
      reflection.GetOneofFieldDescriptor(body, v1::EventBody::descriptor()->FindOneofByName("payload"));
  if (payload_field == nullptr) return "";
  const google::protobuf::Message& payload = reflection.GetMessage(body, payload_field);
  std::vector<std::string> parts;
  if (body.has_submission_refused() && !nested) {
    // One level only: the attempt kept may itself claim to be a refusal
    // (a member's bytes, refused), nested as deep as its size allows.
    v1::SignedEvent refused;
    v1::EventBody attempted;
    if (refused.ParseFromString(body.submission_refused().signed_event()) && attempted.ParseFromString(refused.body())) {
      parts.push_back(absl::StrCat("refused ", EventKind(attempted), " by ", Printable(attempted.author())));
      if (std::string what = Summary(attempted, true); !what.empty()) parts.push_back(absl::StrCat("(", what, ")"));
    }
  }
  std::vector<const FieldDescriptor*> fields;
  payload.GetReflection()->ListFields(payload, &fields);
  for (const FieldDescriptor* field : fields) {
    if (field->is_repeated()) continue;
    const std::string& name = field->name();
    const auto& r = *payload.GetReflection();
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        // Identifiers, not free text (a rationale can be kilobytes).
        if (field->type() != FieldDescriptor::TYPE_BYTES &&
            (absl::EndsWith(name, "_id") || name == "successor" || name == "caller")) {
          parts.push_back(absl::StrCat(name, "=", Printable(r.GetString(payload, field))));
        }
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        parts.push_back(absl::StrCat(name, "=", EnumText(*r.GetEnum(payload, field))));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        if (absl::EndsWith(name, "_position") || absl::EndsWith(name, "_at")) {
          parts.push_back(absl::StrCat(name, "=", r.GetUInt64(payload, field)));
        }
        break;
      default:
        break;
    }
  }
  return absl::StrJoin(parts, " ");
}

}  // namespace

std::string RecordSummary(const v1::EventBody& body) { return Summary(body, false); }

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
    return absl::StrFormat(kRecordLineFormat, absl::StrCat(record->position()),
                           FormatLedgerTime(record->ledger_time_unix_ns()),
                           body.author().empty() ? "-" : body.author(),
                           kind.empty() ? "(no payload)" : kind,
                           envelope->signed_event.key_id(), RecordSummary(body));
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
      {"ledger_time_unix_ns", JsonInteger(record->ledger_time_unix_ns())},
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
  for (const v1::ImpliedRecord& implied : receipt.implied()) {
    absl::StrAppend(&out, "\nimplied: ", implied.kind(), " at ", implied.position());
  }
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
