// ledger_loadgen: drives a running ledgerd over gRPC and prints figures
// against the write-path bars of DESIGN.md §8. A benchmark, not a test.
//
//   ledger_loadgen --server HOST:PORT --registrar-key FILE [--registrar-id ID]
//                  [--clients N] [--events N] [--orgs N] [--mode unary|batch|both]
//                  [--batch-size N] [--verify-seconds S] [--json]
//
// 1. Reads the ledger id, registers --orgs fresh organisations (signed by the
//    registrar, AppendBatch of up to 100).
// 2. Pre-signs every event before any timing: KeyAdded by organisation i
//    (round robin) adding a fresh key to itself.
// 3. Measures, while the server is idle, the Ed25519 verify rate of this
//    machine with crypto::VerifyEvent (the server's function) on one core and
//    on all cores, and OpenSSL's EVP verify of the same events on one core.
// 4. Unary mode: --clients threads calling Append one event at a time.
//    Batch mode: the same with AppendBatch of --batch-size events.
// 5. Prints a report (or one JSON object with --json).
//
// Exit status: 0 when every call succeeded, 1 on failures or a setup error,
// 2 on bad flags.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <sys/resource.h>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/channel.h"
#include "client/error_detail.h"
#include "grpcpp/grpcpp.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/event/envelope.h"
#include "ledger/v1/events.pb.h"
#include "ledger/v1/ledger_service.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "openssl/evp.h"
#include "services/command_line.h"
#include "tools/bench_util.h"

// Defaults as in kUsage, which is what --help prints.
ABSL_FLAG(std::string, server, "", "ledgerd to drive, HOST:PORT (required)");
ABSL_FLAG(std::string, registrar_key, "", "the registrar's PEM private key (required)");
ABSL_FLAG(std::string, registrar_id, "registrar", "the registrar's organisation id");
ABSL_FLAG(int, clients, 64, "concurrent client threads");
ABSL_FLAG(int64_t, events, 20000, "events per mode");
ABSL_FLAG(int, orgs, 100, "organisations to register and sign as");
ABSL_FLAG(std::string, mode, "both", "unary, batch or both");
ABSL_FLAG(int, batch_size, 100, "events per AppendBatch, 1..1000");
ABSL_FLAG(double, verify_seconds, 2, "seconds per Ed25519 verify measurement");
ABSL_FLAG(bool, json, false, "print the report as one JSON object");

