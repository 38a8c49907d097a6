// Online backup and restore (issue 11 item 2) against real ledgerd processes
// and the real ledgerctl: a backup taken while events are acknowledged holds
// every event acknowledged before it began, and none acknowledged after it
// had taken its copy; `ledgerctl restore` verifies the copy offline and a
// ledgerd on the restored directory serves it (same bytes at every position,
// verify-server passes, appends continue). Adversarial: a byte flipped in a
// backup file is refused naming the file; restore and backup refuse a
// non-empty directory; restore refuses a backup of another operator key than
// the one trusted; a second backup while one runs is RESOURCE_EXHAUSTED, and
// the slot comes back when the client holding it goes away or reads nothing
// for --stream-stall-seconds; nothing is written on any refusal.
//
// No test asserts a duration or sleeps to synchronise. A backup is held open
// the way a real client holds it: by not reading (a fixed HTTP/2 window, so
// the server cannot run ahead into buffers), or behind a TCP relay in this
// process that stops passing on what the server sends (TcpRelay). A freed
// slot is waited for by retrying, bounded in count (after a stall timeout:
// in time).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "grpcpp/grpcpp.h"
#include "ledger/v1/backup_service.grpc.pb.h"
#include "tests/support/ctl_runner.h"
#include "tests/support/ledger_client.h"
#include "tests/support/ledgerd_process.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"

namespace ledger::testing {
namespace {

namespace fs = std::filesystem;

// A TCP relay in this process between clients and ledgerd: what the server
// knows of a client is its connection. Hold() stops passing on what the
// server sends once `bytes` of it have gone to the clients (the relay then
// stops reading it too); Release() lets it through; Cut() closes every
// connection, as when a client's process dies.
class TcpRelay {
 public:
  explicit TcpRelay(int target_port) : target_port_(target_port) {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address = Loopback(0);
    if (listener_ < 0 || bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        listen(listener_, 16) != 0) {
      ADD_FAILURE() << "relay: " << std::strerror(errno);
      return;
    }
    socklen_t length = sizeof(address);
    getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~TcpRelay() {
    Cut();
    {
      absl::MutexLock lock(&mu_);
      closing_ = true;
    }
    shutdown(listener_, SHUT_RDWR);
    if (acceptor_.joinable()) acceptor_.join();
    for (std::thread& pump : pumps_) pump.join();
    for (int fd : fds_) close(fd);
    close(listener_);
  }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

  void Hold(size_t bytes) {
    absl::MutexLock lock(&mu_);
    hold_after_ = bytes;
  }
  // Waits until the server's bytes are held (true), or the relay is cut
  // (false; at most 120 s, so a failing test ends).
  bool WaitHeld() {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(this, &TcpRelay::HeldOrCut), absl::Seconds(120));
    return held_;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    hold_after_.reset();
  }
  void Cut() {
    absl::MutexLock lock(&mu_);
    cut_ = true;
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);
  }

 private:
  static sockaddr_in Loopback(int port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<uint16_t>(port));
    return address;
  }

  void Accept() {
    while (true) {
      const int client = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) return;
      const int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in target = Loopback(target_port_);
      absl::MutexLock lock(&mu_);
      fds_.push_back(client);
      fds_.push_back(server);
      if (closing_ || cut_ || connect(server, reinterpret_cast<sockaddr*>(&target), sizeof(target)) != 0) {
        shutdown(client, SHUT_RDWR);
        continue;
      }
      pumps_.emplace_back([this, client, server] { Pump(client, server, /*from_server=*/false); });
      pumps_.emplace_back([this, client, server] { Pump(server, client, /*from_server=*/true); });
    }
  }

  bool HeldOrCut() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return held_ || cut_; }
  bool Releasable(size_t more) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return cut_ || !hold_after_.has_value() || from_server_ + more <= *hold_after_;
  }
  // `more` bytes read from the server, waiting to be passed on.
  struct HeldBytes {
    TcpRelay* relay;
    size_t more;
    // (Called by Await, under mu_.)
    static bool Releasable(HeldBytes* held) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return held->relay->Releasable(held->more);
    }
  };

  void Pump(int from, int to, bool from_server) {
    std::string buffer(64 << 10, '\0');
    while (true) {
      const ssize_t n = read(from, buffer.data(), buffer.size());
      if (n <= 0) break;
      if (from_server) {
        absl::MutexLock lock(&mu_);
        const size_t more = static_cast<size_t>(n);
        if (!Releasable(more)) {
          held_ = true;
          HeldBytes wait{this, more};
          mu_.Await(absl::Condition(&HeldBytes::Releasable, &wait));
        }
        if (cut_) break;
        from_server_ += more;
      }
      if (!WriteAll(to, buffer.data(), static_cast<size_t>(n))) break;
    }
    // Either side gone: so is the other.
    shutdown(from, SHUT_RDWR);
    shutdown(to, SHUT_RDWR);
  }

  static bool WriteAll(int fd, const char* data, size_t size) {
    while (size > 0) {
      const ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
      if (n <= 0) return false;
      data += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  }

  const int target_port_;
  int listener_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  absl::Mutex mu_;
  std::vector<int> fds_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> pumps_ ABSL_GUARDED_BY(mu_);
  std::optional<size_t> hold_after_ ABSL_GUARDED_BY(mu_);
  size_t from_server_ ABSL_GUARDED_BY(mu_) = 0;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  bool cut_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
};

