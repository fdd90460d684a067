#include "agent/hw/linux/linux_bridge.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/numeric/bits.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/hw/limits_check.h"
#include "common/status_macros.h"
#include "common/units.h"

namespace fabric::agent::hw {
namespace {


bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}


// One write() call: ntb_tool parses each write on its own.
absl::Status WriteFile(const std::string& path, const std::string& text) {
  const int fd = open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open", path);
  ssize_t n;
  do {
    n = write(fd, text.data(), text.size());
  } while (n < 0 && errno == EINTR);
  absl::Status s;
  if (n < 0) {
    s = ErrnoError(absl::StrCat("write '", text, "' to"), path);
  } else if (static_cast<size_t>(n) != text.size()) {
    s = absl::InternalError(
        absl::StrCat("short write of '", text, "' to ", path));
  }
  close(fd);
  return s;
}

// An unsigned number as ntb_tool prints it ("%#llx", "%#x", "%pa", "%d").
absl::StatusOr<uint64_t> ParseNumber(absl::string_view text,
                                     const std::string& what) {
  text = absl::StripAsciiWhitespace(text);
  uint64_t v = 0;
  bool ok = false;
  if (absl::ConsumePrefix(&text, "0x") || absl::ConsumePrefix(&text, "0X")) {
    ok = text.empty() ? false : absl::SimpleHexAtoi(text, &v);
  } else {
    ok = absl::SimpleAtoi(text, &v);
  }
  if (!ok) {
    return absl::DataLossError(
        absl::StrCat(what, ": cannot parse '", text, "' as a number"));
  }
  return v;
}

absl::StatusOr<int64_t> ParseSigned(absl::string_view text,
                                    const std::string& what) {
  text = absl::StripAsciiWhitespace(text);
  // "%d (%d)": the port number, then the peer index in parentheses.
  text = text.substr(0, text.find(' '));
  int64_t v = 0;
  if (!absl::SimpleAtoi(text, &v)) {
    return absl::DataLossError(
        absl::StrCat(what, ": cannot parse '", text, "' as an integer"));
  }
  return v;
}

// ntb_tool's multi-line reports: "Key<spaces>\tValue" per line; a trailing
// ':' on the key (as in "Outbound MW:") is dropped.
std::map<std::string, std::string> ParseReport(const std::string& text) {
  std::map<std::string, std::string> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    const size_t tab = line.find('\t');
    if (tab == absl::string_view::npos) continue;
    absl::string_view key = absl::StripAsciiWhitespace(line.substr(0, tab));
    absl::ConsumeSuffix(&key, ":");
    out[std::string(key)] =
        std::string(absl::StripAsciiWhitespace(line.substr(tab + 1)));
  }
  return out;
}

absl::StatusOr<std::string> Field(const std::map<std::string, std::string>& r,
                                  const std::string& key,
                                  const std::string& path) {
  auto it = r.find(key);
  if (it == r.end()) {
    return absl::DataLossError(
        absl::StrCat(path, ": no '", key, "' line in ntb_tool's report"));
  }
  return it->second;
}

bool Within(uint64_t a, uint64_t as, uint64_t b, uint64_t bs) {
  return a >= b && a - b <= bs && bs - (a - b) >= as;
}

absl::Status PreadAll(const std::string& path, uint64_t off,
                      absl::Span<uint8_t> out) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open", path);
  size_t done = 0;
  absl::Status s;
  while (done < out.size()) {
    const ssize_t n = pread(fd, out.data() + done, out.size() - done,
                            static_cast<off_t>(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      s = ErrnoError("pread", path);
      break;
    }
    if (n == 0) {
      s = absl::OutOfRangeError(absl::StrCat("short read from ", path));
      break;
    }
    done += static_cast<size_t>(n);
  }
  close(fd);
  return s;
}

absl::Status PwriteAll(const std::string& path, uint64_t off,
                       absl::Span<const uint8_t> data) {
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open", path);
  size_t done = 0;
  absl::Status s;
  while (done < data.size()) {
    const ssize_t n = pwrite(fd, data.data() + done, data.size() - done,
                             static_cast<off_t>(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      s = n < 0 ? ErrnoError("pwrite", path)
                : absl::OutOfRangeError(absl::StrCat("short write to ", path));
      break;
    }
    done += static_cast<size_t>(n);
  }
  close(fd);
  return s;
}

}  // namespace

