// Tamper tests (DESIGN §8: "a flipped byte anywhere in the data is found by
// verify, which names the position"): a real ledgerd (ledgerd_process.h)
// builds a ledger of a few hundred records, then, with the server stopped,
// the test changes its RocksDB database behind its back (the RocksDB C++ API,
// every column family) or changes an exported bundle file, and checks that
//   - ledgerd either refuses to start, saying what is wrong, or serves the
//     affected data as DATA_LOSS (Get, Read, Subscribe, inclusion and
//     consistency proofs, checkpoints, replayed receipts) and never a wrong
//     answer, while unaffected data is still served exactly as before;
//   - `ledgerctl export` fails naming the position, or writes a bundle that
//     `ledgerctl verify` refuses naming the position;
//   - `ledgerctl verify` of a tampered bundle exits 1 and its --json report
//     names the first failing position and check.
//
// The ledger is built once per test process (gtest_discover_tests runs every
// test in its own process) and copied for each scenario. No sleeps: every
// child process is waited for with poll() and waitpid(), bounded by deadlines.
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "ledger/audit/bundle.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/event/envelope.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/merkle/tree.h"
#include "ledger/store/store.h"
#include "ledger/v1/governance_service.grpc.pb.h"
#include "rocksdb/db.h"
#include "services/grpc_status.h"
#include "tests/support/ctl_runner.h"
#include "tests/support/ledger_client.h"
#include "tests/support/ledgerd_process.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"

namespace ledger::testing {
namespace {

namespace fs = std::filesystem;

std::string BE64(uint64_t value) {
  std::string out;
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>(value >> (8 * i)));
  return out;
}

// ---------------------------------------------------------------- raw RocksDB

// The ledger's database opened directly, every column family, to change it
// behind the server's back. Flushes and closes on destruction, so the
// changes are in SST files when ledgerd opens the database again.
class RawDb {
 public:
  static absl::StatusOr<std::unique_ptr<RawDb>> Open(const std::string& path) {
    std::vector<std::string> names;
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names);
    if (!s.ok()) return absl::InternalError(absl::StrCat("ListColumnFamilies ", path, ": ", s.ToString()));
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    for (const std::string& name : names) families.emplace_back(name, rocksdb::ColumnFamilyOptions());
    auto raw = std::unique_ptr<RawDb>(new RawDb());
    rocksdb::DB* db = nullptr;
    s = rocksdb::DB::Open(rocksdb::Options(), path, families, &raw->handles_, &db);
    if (!s.ok()) return absl::InternalError(absl::StrCat("opening ", path, ": ", s.ToString()));
    raw->db_.reset(db);
    for (size_t i = 0; i < names.size(); ++i) raw->by_name_[names[i]] = raw->handles_[i];
    return raw;
  }
  ~RawDb() {
    for (auto* h : handles_) db_->Flush(rocksdb::FlushOptions(), h);
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
    db_->Close();
  }
  bool Has(const std::string& family) const { return by_name_.count(family) > 0; }
  rocksdb::ColumnFamilyHandle* cf(const std::string& family) const { return by_name_.at(family); }

  absl::StatusOr<std::string> Get(const std::string& family, const std::string& key) const {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cf(family), key, &value);
    if (!s.ok()) return absl::NotFoundError(absl::StrCat(family, " key ", absl::CEscape(key), ": ", s.ToString()));
    return value;
  }
  absl::Status Put(const std::string& family, const std::string& key, const std::string& value) {
    rocksdb::Status s = db_->Put(rocksdb::WriteOptions(), cf(family), key, value);
    return s.ok() ? absl::OkStatus() : absl::InternalError(s.ToString());
  }
  absl::Status Delete(const std::string& family, const std::string& key) {
    rocksdb::Status s = db_->Delete(rocksdb::WriteOptions(), cf(family), key);
    return s.ok() ? absl::OkStatus() : absl::InternalError(s.ToString());
  }
  // Flips one bit of the byte at `offset` (from the end if negative) of the value.
  absl::Status FlipByte(const std::string& family, const std::string& key, long offset) {
    auto value = Get(family, key);
    if (!value.ok()) return value.status();
    if (value->empty()) return absl::FailedPreconditionError("empty value");
    size_t at = offset >= 0 ? static_cast<size_t>(offset) % value->size()
                            : value->size() - static_cast<size_t>(-offset) % value->size();
    (*value)[at] ^= 0x04;
    return Put(family, key, *value);
  }
  // The keys of `family` that start with `prefix`, in order.
  std::vector<std::string> Keys(const std::string& family, const std::string& prefix) const {
    std::vector<std::string> keys;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(family)));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) keys.push_back(it->key().ToString());
    return keys;
  }

 private:
  RawDb() = default;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> by_name_;
};

// ---------------------------------------------------------------- verify reports

struct CheckResult {
  bool passed = true;
  std::optional<uint64_t> first_failing_position;
  std::string detail;
};
struct Report {
  bool verified = false;
  std::string error;
  std::map<std::string, CheckResult> checks;
  std::string json;
};
std::ostream& operator<<(std::ostream& os, const Report& r) { return os << r.json; }

