// The commands of ledgerctl. Each command is a CommandSpec (its flags and
// help, see flags.h) and one function; main.cc lists them and dispatches.
//
// A command returns OK (exit 0), a usage error (flags.h; exit 2) or any other
// error (exit 1), whose message says what was wrong; main prints it.
#ifndef TOOLS_LEDGERCTL_COMMANDS_H_
#define TOOLS_LEDGERCTL_COMMANDS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/channel.h"
#include "tools/ledgerctl/flags.h"

namespace ledger::ctl {

// What every command gets: its parsed flags, the server to talk to and how
// (TLS from --tls-ca/--tls-cert/--tls-key; off when none is given) and where
// receipts are kept as evidence.
struct Invocation {
  const ParsedFlags& flags;
  std::string server;
  client::TlsOptions tls = {};
  // --evidence DIR (before or after the command); empty: the default
  // (evidence.h, EvidenceRoot).
  std::string evidence = {};
};

struct Command {
  CommandSpec spec;
  absl::Status (*run)(const Invocation& invocation);
};

// keys.cc
Command KeygenCommand();
// member_actions.cc
Command RegisterOrgCommand();
Command AddKeyCommand();
Command RevokeKeyCommand();
Command SubmitCommand();
// reads.cc
Command GetCommand();
Command ReadCommand();
Command TailCommand();
Command CheckpointCommand();
// proofs.cc
Command ProveCommand();
Command ConsistencyCommand();
// governance_actions.cc
std::vector<Command> GovernanceActionCommands();
// queries.cc
std::vector<Command> QueryCommands();
// demo.cc
Command DemoCommand();
// audit_commands.cc
std::vector<Command> AuditCommands();
// monitor.cc: verify-server, verify-proposal, audit
std::vector<Command> MonitorCommands();
// backup.cc: backup, restore
std::vector<Command> BackupCommands();
// decision_evidence.cc: evidence, verify-evidence
std::vector<Command> DecisionEvidenceCommands();
// report.cc: report (the decision report, one HTML page)
Command ReportCommand();

}  // namespace ledger::ctl

#endif  // TOOLS_LEDGERCTL_COMMANDS_H_
