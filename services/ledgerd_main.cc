// ledgerd: the Decision Ledger server.
//
//   ledgerd [--data DIR] [--listen HOST:PORT] [--registrar-id ID] [--registrar-key-out PATH]
//           [--identity-notice-seconds N] [--upgrade-rules]
//           [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM [--costly-rpc-clients ID,...]]]
//
// Prints "ledgerd listening on HOST:PORT" once it serves. SIGTERM/SIGINT stop
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
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "ledger/common/thread_pool.h"
#include "ledger/event/envelope.h"
#include "ledger/rules/version.h"
#include "services/audit_service.h"
#include "services/command_line.h"
#include "services/costly_rpcs.h"
#include "services/data_dir.h"
#include "services/governance_service.h"
#include "services/ledger_service.h"

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
          "ListCheckpoints and a filtered Read");

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
    "                      is listed may call Verify, ListCheckpoints and a filtered Read\n"
    "                      (kinds or author); others get PERMISSION_DENIED\n";

struct Flags {
  std::string data = "./var/ledger";
  std::string listen = "127.0.0.1:7400";
  std::string registrar_id = "registrar";
  std::string registrar_key_out;
  int64_t identity_notice_seconds = 0;
  bool upgrade_rules = false;
  std::string tls_cert, tls_key, tls_client_ca;
  std::string costly_rpc_clients;
};

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
       &absl::GetFlagReflectionHandle(FLAGS_costly_rpc_clients)},
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
  return true;
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

  auto credentials = ServerCredentials(flags);
  if (!credentials.ok()) return Refuse(std::string(credentials.status().message()), 2);
  // Identities are only known under mutual TLS: a list without it would
  // admit nobody (or, read loosely, everybody).
  auto costly_rpcs = ledger::services::CostlyRpcPolicy::Parse(flags.costly_rpc_clients);
  if (!costly_rpcs.ok()) return Refuse(std::string(costly_rpcs.status().message()), 2);
  if (costly_rpcs->restricts() && flags.tls_client_ca.empty()) {
    return Refuse("--costly-rpc-clients needs mutual TLS (--tls-cert, --tls-key and --tls-client-ca)", 2);
  }
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
  ledger::ThreadPool verify_pool(0);
  options->verify_pool = &verify_pool;
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

  // Services hold the ledger: they are destroyed (inner scope) before it is.
  {
  // Threads started once, outliving the services: long scans off the gRPC
  // reaction threads (Read, ListCheckpoints, VerifyProposal, governance lists).
  ledger::ThreadPool scan_workers(2);
  ledger::services::LedgerServiceImpl ledger_service(ledger->get(), &scan_workers);
  ledger::services::AuditServiceImpl audit_service(ledger->get(), &verify_pool, &scan_workers);
  ledger::services::GovernanceServiceImpl governance_service(&(*ledger)->store(), &scan_workers);
  if (costly_rpcs->restricts()) {
    ledger_service.RestrictCostlyRpcs(&*costly_rpcs);
    audit_service.RestrictCostlyRpcs(&*costly_rpcs);
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(flags.listen, *credentials, &port);
  // A full batch of maximal events, with room for the envelope.
  builder.SetMaxReceiveMessageSize(static_cast<int>(ledger::kMaxBatchEvents * (ledger::kMaxBodyBytes + 1024)));
  builder.RegisterService(&ledger_service);
  builder.RegisterService(&audit_service);
  builder.RegisterService(&governance_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) return Refuse("cannot listen on " + flags.listen, 1);
  std::string host = flags.listen.substr(0, flags.listen.rfind(':'));
  std::string address = host + ":" + std::to_string(port);
  std::cout << "ledgerd listening on " << address << "\n"
            << "  ledger " << (*ledger)->info().ledger_id() << ", " << (*ledger)->size()
            << " records, rules version " << rules_version << ", data in " << flags.data << "\n"
            << "  operator public key: " << flags.data << "/operator.pub.pem\n"
            << "  registrar key (new ledgers): "
            << (flags.registrar_key_out.empty() ? flags.data + "/registrar.key.pem" : flags.registrar_key_out) << "\n"
            << "  try: ledgerctl --server " << address << " checkpoint\n"
            << std::flush;
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
  ledger_service.StopStreams();
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
