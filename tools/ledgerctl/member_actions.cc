// Member actions: build an EventBody, seal it with the author's key, append
// it, print the receipt. AppendAsMember is the one path every action takes.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/event/envelope.h"
#include "tools/ledgerctl/client.h"
#include "tools/ledgerctl/commands.h"
#include "tools/ledgerctl/evidence.h"
#include "tools/ledgerctl/keys.h"
#include "tools/ledgerctl/member_actions.h"
#include "tools/ledgerctl/output.h"

namespace ledger::ctl {

std::vector<FlagSpec> WithMemberFlags(std::vector<FlagSpec> own) {
  own.push_back({"as", "ORG", "the authoring organisation's id", true});
  own.push_back({"key", "FILE", "the author's PEM private key", true});
  own.push_back({"idempotency-key", "K",
                 "retry key, unique per author (default: 128 random bits, hex)"});
  own.push_back({"client-time-ms", "MS",
                 "client time to sign (Unix ms; default now); pin it to retry byte-identically"});
  own.push_back({"json", "", "print the AppendResponse as protobuf JSON"});
  return own;
}

const char kMemberDescription[] =
    "Fetches the ledger id from the server, fills in author, idempotency key and\n"
    "client time, signs the event with --key and appends it. Prints the receipt\n"
    "(position, ledger time, leaf hash, tree size); a refusal is printed with its\n"
    "code and reason and exits 1. The receipt and its signed checkpoint, once\n"
    "verified under the operator key, are kept in the evidence directory\n"
    "(--evidence DIR; `ledgerctl audit` checks them); a failure there is a warning.\n\n"
    "Retries: the ledger returns the original receipt only for a byte-identical\n"
    "event, so to retry give the same --idempotency-key AND the same\n"
    "--client-time-ms (the default, now, differs on every run); the same key with\n"
    "different bytes is refused (IDEMPOTENCY_CONFLICT).";

namespace {

std::string RandomIdempotencyKey() {
  std::random_device device;  // the kernel's CSPRNG on Linux
  std::string out;
  for (int i = 0; i < 4; ++i) absl::StrAppendFormat(&out, "%08x", device());
  return out;
}

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

absl::Status AppendAsMember(const Invocation& in, v1::EventBody body) {
  const std::string& author = in.flags.Get("as");
  if (author.empty()) return UsageError("--as must name an organisation");
  if (!body.author().empty() && body.author() != author) {
    return UsageError(absl::StrCat("the event's author '", body.author(),
                                   "' differs from --as '", author, "'"));
  }
  body.set_author(author);

  if (in.flags.Has("idempotency-key")) {
    const std::string& key = in.flags.Get("idempotency-key");
    if (key.empty() || key.size() > kMaxIdempotencyKeyBytes) {
      return UsageError(absl::StrCat("--idempotency-key must be 1..", kMaxIdempotencyKeyBytes,
                                     " bytes"));
    }
    if (!body.idempotency_key().empty() && body.idempotency_key() != key) {
      return UsageError(absl::StrCat("the event's idempotency key '", body.idempotency_key(),
                                     "' differs from --idempotency-key '", key, "'"));
    }
    body.set_idempotency_key(key);
  } else if (body.idempotency_key().empty()) {
    body.set_idempotency_key(RandomIdempotencyKey());
  }
  bool time_is_now = false;
  if (in.flags.Has("client-time-ms")) {
    absl::StatusOr<uint64_t> ms = in.flags.GetUint64("client-time-ms", 0);
    if (!ms.ok()) return ms.status();
    if (*ms > static_cast<uint64_t>(INT64_MAX)) return UsageError("--client-time-ms is too large");
    if (body.client_time_unix_ms() != 0 &&
        body.client_time_unix_ms() != static_cast<int64_t>(*ms)) {
      return UsageError(absl::StrCat("the event's client time ", body.client_time_unix_ms(),
                                     " differs from --client-time-ms ", *ms));
    }
    body.set_client_time_unix_ms(static_cast<int64_t>(*ms));
  } else if (body.client_time_unix_ms() == 0) {
    body.set_client_time_unix_ms(NowUnixMs());
    time_is_now = true;
  }

  // Read the key before any network call: a wrong path is the common mistake.
  absl::StatusOr<crypto::PrivateKey> key = ReadPrivateKey(in.flags.Get("key"));
  if (!key.ok()) return key.status();

  LedgerClient client(in.server, in.tls);
  absl::StatusOr<v1::GetLedgerInfoResponse> info = client.GetLedgerInfo();
  if (!info.ok()) return info.status();
  if (body.ledger_id().empty()) {
    body.set_ledger_id(info->ledger_id());
  } else if (body.ledger_id() != info->ledger_id()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the event's ledger_id '", body.ledger_id(), "' is not this ledger's ('",
                     info->ledger_id(), "' at ", in.server, "); nothing was sent"));
  }

