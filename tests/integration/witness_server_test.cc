// A real `ledger-witness` process on loopback, spoken to over HTTP
// (cpp-httplib's client): the protocol's answers and headers, its flags, and
// SIGKILL while two forks of one log race for its cosignature.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "httplib.h"
#include "ledger/merkle/checkpoint.h"
#include "ledger/witness/cosignature.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"
#include "tests/support/witness_fixture.h"
#include "tests/support/witness_process.h"

namespace ledger::testing {
namespace {

constexpr char kName[] = "witness.example/w1";

class WitnessServerTest : public ::testing::Test {
 protected:
  WitnessServerTest() : log_("example.test/ledger") {
    for (int i = 0; i < 64; ++i) {
      tree_.Append("leaf " + std::to_string(i));
      fork_.Append(i < 3 ? "leaf " + std::to_string(i) : "fork " + std::to_string(i));
    }
  }

  std::vector<std::string> Args() const { return {"--name", kName, "--log-vkey", log_.vkey.text}; }

  static std::unique_ptr<httplib::Client> Client(int port) {
    auto client = std::make_unique<httplib::Client>("127.0.0.1", port);
    client->set_connection_timeout(10, 0);
    client->set_read_timeout(60, 0);
    client->set_tcp_nodelay(true);
    return client;
  }

  std::string Body(uint64_t old_size, const TestTree& tree, uint64_t size) const {
    return AddCheckpointBody(old_size, old_size == 0 ? std::vector<merkle::Hash>{} : tree.Proof(old_size, size),
                             log_.Checkpoint(tree, size));
  }

  witness::VerifierKey WitnessKey() const {
    std::string text = ReadFileBytes(dir_.Path("witness/witness.vkey"));
    if (!text.empty()) text.pop_back();
    return witness::ParseVerifierKey(text).value();
  }

