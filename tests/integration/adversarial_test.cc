// The adversarial suite (issue 8, DESIGN §5a): each attack a hostile insider
// — registrar, member, or a client replaying public bytes — could try, played
// through gRPC against a real ledgerd with real keys, exactly as a client
// written from the .proto files alone would. Each test shows the attack
// refused (with its code and machine-readable reason) or harmless, and then
// that the log still verifies offline (`ledgerctl export` + `ledgerctl
// verify`). What only a hostile *operator* can try (backdating, rewriting) is
// in ledger_test and tamper_test, where a test can hold the operator key.
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/error_detail.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/event/envelope.h"
#include "ledger/rules/limits.h"
#include "ledger/v1/governance_service.grpc.pb.h"
#include "tests/support/ctl_runner.h"
#include "tests/support/ledger_client.h"
#include "tests/support/ledgerd_process.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"

namespace ledger::testing {
namespace {

// Short enough that a test can wait out an identity-change notice.
constexpr int kNoticeSeconds = 3;

// A refusal as the client sees it: the gRPC code and the ErrorDetail reason.
::testing::AssertionResult Refused(const grpc::Status& status, grpc::StatusCode code, v1::Reason reason) {
  if (status.ok()) return ::testing::AssertionFailure() << "accepted; expected " << v1::Reason_Name(reason);
  const v1::ErrorDetail detail = client::DetailOf(status);
  if (status.error_code() != code || detail.reason() != reason) {
    return ::testing::AssertionFailure() << "expected code " << code << " " << v1::Reason_Name(reason) << "; got "
                                         << client::Describe(status);
  }
  return ::testing::AssertionSuccess();
}

class AdversarialTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.set_extra_args({"--identity-notice-seconds", std::to_string(kNoticeSeconds)});
    ASSERT_OK(server_.Start());
    client_ = std::make_unique<LedgerClient>(server_.address());
    ASSERT_OK(client_->Init());
    governance_ = v1::GovernanceService::NewStub(
        grpc::CreateChannel(server_.address(), grpc::InsecureChannelCredentials()));
    auto registrar = LoadRegistrar(server_.data_dir());
    ASSERT_TRUE(registrar.ok()) << registrar.status();
    registrar_ = *registrar;
    for (const char* id : {"trust-a", "trust-b", "trust-c", "nhse"}) {
      auto org = client_->RegisterOrg(registrar_, id);
      ASSERT_TRUE(org.ok()) << org.status();
      orgs_[id] = *org;
    }
  }

  // Every test ends here: whatever the attacks did, the log verifies offline
  // against the operator's public key.
  void TearDown() override {
    if (HasFatalFailure() || client_ == nullptr) return;
    ExportAndVerify();
  }

  // `ledgerctl export`, then `ledgerctl verify` offline (with `verify_flags`):
  // its report.
  std::string ExportAndVerify(const std::vector<std::string>& verify_flags = {}) {
    TempDir dir("adversarial-bundle");
    const std::string bundle = dir.path() + "/bundle";
    CtlResult exported = RunCtl({"--server", server_.address(), "export", "--out", bundle});
    EXPECT_EQ(exported.exit_code, 0) << Describe(exported);
    if (exported.exit_code != 0) return "";
    std::vector<std::string> args = {"verify", bundle, "--operator-key", server_.data_dir() + "/operator.pub.pem"};
    args.insert(args.end(), verify_flags.begin(), verify_flags.end());
    CtlResult verified = RunCtl(args);
    EXPECT_EQ(verified.exit_code, 0) << Describe(verified);
    return verified.out;
  }

  const Org& org(const std::string& id) { return orgs_.at(id); }

  // Signs `fill`ed event as `author` with `key` (default: its first key).
  grpc::Status Act(const Org& author, const std::function<void(v1::EventBody&)>& fill,
                   v1::AppendResponse* response = nullptr, const crypto::PrivateKey* key = nullptr) {
    v1::EventBody body = client_->NewBody(author.id);
    fill(body);
    v1::AppendResponse ignored;
    return client_->AppendEvent(body, key != nullptr ? *key : author.key(), response ? response : &ignored);
  }

  uint64_t TreeSize() {
    auto size = client_->TreeSize();
    EXPECT_TRUE(size.ok()) << size.status();
    return size.ok() ? *size : 0;
  }

