// Tests for ledger/store/store: the RocksDB layout, on a real database in a
// temporary directory. Corruption is injected by opening the same directory
// with the raw RocksDB API and altering it, never by mocking the store.
#include "ledger/store/store.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/crypto/sha256.h"
#include "ledger/event/envelope.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/merkle/tree.h"
#include "ledger/rules/state.h"
#include "ledger/v1/record.pb.h"
#include "ledger/v1/state.pb.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "tests/support/temp_dir.h"

namespace ledger::store {
namespace {

using ::ledger::testing::TempDir;

std::string BE64(uint64_t value) {
  std::string out;
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>(value >> (8 * i)));
  return out;
}

constexpr char kOrigin[] = "decision-ledger/store-test";

const crypto::PrivateKey& OperatorKey() {
  static const auto* key = new crypto::PrivateKey(*crypto::PrivateKey::FromSeed(std::string(32, '\x05')));
  return *key;
}

// Builds commit groups as the ledger would: records, the Merkle nodes they
// complete, and a signed checkpoint.
class GroupBuilder {
 public:
  // Adds a record by `author` of payload `kind`; returns its position.
  // `signed_event`: the record's SignedEvent bytes (default: a placeholder).
  uint64_t Add(const std::string& author, int kind, std::string idempotency_key = "",
               std::string signed_event = "", std::string refused_author = "") {
    const uint64_t position = next_++;
    if (idempotency_key.empty()) idempotency_key = absl::StrCat("idem-", position);
    v1::Record record;
    record.set_position(position);
    record.set_ledger_time_unix_ns(1000 + static_cast<int64_t>(position));
    record.set_signed_event(signed_event.empty() ? absl::StrCat("event ", position, " by ", author) : signed_event);
    PendingRecord pending;
    pending.position = position;
    pending.record = record.SerializeAsString();
    pending.author = author;
    pending.kind = kind;
    pending.idempotency_key = idempotency_key;
    pending.body_hash = crypto::Sha256(absl::StrCat("body ", position));
    pending.refused_author = std::move(refused_author);
    records_[position] = pending.record;
    group_.records.push_back(std::move(pending));
    return position;
  }
  void Change(std::string key, std::optional<std::string> value) {
    group_.state_changes.emplace_back(std::move(key), std::move(value));
  }
  // Completes the group (nodes, size, checkpoint) and starts the next.
  CommitGroup Take() {
    for (const PendingRecord& r : group_.records) {
      for (merkle::Node& node : frontier_.Append(merkle::HashLeaf(r.record))) {
        group_.nodes.push_back(node);
      }
    }
    group_.new_tree_size = next_;
    group_.checkpoint_note = merkle::SignCheckpoint(
        merkle::Checkpoint{kOrigin, next_, frontier_.Root()}, kOrigin, OperatorKey());
    CommitGroup out = std::move(group_);
    group_ = CommitGroup();
    return out;
  }
  const std::string& record(uint64_t position) { return records_.at(position); }
  merkle::Hash root() const { return frontier_.Root(); }
  uint64_t size() const { return next_; }

 private:
  uint64_t next_ = 0;
  CommitGroup group_;
  merkle::Frontier frontier_;
  std::map<uint64_t, std::string> records_;
};

std::unique_ptr<Store> OpenOrDie(const std::string& dir) {
  auto store = Store::Open(dir);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

// Opens `dir` with the raw RocksDB API (every column family) and runs `edit`.
void Tamper(const std::string& dir,
            const std::function<void(rocksdb::DB*, std::map<std::string, rocksdb::ColumnFamilyHandle*>&)>& edit) {
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const auto& name : names) families.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(rocksdb::Options(), dir, families, &handles, &raw);
  ASSERT_TRUE(s.ok()) << s.ToString();
  std::unique_ptr<rocksdb::DB> db(raw);
  std::map<std::string, rocksdb::ColumnFamilyHandle*> by_name;
  for (size_t i = 0; i < names.size(); ++i) by_name[names[i]] = handles[i];
  edit(db.get(), by_name);
  for (auto* handle : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(handle).ok());
  ASSERT_TRUE(db->Close().ok());
}

rocksdb::WriteOptions Synced() {
  rocksdb::WriteOptions options;
  options.sync = true;
  return options;
}

std::vector<uint64_t> RecordsIn(const Store& store, uint64_t from, uint64_t to,
                                absl::Status* status = nullptr) {
  std::vector<uint64_t> seen;
  absl::Status s = store.ScanRecords(from, to, [&](uint64_t position, std::string_view bytes) {
    v1::Record record;
    EXPECT_TRUE(record.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())));
    EXPECT_EQ(record.position(), position);
    seen.push_back(position);
    return true;
  });
  if (status != nullptr) {
    *status = s;
  } else {
    EXPECT_TRUE(s.ok()) << s;
  }
  return seen;
}

