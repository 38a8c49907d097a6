#include "ledger/store/store.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include <sys/statvfs.h>

#include "glog/logging.h"
#include "ledger/event/envelope.h"
#include "ledger/event/refusal.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/cache.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/checkpoint.h"
#include "rocksdb/write_batch.h"

namespace ledger::store {
namespace {

constexpr char kTreeSizeKey[] = "tree_size";
constexpr char kWitnessedSizeKey[] = "witnessed_size";
constexpr char kAuthorKindIndexedKey[] = "index/by_author_kind";
constexpr absl::string_view kDroppedRefusalsPrefix = "dropped_refusals/";
// Room kept free for RocksDB's own flushes and compactions.
constexpr uint64_t kDiskReserveBytes = 1 << 20;

void AppendBE(std::string* out, uint64_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out->push_back(static_cast<char>(value >> (8 * i)));
}
std::string BE64(uint64_t value) {
  std::string out;
  AppendBE(&out, value, 8);
  return out;
}
uint64_t ReadBE64(std::string_view bytes) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value = value << 8 | static_cast<uint8_t>(bytes[i]);
  return value;
}
// The tree family's two layouts (store.h).
constexpr char kAppendOrderTreeMark = '\xff';
std::string LevelFirstNodeKey(int level, uint64_t index) {
  std::string key(1, static_cast<char>(level));
  AppendBE(&key, index, 8);
  return key;
}
bool IsAppendOrderKey(std::string_view key) { return key.size() == 10 && key[0] == kAppendOrderTreeMark; }
std::string IdempotencyKey(std::string_view author, std::string_view key) {
  std::string out(author);
  out.push_back('\0');
  out.append(key);
  return out;
}
std::string AuthorPrefix(std::string_view author) {
  std::string out(author);
  out.push_back('\0');
  return out;
}
std::string KindPrefix(int kind) {
  std::string key;
  AppendBE(&key, static_cast<uint64_t>(kind), 4);
  return key;
}

void PutDroppedRefusals(rocksdb::WriteBatch& batch, rocksdb::ColumnFamilyHandle* meta,
                        const std::vector<std::pair<std::string, uint64_t>>& counts) {
  for (const auto& [author, count] : counts) {
    const std::string key = absl::StrCat(kDroppedRefusalsPrefix, absl::string_view(author));
    if (count == 0) {
      batch.Delete(meta, key);
    } else {
      batch.Put(meta, key, BE64(count));
    }
  }
}

// Projected-state values carry a check of their key and bytes, so an entry
// altered behind the server's back is DATA_LOSS, never a wrong answer (the
// records and tree nodes are checked against the Merkle tree instead).
constexpr size_t kStateCheckBytes = 8;
std::string StateCheck(std::string_view key, std::string_view value) {
  crypto::Digest digest = crypto::Sha256({"decision-ledger state\n", key, std::string_view("\0", 1), value});
  return std::string(crypto::AsBytes(digest).substr(0, kStateCheckBytes));
}
std::string SealState(std::string_view key, std::string_view value) {
  std::string sealed(value);
  sealed += StateCheck(key, value);
  return sealed;
}
absl::StatusOr<std::string_view> OpenState(std::string_view key, std::string_view sealed) {
  if (sealed.size() < kStateCheckBytes ||
      StateCheck(key, sealed.substr(0, sealed.size() - kStateCheckBytes)) != sealed.substr(sealed.size() - kStateCheckBytes)) {
    return absl::DataLossError(absl::StrCat("projected state entry \"", std::string(key), "\" was altered on disk"));
  }
  return sealed.substr(0, sealed.size() - kStateCheckBytes);
}

absl::Status AlteredRecord(uint64_t position) {
  return Refuse(absl::StatusCode::kDataLoss, v1::DATA_CORRUPTED,
                absl::StrCat("record at position ", position,
                             " does not match its Merkle leaf: the stored data was altered"));
}

// rocksdb::Status stops here: everything above sees absl::Status.
absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string message = absl::StrCat(what, ": ", s.ToString());
  if (s.IsCorruption()) return absl::DataLossError(message);
  if (s.IsNotFound()) return absl::NotFoundError(message);
  if (s.IsNoSpace() || s.IsIOError()) return absl::UnavailableError(message);
  return absl::InternalError(message);
}

