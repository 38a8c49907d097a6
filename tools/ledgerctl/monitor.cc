// Verifying a running server: `verify-server` (AuditService.Verify: the six
// checks run by the server over its own log), `verify-proposal` (the
// no-reversal evidence of one proposal), and `audit`, a transparency-log
// monitor that trusts only what it verified itself.
//
// `audit --state DIR` keeps in DIR:
//   operator.pub       the operator key (PEM): --operator-key, or with
//                      --trust-on-first-use the server's, pinned on the first
//                      run; it must never change
//   checkpoint.note    the last checkpoint it verified (signed note)
//   verifier.state     what the checks remember at that checkpoint: its
//                      position, Merkle frontier, the projected rules state,
//                      locked gateways and idempotency fingerprints
//                      (audit::LogVerifier::SaveResumePoint), so the next run
//                      resumes there instead of replaying from 0
//   evidence-<time>/   written when the server's history no longer extends
//                      the remembered checkpoint
// Before that, every run checks the member's own evidence (evidence.h: the
// receipts member commands kept) against the server's checkpoint; without
// --state that is all it does.
// Each run fetches the latest checkpoint, checks its signature, proves it
// consistent with the remembered one (RFC 9162), then verifies every record
// up to it: signatures and rules, with the same code as `ledgerctl verify`
// (audit::LogVerifier). The rules need the state before the new records: it
// is loaded from verifier.state, which must sit exactly at the remembered
// checkpoint (same size, same root); a corrupt or mismatching file is an
// error, never ignored. Without the file (a first run, a directory of an
// earlier release) or with --rebuild the log is re-read and replayed from 0
// (records before the remembered size are only replayed: their signatures
// were verified by an earlier run, and the Merkle root they give must equal
// the remembered root).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ledger/audit/report.h"
#include "ledger/audit/verifier.h"
#include "ledger/common/thread_pool.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/crypto/sha256.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/merkle/tree.h"
#include "ledger/witness/policy.h"
#include "tools/ledgerctl/client.h"
#include "tools/ledgerctl/commands.h"
#include "tools/ledgerctl/evidence.h"
#include "tools/ledgerctl/keys.h"
#include "tools/ledgerctl/output.h"

namespace ledger::ctl {
namespace {

namespace fs = std::filesystem;

constexpr int kExitRewritten = 2;

// A one-line progress bar on stderr, only when stderr is a terminal.
class TerminalProgress {
 public:
  explicit TerminalProgress(std::string what) : what_(std::move(what)), enabled_(::isatty(STDERR_FILENO) == 1) {}
  void Update(uint64_t done, uint64_t total) {
    if (!enabled_ || total == 0) return;
    done = std::min(done, total);
    std::fprintf(stderr, "\r%s: %llu / %llu records (%3d%%)", what_.c_str(), static_cast<unsigned long long>(done),
                 static_cast<unsigned long long>(total), static_cast<int>(100 * done / total));
    std::fflush(stderr);
    shown_ = true;
  }
  void Done() {
    if (shown_) std::fprintf(stderr, "\n");
    shown_ = false;
  }

