#include "ledger/rules/commit_group.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "ledger/event/refusal.h"
#include "ledger/rules/rules.h"
#include "ledger/rules/version.h"

namespace ledger::rules {
namespace {


class GroupDecider {
 public:
  GroupDecider(State& state, const GroupInput& input) : state_(state), input_(input) {}

  GroupDecision Decide() && {
    decision_.submissions.resize(input_.submissions.size());
    if (state_.has_genesis()) {
      // Everything due by the group's time, by due time then position: each
      // notice ending (a change taking effect may touch a gateway) after the
      // lapses due no later than it.
      // (A backed State that failed a read stops here: the group is refused.)
      while (!state_.notices().empty() && state_.notices().begin()->first <= input_.ledger_time_unix_ns &&
             state_.source_status().ok()) {
        const auto [due, change_position] = *state_.notices().begin();
        for (v1::EventBody& lapse : LapseDue(state_, Context{next_position(), due})) EmitSystem(std::move(lapse));
        for (v1::EventBody& event : EndNotice(state_, change_position, context())) EmitSystem(std::move(event));
      }
      for (v1::EventBody& lapse : LapseDue(state_, context())) EmitSystem(std::move(lapse));
    }
    for (size_t s = 0; s < input_.submissions.size(); ++s) {
      DecideSubmission(input_.submissions[s], decision_.submissions[s]);
    }
    return std::move(decision_);
  }

 private:
  uint64_t next_position() const { return input_.first_position + decision_.records.size(); }
  Context context() const { return Context{next_position(), input_.ledger_time_unix_ns}; }

  // System events are the ledger's own: authored by the operator.
  void EmitSystem(v1::EventBody body) {
    body.set_ledger_id(state_.info().ledger_id());
    body.set_author(state_.info().operator_id());
    body.set_idempotency_key(absl::StrCat("system/", next_position()));
    GroupRecord& record = decision_.records.emplace_back();
    record.system = std::move(body);
  }

  std::optional<PriorUse> FindPriorUse(const std::string& id) const {
    if (auto it = in_group_.find(id); it != in_group_.end()) return it->second;
    if (input_.prior_uses != nullptr) {
      if (auto it = input_.prior_uses->find(id); it != input_.prior_uses->end()) return it->second;
    }
    return std::nullopt;
  }

