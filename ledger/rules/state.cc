#include "ledger/rules/state.h"

#include <type_traits>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ledger::rules {
namespace {

// The id an entry of each kind is stored under (after its key prefix).
const std::string& EntryId(const v1::OrganisationState& m) { return m.org_id(); }
const std::string& EntryId(const v1::KeyState& m) { return m.key_id(); }
const std::string& EntryId(const v1::CollectiveState& m) { return m.collective_id(); }
const std::string& EntryId(const v1::ProposalState& m) { return m.proposal_id(); }
const std::string& EntryId(const v1::RefusalCounter& m) { return m.org_id(); }
const std::string& EntryId(const v1::RefusedSubmission& m) { return m.signed_event_sha256(); }
std::string EntryId(const v1::IdentityChangeState& m) { return IdentityChangeId(m.position()); }
std::string EntryId(const v1::NoticeKeyRecord& m) { return NoticeKeyRecordId(m.key_id(), m.position()); }

absl::string_view AbslView(std::string_view view) { return absl::string_view(view.data(), view.size()); }

// An entry as the current layout holds it: a collective no longer lists its
// proposals (the "cp/" index does; entries of earlier releases did).
template <typename Message>
void Upgrade(Message*) {}
void Upgrade(v1::CollectiveState* collective) { collective->clear_proposal_ids(); }

// Decodes `value` into a message whose id must equal `id`.
template <typename Message>
bool DecodeEntry(absl::string_view value, absl::string_view id, Message* out) {
  if (!out->ParseFromArray(value.data(), static_cast<int>(value.size())) || EntryId(*out) != id) return false;
  Upgrade(out);
  return true;
}

absl::Status Corrupt(absl::string_view key) {
  return absl::DataLossError(absl::StrCat("projected state entry \"", key, "\" does not decode"));
}

// The time of a derived index key (after its prefix), or nullopt.
std::optional<int64_t> IndexTime(absl::string_view rest) {
  uint64_t time = 0;
  if (rest.size() < 16 || !absl::SimpleHexAtoi(rest.substr(0, 16), &time)) return std::nullopt;
  return static_cast<int64_t>(time);
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

std::string CollectiveProposalPrefix(absl::string_view collective_id) {
  std::string prefix = absl::StrCat(kCollectiveProposalPrefix, collective_id);
  prefix.push_back('\0');
  return prefix;
}

std::string CollectiveProposalKey(absl::string_view collective_id, uint64_t submitted_at,
                                  absl::string_view proposal_id) {
  std::string key = CollectiveProposalPrefix(collective_id);
  absl::StrAppend(&key, IdentityChangeId(submitted_at));
  key.push_back('\0');
  absl::StrAppend(&key, proposal_id);
  return key;
}

std::optional<std::string> CollectiveProposalId(absl::string_view key, absl::string_view prefix) {
  if (!absl::StartsWith(key, prefix)) return std::nullopt;
  const absl::string_view rest = key.substr(prefix.size());
  uint64_t position = 0;
  if (rest.size() < 22 || rest[20] != '\0' || !absl::SimpleAtoi(rest.substr(0, 20), &position)) return std::nullopt;
  return std::string(rest.substr(21));
}

std::string DeadlineIndexKey(int64_t deadline, absl::string_view proposal_id) {
  return absl::StrCat(kDeadlineIndexPrefix, absl::Hex(deadline, absl::kZeroPad16), proposal_id);
}
std::string NoticeIndexKey(int64_t notice_end, uint64_t position) {
  return absl::StrCat(kNoticeIndexPrefix, absl::Hex(notice_end, absl::kZeroPad16), IdentityChangeId(position));
}

int64_t OpenDeadline(const v1::ProposalState& proposal) {
  if (proposal.status() != v1::PROPOSAL_OPEN || proposal.current_gateway() < 0 ||
      proposal.current_gateway() >= proposal.gateway_states_size()) {
    return 0;
  }
  const v1::GatewayState& gateway = proposal.gateway_states(proposal.current_gateway());
  return gateway.status() == v1::GATEWAY_OPEN ? gateway.deadline_unix_ns() : 0;
}

void State::FailSource(absl::Status status) const {
  if (source_status_.ok()) source_status_ = std::move(status);
}

template <typename Message>
const Message* State::Lookup(Cache<Message>& cache, absl::string_view key_prefix, const std::string& id) const {
  auto it = cache.find(id);
  if (it != cache.end()) return &it->second;
  if (source_ == nullptr) return nullptr;
  const std::string key = absl::StrCat(key_prefix, id);
  absl::StatusOr<std::optional<std::string>> value = source_->Get(key);
  if (!value.ok()) {
    FailSource(value.status());
    return nullptr;
  }
  if (!value->has_value()) return nullptr;
  Message entry;
  if (!DecodeEntry(**value, id, &entry)) {
    FailSource(Corrupt(key));
    return nullptr;
  }
  held_bytes_ += key.size() + (*value)->size();
  return &cache.emplace(id, std::move(entry)).first->second;
}

template <typename Message>
void State::ForEach(const Cache<Message>& cache, absl::string_view key_prefix,
                    const std::function<void(const Message&)>& visit) const {
  absl::flat_hash_set<std::string> visited;  // held entries the source also has
  if (source_ != nullptr) {
    absl::Status scanned = source_->Scan(std::string(key_prefix), [&](std::string_view key, std::string_view value) {
      const absl::string_view id = AbslView(key).substr(key_prefix.size());
      if (auto it = cache.find(id); it != cache.end()) {
        visited.insert(it->first);
        visit(it->second);  // as changed since the commit
        return true;
      }
      Message entry;
      if (!DecodeEntry(AbslView(value), id, &entry)) {
        FailSource(Corrupt(AbslView(key)));
        return false;
      }
      visit(entry);
      return true;
    });
    if (!scanned.ok()) FailSource(std::move(scanned));
  }
  for (const auto& [id, entry] : cache) {
    if (!visited.contains(id)) visit(entry);
  }
}

const v1::OrganisationState* State::FindOrganisation(const std::string& org_id) const {
  return Lookup(organisations_, kOrganisationPrefix, org_id);
}
const v1::KeyState* State::FindKey(const std::string& key_id) const { return Lookup(keys_, kKeyPrefix, key_id); }
const v1::CollectiveState* State::FindCollective(const std::string& id) const {
  return Lookup(collectives_, kCollectivePrefix, id);
}
const v1::ProposalState* State::FindProposal(const std::string& id) const {
  return Lookup(proposals_, kProposalPrefix, id);
}
const v1::RefusalCounter* State::FindRefusalCounter(const std::string& org_id) const {
  return Lookup(refusal_counters_, kRefusalCounterPrefix, org_id);
}
const v1::IdentityChangeState* State::FindIdentityChange(uint64_t position) const {
  return Lookup(identity_changes_, kIdentityChangePrefix, IdentityChangeId(position));
}
void State::ForEachCollective(const std::function<void(const v1::CollectiveState&)>& visit) const {
  ForEach(collectives_, kCollectivePrefix, visit);
}
void State::ForEachProposal(const std::function<void(const v1::ProposalState&)>& visit) const {
  ForEach(proposals_, kProposalPrefix, visit);
}

absl::Status State::Open(const StateSource* source, size_t cache_bytes, bool* rebuilt) {
  source_ = source;
  cache_bytes_ = cache_bytes;
  *rebuilt = false;
  absl::StatusOr<std::optional<std::string>> info = source_->Get(std::string(kInfoKey));
  if (!info.ok()) return info.status();
  if (!info->has_value()) {  // a new ledger: its indexes start now
    write_index_marker_ = true;
    return absl::OkStatus();
  }
  if (!info_.ParseFromString(**info)) return Corrupt(kInfoKey);
  has_genesis_ = true;
  absl::StatusOr<std::optional<std::string>> marker = source_->Get(std::string(kDerivedIndexesKey));
  if (!marker.ok()) return marker.status();
  if (!marker->has_value()) {
    // An earlier release's data directory: derive the indexes once.
    *rebuilt = true;
    ForEachProposal([&](const v1::ProposalState& proposal) { IndexDeadline(nullptr, &proposal); });
    ForEach<v1::IdentityChangeState>(identity_changes_, kIdentityChangePrefix,
                                     [&](const v1::IdentityChangeState& change) { IndexNotice(nullptr, &change); });
    write_index_marker_ = true;
    if (auto s = MigrateCollectiveProposals(); !s.ok()) return s;
    return source_status_;
  }
  if (**marker != kDerivedIndexesVersion) {
    if (**marker != "1") {
      return absl::FailedPreconditionError(absl::StrCat("the projected state's layout \"", **marker,
                                                        "\" is not one this release knows (a later release's?)"));
    }
    // The release before the collective-proposal index: derive it once (the
    // deadline and notice indexes below are as that release wrote them).
    write_index_marker_ = true;
    if (auto s = MigrateCollectiveProposals(); !s.ok()) return s;
  }
  absl::Status bad;
  auto load = [&](absl::string_view prefix, auto insert) {
    absl::Status scanned = source_->Scan(std::string(prefix), [&](std::string_view key, std::string_view) {
      const absl::string_view rest = AbslView(key).substr(prefix.size());
      const std::optional<int64_t> time = IndexTime(rest);
      if (!time.has_value() || !insert(*time, rest.substr(16))) {
        bad = Corrupt(AbslView(key));
        return false;
      }
      return true;
    });
    return scanned.ok() ? bad : scanned;
  };
  if (auto s = load(kDeadlineIndexPrefix, [&](int64_t deadline, absl::string_view id) {
        deadlines_.insert({deadline, std::string(id)});
        return !id.empty();
      });
      !s.ok()) {
    return s;
  }
  return load(kNoticeIndexPrefix, [&](int64_t notice_end, absl::string_view id) {
    uint64_t position = 0;
    if (!absl::SimpleAtoi(id, &position) || IdentityChangeId(position) != id) return false;
    notices_.insert({notice_end, position});
    return true;
  });
}

absl::Status State::MigrateCollectiveProposals() {
  absl::Status bad;
  absl::Status scanned = source_->Scan(std::string(kProposalPrefix), [&](std::string_view key, std::string_view value) {
    v1::ProposalState proposal;
    if (!DecodeEntry(AbslView(value), AbslView(key).substr(kProposalPrefix.size()), &proposal)) {
      bad = Corrupt(AbslView(key));
      return false;
    }
    migration_.emplace_back(
        CollectiveProposalKey(proposal.collective_id(), proposal.submitted_at(), proposal.proposal_id()), "");
    return true;
  });
  if (!scanned.ok()) return scanned;
  if (!bad.ok()) return bad;
  scanned = source_->Scan(std::string(kCollectivePrefix), [&](std::string_view key, std::string_view value) {
    v1::CollectiveState collective;
    if (!collective.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      bad = Corrupt(AbslView(key));
      return false;
    }
    if (collective.proposal_ids_size() > 0) {
      collective.clear_proposal_ids();
      migration_.emplace_back(std::string(key), collective.SerializeAsString());
    }
    return true;
  });
  if (!scanned.ok()) return scanned;
  return bad;
}

std::optional<int64_t> State::NextDue() const {
  std::optional<int64_t> due;
  if (!deadlines_.empty()) due = deadlines_.begin()->first;
  if (!notices_.empty() && (!due || notices_.begin()->first < *due)) due = notices_.begin()->first;
  return due;
}

const v1::RefusedSubmission* State::FindRefusedSubmission(const std::string& signed_event_sha256) const {
  return Lookup(refused_submissions_, kRefusedSubmissionPrefix, signed_event_sha256);
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

template <typename Message>
void State::Put(Cache<Message>& cache, absl::string_view key_prefix, const std::string& id, Message value) {
  if (source_ != nullptr) held_bytes_ += key_prefix.size() + id.size() + value.ByteSizeLong();
  if (Lookup(cache, key_prefix, id) == nullptr) {
    undo_.push_back([&cache, id] { cache.erase(id); });
    cache.emplace(id, std::move(value));
  } else {
    // The old value moves into the journal: a change never copies an entry.
    Message& held = cache.find(id)->second;
    undo_.push_back([&cache, id, old = std::move(held)]() mutable { cache[id] = std::move(old); });
    held = std::move(value);
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
    dirty_indexes_.insert(DeadlineIndexKey(OpenDeadline(*before), before->proposal_id()));
  }
  if (after != nullptr && OpenDeadline(*after) != 0) {
    deadlines_.insert({OpenDeadline(*after), after->proposal_id()});
    dirty_indexes_.insert(DeadlineIndexKey(OpenDeadline(*after), after->proposal_id()));
  }
}

void State::IndexDeadline(const std::string& proposal_id, int64_t before, int64_t after) {
  if (before != 0) {
    deadlines_.erase({before, proposal_id});
    dirty_indexes_.insert(DeadlineIndexKey(before, proposal_id));
  }
  if (after != 0) {
    deadlines_.insert({after, proposal_id});
    dirty_indexes_.insert(DeadlineIndexKey(after, proposal_id));
  }
}

void State::IndexNotice(const v1::IdentityChangeState* before, const v1::IdentityChangeState* after) {
  if (before != nullptr && before->status() == v1::IDENTITY_CHANGE_PENDING) {
    notices_.erase({before->notice_ends_unix_ns(), before->position()});
    dirty_indexes_.insert(NoticeIndexKey(before->notice_ends_unix_ns(), before->position()));
  }
  if (after != nullptr && after->status() == v1::IDENTITY_CHANGE_PENDING) {
    notices_.insert({after->notice_ends_unix_ns(), after->position()});
    dirty_indexes_.insert(NoticeIndexKey(after->notice_ends_unix_ns(), after->position()));
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
  const v1::ProposalState* before = FindProposal(id);
  if (before == nullptr) {
    // Written as the proposal is then (absent if rolled back: PendingChanges).
    dirty_indexes_.insert(CollectiveProposalKey(proposal.collective_id(), proposal.submitted_at(), id));
  }
  IndexDeadline(before, &proposal);
  Put(proposals_, kProposalPrefix, id, std::move(proposal));
  // Put's undo restores the entry; the deadline index must follow it.
  std::function<void()> restore_entry = std::move(undo_.back());
  undo_.back() = [this, id, restore_entry = std::move(restore_entry)] {
    IndexDeadline(FindProposal(id), nullptr);
    restore_entry();
    IndexDeadline(nullptr, FindProposal(id));
  };
}

namespace {

// The lists of a proposal an edit appends to or leaves alone, moved out of
// it (Swap: nothing is copied) and back.
struct LongLists {
  std::vector<google::protobuf::RepeatedPtrField<v1::VoteRecord>> votes;
  google::protobuf::RepeatedField<uint64_t> history;
  google::protobuf::RepeatedPtrField<v1::VetoState> vetoes;
  google::protobuf::RepeatedPtrField<v1::GatewayState> superseded;
  v1::ProposalSubmitted submission;
  v1::Charter charter;

  void SwapWith(v1::ProposalState& proposal) {
    votes.resize(static_cast<size_t>(proposal.gateway_states_size()));
    for (int i = 0; i < proposal.gateway_states_size(); ++i) {
      votes[static_cast<size_t>(i)].Swap(proposal.mutable_gateway_states(i)->mutable_votes());
    }
    history.Swap(proposal.mutable_history());
    vetoes.Swap(proposal.mutable_vetoes());
    superseded.Swap(proposal.mutable_superseded());
    submission.Swap(proposal.mutable_submission());
    charter.Swap(proposal.mutable_charter());
  }
};

// What an EditProposal changed, to undo it: the proposal without its long
// lists, how long those were, and each veto's end.
struct ProposalDelta {
  v1::ProposalState rest;
  std::vector<int> votes;  // per gateway state
  int history = 0;
  int superseded = 0;
  std::vector<std::pair<v1::VetoOutcome, uint64_t>> vetoes;  // outcome, ended_at

  // Whether `after` is `before` with only what an edit may do (see
  // EditProposal): checked by sizes, which is what the undo relies on.
  bool Allows(const v1::ProposalState& after) const {
    if (after.gateway_states_size() != static_cast<int>(votes.size()) || after.history_size() < history ||
        after.vetoes_size() < static_cast<int>(vetoes.size()) || after.superseded_size() != superseded) {
      return false;
    }
    for (size_t i = 0; i < votes.size(); ++i) {
      if (after.gateway_states(static_cast<int>(i)).votes_size() < votes[i]) return false;
    }
    return true;
  }
};

}  // namespace

bool State::EditProposal(const std::string& id, const std::function<void(v1::ProposalState&)>& edit) {
  if (Lookup(proposals_, kProposalPrefix, id) == nullptr) return false;
  v1::ProposalState& held = proposals_.find(id)->second;
  ProposalDelta delta;
  {
    LongLists lists;
    lists.SwapWith(held);
    delta.rest = held;  // without its long lists: a bounded copy
    lists.SwapWith(held);
  }
  for (const v1::GatewayState& gateway : held.gateway_states()) delta.votes.push_back(gateway.votes_size());
  delta.history = held.history_size();
  delta.superseded = held.superseded_size();
  for (const v1::VetoState& veto : held.vetoes()) delta.vetoes.emplace_back(veto.outcome(), veto.ended_at());
  const int64_t before_deadline = OpenDeadline(held);
  ProposalDelta shape;  // the sizes alone, to check the edit against
  shape.votes = delta.votes;
  shape.history = delta.history;
  shape.superseded = delta.superseded;
  shape.vetoes.resize(delta.vetoes.size());
  // Pushed before the edit: whatever the edit journals (another entry it
  // puts) is undone first.
  undo_.push_back([this, id, delta = std::move(delta), before_deadline]() mutable {
    v1::ProposalState& edited = proposals_.find(id)->second;  // held until the next commit
    IndexDeadline(id, OpenDeadline(edited), 0);
    for (size_t i = 0; i < delta.votes.size(); ++i) {
      auto* votes = edited.mutable_gateway_states(static_cast<int>(i))->mutable_votes();
      votes->DeleteSubrange(delta.votes[i], votes->size() - delta.votes[i]);
    }
    edited.mutable_history()->Truncate(delta.history);
    auto* vetoes = edited.mutable_vetoes();
    vetoes->DeleteSubrange(static_cast<int>(delta.vetoes.size()), vetoes->size() - static_cast<int>(delta.vetoes.size()));
    for (size_t i = 0; i < delta.vetoes.size(); ++i) {
      v1::VetoState* veto = vetoes->Mutable(static_cast<int>(i));
      veto->set_outcome(delta.vetoes[i].first);
      veto->set_ended_at(delta.vetoes[i].second);
    }
    LongLists lists;
    lists.SwapWith(edited);      // the restored lists out of the edited proposal
    edited.Swap(&delta.rest);    // the rest as it was
    lists.SwapWith(edited);      // and the lists into it
    IndexDeadline(id, 0, before_deadline);
  });
  edit(held);
  if (!shape.Allows(held)) {
    // The journal could not undo it exactly: nothing decided now may be committed.
    FailSource(absl::InternalError(absl::StrCat("proposal ", id, " was edited beyond appending (a rules bug)")));
  } else if (source_ != nullptr) {
    size_t added = 0;  // what the edit appended, as Put counts a whole entry
    for (size_t i = 0; i < shape.votes.size(); ++i) {
      const auto& votes = held.gateway_states(static_cast<int>(i)).votes();
      for (int v = shape.votes[i]; v < votes.size(); ++v) added += votes[v].ByteSizeLong();
    }
    for (int v = static_cast<int>(shape.vetoes.size()); v < held.vetoes_size(); ++v) added += held.vetoes(v).ByteSizeLong();
    held_bytes_ += added + 10 * static_cast<size_t>(held.history_size() - shape.history);
  }
  IndexDeadline(id, before_deadline, OpenDeadline(held));
  dirty_.insert(absl::StrCat(kProposalPrefix, id));
  return true;
}

void State::RollbackTo(size_t mark) {
  while (undo_.size() > mark) {
    undo_.back()();
    undo_.pop_back();
  }
}

std::vector<State::Change> State::PendingChanges() const {
  std::vector<Change> changes = migration_;  // first: a pending change of the same entry follows it
  changes.reserve(migration_.size() + dirty_.size() + dirty_indexes_.size() + 1);
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
      if (auto* v = Lookup(identity_changes_, kIdentityChangePrefix, id(kIdentityChangePrefix))) value = v->SerializeAsString();
    } else if (absl::StartsWith(key, kNoticeKeyRecordPrefix)) {
      if (auto* v = Lookup(notice_key_records_, kNoticeKeyRecordPrefix, id(kNoticeKeyRecordPrefix))) value = v->SerializeAsString();
    } else if (absl::StartsWith(key, kRefusedSubmissionPrefix)) {
      if (auto* v = FindRefusedSubmission(id(kRefusedSubmissionPrefix))) value = v->SerializeAsString();
    }
    changes.emplace_back(key, std::move(value));
  }
  for (const std::string& key : dirty_indexes_) {
    bool present = false;
    if (absl::StartsWith(key, kCollectiveProposalPrefix)) {
      const absl::string_view rest = absl::string_view(key).substr(kCollectiveProposalPrefix.size());
      const size_t end = rest.find('\0');
      const absl::string_view collective_id = rest.substr(0, end);
      const std::optional<std::string> id = CollectiveProposalId(key, CollectiveProposalPrefix(collective_id));
      const v1::ProposalState* proposal = id.has_value() ? FindProposal(*id) : nullptr;
      present = proposal != nullptr && proposal->collective_id() == collective_id &&
                key == CollectiveProposalKey(collective_id, proposal->submitted_at(), *id);
    } else if (absl::StartsWith(key, kDeadlineIndexPrefix)) {
      const absl::string_view rest = absl::string_view(key).substr(kDeadlineIndexPrefix.size());
      present = deadlines_.contains({*IndexTime(rest), std::string(rest.substr(16))});
    } else {
      const absl::string_view rest = absl::string_view(key).substr(kNoticeIndexPrefix.size());
      uint64_t position = 0;
      present = absl::SimpleAtoi(rest.substr(16), &position) && notices_.contains({*IndexTime(rest), position});
    }
    changes.emplace_back(key, present ? std::optional<std::string>("") : std::nullopt);
  }
  if (write_index_marker_) changes.emplace_back(std::string(kDerivedIndexesKey), std::string(kDerivedIndexesVersion));
  return changes;
}

void State::CommitChanges() {
  dirty_.clear();
  dirty_indexes_.clear();
  write_index_marker_ = false;
  migration_.clear();
  undo_.clear();
  if (source_ == nullptr || held_bytes_ <= cache_bytes_) return;
  // Everything held is now in the source too: over the budget, the cache
  // starts again (the working set of the next groups is read back).
  organisations_.clear();
  keys_.clear();
  collectives_.clear();
  proposals_.clear();
  refusal_counters_.clear();
  refused_submissions_.clear();
  identity_changes_.clear();
  notice_key_records_.clear();
  held_bytes_ = 0;
}

absl::Status State::LoadEntry(absl::string_view key, absl::string_view value) {
  auto load = [&](auto& cache, absl::string_view prefix) -> absl::Status {
    typename std::remove_reference_t<decltype(cache)>::mapped_type entry;
    if (!DecodeEntry(value, key.substr(prefix.size()), &entry)) return Corrupt(key);
    std::string id = EntryId(entry);
    cache.insert_or_assign(std::move(id), std::move(entry));
    return absl::OkStatus();
  };
  if (key == kInfoKey) {
    if (!info_.ParseFromArray(value.data(), static_cast<int>(value.size()))) return Corrupt(key);
    has_genesis_ = true;
  } else if (absl::StartsWith(key, kOrganisationKeyPrefix) || absl::StartsWith(key, kDeadlineIndexPrefix) ||
             absl::StartsWith(key, kNoticeIndexPrefix) || absl::StartsWith(key, kCollectiveProposalPrefix) ||
             key == kDerivedIndexesKey) {
    // Derived; rebuilt below from what they derive from.
  } else if (absl::StartsWith(key, kOrganisationPrefix)) {
    return load(organisations_, kOrganisationPrefix);
  } else if (absl::StartsWith(key, kKeyPrefix)) {
    return load(keys_, kKeyPrefix);
  } else if (absl::StartsWith(key, kCollectivePrefix)) {
    return load(collectives_, kCollectivePrefix);
  } else if (absl::StartsWith(key, kProposalPrefix)) {
    if (auto s = load(proposals_, kProposalPrefix); !s.ok()) return s;
    IndexDeadline(nullptr, &proposals_.find(key.substr(kProposalPrefix.size()))->second);
  } else if (absl::StartsWith(key, kRefusalCounterPrefix)) {
    return load(refusal_counters_, kRefusalCounterPrefix);
  } else if (absl::StartsWith(key, kIdentityChangePrefix)) {
    if (auto s = load(identity_changes_, kIdentityChangePrefix); !s.ok()) return s;
    IndexNotice(nullptr, &identity_changes_.find(key.substr(kIdentityChangePrefix.size()))->second);
  } else if (absl::StartsWith(key, kNoticeKeyRecordPrefix)) {
    return load(notice_key_records_, kNoticeKeyRecordPrefix);
  } else if (absl::StartsWith(key, kRefusedSubmissionPrefix)) {
    return load(refused_submissions_, kRefusedSubmissionPrefix);
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
