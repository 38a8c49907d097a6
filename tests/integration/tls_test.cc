// TLS end to end: a real ledgerd serving mutual TLS with certificates made
// here by the openssl CLI (a CA, a server certificate for 127.0.0.1, and two
// client certificates, CN "auditor-a" and CN "member-b"), with
// --costly-rpc-clients auditor-a; ledgerctl talks to it as a user would.
//
// Checked: ledgerctl with --tls-ca and a client certificate reads; without
// TLS it fails, saying to give --tls-ca; the listed client may Verify, a
// client not listed gets PERMISSION_DENIED naming the RPC and its identity on
// Verify, ListCheckpoints (export) and a filtered Read, but still reads a
// page; the monitor refuses to trust a key on first use unless told; ledgerd
// refuses the list without mutual TLS; bad TLS flags are clear errors; the
// client library's TLS channel carries GovernanceService answers with their
// server-side timing (trailing metadata client::kServerTimingMetadata); Backup
// is denied to a client not listed.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/channel.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "ledger/v1/governance_service.grpc.pb.h"
#include "tests/support/ctl_runner.h"
#include "tests/support/ledgerd_process.h"
#include "tests/support/temp_dir.h"

namespace ledger::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kOpenSsl[] = "openssl";
constexpr int kOpenSslTimeoutSeconds = 60;

// Runs `openssl args...` (found on PATH through /usr/bin/env); fails the test
// with its output if it does not exit 0.
::testing::AssertionResult OpenSsl(std::vector<std::string> args) {
  args.insert(args.begin(), {"/usr/bin/env", kOpenSsl});
  CtlResult r = RunProgram(args, kOpenSslTimeoutSeconds);
  if (r.exit_code == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << r;
}

// A P-256 key and a certificate for `subject` signed by the CA in `dir`
// (ca.pem, ca.key), with `extensions` (an openssl extension-file body).
::testing::AssertionResult IssueCertificate(const std::string& dir, const std::string& name,
                                            const std::string& subject, const std::string& extensions,
                                            int serial) {
  const std::string base = absl::StrCat(dir, "/", name);
  if (auto r = OpenSsl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", base + ".key", "-out", base + ".csr", "-subj", subject});
      !r) {
    return r;
  }
  std::ofstream(base + ".ext") << extensions << "\n";
  return OpenSsl({"x509", "-req", "-in", base + ".csr", "-CA", dir + "/ca.pem", "-CAkey", dir + "/ca.key",
                  "-set_serial", std::to_string(serial), "-days", "2", "-extfile", base + ".ext", "-out",
                  base + ".pem"});
}

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new TempDir("ledger-tls-test");
    const std::string& dir = pki_->path();
    ASSERT_TRUE(OpenSsl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                         "-keyout", dir + "/ca.key", "-out", dir + "/ca.pem", "-days", "2", "-subj",
                         "/CN=ledger test CA"}));
    ASSERT_TRUE(IssueCertificate(dir, "server", "/CN=ledgerd",
                                 "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth", 2));
    ASSERT_TRUE(IssueCertificate(dir, "auditor-a", "/CN=auditor-a", "extendedKeyUsage=clientAuth", 3));
    ASSERT_TRUE(IssueCertificate(dir, "member-b", "/CN=member-b", "extendedKeyUsage=clientAuth", 4));
    // A second CA, to show a server certificate that does not chain to it
    // is refused.
    ASSERT_TRUE(OpenSsl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                         "-keyout", dir + "/other-ca.key", "-out", dir + "/other-ca.pem", "-days", "2", "-subj",
                         "/CN=some other CA"}));
  }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  void SetUp() override {
    ASSERT_FALSE(HasFatalFailure());
    server_.set_extra_args({"--tls-cert", Pki("server.pem"), "--tls-key", Pki("server.key"), "--tls-client-ca",
                            Pki("ca.pem"), "--costly-rpc-clients", "auditor-a, auditor-c"});
    absl::Status started = server_.Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  static std::string Pki(const std::string& file) { return absl::StrCat(pki_->path(), "/", file); }

  // ledgerctl over TLS as client `who` ("" for no client certificate).
  CtlResult CtlAs(const std::string& who, std::vector<std::string> args) {
    std::vector<std::string> all = {"--server", server_.address(), "--tls-ca", Pki("ca.pem")};
    if (!who.empty()) all.insert(all.end(), {"--tls-cert", Pki(who + ".pem"), "--tls-key", Pki(who + ".key")});
    all.insert(all.end(), args.begin(), args.end());
    return RunCtl(all);
  }

  static TempDir* pki_;
  LedgerdProcess server_;
};

TempDir* TlsTest::pki_ = nullptr;

TEST_F(TlsTest, ClientWithTheCaAndACertificateReads) {
  CtlResult r = CtlAs("member-b", {"read"});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_TRUE(absl::StrContains(r.out, "genesis")) << r;
  // The TLS flags may also follow the command, like --server.
  r = RunCtl({"checkpoint", "--server", server_.address(), "--tls-ca", Pki("ca.pem"), "--tls-cert",
              Pki("auditor-a.pem"), "--tls-key", Pki("auditor-a.key")});
  EXPECT_TRUE(Succeeded(r));
}

