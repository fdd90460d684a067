#include "common/metrics/registry.h"

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(FormatValueTest, IntegersWithoutExponentOthersRoundTrip) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(-0.0), "0");
  EXPECT_EQ(FormatValue(42), "42");
  EXPECT_EQ(FormatValue(-7), "-7");
  EXPECT_EQ(FormatValue(1e15), "1000000000000000");
  EXPECT_EQ(FormatValue(0.0025), "0.0025");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(1e300), "1e+300");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
  const double third = 1.0 / 3;
  EXPECT_EQ(std::stod(FormatValue(third)), third);
}

TEST(NamesTest, PrometheusRules) {
  EXPECT_TRUE(IsValidMetricName("fabric:rpcs_total"));
  EXPECT_TRUE(IsValidMetricName("_x9"));
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_FALSE(IsValidMetricName("9x"));
  EXPECT_FALSE(IsValidMetricName("a-b"));
  EXPECT_TRUE(IsValidLabelName("method"));
  EXPECT_TRUE(IsValidLabelName("_x"));
  EXPECT_FALSE(IsValidLabelName("__name"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
  EXPECT_FALSE(IsValidLabelName("1a"));
}

TEST(RegistryTest, DefinitionErrors) {
  Registry r;
  EXPECT_EQ(r.TryAddCounter("bad-name_total", "", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::Status st = r.TryAddCounter("requests", "", {}).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("_total"));
  EXPECT_EQ(r.TryAddGauge("g", "", {"__x"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.TryAddGauge("g", "", {"a", "a"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.TryAddHistogram("h", "", {"le"}, {1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.TryAddHistogram("h", "", {}, {2, 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.TryAddHistogram("h", "", {}, {1, std::nan("")}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.TryAddGauge("g", "", {}, Options{0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.TryAddCallback(MetricType::kHistogram, "cb", "", {},
                             [](SampleWriter&) {})
                .code(),
            absl::StatusCode::kInvalidArgument);
  // Nothing above was registered.
  EXPECT_EQ(r.Render(), "");
}

TEST(RegistryTest, NamesAreTakenOnce) {
  Registry r;
  ASSERT_TRUE(r.TryAddCounter("x_total", "", {}).ok());
  EXPECT_EQ(r.TryAddGauge("x_total", "", {}).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(r.TryAddGauge("x", "", {}).status().code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(r.TryAddHistogram("lat", "", {}, {1}).ok());
  EXPECT_EQ(r.TryAddGauge("lat_count", "", {}).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(r.TryAddCallback(MetricType::kGauge, "lat_sum", "", {},
                             [](SampleWriter&) {})
                .code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(RegistryDeathTest, ProgrammingErrorsAbortWithTheReason) {
  Registry r;
  EXPECT_DEATH(r.AddCounter("requests", "", {}), "must end in _total");
  GaugeFamily* g = r.AddGauge("g", "", {"a", "b"});
  EXPECT_DEATH(g->WithLabels({"only one"}), "1 label values given");
}

TEST(RegistryTest, CounterIgnoresNegativeAndNaN) {
  Registry r;
  Counter* c = r.AddCounter("c_total", "", {})->WithLabels({});
  c->Increment();
  c->Increment(2.5);
  c->Increment(-10);
  c->Increment(std::nan(""));
  EXPECT_EQ(c->Value(), 3.5);
}

TEST(RegistryTest, ChildrenAreStableAndRendered) {
  Registry r;
  GaugeFamily* f = r.AddGauge("temp", "Temperature.", {"node"});
  Gauge* a = f->WithLabels({"a"});
  EXPECT_EQ(f->WithLabels({"a"}), a);
  a->Set(3);
  a->Add(-0.5);
  f->WithLabels({"b"})->Set(-1);
  EXPECT_EQ(r.Render(),
            "# HELP temp Temperature.\n"
            "# TYPE temp gauge\n"
            "temp{node=\"a\"} 2.5\n"
            "temp{node=\"b\"} -1\n");
}

TEST(RegistryTest, LabelFreeFamiliesAreWrittenBeforeFirstUse) {
  Registry r;
  r.AddCounter("c_total", "", {});
  r.AddGauge("labelled", "", {"x"});  // no child yet: not written
  EXPECT_EQ(r.Render(), "# HELP c_total \n# TYPE c_total counter\nc_total 0\n");
}

TEST(RegistryTest, Escaping) {
  Registry r;
  r.AddGauge("g", "a \\ back\nslash \"q\"", {"l"})
      ->WithLabels({"x\\y\"z\nw"})
      ->Set(1);
  EXPECT_EQ(r.Render(),
            "# HELP g a \\\\ back\\nslash \"q\"\n"
            "# TYPE g gauge\n"
            "g{l=\"x\\\\y\\\"z\\nw\"} 1\n");
}

TEST(RegistryTest, HistogramIsCumulativeWithInclusiveBounds) {
  Registry r;
  Histogram* h =
      r.AddHistogram("lat_seconds", "Latency.", {"m"}, {0.1, 1, INFINITY})
          ->WithLabels({"Ping"});
  h->Observe(0.05);
  h->Observe(0.1);  // le is inclusive
  h->Observe(0.5);
  h->Observe(7);
  h->Observe(std::nan(""));  // ignored
  EXPECT_EQ(r.Render(),
            "# HELP lat_seconds Latency.\n"
            "# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{m=\"Ping\",le=\"0.1\"} 2\n"
            "lat_seconds_bucket{m=\"Ping\",le=\"1\"} 3\n"
            "lat_seconds_bucket{m=\"Ping\",le=\"+Inf\"} 4\n"
            "lat_seconds_sum{m=\"Ping\"} 7.65\n"
            "lat_seconds_count{m=\"Ping\"} 4\n");
}

TEST(RegistryTest, DefaultLatencyBucketsAreSeconds) {
  const std::vector<double> b = DefaultLatencyBuckets();
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(b.front(), 0.0005);
  EXPECT_EQ(b.back(), 10);
  Registry r;
  EXPECT_TRUE(r.TryAddHistogram("h", "", {}, b).ok());
}

TEST(RegistryTest, FullFamilyCollapsesIntoOther) {
  Registry r;
  CounterFamily* f = r.AddCounter("c_total", "", {"id", "k"}, Options{2});
  f->WithLabels({"1", "a"})->Increment();
  f->WithLabels({"2", "a"})->Increment();
  Counter* other = f->WithLabels({"3", "a"});
  EXPECT_EQ(f->WithLabels({"4", "b"}), other);
  EXPECT_EQ(f->WithLabels({"other", "other"}), other);
  other->Increment(5);
  f->WithLabels({"1", "a"})->Increment();  // existing children still work
  const std::string text = r.Render();
  EXPECT_THAT(text, HasSubstr("c_total{id=\"1\",k=\"a\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("c_total{id=\"other\",k=\"other\"} 5\n"));
  EXPECT_THAT(text, Not(HasSubstr("id=\"3\"")));
}

TEST(RegistryTest, CallbacksRunAtRenderAndAreBounded) {
  Registry r;
  std::vector<std::string> states = {"ACTIVE", "ACTIVE", "DEGRADED", "X", "Y"};
  int calls = 0;
  r.AddCallback(
      MetricType::kGauge, "allocations", "By state.", {"state"},
      [&](SampleWriter& w) {
        ++calls;
        for (const std::string& s : states) w.Add({s}, 1);
      },
      Options{3});
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(r.Render(),
            "# HELP allocations By state.\n"
            "# TYPE allocations gauge\n"
            "allocations{state=\"ACTIVE\"} 2\n"
            "allocations{state=\"DEGRADED\"} 1\n"
            "allocations{state=\"X\"} 1\n"
            "allocations{state=\"other\"} 1\n");
  states = {};
  EXPECT_EQ(r.Render(), "");  // no samples: not written
  EXPECT_EQ(calls, 2);
}

TEST(RegistryTest, CallbackMayUseTheRegistry) {
  Registry r;
  Gauge* g = r.AddGauge("g", "", {})->WithLabels({});
  r.AddCallback(MetricType::kCounter, "cb_total", "", {}, [&](SampleWriter& w) {
    // No registry lock is held while a callback runs.
    EXPECT_TRUE(r.TryAddGauge("late", "", {}).ok());
    g->Set(9);
    w.Add({}, 4);
  });
  EXPECT_EQ(r.Render(),
            "# HELP cb_total \n# TYPE cb_total counter\ncb_total 4\n"
            "# HELP g \n# TYPE g gauge\ng 9\n");
}

TEST(RegistryTest, ConcurrentUpdatesAreExact) {
  Registry r;
  CounterFamily* counters = r.AddCounter("c_total", "", {"t"});
  HistogramFamily* hist = r.AddHistogram("h", "", {}, {0.5});
  Gauge* gauge = r.AddGauge("g", "", {})->WithLabels({});
  constexpr int kThreads = 4;
  constexpr int kIters = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIters; ++i) {
        counters->WithLabels({"shared"})->Increment();
        counters->WithLabels({absl::StrCat(i % 8)})->Increment();
        hist->WithLabels({})->Observe(i % 2);
        gauge->Add(1);
        if (i % 1000 == 0) r.Render();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(counters->WithLabels({"shared"})->Value(), kThreads * kIters);
  EXPECT_EQ(counters->WithLabels({"3"})->Value(), kThreads * kIters / 8);
  EXPECT_EQ(gauge->Value(), kThreads * kIters);
  const Histogram::Snapshot s = hist->WithLabels({})->Read();
  EXPECT_EQ(s.count, uint64_t{kThreads * kIters});
  EXPECT_EQ(s.cumulative[0], uint64_t{kThreads * kIters / 2});
  EXPECT_EQ(s.sum, kThreads * kIters / 2);
}

}  // namespace
}  // namespace fabric::metrics