  v1::ProposalState Proposal(const std::string& id) {
    grpc::ClientContext context;
    client_->PrepareCall(&context);
    v1::GetProposalRequest request;
    request.set_proposal_id(id);
    v1::ProposalState proposal;
    grpc::Status status = governance_->GetProposal(&context, request, &proposal);
    EXPECT_TRUE(status.ok()) << client::Describe(status);
    return proposal;
  }

  // Forms collective `id` of `members` with `gateways` (each: id, rule kind,
  // deadline seconds), callable by nhse; changes to the collective are called
  // by nhse too. Every member accepts.
  void FormCollective(const std::string& id, const std::vector<std::string>& members,
                      const std::vector<std::tuple<std::string, v1::RuleKind, int>>& gateways,
                      const std::vector<std::string>& reserved = {}) {
    v1::Charter charter;
    charter.set_name(id);
    for (const std::string& m : members) charter.add_founding_members(m);
    for (const auto& [gateway_id, kind, deadline] : gateways) {
      v1::Gateway* g = charter.add_gateways();
      g->set_id(gateway_id);
      g->set_name(gateway_id);
      g->mutable_rule()->set_kind(kind);
      g->add_callers("nhse");
      g->set_deadline_seconds(deadline);
    }
    for (const std::string& r : reserved) charter.add_reserved_categories(r);
    charter.mutable_taper()->add_percent_by_year(100);
    charter.mutable_taper()->add_percent_by_year(50);
    charter.add_amendment_callers("nhse");
    FormCollective(id, charter);
  }

  // Collective `id` under `charter`: its first founder proposes it, every
  // founder accepts.
  void FormCollective(const std::string& id, const v1::Charter& charter) {
    ASSERT_GRPC_OK(Act(org(charter.founding_members(0)), [&](v1::EventBody& b) {
      b.mutable_collective_proposed()->set_collective_id(id);
      *b.mutable_collective_proposed()->mutable_charter() = charter;
    }));
    grpc::ClientContext context;
    client_->PrepareCall(&context);
    v1::GetCollectiveRequest request;
    request.set_collective_id(id);
    v1::CollectiveState collective;
    ASSERT_GRPC_OK(governance_->GetCollective(&context, request, &collective));
    for (const std::string& m : charter.founding_members()) {
      ASSERT_GRPC_OK(Act(org(m), [&](v1::EventBody& b) {
        b.mutable_charter_accepted()->set_collective_id(id);
        b.mutable_charter_accepted()->set_charter_digest(collective.charter_digest());
      }));
    }
  }

  grpc::Status Propose(const Org& proposer, const std::string& collective, const std::string& proposal,
                       const std::string& category = "service-change") {
    return Act(proposer, [&](v1::EventBody& b) {
      auto* p = b.mutable_proposal_submitted();
      p->set_collective_id(collective);
      p->set_proposal_id(proposal);
      p->set_title(proposal);
      p->set_category(category);
    });
  }

  grpc::Status Vote(const Org& voter, const std::string& proposal, const std::string& gateway, v1::Position position,
                    v1::AppendResponse* response = nullptr) {
    return Act(voter, [&](v1::EventBody& b) {
      auto* v = b.mutable_vote_cast();
      v->set_proposal_id(proposal);
      v->set_gateway_id(gateway);
      v->set_position(position);
      v->set_rationale("our position");
    }, response);
  }

  grpc::Status Call(const Org& caller, const std::string& proposal, const std::string& gateway, v1::Outcome outcome) {
    return Act(caller, [&](v1::EventBody& b) {
      auto* c = b.mutable_decision_called();
      c->set_proposal_id(proposal);
      c->set_gateway_id(gateway);
      c->set_outcome(outcome);
      c->set_rationale("members are deadlocked");
    });
  }

  // Waits out the identity notice (ledger time follows the wall clock), then
  // appends something harmless so a commit group runs and writes what fell due.
  void WaitOutNotice() {
    std::this_thread::sleep_for(std::chrono::seconds(kNoticeSeconds) + std::chrono::milliseconds(500));
    auto filler = client_->RegisterOrg(registrar_, absl::StrCat("filler-", ++fillers_));
    ASSERT_TRUE(filler.ok()) << filler.status();
  }

  std::string Describe(const CtlResult& r) { return absl::StrCat(r.command, " exit ", r.exit_code, "\n", r.out, r.err); }

  LedgerdProcess server_;
  std::unique_ptr<LedgerClient> client_;
  std::unique_ptr<v1::GovernanceService::Stub> governance_;
  Org registrar_;
  std::map<std::string, Org> orgs_;
  int fillers_ = 0;
};