  absl::StatusOr<v1::AppendResponse> response = client.Append(SealEvent(body, *key));
  if (!response.ok()) {
    if (absl::IsAlreadyExists(response.status()) && time_is_now) {
      return absl::Status(response.status().code(),
                          absl::StrCat(response.status().message(),
                                       " (a retry must be byte-identical: pass the original"
                                       " --client-time-ms as well as --idempotency-key)"));
    }
    return response.status();
  }
  absl::StatusOr<std::string> text = FormatReceipt(*response, in.flags.Has("json"));
  if (!text.ok()) return text.status();
  PrintLine(*text);
  // The event is recorded: keeping the evidence can only warn (evidence.h).
  KeepReceipt(in, client, *info, response->receipt());
  return absl::OkStatus();
}

absl::Status NonEmpty(const ParsedFlags& flags, absl::string_view name) {
  if (flags.Get(name).empty()) return UsageError(absl::StrCat("--", name, " must not be empty"));
  return absl::OkStatus();
}

namespace {

// ---------------------------------------------------------------- register-org

absl::Status RunRegisterOrg(const Invocation& in) {
  for (const char* name : {"org", "name"}) {
    if (absl::Status s = NonEmpty(in.flags, name); !s.ok()) return s;
  }
  v1::EventBody body;
  v1::OrganisationRegistered* event = body.mutable_organisation_registered();
  event->set_org_id(in.flags.Get("org"));
  event->set_name(in.flags.Get("name"));
  event->set_kind(in.flags.Get("kind"));
  for (const std::string& path : in.flags.GetAll("org-key")) {
    absl::StatusOr<crypto::PublicKey> key = ReadPublicKeyFromEither(path);
    if (!key.ok()) return key.status();
    event->add_public_keys(std::string(key->raw()));
  }
  return AppendAsMember(in, std::move(body));
}

// ---------------------------------------------------------------- add-key

absl::Status RunAddKey(const Invocation& in) {
  if (absl::Status s = NonEmpty(in.flags, "org"); !s.ok()) return s;
  absl::StatusOr<crypto::PublicKey> key = ReadPublicKeyFromEither(in.flags.Get("new-key"));
  if (!key.ok()) return key.status();
  v1::EventBody body;
  body.mutable_key_added()->set_org_id(in.flags.Get("org"));
  body.mutable_key_added()->set_public_key(std::string(key->raw()));
  return AppendAsMember(in, std::move(body));
}

// ---------------------------------------------------------------- revoke-key

absl::Status RunRevokeKey(const Invocation& in) {
  for (const char* name : {"org", "key-id"}) {
    if (absl::Status s = NonEmpty(in.flags, name); !s.ok()) return s;
  }
  v1::EventBody body;
  body.mutable_key_revoked()->set_org_id(in.flags.Get("org"));
  body.mutable_key_revoked()->set_key_id(in.flags.Get("key-id"));
  body.mutable_key_revoked()->set_reason(in.flags.Get("reason"));
  return AppendAsMember(in, std::move(body));
}

// ---------------------------------------------------------------- submit

absl::StatusOr<std::string> ReadPayload(const std::string& path) {
  if (path == "-") {
    std::string text{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
    if (std::cin.bad()) return absl::DataLossError("payload from stdin: read failed");
    return text;
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("payload ", path, ": cannot open"));
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) return absl::DataLossError(absl::StrCat("payload ", path, ": read failed"));
  return text.str();
}

absl::Status RunSubmit(const Invocation& in) {
  const std::string& path = in.flags.Get("payload");
  if (path.empty()) return UsageError("--payload must name a file, or - for stdin");
  std::string where = path == "-" ? "stdin" : path;
  absl::StatusOr<std::string> text = ReadPayload(path);
  if (!text.ok()) return text.status();
  v1::EventBody body;
  auto parsed = google::protobuf::util::JsonStringToMessage(*text, &body);
  if (!parsed.ok()) {
    // The parser's message may go on to draw a caret on later lines; keep the
    // first, which says what was wrong.
    absl::string_view why(parsed.message().data(), parsed.message().size());
    why = why.substr(0, why.find('\n'));
    return absl::InvalidArgumentError(absl::StrCat(
        "payload ", where, ": not a ledger.v1.EventBody in protobuf JSON: ", why,
        "; nothing was sent"));
  }
  if (body.payload_case() == v1::EventBody::PAYLOAD_NOT_SET) {
    return absl::InvalidArgumentError(absl::StrCat(
        "payload ", where, ": sets no event (expected one payload field such as "
        "\"keyAdded\" or \"voteCast\"); nothing was sent"));
  }
  return AppendAsMember(in, std::move(body));
}

}  // namespace

Command RegisterOrgCommand() {
  return {{.name = "register-org",
           .summary = "Register an organisation (a registrar's action).",
           .description = kMemberDescription,
           .flags = WithMemberFlags({
               {"org", "ID", "the new organisation's id", true},
               {"name", "NAME", "its name", true},
               {"kind", "KIND", "e.g. nhs-trust, commissioner, national-body"},
               {"org-key", "FILE", "a PEM public (or private) key of the organisation", true,
                true},
           })},
          &RunRegisterOrg};
}

Command AddKeyCommand() {
  return {{.name = "add-key",
           .summary = "Add a signing key to an organisation.",
           .description = kMemberDescription,
           .flags = WithMemberFlags({
               {"org", "ID", "the organisation gaining the key", true},
               {"new-key", "FILE", "the key to add: PEM public (or private) key", true},
           })},
          &RunAddKey};
}

Command RevokeKeyCommand() {
  return {{.name = "revoke-key",
           .summary = "Revoke an organisation's key; it signs nothing after this.",
           .description = kMemberDescription,
           .flags = WithMemberFlags({
               {"org", "ID", "the organisation whose key it is", true},
               {"key-id", "ID", "the key id (hex, as keygen prints)", true},
               {"reason", "TEXT", "why, for the record"},
           })},
          &RunRevokeKey};
}

Command SubmitCommand() {
  return {{.name = "submit",
           .summary = "Sign and append any event given as protobuf JSON.",
           .description = absl::StrCat(
               "--payload holds a ledger.v1.EventBody in protobuf JSON, usually just its\n"
               "payload, e.g. {\"keyAdded\": {\"orgId\": \"x\", \"publicKey\": \"<base64>\"}}.\n"
               "ledgerId, author, idempotencyKey and clientTimeUnixMs are filled in unless\n"
               "present (present ones must agree with the ledger and the flags). A payload\n"
               "that does not parse is reported and nothing is sent.\n\n",
               kMemberDescription),
           .flags = WithMemberFlags({
               {"payload", "FILE|-", "the event as protobuf JSON; - reads stdin", true},
           })},
          &RunSubmit};
}

}  // namespace ledger::ctl
