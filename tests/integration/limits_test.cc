// Limits on what a client can ask of a real ledgerd (README "Limits"): each
// limit is hit, the answer is RESOURCE_EXHAUSTED LIMIT_REACHED naming the
// flag, and everything else carries on. Queries page by resumable tokens.
//
// No test asserts a duration or sleeps to synchronise: a Verify is held the
// way a client holds it, by not reading (HeldVerify); a freed slot is waited
// for by retrying, bounded in count (after a stall timeout: in time).
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/event/envelope.h"
#include "ledger/v1/governance_service.grpc.pb.h"
#include "services/grpc_status.h"
#include "tests/support/ledger_client.h"
#include "tests/support/ledgerd_process.h"
#include "tests/support/status_matchers.h"

namespace ledger::testing {
namespace {

// RESOURCE_EXHAUSTED, reason LIMIT_REACHED, and the message names `flag`.
::testing::AssertionResult IsLimit(const grpc::Status& status, const std::string& flag) {
  const v1::ErrorDetail detail = services::DetailOf(status);
  if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED && detail.reason() == v1::LIMIT_REACHED &&
      absl::StrContains(status.error_message(), flag)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "expected RESOURCE_EXHAUSTED LIMIT_REACHED naming " << flag << ", got "
                                       << (status.ok() ? std::string("OK") : services::Describe(status));
}

class LimitsTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> args) {
    server_.set_extra_args(std::move(args));
    ASSERT_OK(server_.Start());
    client_ = std::make_unique<LedgerClient>(server_.address());
    ASSERT_OK(client_->Init());
    ASSERT_OK_AND_ASSIGN(Org registrar, LoadRegistrar(server_.data_dir()));
    registrar_ = registrar;
  }

  // One appended event by `org`: its position.
  uint64_t AppendOne(const Org& org) {
    v1::AppendResponse response;
    grpc::Status status =
        client_->Append(client_->KeyAddedEvent(org, org.id, crypto::PrivateKey::Generate()), &response);
    EXPECT_TRUE(status.ok()) << services::Describe(status);
    return response.receipt().position();
  }

  LedgerdProcess server_;
  std::unique_ptr<LedgerClient> client_;
  Org registrar_;
};

// A Subscribe stream read until its caught-up marker.
struct Stream {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader;
  uint64_t next = 0;
  bool finished = false;

  Stream(LedgerClient& client, uint64_t from) : next(from) {
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::SubscribeRequest request;
    request.set_from_position(from);
    reader = client.ledger().Subscribe(&context, request);
  }
  ~Stream() {
    if (finished) return;
    context.TryCancel();
    v1::SubscribeResponse ignored;
    while (reader->Read(&ignored)) {
    }
    (void)reader->Finish();
  }
  grpc::Status Finish() {
    finished = true;
    return reader->Finish();
  }
  // Reads until every position below `end` arrived (and, if `caught_up`,
  // the marker); false if the stream ended.
  bool ReadUntil(uint64_t end, bool caught_up) {
    bool marker = !caught_up;
    v1::SubscribeResponse message;
    while (next < end || !marker) {
      if (!reader->Read(&message)) return false;
      if (message.has_caught_up()) marker = true;
      for (const v1::RecordEntry& entry : message.entries()) {
        if (entry.position() != next) return false;
        ++next;
      }
    }
    return true;
  }
};

TEST_F(LimitsTest, SubscribersBeyondTheLimitAreRefusedAndOthersKeepFlowing) {
  StartServer({"--max-subscribers", "2"});
  ASSERT_OK_AND_ASSIGN(Org org, client_->RegisterOrg(registrar_, "trust-a"));
  ASSERT_OK_AND_ASSIGN(uint64_t size, client_->TreeSize());
  Stream a(*client_, 0), b(*client_, 0);
  ASSERT_TRUE(a.ReadUntil(size, /*caught_up=*/true));
  ASSERT_TRUE(b.ReadUntil(size, /*caught_up=*/true));

  {
    Stream third(*client_, 0);
    v1::SubscribeResponse message;
    EXPECT_FALSE(third.reader->Read(&message));
    EXPECT_TRUE(IsLimit(third.Finish(), "--max-subscribers"));
  }
  // Appends still commit, and the open streams still get them.
  for (int i = 0; i < 5; ++i) {
    const uint64_t position = AppendOne(org);
    ASSERT_TRUE(a.ReadUntil(position + 1, false));
    ASSERT_TRUE(b.ReadUntil(position + 1, false));
  }

  // Once one closes, a new stream is served (its slot frees when the server
  // is done with the old call: retried, bounded).
  a.context.TryCancel();
  bool served = false;
  for (int attempt = 0; attempt < 200 && !served; ++attempt) {
    Stream again(*client_, 0);
    v1::SubscribeResponse message;
    if (again.reader->Read(&message)) {
      served = true;
    } else {
      ASSERT_TRUE(IsLimit(again.Finish(), "--max-subscribers"));
    }
  }
  EXPECT_TRUE(served);
}

