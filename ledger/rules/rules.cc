#include "ledger/rules/rules.h"

#include "absl/strings/str_cat.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/event/refusal.h"
#include "ledger/rules/governance.h"
#include "ledger/rules/version.h"

namespace ledger::rules {
namespace {

absl::Status Unauthenticated(v1::Reason reason, std::string message) {
  return Refuse(absl::StatusCode::kUnauthenticated, reason, std::move(message));
}

absl::StatusOr<crypto::PublicKey> CheckNewKey(const State& state, std::string_view raw) {
  auto key = crypto::PublicKey::FromRaw(raw);
  if (!key.ok()) {
    return Malformed(absl::StrCat("public key is ", raw.size(), " bytes; Ed25519 keys are 32"));
  }
  if (state.FindKey(key->key_id()) != nullptr) {
    return RuleBroken(v1::KEY_EXISTS, absl::StrCat("key ", key->key_id(), " is already registered"));
  }
  return key;
}

v1::KeyState NewKey(const crypto::PublicKey& key, const std::string& org_id, uint64_t position) {
  v1::KeyState state;
  state.set_key_id(key.key_id());
  state.set_org_id(org_id);
  state.set_public_key(std::string(key.raw()));
  state.set_added_at(position);
  return state;
}

// Registers `org` with its first keys (each new and well-formed).
absl::Status PutWithKeys(State& state, v1::OrganisationState org,
                         const google::protobuf::RepeatedPtrField<std::string>& raw_keys, uint64_t position) {
  for (const std::string& raw : raw_keys) {
    auto key = CheckNewKey(state, raw);
    if (!key.ok()) return key.status();
    org.set_active_keys(org.active_keys() + 1);
    state.PutKey(NewKey(*key, org.org_id(), position));
  }
  state.PutOrganisation(std::move(org));
  return absl::OkStatus();
}

bool IsActiveRegistrar(const v1::OrganisationState* org) {
  return org != nullptr && org->registrar() && org->merged_into().empty();
}

absl::Status ApplyGenesis(State& state, const Envelope& envelope, const Context& context) {
  const v1::Genesis& genesis = envelope.body.genesis();
  if (state.has_genesis() || context.position != 0) {
    return RuleBroken(v1::GENESIS_ONLY_FIRST, "Genesis may only be the first record");
  }
  if (envelope.body.ledger_id().empty()) {
    return Refuse(absl::StatusCode::kInvalidArgument, v1::MISSING_FIELD, "Genesis names no ledger_id");
  }
  if (auto s = CheckId("operator id", genesis.operator_id()); !s.ok()) return s;
  if (envelope.body.author() != genesis.operator_id()) {
    return Unauthenticated(v1::KEY_NOT_OF_AUTHOR, "Genesis must be authored by the operator it names");
  }
  if (genesis.origin().empty() || genesis.origin().find_first_of(" \n+") != std::string::npos) {
    return Malformed("Genesis origin must be non-empty without spaces, '+' or newlines");
  }
  if (genesis.registrars().empty()) {
    return Refuse(absl::StatusCode::kInvalidArgument, v1::MISSING_FIELD, "Genesis names no registrar");
  }
  const uint32_t rules_version = genesis.rules_version() == 0 ? kRulesV1 : genesis.rules_version();
  if (rules_version > kLatestRulesVersion) {
    return RuleBroken(v1::UNSUPPORTED_RULES_VERSION,
                      absl::StrCat("Genesis names rules version ", rules_version, "; this release knows up to ",
                                   kLatestRulesVersion));
  }
  if (genesis.identity_notice_seconds() < 0) return Malformed("Genesis identity_notice_seconds is negative");
  auto operator_key = CheckNewKey(state, genesis.operator_public_key());
  if (!operator_key.ok()) return operator_key.status();

  v1::LedgerInfo info;
  info.set_ledger_id(envelope.body.ledger_id());
  info.set_origin(genesis.origin());
  info.set_operator_id(genesis.operator_id());
  info.set_operator_public_key(genesis.operator_public_key());
  info.set_rules_version(rules_version);
  info.set_rules_version_since(context.position);
  info.set_identity_notice_seconds(genesis.identity_notice_seconds() > 0 ? genesis.identity_notice_seconds()
                                                                         : kDefaultIdentityNoticeSeconds);
  state.SetInfo(info);

  v1::OrganisationState op;
  op.set_org_id(genesis.operator_id());
  op.set_name("ledger operator");
  op.set_kind("operator");
  op.set_active_keys(1);
  state.PutOrganisation(op);
  state.PutKey(NewKey(*operator_key, op.org_id(), context.position));

  for (const v1::Registrar& registrar : genesis.registrars()) {
    if (auto s = CheckId("registrar id", registrar.org_id()); !s.ok()) return s;
    if (state.FindOrganisation(registrar.org_id()) != nullptr) {
      return RuleBroken(v1::ORGANISATION_EXISTS,
                        absl::StrCat("Genesis names ", registrar.org_id(), " twice"));
    }
    if (registrar.public_keys().empty()) {
      return Refuse(absl::StatusCode::kInvalidArgument, v1::MISSING_FIELD,
                    absl::StrCat("registrar ", registrar.org_id(), " has no key"));
    }
    v1::OrganisationState org;
    org.set_org_id(registrar.org_id());
    org.set_name(registrar.name());
    org.set_kind("registrar");
    org.set_registrar(true);
    if (auto s = PutWithKeys(state, std::move(org), registrar.public_keys(), context.position); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ApplyOrganisationRegistered(State& state, const Envelope& envelope,
                                         const Context& context) {
  const auto& event = envelope.body.organisation_registered();
  if (!IsActiveRegistrar(state.FindOrganisation(envelope.body.author()))) {
    return RuleBroken(v1::NOT_A_REGISTRAR,
                      absl::StrCat(envelope.body.author(), " is not a registrar"));
  }
  if (auto s = CheckId("organisation id", event.org_id()); !s.ok()) return s;
  if (state.FindOrganisation(event.org_id()) != nullptr) {
    return RuleBroken(v1::ORGANISATION_EXISTS,
                      absl::StrCat("organisation ", event.org_id(), " is already registered"));
  }
  if (event.public_keys().empty()) {
    return Refuse(absl::StatusCode::kInvalidArgument, v1::MISSING_FIELD,
                  absl::StrCat("organisation ", event.org_id(), " is registered with no key"));
  }
  v1::OrganisationState org;
  org.set_org_id(event.org_id());
  org.set_name(event.name());
  org.set_kind(event.kind());
  org.set_registered_at(context.position);
  return PutWithKeys(state, std::move(org), event.public_keys(), context.position);
}

// The organisation `org_id` acted on by the author, who must be that
// organisation or a registrar.
absl::StatusOr<const v1::OrganisationState*> TargetOrganisation(const State& state,
                                                                const Envelope& envelope,
                                                                const std::string& org_id) {
  const v1::OrganisationState* org = state.FindOrganisation(org_id);
  if (org == nullptr) {
    return RuleBroken(v1::UNKNOWN_ORGANISATION, absl::StrCat("no organisation ", org_id));
  }
  if (!org->merged_into().empty()) {
    return RuleBroken(v1::ORGANISATION_MERGED,
                      absl::StrCat(org_id, " was merged into ", org->merged_into()));
  }
  if (envelope.body.author() != org_id &&
      !IsActiveRegistrar(state.FindOrganisation(envelope.body.author()))) {
    return RuleBroken(v1::NOT_AUTHORISED, absl::StrCat(envelope.body.author(),
                                                       " may not change the keys of ", org_id));
  }
  return org;
}

absl::Status ApplyKeyAdded(State& state, const Envelope& envelope, const Context& context) {
  const auto& event = envelope.body.key_added();
  auto org = TargetOrganisation(state, envelope, event.org_id());
  if (!org.ok()) return org.status();
  auto key = CheckNewKey(state, event.public_key());
  if (!key.ok()) return key.status();
  v1::OrganisationState updated = **org;
  updated.set_active_keys(updated.active_keys() + 1);
  state.PutKey(NewKey(*key, updated.org_id(), context.position));
  state.PutOrganisation(std::move(updated));
  return absl::OkStatus();
}

absl::Status ApplyKeyRevoked(State& state, const Envelope& envelope, const Context& context) {
  const auto& event = envelope.body.key_revoked();
  auto org = TargetOrganisation(state, envelope, event.org_id());
  if (!org.ok()) return org.status();
  const v1::KeyState* key = state.FindKey(event.key_id());
  if (key == nullptr || key->org_id() != event.org_id()) {
    return RuleBroken(v1::UNKNOWN_ORGANISATION,
                      absl::StrCat("key ", event.key_id(), " is not a key of ", event.org_id()));
  }
  if (key->revoked()) {
    return RuleBroken(v1::REVOKED_KEY, absl::StrCat("key ", event.key_id(), " is already revoked"));
  }
  // An organisation may not lock itself out; a registrar may (a compromise).
  if ((*org)->active_keys() <= 1 && envelope.body.author() == event.org_id()) {
    return RuleBroken(v1::LAST_KEY, absl::StrCat("key ", event.key_id(), " is the last active key of ",
                                                 event.org_id(), "; add another first"));
  }
  v1::KeyState revoked = *key;
  revoked.set_revoked(true);
  revoked.set_revoked_at(context.position);
  state.PutKey(std::move(revoked));
  v1::OrganisationState updated = **org;
  updated.set_active_keys(updated.active_keys() - 1);
  state.PutOrganisation(std::move(updated));
  return absl::OkStatus();
}

absl::Status ApplyOrganisationMerged(State& state, const Envelope& envelope, const Context& context,
                                     Effects* effects) {
  const auto& event = envelope.body.organisation_merged();
  if (!IsActiveRegistrar(state.FindOrganisation(envelope.body.author()))) {
    return RuleBroken(v1::NOT_A_REGISTRAR,
                      absl::StrCat(envelope.body.author(), " is not a registrar"));
  }
  const v1::OrganisationState* merged = state.FindOrganisation(event.merged_org_id());
  const v1::OrganisationState* successor = state.FindOrganisation(event.successor_org_id());
  if (merged == nullptr || successor == nullptr) {
    return RuleBroken(v1::UNKNOWN_ORGANISATION,
                      absl::StrCat("no organisation ",
                                   merged == nullptr ? event.merged_org_id() : event.successor_org_id()));
  }
  if (merged == successor) return RuleBroken(v1::NOT_AUTHORISED, "an organisation cannot merge into itself");
  if (!merged->merged_into().empty() || !successor->merged_into().empty()) {
    return RuleBroken(v1::ORGANISATION_MERGED, "an organisation that was merged cannot merge again");
  }
  v1::OrganisationState updated = *merged;
  updated.set_merged_into(event.successor_org_id());
  state.PutOrganisation(std::move(updated));
  internal::TransferMemberships(state, event.merged_org_id(), event.successor_org_id(), context, effects);
  return absl::OkStatus();
}

absl::Status ApplyRulesVersionAdopted(State& state, const Envelope& envelope, const Context& context) {
  const uint32_t version = envelope.body.rules_version_adopted().version();
  if (envelope.body.author() != state.info().operator_id()) {
    return RuleBroken(v1::NOT_AUTHORISED, "only the ledger operator adopts a rules version");
  }
  if (version <= RulesVersion(state) || version > kLatestRulesVersion) {
    return RuleBroken(v1::UNSUPPORTED_RULES_VERSION,
                      absl::StrCat("rules version ", version, " cannot follow version ", RulesVersion(state),
                                   " (this release knows up to ", kLatestRulesVersion, ")"));
  }
  v1::LedgerInfo info = state.info();
  info.set_rules_version(version);
  info.set_rules_version_since(context.position);
  if (info.identity_notice_seconds() == 0) info.set_identity_notice_seconds(kDefaultIdentityNoticeSeconds);
  state.SetInfo(std::move(info));
  return absl::OkStatus();
}

// The author exists, has not been merged away, and `key_id` is one of its
// keys that is active at this position.
absl::Status AuthoriseKey(const State& state, const Envelope& envelope) {
  const std::string& author = envelope.body.author();
  const v1::OrganisationState* org = state.FindOrganisation(author);
  if (org == nullptr) {
    return Unauthenticated(v1::UNKNOWN_AUTHOR, absl::StrCat("no organisation ", author));
  }
  const v1::KeyState* key = state.FindKey(envelope.signed_event.key_id());
  if (key == nullptr) {
    return Unauthenticated(v1::UNKNOWN_KEY, absl::StrCat("no key ", envelope.signed_event.key_id()));
  }
  if (key->org_id() != author) {
    return Unauthenticated(v1::KEY_NOT_OF_AUTHOR,
                           absl::StrCat("key ", key->key_id(), " belongs to ", key->org_id(),
                                        ", not to ", author));
  }
  if (key->revoked()) {
    return Unauthenticated(v1::REVOKED_KEY, absl::StrCat("key ", key->key_id(), " of ", author,
                                                         " was revoked at position ", key->revoked_at()));
  }
  if (!org->merged_into().empty()) {
    return RuleBroken(v1::ORGANISATION_MERGED,
                      absl::StrCat(author, " was merged into ", org->merged_into()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<crypto::PublicKey> SigningKey(const State& state, const Envelope& envelope) {
  // Only the first record may name its own key: after Genesis, a "Genesis"
  // is signed by a registered key like anything else (or refused unsigned).
  if (envelope.body.has_genesis() && !state.has_genesis()) {
    auto key = crypto::PublicKey::FromRaw(envelope.body.genesis().operator_public_key());
    if (!key.ok()) return Malformed("Genesis operator key is not 32 bytes");
    if (key->key_id() != envelope.signed_event.key_id()) {
      return Unauthenticated(v1::UNKNOWN_KEY, "Genesis must be signed by the operator key it names");
    }
    return key;
  }
  const v1::KeyState* key = state.FindKey(envelope.signed_event.key_id());
  if (key == nullptr) {
    return Unauthenticated(v1::UNKNOWN_KEY, absl::StrCat("no key ", envelope.signed_event.key_id()));
  }
  return crypto::PublicKey::FromRaw(key->public_key());
}

absl::Status CheckSignature(const State& state, const Envelope& envelope) {
  auto key = SigningKey(state, envelope);
  if (!key.ok()) return key.status();
  if (!crypto::VerifyEvent(*key, envelope.signed_event.body(), envelope.signed_event.signature())) {
    return Unauthenticated(v1::BAD_SIGNATURE,
                           absl::StrCat("signature does not verify under key ", key->key_id()));
  }
  return absl::OkStatus();
}

absl::Status CheckClientTime(const State& state, const v1::EventBody& body, const Context& context) {
  if (!RulesAtLeast(state, kRulesV2) || !ClientTimeAhead(body.client_time_unix_ms(), context.ledger_time_unix_ns)) {
    return absl::OkStatus();
  }
  return Refuse(absl::StatusCode::kInvalidArgument, v1::CLIENT_TIME_AHEAD,
                absl::StrCat("the event's signed client time ", body.client_time_unix_ms(),
                             " ms is ahead of the ledger time ", context.ledger_time_unix_ns / 1'000'000,
                             " ms by more than the clock skew of ", kClockSkewNanos / 1'000'000'000, " s"));
}

absl::StatusOr<Effects> Apply(State& state, const Envelope& envelope, const Context& context) {
  const v1::EventBody& body = envelope.body;
  if (IsSystemEvent(body)) {
    return RuleBroken(v1::SYSTEM_EVENT_FROM_MEMBER,
                      absl::StrCat(EventKind(body), " is written only by the ledger itself"));
  }
  if (!body.has_genesis() && !state.has_genesis()) {
    return RuleBroken(v1::GENESIS_ONLY_FIRST, "the ledger has no Genesis yet");
  }
  if (state.has_genesis()) {
    if (auto s = CheckClientTime(state, body, context); !s.ok()) return s;
    if (auto s = AuthoriseKey(state, envelope); !s.ok()) return s;
  }

  const size_t mark = state.Mark();
  Effects effects;
  absl::Status status;
  switch (body.payload_case()) {
    case v1::EventBody::kGenesis:
      status = ApplyGenesis(state, envelope, context);
      break;
    case v1::EventBody::kOrganisationRegistered:
      status = ApplyOrganisationRegistered(state, envelope, context);
      break;
    case v1::EventBody::kKeyAdded:
      status = ApplyKeyAdded(state, envelope, context);
      break;
    case v1::EventBody::kKeyRevoked:
      status = ApplyKeyRevoked(state, envelope, context);
      break;
    case v1::EventBody::kOrganisationMerged:
      status = ApplyOrganisationMerged(state, envelope, context, &effects);
      break;
    case v1::EventBody::kRulesVersionAdopted:
      status = ApplyRulesVersionAdopted(state, envelope, context);
      break;
    default:
      if (internal::IsGovernanceEvent(body)) {
        status = internal::ApplyGovernance(state, envelope, context, &effects);
      } else {
        status = Refuse(absl::StatusCode::kUnimplemented, v1::UNIMPLEMENTED_EVENT,
                        absl::StrCat(EventKind(body), " is not known to this ledger"));
      }
  }
  if (!status.ok()) {
    state.RollbackTo(mark);
    return status;
  }
  return effects;
}

}  // namespace ledger::rules