std::vector<uint64_t> ByAuthor(const Store& store, const std::string& author, uint64_t from,
                               size_t limit = 1000) {
  std::vector<uint64_t> seen;
  absl::Status s = store.ScanAuthor(author, from, [&](uint64_t position) {
    seen.push_back(position);
    return seen.size() < limit;
  });
  EXPECT_TRUE(s.ok()) << s;
  return seen;
}

std::vector<uint64_t> ByKind(const Store& store, int kind, uint64_t from, size_t limit = 1000) {
  std::vector<uint64_t> seen;
  absl::Status s = store.ScanKind(kind, from, [&](uint64_t position) {
    seen.push_back(position);
    return seen.size() < limit;
  });
  EXPECT_TRUE(s.ok()) << s;
  return seen;
}

std::vector<uint64_t> Range(uint64_t from, uint64_t to) {
  std::vector<uint64_t> out;
  for (uint64_t i = from; i < to; ++i) out.push_back(i);
  return out;
}

v1::OrganisationState Org(const std::string& id, const std::string& name) {
  v1::OrganisationState org;
  org.set_org_id(id);
  org.set_name(name);
  return org;
}

TEST(Store, OpensAFreshDirectoryEmpty) {
  TempDir dir("store_test");
  auto store = OpenOrDie(dir.path() + "/db");
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->tree_size(), 0u);
  EXPECT_EQ(store->GetRecord(0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->GetCheckpoint(0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->ReadNode(0, 0).status().code(), absl::StatusCode::kNotFound);
  auto idem = store->FindIdempotency("org-a", "k");
  ASSERT_TRUE(idem.ok()) << idem.status();
  EXPECT_FALSE(idem->has_value());
  EXPECT_TRUE(RecordsIn(*store, 0, 100).empty());
  EXPECT_TRUE(ByAuthor(*store, "org-a", 0).empty());
  rules::State state;
  ASSERT_TRUE(store->LoadState(&state).ok());
  EXPECT_TRUE(state.Snapshot().empty());
  auto root = merkle::RootAt(*store, 0);
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(*root, merkle::EmptyRoot());
}

// Writes two groups through one Store; checks everything; then reopens and
// checks it all again.
TEST(Store, WritesAGroupAndKeepsItAcrossReopen) {
  TempDir dir("store_test");
  GroupBuilder builder;
  rules::State expected_state;
  std::vector<CommitGroup> groups;

  // Group 1: three records, state for two organisations, the ledger info.
  builder.Add("org-a", 11, "first");
  builder.Add("org-b", 12);
  builder.Add("org-a", 12);
  v1::LedgerInfo info;
  info.set_ledger_id("store-test");
  info.set_origin(kOrigin);
  builder.Change(std::string(rules::kInfoKey), info.SerializeAsString());
  builder.Change("o/org-a", Org("org-a", "A").SerializeAsString());
  builder.Change("o/org-b", Org("org-b", "B").SerializeAsString());
  groups.push_back(builder.Take());
  const merkle::Hash root3 = builder.root();

  // Group 2: four more, one organisation replaced, one deleted.
  builder.Add("org-b", 11);
  builder.Add("org-a", 13);
  builder.Add("org-c", 12);
  builder.Add("org-a", 11);
  builder.Change("o/org-a", Org("org-a", "A renamed").SerializeAsString());
  builder.Change("o/org-b", std::nullopt);
  groups.push_back(builder.Take());
  const merkle::Hash root7 = builder.root();

  ASSERT_TRUE(expected_state.LoadEntry(rules::kInfoKey, info.SerializeAsString()).ok());
  ASSERT_TRUE(expected_state.LoadEntry("o/org-a", Org("org-a", "A renamed").SerializeAsString()).ok());

  auto check = [&](const Store& store) {
    EXPECT_EQ(store.tree_size(), 7u);
    for (uint64_t p = 0; p < 7; ++p) {
      auto record = store.GetRecord(p);
      ASSERT_TRUE(record.ok()) << record.status();
      EXPECT_EQ(*record, builder.record(p));
    }
    EXPECT_EQ(store.GetRecord(7).status().code(), absl::StatusCode::kNotFound);
    // Every node the frontier emitted is stored.
    for (const CommitGroup& group : groups) {
      for (const merkle::Node& node : group.nodes) {
        auto hash = store.ReadNode(node.level, node.index);
        ASSERT_TRUE(hash.ok()) << hash.status();
        EXPECT_EQ(*hash, node.hash);
      }
    }
    auto r3 = merkle::RootAt(store, 3);
    auto r7 = merkle::RootAt(store, 7);
    ASSERT_TRUE(r3.ok() && r7.ok());
    EXPECT_EQ(*r3, root3);
    EXPECT_EQ(*r7, root7);
    // Checkpoints of exactly the written sizes.
    auto cp3 = store.GetCheckpoint(3);
    ASSERT_TRUE(cp3.ok()) << cp3.status();
    EXPECT_EQ(*cp3, groups[0].checkpoint_note);
    auto opened = merkle::OpenCheckpoint(*cp3, kOrigin, OperatorKey().public_key());
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(opened->size, 3u);
    EXPECT_EQ(opened->root, root3);
    auto cp7 = store.GetCheckpoint(7);
    ASSERT_TRUE(cp7.ok()) << cp7.status();
    EXPECT_EQ(*cp7, groups[1].checkpoint_note);
    for (uint64_t size : {0, 1, 2, 4, 5, 6, 8}) {
      EXPECT_EQ(store.GetCheckpoint(size).status().code(), absl::StatusCode::kNotFound) << size;
    }
    // Idempotency entries.
    auto first = store.FindIdempotency("org-a", "first");
    ASSERT_TRUE(first.ok()) << first.status();
    ASSERT_TRUE(first->has_value());
    EXPECT_EQ((*first)->position, 0u);
    EXPECT_EQ((*first)->body_hash, crypto::Sha256("body 0"));
    auto sixth = store.FindIdempotency("org-a", "idem-6");
    ASSERT_TRUE(sixth.ok() && sixth->has_value());
    EXPECT_EQ((*sixth)->position, 6u);
    EXPECT_EQ((*sixth)->body_hash, crypto::Sha256("body 6"));
    // Keyed by author: another author's key of the same name is not it.
    auto other = store.FindIdempotency("org-b", "first");
    ASSERT_TRUE(other.ok());
    EXPECT_FALSE(other->has_value());
    auto prefix = store.FindIdempotency("org-a", "firs");
    ASSERT_TRUE(prefix.ok());
    EXPECT_FALSE(prefix->has_value());
    // State, with the replacement and the deletion applied.
    rules::State state;
    ASSERT_TRUE(store.LoadState(&state).ok());
    EXPECT_EQ(state.Snapshot(), expected_state.Snapshot());
    EXPECT_EQ(state.FindOrganisation("org-b"), nullptr);
    EXPECT_EQ(state.info().ledger_id(), "store-test");
    // Scans.
    EXPECT_EQ(RecordsIn(store, 0, 7), Range(0, 7));
    EXPECT_EQ(ByAuthor(store, "org-a", 0), (std::vector<uint64_t>{0, 2, 4, 6}));
    EXPECT_EQ(ByKind(store, 12, 0), (std::vector<uint64_t>{1, 2, 5}));
  };

  {
    auto store = OpenOrDie(dir.path());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Write(groups[0]).ok());
    EXPECT_EQ(store->tree_size(), 3u);
    ASSERT_TRUE(store->Write(groups[1]).ok());
    check(*store);
  }
  {
    SCOPED_TRACE("after reopening");
    auto store = OpenOrDie(dir.path());
    ASSERT_NE(store, nullptr);
    check(*store);
    // And it keeps growing from where it was.
    builder.Add("org-d", 14);
    CommitGroup group = builder.Take();
    ASSERT_TRUE(store->Write(group).ok());
    EXPECT_EQ(store->tree_size(), 8u);
  }
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->tree_size(), 8u);
  EXPECT_EQ(*merkle::RootAt(*store, 8), builder.root());
}

class ScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenOrDie(dir_.path());
    ASSERT_NE(store_, nullptr);
    // 30 records in three groups; authors cycle "org", "org-a", "org-b";
    // kinds cycle 11, 12, 13, 300 (a kind above one byte).
    const std::vector<std::string> authors = {"org", "org-a", "org-b"};
    const std::vector<int> kinds = {11, 12, 13, 300};
    for (int g = 0; g < 3; ++g) {
      for (int i = 0; i < 10; ++i) {
        uint64_t p = builder_.size();
        builder_.Add(authors[p % 3], kinds[p % 4]);
      }
      ASSERT_TRUE(store_->Write(builder_.Take()).ok());
    }
  }
  std::vector<uint64_t> Expected(std::function<bool(uint64_t)> pred, uint64_t from) {
    std::vector<uint64_t> out;
    for (uint64_t p = from; p < 30; ++p) if (pred(p)) out.push_back(p);
    return out;
  }

  TempDir dir_{"store_test"};
  GroupBuilder builder_;
  std::unique_ptr<Store> store_;
};

TEST_F(ScanTest, RecordsInOrderWithinBounds) {
  EXPECT_EQ(RecordsIn(*store_, 0, 30), Range(0, 30));
  EXPECT_EQ(RecordsIn(*store_, 7, 19), Range(7, 19));
  EXPECT_EQ(RecordsIn(*store_, 29, 30), Range(29, 30));
  EXPECT_EQ(RecordsIn(*store_, 25, 1000), Range(25, 30));  // `to` is clamped to the size
  EXPECT_TRUE(RecordsIn(*store_, 10, 10).empty());
  EXPECT_TRUE(RecordsIn(*store_, 12, 5).empty());
  EXPECT_TRUE(RecordsIn(*store_, 30, 40).empty());
  EXPECT_TRUE(RecordsIn(*store_, 1000, 2000).empty());

  // The visitor stops the scan.
  std::vector<uint64_t> seen;
  ASSERT_TRUE(store_->ScanRecords(3, 30, [&](uint64_t p, std::string_view bytes) {
                       seen.push_back(p);
                       EXPECT_EQ(std::string(bytes), builder_.record(p));
                       return seen.size() < 4;
                     }).ok());
  EXPECT_EQ(seen, Range(3, 7));
}

