// ledger/common/metrics.h: the text format 0.0.4 the registry renders.
#include "ledger/common/metrics.h"

#include <limits>
#include <string>

#include "gtest/gtest.h"

namespace ledger::metrics {
namespace {

TEST(MetricsRegistryTest, RendersEachTypeWithHelpAndType) {
  Registry registry;
  Counter* counter = registry.AddCounter("ledger_things_total", "Things.\nOn two lines, with a \\.");
  Gauge* gauge = registry.AddGauge("ledger_level", "A level.");
  Histogram* histogram = registry.AddHistogram("ledger_wait_seconds", "Waits.", {0.5, 1});
  CounterFamily* family = registry.AddCounterFamily("ledger_by_reason_total", "By reason.", {"reason", "code"});
  registry.AddCallbackGauge("ledger_computed", "Computed.", [] { return 2.5; });
  registry.AddCallbackGauge("ledger_absent", "Left out.", []() -> std::optional<double> { return std::nullopt; });
  registry.AddCallbackCounter("ledger_called_total", "Called.", [] { return 7.0; });

  counter->Increment(3);
  gauge->Set(5);
  gauge->Add(-7);
  histogram->Observe(0.5);  // le="0.5" is inclusive
  histogram->Observe(0.75);
  histogram->Observe(4);
  family->With({"a \"quoted\" \\ value\nnext", "X"})->Increment();
  family->With({"B", "Y"})->Increment(2);

  EXPECT_EQ(registry.Render(),
            "# HELP ledger_things_total Things.\\nOn two lines, with a \\\\.\n"
            "# TYPE ledger_things_total counter\n"
            "ledger_things_total 3\n"
            "# HELP ledger_level A level.\n"
            "# TYPE ledger_level gauge\n"
            "ledger_level -2\n"
            "# HELP ledger_wait_seconds Waits.\n"
            "# TYPE ledger_wait_seconds histogram\n"
            "ledger_wait_seconds_bucket{le=\"0.5\"} 1\n"
            "ledger_wait_seconds_bucket{le=\"1\"} 2\n"
            "ledger_wait_seconds_bucket{le=\"+Inf\"} 3\n"
            "ledger_wait_seconds_sum 5.25\n"
            "ledger_wait_seconds_count 3\n"
            "# HELP ledger_by_reason_total By reason.\n"
            "# TYPE ledger_by_reason_total counter\n"
            "ledger_by_reason_total{reason=\"B\",code=\"Y\"} 2\n"
            "ledger_by_reason_total{reason=\"a \\\"quoted\\\" \\\\ value\\nnext\",code=\"X\"} 1\n"
            "# HELP ledger_computed Computed.\n"
            "# TYPE ledger_computed gauge\n"
            "ledger_computed 2.5\n"
            "# HELP ledger_absent Left out.\n"
            "# TYPE ledger_absent gauge\n"
            "# HELP ledger_called_total Called.\n"
            "# TYPE ledger_called_total counter\n"
            "ledger_called_total 7\n");
}

TEST(MetricsRegistryTest, FormatsValues) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(12345678901234), "12345678901234");
  EXPECT_EQ(FormatValue(0.0005), "0.0005");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(std::string(kContentType), "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace
}  // namespace ledger::metrics
