// Integration tests of verifying a running server: AuditService.Verify and
// VerifyProposal against a real ledgerd, and the `ledgerctl audit` monitor
// (LEDGERCTL_PATH, set by CMake), including a server that rewrites history.
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/v1/ledger_service.grpc.pb.h"
#include "tests/support/ctl_runner.h"
#include "tests/support/ledger_client.h"
#include "tests/support/ledgerd_process.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"

namespace ledger::testing {
namespace {

namespace fs = std::filesystem;

// The suffix of "collective gm-federation-XXXX formed" in the demo's output.
std::string DemoSuffix(const std::string& out) {
  const std::string marker = "collective gm-federation-";
  size_t at = out.find(marker);
  if (at == std::string::npos) return "";
  size_t start = at + marker.size();
  size_t end = out.find(' ', start);
  if (end == std::string::npos) return "";
  return out.substr(start, end - start);
}

// ---------------------------------------------------------------- fixture

class AuditServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(server_.Start());
    Connect();
    auto registrar = LoadRegistrar(server_.data_dir());
    ASSERT_TRUE(registrar.ok()) << registrar.status();
    registrar_ = *registrar;
  }

  void Connect() {
    client_ = std::make_unique<LedgerClient>(server_.address());
    ASSERT_OK(client_->Init());
  }

  CtlResult Ctl(std::vector<std::string> args, int timeout_seconds = 60) {
    args.insert(args.begin(), {"--server", server_.address()});
    return RunCtl(args, timeout_seconds);
  }

  void RegisterOrgs(const std::string& prefix, int n) {
    for (int i = 0; i < n; ++i) {
      auto org = client_->RegisterOrg(registrar_, absl::StrCat(prefix, "-", i));
      ASSERT_TRUE(org.ok()) << org.status();
    }
  }

  // Calls Verify and collects every message; the stream's status.
  grpc::Status Verify(uint64_t from, uint64_t to, std::vector<v1::VerifyProgress>* messages) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    context.set_wait_for_ready(true);
    v1::VerifyRequest request;
    request.set_from_position(from);
    request.set_to_position(to);
    auto reader = client_->audit().Verify(&context, request);
    v1::VerifyProgress message;
    while (reader->Read(&message)) messages->push_back(message);
    return reader->Finish();
  }

  LedgerdProcess server_;
  std::unique_ptr<LedgerClient> client_;
  Org registrar_;
};

::testing::AssertionResult AllPassed(const v1::VerifyReport& report) {
  if (!report.verified()) return ::testing::AssertionFailure() << report.DebugString();
  if (report.checks_size() != 7) return ::testing::AssertionFailure() << report.DebugString();
  for (const v1::VerifyCheck& c : report.checks()) {
    if (!c.passed() || !c.completed()) return ::testing::AssertionFailure() << c.DebugString();
  }
  // The server checks its own log: witnessing is for those who do not trust it.
  if (!report.checks(6).skipped()) return ::testing::AssertionFailure() << report.checks(6).DebugString();
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------- Verify

TEST_F(AuditServiceTest, VerifyOverAGoodLogPasses) {
  RegisterOrgs("org", 20);
  auto size = client_->TreeSize();
  ASSERT_TRUE(size.ok()) << size.status();

  std::vector<v1::VerifyProgress> messages;
  grpc::Status status = Verify(0, 0, &messages);
  ASSERT_TRUE(status.ok()) << ToAbsl(status);
  ASSERT_GE(messages.size(), 2u);
  for (size_t i = 0; i + 1 < messages.size(); ++i) {
    ASSERT_TRUE(messages[i].has_progress()) << messages[i].DebugString();
    EXPECT_EQ(messages[i].progress().records_total(), *size);
  }
  ASSERT_TRUE(messages.back().has_report()) << messages.back().DebugString();
  const v1::VerifyReport& report = messages.back().report();
  EXPECT_TRUE(AllPassed(report));
  EXPECT_EQ(report.records(), *size);
  EXPECT_EQ(report.to_position(), *size);
  EXPECT_EQ(report.ledger_id(), client_->info().ledger_id());
  EXPECT_GE(report.checkpoints(), 1u);
  EXPECT_GE(report.organisations(), 21u);
  // The root is the signed root of the latest checkpoint.
  auto checkpoint = client_->GetCheckpoint(*size);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(report.root_hash(), std::string(merkle::AsBytes(checkpoint->root)));

  // A range: replayed from 0, reported inside the range.
  messages.clear();
  status = Verify(5, *size - 3, &messages);
  ASSERT_TRUE(status.ok()) << ToAbsl(status);
  ASSERT_FALSE(messages.empty());
  ASSERT_TRUE(messages.back().has_report());
  EXPECT_TRUE(AllPassed(messages.back().report()));
  EXPECT_EQ(messages.back().report().records(), *size - 3 - 5);

  // Bad ranges.
  messages.clear();
  status = Verify(0, *size + 1, &messages);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE) << ToAbsl(status);
  messages.clear();
  status = Verify(7, 7, &messages);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << ToAbsl(status);

  // The CLI.
  CtlResult r = Ctl({"verify-server"});
  EXPECT_TRUE(Succeeded(r));
  EXPECT_TRUE(absl::StrContains(r.out, "VERIFIED")) << r;
  EXPECT_FALSE(absl::StrContains(r.out, "NOT VERIFIED")) << r;
  r = Ctl({"verify-server", "--from", "3", "--to", "10", "--json"});
  EXPECT_TRUE(Succeeded(r));
  EXPECT_TRUE(absl::StrContains(r.out, "\"verified\":true")) << r;
  r = Ctl({"verify-server", "--to", absl::StrCat(*size + 100)});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "OUT_OF_RANGE")) << r;
}