// The port of a HOST:PORT address.
int PortOf(const std::string& address) {
  int port = 0;
  EXPECT_TRUE(absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port)) << address;
  return port;
}

struct Acked {
  uint64_t position;
  std::string org_id;
};

class BackupTest : public ::testing::Test {
 protected:
  void StartServer() {
    absl::Status started = server_.Start();
    ASSERT_TRUE(started.ok()) << started;
    client_ = std::make_unique<LedgerClient>(server_.address());
    ASSERT_OK(client_->Init());
    ASSERT_OK_AND_ASSIGN(registrar_, LoadRegistrar(server_.data_dir()));
  }

  // Enough records that a backup's stream is several times any HTTP/2 window
  // and relay threshold below: 50 registrations (acknowledged into `acked`),
  // then keys added in batches.
  void Fill(std::vector<Acked>* acked) {
    std::vector<Org> orgs;
    for (int i = 0; i < 50; ++i) {
      v1::Receipt receipt;
      ASSERT_OK_AND_ASSIGN(Org org, client_->RegisterOrg(registrar_, absl::StrCat("before-", i), 1, &receipt));
      acked->push_back({receipt.position(), org.id});
      orgs.push_back(std::move(org));
    }
    for (int batch = 0; batch < kFillBatches; ++batch) {
      std::vector<v1::SignedEvent> events;
      for (const Org& org : orgs) events.push_back(client_->KeyAddedEvent(org, org.id, crypto::PrivateKey::Generate()));
      v1::AppendBatchResponse response;
      ASSERT_GRPC_OK(client_->AppendBatch(events, &response));
    }
  }
  static constexpr int kFillBatches = 30;

