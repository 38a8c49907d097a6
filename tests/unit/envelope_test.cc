// Tests for ledger/event/envelope: OpenSubmission's bound checks and the
// reason each refusal carries, DecodeRecord / DecodeStoredEvent strictness,
// event kind names and numbers, and which events are system events.
#include "ledger/event/envelope.h"

#include <set>
#include <string>

#include "absl/status/status.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"
#include "gtest/gtest.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/event/refusal.h"

namespace ledger {
namespace {

using crypto::PrivateKey;

constexpr char kLedgerId[] = "test-ledger";

PrivateKey AuthorKey() { return *PrivateKey::FromSeed(std::string(32, '\x11')); }

v1::EventBody KeyAddedBody() {
  v1::EventBody body;
  body.set_ledger_id(kLedgerId);
  body.set_author("org-a");
  body.set_idempotency_key("k-1");
  body.set_client_time_unix_ms(1234);
  body.mutable_key_added()->set_org_id("org-a");
  body.mutable_key_added()->set_public_key(std::string(32, 'k'));
  return body;
}

v1::SignedEvent Seal(const v1::EventBody& body) { return SealEvent(body, AuthorKey()); }

// A signed event whose body is `body_bytes` verbatim.
v1::SignedEvent WithBody(std::string body_bytes) {
  v1::SignedEvent event;
  event.set_body(std::move(body_bytes));
  event.set_key_id(AuthorKey().public_key().key_id());
  event.set_signature(crypto::SignEvent(AuthorKey(), event.body()));
  return event;
}

void ExpectRefused(const absl::StatusOr<Envelope>& opened, absl::StatusCode code,
                   v1::Reason reason) {
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), code) << opened.status();
  EXPECT_EQ(ReasonOf(opened.status()), reason) << opened.status();
}

TEST(OpenSubmission, AcceptsAWellFormedEvent) {
  v1::SignedEvent signed_event = Seal(KeyAddedBody());
  auto opened = OpenSubmission(signed_event, kLedgerId);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->signed_bytes, signed_event.SerializeAsString());
  EXPECT_EQ(opened->signed_event.body(), signed_event.body());
  EXPECT_EQ(opened->signed_event.signature(), signed_event.signature());
  EXPECT_EQ(opened->body.author(), "org-a");
  EXPECT_EQ(opened->body.key_added().org_id(), "org-a");
  EXPECT_EQ(opened->body.client_time_unix_ms(), 1234);
}

TEST(OpenSubmission, EmptyBodyIsMissingField) {
  ExpectRefused(OpenSubmission(WithBody(""), kLedgerId), absl::StatusCode::kInvalidArgument,
                v1::MISSING_FIELD);
}

TEST(OpenSubmission, BodyAtTheLimitIsAcceptedAndOneByteMoreIsOversize) {
  // Pad the body with a long name until it is exactly kMaxBodyBytes.
  v1::EventBody body = KeyAddedBody();
  body.clear_key_added();
  body.mutable_organisation_registered()->set_org_id("org-b");
  body.mutable_organisation_registered()->add_public_keys(std::string(32, 'b'));
  std::string name(kMaxBodyBytes - body.ByteSizeLong(), 'n');
  body.mutable_organisation_registered()->set_name(name);
  while (body.ByteSizeLong() > kMaxBodyBytes) {  // length prefixes grew
    name.pop_back();
    body.mutable_organisation_registered()->set_name(name);
  }
  ASSERT_EQ(body.ByteSizeLong(), kMaxBodyBytes);
  auto at_limit = OpenSubmission(Seal(body), kLedgerId);
  EXPECT_TRUE(at_limit.ok()) << at_limit.status();

  name.push_back('n');
  body.mutable_organisation_registered()->set_name(name);
  ASSERT_EQ(body.ByteSizeLong(), kMaxBodyBytes + 1);
  ExpectRefused(OpenSubmission(Seal(body), kLedgerId), absl::StatusCode::kInvalidArgument,
                v1::OVERSIZE);
  // Oversize is decided on the bytes, before anything is parsed.
  ExpectRefused(OpenSubmission(WithBody(std::string(kMaxBodyBytes + 1, '\xff')), kLedgerId),
                absl::StatusCode::kInvalidArgument, v1::OVERSIZE);
}

