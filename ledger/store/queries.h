// Governance queries over the projected state in RocksDB (DESIGN §1: what
// auditors and regulators ask). Reads only committed state, so answers are
// consistent with some committed tree size; safe from any thread.
//
// Pagination: page tokens are opaque. History and Refusals resume an index
// scan at a position (a far page costs what the first does; a Refusals page
// looks at no more than 10,000 refusals and may be short, with a token);
// the others are offsets into the answer's deterministic order.
#ifndef LEDGER_STORE_QUERIES_H_
#define LEDGER_STORE_QUERIES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ledger/store/store.h"
#include "ledger/v1/governance_service.pb.h"
#include "ledger/v1/ledger_service.pb.h"

namespace ledger::store {

class Queries {
 public:
  explicit Queries(const Store* store) : store_(store) {}

  // NotFound if there is no such proposal / collective / organisation;
  // DataLoss if its stored state does not decode.
  absl::StatusOr<v1::ProposalState> Proposal(const std::string& proposal_id) const;
  absl::StatusOr<v1::CollectiveState> Collective(const std::string& collective_id) const;
  absl::StatusOr<v1::OrganisationView> Organisation(const std::string& org_id) const;

  absl::StatusOr<v1::ListProposalsResponse> Proposals(const v1::ListProposalsRequest& request) const;
  absl::StatusOr<v1::ListVetoesResponse> Vetoes(const v1::QueryFilter& filter) const;
  absl::StatusOr<v1::ListOverrulesResponse> Overrules(const v1::QueryFilter& filter) const;
  absl::StatusOr<v1::ListRefusalsResponse> Refusals(const v1::QueryFilter& filter) const;
  absl::StatusOr<v1::HistoryResponse> History(const v1::QueryFilter& filter) const;
  // Rules v2 identity changes in the filter's range (of their position),
  // org_id matching either organisation; each key that took effect by notice
  // with the records it signed.
  absl::StatusOr<v1::ListIdentityChangesResponse> IdentityChanges(const v1::QueryFilter& filter) const;

  // A page of records (LedgerService.Read): from request.from_position, at
  // most `limit` (1..1000; 0 means 100), filtered by kinds and author. The
  // candidates come from the narrowest index (by author and kind when both
  // are given), and one call looks at no more than 100,000 of them, so no request scans the whole log; the client
  // continues from next_position. InvalidArgument (OVERSIZE, MALFORMED) for a
  // bad limit or an unknown kind; DataLoss if a record does not decode.
  absl::StatusOr<v1::ReadResponse> Read(const v1::ReadRequest& request) const;

 private:
  // Proposals the filter's collective / proposal narrow to, in submission order.
  absl::StatusOr<std::vector<v1::ProposalState>> SelectProposals(const v1::QueryFilter& filter) const;
  // A collective's proposals, in submission order (its "cp/" index entries).
  absl::StatusOr<std::vector<std::string>> CollectiveProposalIds(const v1::CollectiveState& collective) const;

  const Store* store_;
};

}  // namespace ledger::store

#endif  // LEDGER_STORE_QUERIES_H_