LinuxBridge::LinuxBridge(Options options, const HardwareLimits& limits)
    : options_(std::move(options)), limits_(limits) {}

std::string LinuxBridge::ToolPath(const std::string& rel) const {
  return absl::StrCat(options_.debugfs_root, "/ntb_tool/", options_.device, "/",
                      rel);
}

std::string LinuxBridge::PeerPath(int peer, const std::string& rel) const {
  return ToolPath(absl::StrCat("peer", peer, "/", rel));
}

absl::StatusOr<std::unique_ptr<LinuxBridge>> LinuxBridge::Open(
    Options options, const HardwareLimits& limits) {
  RETURN_IF_ERROR(CheckLimits(limits));
  const std::string sys =
      absl::StrCat(options.sysfs_root, "/bus/ntb/devices/", options.device);
  if (options.device.empty() || !Exists(sys)) {
    return absl::NotFoundError(
        absl::StrCat("NTB device '", options.device, "' not found at ", sys));
  }
  std::unique_ptr<LinuxBridge> b(new LinuxBridge(std::move(options), limits));
  if (!Exists(b->ToolPath("port"))) {
    return absl::NotFoundError(absl::StrCat(
        "ntb_tool has no directory for ", b->options_.device, " (",
        b->ToolPath(""), "); is ntb_tool loaded and debugfs mounted?"));
  }
  for (const auto& [name, idx] : b->options_.peer_index) {
    if (!Exists(b->PeerPath(idx, "port"))) {
      return absl::NotFoundError(absl::StrCat(
          "peer ", name, ": ", b->PeerPath(idx, ""), " does not exist"));
    }
  }
  return b;
}

absl::StatusOr<HardwareLimits> LinuxBridge::DiscoverLimits(
    const Options& options, HardwareLimits base) {
  LinuxBridge probe(options, base);
  int mws = 0;
  while (Exists(probe.PeerPath(options.window_peer,
                               absl::StrCat("peer_mw_trans", mws)))) {
    ++mws;
  }
  if (mws == 0) {
    return absl::NotFoundError(
        absl::StrCat("no peer_mw_trans files under ",
                     probe.PeerPath(options.window_peer, "")));
  }
  base.lut_entries = std::min(base.lut_entries, mws);
  base.window_count = mws - base.lut_entries;
  const std::string mask_path = probe.ToolPath("db_valid_mask");
  if (Exists(mask_path)) {
    ASSIGN_OR_RETURN(std::string text, ReadFileToString(mask_path));
    ASSIGN_OR_RETURN(uint64_t mask, ParseNumber(text, mask_path));
    base.doorbells = absl::popcount(mask);
  }
  int spads = 0;
  while (Exists(probe.ToolPath(absl::StrCat("spad", spads)))) ++spads;
  base.scratchpads = spads;
  return base;
}

int LinuxBridge::WindowIndex(SlotKind kind, int slot) const {
  return kind == SlotKind::kWindow ? slot : limits_.window_count + slot;
}

absl::StatusOr<LinuxBridge::OutboundMw> LinuxBridge::ReadOutbound(
    int widx) const {
  const std::string path =
      PeerPath(options_.window_peer, absl::StrCat("peer_mw_trans", widx));
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  // tool_peer_mw_trans_read(): "Outbound MW:", "Port attached" ("%d (%d)",
  // "-1 (-1)" when unset), "Virtual address", "Phys Address" (%pa),
  // "Mapping Size" (%pa), "Translation Address" (0x%016llx), "Window Size".
  const auto report = ParseReport(text);
  OutboundMw mw;
  mw.widx = widx;
  ASSIGN_OR_RETURN(std::string port, Field(report, "Port attached", path));
  ASSIGN_OR_RETURN(int64_t attached, ParseSigned(port, path));
  mw.port_attached = static_cast<int>(attached);
  ASSIGN_OR_RETURN(std::string phys, Field(report, "Phys Address", path));
  ASSIGN_OR_RETURN(mw.phys_addr, ParseNumber(phys, path));
  ASSIGN_OR_RETURN(std::string map_size, Field(report, "Mapping Size", path));
  ASSIGN_OR_RETURN(mw.mapping_size, ParseNumber(map_size, path));
  ASSIGN_OR_RETURN(std::string xlat,
                   Field(report, "Translation Address", path));
  ASSIGN_OR_RETURN(mw.xlat, ParseNumber(xlat, path));
  ASSIGN_OR_RETURN(std::string size, Field(report, "Window Size", path));
  ASSIGN_OR_RETURN(mw.size, ParseNumber(size, path));
  return mw;
}

