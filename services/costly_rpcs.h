// Who may call the costly RPCs: AuditService.Verify (a full-log
// verification), AuditService.ListCheckpoints (what export and the audit
// monitor walk) and a filtered LedgerService.Read (kinds or author: its cost
// is the records it scans to fill the page, not the page). With ledgerd --costly-rpc-clients
// (mutual TLS only) they are served only to the listed client certificate
// identities; everyone else gets PERMISSION_DENIED naming the RPC and the
// caller's identity. Everything else (a Read page by position, proofs,
// checkpoints, queries, appends) stays open to every authenticated client.
//
// A caller's identities are its certificate's subject CN and every subject
// alternative name (DNS, URI, email, IP), as gRPC's AuthContext reports them
// (x509_common_name, x509_subject_alternative_name); any one listed admits it.
//
// Thread contract: immutable after construction; Check is safe from any thread.
#ifndef SERVICES_COSTLY_RPCS_H_
#define SERVICES_COSTLY_RPCS_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/server_context.h"

namespace ledger::services {

class CostlyRpcPolicy {
 public:
  // Nobody restricted.
  CostlyRpcPolicy() = default;

  // "CN1,CN2,...": identities separated by commas (spaces around each are
  // dropped). An empty list means no restriction; an empty entry or more
  // than kMaxIdentities is InvalidArgument, naming what was wrong.
  static absl::StatusOr<CostlyRpcPolicy> Parse(absl::string_view list);

  bool restricts() const { return !allowed_.empty(); }
  const std::vector<std::string>& allowed() const { return listed_; }

  // OK if the caller of `context` may call `rpc` (always, when nothing is
  // restricted); else PERMISSION_DENIED: "<rpc> is restricted to listed
  // client certificates (ledgerd --costly-rpc-clients); caller <identity> is
  // not listed".
  absl::Status Check(const grpc::ServerContextBase& context, absl::string_view rpc) const;

  static constexpr size_t kMaxIdentities = 1000;

 private:
  std::vector<std::string> listed_;
  absl::flat_hash_set<std::string> allowed_;
};

}  // namespace ledger::services

#endif  // SERVICES_COSTLY_RPCS_H_
