#include "ledger/rules/state.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ledger::rules {
namespace {

template <typename Map>
const typename Map::mapped_type* FindIn(const Map& map, const std::string& id) {
  auto it = map.find(id);
  return it == map.end() ? nullptr : &it->second;
}

// Decodes `value` into a message whose id field must equal `id`.
template <typename Message>
bool DecodeEntry(absl::string_view value, absl::string_view id, Message* out,
                 const std::string& (Message::*id_field)() const) {
  return out->ParseFromArray(value.data(), static_cast<int>(value.size())) &&
         (out->*id_field)() == std::string(id);
}

}  // namespace

std::string OrganisationKeyIndex(absl::string_view org_id, absl::string_view key_id) {
  std::string key = absl::StrCat(kOrganisationKeyPrefix, org_id);
  key.push_back('\0');
  absl::StrAppend(&key, key_id);
  return key;
}

std::string IdentityChangeId(uint64_t position) { return absl::StrFormat("%020u", position); }

std::string NoticeKeyRecordId(absl::string_view key_id, uint64_t position) {
  std::string id(key_id);
  id.push_back('\0');
  absl::StrAppend(&id, IdentityChangeId(position));
  return id;
}

int64_t OpenDeadline(const v1::ProposalState& proposal) {
  if (proposal.status() != v1::PROPOSAL_OPEN || proposal.current_gateway() < 0 ||
      proposal.current_gateway() >= proposal.gateway_states_size()) {
    return 0;
  }
  const v1::GatewayState& gateway = proposal.gateway_states(proposal.current_gateway());
  return gateway.status() == v1::GATEWAY_OPEN ? gateway.deadline_unix_ns() : 0;
}

const v1::OrganisationState* State::FindOrganisation(const std::string& org_id) const {
  return FindIn(organisations_, org_id);
}
const v1::KeyState* State::FindKey(const std::string& key_id) const { return FindIn(keys_, key_id); }
const v1::CollectiveState* State::FindCollective(const std::string& id) const {
  return FindIn(collectives_, id);
}
const v1::ProposalState* State::FindProposal(const std::string& id) const {
  return FindIn(proposals_, id);
}
const v1::RefusalCounter* State::FindRefusalCounter(const std::string& org_id) const {
  return FindIn(refusal_counters_, org_id);
}
const v1::IdentityChangeState* State::FindIdentityChange(uint64_t position) const {
  return FindIn(identity_changes_, IdentityChangeId(position));
}

std::optional<int64_t> State::NextDue() const {
  std::optional<int64_t> due;
  if (!deadlines_.empty()) due = deadlines_.begin()->first;
  if (!notices_.empty() && (!due || notices_.begin()->first < *due)) due = notices_.begin()->first;
  return due;
}

const v1::RefusedSubmission* State::FindRefusedSubmission(const std::string& signed_event_sha256) const {
  return FindIn(refused_submissions_, signed_event_sha256);
}

void State::SetInfo(v1::LedgerInfo info) {
  undo_.push_back([this, old = info_, had = has_genesis_] {
    info_ = old;
    has_genesis_ = had;
  });
  info_ = std::move(info);
  has_genesis_ = true;
  dirty_.insert(std::string(kInfoKey));
}

template <typename Map>
void State::Put(Map& map, absl::string_view key_prefix, const std::string& id,
                typename Map::mapped_type value) {
  auto it = map.find(id);
  if (it == map.end()) {
    undo_.push_back([&map, id] { map.erase(id); });
    map.emplace(id, std::move(value));
  } else {
    undo_.push_back([&map, id, old = it->second] { map[id] = old; });
    it->second = std::move(value);
  }
  dirty_.insert(absl::StrCat(key_prefix, id));
}

void State::PutOrganisation(v1::OrganisationState organisation) {
  std::string id = organisation.org_id();
  Put(organisations_, kOrganisationPrefix, id, std::move(organisation));
}

void State::PutKey(v1::KeyState key) {
  std::string id = key.key_id();
  Put(keys_, kKeyPrefix, id, std::move(key));
}

void State::PutCollective(v1::CollectiveState collective) {
  std::string id = collective.collective_id();
  Put(collectives_, kCollectivePrefix, id, std::move(collective));
}

void State::PutRefusalCounter(v1::RefusalCounter counter) {
  std::string id = counter.org_id();
  Put(refusal_counters_, kRefusalCounterPrefix, id, std::move(counter));
}

void State::PutRefusedSubmission(v1::RefusedSubmission refused) {
  std::string id = refused.signed_event_sha256();
  Put(refused_submissions_, kRefusedSubmissionPrefix, id, std::move(refused));
}

