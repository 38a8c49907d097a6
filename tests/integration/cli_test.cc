// Integration tests of the `ledgerctl` binary (LEDGERCTL_PATH, set by CMake)
// against a real ledgerd from the harness (ledgerd_process.h): every test
// starts its own server on a temporary data directory and port 0 and runs the
// CLI as a user would, checking exit status, stdout and stderr.
//
// Exit status contract (tools/ledgerctl/main.cc): 0 success, 1 failure, 2
// usage error. A refused or failed command must leave the ledger as it was,
// except that a validly signed submission by a registered organisation that
// breaks a rule (FAILED_PRECONDITION) is kept as one SubmissionRefused record.
//
// No sleeps: every child is waited for with poll() and waitpid(), bounded by
// a deadline after which it is killed.
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "grpcpp/grpcpp.h"
#include "ledger/v1/governance_service.grpc.pb.h"
#include "ledger/v1/governance_service.pb.h"
#include "ledger/v1/ledger_service.pb.h"
#include "ledger/v1/state.pb.h"
#include "tests/support/ctl_runner.h"
#include "tests/support/ledger_client.h"
#include "tests/support/ledgerd_process.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"

namespace ledger::testing {
namespace {

// Every ledgerctl run here is killed after this long.
constexpr int kCliTimeoutSeconds = 30;

template <typename Message>
absl::StatusOr<Message> ParseJson(const std::string& json) {
  Message message;
  auto status = google::protobuf::util::JsonStringToMessage(json, &message);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a ", Message::descriptor()->full_name(), " in JSON: ",
                     status.ToString(), "\n", json));
  }
  return message;
}

#define ASSERT_PARSED(lhs, Type, json)                                  \
  auto lhs##_or = ParseJson<Type>(json);                                \
  ASSERT_TRUE(lhs##_or.ok()) << lhs##_or.status();                      \
  Type lhs = *std::move(lhs##_or)

// The value of a "name: value" line of `text` ("" if none).
std::string LineValue(const std::string& text, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, absl::StrCat(name, ": "))) {
      return std::string(line.substr(name.size() + 2));
    }
  }
  return "";
}

// ---------------------------------------------------------------- fixture

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(server_.Start());
    Connect();
    dir_ = absl::StrCat(server_.data_dir(), "/../cli");
    ASSERT_EQ(mkdir(dir_.c_str(), 0700), 0) << std::strerror(errno);
  }

  void Connect() {
    client_ = std::make_unique<LedgerClient>(server_.address());
    absl::Status s = client_->Init();
    ASSERT_TRUE(s.ok()) << s;
  }

  // ledgerctl --server <this server> args...
  CtlResult Ctl(std::vector<std::string> args, int timeout_seconds = kCliTimeoutSeconds) {
    args.insert(args.begin(), {"--server", server_.address()});
    return RunCtl(args, timeout_seconds);
  }

  uint64_t Size() {
    auto size = client_->TreeSize();
    EXPECT_TRUE(size.ok()) << size.status();
    return size.ok() ? *size : ~uint64_t{0};
  }

  std::string RegistrarKey() const { return absl::StrCat(server_.data_dir(), "/registrar.key.pem"); }
  std::string Path(const std::string& name) const { return absl::StrCat(dir_, "/", name); }

  // keygen --out DIR/<org>.pem: the path.
  std::string Keygen(const std::string& org) {
    std::string path = Path(absl::StrCat(org, ".pem"));
    CtlResult r = RunCtl({"keygen", "--out", path}, kCliTimeoutSeconds);
    EXPECT_TRUE(Succeeded(r));
    EXPECT_EQ(LineValue(r.out, "key_id").size(), 32u) << r;
    return path;
  }

  // Registers `org` (signed by the registrar) with a fresh key: its key file.
  std::string Register(const std::string& org, const std::string& kind = "nhs-trust") {
    std::string key = Keygen(org);
    CtlResult r = Ctl({"register-org", "--as", "registrar", "--key", RegistrarKey(), "--org", org,
                       "--name", absl::StrCat("The ", org), "--kind", kind, "--org-key", key});
    EXPECT_TRUE(Succeeded(r));
    return key;
  }

  LedgerdProcess server_;
  std::unique_ptr<LedgerClient> client_;
  std::string dir_;  // key and payload files, beside the data directory
};

// ---------------------------------------------------------------- bad input

TEST_F(CliTest, UsageErrorsExitTwoAndAppendNothing) {
  const uint64_t before = Size();
  struct Case {
    std::vector<std::string> args;
    std::string what;
  };
  const std::vector<Case> cases = {
      {{"frobnicate"}, "unknown command 'frobnicate'"},
      {{"get", "0", "--bogus"}, "unknown flag --bogus"},
      {{"--bogus", "get", "0"}, "unknown flag '--bogus'"},
      {{"register-org", "--as", "registrar", "--key", RegistrarKey(), "--org", "x", "--name", "X"},
       "missing required flag --org-key"},
      {{"prove"}, "missing required flag --seq"},
      {{"get", "notanumber"}, "'notanumber' is not a non-negative decimal integer"},
      {{"get"}, "missing argument N"},
      {{"prove", "--seq", "-1"}, "--seq: '-1' is not a non-negative decimal integer"},
      {{"prove", "--seq", "--json"}, "--seq needs a value"},
      {{"consistency", "--from", "0"}, "--from must be at least 1"},
      {{"vote", "--as", "registrar", "--key", RegistrarKey(), "--proposal", "p", "--gateway", "g",
        "--position", "maybe"},
       "--position must be assent, object or abstain, not \"maybe\""},
      {{"call", "--as", "registrar", "--key", RegistrarKey(), "--proposal", "p", "--gateway", "g",
        "--outcome", "pass"},
       "missing required flag --rationale"},
      {{"call", "--as", "registrar", "--key", RegistrarKey(), "--proposal", "p", "--gateway", "g",
        "--outcome", "maybe", "--rationale", "r"},
       "--outcome must be pass or fail"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrJoin(c.args, " "));
    CtlResult r = Ctl(c.args);
    EXPECT_TRUE(Failed(r, 2, c.what));
    // Usage errors point at help.
    EXPECT_TRUE(absl::StrContains(r.err, "--help")) << r;
    EXPECT_EQ(Size(), before);
  }
  EXPECT_EQ(Size(), before);
}

