#include "common/metrics/registry.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace fabric::metrics {
namespace {

[[noreturn]] void Die(absl::string_view what) {
  std::fprintf(stderr, "metrics: %.*s\n", static_cast<int>(what.size()),
               what.data());
  std::abort();
}

template <typename T>
T MustOk(absl::StatusOr<T> v) {
  if (!v.ok()) Die(v.status().ToString());
  return *v;
}

void AtomicAdd(std::atomic<double>& a, double amount) {
  double old = a.load(std::memory_order_relaxed);
  while (
      !a.compare_exchange_weak(old, old + amount, std::memory_order_relaxed)) {
  }
}

bool IsNameChar(char c, bool first, bool colon_ok) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
    return true;
  }
  if (c == ':') return colon_ok;
  return !first && c >= '0' && c <= '9';
}

bool IsValidName(absl::string_view name, bool colon_ok) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (!IsNameChar(name[i], i == 0, colon_ok)) return false;
  }
  return true;
}

// `text` with \ and newline (and " when `quote`) backslash-escaped.
std::string Escape(absl::string_view text, bool quote) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

// By MetricType.
constexpr const char* kTypeNames[] = {"counter", "gauge", "histogram"};

// The key a new label set gets in a map of `size` entries holding at most
// `max` (plus the overflow entry).
template <typename Map>
LabelValues BoundedKey(const Map& map, const LabelValues& values, size_t max) {
  LabelValues overflow(values.size(), kOverflowLabelValue);
  const size_t ordinary = map.size() - (map.count(overflow) ? 1 : 0);
  return ordinary < max ? values : overflow;
}

void CheckLabelCount(absl::string_view name, size_t want, size_t got) {
  if (want != got) {
    Die(absl::StrCat(name, ": ", got, " label values given, the family has ",
                     want, " label names"));
  }
}

}  // namespace

// One family; MetricFamily<T> is its typed handle. Only the slot of its
// type is used.
class Family {
 public:
  template <typename T>
  struct Slot {
    std::unique_ptr<MetricFamily<T>> handle;
    std::map<LabelValues, std::unique_ptr<T>> children;
  };

  Family(MetricType type, std::string name, std::string help,
         std::vector<std::string> label_names, std::vector<double> bounds,
         Callback callback, Options options)
      : type(type),
        name(std::move(name)),
        help(std::move(help)),
        label_names(std::move(label_names)),
        bounds(std::move(bounds)),
        callback(std::move(callback)),
        options(options) {}

  template <typename T>
  Slot<T>& slot() ABSL_SHARED_LOCKS_REQUIRED(mu) {
    return SlotOf(static_cast<T*>(nullptr));
  }
  template <typename T>
  std::unique_ptr<T> MakeChild() const {
    if constexpr (std::is_same_v<T, Histogram>) {
      return std::make_unique<Histogram>(&bounds);
    } else {
      return std::make_unique<T>();
    }
  }

  // Creates the typed handle. A family without labels gets its one child
  // at once, so that it is written (as 0) before its first use.
  template <typename T>
  MetricFamily<T>* MakeHandle() ABSL_LOCKS_EXCLUDED(mu) {
    MetricFamily<T>* handle = new MetricFamily<T>(this);
    {
      absl::MutexLock lock(&mu);
      slot<T>().handle.reset(handle);
    }
    if (label_names.empty()) handle->WithLabels({});
    return handle;
  }

  // Appends this family's text to `out`; takes mu, runs the callback
  // outside it.
  void Render(std::string& out) const ABSL_LOCKS_EXCLUDED(mu);

  const MetricType type;
  const std::string name;
  const std::string help;
  const std::vector<std::string> label_names;
  const std::vector<double> bounds;  // histograms only
  const Callback callback;           // callback families only
  const Options options;

  mutable absl::Mutex mu;
  Slot<Counter> counters ABSL_GUARDED_BY(mu);
  Slot<Gauge> gauges ABSL_GUARDED_BY(mu);
  Slot<Histogram> histograms ABSL_GUARDED_BY(mu);

 private:
  Slot<Counter>& SlotOf(Counter*) ABSL_SHARED_LOCKS_REQUIRED(mu) {
    return counters;
  }
  Slot<Gauge>& SlotOf(Gauge*) ABSL_SHARED_LOCKS_REQUIRED(mu) { return gauges; }
  Slot<Histogram>& SlotOf(Histogram*) ABSL_SHARED_LOCKS_REQUIRED(mu) {
    return histograms;
  }
  // `name{labels,extra} value\n`.
  void Line(std::string& out, absl::string_view suffix,
            const LabelValues& values, absl::string_view extra,
            double value) const;
};