TEST_F(TlsTest, PlaintextClientFailsSayingToGiveTheCa) {
  CtlResult r = RunCtl({"--server", server_.address(), "read"}, 30);
  EXPECT_TRUE(Failed(r, 1, "UNAVAILABLE")) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "if ledgerd serves TLS, give --tls-ca FILE")) << r;
}

TEST_F(TlsTest, ServerNotSignedByTheGivenCaIsRefused) {
  CtlResult r = RunCtl({"--server", server_.address(), "--tls-ca", Pki("other-ca.pem"), "--tls-cert",
                        Pki("auditor-a.pem"), "--tls-key", Pki("auditor-a.key"), "read"},
                       30);
  EXPECT_TRUE(Failed(r, 1, "UNAVAILABLE")) << r;
  EXPECT_FALSE(absl::StrContains(r.err, "give --tls-ca")) << r;  // it was given
}

TEST_F(TlsTest, MutualTlsServerRefusesAClientWithoutACertificate) {
  CtlResult r = CtlAs("", {"read"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "Read at ")) << r;
}

TEST_F(TlsTest, ListedClientMayVerify) {
  CtlResult r = CtlAs("auditor-a", {"verify-server"});
  EXPECT_TRUE(Succeeded(r));
  r = CtlAs("auditor-a", {"read", "--kind", "genesis"});
  EXPECT_TRUE(Succeeded(r));
  const std::string bundle = absl::StrCat(server_.data_dir(), "/../export.bundle");
  r = CtlAs("auditor-a", {"export", "--out", bundle});
  EXPECT_TRUE(Succeeded(r));
  EXPECT_TRUE(fs::exists(bundle));
}

// Backup (ledgerctl backup) is a costly RPC: an unlisted client is denied and
// nothing is written; a listed one gets the backup.
TEST_F(TlsTest, BackupIsForListedClientsOnly) {
  const std::string denied = absl::StrCat(server_.data_dir(), "/../denied-backup");
  CtlResult r = CtlAs("member-b", {"backup", "--out", denied});
  EXPECT_TRUE(Failed(r, 1, "PERMISSION_DENIED")) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "Backup is restricted")) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "\"member-b\"")) << r;
  EXPECT_FALSE(fs::exists(denied));
  EXPECT_FALSE(fs::exists(denied + ".partial"));
  const std::string allowed = absl::StrCat(server_.data_dir(), "/../allowed-backup");
  r = CtlAs("auditor-a", {"backup", "--out", allowed});
  EXPECT_TRUE(Succeeded(r)) << r;
  EXPECT_TRUE(fs::exists(allowed + "/MANIFEST.json"));
}

TEST_F(TlsTest, ClientNotListedIsDeniedTheCostlyRpcsButReadsAPage) {
  CtlResult r = CtlAs("member-b", {"verify-server"});
  EXPECT_TRUE(Failed(r, 1, "PERMISSION_DENIED")) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "Verify is restricted")) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "\"member-b\"")) << r;

  r = CtlAs("member-b", {"read", "--author", "registrar"});
  EXPECT_TRUE(Failed(r, 1, "PERMISSION_DENIED")) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "Read with filters")) << r;

  const std::string bundle = absl::StrCat(server_.data_dir(), "/../denied.bundle");
  r = CtlAs("member-b", {"export", "--out", bundle});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "ListCheckpoints is restricted")) << r;

  // Everything else stays open to it.
  r = CtlAs("member-b", {"read", "--limit", "5"});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_TRUE(absl::StrContains(r.out, "genesis")) << r;
  EXPECT_TRUE(Succeeded(CtlAs("member-b", {"checkpoint"})));
  EXPECT_TRUE(Succeeded(CtlAs("member-b", {"prove", "--seq", "0", "--operator-key",
                                           server_.data_dir() + "/operator.pub.pem"})));
}

TEST_F(TlsTest, MonitorNeedsAnOperatorKeyOrTrustOnFirstUseSaidExplicitly) {
  const std::string state = absl::StrCat(server_.data_dir(), "/../monitor");
  CtlResult r = CtlAs("auditor-a", {"audit", "--state", state});
  EXPECT_TRUE(Failed(r, 1, "no operator key to trust")) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "--operator-key")) << r;
  EXPECT_FALSE(fs::exists(state + "/operator.pub"));

  r = CtlAs("auditor-a", {"audit", "--state", state, "--operator-key", server_.data_dir() + "/operator.pub.pem"});
  EXPECT_TRUE(Succeeded(r));
  EXPECT_TRUE(fs::exists(state + "/operator.pub"));
  // Pinned now: later runs need neither.
  EXPECT_TRUE(Succeeded(CtlAs("auditor-a", {"audit", "--state", state})));

  const std::string tofu = absl::StrCat(server_.data_dir(), "/../monitor-tofu");
  r = CtlAs("auditor-a", {"audit", "--state", tofu, "--trust-on-first-use"});
  EXPECT_TRUE(Succeeded(r));
  EXPECT_TRUE(absl::StrContains(r.out, "trusting on first use the operator key")) << r;
}

