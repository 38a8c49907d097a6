// ledger_readbench: the read side of DESIGN §8, measured against a running
// ledgerd (a benchmark, not a test: it prints figures, asserts nothing).
//
//   ledger_readbench --server HOST:PORT [--queries N] [--json]
//                    [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]
//
// 1. Stream catch-up: one Subscribe from position 0, counting records until
//    the caught-up marker; records/s (target ≥ 200,000/s).
// 2. Governance queries: N calls (default 2000) from one client, cycling
//    through GetProposal, ListProposals, GetCollective, ListVetoes,
//    ListOverrules, ListRefusals and GetHistory over the proposals and
//    collectives the ledger holds; p50/p99 per query and overall, measured at
//    the client (so including the loopback round trip) and at the server
//    (the "server-timing-ns" trailing metadata ledgerd's GovernanceService
//    sends: handler entry to Finish). Target: p99 < 1 ms at the server.
// tools/bench_scale.sh fills a ledger to a million records, runs this, and
// times a restart.
//
// Exit status: 0 when every call succeeded, 1 otherwise, 2 on bad flags.
#include <algorithm>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/channel.h"
#include "client/error_detail.h"
#include "grpcpp/grpcpp.h"
#include "ledger/v1/governance_service.grpc.pb.h"
#include "ledger/v1/ledger_service.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "services/command_line.h"
#include "tools/bench_util.h"

ABSL_FLAG(std::string, server, "", "ledgerd to measure, HOST:PORT (required)");
ABSL_FLAG(int, queries, 2000, "governance queries to time, 1..10000000");
ABSL_FLAG(bool, json, false, "print the report as one JSON object");
ABSL_FLAG(std::string, tls_ca, "", "speak TLS; the server's certificate must chain to this CA");
ABSL_FLAG(std::string, tls_cert, "", "client certificate for mutual TLS");
ABSL_FLAG(std::string, tls_key, "", "the client certificate's private key");

