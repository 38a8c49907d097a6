#include "ledger/audit/replay.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "ledger/event/envelope.h"
#include "ledger/event/refusal.h"
#include "ledger/rules/commit_group.h"
#include "ledger/rules/rules.h"

namespace ledger::audit {
namespace {

absl::Status At(uint64_t position, absl::string_view what,
               absl::StatusCode code = absl::StatusCode::kFailedPrecondition) {
  return absl::Status(code, absl::StrCat("position ", position, ": ", what));
}

// System events are compared on what the rules decide: the payload, author
// and ledger. The idempotency key and client time are the writer's, and
// human-readable text (a refusal's message, a rejection's reason) may be
// worded differently by any release: a log must verify with every later one.
// A refusal's dropped_before is the operator's claim about refusals the log
// does not hold: nothing in the log can confirm or refute it.
v1::EventBody Decided(const v1::EventBody& body) {
  v1::EventBody decided = body;
  decided.clear_idempotency_key();
  decided.clear_client_time_unix_ms();
  if (decided.has_submission_refused()) {
    decided.mutable_submission_refused()->clear_message();
    decided.mutable_submission_refused()->clear_dropped_before();
  }
  if (decided.has_proposal_rejected()) decided.mutable_proposal_rejected()->clear_reason();
  return decided;
}

// Whether the record's event `found` decides what `expected` does (Decided).
// `expected` takes found's undecided fields; if it then serializes to the
// very bytes found was signed as, it is found (events.proto has no map, whose
// order could differ, and no floating-point field, whose NaN is unequal to
// itself): the usual case, decided without copies or reflection. Otherwise
// (different, or encoded otherwise) MessageDifferencer judges.
bool SameDecision(v1::EventBody expected, const Envelope& found) {
  const v1::EventBody& body = found.body;
  expected.set_idempotency_key(body.idempotency_key());
  expected.set_client_time_unix_ms(body.client_time_unix_ms());
  if (expected.has_submission_refused() && body.has_submission_refused()) {
    expected.mutable_submission_refused()->set_message(body.submission_refused().message());
    expected.mutable_submission_refused()->set_dropped_before(body.submission_refused().dropped_before());
  }
  if (expected.has_proposal_rejected() && body.has_proposal_rejected()) {
    expected.mutable_proposal_rejected()->set_reason(body.proposal_rejected().reason());
  }
  if (expected.SerializeAsString() == found.signed_event.body()) return true;
  return google::protobuf::util::MessageDifferencer::Equals(Decided(expected), Decided(body));
}

}  // namespace

absl::Status Replayer::Next(const v1::Record& record, bool signature_verified) {
  auto envelope = DecodeStoredEvent(record);
  if (!envelope.ok()) return At(record.position(), envelope.status().message());
  return Next(record, *envelope, signature_verified);
}

absl::Status Replayer::Next(const v1::Record& record, const Envelope& envelope, bool signature_verified) {
  const uint64_t position = record.position();
  if (position != next_position_) {
    return At(position, absl::StrCat("expected the record at position ", next_position_));
  }
  if (record.ledger_time_unix_ns() < last_time_) {
    return At(position, absl::StrCat("ledger time ", record.ledger_time_unix_ns(), " is before the previous record's ",
                                     last_time_));
  }
  if (!signature_verified) {
    if (auto s = rules::CheckSignature(state_, envelope); !s.ok()) {
      return At(position, absl::StrCat("signature: ", s.message()), absl::StatusCode::kUnauthenticated);
    }
  }
  const v1::EventBody& body = envelope.body;
  const bool system = state_.has_genesis() && IsSystemEvent(body);
  if (system) {
    if (body.author() != state_.info().operator_id()) {
      return At(position, absl::StrCat("system event ", EventKind(body), " authored by ", body.author(),
                                       ", not the operator"));
    }
    const v1::KeyState* key = state_.FindKey(envelope.signed_event.key_id());
    if (key == nullptr || key->org_id() != state_.info().operator_id() || key->revoked()) {
      return At(position, absl::StrCat("system event ", EventKind(body), " is not signed by an operator key"),
                absl::StatusCode::kUnauthenticated);
    }
  }
  if (owed_.empty()) {
    if (auto s = DecideFrom(record, envelope); !s.ok()) return s;
  }
  if (owed_.empty()) return At(position, absl::StrCat("system event ", EventKind(body), " that the rules do not imply"));
  Owed expected = std::move(owed_.front());
  owed_.pop_front();
  if (expected.this_record) {
    if (envelope.signed_bytes != record.signed_event()) {
      return At(position, absl::StrCat("the ", EventKind(body), " decided is not the record's signed event"));
    }
  } else if (!expected.member_bytes.empty()) {
    if (expected.member_bytes != record.signed_event()) {
      return At(position, absl::StrCat("expected the submitted ", EventKind(expected.body), "; found ", EventKind(body)));
    }
  } else if (!system) {
    return At(position, absl::StrCat(expected.body.has_gateway_lapsed()
                                         ? "a gateway deadline had passed but its lapse was not written first: "
                                     : expected.body.has_identity_change_effective()
                                         ? "an identity change's notice had ended but it was not written first: "
                                         : "",
                                     "expected the system event ", EventKind(expected.body), " ",
                                     expected.body.ShortDebugString(), "; found ", EventKind(body)));
  } else if (!SameDecision(expected.body, envelope)) {
    return At(position, absl::StrCat("system event differs from what the rules imply: expected ",
                                     expected.body.ShortDebugString(), "; found ", body.ShortDebugString()));
  }
  state_.CommitChanges();  // nothing to roll back to: the log is the truth
  last_time_ = record.ledger_time_unix_ns();
  next_position_++;
  return absl::OkStatus();
}

absl::Status Replayer::DecideFrom(const v1::Record& record, const Envelope& envelope) {
  const uint64_t position = record.position();
  const v1::EventBody& body = envelope.body;
  // The submission this record stands for: a member event (or Genesis) is
  // one; a SubmissionRefused carries its attempt; a lapse or an identity
  // notice ending stands for a group with no submission. The rules then
  // decide it as the server did.
  std::optional<Envelope> attempt;
  rules::GroupInput input{position, record.ledger_time_unix_ns(), {}, nullptr};
  const char checked = 1;  // Next checked every record's signature first
  if (!state_.has_genesis() || !IsSystemEvent(body)) {
    input.submissions.push_back(rules::SubmissionInput{absl::MakeConstSpan(&envelope, 1), absl::MakeConstSpan(&checked, 1)});
  } else if (body.has_submission_refused()) {
    v1::SignedEvent signed_attempt;
    if (!signed_attempt.ParseFromString(body.submission_refused().signed_event())) {
      return At(position, "refused submission does not decode");
    }
    auto opened = OpenSubmission(signed_attempt, state_.info().ledger_id());
    if (!opened.ok()) return At(position, absl::StrCat("refused submission: ", opened.status().message()));
    attempt = *std::move(opened);
    input.submissions.push_back(rules::SubmissionInput{absl::MakeConstSpan(&*attempt, 1), {}});
  } else if (!body.has_gateway_lapsed() && !body.has_identity_change_effective()) {
    return absl::OkStatus();  // nothing to decide: the caller reports an unimplied system event
  }
  rules::GroupDecision decision = rules::DecideGroup(state_, input);
  if (!input.submissions.empty()) {
    const rules::SubmissionResult& result = decision.submissions.front();
    if (attempt.has_value()) {
      if (result.status.ok()) return At(position, "a submission recorded as refused is accepted by the rules");
      if (!result.refusal_recorded) {
        return At(position, absl::StrCat("a refusal the rules do not record (", v1::Reason_Name(ReasonOf(result.status)),
                                         ": ", result.status.message(),
                                         "): not a broken rule, not validly signed, or beyond the organisation's daily allowance"));
      }
    } else if (!result.status.ok()) {
      return At(position, absl::StrCat("the rules refuse this ", EventKind(body), ": ", result.status.message()),
                absl::IsUnauthenticated(result.status) ? absl::StatusCode::kUnauthenticated
                                                       : absl::StatusCode::kFailedPrecondition);
    }
  }
  for (rules::GroupRecord& decided : decision.records) {
    Owed& owed = owed_.emplace_back();
    if (decided.member == &envelope && owed_.size() == 1) {
      owed.this_record = true;
    } else if (decided.member != nullptr) {
      owed.member_bytes = decided.member->signed_bytes;
      owed.body = decided.member->body;
    } else {
      owed.body = std::move(decided.system);
    }
  }
  return absl::OkStatus();
}

absl::Status Replayer::Finish() const {
  if (owed_.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("the log ends at position ", next_position_,
                                                    " without the system event ", EventKind(owed_.front().body),
                                                    " the rules imply"));
}

absl::Status Replayer::Resume(const absl::btree_map<std::string, std::string>& entries, uint64_t records,
                              int64_t last_time) {
  if (next_position_ != 0 || state_.has_genesis() || !owed_.empty()) {
    return absl::FailedPreconditionError("a replay can only be resumed before its first record");
  }
  for (const auto& [key, value] : entries) {
    if (auto s = state_.LoadEntry(key, value); !s.ok()) return s;
  }
  if (records > 0 && !state_.has_genesis()) {
    return absl::DataLossError(absl::StrCat("the saved rules state of ", records, " records has no Genesis"));
  }
  state_.CommitChanges();
  next_position_ = records;
  last_time_ = last_time;
  return absl::OkStatus();
}

}  // namespace ledger::audit