absl::StatusOr<std::vector<LinuxBridge::OutboundMw>>
LinuxBridge::ReadAllOutbound() const {
  std::vector<OutboundMw> out;
  for (int widx = 0;; ++widx) {
    if (!Exists(PeerPath(options_.window_peer,
                         absl::StrCat("peer_mw_trans", widx)))) {
      break;
    }
    ASSIGN_OR_RETURN(OutboundMw mw, ReadOutbound(widx));
    out.push_back(mw);
  }
  return out;
}

absl::StatusOr<std::vector<LinuxBridge::InboundMw>>
LinuxBridge::ReadAllInbound() const {
  std::vector<InboundMw> out;
  for (const auto& [name, peer] : options_.peer_index) {
    for (int widx = 0;; ++widx) {
      const std::string path = PeerPath(peer, absl::StrCat("mw_trans", widx));
      if (!Exists(path)) break;
      ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
      // tool_mw_trans_read(): "Inbound MW", "Port", "Window Address",
      // "DMA Address" (%pad), "Window Size" (%pa), "Alignment",
      // "Size Alignment", "Size Max".
      const auto report = ParseReport(text);
      InboundMw mw;
      mw.peer = peer;
      mw.widx = widx;
      ASSIGN_OR_RETURN(std::string dma, Field(report, "DMA Address", path));
      ASSIGN_OR_RETURN(mw.dma_addr, ParseNumber(dma, path));
      ASSIGN_OR_RETURN(std::string size, Field(report, "Window Size", path));
      ASSIGN_OR_RETURN(mw.size, ParseNumber(size, path));
      if (mw.size != 0) out.push_back(mw);
    }
  }
  return out;
}

absl::StatusOr<BridgeState> LinuxBridge::Read() {
  BridgeState s;
  s.memory = memory_;
  ASSIGN_OR_RETURN(std::vector<OutboundMw> outs, ReadAllOutbound());
  for (const OutboundMw& mw : outs) {
    if (mw.port_attached == -1 && mw.size == 0) continue;
    Window w;
    if (mw.widx < limits_.window_count) {
      w.kind = SlotKind::kWindow;
      w.slot = mw.widx;
    } else if (mw.widx - limits_.window_count < limits_.lut_entries) {
      w.kind = SlotKind::kLut;
      w.slot = mw.widx - limits_.window_count;
    } else {
      continue;  // Beyond what the limits describe.
    }
    w.local_base = mw.phys_addr;
    w.size = mw.size;
    w.xlat = mw.xlat;
    s.windows.push_back(w);
  }
  ASSIGN_OR_RETURN(std::vector<InboundMw> ins, ReadAllInbound());
  for (const InboundMw& mw : ins)
    s.inbound.push_back({mw.dma_addr, mw.size, ""});
  std::sort(s.inbound.begin(), s.inbound.end(),
            [](const Inbound& a, const Inbound& b) {
              return a.local_base < b.local_base;
            });
  for (const auto& [name, peer] : options_.peer_index) {
    Port p;
    p.number = peer + 1;
    p.peer_bridge = name;
    const std::string port_path = PeerPath(peer, "port");
    ASSIGN_OR_RETURN(std::string port_text, ReadFileToString(port_path));
    ASSIGN_OR_RETURN(int64_t peer_port, ParseSigned(port_text, port_path));
    p.peer_port = static_cast<int>(peer_port);
    ASSIGN_OR_RETURN(std::string link, ReadFileToString(PeerPath(peer, "link")));
    p.up = !link.empty() && link[0] == 'Y';
    s.ports.push_back(p);
  }
  std::sort(s.ports.begin(), s.ports.end(),
            [](const Port& a, const Port& b) { return a.number < b.number; });
  const std::string db_path = ToolPath("db");
  ASSIGN_OR_RETURN(std::string db, ReadFileToString(db_path));
  ASSIGN_OR_RETURN(s.doorbell, ParseNumber(db, db_path));
  for (int i = 0; i < limits_.scratchpads; ++i) {
    const std::string path = ToolPath(absl::StrCat("spad", i));
    if (!Exists(path)) break;
    ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
    ASSIGN_OR_RETURN(uint64_t v, ParseNumber(text, path));
    s.scratchpads.push_back(static_cast<uint32_t>(v));
  }
  return s;
}

