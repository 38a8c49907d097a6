// Small helpers shared by the benchmarks (ledger_loadgen, ledger_readbench).
// Their channels and call policies are the client library's (client/channel.h).
#ifndef TOOLS_BENCH_UTIL_H_
#define TOOLS_BENCH_UTIL_H_

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
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

}  // namespace ledger::bench

#endif  // TOOLS_BENCH_UTIL_H_