// ---------------------------------------------------------------- VerifyProposal

TEST_F(AuditServiceTest, VerifyProposalShowsLocksPositionsAndTheRefusedReversal) {
  CtlResult demo = Ctl({"demo", "--registrar-key", absl::StrCat(server_.data_dir(), "/registrar.key.pem")}, 90);
  ASSERT_TRUE(Succeeded(demo));
  const std::string s = DemoSuffix(demo.out);
  ASSERT_FALSE(s.empty()) << demo;
  const std::string id = absl::StrCat("shared-back-office-", s);

  grpc::ClientContext context;
  client_->PrepareCall(&context);
  v1::VerifyProposalRequest request;
  request.set_proposal_id(id);
  v1::VerifyProposalResponse response;
  grpc::Status status = client_->audit().VerifyProposal(&context, request, &response);
  ASSERT_TRUE(status.ok()) << ToAbsl(status);

  EXPECT_EQ(response.proposal_id(), id);
  EXPECT_EQ(response.status(), v1::PROPOSAL_ADOPTED) << v1::ProposalStatus_Name(response.status());
  EXPECT_TRUE(response.intact()) << response.DebugString();
  ASSERT_GE(response.gateways_size(), 1) << response.DebugString();
  std::vector<uint64_t> to_prove(response.positions_to_prove().begin(), response.positions_to_prove().end());
  auto listed = [&](uint64_t p) { return std::find(to_prove.begin(), to_prove.end(), p) != to_prove.end(); };
  std::optional<uint64_t> need_for_change_refusal;
  for (const v1::GatewayLockEvidence& g : response.gateways()) {
    SCOPED_TRACE(g.gateway_id());
    EXPECT_TRUE(g.locked()) << g.DebugString();
    EXPECT_EQ(g.status(), v1::GATEWAY_PASSED);
    EXPECT_GT(g.locked_at(), g.opened_at());
    EXPECT_TRUE(listed(g.locked_at()));
    EXPECT_TRUE(g.touched_after_lock().empty()) << g.DebugString();
    ASSERT_GT(g.positions_size(), 0) << g.DebugString();
    for (const v1::MemberPositionAtLock& m : g.positions()) {
      EXPECT_TRUE(m.voted()) << m.DebugString();
      EXPECT_LT(m.at(), g.locked_at());
      EXPECT_GE(m.at(), g.opened_at());
      EXPECT_TRUE(listed(m.at()));
    }
    if (g.gateway_id() == "need-for-change") {
      ASSERT_EQ(g.refused_attempts_size(), 1) << g.DebugString();
      need_for_change_refusal = g.refused_attempts(0);
      EXPECT_GT(*need_for_change_refusal, g.locked_at());
    } else {
      EXPECT_TRUE(g.refused_attempts().empty()) << g.DebugString();
    }
  }
  ASSERT_TRUE(need_for_change_refusal.has_value()) << response.DebugString();
  ASSERT_EQ(response.refused_attempts_size(), 1) << response.DebugString();
  const v1::VerifyRefusedAttempt& attempt = response.refused_attempts(0);
  EXPECT_EQ(attempt.position(), *need_for_change_refusal);
  EXPECT_EQ(attempt.org_id(), absl::StrCat("stockport-", s));
  EXPECT_EQ(attempt.gateway_id(), "need-for-change");
  EXPECT_EQ(attempt.reason(), v1::GATEWAY_LOCKED) << v1::Reason_Name(attempt.reason());
  EXPECT_TRUE(listed(attempt.position()));

  // Every position named can be proved.
  for (uint64_t p : {response.gateways(0).locked_at(), attempt.position()}) {
    CtlResult r = Ctl({"prove", "--seq", absl::StrCat(p)});
    EXPECT_TRUE(Succeeded(r));
  }

  // The CLI.
  CtlResult r = Ctl({"verify-proposal", id});
  EXPECT_TRUE(Succeeded(r));
  EXPECT_TRUE(absl::StrContains(r.out, "INTACT")) << r;
  EXPECT_TRUE(absl::StrContains(r.out, absl::StrCat("position ", attempt.position(), ": stockport-", s))) << r;

  // Unknown proposal.
  grpc::ClientContext unknown_context;
  client_->PrepareCall(&unknown_context);
  request.set_proposal_id("no-such-proposal");
  status = client_->audit().VerifyProposal(&unknown_context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << ToAbsl(status);
  r = Ctl({"verify-proposal", "no-such-proposal"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "NOT_FOUND")) << r;

  // And the whole demo log verifies on the server.
  r = Ctl({"verify-server"});
  EXPECT_TRUE(Succeeded(r));
  EXPECT_TRUE(absl::StrContains(r.out, absl::StrCat("refused attempt at position ", attempt.position()))) << r;
}

// ---------------------------------------------------------------- monitor

TEST_F(AuditServiceTest, MonitorFollowsGrowthAndCatchesARewrite) {
  const std::string state = absl::StrCat(server_.data_dir(), "/../monitor");
  const std::string operator_pub = absl::StrCat(server_.data_dir(), "/operator.pub.pem");
  RegisterOrgs("first", 3);

  // No operator key and no --trust-on-first-use: refused, nothing pinned.
  CtlResult r = Ctl({"audit", "--state", state});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "no operator key to trust")) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "--trust-on-first-use")) << r;
  EXPECT_FALSE(fs::exists(state + "/operator.pub"));
  EXPECT_FALSE(fs::exists(state + "/checkpoint.note"));

  // First run, said explicitly: trust on first use after verifying everything.
  r = Ctl({"audit", "--state", state, "--trust-on-first-use"});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_TRUE(absl::StrContains(r.out, "trusted on first use")) << r;
  const std::string first_note = ReadFileBytes(state + "/checkpoint.note");
  auto first = client_->OpenCheckpoint(first_note);
  ASSERT_TRUE(first.ok()) << first.status() << "\n" << first_note;
  EXPECT_TRUE(fs::exists(state + "/operator.pub"));

  // Growth: the second run proves consistency and advances, resuming the
  // rules state saved by the first rather than replaying from 0.
  RegisterOrgs("second", 4);
  r = Ctl({"audit", "--state", state, "--operator-key", operator_pub});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_TRUE(absl::StrContains(r.out, absl::StrCat("consistent with size ", first->size))) << r;
  EXPECT_TRUE(absl::StrContains(r.out, absl::StrCat("resumed at position ", first->size))) << r;
  auto second = client_->OpenCheckpoint(ReadFileBytes(state + "/checkpoint.note"));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_GT(second->size, first->size);
  auto size = client_->TreeSize();
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(second->size, *size);

  // Nothing new: still OK.
  r = Ctl({"audit", "--state", state});
  EXPECT_TRUE(Succeeded(r));

  // --follow stops cleanly on SIGTERM... (exercised by hand; a bounded run
  // here would need a timer; the single-run path is the same code.)

  // A remembered checkpoint the server's tree does not extend: signed by the
  // operator (the test holds its key), for a size the log has passed, with a
  // different root. The consistency proof must fail.
  {
    const std::string forged_state = absl::StrCat(server_.data_dir(), "/../monitor-forged");
    fs::create_directories(forged_state);
    auto key = crypto::ReadPrivateKeyFile(absl::StrCat(server_.data_dir(), "/operator.key.pem"));
    ASSERT_TRUE(key.ok()) << key.status();
    merkle::Checkpoint forged = *first;
    forged.root[0] ^= 1;
    std::ofstream(forged_state + "/checkpoint.note") << merkle::SignCheckpoint(forged, first->origin, *key);
    fs::copy_file(state + "/operator.pub", forged_state + "/operator.pub");
    r = Ctl({"audit", "--state", forged_state});
    EXPECT_EQ(r.exit_code, 2) << r;
    EXPECT_TRUE(absl::StrContains(r.out, "HISTORY REWRITTEN")) << r;
    EXPECT_TRUE(absl::StrContains(r.out, "does not extend")) << r;
    bool found = false;
    for (const auto& entry : fs::directory_iterator(forged_state)) {
      if (!absl::StartsWith(entry.path().filename().string(), "evidence-")) continue;
      found = true;
      EXPECT_TRUE(fs::exists(entry.path() / "remembered-checkpoint.note"));
      EXPECT_TRUE(fs::exists(entry.path() / "served-checkpoint.note"));
      EXPECT_TRUE(fs::exists(entry.path() / "consistency-proof.txt"));
    }
    EXPECT_TRUE(found) << r;
    // The real state is untouched by that.
    EXPECT_EQ(ReadFileBytes(state + "/checkpoint.note").empty(), false);
  }

  // A server that rewrites history: a new ledger under the same operator key.
  auto stopped = server_.Stop();
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  LedgerdProcess rewritten;
  fs::create_directories(rewritten.data_dir());
  fs::copy_file(absl::StrCat(server_.data_dir(), "/operator.key.pem"),
                absl::StrCat(rewritten.data_dir(), "/operator.key.pem"));
  ASSERT_OK(rewritten.Start());
  const std::string remembered = ReadFileBytes(state + "/checkpoint.note");
  r = RunCtl({"--server", rewritten.address(), "audit", "--state", state, "--operator-key", operator_pub});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_TRUE(absl::StrContains(r.out, "HISTORY REWRITTEN")) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "HISTORY REWRITTEN")) << r;
  EXPECT_TRUE(absl::StrContains(r.out, remembered)) << r;
  int evidence_dirs = 0;
  for (const auto& entry : fs::directory_iterator(state)) {
    if (!absl::StartsWith(entry.path().filename().string(), "evidence-")) continue;
    ++evidence_dirs;
    EXPECT_EQ(ReadFileBytes((entry.path() / "remembered-checkpoint.note").string()), remembered);
    const std::string served = ReadFileBytes((entry.path() / "served-checkpoint.note").string());
    EXPECT_FALSE(served.empty());
    EXPECT_NE(served, remembered);
    EXPECT_TRUE(fs::exists(entry.path() / "reason.txt"));
  }
  EXPECT_EQ(evidence_dirs, 1) << r;
  // The remembered checkpoint is kept: the monitor does not adopt the new log.
  EXPECT_EQ(ReadFileBytes(state + "/checkpoint.note"), remembered);

  // Grow the rewritten log past the remembered size: still a rewrite.
  {
    LedgerClient other(rewritten.address());
    ASSERT_OK(other.Init());
    auto other_registrar = LoadRegistrar(rewritten.data_dir());
    ASSERT_TRUE(other_registrar.ok()) << other_registrar.status();
    for (int i = 0; i < 12; ++i) {
      auto org = other.RegisterOrg(*other_registrar, absl::StrCat("again-", i));
      ASSERT_TRUE(org.ok()) << org.status();
    }
    r = RunCtl({"--server", rewritten.address(), "audit", "--state", state, "--operator-key", operator_pub});
    EXPECT_EQ(r.exit_code, 2) << r;
    EXPECT_TRUE(absl::StrContains(r.out, "HISTORY REWRITTEN")) << r;
  }
}

