// libFuzzer target: what a witness and ledgerd read from strangers.
//   first byte % 3 == 0: the rest is a tlog-policy file (Policy::Parse, and
//     Check of a fixed signed checkpoint against what parsed);
//   == 1: the rest is an add-checkpoint request body (Witness::AddCheckpoint);
//   == 2: the rest is the old-size and proof lines of a request whose
//     checkpoint is validly signed by the trusted log (a tree of 16 leaves),
//     so the size checks, the consistency proof and the persisted state are
//     reached, not only the parser.
// The witness keeps its state between inputs (in a directory under /dev/shm
// where there is one), as a real witness does. Properties: no crash; a 200
// carries one cosignature line that verifies; a size once cosigned never
// goes down.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <unistd.h>

#include "ledger/crypto/ed25519.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/merkle/tree.h"
#include "ledger/witness/cosignature.h"
#include "ledger/witness/policy.h"
#include "ledger/witness/witness.h"

namespace {

using namespace ledger;

constexpr char kOrigin[] = "fuzz.example/log";

struct Fixture {
  crypto::PrivateKey log_key = *crypto::PrivateKey::FromSeed(std::string(32, '\x11'));
  witness::VerifierKey log_vkey = witness::MakeVerifierKey(kOrigin, witness::kNoteEd25519, log_key.public_key());
  std::unique_ptr<witness::Witness> witness;
  std::string note;  // size 16, signed by the log
  uint64_t max_size = 0;

  Fixture() {
    const char* base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    std::string dir = std::string(base) + "/fuzz-witness-" + std::to_string(getpid());
    witness = *witness::Witness::Open(dir, "fuzz.example/witness", {log_vkey});
    merkle::Frontier frontier;
    for (int i = 0; i < 16; ++i) frontier.Append(merkle::HashLeaf(std::string(1, static_cast<char>(i))));
    note = merkle::SignCheckpoint(merkle::Checkpoint{kOrigin, 16, frontier.Root()}, kOrigin, log_key);
  }
};

Fixture& Get() {
  static Fixture* fixture = new Fixture();
  return *fixture;
}

void CheckAnswer(Fixture& f, const witness::Witness::Response& response, const std::string& note) {
  if (response.status != 200) return;
  auto cosigned = merkle::ParseSignedNote(witness::AddSignatureLines(note, response.body));
  if (!cosigned.ok() || !witness::FindCosignature(*cosigned, f.witness->vkey()).ok()) std::abort();
  auto latest = f.witness->Latest(kOrigin);
  if (!latest.has_value() || latest->size < f.max_size) std::abort();  // went backwards
  f.max_size = latest->size;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Fixture& f = Get();
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      auto policy = witness::Policy::Parse(rest);
      if (policy.ok()) (void)policy->Check(f.note);
      break;
    }
    case 1: {
      auto response = f.witness->AddCheckpoint(rest);
      size_t blank = rest.find("\n\n");
      CheckAnswer(f, response, blank == std::string::npos ? rest : rest.substr(blank + 2));
      break;
    }
    default: {
      auto response = f.witness->AddCheckpoint(rest + "\n" + f.note);
      CheckAnswer(f, response, f.note);
      break;
    }
  }
  return 0;
}
