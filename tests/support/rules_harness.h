// For tests that drive the rules directly: one submission (or the passing of
// time) decided exactly as the write path and the auditor decide it, through
// rules::DecideGroup — lapses and identity notices due first, then the submission, then its
// recorded refusal. No harness re-implements that order.
#ifndef TESTS_SUPPORT_RULES_HARNESS_H_
#define TESTS_SUPPORT_RULES_HARNESS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ledger/event/envelope.h"
#include "ledger/rules/commit_group.h"
#include "ledger/rules/rules.h"
#include "ledger/rules/state.h"
#include "ledger/v1/events.pb.h"
#include "ledger/v1/state.pb.h"

namespace ledger::harness {

// What deciding one submission wrote, split the way tests look at it.
struct OneDecision {
  absl::Status status;                       // OK, or the refusal
  std::vector<v1::EventBody> lapses;         // due at that time (lapses, notices), written first
  std::vector<v1::EventBody> system_events;  // implied by the accepted event
  std::optional<v1::EventBody> refusal;      // the SubmissionRefused kept on the record
  uint64_t records = 0;                      // positions used (lapses included)

  bool ok() const { return status.ok(); }
  // Every system event, in log order.
  std::vector<v1::EventBody> AllSystemEvents() const {
    std::vector<v1::EventBody> all = lapses;
    all.insert(all.end(), system_events.begin(), system_events.end());
    if (refusal.has_value()) all.push_back(*refusal);
    return all;
  }
};

// Decides `envelope` alone at `context` (see rules/commit_group.h).
// `signature_checked`: the caller verified its signature bytes already.
inline OneDecision DecideOne(rules::State& state, const Envelope& envelope, const rules::Context& context,
                             bool signature_checked = false) {
  const char checked = signature_checked ? 1 : 0;
  rules::GroupInput input{context.position, context.ledger_time_unix_ns, {}, nullptr};
  input.submissions.push_back(
      rules::SubmissionInput{absl::MakeConstSpan(&envelope, 1), absl::MakeConstSpan(&checked, 1)});
  rules::GroupDecision decision = rules::DecideGroup(state, input);
  OneDecision out;
  out.status = decision.submissions.front().status;
  out.records = decision.records.size();
  bool after_member = false;
  for (rules::GroupRecord& record : decision.records) {
    if (record.member != nullptr) {
      after_member = true;
    } else if (record.system.has_submission_refused() && decision.submissions.front().refusal_recorded) {
      out.refusal = std::move(record.system);
    } else if (after_member) {
      out.system_events.push_back(std::move(record.system));
    } else {
      out.lapses.push_back(std::move(record.system));
    }
  }
  return out;
}

// The passing of time with no submission: the lapses due at `context`.
inline std::vector<v1::EventBody> DecideLapses(rules::State& state, const rules::Context& context) {
  rules::GroupDecision decision =
      rules::DecideGroup(state, rules::GroupInput{context.position, context.ledger_time_unix_ns, {}, nullptr});
  std::vector<v1::EventBody> lapses;
  for (rules::GroupRecord& record : decision.records) lapses.push_back(std::move(record.system));
  return lapses;
}

// A refused submission changes the state only by being kept on the record:
// its author's refusal counter, (rules version 2) the index of refused bytes
// naming the refusal's position and, for an attempt on a proposal, one more
// entry (the refusal's position) in that proposal's history. Returns "" or a
// description of every other change between the snapshots.
inline std::string ChangesBeyondRefusal(const absl::btree_map<std::string, std::string>& before,
                                        const absl::btree_map<std::string, std::string>& after,
                                        const std::string& author, bool refusal_recorded,
                                        uint64_t refusal_position) {
  std::string changes;
  auto value_in = [](const absl::btree_map<std::string, std::string>& snap, const std::string& key) {
    auto it = snap.find(key);
    return it == snap.end() ? std::optional<std::string>() : std::optional<std::string>(it->second);
  };
  absl::btree_map<std::string, std::string> keys = before;
  keys.insert(after.begin(), after.end());
  for (const auto& [key, unused] : keys) {
    const std::optional<std::string> was = value_in(before, key);
    const std::optional<std::string> now = value_in(after, key);
    if (was == now) continue;
    if (refusal_recorded) {
      if (key == absl::StrCat(rules::kRefusalCounterPrefix, author)) continue;
      if (absl::StartsWith(key, rules::kRefusedSubmissionPrefix) && !was.has_value() && now.has_value()) {
        v1::RefusedSubmission refused;
        if (refused.ParseFromString(*now) && refused.position() == refusal_position) continue;
      }
      if (absl::StartsWith(key, rules::kProposalPrefix) && was.has_value() && now.has_value()) {
        v1::ProposalState p_was, p_now;
        if (p_was.ParseFromString(*was) && p_now.ParseFromString(*now) &&
            p_now.history_size() == p_was.history_size() + 1 &&
            p_now.history(p_now.history_size() - 1) == refusal_position) {
          p_now.mutable_history()->RemoveLast();
          if (p_now.SerializeAsString() == p_was.SerializeAsString()) continue;
        }
      }
    }
    absl::StrAppend(&changes, changes.empty() ? "" : ", ", key);
  }
  return changes;
}

}  // namespace ledger::harness

#endif  // TESTS_SUPPORT_RULES_HARNESS_H_
