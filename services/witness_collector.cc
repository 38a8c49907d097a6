#include "services/witness_collector.h"

#include <optional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "httplib.h"
#include "ledger/crypto/sha256.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/rules/version.h"
#include "ledger/v1/record.pb.h"
#include "ledger/witness/cosignature.h"

namespace ledger::services {
namespace {

// "http://host:port/prefix" -> ("http://host:port", "/prefix").
std::pair<std::string, std::string> SplitUrl(const std::string& url) {
  size_t scheme = url.find("://");
  size_t path = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (path == std::string::npos) return {url, ""};
  std::string prefix = url.substr(path);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  return {url.substr(0, path), prefix};
}

// The tree size of a checkpoint note (its second line); 0 if unreadable.
uint64_t NoteSize(const std::string& note) {
  size_t first = note.find('\n');
  size_t second = first == std::string::npos ? first : note.find('\n', first + 1);
  uint64_t size = 0;
  if (second == std::string::npos ||
      !merkle::ParseTreeSize(std::string_view(note).substr(first + 1, second - first - 1), &size)) {
    return 0;
  }
  return size;
}

}  // namespace

struct WitnessCollector::Link {
  const witness::PolicyWitness* witness = nullptr;
  std::unique_ptr<httplib::Client> client;
  std::string path;           // <prefix>/add-checkpoint
  uint64_t known_size = 0;    // the size the witness holds, as far as we know
  uint64_t done_round = 0;    // the last round this link answered
  std::string last_error;     // logged once until it changes
  std::thread thread;
};

absl::StatusOr<std::unique_ptr<WitnessCollector>> WitnessCollector::Create(store::Ledger* ledger,
                                                                           witness::Policy policy,
                                                                           WitnessCollectorOptions options) {
  const std::string& origin = ledger->info().origin();
  bool listed = false;
  for (const witness::VerifierKey& log : policy.logs()) {
    listed = listed || (log.name == origin && log.key.raw() == ledger->operator_public_key().raw());
  }
  if (!listed) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the witness policy has no log line for this ledger: expected log ",
        merkle::VerifierKey(origin, ledger->operator_public_key()), " (DATA/operator.vkey)"));
  }
  if (policy.witnesses().empty()) {
    return absl::InvalidArgumentError("the witness policy lists no witness to send checkpoints to");
  }
  for (const witness::PolicyWitness& w : policy.witnesses()) {
    if (w.url.rfind("http://", 0) != 0 && w.url.rfind("https://", 0) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("witness ", w.name, " has no http:// or https:// URL in the "
                                                     "policy: ledgerd needs its submission prefix"));
    }
  }
  return std::unique_ptr<WitnessCollector>(new WitnessCollector(ledger, std::move(policy), options));
}

WitnessCollector::WitnessCollector(store::Ledger* ledger, witness::Policy policy, WitnessCollectorOptions options)
    : ledger_(ledger), policy_(std::move(policy)), options_(options) {
  for (const witness::PolicyWitness& w : policy_.witnesses()) {
    auto link = std::make_unique<Link>();
    link->witness = &w;
    auto [base, prefix] = SplitUrl(w.url);
    link->client = std::make_unique<httplib::Client>(base);
    link->client->set_keep_alive(true);
    link->client->set_tcp_nodelay(true);  // else Nagle adds ~40 ms to each request
    const auto timeout = options_.request_timeout;
    link->client->set_connection_timeout(std::chrono::duration_cast<std::chrono::seconds>(timeout).count(),
                                         std::chrono::duration_cast<std::chrono::microseconds>(timeout).count() %
                                             1'000'000);
    link->client->set_read_timeout(std::chrono::duration_cast<std::chrono::seconds>(timeout).count(), 0);
    link->client->set_write_timeout(std::chrono::duration_cast<std::chrono::seconds>(timeout).count(), 0);
    link->path = prefix + "/add-checkpoint";
    links_.push_back(std::move(link));
  }
}

WitnessCollector::~WitnessCollector() { Stop(); }