v1::EventBody& AddKey(v1::EventBody& b, const std::string& org_id, const crypto::PrivateKey& key) {
  b.mutable_key_added()->set_org_id(org_id);
  b.mutable_key_added()->set_public_key(std::string(key.public_key().raw()));
  return b;
}

// ---------------------------------------------------------------- registrar

TEST_F(AdversarialTest, ARegistrarCannotSignForAMemberWithAKeyItAddedAlone) {
  FormCollective("pact", {"trust-a", "trust-b"}, {{"need", v1::UNANIMITY, 0}});
  ASSERT_GRPC_OK(Propose(org("trust-a"), "pact", "p1"));
  // The registrar adds a key of its own making to trust-b ...
  crypto::PrivateKey forged = crypto::PrivateKey::Generate();
  v1::AppendResponse added;
  ASSERT_GRPC_OK(Act(registrar_, [&](v1::EventBody& b) { AddKey(b, "trust-b", forged); }, &added));
  // ... and votes in trust-b's name with it: the key signs nothing yet.
  Org impostor{"trust-b", {forged}};
  EXPECT_TRUE(Refused(Vote(impostor, "p1", "need", v1::ASSENT), grpc::StatusCode::UNAUTHENTICATED, v1::KEY_PENDING));
  // trust-b sees the pending change and cancels it: the key never signs.
  ASSERT_GRPC_OK(Act(org("trust-b"), [&](v1::EventBody& b) {
    b.mutable_identity_change_cancelled()->set_change_position(added.receipt().position());
    b.mutable_identity_change_cancelled()->set_reason("we asked for no key");
  }));
  WaitOutNotice();
  EXPECT_TRUE(Refused(Vote(impostor, "p1", "need", v1::ASSENT), grpc::StatusCode::UNAUTHENTICATED, v1::KEY_PENDING));
  EXPECT_EQ(Proposal("p1").gateway_states(0).votes_size(), 0);
}

TEST_F(AdversarialTest, AKeyARegistrarAddsAloneSignsOnlyAfterAPublicNoticeAndIsListed) {
  crypto::PrivateKey recovery = crypto::PrivateKey::Generate();
  v1::AppendResponse added;
  ASSERT_GRPC_OK(Act(registrar_, [&](v1::EventBody& b) { AddKey(b, "trust-c", recovery); }, &added));
  WaitOutNotice();  // nobody at trust-c objected: the recovery takes effect, openly
  Org recovered{"trust-c", {recovery}};
  v1::AppendResponse signed_with_it;
  ASSERT_GRPC_OK(Act(recovered, [&](v1::EventBody& b) {
    b.mutable_collective_proposed()->set_collective_id("after-recovery");
    auto* charter = b.mutable_collective_proposed()->mutable_charter();
    charter->set_name("x");
    charter->add_founding_members("trust-c");
    auto* g = charter->add_gateways();
    g->set_id("only");
    g->mutable_rule()->set_kind(v1::MAJORITY);
  }, &signed_with_it));
  // An auditor sees both: the change made without trust-c, and what its key signed.
  CtlResult listed = RunCtl({"--server", server_.address(), "identity-changes", "--json"});
  ASSERT_EQ(listed.exit_code, 0) << Describe(listed);
  EXPECT_NE(listed.out.find(absl::StrCat(added.receipt().position())), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find(absl::StrCat(signed_with_it.receipt().position())), std::string::npos) << listed.out;
}

