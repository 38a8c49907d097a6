// Writes the valid seed inputs of the fuzz targets that need signatures or
// protobuf framing (fuzz_envelope, fuzz_checkpoint) into <dir>/<target>/.
// Deterministic: fixed seeds, fixed contents. Run by hand when the formats
// change:   build-fuzz/tests/fuzz/fuzz_make_corpus tests/fuzz/corpus
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "ledger/crypto/ed25519.h"
#include "ledger/event/envelope.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/v1/events.pb.h"
#include "ledger/v1/record.pb.h"

namespace {

using ledger::crypto::PrivateKey;
namespace v1 = ledger::v1;

void Write(const std::filesystem::path& dir, const std::string& name, const std::string& bytes) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

PrivateKey Key(char fill) { return *PrivateKey::FromSeed(std::string(32, fill)); }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root = argv[1];

  // fuzz_envelope: signed events of several kinds, and stored records.
  const PrivateKey op = Key('\x01');
  const PrivateKey member = Key('\x02');
  std::vector<v1::EventBody> bodies;
  {
    v1::EventBody b;
    b.set_author("operator");
    b.set_idempotency_key("genesis");
    auto* g = b.mutable_genesis();
    g->set_operator_id("operator");
    g->set_operator_public_key(std::string(op.public_key().raw()));
    g->set_origin("ledger-x");
    auto* r = g->add_registrars();
    r->set_org_id("registrar");
    r->add_public_keys(std::string(member.public_key().raw()));
    bodies.push_back(b);
  }
  {
    v1::EventBody b;
    b.set_ledger_id("ledger-x");
    b.set_author("o1");
    b.set_idempotency_key("v1");
    auto* v = b.mutable_vote_cast();
    v->set_proposal_id("p0");
    v->set_gateway_id("g0");
    v->set_position(v1::ASSENT);
    v->set_rationale("fine");
    bodies.push_back(b);
  }
  {
    v1::EventBody b;
    b.set_ledger_id("ledger-x");
    b.set_author("o1");
    b.set_idempotency_key("c1");
    auto* c = b.mutable_collective_proposed();
    c->set_collective_id("col");
    c->mutable_charter()->set_name("c");
    c->mutable_charter()->add_founding_members("o1");
    auto* g = c->mutable_charter()->add_gateways();
    g->set_id("g0");
    g->mutable_rule()->set_kind(v1::MAJORITY);
    bodies.push_back(b);
  }
  {
    v1::EventBody b;
    b.set_ledger_id("ledger-x");
    b.set_author("operator");
    b.set_idempotency_key("s1");
    auto* p = b.mutable_gateway_passed();
    p->set_proposal_id("p0");
    p->set_gateway_id("g0");
    p->mutable_tally()->set_electorate(3);
    p->mutable_tally()->add_vote_positions(7);
    bodies.push_back(b);
  }
  int n = 0;
  for (const v1::EventBody& body : bodies) {
    const v1::SignedEvent signed_event = ledger::SealEvent(body, n == 0 ? op : member);
    Write(root / "fuzz_envelope", "signed_" + std::to_string(n), signed_event.SerializeAsString());
    v1::Record record;
    record.set_position(n % 2);
    record.set_ledger_time_unix_ns(1'700'000'000'000'000'000 + n);
    record.set_signed_event(signed_event.SerializeAsString());
    Write(root / "fuzz_envelope", "record_" + std::to_string(n), record.SerializeAsString());
    ++n;
  }

  // fuzz_checkpoint: notes signed by the fuzzer's fixed key (0x42 seed), one
  // with a witness line, and one by another key.
  const PrivateKey cp_key = Key('\x42');
  ledger::merkle::Checkpoint cp;
  cp.origin = "ledger-x";
  cp.size = 12345;
  for (size_t i = 0; i < cp.root.size(); ++i) cp.root[i] = static_cast<uint8_t>(i * 7);
  const std::string note = ledger::merkle::SignCheckpoint(cp, "ledger-x", cp_key);
  Write(root / "fuzz_checkpoint", "signed", note);
  std::string witness = ledger::merkle::SignCheckpoint(cp, "witness", Key('\x43'));
  Write(root / "fuzz_checkpoint", "cosigned", note + witness.substr(witness.rfind("\n\n") + 2));
  cp.size = 0;
  cp.root = ledger::merkle::EmptyRoot();
  Write(root / "fuzz_checkpoint", "empty_tree", ledger::merkle::SignCheckpoint(cp, "ledger-x", cp_key));
  Write(root / "fuzz_checkpoint", "other_key", ledger::merkle::SignCheckpoint(cp, "ledger-x", Key('\x44')));
  return 0;
}