TEST(OpenSubmission, MissingKeyIdIsMissingField) {
  v1::SignedEvent event = Seal(KeyAddedBody());
  event.clear_key_id();
  ExpectRefused(OpenSubmission(event, kLedgerId), absl::StatusCode::kInvalidArgument,
                v1::MISSING_FIELD);
}

TEST(OpenSubmission, OverlongKeyIdIsOversize) {
  v1::SignedEvent event = Seal(KeyAddedBody());
  event.set_key_id(std::string(kMaxIdBytes + 1, 'a'));
  ExpectRefused(OpenSubmission(event, kLedgerId), absl::StatusCode::kInvalidArgument,
                v1::OVERSIZE);
}

TEST(OpenSubmission, SignatureOfTheWrongLengthIsBadSignature) {
  for (size_t size : {size_t{0}, size_t{63}, size_t{65}, size_t{128}}) {
    SCOPED_TRACE(size);
    v1::SignedEvent event = Seal(KeyAddedBody());
    event.set_signature(std::string(size, 's'));
    ExpectRefused(OpenSubmission(event, kLedgerId), absl::StatusCode::kUnauthenticated,
                  v1::BAD_SIGNATURE);
  }
}

TEST(OpenSubmission, GarbageBodyBytesAreMalformed) {
  // An unterminated varint tag, a truncated length-delimited field, and a
  // wrong wire type for a known field.
  for (const std::string& garbage :
       {std::string("\xff\xff\xff", 3), std::string("\x0a\x10" "abc", 5),
        std::string("\x0d\x01\x02\x03\x04", 5)}) {
    ExpectRefused(OpenSubmission(WithBody(garbage), kLedgerId),
                  absl::StatusCode::kInvalidArgument, v1::MALFORMED);
  }
}

TEST(OpenSubmission, UnknownFieldsInTheBodyAreMalformed) {
  std::string bytes = KeyAddedBody().SerializeAsString();
  bytes += std::string("\xf8\x06\x01", 3);  // field 111, varint 1
  ExpectRefused(OpenSubmission(WithBody(bytes), kLedgerId), absl::StatusCode::kInvalidArgument,
                v1::MALFORMED);
}

TEST(OpenSubmission, UnknownFieldsInTheEnvelopeAreMalformed) {
  std::string bytes = Seal(KeyAddedBody()).SerializeAsString();
  bytes += std::string("\xf8\x06\x01", 3);
  v1::SignedEvent event;
  ASSERT_TRUE(event.ParseFromString(bytes));
  ExpectRefused(OpenSubmission(event, kLedgerId), absl::StatusCode::kInvalidArgument,
                v1::MALFORMED);
}

TEST(OpenSubmission, NoPayloadIsMissingField) {
  v1::EventBody body = KeyAddedBody();
  body.clear_payload();
  ExpectRefused(OpenSubmission(Seal(body), kLedgerId), absl::StatusCode::kInvalidArgument,
                v1::MISSING_FIELD);
}

TEST(OpenSubmission, NoAuthorIsMissingFieldAndOverlongAuthorIsOversize) {
  v1::EventBody body = KeyAddedBody();
  body.clear_author();
  ExpectRefused(OpenSubmission(Seal(body), kLedgerId), absl::StatusCode::kInvalidArgument,
                v1::MISSING_FIELD);
  body.set_author(std::string(kMaxIdBytes + 1, 'a'));
  ExpectRefused(OpenSubmission(Seal(body), kLedgerId), absl::StatusCode::kInvalidArgument,
                v1::OVERSIZE);
}