TEST_F(TlsTest, BadTlsFlagsAreClearErrors) {
  CtlResult r = RunCtl({"--server", server_.address(), "--tls-ca", Pki("ca.pem"), "--tls-cert",
                        Pki("auditor-a.pem"), "read"});
  EXPECT_TRUE(Failed(r, 2, "--tls-cert and --tls-key go together")) << r;
  r = RunCtl({"--server", server_.address(), "--tls-ca", Pki("no-such.pem"), "read"});
  EXPECT_TRUE(Failed(r, 1, "--tls-ca: cannot read")) << r;
  r = RunCtl({"--server", server_.address(), "--tls-ca", Pki("server.ext"), "read"});
  EXPECT_TRUE(Failed(r, 1, "holds no PEM block")) << r;
}

// The value of the server-timing trailer of a finished call ("" if absent).
std::string ServerTiming(const grpc::ClientContext& context) {
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find(client::kServerTimingMetadata);
  return it == trailers.end() ? "" : std::string(it->second.data(), it->second.size());
}

TEST_F(TlsTest, GovernanceAnswersCarryTheirServerTimingOverTheLibrarysTlsChannel) {
  absl::StatusOr<client::TlsOptions> tls = client::LoadTls(Pki("ca.pem"), Pki("member-b.pem"), Pki("member-b.key"));
  ASSERT_TRUE(tls.ok()) << tls.status();
  auto channel = client::NewChannel(server_.address(), {.tls = *tls});
  auto governance = v1::GovernanceService::NewStub(channel);
  uint64_t ns = 0;
  {
    grpc::ClientContext context;
    client::PrepareCall(context, std::chrono::seconds(30), client::CallPolicy::kWaitForReady);
    v1::GetOrganisationRequest request;
    request.set_org_id("registrar");
    v1::OrganisationView view;
    grpc::Status status = governance->GetOrganisation(&context, request, &view);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(absl::SimpleAtoi(ServerTiming(context), &ns)) << "\"" << ServerTiming(context) << "\"";
  }
  {  // a list query, answered from a worker
    grpc::ClientContext context;
    client::PrepareCall(context, std::chrono::seconds(30), client::CallPolicy::kWaitForReady);
    v1::QueryFilter filter;
    v1::ListVetoesResponse vetoes;
    grpc::Status status = governance->ListVetoes(&context, filter, &vetoes);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(absl::SimpleAtoi(ServerTiming(context), &ns)) << "\"" << ServerTiming(context) << "\"";
  }
  {  // a refused query is timed too
    grpc::ClientContext context;
    client::PrepareCall(context, std::chrono::seconds(30), client::CallPolicy::kWaitForReady);
    v1::GetProposalRequest request;
    request.set_proposal_id("no-such-proposal");
    v1::ProposalState proposal;
    grpc::Status status = governance->GetProposal(&context, request, &proposal);
    EXPECT_FALSE(status.ok());
    EXPECT_TRUE(absl::SimpleAtoi(ServerTiming(context), &ns)) << "\"" << ServerTiming(context) << "\"";
  }
}

TEST(TlsStartTest, CostlyRpcListWithoutMutualTlsIsAUsageError) {
  TempDir pki("ledger-tls-start");
  ASSERT_TRUE(OpenSsl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                       "-keyout", pki.path() + "/server.key", "-out", pki.path() + "/server.pem", "-days", "2",
                       "-subj", "/CN=ledgerd", "-addext", "subjectAltName=IP:127.0.0.1"}));
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--costly-rpc-clients", "auditor-a"},
        std::vector<std::string>{"--tls-cert", pki.path() + "/server.pem", "--tls-key", pki.path() + "/server.key",
                                 "--costly-rpc-clients", "auditor-a"}}) {
    LedgerdProcess server;
    server.set_extra_args(args);
    absl::Status started = server.Start();
    ASSERT_FALSE(started.ok());
    EXPECT_TRUE(absl::StrContains(started.message(), "--costly-rpc-clients needs mutual TLS")) << started;
    EXPECT_FALSE(fs::exists(server.data_dir() + "/db")) << "nothing is created on a usage error";
  }
  LedgerdProcess server;
  server.set_extra_args({"--tls-cert", pki.path() + "/server.pem", "--tls-key", pki.path() + "/server.key",
                         "--tls-client-ca", pki.path() + "/server.pem", "--costly-rpc-clients", "a,,b"});
  absl::Status started = server.Start();
  ASSERT_FALSE(started.ok());
  EXPECT_TRUE(absl::StrContains(started.message(), "has an empty identity")) << started;
}

}  // namespace
}  // namespace ledger::testing
