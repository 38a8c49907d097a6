// Tests for ledger/crypto: SHA-256/hex/base64 helpers, Ed25519 against the
// RFC 8032 vectors, the verifier's edge cases (which the server and the
// auditor must agree on), PEM and key files.
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/crypto/sha256.h"
#include "tests/support/temp_dir.h"

namespace ledger::crypto {
namespace {

using ::ledger::testing::ReadFileBytes;
using ::ledger::testing::TempDir;
using ::ledger::testing::WriteFileBytes;

std::string Unhex(std::string_view hex) {
  std::string out;
  EXPECT_TRUE(FromHex(hex, &out)) << hex;
  return out;
}

// --- sha256.h helpers ------------------------------------------------------

TEST(Sha256Test, KnownDigests) {
  EXPECT_EQ(ToHex(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(ToHex(Sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256Test, PartsAreConcatenated) {
  EXPECT_EQ(Sha256({"a", "", "bc"}), Sha256("abc"));
  EXPECT_NE(Sha256({"ab", "d"}), Sha256("abc"));
}

TEST(HexTest, RoundTripAndCase) {
  EXPECT_EQ(ToHex(std::string("\x00\x01\xab\xff", 4)), "0001abff");
  std::string out;
  ASSERT_TRUE(FromHex("0001ABff", &out));
  EXPECT_EQ(out, std::string("\x00\x01\xab\xff", 4));
  ASSERT_TRUE(FromHex("", &out));
  EXPECT_EQ(out, "");
}

TEST(HexTest, RejectsOddLengthAndNonHex) {
  std::string out = "unchanged";
  EXPECT_FALSE(FromHex("abc", &out));
  EXPECT_FALSE(FromHex("zz", &out));
  EXPECT_FALSE(FromHex("0x00", &out));
  EXPECT_FALSE(FromHex("a ", &out));
  EXPECT_EQ(out, "unchanged");
}

TEST(Base64Test, Rfc4648Vectors) {
  const std::pair<std::string, std::string> kVectors[] = {
      {"", ""},          {"f", "Zg=="},         {"fo", "Zm8="},
      {"foo", "Zm9v"},   {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : kVectors) {
    EXPECT_EQ(Base64Encode(plain), encoded);
    std::string out;
    ASSERT_TRUE(Base64Decode(encoded, &out)) << encoded;
    EXPECT_EQ(out, plain);
  }
  std::string bytes("\x00\xff\xfe\x80", 4);
  std::string out;
  ASSERT_TRUE(Base64Decode(Base64Encode(bytes), &out));
  EXPECT_EQ(out, bytes);
}

TEST(Base64Test, RejectsNonCanonicalAndMalformed) {
  const char* kBad[] = {
      "Zg",        // missing padding
      "Zg=",       // wrong length
      "Zh==",      // non-canonical: unused low bits set
      "Zm9=",      // non-canonical: unused low bits set
      "Zm9v\n",    // whitespace
      "Zm 9v",     //
      "Z===",      // too much padding
      "=Zm9",      // padding first
      "Zg=a",      // data after padding
      "Zm9v====",  // a block of padding
      "-_-_",      // URL-safe alphabet
      "Zm9v!",     //
  };
  for (const char* text : kBad) {
    std::string out = "unchanged";
    EXPECT_FALSE(Base64Decode(text, &out)) << text;
    EXPECT_EQ(out, "unchanged") << text;
  }
}

// --- RFC 8032 §7.1 Ed25519 test vectors -------------------------------------

struct Rfc8032Vector {
  const char* name;
  const char* secret_key;  // the 32-byte seed
  const char* public_key;
  std::string message;  // hex
  const char* signature;
};

std::vector<Rfc8032Vector> Rfc8032Vectors() {
  return {
      {"TEST 1", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
       "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
       "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
       "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
      {"TEST 2", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
       "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
       "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
       "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
      {"TEST 3", "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
       "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
       "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
       "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
      {"TEST 1024", "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
       "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
       std::string(
      "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f54e9f77b1"
      "e355f6c50544e23fb1433ddf73be84d879de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d"
      "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc1a858efcb8550ee3a5e1998bd177e93a"
      "7363c344fe6b199ee5d02e82d522c4feba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e"
      "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbefefd75499da96bd68a8a97b928a8bbc10"
      "3b6621fcde2beca1231d206be6cd9ec7aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1"
      "85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2d17ba70eb6248e594e1a2297acbbb39d"
      "502f1a8c6eb6f1ce22b3de1a1f40cc24554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270"
      "88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc2732e69485bbc9c90bfbd62481d9089b"
      "eccf80cfe2df16a2cf65bd92dd597b0707e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba"
      "b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51addd3b75a2b1ae0784504df543af8969b"
      "e3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7"
      "51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c42f58c30c04aafdb038dda0847dd988d"
      "cda6f3bfd15c4b4c4525004aa06eeff8ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df"
      "f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08d78ff4ef5d63653a65040cf9bfd4aca7"
      "984a74d37145986780fc0b16ac451649de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4"
      "88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac09"
      "43bf6686b64b2579376504ccc493d97e6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f"
      "b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b50d334ba77c225bc307ba537152f3f161"
      "0e4eafe595f6d9d90d11faa933a15ef1369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d"
      "b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c0618983f8741c5ef68d3a101e8a3b8ca"
      "c60c905c15fc910840b94c00a0b9d0"
       ),
       "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350"
       "aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03"},
      {"TEST SHA(abc)", "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
       "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
       "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
       "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
       "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
       "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"},
  };
}

TEST(Ed25519Test, Rfc8032Vectors) {
  for (const Rfc8032Vector& v : Rfc8032Vectors()) {
    SCOPED_TRACE(v.name);
    absl::StatusOr<PrivateKey> key = PrivateKey::FromSeed(Unhex(v.secret_key));
    ASSERT_TRUE(key.ok()) << key.status();
    EXPECT_EQ(ToHex(key->public_key().raw()), v.public_key);
    std::string message = Unhex(v.message);
    std::string sig = key->Sign(message);
    EXPECT_EQ(ToHex(sig), v.signature);
    absl::StatusOr<PublicKey> pub = PublicKey::FromRaw(Unhex(v.public_key));
    ASSERT_TRUE(pub.ok());
    EXPECT_TRUE(VerifySignature(*pub, message, Unhex(v.signature)));
  }
  // TEST 1024 really is 1023 bytes: a guard against a mistyped vector.
  EXPECT_EQ(Unhex(Rfc8032Vectors()[3].message).size(), 1023u);
}

// --- Verifier edge cases ---------------------------------------------------

// Known-answer key (RFC 8032 TEST 1).
PrivateKey Test1Key() {
  return *PrivateKey::FromSeed(
      Unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"));
}

TEST(Ed25519EdgeTest, FlippedBitsAreRejected) {
  PrivateKey key = Test1Key();
  const std::string message = "decision ledger";
  const std::string sig = key.Sign(message);
  ASSERT_TRUE(VerifySignature(key.public_key(), message, sig));
  for (size_t bit = 0; bit < sig.size() * 8; ++bit) {
    std::string bad = sig;
    bad[bit / 8] ^= static_cast<char>(1 << (bit % 8));
    EXPECT_FALSE(VerifySignature(key.public_key(), message, bad)) << "sig bit " << bit;
  }
  for (size_t bit = 0; bit < message.size() * 8; ++bit) {
    std::string bad = message;
    bad[bit / 8] ^= static_cast<char>(1 << (bit % 8));
    EXPECT_FALSE(VerifySignature(key.public_key(), bad, sig)) << "message bit " << bit;
  }
  EXPECT_FALSE(VerifySignature(PrivateKey::Generate().public_key(), message, sig));
}

TEST(Ed25519EdgeTest, WrongLengthSignatureIsRejected) {
  PrivateKey key = Test1Key();
  const std::string sig = key.Sign("m");
  EXPECT_FALSE(VerifySignature(key.public_key(), "m", ""));
  EXPECT_FALSE(VerifySignature(key.public_key(), "m", sig.substr(0, 63)));
  EXPECT_FALSE(VerifySignature(key.public_key(), "m", sig + '\0'));
  EXPECT_FALSE(VerifySignature(key.public_key(), "m", sig + sig));
}

// S + L is the same scalar mod L, so a lax verifier accepts it (signature
// malleability); libsodium requires S < L.
TEST(Ed25519EdgeTest, NonCanonicalSIsRejected) {
  // L = 2^252 + 27742317777372353535851937790883648493, little-endian.
  const std::string l = Unhex("edd3f55c1a631258d69cf7a2def9de14"
                              "00000000000000000000000000000010");
  PrivateKey key = Test1Key();
  for (std::string message : {"", "a", "decision ledger"}) {
    std::string sig = key.Sign(message);
    std::string malleated = sig;
    unsigned carry = 0;
    for (size_t i = 0; i < 32; ++i) {
      unsigned sum = static_cast<uint8_t>(sig[32 + i]) + static_cast<uint8_t>(l[i]) + carry;
      malleated[32 + i] = static_cast<char>(sum & 0xff);
      carry = sum >> 8;
    }
    ASSERT_EQ(carry, 0u);  // S < L < 2^253, so S + L fits in 32 bytes.
    ASSERT_NE(malleated, sig);
    EXPECT_TRUE(VerifySignature(key.public_key(), message, sig));
    EXPECT_FALSE(VerifySignature(key.public_key(), message, malleated));
  }
  // The RFC 8032 TEST 1 signature with S + L, as a fixed vector.
  std::string sig = Unhex(
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
      "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
  std::string high_bits = sig;
  high_bits[63] = static_cast<char>(high_bits[63] | 0xe0);
  EXPECT_FALSE(VerifySignature(key.public_key(), "", high_bits));
}

// The eight encodings of points of order dividing 8 (the libsodium blocklist
// minus its non-canonical entries).
const char* const kSmallOrderPoints[] = {
    "0100000000000000000000000000000000000000000000000000000000000000",  // identity
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  // order 2
    "0000000000000000000000000000000000000000000000000000000000000000",  // order 4
    "0000000000000000000000000000000000000000000000000000000000000080",  // order 4
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  // order 8
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",  // order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  // order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",  // order 8
};

// With a small-order A and R = identity, S = 0, the cofactorless equation
// [S]B = R + [k]A holds for the identity and any message whose k kills A:
// a lax verifier accepts a "signature" nobody made. libsodium refuses.
TEST(Ed25519EdgeTest, SmallOrderPublicKeysAreRejected) {
  const std::string identity = Unhex(kSmallOrderPoints[0]);
  const std::string zero_s(32, '\0');
  for (const char* point : kSmallOrderPoints) {
    SCOPED_TRACE(point);
    absl::StatusOr<PublicKey> pub = PublicKey::FromRaw(Unhex(point));
    ASSERT_TRUE(pub.ok());
    for (std::string message : {"", "any message at all", "\x01"}) {
      EXPECT_FALSE(VerifySignature(*pub, message, identity + zero_s));
      EXPECT_FALSE(VerifySignature(*pub, message, Unhex(point) + zero_s));
    }
  }
}

// R of small order with a real key: also refused.
TEST(Ed25519EdgeTest, SmallOrderRIsRejected) {
  PrivateKey key = Test1Key();
  std::string sig = key.Sign("m");
  for (const char* point : kSmallOrderPoints) {
    EXPECT_FALSE(VerifySignature(key.public_key(), "m", Unhex(point) + sig.substr(32)))
        << point;
  }
}

// Encodings with y >= p name a point a lax decoder reduces mod p; libsodium
// refuses them, so two encodings never stand for one key.
TEST(Ed25519EdgeTest, NonCanonicalPublicKeysAreRejected) {
  const std::string identity = Unhex(kSmallOrderPoints[0]);
  const std::string zero_s(32, '\0');
  const char* const kNonCanonical[] = {
      // y = p (reduces to 0), y = p + 1 (reduces to the identity), y = p + 2.
      "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
      "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
      "efffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
      // y = 2^255 - 1 and y = p + 1 with the x sign bit set.
      "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
      "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
      // The identity with x's sign bit set: x = 0 has no negative.
      "0100000000000000000000000000000000000000000000000000000000000080",
  };
  for (const char* point : kNonCanonical) {
    absl::StatusOr<PublicKey> pub = PublicKey::FromRaw(Unhex(point));
    ASSERT_TRUE(pub.ok());
    EXPECT_FALSE(VerifySignature(*pub, "", identity + zero_s)) << point;
    EXPECT_FALSE(VerifySignature(*pub, "m", Test1Key().Sign("m"))) << point;
  }
  // A real key with its top bit flipped is a different, off-curve or wrong,
  // encoding; the genuine signature must not verify under it.
  PrivateKey key = Test1Key();
  std::string raw(key.public_key().raw());
  raw[31] = static_cast<char>(raw[31] ^ 0x80);
  EXPECT_FALSE(VerifySignature(*PublicKey::FromRaw(raw), "m", key.Sign("m")));
}

// --- Keys ------------------------------------------------------------------

TEST(Ed25519KeyTest, SizesAreChecked) {
  EXPECT_EQ(PrivateKey::FromSeed(std::string(31, 'a')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PrivateKey::FromSeed(std::string(64, 'a')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PublicKey::FromRaw(std::string(31, 'a')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PublicKey::FromRaw(std::string(33, 'a')).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(Ed25519KeyTest, GenerateGivesDistinctWorkingKeys) {
  PrivateKey a = PrivateKey::Generate();
  PrivateKey b = PrivateKey::Generate();
  EXPECT_NE(a.public_key().raw(), b.public_key().raw());
  std::string sig = a.Sign("x");
  EXPECT_TRUE(VerifySignature(a.public_key(), "x", sig));
  EXPECT_FALSE(VerifySignature(b.public_key(), "x", sig));
}

TEST(Ed25519KeyTest, CopiesSignAlike) {
  PrivateKey a = Test1Key();
  PrivateKey b = a;
  PrivateKey c = PrivateKey::Generate();
  c = a;
  EXPECT_EQ(b.Sign("x"), a.Sign("x"));
  EXPECT_EQ(c.Sign("x"), a.Sign("x"));
}

TEST(Ed25519KeyTest, KeyIdIs32HexCharsOfSha256) {
  PrivateKey key = Test1Key();
  const std::string& id = key.public_key().key_id();
  ASSERT_EQ(id.size(), 32u);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(id, KeyIdOf(key.public_key().raw()));
  EXPECT_EQ(id, ToHex(Sha256(key.public_key().raw())).substr(0, 32));
  EXPECT_NE(id, PrivateKey::Generate().public_key().key_id());
}

TEST(Ed25519KeyTest, EventSignaturesAreDomainSeparated) {
  PrivateKey key = Test1Key();
  const std::string body = "serialized EventBody bytes";
  std::string event_sig = SignEvent(key, body);
  EXPECT_TRUE(VerifyEvent(key.public_key(), body, event_sig));
  EXPECT_FALSE(VerifyEvent(key.public_key(), body + "x", event_sig));
  // A plain signature of the body is not an event signature, and vice versa.
  EXPECT_FALSE(VerifyEvent(key.public_key(), body, key.Sign(body)));
  EXPECT_FALSE(VerifySignature(key.public_key(), body, event_sig));
  // The construction is exactly kEventDomain || body.
  EXPECT_TRUE(VerifySignature(key.public_key(), std::string(kEventDomain) + body, event_sig));
  EXPECT_FALSE(VerifyEvent(PrivateKey::Generate().public_key(), body, event_sig));
}

// --- PEM ---------------------------------------------------------------------

TEST(Ed25519PemTest, PrivateRoundTrip) {
  PrivateKey key = Test1Key();
  std::string pem = key.ToPem();
  EXPECT_EQ(pem.rfind("-----BEGIN PRIVATE KEY-----\n", 0), 0u) << pem;
  absl::StatusOr<PrivateKey> back = PrivateKey::FromPem(pem);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->public_key().raw(), key.public_key().raw());
  EXPECT_EQ(back->Sign("x"), key.Sign("x"));
  EXPECT_EQ(back->ToPem(), pem);
}

// RFC 8410 §10.3 gives the PKCS#8 encoding of a known seed; check ours is
// the standard DER: the 16-byte prefix then the seed.
TEST(Ed25519PemTest, PrivatePemIsStandardPkcs8) {
  PrivateKey key = Test1Key();
  std::string pem = key.ToPem();
  std::istringstream lines(pem);
  std::string line, b64;
  while (std::getline(lines, line)) {
    if (line.rfind("-----", 0) != 0) b64 += line;
  }
  std::string der;
  ASSERT_TRUE(Base64Decode(b64, &der));
  EXPECT_EQ(ToHex(der),
            "302e020100300506032b657004220420"
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
}

TEST(Ed25519PemTest, PublicRoundTrip) {
  PrivateKey key = Test1Key();
  std::string pem = key.public_key().ToPem();
  EXPECT_EQ(pem.rfind("-----BEGIN PUBLIC KEY-----\n", 0), 0u) << pem;
  absl::StatusOr<PublicKey> back = PublicKey::FromPem(pem);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->raw(), key.public_key().raw());
  EXPECT_EQ(back->key_id(), key.public_key().key_id());
  // SubjectPublicKeyInfo: 12-byte prefix then the raw key.
  std::string b64 = pem.substr(pem.find('\n') + 1);
  b64 = b64.substr(0, b64.find('\n'));
  std::string der;
  ASSERT_TRUE(Base64Decode(b64, &der));
  EXPECT_EQ(ToHex(der), "302a300506032b6570032100" + ToHex(key.public_key().raw()));
}

TEST(Ed25519PemTest, GarbageGivesClearErrors) {
  for (std::string pem :
       {std::string(""), std::string("hello"),
        std::string("-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n"),
        Test1Key().public_key().ToPem()}) {
    absl::StatusOr<PrivateKey> key = PrivateKey::FromPem(pem);
    ASSERT_FALSE(key.ok());
    EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(key.status().message().find("not an Ed25519 PEM private key"),
              std::string_view::npos)
        << key.status();
  }
  for (std::string pem : {std::string("hello"), Test1Key().ToPem()}) {
    absl::StatusOr<PublicKey> key = PublicKey::FromPem(pem);
    ASSERT_FALSE(key.ok());
    EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(key.status().message().find("not an Ed25519 PEM public key"),
              std::string_view::npos)
        << key.status();
  }
}

// --- Key files ---------------------------------------------------------------

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.path().empty()); }
  std::string Path(const std::string& name) const { return dir_.Path(name); }
  static bool HaveOpenssl() {
    return std::system("command -v openssl >/dev/null 2>&1") == 0;
  }

  TempDir dir_{"crypto_test"};
};

TEST_F(KeyFileTest, PrivateKeyFileIs0600AndNotOverwritten) {
  PrivateKey key = PrivateKey::Generate();
  const std::string path = Path("operator.pem");
  ASSERT_TRUE(WritePrivateKeyFile(path, key).ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  absl::Status again = WritePrivateKeyFile(path, PrivateKey::Generate());
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists) << again;
  EXPECT_NE(again.message().find(path), std::string_view::npos) << again;

  absl::StatusOr<PrivateKey> back = ReadPrivateKeyFile(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->public_key().raw(), key.public_key().raw());  // not overwritten
}

// A private key file group or others may read is still read, with a warning
// naming the file, its mode and the fix; a 0600 one without.
TEST_F(KeyFileTest, PrivateKeyFileReadableByOthersIsReadWithAWarning) {
  const std::string path = Path("exposed.pem");
  ASSERT_TRUE(WritePrivateKeyFile(path, PrivateKey::Generate()).ok());
  std::string exposed = "stale";
  ASSERT_TRUE(ReadPrivateKeyFile(path, &exposed).ok());
  EXPECT_EQ(exposed, "") << "0600: no warning";
  for (mode_t mode : {0640, 0604, 0644}) {
    ASSERT_EQ(chmod(path.c_str(), mode), 0);
    absl::StatusOr<PrivateKey> key = ReadPrivateKeyFile(path, &exposed);
    ASSERT_TRUE(key.ok()) << key.status();
    EXPECT_NE(exposed.find(path), std::string::npos) << exposed;
    char octal[16];
    std::snprintf(octal, sizeof octal, "mode %04o", static_cast<unsigned>(mode));
    EXPECT_NE(exposed.find(octal), std::string::npos) << exposed;
    EXPECT_NE(exposed.find("chmod 600 " + path), std::string::npos) << exposed;
  }
}

TEST_F(KeyFileTest, PublicKeyFileRoundTrip) {
  PrivateKey key = PrivateKey::Generate();
  const std::string path = Path("operator.pub.pem");
  ASSERT_TRUE(WritePublicKeyFile(path, key.public_key()).ok());
  absl::StatusOr<PublicKey> back = ReadPublicKeyFile(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->raw(), key.public_key().raw());
}

TEST_F(KeyFileTest, MissingFileIsNotFoundNamingThePath) {
  const std::string path = Path("nope.pem");
  absl::StatusOr<PrivateKey> key = ReadPrivateKeyFile(path);
  EXPECT_EQ(key.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(key.status().message().find(path), std::string_view::npos) << key.status();
  absl::StatusOr<PublicKey> pub = ReadPublicKeyFile(path);
  EXPECT_EQ(pub.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(KeyFileTest, GarbageFileIsInvalidArgumentNamingThePath) {
  const std::string path = Path("garbage.pem");
  WriteFileBytes(path, "this is not a key\n");
  absl::StatusOr<PrivateKey> key = ReadPrivateKeyFile(path);
  EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(key.status().message().find("key file " + path + ": not an Ed25519 PEM private key"),
            std::string_view::npos)
      << key.status();
  absl::StatusOr<PublicKey> pub = ReadPublicKeyFile(path);
  EXPECT_EQ(pub.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(pub.status().message().find(path), std::string_view::npos);
}

TEST_F(KeyFileTest, ReadsOpensslGeneratedKeys) {
  if (!HaveOpenssl()) GTEST_SKIP() << "openssl binary not found";
  const std::string key_path = Path("genpkey.pem");
  const std::string pub_path = Path("genpkey.pub.pem");
  const std::string msg_path = Path("msg");
  const std::string sig_path = Path("sig");
  const std::string message = "signed by the openssl binary";
  WriteFileBytes(msg_path, message);
  std::string cmd = "openssl genpkey -algorithm ed25519 -out '" + key_path +
                    "' 2>/dev/null && openssl pkey -in '" + key_path + "' -pubout -out '" +
                    pub_path + "' 2>/dev/null && openssl pkeyutl -sign -rawin -inkey '" +
                    key_path + "' -in '" + msg_path + "' -out '" + sig_path + "' 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  absl::StatusOr<PrivateKey> key = ReadPrivateKeyFile(key_path);
  ASSERT_TRUE(key.ok()) << key.status();
  absl::StatusOr<PublicKey> pub = ReadPublicKeyFile(pub_path);
  ASSERT_TRUE(pub.ok()) << pub.status();
  EXPECT_EQ(key->public_key().raw(), pub->raw());
  // Ed25519 is deterministic: OpenSSL's signature equals ours, and verifies.
  std::string openssl_sig = ReadFileBytes(sig_path);
  EXPECT_EQ(ToHex(openssl_sig), ToHex(key->Sign(message)));
  EXPECT_TRUE(VerifySignature(*pub, message, openssl_sig));
  // And our PEM of it is what openssl wrote.
  EXPECT_EQ(key->ToPem(), ReadFileBytes(key_path));
  EXPECT_EQ(pub->ToPem(), ReadFileBytes(pub_path));
}

TEST_F(KeyFileTest, RejectsOtherKeyTypesAndEncryptedKeys) {
  if (!HaveOpenssl()) GTEST_SKIP() << "openssl binary not found";
  const std::string ec_path = Path("ec.pem");
  const std::string enc_path = Path("encrypted.pem");
  std::string cmd = "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out '" +
                    ec_path + "' 2>/dev/null && openssl genpkey -algorithm ed25519 " +
                    "-aes-256-cbc -pass pass:secret -out '" + enc_path + "' 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  absl::StatusOr<PrivateKey> ec = ReadPrivateKeyFile(ec_path);
  EXPECT_EQ(ec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(ec.status().message().find("not an Ed25519 PEM private key"),
            std::string_view::npos)
      << ec.status();
  // Must fail, not prompt for a passphrase.
  absl::StatusOr<PrivateKey> enc = ReadPrivateKeyFile(enc_path);
  EXPECT_EQ(enc.status().code(), absl::StatusCode::kInvalidArgument) << enc.status();
}

}  // namespace
}  // namespace ledger::crypto
