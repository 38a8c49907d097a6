// ledger-witness: a C2SP tlog-witness v1 witness over HTTP (README "Running a
// witness").
//
//   ledger-witness --data DIR --listen HOST:PORT --name NAME --log-vkey VKEY
//                  [--log-vkey VKEY ...] [--prefix /PATH]
//
// Serves POST <prefix>/add-checkpoint (ledger/witness/witness.h says what it
// answers). Prints "ledger-witness listening on HOST:PORT" (the actual port)
// and "  vkey: <its verifier key>" once it serves; the vkey is also in
// DIR/witness.vkey. SIGTERM/SIGINT stop it: no new connections, requests in
// progress finish. One log line per answer goes to stderr (glog).
// Exit status: 0 after a clean stop, 1 if it cannot start, 2 on bad flags.
#include <signal.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "httplib.h"
#include "ledger/witness/cosignature.h"
#include "ledger/witness/witness.h"
#include "services/command_line.h"

ABSL_FLAG(std::string, data, "", "data directory (key, vkey, state)");
ABSL_FLAG(std::string, listen, "127.0.0.1:7480", "address to serve HTTP on (port 0 picks one)");
ABSL_FLAG(std::string, name, "", "the witness's key name, e.g. witness.example.org/regulator");
ABSL_FLAG(std::string, prefix, "", "submission prefix: serve POST <prefix>/add-checkpoint");

namespace {

constexpr char kUsage[] =
    "usage: ledger-witness --data DIR --name NAME --log-vkey VKEY [--log-vkey VKEY ...]\n"
    "                      [--listen HOST:PORT] [--prefix /PATH]\n"
    "  --data DIR          data directory: the witness key (0600, made on first start),\n"
    "                      DIR/witness.vkey and the latest cosigned size and root per log\n"
    "  --name NAME         the witness's key name (no spaces or '+'), fixed by the first start\n"
    "  --log-vkey VKEY     a log's checkpoint verifier key (<origin>+<key id>+<base64>, as\n"
    "                      ledgerd writes to DATA/operator.vkey); repeat for more logs\n"
    "  --listen HOST:PORT  address to serve HTTP on (default 127.0.0.1:7480; port 0 picks one)\n"
    "  --prefix /PATH      submission prefix (default none: POST /add-checkpoint)\n";

constexpr char kLogVkeyFlag[] = "--log-vkey";

int Usage(const std::string& message) {
  std::cerr << "ledger-witness: " << message << "\n" << kUsage << std::flush;
  return 2;
}

int Refuse(const std::string& message) {
  std::cerr << "ledger-witness: " << message << "\n" << std::flush;
  LOG(ERROR) << "ledger-witness refused to start: " << message;
  return 1;
}

bool IsPrefixChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' ||
         c == '-' || c == '_' || c == '.' || c == '~';
}

}  // namespace