void WitnessCollector::Start() {
  auto witnessed = ledger_->store().WitnessedSize();
  if (witnessed.ok()) witnessed_size_.store(*witnessed);
  {
    absl::MutexLock lock(&mu_);
    latest_size_ = ledger_->size();
  }
  // The commit path only records the size; the links start rounds.
  listener_ = ledger_->AddListener([this](uint64_t size) {
    absl::MutexLock lock(&mu_);
    if (size > latest_size_) latest_size_ = size;
    changed_.SignalAll();
  });
  for (auto& link : links_) {
    Link* l = link.get();
    l->thread = std::thread([this, l] { LinkLoop(l); });
  }
}

void WitnessCollector::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    changed_.SignalAll();
  }
  if (listener_ >= 0) ledger_->RemoveListener(listener_);
  for (auto& link : links_) {
    link->client->stop();  // ends a request in flight
    if (link->thread.joinable()) link->thread.join();
  }
}

void WitnessCollector::MaybeStartRound() {
  const bool over = round_.id == 0 || round_.satisfied || round_.answered >= links_.size();
  if (!over) return;
  const uint64_t witnessed = witnessed_size_.load();
  if (latest_size_ == 0 || latest_size_ <= witnessed || (round_.satisfied && latest_size_ <= round_.size)) return;
  if (!round_.satisfied && round_.id != 0 && std::chrono::steady_clock::now() < retry_at_) return;
  absl::StatusOr<std::string> note = ledger_->Checkpoint(0);
  if (!note.ok()) return;
  const uint64_t size = NoteSize(*note);
  if (size == 0 || size <= witnessed) return;
  Round next;
  next.id = round_.id + 1;
  next.size = size;
  next.note = *std::move(note);
  next.started = std::chrono::steady_clock::now();
  round_ = std::move(next);
  changed_.SignalAll();
}

void WitnessCollector::LinkLoop(Link* link) {
  while (true) {
    uint64_t id = 0, size = 0;
    std::string note;
    {
      absl::MutexLock lock(&mu_);
      while (true) {
        if (stopping_) return;
        MaybeStartRound();
        if (round_.id != link->done_round && !round_.satisfied && round_.id != 0) break;
        // Woken by a commit or another link; the timeout re-checks the pause.
        changed_.WaitWithTimeout(&mu_, absl::Milliseconds(200));
      }
      id = round_.id;
      size = round_.size;
      note = round_.note;
    }
    absl::StatusOr<std::string> line = Submit(link, size, note);
    const std::string& name = link->witness->name;
    if (!line.ok()) {
      std::string error(line.status().message());
      if (error != link->last_error) LOG(WARNING) << "witness " << name << ": " << error;
      link->last_error = std::move(error);
    } else if (!link->last_error.empty()) {
      LOG(INFO) << "witness " << name << " cosigns again (size " << size << ")";
      link->last_error.clear();
    }
    std::optional<Round> keep;
    {
      absl::MutexLock lock(&mu_);
      link->done_round = id;
      if (round_.id == id) {
        round_.answered++;
        if (line.ok()) round_.lines[name] = *line;
        absl::flat_hash_set<std::string> cosigners;
        for (const auto& [witness, unused] : round_.lines) cosigners.insert(witness);
        if (!round_.satisfied && policy_.Satisfied(cosigners)) {
          round_.satisfied = true;
          keep = round_;
        } else if (round_.satisfied && line.ok()) {
          keep = round_;  // a late cosignature: keep it with the others
        } else if (round_.answered >= links_.size() && !round_.satisfied) {
          retry_at_ = std::chrono::steady_clock::now() + options_.retry_pause;
        }
      }
      changed_.SignalAll();
    }
    if (keep.has_value() && !Keep(*keep)) {
      // Not kept: the round is not over; try again after the pause.
      absl::MutexLock lock(&mu_);
      if (round_.id == id) {
        round_.satisfied = false;
        round_.answered = links_.size();
        retry_at_ = std::chrono::steady_clock::now() + options_.retry_pause;
      }
    }
  }
}

std::optional<int64_t> WitnessCollector::LastLedgerSecond(uint64_t size) const {
  auto entry = ledger_->Get(size - 1);
  v1::Record record;
  if (!entry.ok() || !record.ParseFromString(entry->record())) return std::nullopt;
  return record.ledger_time_unix_ns() / 1'000'000'000;
}