TEST_F(ScanTest, ByAuthorInOrderFromAPosition) {
  for (uint64_t from : {0, 1, 5, 28, 29, 30, 100}) {
    SCOPED_TRACE(from);
    // "org" is a prefix of "org-a": their entries must not mix.
    EXPECT_EQ(ByAuthor(*store_, "org", from), Expected([](uint64_t p) { return p % 3 == 0; }, from));
    EXPECT_EQ(ByAuthor(*store_, "org-a", from), Expected([](uint64_t p) { return p % 3 == 1; }, from));
    EXPECT_EQ(ByAuthor(*store_, "org-b", from), Expected([](uint64_t p) { return p % 3 == 2; }, from));
  }
  EXPECT_TRUE(ByAuthor(*store_, "or", 0).empty());
  EXPECT_TRUE(ByAuthor(*store_, "org-c", 0).empty());
  EXPECT_TRUE(ByAuthor(*store_, "", 0).empty());
  EXPECT_EQ(ByAuthor(*store_, "org-a", 0, 3), (std::vector<uint64_t>{1, 4, 7}));
}

TEST_F(ScanTest, ByKindInOrderFromAPosition) {
  const std::vector<int> kinds = {11, 12, 13, 300};
  for (uint64_t from : {0, 2, 17, 29, 30}) {
    for (size_t k = 0; k < kinds.size(); ++k) {
      SCOPED_TRACE(absl::StrCat("kind ", kinds[k], " from ", from));
      EXPECT_EQ(ByKind(*store_, kinds[k], from), Expected([&](uint64_t p) { return p % 4 == k; }, from));
    }
  }
  EXPECT_TRUE(ByKind(*store_, 14, 0).empty());
  EXPECT_TRUE(ByKind(*store_, 0, 0).empty());
  EXPECT_TRUE(ByKind(*store_, 44, 0).empty());  // 300 = 0x12c: its low byte is 44
  EXPECT_EQ(ByKind(*store_, 300, 0, 2), (std::vector<uint64_t>{3, 7}));
}

TEST_F(ScanTest, IndexEntriesPastTheTreeSizeAreNotVisited) {
  // Entries of a commit that is not published (here: planted directly).
  store_.reset();
  Tamper(dir_.path(), [&](rocksdb::DB* db, auto& cf) {
    ASSERT_TRUE(db->Put(Synced(), cf.at("by_author"), std::string("org-a\0", 6) + BE64(40), "").ok());
    std::string kind_key("\0\0\0\x0c", 4);
    ASSERT_TRUE(db->Put(Synced(), cf.at("by_kind"), kind_key + BE64(41), "").ok());
  });
  store_ = OpenOrDie(dir_.path());
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(ByAuthor(*store_, "org-a", 0), Expected([](uint64_t p) { return p % 3 == 1; }, 0));
  EXPECT_EQ(ByKind(*store_, 12, 0), Expected([](uint64_t p) { return p % 4 == 1; }, 0));
}

