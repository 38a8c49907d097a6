// Tests for ledger/witness/cosignature and policy: verifier keys, C2SP
// cosignature/v1 lines written out from the spec, and tlog-policy quorums.
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/crypto/sha256.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/witness/cosignature.h"
#include "ledger/witness/policy.h"

namespace ledger::witness {
namespace {

using crypto::Base64Encode;
using crypto::PrivateKey;

constexpr char kEmDash[] = "\xE2\x80\x94";
constexpr char kOrigin[] = "decision-ledger.example/log";

PrivateKey Key(char seed) { return *PrivateKey::FromSeed(std::string(32, seed)); }

merkle::Checkpoint Example(uint64_t size = 7) {
  merkle::Checkpoint c{kOrigin, size, {}};
  c.root[0] = static_cast<uint8_t>(size);
  return c;
}

std::string LogNote(uint64_t size = 7) {
  return merkle::SignCheckpoint(Example(size), kOrigin, Key(1));
}

std::string LogVkey() {
  return MakeVerifierKey(kOrigin, kNoteEd25519, Key(1).public_key()).text;
}

std::string WitnessVkey(std::string_view name, char seed) {
  return MakeVerifierKey(name, kCosignatureV1Ed25519, Key(seed).public_key()).text;
}

std::string Cosigned(std::string note, std::string_view name, char seed, uint64_t time) {
  return AddSignatureLines(note, Cosign(merkle::CheckpointText(Example()), name, Key(seed), time));
}

TEST(VerifierKey, GoSumdbExampleParses) {
  // The verifier key of golang.org/x/mod/sumdb/note's documentation, and the
  // note it signs there.
  absl::StatusOr<VerifierKey> key =
      ParseVerifierKey("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW");
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->name, "PeterNeumann");
  EXPECT_EQ(key->type, kNoteEd25519);
  absl::StatusOr<merkle::SignedNote> note = merkle::ParseSignedNote(
      "If you think cryptography is the answer to your problem,\n"
      "then you don't know what your problem is.\n"
      "\n"
      "\xE2\x80\x94 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n");
  ASSERT_TRUE(note.ok()) << note.status();
  ASSERT_EQ(note->signatures.size(), 1u);
  EXPECT_EQ(note->signatures[0].blob.substr(0, 4), key->key_id);
  EXPECT_TRUE(crypto::VerifySignature(key->key, note->text, note->signatures[0].blob.substr(4)));
}

TEST(VerifierKey, RoundTripsAndRefusesDamage) {
  std::string text = WitnessVkey("witness.example/w1", 2);
  absl::StatusOr<VerifierKey> key = ParseVerifierKey(text);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->text, text);
  EXPECT_EQ(key->type, kCosignatureV1Ed25519);
  // Key ID from the spec: SHA-256(name || "\n" || 0x04 || key)[:4].
  EXPECT_EQ(key->key_id, crypto::AsBytes(crypto::Sha256(
                             {"witness.example/w1", "\n", "\x04", Key(2).public_key().raw()}))
                             .substr(0, 4));
  std::string renamed = "witness.example/w2" + text.substr(text.find('+'));
  EXPECT_EQ(ParseVerifierKey(renamed).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseVerifierKey("no-plus-signs").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseVerifierKey("n+zzzzzzzz+AQ==").status().code(), absl::StatusCode::kInvalidArgument);
  std::string bad_type = MakeVerifierKey("n", 0x02, Key(2).public_key()).text;
  EXPECT_EQ(ParseVerifierKey(bad_type).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Cosignature, MatchesTheSpecByteForByte) {
  const uint64_t time = 1679315147;
  std::string line = Cosign(merkle::CheckpointText(Example()), "witness.example/w1", Key(2), time);
  // Written out from c2sp.org/tlog-cosignature: key ID || u64 BE time || sig
  // over "cosignature/v1\ntime <t>\n" || checkpoint text.
  std::string message = "cosignature/v1\ntime 1679315147\n" + merkle::CheckpointText(Example());
  std::string id(crypto::AsBytes(crypto::Sha256(
                      {"witness.example/w1", "\n", "\x04", Key(2).public_key().raw()}))
                      .substr(0, 4));
  std::string be_time("\x00\x00\x00\x00\x64\x18\x50\xcb", 8);
  EXPECT_EQ(line, std::string(kEmDash) + " witness.example/w1 " +
                      Base64Encode(id + be_time + Key(2).Sign(message)) + "\n");

  absl::StatusOr<merkle::SignedNote> note =
      merkle::ParseSignedNote(AddSignatureLines(LogNote(), line));
  ASSERT_TRUE(note.ok()) << note.status();
  absl::StatusOr<Cosignature> found =
      FindCosignature(*note, *ParseVerifierKey(WitnessVkey("witness.example/w1", 2)));
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->timestamp, time);
}

