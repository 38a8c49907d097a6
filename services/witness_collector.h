// Gathers witnesses' cosignatures on ledgerd's checkpoints (C2SP
// tlog-witness, ledgerd --witness-policy) and keeps the newest checkpoint a
// quorum cosigned (Ledger::AddCosignatures).
//
// Rounds: one checkpoint at a time (the newest when the round starts) goes to
// every witness of the policy, so that their cosignatures are on the same
// tree. A round ends when the quorum is met, or when every witness has
// answered without meeting it (then the next starts after a pause). Each
// witness has one request in flight at most; a round that starts while a
// witness is still busy supersedes the one it was queued for. A witness that
// answers 409 (it holds another size) is sent the consistency proof from the
// size it holds. Appends never wait for any of this.
//
// Thread contract: Start once, Stop once (or let the destructor); the
// status accessors may be called from any thread.
#ifndef SERVICES_WITNESS_COLLECTOR_H_
#define SERVICES_WITNESS_COLLECTOR_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "ledger/store/ledger.h"
#include "ledger/witness/policy.h"

namespace ledger::services {

struct WitnessCollectorOptions {
  std::chrono::milliseconds request_timeout{5000};
  // After a round without a quorum, the next waits this long.
  std::chrono::milliseconds retry_pause{1000};
};

class WitnessCollector {
 public:
  // The policy must list this ledger as a log (key name = origin, key =
  // operator key) and give every witness a URL; InvalidArgument otherwise.
  static absl::StatusOr<std::unique_ptr<WitnessCollector>> Create(store::Ledger* ledger, witness::Policy policy,
                                                                  WitnessCollectorOptions options = {});
  ~WitnessCollector();

  void Start();
  void Stop();

  // The size of the newest checkpoint kept with a quorum (0: none yet).
  uint64_t witnessed_size() const { return witnessed_size_.load(); }
  const witness::Policy& policy() const { return policy_; }

 private:
  struct Link;
  struct Round {
    uint64_t id = 0;
    uint64_t size = 0;
    std::string note;                          // as signed by the ledger
    std::map<std::string, std::string> lines;  // witness name -> cosignature line
    size_t answered = 0;
    bool satisfied = false;
    std::chrono::steady_clock::time_point started;
  };

  WitnessCollector(store::Ledger* ledger, witness::Policy policy, WitnessCollectorOptions options);
  void LinkLoop(Link* link);
  // Sends `note` (size `size`) to the link's witness, following one 409;
  // the cosignature line on success, else why not.
  absl::StatusOr<std::string> Submit(Link* link, uint64_t size, const std::string& note);
  // Starts a round with the newest checkpoint if the last one is over and
  // there is something newer to witness.
  void MaybeStartRound() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Keeps the round's checkpoint with the cosignatures gathered so far;
  // false (logged) if it could not.
  bool Keep(const Round& round);
  // The ledger time (POSIX s) of the last record of the tree of `size`.
  std::optional<int64_t> LastLedgerSecond(uint64_t size) const;

  store::Ledger* const ledger_;
  const witness::Policy policy_;
  const WitnessCollectorOptions options_;
  std::vector<std::unique_ptr<Link>> links_;
  int listener_ = -1;

  absl::Mutex mu_;
  absl::CondVar changed_;
  Round round_ ABSL_GUARDED_BY(mu_);
  uint64_t latest_size_ ABSL_GUARDED_BY(mu_) = 0;
  std::chrono::steady_clock::time_point retry_at_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<uint64_t> witnessed_size_{0};
};

}  // namespace ledger::services

#endif  // SERVICES_WITNESS_COLLECTOR_H_