  CtlResult Ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {"--server", server_.address()});
    return RunCtl(args, 120);
  }

  // A backup of the current server into a fresh directory under scratch_.
  std::string TakeBackup(const std::string& name) {
    const std::string dir = scratch_.Path(name);
    CtlResult r = Ctl({"backup", "--out", dir});
    EXPECT_TRUE(Succeeded(r)) << r;
    return dir;
  }

  static std::vector<std::string> Listing(const std::string& dir) {
    std::vector<std::string> names;
    for (const auto& entry : fs::recursive_directory_iterator(dir)) names.push_back(entry.path().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  LedgerdProcess server_;
  std::unique_ptr<LedgerClient> client_;
  Org registrar_;
  TempDir scratch_{"ledger-backup-test"};
};

// A Backup whose client reads its first chunk and no more, through a fixed
// HTTP/2 window (no BDP probing), so the server cannot send the rest ahead
// into buffers: it holds the backup slot until it goes away or stalls.
struct HeldBackup {
  std::unique_ptr<v1::BackupService::Stub> stub;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::BackupChunk>> reader;
  bool first = false;

  explicit HeldBackup(const std::string& address) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    stub = v1::BackupService::NewStub(grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
    reader = stub->Backup(&context, v1::BackupRequest());
    v1::BackupChunk chunk;
    first = reader->Read(&chunk) && !chunk.has_manifest();
  }
  // Reads what is left of the call: its final status, and whether the
  // manifest (the last message) came.
  grpc::Status ReadRest(bool* manifest) {
    v1::BackupChunk chunk;
    while (reader->Read(&chunk)) *manifest |= chunk.has_manifest();
    return reader->Finish();
  }
};

// Bytes of a backup's stream after which the relay holds it: more than
// anything the server sends before its first chunk (HTTP/2 settings, headers),
// so by then the server has taken its copy.
constexpr size_t kHeldAfter = 32 << 10;

TEST_F(BackupTest, BackupDuringWritesRestoresEveryAcknowledgedEvent) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  std::mutex mu;
  std::vector<Acked> acked;  // guarded by mu
  ASSERT_NO_FATAL_FAILURE(Fill(&acked));

  // Another thread keeps appending until the backup has returned.
  std::atomic<bool> stop{false};
  std::atomic<int> writer_errors{0};
  std::thread writer([&] {
    LedgerClient client(server_.address(), /*own_connection=*/true);
    if (!client.Init().ok()) {
      writer_errors++;
      return;
    }
    for (int i = 0; !stop.load(); ++i) {
      v1::Receipt receipt;
      auto org = client.RegisterOrg(registrar_, absl::StrCat("writer-", i), 1, &receipt);
      if (!org.ok()) {
        writer_errors++;
        return;
      }
      std::lock_guard<std::mutex> lock(mu);
      acked.push_back({receipt.position(), org->id});
    }
  });
  // Everything acknowledged before the backup call begins.
  std::vector<Acked> before;
  {
    std::lock_guard<std::mutex> lock(mu);
    before = acked;
  }
  // ledgerctl backup, through a relay that holds the stream once kHeldAfter
  // bytes of it have passed: the server has taken its copy, and ledgerctl
  // cannot have returned.
  TcpRelay relay(PortOf(server_.address()));
  relay.Hold(kHeldAfter);
  const std::string backup = scratch_.Path("backup");
  CtlResult r;
  std::thread backup_call([&] {
    r = RunCtl({"--server", relay.address(), "backup", "--out", backup}, 120);
    relay.Cut();  // (ends WaitHeld if the stream never reached kHeldAfter)
  });
  const bool held = relay.WaitHeld();
  // Acknowledged while the backup runs: after it took its copy, before it
  // returned.
  std::vector<Acked> during;
  for (int i = 0; held && i < 5; ++i) {
    v1::Receipt receipt;
    auto org = client_->RegisterOrg(registrar_, absl::StrCat("during-", i), 1, &receipt);
    EXPECT_TRUE(org.ok()) << org.status();
    if (org.ok()) during.push_back({receipt.position(), org->id});
  }
  relay.Release();
  backup_call.join();
  stop = true;
  writer.join();
  ASSERT_TRUE(held) << "the backup's stream ended before " << kHeldAfter << " bytes: " << r;
  ASSERT_TRUE(Succeeded(r)) << r;
  const std::string backup_out = r.out;
  EXPECT_EQ(writer_errors.load(), 0);
  EXPECT_TRUE(absl::StrContains(r.out, "backup of ")) << r;
  EXPECT_TRUE(absl::StrContains(r.out, "written to " + backup)) << r;
  EXPECT_TRUE(fs::exists(backup + "/MANIFEST.json"));
  EXPECT_TRUE(fs::exists(backup + "/operator.pub.pem"));
  EXPECT_FALSE(fs::exists(backup + "/operator.key.pem")) << "the operator private key is never in a backup";
  EXPECT_FALSE(fs::exists(backup + "/registrar.key.pem"));
  EXPECT_FALSE(fs::exists(backup + ".partial"));
  EXPECT_FALSE(fs::exists(server_.data_dir() + "/backup.tmp")) << "the server removes its checkpoint";
  size_t after_start;
  {
    std::lock_guard<std::mutex> lock(mu);
    after_start = acked.size() - before.size();
  }
  std::cout << backup_out.substr(0, backup_out.find('\n')) << "\n";
  std::cout << "events acknowledged while the backup ran: " << during.size() << " held, " << after_start
            << " by the writer (or after it began)\n";

  // Restore into the data directory a second ledgerd will use.
  LedgerdProcess restored;
  r = RunCtl({"restore", backup, "--data", restored.data_dir(), "--operator-private-key",
              server_.data_dir() + "/operator.key.pem"},
             120);
  ASSERT_TRUE(Succeeded(r)) << r;
  EXPECT_TRUE(absl::StrContains(r.out, "restored ")) << r;
  EXPECT_TRUE(absl::StrContains(r.out, "VERIFIED")) << r;
  EXPECT_FALSE(absl::StrContains(r.out, "NOT VERIFIED")) << r;
  absl::Status started = restored.Start();
  ASSERT_TRUE(started.ok()) << started;
  LedgerClient copy(restored.address());
  ASSERT_OK(copy.Init());
  EXPECT_EQ(copy.info().ledger_id(), client_->info().ledger_id());
  ASSERT_OK_AND_ASSIGN(uint64_t restored_size, copy.TreeSize());
  ASSERT_GE(restored_size, before.back().position + 1);
  // The acknowledged positions span the backup's copy (of `copied`
  // records): those acknowledged before it began are in it, those
  // acknowledged while it was held came after it and are not.
  uint64_t copied = 0;
  const size_t at = backup_out.find("backup of ");
  ASSERT_NE(at, std::string::npos) << backup_out;
  ASSERT_TRUE(absl::SimpleAtoi(backup_out.substr(at + 10, backup_out.find(' ', at + 10) - at - 10), &copied))
      << backup_out;
  EXPECT_EQ(restored_size, copied);
  EXPECT_GT(copied, before.back().position);
  ASSERT_EQ(during.size(), 5u);
  for (const Acked& event : during) EXPECT_GE(event.position, copied) << event.org_id;

  // Every event acknowledged before the backup began is there, byte for byte.
  for (const Acked& event : before) {
    ASSERT_OK_AND_ASSIGN(v1::RecordEntry original, client_->Get(event.position));
    ASSERT_OK_AND_ASSIGN(v1::RecordEntry copied, copy.Get(event.position));
    EXPECT_EQ(copied.SerializeAsString(), original.SerializeAsString()) << "position " << event.position;
  }
  // And every record of the copy is the original's (the copy is a prefix).
  for (uint64_t position = 0; position < restored_size; ++position) {
    ASSERT_OK_AND_ASSIGN(v1::RecordEntry original, client_->Get(position));
    ASSERT_OK_AND_ASSIGN(v1::RecordEntry copied, copy.Get(position));
    ASSERT_EQ(copied.SerializeAsString(), original.SerializeAsString()) << "position " << position;
  }

  // The restored server's own full verification passes, and it takes appends.
  r = RunCtl({"--server", restored.address(), "verify-server"}, 120);
  EXPECT_TRUE(Succeeded(r)) << r;
  v1::Receipt receipt;
  ASSERT_OK_AND_ASSIGN(Org after, copy.RegisterOrg(registrar_, "after-restore", 1, &receipt));
  EXPECT_GE(receipt.position(), restored_size);
  ASSERT_OK_AND_ASSIGN(uint64_t grown, copy.TreeSize());
  EXPECT_GT(grown, restored_size);
}