int main(int argc, char** argv) {
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);

  // --log-vkey is repeatable, which an absl flag is not: take it out first.
  std::vector<std::string> log_vkeys;
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == kLogVkeyFlag) {
      if (i + 1 >= argc) return Usage("--log-vkey needs a value");
      log_vkeys.push_back(argv[++i]);
    } else if (arg.rfind(std::string(kLogVkeyFlag) + "=", 0) == 0) {
      log_vkeys.push_back(arg.substr(sizeof kLogVkeyFlag));
    } else {
      rest.push_back(argv[i]);
    }
  }
  ledger::cli::CommandLineError error = ledger::cli::ReadCommandLine(
      static_cast<int>(rest.size()), rest.data(),
      {&absl::GetFlagReflectionHandle(FLAGS_data), &absl::GetFlagReflectionHandle(FLAGS_listen),
       &absl::GetFlagReflectionHandle(FLAGS_name), &absl::GetFlagReflectionHandle(FLAGS_prefix)},
      kUsage);
  if (!error.ok()) return Usage(error.Message());
  const std::string data = absl::GetFlag(FLAGS_data);
  const std::string listen = absl::GetFlag(FLAGS_listen);
  const std::string name = absl::GetFlag(FLAGS_name);
  const std::string prefix = absl::GetFlag(FLAGS_prefix);
  if (data.empty()) return Usage("--data is required");
  if (name.empty()) return Usage("--name is required");
  if (log_vkeys.empty()) return Usage("--log-vkey is required (at least one log)");
  std::vector<ledger::witness::VerifierKey> logs;
  for (const std::string& text : log_vkeys) {
    auto vkey = ledger::witness::ParseVerifierKey(text);
    if (!vkey.ok()) return Usage(absl::StrCat("--log-vkey ", text, ": ", vkey.status().message()));
    if (vkey->type != ledger::witness::kNoteEd25519) {
      return Usage(absl::StrCat("--log-vkey ", text, ": not a log key (type ", static_cast<int>(vkey->type),
                                "; a log's checkpoint key has type 1)"));
    }
    logs.push_back(*std::move(vkey));
  }
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon != std::string::npos && colon > 0 && colon + 1 < listen.size() && colon + 6 >= listen.size()) {
    port = 0;
    for (char c : listen.substr(colon + 1)) port = (c >= '0' && c <= '9' && port >= 0) ? port * 10 + (c - '0') : -1;
  }
  if (port < 0 || port > 65535) return Usage(absl::StrCat("--listen ", listen, ": not HOST:PORT"));
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (!prefix.empty()) {
    bool ok = prefix.front() == '/' && prefix.back() != '/';
    for (char c : prefix) ok = ok && IsPrefixChar(c);
    if (!ok) {
      return Usage(absl::StrCat("--prefix ", prefix,
                                ": must start with '/', not end with one, and hold only letters, digits and /-_.~"));
    }
  }

  // Signals are taken by sigwait below, never by a handler on a random thread.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto witness = ledger::witness::Witness::Open(data, name, logs);
  if (!witness.ok()) {
    return Refuse(absl::StrCat("cannot open the witness in ", data, ": ", witness.status().message()));
  }
  for (const std::string& warning : (*witness)->warnings()) LOG(WARNING) << warning;

  httplib::Server server;
  // Bodies beyond the limit are answered 413 before they are read.
  server.set_payload_max_length(ledger::witness::Witness::kMaxBodyBytes);
  // Answers are small: without this, Nagle and the peer's delayed ACK add
  // ~40 ms to each one (65 ms a request against 1 ms measured on loopback).
  server.set_tcp_nodelay(true);
  // The path with regex metacharacters escaped ('.' is the only one allowed).
  std::string pattern;
  for (char c : prefix) pattern += c == '.' ? std::string("\\.") : std::string(1, c);
  pattern += "/add-checkpoint";
  ledger::witness::Witness* w = witness->get();
  server.Post(pattern, [w](const httplib::Request& request, httplib::Response& response) {
    ledger::witness::Witness::Response answer = w->AddCheckpoint(request.body);
    response.status = answer.status;
    response.set_content(answer.body, answer.content_type.c_str());
    LOG(INFO) << "add-checkpoint from " << request.remote_addr << ": " << answer.status
              << (answer.status == 200 ? "" : absl::StrCat(" ", answer.body.substr(0, answer.body.find('\n'))));
  });

  int bound = port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) return Refuse(absl::StrCat("cannot listen on ", listen));
  std::thread serving([&server] { server.listen_after_bind(); });
  // stop() is a no-op until the accept loop runs: wait for it, so an early
  // SIGTERM is not lost.
  while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  std::string shown_host = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  std::string address = absl::StrCat(shown_host, ":", bound);
  std::vector<std::string> origins;
  for (const auto& log : logs) origins.push_back(log.name);
  std::cout << "ledger-witness listening on " << address << "\n"
            << "  vkey: " << (*witness)->vkey().text << "\n"
            << "  logs: " << absl::StrJoin(origins, ", ") << "\n"
            << "  submit: POST http://" << address << prefix << "/add-checkpoint\n"
            << std::flush;
  LOG(INFO) << "ledger-witness started: " << (*witness)->vkey().text << " on " << address << prefix
            << ", data " << data << ", logs " << absl::StrJoin(origins, ", ");

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  const char* signal_name = signal_number == SIGTERM ? "SIGTERM" : "SIGINT";
  std::cout << "ledger-witness: " << signal_name << ", shutting down" << std::endl;
  LOG(INFO) << "ledger-witness stopping: " << signal_name;
  server.stop();
  serving.join();
  witness->reset();
  std::cout << "ledger-witness: stopped cleanly" << std::endl;
  return 0;
}
