#include "services/metrics.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "httplib.h"
#include "ledger/event/envelope.h"

namespace ledger::services {
namespace {

// The ledger time (Unix ns) of the record at `position`; nullopt if it
// cannot be read (the sample is then left out of the scrape).
std::optional<int64_t> LedgerTimeAt(const store::Ledger* ledger, uint64_t position) {
  absl::StatusOr<v1::RecordEntry> entry = ledger->Get(position);
  if (!entry.ok()) return std::nullopt;
  absl::StatusOr<v1::Record> record = DecodeRecord(entry->record(), position);
  if (!record.ok()) return std::nullopt;
  return record->ledger_time_unix_ns();
}

int64_t NowUnixNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

absl::StatusOr<HostPort> ParseHostPort(const std::string& text) {
  const size_t colon = text.rfind(':');
  int port = -1;
  if (colon != std::string::npos && colon > 0 && colon + 1 < text.size() && colon + 6 >= text.size()) {
    port = 0;
    for (char c : text.substr(colon + 1)) port = (c >= '0' && c <= '9' && port >= 0) ? port * 10 + (c - '0') : -1;
  }
  HostPort out;
  out.host = colon == std::string::npos ? "" : text.substr(0, colon);
  if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']') {
    out.host = out.host.substr(1, out.host.size() - 2);
  } else if (out.host.find_first_of("[]:") != std::string::npos) {
    port = -1;  // an IPv6 address needs its brackets
  }
  if (port < 0 || port > 65535 || out.host.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not HOST:PORT (e.g. 127.0.0.1:9464; port 0 picks one)"));
  }
  out.port = port;
  return out;
}

void RegisterLedgerMetrics(metrics::Registry* registry, const store::Ledger* ledger,
                           const WitnessCollector* witnesses) {
  registry->AddCallbackGauge("ledger_tree_size", "Records in the log (the size of the newest checkpoint).",
                             [ledger] { return static_cast<double>(ledger->size()); });
  registry->AddCallbackGauge(
      "ledger_checkpoint_age_seconds",
      "Seconds since the newest checkpoint was signed (now minus the ledger time of its last record).",
      [ledger]() -> std::optional<double> {
        const uint64_t size = ledger->size();
        if (size == 0) return std::nullopt;
        std::optional<int64_t> signed_at = LedgerTimeAt(ledger, size - 1);
        if (!signed_at.has_value()) return std::nullopt;
        return std::max<int64_t>(0, NowUnixNanos() - *signed_at) / 1e9;
      });
  registry->AddCallbackGauge("ledger_inflight_submissions",
                             "Append and AppendBatch calls accepted and not yet answered.",
                             [ledger] { return static_cast<double>(ledger->inflight_submissions()); });
  if (witnesses != nullptr) {
    registry->AddCallbackGauge(
        "ledger_witnessed_checkpoint_lag_records",
        "Records the newest checkpoint a witness quorum cosigned is behind the newest checkpoint.",
        [ledger, witnesses] {
          const uint64_t size = ledger->size();
          return static_cast<double>(size - std::min(size, witnesses->witnessed_size()));
        });
    registry->AddCallbackGauge(
        "ledger_witnessed_checkpoint_lag_seconds",
        "Ledger time between the newest checkpoint and the newest one a witness quorum cosigned "
        "(from Genesis while none is).",
        [ledger, witnesses]() -> std::optional<double> {
          const uint64_t witnessed = witnesses->witnessed_size();
          const uint64_t size = ledger->size();
          if (size == 0) return std::nullopt;
          if (witnessed >= size) return 0.0;
          std::optional<int64_t> newest = LedgerTimeAt(ledger, size - 1);
          std::optional<int64_t> cosigned = LedgerTimeAt(ledger, witnessed == 0 ? 0 : witnessed - 1);
          if (!newest.has_value() || !cosigned.has_value()) return std::nullopt;
          return std::max<int64_t>(0, *newest - *cosigned) / 1e9;
        });
  }
  struct Property {
    const char* metric;
    const char* help;
    const char* rocksdb;
    bool every_family;
  };
  static constexpr Property kProperties[] = {
      {"ledger_rocksdb_sst_files_bytes", "Size of all SST files (rocksdb.total-sst-files-size, every column family).",
       "rocksdb.total-sst-files-size", true},
      {"ledger_rocksdb_memtable_bytes",
       "Size of all memtables (rocksdb.cur-size-all-mem-tables, every column family).",
       "rocksdb.cur-size-all-mem-tables", true},
      {"ledger_rocksdb_live_data_bytes",
       "Estimated live data (rocksdb.estimate-live-data-size, every column family).",
       "rocksdb.estimate-live-data-size", true},
      {"ledger_rocksdb_write_stopped", "1 while RocksDB stops writes (rocksdb.is-write-stopped), else 0.",
       "rocksdb.is-write-stopped", false},
      {"ledger_rocksdb_delayed_write_rate_bytes",
       "Bytes per second RocksDB lets writes through while it slows them, 0 when it does not "
       "(rocksdb.actual-delayed-write-rate).",
       "rocksdb.actual-delayed-write-rate", false},
  };
  for (const Property& property : kProperties) {
    registry->AddCallbackGauge(property.metric, property.help, [ledger, property]() -> std::optional<double> {
      std::optional<uint64_t> value = ledger->store().IntProperty(property.rocksdb, property.every_family);
      if (!value.has_value()) return std::nullopt;
      return static_cast<double>(*value);
    });
  }
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const HostPort& address,
                                                                    const metrics::Registry* registry) {
  std::unique_ptr<MetricsServer> metrics(new MetricsServer());
  metrics->server_ = std::make_unique<httplib::Server>();
  httplib::Server& server = *metrics->server_;
  server.set_tcp_nodelay(true);
  // A scraper asks once and goes: connections that idle or send a body are
  // closed quickly, and two threads serve them (anyone who can reach the
  // port can open connections; README says to keep it on a scrape network).
  server.new_task_queue = [] { return new httplib::ThreadPool(2); };
  server.set_read_timeout(2, 0);
  server.set_write_timeout(5, 0);
  server.set_keep_alive_max_count(1);
  server.set_payload_max_length(4096);
  server.Get("/metrics", [registry](const httplib::Request&, httplib::Response& response) {
    response.set_content(registry->Render(), metrics::kContentType);
  });
  const int bound = address.port == 0 ? server.bind_to_any_port(address.host)
                                      : (server.bind_to_port(address.host, address.port) ? address.port : -1);
  if (bound <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address.host, ":", address.port));
  }
  metrics->thread_ = std::thread([&server] { server.listen_after_bind(); });
  // stop() is a no-op until the accept loop runs: wait for it.
  while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const std::string shown_host =
      address.host.find(':') != std::string::npos ? "[" + address.host + "]" : address.host;
  metrics->url_ = absl::StrCat("http://", shown_host, ":", bound, "/metrics");
  return metrics;
}

MetricsServer::~MetricsServer() { Stop(); }

void MetricsServer::Stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

}  // namespace ledger::services