TEST_F(AdversarialTest, ARegistrarCannotLockAMemberOutOrMergeAwayItsVeto) {
  FormCollective("pact", {"trust-a", "trust-b", "trust-c"}, {{"need", v1::UNANIMITY, 0}});
  ASSERT_GRPC_OK(Propose(org("trust-a"), "pact", "p1"));
  ASSERT_GRPC_OK(Vote(org("trust-b"), "p1", "need", v1::OBJECT));
  // Merging the objector away, and revoking its only key, both wait for it.
  v1::AppendResponse merger, revocation;
  ASSERT_GRPC_OK(Act(registrar_, [&](v1::EventBody& b) {
    b.mutable_organisation_merged()->set_merged_org_id("trust-b");
    b.mutable_organisation_merged()->set_successor_org_id("trust-a");
  }, &merger));
  ASSERT_GRPC_OK(Act(registrar_, [&](v1::EventBody& b) {
    b.mutable_key_revoked()->set_org_id("trust-b");
    b.mutable_key_revoked()->set_key_id(org("trust-b").key().public_key().key_id());
  }, &revocation));
  // trust-b is still itself, its key still signs, and its veto stands.
  v1::ProposalState p1 = Proposal("p1");
  ASSERT_EQ(p1.vetoes_size(), 1);
  EXPECT_EQ(p1.vetoes(0).outcome(), v1::VETO_STANDING);
  for (uint64_t change : {merger.receipt().position(), revocation.receipt().position()}) {
    ASSERT_GRPC_OK(Act(org("trust-b"), [&](v1::EventBody& b) {
      b.mutable_identity_change_cancelled()->set_change_position(change);
      b.mutable_identity_change_cancelled()->set_reason("not agreed");
    }));
  }
  WaitOutNotice();
  EXPECT_EQ(Proposal("p1").vetoes(0).outcome(), v1::VETO_STANDING);
  ASSERT_GRPC_OK(Vote(org("trust-b"), "p1", "need", v1::OBJECT));  // still its own key, still a member
}

TEST_F(AdversarialTest, NobodyChangesTheOperatorsKeyOrMergesIt) {
  const std::string operator_id = client_->info().operator_id();
  crypto::PrivateKey key = crypto::PrivateKey::Generate();
  EXPECT_TRUE(Refused(Act(registrar_, [&](v1::EventBody& b) { AddKey(b, operator_id, key); }),
                      grpc::StatusCode::FAILED_PRECONDITION, v1::OPERATOR_IDENTITY));
  EXPECT_TRUE(Refused(Act(registrar_, [&](v1::EventBody& b) {
                        b.mutable_key_revoked()->set_org_id(operator_id);
                        b.mutable_key_revoked()->set_key_id(client_->operator_key().key_id());
                      }),
                      grpc::StatusCode::FAILED_PRECONDITION, v1::OPERATOR_IDENTITY));
  EXPECT_TRUE(Refused(Act(registrar_, [&](v1::EventBody& b) {
                        b.mutable_organisation_merged()->set_merged_org_id(operator_id);
                        b.mutable_organisation_merged()->set_successor_org_id("trust-a");
                      }),
                      grpc::StatusCode::FAILED_PRECONDITION, v1::OPERATOR_IDENTITY));
}

TEST_F(AdversarialTest, ASmallOrderKeyIsRefusedAtRegistration) {
  std::string identity_point(32, '\0');
  identity_point[0] = 1;  // the neutral element: "verifies" nothing, or everything
  EXPECT_TRUE(Refused(Act(registrar_, [&](v1::EventBody& b) {
                        b.mutable_organisation_registered()->set_org_id("weak");
                        b.mutable_organisation_registered()->set_name("weak");
                        b.mutable_organisation_registered()->add_public_keys(identity_point);
                      }),
                      grpc::StatusCode::INVALID_ARGUMENT, v1::WEAK_KEY));
}

// ---------------------------------------------------------------- mergers

TEST_F(AdversarialTest, AGatewayOpenAtAMergerStaysDecidable) {
  FormCollective("pact", {"trust-a", "trust-b", "trust-c"}, {{"need", v1::UNANIMITY, 0}});
  ASSERT_GRPC_OK(Propose(org("trust-a"), "pact", "p1"));
  ASSERT_GRPC_OK(Vote(org("trust-a"), "p1", "need", v1::ASSENT));
  ASSERT_GRPC_OK(Vote(org("trust-b"), "p1", "need", v1::ASSENT));
  // trust-c merges into trust-b, with both consenting: trust-b already holds a
  // seat, so trust-c's is vacated and the gateway passes on the votes it has.
  v1::AppendResponse merger;
  ASSERT_GRPC_OK(Act(registrar_, [&](v1::EventBody& b) {
    b.mutable_organisation_merged()->set_merged_org_id("trust-c");
    b.mutable_organisation_merged()->set_successor_org_id("trust-b");
  }, &merger));
  for (const char* consenting : {"trust-c", "trust-b"}) {
    ASSERT_GRPC_OK(Act(org(consenting), [&](v1::EventBody& b) {
      b.mutable_identity_change_confirmed()->set_change_position(merger.receipt().position());
    }));
  }
  v1::ProposalState p1 = Proposal("p1");
  ASSERT_EQ(p1.gateway_states(0).status(), v1::GATEWAY_PASSED) << p1.DebugString();
  const v1::Tally& tally = p1.gateway_states(0).tally();
  ASSERT_EQ(tally.seat_changes_size(), 1) << tally.DebugString();
  EXPECT_EQ(tally.seat_changes(0).from(), "trust-c");
  EXPECT_EQ(tally.seat_changes(0).to(), "");
}