void State::IndexDeadline(const v1::ProposalState* before, const v1::ProposalState* after) {
  if (before != nullptr && OpenDeadline(*before) != 0) {
    deadlines_.erase({OpenDeadline(*before), before->proposal_id()});
  }
  if (after != nullptr && OpenDeadline(*after) != 0) {
    deadlines_.insert({OpenDeadline(*after), after->proposal_id()});
  }
}

void State::IndexNotice(const v1::IdentityChangeState* before, const v1::IdentityChangeState* after) {
  if (before != nullptr && before->status() == v1::IDENTITY_CHANGE_PENDING) {
    notices_.erase({before->notice_ends_unix_ns(), before->position()});
  }
  if (after != nullptr && after->status() == v1::IDENTITY_CHANGE_PENDING) {
    notices_.insert({after->notice_ends_unix_ns(), after->position()});
  }
}

void State::PutIdentityChange(v1::IdentityChangeState change) {
  const uint64_t position = change.position();
  std::string id = IdentityChangeId(position);
  IndexNotice(FindIdentityChange(position), &change);
  Put(identity_changes_, kIdentityChangePrefix, id, std::move(change));
  // As PutProposal: the notice index follows the entry's undo.
  std::function<void()> restore_entry = std::move(undo_.back());
  undo_.back() = [this, position, restore_entry = std::move(restore_entry)] {
    IndexNotice(FindIdentityChange(position), nullptr);
    restore_entry();
    IndexNotice(nullptr, FindIdentityChange(position));
  };
}

void State::PutNoticeKeyRecord(v1::NoticeKeyRecord record) {
  std::string id = NoticeKeyRecordId(record.key_id(), record.position());
  Put(notice_key_records_, kNoticeKeyRecordPrefix, id, std::move(record));
}

void State::PutProposal(v1::ProposalState proposal) {
  std::string id = proposal.proposal_id();
  IndexDeadline(FindProposal(id), &proposal);
  Put(proposals_, kProposalPrefix, id, std::move(proposal));
  // Put's undo restores the entry; the deadline index must follow it.
  std::function<void()> restore_entry = std::move(undo_.back());
  undo_.back() = [this, id, restore_entry = std::move(restore_entry)] {
    IndexDeadline(FindProposal(id), nullptr);
    restore_entry();
    IndexDeadline(nullptr, FindProposal(id));
  };
}

void State::RollbackTo(size_t mark) {
  while (undo_.size() > mark) {
    undo_.back()();
    undo_.pop_back();
  }
}

std::vector<State::Change> State::PendingChanges() const {
  std::vector<Change> changes;
  changes.reserve(dirty_.size());
  for (const std::string& key : dirty_) {
    std::optional<std::string> value;
    auto id = [&](absl::string_view prefix) { return key.substr(prefix.size()); };
    if (key == kInfoKey) {
      if (has_genesis_) value = info_.SerializeAsString();
    } else if (absl::StartsWith(key, kOrganisationPrefix)) {
      if (auto* v = FindOrganisation(id(kOrganisationPrefix))) value = v->SerializeAsString();
    } else if (absl::StartsWith(key, kKeyPrefix)) {
      if (auto* v = FindKey(id(kKeyPrefix))) {
        value = v->SerializeAsString();
        changes.emplace_back(OrganisationKeyIndex(v->org_id(), v->key_id()), "");
      }
    } else if (absl::StartsWith(key, kCollectivePrefix)) {
      if (auto* v = FindCollective(id(kCollectivePrefix))) value = v->SerializeAsString();
    } else if (absl::StartsWith(key, kProposalPrefix)) {
      if (auto* v = FindProposal(id(kProposalPrefix))) value = v->SerializeAsString();
    } else if (absl::StartsWith(key, kRefusalCounterPrefix)) {
      if (auto* v = FindRefusalCounter(id(kRefusalCounterPrefix))) value = v->SerializeAsString();
    } else if (absl::StartsWith(key, kIdentityChangePrefix)) {
      if (auto* v = FindIn(identity_changes_, id(kIdentityChangePrefix))) value = v->SerializeAsString();
    } else if (absl::StartsWith(key, kNoticeKeyRecordPrefix)) {
      if (auto* v = FindIn(notice_key_records_, id(kNoticeKeyRecordPrefix))) value = v->SerializeAsString();
    } else if (absl::StartsWith(key, kRefusedSubmissionPrefix)) {
      if (auto* v = FindRefusedSubmission(id(kRefusedSubmissionPrefix))) value = v->SerializeAsString();
    }
    changes.emplace_back(key, std::move(value));
  }
  return changes;
}