namespace ledger {
namespace {

using bench::Clock;
using bench::LoadAverage;
using bench::Percentile;
using bench::Round;
using bench::Seconds;
using client::CallPolicy;
using client::PrepareCall;

constexpr int kClientsPerChannel = 8;
constexpr size_t kRegisterBatch = 100;
constexpr double kBatchTargetRatio = 0.5;    // DESIGN §8: ≥ half the all-core verify rate
constexpr double kUnaryTargetPerSecond = 6000;  // with 64 clients
constexpr int kUnaryTargetClients = 64;
constexpr auto kCallTimeout = std::chrono::seconds(60);

// ------------------------------------------------------------------ flags

struct Flags {
  std::string server;
  std::string registrar_key;
  std::string registrar_id;
  int clients = 0;
  int64_t events = 0;
  int orgs = 0;
  bool unary = true;
  bool batch = true;
  std::string mode;
  int batch_size = 0;
  double verify_seconds = 0;
  bool json = false;
};

constexpr char kUsage[] =
    "usage: ledger_loadgen --server HOST:PORT --registrar-key FILE [options]\n"
    "  --server HOST:PORT     ledgerd to drive (required)\n"
    "  --registrar-key FILE   the registrar's PEM private key (required)\n"
    "  --registrar-id ID      the registrar's organisation id (default registrar)\n"
    "  --clients N            concurrent client threads (default 64)\n"
    "  --events N             events per mode (default 20000)\n"
    "  --orgs N               organisations to register and sign as (default 100)\n"
    "  --mode M               unary, batch or both (default both)\n"
    "  --batch-size N         events per AppendBatch, 1..1000 (default 100)\n"
    "  --verify-seconds S     seconds per Ed25519 verify measurement (default 2)\n"
    "  --json                 print the report as one JSON object\n";

[[noreturn]] void Usage(const std::string& error) {
  std::cerr << "ledger_loadgen: " << error << "\n" << kUsage;
  std::exit(2);
}

// The bounds of the numeric flags, checked after parsing (a value that does
// not parse as a number gets the same message).
struct Range {
  const char* flag;
  int64_t min, max;
};
const Range kRanges[] = {{"--clients", 1, 10000},
                         {"--events", 1, 100000000},
                         {"--orgs", 1, 1000000},
                         {"--batch-size", 1, static_cast<int64_t>(kMaxBatchEvents)}};

std::string RangeError(const std::string& flag, const std::string& value) {
  if (flag == "--verify-seconds") {
    return absl::StrCat("--verify-seconds wants a number in (0, 3600], got '", value, "'");
  }
  for (const Range& r : kRanges) {
    if (flag == r.flag) {
      return absl::StrCat(flag, " wants an integer in ", r.min, "..", r.max, ", got '", value, "'");
    }
  }
  return absl::StrCat(flag, ": bad value '", value, "'");
}

template <typename T>
T InRange(const char* flag, T value) {
  for (const Range& r : kRanges) {
    if (std::string_view(flag) == r.flag && (value < r.min || value > r.max)) {
      Usage(RangeError(flag, absl::StrCat(value)));
    }
  }
  return value;
}

Flags ParseFlags(int argc, char** argv) {
  cli::CommandLineError error = cli::ReadCommandLine(
      argc, argv,
      {&absl::GetFlagReflectionHandle(FLAGS_server),
       &absl::GetFlagReflectionHandle(FLAGS_registrar_key),
       &absl::GetFlagReflectionHandle(FLAGS_registrar_id),
       &absl::GetFlagReflectionHandle(FLAGS_clients), &absl::GetFlagReflectionHandle(FLAGS_events),
       &absl::GetFlagReflectionHandle(FLAGS_orgs), &absl::GetFlagReflectionHandle(FLAGS_mode),
       &absl::GetFlagReflectionHandle(FLAGS_batch_size),
       &absl::GetFlagReflectionHandle(FLAGS_verify_seconds),
       &absl::GetFlagReflectionHandle(FLAGS_json)},
      kUsage);
  if (error.kind == cli::CommandLineError::kBadValue) Usage(RangeError(error.flag, error.value));
  if (!error.ok()) Usage(error.Message());

  Flags flags;
  flags.server = absl::GetFlag(FLAGS_server);
  flags.registrar_key = absl::GetFlag(FLAGS_registrar_key);
  flags.registrar_id = absl::GetFlag(FLAGS_registrar_id);
  flags.clients = InRange("--clients", absl::GetFlag(FLAGS_clients));
  flags.events = InRange("--events", absl::GetFlag(FLAGS_events));
  flags.orgs = InRange("--orgs", absl::GetFlag(FLAGS_orgs));
  flags.batch_size = InRange("--batch-size", absl::GetFlag(FLAGS_batch_size));
  flags.mode = absl::GetFlag(FLAGS_mode);
  if (flags.mode == "unary") {
    flags.batch = false;
  } else if (flags.mode == "batch") {
    flags.unary = false;
  } else if (flags.mode != "both") {
    Usage(absl::StrCat("--mode wants unary, batch or both, got '", flags.mode, "'"));
  }
  flags.verify_seconds = absl::GetFlag(FLAGS_verify_seconds);
  if (!(flags.verify_seconds > 0) || flags.verify_seconds > 3600) {
    Usage(RangeError("--verify-seconds", absl::StrCat(flags.verify_seconds)));
  }
  flags.json = absl::GetFlag(FLAGS_json);
  if (flags.server.empty()) Usage("--server HOST:PORT is required");
  if (flags.registrar_key.empty()) Usage("--registrar-key FILE is required");
  if (flags.registrar_id.empty()) Usage("--registrar-id must not be empty");
  return flags;
}

// ------------------------------------------------------------------ helpers

[[noreturn]] void Fail(const std::string& message) {
  std::cerr << "ledger_loadgen: " << message << "\n";
  std::exit(1);
}

std::string RandomHex(size_t bytes) {
  std::random_device rd;
  std::string out;
  static const char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < bytes; ++i) {
    unsigned b = rd() & 0xff;
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// CPU seconds (user + system) this process has used so far.
double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto tv = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return tv(usage.ru_utime) + tv(usage.ru_stime);
}

// Runs fn(i) for i in [0, n) on `threads` threads.
template <typename Fn>
void ParallelFor(size_t n, unsigned threads, Fn fn) {
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < std::max(1u, threads); ++t) {
    pool.emplace_back([&] {
      for (size_t i; (i = next.fetch_add(1)) < n;) fn(i);
    });
  }
  for (auto& th : pool) th.join();
}

// Separate channels get separate TCP connections.
std::shared_ptr<grpc::Channel> NewChannel(const std::string& target, int index) {
  return client::NewChannel(target, {.max_receive_message_bytes = 64 << 20,
                                     .max_send_message_bytes = 64 << 20,
                                     .own_connection = true,
                                     .connection_index = index});
}

// ------------------------------------------------------------------ setup

struct Org {
  std::string id;
  crypto::PrivateKey key;
};

std::vector<Org> RegisterOrganisations(v1::LedgerService::Stub& stub, const Flags& flags,
                                       const std::string& ledger_id,
                                       const crypto::PrivateKey& registrar,
                                       const std::string& run_id) {
  std::vector<Org> orgs;
  orgs.reserve(flags.orgs);
  for (int i = 0; i < flags.orgs; ++i) {
    orgs.push_back(Org{absl::StrCat("load-", run_id, "-", i), crypto::PrivateKey::Generate()});
  }
  for (size_t start = 0; start < orgs.size(); start += kRegisterBatch) {
    size_t end = std::min(orgs.size(), start + kRegisterBatch);
    v1::AppendBatchRequest request;
    for (size_t i = start; i < end; ++i) {
      v1::EventBody body;
      body.set_ledger_id(ledger_id);
      body.set_author(flags.registrar_id);
      body.set_idempotency_key(absl::StrCat("loadgen-", run_id, "-register-", i));
      body.set_client_time_unix_ms(NowUnixMs());
      auto* reg = body.mutable_organisation_registered();
      reg->set_org_id(orgs[i].id);
      reg->set_name(absl::StrCat("Load organisation ", i));
      reg->set_kind("loadgen");
      reg->add_public_keys(std::string(orgs[i].key.public_key().raw()));
      *request.add_events() = SealEvent(body, registrar);
    }
    v1::AppendBatchResponse response;
    grpc::ClientContext context;
    PrepareCall(context, kCallTimeout, CallPolicy::kWaitForReady);
    grpc::Status status = stub.AppendBatch(&context, request, &response);
    if (!status.ok()) {
      Fail(absl::StrCat("registering organisations ", start, "..", end - 1, ": ",
                        client::Describe(status)));
    }
    if (response.receipts_size() != static_cast<int>(end - start)) {
      Fail(absl::StrCat("registering organisations: ", response.receipts_size(),
                        " receipts for ", end - start, " events"));
    }
  }
  return orgs;
}

struct Presigned {
  std::vector<v1::SignedEvent> events;
  std::vector<uint32_t> signer;  // index into orgs, for the verify measurement
};

Presigned PresignKeyAdded(const std::vector<Org>& orgs, const std::string& ledger_id,
                          const std::string& run_id, const std::string& mode, int64_t count) {
  Presigned out;
  out.events.resize(count);
  out.signer.resize(count);
  int64_t now = NowUnixMs();
  ParallelFor(count, std::max(1u, std::thread::hardware_concurrency()), [&](size_t i) {
    const Org& org = orgs[i % orgs.size()];
    v1::EventBody body;
    body.set_ledger_id(ledger_id);
    body.set_author(org.id);
    body.set_idempotency_key(absl::StrCat("loadgen-", run_id, "-", mode, "-", i));
    body.set_client_time_unix_ms(now);
    auto* added = body.mutable_key_added();
    added->set_org_id(org.id);
    added->set_public_key(std::string(crypto::PrivateKey::Generate().public_key().raw()));
    out.events[i] = SealEvent(body, org.key);
    out.signer[i] = static_cast<uint32_t>(i % orgs.size());
  });
  return out;
}

// ------------------------------------------------------------------ verify rate

using bench::MeasureVerify;
using bench::VerifyResult;

// The same events verified by OpenSSL 3.0's EVP Ed25519, the alternative the
// verifier was chosen against (README, Decisions): measured here so the
// choice can be re-checked on any machine.
class OpenSslVerifier {
 public:
  explicit OpenSslVerifier(const std::vector<crypto::PublicKey>& keys) {
    for (const crypto::PublicKey& key : keys) {
      const std::string_view raw = key.raw();
      keys_.emplace_back(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                                     reinterpret_cast<const unsigned char*>(raw.data()),
                                                     raw.size()),
                         EVP_PKEY_free);
      if (keys_.back() == nullptr) Fail("OpenSSL refused an Ed25519 public key");
    }
  }

