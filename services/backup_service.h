// BackupService over gRPC: an online backup of the data directory while
// ledgerd serves (services/backup.h says what a backup holds). The copy is
// made and streamed on a thread of its own, never on a gRPC reaction.
#ifndef SERVICES_BACKUP_SERVICE_H_
#define SERVICES_BACKUP_SERVICE_H_

#include <atomic>
#include <string>

#include "absl/time/time.h"
#include "ledger/store/ledger.h"
#include "ledger/v1/backup_service.grpc.pb.h"
#include "services/costly_rpcs.h"

namespace ledger::services {

class BackupServiceImpl final : public v1::BackupService::CallbackService {
 public:
  // `data_dir` is ledgerd's --data; a DATA/backup.tmp left by a crash is
  // removed here (a warning is logged if it cannot be). A backup whose client
  // reads nothing for `stall_timeout` is cancelled (ledgerd
  // --stream-stall-seconds): otherwise it would hold the one backup slot, and
  // the snapshot's hard links would pin table files compaction has replaced,
  // until the disk fills.
  BackupServiceImpl(const store::Ledger* ledger, std::string data_dir, absl::Duration stall_timeout);

  // Backup is served only to callers `policy` admits (services/costly_rpcs.h).
  // Call before the server starts; `policy` outlives the service.
  void RestrictCostlyRpcs(const CostlyRpcPolicy* policy) { costly_ = policy; }

  // One at a time: another while one runs is RESOURCE_EXHAUSTED LIMIT_REACHED.
  grpc::ServerWriteReactor<v1::BackupChunk>* Backup(grpc::CallbackServerContext* context,
                                                    const v1::BackupRequest* request) override;

 private:
  const store::Ledger* ledger_;
  const std::string data_dir_;
  const absl::Duration stall_timeout_;
  std::atomic<bool> running_{false};
  const CostlyRpcPolicy* costly_ = nullptr;
};

}  // namespace ledger::services

#endif  // SERVICES_BACKUP_SERVICE_H_