absl::StatusOr<Report> ParseReport(const std::string& json) {
  google::protobuf::Struct root;
  auto status = google::protobuf::util::JsonStringToMessage(json, &root);
  if (!status.ok()) return absl::InvalidArgumentError(absl::StrCat("report is not JSON: ", json));
  Report report;
  report.json = json;
  report.verified = root.fields().at("verified").bool_value();
  report.error = root.fields().at("error").string_value();
  for (const auto& value : root.fields().at("checks").list_value().values()) {
    const auto& f = value.struct_value().fields();
    CheckResult c;
    c.passed = f.at("passed").bool_value();
    // ledger.v1.VerifyReport in protobuf JSON: a uint64 is a decimal string,
    // and an unset position is absent.
    if (auto it = f.find("first_failing_position"); it != f.end()) {
      uint64_t position = 0;
      if (it->second.kind_case() == google::protobuf::Value::kStringValue &&
          absl::SimpleAtoi(it->second.string_value(), &position)) {
        c.first_failing_position = position;
      } else if (it->second.kind_case() == google::protobuf::Value::kNumberValue) {
        c.first_failing_position = static_cast<uint64_t>(it->second.number_value());
      }
    }
    c.detail = f.at("detail").string_value();
    report.checks[f.at("name").string_value()] = c;
  }
  return report;
}

// The failed checks of a report: name -> first failing position.
std::string Failures(const Report& r) {
  std::vector<std::string> out;
  for (const auto& [name, c] : r.checks) {
    if (!c.passed) {
      out.push_back(absl::StrCat(name, "@", c.first_failing_position.has_value()
                                                 ? absl::StrCat(*c.first_failing_position) : "-"));
    }
  }
  return absl::StrJoin(out, ",");
}

// ---------------------------------------------------------------- the ledger

// Built once per process: a stopped ledger's data directory and facts about it.
struct Fixture {
  TempDir root{"tamper_test"};        // holds the copies below
  std::string pristine;               // data directory copy
  std::string good_bundle;
  uint64_t size = 0;
  std::vector<std::string> records;   // the record bytes by position
  std::vector<uint64_t> checkpoints;  // tree sizes that have a signed checkpoint
  std::map<uint64_t, std::string> notes;
  std::string error;  // set if building it failed
};
Fixture* fixture = nullptr;

std::string BuildFixture(Fixture* f) {
  if (f->root.path().empty()) return "could not create a temporary directory";
  LedgerdProcess server;
  if (auto s = server.Start(); !s.ok()) return s.ToString();
  LedgerClient client(server.address());
  if (auto s = client.Init(); !s.ok()) return s.ToString();
  auto registrar = LoadRegistrar(server.data_dir());
  if (!registrar.ok()) return registrar.status().ToString();
  std::vector<Org> orgs;
  for (int i = 0; i < 8; ++i) {
    auto org = client.RegisterOrg(*registrar, absl::StrCat("org-", i));
    if (!org.ok()) return org.status().ToString();
    orgs.push_back(*org);
  }
  // KeyAdded: batches of 10 (one checkpoint each) and single appends (one
  // checkpoint per record).
  for (int b = 0; b < 16; ++b) {
    std::vector<v1::SignedEvent> batch;
    for (int i = 0; i < 10; ++i) {
      const Org& org = orgs[(b + i) % orgs.size()];
      batch.push_back(client.KeyAddedEvent(org, org.id, crypto::PrivateKey::Generate()));
    }
    v1::AppendBatchResponse response;
    if (grpc::Status s = client.AppendBatch(batch, &response); !s.ok()) return services::Describe(s);
  }
  for (int i = 0; i < 60; ++i) {
    const Org& org = orgs[i % orgs.size()];
    v1::AppendResponse response;
    grpc::Status s = client.Append(client.KeyAddedEvent(org, org.id, crypto::PrivateKey::Generate()), &response);
    if (!s.ok()) return services::Describe(s);
  }
  // A governance story: collectives, proposals, votes, vetoes, refusals.
  CtlResult demo = RunCtl({"--server", server.address(), "demo", "--registrar-key",
                           absl::StrCat(server.data_dir(), "/registrar.key.pem")}, 80);
  if (demo.exit_code != 0) return absl::StrCat("demo failed:", Show(demo));
  for (int i = 0; i < 20; ++i) {
    const Org& org = orgs[i % orgs.size()];
    v1::AppendResponse response;
    grpc::Status s = client.Append(client.KeyAddedEvent(org, org.id, crypto::PrivateKey::Generate()), &response);
    if (!s.ok()) return services::Describe(s);
  }

  auto size = client.TreeSize();
  if (!size.ok()) return size.status().ToString();
  f->size = *size;
  for (uint64_t p = 0; p < f->size; ++p) {
    auto entry = client.Get(p);
    if (!entry.ok()) return entry.status().ToString();
    f->records.push_back(entry->record());
  }
  {
    grpc::ClientContext context;
    client.PrepareCall(&context);
    v1::ListCheckpointsRequest request;
    request.set_limit(10000);
    v1::ListCheckpointsResponse response;
    grpc::Status s = client.audit().ListCheckpoints(&context, request, &response);
    if (!s.ok()) return services::Describe(s);
    for (const auto& c : response.checkpoints()) {
      f->checkpoints.push_back(c.tree_size());
      f->notes[c.tree_size()] = c.note();
    }
  }
  f->good_bundle = f->root.Path("good.bundle");
  CtlResult exported = RunCtl({"--server", server.address(), "export", "--out", f->good_bundle});
  if (exported.exit_code != 0) return absl::StrCat("export failed:", Show(exported));
  auto stopped = server.Stop();
  if (!stopped.ok() || *stopped != 0) return absl::StrCat("ledgerd did not stop cleanly: ", server.Stderr());
  f->pristine = f->root.Path("pristine");
  std::error_code error;
  fs::copy(server.data_dir(), f->pristine, fs::copy_options::recursive, error);
  if (error) return absl::StrCat("copying the data directory: ", error.message());
  return "";
}

class TamperTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fixture = new Fixture();
    fixture->error = BuildFixture(fixture);
  }
  static void TearDownTestSuite() {
    delete fixture;  // and with it the temporary directory
    fixture = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(fixture->error.empty()) << fixture->error;
    ASSERT_GE(fixture->size, 300u);
  }

  // A fresh (stopped) server on a copy of the pristine ledger; false (after
  // reporting why) if it could not be set up.
  bool Fresh() {
    fresh_ok_ = false;
    FreshImpl();
    return fresh_ok_;
  }
  void FreshImpl() {
    client_.reset();
    server_.reset();
    server_ = std::make_unique<LedgerdProcess>();
    std::error_code error;
    fs::copy(fixture->pristine, server_->data_dir(), fs::copy_options::recursive, error);
    ASSERT_FALSE(error) << error.message();
    work_ = absl::StrCat(server_->data_dir(), "/../work");
    fs::create_directories(work_, error);
    ASSERT_FALSE(error) << error.message();
    fresh_ok_ = true;
  }

  std::string Db() const { return server_->data_dir() + "/db"; }
  std::string OperatorPub() const { return server_->data_dir() + "/operator.pub.pem"; }
  const std::string& Record(uint64_t p) const { return fixture->records[p]; }

  std::unique_ptr<RawDb> OpenRaw() {
    auto raw = RawDb::Open(Db());
    EXPECT_TRUE(raw.ok()) << raw.status();
    if (!raw.ok()) return nullptr;
    for (const char* family : {"default", "records", "tree", "checkpoints", "idempotency", "by_author", "by_kind",
                               "state"}) {
      EXPECT_TRUE((*raw)->Has(family)) << family;
    }
    return *std::move(raw);
  }

  // Starts the tampered ledger and connects; a failure to start is returned.
  absl::Status StartServer() {
    if (auto s = server_->Start(); !s.ok()) return s;
    client_ = std::make_unique<LedgerClient>(server_->address());
    return client_->Init();
  }

  // Expects ledgerd to refuse to start, its stderr naming `what`.
  void ExpectRefusesToStart(const std::string& what) {
    absl::Status started = server_->Start();
    ASSERT_FALSE(started.ok()) << "ledgerd started on a tampered database; expected it to refuse (" << what << ")";
    EXPECT_TRUE(absl::StrContains(server_->Stderr(), what))
        << "stderr does not name the problem (" << what << "):\n" << server_->Stderr();
  }

  ::testing::AssertionResult IsDataLoss(const grpc::Status& s, const std::string& what) {
    if (s.error_code() == grpc::StatusCode::DATA_LOSS) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << what << ": expected DATA_LOSS, got "
                                         << (s.ok() ? std::string("OK (a wrong answer)") : services::Describe(s));
  }

  grpc::Status GetStatus(uint64_t position, v1::GetResponse* response) { return client_->Get(position, response); }

  grpc::Status Read(uint64_t from, uint32_t limit, v1::ReadResponse* response) {
    grpc::ClientContext context;
    client_->PrepareCall(&context);
    v1::ReadRequest request;
    request.set_from_position(from);
    request.set_limit(limit);
    return client_->ledger().Read(&context, request, response);
  }

  // Subscribes from `from` until caught up or the stream ends: the entries
  // received (each checked against the pristine bytes) and the final status
  // (OK if it caught up).
  grpc::Status Subscribe(uint64_t from, uint64_t* received) {
    grpc::ClientContext context;
    client_->PrepareCall(&context);
    v1::SubscribeRequest request;
    request.set_from_position(from);
    auto reader = client_->ledger().Subscribe(&context, request);
    v1::SubscribeResponse response;
    uint64_t next = from;
    bool caught_up = false;
    while (reader->Read(&response)) {
      for (const v1::RecordEntry& e : response.entries()) {
        EXPECT_EQ(e.position(), next);
        EXPECT_EQ(e.record(), Record(e.position())) << "Subscribe served a wrong record at " << e.position();
        next++;
      }
      if (response.has_caught_up()) {
        caught_up = true;
        context.TryCancel();
      }
    }
    grpc::Status status = reader->Finish();
    *received = next - from;
    return caught_up ? grpc::Status::OK : status;
  }

  grpc::Status InclusionProof(uint64_t position, uint64_t tree_size, v1::InclusionProofResponse* response) {
    return client_->GetInclusionProof(position, tree_size, response);
  }

  grpc::Status ConsistencyProof(uint64_t from, uint64_t to, v1::ConsistencyProofResponse* response) {
    grpc::ClientContext context;
    client_->PrepareCall(&context);
    v1::ConsistencyProofRequest request;
    request.set_from_size(from);
    request.set_to_size(to);
    return client_->audit().GetConsistencyProof(&context, request, response);
  }

  // An inclusion proof answered OK must verify against the pristine signed root.
  void ExpectProofServedRightOrDataLoss(uint64_t position, uint64_t tree_size) {
    v1::InclusionProofResponse response;
    grpc::Status s = InclusionProof(position, tree_size, &response);
    if (!s.ok()) {
      EXPECT_TRUE(IsDataLoss(s, absl::StrCat("inclusion proof of ", position, " in ", tree_size)));
      return;
    }
    auto note = fixture->notes.find(tree_size);
    ASSERT_NE(note, fixture->notes.end());
    auto checkpoint = client_->OpenCheckpoint(note->second);
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
    auto proof = HashesFromBytes(response.proof());
    ASSERT_TRUE(proof.ok()) << proof.status();
    EXPECT_TRUE(merkle::VerifyInclusion(merkle::HashLeaf(Record(position)), position, tree_size, *proof,
                                        checkpoint->root)
                    .ok())
        << "a wrong inclusion proof of " << position << " in " << tree_size << " was served as OK";
  }

  CtlResult Export(const std::string& out) { return RunCtl({"--server", server_->address(), "export", "--out", out}); }

  // Runs verify --json on `bundle`: the parsed report (and exit code).
  Report Verify(const std::string& bundle, int* exit_code) {
    CtlResult r = RunCtl({"verify", bundle, "--operator-key", OperatorPub(), "--json"});
    *exit_code = r.exit_code;
    auto report = ParseReport(r.out);
    EXPECT_TRUE(report.ok()) << report.status() << r;
    return report.ok() ? *report : Report{};
  }

  // Expects export to fail naming `position`, leaving no bundle behind, or
  // to write a bundle that verify refuses naming `position`.
  void ExpectExportOrVerifyFailsAt(uint64_t position) {
    const std::string out = work_ + "/tampered.bundle";
    CtlResult exported = Export(out);
    if (exported.exit_code != 0) {
      EXPECT_EQ(exported.exit_code, 1) << exported;
      EXPECT_TRUE(absl::StrContains(exported.err, absl::StrCat("position ", position))) << exported;
      EXPECT_TRUE(absl::StrContains(exported.err, "DATA_LOSS")) << exported;
      EXPECT_FALSE(fs::exists(out)) << "a failed export left a bundle";
      return;
    }
    int code = 0;
    Report report = Verify(out, &code);
    EXPECT_EQ(code, 1) << report;
    EXPECT_FALSE(report.verified) << report;
    bool named = false;
    for (const auto& [name, c] : report.checks) named = named || (!c.passed && c.first_failing_position == position);
    EXPECT_TRUE(named) << "verify does not name position " << position << ": " << Failures(report) << "\n" << report;
  }

  // Positions around `p` other than the tampered ones still serve exactly the
  // pristine bytes.
  void ExpectServedIntact(uint64_t p) {
    v1::GetResponse response;
    grpc::Status s = GetStatus(p, &response);
    ASSERT_TRUE(s.ok()) << "position " << p << ": " << services::Describe(s);
    EXPECT_EQ(response.entry().record(), Record(p));
  }

  // Get, Read over it, Subscribe over it, the inclusion proof of `p`, and
  // export all refuse `p` as DATA_LOSS.
  void ExpectPositionDataLoss(uint64_t p) {
    v1::GetResponse get;
    EXPECT_TRUE(IsDataLoss(GetStatus(p, &get), absl::StrCat("Get(", p, ")")));
    v1::ReadResponse read;
    grpc::Status rs = Read(p - 3, 10, &read);
    EXPECT_TRUE(IsDataLoss(rs, absl::StrCat("Read(", p - 3, ", 10)")));
    EXPECT_TRUE(absl::StrContains(rs.error_message(), absl::StrCat("position ", p))) << rs.error_message();
    uint64_t received = 0;
    grpc::Status ss = Subscribe(p - 3, &received);
    EXPECT_TRUE(IsDataLoss(ss, absl::StrCat("Subscribe(", p - 3, ")")));
    EXPECT_LE(received, 3u) << "Subscribe went past the tampered position";
    v1::InclusionProofResponse proof;
    EXPECT_TRUE(IsDataLoss(InclusionProof(p, 0, &proof), absl::StrCat("GetInclusionProof(", p, ")")));
    // ledgerctl says so too.
    CtlResult get_ctl = RunCtl({"--server", server_->address(), "get", absl::StrCat(p)});
    EXPECT_EQ(get_ctl.exit_code, 1) << get_ctl;
    EXPECT_TRUE(absl::StrContains(get_ctl.err, "DATA_LOSS")) << get_ctl;
  }

  uint64_t Middle() const { return fixture->size / 2; }

  // The scenarios (each on a Fresh() server).
  void FlippedRecordByteIsDataLossAndExportNamesIt();
  void FlippedLeafIsDataLoss();
  void FlippedInteriorNodeIsNeverServedAsAProof();
  void FlippedFrontierNodeRefusesToStart();
  void FlippedProjectedStateIsNeverServedOrDecidedOn();
  void DeletedMiddleRecordIsDataLoss();
  void DeletedLastRecordRefusesToStart();
  void SwappedRecordsAreDataLoss();
  void EditedLatestCheckpointRefusesToStart();
  void EditedOlderCheckpointIsDataLoss();

  std::unique_ptr<LedgerdProcess> server_;
  bool fresh_ok_ = false;
  std::unique_ptr<LedgerClient> client_;
  std::string work_;
};

