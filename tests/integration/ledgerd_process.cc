#include "tests/integration/ledgerd_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "ledger/event/envelope.h"
#include "services/data_dir.h"
#include "services/grpc_status.h"

#ifndef LEDGERD_PATH
#error "LEDGERD_PATH must name the ledgerd binary (set by tests/CMakeLists.txt)"
#endif

namespace ledger::testing {
namespace fs = std::filesystem;
namespace {

// Bounds: generous for a loaded 2-core machine, far below the ctest timeout.
constexpr int kStartTimeoutMs = 20'000;
constexpr int kStopTimeoutMs = 15'000;
constexpr char kListeningPrefix[] = "ledgerd listening on ";

std::string ErrnoText(const char* what) {
  return absl::StrCat(what, ": ", std::string(std::strerror(errno)));
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The threads' stacks of a hung process, if gdb is installed (diagnostics
// only; bounded by `timeout`).
std::string StackTraces(pid_t pid) {
  if (::access("/usr/bin/gdb", X_OK) != 0) return "(gdb not installed)";
  std::string command = absl::StrCat("timeout 60 /usr/bin/gdb -p ", pid,
                                     " -batch -ex 'thread apply all bt' 2>&1");
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return "(could not run gdb)";
  std::string output;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
  ::pclose(pipe);
  return output;
}

}  // namespace

// ---------------------------------------------------------------- process

LedgerdProcess::LedgerdProcess() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp",
                                     "/ledgerd-it-XXXXXX");
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (::mkdtemp(buffer.data()) == nullptr) {
    // Start() reports it: the data directory cannot be created under "".
    root_.clear();
  } else {
    root_ = buffer.data();
  }
  data_dir_ = root_ + "/data";
  stderr_path_ = root_ + "/stderr.log";
}

LedgerdProcess::~LedgerdProcess() {
  if (running()) (void)Kill();
  JoinDrain();
  if (!root_.empty()) {
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }
}

absl::Status LedgerdProcess::Start() {
  if (root_.empty()) return absl::InternalError("could not create a temporary directory");
  if (running()) return absl::FailedPreconditionError("ledgerd is already running");
  JoinDrain();

  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return absl::InternalError(ErrnoText("pipe2"));
  int err = ::open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (err < 0) {
    ::close(out[0]);
    ::close(out[1]);
    return absl::InternalError(ErrnoText("open stderr log"));
  }
  // Everything the child needs is prepared before fork: after it, only
  // async-signal-safe calls until exec.
  std::vector<std::string> args = {LEDGERD_PATH, "--data", data_dir_, "--listen", "127.0.0.1:0"};
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(out[0]);
    ::close(out[1]);
    ::close(err);
    return absl::InternalError(ErrnoText("fork"));
  }
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);  // dup2 clears O_CLOEXEC on the copy
    ::dup2(err, STDERR_FILENO);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    // If the test process dies, so does its server.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::execv(argv[0], argv.data());
    static const char kExecFailed[] = "ledgerd_process: execv failed\n";
    (void)!::write(STDERR_FILENO, kExecFailed, sizeof kExecFailed - 1);
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err);
  pid_ = pid;
  stdout_fd_ = out[0];
  address_.clear();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stdout_.clear();
    eof_ = false;
  }

  // Read stdout until the "listening on" line, EOF (it died) or the deadline.
  const int64_t deadline = NowMs() + kStartTimeoutMs;
  std::string seen;
  std::string failure;
  while (address_.empty() && failure.empty()) {
    const int64_t left = deadline - NowMs();
    if (left <= 0) {
      failure = absl::StrCat("ledgerd did not print \"", kListeningPrefix, "...\" within ",
                             kStartTimeoutMs, " ms");
      break;
    }
    pollfd p{stdout_fd_, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) {
      failure = ErrnoText("poll");
      break;
    }
    if (ready == 0) continue;  // the deadline check above ends it
    char buffer[4096];
    ssize_t n = ::read(stdout_fd_, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failure = "ledgerd exited before it was listening";
      break;
    }
    seen.append(buffer, static_cast<size_t>(n));
    size_t line_start = 0;
    for (size_t nl; (nl = seen.find('\n', line_start)) != std::string::npos; line_start = nl + 1) {
      std::string_view line(seen.data() + line_start, nl - line_start);
      if (line.substr(0, sizeof kListeningPrefix - 1) == kListeningPrefix) {
        address_ = std::string(line.substr(sizeof kListeningPrefix - 1));
        break;
      }
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stdout_ = seen;
  }
  if (!failure.empty()) {
    // Kill (if it still runs) and reap, then say what it said.
    ::kill(pid_, SIGKILL);
    auto exit = Reap();
    ::close(stdout_fd_);
    stdout_fd_ = -1;
    return absl::UnavailableError(absl::StrCat(
        failure, " (", exit.ok() ? absl::StrCat("exit code ", *exit) : std::string(exit.status().message()),
        ")\n--- ledgerd stdout ---\n", seen, "\n--- ledgerd stderr ---\n", Stderr()));
  }
  // Keep draining stdout so the server never blocks on (or dies of) a full
  // or closed pipe when it prints its shutdown lines.
  drain_ = std::thread([this] { DrainStdout(); });
  return absl::OkStatus();
}