// Flag values are checked before ledgerctl connects (issue 11 leftovers): in
// place of a server, a TCP listener that never accepts, where a connection
// attempt would wait in the backlog. Every command whose help offers --since
// or --until refuses a bad time (and a bad number for --from or --limit) with
// exit 2 naming the flag, and nothing connected.
TEST(CliWithoutServerTest, BadTimesAreUsageErrorsBeforeConnecting) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0) << std::strerror(errno);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0) << std::strerror(errno);
  ASSERT_EQ(listen(listener, 64), 0) << std::strerror(errno);
  socklen_t length = sizeof(address);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const std::string server = absl::StrCat("127.0.0.1:", ntohs(address.sin_port));
  // A connection, if any was made, waiting to be accepted (closed here).
  auto connected = [&] {
    const int accepted = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (accepted >= 0) close(accepted);
    return accepted >= 0;
  };

  // The commands, from the command list, that take --since.
  CtlResult list = RunCtl({"--help"}, kCliTimeoutSeconds);
  ASSERT_TRUE(Succeeded(list)) << list;
  std::vector<std::string> with_times;
  const std::string commands = list.out.substr(list.out.find("Commands:\n") + 10);
  for (absl::string_view line : absl::StrSplit(commands, '\n')) {
    if (!absl::StartsWith(line, "  ")) break;
    const std::string name(absl::StripLeadingAsciiWhitespace(line).substr(
        0, absl::StripLeadingAsciiWhitespace(line).find(' ')));
    CtlResult help = RunCtl({name, "--help"}, kCliTimeoutSeconds);
    ASSERT_TRUE(Succeeded(help)) << help;
    if (absl::StrContains(help.out, "--since")) {
      EXPECT_TRUE(absl::StrContains(help.out, "--until")) << name;
      with_times.push_back(name);
    }
  }
  for (const char* name : {"read", "proposals", "vetoes", "overrules", "refusals", "history", "identity-changes"}) {
    EXPECT_NE(std::find(with_times.begin(), with_times.end(), name), with_times.end()) << name;
  }

  for (const std::string& command : with_times) {
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
        {{"--since", "yesterday"}, "--since 'yesterday' is not an RFC 3339 time"},
        {{"--since", "2026-12-01T09:00:00Z", "--until", "2026-12-01 10:00"},
         "--until '2026-12-01 10:00' is not an RFC 3339 time"},
        {{"--until=2026-13-01T00:00:00Z"}, "--until '2026-13-01T00:00:00Z' is not an RFC 3339 time"},
        {{"--from", "ten"}, "--from: 'ten' is not a non-negative decimal integer"},
        {{"--limit", "-1"}, "--limit: '-1' is not a non-negative decimal integer"},
    };
    for (const auto& [flags, what] : cases) {
      std::vector<std::string> args = {"--server", server, command};
      args.insert(args.end(), flags.begin(), flags.end());
      SCOPED_TRACE(absl::StrJoin(args, " "));
      CtlResult r = RunCtl(args, kCliTimeoutSeconds);
      EXPECT_TRUE(Failed(r, 2, what)) << r;
      EXPECT_TRUE(absl::StrContains(r.err, "--help")) << r;
      EXPECT_FALSE(connected()) << "ledgerctl connected before checking its flags";
    }
  }
  // The listener does take a connection (what the checks above would see).
  const int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(connect(probe, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0) << std::strerror(errno);
  EXPECT_TRUE(connected());
  close(probe);
  close(listener);
}

// Export writes FILE.partial only if nothing is there: a link planted at that
// name must not make it overwrite what the link points at.
TEST_F(CliTest, ExportRefusesAPartialFileThatIsASymbolicLink) {
  const std::string victim = Path("victim");
  WriteFileBytes(victim, "precious");
  const std::string out = Path("out.bundle");
  ASSERT_EQ(symlink(victim.c_str(), (out + ".partial").c_str()), 0) << std::strerror(errno);
  CtlResult r = Ctl({"export", "--out", out});
  EXPECT_TRUE(Failed(r, 1, "is a symbolic link")) << r;
  EXPECT_TRUE(absl::StrContains(r.err, out + ".partial")) << r;
  EXPECT_EQ(ReadFileBytes(victim), "precious");
  struct stat st;
  EXPECT_NE(stat(out.c_str(), &st), 0) << "no bundle appears";
  EXPECT_EQ(lstat((out + ".partial").c_str(), &st), 0) << "the link is left for the user to look at";

  // A regular .partial (another export running, or one interrupted) is left alone too.
  ASSERT_EQ(unlink((out + ".partial").c_str()), 0);
  WriteFileBytes(out + ".partial", "another export's");
  r = Ctl({"export", "--out", out});
  EXPECT_TRUE(Failed(r, 1, "already exists")) << r;
  EXPECT_EQ(ReadFileBytes(out + ".partial"), "another export's");
  ASSERT_EQ(unlink((out + ".partial").c_str()), 0);
  EXPECT_TRUE(Succeeded(Ctl({"export", "--out", out})));
}

// A private key file group or others may read is used, with one warning
// naming the file, its mode and the fix.
TEST_F(CliTest, PrivateKeyReadableByOthersIsUsedWithAWarning) {
  const std::string key = Keygen("loose");
  CtlResult quiet = Ctl({"register-org", "--as", "registrar", "--key", RegistrarKey(), "--org", "tight", "--name",
                         "Tight", "--kind", "nhs-trust", "--org-key", Keygen("tight")});
  EXPECT_TRUE(Succeeded(quiet));
  EXPECT_FALSE(absl::StrContains(quiet.err, "chmod")) << quiet;
  ASSERT_EQ(chmod(RegistrarKey().c_str(), 0644), 0);
  CtlResult r = Ctl({"register-org", "--as", "registrar", "--key", RegistrarKey(), "--org", "loose", "--name",
                     "Loose", "--kind", "nhs-trust", "--org-key", key});
  EXPECT_TRUE(Succeeded(r));
  const std::string warning = absl::StrCat("chmod 600 ", RegistrarKey());
  EXPECT_TRUE(absl::StrContains(r.err, warning)) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "mode 0644")) << r;
  EXPECT_EQ(r.err.find(warning), r.err.rfind(warning)) << "one warning\n" << r;
  ASSERT_EQ(chmod(RegistrarKey().c_str(), 0600), 0);
}

