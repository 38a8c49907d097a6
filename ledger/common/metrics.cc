#include "ledger/common/metrics.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

namespace ledger::metrics {
namespace {

std::string EscapeHelp(std::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void Header(std::string* out, const std::string& name, const std::string& help, const char* type) {
  *out += "# HELP " + name + " " + EscapeHelp(help) + "\n";
  *out += "# TYPE " + name + " " + type + "\n";
}

void Sample(std::string* out, const std::string& name, std::string_view labels, double value) {
  *out += name;
  if (!labels.empty()) {
    *out += "{";
    *out += labels;
    *out += "}";
  }
  *out += " " + FormatValue(value) + "\n";
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 9.007199254740992e15) {
    return std::to_string(static_cast<int64_t>(value));
  }
  char buffer[64];
  // Plain decimals ("0.0005", not "5e-04") where they stay short.
  const double magnitude = std::fabs(value);
  const std::chars_format format =
      magnitude >= 1e-6 && magnitude < 1e15 ? std::chars_format::fixed : std::chars_format::general;
  auto [end, error] = std::to_chars(buffer, buffer + sizeof(buffer), value, format);
  return std::string(buffer, end);
}

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  size_t bucket = 0;
  while (bucket < bounds_.size() && value > bounds_[bucket]) ++bucket;
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  double sum = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(sum, sum + value, std::memory_order_relaxed)) {
  }
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot snapshot;
  snapshot.cumulative.reserve(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    snapshot.cumulative.push_back(running);
  }
  // The count is the +Inf bucket, so a scrape is self-consistent even while
  // observations land.
  snapshot.count = running;
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

Counter* CounterFamily::With(const std::vector<std::string>& label_values) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<Counter>& child = children_[label_values];
  if (child == nullptr) child = std::make_unique<Counter>();
  return child.get();
}

std::vector<std::pair<std::vector<std::string>, uint64_t>> CounterFamily::Read() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<std::vector<std::string>, uint64_t>> out;
  out.reserve(children_.size());
  for (const auto& [labels, counter] : children_) out.emplace_back(labels, counter->value());
  return out;
}

Registry::Entry& Registry::Add(std::string name, std::string help) {
  auto entry = std::make_unique<Entry>();
  entry->name = std::move(name);
  entry->help = std::move(help);
  entries_.push_back(std::move(entry));
  return *entries_.back();
}

Counter* Registry::AddCounter(std::string name, std::string help) {
  Entry& entry = Add(std::move(name), std::move(help));
  entry.counter = std::make_unique<Counter>();
  return entry.counter.get();
}

CounterFamily* Registry::AddCounterFamily(std::string name, std::string help, std::vector<std::string> label_names) {
  Entry& entry = Add(std::move(name), std::move(help));
  entry.family = std::make_unique<CounterFamily>(std::move(label_names));
  return entry.family.get();
}

Gauge* Registry::AddGauge(std::string name, std::string help) {
  Entry& entry = Add(std::move(name), std::move(help));
  entry.gauge = std::make_unique<Gauge>();
  return entry.gauge.get();
}

Histogram* Registry::AddHistogram(std::string name, std::string help, std::vector<double> bounds) {
  Entry& entry = Add(std::move(name), std::move(help));
  entry.histogram = std::make_unique<Histogram>(std::move(bounds));
  return entry.histogram.get();
}

void Registry::AddCallbackGauge(std::string name, std::string help, Callback callback) {
  Add(std::move(name), std::move(help)).callback = std::move(callback);
}

void Registry::AddCallbackCounter(std::string name, std::string help, Callback callback) {
  Entry& entry = Add(std::move(name), std::move(help));
  entry.callback = std::move(callback);
  entry.callback_is_counter = true;
}

std::string Registry::Render() const {
  std::string out;
  for (const std::unique_ptr<Entry>& entry : entries_) {
    const std::string& name = entry->name;
    if (entry->counter != nullptr) {
      Header(&out, name, entry->help, "counter");
      Sample(&out, name, "", static_cast<double>(entry->counter->value()));
    } else if (entry->family != nullptr) {
      Header(&out, name, entry->help, "counter");
      const std::vector<std::string>& label_names = entry->family->label_names();
      for (const auto& [values, count] : entry->family->Read()) {
        std::string labels;
        for (size_t i = 0; i < label_names.size() && i < values.size(); ++i) {
          if (i > 0) labels += ",";
          labels += label_names[i] + "=\"" + EscapeLabelValue(values[i]) + "\"";
        }
        Sample(&out, name, labels, static_cast<double>(count));
      }
    } else if (entry->gauge != nullptr) {
      Header(&out, name, entry->help, "gauge");
      Sample(&out, name, "", static_cast<double>(entry->gauge->value()));
    } else if (entry->histogram != nullptr) {
      Header(&out, name, entry->help, "histogram");
      const Histogram::Snapshot snapshot = entry->histogram->Read();
      const std::vector<double>& bounds = entry->histogram->bounds();
      for (size_t i = 0; i <= bounds.size(); ++i) {
        const double le = i < bounds.size() ? bounds[i] : std::numeric_limits<double>::infinity();
        Sample(&out, name + "_bucket", "le=\"" + FormatValue(le) + "\"", static_cast<double>(snapshot.cumulative[i]));
      }
      Sample(&out, name + "_sum", "", snapshot.sum);
      Sample(&out, name + "_count", "", static_cast<double>(snapshot.count));
    } else if (entry->callback) {
      Header(&out, name, entry->help, entry->callback_is_counter ? "counter" : "gauge");
      if (std::optional<double> value = entry->callback(); value.has_value()) Sample(&out, name, "", *value);
    }
  }
  return out;
}

}  // namespace ledger::metrics
