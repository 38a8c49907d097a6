// Online backup and restore (issue 11 item 2) against real ledgerd processes
// and the real ledgerctl: a backup taken while another thread keeps
// appending holds every event acknowledged before it began; `ledgerctl
// restore` verifies the copy offline and a ledgerd on the restored directory
// serves it (same bytes at every position, verify-server passes, appends
// continue). Adversarial: a byte flipped in a backup file is refused naming
// the file; restore and backup refuse a non-empty directory; restore refuses
// a backup of another operator key than the one trusted; a second backup
// while one runs is RESOURCE_EXHAUSTED; nothing is written on any refusal.
//
// No test asserts a duration or sleeps to synchronise: the writer stops once
// the backup has returned; a running backup is held by the server's test hook
// (LEDGERD_TEST_HOLD_BACKUPS) until the client cancels it.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "ledger/v1/backup_service.grpc.pb.h"
#include "tests/support/ctl_runner.h"
#include "tests/support/ledger_client.h"
#include "tests/support/ledgerd_process.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"

namespace ledger::testing {
namespace {

namespace fs = std::filesystem;

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

TEST_F(BackupTest, BackupDuringWritesRestoresEveryAcknowledgedEvent) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  std::mutex mu;
  std::vector<Acked> acked;  // guarded by mu
  for (int i = 0; i < 50; ++i) {
    v1::Receipt receipt;
    ASSERT_OK_AND_ASSIGN(Org org, client_->RegisterOrg(registrar_, absl::StrCat("before-", i), 1, &receipt));
    acked.push_back({receipt.position(), org.id});
  }

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
      auto org = client.RegisterOrg(registrar_, absl::StrCat("during-", i), 1, &receipt);
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
  const std::string backup = scratch_.Path("backup");
  CtlResult r = Ctl({"backup", "--out", backup});
  stop = true;
  writer.join();
  ASSERT_TRUE(Succeeded(r)) << r;
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
  std::cout << "events acknowledged while the backup ran (or after it began): " << after_start << "\n";

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

TEST_F(BackupTest, SecondBackupWhileOneRunsIsRefused) {
  ASSERT_EQ(setenv("LEDGERD_TEST_HOLD_BACKUPS", "1", 1), 0);
  ASSERT_NO_FATAL_FAILURE(StartServer());
  unsetenv("LEDGERD_TEST_HOLD_BACKUPS");
  auto channel = grpc::CreateChannel(server_.address(), grpc::InsecureChannelCredentials());
  auto stub = v1::BackupService::NewStub(channel);
  grpc::ClientContext context;
  auto reader = stub->Backup(&context, v1::BackupRequest());
  v1::BackupChunk chunk;
  ASSERT_TRUE(reader->Read(&chunk)) << "the held backup sends its first chunk";

  const std::string out = scratch_.Path("second");
  CtlResult r = Ctl({"backup", "--out", out});
  EXPECT_TRUE(Failed(r, 1, "RESOURCE_EXHAUSTED")) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "LIMIT_REACHED")) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "one at a time")) << r;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".partial"));
  context.TryCancel();
  while (reader->Read(&chunk)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
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