 private:
  std::string what_;
  bool enabled_;
  bool shown_ = false;
};

// ---------------------------------------------------------------- verify-server

// Prints the server's report as text or JSON.
absl::Status PrintServerReport(v1::VerifyReport report, const std::string& server, bool json) {
  if (json) {
    auto text = audit::FormatReportJson(report);
    if (!text.ok()) return text.status();
    PrintLine(*text);
    return absl::OkStatus();
  }
  bool checks_pass = true;
  for (const v1::VerifyCheck& c : report.checks()) checks_pass = checks_pass && c.passed() && c.completed();
  if (!report.verified() && checks_pass && report.error().empty()) {
    report.set_error("the server reports the log as not verified");
  }
  PrintLine(audit::FormatReportText(
      report, absl::StrCat("log of server ", server, " (positions ", report.from_position(), "..",
                           report.to_position() == 0 ? 0 : report.to_position() - 1, ")")));
  return absl::OkStatus();
}

absl::Status RunVerifyServer(const Invocation& in) {
  auto from = in.flags.GetUint64("from", 0);
  if (!from.ok()) return from.status();
  auto to = in.flags.GetUint64("to", 0);
  if (!to.ok()) return to.status();
  if (*to != 0 && *from >= *to) return UsageError("--from must be below --to");
  LedgerClient client(in.server, in.tls);
  v1::VerifyRequest request;
  request.set_from_position(*from);
  request.set_to_position(*to);
  TerminalProgress progress("verifying on the server");
  std::optional<v1::VerifyReport> report;
  absl::Status status = client.Verify(request, [&](const v1::VerifyProgress& message) {
    if (message.has_progress()) progress.Update(message.progress().records_done(), message.progress().records_total());
    if (message.has_report()) report = message.report();
  });
  progress.Done();
  if (!status.ok()) return status;
  if (!report.has_value()) return absl::DataLossError(absl::StrCat("Verify at ", in.server, ": the stream ended without a report"));
  if (auto s = PrintServerReport(*report, in.server, in.flags.Has("json")); !s.ok()) return s;
  if (!report->verified()) return absl::DataLossError("the server's log does not verify (see the report)");
  return absl::OkStatus();
}

// ---------------------------------------------------------------- verify-proposal

absl::Status RunVerifyProposal(const Invocation& in) {
  LedgerClient client(in.server, in.tls);
  auto response = client.VerifyProposal(in.flags.Arg(0));
  if (!response.ok()) return response.status();
  if (in.flags.Has("json")) {
    auto json = ProtoToJson(*response);
    if (!json.ok()) return json.status();
    PrintLine(*json);
  } else {
    const v1::VerifyProposalResponse& r = *response;
    std::string out = absl::StrCat("proposal ", r.proposal_id(), " of collective ", r.collective_id(), ": ",
                                   EnumText(r.status()), ", submitted at position ", r.submitted_at(),
                                   "\n");
    for (const v1::GatewayLockEvidence& g : r.gateways()) {
      absl::StrAppend(&out, "gateway ", g.gateway_id(), g.superseded() ? " (earlier attempt)" : "", ": ",
                      EnumText(g.status()));
      if (g.locked()) absl::StrAppend(&out, ", locked at position ", g.locked_at());
      if (g.called_at() != 0) absl::StrAppend(&out, ", called at ", g.called_at());
      absl::StrAppend(&out, " (opened at ", g.opened_at(), ")");
      if (g.reopened_at() != 0) absl::StrAppend(&out, ", reopened at ", g.reopened_at());
      absl::StrAppend(&out, "\n");
      std::vector<std::string> members;
      for (const v1::MemberPositionAtLock& m : g.positions()) {
        members.push_back(m.voted() ? absl::StrCat(m.org_id(), " ", EnumText(m.position()), " (", m.at(), ")")
                                    : absl::StrCat(m.org_id(), " did not vote"));
      }
      absl::StrAppend(&out, "  ", g.locked() ? "positions at the lock: " : "positions: ",
                      members.empty() ? "-" : absl::StrJoin(members, "; "), "\n");
      if (g.locked()) {
        absl::StrAppend(&out, "  accepted changes after the lock: ",
                        g.touched_after_lock().empty() ? "none" : absl::StrJoin(g.touched_after_lock(), ", "),
                        g.touched_after_lock().empty() ? "" : "  <-- VIOLATION", "\n");
      }
      if (!g.refused_attempts().empty()) {
        absl::StrAppend(&out, "  refused attempts: ", absl::StrJoin(g.refused_attempts(), ", "), "\n");
      }
    }
    if (!r.refused_attempts().empty()) absl::StrAppend(&out, "refused attempts on this proposal:\n");
    for (const v1::VerifyRefusedAttempt& a : r.refused_attempts()) {
      absl::StrAppend(&out, "  position ", a.position(), ": ", a.org_id(), " (key ", a.key_id(), ")",
                      a.gateway_id().empty() ? "" : absl::StrCat(" on gateway ", a.gateway_id()), ": ",
                      EnumText(a.reason()), "\n");
    }
    absl::StrAppend(&out, "no reversal: ",
                    r.intact() ? "INTACT (nothing accepted changed a locked gateway)"
                               : "VIOLATED (an accepted record changed a locked gateway)",
                    "\npositions to prove (ledgerctl prove --seq N): ", absl::StrJoin(r.positions_to_prove(), " "));
    PrintLine(out);
  }
  if (!response->intact()) {
    return absl::DataLossError(absl::StrCat("proposal ", in.flags.Arg(0), ": a locked gateway was changed after its lock"));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- audit (monitor)

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

std::string FirstLine(const std::string& note) { return note.substr(0, note.find('\n')); }
std::string Hex(const merkle::Hash& hash) { return crypto::ToHex(merkle::AsBytes(hash)); }

struct Rewrite {
  std::string reason;
  std::string remembered_note;
  std::string served_note;
  std::vector<merkle::Hash> proof = {};  // the consistency proof the server gave, if any
};

// Prints the evidence loudly, writes it to DIR/evidence-<time>/ and exits 2.
[[noreturn]] void ReportRewrite(const std::string& dir, const std::string& server, const Rewrite& r) {
  const std::string stamp = absl::FormatTime("%Y%m%dT%H%M%SZ", absl::Now(), absl::UTCTimeZone());
  std::string evidence = absl::StrCat(dir, "/evidence-", stamp);
  for (int i = 1; fs::exists(evidence); ++i) evidence = absl::StrCat(dir, "/evidence-", stamp, "-", i);
  std::error_code error;
  fs::create_directories(evidence, error);
  std::vector<std::string> proof_hex;
  for (const merkle::Hash& h : r.proof) proof_hex.push_back(Hex(h));
  const std::string summary =
      absl::StrCat("server: ", server, "\nwhen: ", absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone()),
                   "\nreason: ", r.reason, "\n");
  absl::Status written = WriteFileAtomically(evidence + "/remembered-checkpoint.note", r.remembered_note);
  if (written.ok()) written = WriteFileAtomically(evidence + "/served-checkpoint.note", r.served_note);
  if (written.ok()) written = WriteFileAtomically(evidence + "/reason.txt", summary);
  if (written.ok() && !r.proof.empty()) {
    written = WriteFileAtomically(evidence + "/consistency-proof.txt", absl::StrJoin(proof_hex, "\n") + "\n");
  }
  const std::string bar(72, '!');
  std::string out = absl::StrCat(bar, "\n!!! HISTORY REWRITTEN\n!!! ", r.reason, "\n!!! server ", server,
                                 "\n!!! the checkpoint this monitor verified earlier:\n", r.remembered_note,
                                 "!!! the checkpoint the server signs now:\n", r.served_note);
  if (!proof_hex.empty()) absl::StrAppend(&out, "!!! its consistency proof:\n", absl::StrJoin(proof_hex, "\n"), "\n");
  absl::StrAppend(&out, "!!! both are signed by the operator key: keep them as evidence.\n!!! evidence: ",
                  written.ok() ? evidence : absl::StrCat("NOT WRITTEN (", written.message(), ")"), "\n", bar);
  PrintLine(out);
  std::fprintf(stderr, "ledgerctl audit: HISTORY REWRITTEN: %s (evidence in %s)\n", r.reason.c_str(), evidence.c_str());
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(kExitRewritten);
}

// The operator key: --operator-key, else the one pinned in DIR, else, only
// with --trust-on-first-use, the server's, pinned now. Without any of them it
// is an error and nothing is pinned: a key fetched from the server it is
// meant to check (perhaps in plaintext) is no anchor unless the user says so.
absl::StatusOr<crypto::PublicKey> OperatorKey(const Invocation& in, const std::string& dir,
                                              const v1::GetLedgerInfoResponse& info) {
  const std::string pinned_path = dir + "/operator.pub";
  std::optional<crypto::PublicKey> pinned;
  if (fs::exists(pinned_path)) {
    auto key = crypto::ReadPublicKeyFile(pinned_path);
    if (!key.ok()) return key.status();
    pinned = *key;
  }
  std::optional<crypto::PublicKey> key;
  if (in.flags.Has("operator-key")) {
    auto given = ReadPublicKeyFromEither(in.flags.Get("operator-key"));
    if (!given.ok()) return given.status();
    key = *given;
  } else if (pinned.has_value()) {
    key = pinned;
  } else if (!in.flags.Has("trust-on-first-use")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no operator key to trust: give --operator-key PEM (the operator's public key, obtained out of band), "
        "or say --trust-on-first-use to pin the key the server reports; nothing was pinned in ",
        dir));
  } else {
    auto served = crypto::PublicKey::FromRaw(info.operator_public_key());
    if (!served.ok()) return absl::DataLossError(absl::StrCat("GetLedgerInfo: operator key: ", served.status().message()));
    key = *served;
    PrintLine(absl::StrCat("trusting on first use the operator key ", key->key_id(), " reported by the server"));
  }
  if (pinned.has_value() && pinned->raw() != key->raw()) {
    return absl::FailedPreconditionError(absl::StrCat("the operator key ", key->key_id(), " is not the one pinned in ",
                                                      pinned_path, " (", pinned->key_id(), ")"));
  }
  if (!pinned.has_value()) {
    if (auto s = crypto::WritePublicKeyFile(pinned_path, *key); !s.ok()) return s;
  }
  return *key;
}

// One monitoring round. OK with a line saying what was verified; exits 2 on a
// rewrite; an error if the records do not verify or the server cannot be
// asked. Signatures are checked on `pool` (one for every round of --follow).
absl::Status AuditOnce(const Invocation& in, const std::string& dir, bool quiet_if_unchanged, bool rebuild,
                       ThreadPool* pool) {
  LedgerClient client(in.server, in.tls);
  auto info = client.GetLedgerInfo();
  if (!info.ok()) return info.status();

  // The member's own evidence first (evidence.h): every receipt it kept.
  std::optional<crypto::PublicKey> given_key;
  if (in.flags.Has("operator-key")) {
    auto given = ReadPublicKeyFromEither(in.flags.Get("operator-key"));
    if (!given.ok()) return given.status();
    given_key = *given;
  }
  auto evidence = CheckEvidence(in, client, *info, given_key);
  if (!evidence.ok()) return evidence.status();
  for (const std::string& skipped : evidence->skipped) {
    std::fprintf(stderr, "ledgerctl audit: evidence file skipped: %s\n", skipped.c_str());
  }
  if (!evidence->rewritten.empty() || !evidence->lost_positions.empty()) {
    PrintLine(FormatEvidenceCheck(*evidence, in.server));
    std::fprintf(stderr, "ledgerctl audit: HISTORY REWRITTEN: %zu saved checkpoint(s) not extended, receipt position(s) lost: %s (evidence in %s)\n",
                 evidence->rewritten.size(),
                 evidence->lost_positions.empty() ? "none" : absl::StrJoin(evidence->lost_positions, ", ").c_str(),
                 evidence->copied_to.c_str());
    std::fflush(stdout);
    std::fflush(stderr);
    std::_Exit(kExitRewritten);
  }
  if (evidence->found && !quiet_if_unchanged) PrintLine(FormatEvidenceCheck(*evidence, in.server));
  if (dir.empty()) {
    if (!evidence->found) {
      return absl::FailedPreconditionError(absl::StrCat(
          "nothing to audit: no --state DIR and no receipts saved for origin \"", info->origin(), "\" in ",
          evidence->dir, " (give --state DIR to monitor the whole log, or --evidence DIR where your receipts are)"));
    }
    return absl::OkStatus();
  }

  auto key = OperatorKey(in, dir, *info);
  if (!key.ok()) return key.status();

  const std::string state_path = dir + "/checkpoint.note";
  std::optional<std::string> old_note;
  std::optional<merkle::Checkpoint> old;
  std::string origin = info->origin();
  if (fs::exists(state_path)) {
    auto note = ReadFile(state_path);
    if (!note.ok()) return note.status();
    origin = FirstLine(*note);
    auto opened = merkle::OpenCheckpoint(*note, origin, *key);
    if (!opened.ok()) {
      return absl::DataLossError(absl::StrCat(state_path, " does not verify under the operator key: ",
                                              opened.status().message()));
    }
    old_note = *note;
    old = *opened;
  }

  // With a witness policy the monitor relies only on what a witness quorum
  // cosigned: it audits up to the newest witnessed checkpoint.
  std::optional<witness::Policy> policy;
  if (in.flags.Has("witness-policy")) {
    auto loaded = witness::Policy::Load(in.flags.Get("witness-policy"));
    if (!loaded.ok()) return loaded.status();
    policy = *std::move(loaded);
  }
  auto latest = client.GetCheckpoint(0, policy.has_value());
  if (!latest.ok()) return latest.status();
  const std::string& note = latest->note();
  if (policy.has_value()) {
    if (auto witnessed = policy->Check(note); !witnessed.ok()) {
      return absl::Status(witnessed.status().code(),
                          absl::StrCat("the server's witnessed checkpoint: ", witnessed.status().message()));
    }
  }
  auto opened = merkle::OpenCheckpoint(note, origin, *key);
  if (!opened.ok()) {
    const std::string served_origin = FirstLine(note);
    if (old.has_value() && served_origin != origin && merkle::OpenCheckpoint(note, served_origin, *key).ok()) {
      ReportRewrite(dir, in.server,
                    {absl::StrCat("the operator key now signs a different log (origin \"", served_origin,
                                  "\", was \"", origin, "\"): the verified history of size ", old->size,
                                  " is gone"),
                     *old_note, note});
    }
    return absl::DataLossError(absl::StrCat("the latest checkpoint does not verify under the operator key ",
                                            key->key_id(), " and origin \"", origin, "\": ", opened.status().message()));
  }
  const merkle::Checkpoint now = *opened;
  if (old.has_value() && policy.has_value() && now.size < old->size) {
    // The witnessed checkpoint may lag behind one verified earlier without
    // the policy: behind, not rewritten, if it is a prefix of it.
    auto proof_response = client.GetConsistencyProof(now.size, old->size);
    std::vector<merkle::Hash> proof;
    bool consistent = proof_response.ok();
    for (int i = 0; consistent && i < proof_response->proof_size(); ++i) {
      auto hash = merkle::HashFromBytes(proof_response->proof(i));
      consistent = hash.ok();
      if (consistent) proof.push_back(*hash);
    }
    if (consistent && merkle::VerifyConsistency(now.size, old->size, proof, now.root, old->root).ok()) {
      if (!quiet_if_unchanged) {
        PrintLine(absl::StrCat("OK: the witnessed checkpoint (size ", now.size, ") is behind the one verified (size ",
                               old->size, ") and consistent with it: nothing new to audit"));
      }
      return absl::OkStatus();
    }
  }
  if (old.has_value()) {
    if (now.size < old->size) {
      ReportRewrite(dir, in.server,
                    {absl::StrCat("the log shrank from ", old->size, " to ", now.size, " records"), *old_note, note});
    }
    if (now.size == old->size) {
      if (now.root != old->root) {
        ReportRewrite(dir, in.server,
                      {absl::StrCat("two different roots signed for size ", now.size), *old_note, note});
      }
      if (!quiet_if_unchanged) {
        PrintLine(absl::StrCat("OK: no new records; checkpoint of size ", now.size, " root ", Hex(now.root),
                               " unchanged"));
      }
      return absl::OkStatus();
    }
    auto proof_response = client.GetConsistencyProof(old->size, now.size);
    if (!proof_response.ok()) return proof_response.status();
    std::vector<merkle::Hash> proof;
    for (const std::string& bytes : proof_response->proof()) {
      auto hash = merkle::HashFromBytes(bytes);
      if (!hash.ok()) {
        ReportRewrite(dir, in.server, {"the consistency proof holds a malformed hash", *old_note, note});
      }
      proof.push_back(*hash);
    }
    if (auto s = merkle::VerifyConsistency(old->size, now.size, proof, old->root, now.root); !s.ok()) {
      ReportRewrite(dir, in.server,
                    {absl::StrCat("the checkpoint of size ", now.size, " does not extend the verified one of size ",
                                  old->size, ": ", s.message()),
                     *old_note, note, proof});
    }
  }

  // Every record up to the new checkpoint; the new ones are verified.
  const uint64_t from = old.has_value() ? old->size : 0;
  const std::string resume_path = dir + "/verifier.state";
  std::optional<std::string> saved;
  if (!rebuild && fs::exists(resume_path)) {
    if (!old.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          resume_path, " exists but ", state_path, " does not: the state directory is inconsistent (run with "
          "--rebuild to replay the log from position 0 and rewrite both)"));
    }
    auto bytes = ReadFile(resume_path);
    if (!bytes.ok()) return bytes.status();
    saved = *std::move(bytes);
  }
  TerminalProgress progress("auditing");
  uint64_t total = now.size;
  audit::LogVerifier verifier({.operator_key = *key,
                               .origin = origin,
                               .trusted = old,
                               .witness_policy = policy.has_value() ? &*policy : nullptr,
                               .pool = pool,
                               .report_from = from,
                               .on_batch = [&] { progress.Update(verifier.records(), total); },
                               // An earlier record, read again from the server (only when
                               // two idempotency fingerprints meet).
                               .read_record = [&client](uint64_t position) -> absl::StatusOr<std::string> {
                                 v1::ReadRequest request;
                                 request.set_from_position(position);
                                 request.set_limit(1);
                                 auto page = client.Read(request);
                                 if (!page.ok()) return page.status();
                                 if (page->entries_size() != 1 || page->entries(0).position() != position) {
                                   return absl::DataLossError(
                                       absl::StrCat("asked for record ", position, ", the server sent another"));
                                 }
                                 return std::move(*page->mutable_entries(0)->mutable_record());
                               }});
  std::deque<v1::CheckpointNote> checkpoints;
  uint64_t next_page = from + 1;
  auto refill = [&]() -> absl::Status {
    if (!checkpoints.empty() || next_page == 0) return absl::OkStatus();
    auto page = client.ListCheckpoints(next_page, now.size);  // the new one is fed last, as fetched
    if (!page.ok()) return page.status();
    for (const auto& c : page->checkpoints()) checkpoints.push_back(c);
    next_page = page->next_from_size();
    return absl::OkStatus();
  };
  if (saved.has_value()) {
    auto resumed = verifier.Resume(*saved);
    if (resumed.ok() && verifier.records() != from) {
      resumed = absl::FailedPreconditionError(absl::StrCat("it is at position ", verifier.records(),
                                                           "; the remembered checkpoint is of size ", from));
    }
    if (!resumed.ok()) {
      return absl::Status(resumed.code(), absl::StrCat(resume_path, ": ", resumed.message(),
                                                       " (nothing was changed; run with --rebuild to replay the log "
                                                       "from position 0 and rewrite it)"));
    }
  }
  if (auto s = refill(); !s.ok()) return s;
  uint64_t position = verifier.records();
  const std::string start = saved.has_value()
                                ? absl::StrCat("resumed at position ", position, " from ", resume_path)
                                : absl::StrCat("replayed from position 0",
                                               rebuild ? " (--rebuild)"
                                                       : old.has_value() ? " (no saved verifier state)" : "");
  bool going = true;
  while (going && position < now.size) {
    v1::ReadRequest request;
    request.set_from_position(position);
    request.set_limit(static_cast<uint32_t>(std::min<uint64_t>(1000, now.size - position)));
    auto page = client.Read(request);
    if (!page.ok()) return page.status();
    if (page->entries().empty()) return absl::DataLossError(absl::StrCat("the server returned no record at ", position));
    for (const v1::RecordEntry& entry : page->entries()) {
      if (entry.position() != position) {
        return absl::DataLossError(absl::StrCat("asked for record ", position, ", the server sent ", entry.position()));
      }
      if (!(going = verifier.AddRecord(entry.record()))) break;
      position++;
      while (going && !checkpoints.empty() && checkpoints.front().tree_size() <= position) {
        if (checkpoints.front().tree_size() == position) {
          going = verifier.AddCheckpoint(position, checkpoints.front().note());
        }
        checkpoints.pop_front();
        if (auto s = refill(); !s.ok()) return s;
      }
      if (!going || position >= now.size) break;
    }
  }
  if (going) going = verifier.AddCheckpoint(now.size, note);
  if (verifier.Flush()) {
    if (verifier.records() != now.size) {
      verifier.Fail(audit::CheckId::kDensity, verifier.records(),
                    absl::StrCat("the server served ", verifier.records(), " records; the checkpoint has ", now.size));
    } else if (auto s = verifier.FinishReplay(); !s.ok()) {
      verifier.Fail(audit::CheckId::kReplay, now.size, std::string(s.message()));
    } else {
      verifier.CheckWitnessedAtEnd();
    }
  }
  progress.Done();
  v1::VerifyReport report = verifier.Report();
  report.set_ledger_id(info->ledger_id());
  const std::string subject = absl::StrCat("log of server ", in.server, " (new records ", from, "..", now.size - 1, ")");
  if (!report.verified()) {
    const v1::VerifyCheck& integrity = report.checks(static_cast<int>(audit::CheckId::kIntegrity));
    if (old.has_value() && !integrity.passed() && integrity.has_first_failing_position() &&
        integrity.first_failing_position() < old->size) {
      // The records the server serves now do not give the verified root.
      PrintLine(audit::FormatReportText(report, subject));
      ReportRewrite(dir, in.server,
                    {"the records served now do not give the root of the verified checkpoint", *old_note, note});
    }
    PrintLine(audit::FormatReportText(report, subject));
    return absl::DataLossError(absl::StrCat("the new records up to size ", now.size,
                                            " do not verify (see the report); the checkpoint was not saved"));
  }
  // The verifier's state first: a crash between the two leaves it ahead of
  // checkpoint.note, which the next run reports (--rebuild recovers).
  auto resume_point = verifier.SaveResumePoint();
  if (!resume_point.ok()) return resume_point.status();
  if (auto s = WriteFileAtomically(resume_path, *resume_point); !s.ok()) return s;
  if (auto s = WriteFileAtomically(state_path, note); !s.ok()) return s;
  PrintLine(absl::StrCat(start, "; saved the verifier state at position ", now.size, " (", resume_point->size(),
                         " bytes)"));
  PrintLine(absl::StrCat("OK: checkpoint of size ", now.size, " root ", Hex(now.root), " verified: ",
                         old.has_value() ? absl::StrCat("consistent with size ", old->size, "; ")
                                         : "trusted on first use after verifying every record; ",
                         now.size - from, " new records (positions ", from, "..", now.size - 1,
                         "): signatures, rules, no reversal, density, time and integrity pass",
                         policy.has_value() ? absl::StrCat("; witnessed by the quorum ", policy->QuorumText())
                                            : "; witnessing not checked (no --witness-policy)"));
  return absl::OkStatus();
}

