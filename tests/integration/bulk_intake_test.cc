// LedgerServiceImpl in process, on a real Ledger (RocksDB in a temporary
// directory) behind a real gRPC server on a loopback port, so that its
// bulk-intake thread can be held: the queue of large AppendBatch requests
// is bounded, and small ones never wait behind it.
#include "services/ledger_service.h"

#include <deque>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/synchronization/notification.h"
#include "client/error_detail.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/store/ledger.h"
#include "tests/support/temp_dir.h"

namespace ledger::services {
namespace {

// AppendBatch with `bytes` of bytes that are no protobuf message (0xff: field
// 31 with wire type 7), answered on answer(). Its destructor waits for the
// answer (the call's callback uses it), so it must go after the server has
// ended every call.
class RawBatchCall {
 public:
  RawBatchCall(grpc::GenericStub* stub, size_t bytes) : garbage_(bytes, '\xff'), future_(answer_.get_future()) {
    grpc::Slice slice(garbage_);
    request_ = grpc::ByteBuffer(&slice, 1);
    context_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    stub->UnaryCall(&context_, "/ledger.v1.LedgerService/AppendBatch", grpc::StubOptions(), &request_, &response_,
                    [this](grpc::Status status) { answer_.set_value(std::move(status)); });
  }
  ~RawBatchCall() { future_.wait(); }
  std::shared_future<grpc::Status> answer() const { return future_; }

 private:
  std::string garbage_;
  grpc::ByteBuffer request_, response_;
  grpc::ClientContext context_;
  std::promise<grpc::Status> answer_;
  std::shared_future<grpc::Status> future_;
};

// A new ledger in `dir`, holding at most `inflight_bytes` of submissions in
// flight (so a quarter of that per address in the bulk-intake queue).
absl::StatusOr<std::unique_ptr<store::Ledger>> OpenLedger(const testing::TempDir& dir,
                                                           size_t inflight_bytes = 1 << 20) {
  store::LedgerOptions options{.data_dir = dir.path(), .operator_key = crypto::PrivateKey::Generate()};
  store::GenesisSpec genesis;
  genesis.ledger_id = "bulk-intake-test";
  v1::Registrar registrar;
  registrar.set_org_id("registrar");
  registrar.add_public_keys(std::string(crypto::PrivateKey::Generate().public_key().raw()));
  genesis.registrars.push_back(registrar);
  options.genesis = genesis;
  options.max_inflight_bytes = inflight_bytes;
  return store::Ledger::Open(std::move(options));
}

// `service` served on a loopback port (set in `port`); null if it fails.
std::unique_ptr<grpc::Server> StartServer(LedgerServiceImpl* service, int* port) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), port);
  builder.RegisterService(service);
  return builder.BuildAndStart();
}