namespace ledger {
namespace {

using bench::Clock;
using bench::Percentile;
using bench::Round;
using bench::Seconds;
using client::CallPolicy;
using client::PrepareCall;

constexpr double kCatchUpTarget = 200'000;  // records/s
constexpr double kQueryP99TargetMs = 1.0;
constexpr auto kCallTimeout = std::chrono::seconds(30);

constexpr char kUsage[] =
    "usage: ledger_readbench --server HOST:PORT [--queries N] [--json]\n"
    "                        [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]\n";

[[noreturn]] void Usage(const std::string& problem) {
  std::cerr << "ledger_readbench: " << problem << "\n" << kUsage;
  std::exit(2);
}

[[noreturn]] void BadQueries(const std::string& value) {
  Usage(absl::StrCat("--queries wants a number in 1..10000000, got '", value, "'"));
}

[[noreturn]] void Fail(const std::string& message) {
  std::cerr << "ledger_readbench: " << message << "\n";
  std::exit(1);
}

struct Flags {
  std::string server;
  int queries = 2000;
  bool json = false;
  client::TlsOptions tls;
};

Flags ParseFlags(int argc, char** argv) {
  const cli::CommandLineError error = cli::ReadCommandLine(
      argc, argv,
      {&absl::GetFlagReflectionHandle(FLAGS_server), &absl::GetFlagReflectionHandle(FLAGS_queries),
       &absl::GetFlagReflectionHandle(FLAGS_json), &absl::GetFlagReflectionHandle(FLAGS_tls_ca),
       &absl::GetFlagReflectionHandle(FLAGS_tls_cert), &absl::GetFlagReflectionHandle(FLAGS_tls_key)},
      kUsage);
  switch (error.kind) {
    case cli::CommandLineError::kNone: break;
    case cli::CommandLineError::kMissingValue: Usage(error.flag + " needs a value");
    case cli::CommandLineError::kBadValue: BadQueries(error.value);
    default: Usage(absl::StrCat("unknown argument '", error.arg, "'"));
  }
  Flags flags;
  flags.server = absl::GetFlag(FLAGS_server);
  flags.queries = absl::GetFlag(FLAGS_queries);
  flags.json = absl::GetFlag(FLAGS_json);
  if (flags.queries < 1 || flags.queries > 10'000'000) BadQueries(absl::StrCat(flags.queries));
  if (flags.server.empty()) Usage("--server HOST:PORT is required");
  absl::StatusOr<client::TlsOptions> tls =
      client::LoadTls(absl::GetFlag(FLAGS_tls_ca), absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key));
  if (!tls.ok()) Usage(std::string(tls.status().message()));
  flags.tls = *std::move(tls);
  return flags;
}

struct CatchUp {
  uint64_t records = 0;
  uint64_t messages = 0;
  double seconds = 0;
  double rate() const { return seconds > 0 ? records / seconds : 0; }
};

CatchUp MeasureCatchUp(v1::LedgerService::Stub& ledger) {
  grpc::ClientContext context;
  context.set_wait_for_ready(true);  // no deadline: as long as the log takes
  v1::SubscribeRequest request;
  request.set_from_position(0);
  CatchUp result;
  const Clock::time_point start = Clock::now();
  std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader = ledger.Subscribe(&context, request);
  v1::SubscribeResponse message;
  uint64_t next = 0;
  bool caught_up = false;
  while (!caught_up && reader->Read(&message)) {
    result.messages++;
    for (const v1::RecordEntry& entry : message.entries()) {
      if (entry.position() != next) {
        Fail(absl::StrCat("Subscribe sent position ", entry.position(), " where ", next, " was due"));
      }
      next++;
    }
    caught_up = message.has_caught_up();
  }
  result.seconds = Seconds(Clock::now() - start);
  result.records = next;
  context.TryCancel();
  (void)reader->Finish();
  if (!caught_up) Fail("Subscribe ended before its caught-up marker");
  return result;
}

// A call's status and the time the server reports it took (-1 if it sent
// no client::kServerTimingMetadata).
struct Timed {
  grpc::Status status;
  double server_ms = -1;
};

// One kind of query: its name, and a call that makes the i-th instance.
struct QueryKind {
  QueryKind(std::string n, std::function<Timed(int)> c) : name(std::move(n)), call(std::move(c)) {}
  std::string name;
  std::function<Timed(int)> call;
  std::vector<double> latencies_ms;         // at the client
  std::vector<double> server_latencies_ms;  // as the server reports them
};

// One measured call (fail-fast, standard deadline); the response is discarded.
template <typename Response, typename Call>
Timed CallOnce(Call call) {
  grpc::ClientContext context;
  PrepareCall(context, kCallTimeout, CallPolicy::kFailFast);
  Response response;
  Timed timed{call(&context, &response)};
  const auto& trailers = context.GetServerTrailingMetadata();
  if (auto it = trailers.find(client::kServerTimingMetadata); it != trailers.end()) {
    const std::string ns(it->second.data(), it->second.size());
    char* end = nullptr;
    const double value = std::strtod(ns.c_str(), &end);
    if (end != ns.c_str() && *end == '\0' && value >= 0) timed.server_ms = value / 1e6;
  }
  return timed;
}

int Main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  auto channel = client::NewChannel(flags.server, {.max_receive_message_bytes = 64 << 20, .tls = flags.tls});
  auto ledger = v1::LedgerService::NewStub(channel);
  auto governance = v1::GovernanceService::NewStub(channel);

  v1::GetLedgerInfoResponse info;
  {
    grpc::ClientContext context;
    PrepareCall(context, kCallTimeout, CallPolicy::kWaitForReady);
    if (grpc::Status s = ledger->GetLedgerInfo(&context, {}, &info); !s.ok()) {
      Fail(absl::StrCat("GetLedgerInfo: ", client::Describe(s)));
    }
  }
  std::cerr << "ledger_readbench: ledger " << info.ledger_id() << ", " << info.tree_size() << " records\n";

  const CatchUp catch_up = MeasureCatchUp(*ledger);