absl::Status RunAudit(const Invocation& in) {
  const std::string dir = in.flags.Get("state");
  auto interval = in.flags.GetUint64("interval", 2);
  if (!interval.ok()) return interval.status();
  if (*interval == 0) return UsageError("--interval must be at least 1 second");
  for (const char* needs_state : {"rebuild", "trust-on-first-use"}) {
    if (dir.empty() && in.flags.Has(needs_state)) return UsageError(absl::StrCat("--", needs_state, " needs --state DIR"));
  }
  std::error_code error;
  if (!dir.empty()) fs::create_directories(dir, error);
  if (error) return absl::UnavailableError(absl::StrCat("cannot create the state directory ", dir, ": ", error.message()));
  ThreadPool pool(0);  // one thread per core, started once
  if (!in.flags.Has("follow")) return AuditOnce(in, dir, false, in.flags.Has("rebuild"), &pool);

  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  bool first = true;
  while (!g_stop) {
    absl::Status s = AuditOnce(in, dir, !first, first && in.flags.Has("rebuild"), &pool);
    first = false;
    if (!s.ok()) {
      if (!absl::IsUnavailable(s) && !absl::IsDeadlineExceeded(s)) return s;
      std::fprintf(stderr, "ledgerctl audit: %s (retrying)\n", std::string(s.message()).c_str());
    }
    for (uint64_t waited = 0; waited < *interval * 10 && !g_stop; ++waited) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  PrintLine("ledgerctl audit: stopped");
  return absl::OkStatus();
}

}  // namespace