  void DecideSubmission(const SubmissionInput& submission, SubmissionResult& result) {
    const size_t mark = state_.Mark();
    const size_t first_record = decision_.records.size();
    const size_t batch_size = submission.envelopes.size();
    std::vector<std::string> ids_added;
    const Envelope* refused = nullptr;  // set when a rule refused an event
    for (size_t i = 0; i < batch_size; ++i) {
      const Envelope& envelope = submission.envelopes[i];
      const v1::EventBody& body = envelope.body;
      // A signature the caller could not check (its key was not known yet)
      // is checked before anything else, a retry included: only a correctly
      // signed submission may be answered from the idempotency index.
      const bool checked = i < submission.signature_checked.size() && submission.signature_checked[i];
      if (!checked) {
        if (absl::Status status = CheckSignature(state_, envelope); !status.ok()) {
          result.status = AtBatchIndex(status, i, batch_size);
          break;
        }
      }
      // Rules version 2: refused bytes are evidence, recorded once; sent
      // again they get the original answer, and cannot spend the author's
      // allowance or bury its other refusals.
      if (RulesAtLeast(state_, kRulesV2)) {
        const crypto::Digest signed_hash = crypto::Sha256(envelope.signed_bytes);
        if (const v1::RefusedSubmission* earlier = state_.FindRefusedSubmission(std::string(crypto::AsBytes(signed_hash)))) {
          result.status = AtBatchIndex(
              Refuse(absl::StatusCode::kFailedPrecondition, earlier->reason(),
                     absl::StrCat("these signed bytes were refused at position ", earlier->position(), " (",
                                  v1::Reason_Name(earlier->reason()), "); they are not recorded again")),
              i, batch_size);
          break;
        }
      }
      const crypto::Digest body_hash = crypto::Sha256(envelope.signed_event.body());
      std::string id = IdempotencyId(body.author(), body.idempotency_key());
      if (std::optional<PriorUse> prior = FindPriorUse(id)) {
        if (prior->body_hash == body_hash) {
          result.positions.emplace_back(prior->position, true);
          continue;
        }
        result.status = AtBatchIndex(
            Refuse(absl::StatusCode::kAlreadyExists, v1::IDEMPOTENCY_CONFLICT,
                   absl::StrCat("idempotency key \"", body.idempotency_key(), "\" of ", body.author(),
                                " was used at position ", prior->position, " for a different event")),
            i, batch_size);
        break;
      }
      auto effects = Apply(state_, envelope, context());
      if (!effects.ok()) {
        result.status = AtBatchIndex(effects.status(), i, batch_size);
        refused = &envelope;
        break;
      }
      const uint64_t position = next_position();
      GroupRecord& record = decision_.records.emplace_back();
      record.member = &envelope;
      record.body_hash = body_hash;
      result.positions.emplace_back(position, false);
      in_group_[id] = PriorUse{position, body_hash};
      ids_added.push_back(std::move(id));
      for (v1::EventBody& system_body : effects->system_events) {
        result.implied.emplace_back(position, next_position());
        EmitSystem(std::move(system_body));
      }
    }
    if (result.status.ok()) return;

    state_.RollbackTo(mark);
    decision_.records.resize(first_record);
    for (const std::string& id : ids_added) in_group_.erase(id);
    result.positions.clear();
    result.implied.clear();
    // A validly signed submission that broke a rule stays on the record,
    // but only as the log alone reproduces it: decided again without the
    // rest of its batch, with the plain refusal an auditor will see.
    if (refused == nullptr) return;
    const size_t probe = state_.Mark();
    absl::Status alone = CheckSignature(state_, *refused);
    if (alone.ok()) alone = Apply(state_, *refused, context()).status();
    state_.RollbackTo(probe);
    if (alone.code() != absl::StatusCode::kFailedPrecondition) return;
    if (std::optional<v1::EventBody> kept =
            RecordRefusal(state_, *refused, alone, context(), &result.refusal_dropped)) {
      // Indexed under every version (state only; the first one kept), so a
      // ledger that adopts version 2 later knows the refusals before it.
      result.refusal_position = next_position();
      IndexRefusedSubmission(state_, refused->signed_bytes, result.refusal_position,
                             kept->submission_refused().reason());
      EmitSystem(*std::move(kept));
      decision_.records.back().refused = refused;
      result.refusal_recorded = true;
    } else if (result.refusal_dropped && RulesAtLeast(state_, kRulesV2)) {
      // (Under version 1 nothing is counted: its refusals stay as an
      // earlier release wrote them, without dropped_before.)
      decision_.dropped.push_back(DroppedRefusal{decision_.records.size(), refused->body.author()});
    }
  }

  State& state_;
  const GroupInput& input_;
  GroupDecision decision_;
  PriorUses in_group_;  // uses accepted earlier in this group
};

}  // namespace

void IndexRefusedSubmission(State& state, absl::string_view signed_event, uint64_t position, v1::Reason reason) {
  std::string signed_hash(crypto::AsBytes(crypto::Sha256(std::string_view(signed_event.data(), signed_event.size()))));
  if (state.FindRefusedSubmission(signed_hash) != nullptr) return;
  v1::RefusedSubmission index;
  index.set_signed_event_sha256(std::move(signed_hash));
  index.set_position(position);
  index.set_reason(reason);
  state.PutRefusedSubmission(std::move(index));
}

std::string IdempotencyId(absl::string_view author, absl::string_view idempotency_key) {
  return absl::StrCat(author, absl::string_view("\0", 1), idempotency_key);
}

GroupDecision DecideGroup(State& state, const GroupInput& input) {
  return GroupDecider(state, input).Decide();
}

}  // namespace ledger::rules
