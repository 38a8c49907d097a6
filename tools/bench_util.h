// Small helpers shared by the benchmarks (ledger_loadgen, ledger_readbench).
#ifndef TOOLS_BENCH_UTIL_H_
#define TOOLS_BENCH_UTIL_H_

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_format.h"

#include "grpcpp/client_context.h"

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

// `s` as a JSON string literal (quotes, backslashes and control characters
// escaped).
inline std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out.push_back(ch);
    }
  }
  return out + "\"";
}

// A deadline, and whether to wait for the connection: set-up calls wait (a
// failed connection attempt is retried within the deadline); measured calls
// fail at once, so a server that dies mid-run ends the run instead of
// stalling every remaining call for its whole deadline.
enum class Connection { kWaitForReady, kFailFast };
inline void PrepareCall(grpc::ClientContext& context, std::chrono::seconds timeout, Connection connection) {
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  context.set_wait_for_ready(connection == Connection::kWaitForReady);
}

}  // namespace ledger::bench

#endif  // TOOLS_BENCH_UTIL_H_
