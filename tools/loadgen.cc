// ledger_loadgen: drives a running ledgerd over gRPC and prints figures
// against the write-path bars of DESIGN.md §8. A benchmark, not a test.
//
//   ledger_loadgen --server HOST:PORT --registrar-key FILE [--registrar-id ID]
//                  [--clients N] [--events N] [--orgs N] [--mode unary|batch|both|hostile|governance]
//                  [--batch-size N] [--verify-seconds S] [--json]
//                  [--rate R | --half-peak] [--report-every N]
//                  [--hostile-batches N] [--hostile-votes N] [--probe-events N] [--server-pid PID]
//                  [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]
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
//    --rate R: unary mode is open loop instead: event i is due at start + i/R
//    and its latency is measured from when it was due (so a server that falls
//    behind shows in the latency, not as a lower send rate). --half-peak: a
//    closed-loop unary run measures the peak rate, then an open-loop run at
//    half of it prints the p50/p99 there. --report-every N: the rate of every
//    N acknowledged events of each run, and the last window's rate over the
//    first's (a log that grows slower shows it).
// 5. Prints a report (or one JSON object with --json).
//
// --mode hostile (issue 9, item 1) instead: one member of a collective of
// three proposes, so one unanimity gateway stays open (the other two never
// vote), and sends --hostile-batches AppendBatch calls of --hostile-votes
// votes each on that gateway, alternating assent and objection, each with a
// rationale of kHostileRationaleBytes, the largest the server accepts.
// Refused batches (a position-change cap, a size limit) are counted, not
// failures. Unrelated members (the other --orgs, in turn, on one client and
// connection of their own) append single KeyAdded events, one at a time,
// --probe-events before the attack (quiet), throughout it, and --probe-events
// after it; their p50/p99 in each phase and the ratio to the quiet p99 are
// printed with ledgerd's peak RSS (VmHWM of /proc/PID/status: --server-pid
// PID, else the one process named ledgerd on this machine). --clients,
// --events and --batch-size do not apply.
//
// --mode governance (issue 9, item 6) instead: a log that is not KeyAdded
// only, for `ledgerctl verify --bench`. Three members form a collective with
// one unanimity gateway; then --clients threads send AppendBatch calls of one
// proposal and the three members' assents (with short rationales) until
// --events member events are written: each round also makes the operator's
// GatewayPassed and DecisionAdopted, so records are 2/3 member, 1/3 system.
// It prints the rate over the first 1,000 rounds beside the overall one and
// their ratio (a cost per proposal that grows with the collective shows).
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
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
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
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/event/envelope.h"
#include "ledger/rules/limits.h"
#include "ledger/v1/events.pb.h"
#include "ledger/v1/governance_service.grpc.pb.h"
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
ABSL_FLAG(std::string, mode, "both", "unary, batch, both, hostile or governance");
ABSL_FLAG(int, batch_size, 100, "events per AppendBatch, 1..1000");
ABSL_FLAG(double, verify_seconds, 2, "seconds per Ed25519 verify measurement");
ABSL_FLAG(bool, json, false, "print the report as one JSON object");
ABSL_FLAG(double, rate, 0, "unary mode open loop at R events/s (0: closed loop)");
ABSL_FLAG(bool, half_peak, false, "unary mode: measure the peak, then run open loop at half of it");
ABSL_FLAG(int64_t, report_every, 0, "print the rate of every N acknowledged events of a run");
ABSL_FLAG(int, hostile_batches, 5, "hostile mode: AppendBatch calls of votes on the one gateway");
ABSL_FLAG(int, hostile_votes, 1000, "hostile mode: votes per batch");
ABSL_FLAG(int64_t, probe_events, 1000, "hostile mode: the unrelated member's appends before and after");
ABSL_FLAG(int64_t, server_pid, 0, "hostile mode: ledgerd's process id, for its peak RSS");
ABSL_FLAG(std::string, tls_ca, "", "speak TLS; the server's certificate must chain to this CA");
ABSL_FLAG(std::string, tls_cert, "", "client certificate for mutual TLS");
ABSL_FLAG(std::string, tls_key, "", "the client certificate's private key");

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
// The largest rationale the server accepts (rules version 3).
constexpr size_t kHostileRationaleBytes = ledger::rules::kMaxTextBytes;
constexpr double kHostileRssLimitBytes = 1024.0 * 1024 * 1024;  // issue 9: under 1 GiB
constexpr double kHostileP99Ratio = 2;                          // within 2x of the quiet run
constexpr double kOpenLoopP99TargetMs = 10;  // issue 9: unary p99 at half the peak rate

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
  bool hostile = false;
  bool governance = false;
  int batch_size = 0;
  double verify_seconds = 0;
  bool json = false;
  double rate = 0;
  bool half_peak = false;
  int64_t report_every = 0;
  int hostile_batches = 0;
  int hostile_votes = 0;
  int64_t probe_events = 0;
  int64_t server_pid = 0;
  client::TlsOptions tls;
};