void Family::Line(std::string& out, absl::string_view suffix,
                  const LabelValues& values, absl::string_view extra,
                  double value) const {
  absl::StrAppend(&out, name, suffix);
  if (!values.empty() || !extra.empty()) {
    out += '{';
    for (size_t i = 0; i < values.size(); ++i) {
      absl::StrAppend(&out, i == 0 ? "" : ",", label_names[i], "=\"",
                      Escape(values[i], /*quote=*/true), "\"");
    }
    absl::StrAppend(&out, !values.empty() && !extra.empty() ? "," : "", extra,
                    "}");
  }
  absl::StrAppend(&out, " ", FormatValue(value), "\n");
}

void Family::Render(std::string& out) const {
  std::string body;
  if (callback) {
    SampleWriter writer(label_names.size(), options.max_children);
    callback(writer);
    for (const auto& [values, value] : writer.samples_) {
      Line(body, "", values, "", value);
    }
  } else {
    absl::ReaderMutexLock lock(&mu);
    for (const auto& [values, c] : counters.children) {
      Line(body, "", values, "", c->Value());
    }
    for (const auto& [values, g] : gauges.children) {
      Line(body, "", values, "", g->Value());
    }
    for (const auto& [values, h] : histograms.children) {
      const Histogram::Snapshot s = h->Read();
      for (size_t i = 0; i < s.cumulative.size(); ++i) {
        const std::string le =
            i < bounds.size() ? FormatValue(bounds[i]) : "+Inf";
        Line(body, "_bucket", values, absl::StrCat("le=\"", le, "\""),
             static_cast<double>(s.cumulative[i]));
      }
      Line(body, "_sum", values, "", s.sum);
      Line(body, "_count", values, "", static_cast<double>(s.count));
    }
  }
  if (body.empty()) return;  // no series yet: the family is not written
  absl::StrAppend(&out, "# HELP ", name, " ", Escape(help, /*quote=*/false),
                  "\n# TYPE ", name, " ", kTypeNames[static_cast<int>(type)],
                  "\n", body);
}

template <typename T>
T* MetricFamily<T>::WithLabels(const LabelValues& values) {
  Family& f = *family_;
  CheckLabelCount(f.name, f.label_names.size(), values.size());
  {
    absl::ReaderMutexLock lock(&f.mu);
    const auto& children = f.slot<T>().children;
    auto it = children.find(values);
    if (it != children.end()) return it->second.get();
  }
  absl::MutexLock lock(&f.mu);
  auto& children = f.slot<T>().children;
  auto it = children.find(values);
  if (it != children.end()) return it->second.get();
  LabelValues key = BoundedKey(children, values, f.options.max_children);
  std::unique_ptr<T>& child = children[std::move(key)];
  if (child == nullptr) child = f.MakeChild<T>();
  return child.get();
}

template class MetricFamily<Counter>;
template class MetricFamily<Gauge>;
template class MetricFamily<Histogram>;

std::vector<double> DefaultLatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,    0.25,  0.5,    1,     2.5,  5,     10};
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  constexpr double kExact = 9007199254740992.0;  // 2^53
  if (v == std::trunc(v) && std::fabs(v) < kExact) {
    return absl::StrCat(static_cast<int64_t>(v));
  }
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, end);
}

bool IsValidMetricName(absl::string_view name) {
  return IsValidName(name, /*colon_ok=*/true);
}

bool IsValidLabelName(absl::string_view name) {
  return IsValidName(name, /*colon_ok=*/false) && !absl::StartsWith(name, "__");
}

void Counter::Increment(double amount) {
  if (!(amount >= 0)) return;  // negative or NaN
  AtomicAdd(value_, amount);
}

void Gauge::Add(double amount) { AtomicAdd(value_, amount); }