TEST(OpenSubmission, IdempotencyKeyBounds) {
  v1::EventBody body = KeyAddedBody();
  body.clear_idempotency_key();
  ExpectRefused(OpenSubmission(Seal(body), kLedgerId), absl::StatusCode::kInvalidArgument,
                v1::MISSING_FIELD);

  body.set_idempotency_key(std::string(kMaxIdempotencyKeyBytes, 'i'));
  auto at_limit = OpenSubmission(Seal(body), kLedgerId);
  EXPECT_TRUE(at_limit.ok()) << at_limit.status();

  body.set_idempotency_key(std::string(kMaxIdempotencyKeyBytes + 1, 'i'));
  ExpectRefused(OpenSubmission(Seal(body), kLedgerId), absl::StatusCode::kInvalidArgument,
                v1::OVERSIZE);
}

TEST(OpenSubmission, WrongLedgerIdIsWrongLedger) {
  v1::EventBody body = KeyAddedBody();
  body.set_ledger_id("another-ledger");
  ExpectRefused(OpenSubmission(Seal(body), kLedgerId), absl::StatusCode::kInvalidArgument,
                v1::WRONG_LEDGER);
  body.clear_ledger_id();
  ExpectRefused(OpenSubmission(Seal(body), kLedgerId), absl::StatusCode::kInvalidArgument,
                v1::WRONG_LEDGER);
}

TEST(OpenSubmission, BeforeGenesisOnlyAGenesisIsAcceptable) {
  ExpectRefused(OpenSubmission(Seal(KeyAddedBody()), ""),
                absl::StatusCode::kFailedPrecondition, v1::GENESIS_ONLY_FIRST);

  v1::EventBody genesis = KeyAddedBody();
  genesis.set_author("operator");
  genesis.mutable_genesis()->set_operator_id("operator");
  auto opened = OpenSubmission(Seal(genesis), "");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_TRUE(opened->body.has_genesis());
}

// ------------------------------------------------------------ stored records

std::string RecordBytes(uint64_t position, const v1::SignedEvent& event) {
  v1::Record record;
  record.set_position(position);
  record.set_ledger_time_unix_ns(42);
  record.set_signed_event(event.SerializeAsString());
  return record.SerializeAsString();
}

TEST(DecodeRecord, DecodesAtTheExpectedPosition) {
  v1::SignedEvent event = Seal(KeyAddedBody());
  auto record = DecodeRecord(RecordBytes(7, event), 7);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->position(), 7u);
  EXPECT_EQ(record->ledger_time_unix_ns(), 42);

  auto envelope = DecodeStoredEvent(*record);
  ASSERT_TRUE(envelope.ok()) << envelope.status();
  EXPECT_EQ(envelope->signed_bytes, event.SerializeAsString());
  EXPECT_EQ(envelope->body.author(), "org-a");
  EXPECT_EQ(envelope->signed_event.key_id(), event.key_id());
}

