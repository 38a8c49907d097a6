#include "tests/support/ledger_client.h"

#include <atomic>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "ledger/event/envelope.h"
#include "ledger/merkle/tree.h"
#include "services/data_dir.h"

namespace ledger::testing {

absl::StatusOr<Org> LoadRegistrar(const std::string& data_dir) {
  auto key = crypto::ReadPrivateKeyFile(services::DataDirLayout(data_dir).registrar_key);
  if (!key.ok()) return key.status();
  return Org{"registrar", {*std::move(key)}};
}

absl::Status ToAbsl(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      services::Describe(status));
}

absl::StatusOr<std::vector<merkle::Hash>> HashesFromBytes(
    const google::protobuf::RepeatedPtrField<std::string>& bytes) {
  std::vector<merkle::Hash> hashes;
  for (const std::string& b : bytes) {
    auto hash = merkle::HashFromBytes(b);
    if (!hash.ok()) return hash.status();
    hashes.push_back(*hash);
  }
  return hashes;
}

// ---------------------------------------------------------------- client

LedgerClient::LedgerClient(const std::string& address, bool own_connection, bool wait_for_ready,
                           bool fixed_stream_window)
    : wait_for_ready_(wait_for_ready) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  if (own_connection || fixed_stream_window) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  if (fixed_stream_window) args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  channel_ = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  ledger_ = v1::LedgerService::NewStub(channel_);
  audit_ = v1::AuditService::NewStub(channel_);
}

void LedgerClient::PrepareCall(grpc::ClientContext* context) const {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(kCallTimeoutSeconds));
  context->set_wait_for_ready(wait_for_ready_);
}

absl::Status LedgerClient::Init() {
  auto info = GetLedgerInfo();
  if (!info.ok()) return info.status();
  auto key = crypto::PublicKey::FromRaw(info->operator_public_key());
  if (!key.ok()) return key.status();
  info_ = *std::move(info);
  operator_key_ = *std::move(key);
  return absl::OkStatus();
}

absl::StatusOr<v1::GetLedgerInfoResponse> LedgerClient::GetLedgerInfo() {
  grpc::ClientContext context;
  PrepareCall(&context);
  v1::GetLedgerInfoResponse response;
  grpc::Status status = ledger_->GetLedgerInfo(&context, v1::GetLedgerInfoRequest(), &response);
  if (!status.ok()) return ToAbsl(status);
  return response;
}

absl::StatusOr<uint64_t> LedgerClient::TreeSize() {
  auto info = GetLedgerInfo();
  if (!info.ok()) return info.status();
  return info->tree_size();
}

v1::EventBody LedgerClient::NewBody(const std::string& author) const {
  static std::atomic<uint64_t> counter{0};
  v1::EventBody body;
  body.set_ledger_id(info_.ledger_id());
  body.set_author(author);
  body.set_idempotency_key(absl::StrCat("it-", counter.fetch_add(1)));
  body.set_client_time_unix_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
  return body;
}

grpc::Status LedgerClient::Append(const v1::SignedEvent& event, v1::AppendResponse* response) {
  grpc::ClientContext context;
  PrepareCall(&context);
  v1::AppendRequest request;
  *request.mutable_event() = event;
  return ledger_->Append(&context, request, response);
}

grpc::Status LedgerClient::AppendEvent(const v1::EventBody& body, const crypto::PrivateKey& key,
                                       v1::AppendResponse* response) {
  return Append(SealEvent(body, key), response);
}

grpc::Status LedgerClient::AppendBatch(const std::vector<v1::SignedEvent>& events,
                                       v1::AppendBatchResponse* response) {
  grpc::ClientContext context;
  PrepareCall(&context);
  v1::AppendBatchRequest request;
  for (const v1::SignedEvent& event : events) *request.add_events() = event;
  return ledger_->AppendBatch(&context, request, response);
}