  // What there is to ask about: every proposal (a page at a time).
  std::vector<v1::ProposalSummary> proposals;
  for (std::string token;;) {
    v1::ListProposalsRequest request;
    request.mutable_filter()->set_limit(1000);
    request.mutable_filter()->set_page_token(token);
    v1::ListProposalsResponse response;
    grpc::ClientContext context;
    PrepareCall(context, kCallTimeout, CallPolicy::kWaitForReady);
    if (grpc::Status s = governance->ListProposals(&context, request, &response); !s.ok()) {
      Fail(absl::StrCat("ListProposals: ", client::Describe(s)));
    }
    proposals.insert(proposals.end(), response.proposals().begin(), response.proposals().end());
    token = response.next_page_token();
    if (token.empty()) break;
  }
  if (proposals.empty())
    Fail("the ledger holds no proposals to query (run `ledgerctl demo` against it first)");
  auto proposal = [&](int i) -> const v1::ProposalSummary& { return proposals[i % proposals.size()]; };
  auto filter = [&](int i, bool by_proposal) {
    v1::QueryFilter f;
    f.set_limit(100);
    if (by_proposal) {
      f.set_proposal_id(proposal(i).proposal_id());
    } else {
      f.set_collective_id(proposal(i).collective_id());
    }
    return f;
  };

  std::vector<QueryKind> kinds;
  kinds.emplace_back("GetProposal", [&](int i) {
    v1::GetProposalRequest r;
    r.set_proposal_id(proposal(i).proposal_id());
    return CallOnce<v1::ProposalState>(
        [&](grpc::ClientContext* c, v1::ProposalState* out) { return governance->GetProposal(c, r, out); });
  });
  kinds.emplace_back("ListProposals", [&](int i) {
    v1::ListProposalsRequest r;
    *r.mutable_filter() = filter(i, false);
    return CallOnce<v1::ListProposalsResponse>([&](grpc::ClientContext* c, v1::ListProposalsResponse* out) {
      return governance->ListProposals(c, r, out);
    });
  });
  kinds.emplace_back("GetCollective", [&](int i) {
    v1::GetCollectiveRequest r;
    r.set_collective_id(proposal(i).collective_id());
    return CallOnce<v1::CollectiveState>([&](grpc::ClientContext* c, v1::CollectiveState* out) {
      return governance->GetCollective(c, r, out);
    });
  });
  kinds.emplace_back("ListVetoes", [&](int i) {
    const v1::QueryFilter r = filter(i, false);
    return CallOnce<v1::ListVetoesResponse>([&](grpc::ClientContext* c, v1::ListVetoesResponse* out) {
      return governance->ListVetoes(c, r, out);
    });
  });
  kinds.emplace_back("ListOverrules", [&](int i) {
    const v1::QueryFilter r = filter(i, false);
    return CallOnce<v1::ListOverrulesResponse>([&](grpc::ClientContext* c, v1::ListOverrulesResponse* out) {
      return governance->ListOverrules(c, r, out);
    });
  });
  kinds.emplace_back("ListRefusals", [&](int i) {
    const v1::QueryFilter r = filter(i, false);
    return CallOnce<v1::ListRefusalsResponse>([&](grpc::ClientContext* c, v1::ListRefusalsResponse* out) {
      return governance->ListRefusals(c, r, out);
    });
  });
  kinds.emplace_back("GetHistory", [&](int i) {
    const v1::QueryFilter r = filter(i, true);
    return CallOnce<v1::HistoryResponse>(
        [&](grpc::ClientContext* c, v1::HistoryResponse* out) { return governance->GetHistory(c, r, out); });
  });

  std::vector<double> all_ms, all_server_ms;
  int failures = 0, untimed = 0;
  std::string first_error;
  const double load_before = bench::LoadAverage();
  for (int i = 0; i < flags.queries; ++i) {
    QueryKind& kind = kinds[i % kinds.size()];
    const Clock::time_point start = Clock::now();
    const Timed timed = kind.call(i / static_cast<int>(kinds.size()));
    const double ms = Seconds(Clock::now() - start) * 1000;
    if (!timed.status.ok()) {
      if (failures++ == 0) first_error = absl::StrCat(kind.name, ": ", client::Describe(timed.status));
      continue;
    }
    kind.latencies_ms.push_back(ms);
    all_ms.push_back(ms);
    if (timed.server_ms < 0) {
      untimed++;
      continue;
    }
    kind.server_latencies_ms.push_back(timed.server_ms);
    all_server_ms.push_back(timed.server_ms);
  }
  const double load_after = bench::LoadAverage();
  for (QueryKind& kind : kinds) {
    std::sort(kind.latencies_ms.begin(), kind.latencies_ms.end());
    std::sort(kind.server_latencies_ms.begin(), kind.server_latencies_ms.end());
  }
  std::sort(all_ms.begin(), all_ms.end());
  std::sort(all_server_ms.begin(), all_server_ms.end());
  const double p99 = Percentile(all_ms, 0.99);
  const double server_p99 = Percentile(all_server_ms, 0.99);
  const bool server_timed = !all_server_ms.empty() && untimed == 0;