TEST_F(BackupTest, FlippedByteIsRefusedByRestoreNamingTheFile) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  for (int i = 0; i < 20; ++i) ASSERT_OK(client_->RegisterOrg(registrar_, absl::StrCat("org-", i)).status());
  const std::string backup = TakeBackup("backup");
  // The largest table file holds the records.
  std::string victim;
  uintmax_t largest = 0;
  for (const auto& entry : fs::directory_iterator(backup + "/db")) {
    if (entry.path().extension() == ".sst" && entry.file_size() > largest) {
      largest = entry.file_size();
      victim = entry.path().filename().string();
    }
  }
  ASSERT_FALSE(victim.empty());
  std::string bytes = ReadFileBytes(backup + "/db/" + victim);
  bytes[bytes.size() / 2] ^= 0x01;
  WriteFileBytes(backup + "/db/" + victim, bytes);

  const std::string target = scratch_.Path("restored");
  CtlResult r = RunCtl({"restore", backup, "--data", target});
  EXPECT_TRUE(Failed(r, 1, "backup file db/" + victim + " does not match the manifest")) << r;
  EXPECT_FALSE(fs::exists(target)) << "nothing is written";
  EXPECT_FALSE(fs::exists(target + ".partial"));
}

TEST_F(BackupTest, UnlistedAndMissingFilesAreNamed) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string backup = TakeBackup("backup");
  WriteFileBytes(backup + "/db/extra.sst", "not from the server");
  const std::string target = scratch_.Path("restored");
  CtlResult r = RunCtl({"restore", backup, "--data", target});
  EXPECT_TRUE(Failed(r, 1, "backup file db/extra.sst is not in the manifest")) << r;
  EXPECT_FALSE(fs::exists(target));
  fs::remove(backup + "/db/extra.sst");
  fs::remove(backup + "/db/CURRENT");
  r = RunCtl({"restore", backup, "--data", target});
  EXPECT_TRUE(Failed(r, 1, "backup file db/CURRENT cannot be read")) << r;
  EXPECT_FALSE(fs::exists(target));
  EXPECT_FALSE(fs::exists(target + ".partial"));
}

