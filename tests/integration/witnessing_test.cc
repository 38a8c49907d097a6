// Witnessing end to end (issue 10): a real ledgerd with --witness-policy and
// real ledger-witness processes over HTTP.
//
// TwoOfThreeAdvancesWithOneWitnessDown: three witnesses, quorum 2 of 3; the
//   witnessed checkpoint catches up with the log, and keeps doing so after
//   one witness is stopped; `ledgerctl export --witnessed` verifies offline
//   with `verify --witness-policy`, and without the policy the report says
//   split views were not ruled out.
// ForkNeverGetsAQuorum: the operator copies its data directory and appends
//   different events to each copy; the witnesses keep cosigning the first,
//   answer the second 409 (stale size) then 422 (its proof does not reach
//   what they hold), the second never gets a witnessed checkpoint past the
//   fork, and `verify --witness-policy` rejects its bundle.
//
// Waits are polls bounded by deadlines, never sleeps standing in for them.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "ledger/crypto/sha256.h"
#include "ledger/witness/policy.h"
#include "tests/support/ctl_runner.h"
#include "tests/support/ledger_client.h"
#include "tests/support/ledgerd_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/witness_process.h"

namespace ledger::testing {
namespace {

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

class Witnessing : public ::testing::Test {
 protected:
  // ledgerd once without a policy (to learn its vkey), three witnesses for
  // it, then ledgerd again with the 2-of-3 policy.
  void SetUp() override {
    ASSERT_TRUE(server_.Start().ok());
    ASSERT_TRUE(server_.Stop().ok());
    log_vkey_ = ReadText(server_.data_dir() + "/operator.vkey");
    ASSERT_TRUE(absl::StartsWith(log_vkey_, "decision-ledger/")) << log_vkey_;
    std::string policy = absl::StrCat("log ", log_vkey_, "\n");
    for (int i = 1; i <= 3; ++i) {
      auto w = std::make_unique<WitnessProcess>(
          dir_.path() + "/w" + std::to_string(i),
          std::vector<std::string>{"--name", absl::StrCat("witness.test/w", i), "--log-vkey", log_vkey_});
      ASSERT_TRUE(w->Start().ok());
      absl::StrAppend(&policy, "witness w", i, " ", ReadText(dir_.path() + "/w" + std::to_string(i) + "/witness.vkey"),
                      " http://", w->address(), "\n");
      witnesses_.push_back(std::move(w));
    }
    absl::StrAppend(&policy, "group three 2 w1 w2 w3\nquorum three\n");
    policy_path_ = dir_.path() + "/policy.txt";
    std::ofstream(policy_path_) << policy;
    auto parsed = witness::Policy::Parse(policy);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    policy_.emplace(*std::move(parsed));
    server_.set_extra_args({"--witness-policy", policy_path_});
    ASSERT_TRUE(server_.Start().ok()) << server_.Stderr();
    EXPECT_TRUE(absl::StrContains(server_.Stdout(), "witnesses: 3, quorum 2 of {w1, w2, w3}")) << server_.Stdout();
  }

  // The witnessed checkpoint once it reaches `size` (checked against the
  // policy), or a failure after 30 s.
  absl::StatusOr<witness::WitnessedCheckpoint> WaitWitnessed(LedgerClient& client, uint64_t size) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    std::string last = "nothing witnessed";
    while (std::chrono::steady_clock::now() < deadline) {
      v1::GetCheckpointRequest request;
      request.set_witnessed(true);
      v1::GetCheckpointResponse response;
      grpc::ClientContext context;
      grpc::Status status = client.audit().GetCheckpoint(&context, request, &response);
      if (status.ok()) {
        auto checked = policy_->Check(response.note());
        if (!checked.ok()) return checked.status();
        if (checked->checkpoint.size >= size) return checked;
        last = absl::StrCat("witnessed size ", checked->checkpoint.size);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a poll, bounded above
    }
    return absl::DeadlineExceededError(absl::StrCat("size ", size, " not witnessed in 30 s: ", last));
  }

