#include "services/audit_service.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "ledger/audit/verifier.h"
#include "ledger/event/refusal.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/store/proposal_evidence.h"
#include "services/grpc_status.h"
#include "services/store_verification.h"
#include "services/worker.h"

namespace ledger::services {
namespace {

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context, const absl::Status& status) {
  auto* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpc(status));
  return reactor;
}

// One Verify call: its worker runs the checks over the store and queues
// messages (a progress message not yet written is replaced by a newer one,
// so the queue stays short); services/worker.h writes them.
class VerifyReactor final : public WorkerStreamReactor<v1::VerifyProgress> {
 public:
  VerifyReactor(grpc::CallbackServerContext* context, const store::Ledger* ledger, ThreadPool* verify_pool,
                std::atomic<int>* active, absl::Duration stall_timeout, uint64_t from, uint64_t to, uint64_t size)
      : WorkerStreamReactor(context, {.stall_timeout = stall_timeout,
                                      // The slot is free before the client can see the answer: a
                                      // client that verifies again at once is not refused by its own
                                      // finished call.
                                      .on_finish = [active] { active->fetch_sub(1); },
                                      .name = "verify"}),
        ledger_(ledger), verify_pool_(verify_pool), from_(from), to_(to), size_(size) {
    StartWorker();
  }

 private:
  void Progress(uint64_t done) {
    v1::VerifyProgress message;
    message.mutable_progress()->set_records_done(done);
    message.mutable_progress()->set_records_total(to_);
    PushReplacing(std::move(message));
  }

  grpc::Status Work() override {
    const auto start = std::chrono::steady_clock::now();
    Progress(0);
    audit::LogVerifier verifier({.operator_key = ledger_->operator_public_key(),
                                 .origin = ledger_->info().origin(),
                                 .pool = verify_pool_,
                                 .report_from = from_,
                                 .on_batch = [&] { Progress(verifier.records()); },
                                 .read_record = [this](uint64_t position) {
                                   return ledger_->store().GetRecord(position);
                                 }});
    absl::Status fed = FeedStoredLog(ledger_->store(), from_, to_, verifier, [this] { return Cancelled(); });
    if (Cancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    if (!fed.ok()) return ToGrpc(fed);
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
      // The server checks its own log: witnessing is for those who do not
      // trust it (ledgerctl verify/audit --witness-policy); marked skipped.
      verifier.CheckWitnessedAtEnd();
    }
    Progress(verifier.records());
    v1::VerifyProgress last;
    v1::VerifyReport& report = *last.mutable_report();
    report = verifier.Report();
    report.set_ledger_id(ledger_->info().ledger_id());
    report.set_to_position(to_);  // the range asked for, even if verification stopped earlier
    report.set_seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    Push(std::move(last));
    return grpc::Status::OK;
  }

  const store::Ledger* ledger_;
  ThreadPool* const verify_pool_;
  const uint64_t from_, to_, size_;
};

}  // namespace

grpc::ServerUnaryReactor* AuditServiceImpl::GetCheckpoint(grpc::CallbackServerContext* context,
                                                          const v1::GetCheckpointRequest* request,
                                                          v1::GetCheckpointResponse* response) {
  if (request->witnessed() && request->tree_size() != 0) {
    return FinishNow(context, absl::InvalidArgumentError("witnessed asks for the latest witnessed checkpoint: "
                                                         "leave tree_size 0"));
  }
  const uint64_t latest = ledger_->size();
  auto note = request->witnessed() ? ledger_->WitnessedCheckpoint() : ledger_->Checkpoint(request->tree_size());
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
  response->set_latest_tree_size(std::max(latest, checkpoint->size));
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
  if (costly_ != nullptr) {
    if (absl::Status allowed = costly_->Check(*context, "ListCheckpoints"); !allowed.ok()) {
      return FinishNow(context, allowed);
    }
  }
  const uint32_t limit = request->limit() == 0 ? 1000 : request->limit();
  if (limit > 10000) {
    return FinishNow(context, absl::InvalidArgumentError(absl::StrCat("limit ", limit, " is over 10000")));
  }
  return FinishOnWorker(context, workers_, [this, request, response, limit] {
    return ledger_->store().ScanCheckpoints(request->from_size(), [&](uint64_t size, std::string_view note) {
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
  });
}

grpc::ServerWriteReactor<v1::VerifyProgress>* AuditServiceImpl::Verify(grpc::CallbackServerContext* context,
                                                                       const v1::VerifyRequest* request) {
  if (costly_ != nullptr) {
    if (absl::Status allowed = costly_->Check(*context, "Verify"); !allowed.ok()) {
      return new FinishedStream<v1::VerifyProgress>(ToGrpc(allowed));
    }
  }
  const uint64_t size = ledger_->size();
  const uint64_t to = request->to_position() == 0 ? size : request->to_position();
  if (to > size) {
    return new FinishedStream<v1::VerifyProgress>(ToGrpc(absl::OutOfRangeError(
        absl::StrCat("to_position ", to, " is beyond the log (", size, " records)"))));
  }
  if (request->from_position() > to || (request->from_position() == to && to != 0)) {
    return new FinishedStream<v1::VerifyProgress>(ToGrpc(absl::InvalidArgumentError(
        absl::StrCat("from_position ", request->from_position(), " must be below to_position ", to))));
  }
  if (verifications_.fetch_add(1) >= max_verifications_) {
    verifications_.fetch_sub(1);
    return new FinishedStream<v1::VerifyProgress>(ToGrpc(Refuse(absl::StatusCode::kResourceExhausted, v1::LIMIT_REACHED,
        absl::StrCat(max_verifications_, " verifications are already running, the most this server allows "
                     "(ledgerd --max-verifications); try again later"))));
  }
  return new VerifyReactor(context, ledger_, verify_pool_, &verifications_, stall_timeout_, request->from_position(), to,
                           size);
}

grpc::ServerUnaryReactor* AuditServiceImpl::VerifyProposal(grpc::CallbackServerContext* context,
                                                           const v1::VerifyProposalRequest* request,
                                                           v1::VerifyProposalResponse* response) {
  return FinishOnWorker(context, workers_, [this, request, response] {
    auto evidence = store::ProposalEvidence(ledger_->store(), request->proposal_id());
    if (!evidence.ok()) return evidence.status();
    *response = *std::move(evidence);
    return absl::OkStatus();
  });
}

}  // namespace ledger::services