constexpr char kUsage[] =
    "usage: ledger_loadgen --server HOST:PORT --registrar-key FILE [options]\n"
    "  --server HOST:PORT     ledgerd to drive (required)\n"
    "  --registrar-key FILE   the registrar's PEM private key (required)\n"
    "  --registrar-id ID      the registrar's organisation id (default registrar)\n"
    "  --clients N            concurrent client threads (default 64)\n"
    "  --events N             events per mode (default 20000)\n"
    "  --orgs N               organisations to register and sign as (default 100)\n"
    "  --mode M               unary, batch, both, hostile or governance (default both)\n"
    "  --batch-size N         events per AppendBatch, 1..1000 (default 100)\n"
    "  --verify-seconds S     seconds per Ed25519 verify measurement (default 2)\n"
    "  --json                 print the report as one JSON object\n"
    "  --rate R               unary: open loop, R events/s, latency from each event's due time\n"
    "  --half-peak            unary: closed loop for the peak rate, then open loop at half of it\n"
    "  --report-every N       print the rate of every N acknowledged events of a run\n"
    "  --hostile-batches N    hostile: AppendBatch calls of votes on one open gateway (default 5)\n"
    "  --hostile-votes N      hostile: votes per batch, 1..1000 (default 1000)\n"
    "  --probe-events N       hostile: the unrelated member's appends before and after (default 1000)\n"
    "  --server-pid PID       hostile: ledgerd's pid, for its peak RSS (default: the one ledgerd)\n"
    "  --tls-ca FILE          speak TLS; the server's certificate must chain to this CA (PEM)\n"
    "  --tls-cert FILE        client certificate (PEM) for mutual TLS (needs --tls-key)\n"
    "  --tls-key FILE         the client certificate's private key (PEM)\n";

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
                         {"--batch-size", 1, static_cast<int64_t>(kMaxBatchEvents)},
                         {"--report-every", 0, 100000000},
                         {"--hostile-batches", 1, 100000},
                         {"--hostile-votes", 1, static_cast<int64_t>(kMaxBatchEvents)},
                         {"--probe-events", 1, 10000000},
                         {"--server-pid", 0, 4194304}};

std::string RangeError(const std::string& flag, const std::string& value) {
  if (flag == "--verify-seconds") {
    return absl::StrCat("--verify-seconds wants a number in (0, 3600], got '", value, "'");
  }
  if (flag == "--rate") {
    return absl::StrCat("--rate wants events per second in (0, 10000000], got '", value, "'");
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
       &absl::GetFlagReflectionHandle(FLAGS_json), &absl::GetFlagReflectionHandle(FLAGS_rate),
       &absl::GetFlagReflectionHandle(FLAGS_half_peak), &absl::GetFlagReflectionHandle(FLAGS_report_every),
       &absl::GetFlagReflectionHandle(FLAGS_hostile_batches), &absl::GetFlagReflectionHandle(FLAGS_hostile_votes),
       &absl::GetFlagReflectionHandle(FLAGS_probe_events), &absl::GetFlagReflectionHandle(FLAGS_server_pid),
       &absl::GetFlagReflectionHandle(FLAGS_tls_ca), &absl::GetFlagReflectionHandle(FLAGS_tls_cert),
       &absl::GetFlagReflectionHandle(FLAGS_tls_key)},
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
  } else if (flags.mode == "hostile") {
    flags.unary = flags.batch = false;
    flags.hostile = true;
  } else if (flags.mode == "governance") {
    flags.unary = flags.batch = false;
    flags.governance = true;
  } else if (flags.mode != "both") {
    Usage(absl::StrCat("--mode wants unary, batch, both, hostile or governance, got '", flags.mode, "'"));
  }
  flags.rate = absl::GetFlag(FLAGS_rate);
  if (flags.rate != 0 && (!(flags.rate > 0) || flags.rate > 10'000'000)) {
    Usage(RangeError("--rate", absl::StrCat(flags.rate)));
  }
  flags.half_peak = absl::GetFlag(FLAGS_half_peak);
  if ((flags.rate > 0 || flags.half_peak) && flags.mode != "unary") {
    Usage("--rate and --half-peak go with --mode unary");
  }
  if (flags.rate > 0 && flags.half_peak) Usage("--rate and --half-peak exclude each other");
  flags.report_every = InRange("--report-every", absl::GetFlag(FLAGS_report_every));
  flags.hostile_batches = InRange("--hostile-batches", absl::GetFlag(FLAGS_hostile_batches));
  flags.hostile_votes = InRange("--hostile-votes", absl::GetFlag(FLAGS_hostile_votes));
  flags.probe_events = InRange("--probe-events", absl::GetFlag(FLAGS_probe_events));
  flags.server_pid = InRange("--server-pid", absl::GetFlag(FLAGS_server_pid));
  if (flags.governance && flags.orgs < 3) {
    Usage(absl::StrCat("--mode governance needs --orgs of at least 3 (the collective's members), got ", flags.orgs));
  }
  if (flags.hostile && flags.orgs < 4) {
    Usage(absl::StrCat("--mode hostile needs --orgs of at least 4 (three founders and an unrelated member), got ",
                       flags.orgs));
  }
  absl::StatusOr<client::TlsOptions> tls =
      client::LoadTls(absl::GetFlag(FLAGS_tls_ca), absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key));
  if (!tls.ok()) Usage(std::string(tls.status().message()));
  flags.tls = *std::move(tls);
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
std::shared_ptr<grpc::Channel> NewChannel(const Flags& flags, int index) {
  return client::NewChannel(flags.server, {.max_receive_message_bytes = 64 << 20,
                                           .max_send_message_bytes = 64 << 20,
                                           .own_connection = true,
                                           .connection_index = index,
                                           .tls = flags.tls});
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
  double rate = 0;  // open loop: the scheduled events/s (latency from each event's due time); 0: closed loop
  // --report-every N: acknowledged events/s of each successive N events.
  std::vector<double> window_rates;
  double appends_per_second() const { return seconds > 0 ? acknowledged / seconds : 0; }
};

