// Replay: re-runs the rules over a log, record by record, exactly as the
// server ran them, and checks that the log holds exactly the records the
// rules imply (DESIGN §4.1 signatures and §4.3 replay). Pure: records in,
// verdicts out. Each member event, recorded refusal and lapse is decided by
// rules::DecideGroup, the server's own commit-group decision; system events
// are compared on what the rules decide, never on human-readable text.
//
// Thread contract: not thread-safe; one Replayer per log. Positions count
// from 0 and must be fed in order.
#ifndef LEDGER_AUDIT_REPLAY_H_
#define LEDGER_AUDIT_REPLAY_H_

#include <cstdint>
#include <deque>
#include <string>

#include "absl/container/btree_map.h"
#include "absl/status/status.h"
#include "ledger/event/envelope.h"
#include "ledger/rules/state.h"
#include "ledger/v1/events.pb.h"
#include "ledger/v1/record.pb.h"

namespace ledger::audit {

class Replayer {
 public:
  // Checks the next record and applies it. Errors name the position, what
  // was expected and what was found. Unauthenticated: a signature that does
  // not verify, or a key not active for its author at that position (check
  // 1). FailedPrecondition: a member event the rules refuse, a system event
  // the rules do not imply (or a different one), a recorded refusal the rules
  // would accept, a lapse that was due but not written, a gap or a clock
  // going backwards (check 3). `signature_verified`: the caller already
  // checked the signature bytes under the key the record names (key validity
  // at this position is still checked here).
  absl::Status Next(const v1::Record& record, bool signature_verified = false);
  // The same, for a caller that has already decoded the record's envelope.
  absl::Status Next(const v1::Record& record, const Envelope& envelope, bool signature_verified);

  // At the end of the log: every system event the rules implied was written.
  absl::Status Finish() const;

  const rules::State& state() const { return state_; }
  uint64_t records() const { return next_position_; }
  // The ledger time of the last record (0 before any).
  int64_t last_time() const { return last_time_; }
  // True while system events the rules implied are still to be found.
  bool owes() const { return !owed_.empty(); }

  // Continues a log replayed earlier (a saved resume point, see
  // LogVerifier::SaveResumePoint): the state's entries (rules::State::
  // Snapshot()), how many records were applied and the last one's ledger
  // time. Only before the first Next(). DataLoss if an entry does not decode.
  absl::Status Resume(const absl::btree_map<std::string, std::string>& entries, uint64_t records,
                      int64_t last_time);

 private:
  // A record the rules imply, still to be found in the log.
  struct Owed {
    std::string member_bytes;  // an accepted member event's signed bytes; empty for a system event
    v1::EventBody body;
    // Instead: the member event of the record being decided, owed first and
    // so found in the same Next() (nothing copied).
    bool this_record = false;
  };
  // With nothing owed: decides the submission `record` stands for (see
  // rules/commit_group.h) and owes the records the rules say it writes.
  absl::Status DecideFrom(const v1::Record& record, const Envelope& envelope);

  rules::State state_;
  uint64_t next_position_ = 0;
  int64_t last_time_ = 0;
  std::deque<Owed> owed_;  // in log order
};

}  // namespace ledger::audit

#endif  // LEDGER_AUDIT_REPLAY_H_
