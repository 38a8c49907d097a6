// The command line of ledgerd and the benchmarks, read into Abseil flags.
//
// Flags are defined with ABSL_FLAG (type, default, help) where they are used;
// this reads argv into them. It exists beside absl::ParseCommandLine because
// our programs keep a contract that one cannot: flag names with hyphens
// (--registrar-id sets FLAGS_registrar_id; absl names cannot hold a hyphen),
// exit code 2 on a usage error (absl exits 1), and only the program's own
// flags (not absl's --flagfile, --fromenv, ...).
//
// Accepted: "--name value", "--name=value", and "--name" alone for a bool
// flag (which sets it true; a bool flag takes no value). "-h" or "--help"
// prints the program's usage to stdout and exits 0. Arguments are read in
// order; the first error stops the reading.
//
// Thread contract: call once, from main, before any thread reads the flags.
#ifndef SERVICES_COMMAND_LINE_H_
#define SERVICES_COMMAND_LINE_H_

#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"

namespace ledger::cli {

struct CommandLineError {
  enum Kind {
    kNone,
    kNotAFlag,      // an argument that does not start with "--": `arg`
    kUnknownFlag,   // a flag this program does not take: `arg` (as given), `flag`
    kMissingValue,  // the last argument wants a value: `flag`
    kValueForBool,  // "--json=x": `flag`
    kBadValue,      // the value does not parse as the flag's type: `flag`, `value`, `detail`
  };
  Kind kind = kNone;
  std::string arg;     // the argument as given
  std::string flag;    // "--name", as the user spells it (hyphens)
  std::string value;   // the value given
  std::string detail;  // absl's reason for kBadValue

  bool ok() const { return kind == kNone; }
  // A default wording naming the flag, e.g. "unknown flag '--clients2'".
  std::string Message() const;
};

// Reads argv[1..argc) into `flags` (the program's own, e.g.
// {&absl::GetFlagReflectionHandle(FLAGS_data), ...}). On --help or -h prints
// `usage` to stdout and exits 0.
CommandLineError ReadCommandLine(int argc, char** argv,
                                 const std::vector<const absl::CommandLineFlag*>& flags,
                                 const char* usage);

}  // namespace ledger::cli

#endif  // SERVICES_COMMAND_LINE_H_