TEST_F(BackupTest, RestoreAndBackupRefuseANonEmptyDirectory) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string backup = TakeBackup("backup");
  const std::string target = scratch_.Path("occupied");
  fs::create_directories(target);
  WriteFileBytes(target + "/keep.txt", "mine");
  CtlResult r = RunCtl({"restore", backup, "--data", target});
  EXPECT_TRUE(Failed(r, 1, "is not empty")) << r;
  EXPECT_EQ(Listing(target), std::vector<std::string>{target + "/keep.txt"}) << "nothing is written";
  EXPECT_EQ(ReadFileBytes(target + "/keep.txt"), "mine");

  r = Ctl({"backup", "--out", target});
  EXPECT_TRUE(Failed(r, 1, "is not empty")) << r;
  EXPECT_EQ(Listing(target), std::vector<std::string>{target + "/keep.txt"});
  EXPECT_FALSE(fs::exists(target + ".partial"));

  // A private key that is not the operator's is refused; nothing written.
  const std::string fresh = scratch_.Path("fresh");
  const std::string other_key = scratch_.Path("other.pem");
  ASSERT_TRUE(Succeeded(RunCtl({"keygen", "--out", other_key})));
  r = RunCtl({"restore", backup, "--data", fresh, "--operator-private-key", other_key});
  EXPECT_TRUE(Failed(r, 1, "not of the backup's operator key")) << r;
  EXPECT_FALSE(fs::exists(fresh));
  EXPECT_FALSE(fs::exists(fresh + ".partial"));
}

// A data volume's mount point exists (maybe with lost+found) and cannot be
// replaced by a rename from its parent's file system: restore fills it in
// place, and a ledgerd on it serves the copy.
TEST_F(BackupTest, RestoreFillsAnExistingEmptyDirectoryKeepingLostAndFound) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string backup = TakeBackup("backup");
  const std::string volume = scratch_.Path("volume");
  fs::create_directories(volume + "/lost+found");
  CtlResult r = RunCtl({"restore", backup, "--data", volume, "--operator-private-key",
                        server_.data_dir() + "/operator.key.pem"});
  ASSERT_TRUE(Succeeded(r)) << r;
  EXPECT_TRUE(fs::is_directory(volume + "/lost+found"));
  EXPECT_TRUE(fs::is_directory(volume + "/db"));
  EXPECT_FALSE(fs::exists(volume + "/.restore.partial"));
  EXPECT_FALSE(fs::exists(volume + ".partial"));
  LedgerdProcess restored;
  restored.set_data_dir(volume);
  ASSERT_OK(restored.Start());
  LedgerClient client(restored.address());
  ASSERT_OK(client.Init());
}

// Restore verifies against the operator key the restorer trusts: another one
// is refused before anything is written.
TEST_F(BackupTest, RestoreRefusesABackupOfAnotherOperatorKey) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string backup = TakeBackup("backup");
  const std::string other = scratch_.Path("other.pem");
  const std::string other_pub = scratch_.Path("other.pub.pem");
  ASSERT_TRUE(Succeeded(RunCtl({"keygen", "--out", other, "--public-out", other_pub})));
  const std::string target = scratch_.Path("restored");
  CtlResult r = RunCtl({"restore", backup, "--data", target, "--operator-key", other_pub});
  EXPECT_TRUE(Failed(r, 1, "is not the trusted operator key")) << r;
  EXPECT_FALSE(fs::exists(target));
  EXPECT_FALSE(fs::exists(target + ".partial"));
  r = RunCtl({"restore", backup, "--data", target, "--operator-key", server_.data_dir() + "/operator.pub.pem"});
  EXPECT_TRUE(Succeeded(r)) << r;
  EXPECT_FALSE(fs::exists(target + "/operator.key.pem")) << "no private key unless given";
  EXPECT_TRUE(absl::StrContains(r.out, "no operator private key yet")) << r;
}