  bool Verify(size_t i, const v1::SignedEvent& event) const {
    // Built per call, as crypto::VerifyEvent does.
    std::string message = std::string(crypto::kEventDomain) + event.body();
    std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> context(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    const std::string& signature = event.signature();
    return context != nullptr &&
           EVP_DigestVerifyInit(context.get(), nullptr, nullptr, nullptr, keys_[i].get()) == 1 &&
           EVP_DigestVerify(context.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                            signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                            message.size()) == 1;
  }

 private:
  std::vector<std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)>> keys_;
};

// ------------------------------------------------------------------ load

struct ModeResult {
  std::string mode;
  int clients = 0;
  int batch_size = 1;
  int64_t events = 0;
  int64_t acknowledged = 0;
  int64_t calls = 0;
  int64_t failed_calls = 0;
  int64_t failed_events = 0;
  std::string first_error;
  double seconds = 0;
  double client_cpu_seconds = 0;  // this process, during the timed phase
  double p50_ms = 0, p99_ms = 0, max_ms = 0, mean_ms = 0;
  double appends_per_second() const { return seconds > 0 ? acknowledged / seconds : 0; }
};

ModeResult RunLoad(const std::string& mode, const Flags& flags,
                   const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                   const std::vector<v1::SignedEvent>& events, int batch_size) {
  // Requests are built before timing; each call takes the next one.
  std::vector<v1::AppendRequest> unary;
  std::vector<v1::AppendBatchRequest> batches;
  if (batch_size == 0) {
    unary.resize(events.size());
    for (size_t i = 0; i < events.size(); ++i) *unary[i].mutable_event() = events[i];
  } else {
    for (size_t start = 0; start < events.size(); start += batch_size) {
      auto& request = batches.emplace_back();
      size_t end = std::min(events.size(), start + batch_size);
      for (size_t i = start; i < end; ++i) *request.add_events() = events[i];
    }
  }
  size_t calls = batch_size == 0 ? unary.size() : batches.size();

  std::vector<std::unique_ptr<v1::LedgerService::Stub>> stubs;
  for (const auto& ch : channels) stubs.push_back(v1::LedgerService::NewStub(ch));

  std::atomic<size_t> next{0};
  std::atomic<int64_t> acknowledged{0}, failed_calls{0}, failed_events{0};
  std::mutex mu;
  std::string first_error;
  std::vector<std::vector<double>> latencies(flags.clients);
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  for (int c = 0; c < flags.clients; ++c) {
    pool.emplace_back([&, c] {
      v1::LedgerService::Stub& stub = *stubs[(c / kClientsPerChannel) % stubs.size()];
      auto& lat = latencies[c];
      lat.reserve(calls / flags.clients + 1);
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      for (size_t i; (i = next.fetch_add(1)) < calls;) {
        grpc::ClientContext context;
        PrepareCall(context, kCallTimeout, CallPolicy::kFailFast);
        grpc::Status status;
        int64_t want = 1, got = 0;
        Clock::time_point t0 = Clock::now();
        if (batch_size == 0) {
          v1::AppendResponse response;
          status = stub.Append(&context, unary[i], &response);
          if (status.ok()) got = response.has_receipt() ? 1 : 0;
        } else {
          v1::AppendBatchResponse response;
          want = batches[i].events_size();
          status = stub.AppendBatch(&context, batches[i], &response);
          if (status.ok()) got = response.receipts_size();
        }
        double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (status.ok() && got == want) {
          lat.push_back(ms);  // latency of successful calls only
          acknowledged.fetch_add(got);
          continue;
        }
        failed_calls.fetch_add(1);
        failed_events.fetch_add(want - (status.ok() ? std::min(got, want) : 0));
        if (status.ok()) acknowledged.fetch_add(std::min(got, want));
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.empty()) {
          first_error = status.ok() ? absl::StrCat("OK status with ", got, " receipts for ",
                                                   want, " events")
                                    : client::Describe(status);
        }
      }
    });
  }
  while (ready.load() < flags.clients) std::this_thread::yield();
  double cpu_start = ProcessCpuSeconds();
  Clock::time_point start = Clock::now();
  go.store(true, std::memory_order_release);
  for (auto& th : pool) th.join();
  double seconds = Seconds(Clock::now() - start);
  double cpu_seconds = ProcessCpuSeconds() - cpu_start;

  std::vector<double> all;
  for (auto& v : latencies) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());

  ModeResult r;
  r.mode = mode;
  r.clients = flags.clients;
  r.batch_size = batch_size == 0 ? 1 : batch_size;
  r.events = static_cast<int64_t>(events.size());
  r.acknowledged = acknowledged.load();
  r.calls = static_cast<int64_t>(calls);
  r.failed_calls = failed_calls.load();
  r.failed_events = failed_events.load();
  r.first_error = first_error;
  r.seconds = seconds;
  r.client_cpu_seconds = cpu_seconds;
  r.p50_ms = Percentile(all, 0.50);
  r.p99_ms = Percentile(all, 0.99);
  r.max_ms = all.empty() ? 0 : all.back();
  double sum = 0;
  for (double v : all) sum += v;
  r.mean_ms = all.empty() ? 0 : sum / all.size();
  return r;
}