  if (flags.json) {
    using Json = nlohmann::ordered_json;
    Json kinds_json = Json::object();
    for (const QueryKind& kind : kinds) {
      kinds_json[kind.name] = {{"p50_ms", Round(Percentile(kind.latencies_ms, 0.5), 3)},
                               {"p99_ms", Round(Percentile(kind.latencies_ms, 0.99), 3)},
                               {"server_p50_ms", Round(Percentile(kind.server_latencies_ms, 0.5), 4)},
                               {"server_p99_ms", Round(Percentile(kind.server_latencies_ms, 0.99), 4)}};
    }
    const Json out = {
        {"records", info.tree_size()},
        {"catch_up",
         {{"records", catch_up.records},
          {"messages", catch_up.messages},
          {"seconds", Round(catch_up.seconds, 3)},
          {"per_second", Round(catch_up.rate(), 1)}}},
        {"queries",
         {{"count", all_ms.size()},
          {"failures", failures},
          {"p50_ms", Round(Percentile(all_ms, 0.5), 3)},
          {"p99_ms", Round(p99, 3)},
          {"max_ms", Round(all_ms.empty() ? 0 : all_ms.back(), 3)},
          {"server_p50_ms", Round(Percentile(all_server_ms, 0.5), 4)},
          {"server_p99_ms", Round(server_p99, 4)},
          {"server_max_ms", Round(all_server_ms.empty() ? 0 : all_server_ms.back(), 4)},
          {"untimed_by_server", untimed},
          {"kinds", kinds_json}}},
        {"first_error", first_error.empty() ? Json(nullptr) : Json(first_error)},
        {"load_average", {Round(load_before, 2), Round(load_after, 2)}}};
    std::cout << bench::DumpJson(out) << "\n";
  } else {
    std::cout << absl::StrFormat("ledger of %d records (%d proposals); 1-min load average %.2f -> %.2f\n\n",
                                 info.tree_size(), proposals.size(), load_before, load_after);
    std::cout << absl::StrFormat("stream catch-up: %d records in %.3f s (%d messages): %.0f records/s\n\n",
                                 catch_up.records, catch_up.seconds, catch_up.messages, catch_up.rate());
    std::cout << absl::StrFormat("%-14s %8s %9s %9s  %13s %13s\n", "query", "count", "p50 ms", "p99 ms",
                                 "server p50 ms", "server p99 ms");
    for (const QueryKind& kind : kinds) {
      std::cout << absl::StrFormat("%-14s %8d %9.3f %9.3f  %13.4f %13.4f\n", kind.name, kind.latencies_ms.size(),
                                   Percentile(kind.latencies_ms, 0.5), Percentile(kind.latencies_ms, 0.99),
                                   Percentile(kind.server_latencies_ms, 0.5),
                                   Percentile(kind.server_latencies_ms, 0.99));
    }
    std::cout << absl::StrFormat("%-14s %8d %9.3f %9.3f  %13.4f %13.4f\n\n", "all", all_ms.size(),
                                 Percentile(all_ms, 0.5), p99, Percentile(all_server_ms, 0.5), server_p99);
    if (failures) std::cout << failures << " queries failed; first: " << first_error << "\n";
    if (untimed) std::cout << untimed << " answers carried no server timing (an older ledgerd?)\n";
    std::cout << "targets (DESIGN.md §8):\n"
              << absl::StrFormat("  %s  stream catch-up >= 200000 records/s         %.0f/s\n",
                                 catch_up.rate() >= kCatchUpTarget ? "PASS" : "MISS", catch_up.rate())
              << absl::StrFormat("  %s  governance query p99 < 1 ms (at the server) %s\n",
                                 server_timed && server_p99 < kQueryP99TargetMs ? "PASS" : "MISS",
                                 server_timed ? absl::StrFormat("%.4f ms", server_p99) : "not reported")
              << absl::StrFormat("        (at the client, loopback round trip included: %.3f ms)\n", p99);
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace ledger

int main(int argc, char** argv) { return ledger::Main(argc, argv); }
