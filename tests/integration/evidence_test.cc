// Member evidence (issue 10, item 5): ledgerctl keeps the signed checkpoint
// of every receipt in --evidence DIR, and `ledgerctl audit` checks that the
// server still holds every one of them. A real ledgerd is rolled back to a
// copy of its data directory taken before the last appends (as an operator
// could): audit must say HISTORY REWRITTEN, name what was lost, exit non-zero
// and keep the evidence; the honest server passes.
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "ledger/crypto/ed25519.h"
#include "tests/support/ctl_runner.h"
#include "tests/support/ledgerd_process.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"

namespace ledger::testing {
namespace {

namespace fs = std::filesystem;

constexpr int kCliTimeoutSeconds = 30;
constexpr int kExitRewritten = 2;

// The value of a "name: value" line of `text` ("" if none).
std::string LineValue(const std::string& text, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, absl::StrCat(name, ": "))) return std::string(line.substr(name.size() + 2));
  }
  return "";
}

class EvidenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(server_.Start());
    // Beside the data directory, which the rollback replaces.
    root_ = fs::path(server_.data_dir()).parent_path().string();
    keys_ = root_ + "/keys";
    evidence_ = root_ + "/evidence";
    fs::create_directories(keys_);
  }

  CtlResult Ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {"--server", server_.address()});
    return RunCtl(args, kCliTimeoutSeconds);
  }

  // Registers `org` through ledgerctl (the registrar's receipt goes to
  // `evidence`): its position.
  uint64_t Register(const std::string& org, const std::string& evidence) {
    const std::string key = absl::StrCat(keys_, "/", org, ".pem");
    EXPECT_TRUE(Succeeded(RunCtl({"keygen", "--out", key}, kCliTimeoutSeconds)));
    CtlResult r =
        Ctl({"--evidence", evidence, "register-org", "--as", "registrar", "--key",
             absl::StrCat(server_.data_dir(), "/registrar.key.pem"), "--org", org, "--name", org, "--org-key", key});
    EXPECT_TRUE(Succeeded(r));
    last_ = r;
    return std::stoull(LineValue(r.out, "position").empty() ? "0" : LineValue(r.out, "position"));
  }

  // The one origin subdirectory of `evidence` ("" if not exactly one).
  static std::string OriginDir(const std::string& evidence) {
    std::vector<std::string> dirs;
    if (!fs::is_directory(evidence)) return "";
    for (const auto& e : fs::directory_iterator(evidence)) {
      if (e.is_directory()) dirs.push_back(e.path().string());
    }
    return dirs.size() == 1 ? dirs[0] : "";
  }

  static std::vector<std::string> Receipts(const std::string& dir) {
    std::vector<std::string> names;
    if (dir.empty() || !fs::is_directory(dir)) return names;
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (absl::StartsWith(name, "receipt-") && absl::EndsWith(name, ".json")) names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  static std::string ReceiptName(uint64_t position) {
    std::string digits = std::to_string(position);
    return absl::StrCat("receipt-", std::string(20 - digits.size(), '0'), digits, ".json");
  }

  LedgerdProcess server_;
  std::string root_;
  std::string keys_;
  std::string evidence_;
  CtlResult last_;
};

