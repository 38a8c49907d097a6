// The state the rules decide against: who exists, which keys are active.
// (Collectives and proposals join it with the governance rules.)
//
// Every mutation is journaled, so a caller can roll a submission (or a whole
// commit group whose write failed) back exactly, and can collect the changed
// entries to write into the `state` column family in the same WriteBatch as
// the records that caused them.
//
// A State is either held wholly in memory (the auditor's replay, tests) or
// backed by a StateSource (the ledger's `state` column family): then it reads
// entries on demand and holds only a bounded cache of them plus the entries
// changed since the last CommitChanges, so its memory does not grow with the
// ledger. The derived deadline and notice indexes are kept whole in memory in
// both cases: they hold only open gateways with deadlines and pending identity
// changes, and a backed State loads them from their own entries.
//
// Thread contract: not thread-safe; owned by the sequencer (or the auditor).
#ifndef LEDGER_RULES_STATE_H_
#define LEDGER_RULES_STATE_H_

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "ledger/v1/state.pb.h"

namespace ledger::rules {

// Where a backed State reads the entries it does not hold: exactly the
// entries committed so far (values as State serialises them).
class StateSource {
 public:
  virtual ~StateSource() = default;
  virtual absl::StatusOr<std::optional<std::string>> Get(const std::string& key) const = 0;
  // visit(key, value) for the entries with `prefix`, in key order, until it returns false.
  using Visitor = std::function<bool(std::string_view, std::string_view)>;
  virtual absl::Status Scan(const std::string& prefix, const Visitor& visit) const = 0;
};

class State {
 public:
  // A changed entry of the `state` column family: key, and the new value or
  // nullopt for a deletion.
  using Change = std::pair<std::string, std::optional<std::string>>;

  // Makes this (empty) State read through `source`, which must outlive it,
  // holding about `cache_bytes` of entries (serialized size) between commits.
  // Loads the ledger info and the derived indexes; if the source predates
  // their entries (a data directory of an earlier release), rebuilds them
  // by one scan and writes them with the next commit: *rebuilt says so.
  absl::Status Open(const StateSource* source, size_t cache_bytes, bool* rebuilt);
  // A backed State that could not read its source answers "absent" and
  // remembers the first error here: the caller must not commit decisions
  // made after one (the ledger treats it as a storage failure).
  const absl::Status& source_status() const { return source_status_; }
  // For the rules: an entry another entry names is missing (`id`): the state
  // is not what was committed, and decisions made on it must not be.
  void ReportMissing(const std::string& id) const {
    FailSource(absl::DataLossError(absl::StrCat("projected state entry ", id, " is missing")));
  }

  bool has_genesis() const { return has_genesis_; }
  const v1::LedgerInfo& info() const { return info_; }
  const v1::OrganisationState* FindOrganisation(const std::string& org_id) const;
  const v1::KeyState* FindKey(const std::string& key_id) const;
  // The entries held in memory: every entry of an in-memory State; of a
  // backed one only those cached (iterate it with ForEachCollective and
  // ForEachProposal).
  size_t organisation_count() const { return organisations_.size(); }
  const absl::node_hash_map<std::string, v1::KeyState>& keys() const { return keys_; }
  const v1::CollectiveState* FindCollective(const std::string& collective_id) const;
  const v1::ProposalState* FindProposal(const std::string& proposal_id) const;
  const v1::RefusalCounter* FindRefusalCounter(const std::string& org_id) const;
  // The recorded refusal of these SignedEvent bytes (keyed by their raw
  // 32-byte SHA-256), or nullptr: indexed under every rules version,
  // consulted from version 2 (commit_group.h).
  const v1::RefusedSubmission* FindRefusedSubmission(const std::string& signed_event_sha256) const;
  const absl::node_hash_map<std::string, v1::CollectiveState>& collectives() const { return collectives_; }
  const absl::node_hash_map<std::string, v1::ProposalState>& proposals() const { return proposals_; }
  // Every collective / proposal, held or not, in no particular order (a
  // backed State reads its source without caching what it reads). `visit`
  // must not look entries up: the cache is being walked.
  void ForEachCollective(const std::function<void(const v1::CollectiveState&)>& visit) const;
  void ForEachProposal(const std::function<void(const v1::ProposalState&)>& visit) const;
  // Open gateways with a deadline, earliest first: (deadline, proposal id).
  const absl::btree_set<std::pair<int64_t, std::string>>& deadlines() const { return deadlines_; }
  // Rules version 2: identity changes a registrar made alone, by position.
  const v1::IdentityChangeState* FindIdentityChange(uint64_t position) const;
  const absl::node_hash_map<std::string, v1::IdentityChangeState>& identity_changes() const {
    return identity_changes_;
  }
  // Pending identity changes, earliest notice end first: (notice end, position).
  const absl::btree_set<std::pair<int64_t, uint64_t>>& notices() const { return notices_; }
  // Records signed by keys that took effect by notice.
  const absl::node_hash_map<std::string, v1::NoticeKeyRecord>& notice_key_records() const {
    return notice_key_records_;
  }
  // The earliest ledger time at which something falls due (a gateway
  // deadline or an identity notice), if any: the sequencer wakes for it.
  std::optional<int64_t> NextDue() const;

