// The one path every member action takes (member_actions.cc): build an
// EventBody, seal it with the author's key, append it, print the receipt.
#ifndef TOOLS_LEDGERCTL_MEMBER_ACTIONS_H_
#define TOOLS_LEDGERCTL_MEMBER_ACTIONS_H_

#include <vector>

#include "absl/status/status.h"
#include "ledger/v1/events.pb.h"
#include "tools/ledgerctl/commands.h"
#include "tools/ledgerctl/flags.h"

namespace ledger::ctl {

// The flags every member action shares (--as, --key, --idempotency-key,
// --client-time-ms, --json), after the action's own.
std::vector<FlagSpec> WithMemberFlags(std::vector<FlagSpec> own);

// --help text shared by member actions: how events are filled in and retried.
extern const char kMemberDescription[];

// Fills in what the author and the ledger decide (where `body` leaves it
// unset), signs with --key, appends, and prints the receipt. Fields already
// set must agree with the flags, so a payload file cannot silently sign as
// someone else.
absl::Status AppendAsMember(const Invocation& in, v1::EventBody body);

// A usage error unless flag `name` is present and non-empty.
absl::Status NonEmpty(const ParsedFlags& flags, absl::string_view name);

}  // namespace ledger::ctl

#endif  // TOOLS_LEDGERCTL_MEMBER_ACTIONS_H_
