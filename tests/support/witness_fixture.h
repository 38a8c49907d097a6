// Test support for witnesses (header only; links ledger_witness): a real
// RFC 9162 tree over an in-memory node store, a log that signs its
// checkpoints with a real Ed25519 key, and the tlog-witness request body.
//
// Thread contract: a TestTree or TestLog is used by one thread at a time
// (const methods may be shared once it stops growing).
#ifndef TESTS_SUPPORT_WITNESS_FIXTURE_H_
#define TESTS_SUPPORT_WITNESS_FIXTURE_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/crypto/sha256.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/merkle/tree.h"
#include "ledger/witness/cosignature.h"

namespace ledger::testing {

// A tree that grows by Append; roots and consistency proofs at any size.
class TestTree {
 public:
  void Append(std::string_view leaf) {
    for (const merkle::Node& node : frontier_.Append(merkle::HashLeaf(leaf))) {
      nodes_.nodes[{node.level, node.index}] = node.hash;
    }
  }
  uint64_t size() const { return frontier_.size(); }
  merkle::Hash Root(uint64_t size) const { return merkle::RootAt(nodes_, size).value(); }
  std::vector<merkle::Hash> Proof(uint64_t old_size, uint64_t new_size) const {
    return merkle::ConsistencyProof(nodes_, old_size, new_size).value();
  }

 private:
  struct MapNodes : merkle::NodeReader {
    absl::StatusOr<merkle::Hash> ReadNode(int level, uint64_t index) const override {
      auto it = nodes.find({level, index});
      if (it == nodes.end()) return absl::NotFoundError("no such node");
      return it->second;
    }
    std::map<std::pair<int, uint64_t>, merkle::Hash> nodes;
  };
  MapNodes nodes_;
  merkle::Frontier frontier_;
};

// A log: an origin, its key, and its verifier key (type 0x01, name = origin).
struct TestLog {
  explicit TestLog(std::string origin_in)
      : origin(std::move(origin_in)),
        key(crypto::PrivateKey::Generate()),
        vkey(witness::MakeVerifierKey(origin, witness::kNoteEd25519, key.public_key())) {}

  // The signed checkpoint note of `tree` at `size`.
  std::string Checkpoint(const TestTree& tree, uint64_t size) const {
    return merkle::SignCheckpoint(merkle::Checkpoint{origin, size, tree.Root(size)}, origin, key);
  }
  // A note over any text (e.g. with extension lines), signed by this key.
  std::string SignText(const std::string& text) const {
    return text + "\n\xE2\x80\x94 " + origin + " " + crypto::Base64Encode(vkey.key_id + key.Sign(text)) + "\n";
  }

  std::string origin;
  crypto::PrivateKey key;
  witness::VerifierKey vkey;
};

// The add-checkpoint request body (c2sp.org/tlog-witness).
inline std::string AddCheckpointBody(uint64_t old_size, const std::vector<merkle::Hash>& proof,
                                     std::string_view note) {
  std::string body = "old " + std::to_string(old_size) + "\n";
  for (const merkle::Hash& h : proof) body += crypto::Base64Encode(merkle::AsBytes(h)) + "\n";
  body += "\n";
  body.append(note);
  return body;
}

}  // namespace ledger::testing

#endif  // TESTS_SUPPORT_WITNESS_FIXTURE_H_