// ledgerd warns about its own key files, and refuses to start when
// operator.pub.pem (what auditors are given) is not its operator key.
TEST_F(CliTest, LedgerdWarnsOfExposedKeysAndRefusesAMismatchedOperatorPublicKey) {
  ASSERT_OK_AND_ASSIGN(int stopped, server_.Stop());
  ASSERT_EQ(stopped, 0);
  const std::string private_key = absl::StrCat(server_.data_dir(), "/operator.key.pem");
  const std::string public_key = absl::StrCat(server_.data_dir(), "/operator.pub.pem");
  ASSERT_EQ(chmod(private_key.c_str(), 0640), 0);
  ASSERT_OK(server_.Start());
  EXPECT_TRUE(absl::StrContains(server_.Stderr(), absl::StrCat("chmod 600 ", private_key))) << server_.Stderr();
  ASSERT_OK_AND_ASSIGN(stopped, server_.Stop());
  ASSERT_EQ(chmod(private_key.c_str(), 0600), 0);

  const std::string original = ReadFileBytes(public_key);
  ASSERT_EQ(unlink(public_key.c_str()), 0);
  ASSERT_TRUE(Succeeded(RunCtl({"keygen", "--out", Path("other.pem"), "--public-out", public_key})));
  absl::Status refused = server_.Start();
  ASSERT_FALSE(refused.ok()) << "started with another operator public key";
  EXPECT_TRUE(absl::StrContains(refused.message(), public_key)) << refused;
  EXPECT_TRUE(absl::StrContains(refused.message(), private_key)) << refused;
  EXPECT_TRUE(absl::StrContains(refused.message(), "is not the public half")) << refused;

  ASSERT_EQ(unlink(public_key.c_str()), 0);
  WriteFileBytes(public_key, original);
  ASSERT_OK(server_.Start());
  Connect();
}

TEST_F(CliTest, BadFilesExitOneNameTheFileAndAppendNothing) {
  const uint64_t before = Size();

  // keygen refuses to overwrite an existing key file, and leaves it intact.
  std::string key = Keygen("alpha");
  const std::string original = ReadFileBytes(key);
  {
    CtlResult r = RunCtl({"keygen", "--out", key}, kCliTimeoutSeconds);
    EXPECT_TRUE(Failed(r, 1, absl::StrCat("key file ", key, ": already exists; refusing to overwrite")));
    EXPECT_EQ(ReadFileBytes(key), original);
  }
  {
    // --public-out over an existing file: refused before the private key is written.
    std::string fresh = Path("fresh.pem");
    CtlResult r = RunCtl({"keygen", "--out", fresh, "--public-out", key}, kCliTimeoutSeconds);
    EXPECT_TRUE(Failed(r, 1, "already exists; refusing to overwrite"));
    EXPECT_NE(access(fresh.c_str(), F_OK), 0) << "a lone private key was left behind";
    EXPECT_EQ(ReadFileBytes(key), original);
  }

  // register-org with a missing key file names the path.
  const std::string missing = Path("no-such-key.pem");
  {
    CtlResult r = Ctl({"register-org", "--as", "registrar", "--key", RegistrarKey(), "--org", "beta",
                       "--name", "Beta", "--org-key", missing});
    EXPECT_TRUE(Failed(r, 1, missing));
    EXPECT_TRUE(absl::StrContains(r.err, "no such file")) << r;
  }
  {
    // ... and so does a missing signing key.
    CtlResult r = Ctl({"register-org", "--as", "registrar", "--key", missing, "--org", "beta",
                       "--name", "Beta", "--org-key", key});
    EXPECT_TRUE(Failed(r, 1, missing));
  }
  // register-org with a garbage PEM file.
  const std::string garbage = Path("garbage.pem");
  WriteFileBytes(garbage, "-----BEGIN PUBLIC KEY-----\nnot base64 at all!\n-----END PUBLIC KEY-----\n");
  {
    CtlResult r = Ctl({"register-org", "--as", "registrar", "--key", RegistrarKey(), "--org", "beta",
                       "--name", "Beta", "--org-key", garbage});
    EXPECT_TRUE(Failed(r, 1, absl::StrCat("key file ", garbage)));
    EXPECT_TRUE(absl::StrContains(r.err, "neither a PEM Ed25519 public key nor a PEM private key")) << r;
  }
  {
    CtlResult r = Ctl({"register-org", "--as", "registrar", "--key", garbage, "--org", "beta",
                       "--name", "Beta", "--org-key", key});
    EXPECT_TRUE(Failed(r, 1, absl::StrCat("key file ", garbage)));
  }

  // submit with malformed JSON names the file.
  const std::string malformed = Path("malformed.json");
  WriteFileBytes(malformed, "{\"keyAdded\": {\"orgId\": \"registrar\",");
  {
    CtlResult r = Ctl({"submit", "--as", "registrar", "--key", RegistrarKey(), "--payload", malformed});
    EXPECT_TRUE(Failed(r, 1, absl::StrCat("payload ", malformed, ": not a ledger.v1.EventBody")));
    EXPECT_TRUE(absl::StrContains(r.err, "nothing was sent")) << r;
  }
  // submit with a payload that sets no event.
  const std::string empty = Path("empty.json");
  WriteFileBytes(empty, "{}");
  {
    CtlResult r = Ctl({"submit", "--as", "registrar", "--key", RegistrarKey(), "--payload", empty});
    EXPECT_TRUE(Failed(r, 1, absl::StrCat("payload ", empty, ": sets no event")));
  }
  // submit with a payload file that does not exist.
  {
    CtlResult r = Ctl({"submit", "--as", "registrar", "--key", RegistrarKey(), "--payload", missing});
    EXPECT_TRUE(Failed(r, 1, absl::StrCat("payload ", missing, ": cannot open")));
  }
  // A charter that does not parse.
  {
    CtlResult r = Ctl({"propose-collective", "--as", "registrar", "--key", RegistrarKey(),
                       "--collective", "c", "--charter", malformed});
    EXPECT_TRUE(Failed(r, 1, absl::StrCat("charter ", malformed, ": not a ledger.v1.Charter")));
  }

  EXPECT_EQ(Size(), before);
}

