#include "ledger/merkle/tree.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "ledger/crypto/sha256.h"

namespace ledger::merkle {
namespace {

constexpr char kLeafPrefix = 0x00;
constexpr char kNodePrefix = 0x01;

// MTH(D[begin:end]) for begin < end, from stored perfect subtrees. A range
// that is a whole aligned perfect subtree is one read; otherwise split at the
// largest power of two below its size, as RFC 9162 §2.1.1 does. The ranges
// the RFC recursion visits from [0, n) all start at a multiple of a power of
// two at least as large as themselves, so each left half is one read and the
// recursion only continues down the right edge: O(log n) reads.
absl::StatusOr<Hash> RangeHash(const NodeReader& nodes, uint64_t begin,
                               uint64_t end) {
  const uint64_t n = end - begin;
  if (std::has_single_bit(n) && begin % n == 0) {
    const int level = std::countr_zero(n);
    return nodes.ReadNode(level, begin >> level);
  }
  const uint64_t k = std::bit_floor(n - 1);
  absl::StatusOr<Hash> left = RangeHash(nodes, begin, begin + k);
  if (!left.ok()) return left.status();
  absl::StatusOr<Hash> right = RangeHash(nodes, begin + k, end);
  if (!right.ok()) return right.status();
  return HashChildren(*left, *right);
}

// RFC 9162 §2.1.4.1 SUBPROOF(m, D[begin:end], complete), appended to `out`
// in the RFC's order (deepest first). Iterative: each step records the
// sibling range, and the siblings are emitted in reverse order of discovery.
absl::Status SubProof(const NodeReader& nodes, uint64_t m, uint64_t begin,
                      uint64_t end, std::vector<Hash>* out) {
  bool complete = true;
  std::vector<std::pair<uint64_t, uint64_t>> siblings;  // top-down
  while (m != end - begin) {
    const uint64_t k = std::bit_floor(end - begin - 1);
    if (m <= k) {
      siblings.emplace_back(begin + k, end);
      end = begin + k;
    } else {
      siblings.emplace_back(begin, begin + k);
      begin += k;
      m -= k;
      complete = false;
    }
  }
  // m == size of the current range: the old tree's subtree itself, needed
  // unless it is the whole old tree (which the verifier already has).
  if (!complete) siblings.emplace_back(begin, end);
  for (auto it = siblings.rbegin(); it != siblings.rend(); ++it) {
    absl::StatusOr<Hash> h = RangeHash(nodes, it->first, it->second);
    if (!h.ok()) return h.status();
    out->push_back(*h);
  }
  return absl::OkStatus();
}

absl::Status RootMismatch(const char* which) {
  return absl::FailedPreconditionError(
      absl::StrCat("merkle: ", which, " does not match the proof"));
}

// The verifier helpers below follow transparency-dev/merkle proof/verify.go.

// Splits the audit path of `index` in a tree of `size` leaves into the part
// below where the paths to `index` and `size - 1` diverge (inner) and the
// part along the right border above it (border).
void DecomposeInclusion(uint64_t index, uint64_t size, uint64_t* inner,
                        uint64_t* border) {
  *inner = std::bit_width(index ^ (size - 1));
  // Shifting a uint64_t by 64 is undefined; the result there is 0.
  *border = std::popcount(*inner >= 64 ? 0 : index >> *inner);
}

Hash ChainInner(Hash seed, std::span<const Hash> proof, uint64_t index) {
  for (size_t i = 0; i < proof.size(); ++i) {
    seed = ((index >> i) & 1) == 0 ? HashChildren(seed, proof[i])
                                   : HashChildren(proof[i], seed);
  }
  return seed;
}

// Like ChainInner but uses only the siblings to the left of the path: the
// hash of the same subtree as it was in the older, smaller tree.
Hash ChainInnerRight(Hash seed, std::span<const Hash> proof, uint64_t index) {
  for (size_t i = 0; i < proof.size(); ++i) {
    if (((index >> i) & 1) == 1) seed = HashChildren(proof[i], seed);
  }
  return seed;
}

Hash ChainBorderRight(Hash seed, std::span<const Hash> proof) {
  for (const Hash& h : proof) seed = HashChildren(h, seed);
  return seed;
}

}  // namespace

Hash HashLeaf(std::string_view leaf) {
  return crypto::Sha256({std::string_view(&kLeafPrefix, 1), leaf});
}

Hash HashChildren(const Hash& left, const Hash& right) {
  return crypto::Sha256(
      {std::string_view(&kNodePrefix, 1), AsBytes(left), AsBytes(right)});
}

Hash EmptyRoot() { return crypto::Sha256(std::string_view()); }

std::string_view AsBytes(const Hash& h) {
  return {reinterpret_cast<const char*>(h.data()), h.size()};
}

absl::StatusOr<Hash> HashFromBytes(std::string_view bytes) {
  Hash h;
  if (bytes.size() != h.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "merkle: hash must be 32 bytes, got ", bytes.size()));
  }
  std::memcpy(h.data(), bytes.data(), h.size());
  return h;
}