std::vector<Command> MonitorCommands() {
  return {
      {{.name = "verify-server",
        .summary = "Ask the server to run the checks of DESIGN §4 over its own log.",
        .description = "Calls AuditService.Verify: the server replays its log with the same code as\n"
                       "`ledgerctl verify` and reports each check. A range (--from/--to) is still\n"
                       "replayed from 0, but signatures, density, time and no reversal are checked only\n"
                       "inside it. Shows progress on a terminal. Exit 0 only if every check passes.\n"
                       "This trusts the server to run the checks honestly; `audit` does not.",
        .flags = {{"from", "N", "first position of the range (default 0)"},
                  {"to", "N", "end of the range, exclusive (default: the end of the log)"},
                  {"json", "", "print the report as protobuf JSON (ledger.v1.VerifyReport)"}}},
       &RunVerifyServer},
      {{.name = "verify-proposal",
        .args = {"ID"},
        .summary = "Show the no-reversal evidence of one proposal, with positions to prove.",
        .description = "For each gateway: its status, where it locked, every member's position at the\n"
                       "lock, and any accepted change after the lock (a violation); refused attempts\n"
                       "are listed with their positions. Exit 1 if a locked gateway was changed.",
        .flags = {{"json", "", "print the answer as protobuf JSON"}}},
       &RunVerifyProposal},
      {{.name = "audit",
        .summary = "Monitor the log: check it still holds your receipts and extends what you verified.",
        .description = "Keeps its state in DIR (operator.pub, checkpoint.note, verifier.state). The\n"
                       "first run needs --operator-key, or --trust-on-first-use to pin the key the\n"
                       "server reports. Each run checks the latest checkpoint's signature, proves it\n"
                       "consistent with the remembered one, verifies every new record (signatures and\n"
                       "rules, resuming from the saved verifier state; --rebuild replays from 0) and\n"
                       "saves both. The first run trusts the\n"
                       "current checkpoint after verifying everything. If the server's history no\n"
                       "longer extends what was verified it prints HISTORY REWRITTEN, writes both\n"
                       "checkpoints to DIR/evidence-<time>/ and exits 2. --follow repeats every\n"
                       "--interval seconds until SIGINT or SIGTERM (exit 0).\n\n"
                       "Every run first checks your evidence (--evidence DIR, where member commands\n"
                       "keep each receipt): the server's checkpoint must be consistent with every\n"
                       "saved checkpoint and still include every saved receipt. If not it prints\n"
                       "HISTORY REWRITTEN naming the saved checkpoints and lost positions, copies the\n"
                       "evidence to EVIDENCE/<origin>/rewritten-<time>/ and exits 2. A corrupt\n"
                       "evidence file is reported on stderr and skipped. Without --state only the\n"
                       "evidence is checked.",
        .flags = {{"state", "DIR", "the monitor's state directory (without it only the evidence is checked)"},
                  {"follow", "", "keep monitoring"},
                  {"interval", "SECONDS", "seconds between runs with --follow (default 2)"},
                  {"rebuild", "", "ignore DIR/verifier.state: replay the log from position 0 and rewrite it"},
                  {"operator-key", "PEM", "the operator key you trust (pinned in DIR on the first run)"},
                  {"trust-on-first-use", "",
                   "with no --operator-key and nothing pinned: pin the key the server reports"},
                  {"witness-policy", "FILE",
                   "with --state: audit up to the newest checkpoint this C2SP tlog-policy's quorum cosigned"}}},
       &RunAudit},
  };
}

}  // namespace ledger::ctl
