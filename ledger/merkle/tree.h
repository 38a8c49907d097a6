// RFC 9162 (Certificate Transparency v2) Merkle tree hashing and proofs.
//
// Pure: no I/O. Hashes of complete subtrees are read through a NodeReader
// (the store implements it over RocksDB; tests over a map), so the tree is
// never held in memory. Node (level, index) is the root of the perfect
// subtree over leaves [index << level, (index + 1) << level); level 0 holds
// leaf hashes. Leaf indexes count from 0.
#ifndef LEDGER_MERKLE_TREE_H_
#define LEDGER_MERKLE_TREE_H_

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ledger::merkle {

using Hash = std::array<uint8_t, 32>;

Hash HashLeaf(std::string_view leaf);                // SHA-256(0x00 || leaf)
Hash HashChildren(const Hash& left, const Hash& right);  // SHA-256(0x01 || l || r)
Hash EmptyRoot();                                     // SHA-256("")
std::string_view AsBytes(const Hash& h);
// InvalidArgument unless `bytes` is exactly 32 bytes.
absl::StatusOr<Hash> HashFromBytes(std::string_view bytes);

struct Node {
  int level;
  uint64_t index;
  Hash hash;
};

class NodeReader {
 public:
  virtual ~NodeReader() = default;
  // The stored hash of a complete subtree; NotFound if absent, DataLoss if
  // corrupt.
  virtual absl::StatusOr<Hash> ReadNode(int level, uint64_t index) const = 0;
};

// Root of the first `size` leaves (EmptyRoot() for 0). O(log n) reads.
absl::StatusOr<Hash> RootAt(const NodeReader& nodes, uint64_t size);

// Audit path of leaf `index` in the tree of `size` leaves (RFC 9162 §2.1.3).
// InvalidArgument unless index < size.
absl::StatusOr<std::vector<Hash>> InclusionProof(const NodeReader& nodes,
                                                 uint64_t index, uint64_t size);

// Consistency proof between sizes old_size <= new_size (RFC 9162 §2.1.4).
// Empty for old_size == 0 or old_size == new_size.
absl::StatusOr<std::vector<Hash>> ConsistencyProof(const NodeReader& nodes,
                                                   uint64_t old_size,
                                                   uint64_t new_size);

// Verifiers (RFC 9162 §2.1.3.2 and §2.1.4.2, behaving as transparency-dev/
// merkle proof/verify.go). OK only if the proof is exactly right: no extra or
// missing hashes. Errors:
//   InvalidArgument     malformed arguments or proof: index >= size,
//                       old_size > new_size, wrong number of hashes, a
//                       non-empty proof for equal sizes, an empty proof for
//                       0 < old_size < new_size, or old_size == 0 < new_size
//                       (nothing to prove from the empty tree; do not ask).
//   FailedPrecondition  the proof is well formed but the hashes it yields do
//                       not match the given root(s) ("... does not match").
// For old_size == new_size the roots must be equal (and EmptyRoot() for 0).
absl::Status VerifyInclusion(const Hash& leaf_hash, uint64_t index,
                             uint64_t size, std::span<const Hash> proof,
                             const Hash& root);
absl::Status VerifyConsistency(uint64_t old_size, uint64_t new_size,
                               std::span<const Hash> proof,
                               const Hash& old_root, const Hash& new_root);

// The right edge of a growing tree: the roots of the perfect subtrees that
// cover [0, size), largest first (at most 64). Appending a leaf yields every
// node that became complete, to be stored in the same commit as the leaf.
// Not thread-safe; owned by the sequencer.
class Frontier {
 public:
  Frontier() = default;
  // Rebuilds the frontier of a stored tree of `size` leaves (O(log n) reads).
  static absl::StatusOr<Frontier> Load(const NodeReader& nodes, uint64_t size);

  // Adds the leaf with hash `leaf_hash` at index size(); returns the new
  // complete nodes, the leaf itself (level 0) first.
  std::vector<Node> Append(const Hash& leaf_hash);
  uint64_t size() const { return size_; }
  Hash Root() const;
  // The perfect subtrees' roots (largest first): with Load, a frontier saved
  // and rebuilt without the tree.
  const std::vector<Node>& edge() const { return edge_; }

 private:
  uint64_t size_ = 0;
  std::vector<Node> edge_;  // perfect subtrees, largest (leftmost) first
};

}  // namespace ledger::merkle

#endif  // LEDGER_MERKLE_TREE_H_