std::vector<uint64_t> ByAuthorKind(const Store& store, const std::string& author, int kind, uint64_t from) {
  std::vector<uint64_t> seen;
  absl::Status s = store.ScanAuthorKind(author, kind, from, [&](uint64_t position) {
    seen.push_back(position);
    return true;
  });
  EXPECT_TRUE(s.ok()) << s;
  return seen;
}

TEST_F(ScanTest, ByAuthorAndKindInOrderFromAPosition) {
  const std::vector<std::string> authors = {"org", "org-a", "org-b"};
  const std::vector<int> kinds = {11, 12, 13, 300};
  for (uint64_t from : {0, 5, 29, 30}) {
    for (size_t a = 0; a < authors.size(); ++a) {
      for (size_t k = 0; k < kinds.size(); ++k) {
        SCOPED_TRACE(absl::StrCat(authors[a], " kind ", kinds[k], " from ", from));
        EXPECT_EQ(ByAuthorKind(*store_, authors[a], kinds[k], from),
                  Expected([&](uint64_t p) { return p % 3 == a && p % 4 == k; }, from));
      }
    }
  }
  EXPECT_TRUE(ByAuthorKind(*store_, "org-c", 11, 0).empty());
}

// A store written before the by_author_kind index (here: its entries and
// marker removed) is indexed once at Open, refused attempts by their author.
TEST(Store, AuthorKindIndexIsBuiltOnceForAnOlderStore) {
  TempDir dir("store_test");
  const crypto::PrivateKey key = *crypto::PrivateKey::FromSeed(std::string(32, '\x07'));
  auto sealed = [&](const std::string& author, bool refusal) {
    v1::EventBody body;
    body.set_author(author);
    body.set_idempotency_key(absl::StrCat("k-", author, refusal));
    if (refusal) {
      v1::EventBody attempt;
      attempt.set_author("org-r");
      attempt.mutable_key_added()->set_org_id("org-r");
      body.mutable_submission_refused()->set_signed_event(SealEvent(attempt, key).SerializeAsString());
    } else {
      body.mutable_key_added()->set_org_id(author);
    }
    return SealEvent(body, key).SerializeAsString();
  };
  GroupBuilder builder;
  const int key_added = v1::EventBody::kKeyAdded, refused = v1::EventBody::kSubmissionRefused;
  builder.Add("org-a", key_added, "", sealed("org-a", false));
  builder.Add("operator", refused, "", sealed("operator", true), "org-r");
  builder.Add("org-b", key_added, "", sealed("org-b", false));
  {
    auto store = OpenOrDie(dir.path());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Write(builder.Take()).ok());
    std::vector<uint64_t> refusals;
    ASSERT_TRUE(store->ScanRefusalsOf("org-r", 0, [&](uint64_t p) { refusals.push_back(p); return true; }).ok());
    EXPECT_EQ(refusals, std::vector<uint64_t>{1});
  }
  Tamper(dir.path(), [&](rocksdb::DB* db, auto& cf) {
    ASSERT_TRUE(db->DeleteRange(Synced(), cf.at("by_author_kind"), "", std::string(8, '\xff')).ok());
    ASSERT_TRUE(db->Delete(Synced(), cf.at("default"), "index/by_author_kind").ok());
  });
  {
    auto store = OpenOrDie(dir.path());
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(ByAuthorKind(*store, "org-a", key_added, 0), std::vector<uint64_t>{0});
    EXPECT_EQ(ByAuthorKind(*store, "org-b", key_added, 0), std::vector<uint64_t>{2});
    EXPECT_EQ(ByAuthorKind(*store, "operator", refused, 0), std::vector<uint64_t>{1});
    std::vector<uint64_t> refusals;
    ASSERT_TRUE(store->ScanRefusalsOf("org-r", 0, [&](uint64_t p) { refusals.push_back(p); return true; }).ok());
    EXPECT_EQ(refusals, std::vector<uint64_t>{1});
  }
  // Marked done: entries removed now stay removed (it is not rebuilt twice).
  Tamper(dir.path(), [&](rocksdb::DB* db, auto& cf) {
    ASSERT_TRUE(db->DeleteRange(Synced(), cf.at("by_author_kind"), "", std::string(8, '\xff')).ok());
  });
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(ByAuthorKind(*store, "org-a", key_added, 0).empty());
}