constexpr size_t kWriteBufferBytes = 64 << 20;
constexpr size_t kBlockCacheBytes = 64 << 20;

const std::vector<std::string>& FamilyNames() {
  static const auto* names = new std::vector<std::string>{
      rocksdb::kDefaultColumnFamilyName, "records", "tree", "checkpoints",
      "idempotency", "by_author", "by_kind", "state", "by_author_kind"};
  return *names;
}

}  // namespace

std::string TreeNodeKey(int level, uint64_t index) {
  std::string key(1, kAppendOrderTreeMark);
  AppendBE(&key, ((index + 1) << level) - 1, 8);
  key.push_back(static_cast<char>(level));
  return key;
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& dir) { return OpenWith(dir, false); }

absl::StatusOr<std::unique_ptr<Store>> Store::OpenReadOnly(const std::string& dir) { return OpenWith(dir, true); }

absl::StatusOr<std::unique_ptr<Store>> Store::OpenWith(const std::string& dir, bool read_only) {
  rocksdb::Options options;
  options.create_if_missing = !read_only;
  options.create_missing_column_families = true;
  options.paranoid_checks = true;
  options.IncreaseParallelism(2);
  options.max_open_files = 512;
  // Memory is bounded whatever the ledger's size: every memtable together
  // within kWriteBufferBytes, and every block read — data, index and filter
  // blocks alike — in one shared cache of kBlockCacheBytes (index and filter
  // blocks held outside it would grow with every table file).
  options.db_write_buffer_size = kWriteBufferBytes;
  // Flushes and compactions write their files in the background while every
  // commit group waits for its WAL fsync: syncing their writes every MiB
  // keeps one large sync at the end of a file from queueing ahead of it.
  options.bytes_per_sync = 1 << 20;
  rocksdb::BlockBasedTableOptions table;
  // Index and filter blocks go to the cache's high-priority half, so a scan
  // of the whole log (a subscriber catching up, an export) cannot evict
  // them; and they are partitioned, so a point read loads one small
  // partition, not a table file's whole index (at a million records a
  // history page of 100 reads took 26 ms reloading whole indexes).
  table.block_cache = rocksdb::NewLRUCache(kBlockCacheBytes, /*num_shard_bits=*/-1, /*strict_capacity_limit=*/false,
                                           /*high_pri_pool_ratio=*/0.5);
  table.cache_index_and_filter_blocks = true;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  table.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  table.partition_filters = true;
  table.pin_top_level_index_and_filter = true;
  rocksdb::BlockBasedTableOptions with_bloom = table;
  // Point reads that usually miss, or must be cheap when they do: the
  // idempotency index on every append, the projected state (unknown ids),
  // and tree nodes.
  with_bloom.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::ColumnFamilyOptions plain_family(options);
  plain_family.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  rocksdb::ColumnFamilyOptions bloom_family(options);
  bloom_family.table_factory.reset(rocksdb::NewBlockBasedTableFactory(with_bloom));

  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const std::string& name : FamilyNames()) {
    const bool point_reads = name == "idempotency" || name == "state" || name == "tree";
    families.emplace_back(name, point_reads ? bloom_family : plain_family);
  }
  auto store = std::unique_ptr<Store>(new Store());
  store->dir_ = dir;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = read_only ? rocksdb::DB::OpenForReadOnly(options, dir, families, &store->handles_, &db)
                                : rocksdb::DB::Open(options, dir, families, &store->handles_, &db);
  if (!s.ok()) return FromRocks(s, absl::StrCat("opening the ledger database in ", dir));
  store->db_.reset(db);
  auto& h = store->handles_;
  store->meta_ = h[0];
  store->records_ = h[1];
  store->tree_ = h[2];
  store->checkpoints_ = h[3];
  store->idempotency_ = h[4];
  store->by_author_ = h[5];
  store->by_kind_ = h[6];
  store->state_ = h[7];
  store->by_author_kind_ = h[8];

  std::string size_bytes;
  s = db->Get(rocksdb::ReadOptions(), store->meta_, kTreeSizeKey, &size_bytes);
  if (s.ok()) {
    if (size_bytes.size() != 8) return absl::DataLossError("stored tree size is corrupt");
    store->tree_size_ = ReadBE64(size_bytes);
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "reading the tree size");
  }
  // The records must end exactly where the tree size says: a record past it
  // or a missing last record means the database was altered.
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), store->records_));
  it->SeekToLast();
  if (!it->status().ok()) return FromRocks(it->status(), "reading the last record");
  uint64_t size = store->tree_size_;
  if (it->Valid() != (size > 0) || (it->Valid() && (it->key().size() != 8 ||
                                                    ReadBE64(it->key().ToStringView()) != size - 1))) {
    return absl::DataLossError(absl::StrCat(
        "records do not end at the stored tree size ", size, " (last record key ",
        it->Valid() ? absl::StrCat(ReadBE64(it->key().ToStringView())) : "none", ")"));
  }
  if (auto s = store->DetectTreeLayout(read_only); !s.ok()) return s;
  if (read_only) return store;
  if (store->level_first_tree_) {
    if (auto s = store->ConvertTreeLayout(); !s.ok()) return s;
  }
  if (auto s = store->BackfillAuthorKind(); !s.ok()) return s;
  return store;
}