void State::CommitChanges() {
  dirty_.clear();
  undo_.clear();
}

absl::Status State::LoadEntry(absl::string_view key, absl::string_view value) {
  auto corrupt = [&] {
    return absl::DataLossError(absl::StrCat("projected state entry \"", key, "\" does not decode"));
  };
  auto id = [&](absl::string_view prefix) { return key.substr(prefix.size()); };
  if (key == kInfoKey) {
    if (!info_.ParseFromArray(value.data(), static_cast<int>(value.size()))) return corrupt();
    has_genesis_ = true;
  } else if (absl::StartsWith(key, kOrganisationPrefix)) {
    v1::OrganisationState v;
    if (!DecodeEntry(value, id(kOrganisationPrefix), &v, &v1::OrganisationState::org_id)) return corrupt();
    organisations_[v.org_id()] = std::move(v);
  } else if (absl::StartsWith(key, kKeyPrefix)) {
    v1::KeyState v;
    if (!DecodeEntry(value, id(kKeyPrefix), &v, &v1::KeyState::key_id)) return corrupt();
    keys_[v.key_id()] = std::move(v);
  } else if (absl::StartsWith(key, kCollectivePrefix)) {
    v1::CollectiveState v;
    if (!DecodeEntry(value, id(kCollectivePrefix), &v, &v1::CollectiveState::collective_id)) return corrupt();
    collectives_[v.collective_id()] = std::move(v);
  } else if (absl::StartsWith(key, kProposalPrefix)) {
    v1::ProposalState v;
    if (!DecodeEntry(value, id(kProposalPrefix), &v, &v1::ProposalState::proposal_id)) return corrupt();
    IndexDeadline(nullptr, &v);
    proposals_[v.proposal_id()] = std::move(v);
  } else if (absl::StartsWith(key, kOrganisationKeyPrefix)) {
    // Derived from the keys; nothing to load.
  } else if (absl::StartsWith(key, kRefusalCounterPrefix)) {
    v1::RefusalCounter v;
    if (!DecodeEntry(value, id(kRefusalCounterPrefix), &v, &v1::RefusalCounter::org_id)) return corrupt();
    refusal_counters_[v.org_id()] = std::move(v);
  } else if (absl::StartsWith(key, kIdentityChangePrefix)) {
    v1::IdentityChangeState v;
    if (!v.ParseFromArray(value.data(), static_cast<int>(value.size())) ||
        IdentityChangeId(v.position()) != id(kIdentityChangePrefix)) {
      return corrupt();
    }
    IndexNotice(nullptr, &v);
    identity_changes_[IdentityChangeId(v.position())] = std::move(v);
  } else if (absl::StartsWith(key, kNoticeKeyRecordPrefix)) {
    v1::NoticeKeyRecord v;
    if (!v.ParseFromArray(value.data(), static_cast<int>(value.size())) ||
        NoticeKeyRecordId(v.key_id(), v.position()) != id(kNoticeKeyRecordPrefix)) {
      return corrupt();
    }
    notice_key_records_[NoticeKeyRecordId(v.key_id(), v.position())] = std::move(v);
  } else if (absl::StartsWith(key, kRefusedSubmissionPrefix)) {
    v1::RefusedSubmission v;
    if (!DecodeEntry(value, id(kRefusedSubmissionPrefix), &v, &v1::RefusedSubmission::signed_event_sha256)) {
      return corrupt();
    }
    refused_submissions_[v.signed_event_sha256()] = std::move(v);
  } else {
    return absl::DataLossError(absl::StrCat("unknown projected state entry \"", key, "\""));
  }
  return absl::OkStatus();
}

absl::btree_map<std::string, std::string> State::Snapshot() const {
  absl::btree_map<std::string, std::string> out;
  if (has_genesis_) out[std::string(kInfoKey)] = info_.SerializeAsString();
  auto add = [&](absl::string_view prefix, const auto& map) {
    for (const auto& [id, value] : map) out[absl::StrCat(prefix, id)] = value.SerializeAsString();
  };
  add(kOrganisationPrefix, organisations_);
  add(kKeyPrefix, keys_);
  add(kCollectivePrefix, collectives_);
  add(kProposalPrefix, proposals_);
  add(kRefusalCounterPrefix, refusal_counters_);
  add(kIdentityChangePrefix, identity_changes_);
  add(kNoticeKeyRecordPrefix, notice_key_records_);
  add(kRefusedSubmissionPrefix, refused_submissions_);
  return out;
}

}  // namespace ledger::rules
