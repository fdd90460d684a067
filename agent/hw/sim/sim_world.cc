#include "agent/hw/sim/sim_world.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "agent/hw/sim/state_file.h"
#include "common/status_macros.h"
#include "common/units.h"

namespace fabric::agent::hw {
namespace {

using sim_internal::SimRecord;

// True if [a, a+as) lies within [b, b+bs).
bool Within(uint64_t a, uint64_t as, uint64_t b, uint64_t bs) {
  return a >= b && a - b <= bs && bs - (a - b) >= as;
}

bool Contains(uint64_t base, uint64_t size, uint64_t addr) {
  return addr >= base && addr - base < size;
}

// Reads each bridge's state file at most once per walk.
class StateCache {
 public:
  explicit StateCache(const std::string& sim_dir) : sim_dir_(sim_dir) {}

  // nullptr with OK status when the node has no state file.
  absl::StatusOr<const SimRecord*> Get(const std::string& node) {
    auto it = records_.find(node);
    if (it != records_.end()) return it->second.get();
    absl::StatusOr<SimRecord> r =
        sim_internal::LoadRecord(sim_dir_, node, nullptr);
    std::unique_ptr<SimRecord> owned;
    if (r.ok()) {
      owned = std::make_unique<SimRecord>(*std::move(r));
    } else if (!absl::IsNotFound(r.status())) {
      return r.status();
    }
    const SimRecord* p = owned.get();
    records_.emplace(node, std::move(owned));
    return p;
  }

 private:
  const std::string sim_dir_;
  std::map<std::string, std::unique_ptr<SimRecord>> records_;
};

const Port* FindPort(const BridgeState& s, int number) {
  for (const Port& p : s.ports) {
    if (p.number == number) return &p;
  }
  return nullptr;
}

// Where an access lands; `memory_base` is the landing host's memory base.
struct Landing {
  AccessResult result;
  uint64_t memory_base = 0;
  bool device = false;  // landed in the host's device MMIO range
};

absl::StatusOr<Landing> WalkImpl(const std::string& sim_dir,
                                 const std::string& src, uint64_t addr,
                                 uint64_t len) {
  StateCache cache(sim_dir);
  ASSIGN_OR_RETURN(const SimRecord* cur, cache.Get(src));
  if (cur == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("simulated node '", src, "' has no state in ", sim_dir));
  }
  Landing out;
  AccessResult& r = out.result;
  r.hops.push_back(src);
  auto fault = [&](const std::string& bridge, uint64_t at, std::string reason) {
    r.landed = false;
    r.fault_bridge = bridge;
    r.fault_addr = at;
    r.reason = std::move(reason);
    return out;
  };

  const Window* window = nullptr;
  for (const Window& w : cur->state.windows) {
    if (Contains(w.local_base, w.size, addr)) window = &w;
  }
  if (window == nullptr) {
    const HostMemory& m = cur->state.memory;
    if (!Within(addr, len, m.base, m.size)) {
      return fault(src, addr, "not host memory");
    }
    r.landed = true;
    r.node = src;
    r.addr = addr;
    out.memory_base = m.base;
    return out;
  }
  if (!Within(addr, len, window->local_base, window->size)) {
    return fault(src, addr, "crosses window end");
  }
  const uint64_t fa = window->xlat + (addr - window->local_base);

  ASSIGN_OR_RETURN(std::vector<std::string> nodes, SimWorld::Nodes(sim_dir));
  const size_t max_links = nodes.size();
  std::string at = src;
  while (true) {
    const MapEntry* entry = nullptr;
    for (const MapEntry& e : cur->state.map) {
      if (Contains(e.base, e.size, fa)) entry = &e;
    }
    if (entry == nullptr) return fault(at, fa, "no matching entry");
    if (!Within(fa, len, entry->base, entry->size)) {
      return fault(at, fa, "crosses entry end");
    }
    if (entry->kind == MapEntry::Kind::kClaim) {
      const uint64_t local = entry->local_base + (fa - entry->base);
      bool granted = false;
      for (const Inbound& in : cur->state.inbound) {
        if (Within(local, len, in.local_base, in.size)) granted = true;
      }
      const HostMemory& m = cur->state.memory;
      const bool device =
          m.mmio_size > 0 && Within(local, len, m.mmio_base, m.mmio_size);
      if (!granted || (!device && !Within(local, len, m.base, m.size))) {
        return fault(at, fa, "outside every grant");
      }
      out.device = device;
      r.landed = true;
      r.node = at;
      r.addr = local;
      out.memory_base = cur->state.memory.base;
      return out;
    }
    const std::string down = absl::StrCat("link down at port ", entry->port);
    const Port* port = FindPort(cur->state, entry->port);
    if (port == nullptr || !port->up || port->peer_bridge.empty() ||
        port->peer_bridge.find('/') != std::string::npos) {
      return fault(at, fa, down);
    }
    ASSIGN_OR_RETURN(const SimRecord* next, cache.Get(port->peer_bridge));
    if (next == nullptr) return fault(at, fa, down);
    const Port* back = FindPort(next->state, port->peer_port);
    if (back == nullptr || !back->up || back->peer_bridge != at ||
        back->peer_port != port->number) {
      return fault(at, fa, down);
    }
    at = port->peer_bridge;
    cur = next;
    r.hops.push_back(at);
    if (r.hops.size() - 1 > max_links) return fault(at, fa, "loop");
  }
}


}  // namespace