// ---------------------------------------------------------------- calls

TEST_F(AdversarialTest, ACallNeedsARealDeadlock) {
  FormCollective("pact", {"trust-a", "trust-b", "trust-c", "nhse"},
                 {{"need", v1::UNANIMITY, 0}, {"final", v1::MAJORITY, 0}});
  ASSERT_GRPC_OK(Propose(org("trust-a"), "pact", "p1"));
  // An elector that is also the caller manufactures an objection ...
  ASSERT_GRPC_OK(Vote(org("nhse"), "p1", "need", v1::OBJECT));
  EXPECT_TRUE(Refused(Call(org("nhse"), "p1", "need", v1::FAIL), grpc::StatusCode::FAILED_PRECONDITION,
                      v1::NO_DEADLOCK));
  // ... and one real objection is not yet a deadlock while others have not voted.
  ASSERT_GRPC_OK(Vote(org("nhse"), "p1", "need", v1::ASSENT));
  ASSERT_GRPC_OK(Vote(org("trust-b"), "p1", "need", v1::OBJECT));
  EXPECT_TRUE(Refused(Call(org("nhse"), "p1", "need", v1::PASS), grpc::StatusCode::FAILED_PRECONDITION,
                      v1::NO_DEADLOCK));
  ASSERT_GRPC_OK(Vote(org("trust-a"), "p1", "need", v1::ASSENT));
  ASSERT_GRPC_OK(Vote(org("trust-c"), "p1", "need", v1::ASSENT));
  ASSERT_GRPC_OK(Call(org("nhse"), "p1", "need", v1::PASS));  // now it is deadlocked: trust-b overruled
  // A majority gateway with an objection, before its lapse, decides itself.
  ASSERT_GRPC_OK(Vote(org("trust-b"), "p1", "final", v1::OBJECT));
  EXPECT_TRUE(Refused(Call(org("nhse"), "p1", "final", v1::PASS), grpc::StatusCode::FAILED_PRECONDITION,
                      v1::NO_DEADLOCK));
}

TEST_F(AdversarialTest, ChangesToTheCollectiveAreCalledOnlyByTheirNamedCallers) {
  // The final gateway's caller (trust-c here) is not named for amendments.
  v1::Charter charter;
  charter.set_name("pact");
  for (const char* m : {"trust-a", "trust-b"}) charter.add_founding_members(m);
  v1::Gateway* g = charter.add_gateways();
  g->set_id("final");
  g->mutable_rule()->set_kind(v1::MAJORITY);
  g->add_callers("trust-c");
  charter.add_amendment_callers("nhse");
  charter.mutable_amendment_rule()->set_kind(v1::UNANIMITY);
  FormCollective("pact", charter);
  ASSERT_GRPC_OK(Act(org("trust-a"), [&](v1::EventBody& b) {
    auto* p = b.mutable_proposal_submitted();
    p->set_collective_id("pact");
    p->set_proposal_id("admit-c");
    p->set_title("admit trust-c");
    p->mutable_admit_member()->set_org_id("trust-c");
  }));
  ASSERT_GRPC_OK(Vote(org("trust-a"), "admit-c", "admission", v1::ASSENT));
  ASSERT_GRPC_OK(Vote(org("trust-b"), "admit-c", "admission", v1::OBJECT));
  EXPECT_TRUE(Refused(Call(org("trust-c"), "admit-c", "admission", v1::PASS), grpc::StatusCode::FAILED_PRECONDITION,
                      v1::NOT_A_CALLER));
  ASSERT_GRPC_OK(Call(org("nhse"), "admit-c", "admission", v1::PASS));
}

// ---------------------------------------------------------------- refusals

