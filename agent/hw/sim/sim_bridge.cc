#include "agent/hw/sim/sim_bridge.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "agent/hw/limits_check.h"
#include "agent/hw/sim/sim_faults.h"
#include "agent/hw/sim/sim_world.h"
#include "common/status_macros.h"
#include "common/units.h"

namespace fabric::agent::hw {
namespace {

using sim_internal::SimRecord;


absl::Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoError("mkdir", path);
  }
  return absl::OkStatus();
}

absl::Status CheckNodeName(const std::string& node) {
  if (node.empty() || node == "." || node == ".." ||
      node.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "simulated node name '", node, "' must be a non-empty path component"));
  }
  return absl::OkStatus();
}

void SortState(BridgeState& s) {
  std::sort(
      s.map.begin(), s.map.end(),
      [](const MapEntry& a, const MapEntry& b) { return a.base < b.base; });
  std::sort(
      s.windows.begin(), s.windows.end(), [](const Window& a, const Window& b) {
        return std::make_pair(a.kind, a.slot) < std::make_pair(b.kind, b.slot);
      });
  std::sort(s.inbound.begin(), s.inbound.end(),
            [](const Inbound& a, const Inbound& b) {
              return std::make_pair(a.local_base, a.size) <
                     std::make_pair(b.local_base, b.size);
            });
  std::sort(s.ports.begin(), s.ports.end(),
            [](const Port& a, const Port& b) { return a.number < b.number; });
}

absl::Status CheckPlacedWindow(const HardwareLimits& l, uint64_t window_base,
                               const Window& w) {
  RETURN_IF_ERROR(CheckSlot(l, w.kind, w.slot));
  return CheckWindow(l, w, SlotLocalBase(l, window_base, w.kind, w.slot));
}

// Every window still sits where its slot lives under `memory.window_base`.
absl::Status CheckWindowsPlaced(const HardwareLimits& l,
                                const HostMemory& memory,
                                const std::vector<Window>& windows) {
  for (const Window& w : windows) {
    const uint64_t at = SlotLocalBase(l, memory.window_base, w.kind, w.slot);
    if (w.local_base != at) {
      return absl::InvalidArgumentError(absl::StrCat(
          "window_base ", FormatAddr(memory.window_base), " would move ",
          SlotName(w.kind, w.slot), " from its local_base ",
          FormatAddr(w.local_base), " to ", FormatAddr(at),
          "; clear or reprogram it in the same ApplyState"));
    }
  }
  return absl::OkStatus();
}

void UpsertPort(std::vector<Port>& ports, const Port& p) {
  for (Port& have : ports) {
    if (have.number == p.number) {
      have = p;
      return;
    }
  }
  ports.push_back(p);
}

}  // namespace

SimBridge::SimBridge(std::string sim_dir, std::string node)
    : sim_dir_(std::move(sim_dir)),
      node_(std::move(node)),
      state_path_(sim_internal::StatePath(sim_dir_, node_)),
      lock_path_(sim_internal::LockPath(sim_dir_, node_)) {}

absl::StatusOr<std::unique_ptr<SimBridge>> SimBridge::Open(
    const std::string& sim_dir, const std::string& node,
    const HardwareLimits& limits) {
  RETURN_IF_ERROR(CheckNodeName(node));
  RETURN_IF_ERROR(CheckLimits(limits));
  RETURN_IF_ERROR(MakeDir(sim_dir));
  RETURN_IF_ERROR(MakeDir(sim_internal::NodeDir(sim_dir, node)));
  std::unique_ptr<SimBridge> b(new SimBridge(sim_dir, node));
  ASSIGN_OR_RETURN(sim_internal::FileLock lock,
                   sim_internal::FileLock::Acquire(b->lock_path_));
  absl::StatusOr<SimRecord> r =
      sim_internal::LoadRecord(sim_dir, node, &b->text_);
  if (r.ok()) {
    b->record_ = *std::move(r);
  } else if (absl::IsNotFound(r.status())) {
    b->record_ = sim_internal::ResetRecord(node, limits);
    RETURN_IF_ERROR(
        sim_internal::SaveRecord(b->state_path_, b->record_, &b->text_));
  } else {
    return r.status();
  }
  RETURN_IF_ERROR(b->SizeMemoryFile(b->record_.state.memory.size));
  return b;
}

