// A small Prometheus exposition layer (text format 0.0.4): counters, gauges
// and histograms with bounded label sets, plus families whose samples are
// computed at scrape time. Debian ships no Prometheus C++ client, hence this.
//
//   metrics::Registry registry;
//   metrics::CounterFamily* rpcs = registry.AddCounter(
//       "fabric_rpcs_total", "RPCs served.", {"method", "code"});
//   metrics::Counter* ok = rpcs->WithLabels({"Ping", "OK"});  // cache it
//   ok->Increment();
//   registry.AddCallback(metrics::MetricType::kGauge, "fabric_allocations",
//       "Allocations by state.", {"state"}, [&](metrics::SampleWriter& w) {
//         for (const auto& a : allocations) w.Add({StateName(a)}, 1);
//       });
//   std::string body = registry.Render();  // served as kContentType
//
// Definition errors are programming errors. TryAdd* return them as
// INVALID_ARGUMENT (a bad name, label name, bucket list, or a counter not
// ending in _total) or ALREADY_EXISTS (a family, or one of the sample names a
// histogram writes, is taken); Add* print the error and abort. Calling
// WithLabels with the wrong number of values aborts too.
//
// Bounded labels: each family holds at most `max_children` label sets
// (Options; default kDefaultMaxChildren). Past that, every new label set
// collapses into one extra child whose label values are all
// kOverflowLabelValue ("other"), so the series count stays bounded and no
// increment is lost. Callback families apply the same bound per scrape.
//
// Thread-safety: everything is thread-safe. Counter, Gauge and Histogram are
// atomics (no lock on the hot path); a family's label map is behind a reader
// lock. Families and children are never removed: every pointer returned stays
// valid for the registry's life, and hot paths should cache it.
#ifndef FABRIC_COMMON_METRICS_REGISTRY_H_
#define FABRIC_COMMON_METRICS_REGISTRY_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace fabric::metrics {

inline constexpr char kContentType[] =
    "text/plain; version=0.0.4; charset=utf-8";
inline constexpr size_t kDefaultMaxChildren = 1000;
inline constexpr char kOverflowLabelValue[] = "other";

enum class MetricType { kCounter, kGauge, kHistogram };

// Label values, in the order of the family's label names.
using LabelValues = std::vector<std::string>;

// Bucket upper bounds for latencies in seconds, 0.5 ms to 10 s.
std::vector<double> DefaultLatencyBuckets();

// The sample value as the text format writes it: an integral value below
// 2^53 without exponent or point ("42"), "+Inf", "-Inf", "NaN", otherwise
// the shortest text that reads back to the same double ("0.0025", "1e+300").
std::string FormatValue(double v);

// Monotonic. Increment ignores negative and NaN amounts (a counter never
// goes down).
class Counter {
 public:
  void Increment(double amount = 1);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double amount);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observe ignores NaN. A value lands in the first bucket whose bound is >= it
// (so le is inclusive, as Prometheus defines it), or in +Inf.
class Histogram {
 public:
  explicit Histogram(const std::vector<double>* bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
    uint64_t count = 0;  // always == cumulative.back()
  };
  // Read without a lock: under concurrent Observe, `sum` may lag the counts
  // by the observations in flight; `count` always equals the +Inf bucket.
  Snapshot Read() const;

 private:
  const std::vector<double>* const bounds_;          // the family's; not owned
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket, +Inf last
  std::atomic<double> sum_{0};
};

struct Options {
  // Label sets a family holds before new ones collapse into "other".
  size_t max_children = kDefaultMaxChildren;
};

class Family;

// A family: name, help, label names and its children, one per label set.
template <typename T>
class MetricFamily {
 public:
  // The child for `values` (created on first use), or the overflow child
  // once the family is full. Aborts when values.size() differs from the
  // number of label names. Never null; valid for the registry's life.
  T* WithLabels(const LabelValues& values);

 private:
  friend class Family;
  explicit MetricFamily(Family* family) : family_(family) {}
  Family* const family_;  // owned by the registry
};

using CounterFamily = MetricFamily<Counter>;
using GaugeFamily = MetricFamily<Gauge>;
using HistogramFamily = MetricFamily<Histogram>;

// What a callback family's callback writes into at Render time.
class SampleWriter {
 public:
  // Adds `value` to the sample with these label values (a new sample
  // starts at 0), so a callback may count items one at a time. Wrong label
  // counts abort; label sets past the family's bound collapse into "other".
  void Add(const LabelValues& values, double value);

 private:
  friend class Family;
  SampleWriter(size_t label_count, size_t max_children)
      : label_count_(label_count), max_children_(max_children) {}
  const size_t label_count_;
  const size_t max_children_;
  std::map<LabelValues, double> samples_;
};

using Callback = std::function<void(SampleWriter&)>;

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Owned by the registry. See the file comment for errors.
  absl::StatusOr<CounterFamily*> TryAddCounter(
      absl::string_view name, absl::string_view help,
      std::vector<std::string> label_names, Options options = {});
  absl::StatusOr<GaugeFamily*> TryAddGauge(absl::string_view name,
                                           absl::string_view help,
                                           std::vector<std::string> label_names,
                                           Options options = {});
  // `buckets`: finite, strictly increasing upper bounds; a trailing +Inf is
  // dropped (it is always there); "le" is no valid label name here.
  absl::StatusOr<HistogramFamily*> TryAddHistogram(
      absl::string_view name, absl::string_view help,
      std::vector<std::string> label_names, std::vector<double> buckets,
      Options options = {});
  // A counter or gauge family whose samples `callback` writes at every
  // Render, which calls it outside the registry's locks (it may take the
  // caller's own locks, and may run on any thread that calls Render).
  absl::Status TryAddCallback(MetricType type, absl::string_view name,
                              absl::string_view help,
                              std::vector<std::string> label_names,
                              Callback callback, Options options = {});

  // As above; abort with the error message on a definition error.
  CounterFamily* AddCounter(absl::string_view name, absl::string_view help,
                            std::vector<std::string> label_names,
                            Options options = {});
  GaugeFamily* AddGauge(absl::string_view name, absl::string_view help,
                        std::vector<std::string> label_names,
                        Options options = {});
  HistogramFamily* AddHistogram(absl::string_view name, absl::string_view help,
                                std::vector<std::string> label_names,
                                std::vector<double> buckets,
                                Options options = {});
  void AddCallback(MetricType type, absl::string_view name,
                   absl::string_view help, std::vector<std::string> label_names,
                   Callback callback, Options options = {});

  // Every family in text format 0.0.4, sorted by name, children sorted by
  // label values; HELP escapes \ and newline, label values \, " and newline.
  std::string Render() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::StatusOr<Family*> Define(MetricType type, absl::string_view name,
                                 absl::string_view help,
                                 std::vector<std::string> label_names,
                                 std::vector<double> buckets, Callback callback,
                                 Options options) ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Family>> families_ ABSL_GUARDED_BY(mu_);
  // Every sample name a family writes (a histogram writes three).
  absl::flat_hash_set<std::string> sample_names_ ABSL_GUARDED_BY(mu_);
};

// Validity by Prometheus' rules: metric names [a-zA-Z_:][a-zA-Z0-9_:]*,
// label names [a-zA-Z_][a-zA-Z0-9_]* not starting with "__".
bool IsValidMetricName(absl::string_view name);
bool IsValidLabelName(absl::string_view name);

}  // namespace fabric::metrics

#endif  // FABRIC_COMMON_METRICS_REGISTRY_H_