absl::Status Store::BackfillAuthorKind() {
  std::string marker;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_, kAuthorKindIndexedKey, &marker);
  if (s.ok()) return absl::OkStatus();
  if (!s.IsNotFound()) return FromRocks(s, "reading the index marker");
  const uint64_t size = tree_size();
  if (size > 0) LOG(INFO) << "indexing " << size << " records by author and kind (once, for this release)";
  rocksdb::WriteBatch batch;
  uint64_t done = 0;
  absl::Status failed;
  absl::Status scanned = ScanRecords(0, size, [&](uint64_t position, std::string_view bytes) {
    absl::StatusOr<v1::Record> record = DecodeRecord(bytes, position);
    absl::StatusOr<Envelope> event = record.ok() ? DecodeStoredEvent(*record) : record.status();
    if (!event.ok()) {
      failed = event.status();
      return false;
    }
    batch.Put(by_author_kind_,
              AuthorPrefix(event->body.author()) + KindPrefix(event->body.payload_case()) + BE64(position), "");
    if (event->body.has_submission_refused()) {
      v1::SignedEvent attempt;
      v1::EventBody body;
      if (!attempt.ParseFromString(event->body.submission_refused().signed_event()) ||
          !body.ParseFromString(attempt.body())) {
        failed = absl::DataLossError(absl::StrCat("the refused attempt kept at position ", position, " does not decode"));
        return false;
      }
      batch.Put(by_author_kind_, AuthorPrefix(body.author()) + KindPrefix(0) + BE64(position), "");
    }
    if (++done % 100'000 == 0 || done == size) {
      if (auto w = FromRocks(db_->Write(rocksdb::WriteOptions(), &batch), "writing the author-kind index"); !w.ok()) {
        failed = w;
        return false;
      }
      batch.Clear();
      if (done % 100'000 == 0) LOG(INFO) << "indexed " << done << " of " << size << " records by author and kind";
    }
    return true;
  });
  if (!scanned.ok()) return scanned;
  if (!failed.ok()) return failed;
  rocksdb::WriteOptions sync;
  sync.sync = true;
  return FromRocks(db_->Put(sync, meta_, kAuthorKindIndexedKey, "1"), "writing the index marker");
}

std::string Store::TreeKey(int level, uint64_t index) const {
  return level_first_tree_ ? LevelFirstNodeKey(level, index) : TreeNodeKey(level, index);
}

absl::Status Store::DetectTreeLayout(bool read_only) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), tree_));
  it->SeekToFirst();
  if (!it->status().ok()) return FromRocks(it->status(), "reading the Merkle tree");
  if (!it->Valid() || IsAppendOrderKey(it->key().ToStringView())) return absl::OkStatus();
  level_first_tree_ = true;
  it->SeekToLast();
  if (!it->status().ok()) return FromRocks(it->status(), "reading the Merkle tree");
  if (read_only && it->Valid() && IsAppendOrderKey(it->key().ToStringView())) {
    return absl::FailedPreconditionError(
        "the ledger database's Merkle tree is half converted to its new layout (a conversion was interrupted); "
        "start ledgerd on it once to finish, then open it again");
  }
  return absl::OkStatus();
}