// A Verify whose client reads its first message and no more. A Verify's
// stream is short: a progress message (~12 bytes) per 1,024 records and a
// report of ~1 KB (measured: 1,097 bytes for 5,002 records), so under
// gRPC's default HTTP/2 window of 64 KiB a client that stops reading holds
// nothing: the server has written everything and freed the slot. This
// client announces a window of kWindowBytes on a connection of its own (no
// BDP probing to grow it): the report cannot fit, so the server's last write
// waits, and the call holds its slot, until the client reads, cancels or
// goes away.
struct HeldVerify {
  static constexpr int kWindowBytes = 256;  // more than a progress message, less than the report
  grpc::ClientContext context;
  std::unique_ptr<v1::AuditService::Stub> stub;
  std::unique_ptr<grpc::ClientReader<v1::VerifyProgress>> reader;
  grpc::Status finished;
  bool first = false;

  explicit HeldVerify(const std::string& address) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, kWindowBytes);
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    stub = v1::AuditService::NewStub(grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    reader = stub->Verify(&context, v1::VerifyRequest());
    v1::VerifyProgress message;
    first = reader->Read(&message);
    if (!first) finished = reader->Finish();
  }
  // Reads what is left of the call: its final status, and whether the
  // report came.
  grpc::Status ReadRest(bool* reported) {
    if (!first) return finished;
    v1::VerifyProgress message;
    while (reader->Read(&message)) *reported |= message.has_report();
    finished = reader->Finish();
    first = false;
    return finished;
  }
  // Cancels the call: its final status (CANCELLED if the server had not
  // finished it).
  grpc::Status Cancel() {
    if (first) context.TryCancel();
    bool reported = false;
    return ReadRest(&reported);
  }
  ~HeldVerify() { Cancel(); }
};

TEST_F(LimitsTest, SecondVerificationIsRefusedWhileOneRuns) {
  StartServer({});  // default --max-verifications 1
  ASSERT_OK_AND_ASSIGN(Org org, client_->RegisterOrg(registrar_, "trust-a"));

  HeldVerify running(server_.address());
  ASSERT_TRUE(running.first) << services::Describe(running.finished);
  HeldVerify second(server_.address());
  EXPECT_FALSE(second.first);
  EXPECT_TRUE(IsLimit(second.finished, "--max-verifications"));
  // Appends are not held back by it.
  AppendOne(org);

  // The server could not have finished it: it was held, not merely slow.
  EXPECT_EQ(running.Cancel().error_code(), grpc::StatusCode::CANCELLED);
  bool served = false;
  for (int attempt = 0; attempt < 200 && !served; ++attempt) {
    HeldVerify again(server_.address());
    served = again.first;
    if (!served) {
      ASSERT_TRUE(IsLimit(again.finished, "--max-verifications"));
    }
  }
  EXPECT_TRUE(served);
}

