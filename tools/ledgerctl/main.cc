// ledgerctl: the Decision Ledger command-line client.
//
//   ledgerctl [--server HOST:PORT] [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]
//             [--evidence DIR] COMMAND [flags]
//
// Exit status: 0 success, 1 failure (the server refused, a proof did not
// verify, a file was bad), 2 usage error. Errors go to stderr, prefixed
// with "ledgerctl COMMAND:".
#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tools/ledgerctl/commands.h"
#include "tools/ledgerctl/flags.h"

namespace ledger::ctl {
namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

std::vector<Command> AllCommands() {
  std::vector<Command> commands{
      KeygenCommand(),
      RegisterOrgCommand(),
      AddKeyCommand(),
      RevokeKeyCommand(),
      SubmitCommand(),
      GetCommand(),
      ReadCommand(),
      TailCommand(),
      CheckpointCommand(),
      ProveCommand(),
      ConsistencyCommand(),
  };
  for (auto group : {GovernanceActionCommands(), QueryCommands(), AuditCommands(), MonitorCommands(), BackupCommands(),
                     DecisionEvidenceCommands()}) {
    commands.insert(commands.end(), group.begin(), group.end());
  }
  commands.push_back(ReportCommand());
  commands.push_back(DemoCommand());
  return commands;
}

const std::vector<Command>& Commands() {
  static const std::vector<Command>* const kCommands = new std::vector<Command>(AllCommands());
  return *kCommands;
}

std::string MainHelp() {
  std::string out = absl::StrCat(
      "Usage: ledgerctl [--server HOST:PORT] [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]\n"
      "                 [--evidence DIR] COMMAND [flags]\n\n"
      "The Decision Ledger client. --server defaults to ",
      kDefaultServer, " (it may also follow the command).\n"
      "--tls-ca FILE speaks TLS to a server whose certificate chains to that CA;\n"
      "--tls-cert and --tls-key add a client certificate (mutual TLS).\n"
      "--evidence DIR keeps every receipt's signed checkpoint there; `audit` checks\n"
      "the server still holds them (default $LEDGER_EVIDENCE, else\n"
      "$XDG_STATE_HOME/decision-ledger/evidence, else ~/.local/state/decision-ledger/evidence).\n\nCommands:\n");
  size_t width = 0;
  for (const Command& c : Commands()) width = std::max(width, c.spec.name.size());
  for (const Command& c : Commands()) {
    absl::StrAppend(&out, "  ", c.spec.name, std::string(width + 2 - c.spec.name.size(), ' '),
                    c.spec.summary, "\n");
  }
  absl::StrAppend(&out,
                  "\nRun 'ledgerctl COMMAND --help' for a command's flags.\n"
                  "Exit status: 0 success, 1 failure, 2 usage error.\n");
  return out;
}

int Usage(absl::string_view where, absl::string_view message, absl::string_view hint) {
  std::fprintf(stderr, "%s: %.*s\n%.*s\n", std::string(where).c_str(),
               static_cast<int>(message.size()), message.data(),
               static_cast<int>(hint.size()), hint.data());
  return kExitUsage;
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string server = kDefaultServer;
  // --tls-ca, --tls-cert, --tls-key: before or after the command.
  std::map<std::string, std::string> tls_files;
  std::string evidence;  // --evidence DIR, before or after the command

  // Global flags before the command.
  size_t i = 0;
  for (; i < args.size() && absl::StartsWith(args[i], "-"); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(MainHelp().c_str(), stdout);
      return 0;
    }
    bool tls_flag = false;
    for (const char* name : {"--tls-ca", "--tls-cert", "--tls-key"}) {
      if (arg == name || absl::StartsWith(arg, absl::StrCat(name, "="))) {
        tls_flag = true;
        if (arg == name && i + 1 >= args.size()) {
          return Usage("ledgerctl", absl::StrCat(name, " needs a value (FILE)"),
                       "Run 'ledgerctl --help' for usage.");
        }
        tls_files[name + 2] = arg == name ? args[++i] : arg.substr(std::string(name).size() + 1);
      }
    }
    if (tls_flag) continue;
    if (arg == "--evidence" || absl::StartsWith(arg, "--evidence=")) {
      if (arg == "--evidence" && i + 1 >= args.size()) {
        return Usage("ledgerctl", "--evidence needs a value (DIR)", "Run 'ledgerctl --help' for usage.");
      }
      evidence = arg == "--evidence" ? args[++i] : arg.substr(std::string("--evidence=").size());
      if (evidence.empty()) {
        return Usage("ledgerctl", "--evidence must not be empty", "Run 'ledgerctl --help' for usage.");
      }
      continue;
    }
    if (arg == "--server") {
      if (i + 1 >= args.size()) {
        return Usage("ledgerctl", "--server needs a value (HOST:PORT)",
                     "Run 'ledgerctl --help' for usage.");
      }
      server = args[++i];
    } else if (absl::StartsWith(arg, "--server=")) {
      server = arg.substr(std::string("--server=").size());
    } else {
      return Usage("ledgerctl", absl::StrCat("unknown flag '", arg, "' before the command"),
                   "Run 'ledgerctl --help' for usage.");
    }
    if (server.empty()) {
      return Usage("ledgerctl", "--server must not be empty", "Run 'ledgerctl --help' for usage.");
    }
  }
  if (i >= args.size()) {
    return Usage("ledgerctl", "no command given", MainHelp());
  }
  const std::string& name = args[i];
  if (name == "help") {  // "ledgerctl help [COMMAND]"
    if (i + 1 >= args.size()) {
      std::fputs(MainHelp().c_str(), stdout);
      return 0;
    }
    for (const Command& c : Commands()) {
      if (c.spec.name == args[i + 1]) {
        std::fputs(CommandHelp(c.spec).c_str(), stdout);
        return 0;
      }
    }
    return Usage("ledgerctl help", absl::StrCat("unknown command '", args[i + 1], "'"),
                 "Run 'ledgerctl --help' for the list of commands.");
  }
  auto command = std::find_if(Commands().begin(), Commands().end(),
                              [&](const Command& c) { return c.spec.name == name; });
  if (command == Commands().end()) {
    return Usage("ledgerctl", absl::StrCat("unknown command '", name, "'"),
                 "Run 'ledgerctl --help' for the list of commands.");
  }

