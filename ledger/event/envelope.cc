#include "ledger/event/envelope.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/event/refusal.h"

namespace ledger {
namespace {

absl::Status Oversize(std::string message) {
  return Refuse(absl::StatusCode::kInvalidArgument, v1::OVERSIZE, std::move(message));
}
absl::Status Missing(std::string message) {
  return Refuse(absl::StatusCode::kInvalidArgument, v1::MISSING_FIELD, std::move(message));
}

bool HasUnknownFields(const google::protobuf::Message& message) {
  return !message.GetReflection()->GetUnknownFields(message).empty();
}

}  // namespace

absl::Status CheckId(absl::string_view what, absl::string_view id) {
  if (id.empty()) return Missing(absl::StrCat(what, " is empty"));
  if (id.size() > kMaxIdBytes) return Oversize(absl::StrCat(what, " is longer than ", kMaxIdBytes, " bytes"));
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_' || c == '.' || c == ':';
    if (!ok) return Malformed(absl::StrCat(what, " \"", id, "\" may use only letters, digits and - _ . :"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Envelope> OpenSubmission(const v1::SignedEvent& signed_event,
                                        std::string_view ledger_id) {
  return OpenSubmission(v1::SignedEvent(signed_event), ledger_id);
}

absl::StatusOr<Envelope> OpenSubmission(v1::SignedEvent&& signed_event,
                                        std::string_view ledger_id) {
  if (signed_event.body().empty()) return Missing("signed event has an empty body");
  if (signed_event.body().size() > kMaxBodyBytes) {
    return Oversize(absl::StrCat("event body is ", signed_event.body().size(),
                                 " bytes; the limit is ", kMaxBodyBytes));
  }
  if (signed_event.key_id().empty()) return Missing("signed event has no key_id");
  if (signed_event.key_id().size() > kMaxIdBytes) return Oversize("key_id is too long");
  if (signed_event.signature().size() != crypto::kSignatureSize) {
    return Refuse(absl::StatusCode::kUnauthenticated, v1::BAD_SIGNATURE,
                  absl::StrCat("signature is ", signed_event.signature().size(),
                               " bytes; Ed25519 signatures are 64"));
  }
  if (HasUnknownFields(signed_event)) return Malformed("signed event has unknown fields");

  Envelope envelope;
  if (!envelope.body.ParseFromString(signed_event.body())) {
    return Malformed("event body is not a valid EventBody protobuf");
  }
  if (HasUnknownFields(envelope.body)) {
    return Malformed("event body has unknown fields (written by a newer client?)");
  }
  const v1::EventBody& body = envelope.body;
  if (body.payload_case() == v1::EventBody::PAYLOAD_NOT_SET) {
    return Missing("event body has no payload");
  }
  if (body.author().empty()) return Missing("event body has no author");
  if (body.author().size() > kMaxIdBytes) return Oversize("author id is too long");
  if (body.idempotency_key().empty()) return Missing("event body has no idempotency_key");
  if (body.idempotency_key().size() > kMaxIdempotencyKeyBytes) {
    return Oversize(absl::StrCat("idempotency_key is ", body.idempotency_key().size(),
                                 " bytes; the limit is ", kMaxIdempotencyKeyBytes));
  }
  if (ledger_id.empty()) {
    if (!body.has_genesis()) {
      return Refuse(absl::StatusCode::kFailedPrecondition, v1::GENESIS_ONLY_FIRST,
                    "the ledger has no Genesis yet");
    }
  } else if (body.ledger_id() != ledger_id) {
    return Refuse(absl::StatusCode::kInvalidArgument, v1::WRONG_LEDGER,
                  absl::StrCat("event is for ledger \"", body.ledger_id(),
                               "\", this is ledger \"", std::string(ledger_id), "\""));
  }
  envelope.signed_bytes = signed_event.SerializeAsString();
  envelope.signed_event = std::move(signed_event);
  return envelope;
}

v1::SignedEvent SealEvent(const v1::EventBody& body, const crypto::PrivateKey& key) {
  v1::SignedEvent signed_event;
  signed_event.set_body(body.SerializeAsString());
  signed_event.set_key_id(key.public_key().key_id());
  signed_event.set_signature(crypto::SignEvent(key, signed_event.body()));
  return signed_event;
}

absl::StatusOr<v1::Record> DecodeRecord(std::string_view record_bytes,
                                        uint64_t expected_position) {
  v1::Record record;
  if (!record.ParseFromArray(record_bytes.data(), static_cast<int>(record_bytes.size())) ||
      HasUnknownFields(record)) {
    return absl::DataLossError(
        absl::StrCat("record at position ", expected_position, " does not decode"));
  }
  if (record.position() != expected_position) {
    return absl::DataLossError(absl::StrCat("record stored at position ", expected_position,
                                            " says it is at position ", record.position()));
  }
  return record;
}

absl::StatusOr<Envelope> DecodeStoredEvent(const v1::Record& record) {
  Envelope envelope;
  if (!envelope.signed_event.ParseFromString(record.signed_event()) ||
      !envelope.body.ParseFromString(envelope.signed_event.body())) {
    return absl::DataLossError(
        absl::StrCat("event of the record at position ", record.position(), " does not decode"));
  }
  envelope.signed_bytes = record.signed_event();
  return envelope;
}

const std::string& EventKind(const v1::EventBody& body) {
  static const std::string* const kNone = new std::string();
  const auto* field = v1::EventBody::descriptor()->FindFieldByNumber(body.payload_case());
  if (field == nullptr) return *kNone;
  return field->name();
}

int EventKindNumber(std::string_view kind) {
  const auto* oneof = v1::EventBody::descriptor()->FindOneofByName("payload");
  for (int i = 0; i < oneof->field_count(); ++i) {
    if (oneof->field(i)->name() == std::string(kind)) return oneof->field(i)->number();
  }
  return 0;
}

bool IsSystemEvent(const v1::EventBody& body) {
  switch (body.payload_case()) {
    case v1::EventBody::kCollectiveFormed:
    case v1::EventBody::kGatewayPassed:
    case v1::EventBody::kGatewayLapsed:
    case v1::EventBody::kDecisionAdopted:
    case v1::EventBody::kProposalRejected:
    case v1::EventBody::kCharterAmended:
    case v1::EventBody::kMemberAdmitted:
    case v1::EventBody::kMemberRemoved:
    case v1::EventBody::kSubmissionRefused:
    case v1::EventBody::kIdentityChangeEffective:
      return true;
    default:
      return false;
  }
}

}  // namespace ledger