absl::Status LinuxBridge::SetHostMemory(const HostMemory& memory) {
  RETURN_IF_ERROR(CheckHostMemory(memory));
  memory_ = memory;
  return absl::OkStatus();
}

absl::Status LinuxBridge::SetMapEntries(const std::vector<MapEntry>& entries) {
  if (entries.empty()) return absl::OkStatus();
  return absl::UnimplementedError(absl::StrCat(
      "the address-mapping chip has no Linux interface (ntb_tool exposes "
      "only memory windows, doorbells, scratchpads and messages); cannot "
      "program ",
      entries.size(), " mapping entries on ", options_.device));
}

absl::Status LinuxBridge::SetWindow(const Window& window) {
  RETURN_IF_ERROR(CheckSlot(limits_, window.kind, window.slot));
  const int widx = WindowIndex(window.kind, window.slot);
  absl::StatusOr<OutboundMw> mw = ReadOutbound(widx);
  if (absl::IsNotFound(mw.status())) {
    return absl::InvalidArgumentError(
        absl::StrCat(SlotName(window.kind, window.slot),
                     ": ntb_tool has no "
                     "outbound memory window ",
                     widx, " on ", options_.device));
  }
  if (!mw.ok()) return mw.status();
  RETURN_IF_ERROR(CheckWindow(limits_, window, mw->phys_addr));
  if (window.size > mw->mapping_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        SlotName(window.kind, window.slot), ": size ", FormatSize(window.size),
        " is over the window's mapping size ", FormatSize(mw->mapping_size)));
  }
  if (mw->port_attached != -1 && mw->xlat == window.xlat &&
      mw->size == window.size) {
    return absl::OkStatus();  // Rewriting would tear the mapping down.
  }
  // tool_peer_mw_trans_write() parses "%lli:%zi".
  return WriteFile(
      PeerPath(options_.window_peer, absl::StrCat("peer_mw_trans", widx)),
      absl::StrCat("0x", absl::Hex(window.xlat), ":", window.size));
}

absl::Status LinuxBridge::ClearWindow(SlotKind kind, int slot) {
  RETURN_IF_ERROR(CheckSlot(limits_, kind, slot));
  const int widx = WindowIndex(kind, slot);
  ASSIGN_OR_RETURN(OutboundMw mw, ReadOutbound(widx));
  if (mw.port_attached == -1 && mw.size == 0) return absl::OkStatus();
  return WriteFile(
      PeerPath(options_.window_peer, absl::StrCat("peer_mw_trans", widx)),
      "0:0");
}

absl::Status LinuxBridge::SetInbound(const std::vector<Inbound>& inbound) {
  ASSIGN_OR_RETURN(std::vector<InboundMw> have, ReadAllInbound());
  std::vector<bool> keep(have.size(), false);
  for (const Inbound& in : inbound) {
    bool found = false;
    for (size_t i = 0; i < have.size(); ++i) {
      if (have[i].dma_addr == in.local_base && have[i].size == in.size) {
        keep[i] = found = true;
      }
    }
    if (!found) {
      return absl::UnimplementedError(absl::StrCat(
          "inbound grant '", in.tag, "' at ", FormatAddr(in.local_base), " of ",
          FormatSize(in.size),
          ": ntb_tool's mw_trans takes only a "
          "size and the kernel chooses the buffer's address, so a given host "
          "range cannot be exposed on ",
          options_.device));
    }
  }
  for (size_t i = 0; i < have.size(); ++i) {
    if (keep[i]) continue;
    RETURN_IF_ERROR(WriteFile(
        PeerPath(have[i].peer, absl::StrCat("mw_trans", have[i].widx)), "0"));
  }
  return absl::OkStatus();
}

absl::Status LinuxBridge::WriteLink() {
  bool any_up = false;
  for (const auto& [number, up] : wanted_up_) any_up = any_up || up;
  return WriteFile(ToolPath("link"), any_up ? "Y" : "N");
}

