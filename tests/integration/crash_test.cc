// Crash and storage-failure tests of a real ledgerd (ledgerd_process.h).
//
// KillUnderConcurrentLoad (DESIGN §8: "kill -9 at any moment loses no
// acknowledged event and leaves a ledger that verifies"): several client
// threads append KeyAdded events with unique idempotency keys while the test
// SIGKILLs ledgerd at random moments (seeded; CRASH_TEST_SEED overrides the
// seed) and restarts it on the same data directory. Clients reconnect and
// resend every unacknowledged event with the same bytes, so a resend either
// replays (the event was committed before the kill) or appends. Afterwards
// every acknowledged event is in the log exactly once, at its receipt's
// position, with its bytes; positions are dense; every receipt's checkpoint
// verifies and proves its record included; the first and last checkpoints are
// consistent; and `ledgerctl export` + `ledgerctl verify --operator-key`
// passes.
//
// DiskFullThenFreed: the data directory on a small tmpfs (skipped where
// mounting is not permitted) filled up during appends: appends fail with
// UNAVAILABLE (reason STORAGE), nothing acknowledged is lost, and once space
// is freed appends succeed again.
//
// ReadOnlyDataDirectory: the same data directory made read-only (a read-only
// bind mount; root ignores file modes): ledgerd refuses to start, naming the
// read-only file system; writable again, nothing acknowledged is lost. (A
// disk that turns read-only under a running server is not simulated here: a
// mount with files open for writing cannot be remounted read-only.)
//
// No sleeps as synchronisation: waits are on condition variables and polls,
// each bounded by a deadline.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "ledger/crypto/ed25519.h"
#include "ledger/event/envelope.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/merkle/tree.h"
#include "services/grpc_status.h"
#include "tests/support/ctl_runner.h"
#include "tests/support/ledger_client.h"
#include "tests/support/ledgerd_process.h"
#include "tests/support/status_matchers.h"

namespace ledger::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------- helpers

// The address of the current ledgerd run, published to the clients at every
// (re)start; `generation` counts the runs.
class ServerAddress {
 public:
  void Publish(const std::string& address) {
    std::lock_guard<std::mutex> lock(mu_);
    address_ = address;
    generation_++;
    up_ = true;
    cv_.notify_all();
  }
  void Down() {
    std::lock_guard<std::mutex> lock(mu_);
    up_ = false;
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }
  uint64_t generation() const {
    std::lock_guard<std::mutex> lock(mu_);
    return generation_;
  }
  // Waits (until `deadline`) for a run newer than `generation` to be up:
  // (address, generation), or nullopt if closed or timed out.
  std::optional<std::pair<std::string, uint64_t>> WaitNewer(uint64_t generation, Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_until(lock, deadline, [&] { return closed_ || (up_ && generation_ > generation); });
    if (closed_ || !up_ || generation_ <= generation) return std::nullopt;
    return std::make_pair(address_, generation_);
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string address_;
  uint64_t generation_ = 0;
  bool up_ = false;
  bool closed_ = false;
};

// One event a client must get acknowledged, kept (bytes and all) for resends.
struct Sent {
  std::string author, idempotency_key;
  v1::SignedEvent event;
  std::optional<v1::Receipt> receipt;
  bool replayed = false;
  int attempts = 0;
};

// A fresh KeyAdded event by `org` (adding a new key to itself), sealed by
// `sealer`, with the author and idempotency key it carries.
Sent NewKeyAdded(const LedgerClient& sealer, const Org& org) {
  Sent s;
  s.event = sealer.KeyAddedEvent(org, org.id, crypto::PrivateKey::Generate());
  v1::EventBody body;
  body.ParseFromString(s.event.body());
  s.author = body.author();
  s.idempotency_key = body.idempotency_key();
  return s;
}

// Mounts a tmpfs of `size` (e.g. "8m") on `dir`; false where that is not
// permitted (it needs CAP_SYS_ADMIN).
bool MountTmpfs(const std::string& dir, const std::string& size) {
  const std::string options = absl::StrCat("size=", size, ",mode=0700");
  return ::mount("tmpfs", dir.c_str(), "tmpfs", 0, options.c_str()) == 0;
}

bool Retryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::CANCELLED ||
         code == grpc::StatusCode::DEADLINE_EXCEEDED || code == grpc::StatusCode::UNKNOWN ||
         code == grpc::StatusCode::INTERNAL;
}