// Rewrites the tree family of the store in `dir` into the layout stores had
// before 2026-12 (u8 level, BE64 index), at most `limit` nodes of it.
void ToLevelFirstTree(const std::string& dir, size_t limit = SIZE_MAX) {
  Tamper(dir, [&](rocksdb::DB* db, auto& cf) {
    std::vector<std::pair<std::string, std::string>> nodes;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cf.at("tree")));
    for (it->SeekToFirst(); it->Valid() && nodes.size() < limit; it->Next()) {
      nodes.emplace_back(it->key().ToString(), it->value().ToString());
    }
    ASSERT_TRUE(it->status().ok());
    for (const auto& [key, value] : nodes) {
      ASSERT_EQ(key.size(), 10u);
      const int level = static_cast<uint8_t>(key[9]);
      uint64_t last_leaf = 0;
      for (int i = 1; i <= 8; ++i) last_leaf = last_leaf << 8 | static_cast<uint8_t>(key[i]);
      std::string old_key(1, static_cast<char>(level));
      old_key += BE64(((last_leaf + 1) >> level) - 1);
      ASSERT_TRUE(db->Put(Synced(), cf.at("tree"), old_key, value).ok());
      ASSERT_TRUE(db->Delete(Synced(), cf.at("tree"), key).ok());
    }
  });
}

// Every key of the tree family, in order.
std::vector<std::string> TreeKeys(const std::string& dir) {
  std::vector<std::string> keys;
  Tamper(dir, [&](rocksdb::DB* db, auto& cf) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cf.at("tree")));
    for (it->SeekToFirst(); it->Valid(); it->Next()) keys.push_back(it->key().ToString());
  });
  return keys;
}

// What a reader sees of a store: every record (each checked against its
// leaf), and the root of every size (which reads interior nodes).
void ExpectReadsAsWritten(const Store& store, const std::vector<std::string>& records,
                          const std::vector<merkle::Hash>& roots) {
  std::vector<std::string> scanned;
  ASSERT_TRUE(store.ScanRecords(0, records.size(), [&](uint64_t, std::string_view r) {
                     scanned.emplace_back(r);
                     return true;
                   }).ok());
  EXPECT_EQ(scanned, records);
  std::vector<uint64_t> all(records.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  auto got = store.GetRecords(all);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, records);
  for (uint64_t size = 1; size <= roots.size(); ++size) {
    auto root = merkle::RootAt(store, size);
    ASSERT_TRUE(root.ok()) << root.status();
    EXPECT_EQ(*root, roots[size - 1]) << "root of size " << size;
  }
}

TEST(Store, ATreeInTheLevelFirstLayoutIsReadAsItIsAndConvertedOnce) {
  TempDir dir("store_test");
  constexpr int kRecords = 37;  // several levels, an incomplete frontier
  std::vector<std::string> records;
  std::vector<merkle::Hash> roots;
  {
    auto store = OpenOrDie(dir.path());
    ASSERT_NE(store, nullptr);
    GroupBuilder builder;
    for (int i = 0; i < kRecords; ++i) {
      builder.Add("org-a", 11);
      records.push_back(builder.record(i));
      ASSERT_TRUE(store->Write(builder.Take()).ok());
      roots.push_back(builder.root());
    }
  }
  const std::vector<std::string> converted_keys = TreeKeys(dir.path());
  ASSERT_GT(converted_keys.size(), static_cast<size_t>(kRecords));
  for (const std::string& key : converted_keys) EXPECT_EQ(key.size(), 10u);
  // Append order: the keys sort as they were written (leaf, then the nodes it completes).
  EXPECT_EQ(converted_keys.front(), TreeNodeKey(0, 0));
  EXPECT_EQ(converted_keys[1], TreeNodeKey(0, 1));
  EXPECT_EQ(converted_keys[2], TreeNodeKey(1, 0));

  // Half converted (an interrupted conversion): refused read-only, finished
  // by a read-write open.
  ToLevelFirstTree(dir.path(), converted_keys.size() / 2);
  {
    auto read_only = Store::OpenReadOnly(dir.path());
    ASSERT_FALSE(read_only.ok());
    EXPECT_EQ(read_only.status().code(), absl::StatusCode::kFailedPrecondition) << read_only.status();
    EXPECT_TRUE(absl::StrContains(read_only.status().message(), "half converted")) << read_only.status();
  }
  {
    auto store = OpenOrDie(dir.path());
    ASSERT_NE(store, nullptr);
    ExpectReadsAsWritten(*store, records, roots);
  }
  EXPECT_EQ(TreeKeys(dir.path()), converted_keys);

  // Wholly in the old layout: read as it is read-only, converted by a
  // read-write open, and then written to in the new one.
  ToLevelFirstTree(dir.path());
  ASSERT_EQ(TreeKeys(dir.path()).size(), converted_keys.size());
  EXPECT_NE(TreeKeys(dir.path()), converted_keys);
  {
    auto read_only = Store::OpenReadOnly(dir.path());
    ASSERT_TRUE(read_only.ok()) << read_only.status();
    ExpectReadsAsWritten(**read_only, records, roots);
  }
  EXPECT_NE(TreeKeys(dir.path()), converted_keys);
  {
    auto store = OpenOrDie(dir.path());
    ASSERT_NE(store, nullptr);
    ExpectReadsAsWritten(*store, records, roots);
  }
  EXPECT_EQ(TreeKeys(dir.path()), converted_keys);
}