TEST_F(EvidenceTest, RolledBackTailIsHistoryRewrittenAndTheHonestServerPasses) {
  std::vector<uint64_t> kept;
  for (int i = 0; i < 3; ++i) kept.push_back(Register(absl::StrCat("early-", i), evidence_));
  const std::string dir = OriginDir(evidence_);
  ASSERT_FALSE(dir.empty()) << last_;
  EXPECT_TRUE(fs::exists(dir + "/operator.pub"));
  ASSERT_EQ(Receipts(dir).size(), 3u);
  for (uint64_t p : kept) {
    const std::string text = ReadFileBytes(absl::StrCat(dir, "/", ReceiptName(p)));
    EXPECT_TRUE(absl::StrContains(text, absl::StrCat("\"position\": ", p))) << text;
    EXPECT_TRUE(absl::StrContains(text, "\"checkpoint\": \"decision-ledger/")) << text;
    EXPECT_TRUE(absl::StrContains(text, "\"inclusion_proof\"")) << text;
  }

  // Honest: every saved checkpoint and receipt checks.
  CtlResult r = Ctl({"audit", "--evidence", evidence_});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_TRUE(absl::StrContains(r.out, "evidence OK: 3 saved checkpoints and 3 receipts")) << r;

  // The operator copies its data directory (stopped), then acknowledges more.
  auto stopped = server_.Stop();
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  ASSERT_EQ(*stopped, 0);
  const std::string copy = root_ + "/data-before";
  fs::copy(server_.data_dir(), copy, fs::copy_options::recursive);
  ASSERT_OK(server_.Start());
  std::vector<uint64_t> lost;
  for (int i = 0; i < 2; ++i) lost.push_back(Register(absl::StrCat("late-", i), evidence_));
  ASSERT_EQ(Receipts(dir).size(), 5u);
  r = Ctl({"audit", "--evidence", evidence_});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_TRUE(absl::StrContains(r.out, "5 saved checkpoints and 5 receipts")) << r;

  // ... and rolls back to the copy: ledgerd starts on it.
  stopped = server_.Stop();
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  fs::remove_all(server_.data_dir());
  fs::rename(copy, server_.data_dir());
  ASSERT_OK(server_.Start());

  r = Ctl({"audit", "--evidence", evidence_});
  EXPECT_EQ(r.exit_code, kExitRewritten) << r;
  EXPECT_TRUE(absl::StrContains(r.out, "HISTORY REWRITTEN")) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "HISTORY REWRITTEN")) << r;
  EXPECT_TRUE(absl::StrContains(
      r.out, absl::StrCat("receipt positions lost (not included in the server's tree now): ", lost[0], ", ", lost[1])))
      << r;
  EXPECT_TRUE(absl::StrContains(r.out, absl::StrCat("saved checkpoint size ", lost[1] + 1, " root "))) << r;
  EXPECT_TRUE(absl::StrContains(r.out, "the log was rolled back")) << r;
  // The evidence is kept where it was and copied for handing over.
  EXPECT_EQ(Receipts(dir).size(), 5u);
  std::string copied;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (absl::StartsWith(e.path().filename().string(), "rewritten-")) copied = e.path().string();
  }
  ASSERT_FALSE(copied.empty()) << r;
  EXPECT_TRUE(absl::StrContains(r.out, copied)) << r;
  EXPECT_EQ(Receipts(copied).size(), 5u);
  EXPECT_TRUE(fs::exists(copied + "/operator.pub"));
  EXPECT_TRUE(fs::exists(copied + "/served-checkpoint.note"));
  EXPECT_TRUE(absl::StrContains(ReadFileBytes(copied + "/report.txt"), "HISTORY REWRITTEN"));

  // The operator then appends past the lost size on the rolled-back log
  // (receipts to another member): the saved checkpoints are still not
  // extended, now by a failing consistency proof.
  // First to the very size of the last saved checkpoint: another root for
  // that size. The member itself appends first, at the position it was receipted for
  // before: that earlier receipt is kept (it is the proof), the new one is
  // saved beside it with a warning, and audit still names both lost.
  const std::string before = ReadFileBytes(absl::StrCat(dir, "/", ReceiptName(lost[0])));
  EXPECT_EQ(Register("after-rollback", evidence_), lost[0]);
  EXPECT_EQ(ReadFileBytes(absl::StrCat(dir, "/", ReceiptName(lost[0]))), before);
  EXPECT_TRUE(absl::StrContains(last_.err, "HISTORY REWRITTEN?")) << last_;
  const std::string other = root_ + "/evidence-other";
  Register("again-1", other);
  r = Ctl({"audit", "--evidence", evidence_});
  EXPECT_EQ(r.exit_code, kExitRewritten) << r;
  EXPECT_TRUE(absl::StrContains(r.out, absl::StrCat("the server now signs another root for size ", lost[1] + 1))) << r;
  // Then past it.
  for (int i = 2; i < 4; ++i) Register(absl::StrCat("again-", i), other);
  r = Ctl({"audit", "--evidence", evidence_});
  EXPECT_EQ(r.exit_code, kExitRewritten) << r;
  EXPECT_TRUE(absl::StrContains(r.out, "does not extend it")) << r;
  EXPECT_TRUE(absl::StrContains(r.out, absl::StrCat(lost[0], ", ", lost[1]))) << r;
  // The other member's evidence, of the rolled-back log only, passes.
  r = Ctl({"audit", "--evidence", other});
  EXPECT_TRUE(Succeeded(r));
}

