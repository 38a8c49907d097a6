// ledgerd --metrics-listen (README "Metrics") and readiness through the gRPC
// health service, on a real ledgerd: appends accepted, replayed, refused
// (recorded and not) and a Subscribe stream move the counters by exactly
// what was done; the scrape is valid text format 0.0.4 with no lint warning
// under `promtool check metrics` (Debian's prometheus package); bad values
// of the flag are usage errors naming it.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/event/envelope.h"
#include "services/grpc_status.h"
#include "tests/support/ledger_client.h"
#include "tests/support/ledgerd_process.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"
#include "tests/support/witness_process.h"

namespace ledger::testing {
namespace {

constexpr char kPromtool[] = "/usr/bin/promtool";

// Every sample of a scrape: the series (name and labels as written) -> value.
using Samples = std::map<std::string, double>;

Samples ParseSamples(const std::string& body) {
  Samples samples;
  for (absl::string_view line : absl::StrSplit(body, '\n', absl::SkipEmpty())) {
    if (line.front() == '#') continue;
    const size_t space = line.rfind(' ');
    double value = 0;
    EXPECT_NE(space, absl::string_view::npos) << line;
    if (space == absl::string_view::npos) continue;
    const absl::string_view text = line.substr(space + 1);
    if (text == "+Inf") {
      value = std::numeric_limits<double>::infinity();
    } else {
      EXPECT_TRUE(absl::SimpleAtod(text, &value)) << line;
    }
    samples[std::string(line.substr(0, space))] = value;
  }
  return samples;
}

// The value of `series`, 0 if the scrape does not have it (a labelled
// counter appears once it first counts).
double Value(const Samples& samples, const std::string& series) {
  auto it = samples.find(series);
  return it == samples.end() ? 0 : it->second;
}

std::string Appends(const std::string& method, const std::string& outcome, const std::string& code,
                    const std::string& reason) {
  return absl::StrCat("ledger_appends_total{method=\"", method, "\",outcome=\"", outcome, "\",code=\"", code,
                      "\",reason=\"", reason, "\"}");
}

// Runs `command` through the shell: its exit status and everything it wrote
// (stdout and stderr).
int RunShell(const std::string& command, std::string* output) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output->append(buffer, n);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// grpc.health.v1.Health/Check for `service` without the generated code:
// HealthCheckRequest is field 1 (string), HealthCheckResponse field 1 (enum
// ServingStatus: 1 SERVING, 2 NOT_SERVING). The status number, or -1 with
// the gRPC error in `error`.
int HealthCheck(const std::string& address, const std::string& service, std::string* error) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  std::string request_bytes;
  if (!service.empty()) {
    request_bytes.push_back(0x0a);
    request_bytes.push_back(static_cast<char>(service.size()));
    request_bytes += service;
  }
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  context.set_wait_for_ready(true);
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) {
    *error = services::Describe(status);
    return -1;
  }
  std::vector<grpc::Slice> slices;
  (void)response.Dump(&slices);
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (bytes.empty()) return 0;  // UNKNOWN, the default, is not encoded
  if (bytes.size() != 2 || bytes[0] != 0x08) {
    *error = "unexpected HealthCheckResponse bytes";
    return -1;
  }
  return bytes[1];
}

// The port of the line ledgerd prints before "ledgerd listening on":
// "metrics on http://127.0.0.1:PORT/metrics" (0 if it is not there).
int MetricsPort(const std::string& out) {
  const std::string prefix = "metrics on http://127.0.0.1:";
  const size_t at = out.find(prefix);
  const size_t end = at == std::string::npos ? at : out.find('\n', at);
  if (end == std::string::npos) return 0;
  const std::string line = out.substr(at, end - at);
  int port = 0;
  if (!absl::EndsWith(line, "/metrics") ||
      !absl::SimpleAtoi(line.substr(prefix.size(), line.size() - prefix.size() - 8), &port)) {
    return 0;
  }
  return port;
}

// GET /metrics: the body, after checking the status and content type.
std::string Scrape(int port) {
  httplib::Client http("127.0.0.1", port);
  httplib::Result result = http.Get("/metrics");
  EXPECT_TRUE(result) << "GET /metrics: " << httplib::to_string(result.error());
  if (!result) return "";
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  return result->body;
}

