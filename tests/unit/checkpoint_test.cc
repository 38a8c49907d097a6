// Tests for ledger/merkle/checkpoint: the C2SP tlog-checkpoint signed-note
// format, byte for byte, and OpenCheckpoint's strictness.
#include "ledger/merkle/checkpoint.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/crypto/sha256.h"

namespace ledger::merkle {
namespace {

using crypto::Base64Decode;
using crypto::Base64Encode;
using crypto::PrivateKey;
using crypto::PublicKey;

constexpr char kEmDash[] = "\xE2\x80\x94";  // U+2014
constexpr char kName[] = "decision-ledger.example/log";

PrivateKey OperatorKey() {
  return *PrivateKey::FromSeed(std::string(32, '\x07'));
}
PrivateKey OtherKey() { return *PrivateKey::FromSeed(std::string(32, '\x09')); }

// Key hash written out from the spec, independently of the implementation.
std::string SpecKeyHash(std::string_view name, const PublicKey& key) {
  return std::string(
      crypto::AsBytes(crypto::Sha256({name, "\n", "\x01", key.raw()})).substr(0, 4));
}

// A signature line as c2sp.org/signed-note defines it.
std::string SigLine(std::string_view text, std::string_view name, const PrivateKey& key) {
  return std::string(kEmDash) + " " + std::string(name) + " " +
         Base64Encode(SpecKeyHash(name, key.public_key()) + key.Sign(text)) + "\n";
}

// Signs arbitrary text as a note, so malformed bodies can carry a valid
// signature (strictness must not depend on the signature failing).
std::string SignText(std::string_view text, std::string_view name, const PrivateKey& key) {
  return std::string(text) + "\n" + SigLine(text, name, key);
}

Hash SequentialRoot() {
  Hash root;
  for (size_t i = 0; i < root.size(); ++i) root[i] = static_cast<uint8_t>(i);
  return root;
}

Checkpoint Example() { return Checkpoint{kName, 1234, SequentialRoot()}; }

absl::StatusCode OpenCode(std::string_view note, std::string_view name = kName,
                          const PublicKey& key = OperatorKey().public_key()) {
  return OpenCheckpoint(note, name, key).status().code();
}

TEST(CheckpointTest, RoundTrip) {
  PrivateKey key = OperatorKey();
  for (const Checkpoint& cp :
       {Example(), Checkpoint{"o", 0, crypto::Sha256("")},
        Checkpoint{"example.com/a b c", UINT64_MAX, crypto::Sha256("x")}}) {
    std::string note = SignCheckpoint(cp, kName, key);
    absl::StatusOr<Checkpoint> opened = OpenCheckpoint(note, kName, key.public_key());
    ASSERT_TRUE(opened.ok()) << opened.status() << "\n" << note;
    EXPECT_EQ(opened->origin, cp.origin);
    EXPECT_EQ(opened->size, cp.size);
    EXPECT_EQ(opened->root, cp.root);
  }
}

TEST(CheckpointTest, ExactTextFormat) {
  EXPECT_EQ(CheckpointText(Example()),
            "decision-ledger.example/log\n"
            "1234\n"
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n");
  EXPECT_EQ(CheckpointText(Checkpoint{"o", 0, crypto::Sha256("")}),
            "o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n");
  EXPECT_EQ(CheckpointText(Checkpoint{"o", UINT64_MAX, crypto::Sha256("")}),
            "o\n18446744073709551615\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n");
}

TEST(CheckpointTest, ExactSignedNoteFormat) {
  PrivateKey key = OperatorKey();
  const std::string text = CheckpointText(Example());
  std::string note = SignCheckpoint(Example(), kName, key);
  // text, blank line, "— <name> <base64(keyhash || sig)>\n"; nothing else.
  std::string want = text + "\n" + "\xE2\x80\x94 decision-ledger.example/log " +
                     Base64Encode(SpecKeyHash(kName, key.public_key()) + key.Sign(text)) +
                     "\n";
  EXPECT_EQ(note, want);
  // 4 + 64 bytes base64 = 92 characters.
  std::vector<std::string> lines = absl::StrSplit(note, '\n');
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[3], "");
  EXPECT_EQ(lines[4].size(), 3 + 1 + strlen(kName) + 1 + 92);
  EXPECT_EQ(lines[5], "");
  // Deterministic.
  EXPECT_EQ(SignCheckpoint(Example(), kName, key), note);
}

TEST(CheckpointTest, KeyHashAndVerifierKeyFollowSpec) {
  PrivateKey key = OperatorKey();
  std::string vkey = VerifierKey(kName, key.public_key());
  std::vector<std::string> parts = absl::StrSplit(vkey, '+');
  ASSERT_EQ(parts.size(), 3u) << vkey;
  EXPECT_EQ(parts[0], kName);
  EXPECT_EQ(parts[1], crypto::ToHex(SpecKeyHash(kName, key.public_key())));
  EXPECT_EQ(parts[1].size(), 8u);
  std::string material;
  ASSERT_TRUE(Base64Decode(parts[2], &material));
  EXPECT_EQ(material, std::string("\x01") + std::string(key.public_key().raw()));

  // The key hash leads the signature blob in the note.
  std::string note = SignCheckpoint(Example(), kName, key);
  std::string blob;
  std::string b64 = note.substr(note.rfind(' ') + 1);
  b64.pop_back();  // newline
  ASSERT_TRUE(Base64Decode(b64, &blob));
  ASSERT_EQ(blob.size(), 68u);
  EXPECT_EQ(blob.substr(0, 4), SpecKeyHash(kName, key.public_key()));
  EXPECT_TRUE(crypto::VerifySignature(key.public_key(), CheckpointText(Example()),
                                      blob.substr(4)));
}

// The example key and note of golang.org/x/mod/sumdb/note (note_test.go),
// the reference implementation of signed notes.
TEST(CheckpointTest, GoSumdbNoteVector) {
  const std::string vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
  const std::string skey_material = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
  const std::string text =
      "If you think cryptography is the answer to your problem,\n"
      "then you don't know what your problem is.\n";
  const std::string peter_sig =
      "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=";

  std::string seed;
  ASSERT_TRUE(Base64Decode(skey_material, &seed));
  ASSERT_EQ(seed.size(), 33u);
  ASSERT_EQ(seed[0], '\x01');
  absl::StatusOr<PrivateKey> key = PrivateKey::FromSeed(seed.substr(1));
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(VerifierKey("PeterNeumann", key->public_key()), vkey);
  EXPECT_EQ(SignText(text, "PeterNeumann", *key),
            text + "\n" + kEmDash + " PeterNeumann " + peter_sig + "\n");

  // Only the public key: EnochRoot's co-signature from the same test file.
  std::string enoch_material;
  ASSERT_TRUE(Base64Decode("ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop", &enoch_material));
  absl::StatusOr<PublicKey> enoch = PublicKey::FromRaw(enoch_material.substr(1));
  ASSERT_TRUE(enoch.ok());
  EXPECT_EQ(VerifierKey("EnochRoot", *enoch),
            "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop");
  std::string enoch_blob;
  ASSERT_TRUE(Base64Decode(
      "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=",
      &enoch_blob));
  EXPECT_EQ(crypto::ToHex(enoch_blob.substr(0, 4)), "af0cfe78");
  EXPECT_TRUE(crypto::VerifySignature(*enoch, text, enoch_blob.substr(4)));

  // A validly signed note that is not a checkpoint (two body lines).
  std::string note = text + "\n" + kEmDash + " PeterNeumann " + peter_sig + "\n";
  EXPECT_EQ(OpenCode(note, "PeterNeumann", key->public_key()),
            absl::StatusCode::kInvalidArgument);
}

TEST(CheckpointTest, TamperedContentIsUnauthenticated) {
  PrivateKey key = OperatorKey();
  Checkpoint cp = Example();
  const std::string sig = SigLine(CheckpointText(cp), kName, key);

  Checkpoint bigger = cp;
  bigger.size++;
  EXPECT_EQ(OpenCode(CheckpointText(bigger) + "\n" + sig), absl::StatusCode::kUnauthenticated);
  Checkpoint other_root = cp;
  other_root.root[31] ^= 1;
  EXPECT_EQ(OpenCode(CheckpointText(other_root) + "\n" + sig),
            absl::StatusCode::kUnauthenticated);
  Checkpoint other_origin = cp;
  other_origin.origin = "decision-ledger.example/log2";
  EXPECT_EQ(OpenCode(CheckpointText(other_origin) + "\n" + sig),
            absl::StatusCode::kUnauthenticated);
  // Sanity: the untampered note opens.
  EXPECT_EQ(OpenCode(CheckpointText(cp) + "\n" + sig), absl::StatusCode::kOk);
}

TEST(CheckpointTest, WrongKeyOrNameIsUnauthenticated) {
  PrivateKey key = OperatorKey();
  std::string note = SignCheckpoint(Example(), kName, key);
  // Verifying with another key: its key hash differs, so no line matches.
  EXPECT_EQ(OpenCode(note, kName, OtherKey().public_key()), absl::StatusCode::kUnauthenticated);
  // Verifying under another name.
  EXPECT_EQ(OpenCode(note, "other.example/log", key.public_key()),
            absl::StatusCode::kUnauthenticated);
  // Signed by another key under our name.
  EXPECT_EQ(OpenCode(SignCheckpoint(Example(), kName, OtherKey())),
            absl::StatusCode::kUnauthenticated);
  // Our key hash, but a signature by another key.
  std::string text = CheckpointText(Example());
  std::string forged = text + "\n" + kEmDash + " " + kName + " " +
                       Base64Encode(SpecKeyHash(kName, key.public_key()) +
                                    OtherKey().Sign(text)) +
                       "\n";
  EXPECT_EQ(OpenCode(forged), absl::StatusCode::kUnauthenticated);
  // Our key hash with a truncated signature.
  std::string short_sig = text + "\n" + kEmDash + " " + kName + " " +
                          Base64Encode(SpecKeyHash(kName, key.public_key()) +
                                       key.Sign(text).substr(0, 63)) +
                          "\n";
  EXPECT_EQ(OpenCode(short_sig), absl::StatusCode::kUnauthenticated);
  // A flipped bit in the signature.
  std::string sig_blob = SpecKeyHash(kName, key.public_key()) + key.Sign(text);
  sig_blob[10] ^= 1;
  EXPECT_EQ(OpenCode(text + "\n" + kEmDash + " " + kName + " " + Base64Encode(sig_blob) + "\n"),
            absl::StatusCode::kUnauthenticated);
}

TEST(CheckpointTest, CosignaturesByOtherKeysAreIgnored) {
  PrivateKey key = OperatorKey();
  PrivateKey witness = OtherKey();
  const std::string text = CheckpointText(Example());
  const std::string ours = SigLine(text, kName, key);
  const std::string theirs = SigLine(text, "witness.example/w1", witness);
  // A line in a key we do not know, with a signature of another length.
  const std::string unknown =
      absl::StrCat(kEmDash, " other.example/w2 ", Base64Encode("\x01\x02\x03\x04xyz"), "\n");

  for (const std::string& sigs :
       {ours + theirs, theirs + ours, unknown + ours + theirs, ours + ours}) {
    absl::StatusOr<Checkpoint> cp = OpenCheckpoint(text + "\n" + sigs, kName, key.public_key());
    ASSERT_TRUE(cp.ok()) << cp.status();
    EXPECT_EQ(cp->size, 1234u);
  }
  // The witness can check its own co-signature the same way.
  EXPECT_EQ(OpenCode(text + "\n" + ours + theirs, "witness.example/w1", witness.public_key()),
            absl::StatusCode::kOk);
  // Only co-signatures: ours is missing.
  EXPECT_EQ(OpenCode(text + "\n" + theirs + unknown), absl::StatusCode::kUnauthenticated);
  // As in the Go reference, a bad line claiming our key fails the note even
  // next to a good one.
  std::string bad_blob = SpecKeyHash(kName, key.public_key()) + key.Sign("something else");
  std::string bad = absl::StrCat(kEmDash, " ", kName, " ", Base64Encode(bad_blob), "\n");
  EXPECT_EQ(OpenCode(text + "\n" + ours + bad), absl::StatusCode::kUnauthenticated);
}

TEST(CheckpointTest, ExtensionLinesAreSignedButIgnored) {
  PrivateKey key = OperatorKey();
  std::string text = CheckpointText(Example()) + "extension line one\nanother one\n";
  absl::StatusOr<Checkpoint> cp = OpenCheckpoint(SignText(text, kName, key), kName,
                                                 key.public_key());
  ASSERT_TRUE(cp.ok()) << cp.status();
  EXPECT_EQ(cp->origin, kName);
  EXPECT_EQ(cp->size, 1234u);
  EXPECT_EQ(cp->root, SequentialRoot());
  // The signature covers them: dropping one breaks it.
  std::string note = SignText(text, kName, key);
  std::string dropped = note;
  dropped.erase(dropped.find("another one\n"), strlen("another one\n"));
  EXPECT_EQ(OpenCode(dropped), absl::StatusCode::kUnauthenticated);
}

// Every malformed note below carries a valid signature over its own text, so
// only the parser can be what rejects it.
TEST(CheckpointTest, MalformedBodiesAreInvalidArgument) {
  PrivateKey key = OperatorKey();
  const std::string root = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
  const std::string kBadTexts[] = {
      absl::StrCat(kName, "\n01234\n", root, "\n"),     // leading zero
      absl::StrCat(kName, "\n00\n", root, "\n"),        // leading zero
      absl::StrCat(kName, "\n+1234\n", root, "\n"),     // sign
      absl::StrCat(kName, "\n-1\n", root, "\n"),        //
      absl::StrCat(kName, "\n 1234\n", root, "\n"),     // space
      absl::StrCat(kName, "\n1234 \n", root, "\n"),     //
      absl::StrCat(kName, "\n0x10\n", root, "\n"),      // hex
      absl::StrCat(kName, "\n12a4\n", root, "\n"),      //
      absl::StrCat(kName, "\n\xd9\xa1\n", root, "\n"),  // Arabic-Indic digit one
      absl::StrCat(kName, "\n18446744073709551616\n", root, "\n"),  // 2^64
      absl::StrCat(kName, "\n1234\n", Base64Encode(std::string(31, 'r')), "\n"),
      absl::StrCat(kName, "\n1234\n", Base64Encode(std::string(33, 'r')), "\n"),
      absl::StrCat(kName, "\n1234\n", crypto::ToHex(crypto::Sha256("")), "\n"),
      absl::StrCat(kName, "\n1234\n", root.substr(0, 43), "\n"),  // no padding
      absl::StrCat(kName, "\n1234\n"),                            // two lines
      absl::StrCat(kName, "\n"),                                  // one line
      absl::StrCat("\n1234\n", root, "\n"),                       // empty origin
      absl::StrCat(kName, "\r\n1234\r\n", root, "\r\n"),          // CRLF
      absl::StrCat(kName, "\t\n1234\n", root, "\n"),              // control char
      absl::StrCat(kName, "\xff\n1234\n", root, "\n"),            // not UTF-8
      absl::StrCat(kName, "\xc0\xaf\n1234\n", root, "\n"),        // overlong UTF-8
  };
  for (const std::string& text : kBadTexts) {
    absl::StatusOr<Checkpoint> cp = OpenCheckpoint(SignText(text, kName, key), kName,
                                                   key.public_key());
    EXPECT_EQ(cp.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
  // The largest size parses.
  absl::StatusOr<Checkpoint> max = OpenCheckpoint(
      SignText(absl::StrCat(kName, "\n18446744073709551615\n", root, "\n"), kName, key),
      kName, key.public_key());
  ASSERT_TRUE(max.ok()) << max.status();
  EXPECT_EQ(max->size, UINT64_MAX);
}

TEST(CheckpointTest, MalformedNotesAreInvalidArgument) {
  PrivateKey key = OperatorKey();
  const std::string text = CheckpointText(Example());
  const std::string sig = SigLine(text, kName, key);
  const std::string note = text + "\n" + sig;
  ASSERT_EQ(OpenCode(note), absl::StatusCode::kOk);
  std::string sig_b64 = sig.substr(sig.rfind(' ') + 1);
  sig_b64.pop_back();

  std::string crlf = note;
  for (size_t pos = 0; (pos = crlf.find('\n', pos)) != std::string::npos; pos += 2) {
    crlf.insert(pos, "\r");
  }
  const std::string kBad[] = {
      "",
      text,                                    // no signatures, no blank line
      text + "\n",                             // no signature lines
      text + sig,                              // missing blank line
      text + "\n\n" + sig,                     // two blank lines
      text + "\n" + sig + "\n",                // blank line after signatures
      text + "\n" + sig.substr(0, sig.size() - 1),  // no final newline
      note + "trailing garbage",                    //
      note + "trailing garbage\n",                  // not a signature line
      note + " \n",                                 //
      crlf,                                         // CRLF line endings
      text + "\n" + "-- " + kName + " " + sig_b64 + "\n",         // ASCII dashes
      text + "\n" + "\xE2\x80\x93 " + kName + " " + sig_b64 + "\n",  // en dash
      text + "\n" + kEmDash + kName + " " + sig_b64 + "\n",       // no space after dash
      text + "\n" + kEmDash + " " + kName + sig_b64 + "\n",       // no space before sig
      text + "\n" + kEmDash + " " + kName + "  " + sig_b64 + "\n",  // two spaces
      text + "\n" + kEmDash + " " + kName + " " + sig_b64 + " \n",  // trailing space
      text + "\n" + kEmDash + "  " + sig_b64 + "\n",                // empty name
      text + "\n" + kEmDash + " a+b " + sig_b64 + "\n",             // '+' in name
      text + "\n" + kEmDash + " " + kName + " " + sig_b64.substr(1) + "\n",  // bad base64
      text + "\n" + kEmDash + " " + kName + " " + Base64Encode("1234") + "\n",  // too short
      text + "\n" + kEmDash + " " + kName + "\n",                   // no signature
  };
  for (const std::string& bad : kBad) {
    EXPECT_EQ(OpenCode(bad), absl::StatusCode::kInvalidArgument) << bad;
  }
  // Too many signature lines.
  std::string many = text + "\n";
  for (int i = 0; i < 101; ++i) many += sig;
  EXPECT_EQ(OpenCode(many), absl::StatusCode::kInvalidArgument);
}

TEST(CheckpointTest, ErrorsSayWhatIsWrong) {
  PrivateKey key = OperatorKey();
  std::string text = absl::StrCat(kName, "\n01234\n", Base64Encode(std::string(32, 'r')), "\n");
  absl::Status status = OpenCheckpoint(SignText(text, kName, key), kName, key.public_key())
                            .status();
  EXPECT_NE(status.message().find("size"), std::string_view::npos) << status;
  status = OpenCheckpoint(SignCheckpoint(Example(), kName, OtherKey()), kName, key.public_key())
               .status();
  EXPECT_NE(status.message().find(kName), std::string_view::npos) << status;
}

}  // namespace
}  // namespace ledger::merkle