TEST_F(CliTest, ServerRefusalsExitOneWithCodeAndReason) {
  const uint64_t before = Size();

  // An author the ledger does not know, signing with a key the ledger
  // knows (the registrar's): UNAUTHENTICATED (UNKNOWN_AUTHOR), nothing recorded.
  const std::string payload = Path("key-added.json");
  WriteFileBytes(payload, absl::StrCat("{\"keyAdded\": {\"orgId\": \"ghost\", \"publicKey\": \"",
                                  "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "\"}}"));
  {
    CtlResult r = Ctl({"submit", "--as", "ghost", "--key", RegistrarKey(), "--payload", payload});
    EXPECT_TRUE(Failed(r, 1, "UNAUTHENTICATED (UNKNOWN_AUTHOR)"));
    EXPECT_TRUE(absl::StrContains(r.err, "no organisation ghost")) << r;
  }
  EXPECT_EQ(Size(), before);

  // ... and with a key of its own, which the ledger cannot know either: the
  // signature cannot be checked, so the key is what is refused (the
  // signature check precedes the author check).
  std::string ghost_key = Keygen("ghost");
  {
    CtlResult r = Ctl({"submit", "--as", "ghost", "--key", ghost_key, "--payload", payload});
    EXPECT_TRUE(Failed(r, 1, "UNAUTHENTICATED (UNKNOWN_KEY)"));
  }
  // A registered author signing with a key that is not its own.
  {
    CtlResult r = Ctl({"vote", "--as", "registrar", "--key", ghost_key, "--proposal", "nope",
                       "--gateway", "g", "--position", "assent"});
    EXPECT_TRUE(Failed(r, 1, "UNAUTHENTICATED (UNKNOWN_KEY)"));
  }
  EXPECT_EQ(Size(), before);

  // A validly signed vote on a proposal that does not exist: refused with
  // FAILED_PRECONDITION (UNKNOWN_PROPOSAL) and kept as one SubmissionRefused.
  {
    CtlResult r = Ctl({"vote", "--as", "registrar", "--key", RegistrarKey(), "--proposal",
                       "no-such-proposal", "--gateway", "principles", "--position", "object",
                       "--rationale", "because"});
    EXPECT_TRUE(Failed(r, 1, "FAILED_PRECONDITION (UNKNOWN_PROPOSAL)"));
    EXPECT_TRUE(absl::StrContains(r.err, "no-such-proposal")) << r;
  }
  EXPECT_EQ(Size(), before + 1);
  {
    CtlResult r = Ctl({"refusals", "--json"});
    ASSERT_TRUE(Succeeded(r));
    ASSERT_PARSED(refusals, v1::ListRefusalsResponse, r.out);
    ASSERT_EQ(refusals.refusals_size(), 1) << r;
    const v1::RefusalView& refusal = refusals.refusals(0);
    EXPECT_EQ(refusal.position(), before);
    EXPECT_EQ(refusal.org_id(), "registrar");
    EXPECT_EQ(refusal.reason(), v1::UNKNOWN_PROPOSAL) << v1::Reason_Name(refusal.reason());
    EXPECT_EQ(refusal.proposal_id(), "no-such-proposal");
    EXPECT_FALSE(refusal.attempted_reversal());
    // The record is provable.
    EXPECT_TRUE(Succeeded(Ctl({"prove", "--seq", absl::StrCat(before)})));
  }
  const uint64_t after_refusal = Size();

  // Nothing listens on the port: a clear failure.
  {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    // Bound but not listening: connections are refused, and no one else
    // can take the port meanwhile.
    const std::string closed = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
    CtlResult r = RunCtl({"--server", closed, "get", "0"}, kCliTimeoutSeconds);
    EXPECT_TRUE(Failed(r, 1, absl::StrCat("Get at ", closed, ": UNAVAILABLE")));
    r = RunCtl({"--server", closed, "vote", "--as", "registrar", "--key", RegistrarKey(),
                "--proposal", "p", "--gateway", "g", "--position", "assent"}, kCliTimeoutSeconds);
    EXPECT_TRUE(Failed(r, 1, absl::StrCat("GetLedgerInfo at ", closed, ": UNAVAILABLE")));
    close(fd);
  }
  EXPECT_EQ(Size(), after_refusal);
}

// A member chooses the bytes of its own refused attempt: here a "refusal"
// nesting refusals (as deep as 64 KiB allows, a reader that walked them would
// spend memory and time per level), whose innermost names an author with a
// newline and an id with a terminal escape. The record prints as one line:
// the attempt is summarised one level deep, so neither reaches the output.
TEST_F(CliTest, AMembersNestedRefusalPrintsAsOneEscapedLine) {
  ASSERT_OK_AND_ASSIGN(Org registrar, LoadRegistrar(server_.data_dir()));
  ASSERT_OK_AND_ASSIGN(Org member, client_->RegisterOrg(registrar, "trust-x"));
  v1::EventBody innermost = client_->NewBody("evil\n42      forged line");
  innermost.mutable_vote_cast()->set_proposal_id("p\x1b[31m");
  v1::SignedEvent nested;
  nested.set_body(innermost.SerializeAsString());
  for (int level = 0; level < 3; ++level) {
    v1::EventBody wrapper = client_->NewBody("operator");
    wrapper.mutable_submission_refused()->set_signed_event(nested.SerializeAsString());
    nested.set_body(wrapper.SerializeAsString());
  }
  v1::EventBody attempt = client_->NewBody(member.id);
  attempt.mutable_submission_refused()->set_signed_event(nested.SerializeAsString());
  v1::AppendResponse response;
  grpc::Status refused = client_->AppendEvent(attempt, member.key(), &response);
  ASSERT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << refused.error_message();
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "recorded as SubmissionRefused at position"))
      << refused.error_message();
  const uint64_t position = Size() - 1;
  CtlResult r = Ctl({"get", absl::StrCat(position)});
  ASSERT_TRUE(Succeeded(r)) << r;
  const std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << r.out;  // the header and the record
  EXPECT_TRUE(absl::StrContains(lines[1], "refused submission_refused by trust-x")) << lines[1];
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
}

