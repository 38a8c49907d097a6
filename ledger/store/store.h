// RocksDB layout of a ledger, and the one way to change it: Write(), a single
// synced WriteBatch per commit group.
//
// Column families (keys big-endian so that they sort by position):
//   records      BE64(position) -> Record bytes (the Merkle leaf)
//   tree         0xFF, BE64(last leaf it covers), u8 level -> 32-byte hash of
//                a complete subtree (node `index` at `level` covers leaves
//                index * 2^level .. (index + 1) * 2^level - 1). Keys grow in
//                append order, so RocksDB moves new tables down its levels
//                without rewriting older ones; keyed by level first (the
//                layout before 2026-12, u8 level, BE64 index), every flush
//                overlapped the whole tree and each compaction rewrote half
//                of it (issue 9). A store in that layout is converted once
//                at Open; opened read-only, it is read as it is.
//   checkpoints  BE64(tree size) -> C2SP signed note
//   idempotency  author \0 idempotency key -> BE64(position) || SHA-256(body)
//   by_author    author \0 BE64(position) -> ""
//   by_kind      BE32(payload field number) BE64(position) -> ""
//   by_author_kind  author \0 BE32(payload field number) BE64(position) -> "";
//                and, for a SubmissionRefused, the refused attempt's author
//                \0 BE32(0) BE64(position) -> "" (ListRefusals by org)
//                (Read with author and kinds; a store written before it is
//                indexed once at Open, then "index/by_author_kind" is set in
//                default)
//   state        projected state (see rules/state.h)
//   default      metadata: "tree_size" -> BE64;
//                "witnessed_size" -> BE64: the largest checkpoint whose note in
//                checkpoints carries a witness quorum's cosignatures (absent: none);
//                "dropped_refusals/" author -> BE64: the operator's count of
//                that author's refusals not recorded since its last recorded
//                one (absent: 0; not part of the rules' state)
//
// Thread contract: reads may run on any thread concurrently with Write();
// Write() is called by one thread at a time (the sequencer). Positions count
// from 0.
#ifndef LEDGER_STORE_STORE_H_
#define LEDGER_STORE_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "ledger/crypto/sha256.h"
#include "ledger/merkle/tree.h"
#include "ledger/rules/state.h"
#include "rocksdb/db.h"

namespace ledger::store {

// The tree family's key of a node (the append-order layout above).
std::string TreeNodeKey(int level, uint64_t index);

// One record of a commit group, with what its indexes need.
struct PendingRecord {
  uint64_t position = 0;
  std::string record;  // serialized Record
  std::string author;
  int kind = 0;        // EventBody payload field number
  std::string idempotency_key;
  crypto::Digest body_hash{};
  std::string refused_author;  // a SubmissionRefused: whose attempt it keeps
};

// Everything one commit changes; written atomically.
struct CommitGroup {
  std::vector<PendingRecord> records;
  std::vector<merkle::Node> nodes;
  std::vector<rules::State::Change> state_changes;
  uint64_t new_tree_size = 0;
  std::string checkpoint_note;  // signed note for new_tree_size
  // New dropped-refusal counts by author (0: the entry is deleted).
  std::vector<std::pair<std::string, uint64_t>> dropped_refusals;
};

struct IdempotencyEntry {
  uint64_t position = 0;
  crypto::Digest body_hash{};
};

class Store : public merkle::NodeReader, public rules::StateSource {
 public:
  // Opens (creating if missing) the database in `dir`.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& dir);
  // Opens an existing database read-only (a restored backup being checked):
  // nothing is written, no index is built.
  static absl::StatusOr<std::unique_ptr<Store>> OpenReadOnly(const std::string& dir);
  ~Store() override;

  // A RocksDB checkpoint of the database in `dir` (which must not exist, on
  // the same file system: table files are hard links): a consistent point in
  // time holding every Write that returned before the call. Any thread.
  absl::Status CreateCheckpoint(const std::string& dir) const;

  // Number of committed records (as of the last Write or Open).
  uint64_t tree_size() const { return tree_size_.load(std::memory_order_acquire); }

  // Writes the group with sync=true; on error nothing of it is visible and
  // tree_size() is unchanged — but whether it reached the disk is unknown
  // until Recover() succeeds.
  absl::Status Write(const CommitGroup& group);

  // After a failed Write (disk full, I/O error): asks RocksDB to resume and
  // re-reads the tree size from disk. Unavailable while the cause persists.
  absl::Status Recover();

  // NotFound if position >= tree_size(); DataLoss if the stored bytes are
  // missing.
  absl::StatusOr<std::string> GetRecord(uint64_t position) const;
  // GetRecord of each of `positions` (ascending), with the same checks and
  // errors, as one batched read of the records and one of their Merkle
  // leaves (a history page of 100 records is two MultiGets, not 200 Gets).
  absl::StatusOr<std::vector<std::string>> GetRecords(const std::vector<uint64_t>& positions) const;
  absl::StatusOr<merkle::Hash> ReadNode(int level, uint64_t index) const override;
  // NotFound unless a checkpoint of exactly this size was written.
  absl::StatusOr<std::string> GetCheckpoint(uint64_t tree_size) const;
  // Calls visit(tree size, note) for checkpoints of size >= from_size, in
  // order, until it returns false.
  using CheckpointVisitor = std::function<bool(uint64_t, std::string_view)>;
  absl::Status ScanCheckpoints(uint64_t from_size, const CheckpointVisitor& visit) const;
  // Replaces the note of the checkpoint of `tree_size` by the same note with
  // witnesses' cosignature lines added (the caller checked both), and
  // records it as the witnessed size if it is the largest. Synced. Any
  // thread (it touches no key the sequencer's Write does).
  absl::Status PutWitnessedCheckpoint(uint64_t tree_size, std::string_view note);
  // The largest witnessed checkpoint's size; 0 if there is none.
  absl::StatusOr<uint64_t> WitnessedSize() const;
  // The first checkpoint that includes `position`: (tree size, note).
  absl::StatusOr<std::pair<uint64_t, std::string>> FirstCheckpointIncluding(uint64_t position) const;
  absl::StatusOr<std::optional<IdempotencyEntry>> FindIdempotency(
      std::string_view author, std::string_view idempotency_key) const;