// ---------------------------------------------------------------- the database

void TamperTest::FlippedRecordByteIsDataLossAndExportNamesIt() {
  const uint64_t p = Middle();
  {
    auto raw = OpenRaw();
    ASSERT_NE(raw, nullptr);
    ASSERT_OK(raw->FlipByte("records", BE64(p), -20));  // inside the signature
  }
  ASSERT_OK(StartServer());
  ExpectPositionDataLoss(p);
  ExpectServedIntact(p - 1);
  ExpectServedIntact(p + 1);
  ExpectProofServedRightOrDataLoss(p + 1, fixture->size);
  ExpectExportOrVerifyFailsAt(p);
  // A retry of the event stored at p must not be answered from its altered bytes.
  auto record = DecodeRecord(Record(p), p);
  ASSERT_TRUE(record.ok());
  v1::SignedEvent event;
  ASSERT_TRUE(event.ParseFromString(record->signed_event()));
  v1::AppendResponse response;
  grpc::Status retried = client_->Append(event, &response);
  EXPECT_TRUE(IsDataLoss(retried, "retry of the event stored at the tampered position"));
}

void TamperTest::FlippedLeafIsDataLoss() {
  const uint64_t p = Middle() + 1;
  {
    auto raw = OpenRaw();
    ASSERT_NE(raw, nullptr);
    ASSERT_OK(raw->FlipByte("tree", store::TreeNodeKey(0, p), 5));
  }
  ASSERT_OK(StartServer());
  ExpectPositionDataLoss(p);
  ExpectServedIntact(p - 1);
  // The sibling's proof contains the altered leaf: it must not be served.
  v1::InclusionProofResponse proof;
  EXPECT_TRUE(IsDataLoss(InclusionProof(p ^ 1, 0, &proof), "inclusion proof of the altered leaf's sibling"));
  ExpectExportOrVerifyFailsAt(p);
}