// `promtool check metrics` on `body`: passes only with exit 0 and no output
// (it prints one line per lint problem).
void ExpectPromtoolAccepts(const std::string& body) {
  TempDir dir;
  const std::string scrape_path = dir.path() + "/scrape.txt";
  {
    std::ofstream out(scrape_path, std::ios::binary);
    out << body;
  }
  ASSERT_EQ(access(kPromtool, X_OK), 0) << kPromtool << " is missing: install Debian's prometheus package "
                                        << "(tools/test.sh does)";
  std::string promtool_output;
  EXPECT_EQ(RunShell(absl::StrCat(kPromtool, " check metrics < ", scrape_path), &promtool_output), 0)
      << promtool_output << "\n" << body;
  EXPECT_EQ(promtool_output, "") << body;
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.set_extra_args({"--metrics-listen", "127.0.0.1:0"});
    ASSERT_OK(server_.Start());
    metrics_port_ = MetricsPort(server_.Stdout());
    ASSERT_GT(metrics_port_, 0) << server_.Stdout();
    client_ = std::make_unique<LedgerClient>(server_.address());
    ASSERT_OK(client_->Init());
    ASSERT_OK_AND_ASSIGN(Org registrar, LoadRegistrar(server_.data_dir()));
    registrar_ = registrar;
  }

  std::string Scrape() { return ledger::testing::Scrape(metrics_port_); }

  LedgerdProcess server_;
  int metrics_port_ = 0;
  std::unique_ptr<LedgerClient> client_;
  Org registrar_;
};