TEST_F(CliTest, ProofFailuresExitOne) {
  const uint64_t size = Size();
  ASSERT_GE(size, 1u);
  {
    CtlResult r = Ctl({"prove", "--seq", absl::StrCat(size)});
    EXPECT_TRUE(Failed(r, 1, absl::StrCat("record ", size, " is not covered by the latest checkpoint")));
  }
  {
    CtlResult r = Ctl({"prove", "--seq", "1000000"});
    EXPECT_TRUE(Failed(r, 1, "record 1000000 is not covered"));
  }
  {
    // A key that is not the operator's: the checkpoint signature does not verify.
    std::string wrong = Keygen("not-the-operator");
    CtlResult r = Ctl({"prove", "--seq", "0", "--operator-key", wrong});
    EXPECT_TRUE(Failed(r, 1, "latest checkpoint: signature check failed"));
    EXPECT_TRUE(absl::StrContains(r.err, absl::StrCat("--operator-key ", wrong))) << r;
    r = Ctl({"prove", "--seq", "0", "--operator-key", wrong, "--json"});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(absl::StrContains(r.err, "signature check failed")) << r;
    r = Ctl({"consistency", "--from", "1", "--operator-key", wrong});
    EXPECT_TRUE(Failed(r, 1, "signature check failed"));
  }
  {
    CtlResult r = Ctl({"consistency", "--from", absl::StrCat(size + 1)});
    EXPECT_TRUE(Failed(r, 1, absl::StrCat("--from ", size + 1, " is beyond the latest checkpoint")));
  }
  {
    // Trusting the server's own report of its key, the proof verifies.
    CtlResult r = Ctl({"prove", "--seq", "0", "--json"});
    EXPECT_TRUE(Succeeded(r));
    EXPECT_TRUE(absl::StrContains(r.out, "\"verified\":true")) << r;
  }
  EXPECT_EQ(Size(), size);
}

// ---------------------------------------------------------------- happy path

// Rules v2: key changes a registrar makes alone wait; the organisation
// confirms one and cancels another (through `submit`), and
// `identity-changes` lists both, as a table and as one JSON document.
TEST_F(CliTest, IdentityChangesAreListed) {
  const std::string trust_key = Register("salford-royal");
  const std::string other_key = Register("stockport");
  std::vector<uint64_t> changes;
  for (const char* name : {"salford-new", "salford-spare"}) {
    const std::string key = Keygen(name);
    CtlResult r = Ctl({"add-key", "--as", "registrar", "--key", RegistrarKey(), "--org", "salford-royal",
                       "--new-key", key, "--json"});
    ASSERT_TRUE(Succeeded(r));
    ASSERT_PARSED(receipt, v1::AppendResponse, r.out);
    changes.push_back(receipt.receipt().position());
  }
  auto submit = [&](const std::string& name, const std::string& json) {
    std::ofstream(Path(name)) << json;
    return Ctl({"submit", "--as", "salford-royal", "--key", trust_key, "--payload", Path(name)});
  };
  ASSERT_TRUE(Succeeded(submit("confirm.json", absl::StrCat("{\"identityChangeConfirmed\": {\"changePosition\": \"",
                                                            changes[0], "\"}}"))));
  ASSERT_TRUE(Succeeded(submit("cancel.json", absl::StrCat("{\"identityChangeCancelled\": {\"changePosition\": \"",
                                                           changes[1], "\", \"reason\": \"not ours\"}}"))));
  // Confirming it again: no longer pending.
  CtlResult again = submit("again.json", absl::StrCat("{\"identityChangeConfirmed\": {\"changePosition\": \"",
                                                      changes[1], "\"}, \"idempotencyKey\": \"again\"}"));
  EXPECT_EQ(again.exit_code, 1) << again;
  EXPECT_TRUE(absl::StrContains(again.err, "UNKNOWN_IDENTITY_CHANGE")) << again;

  CtlResult r = Ctl({"identity-changes", "--json"});
  ASSERT_TRUE(Succeeded(r));
  ASSERT_PARSED(listed, v1::ListIdentityChangesResponse, r.out);
  ASSERT_EQ(listed.changes_size(), 2) << r.out;
  const v1::IdentityChangeState& confirmed = listed.changes(0).change();
  EXPECT_EQ(confirmed.position(), changes[0]);
  EXPECT_EQ(confirmed.kind(), "key_added");
  EXPECT_EQ(confirmed.org_id(), "salford-royal");
  EXPECT_EQ(confirmed.author(), "registrar");
  EXPECT_EQ(confirmed.status(), v1::IDENTITY_CHANGE_CONFIRMED);
  EXPECT_EQ(confirmed.effective_at(), changes[1] + 1);
  ASSERT_EQ(confirmed.confirmed_by_size(), 1);
  EXPECT_EQ(confirmed.confirmed_by(0), "salford-royal");
  EXPECT_GT(confirmed.notice_ends_unix_ns(), 0);
  const v1::IdentityChangeState& cancelled = listed.changes(1).change();
  EXPECT_EQ(cancelled.status(), v1::IDENTITY_CHANGE_CANCELLED);
  EXPECT_EQ(cancelled.cancelled_by(), "salford-royal");
  EXPECT_EQ(cancelled.cancel_reason(), "not ours");

  r = Ctl({"identity-changes"});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_TRUE(absl::StrContains(r.out, "notice ends")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "CONFIRMED")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "CANCELLED at")) << r.out;

  r = Ctl({"organisation", "salford-royal"});
  ASSERT_TRUE(Succeeded(r));
  EXPECT_TRUE(absl::StrContains(r.out, "not in effect (identity change")) << r.out;

  r = Ctl({"identity-changes", "--org", "stockport", "--json"});
  ASSERT_TRUE(Succeeded(r));
  ASSERT_PARSED(none, v1::ListIdentityChangesResponse, r.out);
  EXPECT_EQ(none.changes_size(), 0) << r.out;
  (void)other_key;
}