TEST_F(EvidenceTest, CorruptEvidenceFileIsReportedAndSkipped) {
  const uint64_t a = Register("a", evidence_);
  const uint64_t b = Register("b", evidence_);
  const uint64_t c = Register("c", evidence_);
  const std::string dir = OriginDir(evidence_);
  ASSERT_EQ(Receipts(dir).size(), 3u);
  // Garbage, and a receipt whose checkpoint's signature was altered.
  WriteFileBytes(absl::StrCat(dir, "/", ReceiptName(a)), "{\"format\": \"decision-ledger-receipt/1\", \"posi");
  {
    const std::string path = absl::StrCat(dir, "/", ReceiptName(b));
    std::string text = ReadFileBytes(path);
    const size_t dash = text.find("\\u2014 ");  // the signature line, as JSON escapes it
    const size_t at = dash == std::string::npos ? text.find("— ") : dash;
    ASSERT_NE(at, std::string::npos) << text;
    const size_t sig = text.find(' ', text.find(' ', at) + 1) + 20;  // inside the signature bytes
    text[sig] = text[sig] == 'A' ? 'B' : 'A';
    WriteFileBytes(path, text);
  }
  CtlResult r = Ctl({"audit", "--evidence", evidence_});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_TRUE(absl::StrContains(
      r.err, absl::StrCat("evidence file skipped: ", dir, "/", ReceiptName(a), ": not a JSON object")))
      << r;
  EXPECT_TRUE(absl::StrContains(r.err, absl::StrCat(ReceiptName(b), ": its checkpoint does not verify"))) << r;
  EXPECT_TRUE(absl::StrContains(r.out, "1 saved checkpoints and 1 receipts")) << r;
  EXPECT_TRUE(absl::StrContains(r.out, "2 evidence file(s) skipped as corrupt")) << r;
  (void)c;
}

TEST_F(EvidenceTest, ReceiptWhoseCheckpointDoesNotVerifyIsNotStored) {
  Register("first", evidence_);
  const std::string dir = OriginDir(evidence_);
  ASSERT_EQ(Receipts(dir).size(), 1u);
  // The member pinned another key than the one this server signs with.
  fs::remove(dir + "/operator.pub");
  ASSERT_OK(crypto::WritePublicKeyFile(dir + "/operator.pub", crypto::PrivateKey::Generate().public_key()));
  const uint64_t position = Register("second", evidence_);
  EXPECT_TRUE(absl::StrContains(last_.err, absl::StrCat("receipt for position ", position,
                                                        " NOT saved as evidence: its checkpoint does not verify")))
      << last_;
  EXPECT_EQ(Receipts(dir).size(), 1u);
  EXPECT_FALSE(fs::exists(absl::StrCat(dir, "/", ReceiptName(position))));
}

TEST_F(EvidenceTest, EvidenceWriteFailureIsAWarningNotAFailedSubmission) {
  const std::string blocked = root_ + "/not-a-directory";
  WriteFileBytes(blocked, "x");
  const uint64_t position = Register("member", blocked);  // Register expects exit 0
  EXPECT_TRUE(absl::StrContains(
      last_.err, absl::StrCat("receipt for position ", position, " not saved as evidence: cannot create")))
      << last_;
  // Nothing saved there: audit with only that evidence has nothing to check.
  CtlResult r = Ctl({"audit", "--evidence", blocked});
  EXPECT_TRUE(Failed(r, 1, "nothing to audit")) << r;
  // An empty --evidence is a usage error, before or after the command.
  EXPECT_TRUE(Failed(Ctl({"--evidence=", "audit"}), 2, "--evidence must not be empty"));
  EXPECT_TRUE(Failed(Ctl({"audit", "--evidence="}), 2, "--evidence must not be empty"));
  EXPECT_TRUE(Failed(Ctl({"audit", "--evidence", blocked, "--rebuild"}), 2, "--rebuild needs --state DIR"));
}

}  // namespace
}  // namespace ledger::testing