absl::StatusOr<Hash> RootAt(const NodeReader& nodes, uint64_t size) {
  if (size == 0) return EmptyRoot();
  return RangeHash(nodes, 0, size);
}

absl::StatusOr<std::vector<Hash>> InclusionProof(const NodeReader& nodes,
                                                 uint64_t index,
                                                 uint64_t size) {
  if (index >= size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "merkle: leaf index ", index, " is not below tree size ", size));
  }
  // RFC 9162 §2.1.3.1 PATH(m, D[begin:end]), walked top-down; the proof lists
  // the siblings bottom-up.
  std::vector<std::pair<uint64_t, uint64_t>> siblings;
  uint64_t begin = 0, end = size;
  while (end - begin > 1) {
    const uint64_t k = std::bit_floor(end - begin - 1);
    if (index < begin + k) {
      siblings.emplace_back(begin + k, end);
      end = begin + k;
    } else {
      siblings.emplace_back(begin, begin + k);
      begin += k;
    }
  }
  std::vector<Hash> proof;
  proof.reserve(siblings.size());
  for (auto it = siblings.rbegin(); it != siblings.rend(); ++it) {
    absl::StatusOr<Hash> h = RangeHash(nodes, it->first, it->second);
    if (!h.ok()) return h.status();
    proof.push_back(*h);
  }
  return proof;
}

absl::StatusOr<std::vector<Hash>> ConsistencyProof(const NodeReader& nodes,
                                                   uint64_t old_size,
                                                   uint64_t new_size) {
  if (old_size > new_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "merkle: old size ", old_size, " exceeds new size ", new_size));
  }
  std::vector<Hash> proof;
  if (old_size == 0 || old_size == new_size) return proof;
  absl::Status s = SubProof(nodes, old_size, 0, new_size, &proof);
  if (!s.ok()) return s;
  return proof;
}

absl::Status VerifyInclusion(const Hash& leaf_hash, uint64_t index,
                             uint64_t size, std::span<const Hash> proof,
                             const Hash& root) {
  if (index >= size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "merkle: leaf index ", index, " is not below tree size ", size));
  }
  uint64_t inner, border;
  DecomposeInclusion(index, size, &inner, &border);
  if (proof.size() != inner + border) {
    return absl::InvalidArgumentError(
        absl::StrCat("merkle: inclusion proof has ", proof.size(),
                     " hashes, want ", inner + border));
  }
  Hash h = ChainInner(leaf_hash, proof.first(inner), index);
  h = ChainBorderRight(h, proof.subspan(inner));
  if (h != root) return RootMismatch("root");
  return absl::OkStatus();
}