// Every record of the log, by position, read in pages.
absl::StatusOr<std::vector<std::string>> ReadAll(LedgerClient& client) {
  std::vector<std::string> records;
  while (true) {
    grpc::ClientContext context;
    client.PrepareCall(&context);
    v1::ReadRequest request;
    request.set_from_position(records.size());
    request.set_limit(1000);
    v1::ReadResponse response;
    grpc::Status s = client.ledger().Read(&context, request, &response);
    if (!s.ok()) return ToAbsl(s);
    for (const v1::RecordEntry& e : response.entries()) {
      if (e.position() != records.size()) {
        return absl::DataLossError(absl::StrCat("Read gave position ", e.position(), " where ", records.size(),
                                                " was due"));
      }
      records.push_back(e.record());
    }
    if (records.size() >= response.tree_size()) return records;
    if (response.entries().empty()) return absl::DataLossError(absl::StrCat("Read stalled at ", records.size()));
  }
}

// Checks that every acknowledged event is in `records` exactly once, at its
// receipt's position, with its bytes; that no (author, idempotency key) is
// used twice; and that every receipt's checkpoint opens and proves the record
// included.
void ExpectAcknowledgedPresentOnce(LedgerClient& client, const std::vector<std::string>& records,
                                   const std::vector<Sent>& acked, bool check_proofs) {
  std::map<std::string, uint64_t> by_identity;
  for (uint64_t p = 0; p < records.size(); ++p) {
    auto record = DecodeRecord(records[p], p);
    ASSERT_TRUE(record.ok()) << record.status();
    auto envelope = DecodeStoredEvent(*record);
    ASSERT_TRUE(envelope.ok()) << envelope.status();
    const std::string identity = envelope->body.author() + '\0' + envelope->body.idempotency_key();
    auto [it, inserted] = by_identity.emplace(identity, p);
    ASSERT_TRUE(inserted) << "idempotency key " << envelope->body.idempotency_key() << " of "
                          << envelope->body.author() << " is in the log twice: at " << it->second << " and " << p;
  }
  for (const Sent& s : acked) {
    ASSERT_TRUE(s.receipt.has_value());
    const uint64_t p = s.receipt->position();
    auto it = by_identity.find(s.author + '\0' + s.idempotency_key);
    ASSERT_NE(it, by_identity.end()) << "acknowledged event " << s.idempotency_key << " (position " << p
                                     << ") is not in the log: LOST";
    EXPECT_EQ(it->second, p) << "acknowledged event " << s.idempotency_key << " is at " << it->second
                             << ", its receipt says " << p;
    ASSERT_LT(p, records.size());
    auto record = DecodeRecord(records[p], p);
    ASSERT_TRUE(record.ok());
    EXPECT_EQ(record->signed_event(), s.event.SerializeAsString())
        << "the record at " << p << " does not hold the acknowledged bytes";
    EXPECT_EQ(s.receipt->leaf_hash(), std::string(merkle::AsBytes(merkle::HashLeaf(records[p]))));
    auto checkpoint = client.OpenCheckpoint(s.receipt->checkpoint());
    ASSERT_TRUE(checkpoint.ok()) << "receipt of " << p << ": " << checkpoint.status();
    EXPECT_EQ(checkpoint->size, s.receipt->tree_size());
    EXPECT_GT(checkpoint->size, p);
    if (check_proofs) {
      absl::Status included = client.VerifyIncluded(p, records[p], *checkpoint);
      EXPECT_TRUE(included.ok()) << "receipt of " << p << ": " << included;
    }
  }
}

// ---------------------------------------------------------------- kill -9

