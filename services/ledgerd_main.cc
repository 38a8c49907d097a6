// ledgerd: the Decision Ledger server.
//
//   ledgerd [--data DIR] [--listen HOST:PORT] [--registrar-id ID] [--registrar-key-out PATH]
//           [--identity-notice-seconds N] [--upgrade-rules]
//           [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM [--costly-rpc-clients ID,...]]]
//           [--max-subscribers N] [--max-verifications N] [--max-inflight-submissions N]
//           [--max-message-bytes N] [--max-concurrent-streams N] [--keepalive-seconds N]
//           [--idle-timeout-seconds N] [--stream-stall-seconds N]   (README "Limits")
//           [--metrics-listen HOST:PORT]  (README "Metrics")
//
// Prints "metrics on http://HOST:PORT/metrics" (with --metrics-listen), then
// "ledgerd listening on HOST:PORT" once it serves; the gRPC health service
// says SERVING from then on (NOT_SERVING once it stops). SIGTERM/SIGINT stop
// it: no new calls, in-flight commits finish, RocksDB closes cleanly.
//
// stdout carries the human lines above (tests and scripts read them); the log
// goes to stderr through glog, one line per event, e.g.
//   I0131 12:00:00.123456  4242 ledgerd_main.cc:170] ledgerd started: ...
//   E0131 12:00:00.123456  4242 ledgerd_main.cc:150] ledgerd refused to start: ...
// Exit status: 0 after a clean stop, 1 if it cannot start, 2 on bad flags or
// TLS files.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "grpc/grpc.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "glog/logging.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "ledger/common/files.h"
#include "ledger/common/metrics.h"
#include "ledger/common/thread_pool.h"
#include "ledger/event/envelope.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/witness/policy.h"
#include "ledger/rules/version.h"
#include "services/audit_service.h"
#include "services/command_line.h"
#include "services/backup_service.h"
#include "services/costly_rpcs.h"
#include "services/data_dir.h"
#include "services/governance_service.h"
#include "services/ledger_service.h"
#include "services/metrics.h"
#include "services/witness_collector.h"

// Defaults and meaning as in kUsage, which is what --help prints.
ABSL_FLAG(std::string, data, "./var/ledger", "data directory");
ABSL_FLAG(std::string, listen, "127.0.0.1:7400", "address to serve gRPC on (port 0 picks one)");
ABSL_FLAG(std::string, registrar_id, "registrar",
          "organisation id of the first registrar of a new ledger");
ABSL_FLAG(std::string, registrar_key_out, "",
          "a new ledger writes its registrar private key here (0600), not into the data directory");
ABSL_FLAG(bool, upgrade_rules, false,
          "an existing ledger under older rules adopts this release's rules version, on the record");
ABSL_FLAG(int64_t, identity_notice_seconds, 0,
          "rules v2: how long a registrar's identity change waits for the organisation (new ledgers; 0: 14 days)");
ABSL_FLAG(std::string, tls_cert, "", "serve TLS with this certificate chain (needs --tls-key)");
ABSL_FLAG(std::string, tls_key, "", "the certificate's private key");
ABSL_FLAG(std::string, tls_client_ca, "",
          "require client certificates signed by this CA (mutual TLS)");
ABSL_FLAG(std::string, costly_rpc_clients, "",
          "mutual TLS: only these client certificate identities (CN or SAN) may call Verify, "
          "ListCheckpoints, Backup and a filtered Read");
ABSL_FLAG(std::string, witness_policy, "",
          "C2SP tlog-policy file: send checkpoints to its witnesses and keep the cosigned ones");
// Limits on what clients can ask for (README "Limits").
ABSL_FLAG(int64_t, max_subscribers, 256, "Subscribe streams open at once");
ABSL_FLAG(int64_t, max_verifications, 1, "AuditService.Verify calls running at once");
ABSL_FLAG(int64_t, max_inflight_submissions, 4096,
          "Append/AppendBatch calls accepted and not yet answered");
ABSL_FLAG(int64_t, max_inflight_bytes, 256 << 20, "signed bytes those submissions hold");
ABSL_FLAG(int64_t, max_message_bytes, static_cast<int64_t>(ledger::kMaxBatchEvents * (ledger::kMaxBodyBytes + 1024)),
          "largest request message");