absl::Status Store::ConvertTreeLayout() {
  constexpr size_t kNodesPerBatch = 1 << 16;
  const auto started = std::chrono::steady_clock::now();
  uint64_t converted = 0;
  // 1. Every node is written again under its append-order key, without the
  //    write-ahead log (the old keys stay until step 3, so a crash before it
  //    loses nothing: the next Open converts again). The iterator reads the
  //    tree as it was when created, and append-order keys sort after every
  //    level-first one (0xFF), so it meets none it wrote.
  rocksdb::WriteOptions no_wal;
  no_wal.disableWAL = true;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), tree_));
  rocksdb::WriteBatch batch;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string_view key = it->key().ToStringView();
    if (IsAppendOrderKey(key)) break;  // written by an interrupted conversion
    if (key.size() != 9) {
      return absl::DataLossError(absl::StrCat("Merkle tree key of ", key.size(), " bytes (expected 9)"));
    }
    const int level = static_cast<uint8_t>(key[0]);
    const uint64_t index = ReadBE64(key.substr(1));
    if (level > 63 || (index >> (63 - level)) != 0) {
      return absl::DataLossError(absl::StrCat("Merkle tree key of level ", level, " index ", index, " is out of range"));
    }
    batch.Put(tree_, TreeNodeKey(level, index), it->value());
    if (++converted % kNodesPerBatch == 0) {
      if (auto s = FromRocks(db_->Write(no_wal, &batch), "converting the Merkle tree's layout"); !s.ok()) return s;
      batch.Clear();
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading the Merkle tree");
  it.reset();
  if (auto s = FromRocks(db_->Write(no_wal, &batch), "converting the Merkle tree's layout"); !s.ok()) return s;
  // 2. Made durable: the tree family's memtable goes to a table file.
  if (auto s = FromRocks(db_->Flush(rocksdb::FlushOptions(), tree_), "flushing the converted tree"); !s.ok()) {
    return s;
  }
  // 3. The level-first keys go, in one synced range deletion.
  rocksdb::WriteOptions sync;
  sync.sync = true;
  if (auto s = FromRocks(db_->DeleteRange(sync, tree_, std::string(), std::string(1, kAppendOrderTreeMark)),
                         "removing the tree's level-first keys");
      !s.ok()) {
    return s;
  }
  level_first_tree_ = false;
  LOG(INFO) << "converted " << converted << " Merkle tree nodes to the append-order layout in "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()
            << " s; compacting the tree";
  // The range deletion's space is reclaimed at once, not at some later compaction.
  if (auto s = FromRocks(db_->CompactRange(rocksdb::CompactRangeOptions(), tree_, nullptr, nullptr),
                         "compacting the converted tree");
      !s.ok()) {
    return s;
  }
  LOG(INFO) << "Merkle tree conversion done in "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() << " s";
  return absl::OkStatus();
}

Store::~Store() {
  if (!db_) return;
  for (auto* handle : handles_) db_->DestroyColumnFamilyHandle(handle);
  db_->Close();
}

