// ledgerctl's command-line parsing: the one place flags are declared, parsed
// and explained.
//
// A command declares its flags in a CommandSpec; ParseCommand turns the
// arguments after the command name into ParsedFlags or a usage error. Flags
// are `--name value` or `--name=value`; switches (no value) are `--name`.
// `--help` / `-h` anywhere asks for the command's help. Unknown flags, a
// repeated non-repeatable flag, a missing required flag or value, and
// stray arguments are usage errors (exit status 2).
#ifndef TOOLS_LEDGERCTL_FLAGS_H_
#define TOOLS_LEDGERCTL_FLAGS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ledger::ctl {

inline constexpr char kDefaultServer[] = "127.0.0.1:7400";

// What a flag's value must be. ParseCommand checks it, so a malformed value
// is a usage error before the command runs (before it waits to connect).
enum class FlagValue {
  kText,
  kNumber,  // a non-negative decimal integer (ParsedFlags::GetUint64)
  kTime,    // an RFC 3339 time, e.g. 2026-12-01T09:00:00Z (ParsedFlags::GetTime)
};

struct FlagSpec {
  std::string name;        // without the leading "--"
  std::string value_name;  // e.g. "FILE"; empty for a switch
  std::string help = {};
  bool required = false;
  bool repeated = false;
  FlagValue value = FlagValue::kText;
};

struct CommandSpec {
  std::string name;                       // e.g. "register-org"
  std::vector<std::string> args = {};     // required positional arguments, e.g. {"N"}
  std::string summary;                    // one line, for the command list
  std::string description = {};           // paragraph(s) for --help; may be empty
  std::vector<FlagSpec> flags = {};       // the global --server is added by the parser
};

class ParsedFlags {
 public:
  bool Has(absl::string_view name) const;
  // The flag's value ("" if absent). For repeated flags, the last one.
  const std::string& Get(absl::string_view name) const;
  // Every value of a repeated flag, in order (empty if absent).
  const std::vector<std::string>& GetAll(absl::string_view name) const;
  // The flag as a decimal uint64; `default_value` if absent; a usage error
  // naming the flag if it is not a number.
  absl::StatusOr<uint64_t> GetUint64(absl::string_view name,
                                     uint64_t default_value) const;
  // The flag as an RFC 3339 time; nullopt if absent; a usage error naming
  // the flag if it is not one.
  absl::StatusOr<std::optional<absl::Time>> GetTime(absl::string_view name) const;
  // Positional argument i (declared in CommandSpec::args).
  const std::string& Arg(size_t i) const { return args_[i]; }
  bool help() const { return help_; }

 private:
  friend absl::StatusOr<ParsedFlags> ParseCommand(const CommandSpec& spec,
                                                  const std::vector<std::string>& argv);
  std::map<std::string, std::vector<std::string>, std::less<>> values_;
  std::vector<std::string> args_;
  bool help_ = false;
};

// Parses the arguments that follow the command name. When --help is present
// the result has help() set and nothing else is checked.
absl::StatusOr<ParsedFlags> ParseCommand(const CommandSpec& spec,
                                         const std::vector<std::string>& argv);

// "Usage: ledgerctl [--server HOST:PORT] NAME ARGS [flags]" and the flag table.
std::string CommandHelp(const CommandSpec& spec);

// Usage errors are InvalidArgument statuses marked with a payload, so main can
// tell them from failures (exit 2 rather than 1).
absl::Status UsageError(absl::string_view message);
bool IsUsageError(const absl::Status& status);

// Parses a decimal uint64, or returns a usage error naming `what`.
absl::StatusOr<uint64_t> ParseUint64(absl::string_view what, absl::string_view text);
// Parses an RFC 3339 time, or returns a usage error naming `what`.
absl::StatusOr<absl::Time> ParseRfc3339(absl::string_view what, absl::string_view text);

}  // namespace ledger::ctl

#endif  // TOOLS_LEDGERCTL_FLAGS_H_