TEST_F(MetricsTest, CountersMoveByWhatWasDoneAndPromtoolAcceptsTheScrape) {
  const Samples before = ParseSamples(Scrape());
  ASSERT_EQ(Value(before, "ledger_tree_size"), 1);  // Genesis
  ASSERT_EQ(Value(before, "ledger_subscribe_streams"), 0);

  // Accepted: a registration and three keys (Append), a batch of two.
  ASSERT_OK_AND_ASSIGN(Org org, client_->RegisterOrg(registrar_, "trust-a"));
  std::vector<v1::SignedEvent> accepted;
  for (int i = 0; i < 3; ++i) {
    accepted.push_back(client_->KeyAddedEvent(org, org.id, crypto::PrivateKey::Generate()));
    v1::AppendResponse response;
    ASSERT_GRPC_OK(client_->Append(accepted.back(), &response));
  }
  {
    v1::AppendBatchResponse response;
    ASSERT_GRPC_OK(client_->AppendBatch({client_->KeyAddedEvent(org, org.id, crypto::PrivateKey::Generate()),
                                         client_->KeyAddedEvent(org, org.id, crypto::PrivateKey::Generate())},
                                        &response));
  }
  // Replayed: the first key again, same bytes.
  {
    v1::AppendResponse response;
    ASSERT_GRPC_OK(client_->Append(accepted.front(), &response));
    ASSERT_TRUE(response.replayed());
  }
  // Refused and recorded: a key for an unknown organisation, twice (two
  // different events).
  for (int i = 0; i < 2; ++i) {
    v1::EventBody body = client_->NewBody(org.id);
    body.mutable_key_added()->set_org_id("no-such-trust");
    body.mutable_key_added()->set_public_key(std::string(crypto::PrivateKey::Generate().public_key().raw()));
    v1::AppendResponse response;
    grpc::Status status = client_->Append(SealEvent(body, org.key()), &response);
    ASSERT_EQ(services::DetailOf(status).reason(), v1::UNKNOWN_ORGANISATION) << services::Describe(status);
  }
  // Refused, not recorded: a flipped signature; an Append without an event.
  {
    v1::SignedEvent event = client_->KeyAddedEvent(org, org.id, crypto::PrivateKey::Generate());
    event.mutable_signature()->at(10) ^= 0x01;
    v1::AppendResponse response;
    grpc::Status status = client_->Append(event, &response);
    ASSERT_EQ(services::DetailOf(status).reason(), v1::BAD_SIGNATURE) << services::Describe(status);
  }
  {
    v1::AppendRequest request;
    v1::AppendResponse response;
    grpc::ClientContext context;
    client_->PrepareCall(&context);
    grpc::Status status = client_->ledger().Append(&context, request, &response);
    ASSERT_EQ(services::DetailOf(status).reason(), v1::MISSING_FIELD) << services::Describe(status);
  }
  ASSERT_OK_AND_ASSIGN(uint64_t size, client_->TreeSize());
  ASSERT_EQ(size, 1u + 1 + 3 + 2 + 2);

  // A Subscribe stream, open (read to its caught-up marker) while scraped.
  grpc::ClientContext stream_context;
  stream_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::SubscribeRequest subscribe;
  subscribe.set_from_position(0);
  auto reader = client_->ledger().Subscribe(&stream_context, subscribe);
  v1::SubscribeResponse message;
  uint64_t streamed = 0;
  while (reader->Read(&message) && !message.has_caught_up()) streamed += message.entries_size();
  ASSERT_TRUE(message.has_caught_up());
  ASSERT_EQ(streamed, size);

  const std::string body = Scrape();
  const Samples after = ParseSamples(body);
  auto delta = [&](const std::string& series) { return Value(after, series) - Value(before, series); };
  EXPECT_EQ(delta(Appends("Append", "accepted", "OK", "")), 4);
  EXPECT_EQ(delta(Appends("AppendBatch", "accepted", "OK", "")), 1);
  EXPECT_EQ(delta(Appends("Append", "replayed", "OK", "")), 1);
  EXPECT_EQ(delta(Appends("Append", "refused", "FAILED_PRECONDITION", "UNKNOWN_ORGANISATION")), 2);
  EXPECT_EQ(delta(Appends("Append", "refused", "UNAUTHENTICATED", "BAD_SIGNATURE")), 1);
  EXPECT_EQ(delta(Appends("Append", "refused", "INVALID_ARGUMENT", "MISSING_FIELD")), 1);
  EXPECT_EQ(delta("ledger_append_duration_seconds_count"), 4 + 1 + 1 + 2 + 1 + 1);
  EXPECT_EQ(Value(after, "ledger_append_duration_seconds_bucket{le=\"+Inf\"}"),
            Value(after, "ledger_append_duration_seconds_count"));
  EXPECT_GT(delta("ledger_append_duration_seconds_sum"), 0);
  // Only the recorded refusals are counted here, by reason.
  EXPECT_EQ(delta("ledger_refusals_recorded_total{reason=\"UNKNOWN_ORGANISATION\"}"), 2);
  EXPECT_EQ(delta("ledger_refusals_recorded_total{reason=\"BAD_SIGNATURE\"}"), 0);
  // Every record written came in some commit group: 1 + 3 + 2 + 2.
  EXPECT_EQ(delta("ledger_commit_group_records_sum"), 8);
  EXPECT_GE(delta("ledger_commit_group_records_count"), 1);
  EXPECT_LE(delta("ledger_commit_group_records_count"), 7);
  EXPECT_EQ(Value(after, "ledger_tree_size"), static_cast<double>(size));
  EXPECT_EQ(Value(after, "ledger_subscribe_streams"), 1);
  EXPECT_EQ(Value(after, "ledger_verifications_running"), 0);
  EXPECT_EQ(Value(after, "ledger_inflight_submissions"), 0);
  EXPECT_GE(Value(after, "ledger_checkpoint_age_seconds"), 0);
  EXPECT_TRUE(after.count("ledger_checkpoint_age_seconds")) << body;
  EXPECT_TRUE(after.count("ledger_rocksdb_sst_files_bytes")) << body;
  EXPECT_GT(Value(after, "ledger_rocksdb_memtable_bytes"), 0) << body;
  EXPECT_TRUE(after.count("ledger_rocksdb_live_data_bytes")) << body;
  EXPECT_EQ(Value(after, "ledger_rocksdb_write_stopped"), 0) << body;
  EXPECT_TRUE(after.count("ledger_rocksdb_delayed_write_rate_bytes")) << body;
  // No witness policy: no lag to report.
  EXPECT_FALSE(absl::StrContains(body, "ledger_witnessed_checkpoint_lag")) << body;

  ExpectPromtoolAccepts(body);

  stream_context.TryCancel();
  while (reader->Read(&message)) {
  }
  (void)reader->Finish();
}

