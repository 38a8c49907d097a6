#include "ledger/audit/replay.h"

#include "absl/strings/str_cat.h"
#include "ledger/rules/envelope.h"
#include "ledger/rules/refusal.h"
#include "ledger/rules/rules.h"

namespace ledger::audit {
namespace {

absl::Status At(uint64_t position, absl::string_view what,
               absl::StatusCode code = absl::StatusCode::kFailedPrecondition) {
  return absl::Status(code, absl::StrCat("position ", position, ": ", what));
}

// System events are compared on what the rules decide: the payload, author
// and ledger (the idempotency key and client time are the writer's).
std::string Decided(const v1::EventBody& body) {
  v1::EventBody decided = body;
  decided.clear_idempotency_key();
  decided.clear_client_time_unix_ms();
  return decided.SerializeAsString();
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
  const rules::Context context{position, record.ledger_time_unix_ns()};

  if (state_.has_genesis() && IsSystemEvent(body)) {
    if (body.author() != state_.info().operator_id()) {
      return At(position, absl::StrCat("system event ", EventKind(body), " authored by ", body.author(),
                                       ", not the operator"));
    }
    const v1::KeyState* key = state_.FindKey(envelope.signed_event.key_id());
    if (key == nullptr || key->org_id() != state_.info().operator_id() || key->revoked()) {
      return At(position, absl::StrCat("system event ", EventKind(body), " is not signed by an operator key"),
                absl::StatusCode::kUnauthenticated);
    }
    if (owed_.empty() && body.has_gateway_lapsed()) {
      // Lapses are written when due, before anything else at that time.
      for (v1::EventBody& lapse : rules::LapseDue(state_, context)) owed_.push_back(std::move(lapse));
    }
    if (owed_.empty() && body.has_submission_refused()) {
      const v1::SubmissionRefused& kept = body.submission_refused();
      v1::SignedEvent attempt;
      if (!attempt.ParseFromString(kept.signed_event())) return At(position, "refused submission does not decode");
      auto opened = OpenSubmission(attempt, state_.info().ledger_id());
      if (!opened.ok()) return At(position, absl::StrCat("refused submission: ", opened.status().message()));
      if (auto s = rules::CheckSignature(state_, *opened); !s.ok()) {
        return At(position, absl::StrCat("refused submission was not validly signed: ", s.message()));
      }
      auto applied = rules::Apply(state_, *opened, context);
      if (applied.ok()) {
        return At(position, "a submission recorded as refused is accepted by the rules");
      }
      if (ReasonOf(applied.status()) != kept.reason() || std::string(applied.status().message()) != kept.message()) {
        return At(position, absl::StrCat("refusal recorded as ", v1::Reason_Name(kept.reason()), " \"", kept.message(),
                                         "\"; the rules say ", v1::Reason_Name(ReasonOf(applied.status())), " \"",
                                         applied.status().message(), "\""));
      }
      auto implied = rules::RecordRefusal(state_, *opened, applied.status(), context);
      if (!implied.has_value()) return At(position, "a refusal recorded beyond the organisation's daily allowance");
      owed_.push_back(*std::move(implied));
    }
    if (owed_.empty()) return At(position, absl::StrCat("system event ", EventKind(body), " that the rules do not imply"));
    v1::EventBody expected = std::move(owed_.front());
    owed_.pop_front();
    expected.set_ledger_id(state_.info().ledger_id());
    expected.set_author(state_.info().operator_id());
    if (Decided(expected) != Decided(body)) {
      return At(position, absl::StrCat("system event differs from what the rules imply: expected ",
                                       expected.ShortDebugString(), "; found ", body.ShortDebugString()));
    }
  } else {
    if (!owed_.empty()) {
      return At(position, absl::StrCat("expected the system event ", EventKind(owed_.front()), " ",
                                       owed_.front().ShortDebugString(), "; found ", EventKind(body)));
    }
    if (state_.has_genesis()) {
      const size_t mark = state_.Mark();
      if (!rules::LapseDue(state_, context).empty()) {
        state_.RollbackTo(mark);
        return At(position, "a gateway deadline had passed but its lapse was not written first");
      }
    }
    auto effects = rules::Apply(state_, envelope, context);
    if (!effects.ok()) {
      return At(position, absl::StrCat("the rules refuse this ", EventKind(body), ": ", effects.status().message()),
                absl::IsUnauthenticated(effects.status()) ? absl::StatusCode::kUnauthenticated
                                                          : absl::StatusCode::kFailedPrecondition);
    }
    for (v1::EventBody& implied : effects->system_events) owed_.push_back(std::move(implied));
  }
  state_.CommitChanges();  // nothing to roll back to: the log is the truth
  last_time_ = record.ledger_time_unix_ns();
  next_position_++;
  return absl::OkStatus();
}

absl::Status Replayer::Finish() const {
  if (owed_.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("the log ends at position ", next_position_,
                                                    " without the system event ", EventKind(owed_.front()),
                                                    " the rules imply"));
}

}  // namespace ledger::audit
