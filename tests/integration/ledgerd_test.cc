// Integration tests against a real ledgerd process: every test starts its own
// server on a temporary data directory and port 0
// (tests/support/ledgerd_process.h) and talks to it only over gRPC, as a
// client would.
//
// Refusals: every refused submission must answer the right code and
// ErrorDetail reason and append nothing of itself, except that a validly
// signed submission of a registered organisation breaking a rule
// (FAILED_PRECONDITION) is kept as one SubmissionRefused record (DESIGN §3).
//
// No test asserts a duration or sleeps to synchronise: waits are blocking
// reads, joins and notifications, every one bounded by a deadline.
#include <sys/stat.h>

#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/event/envelope.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/merkle/tree.h"
#include "ledger/rules/limits.h"
#include "ledger/rules/version.h"
#include "ledger/store/ledger.h"
#include "services/grpc_status.h"
#include "tests/support/ledger_client.h"
#include "tests/support/ledgerd_process.h"
#include "tests/support/status_matchers.h"

namespace ledger::testing {
namespace {

// The status is `code` with ErrorDetail.reason `reason`.
::testing::AssertionResult IsRefused(const grpc::Status& status, grpc::StatusCode code,
                                     v1::Reason reason) {
  const v1::ErrorDetail detail = services::DetailOf(status);
  if (status.error_code() == code && detail.reason() == reason) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "expected code " << code << " with reason " << v1::Reason_Name(reason) << ", got "
         << (status.ok() ? std::string("OK") : services::Describe(status))
         << " [code " << status.error_code() << ", reason " << v1::Reason_Name(detail.reason())
         << "]";
}

// Lets a stream end whatever state it is in (cancel, drain, finish).
template <typename Reader>
void CancelStream(grpc::ClientContext& context, Reader& reader) {
  context.TryCancel();
  v1::SubscribeResponse ignored;
  while (reader->Read(&ignored)) {
  }
  (void)reader->Finish();
}

class LedgerdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(server_.Start());
    ASSERT_OK(Connect());
  }

  // (Re)connects the client to the current address and loads the registrar.
  absl::Status Connect() {
    client_ = std::make_unique<LedgerClient>(server_.address());
    if (auto s = client_->Init(); !s.ok()) return s;
    auto registrar = LoadRegistrar(server_.data_dir());
    if (!registrar.ok()) return registrar.status();
    registrar_.emplace(*std::move(registrar));
    return absl::OkStatus();
  }

  uint64_t Size() {
    auto size = client_->TreeSize();
    EXPECT_TRUE(size.ok()) << size.status();
    return size.ok() ? *size : ~uint64_t{0};
  }

  // `count` KeyAdded events by `org` (each adding a fresh key), sealed.
  std::vector<v1::SignedEvent> KeyAddedEvents(const Org& org, int count) {
    std::vector<v1::SignedEvent> events;
    for (int i = 0; i < count; ++i) {
      events.push_back(client_->KeyAddedEvent(org, org.id, crypto::PrivateKey::Generate()));
    }
    return events;
  }

  // The record at `position` is the ledger's SubmissionRefused keeping
  // `event` (exactly its bytes) with `reason`.
  void ExpectSubmissionRefused(uint64_t position, const v1::SignedEvent& event, v1::Reason reason) {
    ASSERT_OK_AND_ASSIGN(v1::RecordEntry entry, client_->Get(position));
    ASSERT_OK_AND_ASSIGN(v1::Record record, DecodeRecord(entry.record(), position));
    ASSERT_OK_AND_ASSIGN(Envelope envelope, DecodeStoredEvent(record));
    ASSERT_TRUE(envelope.body.has_submission_refused()) << EventKind(envelope.body);
    EXPECT_EQ(envelope.body.author(), client_->info().operator_id());
    EXPECT_EQ(envelope.signed_event.key_id(), client_->operator_key().key_id());
    EXPECT_TRUE(crypto::VerifyEvent(client_->operator_key(), envelope.signed_event.body(),
                                    envelope.signed_event.signature()));
    EXPECT_EQ(envelope.body.submission_refused().signed_event(), event.SerializeAsString());
    EXPECT_EQ(envelope.body.submission_refused().reason(), reason)
        << v1::Reason_Name(envelope.body.submission_refused().reason());
  }

  LedgerdProcess server_;
  std::unique_ptr<LedgerClient> client_;
  std::optional<Org> registrar_;
};

// ---------------------------------------------------------------- concurrency