ABSL_FLAG(int64_t, max_concurrent_streams, 100, "calls at once on one connection");
ABSL_FLAG(int64_t, keepalive_seconds, 60, "server pings an idle-looking connection this often");
ABSL_FLAG(int64_t, idle_timeout_seconds, 600, "a connection without calls for this long is closed");
ABSL_FLAG(int64_t, batch_bytes_per_second, 8 << 20,
          "AppendBatch bytes one address may send per second (0: no limit)");
ABSL_FLAG(int64_t, stream_stall_seconds, 60, "a Verify or Backup client that reads nothing for this long loses the call");
ABSL_FLAG(std::string, metrics_listen, "", "serve Prometheus metrics at http://HOST:PORT/metrics (port 0 picks one)");

// jemalloc's settings (services/CMakeLists.txt links it; without it this is
// an unused symbol). Freed pages go back to the kernel after 1 s rather than
// 10: a member's 4 MB batches are allocated and freed on many threads, and
// jemalloc's per-thread arenas kept ~300 MiB of them (issue 9's hostile
// member, against ~70 MiB with glibc's malloc).
extern "C" {
const char* malloc_conf = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";
}

namespace {

constexpr char kUsage[] =
    "usage: ledgerd [--data DIR] [--listen HOST:PORT] [--registrar-id ID]\n"
    "  --data DIR          data directory (default ./var/ledger); a new one is\n"
    "                      initialised with an operator key, a registrar key and Genesis\n"
    "  --listen HOST:PORT  address to serve gRPC on (default 127.0.0.1:7400; port 0 picks one)\n"
    "  --registrar-id ID   organisation id of the first registrar of a new ledger\n"
    "                      (default registrar)\n"
    "  --registrar-key-out PATH\n"
    "                      a new ledger writes its registrar private key to PATH (0600)\n"
    "                      instead of DIR/registrar.key.pem: the operator should not\n"
    "                      hold a registrar's key\n"
    "  --identity-notice-seconds N\n"
    "                      a new ledger's notice for identity changes a registrar makes\n"
    "                      without the organisation (default 0: 14 days)\n"
    "  --upgrade-rules     a ledger written under older rules adopts this release's\n"
    "                      (an operator-signed RulesVersionAdopted record); without it\n"
    "                      an old ledger keeps deciding under the rules it was written with\n"
    "  --tls-cert PEM      serve TLS with this certificate chain (needs --tls-key)\n"
    "  --tls-key PEM       the certificate's private key\n"
    "  --tls-client-ca PEM require client certificates signed by this CA (mutual TLS)\n"
    "  --costly-rpc-clients ID,ID,...\n"
    "                      with --tls-client-ca: only clients whose certificate CN or a SAN\n"
    "                      is listed may call Verify, ListCheckpoints, Backup and a\n"
    "                      filtered Read (kinds or author); others get PERMISSION_DENIED\n"
    "  --witness-policy FILE\n"
    "                      a C2SP tlog-policy (log, witness NAME VKEY URL, group, quorum):\n"
    "                      checkpoints go to every witness; the newest one a quorum\n"
    "                      cosigned is kept (ledgerctl checkpoint --witnessed)\n"
    "  --metrics-listen HOST:PORT\n"
    "                      serve Prometheus metrics at http://HOST:PORT/metrics (port 0\n"
    "                      picks one; printed at start; README \"Metrics\"). Default: none\n"
    "limits (beyond them a call is refused RESOURCE_EXHAUSTED; README \"Limits\"):\n"
    "  --max-subscribers N          Subscribe streams open at once (default 256; each holds\n"
    "                               at most one message of up to 1 MiB)\n"
    "  --max-verifications N        AuditService.Verify calls running at once (default 1)\n"
    "  --max-inflight-submissions N Append/AppendBatch calls accepted, not yet answered (default 4096)\n"
    "  --max-inflight-bytes N       signed bytes those calls hold (default 268435456: 256 MiB;\n"
    "                               a call alone always fits)\n"
    "  --max-message-bytes N        largest request message (default 66560000: a full batch)\n"
    "  --batch-bytes-per-second N   AppendBatch bytes one address may send per second, a\n"
    "                               second's worth at once; beyond it its batches wait, and\n"
    "                               one due over 30 s ahead is refused (default 8388608:\n"
    "                               8 MiB; 0: no limit)\n"
    "  --max-concurrent-streams N   calls at once on one connection (default 100)\n"
    "  --keepalive-seconds N        ping a quiet connection this often; a peer that does not\n"
    "                               answer within 20 s is dropped (default 60)\n"
    "  --idle-timeout-seconds N     close a connection without calls for this long (default 600)\n"
    "  --stream-stall-seconds N     a Verify or Backup whose client reads nothing for this long\n"
    "                               is cancelled, freeing its slot (default 60)\n";

struct Flags {
  std::string data = "./var/ledger";
  std::string listen = "127.0.0.1:7400";
  std::string registrar_id = "registrar";
  std::string registrar_key_out;
  int64_t identity_notice_seconds = 0;
  bool upgrade_rules = false;
  std::string tls_cert, tls_key, tls_client_ca;
  std::string costly_rpc_clients;
  std::string witness_policy;
  std::string metrics_listen;
  int64_t max_subscribers = 256, max_verifications = 1, max_inflight_submissions = 4096, max_inflight_bytes = 256 << 20;
  int64_t max_message_bytes = 0, max_concurrent_streams = 100, keepalive_seconds = 60, idle_timeout_seconds = 600;
  int64_t stream_stall_seconds = 60;
  int64_t batch_bytes_per_second = 8 << 20;
};

// Each limit's range; a value outside it is a usage error naming the flag.
absl::Status CheckLimits(const Flags& f) {
  struct Limit {
    const char* flag;
    int64_t value, min, max;
  };
  const Limit limits[] = {
      {"--max-subscribers", f.max_subscribers, 1, 1'000'000},
      {"--max-verifications", f.max_verifications, 1, 1024},
      {"--max-inflight-submissions", f.max_inflight_submissions, 1, 10'000'000},
      {"--max-inflight-bytes", f.max_inflight_bytes, 1 << 20, int64_t{1} << 40},
      {"--max-message-bytes", f.max_message_bytes, 1024, std::numeric_limits<int32_t>::max()},
      {"--max-concurrent-streams", f.max_concurrent_streams, 1, 1'000'000},
      {"--keepalive-seconds", f.keepalive_seconds, 1, 86'400},
      {"--idle-timeout-seconds", f.idle_timeout_seconds, 1, 24 * 86'400},
      {"--stream-stall-seconds", f.stream_stall_seconds, 1, 86'400},
      {"--batch-bytes-per-second", f.batch_bytes_per_second, 0, int64_t{1} << 40},
  };
  for (const Limit& limit : limits) {
    if (limit.value < limit.min || limit.value > limit.max) {
      return absl::InvalidArgumentError(
          absl::StrCat(limit.flag, " must be ", limit.min, "..", limit.max, ", not ", limit.value));
    }
  }
  return absl::OkStatus();
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), {});
  return true;
}

// Insecure unless a certificate is given. Errors name the file.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(const Flags& flags) {
  if (flags.tls_cert.empty() && flags.tls_key.empty() && flags.tls_client_ca.empty()) {
    return grpc::InsecureServerCredentials();
  }
  if (flags.tls_cert.empty() || flags.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  if (!ReadFile(flags.tls_cert, &pair.cert_chain)) {
    return absl::NotFoundError("cannot read TLS certificate " + flags.tls_cert);
  }
  if (!ReadFile(flags.tls_key, &pair.private_key)) {
    return absl::NotFoundError("cannot read TLS key " + flags.tls_key);
  }
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back(pair);
  if (!flags.tls_client_ca.empty()) {
    if (!ReadFile(flags.tls_client_ca, &options.pem_root_certs)) {
      return absl::NotFoundError("cannot read TLS client CA " + flags.tls_client_ca);
    }
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

// False (after printing why) on a usage error.
bool ParseFlags(int argc, char** argv, Flags* flags) {
  ledger::cli::CommandLineError error = ledger::cli::ReadCommandLine(
      argc, argv,
      {&absl::GetFlagReflectionHandle(FLAGS_data), &absl::GetFlagReflectionHandle(FLAGS_listen),
       &absl::GetFlagReflectionHandle(FLAGS_registrar_id),
       &absl::GetFlagReflectionHandle(FLAGS_registrar_key_out),
       &absl::GetFlagReflectionHandle(FLAGS_identity_notice_seconds),
       &absl::GetFlagReflectionHandle(FLAGS_upgrade_rules),
       &absl::GetFlagReflectionHandle(FLAGS_tls_cert),
       &absl::GetFlagReflectionHandle(FLAGS_tls_key),
       &absl::GetFlagReflectionHandle(FLAGS_tls_client_ca),
       &absl::GetFlagReflectionHandle(FLAGS_costly_rpc_clients),
       &absl::GetFlagReflectionHandle(FLAGS_witness_policy),
       &absl::GetFlagReflectionHandle(FLAGS_metrics_listen),

       &absl::GetFlagReflectionHandle(FLAGS_max_subscribers),
       &absl::GetFlagReflectionHandle(FLAGS_max_verifications),
       &absl::GetFlagReflectionHandle(FLAGS_max_inflight_submissions),
       &absl::GetFlagReflectionHandle(FLAGS_max_inflight_bytes),
       &absl::GetFlagReflectionHandle(FLAGS_max_message_bytes),
       &absl::GetFlagReflectionHandle(FLAGS_max_concurrent_streams),
       &absl::GetFlagReflectionHandle(FLAGS_keepalive_seconds),
       &absl::GetFlagReflectionHandle(FLAGS_idle_timeout_seconds),
       &absl::GetFlagReflectionHandle(FLAGS_stream_stall_seconds),
       &absl::GetFlagReflectionHandle(FLAGS_batch_bytes_per_second)},
      kUsage);
  if (!error.ok()) {
    if (error.kind == ledger::cli::CommandLineError::kMissingValue) {
      std::cerr << "ledgerd: " << error.flag << " needs a value\n" << kUsage;
    } else {
      std::cerr << "ledgerd: unknown argument \"" << error.arg << "\"\n" << kUsage;
    }
    return false;
  }
  flags->data = absl::GetFlag(FLAGS_data);
  flags->listen = absl::GetFlag(FLAGS_listen);
  flags->registrar_id = absl::GetFlag(FLAGS_registrar_id);
  flags->registrar_key_out = absl::GetFlag(FLAGS_registrar_key_out);
  flags->identity_notice_seconds = absl::GetFlag(FLAGS_identity_notice_seconds);
  flags->upgrade_rules = absl::GetFlag(FLAGS_upgrade_rules);
  flags->tls_cert = absl::GetFlag(FLAGS_tls_cert);
  flags->tls_key = absl::GetFlag(FLAGS_tls_key);
  flags->tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  flags->costly_rpc_clients = absl::GetFlag(FLAGS_costly_rpc_clients);
  flags->witness_policy = absl::GetFlag(FLAGS_witness_policy);
  flags->metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  flags->max_subscribers = absl::GetFlag(FLAGS_max_subscribers);
  flags->max_verifications = absl::GetFlag(FLAGS_max_verifications);
  flags->max_inflight_submissions = absl::GetFlag(FLAGS_max_inflight_submissions);
  flags->max_inflight_bytes = absl::GetFlag(FLAGS_max_inflight_bytes);
  flags->max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  flags->max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  flags->keepalive_seconds = absl::GetFlag(FLAGS_keepalive_seconds);
  flags->idle_timeout_seconds = absl::GetFlag(FLAGS_idle_timeout_seconds);
  flags->stream_stall_seconds = absl::GetFlag(FLAGS_stream_stall_seconds);
  flags->batch_bytes_per_second = absl::GetFlag(FLAGS_batch_bytes_per_second);
  return true;
}

// How to run ledgerctl from here: the one built or installed beside this
// ledgerd (relative to the working directory when under it), else by name.
std::string LedgerctlCommand() {
  namespace fs = std::filesystem;
  std::error_code error;
  const fs::path self = fs::read_symlink("/proc/self/exe", error);
  if (error) return "ledgerctl";
  for (const fs::path& candidate : {self.parent_path() / "ledgerctl", self.parent_path() / "../tools/ledgerctl"}) {
    if (!fs::exists(candidate, error)) continue;
    const fs::path canonical = fs::canonical(candidate, error);
    if (error) continue;
    const fs::path relative = fs::relative(canonical, fs::current_path(error), error);
    if (!error && !relative.empty() && *relative.begin() != "..") return relative.string();
    return canonical.string();
  }
  return "ledgerctl";
}

// Why ledgerd does not start: the plain line it has always printed, and one
// log line to grep for ("ledgerd refused to start").
int Refuse(const std::string& message, int exit_code) {
  std::cerr << "ledgerd: " << message << "\n" << std::flush;
  LOG(ERROR) << "ledgerd refused to start: " << message;
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  // Logs go to stderr only (never to files under /tmp); stdout stays the
  // human lines tests and scripts read.
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);

  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;

  // Signals are taken by sigwait below, never by a handler on a random thread.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  if (absl::Status limits = CheckLimits(flags); !limits.ok()) return Refuse(std::string(limits.message()), 2);
  auto credentials = ServerCredentials(flags);
  if (!credentials.ok()) return Refuse(std::string(credentials.status().message()), 2);
  // Identities are only known under mutual TLS: a list without it would
  // admit nobody (or, read loosely, everybody).
  auto costly_rpcs = ledger::services::CostlyRpcPolicy::Parse(flags.costly_rpc_clients);
  if (!costly_rpcs.ok()) return Refuse(std::string(costly_rpcs.status().message()), 2);
  if (costly_rpcs->restricts() && flags.tls_client_ca.empty()) {
    return Refuse("--costly-rpc-clients needs mutual TLS (--tls-cert, --tls-key and --tls-client-ca)", 2);
  }
  std::optional<ledger::services::HostPort> metrics_address;
  if (!flags.metrics_listen.empty()) {
    auto parsed = ledger::services::ParseHostPort(flags.metrics_listen);
    if (!parsed.ok()) return Refuse(absl::StrCat("--metrics-listen: ", parsed.status().message()), 2);
    metrics_address = *parsed;
  }
  std::optional<ledger::witness::Policy> witness_policy;
  if (!flags.witness_policy.empty()) {
    auto policy = ledger::witness::Policy::Load(flags.witness_policy);
    if (!policy.ok()) return Refuse(absl::StrCat("--witness-policy: ", policy.status().message()), 2);
    witness_policy = *std::move(policy);
  }
  // Before anything in DIR is touched: a second ledgerd on it is told so
  // plainly, not with RocksDB's LOCK error after it has rewritten keys.
  auto data_lock = ledger::DirectoryLock::Acquire(flags.data, ledger::services::kDataDirLockFile, "ledgerd");
  if (!data_lock.ok()) return Refuse(std::string(data_lock.status().message()), 1);
  std::vector<std::string> warnings;
  std::string registrar_key_written;
  auto options = ledger::services::PrepareDataDir(flags.data, flags.registrar_id, &warnings, flags.registrar_key_out,
                                                  &registrar_key_written);
  for (const std::string& warning : warnings) LOG(WARNING) << warning;
  if (!options.ok()) return Refuse(std::string(options.status().message()), 1);
  if (flags.identity_notice_seconds < 0 || flags.identity_notice_seconds > ledger::rules::kMaxIdentityNoticeSeconds) {
    return Refuse(absl::StrCat("--identity-notice-seconds must be 0..", ledger::rules::kMaxIdentityNoticeSeconds,
                               " (ten years)"),
                  2);
  }
  if (options->genesis.has_value()) options->genesis->identity_notice_seconds = flags.identity_notice_seconds;
  if (!registrar_key_written.empty() && flags.registrar_key_out.empty()) {
    // Kept for the scripts and tests that read it there; but whoever holds a
    // registrar's key can start identity changes (public and on notice under
    // rules v2, still theirs to start): it should not sit with the operator.
    LOG(WARNING) << "the registrar key of this new ledger was written into the operator's data directory ("
                 << registrar_key_written << "): the operator holds a registrar's key and could start identity "
                 << "changes with it; move it to the registrar (or use --registrar-key-out)";
  }
  // One pool, one thread per core, checks every signature: appends' and
  // AuditService.Verify's. Declared before the ledger, so it outlives it.
  ledger::ThreadPool verify_pool(0, 0, "verify");
  options->verify_pool = &verify_pool;
  // What /metrics serves (--metrics-listen); outlives the ledger and the
  // services, which register into it.
  ledger::metrics::Registry metrics;
  if (metrics_address.has_value()) options->metrics = &metrics;
  options->max_inflight_submissions = static_cast<size_t>(flags.max_inflight_submissions);
  options->max_inflight_bytes = static_cast<size_t>(flags.max_inflight_bytes);
  auto ledger = ledger::store::Ledger::Open(*std::move(options));
  if (!ledger.ok()) {
    return Refuse(absl::StrCat("cannot open the ledger in ", flags.data, ": ",
                               ledger.status().message()),
                  1);
  }

  // DESIGN §4 "Logs outlive releases": an old ledger keeps its rules unless
  // its operator adopts this release's, as a record every auditor replays.
  uint32_t rules_version = std::max<uint32_t>(1, (*ledger)->info().rules_version());
  if (rules_version < ledger::rules::kLatestRulesVersion) {
    if (flags.upgrade_rules) {
      auto adopted = (*ledger)->AdoptRulesVersion(ledger::rules::kLatestRulesVersion);
      if (!adopted.ok()) {
        return Refuse(absl::StrCat("cannot adopt rules version ", ledger::rules::kLatestRulesVersion, ": ",
                                   adopted.status().message()),
                      1);
      }
      std::cout << "ledgerd: rules version " << ledger::rules::kLatestRulesVersion << " adopted at position "
                << *adopted << " (was " << rules_version << ")\n";
      LOG(INFO) << "rules version " << ledger::rules::kLatestRulesVersion << " adopted at position " << *adopted;
      rules_version = ledger::rules::kLatestRulesVersion;
    } else {
      LOG(WARNING) << "this ledger decides under rules version " << rules_version << "; this release knows "
                   << ledger::rules::kLatestRulesVersion << " (ledgerd --upgrade-rules adopts it)";
    }
  }

  // The signed-note verifier key witnesses and auditors configure for this
  // log (c2sp.org/signed-note), beside operator.pub.pem.
  const std::string vkey = ledger::merkle::VerifierKey((*ledger)->info().origin(), (*ledger)->operator_public_key());
  const std::string vkey_path = flags.data + "/operator.vkey";
  if (absl::Status written = ledger::services::WriteOperatorVkey(flags.data, vkey); !written.ok()) {
    return Refuse(std::string(written.message()), 1);
  }

  // Services hold the ledger: they are destroyed (inner scope) before it is.
  {
  std::unique_ptr<ledger::services::WitnessCollector> witnesses;
  if (witness_policy.has_value()) {
    auto collector = ledger::services::WitnessCollector::Create(ledger->get(), *std::move(witness_policy));
    if (!collector.ok()) return Refuse(absl::StrCat("--witness-policy: ", collector.status().message()), 2);
    witnesses = *std::move(collector);
    witnesses->Start();
  }
  // Threads started once, outliving the services: long scans off the gRPC
  // reaction threads (Read, ListCheckpoints, VerifyProposal, governance lists).
  ledger::ThreadPool scan_workers(2, 0, "scan");
  ledger::services::LedgerServiceImpl ledger_service(ledger->get(), &scan_workers,
                                                     static_cast<int>(flags.max_subscribers));
  ledger_service.LimitBatchBytesPerSecond(static_cast<size_t>(flags.batch_bytes_per_second));
  const absl::Duration stream_stall_timeout = absl::Seconds(flags.stream_stall_seconds);
  ledger::services::AuditServiceImpl audit_service(ledger->get(), &verify_pool, &scan_workers,
                                                   static_cast<int>(flags.max_verifications), stream_stall_timeout);
  ledger::services::GovernanceServiceImpl governance_service(&(*ledger)->store(), &scan_workers);
  ledger::services::BackupServiceImpl backup_service(ledger->get(), flags.data, stream_stall_timeout);
  if (costly_rpcs->restricts()) {
    ledger_service.RestrictCostlyRpcs(&*costly_rpcs);
    audit_service.RestrictCostlyRpcs(&*costly_rpcs);
    backup_service.RestrictCostlyRpcs(&*costly_rpcs);
  }
  if (metrics_address.has_value()) {
    ledger_service.ExportMetrics(&metrics);
    metrics.AddCallbackGauge("ledger_verifications_running", "AuditService.Verify calls running.",
                             [&audit_service] { return static_cast<double>(audit_service.verifications_running()); });
    ledger::services::RegisterLedgerMetrics(&metrics, ledger->get(), witnesses.get());
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(flags.listen, *credentials, &port);
  // Default: a full batch of maximal events, with room for the envelope.
  builder.SetMaxReceiveMessageSize(static_cast<int>(flags.max_message_bytes));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, static_cast<int>(flags.max_concurrent_streams));
  // Dead peers are found by pings; quiet connections are closed (a client
  // reconnects on its next call); clients may ping every 10 s, even idle.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(flags.keepalive_seconds * 1000));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20'000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, static_cast<int>(flags.idle_timeout_seconds * 1000));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000);
  builder.RegisterService(&ledger_service);
  builder.RegisterService(&audit_service);
  builder.RegisterService(&governance_service);
  builder.RegisterService(&backup_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) return Refuse("cannot listen on " + flags.listen, 1);
  // Readiness: NOT_SERVING until every listener is up. The tree was checked
  // against the latest signed checkpoint when the ledger opened (above).
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  if (health != nullptr) health->SetServingStatus(false);
  std::unique_ptr<ledger::services::MetricsServer> metrics_server;
  if (metrics_address.has_value()) {
    auto started = ledger::services::MetricsServer::Start(*metrics_address, &metrics);
    if (!started.ok()) {
      server->Shutdown();
      return Refuse(absl::StrCat("--metrics-listen: ", started.status().message()), 1);
    }
    metrics_server = *std::move(started);
    std::cout << "metrics on " << metrics_server->url() << "\n";
  }
  std::string host = flags.listen.substr(0, flags.listen.rfind(':'));
  std::string address = host + ":" + std::to_string(port);
  std::cout << "ledgerd listening on " << address << "\n"
            << "  ledger " << (*ledger)->info().ledger_id() << ", " << (*ledger)->size()
            << " records, rules version " << rules_version << ", data in " << flags.data << "\n"
            << "  operator public key: " << flags.data << "/operator.pub.pem\n"
            << "  operator vkey: " << vkey << " (" << vkey_path << ")\n"
            << (witnesses ? absl::StrCat("  witnesses: ", witnesses->policy().witnesses().size(), ", quorum ",
                                         witnesses->policy().QuorumText(), "\n")
                          : "")
            << "  registrar key (new ledgers): "
            << (flags.registrar_key_out.empty() ? flags.data + "/registrar.key.pem" : flags.registrar_key_out) << "\n"
            << "  try: " << LedgerctlCommand() << " --server " << address << " checkpoint\n"
            << std::flush;
  if (health != nullptr) {
    for (const char* service : {"ledger.v1.LedgerService", "ledger.v1.AuditService", "ledger.v1.GovernanceService",
                                "ledger.v1.BackupService"}) {
      health->SetServingStatus(service, true);
    }
    health->SetServingStatus(true);
  }
  LOG(INFO) << "ledgerd started: listening on " << address << ", data " << flags.data
            << ", ledger " << (*ledger)->info().ledger_id() << ", " << (*ledger)->size()
            << " records" << (flags.tls_cert.empty() ? "" : ", TLS")
            << (flags.tls_client_ca.empty() ? "" : " with client certificates")
            << (costly_rpcs->restricts()
                    ? absl::StrCat(", costly RPCs for ", absl::StrJoin(costly_rpcs->allowed(), ","))
                    : "");

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  const char* signal_name = signal_number == SIGTERM ? "SIGTERM" : "SIGINT";
  std::cout << "ledgerd: " << signal_name << ", shutting down" << std::endl;
  LOG(INFO) << "ledgerd stopping: " << signal_name;
  if (health != nullptr) health->SetServingStatus(false);
  if (metrics_server) metrics_server->Stop();
  ledger_service.StopStreams();
  if (witnesses) witnesses->Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server->Wait();
  (*ledger)->Shutdown();
  }
  const uint64_t records = (*ledger)->records_committed();
  const uint64_t groups = (*ledger)->groups_committed();
  std::cout << "ledgerd: committed " << records << " records in " << groups << " commit groups"
            << std::endl;
  ledger->reset();
  std::cout << "ledgerd: stopped cleanly" << std::endl;
  LOG(INFO) << "ledgerd stopped: data " << flags.data << ", committed " << records
            << " records in " << groups << " commit groups";
  return 0;
}
