#include "ledger/rules/gateway_touch.h"

namespace ledger::rules {

std::optional<GatewayRef> TouchedGateway(const v1::EventBody& body) {
  switch (body.payload_case()) {
    case v1::EventBody::kVoteCast:
      return GatewayRef{body.vote_cast().proposal_id(), body.vote_cast().gateway_id()};
    case v1::EventBody::kDecisionCalled:
      return GatewayRef{body.decision_called().proposal_id(), body.decision_called().gateway_id()};
    default:
      return std::nullopt;
  }
}

bool TouchesGateway(const v1::EventBody& body, std::string_view proposal_id, std::string_view gateway_id) {
  const std::optional<GatewayRef> touched = TouchedGateway(body);
  return touched.has_value() && touched->proposal_id == proposal_id && touched->gateway_id == gateway_id;
}

}  // namespace ledger::rules
