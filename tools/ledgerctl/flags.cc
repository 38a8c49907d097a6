#include "tools/ledgerctl/flags.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace ledger::ctl {
namespace {

constexpr char kUsagePayloadUrl[] = "type.googleapis.com/ledgerctl.UsageError";

// Flags every command accepts besides its own: the connection's and --evidence.
const std::vector<FlagSpec>& ConnectionFlags() {
  static const std::vector<FlagSpec>* const kFlags = new std::vector<FlagSpec>{
      {"server", "HOST:PORT",
       absl::StrCat("ledgerd to talk to (default ", kDefaultServer,
                    "); may also be given before the command")},
      {"tls-ca", "FILE", "speak TLS; the server's certificate must chain to this CA (PEM)"},
      {"tls-cert", "FILE", "client certificate (PEM) for mutual TLS (needs --tls-key)"},
      {"tls-key", "FILE", "the client certificate's private key (PEM)"},
      {"evidence", "DIR",
       "where receipts are kept as evidence and `audit` finds them (default $LEDGER_EVIDENCE, "
       "else $XDG_STATE_HOME/decision-ledger/evidence, else ~/.local/state/decision-ledger/evidence)"},
  };
  return *kFlags;
}

const FlagSpec* FindFlag(const CommandSpec& spec, absl::string_view name) {
  for (const FlagSpec& flag : ConnectionFlags()) {
    if (flag.name == name) return &flag;
  }
  for (const FlagSpec& flag : spec.flags) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

const std::string& Empty() {
  static const std::string* const kEmpty = new std::string();
  return *kEmpty;
}

}  // namespace

absl::Status UsageError(absl::string_view message) {
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kUsagePayloadUrl, absl::Cord("1"));
  return status;
}

bool IsUsageError(const absl::Status& status) {
  return status.GetPayload(kUsagePayloadUrl).has_value();
}

absl::StatusOr<uint64_t> ParseUint64(absl::string_view what, absl::string_view text) {
  uint64_t value = 0;
  bool digits_only = !text.empty() &&
                     std::all_of(text.begin(), text.end(),
                                 [](char c) { return absl::ascii_isdigit(c); });
  if (!digits_only || !absl::SimpleAtoi(text, &value)) {
    return UsageError(absl::StrCat(what, ": '", text,
                                   "' is not a non-negative decimal integer"));
  }
  return value;
}

absl::StatusOr<absl::Time> ParseRfc3339(absl::string_view what, absl::string_view text) {
  absl::Time time;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, text, &time, &error)) {
    return UsageError(absl::StrCat(what, " '", text, "' is not an RFC 3339 time (e.g. 2026-12-01T09:00:00Z): ", error));
  }
  return time;
}

bool ParsedFlags::Has(absl::string_view name) const {
  return values_.find(name) != values_.end();
}

const std::string& ParsedFlags::Get(absl::string_view name) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) return Empty();
  return it->second.back();
}

const std::vector<std::string>& ParsedFlags::GetAll(absl::string_view name) const {
  static const std::vector<std::string>* const kNone = new std::vector<std::string>();
  auto it = values_.find(name);
  return it == values_.end() ? *kNone : it->second;
}

absl::StatusOr<uint64_t> ParsedFlags::GetUint64(absl::string_view name,
                                                uint64_t default_value) const {
  if (!Has(name)) return default_value;
  return ParseUint64(absl::StrCat("--", name), Get(name));
}

absl::StatusOr<std::optional<absl::Time>> ParsedFlags::GetTime(absl::string_view name) const {
  if (!Has(name)) return std::nullopt;
  absl::StatusOr<absl::Time> time = ParseRfc3339(absl::StrCat("--", name), Get(name));
  if (!time.ok()) return time.status();
  return *time;
}

