// Fuzzes the evidence-bundle reader and the offline verifier behind it:
// arbitrary bytes as a bundle file must be read frame by frame, or refused
// with a clear error, and verified (or not) without crashing, hanging or
// reading past its bounds; and a bundle that verifies must really be a
// well-formed one.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "ledger/audit/bundle.h"
#include "ledger/audit/verifier.h"

namespace {

std::string TempPath() {
  static const std::string path = "/tmp/fuzz_bundle." + std::to_string(::getpid());
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = TempPath();
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  // The reader alone: every frame, to the end or the first error.
  auto reader = ledger::audit::BundleReader::Open(path);
  if (reader.ok()) {
    for (int frames = 0; frames < 100000; ++frames) {
      auto frame = (*reader)->Next();
      if (!frame.ok() || !frame->has_value()) break;
      if ((*reader)->offset() > size) std::abort();  // read past the input
    }
  }
  // The verifier over it (the bundle's own operator key, one thread).
  ledger::audit::VerifyOptions options;
  options.threads = 1;
  const ledger::v1::VerifyReport report = ledger::audit::VerifyBundle(path, options);
  if (report.verified() && (report.records() == 0 || report.checkpoints() == 0)) std::abort();  // nothing proven
  std::remove(path.c_str());
  return 0;
}
