// The witness (ledger/witness/witness.h) against real trees, real Ed25519
// keys and a real data directory: every tlog-witness v1 answer, the key and
// the state across reopening, forks and rollbacks refused.
#include "ledger/witness/witness.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "ledger/crypto/sha256.h"
#include "ledger/witness/cosignature.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"
#include "tests/support/witness_fixture.h"

namespace ledger::witness {
namespace {

using testing::AddCheckpointBody;
using testing::ReadFileBytes;
using testing::TempDir;
using testing::TestLog;
using testing::TestTree;
using testing::WriteFileBytes;

constexpr uint64_t kNow = 1'700'000'000;
constexpr char kName[] = "witness.example/regulator";

class WitnessTest : public ::testing::Test {
 protected:
  WitnessTest() : log_("example.test/ledger"), other_log_("example.test/other") {
    for (int i = 0; i < 20; ++i) tree_.Append("leaf " + std::to_string(i));
    // A fork: the first 3 leaves in common, then different ones.
    for (int i = 0; i < 20; ++i) fork_.Append(i < 3 ? "leaf " + std::to_string(i) : "fork " + std::to_string(i));
    for (int i = 0; i < 5; ++i) other_tree_.Append("other " + std::to_string(i));
  }

  std::unique_ptr<Witness> Open(std::string name = kName) {
    auto w = Witness::Open(dir_.Path("witness"), name, {log_.vkey, other_log_.vkey}, [this] { return now_.load(); });
    EXPECT_TRUE(w.ok()) << w.status();
    return w.ok() ? *std::move(w) : nullptr;
  }

  // Submits `tree` at `size` with the proof from `old_size`.
  Witness::Response Submit(Witness& w, uint64_t old_size, const TestTree& tree, uint64_t size) {
    std::vector<merkle::Hash> proof = old_size == 0 ? std::vector<merkle::Hash>{} : tree.Proof(old_size, size);
    return w.AddCheckpoint(AddCheckpointBody(old_size, proof, log_.Checkpoint(tree, size)));
  }

  // Fails unless `r` is a 200 carrying a valid cosignature of `note` by `w`.
  void ExpectCosigned(const Witness& w, const Witness::Response& r, const std::string& note) {
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_FALSE(r.body.empty());
    EXPECT_EQ(r.body.back(), '\n');
    EXPECT_EQ(r.body.rfind("\xE2\x80\x94 " + std::string(kName) + " ", 0), 0u) << r.body;
    ASSERT_OK_AND_ASSIGN(merkle::SignedNote cosigned, merkle::ParseSignedNote(AddSignatureLines(note, r.body)));
    ASSERT_OK_AND_ASSIGN(Cosignature c, FindCosignature(cosigned, w.vkey()));
    EXPECT_EQ(c.timestamp, now_.load());
  }