void TamperTest::FlippedInteriorNodeIsNeverServedAsAProof() {
  // Node (1, 10) covers leaves 20 and 21 and is far from the frontier; it is
  // on the audit path of leaves 22 and 23 (and in no record).
  {
    auto raw = OpenRaw();
    ASSERT_NE(raw, nullptr);
    ASSERT_OK(raw->FlipByte("tree", store::TreeNodeKey(1, 10), 0));
  }
  ASSERT_OK(StartServer());
  for (uint64_t p : {20, 21, 22, 23}) ExpectServedIntact(p);  // the records are intact
  v1::InclusionProofResponse proof;
  EXPECT_TRUE(IsDataLoss(InclusionProof(22, 0, &proof), "inclusion proof of 22 (uses the altered node)"));
  for (uint64_t size : fixture->checkpoints) {
    if (size > 23) ExpectProofServedRightOrDataLoss(23, size);
  }
  ExpectProofServedRightOrDataLoss(20, fixture->size);
  // The records are intact, so an export is complete and verifies: what it
  // holds is exactly the signed history.
  const std::string out = work_ + "/interior.bundle";
  CtlResult exported = Export(out);
  ASSERT_EQ(exported.exit_code, 0) << exported;
  int code = 0;
  Report report = Verify(out, &code);
  EXPECT_EQ(code, 0) << report;
  EXPECT_TRUE(report.verified) << report;
}

// The largest complete subtree of the frontier (level = floor(log2 size), index 0).
int TopLevel(uint64_t size) {
  int level = 0;
  while ((uint64_t{2} << level) <= size) level++;
  return level;
}

void TamperTest::FlippedFrontierNodeRefusesToStart() {
  {
    auto raw = OpenRaw();
    ASSERT_NE(raw, nullptr);
    ASSERT_OK(raw->FlipByte("tree", store::TreeNodeKey(TopLevel(fixture->size), 0), 31));
  }
  ExpectRefusesToStart("does not match the latest signed checkpoint");
}

// ledgerd reads the projected state on demand (start-up reads none of it
// whole), so an altered entry is found when it is read: a query that needs
// it fails naming it, and a submission whose decision reads it is refused
// UNAVAILABLE and writes nothing — never decided on altered state.
void TamperTest::FlippedProjectedStateIsNeverServedOrDecidedOn() {
  for (const std::string prefix : {"p/", "o/"}) {
    SCOPED_TRACE(prefix);
    if (!Fresh()) return;
    std::string key;
    {
      auto raw = OpenRaw();
      ASSERT_NE(raw, nullptr);
      std::vector<std::string> keys = raw->Keys("state", prefix);
      ASSERT_FALSE(keys.empty()) << "no state entries with prefix " << prefix;
      key = keys[keys.size() / 2];
      ASSERT_OK(raw->FlipByte("state", key, 3));
    }
    const std::string what = absl::StrCat("projected state entry \"", key, "\" was altered on disk");
    const std::string id = key.substr(prefix.size());
    ASSERT_OK(StartServer());
    CtlResult query = RunCtl({"--server", server_->address(), prefix == "p/" ? "proposal" : "organisation", id});
    EXPECT_NE(query.exit_code, 0) << query;
    EXPECT_TRUE(absl::StrContains(query.err, "altered on disk")) << query;
    if (prefix == "o/") {
      // Registering that organisation again reads its entry.
      const std::string key_file = work_ + "/again.pem";
      ASSERT_EQ(RunCtl({"keygen", "--out", key_file}).exit_code, 0);
      CtlResult again = RunCtl({"--server", server_->address(), "register-org", "--as", "registrar", "--key",
                                server_->data_dir() + "/registrar.key.pem", "--org", id, "--name", "again", "--kind",
                                "nhs-trust", "--org-key", key_file});
      EXPECT_NE(again.exit_code, 0) << again;
      EXPECT_TRUE(absl::StrContains(again.err, "UNAVAILABLE")) << again;
      EXPECT_TRUE(absl::StrContains(again.err, what)) << again;
      EXPECT_TRUE(absl::StrContains(server_->Stderr(), what)) << server_->Stderr();
    }
    // Nothing was written, and everything else is served as it was.
    ExpectServedIntact(Middle());
    ExpectServedIntact(fixture->size - 1);
    CtlResult checkpoint = RunCtl({"--server", server_->address(), "checkpoint"});
    EXPECT_TRUE(absl::StrContains(checkpoint.out, absl::StrCat("\n", fixture->size, "\n"))) << checkpoint;
  }
}

void TamperTest::DeletedMiddleRecordIsDataLoss() {
  const uint64_t p = Middle() + 2;
  {
    auto raw = OpenRaw();
    ASSERT_NE(raw, nullptr);
    ASSERT_OK(raw->Delete("records", BE64(p)));
  }
  ASSERT_OK(StartServer());
  ExpectPositionDataLoss(p);
  ExpectServedIntact(p + 1);
  ExpectExportOrVerifyFailsAt(p);
}

