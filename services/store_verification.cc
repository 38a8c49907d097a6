#include "services/store_verification.h"

#include <deque>
#include <string>
#include <utility>

namespace ledger::services {

absl::Status FeedStoredLog(const store::Store& store, uint64_t from, uint64_t to, audit::LogVerifier& verifier,
                           const std::function<bool()>& cancelled,
                           const std::function<void(uint64_t, std::string_view)>& on_record) {
  constexpr size_t kCheckpointPage = 1000;
  std::deque<std::pair<uint64_t, std::string>> checkpoints;
  uint64_t next_checkpoint = from + 1;
  bool checkpoints_done = false;
  absl::Status checkpoint_error;
  auto refill = [&] {
    if (!checkpoints.empty() || checkpoints_done) return;
    bool more = false;
    absl::Status s = store.ScanCheckpoints(next_checkpoint, [&](uint64_t size, std::string_view note) {
      if (size > to) return false;
      if (checkpoints.size() == kCheckpointPage) {
        next_checkpoint = size;
        more = true;
        return false;
      }
      checkpoints.emplace_back(size, std::string(note));
      return true;
    });
    if (!s.ok()) checkpoint_error = s;
    checkpoints_done = !more;
  };
  refill();
  absl::Status scanned = store.ScanRecords(0, to, [&](uint64_t position, std::string_view bytes) {
    if ((cancelled && cancelled()) || !checkpoint_error.ok()) return false;
    if (!verifier.AddRecord(std::string(bytes))) return false;
    if (on_record) on_record(position, bytes);
    while (!checkpoints.empty() && checkpoints.front().first <= position + 1) {
      if (checkpoints.front().first == position + 1 &&
          !verifier.AddCheckpoint(checkpoints.front().first, std::move(checkpoints.front().second))) {
        return false;
      }
      checkpoints.pop_front();
      refill();
    }
    return true;
  });
  if (!scanned.ok()) return scanned;
  return checkpoint_error;
}

}  // namespace ledger::services
