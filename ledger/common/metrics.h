// A small metrics registry rendered in the Prometheus text exposition format
// 0.0.4 (what ledgerd --metrics-listen serves at /metrics). Debian 12 has no
// prometheus-cpp; this is the part of it ledgerd needs.
//
//   Counter          a monotonic integer (relaxed atomic add)
//   CounterFamily    counters told apart by label values (a map under a
//                    mutex: look the child up once where the path is hot)
//   Gauge            an integer that goes up and down (relaxed atomics)
//   Histogram        fixed bucket bounds, given at registration
//   callback gauges and counters, evaluated when the registry is rendered
//
// Names are the caller's (ledger_..., counters ending _total, units
// _seconds/_bytes); each is registered once. Thread contract: registration
// before the metrics are shared; everything else (updates, Render) from any
// thread. Metrics live as long as the registry; the pointers it hands out
// stay valid until it is destroyed.
#ifndef LEDGER_COMMON_METRICS_H_
#define LEDGER_COMMON_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace ledger::metrics {

class Counter {
 public:
  void Increment(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void Add(int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

class Histogram {
 public:
  // `bounds`: the buckets' upper bounds (inclusive, "le"), ascending; +Inf is
  // added.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // per bound, then +Inf
    uint64_t count = 0;
    double sum = 0;
  };
  Snapshot Read() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1, not cumulative
  std::atomic<double> sum_{0};
};

class CounterFamily {
 public:
  explicit CounterFamily(std::vector<std::string> label_names) : label_names_(std::move(label_names)) {}
  // The counter of these label values (one per label name, in order),
  // created at zero on first use.
  Counter* With(const std::vector<std::string>& label_values) ABSL_LOCKS_EXCLUDED(mu_);
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Every child so far, ordered by label values.
  std::vector<std::pair<std::vector<std::string>, uint64_t>> Read() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const std::vector<std::string> label_names_;
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Counter>> children_ ABSL_GUARDED_BY(mu_);
};

// A value computed when rendered; nullopt leaves the sample out.
using Callback = std::function<std::optional<double>()>;

class Registry {
 public:
  Counter* AddCounter(std::string name, std::string help);
  CounterFamily* AddCounterFamily(std::string name, std::string help, std::vector<std::string> label_names);
  Gauge* AddGauge(std::string name, std::string help);
  Histogram* AddHistogram(std::string name, std::string help, std::vector<double> bounds);
  void AddCallbackGauge(std::string name, std::string help, Callback callback);
  void AddCallbackCounter(std::string name, std::string help, Callback callback);

  // Every metric in registration order, as text format 0.0.4.
  std::string Render() const;

 private:
  struct Entry {
    std::string name, help;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<CounterFamily> family;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
    Callback callback;
    bool callback_is_counter = false;
  };
  Entry& Add(std::string name, std::string help);

  std::vector<std::unique_ptr<Entry>> entries_;
};

// The content type Render's output is served with.
inline constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// A label value as the text format writes it between quotes (\\, \" and \n
// escaped).
std::string EscapeLabelValue(std::string_view value);
// A sample value: integers as integers, +Inf, -Inf, NaN, else shortest
// round-tripping decimal.
std::string FormatValue(double value);

// Bucket bounds for durations of an append: 0.5 ms .. 10 s.
std::vector<double> LatencyBuckets();

}  // namespace ledger::metrics

#endif  // LEDGER_COMMON_METRICS_H_