TEST(DecodeRecord, GarbageIsDataLoss) {
  auto record = DecodeRecord(std::string("\xff\xff\xff", 3), 3);
  ASSERT_FALSE(record.ok());
  EXPECT_EQ(record.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(record.status().message().find("3"), absl::string_view::npos) << record.status();

  // Unknown fields in a stored record are corruption too.
  std::string bytes = RecordBytes(3, Seal(KeyAddedBody())) + std::string("\xf8\x06\x01", 3);
  EXPECT_EQ(DecodeRecord(bytes, 3).status().code(), absl::StatusCode::kDataLoss);
}

TEST(DecodeRecord, PositionMismatchIsDataLoss) {
  auto record = DecodeRecord(RecordBytes(5, Seal(KeyAddedBody())), 6);
  ASSERT_FALSE(record.ok());
  EXPECT_EQ(record.status().code(), absl::StatusCode::kDataLoss);
  // Position 0 is encoded as an absent field: a record claiming 0 is still
  // checked.
  EXPECT_EQ(DecodeRecord(RecordBytes(0, Seal(KeyAddedBody())), 1).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_TRUE(DecodeRecord(RecordBytes(0, Seal(KeyAddedBody())), 0).ok());
}

TEST(DecodeStoredEvent, GarbageEventIsDataLoss) {
  v1::Record record;
  record.set_position(9);
  record.set_signed_event(std::string("\xff\xff\xff", 3));
  EXPECT_EQ(DecodeStoredEvent(record).status().code(), absl::StatusCode::kDataLoss);

  v1::SignedEvent event = WithBody(std::string("\xff\xff\xff", 3));
  record.set_signed_event(event.SerializeAsString());
  EXPECT_EQ(DecodeStoredEvent(record).status().code(), absl::StatusCode::kDataLoss);
}

// ------------------------------------------------------------ event kinds

const google::protobuf::OneofDescriptor* Payload() {
  return v1::EventBody::descriptor()->FindOneofByName("payload");
}

// A body with the payload field `field` set (to its empty message).
v1::EventBody BodyOfKind(const google::protobuf::FieldDescriptor* field) {
  v1::EventBody body;
  body.GetReflection()->MutableMessage(&body, field);
  return body;
}

TEST(EventKind, RoundTripsEveryPayloadField) {
  const auto* payload = Payload();
  ASSERT_NE(payload, nullptr);
  ASSERT_GE(payload->field_count(), 24);
  std::set<std::string> names;
  for (int i = 0; i < payload->field_count(); ++i) {
    const auto* field = payload->field(i);
    SCOPED_TRACE(field->name());
    v1::EventBody body = BodyOfKind(field);
    ASSERT_EQ(static_cast<int>(body.payload_case()), field->number());
    EXPECT_EQ(EventKind(body), field->name());
    EXPECT_EQ(EventKindNumber(EventKind(body)), field->number());
    EXPECT_TRUE(names.insert(EventKind(body)).second);
  }
  EXPECT_EQ(EventKind(v1::EventBody()), "");
}

TEST(EventKind, SpotChecksAgainstTheProto) {
  v1::EventBody body;
  body.mutable_vote_cast();
  EXPECT_EQ(EventKind(body), "vote_cast");
  EXPECT_EQ(EventKindNumber("vote_cast"), 24);
  EXPECT_EQ(EventKindNumber("genesis"), 10);
  EXPECT_EQ(EventKindNumber("submission_refused"), 48);
}

TEST(EventKind, UnknownKindsAreZero) {
  EXPECT_EQ(EventKindNumber(""), 0);
  EXPECT_EQ(EventKindNumber("no_such_event"), 0);
  EXPECT_EQ(EventKindNumber("VoteCast"), 0);   // the field name, not the type
  EXPECT_EQ(EventKindNumber("vote_cast "), 0);
  // Fields of EventBody outside the payload are not kinds.
  EXPECT_EQ(EventKindNumber("ledger_id"), 0);
  EXPECT_EQ(EventKindNumber("author"), 0);
  EXPECT_EQ(EventKindNumber("idempotency_key"), 0);
}

TEST(IsSystemEvent, ExactlyTheSystemEventsOfTheDesign) {
  // DESIGN.md §3: the events signed by "system".
  const std::set<std::string> system = {
      "gateway_lapsed",   "gateway_passed",  "decision_adopted",
      "proposal_rejected", "collective_formed", "charter_amended",
      "member_admitted",  "member_removed",  "submission_refused", "identity_change_effective"};
  const auto* payload = Payload();
  int seen = 0;
  for (int i = 0; i < payload->field_count(); ++i) {
    const auto* field = payload->field(i);
    SCOPED_TRACE(field->name());
    const bool expected = system.count(field->name()) > 0;
    seen += expected;
    EXPECT_EQ(IsSystemEvent(BodyOfKind(field)), expected);
  }
  EXPECT_EQ(seen, static_cast<int>(system.size()));  // every one exists in the proto
  EXPECT_FALSE(IsSystemEvent(v1::EventBody()));
}

}  // namespace
}  // namespace ledger