TEST(CrashTest, KillUnderConcurrentLoadLosesNothingAcknowledged) {
  constexpr int kClients = 8;
  constexpr int kEventsPerClient = 100;
  constexpr int kKills = 8;
  uint64_t seed = std::random_device()();
  if (const char* env = std::getenv("CRASH_TEST_SEED")) seed = std::strtoull(env, nullptr, 10);
  std::mt19937_64 rng(seed);
  SCOPED_TRACE(absl::StrCat("CRASH_TEST_SEED=", seed));
  std::cerr << "crash_test: CRASH_TEST_SEED=" << seed << "\n";

  LedgerdProcess server;
  ASSERT_OK(server.Start());
  LedgerClient sealer(server.address());  // seals events; Init'ed once
  ASSERT_OK(sealer.Init());
  auto registrar = LoadRegistrar(server.data_dir());
  ASSERT_TRUE(registrar.ok()) << registrar.status();
  std::vector<Org> orgs;
  for (int c = 0; c < kClients; ++c) {
    auto org = sealer.RegisterOrg(*registrar, absl::StrCat("crash-org-", c));
    ASSERT_TRUE(org.ok()) << org.status();
    orgs.push_back(*org);
  }
  std::string first_note;
  auto first = sealer.GetCheckpoint(0, &first_note);
  ASSERT_TRUE(first.ok()) << first.status();

  ServerAddress address;
  address.Publish(server.address());
  std::atomic<uint64_t> kills{0};
  std::mutex progress_mu;
  std::condition_variable progress_cv;
  uint64_t acked_total = 0;  // guarded by progress_mu
  int clients_done = 0;      // guarded by progress_mu
  std::vector<std::vector<Sent>> sent(kClients);
  std::vector<std::string> errors;  // guarded by progress_mu
  const auto hard_deadline = Clock::now() + std::chrono::seconds(60);

  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      std::unique_ptr<LedgerClient> conn;
      uint64_t generation = 0;
      for (int i = 0; i < kEventsPerClient && Clock::now() < hard_deadline; ++i) {
        Sent s = NewKeyAdded(sealer, orgs[c]);
        while (Clock::now() < hard_deadline) {
          if (conn == nullptr || generation != address.generation()) {
            auto up = address.WaitNewer(generation, hard_deadline);
            if (!up.has_value()) break;
            conn = std::make_unique<LedgerClient>(up->first, /*own_connection=*/true,
                                                  /*wait_for_ready=*/false);
            generation = up->second;
          }
          const uint64_t kills_before = kills.load();
          v1::AppendResponse response;
          s.attempts++;
          grpc::Status status = conn->Append(s.event, &response);  // the same bytes every time
          if (status.ok()) {
            s.receipt = response.receipt();
            s.replayed = response.replayed();
            break;
          }
          if (Retryable(status.error_code()) || kills.load() != kills_before) {
            // Wait for the next run (bounded); the same run again if none comes.
            auto up = address.WaitNewer(generation, std::min(hard_deadline, Clock::now() + std::chrono::seconds(2)));
            if (up.has_value()) {
              conn = std::make_unique<LedgerClient>(up->first, true, false);
              generation = up->second;
            }
            continue;
          }
          std::lock_guard<std::mutex> lock(progress_mu);
          errors.push_back(absl::StrCat("client ", c, " event ", s.idempotency_key, ": ", services::Describe(status)));
          break;
        }
        const bool ok = s.receipt.has_value();
        sent[c].push_back(std::move(s));
        if (!ok) break;  // out of time (or refused): stop this client
        std::lock_guard<std::mutex> lock(progress_mu);
        acked_total++;
        progress_cv.notify_all();
      }
      std::lock_guard<std::mutex> lock(progress_mu);
      clients_done++;
      progress_cv.notify_all();
    });
  }

  // The killer: SIGKILL after a random number of further acknowledgements
  // (plus a random sub-millisecond jitter), then restart on the same data.
  int killed = 0;
  for (int k = 0; k < kKills; ++k) {
    const uint64_t more = std::uniform_int_distribution<uint64_t>(5, 80)(rng);
    {
      std::unique_lock<std::mutex> lock(progress_mu);
      const uint64_t target = acked_total + more;
      progress_cv.wait_until(lock, std::min(hard_deadline, Clock::now() + std::chrono::seconds(10)),
                             [&] { return acked_total >= target || clients_done == kClients; });
      if (clients_done == kClients) break;
    }
    const auto jitter = std::chrono::microseconds(std::uniform_int_distribution<int>(0, 800)(rng));
    for (auto until = Clock::now() + jitter; Clock::now() < until;) {
    }
    kills++;
    address.Down();
    ASSERT_OK(server.Kill());
    killed++;
    absl::Status started = server.Start();
    ASSERT_TRUE(started.ok()) << "ledgerd did not restart after kill " << killed << ": " << started;
    address.Publish(server.address());
  }
  for (std::thread& t : threads) t.join();
  address.Close();
  {
    std::lock_guard<std::mutex> lock(progress_mu);
    ASSERT_TRUE(errors.empty()) << errors.size() << " unexpected refusals; first: " << errors.front();
  }
  EXPECT_GE(killed, 6) << "too few kills happened under load";

  std::vector<Sent> acked;
  int unacked = 0, replays = 0, retried = 0;
  for (auto& per_client : sent) {
    for (Sent& s : per_client) {
      if (!s.receipt.has_value()) {
        unacked++;
        continue;
      }
      replays += s.replayed;
      retried += s.attempts > 1;
      acked.push_back(std::move(s));
    }
  }
  std::cerr << "crash_test: " << killed << " kills, " << acked.size() << " acknowledged (" << retried
            << " after a resend, " << replays << " of them replayed), " << unacked << " never acknowledged\n";
  EXPECT_EQ(unacked, 0) << "clients ran out of time";
  EXPECT_EQ(acked.size(), static_cast<size_t>(kClients * kEventsPerClient));

  LedgerClient client(server.address());
  ASSERT_OK(client.Init());
  auto records = ReadAll(client);
  ASSERT_TRUE(records.ok()) << records.status();
  auto size = client.TreeSize();
  ASSERT_TRUE(size.ok());
  ASSERT_EQ(records->size(), *size) << "positions are not dense";
  ExpectAcknowledgedPresentOnce(client, *records, acked, /*check_proofs=*/true);

  // The log only grew: the first checkpoint seen is consistent with the last.
  std::string last_note;
  auto last = client.GetCheckpoint(0, &last_note);
  ASSERT_TRUE(last.ok()) << last.status();
  ASSERT_EQ(last->size, *size);
  {
    grpc::ClientContext context;
    client.PrepareCall(&context);
    v1::ConsistencyProofRequest request;
    request.set_from_size(first->size);
    request.set_to_size(last->size);
    v1::ConsistencyProofResponse response;
    grpc::Status s = client.audit().GetConsistencyProof(&context, request, &response);
    ASSERT_TRUE(s.ok()) << services::Describe(s);
    auto proof = HashesFromBytes(response.proof());
    ASSERT_TRUE(proof.ok()) << proof.status();
    EXPECT_TRUE(merkle::VerifyConsistency(first->size, last->size, *proof, first->root, last->root).ok())
        << "checkpoint " << first->size << " is not consistent with " << last->size;
  }

  // Offline: export and verify under the operator key.
  const std::string bundle = server.data_dir() + "/../crash.bundle";
  CtlResult exported = RunCtl({"--server", server.address(), "export", "--out", bundle});
  ASSERT_EQ(exported.exit_code, 0) << exported;
  CtlResult verified = RunCtl({"verify", bundle, "--operator-key", server.data_dir() + "/operator.pub.pem"});
  EXPECT_EQ(verified.exit_code, 0) << verified;
  EXPECT_TRUE(absl::StrContains(verified.out, "VERIFIED")) << verified;

  auto stopped = server.Stop();
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(*stopped, 0) << server.Stderr();
}

