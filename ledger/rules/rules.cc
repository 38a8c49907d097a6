#include "ledger/rules/rules.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/event/refusal.h"
#include "ledger/rules/governance.h"
#include "ledger/rules/limits.h"
#include "ledger/rules/version.h"

namespace ledger::rules {
namespace {

absl::Status Unauthenticated(v1::Reason reason, std::string message) {
  return Refuse(absl::StatusCode::kUnauthenticated, reason, std::move(message));
}

// An event this release does not decide, or not under the rules version in
// force (identity-change confirmations before version 2).
absl::Status UnknownEvent(const v1::EventBody& body) {
  return Refuse(absl::StatusCode::kUnimplemented, v1::UNIMPLEMENTED_EVENT,
                absl::StrCat(EventKind(body), " is not known to this ledger"));
}

constexpr int64_t kNanosPerSecond = 1'000'000'000;

// `rules_version`: the version the key is registered under (Genesis names
// its own before the state knows it).
absl::StatusOr<crypto::PublicKey> CheckNewKey(const State& state, std::string_view raw, uint32_t rules_version) {
  auto key = crypto::PublicKey::FromRaw(raw);
  if (!key.ok()) {
    return Malformed(absl::StrCat("public key is ", raw.size(), " bytes; Ed25519 keys are 32"));
  }
  // Rules v2: a small-order or off-curve key is nobody's key pair. (v1 logs
  // may hold one: they keep replaying.)
  if (rules_version >= kRulesV2 && !crypto::IsUsablePublicKey(raw)) {
    return Refuse(absl::StatusCode::kInvalidArgument, v1::WEAK_KEY,
                  absl::StrCat("public key ", key->key_id(),
                               " is a small-order or invalid Ed25519 point: no key pair has it"));
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
    auto key = CheckNewKey(state, raw, RulesVersion(state));
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
  if (genesis.identity_notice_seconds() < 0 || genesis.identity_notice_seconds() > kMaxIdentityNoticeSeconds) {
    return Malformed(absl::StrCat("Genesis identity_notice_seconds ", genesis.identity_notice_seconds(),
                                  " is outside 0..", kMaxIdentityNoticeSeconds, " (ten years)"));
  }
  auto operator_key = CheckNewKey(state, genesis.operator_public_key(), rules_version);
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

// Rules v2: no member event changes the operator organisation or its keys
// (it signs every system event; a registrar, or the operator itself, must not
// swap it from under the log).
absl::Status CheckNotOperator(const State& state, const std::string& org_id) {
  if (RulesAtLeast(state, kRulesV2) && org_id == state.info().operator_id()) {
    return RuleBroken(v1::OPERATOR_IDENTITY,
                      absl::StrCat(org_id, " is the ledger operator: no member event changes its identity or keys"));
  }
  return absl::OkStatus();
}

// The organisation `org_id` acted on by the author, who must be that
// organisation or a registrar.
absl::StatusOr<const v1::OrganisationState*> TargetOrganisation(const State& state,
                                                                const Envelope& envelope,
                                                                const std::string& org_id) {
  if (auto s = CheckNotOperator(state, org_id); !s.ok()) return s;
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

// ---- Identity changes a registrar makes alone (rules v2).
//
// A KeyAdded or KeyRevoked by a registrar that is not the organisation, and
// every OrganisationMerged, is accepted as pending, named by its position.
// It takes effect when the organisation confirms it (a merger: both
// organisations, at the second confirmation), or, "by notice" and without the
// organisation's signature, at the first commit group whose ledger time
// reaches its record's time plus LedgerInfo.identity_notice_seconds (the
// ledger writes IdentityChangeEffective; see EndNotice). The organisation (a
// merger: either one) may cancel it while it is pending. So a registrar can
// still recover an organisation that lost every key, but never silently.

bool ActsAlone(const State& state, const Envelope& envelope, const std::string& org_id) {
  return RulesAtLeast(state, kRulesV2) && envelope.body.author() != org_id;
}

void StartChange(State& state, const Envelope& envelope, const Context& context, const std::string& org_id,
                 const std::string& successor_org_id, const std::string& key_id) {
  v1::IdentityChangeState change;
  change.set_position(context.position);
  change.set_kind(EventKind(envelope.body));
  change.set_org_id(org_id);
  change.set_successor_org_id(successor_org_id);
  change.set_key_id(key_id);
  change.set_author(envelope.body.author());
  change.set_status(v1::IDENTITY_CHANGE_PENDING);
  // Genesis bounds the notice; a ledger time near the end of int64 saturates.
  const int64_t notice_ns = state.info().identity_notice_seconds() * kNanosPerSecond;
  change.set_notice_ends_unix_ns(context.ledger_time_unix_ns > std::numeric_limits<int64_t>::max() - notice_ns
                                     ? std::numeric_limits<int64_t>::max()
                                     : context.ledger_time_unix_ns + notice_ns);
  state.PutIdentityChange(std::move(change));
}

// The organisations whose signature a change needs.
std::vector<std::string> Parties(const v1::IdentityChangeState& change) {
  std::vector<std::string> parties = {change.org_id()};
  if (!change.successor_org_id().empty()) parties.push_back(change.successor_org_id());
  return parties;
}

// The pending change takes effect at context.position, with `status`
// (confirmed, or by notice). What it changes is applied as far as it still
// applies: a key revoked meanwhile stays revoked; a merger of an organisation
// merged meanwhile (by another change) does nothing.
void TakeEffect(State& state, v1::IdentityChangeState change, v1::IdentityChangeStatus status,
                const Context& context, Effects* effects) {
  change.set_status(status);
  change.set_effective_at(context.position);
  const v1::KeyState* found = state.FindKey(change.key_id());
  const v1::OrganisationState* org = state.FindOrganisation(change.org_id());
  if (change.kind() == "key_added") {
    if (found != nullptr && !found->revoked() && found->pending_change() == change.position() && org != nullptr) {
      v1::KeyState key = *found;
      key.set_pending_change(0);
      key.set_by_notice(status == v1::IDENTITY_CHANGE_BY_NOTICE);
      state.PutKey(std::move(key));
      v1::OrganisationState updated = *org;
      updated.set_active_keys(updated.active_keys() + 1);
      state.PutOrganisation(std::move(updated));
    }
  } else if (change.kind() == "key_revoked") {
    if (found != nullptr && !found->revoked() && org != nullptr) {
      v1::KeyState key = *found;
      key.set_revoked(true);
      key.set_revoked_at(context.position);
      state.PutKey(std::move(key));
      v1::OrganisationState updated = *org;
      if (updated.active_keys() > 0) updated.set_active_keys(updated.active_keys() - 1);
      state.PutOrganisation(std::move(updated));
    }
  } else {
    const v1::OrganisationState* successor = state.FindOrganisation(change.successor_org_id());
    if (org != nullptr && successor != nullptr && org->merged_into().empty() && successor->merged_into().empty()) {
      v1::OrganisationState updated = *org;
      updated.set_merged_into(change.successor_org_id());
      state.PutOrganisation(std::move(updated));
      internal::TransferMemberships(state, change.org_id(), change.successor_org_id(), context, effects);
    }
  }
  state.PutIdentityChange(std::move(change));
}

absl::StatusOr<v1::IdentityChangeState> PendingChange(const State& state, const Envelope& envelope,
                                                      uint64_t position) {
  const v1::IdentityChangeState* change = state.FindIdentityChange(position);
  if (change == nullptr || change->status() != v1::IDENTITY_CHANGE_PENDING) {
    return RuleBroken(v1::UNKNOWN_IDENTITY_CHANGE,
                      absl::StrCat("no pending identity change at position ", position,
                                   change == nullptr ? "" : absl::StrCat(" (it is ", v1::IdentityChangeStatus_Name(change->status()), ")")));
  }
  const std::vector<std::string> parties = Parties(*change);
  if (std::find(parties.begin(), parties.end(), envelope.body.author()) == parties.end()) {
    return RuleBroken(v1::NOT_AUTHORISED, absl::StrCat("only ", absl::StrJoin(parties, " or "),
                                                       " may confirm or cancel the ", change->kind(),
                                                       " at position ", position));
  }
  return *change;
}

absl::Status ApplyIdentityChangeConfirmed(State& state, const Envelope& envelope, const Context& context,
                                          Effects* effects) {
  auto change = PendingChange(state, envelope, envelope.body.identity_change_confirmed().change_position());
  if (!change.ok()) return change.status();
  const std::string& author = envelope.body.author();
  for (const std::string& by : change->confirmed_by()) {
    if (by == author) {
      return RuleBroken(v1::UNKNOWN_IDENTITY_CHANGE,
                        absl::StrCat(author, " already confirmed the ", change->kind(), " at position ",
                                     change->position(), "; it waits for the other organisation"));
    }
  }
  // Confirming a registrar's revocation of its own last key would lock the
  // organisation out, which it may not do itself either.
  if (change->kind() == "key_revoked") {
    const v1::KeyState* key = state.FindKey(change->key_id());
    const v1::OrganisationState* org = state.FindOrganisation(change->org_id());
    if (key != nullptr && !key->revoked() && org != nullptr && org->active_keys() <= 1) {
      return RuleBroken(v1::LAST_KEY, absl::StrCat("key ", change->key_id(), " is the last active key of ",
                                                   change->org_id(), "; add another before confirming its revocation"));
    }
  }
  change->add_confirmed_by(author);
  if (static_cast<size_t>(change->confirmed_by_size()) < Parties(*change).size()) {
    state.PutIdentityChange(*std::move(change));
    return absl::OkStatus();
  }
  TakeEffect(state, *std::move(change), v1::IDENTITY_CHANGE_CONFIRMED, context, effects);
  return absl::OkStatus();
}

absl::Status ApplyIdentityChangeCancelled(State& state, const Envelope& envelope, const Context& context) {
  const auto& event = envelope.body.identity_change_cancelled();
  auto change = PendingChange(state, envelope, event.change_position());
  if (!change.ok()) return change.status();
  change->set_status(v1::IDENTITY_CHANGE_CANCELLED);
  change->set_cancelled_at(context.position);
  change->set_cancelled_by(envelope.body.author());
  change->set_cancel_reason(event.reason());
  // A key added pending stays registered (its id stays taken) and, its change
  // never taking effect, signs nothing: KEY_PENDING for good.
  state.PutIdentityChange(*std::move(change));
  return absl::OkStatus();
}

absl::Status ApplyKeyAdded(State& state, const Envelope& envelope, const Context& context) {
  const auto& event = envelope.body.key_added();
  auto org = TargetOrganisation(state, envelope, event.org_id());
  if (!org.ok()) return org.status();
  auto key = CheckNewKey(state, event.public_key(), RulesVersion(state));
  if (!key.ok()) return key.status();
  v1::KeyState added = NewKey(*key, (*org)->org_id(), context.position);
  if (ActsAlone(state, envelope, event.org_id())) {
    // Listed, and a duplicate of it refused, but it signs nothing yet.
    added.set_pending_change(context.position);
    state.PutKey(std::move(added));
    StartChange(state, envelope, context, event.org_id(), "", key->key_id());
    return absl::OkStatus();
  }
  v1::OrganisationState updated = **org;
  updated.set_active_keys(updated.active_keys() + 1);
  state.PutKey(std::move(added));
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
  if (key->pending_change() != 0) {
    return RuleBroken(v1::KEY_PENDING, absl::StrCat("key ", event.key_id(), " never took effect (the KeyAdded at position ",
                                                    key->pending_change(), "): cancel that change instead"));
  }
  if (ActsAlone(state, envelope, event.org_id())) {
    // The key stays active until the change takes effect; no last-key
    // guard: recovering an organisation that lost its keys needs this.
    StartChange(state, envelope, context, event.org_id(), "", event.key_id());
    return absl::OkStatus();
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
  if (auto s = CheckNotOperator(state, event.merged_org_id()); !s.ok()) return s;
  if (auto s = CheckNotOperator(state, event.successor_org_id()); !s.ok()) return s;
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
  if (RulesAtLeast(state, kRulesV2)) {
    // Always a registrar's act: both organisations confirm it, or it waits.
    StartChange(state, envelope, context, event.merged_org_id(), event.successor_org_id(), "");
    return absl::OkStatus();
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
  if (key->pending_change() != 0) {
    const v1::IdentityChangeState* change = state.FindIdentityChange(key->pending_change());
    const bool cancelled = change != nullptr && change->status() == v1::IDENTITY_CHANGE_CANCELLED;
    return Unauthenticated(v1::KEY_PENDING,
                           absl::StrCat("key ", key->key_id(), " of ", author, " was added by a registrar at position ",
                                        key->pending_change(),
                                        cancelled ? absl::StrCat(", cancelled at position ", change->cancelled_at(),
                                                                 ": it never signs")
                                                  : absl::StrCat(", and signs nothing until ", author,
                                                                 " confirms it or its notice ends")));
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

// The first text field of `message` (at any depth) longer than
// kMaxTextBytes, as a dotted path; empty if none.
std::string OversizeText(const google::protobuf::Message& message) {
  const google::protobuf::Reflection* reflection = message.GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const google::protobuf::FieldDescriptor* field : fields) {
    const int count = field->is_repeated() ? reflection->FieldSize(message, field) : 1;
    for (int i = 0; i < count; ++i) {
      if (field->type() == google::protobuf::FieldDescriptor::TYPE_STRING) {
        std::string scratch;
        const std::string& text = field->is_repeated() ? reflection->GetRepeatedStringReference(message, field, i, &scratch)
                                                       : reflection->GetStringReference(message, field, &scratch);
        if (text.size() > kMaxTextBytes) return field->name();
      } else if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
        const google::protobuf::Message& inner = field->is_repeated() ? reflection->GetRepeatedMessage(message, field, i)
                                                                      : reflection->GetMessage(message, field);
        if (std::string path = OversizeText(inner); !path.empty()) return absl::StrCat(field->name(), ".", path);
      }
    }
  }
  return "";
}

absl::Status CheckTextLimits(const State& state, const v1::EventBody& body) {
  if (!RulesAtLeast(state, kRulesV3)) return absl::OkStatus();
  // No text field is longer than the whole body: most bodies need no walk.
  if (body.ByteSizeLong() <= kMaxTextBytes) return absl::OkStatus();
  const std::string field = OversizeText(body);
  if (field.empty()) return absl::OkStatus();
  return Refuse(absl::StatusCode::kInvalidArgument, v1::OVERSIZE,
                absl::StrCat("the text field ", field, " is longer than ", kMaxTextBytes, " bytes"));
}

std::vector<v1::EventBody> EndNotice(State& state, uint64_t change_position, const Context& context) {
  std::vector<v1::EventBody> events(1);
  events[0].mutable_identity_change_effective()->set_change_position(change_position);
  const v1::IdentityChangeState* change = state.FindIdentityChange(change_position);
  if (change == nullptr || change->status() != v1::IDENTITY_CHANGE_PENDING) {
    // The notice index names it as pending: a backed State failed a read or
    // its source was altered (the group is refused; the caller's loop ends).
    state.ReportMissing(IdentityChangeId(change_position));
    return {};
  }
  Effects effects;
  TakeEffect(state, *change, v1::IDENTITY_CHANGE_BY_NOTICE, context, &effects);
  for (v1::EventBody& e : effects.system_events) events.push_back(std::move(e));
  return events;
}

void CheckRegisteredKeysAhead(const v1::EventBody& body) {
  if (body.has_key_added()) crypto::IsUsablePublicKey(body.key_added().public_key());
  for (const std::string& raw : body.organisation_registered().public_keys()) crypto::IsUsablePublicKey(raw);
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
  bool signed_by_notice_key = false;
  if (state.has_genesis()) {
    if (auto s = CheckClientTime(state, body, context); !s.ok()) return s;
    if (auto s = CheckTextLimits(state, body); !s.ok()) return s;
    if (auto s = AuthoriseKey(state, envelope); !s.ok()) return s;
    signed_by_notice_key = state.FindKey(envelope.signed_event.key_id())->by_notice();
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
    case v1::EventBody::kIdentityChangeConfirmed:
      status = RulesAtLeast(state, kRulesV2) ? ApplyIdentityChangeConfirmed(state, envelope, context, &effects)
                                             : UnknownEvent(body);
      break;
    case v1::EventBody::kIdentityChangeCancelled:
      status = RulesAtLeast(state, kRulesV2) ? ApplyIdentityChangeCancelled(state, envelope, context)
                                             : UnknownEvent(body);
      break;
    default:
      if (internal::IsGovernanceEvent(body)) {
        status = internal::ApplyGovernance(state, envelope, context, &effects);
      } else {
        status = UnknownEvent(body);
      }
  }
  if (!status.ok()) {
    state.RollbackTo(mark);
    return status;
  }
  if (signed_by_notice_key) {
    // Evidence for auditors, one entry per such record.
    v1::NoticeKeyRecord record;
    record.set_position(context.position);
    record.set_key_id(envelope.signed_event.key_id());
    record.set_org_id(body.author());
    state.PutNoticeKeyRecord(std::move(record));
  }
  return effects;
}

}  // namespace ledger::rules