absl::Status Store::Write(const CommitGroup& group) {
  rocksdb::WriteBatch batch;
  for (const PendingRecord& r : group.records) {
    std::string position = BE64(r.position);
    batch.Put(records_, position, r.record);
    std::string idem_value = position;
    idem_value.append(crypto::AsBytes(r.body_hash));
    batch.Put(idempotency_, IdempotencyKey(r.author, r.idempotency_key), idem_value);
    batch.Put(by_author_, AuthorPrefix(r.author) + position, "");
    batch.Put(by_kind_, KindPrefix(r.kind) + position, "");
    batch.Put(by_author_kind_, AuthorPrefix(r.author) + KindPrefix(r.kind) + position, "");
    if (!r.refused_author.empty()) batch.Put(by_author_kind_, AuthorPrefix(r.refused_author) + KindPrefix(0) + position, "");
  }
  for (const merkle::Node& node : group.nodes) {
    batch.Put(tree_, TreeNodeKey(node.level, node.index), merkle::AsBytes(node.hash));
  }
  for (const auto& [key, value] : group.state_changes) {
    if (value.has_value()) {
      batch.Put(state_, key, SealState(key, *value));
    } else {
      batch.Delete(state_, key);
    }
  }
  PutDroppedRefusals(batch, meta_, group.dropped_refusals);
  batch.Put(checkpoints_, BE64(group.new_tree_size), group.checkpoint_note);
  batch.Put(meta_, kTreeSizeKey, BE64(group.new_tree_size));

  // A commit that might not fit is refused before RocksDB sees it: this
  // RocksDB (7.8) cannot recover its write-ahead log after a failed write
  // (it asserts), so a full disk must never get that far.
  struct statvfs disk;
  if (::statvfs(dir_.c_str(), &disk) == 0) {
    const uint64_t free_bytes = static_cast<uint64_t>(disk.f_bavail) * disk.f_frsize;
    const uint64_t needed = 2 * batch.GetDataSize() + kDiskReserveBytes;
    if (free_bytes < needed) {
      return Refuse(absl::StatusCode::kUnavailable, v1::STORAGE,
                    absl::StrCat("the disk holding ", dir_, " is full: ", free_bytes, " bytes free, ", needed,
                                 " needed to commit; nothing was written"));
    }
  }
  rocksdb::WriteOptions options;
  options.sync = true;
  if (auto s = FromRocks(db_->Write(options, &batch), "committing to the ledger database"); !s.ok()) {
    return s;
  }
  tree_size_.store(group.new_tree_size, std::memory_order_release);
  return absl::OkStatus();
}

std::optional<uint64_t> Store::IntProperty(const std::string& name, bool every_family) const {
  uint64_t value = 0;
  const bool known = every_family ? db_->GetAggregatedIntProperty(name, &value) : db_->GetIntProperty(name, &value);
  if (!known) return std::nullopt;
  return value;
}

absl::Status Store::Recover() {
  if (auto s = FromRocks(db_->Resume(), "resuming the ledger database"); !s.ok()) return s;
  std::string size_bytes;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_, kTreeSizeKey, &size_bytes);
  if (!s.ok() || size_bytes.size() != 8) {
    return absl::DataLossError(absl::StrCat("re-reading the tree size after a failed write: ", s.ToString()));
  }
  tree_size_.store(ReadBE64(size_bytes), std::memory_order_release);
  return absl::OkStatus();
}

absl::StatusOr<std::string> Store::GetRecord(uint64_t position) const {
  // One home for the checks (bounds, missing record, its Merkle leaf).
  auto records = GetRecords({position});
  if (!records.ok()) return records.status();
  return std::move(records->front());
}

absl::StatusOr<std::vector<std::string>> Store::GetRecords(const std::vector<uint64_t>& positions) const {
  const uint64_t size = tree_size();
  const size_t n = positions.size();
  std::vector<std::string> record_keys, leaf_keys;
  record_keys.reserve(n);
  leaf_keys.reserve(n);
  for (uint64_t position : positions) {
    if (position >= size) {
      return Refuse(absl::StatusCode::kNotFound, v1::NO_SUCH_POSITION,
                    absl::StrCat("no record at position ", position, "; the log has ", size));
    }
    record_keys.push_back(BE64(position));
    leaf_keys.push_back(TreeKey(0, position));
  }
  std::vector<rocksdb::Slice> record_slices(record_keys.begin(), record_keys.end());
  std::vector<rocksdb::Slice> leaf_slices(leaf_keys.begin(), leaf_keys.end());
  std::vector<rocksdb::PinnableSlice> records(n), leaves(n);
  std::vector<rocksdb::Status> record_statuses(n), leaf_statuses(n);
  const bool sorted = std::is_sorted(positions.begin(), positions.end());
  const rocksdb::ReadOptions options;
  db_->MultiGet(options, records_, n, record_slices.data(), records.data(), record_statuses.data(), sorted);
  db_->MultiGet(options, tree_, n, leaf_slices.data(), leaves.data(), leaf_statuses.data(), sorted);
  std::vector<std::string> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t position = positions[i];
    if (record_statuses[i].IsNotFound()) {
      return absl::DataLossError(absl::StrCat("record at position ", position, " is missing"));
    }
    if (auto status = FromRocks(record_statuses[i], absl::StrCat("reading record ", position)); !status.ok()) {
      return status;
    }
    if (leaf_statuses[i].IsNotFound()) {
      return absl::DataLossError(absl::StrCat("Merkle leaf of record ", position, ": no tree node at level 0 index ",
                                              position));
    }
    if (auto status = FromRocks(leaf_statuses[i], "reading a tree node"); !status.ok()) {
      return absl::DataLossError(absl::StrCat("Merkle leaf of record ", position, ": ", status.message()));
    }
    auto leaf = merkle::HashFromBytes(leaves[i].ToStringView());
    if (!leaf.ok()) {
      return absl::DataLossError(absl::StrCat("Merkle leaf of record ", position, ": tree node at level 0 index ",
                                              position, " is corrupt"));
    }
    const std::string_view value = records[i].ToStringView();
    if (*leaf != merkle::HashLeaf(value)) return AlteredRecord(position);
    out.emplace_back(value);
  }
  return out;
}