TEST_F(LedgerdTest, ConcurrentAppendsAreDenseDurableAndProvable) {
  constexpr int kClients = 32;
  constexpr int kEvents = 10'000;  // KeyAdded events, across all clients

  // What was sent and what came back, for every acknowledged event.
  struct Acked {
    std::string signed_bytes;
    v1::Receipt receipt;
  };
  std::vector<Acked> acked;

  std::vector<Org> orgs;
  for (int i = 0; i < kClients; ++i) {
    v1::Receipt receipt;
    ASSERT_OK_AND_ASSIGN(Org org, client_->RegisterOrg(*registrar_, absl::StrCat("trust-", i), 1, &receipt));
    orgs.push_back(org);
    acked.push_back({"", receipt});  // registrations: no sent bytes kept
  }

  std::vector<std::vector<Acked>> per_client(kClients);
  std::mutex errors_mu;
  std::vector<std::string> errors;
  std::vector<std::string> transport_retries;
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    const int count = kEvents / kClients + (c < kEvents % kClients ? 1 : 0);
    threads.emplace_back([&, c, count] {
      LedgerClient client(server_.address(), /*own_connection=*/true);
      if (auto s = client.Init(); !s.ok()) {
        std::lock_guard<std::mutex> lock(errors_mu);
        errors.push_back(absl::StrCat("client ", c, ": ", s.ToString()));
        return;
      }
      for (int i = 0; i < count; ++i) {
        v1::SignedEvent event = client.KeyAddedEvent(orgs[c], orgs[c].id, crypto::PrivateKey::Generate());
        v1::AppendResponse response;
        grpc::Status status = client.Append(event, &response);
        // A transport failure (no ledger reason: the call may or may not
        // have reached ledgerd) is retried with the same bytes, as clients
        // are told to; only then may the answer be a replay of the original.
        bool retried = false;
        for (int attempt = 0; attempt < 3 && !status.ok() &&
                              services::DetailOf(status).reason() == v1::REASON_UNSPECIFIED;
             ++attempt) {
          {
            std::lock_guard<std::mutex> lock(errors_mu);
            transport_retries.push_back(absl::StrCat("client ", c, " event ", i, ": ",
                                                     services::Describe(status)));
          }
          retried = true;
          response.Clear();
          status = client.Append(event, &response);
        }
        if (!status.ok() || (response.replayed() && !retried)) {
          std::lock_guard<std::mutex> lock(errors_mu);
          errors.push_back(absl::StrCat("client ", c, " event ", i, ": ",
                                        status.ok() ? "replayed" : services::Describe(status)));
          return;
        }
        per_client[c].push_back({event.SerializeAsString(), response.receipt()});
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const std::string& retry : transport_retries) std::cerr << "retried after " << retry << "\n";
  ASSERT_TRUE(errors.empty()) << errors.size() << " clients failed; first: " << errors.front()
                              << "\n--- ledgerd stderr ---\n" << server_.Stderr();
  for (auto& events : per_client) {
    for (Acked& a : events) acked.push_back(std::move(a));
  }
  ASSERT_EQ(acked.size(), static_cast<size_t>(kClients + kEvents));

  // Positions: unique, and with Genesis at 0 exactly 0..n-1.
  const uint64_t n = Size();
  ASSERT_EQ(n, static_cast<uint64_t>(1 + kClients + kEvents));
  std::vector<const Acked*> by_position(n, nullptr);
  for (const Acked& a : acked) {
    const uint64_t p = a.receipt.position();
    ASSERT_GE(p, 1u) << "an event was acknowledged at Genesis' position";
    ASSERT_LT(p, n);
    ASSERT_EQ(by_position[p], nullptr) << "position " << p << " acknowledged twice";
    by_position[p] = &a;
  }

  // One checkpoint of the whole log, signed by the operator key.
  std::string note;
  ASSERT_OK_AND_ASSIGN(merkle::Checkpoint checkpoint, client_->GetCheckpoint(0, &note));
  ASSERT_EQ(checkpoint.size, n);
  ASSERT_EQ(checkpoint.origin, client_->info().origin());

  for (uint64_t p = 0; p < n; ++p) {
    ASSERT_OK_AND_ASSIGN(v1::RecordEntry entry, client_->Get(p));
    ASSERT_EQ(entry.position(), p);
    ASSERT_OK_AND_ASSIGN(v1::Record record, DecodeRecord(entry.record(), p));
    ASSERT_OK_AND_ASSIGN(Envelope envelope, DecodeStoredEvent(record));
    if (p == 0) {
      ASSERT_TRUE(envelope.body.has_genesis());
      continue;
    }
    const Acked& a = *by_position[p];
    if (!a.signed_bytes.empty()) {
      ASSERT_EQ(record.signed_event(), a.signed_bytes) << "position " << p << " stores other bytes";
    }
    ASSERT_EQ(a.receipt.leaf_hash(), merkle::AsBytes(merkle::HashLeaf(entry.record())))
        << "position " << p;
    ASSERT_EQ(a.receipt.ledger_time_unix_ns(), record.ledger_time_unix_ns()) << "position " << p;
    ASSERT_GT(a.receipt.tree_size(), p);
    ASSERT_OK_AND_ASSIGN(merkle::Checkpoint receipt_checkpoint,
                         client_->OpenCheckpoint(a.receipt.checkpoint()));
    ASSERT_EQ(receipt_checkpoint.size, a.receipt.tree_size()) << "position " << p;
    ASSERT_OK(client_->VerifyIncluded(p, entry.record(), checkpoint));
  }
}

// ---------------------------------------------------------------- restart

// A new ledger writes its registrar key where --registrar-key-out says (0600),
// never into the data directory; without the flag it lands in the data
// directory as before, with one warning that the operator holds it.
TEST(LedgerdRegistrarKey, WrittenOutsideTheDataDirectoryOnRequest) {
  LedgerdProcess server;
  const std::string out = server.data_dir() + "-registrar.key.pem";
  server.set_extra_args({"--registrar-key-out", out});
  ASSERT_OK(server.Start());
  struct stat st {};
  ASSERT_EQ(::stat(out.c_str(), &st), 0) << out;
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_NE(::stat((server.data_dir() + "/registrar.key.pem").c_str(), &st), 0)
      << "the registrar key is in the data directory too";
  EXPECT_EQ(server.Stderr().find("operator holds a registrar's key"), std::string::npos) << server.Stderr();
  // The key written is the registrar's: it registers an organisation.
  LedgerClient client(server.address());
  ASSERT_OK(client.Init());
  auto key = crypto::ReadPrivateKeyFile(out);
  ASSERT_TRUE(key.ok()) << key.status();
  ASSERT_TRUE(client.RegisterOrg(Org{"registrar", {*std::move(key)}}, "trust-a").ok());
  ASSERT_OK(server.Stop().status());
  std::remove(out.c_str());

  LedgerdProcess by_default;
  ASSERT_OK(by_default.Start());
  EXPECT_EQ(::stat((by_default.data_dir() + "/registrar.key.pem").c_str(), &st), 0);
  EXPECT_NE(by_default.Stderr().find("operator holds a registrar's key"), std::string::npos) << by_default.Stderr();
}

// A second ledgerd on a served directory is refused before it touches
// anything, in words an operator understands, and the first keeps serving.
TEST(LedgerdDataDir, ASecondLedgerdIsToldAnotherIsUsingIt) {
  LedgerdProcess first;
  ASSERT_OK(first.Start());
  LedgerdProcess second;
  second.set_data_dir(first.data_dir());
  absl::Status started = second.Start();
  ASSERT_FALSE(started.ok());
  EXPECT_NE(second.Stderr().find("another ledgerd is using " + first.data_dir()), std::string::npos)
      << second.Stderr();
  EXPECT_EQ(second.Stderr().find("LOCK"), std::string::npos) << "RocksDB's lock error leaked: " << second.Stderr();
  LedgerClient client(first.address());
  ASSERT_OK(client.Init());
  ASSERT_OK(first.Stop().status());
  // Released with the process: the directory serves again.
  ASSERT_OK(first.Start());
}

// DESIGN §4 "Logs outlive releases": a ledger written under rules version 1
// keeps them under this release until its operator runs --upgrade-rules,
// which adopts the newest version as an operator-signed record.
TEST(LedgerdRulesVersion, AnOldLedgerAdoptsTheNewRulesOnlyWhenAsked) {
  LedgerdProcess server;
  const std::string dir = server.data_dir();
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0) << dir;
  const crypto::PrivateKey operator_key = crypto::PrivateKey::Generate();
  ASSERT_OK(crypto::WritePrivateKeyFile(dir + "/operator.key.pem", operator_key));
  ASSERT_OK(crypto::WritePublicKeyFile(dir + "/operator.pub.pem", operator_key.public_key()));
  {
    store::GenesisSpec genesis;
    genesis.ledger_id = "ledger-written-by-release-1";
    genesis.rules_version = rules::kRulesV1;
    v1::Registrar registrar;
    registrar.set_org_id("registrar");
    registrar.add_public_keys(std::string(crypto::PrivateKey::Generate().public_key().raw()));
    genesis.registrars.push_back(registrar);
    auto old = store::Ledger::Open({.data_dir = dir + "/db", .operator_key = operator_key, .genesis = genesis});
    ASSERT_TRUE(old.ok()) << old.status();
  }
  ASSERT_OK(server.Start());
  EXPECT_NE(server.Stdout().find("rules version 1"), std::string::npos) << server.Stdout();
  EXPECT_NE(server.Stderr().find("--upgrade-rules adopts it"), std::string::npos) << server.Stderr();
  ASSERT_OK(server.Stop().status());

  server.set_extra_args({"--upgrade-rules"});
  ASSERT_OK(server.Start());
  EXPECT_NE(server.Stdout().find(absl::StrCat("rules version ", rules::kLatestRulesVersion, " adopted at position 1")),
            std::string::npos)
      << server.Stdout();
  LedgerClient client(server.address());
  ASSERT_OK(client.Init());
  ASSERT_OK_AND_ASSIGN(v1::RecordEntry entry, client.Get(1));
  auto record = DecodeRecord(entry.record(), 1);
  ASSERT_TRUE(record.ok()) << record.status();
  auto event = DecodeStoredEvent(*record);
  ASSERT_TRUE(event.ok()) << event.status();
  EXPECT_EQ(event->body.rules_version_adopted().version(), rules::kLatestRulesVersion);
  // Asked again, nothing more is written.
  ASSERT_OK(server.Stop().status());
  ASSERT_OK(server.Start());
  LedgerClient after(server.address());
  ASSERT_OK(after.Init());
  EXPECT_EQ(*after.TreeSize(), 2u);
}

TEST_F(LedgerdTest, RestartKeepsEverything) {
  ASSERT_OK_AND_ASSIGN(Org org, client_->RegisterOrg(*registrar_, "trust-a"));
  v1::AppendBatchResponse batch;
  const std::vector<v1::SignedEvent> before = KeyAddedEvents(org, 40);
  ASSERT_GRPC_OK(client_->AppendBatch(before, &batch));
  v1::AppendResponse single;
  const v1::SignedEvent last = client_->KeyAddedEvent(org, org.id, crypto::PrivateKey::Generate());
  ASSERT_GRPC_OK(client_->Append(last, &single));

  const uint64_t old_size = Size();
  ASSERT_EQ(old_size, 1u + 1u + 40u + 1u);
  std::string old_note;
  ASSERT_OK_AND_ASSIGN(merkle::Checkpoint old_checkpoint, client_->GetCheckpoint(0, &old_note));
  ASSERT_EQ(old_checkpoint.size, old_size);
  std::vector<std::string> old_records;
  for (uint64_t p = 0; p < old_size; ++p) {
    ASSERT_OK_AND_ASSIGN(v1::RecordEntry entry, client_->Get(p));
    old_records.push_back(entry.record());
  }
  const v1::GetLedgerInfoResponse old_info = client_->info();

  ASSERT_OK_AND_ASSIGN(int exit_code, server_.Stop());
  ASSERT_EQ(exit_code, 0) << server_.Stderr();
  ASSERT_OK(server_.Start());
  ASSERT_OK(Connect());

  // Same ledger, same size, same signed checkpoint, same bytes.
  EXPECT_EQ(client_->info().ledger_id(), old_info.ledger_id());
  EXPECT_EQ(client_->info().origin(), old_info.origin());
  EXPECT_EQ(client_->info().operator_public_key(), old_info.operator_public_key());
  ASSERT_EQ(Size(), old_size);
  std::string note;
  ASSERT_OK_AND_ASSIGN(merkle::Checkpoint checkpoint, client_->GetCheckpoint(0, &note));
  EXPECT_EQ(checkpoint.size, old_size);
  EXPECT_EQ(checkpoint.root, old_checkpoint.root);
  EXPECT_EQ(note, old_note);
  for (uint64_t p = 0; p < old_size; ++p) {
    ASSERT_OK_AND_ASSIGN(v1::RecordEntry entry, client_->Get(p));
    ASSERT_EQ(entry.record(), old_records[p]) << "position " << p;
  }

  // The idempotency index survived: a retry of the last event is a replay.
  v1::AppendResponse retry;
  ASSERT_GRPC_OK(client_->Append(last, &retry));
  EXPECT_TRUE(retry.replayed());
  EXPECT_EQ(retry.receipt().position(), single.receipt().position());
  ASSERT_EQ(Size(), old_size);

  // So did the key registry: the org's own key still signs; growing the log
  // keeps it consistent with the checkpoint from before the restart.
  ASSERT_GRPC_OK(client_->AppendBatch(KeyAddedEvents(org, 25), &batch));
  ASSERT_OK_AND_ASSIGN(merkle::Checkpoint new_checkpoint, client_->GetCheckpoint());
  ASSERT_EQ(new_checkpoint.size, old_size + 25);
  grpc::ClientContext context;
  client_->PrepareCall(&context);
  v1::ConsistencyProofRequest request;
  request.set_from_size(old_size);
  request.set_to_size(new_checkpoint.size);
  v1::ConsistencyProofResponse response;
  ASSERT_GRPC_OK(client_->audit().GetConsistencyProof(&context, request, &response));
  ASSERT_OK_AND_ASSIGN(std::vector<merkle::Hash> proof, HashesFromBytes(response.proof()));
  ASSERT_OK(merkle::VerifyConsistency(old_size, new_checkpoint.size, proof, old_checkpoint.root,
                                      new_checkpoint.root));
  // The old checkpoint is still served by size.
  std::string by_size;
  ASSERT_OK_AND_ASSIGN(merkle::Checkpoint again, client_->GetCheckpoint(old_size, &by_size));
  EXPECT_EQ(by_size, old_note);
  EXPECT_EQ(again.root, old_checkpoint.root);
}

TEST_F(LedgerdTest, AcknowledgedEventsSurviveSigkill) {
  ASSERT_OK_AND_ASSIGN(Org org, client_->RegisterOrg(*registrar_, "trust-a"));
  std::vector<v1::Receipt> receipts;
  for (int i = 0; i < 20; ++i) {
    v1::AppendResponse response;
    ASSERT_GRPC_OK(client_->Append(client_->KeyAddedEvent(org, org.id, crypto::PrivateKey::Generate()),
                                   &response));
    receipts.push_back(response.receipt());
  }
  const uint64_t size = Size();
  ASSERT_OK(server_.Kill());
  ASSERT_OK(server_.Start());
  ASSERT_OK(Connect());
  ASSERT_EQ(Size(), size);
  ASSERT_OK_AND_ASSIGN(merkle::Checkpoint checkpoint, client_->GetCheckpoint());
  ASSERT_EQ(checkpoint.size, size);
  for (const v1::Receipt& receipt : receipts) {
    ASSERT_OK_AND_ASSIGN(v1::RecordEntry entry, client_->Get(receipt.position()));
    EXPECT_EQ(merkle::AsBytes(merkle::HashLeaf(entry.record())), receipt.leaf_hash());
    ASSERT_OK(client_->VerifyIncluded(receipt.position(), entry.record(), checkpoint));
  }
}

// ---------------------------------------------------------------- subscribe

// Reads one stream, checking that positions run on without gap or
// duplicate and that the caught-up marker comes exactly once.
class StreamChecker {
 public:
  StreamChecker(LedgerClient* client, uint64_t from) : next_(from) {
    context_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    context_.set_wait_for_ready(true);
    v1::SubscribeRequest request;
    request.set_from_position(from);
    reader_ = client->ledger().Subscribe(&context_, request);
  }
  ~StreamChecker() { CancelStream(context_, reader_); }

  // Reads one message; false (with a failure recorded) if the stream ended
  // or broke the rules.
  ::testing::AssertionResult ReadOne() {
    v1::SubscribeResponse message;
    if (!reader_->Read(&message)) {
      grpc::Status status = reader_->Finish();
      finished_ = true;
      return ::testing::AssertionFailure()
             << "stream ended at position " << next_ << ": " << services::Describe(status);
    }
    messages_++;
    if (message.has_caught_up()) {
      if (message.entries_size() != 0) {
        return ::testing::AssertionFailure() << "a message carries both entries and caught_up";
      }
      if (caught_up_count_++ != 0) {
        return ::testing::AssertionFailure() << "a second caught_up marker at position " << next_;
      }
      caught_up_size_ = message.caught_up().tree_size();
      if (caught_up_size_ != next_) {
        return ::testing::AssertionFailure() << "caught_up says tree size " << caught_up_size_
                                             << " after delivering up to " << next_;
      }
      return ::testing::AssertionSuccess();
    }
    if (message.entries_size() == 0) {
      return ::testing::AssertionFailure() << "an empty message without caught_up";
    }
    for (const v1::RecordEntry& entry : message.entries()) {
      if (entry.position() != next_) {
        return ::testing::AssertionFailure()
               << "expected position " << next_ << ", got " << entry.position();
      }
      auto record = DecodeRecord(entry.record(), entry.position());
      if (!record.ok()) return ::testing::AssertionFailure() << record.status();
      records_.push_back(entry.record());
      if (!caught_up()) catch_up_records_++;
      next_++;
    }
    return ::testing::AssertionSuccess();
  }

  // Reads until the caught-up marker.
  ::testing::AssertionResult ReadUntilCaughtUp() {
    while (!caught_up()) {
      if (auto r = ReadOne(); !r) return r;
    }
    return ::testing::AssertionSuccess();
  }

  // Reads until every position below `end` was delivered.
  ::testing::AssertionResult ReadUntil(uint64_t end) {
    while (next_ < end) {
      if (auto r = ReadOne(); !r) return r;
    }
    if (next_ != end) {
      return ::testing::AssertionFailure() << "delivered up to " << next_ << ", past " << end;
    }
    return ::testing::AssertionSuccess();
  }

  bool caught_up() const { return caught_up_count_ > 0; }
  uint64_t caught_up_size() const { return caught_up_size_; }
  uint64_t next() const { return next_; }
  int messages() const { return messages_; }
  uint64_t catch_up_records() const { return catch_up_records_; }
  const std::vector<std::string>& records() const { return records_; }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader_;
  uint64_t next_;
  int messages_ = 0;
  int caught_up_count_ = 0;
  uint64_t caught_up_size_ = 0;
  uint64_t catch_up_records_ = 0;
  bool finished_ = false;
  std::vector<std::string> records_;
};

TEST_F(LedgerdTest, SubscribeCatchesUpThenFollowsLive) {
  ASSERT_OK_AND_ASSIGN(Org org, client_->RegisterOrg(*registrar_, "trust-a"));
  // More than one message's worth (512 records) of catch-up.
  for (int i = 0; i < 7; ++i) {
    v1::AppendBatchResponse batch;
    ASSERT_GRPC_OK(client_->AppendBatch(KeyAddedEvents(org, 100), &batch));
  }
  const uint64_t initial = Size();
  ASSERT_EQ(initial, 1u + 1u + 700u);

  StreamChecker stream(client_.get(), 0);
  ASSERT_TRUE(stream.ReadUntilCaughtUp());
  EXPECT_EQ(stream.caught_up_size(), initial);
  EXPECT_EQ(stream.catch_up_records(), initial);
  EXPECT_GE(stream.messages(), 3);  // at least two of entries, one marker

  // Live: one event at a time, each delivered before the next is appended,
  // then a batch.
  for (int i = 0; i < 30; ++i) {
    v1::AppendResponse response;
    ASSERT_GRPC_OK(client_->Append(client_->KeyAddedEvent(org, org.id, crypto::PrivateKey::Generate()),
                                   &response));
    ASSERT_EQ(response.receipt().position(), initial + i);
    ASSERT_TRUE(stream.ReadUntil(response.receipt().position() + 1));
  }
  v1::AppendBatchResponse batch;
  ASSERT_GRPC_OK(client_->AppendBatch(KeyAddedEvents(org, 20), &batch));
  const uint64_t final_size = initial + 30 + 20;
  ASSERT_TRUE(stream.ReadUntil(final_size));
  ASSERT_EQ(Size(), final_size);

  // Everything delivered is what Get serves.
  ASSERT_EQ(stream.records().size(), final_size);
  for (uint64_t p = 0; p < final_size; ++p) {
    ASSERT_OK_AND_ASSIGN(v1::RecordEntry entry, client_->Get(p));
    ASSERT_EQ(entry.record(), stream.records()[p]) << "position " << p;
  }
}

TEST_F(LedgerdTest, SubscribeFromMiddleAndFromEnd) {
  ASSERT_OK_AND_ASSIGN(Org org, client_->RegisterOrg(*registrar_, "trust-a"));
  v1::AppendBatchResponse batch;
  ASSERT_GRPC_OK(client_->AppendBatch(KeyAddedEvents(org, 10), &batch));
  const uint64_t size = Size();

  StreamChecker middle(client_.get(), size - 4);
  ASSERT_TRUE(middle.ReadUntilCaughtUp());
  EXPECT_EQ(middle.catch_up_records(), 4u);
  EXPECT_EQ(middle.caught_up_size(), size);

  StreamChecker end(client_.get(), size);
  ASSERT_TRUE(end.ReadUntilCaughtUp());
  EXPECT_EQ(end.catch_up_records(), 0u);
  EXPECT_EQ(end.caught_up_size(), size);

  ASSERT_GRPC_OK(client_->AppendBatch(KeyAddedEvents(org, 3), &batch));
  ASSERT_TRUE(middle.ReadUntil(size + 3));
  ASSERT_TRUE(end.ReadUntil(size + 3));
}

// DESIGN §5 ("a slow consumer never slows the writer") and STYLE ("never
// buffer without bound for a slow subscriber"). Two rounds of the same
// appends, 18 MiB each (30 batches of 10 bodies of ~60 KiB), each followed
// by a fast subscriber. In the second, kSlow more subscribers are stalled:
// subscribed, then reading nothing until the appends are done, their stream
// windows kept small (fixed_stream_window), so each holds the server back
// after a few tens of KiB. While they are stalled
//   - every append succeeds (an append that waited for them would time out),
//   - the fast subscriber receives everything,
//   - ledgerd's memory grows about as much as in the first round: a stalled
//     stream pins at most its one message in flight (≤ 1 MiB, and gRPC's
//     copy of it), where a server that kept the new records for each stalled
//     stream would grow by kSlow × 18 MiB more;
// released, each stalled subscriber then receives everything, in order.
TEST_F(LedgerdTest, SlowSubscriberDoesNotBlockAppends) {
  constexpr int kBatches = 30;
  constexpr int kPerBatch = 150;
  constexpr uint64_t kBodyBytes = rules::kMaxTextBytes;  // the largest name (rules v3)
  constexpr int kSlow = 8;
  constexpr uint64_t kMiB = 1 << 20;
  constexpr uint64_t kAppendedBytes = kBatches * kPerBatch * kBodyBytes;
  // What one stalled stream may add to ledgerd's memory; a copy of the
  // round's records is several times more.
  constexpr uint64_t kPerStalledStream = 4 * kMiB;
  static_assert(kPerStalledStream * 4 < kAppendedBytes);

  struct Subscriber {
    absl::Notification subscribed;
    std::string failure;
    uint64_t delivered = 0;
  };
  // Subscribes from `from`, catches up, then (if `release`) reads nothing
  // until it is notified; then reads up to `target`.
  auto subscribe = [&](Subscriber* s, uint64_t from, uint64_t target, absl::Notification* release) {
    LedgerClient client(server_.address(), /*own_connection=*/true, /*wait_for_ready=*/true,
                        /*fixed_stream_window=*/release != nullptr);
    StreamChecker stream(&client, from);
    if (auto r = stream.ReadUntilCaughtUp(); !r) s->failure = r.message();
    s->subscribed.Notify();
    if (!s->failure.empty()) return;
    if (release != nullptr && !release->WaitForNotificationWithTimeout(absl::Seconds(60))) {
      s->failure = "never released";
      return;
    }
    if (auto r = stream.ReadUntil(target); !r) s->failure = r.message();
    s->delivered = stream.next();
  };
  // One round of appends: the number appended, or the first failure.
  auto append_round = [&](int round, std::string* failure) {
    int appended = 0;
    for (int b = 0; b < kBatches && failure->empty(); ++b) {
      std::vector<v1::SignedEvent> events;
      for (int i = 0; i < kPerBatch; ++i) {
        v1::EventBody body = client_->NewBody(registrar_->id);
        auto* event = body.mutable_organisation_registered();
        event->set_org_id(absl::StrCat("bulk-", round, "-", b, "-", i));
        event->set_name(std::string(kBodyBytes, 'n'));
        event->add_public_keys(std::string(crypto::PrivateKey::Generate().public_key().raw()));
        events.push_back(SealEvent(body, registrar_->key()));
      }
      v1::AppendBatchResponse response;
      grpc::Status status = client_->AppendBatch(events, &response);
      if (status.ok()) {
        appended += response.receipts_size();
      } else {
        *failure = services::Describe(status);
      }
    }
    return appended;
  };
  auto memory = [&]() -> uint64_t {
    absl::StatusOr<uint64_t> bytes = server_.ResidentBytes();
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    return bytes.ok() ? *bytes : 0;
  };

  // Round 1, the reference: nobody stalled.
  const uint64_t start1 = Size();
  const uint64_t target1 = start1 + kBatches * kPerBatch;
  Subscriber fast1;
  std::thread fast1_thread(subscribe, &fast1, start1, target1, nullptr);
  ASSERT_TRUE(fast1.subscribed.WaitForNotificationWithTimeout(absl::Seconds(30)));
  const uint64_t before1 = memory();
  std::string append_failure;
  const int appended1 = append_round(1, &append_failure);
  fast1_thread.join();
  const uint64_t after1 = memory();
  ASSERT_EQ(append_failure, "");
  ASSERT_EQ(appended1, kBatches * kPerBatch);
  ASSERT_EQ(fast1.failure, "");
  ASSERT_EQ(fast1.delivered, target1);

  // Round 2: kSlow subscribers stalled throughout.
  const uint64_t start2 = Size();
  const uint64_t target2 = start2 + kBatches * kPerBatch;
  absl::Notification release;
  std::vector<Subscriber> slow(kSlow);
  Subscriber fast2;
  std::vector<std::thread> slow_threads;
  for (Subscriber& s : slow) slow_threads.emplace_back(subscribe, &s, start2, target2, &release);
  std::thread fast2_thread(subscribe, &fast2, start2, target2, nullptr);
  bool all_subscribed = fast2.subscribed.WaitForNotificationWithTimeout(absl::Seconds(30));
  for (Subscriber& s : slow) {
    all_subscribed = all_subscribed && s.subscribed.WaitForNotificationWithTimeout(absl::Seconds(30));
  }
  int appended2 = 0;
  uint64_t before2 = 0, after2 = 0;
  if (all_subscribed) {
    before2 = memory();
    appended2 = append_round(2, &append_failure);
  }
  // The fast subscriber gets everything while the slow ones read nothing.
  fast2_thread.join();
  if (all_subscribed) after2 = memory();
  release.Notify();
  for (std::thread& t : slow_threads) t.join();

  ASSERT_TRUE(all_subscribed);
  ASSERT_EQ(append_failure, "");
  EXPECT_EQ(appended2, kBatches * kPerBatch);
  EXPECT_EQ(Size(), target2);
  EXPECT_EQ(fast2.failure, "");
  EXPECT_EQ(fast2.delivered, target2);
  const int64_t growth1 = static_cast<int64_t>(after1) - static_cast<int64_t>(before1);
  const int64_t growth2 = static_cast<int64_t>(after2) - static_cast<int64_t>(before2);
  std::cerr << "ledgerd resident memory grew by " << growth1 / int64_t{kMiB} << " MiB in round 1, "
            << growth2 / int64_t{kMiB} << " MiB in round 2 with " << kSlow
            << " subscribers stalled (" << kAppendedBytes / kMiB << " MiB appended per round)\n";
  EXPECT_LT(growth2, growth1 + static_cast<int64_t>(kSlow * kPerStalledStream))
      << "ledgerd buffers for stalled subscribers";
  for (int i = 0; i < kSlow; ++i) {
    EXPECT_EQ(slow[i].failure, "") << "slow subscriber " << i;
    EXPECT_EQ(slow[i].delivered, target2) << "slow subscriber " << i;
  }
}

// ---------------------------------------------------------------- idempotency

TEST_F(LedgerdTest, IdempotentRetryReturnsTheOriginalReceipt) {
  ASSERT_OK_AND_ASSIGN(Org org, client_->RegisterOrg(*registrar_, "trust-a"));
  const v1::SignedEvent event = client_->KeyAddedEvent(org, org.id, crypto::PrivateKey::Generate());
  v1::AppendResponse original;
  ASSERT_GRPC_OK(client_->Append(event, &original));
  EXPECT_FALSE(original.replayed());
  // The log grows in between.
  v1::AppendResponse other;
  ASSERT_GRPC_OK(client_->Append(client_->KeyAddedEvent(org, org.id, crypto::PrivateKey::Generate()),
                                 &other));
  const uint64_t size = Size();
  ASSERT_OK_AND_ASSIGN(v1::RecordEntry stored, client_->Get(original.receipt().position()));

  v1::AppendResponse retry;
  ASSERT_GRPC_OK(client_->Append(event, &retry));
  EXPECT_TRUE(retry.replayed());
  EXPECT_EQ(retry.receipt().position(), original.receipt().position());
  EXPECT_EQ(retry.receipt().leaf_hash(), original.receipt().leaf_hash());
  EXPECT_EQ(retry.receipt().ledger_time_unix_ns(), original.receipt().ledger_time_unix_ns());
  // "The original receipt": Receipt.tree_size is the size of the checkpoint
  // that first included the event, and `checkpoint` that checkpoint.
  EXPECT_EQ(retry.receipt().tree_size(), original.receipt().tree_size());
  EXPECT_EQ(retry.receipt().checkpoint(), original.receipt().checkpoint());
  EXPECT_EQ(Size(), size);
  ASSERT_OK_AND_ASSIGN(v1::RecordEntry after, client_->Get(original.receipt().position()));
  EXPECT_EQ(after.record(), stored.record());

  // Same author and idempotency key, other bytes: refused, nothing written.
  v1::EventBody body;
  ASSERT_TRUE(body.ParseFromString(event.body()));
  body.mutable_key_added()->set_public_key(std::string(crypto::PrivateKey::Generate().public_key().raw()));
  v1::AppendResponse conflict;
  EXPECT_TRUE(IsRefused(client_->AppendEvent(body, org.key(), &conflict),
                        grpc::StatusCode::ALREADY_EXISTS, v1::IDEMPOTENCY_CONFLICT));
  EXPECT_EQ(Size(), size);

  // The same idempotency key is another author's to use.
  v1::EventBody by_registrar = body;
  by_registrar.set_author(registrar_->id);
  v1::AppendResponse registrar_response;
  ASSERT_GRPC_OK(client_->AppendEvent(by_registrar, registrar_->key(), &registrar_response));
  EXPECT_FALSE(registrar_response.replayed());
  EXPECT_EQ(registrar_response.receipt().position(), size);
}

// ---------------------------------------------------------------- batches

TEST_F(LedgerdTest, AppendBatchIsAllOrNothing) {
  ASSERT_OK_AND_ASSIGN(Org org, client_->RegisterOrg(*registrar_, "trust-a"));
  uint64_t size = Size();

  struct BadThird {
    std::string name;
    std::function<v1::SignedEvent(const std::vector<v1::SignedEvent>&)> make;
    grpc::StatusCode code;
    v1::Reason reason;
    // Kept as a SubmissionRefused: a rule refusal the log alone reproduces
    // (the event would be refused without the rest of its batch too).
    bool recorded = false;
  };
  const crypto::PrivateKey stranger = crypto::PrivateKey::Generate();
  const std::vector<BadThird> cases = {
      {"flipped signature (verify pool)",
       [&](const std::vector<v1::SignedEvent>&) {
         v1::SignedEvent e = client_->KeyAddedEvent(org, org.id, crypto::PrivateKey::Generate());
         e.mutable_signature()->at(10) ^= 0x01;
         return e;
       },
       grpc::StatusCode::UNAUTHENTICATED, v1::BAD_SIGNATURE},
      {"garbage body (decoding)",
       [&](const std::vector<v1::SignedEvent>&) {
         v1::SignedEvent e;
         e.set_body("not a protobuf \xff\xff\xff\xff\xff\xff\xff\xff\xff\xff");
         e.set_key_id(org.key().public_key().key_id());
         e.set_signature(crypto::SignEvent(org.key(), e.body()));
         return e;
       },
       grpc::StatusCode::INVALID_ARGUMENT, v1::MALFORMED},
      {"adds the key the first event adds (rules, after state changed)",
       [&](const std::vector<v1::SignedEvent>& good) {
         v1::EventBody first;
         EXPECT_TRUE(first.ParseFromString(good[0].body()));
         v1::EventBody body = client_->NewBody(org.id);
         *body.mutable_key_added() = first.key_added();
         return SealEvent(body, org.key());
       },
       grpc::StatusCode::FAILED_PRECONDITION, v1::KEY_EXISTS, /*recorded=*/false},
      {"adds a key to an unknown organisation (rules, refused on its own too)",
       [&](const std::vector<v1::SignedEvent>&) {
         v1::EventBody body = client_->NewBody(org.id);
         body.mutable_key_added()->set_org_id("no-such-trust");
         body.mutable_key_added()->set_public_key(
             std::string(crypto::PrivateKey::Generate().public_key().raw()));
         return SealEvent(body, org.key());
       },
       grpc::StatusCode::FAILED_PRECONDITION, v1::UNKNOWN_ORGANISATION, /*recorded=*/true},
      {"signed by a key unknown to the ledger (sequencer check)",
       [&](const std::vector<v1::SignedEvent>&) {
         v1::EventBody body = client_->NewBody(org.id);
         body.mutable_key_added()->set_org_id(org.id);
         body.mutable_key_added()->set_public_key(
             std::string(crypto::PrivateKey::Generate().public_key().raw()));
         return SealEvent(body, stranger);
       },
       grpc::StatusCode::UNAUTHENTICATED, v1::UNKNOWN_KEY},
  };

  for (const BadThird& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<v1::SignedEvent> events = KeyAddedEvents(org, 5);
    events[2] = c.make(events);
    v1::AppendBatchResponse response;
    grpc::Status status = client_->AppendBatch(events, &response);
    EXPECT_TRUE(IsRefused(status, c.code, c.reason));
    EXPECT_EQ(services::DetailOf(status).batch_index(), 2u) << services::Describe(status);
    EXPECT_EQ(response.receipts_size(), 0);
    if (c.recorded) {
      // The event that broke a rule is kept as a SubmissionRefused (DESIGN
      // §3); none of the batch's events is.
      ASSERT_EQ(Size(), size + 1);
      ExpectSubmissionRefused(size, events[2], c.reason);
      size += 1;
    } else {
      EXPECT_EQ(Size(), size);
    }

    // Nothing of it was kept: not the records, not the idempotency keys, not
    // the keys the good events add (each now goes in as new).
    std::vector<v1::SignedEvent> good = {events[0], events[1], events[3], events[4]};
    ASSERT_GRPC_OK(client_->AppendBatch(good, &response));
    ASSERT_EQ(response.receipts_size(), 4);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(response.receipts(i).position(), size + i);
    v1::AppendResponse single;
    ASSERT_GRPC_OK(client_->Append(events[0], &single));
    EXPECT_TRUE(single.replayed());  // a replay of what the good batch wrote
    EXPECT_EQ(single.receipt().position(), size);
    size = Size();  // the log grew by the good batch
  }
}

// ---------------------------------------------------------------- bad input

TEST_F(LedgerdTest, RefusedSubmissionsAnswerCodeAndReason) {
  ASSERT_OK_AND_ASSIGN(Org a, client_->RegisterOrg(*registrar_, "trust-a"));
  ASSERT_OK_AND_ASSIGN(Org b, client_->RegisterOrg(*registrar_, "trust-b"));
  // Two keys; the second is revoked by the organisation itself.
  ASSERT_OK_AND_ASSIGN(Org r, client_->RegisterOrg(*registrar_, "trust-r", 2));
  {
    v1::EventBody body = client_->NewBody(r.id);
    body.mutable_key_revoked()->set_org_id(r.id);
    body.mutable_key_revoked()->set_key_id(r.keys[1].public_key().key_id());
    body.mutable_key_revoked()->set_reason("laptop lost");
    v1::AppendResponse response;
    ASSERT_GRPC_OK(client_->AppendEvent(body, r.keys[0], &response));
  }
  const crypto::PrivateKey stranger = crypto::PrivateKey::Generate();

  // A valid KeyAdded by `a` for itself, as a starting point.
  auto key_added_body = [&](const Org& author) {
    v1::EventBody body = client_->NewBody(author.id);
    body.mutable_key_added()->set_org_id(author.id);
    body.mutable_key_added()->set_public_key(
        std::string(crypto::PrivateKey::Generate().public_key().raw()));
    return body;
  };
  auto signed_with = [](const std::string& body, const crypto::PrivateKey& key) {
    v1::SignedEvent e;
    e.set_body(body);
    e.set_key_id(key.public_key().key_id());
    e.set_signature(crypto::SignEvent(key, body));
    return e;
  };

  struct Case {
    std::string name;
    std::function<v1::SignedEvent()> make;
    grpc::StatusCode code;
    v1::Reason reason;
  };
  const std::vector<Case> cases = {
      {"garbage body bytes",
       [&] { return signed_with("not a protobuf \xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", a.key()); },
       grpc::StatusCode::INVALID_ARGUMENT, v1::MALFORMED},
      {"truncated body",
       [&] {
         std::string body = key_added_body(a).SerializeAsString();
         body.resize(body.size() - 3);  // inside the public key
         return signed_with(body, a.key());
       },
       grpc::StatusCode::INVALID_ARGUMENT, v1::MALFORMED},
      {"body with an unknown field",
       [&] {
         // Field 99, varint 1: a newer client's field this ledger cannot check.
         std::string body = key_added_body(a).SerializeAsString() + std::string("\x98\x06\x01", 3);
         return signed_with(body, a.key());
       },
       grpc::StatusCode::INVALID_ARGUMENT, v1::MALFORMED},
      {"empty body", [&] { return signed_with("", a.key()); }, grpc::StatusCode::INVALID_ARGUMENT,
       v1::MISSING_FIELD},
      {"oversize body (> 64 KiB)",
       [&] {
         v1::EventBody body = client_->NewBody(registrar_->id);
         body.mutable_organisation_registered()->set_org_id("big");
         body.mutable_organisation_registered()->set_name(std::string(kMaxBodyBytes + 1, 'x'));
         body.mutable_organisation_registered()->add_public_keys(
             std::string(crypto::PrivateKey::Generate().public_key().raw()));
         return SealEvent(body, registrar_->key());
       },
       grpc::StatusCode::INVALID_ARGUMENT, v1::OVERSIZE},
      {"wrong ledger id",
       [&] {
         v1::EventBody body = key_added_body(a);
         body.set_ledger_id("ledger-0000000000000000");
         return SealEvent(body, a.key());
       },
       grpc::StatusCode::INVALID_ARGUMENT, v1::WRONG_LEDGER},
      {"flipped signature byte",
       [&] {
         v1::SignedEvent e = SealEvent(key_added_body(a), a.key());
         e.mutable_signature()->at(0) ^= 0x80;
         return e;
       },
       grpc::StatusCode::UNAUTHENTICATED, v1::BAD_SIGNATURE},
      {"body changed after signing",
       [&] {
         v1::SignedEvent e = SealEvent(key_added_body(a), a.key());
         e.mutable_body()->back() ^= 0x01;  // last byte of the new public key
         return e;
       },
       grpc::StatusCode::UNAUTHENTICATED, v1::BAD_SIGNATURE},
      {"signature of 63 bytes",
       [&] {
         v1::SignedEvent e = SealEvent(key_added_body(a), a.key());
         e.mutable_signature()->pop_back();
         return e;
       },
       grpc::StatusCode::UNAUTHENTICATED, v1::BAD_SIGNATURE},
      {"no signature",
       [&] {
         v1::SignedEvent e = SealEvent(key_added_body(a), a.key());
         e.clear_signature();
         return e;
       },
       grpc::StatusCode::UNAUTHENTICATED, v1::BAD_SIGNATURE},
      {"signature without the event domain prefix",
       [&] {
         v1::SignedEvent e = SealEvent(key_added_body(a), a.key());
         e.set_signature(a.key().Sign(e.body()));
         return e;
       },
       grpc::StatusCode::UNAUTHENTICATED, v1::BAD_SIGNATURE},
      {"no key id",
       [&] {
         v1::SignedEvent e = SealEvent(key_added_body(a), a.key());
         e.clear_key_id();
         return e;
       },
       grpc::StatusCode::INVALID_ARGUMENT, v1::MISSING_FIELD},
      {"unknown author",
       [&] {
         v1::EventBody body = key_added_body(a);
         body.set_author("no-such-trust");
         return SealEvent(body, a.key());
       },
       grpc::StatusCode::UNAUTHENTICATED, v1::UNKNOWN_AUTHOR},
      {"unknown key id", [&] { return SealEvent(key_added_body(a), stranger); },
       grpc::StatusCode::UNAUTHENTICATED, v1::UNKNOWN_KEY},
      {"key of another organisation", [&] { return SealEvent(key_added_body(a), b.key()); },
       grpc::StatusCode::UNAUTHENTICATED, v1::KEY_NOT_OF_AUTHOR},
      {"revoked key", [&] { return SealEvent(key_added_body(r), r.keys[1]); },
       grpc::StatusCode::UNAUTHENTICATED, v1::REVOKED_KEY},
      {"missing payload",
       [&] {
         v1::EventBody body = client_->NewBody(a.id);
         return SealEvent(body, a.key());
       },
       grpc::StatusCode::INVALID_ARGUMENT, v1::MISSING_FIELD},
      {"missing idempotency key",
       [&] {
         v1::EventBody body = key_added_body(a);
         body.clear_idempotency_key();
         return SealEvent(body, a.key());
       },
       grpc::StatusCode::INVALID_ARGUMENT, v1::MISSING_FIELD},
      {"missing author",
       [&] {
         v1::EventBody body = key_added_body(a);
         body.clear_author();
         return SealEvent(body, a.key());
       },
       grpc::StatusCode::INVALID_ARGUMENT, v1::MISSING_FIELD},
      {"idempotency key of 129 bytes",
       [&] {
         v1::EventBody body = key_added_body(a);
         body.set_idempotency_key(std::string(kMaxIdempotencyKeyBytes + 1, 'k'));
         return SealEvent(body, a.key());
       },
       grpc::StatusCode::INVALID_ARGUMENT, v1::OVERSIZE},
      {"non-registrar registers an organisation",
       [&] {
         v1::EventBody body = client_->NewBody(a.id);
         body.mutable_organisation_registered()->set_org_id("trust-z");
         body.mutable_organisation_registered()->add_public_keys(
             std::string(crypto::PrivateKey::Generate().public_key().raw()));
         return SealEvent(body, a.key());
       },
       grpc::StatusCode::FAILED_PRECONDITION, v1::NOT_A_REGISTRAR},
      {"member adds a key to another organisation",
       [&] {
         v1::EventBody body = key_added_body(a);
         body.mutable_key_added()->set_org_id(b.id);
         return SealEvent(body, a.key());
       },
       grpc::StatusCode::FAILED_PRECONDITION, v1::NOT_AUTHORISED},
      {"registrar registers an existing organisation",
       [&] {
         v1::EventBody body = client_->NewBody(registrar_->id);
         body.mutable_organisation_registered()->set_org_id(a.id);
         body.mutable_organisation_registered()->add_public_keys(
             std::string(crypto::PrivateKey::Generate().public_key().raw()));
         return SealEvent(body, registrar_->key());
       },
       grpc::StatusCode::FAILED_PRECONDITION, v1::ORGANISATION_EXISTS},
      {"second Genesis",
       [&] {
         v1::EventBody body = client_->NewBody(registrar_->id);
         body.mutable_genesis()->set_operator_id(registrar_->id);
         body.mutable_genesis()->set_operator_public_key(std::string(registrar_->key().public_key().raw()));
         body.mutable_genesis()->set_origin("another");
         return SealEvent(body, registrar_->key());
       },
       grpc::StatusCode::FAILED_PRECONDITION, v1::GENESIS_ONLY_FIRST},
      {"governance event (vote_cast) on an unknown proposal",
       [&] {
         v1::EventBody body = client_->NewBody(a.id);
         body.mutable_vote_cast()->set_proposal_id("p-1");
         body.mutable_vote_cast()->set_gateway_id("need-for-change");
         body.mutable_vote_cast()->set_position(v1::ASSENT);
         return SealEvent(body, a.key());
       },
       grpc::StatusCode::FAILED_PRECONDITION, v1::UNKNOWN_PROPOSAL},
      {"system event from a member (gateway_passed)",
       [&] {
         v1::EventBody body = client_->NewBody(a.id);
         body.mutable_gateway_passed()->set_proposal_id("p-1");
         body.mutable_gateway_passed()->set_gateway_id("need-for-change");
         return SealEvent(body, a.key());
       },
       grpc::StatusCode::FAILED_PRECONDITION, v1::SYSTEM_EVENT_FROM_MEMBER},
  };

  uint64_t size = Size();
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const v1::SignedEvent event = c.make();
    v1::AppendResponse response;
    EXPECT_TRUE(IsRefused(client_->Append(event, &response), c.code, c.reason));
    EXPECT_FALSE(response.has_receipt());
    if (c.code == grpc::StatusCode::FAILED_PRECONDITION) {
      // DESIGN §3: a validly signed submission of a registered organisation
      // that breaks a rule is refused *and* kept, as one SubmissionRefused.
      ASSERT_EQ(Size(), size + 1);
      ExpectSubmissionRefused(size, event, c.reason);
      size += 1;
    } else {
      EXPECT_EQ(Size(), size);
    }
  }

  {
    SCOPED_TRACE("AppendRequest without an event");
    grpc::ClientContext context;
    client_->PrepareCall(&context);
    v1::AppendResponse response;
    EXPECT_TRUE(IsRefused(client_->ledger().Append(&context, v1::AppendRequest(), &response),
                          grpc::StatusCode::INVALID_ARGUMENT, v1::MISSING_FIELD));
  }
  {
    SCOPED_TRACE("empty batch");
    v1::AppendBatchResponse response;
    EXPECT_TRUE(IsRefused(client_->AppendBatch({}, &response), grpc::StatusCode::INVALID_ARGUMENT,
                          v1::MISSING_FIELD));
  }
  {
    SCOPED_TRACE("batch over 1000 events");
    std::vector<v1::SignedEvent> events(kMaxBatchEvents + 1, SealEvent(key_added_body(a), a.key()));
    v1::AppendBatchResponse response;
    EXPECT_TRUE(IsRefused(client_->AppendBatch(events, &response), grpc::StatusCode::INVALID_ARGUMENT,
                          v1::OVERSIZE));
  }
  EXPECT_EQ(Size(), size);

  // The organisations' good keys still work after all that.
  v1::AppendResponse response;
  ASSERT_GRPC_OK(client_->AppendEvent(key_added_body(r), r.keys[0], &response));
  EXPECT_EQ(response.receipt().position(), size);
}

TEST_F(LedgerdTest, ReadsPastTheEndAreNotFound) {
  const uint64_t size = Size();
  for (uint64_t position : {size, size + 1000}) {
    SCOPED_TRACE(absl::StrCat("position ", position));
    v1::GetResponse get;
    EXPECT_TRUE(IsRefused(client_->Get(position, &get), grpc::StatusCode::NOT_FOUND,
                          v1::NO_SUCH_POSITION));
    v1::InclusionProofResponse proof;
    EXPECT_TRUE(IsRefused(client_->GetInclusionProof(position, 0, &proof),
                          grpc::StatusCode::NOT_FOUND, v1::NO_SUCH_POSITION));
  }
  {
    SCOPED_TRACE("checkpoint of a size the log never had");
    grpc::ClientContext context;
    client_->PrepareCall(&context);
    v1::GetCheckpointRequest request;
    request.set_tree_size(size + 5);
    v1::GetCheckpointResponse response;
    EXPECT_TRUE(IsRefused(client_->audit().GetCheckpoint(&context, request, &response),
                          grpc::StatusCode::NOT_FOUND, v1::NO_SUCH_CHECKPOINT));
  }
  EXPECT_EQ(Size(), size);
}

}  // namespace
}  // namespace ledger::testing