Histogram::Histogram(const std::vector<double>* bounds)
    : bounds_(bounds), counts_(new std::atomic<uint64_t>[bounds->size() + 1]) {
  for (size_t i = 0; i <= bounds_->size(); ++i) counts_[i] = 0;
}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  size_t i = 0;
  while (i < bounds_->size() && value > (*bounds_)[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, value);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.cumulative.resize(bounds_->size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_->size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = total;
  }
  s.count = total;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

void SampleWriter::Add(const LabelValues& values, double value) {
  CheckLabelCount("callback sample", label_count_, values.size());
  auto it = samples_.find(values);
  if (it == samples_.end()) {
    it = samples_.emplace(BoundedKey(samples_, values, max_children_), 0).first;
  }
  it->second += value;
}

Registry::Registry() = default;
Registry::~Registry() = default;

absl::StatusOr<Family*> Registry::Define(MetricType type,
                                         absl::string_view name,
                                         absl::string_view help,
                                         std::vector<std::string> label_names,
                                         std::vector<double> buckets,
                                         Callback callback, Options options) {
  if (!IsValidMetricName(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metric name \"", name, "\" must match [a-zA-Z_:][a-zA-Z0-9_:]*"));
  }
  if (type == MetricType::kCounter && !absl::EndsWith(name, "_total")) {
    return absl::InvalidArgumentError(
        absl::StrCat("counter name \"", name, "\" must end in _total"));
  }
  for (size_t i = 0; i < label_names.size(); ++i) {
    const std::string& l = label_names[i];
    if (!IsValidLabelName(l)) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": label name \"", l,
          "\" must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __"));
    }
    if (type == MetricType::kHistogram && l == "le") {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": label name \"le\" is reserved in histograms"));
    }
    for (size_t j = 0; j < i; ++j) {
      if (label_names[j] == l) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, ": label name \"", l, "\" appears twice"));
      }
    }
  }
  if (options.max_children < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": max_children must be at least 1"));
  }
  if (!buckets.empty() && std::isinf(buckets.back()) && buckets.back() > 0) {
    buckets.pop_back();
  }
  for (size_t i = 0; i < buckets.size(); ++i) {
    if (!std::isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": bucket bound ", i, " (", FormatValue(buckets[i]),
          ") must be finite and greater than the one before"));
    }
  }
  std::vector<std::string> taken = {std::string(name)};
  if (type == MetricType::kCounter) {
    taken.push_back(std::string(absl::StripSuffix(name, "_total")));
  }
  if (type == MetricType::kHistogram) {
    for (const char* s : {"_bucket", "_sum", "_count"}) {
      taken.push_back(absl::StrCat(name, s));
    }
  }

  absl::MutexLock lock(&mu_);
  for (const std::string& t : taken) {
    if (sample_names_.contains(t)) {
      return absl::AlreadyExistsError(
          absl::StrCat("metric name \"", t, "\" is already registered"));
    }
  }
  sample_names_.insert(taken.begin(), taken.end());
  auto family = std::make_unique<Family>(
      type, std::string(name), std::string(help), std::move(label_names),
      std::move(buckets), std::move(callback), options);
  Family* f = family.get();
  families_[f->name] = std::move(family);
  return f;
}

namespace {
template <typename T>
absl::StatusOr<MetricFamily<T>*> Typed(absl::StatusOr<Family*> f) {
  if (!f.ok()) return f.status();
  return (*f)->MakeHandle<T>();
}
}  // namespace

absl::StatusOr<CounterFamily*> Registry::TryAddCounter(
    absl::string_view name, absl::string_view help,
    std::vector<std::string> label_names, Options options) {
  return Typed<Counter>(Define(MetricType::kCounter, name, help,
                               std::move(label_names), {}, nullptr, options));
}

absl::StatusOr<GaugeFamily*> Registry::TryAddGauge(
    absl::string_view name, absl::string_view help,
    std::vector<std::string> label_names, Options options) {
  return Typed<Gauge>(Define(MetricType::kGauge, name, help,
                             std::move(label_names), {}, nullptr, options));
}

absl::StatusOr<HistogramFamily*> Registry::TryAddHistogram(
    absl::string_view name, absl::string_view help,
    std::vector<std::string> label_names, std::vector<double> buckets,
    Options options) {
  return Typed<Histogram>(Define(MetricType::kHistogram, name, help,
                                 std::move(label_names), std::move(buckets),
                                 nullptr, options));
}

absl::Status Registry::TryAddCallback(MetricType type, absl::string_view name,
                                      absl::string_view help,
                                      std::vector<std::string> label_names,
                                      Callback callback, Options options) {
  if (type == MetricType::kHistogram) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": a callback family is a counter or a gauge"));
  }
  if (callback == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": no callback"));
  }
  return Define(type, name, help, std::move(label_names), {},
                std::move(callback), options)
      .status();
}

CounterFamily* Registry::AddCounter(absl::string_view name,
                                    absl::string_view help,
                                    std::vector<std::string> label_names,
                                    Options options) {
  return MustOk(TryAddCounter(name, help, std::move(label_names), options));
}

GaugeFamily* Registry::AddGauge(absl::string_view name, absl::string_view help,
                                std::vector<std::string> label_names,
                                Options options) {
  return MustOk(TryAddGauge(name, help, std::move(label_names), options));
}

HistogramFamily* Registry::AddHistogram(absl::string_view name,
                                        absl::string_view help,
                                        std::vector<std::string> label_names,
                                        std::vector<double> buckets,
                                        Options options) {
  return MustOk(TryAddHistogram(name, help, std::move(label_names),
                                std::move(buckets), options));
}

void Registry::AddCallback(MetricType type, absl::string_view name,
                           absl::string_view help,
                           std::vector<std::string> label_names,
                           Callback callback, Options options) {
  const absl::Status st = TryAddCallback(
      type, name, help, std::move(label_names), std::move(callback), options);
  if (!st.ok()) Die(st.ToString());
}

std::string Registry::Render() const {
  std::vector<const Family*> families;
  {
    absl::MutexLock lock(&mu_);
    families.reserve(families_.size());
    for (const auto& [name, f] : families_) families.push_back(f.get());
  }
  std::string out;
  for (const Family* f : families) f->Render(out);
  return out;
}

}  // namespace fabric::metrics