absl::StatusOr<merkle::Hash> Store::ReadNode(int level, uint64_t index) const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), tree_, TreeKey(level, index), &value);
  if (s.IsNotFound()) {
    return absl::NotFoundError(absl::StrCat("no tree node at level ", level, " index ", index));
  }
  if (auto status = FromRocks(s, "reading a tree node"); !status.ok()) return status;
  auto hash = merkle::HashFromBytes(value);
  if (!hash.ok()) {
    return absl::DataLossError(absl::StrCat("tree node at level ", level, " index ", index,
                                            " is corrupt"));
  }
  return *hash;
}

absl::StatusOr<std::string> Store::GetCheckpoint(uint64_t tree_size) const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), checkpoints_, BE64(tree_size), &value);
  if (s.IsNotFound()) {
    return Refuse(absl::StatusCode::kNotFound, v1::NO_SUCH_CHECKPOINT,
                  absl::StrCat("no checkpoint of size ", tree_size));
  }
  if (auto status = FromRocks(s, "reading a checkpoint"); !status.ok()) return status;
  return value;
}

absl::Status Store::ScanCheckpoints(uint64_t from_size, const CheckpointVisitor& visit) const {
  const uint64_t size = tree_size();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), checkpoints_));
  for (it->Seek(BE64(from_size)); it->Valid(); it->Next()) {
    if (it->key().size() != 8) return absl::DataLossError("a checkpoint key is corrupt");
    const uint64_t checkpoint_size = ReadBE64(it->key().ToStringView());
    if (checkpoint_size > size) break;  // written by a commit not yet published
    if (!visit(checkpoint_size, it->value().ToStringView())) break;
  }
  return FromRocks(it->status(), "scanning checkpoints");
}

absl::Status Store::PutWitnessedCheckpoint(uint64_t tree_size, std::string_view note) {
  absl::StatusOr<uint64_t> witnessed = WitnessedSize();
  if (!witnessed.ok()) return witnessed.status();
  rocksdb::WriteBatch batch;
  batch.Put(checkpoints_, BE64(tree_size), rocksdb::Slice(note.data(), note.size()));
  if (tree_size > *witnessed) batch.Put(meta_, kWitnessedSizeKey, BE64(tree_size));
  rocksdb::WriteOptions sync;
  sync.sync = true;
  return FromRocks(db_->Write(sync, &batch), "writing a witnessed checkpoint");
}

absl::StatusOr<uint64_t> Store::WitnessedSize() const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_, kWitnessedSizeKey, &value);
  if (s.IsNotFound()) return 0;
  if (auto status = FromRocks(s, "reading the witnessed size"); !status.ok()) return status;
  if (value.size() != 8) return absl::DataLossError("the witnessed size is corrupt");
  return ReadBE64(value);
}

