#include "services/costly_rpcs.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/security/auth_context.h"

namespace ledger::services {

absl::StatusOr<CostlyRpcPolicy> CostlyRpcPolicy::Parse(absl::string_view list) {
  CostlyRpcPolicy policy;
  if (absl::StripAsciiWhitespace(list).empty()) return policy;
  for (absl::string_view entry : absl::StrSplit(list, ',')) {
    std::string identity(absl::StripAsciiWhitespace(entry));
    if (identity.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--costly-rpc-clients \"", list, "\" has an empty identity (list CN1,CN2,...)"));
    }
    if (policy.allowed_.insert(identity).second) policy.listed_.push_back(std::move(identity));
    if (policy.listed_.size() > kMaxIdentities) {
      return absl::InvalidArgumentError(
          absl::StrCat("--costly-rpc-clients lists more than ", kMaxIdentities, " identities"));
    }
  }
  return policy;
}

absl::Status CostlyRpcPolicy::Check(const grpc::ServerContextBase& context, absl::string_view rpc) const {
  if (!restricts()) return absl::OkStatus();
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  std::vector<std::string> identities;
  if (auth != nullptr) {
    for (const char* property : {GRPC_X509_CN_PROPERTY_NAME, GRPC_X509_SAN_PROPERTY_NAME}) {
      for (const grpc::string_ref& value : auth->FindPropertyValues(property)) {
        std::string identity(value.data(), value.size());
        if (allowed_.contains(identity)) return absl::OkStatus();
        identities.push_back(std::move(identity));
      }
    }
  }
  std::string who = identities.empty() ? "without a client certificate identity"
                                       : absl::StrCat("\"", absl::StrJoin(identities, "\", \""), "\"");
  return absl::PermissionDeniedError(
      absl::StrCat(rpc, " is restricted to listed client certificates (ledgerd --costly-rpc-clients); caller ",
                   who, " is not listed"));
}

}  // namespace ledger::services