// One backup at a time, the slot held the way a client holds it
// (HeldBackup). When that client goes away (its connection closes), the slot
// is free again.
TEST_F(BackupTest, SecondBackupWhileOneRunsIsRefusedUntilTheFirstClientGoesAway) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  std::vector<Acked> acked;
  ASSERT_NO_FATAL_FAILURE(Fill(&acked));
  TcpRelay relay(PortOf(server_.address()));
  HeldBackup held(relay.address());
  ASSERT_TRUE(held.first) << "the backup is running: its first chunk came";

  const std::string out = scratch_.Path("second");
  CtlResult r = Ctl({"backup", "--out", out});
  EXPECT_TRUE(Failed(r, 1, "RESOURCE_EXHAUSTED")) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "LIMIT_REACHED")) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "one at a time")) << r;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".partial"));

  // The holding client goes away: the server sees its connection close.
  relay.Cut();
  bool served = false;
  for (int attempt = 0; attempt < 200 && !served; ++attempt) {
    r = Ctl({"backup", "--out", out});
    served = Succeeded(r);
    if (!served) {
      ASSERT_TRUE(Failed(r, 1, "LIMIT_REACHED")) << r;
      ASSERT_FALSE(fs::exists(out));
    }
  }
  EXPECT_TRUE(served) << r;
  std::cout << r.out.substr(0, r.out.find('\n')) << "\n";
  EXPECT_TRUE(fs::exists(out + "/MANIFEST.json"));
  bool manifest = false;
  EXPECT_FALSE(held.ReadRest(&manifest).ok());
}

// The same client, without going away: after --stream-stall-seconds of
// reading nothing it loses the call (CANCELLED, logged) and the slot. The
// freed slot is polled for (at most 30 s; the default 60 s would fail this).
TEST_F(BackupTest, ABackupWhoseClientStopsReadingLosesItsSlotAfterTheStallTimeout) {
  server_.set_extra_args({"--stream-stall-seconds", "5"});
  ASSERT_NO_FATAL_FAILURE(StartServer());
  std::vector<Acked> acked;
  ASSERT_NO_FATAL_FAILURE(Fill(&acked));
  HeldBackup held(server_.address());
  ASSERT_TRUE(held.first) << "the backup is running: its first chunk came";

  const std::string out = scratch_.Path("second");
  CtlResult r = Ctl({"backup", "--out", out});
  EXPECT_TRUE(Failed(r, 1, "LIMIT_REACHED")) << r;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  bool served = false;
  while (!served && std::chrono::steady_clock::now() < deadline) {
    r = Ctl({"backup", "--out", out});
    served = Succeeded(r);
    if (!served) {
      ASSERT_TRUE(Failed(r, 1, "LIMIT_REACHED")) << r;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  EXPECT_TRUE(served) << r;
  // The stalled call ended on the server's side: what the window held, then
  // CANCELLED, no manifest.
  bool manifest = false;
  EXPECT_EQ(held.ReadRest(&manifest).error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_FALSE(manifest);
  EXPECT_TRUE(absl::StrContains(server_.Stderr(), "backup: the client read nothing for 5s")) << server_.Stderr();
}

TEST_F(BackupTest, LeftoverCheckpointIsRemovedAtStart) {
  fs::create_directories(server_.data_dir() + "/backup.tmp/db");
  WriteFileBytes(server_.data_dir() + "/backup.tmp/db/000001.sst", "left by a crash");
  ASSERT_NO_FATAL_FAILURE(StartServer());
  EXPECT_FALSE(fs::exists(server_.data_dir() + "/backup.tmp"));
  // And a backup works after it.
  TakeBackup("backup");
}

}  // namespace
}  // namespace ledger::testing
