#include "services/command_line.h"

#include <cstdlib>
#include <iostream>

#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace ledger::cli {

std::string CommandLineError::Message() const {
  switch (kind) {
    case kNone: return "";
    case kNotAFlag: return absl::StrCat("unexpected argument '", arg, "'");
    case kUnknownFlag: return absl::StrCat("unknown flag '", flag, "'");
    case kMissingValue: return absl::StrCat(flag, " needs a value");
    case kValueForBool: return absl::StrCat(flag, " takes no value");
    case kBadValue: return absl::StrCat(flag, ": bad value '", value, "': ", detail);
  }
  return "";
}

CommandLineError ReadCommandLine(int argc, char** argv,
                                 const std::vector<const absl::CommandLineFlag*>& flags,
                                 const char* usage) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    CommandLineError error;
    error.arg = arg;
    if (arg == "-h" || arg == "--help") {
      std::cout << usage;
      std::exit(0);
    }
    if (arg.rfind("--", 0) != 0) {
      error.kind = CommandLineError::kNotAFlag;
      return error;
    }
    const size_t eq = arg.find('=');
    error.flag = arg.substr(0, eq);
    const bool has_value = eq != std::string::npos;
    // Users write hyphens; absl names have underscores. Only the hyphen
    // spelling is accepted (as before the flags moved to absl).
    const std::string name = error.flag.substr(2);
    const std::string absl_name = absl::StrReplaceAll(name, {{"-", "_"}});
    const absl::CommandLineFlag* known = nullptr;
    if (name.find('_') == std::string::npos) {
      for (const absl::CommandLineFlag* flag : flags) {
        if (flag->Name() == absl_name) known = flag;
      }
    }
    if (known == nullptr) {
      error.kind = CommandLineError::kUnknownFlag;
      return error;
    }
    absl::CommandLineFlag* target = absl::FindCommandLineFlag(absl_name);
    if (known->IsOfType<bool>()) {
      if (has_value) {
        error.kind = CommandLineError::kValueForBool;
        return error;
      }
      error.value = "true";
    } else if (has_value) {
      error.value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      error.value = argv[++i];
    } else {
      error.kind = CommandLineError::kMissingValue;
      return error;
    }
    if (target == nullptr || !target->ParseFrom(error.value, &error.detail)) {
      if (target == nullptr) error.detail = "not registered";
      error.kind = CommandLineError::kBadValue;
      return error;
    }
  }
  return CommandLineError{};
}

}  // namespace ledger::cli