// ---------------------------------------------------------------- disk full

// True while `pid` runs (not a zombie).
bool Alive(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  const size_t paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] != 'Z';
}

// Unmounts (lazily) on scope exit.
struct Unmount {
  std::string path;
  ~Unmount() {
    if (!path.empty()) ::umount2(path.c_str(), MNT_DETACH);
  }
};

TEST(CrashTest, DiskFullFailsAppendsCleanlyAndRecoversWhenFreed) {
  LedgerdProcess server;
  std::error_code error;
  fs::create_directories(server.data_dir(), error);
  ASSERT_FALSE(error) << error.message();
  if (!MountTmpfs(server.data_dir(), "8m")) {
    GTEST_SKIP() << "cannot mount a tmpfs on the data directory (" << std::strerror(errno)
                 << "): needs CAP_SYS_ADMIN";
  }
  Unmount unmount{server.data_dir()};  // destroyed before `server` removes the directory
  ASSERT_OK(server.Start());
  LedgerClient client(server.address());
  ASSERT_OK(client.Init());
  auto registrar = LoadRegistrar(server.data_dir());
  ASSERT_TRUE(registrar.ok()) << registrar.status();
  auto org = client.RegisterOrg(*registrar, "disk-org");
  ASSERT_TRUE(org.ok()) << org.status();

  std::vector<Sent> acked;
  auto append = [&](grpc::Status* status) {
    Sent s = NewKeyAdded(client, *org);
    v1::AppendResponse response;
    *status = client.Append(s.event, &response);
    if (status->ok()) {
      s.receipt = response.receipt();
      acked.push_back(std::move(s));
    }
  };
  for (int i = 0; i < 20; ++i) {
    grpc::Status s;
    append(&s);
    ASSERT_TRUE(s.ok()) << services::Describe(s);
  }

  // Fill the file system.
  const std::string filler = server.data_dir() + "/filler";
  {
    int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    std::string chunk(64 << 10, 'x');
    size_t bytes = chunk.size();
    while (true) {
      ssize_t n = ::write(fd, chunk.data(), bytes);
      if (n < 0 && errno == ENOSPC) {
        if (bytes == 1) break;
        bytes /= 2;
        continue;
      }
      ASSERT_GT(n, 0) << std::strerror(errno);
    }
    ::close(fd);
  }

  // Appends until one fails: it must be UNAVAILABLE with reason STORAGE.
  grpc::Status failure;
  const size_t before_full = acked.size();
  for (int i = 0; i < 20000; ++i) {
    grpc::Status s;
    append(&s);
    if (!s.ok()) {
      failure = s;
      break;
    }
  }
  EXPECT_TRUE(Alive(server.pid())) << "ledgerd died when the disk filled up; its stderr:\n" << server.Stderr();
  ASSERT_FALSE(failure.ok()) << "appends kept succeeding on a full file system (" << acked.size() - before_full
                             << " after it filled)";
  EXPECT_EQ(failure.error_code(), grpc::StatusCode::UNAVAILABLE) << services::Describe(failure);
  EXPECT_EQ(services::DetailOf(failure).reason(), v1::STORAGE) << services::Describe(failure);
  if (!Alive(server.pid())) {
    // Crashed: restart it to check that nothing acknowledged was lost.
    ASSERT_OK(server.Kill());
    fs::remove(server.data_dir() + "/filler");
    ASSERT_OK(server.Start());
    LedgerClient reader(server.address());
    ASSERT_OK(reader.Init());
    auto records = ReadAll(reader);
    ASSERT_TRUE(records.ok()) << records.status();
    ExpectAcknowledgedPresentOnce(reader, *records, acked, /*check_proofs=*/false);
    FAIL() << "ledgerd died on a full disk (see above); acknowledged events survived the restart";
  }
  std::cerr << "disk full: " << acked.size() - before_full << " appends after filling, then "
            << services::Describe(failure) << "\n";
  // Reads still answer while the disk is full.
  for (const Sent& s : acked) {
    auto entry = client.Get(s.receipt->position());
    ASSERT_TRUE(entry.ok()) << entry.status();
  }

  // Free the space: appends must succeed again (polled, bounded).
  ASSERT_EQ(::unlink(filler.c_str()), 0) << std::strerror(errno);
  grpc::Status last;
  bool recovered = false;
  const auto deadline = Clock::now() + std::chrono::seconds(15);
  while (Clock::now() < deadline) {
    append(&last);
    if (last.ok()) {
      recovered = true;
      break;
    }
    ::poll(nullptr, 0, 50);  // back off between polls
  }
  EXPECT_TRUE(recovered) << "after space was freed, appends still fail: " << services::Describe(last);

  // Nothing acknowledged was lost (checked on the running server, and again
  // after a restart if it did not recover by itself).
  if (!recovered) {
    auto stopped = server.Stop();
    EXPECT_TRUE(stopped.ok() && *stopped == 0) << server.Stderr();
    if (server.running()) ASSERT_OK(server.Kill());
    ASSERT_OK(server.Start());
    LedgerClient after(server.address());
    ASSERT_OK(after.Init());
    append(&last);
    EXPECT_TRUE(last.ok()) << "appends fail even after a restart: " << services::Describe(last);
  }
  LedgerClient reader(server.address());
  ASSERT_OK(reader.Init());
  auto records = ReadAll(reader);
  ASSERT_TRUE(records.ok()) << records.status();
  ExpectAcknowledgedPresentOnce(reader, *records, acked, /*check_proofs=*/false);
  auto stopped = server.Stop();
  ASSERT_TRUE(stopped.ok()) << stopped.status();
}