TEST_F(CliTest, CharterProposalVotesAndProofsThroughTheCli) {
  const std::string charter = absl::StrCat(LEDGER_EXAMPLES_DIR, "/provider-federation-charter.json");
  const std::vector<std::string> founders = {"salford-royal", "manchester-university", "stockport",
                                             "tameside-glossop", "wrightington-wigan-leigh"};
  std::map<std::string, std::string> keys;
  for (const std::string& org : founders) keys[org] = Register(org);
  // NHS England, registered by its public key only (keygen --public-out).
  {
    std::string priv = Path("nhs-england.pem");
    std::string pub = Path("nhs-england.pub.pem");
    CtlResult r = RunCtl({"keygen", "--out", priv, "--public-out", pub}, kCliTimeoutSeconds);
    ASSERT_TRUE(Succeeded(r));
    const std::string key_id = LineValue(r.out, "key_id");
    r = Ctl({"register-org", "--as", "registrar", "--key", RegistrarKey(), "--org", "nhs-england",
             "--name", "NHS England", "--kind", "national-body", "--org-key", pub, "--json"});
    ASSERT_TRUE(Succeeded(r));
    ASSERT_PARSED(receipt, v1::AppendResponse, r.out);
    EXPECT_EQ(receipt.receipt().position() + 1, Size());
    keys["nhs-england"] = priv;
    r = Ctl({"organisation", "nhs-england", "--json"});
    ASSERT_TRUE(Succeeded(r));
    ASSERT_PARSED(view, v1::OrganisationView, r.out);
    EXPECT_EQ(view.organisation().kind(), "national-body");
    ASSERT_EQ(view.keys_size(), 1);
    EXPECT_EQ(view.keys(0).key_id(), key_id);
  }
  if (HasFailure()) return;

  // The collective: proposed by Salford Royal, accepted by every founder
  // with the digest of the file it read.
  ASSERT_TRUE(Succeeded(Ctl({"propose-collective", "--as", "salford-royal", "--key",
                             keys["salford-royal"], "--collective", "gm-federation", "--charter",
                             charter})));
  for (const std::string& org : founders) {
    SCOPED_TRACE(org);
    ASSERT_TRUE(Succeeded(Ctl({"accept-charter", "--as", org, "--key", keys[org], "--collective",
                               "gm-federation", "--charter", charter})));
  }
  {
    CtlResult r = Ctl({"collective", "gm-federation", "--json"});
    ASSERT_TRUE(Succeeded(r));
    ASSERT_PARSED(collective, v1::CollectiveState, r.out);
    EXPECT_TRUE(collective.formed());
    EXPECT_EQ(std::vector<std::string>(collective.members().begin(), collective.members().end()),
              founders);
    ASSERT_EQ(collective.charter().gateways_size(), 5);
  }

  // A proposal, voted through every gateway.
  ASSERT_TRUE(Succeeded(Ctl({"propose", "--as", "manchester-university", "--key",
                             keys["manchester-university"], "--collective", "gm-federation",
                             "--proposal", "shared-pathology", "--title",
                             "One pathology network", "--category", "clinical-support"})));
  const std::vector<std::string> gateways = {"need-for-change", "principles", "process",
                                             "nature-of-change", "final-decision"};
  std::vector<uint64_t> vote_positions;
  for (const std::string& gateway : gateways) {
    for (const std::string& org : founders) {
      SCOPED_TRACE(absl::StrCat(gateway, " ", org));
      const bool objects = gateway == "final-decision" && org == "stockport";
      CtlResult r = Ctl({"vote", "--as", org, "--key", keys[org], "--proposal", "shared-pathology",
                         "--gateway", gateway, "--position", objects ? "object" : "assent",
                         "--rationale", objects ? "our lab stays local" : "agreed", "--json"});
      ASSERT_TRUE(Succeeded(r));
      ASSERT_PARSED(receipt, v1::AppendResponse, r.out);
      vote_positions.push_back(receipt.receipt().position());
    }
  }
  {
    CtlResult r = Ctl({"proposal", "shared-pathology", "--json"});
    ASSERT_TRUE(Succeeded(r));
    ASSERT_PARSED(proposal, v1::ProposalState, r.out);
    EXPECT_EQ(proposal.status(), v1::PROPOSAL_ADOPTED) << v1::ProposalStatus_Name(proposal.status());
    ASSERT_EQ(proposal.gateway_states_size(), 5);
    uint64_t last_decided = 0;
    for (int i = 0; i < 5; ++i) {
      const v1::GatewayState& g = proposal.gateway_states(i);
      SCOPED_TRACE(g.gateway_id());
      EXPECT_EQ(g.gateway_id(), gateways[i]);
      EXPECT_EQ(g.status(), v1::GATEWAY_PASSED) << v1::GatewayStatus_Name(g.status());
      EXPECT_GT(g.decided_at(), last_decided) << "gateways passed out of order";
      EXPECT_GE(g.opened_at(), last_decided);
      last_decided = g.decided_at();
      EXPECT_EQ(g.votes_size(), 5);
      EXPECT_EQ(g.tally().assent(), i == 4 ? 4u : 5u);
      EXPECT_EQ(g.tally().object(), i == 4 ? 1u : 0u);
    }
    // The human form says the same.
    CtlResult human = Ctl({"proposal", "shared-pathology"});
    ASSERT_TRUE(Succeeded(human));
    EXPECT_TRUE(absl::StrContains(human.out, "status ADOPTED")) << human;
  }

  // A vote's record is in the signed tree; the tree is consistent.
  {
    const uint64_t seq = vote_positions[7];
    CtlResult r = Ctl({"prove", "--seq", absl::StrCat(seq), "--json"});
    ASSERT_TRUE(Succeeded(r));
    EXPECT_TRUE(absl::StrContains(r.out, "\"verified\":true")) << r;
    EXPECT_TRUE(absl::StrContains(r.out, absl::StrCat("\"leaf_index\":", seq))) << r;
    EXPECT_TRUE(absl::StrContains(r.out, absl::StrCat("\"tree_size\":", Size()))) << r;
    r = Ctl({"consistency", "--from", "1", "--json"});
    ASSERT_TRUE(Succeeded(r));
    EXPECT_TRUE(absl::StrContains(r.out, "\"verified\":true")) << r;
    EXPECT_TRUE(absl::StrContains(r.out, "\"old_size\":1,")) << r;
    r = Ctl({"consistency", "--from", absl::StrCat(vote_positions[0])});
    EXPECT_TRUE(Succeeded(r));
  }

  // A vote on the passed (locked) first gateway is refused and recorded.
  {
    const uint64_t before = Size();
    CtlResult r = Ctl({"vote", "--as", "stockport", "--key", keys["stockport"], "--proposal",
                       "shared-pathology", "--gateway", "need-for-change", "--position", "object"});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(absl::StrContains(r.err, "FAILED_PRECONDITION")) << r;
    EXPECT_EQ(Size(), before + 1);
  }
}