// A client that stops reading loses its Verify after --stream-stall-seconds:
// the call ends CANCELLED before its report, and the slot is free for the
// next client. The freed slot is polled for (at most 30 s; the default
// stall timeout of 60 s would fail this).
TEST_F(LimitsTest, AVerifyWhoseClientStopsReadingLosesItsSlotAfterTheStallTimeout) {
  StartServer({"--stream-stall-seconds", "5"});
  HeldVerify stalled(server_.address());
  ASSERT_TRUE(stalled.first) << services::Describe(stalled.finished);
  EXPECT_TRUE(IsLimit(HeldVerify(server_.address()).finished, "--max-verifications"));

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  bool served = false;
  while (!served && std::chrono::steady_clock::now() < deadline) {
    HeldVerify again(server_.address());
    served = again.first;
    if (!served) {
      ASSERT_TRUE(IsLimit(again.finished, "--max-verifications"));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  EXPECT_TRUE(served);
  // The server ended the stalled call: what the window held, then
  // CANCELLED, no report.
  bool reported = false;
  EXPECT_EQ(stalled.ReadRest(&reported).error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_FALSE(reported);
  EXPECT_TRUE(absl::StrContains(server_.Stderr(), "verify: the client read nothing for 5s")) << server_.Stderr();
}

TEST_F(LimitsTest, MessageOverTheLimitIsRefusedAndNothingWritten) {
  StartServer({"--max-message-bytes", "8192"});
  ASSERT_OK_AND_ASSIGN(Org org, client_->RegisterOrg(registrar_, "trust-a"));
  ASSERT_OK_AND_ASSIGN(uint64_t size, client_->TreeSize());
  v1::AppendBatchResponse batch;
  std::vector<v1::SignedEvent> events;
  for (int i = 0; i < 100; ++i) events.push_back(client_->KeyAddedEvent(org, org.id, crypto::PrivateKey::Generate()));
  grpc::Status status = client_->AppendBatch(events, &batch);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << services::Describe(status);
  ASSERT_OK_AND_ASSIGN(uint64_t after, client_->TreeSize());
  EXPECT_EQ(after, size);
  EXPECT_EQ(AppendOne(org), size);  // a small one still goes through
}

TEST_F(LimitsTest, LimitOutOfRangeIsAUsageErrorNamingTheFlag) {
  for (const char* flag : {"--max-subscribers", "--max-verifications", "--max-inflight-submissions", "--max-inflight-bytes",
                           "--max-concurrent-streams",
                           "--max-message-bytes", "--keepalive-seconds", "--idle-timeout-seconds",
                           "--stream-stall-seconds"}) {
    LedgerdProcess server;
    server.set_extra_args({flag, "0"});
    absl::Status started = server.Start();
    EXPECT_FALSE(started.ok()) << flag;
    EXPECT_TRUE(absl::StrContains(server.Stderr(), absl::StrCat(flag, " must be"))) << server.Stderr();
  }
}

TEST_F(LimitsTest, HistoryPagesResumeFromTheirToken) {
  StartServer({});
  ASSERT_OK_AND_ASSIGN(Org org, client_->RegisterOrg(registrar_, "trust-a"));
  v1::AppendBatchResponse batch;
  std::vector<v1::SignedEvent> events;
  for (int i = 0; i < 250; ++i) events.push_back(client_->KeyAddedEvent(org, org.id, crypto::PrivateKey::Generate()));
  ASSERT_GRPC_OK(client_->AppendBatch(events, &batch));
  AppendOne(org);

  auto governance = v1::GovernanceService::NewStub(
      grpc::CreateChannel(server_.address(), grpc::InsecureChannelCredentials()));
  std::vector<uint64_t> positions;
  v1::QueryFilter filter;
  filter.set_org_id(org.id);
  filter.set_limit(100);
  int pages = 0;
  do {
    grpc::ClientContext context;
    v1::HistoryResponse page;
    ASSERT_GRPC_OK(governance->GetHistory(&context, filter, &page));
    EXPECT_LE(page.entries_size(), 100);
    for (const v1::RecordEntry& entry : page.entries()) positions.push_back(entry.position());
    filter.set_page_token(page.next_page_token());
    ++pages;
  } while (!filter.page_token().empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  // Every record of the organisation's, once, in order: its 251 events.
  ASSERT_EQ(positions.size(), 251u);
  for (size_t i = 1; i < positions.size(); ++i) EXPECT_LT(positions[i - 1], positions[i]);
  EXPECT_EQ(positions.front(), batch.receipts(0).position());

  // A token this server did not give is refused, naming it.
  grpc::ClientContext context;
  v1::HistoryResponse page;
  filter.set_page_token("200");
  grpc::Status status = governance->GetHistory(&context, filter, &page);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << services::Describe(status);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "page_token")) << services::Describe(status);
}

TEST_F(LimitsTest, ReadWithAuthorAndKindIsServedFromTheIndex) {
  StartServer({});
  ASSERT_OK_AND_ASSIGN(Org a, client_->RegisterOrg(registrar_, "trust-a"));
  ASSERT_OK_AND_ASSIGN(Org b, client_->RegisterOrg(registrar_, "trust-b"));
  std::set<uint64_t> a_keys;
  for (int i = 0; i < 30; ++i) {
    a_keys.insert(AppendOne(a));
    AppendOne(b);
  }
  v1::ReadRequest request;
  request.set_author(a.id);
  request.add_kinds("key_added");
  request.set_limit(7);
  std::set<uint64_t> read;
  for (int pages = 0; pages < 20; ++pages) {
    grpc::ClientContext context;
    v1::ReadResponse response;
    ASSERT_GRPC_OK(client_->ledger().Read(&context, request, &response));
    for (const v1::RecordEntry& entry : response.entries()) read.insert(entry.position());
    if (response.entries_size() == 0) break;
    request.set_from_position(response.next_position());
  }
  EXPECT_EQ(read, a_keys);
}

}  // namespace
}  // namespace ledger::testing