// ------------------------------------------------------------ corruption

// A store with `n` records in one group, closed.
void WriteRecords(const std::string& dir, int n) {
  auto store = OpenOrDie(dir);
  ASSERT_NE(store, nullptr);
  GroupBuilder builder;
  for (int i = 0; i < n; ++i) builder.Add("org-a", 11);
  ASSERT_TRUE(store->Write(builder.Take()).ok());
}

void ExpectOpenDataLoss(const std::string& dir) {
  auto store = Store::Open(dir);
  ASSERT_FALSE(store.ok()) << "opened an altered database";
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
}

TEST(StoreCorruption, StrayRecordPastTheTreeSizeIsDataLoss) {
  TempDir dir("store_test");
  WriteRecords(dir.path(), 5);
  Tamper(dir.path(), [](rocksdb::DB* db, auto& cf) {
    v1::Record record;
    record.set_position(5);
    ASSERT_TRUE(db->Put(Synced(), cf.at("records"), BE64(5), record.SerializeAsString()).ok());
  });
  ExpectOpenDataLoss(dir.path());
}

TEST(StoreCorruption, StrayRecordFarPastTheTreeSizeIsDataLoss) {
  TempDir dir("store_test");
  WriteRecords(dir.path(), 5);
  Tamper(dir.path(), [](rocksdb::DB* db, auto& cf) {
    ASSERT_TRUE(db->Put(Synced(), cf.at("records"), BE64(1000), "x").ok());
  });
  ExpectOpenDataLoss(dir.path());
}

TEST(StoreCorruption, RecordWithAMalformedKeyIsDataLoss) {
  TempDir dir("store_test");
  WriteRecords(dir.path(), 5);
  Tamper(dir.path(), [](rocksdb::DB* db, auto& cf) {
    ASSERT_TRUE(db->Put(Synced(), cf.at("records"), BE64(4) + "x", "x").ok());
  });
  ExpectOpenDataLoss(dir.path());
}

TEST(StoreCorruption, MissingLastRecordIsDataLoss) {
  TempDir dir("store_test");
  WriteRecords(dir.path(), 5);
  Tamper(dir.path(), [](rocksdb::DB* db, auto& cf) {
    ASSERT_TRUE(db->Delete(Synced(), cf.at("records"), BE64(4)).ok());
  });
  ExpectOpenDataLoss(dir.path());
}

TEST(StoreCorruption, AllRecordsGoneIsDataLoss) {
  TempDir dir("store_test");
  WriteRecords(dir.path(), 3);
  Tamper(dir.path(), [](rocksdb::DB* db, auto& cf) {
    for (uint64_t p = 0; p < 3; ++p) ASSERT_TRUE(db->Delete(Synced(), cf.at("records"), BE64(p)).ok());
  });
  ExpectOpenDataLoss(dir.path());
}

TEST(StoreCorruption, RecordsWithoutATreeSizeIsDataLoss) {
  TempDir dir("store_test");
  WriteRecords(dir.path(), 3);
  Tamper(dir.path(), [](rocksdb::DB* db, auto& cf) {
    ASSERT_TRUE(db->Delete(Synced(), cf.at(rocksdb::kDefaultColumnFamilyName), "tree_size").ok());
  });
  ExpectOpenDataLoss(dir.path());
}

TEST(StoreCorruption, MalformedTreeSizeIsDataLoss) {
  TempDir dir("store_test");
  WriteRecords(dir.path(), 3);
  Tamper(dir.path(), [](rocksdb::DB* db, auto& cf) {
    ASSERT_TRUE(db->Put(Synced(), cf.at(rocksdb::kDefaultColumnFamilyName), "tree_size",
                        std::string(7, '\0')).ok());
  });
  ExpectOpenDataLoss(dir.path());
}