  // Brings a witness to `size` of `client`'s log: asks what it holds (a
  // stale "old 0" request, answered 409 with its size) and, while that is
  // less, hands it the checkpoint of `size` with the consistency proof from
  // there, as the collector would. ledgerd's collector stops once a quorum
  // cosigned, so a witness it left behind stays behind until the next commit.
  absl::Status WaitHeld(WitnessProcess& witness, LedgerClient& client, uint64_t size) {
    httplib::Client http("http://" + witness.address());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    std::string last = "no answer";
    while (std::chrono::steady_clock::now() < deadline) {
      v1::GetCheckpointResponse latest;
      grpc::ClientContext context;
      grpc::Status status = client.audit().GetCheckpoint(&context, v1::GetCheckpointRequest(), &latest);
      if (!status.ok()) return absl::InternalError(status.error_message());
      if (latest.tree_size() != size) return absl::FailedPreconditionError(absl::StrCat("the log is at ", latest.tree_size()));
      auto stale = http.Post("/add-checkpoint", "old 0\n\n" + latest.note(), "text/plain");
      if (stale && stale->status == 409) {
        const uint64_t held = std::stoull(stale->body);
        if (held == size) return absl::OkStatus();
        last = "holds " + stale->body;
        if (held > 0 && held < size) {
          v1::ConsistencyProofRequest request;
          request.set_from_size(held);
          request.set_to_size(size);
          v1::ConsistencyProofResponse proof;
          grpc::ClientContext proof_context;
          status = client.audit().GetConsistencyProof(&proof_context, request, &proof);
          if (!status.ok()) return absl::InternalError(status.error_message());
          std::string body = absl::StrCat("old ", held, "\n");
          for (const std::string& h : proof.proof()) absl::StrAppend(&body, crypto::Base64Encode(h), "\n");
          auto added = http.Post("/add-checkpoint", body + "\n" + latest.note(), "text/plain");
          if (added) last = absl::StrCat("holds ", held, ", then answered ", added->status, ": ", added->body);
        }
      } else if (stale) {
        last = absl::StrCat("answered ", stale->status, ": ", stale->body);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a poll, bounded above
    }
    return absl::DeadlineExceededError(absl::StrCat("size ", size, " not held in 30 s: ", last));
  }

  void AppendOrgs(LedgerClient& client, const Org& registrar, const std::string& prefix, int n) {
    for (int i = 0; i < n; ++i) ASSERT_TRUE(client.RegisterOrg(registrar, prefix + std::to_string(i)).ok());
  }

  TempDir dir_;
  LedgerdProcess server_;
  std::vector<std::unique_ptr<WitnessProcess>> witnesses_;
  std::string log_vkey_, policy_path_;
  std::optional<witness::Policy> policy_;
};

TEST_F(Witnessing, TwoOfThreeAdvancesWithOneWitnessDown) {
  LedgerClient client(server_.address());
  ASSERT_TRUE(client.Init().ok());
  auto registrar = LoadRegistrar(server_.data_dir());
  ASSERT_TRUE(registrar.ok());
  AppendOrgs(client, *registrar, "org-a", 5);
  auto size = client.TreeSize();
  ASSERT_TRUE(size.ok());
  auto witnessed = WaitWitnessed(client, *size);
  ASSERT_TRUE(witnessed.ok()) << witnessed.status() << server_.Stderr();
  EXPECT_GE(witnessed->cosignatures.size(), 2u);

  ASSERT_TRUE(witnesses_[2]->Stop().ok());
  AppendOrgs(client, *registrar, "org-b", 5);
  size = client.TreeSize();
  ASSERT_TRUE(size.ok());
  witnessed = WaitWitnessed(client, *size);
  ASSERT_TRUE(witnessed.ok()) << witnessed.status() << server_.Stderr();
  for (const witness::Cosignature& c : witnessed->cosignatures) EXPECT_NE(c.witness_name, "w3");

  const std::string bundle = dir_.path() + "/witnessed.bundle";
  ASSERT_TRUE(Succeeded(RunCtl({"--server", server_.address(), "export", "--witnessed", "--out", bundle})));
  CtlResult verified = RunCtl({"verify", bundle, "--operator-key", server_.data_dir() + "/operator.pub.pem",
                               "--witness-policy", policy_path_});
  ASSERT_TRUE(Succeeded(verified));
  EXPECT_TRUE(absl::StrContains(verified.out, "PASS  witnessed")) << verified.out;
  CtlResult unpoliced = RunCtl({"verify", bundle, "--operator-key", server_.data_dir() + "/operator.pub.pem"});
  ASSERT_TRUE(Succeeded(unpoliced));
  EXPECT_TRUE(absl::StrContains(unpoliced.out, "split views were not ruled out")) << unpoliced.out;

  CtlResult proved = RunCtl({"--server", server_.address(), "prove", "--seq", "1", "--operator-key",
                             server_.data_dir() + "/operator.pub.pem", "--witness-policy", policy_path_});
  ASSERT_TRUE(Succeeded(proved));
  EXPECT_TRUE(absl::StrContains(proved.out, "witnessed: quorum 2 of {w1, w2, w3}")) << proved.out;

  CtlResult monitored = RunCtl({"--server", server_.address(), "audit", "--state", dir_.path() + "/monitor",
                                "--operator-key", server_.data_dir() + "/operator.pub.pem", "--witness-policy",
                                policy_path_});
  ASSERT_TRUE(Succeeded(monitored));
  EXPECT_TRUE(absl::StrContains(monitored.out, "witnessed by the quorum 2 of {w1, w2, w3}")) << monitored.out;
}

TEST_F(Witnessing, ForkNeverGetsAQuorum) {
  auto registrar = LoadRegistrar(server_.data_dir());
  ASSERT_TRUE(registrar.ok());
  uint64_t fork_point = 0;
  {
    LedgerClient client(server_.address());
    ASSERT_TRUE(client.Init().ok());
    AppendOrgs(client, *registrar, "shared", 3);
    auto size = client.TreeSize();
    ASSERT_TRUE(size.ok());
    fork_point = *size;
    ASSERT_TRUE(WaitWitnessed(client, fork_point).ok()) << server_.Stderr();
  }
  // The operator copies its data directory (stopped, as a copy of a running
  // RocksDB would not open) and runs both copies against the same witnesses.
  ASSERT_TRUE(server_.Stop().ok());
  LedgerdProcess fork;
  std::filesystem::copy(server_.data_dir(), fork.data_dir(), std::filesystem::copy_options::recursive);
  fork.set_extra_args({"--witness-policy", policy_path_});
  // The first copy goes on and is witnessed before the second starts (so
  // which copy the witnesses saw first is not left to chance).
  ASSERT_TRUE(server_.Start().ok());
  LedgerClient honest(server_.address());
  ASSERT_TRUE(honest.Init().ok());
  AppendOrgs(honest, *registrar, "honest", 2);
  auto honest_size = honest.TreeSize();
  ASSERT_TRUE(honest_size.ok());
  ASSERT_TRUE(WaitWitnessed(honest, *honest_size).ok()) << server_.Stderr();
  // A quorum is two: the third witness may still hold an earlier size, even
  // the fork point, from which the fork's proof would be good. Wait for all.
  for (int i = 0; i < 3; ++i) {
    auto held = WaitHeld(*witnesses_[i], honest, *honest_size);
    ASSERT_TRUE(held.ok()) << "witness w" << i + 1 << ": " << held;
  }

  ASSERT_TRUE(fork.Start().ok()) << fork.Stderr();
  LedgerClient forked(fork.address());
  ASSERT_TRUE(forked.Init().ok());
  AppendOrgs(forked, *registrar, "forked", 6);  // longer, so its proofs must reach the witnesses' tree
  auto forked_size = forked.TreeSize();
  ASSERT_TRUE(forked_size.ok());

  // Each witness, asked directly: 409 naming the honest size, then 422 for
  // the fork's proof from there.
  v1::GetCheckpointResponse fork_latest;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(forked.audit().GetCheckpoint(&context, v1::GetCheckpointRequest(), &fork_latest).ok());
  }
  ASSERT_EQ(fork_latest.tree_size(), *forked_size);
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(absl::StrCat("witness w", i + 1));
    httplib::Client http("http://" + witnesses_[i]->address());
    auto stale = http.Post("/add-checkpoint", "old 0\n\n" + fork_latest.note(), "text/plain");
    ASSERT_TRUE(stale);
    ASSERT_EQ(stale->status, 409);
    EXPECT_EQ(stale->get_header_value("Content-Type"), "text/x.tlog.size");
    const uint64_t held = std::stoull(stale->body);
    EXPECT_EQ(held, *honest_size);
    v1::ConsistencyProofRequest request;
    request.set_from_size(held);
    request.set_to_size(*forked_size);
    v1::ConsistencyProofResponse proof;
    grpc::ClientContext context;
    ASSERT_TRUE(forked.audit().GetConsistencyProof(&context, request, &proof).ok());
    std::string body = absl::StrCat("old ", held, "\n");
    for (const std::string& h : proof.proof()) absl::StrAppend(&body, crypto::Base64Encode(h), "\n");
    auto refused = http.Post("/add-checkpoint", body + "\n" + fork_latest.note(), "text/plain");
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 422) << refused->body;
  }

