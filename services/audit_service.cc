#include "services/audit_service.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "ledger/audit/verifier.h"
#include "ledger/crypto/sha256.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/event/envelope.h"
#include "ledger/store/queries.h"
#include "services/grpc_status.h"

namespace ledger::services {
namespace {

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context, const absl::Status& status) {
  auto* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpc(status));
  return reactor;
}

// A Verify call refused before any work: finishes at once.
class FinishedWriter final : public grpc::ServerWriteReactor<v1::VerifyProgress> {
 public:
  explicit FinishedWriter(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

void ToProto(const audit::VerifyReport& r, uint64_t from, uint64_t to, v1::VerifyReport* out) {
  out->set_verified(r.ok());
  for (const audit::Check& c : r.checks) {
    v1::VerifyCheck* check = out->add_checks();
    check->set_name(c.name);
    check->set_meaning(c.meaning);
    check->set_passed(c.passed);
    check->set_completed(c.completed);
    if (c.first_failing_position.has_value()) check->set_first_failing_position(*c.first_failing_position);
    check->set_detail(c.detail);
  }
  out->set_ledger_id(r.ledger_id);
  out->set_from_position(from);
  out->set_to_position(to);
  std::string root;
  if (crypto::FromHex(r.root_hex, &root)) out->set_root_hash(root);
  out->set_records(r.records - std::min(r.records, from));
  out->set_checkpoints(r.checkpoints);
  out->set_organisations(r.organisations);
  out->set_collectives(r.collectives);
  out->set_proposals(r.proposals);
  out->set_gateways_locked(r.gateways_locked);
  out->set_vetoes(r.vetoes);
  out->set_calls(r.calls);
  out->set_refused_attempts(r.refused_attempts);
  for (const audit::RefusedAttempt& a : r.reversal_attempts) {
    v1::VerifyRefusedAttempt* attempt = out->add_reversal_attempts();
    attempt->set_position(a.position);
    attempt->set_ledger_time_unix_ns(a.ledger_time_unix_ns);
    attempt->set_org_id(a.org_id);
    attempt->set_key_id(a.key_id);
    attempt->set_proposal_id(a.proposal_id);
    attempt->set_gateway_id(a.gateway_id);
    v1::Reason reason = v1::REASON_UNSPECIFIED;
    v1::Reason_Parse(a.reason, &reason);
    attempt->set_reason(reason);
  }
  out->set_seconds(r.seconds);
  out->set_threads(r.threads);
}

// One Verify call: a worker thread runs the checks over the store and queues
// messages; the reactor writes them one at a time (progress messages not yet
// written are replaced by newer ones, so the queue stays short).
class VerifyReactor final : public grpc::ServerWriteReactor<v1::VerifyProgress> {
 public:
  VerifyReactor(const store::Ledger* ledger, std::atomic<int>* active, uint64_t from, uint64_t to, uint64_t size)
      : ledger_(ledger), active_(active), from_(from), to_(to), size_(size) {
    worker_ = std::thread([this] { Run(); });
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      if (!ok) {
        cancelled_ = true;  // the client is gone
        queue_.clear();
      }
    }
    Pump();
  }
  void OnCancel() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancelled_ = true;
      queue_.clear();
    }
    Pump();
  }
  void OnDone() override {
    // Finish may complete inline on the worker thread; it touches nothing
    // after calling Finish.
    if (worker_.get_id() == std::this_thread::get_id()) {
      worker_.detach();
    } else {
      worker_.join();
    }
    active_->fetch_sub(1);
    delete this;
  }

 private:
  bool cancelled() {
    std::lock_guard<std::mutex> lock(mu_);
    return cancelled_;
  }

  void Push(v1::VerifyProgress message) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (cancelled_) return;
      if (message.has_progress() && !queue_.empty() && queue_.back().has_progress()) {
        queue_.back() = std::move(message);
      } else {
        queue_.push_back(std::move(message));
      }
    }
    Pump();
  }

  void Progress(uint64_t done) {
    v1::VerifyProgress message;
    message.mutable_progress()->set_records_done(done);
    message.mutable_progress()->set_records_total(to_);
    Push(std::move(message));
  }

  // Starts the next write, or finishes once the worker is done and
  // everything is written. Called without mu_ held: StartWrite and Finish
  // may run reactions inline.
  void Pump() {
    enum { kNothing, kWrite, kFinish } action = kNothing;
    grpc::Status status;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (writing_ || finished_) return;
      if (!queue_.empty() && !cancelled_) {
        current_ = std::move(queue_.front());
        queue_.pop_front();
        writing_ = true;
        action = kWrite;
      } else if (worker_done_) {
        finished_ = true;
        status = cancelled_ && final_status_.ok() ? grpc::Status(grpc::StatusCode::CANCELLED, "cancelled")
                                                  : final_status_;
        action = kFinish;
      }
    }
    if (action == kWrite) StartWrite(&current_);
    if (action == kFinish) Finish(status);  // `this` may be gone after this
  }

  void Complete(grpc::Status status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      worker_done_ = true;
      final_status_ = std::move(status);
    }
    Pump();
  }

  void Run() {
    const auto start = std::chrono::steady_clock::now();
    Progress(0);
    audit::LogVerifier verifier({.operator_key = ledger_->operator_public_key(),
                                 .origin = ledger_->info().origin(),
                                 .threads = 2,
                                 .report_from = from_,
                                 .on_batch = [&] { Progress(verifier.records()); }});
    // Signed checkpoints whose tree ends inside the range, a page at a time.
    std::deque<std::pair<uint64_t, std::string>> checkpoints;
    uint64_t next_checkpoint = from_ + 1;
    bool checkpoints_done = false;
    absl::Status checkpoint_error;
    auto refill = [&] {
      if (!checkpoints.empty() || checkpoints_done) return;
      bool more = false;
      absl::Status s = ledger_->store().ScanCheckpoints(next_checkpoint, [&](uint64_t size, std::string_view note) {
        if (size > to_) return false;
        if (checkpoints.size() == 1000) {
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
    absl::Status scanned = ledger_->store().ScanRecords(0, to_, [&](uint64_t position, std::string_view bytes) {
      if (cancelled() || !checkpoint_error.ok()) return false;
      if (!verifier.AddRecord(std::string(bytes))) return false;
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
    if (cancelled()) return Complete(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
    if (!scanned.ok()) return Complete(ToGrpc(scanned));
    if (!checkpoint_error.ok()) return Complete(ToGrpc(checkpoint_error));
    if (verifier.Flush()) {
      if (verifier.records() != to_) {
        verifier.Fail(audit::CheckId::kDensity, verifier.records(),
                      absl::StrCat("the store holds ", verifier.records(), " records; expected ", to_));
      } else if (to_ == size_ && verifier.last_checkpoint_size() != to_) {
        verifier.Fail(audit::CheckId::kIntegrity, to_, "no signed checkpoint covers the last records");
      } else if (to_ == size_) {
        // Inside the log the next records may still owe system events.
        if (auto s = verifier.FinishReplay(); !s.ok()) {
          verifier.Fail(audit::CheckId::kReplay, to_, std::string(s.message()));
        }
      }
    }
    Progress(verifier.records());
    audit::VerifyReport report = verifier.Report();
    report.ledger_id = ledger_->info().ledger_id();
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    v1::VerifyProgress last;
    ToProto(report, from_, to_, last.mutable_report());
    Push(std::move(last));
    Complete(grpc::Status::OK);
  }

  const store::Ledger* ledger_;
  std::atomic<int>* active_;
  const uint64_t from_, to_, size_;
  std::thread worker_;

  std::mutex mu_;
  std::deque<v1::VerifyProgress> queue_;
  v1::VerifyProgress current_;  // the write in flight
  bool writing_ = false;
  bool worker_done_ = false;
  bool finished_ = false;
  bool cancelled_ = false;
  grpc::Status final_status_;
};

// The record at `position`, decoded.
absl::StatusOr<v1::EventBody> BodyAt(const store::Store& store, uint64_t position) {
  auto bytes = store.GetRecord(position);
  if (!bytes.ok()) return bytes.status();
  auto record = DecodeRecord(*bytes, position);
  if (!record.ok()) return record.status();
  auto envelope = DecodeStoredEvent(*record);
  if (!envelope.ok()) return envelope.status();
  return envelope->body;
}

}  // namespace

grpc::ServerUnaryReactor* AuditServiceImpl::GetCheckpoint(grpc::CallbackServerContext* context,
                                                          const v1::GetCheckpointRequest* request,
                                                          v1::GetCheckpointResponse* response) {
  auto note = ledger_->Checkpoint(request->tree_size());
  if (!note.ok()) return FinishNow(context, note.status());
  // Opening our own note checks it was not altered on disk.
  auto checkpoint = merkle::OpenCheckpoint(*note, ledger_->info().origin(),
                                           ledger_->operator_public_key());
  if (!checkpoint.ok()) {
    return FinishNow(context, absl::DataLossError(absl::StrCat(
                                  "stored checkpoint of size ", request->tree_size(),
                                  " does not verify: ", checkpoint.status().message())));
  }
  response->set_note(*note);
  response->set_tree_size(checkpoint->size);
  response->set_root_hash(std::string(merkle::AsBytes(checkpoint->root)));
  response->set_operator_public_key(std::string(ledger_->operator_public_key().raw()));
  response->set_origin(ledger_->info().origin());
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AuditServiceImpl::GetInclusionProof(
    grpc::CallbackServerContext* context, const v1::InclusionProofRequest* request,
    v1::InclusionProofResponse* response) {
  const uint64_t size = request->tree_size() == 0 ? ledger_->size() : request->tree_size();
  auto proof = ledger_->InclusionProof(request->position(), size);
  if (!proof.ok()) return FinishNow(context, proof.status());
  response->set_leaf_index(request->position());
  response->set_tree_size(size);
  for (const merkle::Hash& hash : *proof) response->add_proof(std::string(merkle::AsBytes(hash)));
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AuditServiceImpl::GetConsistencyProof(
    grpc::CallbackServerContext* context, const v1::ConsistencyProofRequest* request,
    v1::ConsistencyProofResponse* response) {
  const uint64_t to = request->to_size() == 0 ? ledger_->size() : request->to_size();
  auto proof = ledger_->ConsistencyProof(request->from_size(), to);
  if (!proof.ok()) return FinishNow(context, proof.status());
  response->set_from_size(request->from_size());
  response->set_to_size(to);
  for (const merkle::Hash& hash : *proof) response->add_proof(std::string(merkle::AsBytes(hash)));
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AuditServiceImpl::ListCheckpoints(grpc::CallbackServerContext* context,
                                                            const v1::ListCheckpointsRequest* request,
                                                            v1::ListCheckpointsResponse* response) {
  const uint32_t limit = request->limit() == 0 ? 1000 : request->limit();
  if (limit > 10000) {
    return FinishNow(context, absl::InvalidArgumentError(absl::StrCat("limit ", limit, " is over 10000")));
  }
  absl::Status scanned = ledger_->store().ScanCheckpoints(request->from_size(), [&](uint64_t size, std::string_view note) {
    if (request->to_size() != 0 && size >= request->to_size()) return false;
    if (static_cast<uint32_t>(response->checkpoints_size()) == limit) {
      response->set_next_from_size(size);
      return false;
    }
    v1::CheckpointNote* out = response->add_checkpoints();
    out->set_tree_size(size);
    out->set_note(std::string(note));
    return true;
  });
  return FinishNow(context, scanned);
}

grpc::ServerWriteReactor<v1::VerifyProgress>* AuditServiceImpl::Verify(grpc::CallbackServerContext* context,
                                                                       const v1::VerifyRequest* request) {
  const uint64_t size = ledger_->size();
  const uint64_t to = request->to_position() == 0 ? size : request->to_position();
  if (to > size) {
    return new FinishedWriter(ToGrpc(absl::OutOfRangeError(
        absl::StrCat("to_position ", to, " is beyond the log (", size, " records)"))));
  }
  if (request->from_position() > to || (request->from_position() == to && to != 0)) {
    return new FinishedWriter(ToGrpc(absl::InvalidArgumentError(
        absl::StrCat("from_position ", request->from_position(), " must be below to_position ", to))));
  }
  if (verifications_.fetch_add(1) >= kMaxVerifications) {
    verifications_.fetch_sub(1);
    return new FinishedWriter(ToGrpc(absl::ResourceExhaustedError(
        absl::StrCat(kMaxVerifications, " verifications are already running; try again later"))));
  }
  return new VerifyReactor(ledger_, &verifications_, request->from_position(), to, size);
}

grpc::ServerUnaryReactor* AuditServiceImpl::VerifyProposal(grpc::CallbackServerContext* context,
                                                           const v1::VerifyProposalRequest* request,
                                                           v1::VerifyProposalResponse* response) {
  const store::Store& store = ledger_->store();
  store::Queries queries(&store);
  auto proposal = queries.Proposal(request->proposal_id());
  if (!proposal.ok()) return FinishNow(context, proposal.status());
  response->set_proposal_id(proposal->proposal_id());
  response->set_collective_id(proposal->collective_id());
  response->set_status(proposal->status());
  response->set_submitted_at(proposal->submitted_at());

  // Refused attempts on this proposal.
  v1::QueryFilter filter;
  filter.set_proposal_id(proposal->proposal_id());
  filter.set_from_position(proposal->submitted_at());
  filter.set_limit(1000);
  while (true) {
    auto page = queries.Refusals(filter);
    if (!page.ok()) return FinishNow(context, page.status());
    for (const v1::RefusalView& r : page->refusals()) {
      v1::VerifyRefusedAttempt* a = response->add_refused_attempts();
      a->set_position(r.position());
      a->set_ledger_time_unix_ns(r.ledger_time_unix_ns());
      a->set_org_id(r.org_id());
      a->set_key_id(r.key_id());
      a->set_proposal_id(r.proposal_id());
      a->set_gateway_id(r.gateway_id());
      a->set_reason(r.reason());
    }
    if (page->next_page_token().empty()) break;
    filter.set_page_token(page->next_page_token());
  }

  // Every attempt at every gateway: earlier ones (cleared by revisits) first.
  std::vector<std::pair<const v1::GatewayState*, bool>> attempts;
  for (const v1::GatewayState& g : proposal->superseded()) attempts.emplace_back(&g, true);
  for (const v1::GatewayState& g : proposal->gateway_states()) attempts.emplace_back(&g, false);

  // The accepted records about this proposal, decoded once.
  std::map<uint64_t, v1::EventBody> history;
  for (uint64_t position : proposal->history()) {
    auto body = BodyAt(store, position);
    if (!body.ok()) return FinishNow(context, body.status());
    history.emplace(position, *std::move(body));
  }

  std::vector<uint64_t> positions{proposal->submitted_at()};
  bool intact = true;
  for (size_t i = 0; i < attempts.size(); ++i) {
    const v1::GatewayState& g = *attempts[i].first;
    v1::GatewayLockEvidence* e = response->add_gateways();
    e->set_gateway_id(g.gateway_id());
    e->set_status(g.status());
    e->set_superseded(attempts[i].second);
    e->set_opened_at(g.opened_at());
    e->set_called_at(g.called_at());
    *e->mutable_tally() = g.tally();
    uint64_t reopened_at = 0;
    for (size_t j = i + 1; j < attempts.size(); ++j) {
      if (attempts[j].first->gateway_id() == g.gateway_id()) {
        reopened_at = attempts[j].first->opened_at();
        break;
      }
    }
    e->set_reopened_at(reopened_at);
    const bool locked = g.status() == v1::GATEWAY_PASSED;
    e->set_locked(locked);
    if (locked) {
      e->set_locked_at(g.decided_at());
      positions.push_back(g.decided_at());
    }
    if (g.called_at() != 0) positions.push_back(g.called_at());
    for (const std::string& member : g.electorate()) {
      v1::MemberPositionAtLock* m = e->add_positions();
      m->set_org_id(member);
      for (const v1::VoteRecord& vote : g.votes()) {  // later votes replace earlier ones
        if (vote.org_id() != member || (locked && vote.at() > g.decided_at())) continue;
        m->set_voted(true);
        m->set_position(vote.position());
        m->set_at(vote.at());
      }
      if (m->voted()) positions.push_back(m->at());
    }
    if (locked) {
      for (auto it = history.upper_bound(g.decided_at()); it != history.end(); ++it) {
        if (reopened_at != 0 && it->first >= reopened_at) break;
        const v1::EventBody& body = it->second;
        const bool touches =
            (body.has_vote_cast() && body.vote_cast().proposal_id() == proposal->proposal_id() &&
             body.vote_cast().gateway_id() == g.gateway_id()) ||
            (body.has_decision_called() && body.decision_called().proposal_id() == proposal->proposal_id() &&
             body.decision_called().gateway_id() == g.gateway_id());
        if (touches) {
          e->add_touched_after_lock(it->first);
          positions.push_back(it->first);
          intact = false;
        }
      }
    }
    for (const v1::VerifyRefusedAttempt& a : response->refused_attempts()) {
      if (a.gateway_id() != g.gateway_id() || a.position() < g.opened_at()) continue;
      if (reopened_at != 0 && a.position() >= reopened_at) continue;
      e->add_refused_attempts(a.position());
    }
  }
  for (const v1::VerifyRefusedAttempt& a : response->refused_attempts()) positions.push_back(a.position());
  response->set_intact(intact);
  std::sort(positions.begin(), positions.end());
  positions.erase(std::unique(positions.begin(), positions.end()), positions.end());
  for (uint64_t p : positions) response->add_positions_to_prove(p);
  return FinishNow(context, absl::OkStatus());
}

}  // namespace ledger::services