  TempDir dir_{"witness-it", TempDir::Medium::kTmpfsIfAny};
  TestLog log_;
  TestTree tree_, fork_;
};

TEST_F(WitnessServerTest, ServesAddCheckpointOverHttp) {
  WitnessProcess witness(dir_.Path("witness"), Args());
  ASSERT_OK(witness.Start());
  const witness::VerifierKey vkey = WitnessKey();
  EXPECT_EQ(vkey.name, kName);
  EXPECT_NE(witness.banner().find("  vkey: " + vkey.text + "\n"), std::string::npos) << witness.banner();
  auto client = Client(witness.port());

  auto r = client->Post("/add-checkpoint", Body(0, tree_, 5), "text/plain");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  ASSERT_EQ(r->status, 200) << r->body;
  ASSERT_OK_AND_ASSIGN(merkle::SignedNote note,
                       merkle::ParseSignedNote(witness::AddSignatureLines(log_.Checkpoint(tree_, 5), r->body)));
  ASSERT_OK_AND_ASSIGN(witness::Cosignature cosignature, witness::FindCosignature(note, vkey));
  EXPECT_GT(cosignature.timestamp, 1'600'000'000u);  // now, in POSIX seconds

  r = client->Post("/add-checkpoint", Body(0, tree_, 9), "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 409);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/x.tlog.size");
  EXPECT_EQ(r->body, "5\n");

  r = client->Post("/add-checkpoint", Body(5, fork_, 9), "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 422) << r->body;
  r = client->Post("/add-checkpoint", Body(5, tree_, 9), "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;

  std::string huge = Body(9, tree_, 9);
  huge.resize(64 * 1024 + 1, 'x');
  r = client->Post("/add-checkpoint", huge, "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  r = client->Post("/elsewhere", Body(9, tree_, 9), "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  r = client->Get("/add-checkpoint");
  ASSERT_TRUE(r);
  EXPECT_NE(r->status, 200);

  ASSERT_OK_AND_ASSIGN(int exit_code, witness.Stop());
  EXPECT_EQ(exit_code, 0) << witness.Stderr();
  // The same key and state on the next start.
  ASSERT_OK(witness.Start());
  EXPECT_EQ(WitnessKey().text, vkey.text);
  client = Client(witness.port());
  r = client->Post("/add-checkpoint", Body(0, tree_, 12), "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 409);
  EXPECT_EQ(r->body, "9\n");
}

TEST_F(WitnessServerTest, ServesUnderAPrefix) {
  std::vector<std::string> args = Args();
  args.insert(args.end(), {"--prefix", "/witness/v1.0"});
  WitnessProcess witness(dir_.Path("witness"), args);
  ASSERT_OK(witness.Start());
  auto client = Client(witness.port());
  auto r = client->Post("/add-checkpoint", Body(0, tree_, 5), "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  r = client->Post("/witness/v1X0/add-checkpoint", Body(0, tree_, 5), "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);  // '.' is not a regex wildcard
  r = client->Post("/witness/v1.0/add-checkpoint", Body(0, tree_, 5), "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

TEST_F(WitnessServerTest, BadFlagsExit2NamingTheFlag) {
  const std::string data = dir_.Path("witness");
  const std::string vkey = log_.vkey.text;
  struct Case {
    std::vector<std::string> args;
    std::string named;
  };
  const std::vector<Case> cases = {
      {{"--name", kName, "--log-vkey", vkey}, "--data"},
      {{"--data", data, "--log-vkey", vkey}, "--name"},
      {{"--data", data, "--name", kName}, "--log-vkey"},
      {{"--data", data, "--name", kName, "--log-vkey", "not-a-vkey"}, "--log-vkey"},
      {{"--data", data, "--name", kName, "--log-vkey"}, "--log-vkey"},
      {{"--data", data, "--name", kName, "--log-vkey", vkey, "--listen", "nowhere"}, "--listen"},
      {{"--data", data, "--name", kName, "--log-vkey", vkey, "--listen", "127.0.0.1:99999"}, "--listen"},
      {{"--data", data, "--name", kName, "--log-vkey", vkey, "--prefix", "no-slash"}, "--prefix"},
      {{"--data", data, "--name", kName, "--log-vkey", vkey, "--frobnicate", "1"}, "--frobnicate"},
  };
  for (const Case& c : cases) {
    std::string err;
    EXPECT_EQ(RunWitness(c.args, &err), 2) << c.named << ": " << err;
    EXPECT_NE(err.find(c.named), std::string::npos) << err;
  }
  // A bad name is refused before anything is written; a DIR keeps its name.
  std::string err;
  EXPECT_EQ(RunWitness({"--data", data, "--name", "bad name", "--log-vkey", vkey}, &err), 1) << err;
  EXPECT_NE(err.find("bad name"), std::string::npos) << err;
  {
    WitnessProcess witness(data, Args());
    ASSERT_OK(witness.Start());
  }
  EXPECT_EQ(RunWitness({"--data", data, "--name", "witness.example/w2", "--log-vkey", vkey, "--listen",
                        "127.0.0.1:0"},
                       &err),
            1)
      << err;
  EXPECT_NE(err.find(kName), std::string::npos) << err;
}

// Clients of two forks signed by the same log key race for cosignatures while
// the witness is killed (SIGKILL) and restarted three times. Over every 200
// answer: at most one root per size, all beyond the common prefix from one
// fork, and never a size below one already cosigned and answered before the
// request was sent. After it all, the witness holds at least the largest
// answered size, with that fork's root.
TEST_F(WitnessServerTest, SigkillWhileForksRaceNeverCosignsTwoRootsForOneSize) {
  WitnessProcess witness(dir_.Path("witness"), Args());
  ASSERT_OK(witness.Start());
  const witness::VerifierKey vkey = WitnessKey();

  std::mutex mu;
  std::condition_variable changed;
  int port = witness.port();  // guarded by mu
  int generation = 0;         // guarded by mu: restarts so far
  bool restarts_done = false;  // guarded by mu
  struct Answer {
    uint64_t size;
    merkle::Hash root;
    int fork;
    uint64_t floor;  // largest size answered 200 before the request was sent
  };
  std::vector<Answer> answers;  // guarded by mu
  std::atomic<uint64_t> largest_answered{0};
  std::atomic<int> ok_count{0}, connection_errors{0}, bad_cosignatures{0};
  std::atomic<int> running_clients{0};

  constexpr int kClients = 6;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    ++running_clients;
    clients.emplace_back([&, c] {
      const int fork = c % 2;
      const TestTree& tree = fork == 0 ? tree_ : fork_;
      int my_generation;
      std::unique_ptr<httplib::Client> client;
      {
        std::lock_guard<std::mutex> lock(mu);
        my_generation = generation;
        client = Client(port);
      }
      uint64_t old_size = 0;
      for (uint64_t size = 1 + c; size <= tree.size(); size += 1 + (size * 7 + c) % 3) {
        for (int attempt = 0; attempt < 6; ++attempt) {
          if (old_size > size) break;
          const uint64_t floor = largest_answered.load();
          auto r = client->Post("/add-checkpoint", Body(old_size, tree, size), "text/plain");
          if (!r) {
            // Killed under us: wait for the restart, then try again.
            ++connection_errors;
            std::unique_lock<std::mutex> lock(mu);
            changed.wait(lock, [&] { return generation != my_generation || restarts_done; });
            my_generation = generation;
            client = Client(port);
            continue;
          }
          if (r->status == 409 && r->get_header_value("Content-Type") == "text/x.tlog.size") {
            old_size = std::stoull(r->body);
            continue;
          }
          if (r->status == 200) {
            auto note = merkle::ParseSignedNote(witness::AddSignatureLines(log_.Checkpoint(tree, size), r->body));
            if (!note.ok() || !witness::FindCosignature(*note, vkey).ok()) ++bad_cosignatures;
            {
              std::lock_guard<std::mutex> lock(mu);
              answers.push_back({size, tree.Root(size), fork, floor});
              uint64_t seen = largest_answered.load();
              while (seen < size && !largest_answered.compare_exchange_weak(seen, size)) {
              }
              ++ok_count;
            }
            changed.notify_all();
            old_size = size;
          }
          break;  // 200, or refused (422 / 409 root): on to the next size
        }
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        --running_clients;
      }
      changed.notify_all();
    });
  }

  // Kill after every 6 more cosignatures (or when the clients are done).
  for (int round = 1; round <= 3; ++round) {
    {
      std::unique_lock<std::mutex> lock(mu);
      changed.wait(lock, [&] { return ok_count.load() >= 6 * round || running_clients.load() == 0; });
    }
    absl::Status restarted = witness.Kill();
    if (restarted.ok()) restarted = witness.Start();
    if (!restarted.ok()) {
      ADD_FAILURE() << restarted;  // the clients give up once restarts_done
      break;
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      port = witness.port();
      ++generation;
    }
    changed.notify_all();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    restarts_done = true;
  }
  changed.notify_all();
  for (std::thread& t : clients) t.join();

  EXPECT_EQ(bad_cosignatures.load(), 0);
  ASSERT_GE(answers.size(), 6u);
  std::map<uint64_t, merkle::Hash> root_at;
  std::set<int> forks_beyond_prefix;
  uint64_t largest = 0;
  int winner = -1;
  for (const Answer& a : answers) {
    auto [it, inserted] = root_at.emplace(a.size, a.root);
    EXPECT_EQ(it->second, a.root) << "two roots cosigned for size " << a.size;
    EXPECT_GE(a.size, a.floor) << "cosigned size " << a.size << " after " << a.floor << " was answered";
    if (a.size > 3) {
      forks_beyond_prefix.insert(a.fork);
      winner = a.fork;
    }
    largest = std::max(largest, a.size);
  }
  EXPECT_LE(forks_beyond_prefix.size(), 1u);

  // What the witness holds now: at least what it answered, on that fork.
  auto client = Client(witness.port());
  auto r = client->Post("/add-checkpoint", Body(0, tree_, tree_.size()), "text/plain");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 409) << r->body;
  const uint64_t stored = std::stoull(r->body);
  EXPECT_GE(stored, largest);
  // Its root is the winning fork's (either, if only the common prefix was
  // answered and a lost answer took it further).
  int holds = -1;
  for (int fork : {0, 1}) {
    r = client->Post("/add-checkpoint", Body(stored, fork == 0 ? tree_ : fork_, stored), "text/plain");
    ASSERT_TRUE(r);
    if (r->status == 200) holds = fork;
  }
  ASSERT_NE(holds, -1);
  if (winner != -1 && stored > 3) EXPECT_EQ(holds, winner);
  std::cout << "witness race: " << answers.size() << " cosignatures, " << connection_errors.load()
            << " requests cut by SIGKILL, largest size " << largest << ", stored " << stored << "\n";
}

// Not a test: the figures README "Running a witness" quotes. Run with
//   build/tests/witness_server_test --gtest_also_run_disabled_tests \
//     --gtest_filter='*DISABLED_MeasureCosigning*'
// One client on one keep-alive connection advances the log one leaf per
// request (each persisted with two fsyncs) on the system temporary
// directory's disk, then 4 clients race for the same sizes.
TEST_F(WitnessServerTest, DISABLED_MeasureCosigning) {
  TempDir disk("witness-bench");
  TestTree tree;
  constexpr uint64_t kRequests = 1000;
  for (uint64_t i = 0; i < kRequests; ++i) tree.Append("leaf " + std::to_string(i));
  std::vector<std::string> bodies = {Body(0, tree, 1)};
  for (uint64_t size = 2; size <= kRequests; ++size) bodies.push_back(Body(size - 1, tree, size));
  WitnessProcess witness(disk.Path("witness"), Args());
  ASSERT_OK(witness.Start());
  auto client = Client(witness.port());
  client->set_keep_alive(true);
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& body : bodies) {
    auto r = client->Post("/add-checkpoint", body, "text/plain");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "sequential: " << kRequests << " cosignatures in " << seconds << " s: " << kRequests / seconds
            << " per second, " << 1000 * seconds / kRequests << " ms each\n";
}

}  // namespace
}  // namespace ledger::testing