absl::Status SimBridge::SizeMemoryFile(uint64_t size) {
  const std::string path = sim_internal::MemoryPath(sim_dir_, node_);
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("open", path);
  struct stat st;
  absl::Status s;
  if (fstat(fd, &st) != 0) {
    s = ErrnoError("fstat", path);
  } else if (static_cast<uint64_t>(st.st_size) != size &&
             ftruncate(fd, static_cast<off_t>(size)) != 0) {
    s = ErrnoError("ftruncate", path);
  }
  close(fd);
  return s;
}

absl::Status SimBridge::Refresh() {
  ASSIGN_OR_RETURN(std::string text, sim_internal::ReadText(state_path_));
  if (text == text_) return absl::OkStatus();
  ASSIGN_OR_RETURN(SimRecord r,
                   sim_internal::ParseRecord(state_path_, node_, text));
  record_ = std::move(r);
  text_ = std::move(text);
  return absl::OkStatus();
}

absl::Status SimBridge::Mutate(
    const std::function<absl::Status(BridgeState&)>& change, bool injectable) {
  if (injectable && inject_count_ > 0) {
    --inject_count_;
    return inject_status_;
  }
  ASSIGN_OR_RETURN(sim_internal::FileLock lock,
                   sim_internal::FileLock::Acquire(lock_path_));
  const absl::Status refreshed = Refresh();
  // A state file that is gone or garbage is registers lost: the chip comes
  // back from a reset (its limits are its own) and this change programs it
  // from there, so the file is written even when the change leaves the
  // reset state as it is.
  const bool lost = absl::IsNotFound(refreshed) || absl::IsDataLoss(refreshed);
  if (lost) {
    record_ = sim_internal::ResetRecord(node_, record_.limits);
    text_.clear();
  } else if (!refreshed.ok()) {
    return refreshed;
  }
  SimRecord next = record_;
  RETURN_IF_ERROR(change(next.state));
  SortState(next.state);
  if (!lost && next.state == record_.state) return absl::OkStatus();
  RETURN_IF_ERROR(InjectFaults(next, injectable));
  if (next.state.memory.size != record_.state.memory.size) {
    RETURN_IF_ERROR(SizeMemoryFile(next.state.memory.size));
  }
  RETURN_IF_ERROR(sim_internal::SaveRecord(state_path_, next, &text_));
  record_ = std::move(next);
  return absl::OkStatus();
}

absl::StatusOr<BridgeState> SimBridge::Read() {
  RETURN_IF_ERROR(Refresh());
  return record_.state;
}

absl::Status SimBridge::SetHostMemory(const HostMemory& memory) {
  return Mutate(
      [&](BridgeState& s) -> absl::Status {
        RETURN_IF_ERROR(CheckHostMemory(memory));
        RETURN_IF_ERROR(CheckInbound(memory, s.inbound));
        RETURN_IF_ERROR(CheckWindowsPlaced(limits(), memory, s.windows));
        s.memory = memory;
        return absl::OkStatus();
      },
      true);
}

absl::Status SimBridge::SetMapEntries(const std::vector<MapEntry>& entries) {
  return Mutate(
      [&](BridgeState& s) -> absl::Status {
        RETURN_IF_ERROR(CheckMapEntries(limits(), entries));
        s.map = entries;
        return absl::OkStatus();
      },
      true);
}

absl::Status SimBridge::SetWindow(const Window& window) {
  return Mutate(
      [&](BridgeState& s) -> absl::Status {
        RETURN_IF_ERROR(
            CheckPlacedWindow(limits(), s.memory.window_base, window));
        for (Window& w : s.windows) {
          if (w.kind == window.kind && w.slot == window.slot) {
            w = window;
            return absl::OkStatus();
          }
        }
        s.windows.push_back(window);
        return absl::OkStatus();
      },
      true);
}