TEST_F(AdversarialTest, ARefusedReversalCannotBeReplayedToFrameItsAuthor) {
  FormCollective("pact", {"trust-a", "trust-b"}, {{"need", v1::UNANIMITY, 0}, {"final", v1::MAJORITY, 0}});
  ASSERT_GRPC_OK(Propose(org("trust-a"), "pact", "p1"));
  ASSERT_GRPC_OK(Vote(org("trust-a"), "p1", "need", v1::ASSENT));
  ASSERT_GRPC_OK(Vote(org("trust-b"), "p1", "need", v1::ASSENT));
  // trust-b tries to go back on the locked gateway: refused and recorded.
  v1::EventBody reversal = client_->NewBody("trust-b");
  reversal.mutable_vote_cast()->set_proposal_id("p1");
  reversal.mutable_vote_cast()->set_gateway_id("need");
  reversal.mutable_vote_cast()->set_position(v1::OBJECT);
  const v1::SignedEvent signed_reversal = SealEvent(reversal, org("trust-b").key());
  v1::AppendResponse response;
  EXPECT_TRUE(Refused(client_->Append(signed_reversal, &response), grpc::StatusCode::FAILED_PRECONDITION,
                      v1::GATEWAY_LOCKED));
  const uint64_t size = TreeSize();
  // Anyone can read those signed bytes from the log and send them again: the
  // original refusal answers, and nothing new is blamed on trust-b.
  for (int i = 0; i < 3; ++i) {
    grpc::Status again = client_->Append(signed_reversal, &response);
    EXPECT_TRUE(Refused(again, grpc::StatusCode::FAILED_PRECONDITION, v1::GATEWAY_LOCKED));
  }
  EXPECT_EQ(TreeSize(), size);
}

TEST_F(AdversarialTest, TheDailyCapCannotHideAReversalAttempt) {
  FormCollective("pact", {"trust-a", "trust-b"}, {{"need", v1::UNANIMITY, 0}, {"final", v1::MAJORITY, 0}});
  ASSERT_GRPC_OK(Propose(org("trust-a"), "pact", "p1"));
  ASSERT_GRPC_OK(Vote(org("trust-a"), "p1", "need", v1::ASSENT));
  ASSERT_GRPC_OK(Vote(org("trust-b"), "p1", "need", v1::ASSENT));
  // trust-b burns its daily allowance of recorded refusals on purpose ...
  for (int i = 0; i < 110; ++i) {
    grpc::Status s = Act(org("trust-b"), [&](v1::EventBody& b) {
      b.mutable_vote_cast()->set_proposal_id(absl::StrCat("no-such-", i));
      b.mutable_vote_cast()->set_gateway_id("need");
      b.mutable_vote_cast()->set_position(v1::ASSENT);
    });
    ASSERT_TRUE(Refused(s, grpc::StatusCode::FAILED_PRECONDITION, v1::UNKNOWN_PROPOSAL));
  }
  // ... and then tries to reverse the locked gateway: still on the record.
  const uint64_t size = TreeSize();
  EXPECT_TRUE(Refused(Vote(org("trust-b"), "p1", "need", v1::OBJECT), grpc::StatusCode::FAILED_PRECONDITION,
                      v1::GATEWAY_LOCKED));
  ASSERT_EQ(TreeSize(), size + 1);
  auto record = client_->Get(size);
  ASSERT_TRUE(record.ok()) << record.status();
  v1::Record stored;
  ASSERT_TRUE(stored.ParseFromString(record->record()));
  v1::SignedEvent event;
  ASSERT_TRUE(event.ParseFromString(stored.signed_event()));
  v1::EventBody body;
  ASSERT_TRUE(body.ParseFromString(event.body()));
  ASSERT_TRUE(body.has_submission_refused()) << body.DebugString();
  EXPECT_EQ(body.submission_refused().reason(), v1::GATEWAY_LOCKED);
  EXPECT_EQ(body.submission_refused().dropped_before(), 10u);  // the ten beyond the allowance, counted
}

// ---------------------------------------------------------------- cost