TEST_F(MetricsTest, HealthSaysServingOnceServing) {
  for (const std::string service : {"", "ledger.v1.LedgerService", "ledger.v1.AuditService",
                                    "ledger.v1.GovernanceService"}) {
    std::string error;
    EXPECT_EQ(HealthCheck(server_.address(), service, &error), 1) << "service \"" << service << "\": " << error;
  }
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

// With --witness-policy (one real ledger-witness, quorum of it): the lag is
// 0 once the witness has cosigned the newest checkpoint, and exactly the
// records appended after the witness stopped.
TEST(MetricsWitnessTest, LagIsTheRecordsNotYetCosigned) {
  TempDir dir;
  LedgerdProcess server;
  ASSERT_OK(server.Start());  // once, to create the ledger and its vkey
  ASSERT_OK(server.Stop().status());
  const std::string log_vkey = ReadText(server.data_dir() + "/operator.vkey");
  WitnessProcess witness(dir.path() + "/w1", {"--name", "witness.test/w1", "--log-vkey", log_vkey});
  ASSERT_OK(witness.Start());
  const std::string policy_path = dir.path() + "/policy.txt";
  std::ofstream(policy_path) << "log " << log_vkey << "\nwitness w1 " << ReadText(dir.path() + "/w1/witness.vkey")
                             << " http://" << witness.address() << "\nquorum w1\n";
  server.set_extra_args({"--witness-policy", policy_path, "--metrics-listen", "127.0.0.1:0"});
  ASSERT_OK(server.Start());
  const int port = MetricsPort(server.Stdout());
  ASSERT_GT(port, 0) << server.Stdout();

  LedgerClient client(server.address());
  ASSERT_OK(client.Init());
  ASSERT_OK_AND_ASSIGN(Org registrar, LoadRegistrar(server.data_dir()));
  for (int i = 0; i < 3; ++i) ASSERT_OK(client.RegisterOrg(registrar, absl::StrCat("org-a", i)).status());

  // Polled, bounded: the witness cosigns in the background.
  Samples samples;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  do {
    samples = ParseSamples(Scrape(port));
    if (samples.count("ledger_witnessed_checkpoint_lag_records") &&
        samples["ledger_witnessed_checkpoint_lag_records"] == 0) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (std::chrono::steady_clock::now() < deadline);
  ASSERT_EQ(Value(samples, "ledger_witnessed_checkpoint_lag_records"), 0) << server.Stderr();
  EXPECT_EQ(Value(samples, "ledger_witnessed_checkpoint_lag_seconds"), 0);
  EXPECT_EQ(Value(samples, "ledger_tree_size"), 4);

  // The only witness gone: no quorum, the lag is what is appended now.
  ASSERT_OK(witness.Stop().status());
  for (int i = 0; i < 2; ++i) ASSERT_OK(client.RegisterOrg(registrar, absl::StrCat("org-b", i)).status());
  const std::string body = Scrape(port);
  samples = ParseSamples(body);
  EXPECT_EQ(Value(samples, "ledger_witnessed_checkpoint_lag_records"), 2) << body;
  ASSERT_TRUE(samples.count("ledger_witnessed_checkpoint_lag_seconds")) << body;
  EXPECT_GE(samples["ledger_witnessed_checkpoint_lag_seconds"], 0) << body;
  ExpectPromtoolAccepts(body);
}

// ledgerd with `args` (and a fresh data directory) run to its exit: the exit
// code, with everything it printed in `output`.
int RunLedgerd(const std::vector<std::string>& args, std::string* output) {
  TempDir dir;
  std::string command = absl::StrCat(LEDGERD_PATH, " --data ", dir.path(), "/data --listen 127.0.0.1:0");
  for (const std::string& arg : args) absl::StrAppend(&command, " '", arg, "'");
  return RunShell(command, output);
}

TEST(MetricsFlagTest, BadAddressIsAUsageErrorNamingTheFlag) {
  for (const std::string value : {"bogus", "127.0.0.1", "127.0.0.1:", ":9464", "127.0.0.1:65536",
                                  "127.0.0.1:9x", "::1:0", "[::1]:-1"}) {
    SCOPED_TRACE(value);
    std::string output;
    EXPECT_EQ(RunLedgerd({"--metrics-listen", value}, &output), 2) << output;
    EXPECT_TRUE(absl::StrContains(output, "--metrics-listen")) << output;
    EXPECT_FALSE(absl::StrContains(output, "listening on")) << output;
  }
}

TEST(MetricsFlagTest, PortInUseIsRefusedNamingTheFlag) {
  // A port this test holds (listening, without SO_REUSEPORT).
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t length = sizeof(address);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const int port = ntohs(address.sin_port);

  std::string output;
  EXPECT_EQ(RunLedgerd({"--metrics-listen", absl::StrCat("127.0.0.1:", port)}, &output), 1) << output;
  EXPECT_TRUE(absl::StrContains(output, absl::StrCat("--metrics-listen: cannot listen on 127.0.0.1:", port)))
      << output;
  close(fd);
}

}  // namespace
}  // namespace ledger::testing