absl::Status SimBridge::ClearWindow(SlotKind kind, int slot) {
  return Mutate(
      [&](BridgeState& s) -> absl::Status {
        RETURN_IF_ERROR(CheckSlot(limits(), kind, slot));
        s.windows.erase(std::remove_if(s.windows.begin(), s.windows.end(),
                                       [&](const Window& w) {
                                         return w.kind == kind &&
                                                w.slot == slot;
                                       }),
                        s.windows.end());
        return absl::OkStatus();
      },
      true);
}

absl::Status SimBridge::SetInbound(const std::vector<Inbound>& inbound) {
  return Mutate(
      [&](BridgeState& s) -> absl::Status {
        RETURN_IF_ERROR(CheckInbound(s.memory, inbound));
        s.inbound = inbound;
        return absl::OkStatus();
      },
      true);
}

absl::Status SimBridge::SetPort(const Port& port) {
  return Mutate(
      [&](BridgeState& s) -> absl::Status {
        RETURN_IF_ERROR(CheckPort(port));
        UpsertPort(s.ports, port);
        return absl::OkStatus();
      },
      true);
}

absl::Status SimBridge::ApplyState(const BridgeState& desired) {
  return Mutate(
      [&](BridgeState& s) -> absl::Status {
        const HardwareLimits& l = limits();
        RETURN_IF_ERROR(CheckHostMemory(desired.memory));
        RETURN_IF_ERROR(CheckMapEntries(l, desired.map));
        std::vector<Window> windows = desired.windows;
        std::sort(windows.begin(), windows.end(),
                  [](const Window& a, const Window& b) {
                    return std::make_pair(a.kind, a.slot) <
                           std::make_pair(b.kind, b.slot);
                  });
        for (size_t i = 0; i < windows.size(); ++i) {
          RETURN_IF_ERROR(
              CheckPlacedWindow(l, desired.memory.window_base, windows[i]));
          if (i > 0 && windows[i].kind == windows[i - 1].kind &&
              windows[i].slot == windows[i - 1].slot) {
            return absl::InvalidArgumentError(
                absl::StrCat(SlotName(windows[i].kind, windows[i].slot),
                             ": programmed twice in one ApplyState"));
          }
        }
        RETURN_IF_ERROR(CheckInbound(desired.memory, desired.inbound));
        for (const Port& p : desired.ports) RETURN_IF_ERROR(CheckPort(p));
        s.memory = desired.memory;
        s.map = desired.map;
        s.windows = std::move(windows);
        s.inbound = desired.inbound;
        for (const Port& p : desired.ports) UpsertPort(s.ports, p);
        return absl::OkStatus();
      },
      true);
}

absl::Status SimBridge::RingPeerDoorbell(const std::string& peer_bridge,
                                         uint64_t bits) {
  RETURN_IF_ERROR(CheckNodeName(peer_bridge));
  if (peer_bridge == node_) {
    return absl::InvalidArgumentError(
        absl::StrCat("bridge ", node_, " cannot ring its own doorbell"));
  }
  RETURN_IF_ERROR(Refresh());
  const std::string peer_state = sim_internal::StatePath(sim_dir_, peer_bridge);
  ASSIGN_OR_RETURN(SimRecord peer,
                   sim_internal::LoadRecord(sim_dir_, peer_bridge, nullptr));
  bool linked = false;
  for (const Port& p : record_.state.ports) {
    if (p.peer_bridge != peer_bridge || !p.up) continue;
    for (const Port& q : peer.state.ports) {
      if (q.number == p.peer_port && q.peer_bridge == node_ &&
          q.peer_port == p.number && q.up) {
        linked = true;
      }
    }
  }
  if (!linked) {
    return absl::UnavailableError(absl::StrCat("no up link from bridge ", node_,
                                               " to bridge ", peer_bridge));
  }
  RETURN_IF_ERROR(CheckDoorbell(peer.limits, bits));
  ASSIGN_OR_RETURN(sim_internal::FileLock lock,
                   sim_internal::FileLock::Acquire(
                       sim_internal::LockPath(sim_dir_, peer_bridge)));
  ASSIGN_OR_RETURN(peer,
                   sim_internal::LoadRecord(sim_dir_, peer_bridge, nullptr));
  if ((peer.state.doorbell | bits) == peer.state.doorbell) {
    return absl::OkStatus();
  }
  peer.state.doorbell |= bits;
  return sim_internal::SaveRecord(peer_state, peer, nullptr);
}