absl::StatusOr<std::pair<uint64_t, std::string>> Store::FirstCheckpointIncluding(uint64_t position) const {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), checkpoints_));
  it->Seek(BE64(position + 1));
  if (auto s = FromRocks(it->status(), "reading checkpoints"); !s.ok()) return s;
  if (!it->Valid() || it->key().size() != 8) {
    return absl::DataLossError(absl::StrCat("no checkpoint includes committed position ", position));
  }
  return std::make_pair(ReadBE64(it->key().ToStringView()), it->value().ToString());
}

absl::StatusOr<std::optional<IdempotencyEntry>> Store::FindIdempotency(
    std::string_view author, std::string_view idempotency_key) const {
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), idempotency_, IdempotencyKey(author, idempotency_key), &value);
  if (s.IsNotFound()) return std::nullopt;
  if (auto status = FromRocks(s, "reading the idempotency index"); !status.ok()) return status;
  if (value.size() != 8 + 32) return absl::DataLossError("idempotency index entry is corrupt");
  IdempotencyEntry entry;
  entry.position = ReadBE64(value);
  std::copy(value.begin() + 8, value.end(), entry.body_hash.begin());
  return entry;
}

absl::Status Store::ScanRecords(uint64_t from, uint64_t to, const RecordVisitor& visit) const {
  to = std::min(to, tree_size());
  if (from >= to) return absl::OkStatus();
  rocksdb::ReadOptions options;
  std::string upper = BE64(to);
  rocksdb::Slice upper_slice(upper);
  options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options, records_));
  // Every record is checked against its Merkle leaf as it is read. In the
  // append-order layout the nodes a leaf completes follow it: skipped.
  std::unique_ptr<rocksdb::Iterator> leaves(db_->NewIterator(rocksdb::ReadOptions(), tree_));
  auto next_leaf = [&] {
    while (leaves->Valid() && IsAppendOrderKey(leaves->key().ToStringView()) && leaves->key()[9] != 0) {
      leaves->Next();
    }
  };
  leaves->Seek(TreeKey(0, from));
  uint64_t expected = from;
  for (it->Seek(BE64(from)); it->Valid(); it->Next(), leaves->Next(), ++expected) {
    if (it->key().size() != 8 || ReadBE64(it->key().ToStringView()) != expected) {
      return absl::DataLossError(absl::StrCat("record at position ", expected, " is missing"));
    }
    next_leaf();
    if (!leaves->Valid() || leaves->key().ToStringView() != TreeKey(0, expected) ||
        leaves->value().ToStringView() != merkle::AsBytes(merkle::HashLeaf(it->value().ToStringView()))) {
      return AlteredRecord(expected);
    }
    if (!visit(expected, it->value().ToStringView())) return absl::OkStatus();
  }
  if (auto s = FromRocks(leaves->status(), "scanning Merkle leaves"); !s.ok()) return s;
  if (auto s = FromRocks(it->status(), "scanning records"); !s.ok()) return s;
  if (expected != to) {
    return absl::DataLossError(absl::StrCat("record at position ", expected, " is missing"));
  }
  return absl::OkStatus();
}

absl::Status Store::ScanPositions(rocksdb::ColumnFamilyHandle* cf, std::string prefix,
                                  uint64_t from, const PositionVisitor& visit) const {
  const uint64_t size = tree_size();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf));
  for (it->Seek(prefix + BE64(from)); it->Valid(); it->Next()) {
    std::string_view key = it->key().ToStringView();
    if (key.size() != prefix.size() + 8 || key.substr(0, prefix.size()) != prefix) break;
    uint64_t position = ReadBE64(key.substr(prefix.size()));
    if (position >= size) break;  // written by a commit not yet published
    if (!visit(position)) break;
  }
  return FromRocks(it->status(), "scanning an index");
}

absl::Status Store::ScanAuthor(std::string_view author, uint64_t from,
                               const PositionVisitor& visit) const {
  return ScanPositions(by_author_, AuthorPrefix(author), from, visit);
}

absl::Status Store::ScanKind(int kind, uint64_t from, const PositionVisitor& visit) const {
  return ScanPositions(by_kind_, KindPrefix(kind), from, visit);
}

absl::Status Store::ScanRefusalsOf(std::string_view author, uint64_t from, const PositionVisitor& visit) const {
  return ScanPositions(by_author_kind_, AuthorPrefix(author) + KindPrefix(0), from, visit);
}