void TamperTest::DeletedLastRecordRefusesToStart() {
  {
    auto raw = OpenRaw();
    ASSERT_NE(raw, nullptr);
    ASSERT_OK(raw->Delete("records", BE64(fixture->size - 1)));
  }
  ExpectRefusesToStart(absl::StrCat("records do not end at the stored tree size ", fixture->size));
}

void TamperTest::SwappedRecordsAreDataLoss() {
  const uint64_t a = Middle() - 7, b = Middle() + 9;
  {
    auto raw = OpenRaw();
    ASSERT_NE(raw, nullptr);
    ASSERT_OK(raw->Put("records", BE64(a), Record(b)));
    ASSERT_OK(raw->Put("records", BE64(b), Record(a)));
  }
  ASSERT_OK(StartServer());
  ExpectPositionDataLoss(a);
  ExpectPositionDataLoss(b);
  ExpectServedIntact(a + 1);
  ExpectExportOrVerifyFailsAt(a);
}

// Changes one character of the root line (the third) of a checkpoint note.
std::string AlterRootLine(const std::string& note) {
  std::vector<std::string> lines = absl::StrSplit(note, '\n');
  std::string altered = note;
  size_t at = lines[0].size() + 1 + lines[1].size() + 1 + 3;  // 4th character of the root line
  altered[at] = altered[at] == 'A' ? 'B' : 'A';
  return altered;
}

void TamperTest::EditedLatestCheckpointRefusesToStart() {
  {
    auto raw = OpenRaw();
    ASSERT_NE(raw, nullptr);
    auto note = raw->Get("checkpoints", BE64(fixture->size));
    ASSERT_TRUE(note.ok()) << note.status();
    ASSERT_OK(raw->Put("checkpoints", BE64(fixture->size), AlterRootLine(*note)));
  }
  ExpectRefusesToStart("does not match the latest signed checkpoint");
}

void TamperTest::EditedOlderCheckpointIsDataLoss() {
  // A checkpoint of a single append in the first run of them (after the
  // registrations and batches).
  uint64_t s = 0;
  for (uint64_t size : fixture->checkpoints) {
    if (size > 180 && size < Middle()) {
      s = size;
      break;
    }
  }
  ASSERT_NE(s, 0u);
  {
    auto raw = OpenRaw();
    ASSERT_NE(raw, nullptr);
    auto note = raw->Get("checkpoints", BE64(s));
    ASSERT_TRUE(note.ok()) << note.status();
    ASSERT_OK(raw->Put("checkpoints", BE64(s), AlterRootLine(*note)));
  }
  ASSERT_OK(StartServer());
  auto checkpoint = client_->GetCheckpoint(s);
  EXPECT_TRUE(absl::IsDataLoss(checkpoint.status())) << "GetCheckpoint(" << s << "): " << checkpoint.status();
  v1::InclusionProofResponse proof;
  EXPECT_TRUE(IsDataLoss(InclusionProof(s - 1, s, &proof), absl::StrCat("inclusion proof in the tree of ", s)));
  v1::ConsistencyProofResponse consistency;
  EXPECT_TRUE(IsDataLoss(ConsistencyProof(s, fixture->size, &consistency),
                         absl::StrCat("consistency proof from ", s)));
  ExpectServedIntact(s - 1);
  // The receipt of a retried event carries the checkpoint that first included
  // it: the altered note must not be handed out as a receipt.
  auto record = DecodeRecord(Record(s - 1), s - 1);
  ASSERT_TRUE(record.ok());
  v1::SignedEvent event;
  ASSERT_TRUE(event.ParseFromString(record->signed_event()));
  v1::AppendResponse response;
  grpc::Status retried = client_->Append(event, &response);
  if (retried.ok()) {
    EXPECT_TRUE(response.replayed());
    EXPECT_TRUE(client_->OpenCheckpoint(response.receipt().checkpoint()).ok())
        << "a replayed receipt carries the altered checkpoint note of size " << response.receipt().tree_size()
        << " (a wrong answer; expected DATA_LOSS)";
  } else {
    EXPECT_TRUE(IsDataLoss(retried, "retry whose receipt checkpoint was altered"));
  }
  // Export either refuses or writes a bundle verify refuses at that checkpoint.
  const std::string out = work_ + "/checkpoint.bundle";
  CtlResult exported = Export(out);
  if (exported.exit_code != 0) {
    EXPECT_TRUE(absl::StrContains(exported.err, absl::StrCat(s))) << exported;
    return;
  }
  int code = 0;
  Report report = Verify(out, &code);
  EXPECT_EQ(code, 1) << report;
  const CheckResult& integrity = report.checks["integrity"];
  EXPECT_FALSE(integrity.passed) << report;
  // The checkpoint of size s covers positions 0..s-1; the report names the
  // checkpoint's last position or its size.
  ASSERT_TRUE(integrity.first_failing_position.has_value()) << report;
  EXPECT_TRUE(*integrity.first_failing_position == s - 1 || *integrity.first_failing_position == s) << report;
  EXPECT_TRUE(absl::StrContains(integrity.detail, absl::StrCat("checkpoint of size ", s))) << report;
}

// ---------------------------------------------------------------- the bundle

// The frames of a bundle, in order.
std::vector<v1::BundleFrame> ReadFrames(const std::string& path) {
  std::vector<v1::BundleFrame> frames;
  auto reader = audit::BundleReader::Open(path);
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return frames;
  while (true) {
    auto frame = (*reader)->Next();
    EXPECT_TRUE(frame.ok()) << frame.status();
    if (!frame.ok() || !frame->has_value()) break;
    if ((*frame)->has_footer()) continue;
    frames.push_back(**frame);
  }
  return frames;
}