absl::Status SimBridge::ClearDoorbell(uint64_t bits) {
  return Mutate(
      [&](BridgeState& s) -> absl::Status {
        RETURN_IF_ERROR(CheckDoorbell(limits(), bits));
        s.doorbell &= ~bits;
        return absl::OkStatus();
      },
      false);
}

absl::Status SimBridge::WriteScratchpad(int index, uint32_t value) {
  return Mutate(
      [&](BridgeState& s) -> absl::Status {
        RETURN_IF_ERROR(CheckScratchpad(limits(), index));
        if (s.scratchpads.size() < static_cast<size_t>(limits().scratchpads)) {
          s.scratchpads.resize(limits().scratchpads, 0);
        }
        s.scratchpads[index] = value;
        return absl::OkStatus();
      },
      false);
}

absl::StatusOr<AccessResult> SimBridge::HostWrite(
    uint64_t addr, absl::Span<const uint8_t> data) {
  return SimWorld::Write(sim_dir_, node_, addr, data, devices_);
}

absl::Status SimBridge::HostRead(uint64_t addr, absl::Span<uint8_t> out) {
  return SimWorld::ReadMemory(sim_dir_, node_, addr, out);
}

void SimBridge::InjectApplyFailure(absl::Status status, int count) {
  inject_status_ = std::move(status);
  inject_count_ = count;
}

void SimBridge::CrashAfterWrites(int writes) { crash_writes_left_ = writes; }

absl::Status SimBridge::InjectFaults(const sim_internal::SimRecord& next,
                                     bool injectable) {
  const bool crash_armed = crash_writes_left_ >= 0;
  const bool faults_file =
      injectable &&
      access(sim_internal::FaultsPath(sim_dir_, node_).c_str(), F_OK) == 0;
  if (!crash_armed && !faults_file) return absl::OkStatus();
  const std::vector<sim_internal::RegisterWrite> writes =
      sim_internal::RegisterWrites(record_.state, next.state);
  if (faults_file) {
    ASSIGN_OR_RETURN(
        sim_internal::FaultSpec faults,
        sim_internal::LoadFaults(sim_internal::FaultsPath(sim_dir_, node_)));
    if (std::optional<std::string> entry = faults.Refuses(writes)) {
      sim_internal::LogFault(sim_internal::FaultLogPath(sim_dir_, node_),
                             *entry);
      return absl::InternalError(absl::StrCat(
          "simulated bridge ", node_, " refused to program ", *entry,
          " (injected fault, ", sim_internal::FaultsPath(sim_dir_, node_),
          ")"));
    }
  }
  if (!crash_armed) return absl::OkStatus();
  if (writes.size() < static_cast<size_t>(crash_writes_left_)) {
    crash_writes_left_ -= static_cast<int>(writes.size());
    return absl::OkStatus();
  }
  // The crash: exactly crash_writes_left_ writes land, then the process
  // dies as if killed between two register writes.
  sim_internal::SimRecord partial = record_;
  for (int i = 0; i < crash_writes_left_; ++i) writes[i].apply(partial.state);
  SortState(partial.state);
  if (partial.state.memory.size != record_.state.memory.size) {
    (void)SizeMemoryFile(partial.state.memory.size);
  }
  (void)sim_internal::SaveRecord(state_path_, partial, nullptr);
  const std::string note = absl::StrCat(
      "simulated bridge ", node_, ": injected crash after ",
      crash_writes_left_, " of ", writes.size(),
      " register writes of one change (--sim-crash-after-writes)\n");
  (void)!write(2, note.data(), note.size());
  _exit(sim_internal::kSimCrashExitCode);
}

}  // namespace fabric::agent::hw