// The rate of each successive `window` events, from the calls' completion
// times (seconds since the start) and event counts.
std::vector<double> WindowRates(std::vector<std::pair<double, int64_t>> completions, int64_t window) {
  std::vector<double> rates;
  if (window <= 0) return rates;
  std::sort(completions.begin(), completions.end());
  int64_t done = 0, next_edge = window;
  double window_start = 0;
  for (const auto& [at, events] : completions) {
    done += events;
    while (done >= next_edge) {  // a batch may close several windows: they end together
      rates.push_back(at > window_start ? window / (at - window_start) : 0);
      window_start = at;
      next_edge += window;
    }
  }
  return rates;
}

// `rate` > 0: open loop (unary only), call i due at start + i / rate.
ModeResult RunLoad(const std::string& mode, const Flags& flags,
                   const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                   const std::vector<v1::SignedEvent>& events, int batch_size, double rate = 0) {
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
  std::vector<std::vector<std::pair<double, int64_t>>> completions(flags.clients);
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  Clock::time_point start;  // written before `go`
  std::vector<std::thread> pool;
  for (int c = 0; c < flags.clients; ++c) {
    pool.emplace_back([&, c] {
      v1::LedgerService::Stub& stub = *stubs[(c / kClientsPerChannel) % stubs.size()];
      auto& lat = latencies[c];
      lat.reserve(calls / flags.clients + 1);
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      for (size_t i; (i = next.fetch_add(1)) < calls;) {
        Clock::time_point t0 = Clock::now();
        if (rate > 0) {
          // Open loop: wait for the call's due time and measure from it, so
          // a late send (every client busy) counts as latency.
          const Clock::time_point due =
              start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(i / rate));
          std::this_thread::sleep_until(due);
          t0 = due;
        }
        grpc::ClientContext context;
        PrepareCall(context, kCallTimeout, CallPolicy::kFailFast);
        grpc::Status status;
        int64_t want = 1, got = 0;
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
        const Clock::time_point t1 = Clock::now();
        double ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
        if (status.ok() && got == want) {
          lat.push_back(ms);  // latency of successful calls only
          acknowledged.fetch_add(got);
          if (flags.report_every > 0) completions[c].emplace_back(Seconds(t1 - start), got);
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
  start = Clock::now();
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
  r.rate = rate;
  std::vector<std::pair<double, int64_t>> merged;
  for (auto& v : completions) merged.insert(merged.end(), v.begin(), v.end());
  r.window_rates = WindowRates(std::move(merged), flags.report_every);
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

// ------------------------------------------------------------------ collectives

using SealAs = std::function<v1::SignedEvent(v1::EventBody, const Org&)>;

// Collective `collective_id` of orgs[0..2] with one unanimity gateway
// `gateway_id`: orgs[0] proposes it, all three accept. Fails the run
// (naming `what`) on any refusal.
void FormCollectiveOfThree(v1::LedgerService::Stub& stub, v1::GovernanceService::Stub& governance,
                           const SealAs& seal, const std::vector<Org>& orgs, const std::string& collective_id,
                           const std::string& name, const std::string& gateway_id, const std::string& what) {
  auto must_append = [&](const std::string& step, const v1::SignedEvent& event) {
    v1::AppendRequest request;
    *request.mutable_event() = event;
    v1::AppendResponse response;
    grpc::ClientContext context;
    PrepareCall(context, kCallTimeout, CallPolicy::kWaitForReady);
    const grpc::Status status = stub.Append(&context, request, &response);
    if (!status.ok()) Fail(absl::StrCat(what, ": ", step, ": ", client::Describe(status)));
  };
  {
    v1::EventBody body;
    auto* proposed = body.mutable_collective_proposed();
    proposed->set_collective_id(collective_id);
    v1::Charter* charter = proposed->mutable_charter();
    charter->set_name(name);
    for (int i = 0; i < 3; ++i) charter->add_founding_members(orgs[i].id);
    v1::Gateway* gateway = charter->add_gateways();
    gateway->set_id(gateway_id);
    gateway->mutable_rule()->set_kind(v1::UNANIMITY);
    must_append("CollectiveProposed", seal(body, orgs[0]));
  }
  v1::CollectiveState collective;
  v1::GetCollectiveRequest request;
  request.set_collective_id(collective_id);
  grpc::ClientContext context;
  PrepareCall(context, kCallTimeout, CallPolicy::kWaitForReady);
  const grpc::Status status = governance.GetCollective(&context, request, &collective);
  if (!status.ok()) Fail(absl::StrCat(what, ": GetCollective: ", client::Describe(status)));
  for (int i = 0; i < 3; ++i) {
    v1::EventBody body;
    body.mutable_charter_accepted()->set_collective_id(collective_id);
    body.mutable_charter_accepted()->set_charter_digest(collective.charter_digest());
    must_append("CharterAccepted", seal(body, orgs[i]));
  }
}

// ------------------------------------------------------------------ governance mode

constexpr int64_t kGovernanceFirstRounds = 1000;

int RunGovernance(const Flags& flags, const std::string& ledger_id, const std::string& run_id,
                  const std::vector<Org>& orgs) {
  auto log = [](const std::string& line) { std::cerr << "ledger_loadgen: " << line << std::endl; };
  auto channel = NewChannel(flags, 1 << 21);
  auto stub = v1::LedgerService::NewStub(channel);
  auto governance = v1::GovernanceService::NewStub(channel);
  std::atomic<int64_t> sequence{0};
  auto seal = [&](v1::EventBody body, const Org& org) {
    body.set_ledger_id(ledger_id);
    body.set_author(org.id);
    body.set_idempotency_key(absl::StrCat("loadgen-", run_id, "-governance-", sequence++));
    body.set_client_time_unix_ms(NowUnixMs());
    return SealEvent(body, org.key);
  };
  const std::string collective_id = absl::StrCat("governance-", run_id);
  const std::string gateway_id = "decision";
  FormCollectiveOfThree(*stub, *governance, seal, orgs, collective_id, "loadgen governance collective", gateway_id,
                        "governance set-up");

  // Rounds of one proposal and three assents, signed before anything is timed.
  const int64_t rounds = std::max<int64_t>(1, flags.events / 4);
  std::vector<v1::AppendBatchRequest> batches(rounds);
  ParallelFor(rounds, std::max(1u, std::thread::hardware_concurrency()), [&](size_t r) {
    v1::EventBody body;
    auto* proposal = body.mutable_proposal_submitted();
    proposal->set_collective_id(collective_id);
    proposal->set_proposal_id(absl::StrCat(collective_id, "-p", r));
    proposal->set_title(absl::StrCat("loadgen proposal ", r));
    proposal->set_category("loadgen");
    proposal->set_summary("a proposal of the governance mix: one proposal, three assents");
    *batches[r].add_events() = seal(body, orgs[r % 3]);
    for (int m = 0; m < 3; ++m) {
      v1::EventBody vote_body;
      auto* vote = vote_body.mutable_vote_cast();
      vote->set_proposal_id(proposal->proposal_id());
      vote->set_gateway_id(gateway_id);
      vote->set_position(v1::ASSENT);
      vote->set_rationale("agreed at the members' meeting");
      *batches[r].add_events() = seal(vote_body, orgs[m]);
    }
  });
  log(absl::StrFormat("governance: %d rounds of a proposal and three votes signed; sending on %d clients", rounds,
                      flags.clients));
  std::atomic<int64_t> next{0}, failed{0}, answered{0};
  std::mutex first_error_mu;
  std::string first_error;
  // The rate over the first kGovernanceFirstRounds proposals beside the
  // overall one: a cost that grows with the collective's proposals shows as
  // a ratio below 1.
  std::atomic<double> first_seconds{0};
  const Clock::time_point t0 = Clock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < flags.clients; ++c) {
    clients.emplace_back([&] {
      for (int64_t r = next++; r < rounds; r = next++) {
        v1::AppendBatchResponse response;
        grpc::ClientContext context;
        PrepareCall(context, kCallTimeout, CallPolicy::kWaitForReady);
        const grpc::Status status = stub->AppendBatch(&context, batches[r], &response);
        if (!status.ok() && failed++ == 0) {
          std::lock_guard<std::mutex> lock(first_error_mu);
          first_error = client::Describe(status);
        }
        if (++answered == kGovernanceFirstRounds) first_seconds = Seconds(Clock::now() - t0);
      }
    });
  }
  for (std::thread& t : clients) t.join();
  const double seconds = Seconds(Clock::now() - t0);
  const int64_t events = (rounds - failed.load()) * 4;
  const double rate = seconds > 0 ? events / seconds : 0;
  const double first_rate = first_seconds.load() > 0 ? kGovernanceFirstRounds * 4 / first_seconds.load() : 0;
  if (flags.json) {
    nlohmann::ordered_json out = {{"mode", "governance"},
                                  {"rounds", rounds},
                                  {"member_events", events},
                                  {"failed_rounds", failed.load()},
                                  {"seconds", Round(seconds, 3)},
                                  {"member_events_per_second", Round(rate, 1)}};
    if (first_rate > 0) {
      out["first_rounds"] = kGovernanceFirstRounds;
      out["first_member_events_per_second"] = Round(first_rate, 1);
      out["overall_over_first"] = Round(rate / first_rate, 3);
    }
    std::cout << out.dump() << std::endl;
  } else {
    std::cout << absl::StrFormat(
                     "governance mix: %d rounds (a proposal and three assents each, and the operator's GatewayPassed "
                     "and DecisionAdopted): %d member events in %.2f s = %.0f/s; %d rounds failed%s\n",
                     rounds, events, seconds, rate, failed.load(),
                     first_error.empty() ? "" : absl::StrCat(" (first: ", first_error, ")"));
    if (first_rate > 0) {
      std::cout << absl::StrFormat("  first %d rounds %.0f member events/s, overall %.0f/s: overall/first %.3f\n",
                                   kGovernanceFirstRounds, first_rate, rate, rate / first_rate);
    }
  }
  return failed.load() == 0 ? 0 : 1;
}

// ------------------------------------------------------------------ hostile mode

// Bytes of a /proc/PID/status field given in kB ("VmHWM:", "VmRSS:"); -1 if
// it cannot be read.
int64_t ProcStatusBytes(int64_t pid, const std::string& field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field, 0) != 0) continue;
    return std::strtoll(line.c_str() + field.size(), nullptr, 10) * 1024;
  }
  return -1;
}

// --server-pid, checked to be readable; else the one process named ledgerd.
int64_t ServerPid(const Flags& flags) {
  if (flags.server_pid > 0) {
    if (ProcStatusBytes(flags.server_pid, "VmHWM:") < 0) {
      Fail(absl::StrCat("--server-pid ", flags.server_pid, ": cannot read VmHWM from /proc/", flags.server_pid,
                        "/status (no such process, or not on this machine)"));
    }
    return flags.server_pid;
  }
  std::vector<int64_t> found;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      continue;
    }
    std::ifstream comm(entry.path() / "comm");
    std::string command;
    if (std::getline(comm, command) && command == "ledgerd") found.push_back(std::stoll(name));
  }
  if (found.size() == 1) return found.front();
  if (found.empty()) {
    Fail("--mode hostile prints ledgerd's peak RSS: no process named ledgerd here; pass --server-pid PID");
  }
  std::string pids;
  for (int64_t pid : found) absl::StrAppend(&pids, pids.empty() ? "" : ", ", pid);
  Fail(absl::StrCat("--mode hostile prints ledgerd's peak RSS: ", found.size(), " processes named ledgerd (", pids,
                    "); pass --server-pid PID"));
}

