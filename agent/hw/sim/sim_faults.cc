#include "agent/hw/sim/sim_faults.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/units.h"

namespace fabric::agent::hw::sim_internal {
namespace {

// Appends one write per key whose element differs between `from` and `to`
// (present in one only, or different). `key` maps an element to an ordered
// key; `name` names the entry of a key. The write replaces every element
// with that key by `to`'s (or removes them).
template <typename T, typename KeyFn, typename NameFn>
void KeyedWrites(const std::vector<T>& from, const std::vector<T>& to,
                 std::vector<T> BridgeState::*field, KeyFn key, NameFn name,
                 std::vector<RegisterWrite>* out) {
  using Key = decltype(key(std::declval<const T&>()));
  std::map<Key, std::vector<const T*>> have, want;
  for (const T& e : from) have[key(e)].push_back(&e);
  for (const T& e : to) want[key(e)].push_back(&e);
  std::map<Key, bool> keys;
  for (const auto& [k, v] : have) keys[k] = true;
  for (const auto& [k, v] : want) keys[k] = true;
  for (const auto& [k, unused] : keys) {
    auto h = have.find(k);
    auto w = want.find(k);
    const bool same = h != have.end() && w != want.end() &&
                      h->second.size() == w->second.size() &&
                      std::equal(h->second.begin(), h->second.end(),
                                 w->second.begin(),
                                 [](const T* a, const T* b) { return *a == *b; });
    if (same) continue;
    std::vector<T> values;
    if (w != want.end()) {
      for (const T* e : w->second) values.push_back(*e);
    }
    out->push_back(
        {name(k), true, [field, key, k = k, values](BridgeState& s) {
           std::vector<T>& v = s.*field;
           v.erase(std::remove_if(v.begin(), v.end(),
                                  [&](const T& e) { return key(e) == k; }),
                   v.end());
           v.insert(v.end(), values.begin(), values.end());
         }});
  }
}

bool Matches(const std::string& pattern, const std::string& entry) {
  if (!pattern.empty() && pattern.back() == '*') {
    return absl::StartsWith(entry,
                            absl::string_view(pattern).substr(
                                0, pattern.size() - 1));
  }
  return pattern == entry;
}

}  // namespace

std::vector<RegisterWrite> RegisterWrites(const BridgeState& from,
                                          const BridgeState& to) {
  std::vector<RegisterWrite> out;
  if (!(from.memory == to.memory)) {
    const HostMemory memory = to.memory;
    out.push_back({"host memory", true,
                   [memory](BridgeState& s) { s.memory = memory; }});
  }
  KeyedWrites(
      from.map, to.map, &BridgeState::map,
      [](const MapEntry& e) {
        return std::make_tuple(e.base, e.size, static_cast<int>(e.kind),
                               e.port, e.local_base);
      },
      [](const auto& k) {
        return absl::StrCat("map entry ", FormatAddr(std::get<0>(k)));
      },
      &out);
  KeyedWrites(
      from.windows, to.windows, &BridgeState::windows,
      [](const Window& w) { return std::make_pair(w.kind, w.slot); },
      [](const std::pair<SlotKind, int>& k) {
        return absl::StrCat(k.first == SlotKind::kLut ? "lut slot " : "window ",
                            k.second);
      },
      &out);
  KeyedWrites(
      from.inbound, to.inbound, &BridgeState::inbound,
      [](const Inbound& i) {
        return std::make_tuple(i.local_base, i.size, i.tag);
      },
      [](const auto& k) {
        return absl::StrCat("inbound ", FormatAddr(std::get<0>(k)));
      },
      &out);
  KeyedWrites(
      from.ports, to.ports, &BridgeState::ports,
      [](const Port& p) { return p.number; },
      [](int k) { return absl::StrCat("port ", k); }, &out);
  if (from.doorbell != to.doorbell) {
    const uint64_t bits = to.doorbell;
    out.push_back(
        {"doorbell", false, [bits](BridgeState& s) { s.doorbell = bits; }});
  }
  const size_t spads = std::max(from.scratchpads.size(), to.scratchpads.size());
  for (size_t i = 0; i < spads; ++i) {
    const bool in_from = i < from.scratchpads.size();
    const bool in_to = i < to.scratchpads.size();
    if (in_from && in_to && from.scratchpads[i] == to.scratchpads[i]) continue;
    const uint32_t value = in_to ? to.scratchpads[i] : 0;
    const size_t size = to.scratchpads.size();
    out.push_back({absl::StrCat("scratchpad ", i), false,
                   [i, value, size, in_to](BridgeState& s) {
                     if (in_to) {
                       if (s.scratchpads.size() <= i) {
                         s.scratchpads.resize(i + 1, 0);
                       }
                       s.scratchpads[i] = value;
                     } else if (s.scratchpads.size() > size) {
                       s.scratchpads.resize(size);
                     }
                   }});
  }
  return out;
}

std::string FaultsPath(const std::string& sim_dir, const std::string& node) {
  return absl::StrCat(sim_dir, "/", node, "/faults");
}

std::string FaultLogPath(const std::string& sim_dir, const std::string& node) {
  return absl::StrCat(sim_dir, "/", node, "/faults.log");
}

std::optional<std::string> FaultSpec::Refuses(
    const std::vector<RegisterWrite>& writes) const {
  for (const RegisterWrite& w : writes) {
    if (!w.config) continue;
    for (const std::string& pattern : fail) {
      if (Matches(pattern, w.entry)) return w.entry;
    }
  }
  return std::nullopt;
}

absl::StatusOr<FaultSpec> LoadFaults(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (absl::IsNotFound(text.status())) return FaultSpec();
  if (!text.ok()) return text.status();
  FaultSpec spec;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++line_number;
    line = line.substr(0, line.find('#'));
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    if (!absl::ConsumePrefix(&line, "fail ")) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_number, ": unknown directive \"", line,
                       "\"; expected \"fail ENTRY\" (e.g. fail window 3)"));
    }
    spec.fail.emplace_back(absl::StripAsciiWhitespace(line));
  }
  return spec;
}

void LogFault(const std::string& path, const std::string& entry) {
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  const std::string line =
      absl::StrCat(absl::ToUnixMicros(absl::Now()), " ", entry, "\n");
  (void)!write(fd, line.data(), line.size());
  close(fd);
}

}  // namespace fabric::agent::hw::sim_internal
