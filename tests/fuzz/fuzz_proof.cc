// Fuzzes the Merkle proof code (ledger/merkle/tree.h). The first byte picks
// a mode:
//   even: untrusted proofs. Sizes and index come from the bytes, then 32-byte
//         hashes (the last one or two are the roots, the rest the proof);
//         VerifyInclusion / VerifyConsistency must not crash and may fail
//         only with InvalidArgument or FailedPrecondition.
//   odd:  a real tree. Up to 300 leaves are appended through a Frontier
//         into a std::map NodeReader; for sizes and an index from the bytes,
//         RootAt agrees with the frontier, Frontier::Load rebuilds it, the
//         produced inclusion and consistency proofs verify, and the same
//         proofs with one bit flipped, or a hash added or removed, do not.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "ledger/merkle/tree.h"

namespace {

using ledger::merkle::Hash;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  size_t left() const { return size_ - pos_; }
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint64_t U64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | Byte();
    return v;
  }
  // Mostly small sizes (where the interesting shapes are), sometimes huge.
  uint64_t Size() {
    const uint8_t shape = Byte();
    const uint64_t v = U64();
    switch (shape % 4) {
      case 0: return v & 0xff;
      case 1: return v & 0xffff;
      case 2: return v;
      default: return ~uint64_t{0} - (v & 0xff);
    }
  }
  Hash NextHash() {
    Hash h{};
    for (uint8_t& b : h) b = Byte();
    return h;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

bool Refusal(const absl::Status& s) {
  return s.code() == absl::StatusCode::kInvalidArgument ||
         s.code() == absl::StatusCode::kFailedPrecondition;
}

void Untrusted(Reader& in) {
  const uint64_t a = in.Size();
  const uint64_t b = in.Size();
  const uint64_t index = in.Size();
  const Hash leaf = in.NextHash();
  const Hash root1 = in.NextHash();
  const Hash root2 = in.NextHash();
  std::vector<Hash> proof;
  while (!in.empty() && proof.size() < 130) proof.push_back(in.NextHash());

  absl::Status s = ledger::merkle::VerifyInclusion(leaf, index, b, proof, root1);
  Check(s.ok() || Refusal(s));
  s = ledger::merkle::VerifyConsistency(a, b, proof, root1, root2);
  Check(s.ok() || Refusal(s));
  s = ledger::merkle::VerifyConsistency(b, a, proof, root2, root1);
  Check(s.ok() || Refusal(s));
}

class MapNodes : public ledger::merkle::NodeReader {
 public:
  absl::StatusOr<Hash> ReadNode(int level, uint64_t index) const override {
    auto it = nodes_.find({level, index});
    if (it == nodes_.end()) return absl::NotFoundError("no such node");
    return it->second;
  }
  void Put(const ledger::merkle::Node& n) {
    Check(nodes_.emplace(std::make_pair(n.level, n.index), n.hash).second);
  }

 private:
  std::map<std::pair<int, uint64_t>, Hash> nodes_;
};

// The proof with one change: a flipped bit, or a hash added or dropped.
std::vector<Hash> Mutated(std::vector<Hash> proof, Reader& in) {
  const uint8_t how = in.Byte() % 3;
  if (how == 0 && !proof.empty()) {
    const size_t bit = in.U64() % (proof.size() * 256);
    proof[bit / 256][(bit % 256) / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
  } else if (how == 1 && !proof.empty()) {
    proof.erase(proof.begin() + static_cast<long>(in.U64() % proof.size()));
  } else {
    proof.insert(proof.begin() + static_cast<long>(in.U64() % (proof.size() + 1)), in.NextHash());
  }
  return proof;
}

void RealTree(Reader& in) {
  const uint64_t n = 1 + (static_cast<uint64_t>(in.Byte()) << 8 | in.Byte()) % 300;
  MapNodes nodes;
  ledger::merkle::Frontier frontier;
  std::vector<Hash> roots{frontier.Root()};  // roots[k]: root of the first k leaves
  std::vector<Hash> leaves;
  const uint8_t salt = in.Byte();
  for (uint64_t i = 0; i < n; ++i) {
    std::string leaf = std::to_string(i);
    leaf.push_back(static_cast<char>(salt));
    leaves.push_back(ledger::merkle::HashLeaf(leaf));
    for (const auto& node : frontier.Append(leaves.back())) nodes.Put(node);
    roots.push_back(frontier.Root());
  }
  Check(roots[0] == ledger::merkle::EmptyRoot());

  for (int round = 0; round < 4 && !in.empty(); ++round) {
    uint64_t old_size = in.U64() % (n + 1);
    uint64_t new_size = in.U64() % (n + 1);
    if (old_size > new_size) std::swap(old_size, new_size);

    auto root = ledger::merkle::RootAt(nodes, new_size);
    Check(root.ok() && *root == roots[new_size]);
    auto loaded = ledger::merkle::Frontier::Load(nodes, new_size);
    Check(loaded.ok() && loaded->size() == new_size && loaded->Root() == roots[new_size]);

    if (new_size > 0) {
      const uint64_t index = in.U64() % new_size;
      auto proof = ledger::merkle::InclusionProof(nodes, index, new_size);
      Check(proof.ok());
      Check(ledger::merkle::VerifyInclusion(leaves[index], index, new_size, *proof, roots[new_size]).ok());
      std::vector<Hash> bad = Mutated(*proof, in);
      Check(!ledger::merkle::VerifyInclusion(leaves[index], index, new_size, bad, roots[new_size]).ok());
      // Another leaf at the same place, or the same leaf elsewhere, is refused.
      if (new_size > 1) {
        const uint64_t other = (index + 1 + in.U64() % (new_size - 1)) % new_size;
        Check(!ledger::merkle::VerifyInclusion(leaves[other], index, new_size, *proof, roots[new_size]).ok());
        Check(!ledger::merkle::VerifyInclusion(leaves[index], other, new_size, *proof, roots[new_size]).ok());
      }
    }
    Check(!ledger::merkle::InclusionProof(nodes, new_size, new_size).ok());

    auto proof = ledger::merkle::ConsistencyProof(nodes, old_size, new_size);
    Check(proof.ok());
    absl::Status s = ledger::merkle::VerifyConsistency(old_size, new_size, *proof,
                                                       roots[old_size], roots[new_size]);
    if (old_size == 0 && new_size > 0) {
      Check(proof->empty() && s.code() == absl::StatusCode::kInvalidArgument);
      continue;
    }
    Check(s.ok());
    if (old_size < new_size) {
      std::vector<Hash> bad = Mutated(*proof, in);
      Check(!ledger::merkle::VerifyConsistency(old_size, new_size, bad, roots[old_size], roots[new_size]).ok());
      // A different old tree (one leaf fewer or more) is not consistent
      // with this proof.
      if (old_size + 1 < new_size) {
        Check(!ledger::merkle::VerifyConsistency(old_size, new_size, *proof, roots[old_size + 1],
                                                 roots[new_size]).ok());
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader in(data, size);
  if (in.Byte() & 1) {
    RealTree(in);
  } else {
    Untrusted(in);
  }
  return 0;
}