TEST(Cosignature, WrongKeyOrChangedTextDoesNotVerify) {
  std::string line = Cosign(merkle::CheckpointText(Example(8)), "w1", Key(2), 10);
  // Cosigned size 8 but attached to a note of size 7.
  absl::StatusOr<merkle::SignedNote> note =
      merkle::ParseSignedNote(AddSignatureLines(LogNote(7), line));
  ASSERT_TRUE(note.ok());
  EXPECT_EQ(FindCosignature(*note, *ParseVerifierKey(WitnessVkey("w1", 2))).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(FindCosignature(*note, *ParseVerifierKey(WitnessVkey("w1", 3))).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(Cosignature, AddSignatureLinesSkipsDuplicates) {
  std::string line = Cosign(merkle::CheckpointText(Example()), "w1", Key(2), 10);
  std::string once = AddSignatureLines(LogNote(), line);
  EXPECT_EQ(AddSignatureLines(once, line), once);
  EXPECT_NE(once, LogNote());
}

std::string ThreeWitnessPolicy(std::string_view quorum_lines) {
  return "# three witnesses\nlog " + LogVkey() + " http://log.example\n" +
         "witness w1 " + WitnessVkey("w1", 2) + " http://127.0.0.1:1\n" +
         "witness w2 " + WitnessVkey("w2", 3) + "\n" +
         "  witness\tw3 " + WitnessVkey("w3", 4) + "  \n\n" + std::string(quorum_lines);
}

TEST(Policy, TwoOfThreeQuorumAndItsTime) {
  absl::StatusOr<Policy> policy = Policy::Parse(ThreeWitnessPolicy("group g 2 w1 w2 w3\nquorum g\n"));
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->witnesses().size(), 3u);
  EXPECT_EQ(policy->witnesses()[0].url, "http://127.0.0.1:1");
  EXPECT_EQ(policy->QuorumText(), "2 of {w1, w2, w3}");

  std::string one = Cosigned(LogNote(), "w1", 2, 300);
  absl::StatusOr<WitnessedCheckpoint> checked = policy->Check(one);
  EXPECT_EQ(checked.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(checked.status().message().find("cosigned by: w1"), std::string::npos);

  std::string three = Cosigned(Cosigned(one, "w2", 3, 100), "w3", 4, 200);
  checked = policy->Check(three);
  ASSERT_TRUE(checked.ok()) << checked.status();
  EXPECT_EQ(checked->cosignatures.size(), 3u);
  EXPECT_EQ(checked->quorum_time, 200u);  // w2 at 100 and w3 at 200 made the quorum
  EXPECT_EQ(checked->checkpoint.size, 7u);
}

TEST(Policy, NestedGroupsAllAndAny) {
  absl::StatusOr<Policy> policy = Policy::Parse(
      ThreeWitnessPolicy("group a any w1 w2\ngroup both all a w3\nquorum both\n"));
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_FALSE(policy->Satisfied({"w1", "w2"}));
  EXPECT_TRUE(policy->Satisfied({"w2", "w3"}));
  EXPECT_FALSE(policy->Satisfied({"w3"}));
}

TEST(Policy, QuorumNoneNeedsOnlyTheLog) {
  absl::StatusOr<Policy> policy = Policy::Parse("log " + LogVkey() + "\nquorum none\n");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_FALSE(policy->requires_cosignatures());
  EXPECT_TRUE(policy->Check(LogNote()).ok());
  std::string forged = merkle::SignCheckpoint(Example(), kOrigin, Key(9));
  EXPECT_EQ(policy->Check(forged).status().code(), absl::StatusCode::kUnauthenticated);
  std::string other_origin = merkle::SignCheckpoint(
      merkle::Checkpoint{"other.example/log", 1, {}}, "other.example/log", Key(1));
  EXPECT_EQ(policy->Check(other_origin).status().code(), absl::StatusCode::kNotFound);
}

TEST(Policy, ParseErrorsNameTheLine) {
  struct Case {
    std::string text;
    std::string says;
  };
  const Case cases[] = {
      {"log " + LogVkey() + "\n", "no quorum line"},
      {ThreeWitnessPolicy("quorum g\n"), "line 7: quorum names g"},
      {ThreeWitnessPolicy("group g 4 w1 w2 w3\nquorum g\n"), "threshold"},
      {ThreeWitnessPolicy("group g 0 w1\nquorum g\n"), "threshold"},
      {ThreeWitnessPolicy("group g any w1 w1\nquorum g\n"), "listed twice"},
      {ThreeWitnessPolicy("group none any w1\nquorum w1\n"), "reserved"},
      {ThreeWitnessPolicy("quorum w1\nquorum w2\n"), "second quorum"},
      {ThreeWitnessPolicy("witness w1 " + WitnessVkey("w9", 9) + "\nquorum w1\n"), "already defined"},
      {ThreeWitnessPolicy("witness w9 " + WitnessVkey("w9", 2) + "\nquorum w1\n"), "duplicate witness key"},
      {"witness w1 " + LogVkey() + "\nquorum w1\n", "type 0x04"},
      {"log " + WitnessVkey("w1", 2) + "\nquorum none\n", "type 0x01"},
      {"frobnicate\nquorum none\n", "line 1: unknown keyword"},
      {"quorum none\r\n", "control character"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Policy> policy = Policy::Parse(c.text);
    ASSERT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_NE(policy.status().message().find(c.says), std::string::npos)
        << policy.status().message() << " lacks " << c.says;
  }
  EXPECT_EQ(Policy::Load("/nonexistent/policy").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace ledger::witness