absl::Status LinuxBridge::SetPort(const Port& port) {
  RETURN_IF_ERROR(CheckPort(port));
  if (!port.peer_bridge.empty()) {
    auto it = options_.peer_index.find(port.peer_bridge);
    if (it == options_.peer_index.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("port ", port.number, ": peer bridge '",
                       port.peer_bridge, "' has no ntb_tool peer index"));
    }
    if (it->second + 1 != port.number) {
      return absl::InvalidArgumentError(absl::StrCat(
          "port ", port.number, ": peer bridge '", port.peer_bridge,
          "' is ntb_tool peer ", it->second, ", i.e. port ", it->second + 1));
    }
  }
  wanted_up_[port.number] = port.up;
  return WriteLink();
}

absl::Status LinuxBridge::RingPeerDoorbell(const std::string& peer_bridge,
                                           uint64_t bits) {
  if (options_.peer_index.count(peer_bridge) == 0) {
    return absl::NotFoundError(absl::StrCat("peer bridge '", peer_bridge,
                                            "' has no ntb_tool peer index"));
  }
  RETURN_IF_ERROR(CheckDoorbell(limits_, bits));
  // tool_fn_write() parses "%c %lli".
  return WriteFile(ToolPath("peer_db"), absl::StrCat("s 0x", absl::Hex(bits)));
}

absl::Status LinuxBridge::WriteScratchpad(int index, uint32_t value) {
  RETURN_IF_ERROR(CheckScratchpad(limits_, index));
  return WriteFile(ToolPath(absl::StrCat("spad", index)),
                   absl::StrCat("0x", absl::Hex(value)));
}

absl::StatusOr<AccessResult> LinuxBridge::HostWrite(
    uint64_t addr, absl::Span<const uint8_t> data) {
  AccessResult r;
  r.hops.push_back(options_.name);
  ASSIGN_OR_RETURN(std::vector<OutboundMw> outs, ReadAllOutbound());
  for (const OutboundMw& mw : outs) {
    if (mw.port_attached == -1 || mw.size == 0) continue;
    if (addr < mw.phys_addr || addr - mw.phys_addr >= mw.size) continue;
    if (!Within(addr, data.size(), mw.phys_addr, mw.size)) {
      r.fault_bridge = options_.name;
      r.fault_addr = addr;
      r.reason = "crosses window end";
      return r;
    }
    const std::string path =
        PeerPath(options_.window_peer, absl::StrCat("peer_mw", mw.widx));
    if (!Exists(path)) {
      return absl::UnimplementedError(absl::StrCat(
          "no ", path, " to write outbound window ", mw.widx, " through"));
    }
    RETURN_IF_ERROR(PwriteAll(path, addr - mw.phys_addr, data));
    r.landed = true;
    r.addr = mw.xlat + (addr - mw.phys_addr);
    return r;
  }
  ASSIGN_OR_RETURN(std::vector<InboundMw> ins, ReadAllInbound());
  for (const InboundMw& mw : ins) {
    if (!Within(addr, data.size(), mw.dma_addr, mw.size)) continue;
    RETURN_IF_ERROR(PwriteAll(PeerPath(mw.peer, absl::StrCat("mw", mw.widx)),
                              addr - mw.dma_addr, data));
    r.landed = true;
    r.node = options_.name;
    r.addr = addr;
    return r;
  }
  return absl::UnimplementedError(absl::StrCat(
      "write at ", FormatAddr(addr),
      ": neither in an outbound window nor in "
      "an inbound buffer ntb_tool exposes; no other host memory is reachable"));
}

absl::Status LinuxBridge::HostRead(uint64_t addr, absl::Span<uint8_t> out) {
  ASSIGN_OR_RETURN(std::vector<InboundMw> ins, ReadAllInbound());
  for (const InboundMw& mw : ins) {
    if (!Within(addr, out.size(), mw.dma_addr, mw.size)) continue;
    return PreadAll(PeerPath(mw.peer, absl::StrCat("mw", mw.widx)),
                    addr - mw.dma_addr, out);
  }
  return absl::UnimplementedError(
      absl::StrCat("read at ", FormatAddr(addr),
                   ": not in an inbound buffer ntb_tool "
                   "exposes (peerN/mwN); no other host memory is reachable"));
}

}  // namespace fabric::agent::hw