  TempDir dir_{"witness-test", TempDir::Medium::kTmpfsIfAny};
  TestLog log_, other_log_;
  TestTree tree_, fork_, other_tree_;
  std::atomic<uint64_t> now_{kNow};
};

TEST_F(WitnessTest, NewDirectoryGetsAKeyAndAVkey) {
  auto w = Open();
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->vkey().name, kName);
  EXPECT_EQ(w->vkey().type, kCosignatureV1Ed25519);
  EXPECT_EQ(ReadFileBytes(dir_.Path("witness/witness.vkey")), w->vkey().text + "\n");
  ASSERT_OK_AND_ASSIGN(VerifierKey parsed, ParseVerifierKey(w->vkey().text));
  EXPECT_EQ(parsed.key_id, w->vkey().key_id);
  struct stat st {};
  ASSERT_EQ(::stat(dir_.Path("witness/witness.key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(WitnessTest, ReopeningKeepsTheKeyAndRefusesAnotherName) {
  std::string vkey;
  {
    auto w = Open();
    ASSERT_NE(w, nullptr);
    vkey = w->vkey().text;
    // Not twice at once: two witnesses on one state could each cosign a fork.
    auto second = Witness::Open(dir_.Path("witness"), kName, {log_.vkey});
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition) << second.status();
    EXPECT_NE(second.status().message().find("another ledger-witness is using"), absl::string_view::npos) << second.status();
  }
  auto again = Open();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->vkey().text, vkey);
  again.reset();
  auto renamed = Witness::Open(dir_.Path("witness"), "witness.example/someone-else", {log_.vkey});
  ASSERT_FALSE(renamed.ok());
  EXPECT_EQ(renamed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(renamed.status().message().find(kName), absl::string_view::npos) << renamed.status();
}

TEST_F(WitnessTest, BadConfigurationIsRefused) {
  EXPECT_EQ(Witness::Open(dir_.Path("w1"), "has space", {log_.vkey}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Witness::Open(dir_.Path("w2"), "a+b", {log_.vkey}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Witness::Open(dir_.Path("w3"), kName, {}).status().code(), absl::StatusCode::kInvalidArgument);
  VerifierKey witness_key = MakeVerifierKey("w", kCosignatureV1Ed25519, log_.key.public_key());
  EXPECT_EQ(Witness::Open(dir_.Path("w4"), kName, {witness_key}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(WitnessTest, CosignsAFirstCheckpointAndAdvancesWithProofs) {
  auto w = Open();
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->Latest(log_.origin)->size, 0u);
  Witness::Response r = Submit(*w, 0, tree_, 5);
  ExpectCosigned(*w, r, log_.Checkpoint(tree_, 5));
  EXPECT_EQ(w->Latest(log_.origin)->size, 5u);
  EXPECT_EQ(w->Latest(log_.origin)->root, tree_.Root(5));

  now_ = kNow + 7;
  ExpectCosigned(*w, Submit(*w, 5, tree_, 8), log_.Checkpoint(tree_, 8));
  ExpectCosigned(*w, Submit(*w, 8, tree_, 20), log_.Checkpoint(tree_, 20));
  // The same checkpoint again: cosigned again (empty proof, equal sizes).
  ExpectCosigned(*w, Submit(*w, 20, tree_, 20), log_.Checkpoint(tree_, 20));
  // Another origin has its own state.
  EXPECT_EQ(w->Latest(other_log_.origin)->size, 0u);
  EXPECT_FALSE(w->Latest("example.test/nobody").has_value());
}

TEST_F(WitnessTest, StateSurvivesReopening) {
  {
    auto w = Open();
    ASSERT_NE(w, nullptr);
    ASSERT_EQ(Submit(*w, 0, tree_, 9).status, 200);
  }
  auto w = Open();
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->Latest(log_.origin)->size, 9u);
  EXPECT_EQ(w->Latest(log_.origin)->root, tree_.Root(9));
  Witness::Response stale = Submit(*w, 0, tree_, 12);
  EXPECT_EQ(stale.status, 409);
  EXPECT_EQ(stale.body, "9\n");
  EXPECT_EQ(Submit(*w, 9, tree_, 12).status, 200);
}

TEST_F(WitnessTest, StaleOldSizeIs409WithTheStoredSize) {
  auto w = Open();
  ASSERT_NE(w, nullptr);
  ASSERT_EQ(Submit(*w, 0, tree_, 6).status, 200);
  for (uint64_t old_size : {0, 3, 7}) {
    Witness::Response r = Submit(*w, old_size, tree_, 10);
    EXPECT_EQ(r.status, 409) << old_size;
    EXPECT_EQ(r.content_type, "text/x.tlog.size");
    EXPECT_EQ(r.body, "6\n");
  }
  EXPECT_EQ(w->Latest(log_.origin)->size, 6u);
}

TEST_F(WitnessTest, UnknownOriginIs404) {
  auto w = Open();
  ASSERT_NE(w, nullptr);
  TestLog stranger("example.test/stranger");
  Witness::Response r = w->AddCheckpoint(AddCheckpointBody(0, {}, stranger.Checkpoint(tree_, 4)));
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_NE(r.body.find("example.test/stranger"), std::string::npos);
}

TEST_F(WitnessTest, NoValidTrustedSignatureIs403) {
  auto w = Open();
  ASSERT_NE(w, nullptr);
  // Signed under the right origin, by a key the witness does not trust.
  TestLog impostor(log_.origin);
  Witness::Response r = w->AddCheckpoint(AddCheckpointBody(0, {}, impostor.Checkpoint(tree_, 4)));
  EXPECT_EQ(r.status, 403) << r.body;
  // The trusted key's name and ID, a signature that does not verify.
  std::string note = log_.Checkpoint(tree_, 4);
  std::string tampered = log_.SignText(merkle::CheckpointText({log_.origin, 4, tree_.Root(5)}));
  std::string forged = tampered.substr(0, tampered.find("\n\n")) + note.substr(note.find("\n\n"));
  r = w->AddCheckpoint(AddCheckpointBody(0, {}, forged));
  EXPECT_EQ(r.status, 403) << r.body;
  // Unknown keys' lines are ignored beside a valid trusted one.
  std::string with_stranger = impostor.Checkpoint(tree_, 4);
  with_stranger = note + with_stranger.substr(with_stranger.find("\n\n") + 2);
  ExpectCosigned(*w, w->AddCheckpoint(AddCheckpointBody(0, {}, with_stranger)), with_stranger);
  EXPECT_EQ(w->Latest(log_.origin)->size, 4u);
}

TEST_F(WitnessTest, AnyTrustedKeyOfTheOriginWillDo) {
  TestLog rotated(log_.origin);
  auto w = Witness::Open(dir_.Path("witness"), kName, {log_.vkey, rotated.vkey}, [] { return kNow; });
  ASSERT_OK(w.status());
  std::string note = rotated.Checkpoint(tree_, 3);
  ExpectCosigned(**w, (*w)->AddCheckpoint(AddCheckpointBody(0, {}, note)), note);
}

TEST_F(WitnessTest, OldSizeBeyondTheCheckpointIs400) {
  auto w = Open();
  ASSERT_NE(w, nullptr);
  ASSERT_EQ(Submit(*w, 0, tree_, 8).status, 200);
  // Going backwards: old 8 (the stored size) and a smaller checkpoint.
  Witness::Response r = w->AddCheckpoint(AddCheckpointBody(8, {}, log_.Checkpoint(tree_, 5)));
  EXPECT_EQ(r.status, 400) << r.body;
  // ... or claiming the smaller one is the old one: 409, stored size 8.
  r = Submit(*w, 5, tree_, 5);
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(r.body, "8\n");
  EXPECT_EQ(w->Latest(log_.origin)->size, 8u);
}

TEST_F(WitnessTest, MalformedBodiesAre400) {
  auto w = Open();
  ASSERT_NE(w, nullptr);
  const std::string note = log_.Checkpoint(tree_, 4);
  const std::string hash = crypto::Base64Encode(merkle::AsBytes(tree_.Root(1)));
  const std::vector<std::string> bodies = {
      "",
      note,                                    // no old line
      "old 0\n" + note,                        // no empty line
      "old 00\n\n" + note,                     // leading zero
      "old 01\n\n" + note,
      "old -1\n\n" + note,
      "old +1\n\n" + note,
      "old  1\n\n" + note,
      "old 1 \n\n" + note,
      "Old 0\n\n" + note,
      "old 18446744073709551616\n\n" + note,   // 2^64
      "old 0\nnot base64!\n\n" + note,
      "old 0\n" + hash.substr(0, 40) + "\n\n" + note,  // not 32 bytes
      "old 0\r\n\n" + note,
      "old 0\n\n" + note.substr(0, note.size() - 1),  // unterminated signature line
      "old 0\n\nexample.test/ledger\n04\n" + hash + "\n\n" + note.substr(note.find("\xE2\x80\x94")),
  };
  for (const std::string& body : bodies) {
    Witness::Response r = w->AddCheckpoint(body);
    EXPECT_EQ(r.status, 400) << "body:\n" << body << "\nanswer: " << r.body;
  }
  // 63 proof lines are allowed (then the proof is wrong: 422); 64 are not.
  std::string proof63, proof64;
  for (int i = 0; i < 63; ++i) proof63 += hash + "\n";
  proof64 = proof63 + hash + "\n";
  ASSERT_EQ(Submit(*w, 0, tree_, 2).status, 200);
  EXPECT_EQ(w->AddCheckpoint("old 2\n" + proof63 + "\n" + note).status, 422);
  EXPECT_EQ(w->AddCheckpoint("old 2\n" + proof64 + "\n" + note).status, 400);
  EXPECT_EQ(w->Latest(log_.origin)->size, 2u);
}

TEST_F(WitnessTest, OversizedBodyIs413) {
  auto w = Open();
  ASSERT_NE(w, nullptr);
  std::string body = AddCheckpointBody(0, {}, log_.Checkpoint(tree_, 4));
  body.resize(Witness::kMaxBodyBytes + 1, 'x');
  EXPECT_EQ(w->AddCheckpoint(body).status, 413);
}

TEST_F(WitnessTest, SameSizeDifferentRootIs409) {
  auto w = Open();
  ASSERT_NE(w, nullptr);
  ASSERT_EQ(Submit(*w, 0, tree_, 7).status, 200);
  Witness::Response r = Submit(*w, 7, fork_, 7);
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(r.content_type, "text/x.tlog.size");
  EXPECT_EQ(w->Latest(log_.origin)->root, tree_.Root(7));
  // The split view is kept: both log-signed notes for size 7, in one file.
  std::vector<std::string> evidence;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.Path("witness/evidence"))) {
    evidence.push_back(ReadFileBytes(entry.path().string()));
  }
  ASSERT_EQ(evidence.size(), 1u);
  EXPECT_EQ(evidence[0], log_.Checkpoint(tree_, 7) + "\n" + log_.Checkpoint(fork_, 7));
  EXPECT_EQ(Submit(*w, 7, fork_, 7).status, 409);  // asked again: the same file
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_.Path("witness/evidence")),
                          std::filesystem::directory_iterator()),
            1);
  // Size 0: the empty tree has one root.
  auto fresh = Witness::Open(dir_.Path("fresh"), kName, {log_.vkey}, [] { return kNow; });
  ASSERT_OK(fresh.status());
  std::string bogus_empty = log_.SignText(merkle::CheckpointText({log_.origin, 0, tree_.Root(1)}));
  EXPECT_EQ((*fresh)->AddCheckpoint(AddCheckpointBody(0, {}, bogus_empty)).status, 409);
  std::string empty = log_.SignText(merkle::CheckpointText({log_.origin, 0, merkle::EmptyRoot()}));
  EXPECT_EQ((*fresh)->AddCheckpoint(AddCheckpointBody(0, {}, empty)).status, 200);
}

TEST_F(WitnessTest, BadProofsAre422) {
  auto w = Open();
  ASSERT_NE(w, nullptr);
  // Old size 0: the proof must be empty.
  EXPECT_EQ(w->AddCheckpoint(AddCheckpointBody(0, tree_.Proof(2, 5), log_.Checkpoint(tree_, 5))).status, 422);
  ASSERT_EQ(Submit(*w, 0, tree_, 5).status, 200);
  // Equal sizes: the proof must be empty.
  EXPECT_EQ(w->AddCheckpoint(AddCheckpointBody(5, tree_.Proof(2, 5), log_.Checkpoint(tree_, 5))).status, 422);
  // A proof for other sizes, a truncated one, a flipped hash, none at all.
  EXPECT_EQ(w->AddCheckpoint(AddCheckpointBody(5, tree_.Proof(4, 9), log_.Checkpoint(tree_, 9))).status, 422);
  std::vector<merkle::Hash> proof = tree_.Proof(5, 9);
  std::vector<merkle::Hash> truncated(proof.begin(), proof.end() - 1);
  EXPECT_EQ(w->AddCheckpoint(AddCheckpointBody(5, truncated, log_.Checkpoint(tree_, 9))).status, 422);
  proof[0][0] ^= 1;
  EXPECT_EQ(w->AddCheckpoint(AddCheckpointBody(5, proof, log_.Checkpoint(tree_, 9))).status, 422);
  EXPECT_EQ(w->AddCheckpoint(AddCheckpointBody(5, {}, log_.Checkpoint(tree_, 9))).status, 422);
  EXPECT_EQ(w->Latest(log_.origin)->size, 5u);
  EXPECT_EQ(Submit(*w, 5, tree_, 9).status, 200);
}

TEST_F(WitnessTest, AForkIsNeverCosigned) {
  auto w = Open();
  ASSERT_NE(w, nullptr);
  ASSERT_EQ(Submit(*w, 0, tree_, 5).status, 200);
  // The fork's own, internally valid, proof from size 5 does not lead from
  // the root the witness holds.
  Witness::Response r = Submit(*w, 5, fork_, 8);
  EXPECT_EQ(r.status, 422) << r.body;
  // Nor does the honest proof with the fork's root.
  r = w->AddCheckpoint(AddCheckpointBody(5, tree_.Proof(5, 8), log_.Checkpoint(fork_, 8)));
  EXPECT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(w->Latest(log_.origin)->root, tree_.Root(5));
  // Below the fork point both agree, but the witness is already past it.
  EXPECT_EQ(Submit(*w, 0, fork_, 3).status, 409);
  ExpectCosigned(*w, Submit(*w, 5, tree_, 8), log_.Checkpoint(tree_, 8));
}

TEST_F(WitnessTest, ExtensionLinesAreCosigned) {
  auto w = Open();
  ASSERT_NE(w, nullptr);
  std::string note = log_.SignText(merkle::CheckpointText({log_.origin, 3, tree_.Root(3)}) + "extension line\n");
  Witness::Response r = w->AddCheckpoint(AddCheckpointBody(0, {}, note));
  ExpectCosigned(*w, r, note);
  // The cosignature covers the extension line: moved to the bare
  // checkpoint it does not verify.
  ASSERT_OK_AND_ASSIGN(merkle::SignedNote bare,
                       merkle::ParseSignedNote(AddSignatureLines(log_.Checkpoint(tree_, 3), r.body)));
  EXPECT_EQ(FindCosignature(bare, w->vkey()).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(WitnessTest, CorruptStateRefusesToOpen) {
  {
    auto w = Open();
    ASSERT_NE(w, nullptr);
    ASSERT_EQ(Submit(*w, 0, tree_, 5).status, 200);
  }
  const std::string path =
      dir_.Path("witness/state/" + crypto::ToHex(crypto::Sha256(std::string_view(log_.origin))));
  // The state is the log-signed checkpoint last cosigned.
  std::string state = ReadFileBytes(path);
  ASSERT_EQ(state, log_.Checkpoint(tree_, 5));
  WriteFileBytes(path, state.substr(0, state.size() - 3));
  auto w = Witness::Open(dir_.Path("witness"), kName, {log_.vkey});
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), absl::StatusCode::kDataLoss) << w.status();
  EXPECT_NE(w.status().message().find(path), absl::string_view::npos) << w.status();
}

// Many threads, two forks signed by the same log key, racing: the witness's
// answers (collected) never hold two roots for one size, and its cosigned
// sizes only grow along one fork.
TEST_F(WitnessTest, ConcurrentForksNeverBothCosigned) {
  auto w = Open();
  ASSERT_NE(w, nullptr);
  struct Cosigned {
    uint64_t size;
    merkle::Hash root;
    int fork;
  };
  std::mutex mu;
  std::vector<Cosigned> cosigned;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      const TestTree& tree = t % 2 == 0 ? tree_ : fork_;
      uint64_t old_size = 0;
      for (uint64_t size = 1 + t % 3; size <= 20; size += 1 + (size + t) % 3) {
        for (int attempt = 0; attempt < 3; ++attempt) {
          uint64_t from = std::min(old_size, size);
          Witness::Response r = Submit(*w, from, tree, size);
          if (r.status == 409 && r.content_type == "text/x.tlog.size") {
            old_size = std::stoull(r.body);
            continue;
          }
          if (r.status == 200) {
            std::lock_guard<std::mutex> lock(mu);
            cosigned.push_back({size, tree.Root(size), t % 2});
            old_size = size;
          }
          break;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_FALSE(cosigned.empty());
  std::map<uint64_t, merkle::Hash> root_at;
  std::set<int> forks_past_3;
  for (const Cosigned& c : cosigned) {
    auto [it, inserted] = root_at.emplace(c.size, c.root);
    EXPECT_EQ(it->second, c.root) << "two roots cosigned for size " << c.size;
    if (c.size > 3) forks_past_3.insert(c.fork);
  }
  EXPECT_LE(forks_past_3.size(), 1u);
}

}  // namespace
}  // namespace ledger::witness