// Writes `frames` as a well-formed bundle (fresh footer and digest).
void WriteFrames(const std::string& path, const std::vector<v1::BundleFrame>& frames) {
  auto writer = audit::BundleWriter::Create(path);
  ASSERT_TRUE(writer.ok()) << writer.status();
  for (const v1::BundleFrame& frame : frames) ASSERT_OK((*writer)->Write(frame));
  ASSERT_OK((*writer)->Finish());
}

// Index in `frames` of the record frame at `position`.
size_t FrameOf(const std::vector<v1::BundleFrame>& frames, uint64_t position) {
  uint64_t seen = 0;
  for (size_t i = 0; i < frames.size(); ++i) {
    if (!frames[i].has_record()) continue;
    if (seen++ == position) return i;
  }
  ADD_FAILURE() << "no record frame at " << position;
  return 0;
}

class BundleTamperTest : public TamperTest {
 protected:
  void SetUp() override {
    TamperTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_TRUE(Fresh());
    int code = 0;
    Report good = Verify(fixture->good_bundle, &code);
    ASSERT_EQ(code, 0) << good;
    ASSERT_TRUE(good.verified) << good;
    frames_ = ReadFrames(fixture->good_bundle);
    ASSERT_GT(frames_.size(), fixture->size);
  }

  void FlippedByteInARecordFrameNamesItsPosition();
  void FlippedByteInARecordBodyNamesItsPosition();
  void TruncatedBundleFails();
  void DeletedRecordFailsDensityAtItsPosition();
  void SwappedRecordsFailDensityAtTheFirst();
  void ForgedSignatureFailsSignaturesAtItsPosition();

  // Expects verify to exit 1 with one of `checks` failing first at `position`.
  void ExpectFailsAtAnyOf(const std::string& bundle, const std::vector<std::string>& checks, uint64_t position) {
    int code = 0;
    Report report = Verify(bundle, &code);
    EXPECT_EQ(code, 1) << report;
    EXPECT_FALSE(report.verified) << report;
    bool named = false;
    for (const std::string& check : checks) {
      const CheckResult& c = report.checks[check];
      named = named || (!c.passed && c.first_failing_position == std::optional<uint64_t>(position));
    }
    EXPECT_TRUE(named) << "expected " << absl::StrJoin(checks, " or ") << " to fail at position " << position
                       << "; failures: " << Failures(report) << "\n" << report;
  }
  void ExpectFailsAt(const std::string& bundle, const std::string& check, uint64_t position) {
    ExpectFailsAtAnyOf(bundle, {check}, position);
  }

  std::vector<v1::BundleFrame> frames_;
};

void BundleTamperTest::FlippedByteInARecordFrameNamesItsPosition() {
  // Flip a byte of position q's signature where it lies in the file.
  const uint64_t q = Middle() + 3;
  auto record = DecodeRecord(Record(q), q);
  ASSERT_TRUE(record.ok());
  v1::SignedEvent event;
  ASSERT_TRUE(event.ParseFromString(record->signed_event()));
  std::string bytes = ReadFileBytes(fixture->good_bundle);
  const size_t at = bytes.find(event.signature());
  ASSERT_NE(at, std::string::npos);
  ASSERT_EQ(bytes.find(event.signature(), at + 1), std::string::npos);
  bytes[at + 10] ^= 0x01;
  const std::string path = work_ + "/flipped.bundle";
  WriteFileBytes(path, bytes);
  ExpectFailsAt(path, "signatures", q);
}

void BundleTamperTest::FlippedByteInARecordBodyNamesItsPosition() {
  // Flip a byte of position q's signed body (its idempotency key, say).
  const uint64_t q = Middle() - 5;
  auto record = DecodeRecord(Record(q), q);
  ASSERT_TRUE(record.ok());
  auto envelope = DecodeStoredEvent(*record);
  ASSERT_TRUE(envelope.ok());
  std::string bytes = ReadFileBytes(fixture->good_bundle);
  const std::string& body = envelope->signed_event.body();
  const size_t at = bytes.find(body);
  ASSERT_NE(at, std::string::npos);
  const size_t key_at = body.find(envelope->body.idempotency_key());
  ASSERT_NE(key_at, std::string::npos);
  bytes[at + key_at + envelope->body.idempotency_key().size() - 1] ^= 0x01;
  const std::string path = work_ + "/flipped-body.bundle";
  WriteFileBytes(path, bytes);
  ExpectFailsAt(path, "signatures", q);
}

void BundleTamperTest::TruncatedBundleFails() {
  const std::string bytes = ReadFileBytes(fixture->good_bundle);
  for (size_t cut : {bytes.size() - 1, bytes.size() / 2, size_t{40}}) {
    SCOPED_TRACE(cut);
    const std::string path = absl::StrCat(work_, "/truncated-", cut, ".bundle");
    WriteFileBytes(path, bytes.substr(0, cut));
    int code = 0;
    Report report = Verify(path, &code);
    EXPECT_EQ(code, 1) << report;
    EXPECT_FALSE(report.verified) << report;
    EXPECT_FALSE(report.checks["integrity"].passed) << report;
  }
}