std::string Mib(int64_t bytes) {
  return bytes < 0 ? "unknown" : absl::StrFormat("%.1f MiB", bytes / (1024.0 * 1024.0));
}

// One phase of the unrelated member's appends.
struct Probe {
  explicit Probe(std::string name) : phase(std::move(name)) {}
  std::string phase;
  std::vector<double> ms;  // sorted after the phase
  int64_t failed = 0;
  std::string first_error;
  double p50() const { return Percentile(ms, 0.50); }
  double p99() const { return Percentile(ms, 0.99); }
};

int RunHostile(const Flags& flags, int64_t pid, const std::string& ledger_id, const std::string& run_id,
               const std::vector<Org>& orgs) {
  auto log = [](const std::string& line) { std::cerr << "ledger_loadgen: " << line << std::endl; };
  // The attacker and the unrelated member come in on their own connections.
  auto attacker_channel = NewChannel(flags, 1 << 20);
  auto member_channel = NewChannel(flags, (1 << 20) + 1);
  auto member = v1::LedgerService::NewStub(member_channel);
  auto governance = v1::GovernanceService::NewStub(member_channel);

  int64_t sequence = 0;
  auto seal = [&](v1::EventBody body, const Org& org) {
    body.set_ledger_id(ledger_id);
    body.set_author(org.id);
    body.set_idempotency_key(absl::StrCat("loadgen-", run_id, "-hostile-", sequence++));
    body.set_client_time_unix_ms(NowUnixMs());
    return SealEvent(body, org.key);
  };
  auto append = [&](v1::LedgerService::Stub& stub, const v1::SignedEvent& event, CallPolicy policy) {
    v1::AppendRequest request;
    *request.mutable_event() = event;
    v1::AppendResponse response;
    grpc::ClientContext context;
    PrepareCall(context, kCallTimeout, policy);
    return stub.Append(&context, request, &response);
  };
  auto must = [&](const std::string& what, const grpc::Status& status) {
    if (!status.ok()) Fail(absl::StrCat("hostile set-up: ", what, ": ", client::Describe(status)));
  };

  // 1. A collective of three (the attacker and two members who never vote),
  //    one unanimity gateway, one proposal: that gateway stays open.
  const Org& hostile = orgs[0];
  const std::string collective_id = absl::StrCat("hostile-", run_id);
  const std::string proposal_id = absl::StrCat("hostile-", run_id, "-proposal");
  const std::string gateway_id = "decision";
  FormCollectiveOfThree(*member, *governance, seal, orgs, collective_id, "loadgen hostile-member collective",
                        gateway_id, "hostile set-up");
  {
    v1::EventBody body;
    auto* proposal = body.mutable_proposal_submitted();
    proposal->set_collective_id(collective_id);
    proposal->set_proposal_id(proposal_id);
    proposal->set_title("a proposal one member floods with votes");
    proposal->set_category("loadgen");
    must("ProposalSubmitted", append(*member, seal(body, hostile), CallPolicy::kWaitForReady));
  }

  // 2. The hostile batches, signed before anything is timed: votes
  //    alternating assent and objection, each with a maximal rationale.
  std::string rationale;
  while (rationale.size() < kHostileRationaleBytes) rationale += "a maximal rationale, repeated to the limit. ";
  rationale.resize(kHostileRationaleBytes);
  const int64_t votes = static_cast<int64_t>(flags.hostile_batches) * flags.hostile_votes;
  std::vector<v1::SignedEvent> signed_votes(votes);
  const int64_t first_vote_sequence = sequence;
  sequence += votes;
  const int64_t now = NowUnixMs();
  ParallelFor(votes, std::max(1u, std::thread::hardware_concurrency()), [&](size_t i) {
    v1::EventBody body;
    body.set_ledger_id(ledger_id);
    body.set_author(hostile.id);
    body.set_idempotency_key(absl::StrCat("loadgen-", run_id, "-hostile-", first_vote_sequence + i));
    body.set_client_time_unix_ms(now);
    auto* vote = body.mutable_vote_cast();
    vote->set_proposal_id(proposal_id);
    vote->set_gateway_id(gateway_id);
    vote->set_position(i % 2 == 0 ? v1::ASSENT : v1::OBJECT);
    vote->set_rationale(rationale);
    signed_votes[i] = SealEvent(body, hostile.key);
  });
  // Serialized before anything is timed too: a remote attacker's encoding
  // costs its own CPU, not this machine's, which the members share.
  std::vector<grpc::ByteBuffer> batches(flags.hostile_batches);
  {
    std::vector<v1::AppendBatchRequest> requests(flags.hostile_batches);
    for (int64_t i = 0; i < votes; ++i) *requests[i / flags.hostile_votes].add_events() = std::move(signed_votes[i]);
    signed_votes.clear();
    for (size_t b = 0; b < requests.size(); ++b) {
      bool own_buffer = false;
      if (!grpc::SerializationTraits<v1::AppendBatchRequest>::Serialize(requests[b], &batches[b], &own_buffer).ok()) {
        Fail("hostile set-up: a batch could not be serialized");
      }
    }
  }
  grpc::GenericStub attacker_bytes(attacker_channel);
  log(absl::StrFormat("hostile: collective %s, proposal %s, gateway %s open; %d batches of %d votes signed "
                      "(rationale %d bytes)",
                      collective_id, proposal_id, gateway_id, flags.hostile_batches, flags.hostile_votes,
                      kHostileRationaleBytes));

  // 3. The unrelated members (orgs 3.., in turn) append KeyAdded one at a
  //    time, signed before each call's clock starts.
  size_t next_member = 0;
  auto probe_once = [&](Probe& probe) {
    const Org& org = orgs[3 + next_member++ % (orgs.size() - 3)];
    v1::EventBody body;
    body.mutable_key_added()->set_org_id(org.id);
    body.mutable_key_added()->set_public_key(std::string(crypto::PrivateKey::Generate().public_key().raw()));
    const v1::SignedEvent event = seal(body, org);
    const Clock::time_point t0 = Clock::now();
    const grpc::Status status = append(*member, event, CallPolicy::kFailFast);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (status.ok()) {
      probe.ms.push_back(ms);
    } else if (probe.failed++ == 0) {
      probe.first_error = client::Describe(status);
    }
  };
  auto finish = [](Probe& probe) { std::sort(probe.ms.begin(), probe.ms.end()); };

  const int64_t hwm_before = ProcStatusBytes(pid, "VmHWM:");
  const int64_t rss_before = ProcStatusBytes(pid, "VmRSS:");
  Probe quiet("quiet");
  log(absl::StrFormat("quiet: %d appends by unrelated members", flags.probe_events));
  for (int64_t i = 0; i < flags.probe_events; ++i) probe_once(quiet);
  finish(quiet);

  // 4. The attack, with the unrelated members appending throughout.
  struct BatchOutcome {
    grpc::Status status;
    int receipts = 0;
    double seconds = 0;
  };
  std::vector<BatchOutcome> outcomes(batches.size());
  std::atomic<bool> attack_done{false};
  log(absl::StrFormat("attack: %d batches of %d votes on one gateway", flags.hostile_batches, flags.hostile_votes));
  const Clock::time_point attack_start = Clock::now();
  std::thread attack([&] {
    for (size_t b = 0; b < batches.size(); ++b) {
      grpc::ByteBuffer response_bytes;
      grpc::ClientContext context;
      PrepareCall(context, std::chrono::minutes(10), CallPolicy::kFailFast);
      std::promise<grpc::Status> answered;
      const Clock::time_point t0 = Clock::now();
      attacker_bytes.UnaryCall(&context, "/ledger.v1.LedgerService/AppendBatch", grpc::StubOptions(), &batches[b],
                               &response_bytes, [&answered](grpc::Status status) { answered.set_value(status); });
      outcomes[b].status = answered.get_future().get();
      outcomes[b].seconds = Seconds(Clock::now() - t0);
      v1::AppendBatchResponse response;
      if (outcomes[b].status.ok() &&
          grpc::SerializationTraits<v1::AppendBatchResponse>::Deserialize(&response_bytes, &response).ok()) {
        outcomes[b].receipts = response.receipts_size();
      }
    }
    attack_done.store(true);
  });
  Probe during("during");
  do {
    probe_once(during);
  } while (!attack_done.load());
  attack.join();
  const double attack_seconds = Seconds(Clock::now() - attack_start);
  finish(during);
  const int64_t hwm_attack = ProcStatusBytes(pid, "VmHWM:");

  Probe after("after");
  log(absl::StrFormat("after: %d appends by unrelated members", flags.probe_events));
  for (int64_t i = 0; i < flags.probe_events; ++i) probe_once(after);
  finish(after);
  const int64_t hwm_end = ProcStatusBytes(pid, "VmHWM:");
  const int64_t rss_end = ProcStatusBytes(pid, "VmRSS:");

  // Refusals (a rule, a cap, a limit: the server answered) are expected;
  // a call that did not get an answer is a failure.
  int64_t accepted_votes = 0, refused_batches = 0, failed_batches = 0;
  std::string first_refusal, first_failure;
  for (const BatchOutcome& o : outcomes) {
    if (o.status.ok()) {
      accepted_votes += o.receipts;
      continue;
    }
    const grpc::StatusCode code = o.status.error_code();
    const bool answered = code == grpc::StatusCode::INVALID_ARGUMENT || code == grpc::StatusCode::FAILED_PRECONDITION ||
                          code == grpc::StatusCode::RESOURCE_EXHAUSTED || code == grpc::StatusCode::ALREADY_EXISTS ||
                          code == grpc::StatusCode::PERMISSION_DENIED || code == grpc::StatusCode::UNAUTHENTICATED ||
                          code == grpc::StatusCode::OUT_OF_RANGE;
    if (answered) {
      if (refused_batches++ == 0) first_refusal = client::Describe(o.status);
    } else if (failed_batches++ == 0) {
      first_failure = client::Describe(o.status);
    }
  }
  const int64_t peak = std::max(hwm_attack, hwm_end);
  const double during_ratio = quiet.p99() > 0 ? during.p99() / quiet.p99() : 0;
  const double after_ratio = quiet.p99() > 0 ? after.p99() / quiet.p99() : 0;
  const bool rss_pass = peak >= 0 && peak < kHostileRssLimitBytes;
  const bool during_pass = !during.ms.empty() && during_ratio <= kHostileP99Ratio;
  const bool after_pass = !after.ms.empty() && after_ratio <= kHostileP99Ratio;
  const bool any_failure = failed_batches + quiet.failed + during.failed + after.failed > 0;

  if (flags.json) {
    using Json = nlohmann::ordered_json;
    auto probe_json = [](const Probe& p) {
      return Json{{"appends", p.ms.size()},
                  {"failed", p.failed},
                  {"p50_ms", Round(p.p50(), 3)},
                  {"p99_ms", Round(p.p99(), 3)},
                  {"max_ms", Round(p.ms.empty() ? 0 : p.ms.back(), 3)},
                  {"first_error", p.first_error.empty() ? Json(nullptr) : Json(p.first_error)}};
    };
    Json batch_seconds = Json::array();
    for (const BatchOutcome& o : outcomes) batch_seconds.push_back(Round(o.seconds, 3));
    Json out = {
        {"mode", "hostile"},
        {"server", flags.server},
        {"server_pid", pid},
        {"ledger_id", ledger_id},
        {"run_id", run_id},
        {"collective_id", collective_id},
        {"proposal_id", proposal_id},
        {"batches", flags.hostile_batches},
        {"votes_per_batch", flags.hostile_votes},
        {"rationale_bytes", kHostileRationaleBytes},
        {"accepted_votes", accepted_votes},
        {"refused_batches", refused_batches},
        {"first_refusal", first_refusal.empty() ? Json(nullptr) : Json(first_refusal)},
        {"failed_batches", failed_batches},
        {"first_failure", first_failure.empty() ? Json(nullptr) : Json(first_failure)},
        {"batch_seconds", batch_seconds},
        {"attack_seconds", Round(attack_seconds, 3)},
        {"server_memory_bytes",
         {{"vm_hwm_before", hwm_before},
          {"vm_rss_before", rss_before},
          {"vm_hwm_after_attack", hwm_attack},
          {"vm_hwm_end", hwm_end},
          {"vm_rss_end", rss_end}}},
        {"unrelated_appends", {{"quiet", probe_json(quiet)}, {"during", probe_json(during)}, {"after", probe_json(after)}}},
        {"p99_ratio_to_quiet", {{"during", Round(during_ratio, 3)}, {"after", Round(after_ratio, 3)}}},
        {"targets",
         {{"peak_rss_under_1_gib", rss_pass ? "PASS" : "MISS"},
          {"p99_during_within_2x_quiet", during_pass ? "PASS" : "MISS"},
          {"p99_after_within_2x_quiet", after_pass ? "PASS" : "MISS"}}},
        {"all_calls_answered", !any_failure}};
    std::cout << bench::DumpJson(out) << std::endl;
  } else {
    std::cout << absl::StrFormat(
        "ledger_loadgen --mode hostile: %s (ledgerd pid %d), ledger %s, run %s\n"
        "  collective %s, proposal %s: gateway %s held open (two founders never vote)\n"
        "  attack: %d AppendBatch calls of %d votes (rationale %d bytes) in %.2f s: %d votes accepted, "
        "%d batches refused, %d failed\n",
        flags.server, pid, ledger_id, run_id, collective_id, proposal_id, gateway_id, flags.hostile_batches,
        flags.hostile_votes, kHostileRationaleBytes, attack_seconds, accepted_votes, refused_batches,
        failed_batches);
    if (!first_refusal.empty()) std::cout << "  first refusal (expected): " << first_refusal << "\n";
    if (!first_failure.empty()) std::cout << "  first failure: " << first_failure << "\n";
    std::cout << absl::StrFormat("  ledgerd memory: VmHWM %s before, %s after the attack, %s at the end; "
                                 "VmRSS %s before, %s at the end\n\n",
                                 Mib(hwm_before), Mib(hwm_attack), Mib(hwm_end), Mib(rss_before), Mib(rss_end));
    std::cout << absl::StrFormat("%-8s %8s %9s %9s %9s %9s %14s\n", "phase", "appends", "p50 ms", "p99 ms",
                                 "max ms", "failures", "p99 / quiet");
    for (const Probe* p : {&quiet, &during, &after}) {
      std::cout << absl::StrFormat("%-8s %8d %9.2f %9.2f %9.2f %9d %14.2f\n", p->phase, p->ms.size(), p->p50(),
                                   p->p99(), p->ms.empty() ? 0 : p->ms.back(), p->failed,
                                   quiet.p99() > 0 ? p->p99() / quiet.p99() : 0);
    }
    for (const Probe* p : {&quiet, &during, &after}) {
      if (p->failed) std::cout << "  " << p->phase << ": first failure: " << p->first_error << "\n";
    }
    std::cout << "\ntargets (issue 9, item 1):\n"
              << absl::StrFormat("  %s  ledgerd peak RSS (VmHWM) < 1 GiB               %s\n",
                                 rss_pass ? "PASS" : "MISS", Mib(peak))
              << absl::StrFormat("  %s  unrelated p99 during the attack <= 2x quiet    %.2f x\n",
                                 during_pass ? "PASS" : "MISS", during_ratio)
              << absl::StrFormat("  %s  unrelated p99 after the attack <= 2x quiet     %.2f x\n",
                                 after_pass ? "PASS" : "MISS", after_ratio);
  }
  return any_failure ? 1 : 0;
}