  // Calls visit(position, record bytes) for records in [from, to) in order
  // until it returns false.
  using RecordVisitor = std::function<bool(uint64_t, std::string_view)>;
  absl::Status ScanRecords(uint64_t from, uint64_t to, const RecordVisitor& visit) const;
  // Positions >= from, in order, of records by `author` / of payload `kind`,
  // until visit returns false. Positions are below tree_size().
  using PositionVisitor = std::function<bool(uint64_t)>;
  absl::Status ScanAuthor(std::string_view author, uint64_t from, const PositionVisitor& visit) const;
  absl::Status ScanKind(int kind, uint64_t from, const PositionVisitor& visit) const;
  absl::Status ScanAuthorKind(std::string_view author, int kind, uint64_t from, const PositionVisitor& visit) const;
  // SubmissionRefused records keeping an attempt by `author`.
  absl::Status ScanRefusalsOf(std::string_view author, uint64_t from, const PositionVisitor& visit) const;

  // One projected-state entry (see rules/state.h for keys); nullopt if absent.
  absl::StatusOr<std::optional<std::string>> GetState(const std::string& key) const;
  // Calls visit(key, value) for state entries with `prefix`, in key order,
  // until it returns false.
  using StateVisitor = std::function<bool(std::string_view, std::string_view)>;
  absl::Status ScanState(const std::string& prefix, const StateVisitor& visit) const;

  // Every author's dropped-refusal count (see the default column family).
  absl::Status LoadDroppedRefusals(absl::flat_hash_map<std::string, uint64_t>* counts) const;
  // One author's; 0 if none.
  absl::StatusOr<uint64_t> DroppedRefusals(std::string_view author) const;
  // For a commit group that writes no record but dropped a refusal. Not
  // synced: the count is the operator's claim, not the log, and a flood of
  // refusals must not cost a sync each.
  absl::Status WriteDroppedRefusals(const std::vector<std::pair<std::string, uint64_t>>& counts);

  // rules::StateSource: the committed projected state, for a backed State.
  absl::StatusOr<std::optional<std::string>> Get(const std::string& key) const override { return GetState(key); }
  absl::Status Scan(const std::string& prefix, const Visitor& visit) const override {
    return ScanState(prefix, visit);
  }

  // Loads the whole projected state into an in-memory State (tests and
  // tools; the ledger reads it on demand).
  absl::Status LoadState(rules::State* state) const;

  // A RocksDB integer property ("rocksdb.total-sst-files-size", ...), summed
  // over every column family when `every_family` (per-family properties),
  // else the database's own (e.g. "rocksdb.is-write-stopped"); nullopt if
  // RocksDB does not know it. Any thread (ledgerd's /metrics).
  std::optional<uint64_t> IntProperty(const std::string& name, bool every_family) const;

 private:
  Store() = default;
  static absl::StatusOr<std::unique_ptr<Store>> OpenWith(const std::string& dir, bool read_only);
  absl::Status ScanPositions(rocksdb::ColumnFamilyHandle* cf, std::string prefix,
                             uint64_t from, const PositionVisitor& visit) const;
  // Writes by_author_kind for every record unless the meta marker says it
  // is complete (stores written before it existed); logs its progress.
  absl::Status BackfillAuthorKind();
  // Finds which layout the tree family is in (see the layout above); a
  // read-only store half converted is refused.
  absl::Status DetectTreeLayout(bool read_only);
  // Rewrites a tree family in the level-first layout into the append-order
  // one, in synced batches; an interrupted conversion resumes at the next
  // Open.
  absl::Status ConvertTreeLayout();
  // The tree family's key of a node, in this store's layout.
  std::string TreeKey(int level, uint64_t index) const;

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::ColumnFamilyHandle* records_ = nullptr;
  rocksdb::ColumnFamilyHandle* tree_ = nullptr;
  bool level_first_tree_ = false;  // set at Open, before any read
  rocksdb::ColumnFamilyHandle* checkpoints_ = nullptr;
  rocksdb::ColumnFamilyHandle* idempotency_ = nullptr;
  rocksdb::ColumnFamilyHandle* by_author_ = nullptr;
  rocksdb::ColumnFamilyHandle* by_kind_ = nullptr;
  rocksdb::ColumnFamilyHandle* state_ = nullptr;
  rocksdb::ColumnFamilyHandle* by_author_kind_ = nullptr;
  std::atomic<uint64_t> tree_size_{0};
  std::string dir_;
};

}  // namespace ledger::store

#endif  // LEDGER_STORE_STORE_H_