void BundleTamperTest::DeletedRecordFailsDensityAtItsPosition() {
  // One record inside a batch (no checkpoint right after it) and one a
  // checkpoint follows directly (a single append): both are named.
  std::set<uint64_t> checkpointed(fixture->checkpoints.begin(), fixture->checkpoints.end());
  std::optional<uint64_t> in_batch, before_checkpoint;
  for (uint64_t q = 20; q < fixture->size - 1 && !(in_batch && before_checkpoint); ++q) {
    if (!checkpointed.count(q + 1) && !in_batch) in_batch = q;
    if (checkpointed.count(q + 1) && q > Middle() && !before_checkpoint) before_checkpoint = q;
  }
  ASSERT_TRUE(in_batch.has_value() && before_checkpoint.has_value());
  for (uint64_t q : {*in_batch, *before_checkpoint}) {
    SCOPED_TRACE(absl::StrCat("deleted record ", q, checkpointed.count(q + 1) ? " (a checkpoint follows it)" : ""));
    std::vector<v1::BundleFrame> frames = frames_;
    frames.erase(frames.begin() + FrameOf(frames, q));
    const std::string path = absl::StrCat(work_, "/deleted-", q, ".bundle");
    WriteFrames(path, frames);
    ExpectFailsAtAnyOf(path, {"density", "integrity"}, q);
  }
}

void BundleTamperTest::SwappedRecordsFailDensityAtTheFirst() {
  const uint64_t a = Middle() - 2, b = Middle() + 6;
  std::vector<v1::BundleFrame> frames = frames_;
  std::swap(frames[FrameOf(frames, a)], frames[FrameOf(frames, b)]);
  const std::string path = work_ + "/swapped.bundle";
  WriteFrames(path, frames);
  ExpectFailsAt(path, "density", a);
}

void BundleTamperTest::ForgedSignatureFailsSignaturesAtItsPosition() {
  // Position q re-signed by a key that is not its author's, key id unchanged.
  const uint64_t q = Middle() + 8;
  std::vector<v1::BundleFrame> frames = frames_;
  v1::BundleFrame& frame = frames[FrameOf(frames, q)];
  auto record = DecodeRecord(frame.record(), q);
  ASSERT_TRUE(record.ok());
  v1::SignedEvent event;
  ASSERT_TRUE(event.ParseFromString(record->signed_event()));
  v1::EventBody body;
  ASSERT_TRUE(body.ParseFromString(event.body()));
  v1::SignedEvent forged = SealEvent(body, crypto::PrivateKey::Generate());
  forged.set_key_id(event.key_id());
  ASSERT_NE(forged.signature(), event.signature());
  record->set_signed_event(forged.SerializeAsString());
  frame.set_record(record->SerializeAsString());
  const std::string path = work_ + "/forged.bundle";
  WriteFrames(path, frames);
  ExpectFailsAt(path, "signatures", q);
}

// ---------------------------------------------------------------- the tests

// One test per group (each test is a process, and the ledger is built once per
// process); SCOPED_TRACE names the scenario of a failure.
TEST_F(TamperTest, DatabaseTamperIsServedAsDataLossNeverAWrongAnswer) {
  {
    SCOPED_TRACE("FlippedRecordByteIsDataLossAndExportNamesIt");
    if (Fresh()) FlippedRecordByteIsDataLossAndExportNamesIt();
  }
  {
    SCOPED_TRACE("FlippedLeafIsDataLoss");
    if (Fresh()) FlippedLeafIsDataLoss();
  }
  {
    SCOPED_TRACE("FlippedInteriorNodeIsNeverServedAsAProof");
    if (Fresh()) FlippedInteriorNodeIsNeverServedAsAProof();
  }
  {
    SCOPED_TRACE("DeletedMiddleRecordIsDataLoss");
    if (Fresh()) DeletedMiddleRecordIsDataLoss();
  }
  {
    SCOPED_TRACE("SwappedRecordsAreDataLoss");
    if (Fresh()) SwappedRecordsAreDataLoss();
  }
  {
    SCOPED_TRACE("EditedOlderCheckpointIsDataLoss");
    if (Fresh()) EditedOlderCheckpointIsDataLoss();
  }
}

TEST_F(TamperTest, DatabaseTamperAtTheTipRefusesToStart) {
  {
    SCOPED_TRACE("FlippedFrontierNodeRefusesToStart");
    if (Fresh()) FlippedFrontierNodeRefusesToStart();
  }
  {
    SCOPED_TRACE("DeletedLastRecordRefusesToStart");
    if (Fresh()) DeletedLastRecordRefusesToStart();
  }
  {
    SCOPED_TRACE("EditedLatestCheckpointRefusesToStart");
    if (Fresh()) EditedLatestCheckpointRefusesToStart();
  }
}

TEST_F(TamperTest, FlippedProjectedStateIsNeverServedOrDecidedOn) { FlippedProjectedStateIsNeverServedOrDecidedOn(); }

TEST_F(BundleTamperTest, TamperedBundleFailsVerifyNamingThePosition) {
  {
    SCOPED_TRACE("FlippedByteInARecordFrameNamesItsPosition");
    FlippedByteInARecordFrameNamesItsPosition();
  }
  {
    SCOPED_TRACE("FlippedByteInARecordBodyNamesItsPosition");
    FlippedByteInARecordBodyNamesItsPosition();
  }
  {
    SCOPED_TRACE("TruncatedBundleFails");
    TruncatedBundleFails();
  }
  {
    SCOPED_TRACE("DeletedRecordFailsDensityAtItsPosition");
    DeletedRecordFailsDensityAtItsPosition();
  }
  {
    SCOPED_TRACE("SwappedRecordsFailDensityAtTheFirst");
    SwappedRecordsFailDensityAtTheFirst();
  }
  {
    SCOPED_TRACE("ForgedSignatureFailsSignaturesAtItsPosition");
    ForgedSignatureFailsSignaturesAtItsPosition();
  }
}

}  // namespace
}  // namespace ledger::testing