int Main(int argc, char** argv) {
  Flags flags = ParseFlags(argc, argv);
  auto log = [&](const std::string& line) {
    std::cerr << "ledger_loadgen: " << line << std::endl;
  };

  auto registrar = crypto::ReadPrivateKeyFile(flags.registrar_key);
  if (!registrar.ok()) Fail(std::string(registrar.status().message()));
  std::optional<int64_t> server_pid;
  if (flags.hostile) server_pid = ServerPid(flags);  // before any work: its peak RSS is the point

  int channel_count = (flags.clients + kClientsPerChannel - 1) / kClientsPerChannel;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < channel_count; ++i) channels.push_back(NewChannel(flags, i));
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
  if (flags.hostile) return RunHostile(flags, *server_pid, info.ledger_id(), run_id, orgs);
  if (flags.governance) return RunGovernance(flags, info.ledger_id(), run_id, orgs);

  // 2. Pre-sign everything.
  t0 = Clock::now();
  Presigned unary_events, batch_events, open_events;
  if (flags.unary) {
    unary_events = PresignKeyAdded(orgs, info.ledger_id(), run_id, "unary", flags.events);
  }
  if (flags.half_peak) {
    open_events = PresignKeyAdded(orgs, info.ledger_id(), run_id, "open", flags.events);
  }
  if (flags.batch) {
    batch_events = PresignKeyAdded(orgs, info.ledger_id(), run_id, "batch", flags.events);
  }
  log(absl::StrFormat("pre-signed %d events in %.2f s",
                      unary_events.events.size() + batch_events.events.size() + open_events.events.size(),
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
  if (flags.unary && flags.rate > 0) {
    log(absl::StrFormat("unary, open loop at %.1f events/s: %d events, %d clients, %d channels", flags.rate,
                        flags.events, flags.clients, channel_count));
    results.push_back(RunLoad("unary-open", flags, channels, unary_events.events, 0, flags.rate));
  } else if (flags.unary) {
    log(absl::StrFormat("unary: %d events, %d clients, %d channels", flags.events, flags.clients,
                        channel_count));
    results.push_back(RunLoad("unary", flags, channels, unary_events.events, 0));
    if (flags.half_peak) {
      const double half = results.back().appends_per_second() / 2;
      if (!(half > 0)) Fail("the peak unary run acknowledged nothing: no half-peak rate to run at");
      log(absl::StrFormat("unary, open loop at half the peak, %.1f events/s: %d events", half, flags.events));
      results.push_back(RunLoad("unary-open", flags, channels, open_events.events, 0, half));
    }
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
    if (r.mode == "unary-open") {
      Target t;
      t.name = flags.half_peak ? "unary p99 at half the peak rate < 10 ms" : "unary p99 at --rate < 10 ms";
      t.mode = r.mode;
      t.measured = r.p99_ms;
      t.required = kOpenLoopP99TargetMs;
      t.unit = "ms";
      t.pass = r.failed_calls == 0 && r.acknowledged > 0 && t.measured < t.required;
      t.note = absl::StrFormat("at %.1f events/s", r.rate);
      if (r.failed_calls != 0) t.note += "; calls failed";
      targets.push_back(t);
    } else if (r.mode == "batch") {
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
      if (r.rate > 0) modes[r.mode]["open_loop_rate_per_second"] = Round(r.rate, 1);
      if (!r.window_rates.empty()) {
        Json windows = Json::array();
        for (double w : r.window_rates) windows.push_back(Round(w, 1));
        modes[r.mode]["report_every"] = flags.report_every;
        modes[r.mode]["window_rates_per_second"] = windows;
        modes[r.mode]["last_over_first_window"] =
            Round(r.window_rates.front() > 0 ? r.window_rates.back() / r.window_rates.front() : 0, 4);
      }
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
    std::cout << absl::StrFormat("%-10s %8s %6s %8s %9s %12s %9s %9s %9s %9s %15s\n", "mode",
                                 "acked", "ev/call", "calls", "seconds", "appends/s", "p50 ms",
                                 "p99 ms", "max ms", "failures", "/all-core verify");
    for (const ModeResult& r : results) {
      double ratio = verifyN.rate() > 0 ? r.appends_per_second() / verifyN.rate() : 0;
      std::cout << absl::StrFormat("%-10s %8d %6d %8d %9.3f %12.1f %9.2f %9.2f %9.2f %9d %15.3f\n",
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
      if (r.rate > 0) {
        std::cout << absl::StrFormat("  %s: open loop at %.1f events/s, latency from each event's due time\n",
                                     r.mode, r.rate);
      }
      if (r.window_rates.empty()) continue;
      std::string series;
      for (double w : r.window_rates) absl::StrAppend(&series, series.empty() ? "" : " ", absl::StrFormat("%.0f", w));
      std::cout << absl::StrFormat("  %s: appends/s of each %d events: %s\n", r.mode, flags.report_every, series);
      std::cout << absl::StrFormat(
          "  %s: first %d events %.1f/s, last %d events %.1f/s: last/first %.3f\n", r.mode, flags.report_every,
          r.window_rates.front(), flags.report_every, r.window_rates.back(),
          r.window_rates.front() > 0 ? r.window_rates.back() / r.window_rates.front() : 0);
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
      std::string measured = t.unit == "ratio" ? absl::StrFormat("%.3f (need %.2f)", t.measured, t.required)
                             : t.unit == "ms"  ? absl::StrFormat("%.2f ms (need < %.0f ms)", t.measured, t.required)
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