absl::StatusOr<Org> LedgerClient::RegisterOrg(const Org& registrar, const std::string& org_id,
                                              int key_count, v1::Receipt* receipt) {
  Org org{org_id, {}};
  v1::EventBody body = NewBody(registrar.id);
  v1::OrganisationRegistered* event = body.mutable_organisation_registered();
  event->set_org_id(org_id);
  event->set_name(absl::StrCat("Organisation ", org_id));
  event->set_kind("nhs-trust");
  for (int i = 0; i < key_count; ++i) {
    org.keys.push_back(crypto::PrivateKey::Generate());
    event->add_public_keys(std::string(org.keys.back().public_key().raw()));
  }
  v1::AppendResponse response;
  grpc::Status status = AppendEvent(body, registrar.key(), &response);
  if (!status.ok()) return ToAbsl(status);
  if (receipt != nullptr) *receipt = response.receipt();
  return org;
}

v1::SignedEvent LedgerClient::KeyAddedEvent(const Org& signer, const std::string& org_id,
                                            const crypto::PrivateKey& new_key) const {
  v1::EventBody body = NewBody(signer.id);
  body.mutable_key_added()->set_org_id(org_id);
  body.mutable_key_added()->set_public_key(std::string(new_key.public_key().raw()));
  return SealEvent(body, signer.key());
}

grpc::Status LedgerClient::Get(uint64_t position, v1::GetResponse* response) {
  grpc::ClientContext context;
  PrepareCall(&context);
  v1::GetRequest request;
  request.set_position(position);
  return ledger_->Get(&context, request, response);
}

absl::StatusOr<v1::RecordEntry> LedgerClient::Get(uint64_t position) {
  v1::GetResponse response;
  grpc::Status status = Get(position, &response);
  if (!status.ok()) return ToAbsl(status);
  return response.entry();
}

absl::StatusOr<merkle::Checkpoint> LedgerClient::OpenCheckpoint(const std::string& note) const {
  if (!operator_key_.has_value()) return absl::FailedPreconditionError("LedgerClient::Init not called");
  return merkle::OpenCheckpoint(note, info_.origin(), *operator_key_);
}

absl::StatusOr<merkle::Checkpoint> LedgerClient::GetCheckpoint(uint64_t tree_size,
                                                               std::string* note) {
  grpc::ClientContext context;
  PrepareCall(&context);
  v1::GetCheckpointRequest request;
  request.set_tree_size(tree_size);
  v1::GetCheckpointResponse response;
  grpc::Status status = audit_->GetCheckpoint(&context, request, &response);
  if (!status.ok()) return ToAbsl(status);
  auto checkpoint = OpenCheckpoint(response.note());
  if (!checkpoint.ok()) return checkpoint.status();
  if (checkpoint->size != response.tree_size() ||
      merkle::AsBytes(checkpoint->root) != response.root_hash() ||
      checkpoint->origin != response.origin()) {
    return absl::InternalError("GetCheckpoint fields differ from its signed note");
  }
  if (note != nullptr) *note = response.note();
  return checkpoint;
}

grpc::Status LedgerClient::GetInclusionProof(uint64_t position, uint64_t tree_size,
                                             v1::InclusionProofResponse* response) {
  grpc::ClientContext context;
  PrepareCall(&context);
  v1::InclusionProofRequest request;
  request.set_position(position);
  request.set_tree_size(tree_size);
  return audit_->GetInclusionProof(&context, request, response);
}

absl::Status LedgerClient::VerifyIncluded(uint64_t position, const std::string& record,
                                          const merkle::Checkpoint& checkpoint) {
  v1::InclusionProofResponse response;
  grpc::Status status = GetInclusionProof(position, checkpoint.size, &response);
  if (!status.ok()) return ToAbsl(status);
  if (response.leaf_index() != position || response.tree_size() != checkpoint.size) {
    return absl::InternalError(absl::StrCat("proof is for leaf ", response.leaf_index(), " of ",
                                            response.tree_size(), ", asked for ", position, " of ",
                                            checkpoint.size));
  }
  auto proof = HashesFromBytes(response.proof());
  if (!proof.ok()) return proof.status();
  return merkle::VerifyInclusion(merkle::HashLeaf(record), position, checkpoint.size, *proof,
                                 checkpoint.root);
}

}  // namespace ledger::testing