TEST(StoreCorruption, TreeSizeBeyondTheRecordsIsDataLoss) {
  TempDir dir("store_test");
  WriteRecords(dir.path(), 3);
  Tamper(dir.path(), [](rocksdb::DB* db, auto& cf) {
    ASSERT_TRUE(db->Put(Synced(), cf.at(rocksdb::kDefaultColumnFamilyName), "tree_size", BE64(4)).ok());
  });
  ExpectOpenDataLoss(dir.path());
}

TEST(StoreCorruption, MissingMiddleRecordIsDataLossOnRead) {
  TempDir dir("store_test");
  WriteRecords(dir.path(), 6);
  Tamper(dir.path(), [](rocksdb::DB* db, auto& cf) {
    ASSERT_TRUE(db->Delete(Synced(), cf.at("records"), BE64(2)).ok());
  });
  // Open checks only the end; reads never skip the hole.
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->GetRecord(2).status().code(), absl::StatusCode::kDataLoss);
  absl::Status status;
  auto seen = RecordsIn(*store, 0, 6, &status);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_EQ(seen, Range(0, 2));
  seen = RecordsIn(*store, 2, 6, &status);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_TRUE(seen.empty());
  EXPECT_EQ(RecordsIn(*store, 3, 6), Range(3, 6));
}

// GetRecords (a history page's batched read) answers and fails exactly as
// GetRecord does, record by record.
TEST(Store, GetRecordsIsGetRecordOfEach) {
  TempDir dir("store_test");
  GroupBuilder builder;
  for (int i = 0; i < 9; ++i) builder.Add(i % 2 ? "org-a" : "org-b", 11 + i % 3);
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Write(builder.Take()).ok());
  const std::vector<uint64_t> positions = {0, 2, 3, 7, 8};
  auto records = store->GetRecords(positions);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), positions.size());
  for (size_t i = 0; i < positions.size(); ++i) EXPECT_EQ((*records)[i], builder.record(positions[i])) << i;
  auto none = store->GetRecords({});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
  // A position past the log: NotFound, naming it, as GetRecord.
  auto past = store->GetRecords({1, 9});
  EXPECT_EQ(past.status().code(), absl::StatusCode::kNotFound) << past.status();
  EXPECT_TRUE(absl::StrContains(past.status().message(), "position 9")) << past.status();
}

TEST(StoreCorruption, GetRecordsFindsAMissingOrAlteredRecordAsGetRecordDoes) {
  TempDir dir("store_test");
  WriteRecords(dir.path(), 6);
  Tamper(dir.path(), [](rocksdb::DB* db, auto& cf) {
    ASSERT_TRUE(db->Delete(Synced(), cf.at("records"), BE64(2)).ok());
    std::string other;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), cf.at("records"), BE64(3), &other).ok());
    ASSERT_TRUE(db->Put(Synced(), cf.at("records"), BE64(4), other).ok());
    ASSERT_TRUE(db->Delete(Synced(), cf.at("tree"), TreeNodeKey(0, 5)).ok());
  });
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  for (uint64_t bad : {2, 4, 5}) {
    auto one = store->GetRecord(bad);
    auto batch = store->GetRecords({0, 1, bad});
    EXPECT_EQ(one.status().code(), absl::StatusCode::kDataLoss) << bad << ": " << one.status();
    EXPECT_EQ(batch.status(), one.status()) << bad;
  }
  auto good = store->GetRecords({0, 1, 3});
  EXPECT_TRUE(good.ok()) << good.status();
}

TEST(StoreCorruption, CorruptNodeAndIdempotencyEntriesAreDataLoss) {
  TempDir dir("store_test");
  WriteRecords(dir.path(), 4);
  Tamper(dir.path(), [](rocksdb::DB* db, auto& cf) {
    ASSERT_TRUE(db->Put(Synced(), cf.at("tree"), TreeNodeKey(1, 0), std::string(31, 'h')).ok());
    ASSERT_TRUE(db->Put(Synced(), cf.at("idempotency"), std::string("org-a\0idem-1", 12), "short").ok());
  });
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->ReadNode(1, 0).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(store->ReadNode(1, 1).ok());
  EXPECT_EQ(merkle::RootAt(*store, 3).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(store->FindIdempotency("org-a", "idem-1").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(store->FindIdempotency("org-a", "idem-2").ok());
}

TEST(StoreCorruption, CorruptStateEntryIsDataLoss) {
  TempDir dir("store_test");
  WriteRecords(dir.path(), 1);
  Tamper(dir.path(), [](rocksdb::DB* db, auto& cf) {
    ASSERT_TRUE(db->Put(Synced(), cf.at("state"), "o/org-a", "\xff\xff\xff").ok());
  });
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  rules::State state;
  EXPECT_EQ(store->LoadState(&state).code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace ledger::store