// Issue 9: the loadgen's hostile member (`ledger_loadgen --mode hostile`) as
// a test. One AppendBatch of 1,000 maximal votes on one open gateway,
// alternating, whose last event carries a forged signature: the batch is
// decided in order, all or nothing, so it is refused at its tenth vote (the
// first beyond kMaxPositionChanges) and the forgery after it is never reached
// (nor checked: the answer names the cap, not the signature). Refused only
// because of its own batch, that vote is not recorded; once the member has
// spent its changes, the same batch is refused at its first vote and that
// refusal is recorded, once; the log verifies offline with it.
TEST_F(AdversarialTest, AHostileBatchOfMaximalVotesIsRefusedAtTheCap) {
  FormCollective("pact", {"trust-a", "trust-b", "trust-c"}, {{"need", v1::UNANIMITY, 0}});
  ASSERT_GRPC_OK(Propose(org("trust-a"), "pact", "p1"));
  const std::string rationale(rules::kMaxTextBytes, 'r');
  auto votes = [&](size_t count) {
    std::vector<v1::SignedEvent> batch;
    for (size_t i = 0; i < count; ++i) {
      v1::EventBody body = client_->NewBody("trust-b");
      auto* vote = body.mutable_vote_cast();
      vote->set_proposal_id("p1");
      vote->set_gateway_id("need");
      vote->set_position(i % 2 == 0 ? v1::ASSENT : v1::OBJECT);
      vote->set_rationale(rationale);
      batch.push_back(SealEvent(body, org("trust-b").key()));
    }
    return batch;
  };
  std::vector<v1::SignedEvent> hostile = votes(kMaxBatchEvents);
  std::string forged = hostile.back().signature();
  forged[5] ^= 0x01;
  hostile.back().set_signature(forged);

  const uint64_t size = TreeSize();
  v1::AppendBatchResponse response;
  grpc::Status refused = client_->AppendBatch(hostile, &response);
  ASSERT_TRUE(Refused(refused, grpc::StatusCode::FAILED_PRECONDITION, v1::POSITION_CHANGES_EXHAUSTED));
  EXPECT_EQ(client::DetailOf(refused).batch_index(), static_cast<uint32_t>(rules::kMaxPositionChanges + 1));
  EXPECT_EQ(response.receipts_size(), 0);
  EXPECT_EQ(TreeSize(), size);  // nothing of the batch, and no refusal the log alone would not reproduce
  const v1::ProposalState proposal = Proposal("p1");
  for (const v1::GatewayState& gateway : proposal.gateway_states()) {
    EXPECT_EQ(gateway.votes_size(), 0) << gateway.gateway_id();
  }

  // The member's first vote and its eight changes, in one batch: taken.
  ASSERT_GRPC_OK(client_->AppendBatch(votes(rules::kMaxPositionChanges + 1), &response));
  ASSERT_EQ(TreeSize(), size + rules::kMaxPositionChanges + 1);
  // Now the hostile batch is refused at its first vote, and that is recorded.
  refused = client_->AppendBatch(hostile, &response);
  ASSERT_TRUE(Refused(refused, grpc::StatusCode::FAILED_PRECONDITION, v1::POSITION_CHANGES_EXHAUSTED));
  EXPECT_EQ(client::DetailOf(refused).batch_index(), 0u);
  const uint64_t recorded = TreeSize();
  EXPECT_EQ(recorded, size + rules::kMaxPositionChanges + 2);
  // Sent again: the recorded refusal answers; nothing new is written.
  EXPECT_TRUE(Refused(client_->AppendBatch(hostile, &response), grpc::StatusCode::FAILED_PRECONDITION,
                      v1::POSITION_CHANGES_EXHAUSTED));
  EXPECT_EQ(TreeSize(), recorded);

  // With --bench, the curve operations are counted: a point check for each
  // key the log registers (the operator's, the registrar's, one per member).
  const std::string report = ExportAndVerify({"--bench", "--bench-seconds", "1"});
  EXPECT_NE(report.find("refused attempts 1\n"), std::string::npos) << report;
  EXPECT_EQ(report.find("NOT VERIFIED"), std::string::npos) << report;
  EXPECT_NE(report.find(absl::StrCat(" + ", 2 + orgs_.size(), " point checks (registered keys)")), std::string::npos)
      << report;
}