// ------------------------------------------------------------------ report

struct Target {
  std::string name;
  std::string mode;
  double measured = 0;
  double required = 0;
  std::string unit;
  bool pass = false;
  std::string note;
};

int Main(int argc, char** argv) {
  Flags flags = ParseFlags(argc, argv);
  auto log = [&](const std::string& line) {
    std::cerr << "ledger_loadgen: " << line << std::endl;
  };

  auto registrar = crypto::ReadPrivateKeyFile(flags.registrar_key);
  if (!registrar.ok()) Fail(std::string(registrar.status().message()));

  int channel_count = (flags.clients + kClientsPerChannel - 1) / kClientsPerChannel;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < channel_count; ++i) channels.push_back(NewChannel(flags.server, i));
  for (auto& ch : channels) {
    if (!client::WaitForConnection(*ch, std::chrono::seconds(10))) {
      Fail(absl::StrCat("cannot connect to ", flags.server, " within 10 s"));
    }
  }
  auto setup_stub = v1::LedgerService::NewStub(channels[0]);

  // 1. Who the ledger is; register the organisations.
  v1::GetLedgerInfoResponse info;
  {
    grpc::ClientContext context;
    PrepareCall(context, kCallTimeout, CallPolicy::kWaitForReady);
    grpc::Status status = setup_stub->GetLedgerInfo(&context, {}, &info);
    if (!status.ok()) Fail(absl::StrCat("GetLedgerInfo: ", client::Describe(status)));
  }
  const std::string run_id = RandomHex(6);
  log(absl::StrCat("ledger ", info.ledger_id(), " (tree size ", info.tree_size(), "), run ",
                   run_id, "; registering ", flags.orgs, " organisations"));
  Clock::time_point t0 = Clock::now();
  std::vector<Org> orgs =
      RegisterOrganisations(*setup_stub, flags, info.ledger_id(), *registrar, run_id);
  log(absl::StrFormat("registered %d organisations in %.2f s", flags.orgs,
                      Seconds(Clock::now() - t0)));

  // 2. Pre-sign everything.
  t0 = Clock::now();
  Presigned unary_events, batch_events;
  if (flags.unary) {
    unary_events = PresignKeyAdded(orgs, info.ledger_id(), run_id, "unary", flags.events);
  }
  if (flags.batch) {
    batch_events = PresignKeyAdded(orgs, info.ledger_id(), run_id, "batch", flags.events);
  }
  log(absl::StrFormat("pre-signed %d events in %.2f s",
                      unary_events.events.size() + batch_events.events.size(),
                      Seconds(Clock::now() - t0)));

  // 3. Verify rate, while the server is idle.
  const Presigned& sample_src = flags.unary ? unary_events : batch_events;
  std::vector<const v1::SignedEvent*> sample;
  std::vector<crypto::PublicKey> sample_keys;
  for (size_t i = 0; i < sample_src.events.size() && i < 4096; ++i) {
    sample.push_back(&sample_src.events[i]);
    sample_keys.push_back(orgs[sample_src.signer[i]].key.public_key());
  }
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  log(absl::StrFormat("measuring Ed25519 verify: 1 thread, then %u threads, %.1f s each", cores,
                      flags.verify_seconds));
  double load_before = LoadAverage();
  auto sodium = [&](size_t i) {
    return crypto::VerifyEvent(sample_keys[i], sample[i]->body(), sample[i]->signature());
  };
  VerifyResult verify1 = MeasureVerify(sodium, sample.size(), 1, flags.verify_seconds);
  VerifyResult verifyN = MeasureVerify(sodium, sample.size(), cores, flags.verify_seconds);
  const OpenSslVerifier openssl(sample_keys);
  VerifyResult openssl1 = MeasureVerify([&](size_t i) { return openssl.Verify(i, *sample[i]); },
                                        sample.size(), 1, flags.verify_seconds);
  for (const VerifyResult* v : {&verify1, &verifyN, &openssl1}) {
    if (v->failed != 0) Fail(absl::StrCat(v->failed, " pre-signed events failed to verify"));
  }

  // 4. Load.
  std::vector<ModeResult> results;
  if (flags.unary) {
    log(absl::StrFormat("unary: %d events, %d clients, %d channels", flags.events, flags.clients,
                        channel_count));
    results.push_back(RunLoad("unary", flags, channels, unary_events.events, 0));
  }
  if (flags.batch) {
    log(absl::StrFormat("batch: %d events, %d clients, %d channels, %d per batch", flags.events,
                        flags.clients, channel_count, flags.batch_size));
    results.push_back(RunLoad("batch", flags, channels, batch_events.events, flags.batch_size));
  }

  double load_after = LoadAverage();

  // 5. Targets.
  std::vector<Target> targets;
  for (const ModeResult& r : results) {
    if (r.mode == "batch") {
      Target t;
      t.name = "batched appends/s >= 0.5 x all-core verify rate";
      t.mode = "batch";
      t.measured = verifyN.rate() > 0 ? r.appends_per_second() / verifyN.rate() : 0;
      t.required = kBatchTargetRatio;
      t.unit = "ratio";
      t.pass = r.failed_calls == 0 && t.measured >= t.required;
      if (r.failed_calls != 0) t.note = "calls failed";
      targets.push_back(t);
    } else {
      Target t;
      t.name = "unary appends/s >= 6000 with 64 clients";
      t.mode = "unary";
      t.measured = r.appends_per_second();
      t.required = kUnaryTargetPerSecond;
      t.unit = "appends/s";
      t.pass = r.failed_calls == 0 && t.measured >= t.required;
      if (r.failed_calls != 0) t.note = "calls failed";
      if (r.clients != kUnaryTargetClients) {
        t.note = absl::StrCat(t.note.empty() ? "" : t.note + "; ", "run with ", r.clients,
                              " clients, not 64");
      }
      targets.push_back(t);
    }
  }

  bool any_failure = false;
  for (const ModeResult& r : results) any_failure |= r.failed_calls != 0;

  if (flags.json) {
    using Json = nlohmann::ordered_json;
    Json out;
    out["server"] = flags.server;
    out["ledger_id"] = info.ledger_id();
    out["run_id"] = run_id;
    out["clients"] = flags.clients;
    out["channels"] = channel_count;
    out["orgs"] = flags.orgs;
    out["events_per_mode"] = flags.events;
    out["batch_size"] = flags.batch_size;
    out["hardware_concurrency"] = cores;
    out["load_average_1m"] = {{"before", Round(load_before, 2)}, {"after", Round(load_after, 2)}};
    Json& modes = out["modes"] = Json::object();
    for (const ModeResult& r : results) {
      double ratio = verifyN.rate() > 0 ? r.appends_per_second() / verifyN.rate() : 0;
      modes[r.mode] = {
          {"events", r.events},
          {"acknowledged", r.acknowledged},
          {"calls", r.calls},
          {"events_per_call", r.batch_size},
          {"seconds", Round(r.seconds, 4)},
          {"client_cpu_seconds", Round(r.client_cpu_seconds, 3)},
          {"appends_per_second", Round(r.appends_per_second(), 1)},
          {"latency_ms",
           {{"p50", Round(r.p50_ms, 3)},
            {"p99", Round(r.p99_ms, 3)},
            {"max", Round(r.max_ms, 3)},
            {"mean", Round(r.mean_ms, 3)}}},
          {"failed_calls", r.failed_calls},
          {"failed_events", r.failed_events},
          {"first_error", r.first_error.empty() ? Json(nullptr) : Json(r.first_error)},
          {"ratio_to_all_core_verify", Round(ratio, 4)}};
    }
    auto verify_json = [](const VerifyResult& v) {
      return Json{{"threads", v.threads},
                  {"verifies", v.verifies},
                  {"seconds", Round(v.seconds, 3)},
                  {"per_second", Round(v.rate(), 1)}};
    };
    out["verify"] = {{"one_core", verify_json(verify1)},
                     {"all_cores", verify_json(verifyN)},
                     {"openssl_one_core", verify_json(openssl1)}};
    Json& targets_json = out["targets"] = Json::array();
    for (const Target& t : targets) {
      Json target = {{"name", t.name},
                     {"mode", t.mode},
                     {"measured", Round(t.measured, 4)},
                     {"required", Round(t.required, 4)},
                     {"unit", t.unit},
                     {"result", t.pass ? "PASS" : "MISS"}};
      if (!t.note.empty()) target["note"] = t.note;
      targets_json.push_back(std::move(target));
    }
    out["all_calls_succeeded"] = !any_failure;
    std::cout << bench::DumpJson(out) << std::endl;
  } else {
    std::cout << absl::StrFormat(
        "ledger_loadgen: %s, ledger %s, run %s\n"
        "  %d clients on %d channels, %d organisations, %d events per mode, %u cores\n"
        "  load average (1 min) %.2f before the measurements, %.2f after%s\n\n",
        flags.server, info.ledger_id(), run_id, flags.clients, channel_count, flags.orgs,
        flags.events, cores, load_before, load_after,
        load_before > 0.5 * cores ? "  (other work on this machine skews the figures)" : "");
    std::cout << absl::StrFormat("%-6s %8s %6s %8s %9s %12s %9s %9s %9s %9s %15s\n", "mode",
                                 "acked", "ev/call", "calls", "seconds", "appends/s", "p50 ms",
                                 "p99 ms", "max ms", "failures", "/all-core verify");
    for (const ModeResult& r : results) {
      double ratio = verifyN.rate() > 0 ? r.appends_per_second() / verifyN.rate() : 0;
      std::cout << absl::StrFormat("%-6s %8d %6d %8d %9.3f %12.1f %9.2f %9.2f %9.2f %9d %15.3f\n",
                                   r.mode, r.acknowledged, r.batch_size, r.calls, r.seconds,
                                   r.appends_per_second(), r.p50_ms, r.p99_ms, r.max_ms,
                                   r.failed_calls, ratio);
    }
    for (const ModeResult& r : results) {
      std::cout << absl::StrFormat("  %s: this client used %.2f CPU s (%.0f%% of one core) while timed\n",
                                   r.mode, r.client_cpu_seconds,
                                   r.seconds > 0 ? 100 * r.client_cpu_seconds / r.seconds : 0);
    }
    for (const ModeResult& r : results) {
      if (r.failed_calls != 0) {
        std::cout << absl::StrFormat("  %s: %d calls failed (%d events unacknowledged); first: %s\n",
                                     r.mode, r.failed_calls, r.failed_events, r.first_error);
      }
    }
    std::cout << absl::StrFormat(
        "\nEd25519 verify (crypto::VerifyEvent, server idle):\n"
        "  one core      %10.1f verifies/s\n"
        "  all %2u cores  %10.1f verifies/s\n"
        "  OpenSSL EVP, one core %10.1f verifies/s (libsodium / OpenSSL = %.2fx)\n\n",
        verify1.rate(), verifyN.threads, verifyN.rate(), openssl1.rate(),
        openssl1.rate() > 0 ? verify1.rate() / openssl1.rate() : 0);
    std::cout << "targets (DESIGN.md §8):\n";
    for (const Target& t : targets) {
      std::string measured = t.unit == "ratio"
                                 ? absl::StrFormat("%.3f (need %.2f)", t.measured, t.required)
                                 : absl::StrFormat("%.1f/s (need %.0f/s)", t.measured, t.required);
      std::cout << absl::StrFormat("  %-4s  %-48s %s%s\n", t.pass ? "PASS" : "MISS", t.name,
                                   measured, t.note.empty() ? "" : "  [" + t.note + "]");
    }
  }
  return any_failure ? 1 : 0;
}

}  // namespace
}  // namespace ledger

int main(int argc, char** argv) { return ledger::Main(argc, argv); }
