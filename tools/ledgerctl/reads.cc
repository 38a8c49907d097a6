// Reading the log: get, read, tail, checkpoint.
#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ledger/event/envelope.h"
#include "ledger/witness/policy.h"
#include "tools/ledgerctl/client.h"
#include "tools/ledgerctl/commands.h"
#include "tools/ledgerctl/output.h"

namespace ledger::ctl {
namespace {

constexpr uint32_t kMaxPage = 1000;  // LedgerService.Read's limit

constexpr char kRecordFormat[] =
    "A header line, then each record on one line: position, ledger time (UTC),\n"
    "author, event kind, the signing key's id, and what the event is about (its\n"
    "proposal, gateway, position taken...). With --json, one object per line:\n"
    "  {\"position\":N,\"ledger_time_unix_ns\":T,\"key_id\":\"..\",\"signature\":\"<base64>\",\n"
    "   \"body\":<EventBody as protobuf JSON>,\"leaf_hash\":\"<hex>\"}";

const FlagSpec kJsonFlag{"json", "", "one JSON object per record"};

absl::Status PrintRecord(const v1::RecordEntry& entry, uint64_t expected_position, bool json) {
  absl::StatusOr<std::string> line = FormatRecord(entry, expected_position, json);
  if (!line.ok()) return line.status();
  PrintLine(*line);
  return absl::OkStatus();
}

// ---------------------------------------------------------------- get

absl::Status RunGet(const Invocation& in) {
  absl::StatusOr<uint64_t> position = ParseUint64("position N", in.flags.Arg(0));
  if (!position.ok()) return position.status();
  LedgerClient client(in.server, in.tls);
  absl::StatusOr<v1::RecordEntry> entry = client.Get(*position);
  if (!entry.ok()) return entry.status();
  if (!in.flags.Has("json")) PrintLine(RecordHeader());
  return PrintRecord(*entry, *position, in.flags.Has("json"));
}

// ---------------------------------------------------------------- read

std::string KnownKinds() {
  std::vector<std::string> names;
  const auto* oneof = v1::EventBody::descriptor()->FindOneofByName("payload");
  for (int i = 0; i < oneof->field_count(); ++i) names.push_back(oneof->field(i)->name());
  return absl::StrJoin(names, ", ");
}

absl::Status RunRead(const Invocation& in) {
  absl::StatusOr<uint64_t> from = in.flags.GetUint64("from", 0);
  if (!from.ok()) return from.status();
  absl::StatusOr<uint64_t> limit = in.flags.GetUint64("limit", 100);
  if (!limit.ok()) return limit.status();
  if (*limit == 0) return UsageError("--limit must be at least 1");

  v1::ReadRequest request;
  for (const std::string& kind : in.flags.GetAll("kind")) {
    if (EventKindNumber(kind) == 0) {
      return UsageError(
          absl::StrCat("--kind: unknown event kind '", kind, "'; kinds are: ", KnownKinds()));
    }
    request.add_kinds(kind);
  }
  request.set_author(in.flags.Get("author"));
  bool json = in.flags.Has("json");

  // Page through until --limit records are printed or the log (or the
  // --until time) is exhausted.
  LedgerClient client(in.server, in.tls);
  uint64_t start = *from, end = 0;  // end 0: the end of the log
  if (absl::Status narrowed = NarrowToTimes(in.flags, client, start, end); !narrowed.ok()) return narrowed;
  uint64_t remaining = *limit;
  uint64_t next = start;
  bool header_printed = json;  // once the server has answered: an error leaves stdout empty
  while (remaining > 0) {
    request.set_from_position(next);
    request.set_limit(static_cast<uint32_t>(std::min<uint64_t>(remaining, kMaxPage)));
    absl::StatusOr<v1::ReadResponse> page = client.Read(request);
    if (!page.ok()) return page.status();
    if (!header_printed) {
      PrintLine(RecordHeader());
      header_printed = true;
    }
    uint64_t last = next;  // positions must increase within and across pages
    for (const v1::RecordEntry& entry : page->entries()) {
      if (end != 0 && entry.position() >= end) return absl::OkStatus();
      if (entry.position() < last || entry.position() >= page->next_position()) {
        return absl::DataLossError(absl::StrCat(
            "Read at ", in.server, ": record position ", entry.position(),
            " is out of order (expected at least ", last, " and below next_position ",
            page->next_position(), ")"));
      }
      if (absl::Status s = PrintRecord(entry, entry.position(), json); !s.ok()) return s;
      last = entry.position() + 1;
      if (--remaining == 0) break;
    }
    if (remaining == 0 && last < (end != 0 ? end : page->tree_size())) {
      // More records (of the filter, if any) may follow: say where to go on.
      // On stderr: stdout stays records only, for scripts.
      if (!json) std::fprintf(stderr, "(more: --from %llu; the log has %llu records)\n",
                              static_cast<unsigned long long>(last), static_cast<unsigned long long>(page->tree_size()));
      break;
    }
    // A page that did not advance means the end of the log.
    if (page->next_position() <= next || page->next_position() >= page->tree_size()) break;
    if (end != 0 && page->next_position() >= end) break;
    next = page->next_position();
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- tail

absl::Status RunTail(const Invocation& in) {
  absl::StatusOr<uint64_t> from = in.flags.GetUint64("from", 0);
  if (!from.ok()) return from.status();
  absl::StatusOr<uint64_t> count = in.flags.GetUint64("count", 0);
  if (!count.ok()) return count.status();
  if (in.flags.Has("count") && *count == 0) return UsageError("--count must be at least 1");
  bool json = in.flags.Has("json");

  LedgerClient client(in.server, in.tls);
  uint64_t next = *from;
  uint64_t printed = 0;
  bool header_printed = json;  // with the first record or the catch-up, not before the server answers
  auto print_header = [&] {
    if (!header_printed) PrintLine(RecordHeader());
    header_printed = true;
  };
  absl::Status status = client.Subscribe(
      *from,
      [&](const v1::RecordEntry& entry) -> absl::StatusOr<bool> {
        // Records must arrive dense and in order; FormatRecord checks it.
        print_header();
        if (absl::Status s = PrintRecord(entry, next, json); !s.ok()) return s;
        ++next;
        ++printed;
        return *count == 0 || printed < *count;
      },
      [&](uint64_t tree_size) {
        print_header();
        if (!json) {
          std::fprintf(stderr, "ledgerctl tail: caught up at tree size %llu; following\n",
                       static_cast<unsigned long long>(tree_size));
        }
      });
  if (!status.ok()) return status;
  if (*count != 0 && printed >= *count) return absl::OkStatus();
  // tail follows until stopped; a stream the server ends (e.g. on shutdown)
  // is a failure the caller should see.
  std::string wanted = *count != 0 ? absl::StrCat(" of ", *count) : std::string();
  return absl::UnavailableError(absl::StrCat("Subscribe at ", in.server,
                                             ": the server ended the stream after ", printed,
                                             wanted, " records (next position ", next, ")"));
}

// ---------------------------------------------------------------- checkpoint

absl::Status RunCheckpoint(const Invocation& in) {
  absl::StatusOr<uint64_t> size = in.flags.GetUint64("size", 0);
  if (!size.ok()) return size.status();
  const bool witnessed = in.flags.Has("witnessed");
  if (witnessed && *size != 0) return UsageError("--witnessed and --size: the witnessed checkpoint is the newest one");
  if (in.flags.Has("witness-policy") && !witnessed) return UsageError("--witness-policy checks a --witnessed checkpoint");
  LedgerClient client(in.server, in.tls);
  absl::StatusOr<v1::GetCheckpointResponse> checkpoint = client.GetCheckpoint(*size, witnessed);
  if (!checkpoint.ok()) return checkpoint.status();
  const std::string& note = checkpoint->note();
  if (witnessed && checkpoint->latest_tree_size() == 0) {
    return absl::FailedPreconditionError(
        "the server does not serve witnessed checkpoints (an older ledgerd): it ignored --witnessed");
  }
  if (witnessed) {
    // What the note is worth goes to stderr; stdout stays the note itself.
    std::string summary = absl::StrCat("witnessed checkpoint ", checkpoint->tree_size(), " of ", checkpoint->origin(),
                                       "; the ledger has ", checkpoint->latest_tree_size(), " records (",
                                       checkpoint->latest_tree_size() - checkpoint->tree_size(), " not yet witnessed)");
    if (in.flags.Has("witness-policy")) {
      auto policy = witness::Policy::Load(in.flags.Get("witness-policy"));
      if (!policy.ok()) return policy.status();
      auto checked = policy->Check(note);
      if (!checked.ok()) return checked.status();
      std::vector<std::string> cosigners;
      for (const witness::Cosignature& c : checked->cosignatures) {
        cosigners.push_back(absl::StrCat(c.witness_name, " at ", c.timestamp));
      }
      absl::StrAppend(&summary, "\nquorum ", policy->QuorumText(), " met at ", checked->quorum_time,
                      " (POSIX s); cosigned by ", absl::StrJoin(cosigners, ", "));
    }
    std::fprintf(stderr, "%s\n", summary.c_str());
  }
  // Exactly as signed: no newline added, nothing re-encoded.
  if (std::fwrite(note.data(), 1, note.size(), stdout) != note.size() ||
      std::fflush(stdout) != 0) {
    return absl::DataLossError("writing the checkpoint to stdout failed");
  }
  return absl::OkStatus();
}

}  // namespace

Command GetCommand() {
  return {{.name = "get",
           .args = {"N"},
           .summary = "Print the record at position N (positions count from 0).",
           .description = kRecordFormat,
           .flags = {kJsonFlag}},
          &RunGet};
}

Command ReadCommand() {
  return {{.name = "read",
           .summary = "Print records from a position, optionally filtered.",
           .description = kRecordFormat,
           .flags = {{"from", "N", "first position to read (default 0)", false, false, FlagValue::kNumber},
                     {"limit", "L", "at most L records (default 100)", false, false, FlagValue::kNumber},
                     {"kind", "K", "only events of this kind, e.g. vote_cast", false, true},
                     {"author", "ORG", "only events authored by ORG"},
                     {"since", "TIME", "from the first record at or after this ledger time (RFC 3339)", false,
                      false, FlagValue::kTime},
                     {"until", "TIME", "only records before this ledger time (RFC 3339)", false, false,
                      FlagValue::kTime},
                     kJsonFlag}},
          &RunRead};
}

Command TailCommand() {
  return {{.name = "tail",
           .summary = "Print records from a position, then follow new ones as they commit.",
           .description = absl::StrCat(
               "Catches up from --from, then keeps following the live log until\n"
               "interrupted, or until --count records have been printed.\n\n",
               kRecordFormat),
           .flags = {{"from", "N", "first position (default 0)"},
                     {"count", "N", "exit after printing N records"},
                     kJsonFlag}},
          &RunTail};
}

Command CheckpointCommand() {
  return {{.name = "checkpoint",
           .summary = "Print the latest signed checkpoint, exactly as signed.",
           .description =
               "The C2SP tlog-checkpoint signed note, byte for byte (it ends with its own\n"
               "newline). Use `ledgerctl prove` or `consistency` to check it.\n"
               "--witnessed prints the newest checkpoint witnesses cosigned to the quorum of\n"
               "ledgerd's --witness-policy (its note with every cosignature line) and, on\n"
               "stderr, how many records are not yet witnessed.",
           .flags = {{"size", "N", "the checkpoint of tree size N instead of the latest"},
                     {"witnessed", "", "the newest checkpoint a witness quorum cosigned, with its cosignatures"},
                     {"witness-policy", "FILE", "with --witnessed: check the cosignatures against this C2SP tlog-policy"}}},
          &RunCheckpoint};
}

}  // namespace ledger::ctl