absl::Status Store::ScanAuthorKind(std::string_view author, int kind, uint64_t from,
                                   const PositionVisitor& visit) const {
  return ScanPositions(by_author_kind_, AuthorPrefix(author) + KindPrefix(kind), from, visit);
}

absl::StatusOr<std::optional<std::string>> Store::GetState(const std::string& key) const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), state_, key, &value);
  if (s.IsNotFound()) return std::nullopt;
  if (auto status = FromRocks(s, "reading projected state"); !status.ok()) return status;
  auto opened = OpenState(key, value);
  if (!opened.ok()) return opened.status();
  return std::string(*opened);
}

absl::Status Store::ScanState(const std::string& prefix, const StateVisitor& visit) const {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), state_));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    auto opened = OpenState(it->key().ToStringView(), it->value().ToStringView());
    if (!opened.ok()) return opened.status();
    if (!visit(it->key().ToStringView(), *opened)) break;
  }
  return FromRocks(it->status(), "scanning projected state");
}

absl::Status Store::LoadDroppedRefusals(absl::flat_hash_map<std::string, uint64_t>* counts) const {
  counts->clear();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
  const rocksdb::Slice prefix(kDroppedRefusalsPrefix.data(), kDroppedRefusalsPrefix.size());
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    if (it->value().size() != 8) {
      return absl::DataLossError(absl::StrCat("the dropped-refusal count \"", it->key().ToString(),
                                              "\" is not 8 bytes"));
    }
    (*counts)[it->key().ToString().substr(prefix.size())] = ReadBE64(it->value().ToStringView());
  }
  return FromRocks(it->status(), "loading dropped-refusal counts");
}

absl::StatusOr<uint64_t> Store::DroppedRefusals(std::string_view author) const {
  const std::string key = absl::StrCat(kDroppedRefusalsPrefix, absl::string_view(author.data(), author.size()));
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_, key, &value);
  if (s.IsNotFound()) return 0;
  if (auto status = FromRocks(s, "reading a dropped-refusal count"); !status.ok()) return status;
  if (value.size() != 8) return absl::DataLossError(absl::StrCat("the dropped-refusal count \"", key, "\" is not 8 bytes"));
  return ReadBE64(value);
}

absl::Status Store::WriteDroppedRefusals(const std::vector<std::pair<std::string, uint64_t>>& counts) {
  rocksdb::WriteBatch batch;
  PutDroppedRefusals(batch, meta_, counts);
  return FromRocks(db_->Write(rocksdb::WriteOptions(), &batch), "writing dropped-refusal counts");
}

absl::Status Store::LoadState(rules::State* state) const {
  // The organisation-key index is derived from the keys and not loaded: it
  // is skipped (half the entries when keys dominate), and its entries are
  // checked when a query reads them.
  std::string past_index(rules::kOrganisationKeyPrefix);
  past_index.back()++;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), state_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (it->key().starts_with(rocksdb::Slice(rules::kOrganisationKeyPrefix.data(),
                                             rules::kOrganisationKeyPrefix.size()))) {
      it->Seek(past_index);
      if (!it->Valid()) break;
    }
    auto opened = OpenState(it->key().ToStringView(), it->value().ToStringView());
    if (!opened.ok()) return opened.status();
    if (auto s = state->LoadEntry(absl::string_view(it->key().data(), it->key().size()),
                                  absl::string_view(opened->data(), opened->size()));
        !s.ok()) {
      return s;
    }
  }
  return FromRocks(it->status(), "loading projected state");
}

absl::Status Store::CreateCheckpoint(const std::string& dir) const {
  rocksdb::Checkpoint* raw = nullptr;
  if (auto s = FromRocks(rocksdb::Checkpoint::Create(db_.get(), &raw), "preparing a checkpoint"); !s.ok()) return s;
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  // log_size_for_flush 0: the memtables are flushed first, so the copy is
  // table files (hard links) and no write-ahead log to replay.
  return FromRocks(checkpoint->CreateCheckpoint(dir, /*log_size_for_flush=*/0),
                   absl::StrCat("creating a checkpoint of the ledger database in ", dir));
}

}  // namespace ledger::store