// The monitor saves what its checks remember (DIR/verifier.state) and
// resumes from it; a corrupt or mismatching file is an error that changes
// nothing, and --rebuild replays from 0. After resuming, the checks still run
// on the new records: a server whose log no longer extends the verified one
// is still caught.
TEST_F(AuditServiceTest, MonitorResumesFromItsSavedStateAndRefusesABadOne) {
  const std::string state = absl::StrCat(server_.data_dir(), "/../monitor-resume");
  const std::string operator_pub = absl::StrCat(server_.data_dir(), "/operator.pub.pem");
  const std::string saved = state + "/verifier.state";
  RegisterOrgs("a", 3);
  CtlResult r = Ctl({"audit", "--state", state, "--operator-key", operator_pub});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_TRUE(absl::StrContains(r.out, "replayed from position 0")) << r;
  ASSERT_TRUE(fs::exists(saved)) << r;
  auto first = client_->OpenCheckpoint(ReadFileBytes(state + "/checkpoint.note"));
  ASSERT_TRUE(first.ok()) << first.status();

  // Resumed: the new records are verified from where the last run stopped.
  RegisterOrgs("b", 3);
  r = Ctl({"audit", "--state", state, "--operator-key", operator_pub});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_TRUE(absl::StrContains(r.out, absl::StrCat("resumed at position ", first->size))) << r;
  EXPECT_FALSE(absl::StrContains(r.out, "replayed from position 0")) << r;
  auto second = client_->OpenCheckpoint(ReadFileBytes(state + "/checkpoint.note"));
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_GT(second->size, first->size);
  const std::string state_at_second = ReadFileBytes(saved);

  // A corrupt state file: a clear error naming it; nothing is saved.
  RegisterOrgs("c", 2);
  {
    std::string corrupt = state_at_second;
    corrupt[corrupt.size() / 2] ^= 0x20;
    std::ofstream(saved, std::ios::binary | std::ios::trunc) << corrupt;
  }
  const std::string note_before = ReadFileBytes(state + "/checkpoint.note");
  r = Ctl({"audit", "--state", state, "--operator-key", operator_pub});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "verifier.state")) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "corrupt")) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "--rebuild")) << r;
  EXPECT_EQ(ReadFileBytes(state + "/checkpoint.note"), note_before);

  // --rebuild replays from 0 and saves a good state again.
  r = Ctl({"audit", "--state", state, "--operator-key", operator_pub, "--rebuild"});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_TRUE(absl::StrContains(r.out, "replayed from position 0 (--rebuild)")) << r;
  auto third = client_->OpenCheckpoint(ReadFileBytes(state + "/checkpoint.note"));
  ASSERT_TRUE(third.ok()) << third.status();
  ASSERT_GT(third->size, second->size);

  // A good state file of another position (an older run's): it does not fit
  // the remembered checkpoint.
  std::ofstream(saved, std::ios::binary | std::ios::trunc) << state_at_second;
  RegisterOrgs("d", 2);
  const std::string note_at_third = ReadFileBytes(state + "/checkpoint.note");
  r = Ctl({"audit", "--state", state, "--operator-key", operator_pub});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_TRUE(absl::StrContains(r.err, absl::StrCat("at position ", second->size, "; the remembered checkpoint is of size ",
                                                    third->size)))
      << r;
  EXPECT_EQ(ReadFileBytes(state + "/checkpoint.note"), note_at_third);
  EXPECT_EQ(ReadFileBytes(saved), state_at_second);
  r = Ctl({"audit", "--state", state, "--operator-key", operator_pub, "--rebuild"});
  ASSERT_TRUE(Succeeded(r));

  // Resumed again, over more records; then a server whose log is another
  // one under the same operator key: caught after the resume as before.
  RegisterOrgs("e", 2);
  r = Ctl({"audit", "--state", state, "--operator-key", operator_pub});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_TRUE(absl::StrContains(r.out, "resumed at position ")) << r;
  const std::string remembered = ReadFileBytes(state + "/checkpoint.note");
  const std::string remembered_state = ReadFileBytes(saved);
  auto stopped = server_.Stop();
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  LedgerdProcess rewritten;
  fs::create_directories(rewritten.data_dir());
  fs::copy_file(absl::StrCat(server_.data_dir(), "/operator.key.pem"),
                absl::StrCat(rewritten.data_dir(), "/operator.key.pem"));
  ASSERT_OK(rewritten.Start());
  {
    LedgerClient other(rewritten.address());
    ASSERT_OK(other.Init());
    auto other_registrar = LoadRegistrar(rewritten.data_dir());
    ASSERT_TRUE(other_registrar.ok()) << other_registrar.status();
    for (int i = 0; i < 20; ++i) {
      auto org = other.RegisterOrg(*other_registrar, absl::StrCat("other-", i));
      ASSERT_TRUE(org.ok()) << org.status();
    }
  }
  r = RunCtl({"--server", rewritten.address(), "audit", "--state", state, "--operator-key", operator_pub});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_TRUE(absl::StrContains(r.out, "HISTORY REWRITTEN")) << r;
  EXPECT_EQ(ReadFileBytes(state + "/checkpoint.note"), remembered);
  EXPECT_EQ(ReadFileBytes(saved), remembered_state);
}

}  // namespace
}  // namespace ledger::testing