absl::StatusOr<AccessResult> SimWorld::Walk(const std::string& sim_dir,
                                            const std::string& src_node,
                                            uint64_t addr, uint64_t len) {
  ASSIGN_OR_RETURN(Landing l, WalkImpl(sim_dir, src_node, addr, len));
  return l.result;
}

absl::StatusOr<AccessResult> SimWorld::Write(const std::string& sim_dir,
                                             const std::string& src_node,
                                             uint64_t addr,
                                             absl::Span<const uint8_t> data,
                                             SimDeviceMmio* devices) {
  ASSIGN_OR_RETURN(Landing l, WalkImpl(sim_dir, src_node, addr, data.size()));
  if (!l.result.landed || data.empty()) return l.result;
  if (l.device) {
    if (devices == nullptr) {
      return absl::UnimplementedError(absl::StrCat(
          "simulator: a write that lands in the device MMIO of ",
          l.result.node, " at ", FormatAddr(l.result.addr),
          " needs a device model, and this host's simulator has none"));
    }
    absl::Status s = devices->Write(l.result.node, l.result.addr, data);
    if (absl::IsNotFound(s) || absl::IsFailedPrecondition(s) ||
        absl::IsOutOfRange(s)) {
      AccessResult fault = l.result;
      fault.landed = false;
      fault.fault_bridge = l.result.node;
      fault.fault_addr = l.result.addr;
      fault.reason = absl::StrCat("device refused: ", s.message());
      return fault;
    }
    if (!s.ok()) return s;
    return l.result;
  }
  const std::string path = sim_internal::MemoryPath(sim_dir, l.result.node);
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open", path);
  size_t done = 0;
  const uint64_t off = l.result.addr - l.memory_base;
  while (done < data.size()) {
    const ssize_t n = pwrite(fd, data.data() + done, data.size() - done,
                             static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status s = ErrnoError("pwrite", path);
      close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  close(fd);
  return l.result;
}

absl::Status SimWorld::ReadMemory(const std::string& sim_dir,
                                  const std::string& node, uint64_t addr,
                                  absl::Span<uint8_t> out) {
  ASSIGN_OR_RETURN(SimRecord r,
                   sim_internal::LoadRecord(sim_dir, node, nullptr));
  const HostMemory& m = r.state.memory;
  if (!Within(addr, out.size(), m.base, m.size)) {
    return absl::OutOfRangeError(absl::StrCat(
        "read of ", out.size(), " bytes at ", FormatAddr(addr),
        " is not in the memory of ", node, " [", FormatAddr(m.base), ", ",
        FormatAddr(m.base + m.size), ")"));
  }
  const std::string path = sim_internal::MemoryPath(sim_dir, node);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open", path);
  size_t done = 0;
  const uint64_t off = addr - m.base;
  while (done < out.size()) {
    const ssize_t n = pread(fd, out.data() + done, out.size() - done,
                            static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status s = ErrnoError("pread", path);
      close(fd);
      return s;
    }
    if (n == 0) {  // Past the end of a short file: reads as zeros.
      std::fill(out.begin() + done, out.end(), 0);
      break;
    }
    done += static_cast<size_t>(n);
  }
  close(fd);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> SimWorld::Nodes(
    const std::string& sim_dir) {
  DIR* d = opendir(sim_dir.c_str());
  if (d == nullptr) return ErrnoError("opendir", sim_dir);
  std::vector<std::string> nodes;
  while (struct dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st;
    if (stat(sim_internal::StatePath(sim_dir, name).c_str(), &st) == 0) {
      nodes.push_back(name);
    }
  }
  closedir(d);
  std::sort(nodes.begin(), nodes.end());
  return nodes;
}

}  // namespace fabric::agent::hw