  std::string where = absl::StrCat("ledgerctl ", name);
  std::string hint = absl::StrCat("Run '", where, " --help' for usage.");
  std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
  absl::StatusOr<ParsedFlags> flags = ParseCommand(command->spec, rest);
  if (!flags.ok()) return Usage(where, flags.status().message(), hint);
  if (flags->help()) {
    std::fputs(CommandHelp(command->spec).c_str(), stdout);
    return 0;
  }
  if (flags->Has("server")) {
    if (flags->Get("server").empty()) return Usage(where, "--server must not be empty", hint);
    server = flags->Get("server");
  }
  for (const char* name : {"tls-ca", "tls-cert", "tls-key"}) {
    if (flags->Has(name)) tls_files[name] = flags->Get(name);
  }
  if (flags->Has("evidence")) {
    if (flags->Get("evidence").empty()) return Usage(where, "--evidence must not be empty", hint);
    evidence = flags->Get("evidence");
  }
  absl::StatusOr<client::TlsOptions> tls =
      client::LoadTls(tls_files["tls-ca"], tls_files["tls-cert"], tls_files["tls-key"]);
  if (!tls.ok()) {
    if (absl::IsInvalidArgument(tls.status())) return Usage(where, tls.status().message(), hint);
    std::fprintf(stderr, "%s: %s\n", where.c_str(), std::string(tls.status().message()).c_str());
    return kExitFailure;
  }

  absl::Status status = command->run(Invocation{*flags, server, *std::move(tls), evidence});
  if (status.ok()) return 0;
  if (IsUsageError(status)) return Usage(where, status.message(), hint);
  std::fprintf(stderr, "%s: %s\n", where.c_str(), std::string(status.message()).c_str());
  return kExitFailure;
}

}  // namespace
}  // namespace ledger::ctl

int main(int argc, char** argv) { return ledger::ctl::Main(argc, argv); }