absl::Status VerifyConsistency(uint64_t old_size, uint64_t new_size,
                               std::span<const Hash> proof,
                               const Hash& old_root, const Hash& new_root) {
  if (old_size > new_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "merkle: old size ", old_size, " exceeds new size ", new_size));
  }
  if (old_size == new_size) {
    if (!proof.empty()) {
      return absl::InvalidArgumentError(
          "merkle: consistency proof between equal sizes must be empty");
    }
    // The empty tree has a known root; any other size proves only equality.
    if (old_size == 0 && old_root != EmptyRoot()) return RootMismatch("old root");
    if (old_root != new_root) return RootMismatch("new root");
    return absl::OkStatus();
  }
  if (old_size == 0) {
    // As transparency-dev/merkle: there is nothing to prove from an empty
    // tree, so a client asking for it has made a mistake.
    return absl::InvalidArgumentError(
        "merkle: consistency from an empty tree is meaningless");
  }
  if (proof.empty()) {
    return absl::InvalidArgumentError("merkle: empty consistency proof");
  }

  // The proof is a suffix of the audit path of leaf old_size - 1 in the new
  // tree, starting at level `shift` (the largest perfect subtree that ends
  // the old tree), preceded by that subtree's hash unless it is the whole old
  // tree.
  uint64_t inner, border;
  DecomposeInclusion(old_size - 1, new_size, &inner, &border);
  const int shift = std::countr_zero(old_size);
  inner -= shift;  // shift < inner because old_size < new_size
  Hash seed = old_root;
  size_t start = 0;
  if (old_size != uint64_t{1} << shift) {
    seed = proof[0];
    start = 1;
  }
  if (proof.size() != start + inner + border) {
    return absl::InvalidArgumentError(
        absl::StrCat("merkle: consistency proof has ", proof.size(),
                     " hashes, want ", start + inner + border));
  }
  std::span<const Hash> path = proof.subspan(start);
  const uint64_t mask = (old_size - 1) >> shift;
  Hash h1 = ChainInnerRight(seed, path.first(inner), mask);
  h1 = ChainBorderRight(h1, path.subspan(inner));
  if (h1 != old_root) return RootMismatch("old root");
  Hash h2 = ChainInner(seed, path.first(inner), mask);
  h2 = ChainBorderRight(h2, path.subspan(inner));
  if (h2 != new_root) return RootMismatch("new root");
  return absl::OkStatus();
}

absl::StatusOr<Frontier> Frontier::Load(const NodeReader& nodes,
                                        uint64_t size) {
  Frontier f;
  uint64_t begin = 0;
  // One perfect subtree per set bit of `size`, largest first.
  for (int level = 63; level >= 0; --level) {
    const uint64_t width = uint64_t{1} << level;
    if ((size & width) == 0) continue;
    const uint64_t index = begin >> level;
    absl::StatusOr<Hash> h = nodes.ReadNode(level, index);
    if (!h.ok()) return h.status();
    f.edge_.push_back(Node{level, index, *h});
    begin += width;
  }
  f.size_ = size;
  return f;
}

std::vector<Node> Frontier::Append(const Hash& leaf_hash) {
  std::vector<Node> added;
  added.push_back(Node{0, size_, leaf_hash});
  edge_.push_back(added.back());
  // Two equal-level subtrees at the end of the edge are siblings: merge them.
  while (edge_.size() >= 2 &&
         edge_[edge_.size() - 2].level == edge_.back().level) {
    const Node right = edge_.back();
    edge_.pop_back();
    const Node left = edge_.back();
    edge_.pop_back();
    Node parent{right.level + 1, right.index >> 1,
                HashChildren(left.hash, right.hash)};
    edge_.push_back(parent);
    added.push_back(parent);
  }
  ++size_;
  return added;
}

Hash Frontier::Root() const {
  if (edge_.empty()) return EmptyRoot();
  Hash h = edge_.back().hash;
  for (size_t i = edge_.size() - 1; i-- > 0;) {
    h = HashChildren(edge_[i].hash, h);
  }
  return h;
}

}  // namespace ledger::merkle