  void SetInfo(v1::LedgerInfo info);
  void PutOrganisation(v1::OrganisationState organisation);
  void PutKey(v1::KeyState key);
  void PutCollective(v1::CollectiveState collective);
  void PutProposal(v1::ProposalState proposal);
  // Changes the proposal `id` in place with `edit` and journals a delta, not
  // the old entry, so applying and undoing a vote copies none of the
  // proposal's votes, history or vetoes (VoteCast). `edit` may only append
  // to those lists (a vote to a gateway's votes, a position to the history, a
  // veto) and end vetoes (their outcome and ended_at); it leaves the
  // submission, charter and superseded attempts alone and adds no gateway.
  // An edit that breaks this is reported as a source failure (the decision
  // must not be committed). False if there is no such proposal.
  bool EditProposal(const std::string& id, const std::function<void(v1::ProposalState&)>& edit);
  void PutRefusalCounter(v1::RefusalCounter counter);
  void PutIdentityChange(v1::IdentityChangeState change);
  void PutNoticeKeyRecord(v1::NoticeKeyRecord record);
  void PutRefusedSubmission(v1::RefusedSubmission refused);

  // Journal: Mark() names the current point; RollbackTo(mark) undoes every
  // mutation made since.
  size_t Mark() const { return undo_.size(); }
  void RollbackTo(size_t mark);
  // The entries changed since the last CommitChanges, as they are now.
  std::vector<Change> PendingChanges() const;
  // Makes the pending changes permanent (the source now holds them): clears
  // the journal, and empties the cache of a backed State over its bytes.
  void CommitChanges();

  // Open found the layout of a release before the collective-proposal index
  // ("cp/"): it is derived once and written, with the collectives without
  // their old proposal_ids lists, by the next commit group.
  bool migrated_collective_proposals() const { return !migration_.empty(); }

  // Rebuilds one entry of an in-memory State from a `state` column family.
  // An entry of an earlier layout loads as the current one would hold it (a
  // collective's proposal_ids list is dropped: see kCollectiveProposalPrefix).
  absl::Status LoadEntry(absl::string_view key, absl::string_view value);
  // Every entry of an in-memory State, serialized, in key order: two states
  // are equal exactly when their snapshots are.
  absl::btree_map<std::string, std::string> Snapshot() const;

 private:
  template <typename Message>
  using Cache = absl::node_hash_map<std::string, Message>;  // stable pointers: Find* may insert

  // The entry `id` of one kind: held, or read from the source and cached.
  template <typename Message>
  const Message* Lookup(Cache<Message>& cache, absl::string_view key_prefix, const std::string& id) const;
  template <typename Message>
  void ForEach(const Cache<Message>& cache, absl::string_view key_prefix,
               const std::function<void(const Message&)>& visit) const;
  template <typename Message>
  void Put(Cache<Message>& cache, absl::string_view key_prefix, const std::string& id, Message value);
  void FailSource(absl::Status status) const;
  // Open: the "cp/" index of every proposal, and each collective without
  // its proposal_ids, into migration_.
  absl::Status MigrateCollectiveProposals();
  // Keeps deadlines_ in step with one proposal's entry (nullptr: removed).
  void IndexDeadline(const v1::ProposalState* before, const v1::ProposalState* after);
  void IndexDeadline(const std::string& proposal_id, int64_t before, int64_t after);
  // Keeps notices_ in step with one identity change's entry.
  void IndexNotice(const v1::IdentityChangeState* before, const v1::IdentityChangeState* after);

  bool has_genesis_ = false;
  v1::LedgerInfo info_;
  // Backed: where entries not held are read, and how many bytes of them to
  // hold (counted as read or put, an overestimate).
  const StateSource* source_ = nullptr;
  size_t cache_bytes_ = 0;
  mutable size_t held_bytes_ = 0;
  mutable absl::Status source_status_;