bool Answered(const std::shared_future<grpc::Status>& answer) {
  return answer.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

// Two batches of `bytes` at once (kept in `calls`), of which whichever
// arrives second is refused at once while the first waits (behind a held
// bulk-intake thread, or for its address's rate); returns the waiting one's
// answer and the refusal.
void OneWaitsOneIsRefused(grpc::GenericStub* stub, size_t bytes, std::vector<std::unique_ptr<RawBatchCall>>* calls,
                          std::shared_future<grpc::Status>* waiting, grpc::Status* refused) {
  calls->push_back(std::make_unique<RawBatchCall>(stub, bytes));
  calls->push_back(std::make_unique<RawBatchCall>(stub, bytes));
  auto one_answer = (*calls)[calls->size() - 2]->answer(), other_answer = calls->back()->answer();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!Answered(one_answer) && !Answered(other_answer) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_NE(Answered(one_answer), Answered(other_answer)) << "exactly one is answered while the other waits";
  const bool one_refused = Answered(one_answer);
  *refused = (one_refused ? one_answer : other_answer).get();
  *waiting = one_refused ? other_answer : one_answer;
}

TEST(LedgerServiceBulkIntake, QueuedLargeBatchesAreBoundedAndSmallOnesDoNotWaitForThem) {
  testing::TempDir dir("bulk_intake_test");
  auto ledger = OpenLedger(dir);
  ASSERT_TRUE(ledger.ok()) << ledger.status();

  // The bulk-intake thread, held until a gate opens; every gate opens when
  // the server's scope ends, however it ends (else the server would wait
  // for ever).
  ThreadPool bulk(1);
  std::deque<absl::Notification> gates;
  auto hold = [&] {
    absl::Notification* gate = &gates.emplace_back();
    bulk.Schedule([gate] { gate->WaitForNotification(); });
    return gate;
  };
  ThreadPool workers(1);
  const uint64_t size = (*ledger)->size();
  {
    std::vector<std::unique_ptr<RawBatchCall>> calls;  // outlive the server, which ends them
    LedgerServiceImpl service(ledger->get(), &workers, 16, &bulk);
    int port = 0;
    std::unique_ptr<grpc::Server> server = StartServer(&service, &port);
    ASSERT_NE(server, nullptr);
    grpc::GenericStub stub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
    // Before the server's destructor, which waits for every call to end.
    auto open_all = absl::MakeCleanup([&] {
      for (absl::Notification& gate : gates) {
        if (!gate.HasBeenNotified()) gate.Notify();
      }
    });

    // 1. Two of 600 KiB: the second would pass 1 MiB queued.
    absl::Notification* gate = hold();
    std::shared_future<grpc::Status> queued;
    grpc::Status refused;
    ASSERT_NO_FATAL_FAILURE(OneWaitsOneIsRefused(&stub, 600 << 10, &calls, &queued, &refused));
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
    EXPECT_EQ(client::DetailOf(refused).reason(), v1::LIMIT_REACHED);
    EXPECT_NE(refused.error_message().find("the most this server holds (ledgerd --max-inflight-bytes)"),
              std::string::npos)
        << refused.error_message();

    // A batch up to 256 KiB is decoded where it arrives: answered while the
    // bulk thread is still held.
    calls.push_back(std::make_unique<RawBatchCall>(&stub, 1000));
    const grpc::Status malformed = calls.back()->answer().get();
    EXPECT_EQ(malformed.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << malformed.error_message();
    EXPECT_EQ(client::DetailOf(malformed).reason(), v1::MALFORMED);
    EXPECT_FALSE(Answered(queued));

    gate->Notify();
    const grpc::Status decoded = queued.get();
    EXPECT_EQ(decoded.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << decoded.error_message();
    EXPECT_EQ(client::DetailOf(decoded).reason(), v1::MALFORMED);

    // 2. Its bytes are no longer counted, but one address holds at most a
    //    quarter of the queue (256 KiB here): two of 300 KiB, though they
    //    would fit in 1 MiB, are one too many from this address.
    gate = hold();
    ASSERT_NO_FATAL_FAILURE(OneWaitsOneIsRefused(&stub, 300 << 10, &calls, &queued, &refused));
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
    EXPECT_EQ(client::DetailOf(refused).reason(), v1::LIMIT_REACHED);
    EXPECT_NE(refused.error_message().find("the most one address may queue"), std::string::npos)
        << refused.error_message();
    gate->Notify();
    EXPECT_EQ(queued.get().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    server->Shutdown();
  }
  EXPECT_EQ((*ledger)->size(), size);  // nothing of any of it written
}

// A member looping over batches gets them decoded at its address's byte
// rate, however fast it sends, and its other calls do not wait.
TEST(LedgerServiceBulkIntake, BatchesBeyondTheirAddressesByteRateWaitAndOtherCallsDoNot) {
  testing::TempDir dir("bulk_intake_test");
  auto ledger = OpenLedger(dir);
  ASSERT_TRUE(ledger.ok()) << ledger.status();
  const uint64_t size = (*ledger)->size();
  ThreadPool bulk(1);
  ThreadPool workers(1);
  // Under kInlineBatchBytes: decoded where it arrives while its address is
  // within its rate, queued for its time beyond it.
  constexpr size_t kBatch = 200 << 10;
  constexpr size_t kRate = 100 << 10;   // bytes a second: a batch is two seconds' worth
  std::vector<std::unique_ptr<RawBatchCall>> calls;  // outlive the server, which ends them
  LedgerServiceImpl service(ledger->get(), &workers, 16, &bulk);
  service.LimitBatchBytesPerSecond(kRate);
  int port = 0;
  std::unique_ptr<grpc::Server> server = StartServer(&service, &port);
  ASSERT_NE(server, nullptr);
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  auto ledger_stub = v1::LedgerService::NewStub(channel);

  // The first is decoded at once (its two seconds' worth passes the burst);
  // the second a second later, once the first is a second from paid.
  const absl::Time start = absl::Now();
  for (int i = 0; i < 2; ++i) {
    calls.push_back(std::make_unique<RawBatchCall>(&stub, kBatch));
    EXPECT_EQ(calls.back()->answer().get().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  // The third is decoded (and answered MALFORMED) three seconds after the
  // first, or later. Only a lower bound: a slow machine only makes it later.
  calls.push_back(std::make_unique<RawBatchCall>(&stub, kBatch));
  const grpc::Status third = calls.back()->answer().get();
  const absl::Time third_answered = absl::Now();
  EXPECT_EQ(third.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << third.error_message();
  EXPECT_GE(third_answered - start, absl::Milliseconds(2900));

  // The fourth is decoded five seconds after the first, or later; meanwhile
  // the same address's Append is answered.
  calls.push_back(std::make_unique<RawBatchCall>(&stub, kBatch));
  const std::shared_future<grpc::Status> fourth = calls.back()->answer();
  grpc::ClientContext append_context;
  v1::AppendRequest empty;
  v1::AppendResponse response;
  const grpc::Status append = ledger_stub->Append(&append_context, empty, &response);
  EXPECT_NE(append.error_code(), grpc::StatusCode::OK);  // an empty event: refused at once
  EXPECT_EQ(client::DetailOf(append).reason(), v1::MISSING_FIELD) << append.error_message();
  // Checked only while the fourth is surely not due (a slow machine may
  // take long over the Append).
  if (absl::Now() - start < absl::Milliseconds(4500)) {
    EXPECT_FALSE(Answered(fourth)) << "the batch was decoded before its address's bytes were paid for";
  }
  EXPECT_EQ(fourth.get().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  server->Shutdown();
  EXPECT_EQ((*ledger)->size(), size);  // nothing of any of it written
}

// An address far beyond its rate has its next batch refused at once, not
// queued for minutes, and a stopping server answers a batch that waits for
// its rate at once.
TEST(LedgerServiceBulkIntake, ABatchDueTooFarAheadIsRefusedAndAStoppingServerAnswersTheWaitingOne) {
  testing::TempDir dir("bulk_intake_test");
  auto ledger = OpenLedger(dir, 8 << 20);  // 2 MiB per address queued
  ASSERT_TRUE(ledger.ok()) << ledger.status();
  const uint64_t size = (*ledger)->size();
  ThreadPool bulk(1);
  ThreadPool workers(1);
  constexpr size_t kLarge = 1900 << 10;  // ~30 s at the rate
  std::vector<std::unique_ptr<RawBatchCall>> calls;
  LedgerServiceImpl service(ledger->get(), &workers, 16, &bulk);
  service.LimitBatchBytesPerSecond(64 << 10);
  int port = 0;
  std::unique_ptr<grpc::Server> server = StartServer(&service, &port);
  ASSERT_NE(server, nullptr);
  grpc::GenericStub stub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));

  // The first is decoded at once. Then two at once: whichever arrives
  // first is due ~29 s ahead and waits; the other would be due ~58 s ahead
  // and is refused at once (both whatever the machine's speed, by ~28 s).
  calls.push_back(std::make_unique<RawBatchCall>(&stub, kLarge));
  EXPECT_EQ(calls.back()->answer().get().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  std::shared_future<grpc::Status> waiting;
  grpc::Status refused;
  ASSERT_NO_FATAL_FAILURE(OneWaitsOneIsRefused(&stub, kLarge, &calls, &waiting, &refused));
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_EQ(client::DetailOf(refused).reason(), v1::LIMIT_REACHED);
  EXPECT_NE(refused.error_message().find("ledgerd --batch-bytes-per-second"), std::string::npos)
      << refused.error_message();
  EXPECT_FALSE(Answered(waiting));

  // Stopping: the waiting batch is answered now, not in ~29 s (a generous
  // bound, far below that).
  const absl::Time stopped = absl::Now();
  service.StopStreams();
  const grpc::Status shut = waiting.get();
  EXPECT_EQ(shut.error_code(), grpc::StatusCode::UNAVAILABLE) << shut.error_message();
  EXPECT_EQ(client::DetailOf(shut).reason(), v1::SHUTTING_DOWN) << shut.error_message();
  EXPECT_LT(absl::Now() - stopped, absl::Seconds(20)) << "answered at its time, not when the server stopped";
  server->Shutdown();
  EXPECT_EQ((*ledger)->size(), size);  // nothing of any of it written
}

}  // namespace
}  // namespace ledger::services