void LedgerdProcess::DrainStdout() {
  char buffer[4096];
  while (true) {
    ssize_t n = ::read(stdout_fd_, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    std::lock_guard<std::mutex> lock(mu_);
    if (n <= 0) {
      eof_ = true;
      eof_cv_.notify_all();
      return;
    }
    stdout_.append(buffer, static_cast<size_t>(n));
  }
}

bool LedgerdProcess::WaitForStdoutEof(int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return eof_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] { return eof_; });
}

void LedgerdProcess::JoinDrain() {
  if (drain_.joinable()) drain_.join();
  if (stdout_fd_ >= 0) {
    ::close(stdout_fd_);
    stdout_fd_ = -1;
  }
}

absl::StatusOr<int> LedgerdProcess::Reap() {
  int status = 0;
  pid_t reaped;
  do {
    reaped = ::waitpid(pid_, &status, 0);
  } while (reaped < 0 && errno == EINTR);
  pid_ = -1;
  if (reaped < 0) return absl::InternalError(ErrnoText("waitpid"));
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) {
    return absl::AbortedError(absl::StrCat("ledgerd was killed by signal ", WTERMSIG(status), " (",
                                           std::string(::strsignal(WTERMSIG(status))), ")"));
  }
  return absl::InternalError(absl::StrCat("ledgerd ended with wait status ", status));
}

absl::StatusOr<int> LedgerdProcess::Stop() {
  if (!running()) return absl::FailedPreconditionError("ledgerd is not running");
  ::kill(pid_, SIGTERM);
  // Its stdout closes when it exits; bounded, then it is killed.
  if (!WaitForStdoutEof(kStopTimeoutMs)) {
    const std::string stacks = StackTraces(pid_);
    ::kill(pid_, SIGKILL);
    (void)Reap();
    JoinDrain();
    return absl::DeadlineExceededError(absl::StrCat(
        "ledgerd did not stop within ", kStopTimeoutMs, " ms of SIGTERM (killed)",
        "\n--- ledgerd stdout ---\n", Stdout(), "\n--- ledgerd stderr ---\n", Stderr(),
        "\n--- ledgerd threads ---\n", stacks));
  }
  auto exit = Reap();
  JoinDrain();
  if (!exit.ok()) {
    return absl::Status(exit.status().code(),
                        absl::StrCat(exit.status().message(), "\n--- ledgerd stderr ---\n", Stderr()));
  }
  return *exit;
}

absl::Status LedgerdProcess::Kill() {
  if (!running()) return absl::FailedPreconditionError("ledgerd is not running");
  ::kill(pid_, SIGKILL);
  auto exit = Reap();
  JoinDrain();
  if (exit.ok()) {
    return absl::InternalError(absl::StrCat("ledgerd exited with code ", *exit, " before SIGKILL"));
  }
  return absl::OkStatus();  // killed, as asked
}

absl::Status LedgerdProcess::Restart() {
  if (running()) {
    auto exit = Stop();
    if (!exit.ok()) return exit.status();
    if (*exit != 0) {
      return absl::InternalError(absl::StrCat("ledgerd exited with code ", *exit, " on SIGTERM",
                                              "\n--- ledgerd stderr ---\n", Stderr()));
    }
  }
  return Start();
}

std::string LedgerdProcess::Stderr() const {
  std::ifstream in(stderr_path_);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string LedgerdProcess::Stdout() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stdout_;
}

// ---------------------------------------------------------------- helpers

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

LedgerClient::LedgerClient(const std::string& address, bool own_connection, bool wait_for_ready)
    : wait_for_ready_(wait_for_ready) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  if (own_connection) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
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