// ---------------------------------------------------------------- demo

// The suffix of "collective gm-federation-XXXX formed" in the demo's output.
std::string DemoSuffix(const std::string& out) {
  const std::string marker = "collective gm-federation-";
  size_t at = out.find(marker);
  if (at == std::string::npos) return "";
  size_t start = at + marker.size();
  size_t end = out.find(' ', start);
  if (end == std::string::npos || out.compare(end, 8, " formed:") != 0) return "";
  return out.substr(start, end - start);
}

// A proposal's history read in small pages (answered inline) is exactly the
// one big page (over 100: answered from a worker): the same records, in
// position order, each once, one per distinct position of its history list.
TEST_F(CliTest, ProposalHistoryPagesAreTheWholeHistory) {
  CtlResult demo = Ctl({"demo", "--registrar-key", RegistrarKey()}, 60);
  ASSERT_TRUE(Succeeded(demo));
  const std::string proposal = absl::StrCat("stroke-reconfiguration-", DemoSuffix(demo.out));
  CtlResult r = Ctl({"proposal", proposal, "--json"});
  ASSERT_TRUE(Succeeded(r));
  ASSERT_PARSED(state, v1::ProposalState, r.out);
  std::set<uint64_t> expected(state.history().begin(), state.history().end());
  ASSERT_GT(expected.size(), 7u);

  auto governance = v1::GovernanceService::NewStub(
      grpc::CreateChannel(server_.address(), grpc::InsecureChannelCredentials()));
  auto history = [&](uint32_t limit, const std::string& token, v1::HistoryResponse* page) {
    v1::QueryFilter filter;
    filter.set_proposal_id(proposal);
    filter.set_limit(limit);
    filter.set_page_token(token);
    grpc::ClientContext context;
    return governance->GetHistory(&context, filter, page);
  };
  v1::HistoryResponse whole;
  grpc::Status status = history(1000, "", &whole);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(whole.next_page_token().empty());
  std::vector<uint64_t> positions;
  for (const v1::RecordEntry& entry : whole.entries()) positions.push_back(entry.position());
  EXPECT_EQ(positions, std::vector<uint64_t>(expected.begin(), expected.end()));
  for (const v1::RecordEntry& entry : whole.entries()) {  // each is the log's record at its position
    v1::ReadRequest read;
    read.set_from_position(entry.position());
    read.set_limit(1);
    v1::ReadResponse got;
    grpc::ClientContext context;
    ASSERT_TRUE(client_->ledger().Read(&context, read, &got).ok());
    ASSERT_EQ(got.entries_size(), 1);
    EXPECT_EQ(got.entries(0).record(), entry.record()) << entry.position();
  }

  std::vector<v1::RecordEntry> paged;
  std::string token;
  int pages = 0;
  do {
    v1::HistoryResponse page;
    status = history(7, token, &page);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_LE(page.entries_size(), 7);
    paged.insert(paged.end(), page.entries().begin(), page.entries().end());
    token = page.next_page_token();
  } while (!token.empty() && ++pages < 100);
  ASSERT_EQ(paged.size(), static_cast<size_t>(whole.entries_size()));
  for (size_t i = 0; i < paged.size(); ++i) {
    EXPECT_EQ(paged[i].position(), whole.entries(i).position()) << i;
    EXPECT_EQ(paged[i].record(), whole.entries(i).record()) << i;
    EXPECT_FALSE(paged[i].record().empty()) << i;
  }
  // An unknown proposal is NOT_FOUND on the inline path too.
  v1::QueryFilter unknown;
  unknown.set_proposal_id("no-such-proposal");
  grpc::ClientContext context;
  v1::HistoryResponse none;
  status = governance->GetHistory(&context, unknown, &none);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
}

struct Answers {
  v1::ListVetoesResponse vetoes;
  v1::ListOverrulesResponse overrules;
  v1::ListRefusalsResponse refusals;
  v1::ProposalState back_office;
};