  mutable Cache<v1::OrganisationState> organisations_;
  mutable Cache<v1::KeyState> keys_;
  mutable Cache<v1::CollectiveState> collectives_;
  mutable Cache<v1::ProposalState> proposals_;
  mutable Cache<v1::RefusalCounter> refusal_counters_;
  mutable Cache<v1::RefusedSubmission> refused_submissions_;
  mutable Cache<v1::IdentityChangeState> identity_changes_;  // by IdentityChangeId
  mutable Cache<v1::NoticeKeyRecord> notice_key_records_;  // by NoticeKeyRecordId
  absl::btree_set<std::pair<int64_t, std::string>> deadlines_;  // derived from the proposals
  absl::btree_set<std::pair<int64_t, uint64_t>> notices_;  // derived from the identity changes

  std::vector<std::function<void()>> undo_;
  absl::flat_hash_set<std::string> dirty_;  // state column family keys
  // Derived index entries touched since the last commit (written as they
  // now are, present or absent); and whether the index marker is to be written.
  absl::flat_hash_set<std::string> dirty_indexes_;
  bool write_index_marker_ = false;
  // Open's migration of an earlier layout, written before the pending
  // changes by the next commit (and kept until one succeeds).
  std::vector<Change> migration_;
};

// Keys of the `state` column family.
inline constexpr absl::string_view kInfoKey = "i";
inline constexpr absl::string_view kOrganisationPrefix = "o/";
inline constexpr absl::string_view kKeyPrefix = "k/";
inline constexpr absl::string_view kCollectivePrefix = "c/";
inline constexpr absl::string_view kProposalPrefix = "p/";
inline constexpr absl::string_view kRefusalCounterPrefix = "r/";
// Rules version 2: "ic/" IdentityChangeId(position) -> IdentityChangeState;
// "nk/" NoticeKeyRecordId(key id, position) -> NoticeKeyRecord, so the
// records of one key sit together and each costs one entry, written once.
inline constexpr absl::string_view kIdentityChangePrefix = "ic/";
inline constexpr absl::string_view kNoticeKeyRecordPrefix = "nk/";
std::string IdentityChangeId(uint64_t position);  // zero-padded: key order is log order
std::string NoticeKeyRecordId(absl::string_view key_id, uint64_t position);
inline constexpr absl::string_view kRefusedSubmissionPrefix = "rs/";  // + raw SHA-256
// Derived indexes, written with the entries they derive from so a backed
// State loads them instead of every proposal and identity change:
// "dl/" deadline proposal id -> "" for each open gateway with a deadline,
// "nt/" notice end position -> "" for each pending identity change (times as
// 16 hex digits, so key order is time order), and "di" -> kDerivedIndexesVersion
// once they exist ("1": a release before the "cp/" index, migrated at Open).
inline constexpr absl::string_view kDeadlineIndexPrefix = "dl/";
inline constexpr absl::string_view kNoticeIndexPrefix = "nt/";
inline constexpr absl::string_view kDerivedIndexesKey = "di";
inline constexpr absl::string_view kDerivedIndexesVersion = "2";
// A collective's proposals, in submission order: "cp/" collective \0
// submission position (20 digits) \0 proposal id -> "". Derived from the
// proposals (each names its collective and position) and written once, when
// one is submitted, so submitting the n-th proposal of a collective costs
// what the first did (the collective's entry is not rewritten: it once
// listed them in proposal_ids). Not part of Snapshot().
inline constexpr absl::string_view kCollectiveProposalPrefix = "cp/";
std::string CollectiveProposalPrefix(absl::string_view collective_id);  // "cp/" collective \0
std::string CollectiveProposalKey(absl::string_view collective_id, uint64_t submitted_at,
                                  absl::string_view proposal_id);
// The proposal id of a "cp/" key of `prefix` (CollectiveProposalPrefix), or
// nullopt if the key is not one.
std::optional<std::string> CollectiveProposalId(absl::string_view key, absl::string_view prefix);
std::string DeadlineIndexKey(int64_t deadline, absl::string_view proposal_id);
std::string NoticeIndexKey(int64_t notice_end, uint64_t position);
// Index of an organisation's keys, derived from the keys: "ok/" org \0 key id
// -> "". Written with them; not part of Snapshot().
inline constexpr absl::string_view kOrganisationKeyPrefix = "ok/";
std::string OrganisationKeyIndex(absl::string_view org_id, absl::string_view key_id);

// The deadline of a proposal's open gateway, or 0 if none.
int64_t OpenDeadline(const v1::ProposalState& proposal);

}  // namespace ledger::rules

#endif  // LEDGER_RULES_STATE_H_
