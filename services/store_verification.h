// Feeding a stored log to the verifier, one home for what AuditService.Verify
// (the live store) and `ledgerctl restore` (a read-only copy) both do.
#ifndef SERVICES_STORE_VERIFICATION_H_
#define SERVICES_STORE_VERIFICATION_H_

#include <cstdint>
#include <functional>
#include <string_view>

#include "absl/status/status.h"
#include "ledger/audit/verifier.h"
#include "ledger/store/store.h"

namespace ledger::services {

// Gives `verifier` the records [0, to) of `store` in order, each signed
// checkpoint of a tree size in (from, to] right after the record that
// completes it (read a page of 1,000 at a time), until the verifier stops
// (it then holds the failure), `cancelled` returns true, or the scan fails
// (that error is returned). `on_record` (optional) sees each record the
// verifier accepted.
absl::Status FeedStoredLog(const store::Store& store, uint64_t from, uint64_t to, audit::LogVerifier& verifier,
                           const std::function<bool()>& cancelled = {},
                           const std::function<void(uint64_t, std::string_view)>& on_record = {});

}  // namespace ledger::services

#endif  // SERVICES_STORE_VERIFICATION_H_
