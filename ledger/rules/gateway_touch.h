// Which events touch a gateway: the one answer, used by the rules (which
// proposal a refused attempt is about), the auditor's no-reversal monitor,
// the no-reversal evidence of one proposal, and the refusal queries. Pure: a
// question about an event body, no state.
#ifndef LEDGER_RULES_GATEWAY_TOUCH_H_
#define LEDGER_RULES_GATEWAY_TOUCH_H_

#include <optional>
#include <string_view>

#include "ledger/v1/events.pb.h"

namespace ledger::rules {

// A gateway of a proposal, named by ids. The views point into the event body
// they came from and live as long as it does.
struct GatewayRef {
  std::string_view proposal_id;
  std::string_view gateway_id;
};

// The gateway `body` changes a member's position on (VoteCast) or decides
// (DecisionCalled); nullopt for every other event. Once a gateway has locked,
// an accepted event that touches it is a reversal (DESIGN §4, check 4), and a
// refused one is an attempted reversal.
std::optional<GatewayRef> TouchedGateway(const v1::EventBody& body);

// True if `body` touches gateway `gateway_id` of proposal `proposal_id`.
bool TouchesGateway(const v1::EventBody& body, std::string_view proposal_id, std::string_view gateway_id);

}  // namespace ledger::rules

#endif  // LEDGER_RULES_GATEWAY_TOUCH_H_