// AppendBatch takes its request as bytes and decodes it itself: inline up to
// 256 KiB, on the bulk-intake thread beyond. Garbage of either size is
// refused as malformed and changes nothing; a valid batch beyond 256 KiB is
// taken whole, its receipts in order.
TEST_F(AdversarialTest, AppendBatchBytesAreDecodedWhateverTheirSize) {
  grpc::GenericStub generic(grpc::CreateChannel(server_.address(), grpc::InsecureChannelCredentials()));
  const uint64_t size = TreeSize();
  for (size_t bytes : {size_t{64}, size_t{1} << 20}) {
    // 0xff: field 31 with wire type 7, which protobuf does not have.
    const std::string garbage(bytes, '\xff');
    grpc::Slice slice(garbage);
    grpc::ByteBuffer request(&slice, 1), response;
    grpc::ClientContext context;
    client_->PrepareCall(&context);
    std::promise<grpc::Status> done;
    generic.UnaryCall(&context, "/ledger.v1.LedgerService/AppendBatch", grpc::StubOptions(), &request, &response,
                      [&done](grpc::Status status) { done.set_value(std::move(status)); });
    const grpc::Status status = done.get_future().get();
    EXPECT_TRUE(Refused(status, grpc::StatusCode::INVALID_ARGUMENT, v1::MALFORMED)) << bytes << " bytes";
    EXPECT_NE(status.error_message().find("not a valid ledger.v1.AppendBatchRequest"), std::string::npos)
        << status.error_message();
  }
  EXPECT_EQ(TreeSize(), size);

  FormCollective("pact", {"trust-a", "trust-b"}, {{"need", v1::MAJORITY, 0}});
  const uint64_t before = TreeSize();
  std::vector<v1::SignedEvent> batch;
  size_t batch_bytes = 0;
  for (int i = 0; batch_bytes <= (300 << 10); ++i) {
    v1::EventBody body = client_->NewBody("trust-a");
    auto* p = body.mutable_proposal_submitted();
    p->set_collective_id("pact");
    p->set_proposal_id(absl::StrCat("big-", i));
    p->set_title("a proposal with a long summary");
    p->set_category("service-change");
    p->set_summary(std::string(rules::kMaxTextBytes, 's'));
    batch.push_back(SealEvent(body, org("trust-a").key()));
    batch_bytes += batch.back().ByteSizeLong();
  }
  v1::AppendBatchResponse response;
  ASSERT_GRPC_OK(client_->AppendBatch(batch, &response));
  ASSERT_EQ(response.receipts_size(), static_cast<int>(batch.size()));
  for (int i = 0; i < response.receipts_size(); ++i) EXPECT_EQ(response.receipts(i).position(), before + i);
  EXPECT_EQ(TreeSize(), before + batch.size());
  EXPECT_EQ(Proposal(absl::StrCat("big-", batch.size() - 1)).proposal_id(), absl::StrCat("big-", batch.size() - 1));
}

// ---------------------------------------------------------------- time

TEST_F(AdversarialTest, AClientTimeAheadOfTheLedgerIsRefused) {
  // A member that pre-dates its vote into the future (to look timely after
  // a deadline the operator might then be asked to honour) is refused.
  const uint64_t size = TreeSize();
  grpc::Status s = Act(org("trust-a"), [&](v1::EventBody& b) {
    b.set_client_time_unix_ms(b.client_time_unix_ms() + 60LL * 60 * 1000);
    b.mutable_collective_proposed()->set_collective_id("future");
    auto* charter = b.mutable_collective_proposed()->mutable_charter();
    charter->set_name("future");
    charter->add_founding_members("trust-a");
    auto* g = charter->add_gateways();
    g->set_id("only");
    g->mutable_rule()->set_kind(v1::MAJORITY);
  });
  EXPECT_TRUE(Refused(s, grpc::StatusCode::INVALID_ARGUMENT, v1::CLIENT_TIME_AHEAD));
  EXPECT_EQ(TreeSize(), size);
}

// ---------------------------------------------------------------- smaller

TEST_F(AdversarialTest, AReservedCategoryCannotBeSlippedThroughByItsSpelling) {
  FormCollective("pact", {"trust-a", "trust-b"}, {{"need", v1::UNANIMITY, 0}}, {"clinical-location"});
  for (const char* spelling : {"Clinical-location", "CLINICAL_LOCATION", " clinical  location "}) {
    EXPECT_TRUE(Refused(Propose(org("trust-a"), "pact", absl::StrCat("p-", fillers_++), spelling),
                        grpc::StatusCode::FAILED_PRECONDITION, v1::RESERVED_CATEGORY))
        << spelling;
  }
}

TEST_F(AdversarialTest, AnImpactBeyondAnyBudgetCannotOverflowTheTaper) {
  FormCollective("pact", {"trust-a", "trust-b"}, {{"need", v1::MAJORITY, 0}});
  ASSERT_GRPC_OK(Propose(org("trust-a"), "pact", "p1"));
  EXPECT_TRUE(Refused(Act(org("trust-b"), [&](v1::EventBody& b) {
                        b.mutable_impact_declared()->set_proposal_id("p1");
                        b.mutable_impact_declared()->set_annual_impact_pence(INT64_MAX);
                      }),
                      grpc::StatusCode::INVALID_ARGUMENT, v1::MALFORMED));
}

}  // namespace
}  // namespace ledger::testing