absl::StatusOr<std::string> WitnessCollector::Submit(Link* link, uint64_t size, const std::string& note) {
  uint64_t old = link->known_size;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (old > size) {
      return absl::FailedPreconditionError(
          absl::StrCat("holds size ", old, ", beyond this ledger's checkpoint of size ", size,
                       " (was this ledger's tail rolled back?)"));
    }
    std::string body = absl::StrCat("old ", old, "\n");
    if (old != 0 && old != size) {
      auto proof = ledger_->ConsistencyProof(old, size);
      if (!proof.ok()) return proof.status();
      for (const merkle::Hash& h : *proof) absl::StrAppend(&body, crypto::Base64Encode(merkle::AsBytes(h)), "\n");
    }
    absl::StrAppend(&body, "\n", note);
    {
      absl::MutexLock lock(&mu_);  // Stop() may have come since the round was taken
      if (stopping_) return absl::CancelledError("stopping");
    }
    httplib::Result result = link->client->Post(link->path, body, "text/plain; charset=utf-8");
    if (!result) {
      return absl::UnavailableError(absl::StrCat("POST ", link->path, ": ", httplib::to_string(result.error())));
    }
    if (result->status == 200) {
      auto cosigned = merkle::ParseSignedNote(witness::AddSignatureLines(note, result->body));
      if (!cosigned.ok()) return absl::InvalidArgumentError(absl::StrCat("answer 200: ", cosigned.status().message()));
      auto cosignature = witness::FindCosignature(*cosigned, link->witness->key);
      if (!cosignature.ok()) return absl::UnauthenticatedError(absl::StrCat("answer 200: ", cosignature.status().message()));
      link->known_size = size;
      // A cosignature dated before the records it covers (beyond the clock
      // skew) would make verifiers call this honest log post-dated: such a
      // witness's clock is behind, and its line is not kept.
      if (auto last = LastLedgerSecond(size); last.has_value() &&
          static_cast<int64_t>(cosignature->timestamp) + rules::kClockSkewNanos / 1'000'000'000 < *last) {
        return absl::FailedPreconditionError(absl::StrCat(
            "cosigned size ", size, " at ", cosignature->timestamp, " (POSIX s), before its last record's ledger time ",
            *last, " less the clock skew: the witness's clock is behind; its cosignature is not kept"));
      }
      return cosignature->line + "\n";
    }
    const std::string first_line = result->body.substr(0, std::min<size_t>(result->body.find('\n'), 200));
    if (result->status == 409 && result->get_header_value("Content-Type").rfind("text/x.tlog.size", 0) == 0) {
      uint64_t held = 0;
      if (!merkle::ParseTreeSize(first_line, &held)) return absl::InvalidArgumentError("answer 409 without a decimal size");
      link->known_size = old = held;
      continue;  // again, from the size it holds
    }
    return absl::FailedPreconditionError(
        absl::StrCat("answered ", result->status, " to size ", size, " from old size ", old, ": ", first_line));
  }
  return absl::FailedPreconditionError("its size changed twice during one round");
}

bool WitnessCollector::Keep(const Round& round) {
  std::string cosigned = round.note;
  for (const auto& [name, line] : round.lines) cosigned = witness::AddSignatureLines(cosigned, line);
  // The policy is the judge of what is kept, not the tally above.
  auto checked = policy_.Check(cosigned);
  if (!checked.ok()) {
    LOG(ERROR) << "cosigned checkpoint of size " << round.size << " fails the witness policy: " << checked.status();
    return false;
  }
  // Added to what is stored (a late line comes after the quorum's).
  auto stored = ledger_->Checkpoint(round.size);
  if (stored.ok()) cosigned = witness::AddSignatureLines(*stored, cosigned.substr(cosigned.find("\n\n") + 2));
  if (absl::Status kept = ledger_->AddCosignatures(cosigned); !kept.ok()) {
    LOG(ERROR) << "cannot keep the witnessed checkpoint of size " << round.size << ": " << kept;
    return false;
  }
  uint64_t previous = witnessed_size_.load();
  while (round.size > previous && !witnessed_size_.compare_exchange_weak(previous, round.size)) {
  }
  if (previous == 0) LOG(INFO) << "first witnessed checkpoint: size " << round.size;
  VLOG(1) << "witnessed checkpoint " << round.size << " after "
          << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - round.started)
                 .count()
          << " ms";
  return true;
}

}  // namespace ledger::services