  // The fork's collector has been trying all along: once every witness has
  // refused it (logged), it has still nothing witnessed past the fork point.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  auto refused_by_all = [&] {
    const std::string err = fork.Stderr();
    for (int i = 1; i <= 3; ++i) {
      if (!absl::StrContains(err, absl::StrCat("witness w", i, ": answered 422"))) return false;
    }
    return true;
  };
  while (!refused_by_all() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a poll, bounded above
  }
  ASSERT_TRUE(refused_by_all()) << fork.Stderr();
  {
    v1::GetCheckpointRequest request;
    request.set_witnessed(true);
    v1::GetCheckpointResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(forked.audit().GetCheckpoint(&context, request, &response).ok());
    EXPECT_EQ(response.tree_size(), fork_point);
  }

  const std::string bundle = dir_.path() + "/fork.bundle";
  ASSERT_TRUE(Succeeded(RunCtl({"--server", fork.address(), "export", "--out", bundle})));
  CtlResult rejected = RunCtl({"verify", bundle, "--operator-key", server_.data_dir() + "/operator.pub.pem",
                               "--witness-policy", policy_path_});
  EXPECT_NE(rejected.exit_code, 0) << rejected;
  EXPECT_TRUE(absl::StrContains(rejected.out, "FAIL  witnessed")) << rejected.out;
  EXPECT_TRUE(absl::StrContains(rejected.out, "is not witnessed")) << rejected.out;
}

}  // namespace
}  // namespace ledger::testing
