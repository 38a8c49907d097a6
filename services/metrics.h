// ledgerd's /metrics (ledgerd --metrics-listen HOST:PORT): the registry of
// ledger/common/metrics.h served over HTTP (cpp-httplib) on a thread of its
// own, and the metrics read from the ledger, its RocksDB and the witness
// collector when scraped. Metric names and meanings: README "Metrics".
//
// Thread contract: Start once, Stop once (or let the destructor); whatever
// the registry's callbacks read must outlive Stop().
#ifndef SERVICES_METRICS_H_
#define SERVICES_METRICS_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "ledger/common/metrics.h"
#include "ledger/store/ledger.h"
#include "services/witness_collector.h"

namespace httplib {
class Server;
}

namespace ledger::services {

// HOST:PORT (HOST may be [v6]); port 0..65535. InvalidArgument naming the
// value otherwise.
struct HostPort {
  std::string host;  // without brackets
  int port = 0;
};
absl::StatusOr<HostPort> ParseHostPort(const std::string& text);

// Registers what is read at scrape time: tree size, checkpoint age,
// submissions in flight, RocksDB sizes and write stalls, and (if `witnesses`
// is not null) the witnessed checkpoint's lag. `ledger` and `witnesses`
// outlive every Render of `registry`.
void RegisterLedgerMetrics(metrics::Registry* registry, const store::Ledger* ledger,
                           const WitnessCollector* witnesses);

class MetricsServer {
 public:
  // Serves GET /metrics from `registry` (which outlives the server) on
  // `address`; Unavailable if it cannot listen there.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const HostPort& address,
                                                              const metrics::Registry* registry);
  ~MetricsServer();  // Stop()

  // "http://HOST:PORT/metrics" with the port bound.
  const std::string& url() const { return url_; }
  void Stop();

 private:
  MetricsServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::string url_;
};

}  // namespace ledger::services

#endif  // SERVICES_METRICS_H_