absl::StatusOr<ParsedFlags> ParseCommand(const CommandSpec& spec,
                                         const std::vector<std::string>& argv) {
  ParsedFlags parsed;
  // --help wins over everything else, so a half-typed command still explains
  // itself.
  for (const std::string& arg : argv) {
    if (arg == "--help" || arg == "-h") {
      parsed.help_ = true;
      return parsed;
    }
  }
  for (size_t i = 0; i < argv.size(); ++i) {
    absl::string_view arg = argv[i];
    if (!absl::StartsWith(arg, "-") || arg == "-") {
      if (parsed.args_.size() >= spec.args.size()) {
        return UsageError(absl::StrCat("unexpected argument '", arg, "'"));
      }
      parsed.args_.emplace_back(arg);
      continue;
    }
    if (!absl::StartsWith(arg, "--")) {
      return UsageError(absl::StrCat("unknown flag '", arg, "' (flags are spelt --name)"));
    }
    absl::string_view name = arg.substr(2);
    absl::string_view inline_value;
    bool has_inline_value = false;
    if (size_t eq = name.find('='); eq != absl::string_view::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_inline_value = true;
    }
    const FlagSpec* flag = FindFlag(spec, name);
    if (flag == nullptr) {
      return UsageError(absl::StrCat("unknown flag --", name));
    }
    std::string value;
    if (flag->value_name.empty()) {
      if (has_inline_value) {
        return UsageError(absl::StrCat("--", name, " takes no value"));
      }
    } else if (has_inline_value) {
      value = std::string(inline_value);
    } else {
      // A following "--flag" is taken as a forgotten value, not as the value;
      // write --name=--text for a value that really starts with "--".
      if (i + 1 >= argv.size() || absl::StartsWith(argv[i + 1], "--")) {
        return UsageError(absl::StrCat("--", name, " needs a value (", flag->value_name, ")"));
      }
      value = argv[++i];
    }
    if (flag->value == FlagValue::kNumber) {
      if (auto number = ParseUint64(absl::StrCat("--", name), value); !number.ok()) return number.status();
    } else if (flag->value == FlagValue::kTime) {
      if (auto time = ParseRfc3339(absl::StrCat("--", name), value); !time.ok()) return time.status();
    }
    std::vector<std::string>& values = parsed.values_[flag->name];
    if (!values.empty() && !flag->repeated) {
      return UsageError(absl::StrCat("--", name, " given more than once"));
    }
    values.push_back(std::move(value));
  }
  for (const FlagSpec& flag : spec.flags) {
    if (flag.required && !parsed.Has(flag.name)) {
      return UsageError(absl::StrCat("missing required flag --", flag.name));
    }
  }
  if (parsed.args_.size() < spec.args.size()) {
    return UsageError(absl::StrCat("missing argument ", spec.args[parsed.args_.size()]));
  }
  return parsed;
}

std::string CommandHelp(const CommandSpec& spec) {
  std::string out = absl::StrCat("Usage: ledgerctl [--server HOST:PORT] ", spec.name);
  for (const std::string& arg : spec.args) absl::StrAppend(&out, " ", arg);
  for (const FlagSpec& flag : spec.flags) {
    if (!flag.required) continue;
    absl::StrAppend(&out, " --", flag.name, " ", flag.value_name);
  }
  bool has_optional = std::any_of(spec.flags.begin(), spec.flags.end(),
                                  [](const FlagSpec& f) { return !f.required; });
  if (has_optional) absl::StrAppend(&out, " [flags]");
  absl::StrAppend(&out, "\n\n", spec.summary, "\n");
  if (!spec.description.empty()) absl::StrAppend(&out, "\n", spec.description, "\n");

  std::vector<const FlagSpec*> all;
  for (const FlagSpec& flag : spec.flags) all.push_back(&flag);
  for (const FlagSpec& flag : ConnectionFlags()) all.push_back(&flag);
  std::vector<std::string> heads;
  size_t width = 0;
  for (const FlagSpec* flag : all) {
    std::string head = absl::StrCat("--", flag->name);
    if (!flag->value_name.empty()) absl::StrAppend(&head, " ", flag->value_name);
    width = std::max(width, head.size());
    heads.push_back(std::move(head));
  }
  absl::StrAppend(&out, "\nFlags:\n");
  for (size_t i = 0; i < all.size(); ++i) {
    std::string note = all[i]->help;
    if (all[i]->required) absl::StrAppend(&note, " (required)");
    if (all[i]->repeated) absl::StrAppend(&note, " (repeatable)");
    absl::StrAppend(&out, "  ", heads[i], std::string(width + 2 - heads[i].size(), ' '),
                    note, "\n");
  }
  absl::StrAppend(&out, "  --help", std::string(width + 2 - 6, ' '),
                  "show this help\n");
  return out;
}

}  // namespace ledger::ctl
