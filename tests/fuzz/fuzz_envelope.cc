// Fuzzes the decoders of the write path and the auditor (ledger/rules/
// envelope.h): the bytes are taken as a SignedEvent (OpenSubmission, with and
// without a ledger id) and as a stored Record (DecodeRecord, then
// DecodeStoredEvent). None of them may crash, whatever the bytes; an accepted
// submission must be internally consistent.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ledger/event/envelope.h"
#include "ledger/v1/events.pb.h"
#include "ledger/v1/record.pb.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

void Submission(std::string_view bytes) {
  ledger::v1::SignedEvent signed_event;
  if (!signed_event.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return;
  for (std::string_view ledger_id : {std::string_view("ledger-x"), std::string_view()}) {
    auto envelope = ledger::OpenSubmission(signed_event, ledger_id);
    if (!envelope.ok()) continue;
    // What was accepted is within the documented bounds.
    const auto& body = envelope->body;
    Check(!signed_event.body().empty() && signed_event.body().size() <= ledger::kMaxBodyBytes);
    Check(signed_event.signature().size() == 64);
    Check(!body.author().empty() && body.author().size() <= ledger::kMaxIdBytes);
    Check(!body.idempotency_key().empty() &&
          body.idempotency_key().size() <= ledger::kMaxIdempotencyKeyBytes);
    Check(body.payload_case() != ledger::v1::EventBody::PAYLOAD_NOT_SET);
    Check(ledger_id.empty() ? body.has_genesis() : body.ledger_id() == ledger_id);
    // The stored bytes decode back to the same event.
    ledger::v1::SignedEvent again;
    Check(again.ParseFromString(envelope->signed_bytes));
    Check(again.body() == signed_event.body());
    // Helpers over the decoded body.
    const std::string& kind = ledger::EventKind(body);
    Check(!kind.empty());
    Check(ledger::EventKindNumber(kind) == static_cast<int>(body.payload_case()));
    (void)ledger::IsSystemEvent(body);
  }
}

void Stored(std::string_view bytes) {
  for (uint64_t position : {uint64_t{0}, uint64_t{1}}) {
    auto record = ledger::DecodeRecord(bytes, position);
    if (!record.ok()) {
      Check(record.status().code() == absl::StatusCode::kDataLoss);
      continue;
    }
    Check(record->position() == position);
    auto envelope = ledger::DecodeStoredEvent(*record);
    if (!envelope.ok()) {
      Check(envelope.status().code() == absl::StatusCode::kDataLoss);
      continue;
    }
    Check(envelope->signed_bytes == record->signed_event());
    (void)ledger::EventKind(envelope->body);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Submission(bytes);
  Stored(bytes);
  // A SignedEvent is also a plausible record payload: wrap it so the fuzzer
  // reaches DecodeStoredEvent's inner parse without having to find the
  // Record framing first.
  ledger::v1::Record record;
  record.set_position(0);
  record.set_signed_event(std::string(bytes));
  Stored(record.SerializeAsString());
  return 0;
}
