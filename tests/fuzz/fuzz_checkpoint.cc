// Fuzzes the checkpoint note parser (ledger/merkle/checkpoint.h) with a fixed
// key:
//   - the bytes as a whole note: OpenCheckpoint must not crash, and anything
//     it accepts must re-sign to a note that opens to the same checkpoint;
//   - the bytes as extra signature lines after a validly signed note (the
//     witness co-signature path): must not crash; if it opens, it is the
//     signed checkpoint;
//   - a checkpoint built from the bytes: SignCheckpoint then OpenCheckpoint
//     round-trips, and flipping any one byte of the signed text is refused.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "ledger/crypto/ed25519.h"
#include "ledger/merkle/checkpoint.h"

namespace {

using ledger::merkle::Checkpoint;

constexpr std::string_view kName = "ledger-x";

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

const ledger::crypto::PrivateKey& Key() {
  static const auto* key =
      new ledger::crypto::PrivateKey(*ledger::crypto::PrivateKey::FromSeed(std::string(32, '\x42')));
  return *key;
}

bool Same(const Checkpoint& a, const Checkpoint& b) {
  return a.origin == b.origin && a.size == b.size && a.root == b.root;
}

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint64_t U64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | Byte();
    return v;
  }
  std::string_view Rest() {
    std::string_view r(reinterpret_cast<const char*>(data_ + pos_), size_ - pos_);
    pos_ = size_;
    return r;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

void WholeNote(std::string_view note) {
  auto opened = ledger::merkle::OpenCheckpoint(note, kName, Key().public_key());
  if (!opened.ok()) return;
  // Only a note signed by our key can open; it must round-trip.
  std::string again = ledger::merkle::SignCheckpoint(*opened, kName, Key());
  auto reopened = ledger::merkle::OpenCheckpoint(again, kName, Key().public_key());
  Check(reopened.ok() && Same(*opened, *reopened));
}

Checkpoint FromBytes(Reader& in) {
  Checkpoint cp;
  // A non-empty origin of printable ASCII (the note text forbids control
  // characters; key names forbid spaces, origins do not).
  const size_t len = 1 + in.Byte() % 48;
  for (size_t i = 0; i < len; ++i) cp.origin.push_back(static_cast<char>(0x20 + in.Byte() % 0x5f));
  if (cp.origin[0] == ' ') cp.origin[0] = 'o';
  cp.size = in.U64();
  if (in.Byte() & 1) cp.size &= 0xffff;
  for (uint8_t& b : cp.root) b = in.Byte();
  return cp;
}

void RoundTrip(Reader& in) {
  const Checkpoint cp = FromBytes(in);
  const std::string note = ledger::merkle::SignCheckpoint(cp, kName, Key());
  auto opened = ledger::merkle::OpenCheckpoint(note, kName, Key().public_key());
  Check(opened.ok());
  Check(Same(cp, *opened));

  // Any single-byte change in the signed text is refused.
  const std::string text = ledger::merkle::CheckpointText(cp);
  std::string tampered = note;
  const size_t at = in.U64() % text.size();
  uint8_t flip = in.Byte();
  if (flip == 0) flip = 1;
  tampered[at] = static_cast<char>(tampered[at] ^ flip);
  auto bad = ledger::merkle::OpenCheckpoint(tampered, kName, Key().public_key());
  Check(!bad.ok());

  // Witness lines appended from the rest of the input.
  std::string with_more = note;
  with_more.append(in.Rest());
  auto more = ledger::merkle::OpenCheckpoint(with_more, kName, Key().public_key());
  if (more.ok()) Check(Same(cp, *more));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  WholeNote(std::string_view(reinterpret_cast<const char*>(data), size));
  Reader in(data, size);
  RoundTrip(in);
  return 0;
}