TEST_F(CliTest, DemoAndItsQueryAnswersSurviveRestart) {
  CtlResult demo = Ctl({"demo", "--registrar-key", RegistrarKey()}, 60);
  ASSERT_TRUE(Succeeded(demo));
  for (const char* section : {"(a) shared back office", "(b) R&D collaboration",
                              "(c) stroke reconfiguration", "(d) Stockport tried",
                              "(e) a proposal on where maternity services"}) {
    EXPECT_TRUE(absl::StrContains(demo.out, section)) << section << demo;
  }
  const std::string s = DemoSuffix(demo.out);
  ASSERT_EQ(s.size(), 4u) << demo;
  auto id = [&](const std::string& base) { return absl::StrCat(base, "-", s); };
  const std::string collective = id("gm-federation");

  auto query = [&](Answers* answers) {
    CtlResult r = Ctl({"vetoes", "--collective", collective, "--json"});
    ASSERT_TRUE(Succeeded(r));
    ASSERT_PARSED(vetoes, v1::ListVetoesResponse, r.out);
    r = Ctl({"overrules", "--collective", collective, "--json"});
    ASSERT_TRUE(Succeeded(r));
    ASSERT_PARSED(overrules, v1::ListOverrulesResponse, r.out);
    r = Ctl({"refusals", "--collective", collective, "--json"});
    ASSERT_TRUE(Succeeded(r));
    ASSERT_PARSED(refusals, v1::ListRefusalsResponse, r.out);
    r = Ctl({"proposal", id("shared-back-office"), "--json"});
    ASSERT_TRUE(Succeeded(r));
    ASSERT_PARSED(back_office, v1::ProposalState, r.out);
    *answers = {vetoes, overrules, refusals, back_office};
  };
  Answers a;
  query(&a);
  if (HasFailure()) return;

  std::vector<uint64_t> positions;  // every position the answers rest on

  // Vetoes: Manchester University's stands at principles of the R&D
  // collaboration; Tameside and Glossop's and Pennine Acute's at process of
  // the stroke reconfiguration were overruled.
  ASSERT_EQ(a.vetoes.vetoes_size(), 3) << a.vetoes.DebugString();
  std::map<std::string, v1::VetoView> vetoes;
  for (const v1::VetoView& v : a.vetoes.vetoes()) {
    vetoes[v.veto().org_id()] = v;
    EXPECT_EQ(v.collective_id(), collective);
    positions.push_back(v.veto().at());
    if (v.veto().ended_at() != 0) positions.push_back(v.veto().ended_at());
  }
  ASSERT_EQ(vetoes.count(id("manchester-university")), 1u) << a.vetoes.DebugString();
  ASSERT_EQ(vetoes.count(id("tameside-glossop")), 1u) << a.vetoes.DebugString();
  ASSERT_EQ(vetoes.count(id("pennine-acute")), 1u) << a.vetoes.DebugString();
  {
    const v1::VetoView& v = vetoes[id("manchester-university")];
    EXPECT_EQ(v.proposal_id(), id("rd-collaboration"));
    EXPECT_EQ(v.veto().gateway_id(), "principles");
    EXPECT_EQ(v.veto().outcome(), v1::VETO_STANDING) << v1::VetoOutcome_Name(v.veto().outcome());
    EXPECT_EQ(v.veto().ended_at(), 0u);
  }
  for (const char* org : {"tameside-glossop", "pennine-acute"}) {
    SCOPED_TRACE(org);
    const v1::VetoView& v = vetoes[id(org)];
    EXPECT_EQ(v.proposal_id(), id("stroke-reconfiguration"));
    EXPECT_EQ(v.veto().gateway_id(), "process");
    EXPECT_EQ(v.veto().outcome(), v1::VETO_OVERRULED) << v1::VetoOutcome_Name(v.veto().outcome());
    EXPECT_GT(v.veto().ended_at(), v.veto().at());
  }

  // Overrules: those two, by NHS England.
  ASSERT_EQ(a.overrules.overrules_size(), 2) << a.overrules.DebugString();
  std::vector<std::string> overruled;
  for (const v1::OverruleView& o : a.overrules.overrules()) {
    overruled.push_back(o.org_id());
    EXPECT_EQ(o.caller(), id("nhs-england"));
    EXPECT_EQ(o.proposal_id(), id("stroke-reconfiguration"));
    EXPECT_EQ(o.gateway_id(), "process");
    EXPECT_EQ(o.outcome(), v1::PASS);
    EXPECT_FALSE(o.rationale().empty());
    EXPECT_GT(o.decided_position(), 0u);
    positions.push_back(o.call_position());
    positions.push_back(o.decided_position());
  }
  std::sort(overruled.begin(), overruled.end());
  EXPECT_EQ(overruled, (std::vector<std::string>{id("pennine-acute"), id("tameside-glossop")}));

  // Refusals: Stockport's attempted reversal and Trafford's reserved matter.
  ASSERT_EQ(a.refusals.refusals_size(), 2) << a.refusals.DebugString();
  std::map<std::string, v1::RefusalView> refusals;
  for (const v1::RefusalView& r : a.refusals.refusals()) {
    refusals[r.org_id()] = r;
    positions.push_back(r.position());
  }
  ASSERT_EQ(refusals.count(id("stockport")), 1u) << a.refusals.DebugString();
  ASSERT_EQ(refusals.count(id("trafford-community")), 1u) << a.refusals.DebugString();
  {
    const v1::RefusalView& r = refusals[id("stockport")];
    EXPECT_EQ(r.reason(), v1::GATEWAY_LOCKED) << v1::Reason_Name(r.reason());
    EXPECT_TRUE(r.attempted_reversal());
    EXPECT_EQ(r.proposal_id(), id("shared-back-office"));
    EXPECT_EQ(r.gateway_id(), "need-for-change");
  }
  {
    const v1::RefusalView& r = refusals[id("trafford-community")];
    EXPECT_EQ(r.reason(), v1::RESERVED_CATEGORY) << v1::Reason_Name(r.reason());
    EXPECT_FALSE(r.attempted_reversal());
  }

  // The shared back office: adopted, with Bolton's taper.
  EXPECT_EQ(a.back_office.status(), v1::PROPOSAL_ADOPTED)
      << v1::ProposalStatus_Name(a.back_office.status());
  ASSERT_EQ(a.back_office.adoption().tapers_size(), 1) << a.back_office.adoption().DebugString();
  {
    const v1::TaperSchedule& t = a.back_office.adoption().tapers(0);
    EXPECT_EQ(t.org_id(), id("bolton"));
    EXPECT_EQ(t.annual_impact_pence(), 120'000'000);
    EXPECT_EQ(std::vector<int64_t>(t.support_by_year_pence().begin(), t.support_by_year_pence().end()),
              (std::vector<int64_t>{120'000'000, 79'200'000, 39'600'000, 0}));
  }
  positions.push_back(a.back_office.ended_at());

  // Every position named can be proved.
  std::sort(positions.begin(), positions.end());
  positions.erase(std::unique(positions.begin(), positions.end()), positions.end());
  for (uint64_t p : positions) {
    SCOPED_TRACE(p);
    EXPECT_GT(p, 0u);
    CtlResult r = Ctl({"prove", "--seq", absl::StrCat(p)});
    EXPECT_TRUE(Succeeded(r));
    EXPECT_TRUE(absl::StrContains(r.out, absl::StrCat("record ", p, " is in the signed tree"))) << r;
  }

  // The projection survives a restart: the same answers.
  const uint64_t size = Size();
  ASSERT_OK(server_.Restart());
  Connect();
  EXPECT_EQ(Size(), size);
  Answers b;
  query(&b);
  if (HasFailure()) return;
  using google::protobuf::util::MessageDifferencer;
  EXPECT_TRUE(MessageDifferencer::Equals(a.vetoes, b.vetoes))
      << a.vetoes.DebugString() << "\nvs\n" << b.vetoes.DebugString();
  EXPECT_TRUE(MessageDifferencer::Equals(a.overrules, b.overrules))
      << a.overrules.DebugString() << "\nvs\n" << b.overrules.DebugString();
  EXPECT_TRUE(MessageDifferencer::Equals(a.refusals, b.refusals))
      << a.refusals.DebugString() << "\nvs\n" << b.refusals.DebugString();
  EXPECT_TRUE(MessageDifferencer::Equals(a.back_office, b.back_office))
      << a.back_office.DebugString() << "\nvs\n" << b.back_office.DebugString();
}

}  // namespace
}  // namespace ledger::testing
