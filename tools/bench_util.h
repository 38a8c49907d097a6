// Small helpers shared by the benchmarks (ledger_loadgen, ledger_readbench).
// Their channels and call policies are the client library's (client/channel.h).
#ifndef TOOLS_BENCH_UTIL_H_
#define TOOLS_BENCH_UTIL_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "nlohmann/json.hpp"

namespace ledger::bench {

using Clock = std::chrono::steady_clock;

inline double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// The p-quantile (0 < p <= 1) of an ascending vector, nearest-rank.
inline double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p * sorted.size()));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

// The 1-minute load average (other work on the machine skews every figure).
inline double LoadAverage() {
  double load = -1;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &load) != 1) load = -1;
    std::fclose(f);
  }
  return load;
}

// `x` rounded to `digits` decimals, for a JSON report: the figures are
// printed as numbers with no more digits than they mean.
inline double Round(double x, int digits) {
  const double scale = std::pow(10.0, digits);
  return std::round(x * scale) / scale;
}

// One JSON document on one line. Invalid UTF-8 (a server's error message
// could hold some) becomes U+FFFD instead of an exception.
inline std::string DumpJson(const nlohmann::ordered_json& json) {
  return json.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// ------------------------------------------------------------------ verify rate
// The one measurement of a verify rate (ledger_loadgen's one-core and
// all-core Ed25519 rates, `ledgerctl verify --bench`'s all-core rate).

struct VerifyResult {
  unsigned threads = 0;
  uint64_t verifies = 0;
  uint64_t failed = 0;  // verify(i) returned false: the sample is wrong
  double seconds = 0;
  double rate() const { return seconds > 0 ? verifies / seconds : 0; }
};

// `verify(i)` checks sample event i; it runs on `threads` threads for
// `seconds`, each thread walking the sample from its own offset.
inline VerifyResult MeasureVerify(const std::function<bool(size_t)>& verify, size_t sample_size,
                                  unsigned threads, double seconds) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> total{0};
  std::atomic<uint64_t> bad{0};
  std::vector<std::thread> pool;
  Clock::time_point start = Clock::now();
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      uint64_t n = 0, wrong = 0;
      size_t i = (t * 7919) % sample_size;
      while (!stop.load(std::memory_order_relaxed)) {
        for (int k = 0; k < 16; ++k) {  // check the stop flag every 16 verifies
          if (!verify(i)) wrong++;
          if (++i == sample_size) i = 0;
          n++;
        }
      }
      total.fetch_add(n);
      bad.fetch_add(wrong);
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop.store(true);
  for (auto& th : pool) th.join();
  VerifyResult result;
  result.seconds = Seconds(Clock::now() - start);
  result.threads = threads;
  result.verifies = total.load();
  result.failed = bad.load();
  return result;
}

}  // namespace ledger::bench

#endif  // TOOLS_BENCH_UTIL_H_