TEST(CrashTest, ReadOnlyDataDirectoryIsRefusedClearlyAndLosesNothing) {
  LedgerdProcess server;
  std::error_code error;
  fs::create_directories(server.data_dir(), error);
  ASSERT_FALSE(error) << error.message();
  if (!MountTmpfs(server.data_dir(), "64m")) {
    GTEST_SKIP() << "cannot mount a tmpfs on the data directory (" << std::strerror(errno)
                 << "): needs CAP_SYS_ADMIN";
  }
  Unmount unmount_tmpfs{server.data_dir()};
  ASSERT_OK(server.Start());
  LedgerClient client(server.address());
  ASSERT_OK(client.Init());
  auto registrar = LoadRegistrar(server.data_dir());
  ASSERT_TRUE(registrar.ok()) << registrar.status();
  auto org = client.RegisterOrg(*registrar, "read-only-org");
  ASSERT_TRUE(org.ok()) << org.status();
  std::vector<Sent> acked;
  for (int i = 0; i < 10; ++i) {
    Sent s = NewKeyAdded(client, *org);
    v1::AppendResponse response;
    grpc::Status status = client.Append(s.event, &response);
    ASSERT_TRUE(status.ok()) << services::Describe(status);
    s.receipt = response.receipt();
    acked.push_back(std::move(s));
  }
  auto stopped = server.Stop();
  ASSERT_TRUE(stopped.ok() && *stopped == 0) << server.Stderr();

  // The same directory, read-only (root ignores file modes, so a read-only
  // bind mount stands in for a read-only disk): ledgerd refuses to start and
  // says why.
  ASSERT_EQ(::mount(server.data_dir().c_str(), server.data_dir().c_str(), nullptr, MS_BIND, nullptr), 0)
      << std::strerror(errno);
  Unmount unmount_bind{server.data_dir()};
  ASSERT_EQ(::mount(nullptr, server.data_dir().c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr), 0)
      << std::strerror(errno);
  absl::Status refused = server.Start();
  ASSERT_FALSE(refused.ok()) << "ledgerd started on a read-only data directory";
  EXPECT_TRUE(absl::StrContains(refused.message(), "Read-only file system")) << refused;

  // Writable again: everything acknowledged is there, and appends work.
  ASSERT_EQ(::umount2(server.data_dir().c_str(), 0), 0) << std::strerror(errno);
  unmount_bind.path.clear();
  ASSERT_OK(server.Start());
  LedgerClient reader(server.address());
  ASSERT_OK(reader.Init());
  v1::AppendResponse response;
  grpc::Status appended = reader.Append(reader.KeyAddedEvent(*org, org->id, crypto::PrivateKey::Generate()), &response);
  ASSERT_TRUE(appended.ok()) << services::Describe(appended);
  auto records = ReadAll(reader);
  ASSERT_TRUE(records.ok()) << records.status();
  ExpectAcknowledgedPresentOnce(reader, *records, acked, /*check_proofs=*/false);
  stopped = server.Stop();
  ASSERT_TRUE(stopped.ok()) << stopped.status();
}

}  // namespace
}  // namespace ledger::testing
