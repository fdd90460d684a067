#include "agent/hw/sim/sriov_device.h"

#include <algorithm>
#include <array>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/hw/sim/sim_config_space.h"
#include "agent/hw/sim/sim_world.h"
#include "agent/hw/sim/state_file.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/units.h"

namespace fabric::agent::hw {
namespace {

using discovery::PciAddress;
using sim_config::BarValue;
using sim_config::Build;
using sim_config::CheckAccess;
using sim_config::Config;
using sim_config::Get;
using sim_config::kBar0;
using sim_config::kCmdBusMaster;
using sim_config::kCmdMemory;
using sim_config::kCommand;
using sim_config::kMsixCtrl;
using sim_config::kSriovCtrl;
using sim_config::kSriovNumVfs;
using sim_config::kSriovVfBar0;
using sim_config::kVfEnable;
using sim_config::kVfMse;
using sim_config::MaskOf;
using sim_config::Put;
using sim_internal::MakeDir;
using sim_internal::PRead;
using sim_internal::PWrite;
using vf::kMsixEnable;
using vf::kMsixEntryBytes;
using vf::kMsixFunctionMask;
using vf::kMsixVectorControl;
using vf::kMsixVectorMasked;
using vf::MsixEntryOffset;
using State = sim_internal::DeviceState;

absl::Status CheckNodeName(const std::string& node) {
  if (node.empty() || node == "." || node == ".." ||
      node.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "simulated node name '", node, "' must be a non-empty path component"));
  }
  return absl::OkStatus();
}

}  // namespace

SimSriovHost::SimSriovHost(std::string sim_dir, std::string node,
                           SimHardware hw)
    : sim_dir_(std::move(sim_dir)),
      node_(std::move(node)),
      hw_(std::move(hw)),
      store_(sim_dir_, node_, hw_) {}

absl::StatusOr<State> SimSriovHost::Load() const { return store_.Load(); }

absl::Status SimSriovHost::Save(const State& s) const { return store_.Save(s); }

absl::Status SimSriovHost::EnableVfs(State& s, int pf_index, int count) const {
  const SimPf& pf = hw_.pfs[pf_index];
  for (int k = 0; k < count; ++k) {
    State::Func f;
    f.address = pf.VfAddress(k);
    f.pf_index = pf_index;
    f.vf = true;
    f.vf_index = k;
    Config mask;
    Build(pf, true, false, PfBarLayout{}, f.cfg, mask);
    RETURN_IF_ERROR(store_.CreateFunctionFiles(pf_index, true, f.address));
    s.funcs.push_back(f);
  }
  s.Sort();
  return absl::OkStatus();
}

void SimSriovHost::DisableVfs(State& s, int pf_index) const {
  std::vector<State::Func> keep;
  for (const State::Func& f : s.funcs) {
    if (f.vf && f.pf_index == pf_index) {
      store_.RemoveFunctionFiles(pf_index, true, f.address);
    } else {
      keep.push_back(f);
    }
  }
  s.funcs = std::move(keep);
}

absl::StatusOr<std::unique_ptr<SimSriovHost>> SimSriovHost::Open(
    const std::string& sim_dir, const std::string& node,
    const SimHardware& hw) {
  RETURN_IF_ERROR(CheckNodeName(node));
  RETURN_IF_ERROR(MakeDir(sim_dir));
  RETURN_IF_ERROR(MakeDir(absl::StrCat(sim_dir, "/", node)));
  std::unique_ptr<SimSriovHost> h(new SimSriovHost(sim_dir, node, hw));
  RETURN_IF_ERROR(MakeDir(h->store_.bar_dir()));
  absl::MutexLock l(&h->mu_);
  ASSIGN_OR_RETURN(sim_internal::FileLock lock,
                   sim_internal::FileLock::Acquire(h->store_.lock_path()));
  absl::StatusOr<std::string> text = ReadFileToString(h->store_.state_path());
  if (text.ok()) {
    ASSIGN_OR_RETURN(
        std::string hw_json,
        sim_internal::StoredHardwareJson(h->store_.state_path(), *text));
    absl::StatusOr<SimHardware> stored = ParseSimHardware(hw_json);
    if (!stored.ok() || *stored != hw) {
      return absl::FailedPreconditionError(absl::StrCat(
          h->store_.state_path(),
          " was made from different hardware; delete it to power-cycle the "
          "simulated devices"));
    }
    RETURN_IF_ERROR(h->Load().status());
    return h;
  }
  if (!absl::IsNotFound(text.status())) return text.status();

  // Power-on.
  ASSIGN_OR_RETURN(std::vector<PfBarLayout> layout, LayoutBars(hw));
  State s;
  for (size_t i = 0; i < hw.pfs.size(); ++i) {
    const SimPf& pf = hw.pfs[i];
    bool multifunction = false;
    for (const SimPf& other : hw.pfs) {
      multifunction |= other.address != pf.address &&
                       other.address.domain == pf.address.domain &&
                       other.address.bus == pf.address.bus &&
                       other.address.device == pf.address.device;
    }
    State::Func f;
    f.address = pf.address;
    f.pf_index = static_cast<int>(i);
    Config mask;
    Build(pf, false, multifunction, layout[i], f.cfg, mask);
    RETURN_IF_ERROR(
        h->store_.CreateFunctionFiles(f.pf_index, false, f.address));
    if (pf.num_vfs > 0) {
      Put(f.cfg, kSriovNumVfs, 2, pf.num_vfs);
      Put(f.cfg, kSriovCtrl, 2, kVfEnable | kVfMse);
    }
    s.funcs.push_back(f);
    RETURN_IF_ERROR(h->EnableVfs(s, f.pf_index, pf.num_vfs));
  }
  s.Sort();
  RETURN_IF_ERROR(h->Save(s));
  return h;
}

absl::StatusOr<std::unique_ptr<SimSriovHost>> SimSriovHost::OpenExisting(
    const std::string& sim_dir, const std::string& node) {
  RETURN_IF_ERROR(CheckNodeName(node));
  const std::string path = absl::StrCat(sim_dir, "/", node, "/devices.json");
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (absl::IsNotFound(text.status())) {
    return absl::NotFoundError(
        absl::StrCat("node ", node, " has no simulated devices (", path, ")"));
  }
  if (!text.ok()) return text.status();
  ASSIGN_OR_RETURN(std::string hw_json,
                   sim_internal::StoredHardwareJson(path, *text));
  absl::StatusOr<SimHardware> hw = ParseSimHardware(hw_json);
  if (!hw.ok()) {
    return absl::DataLossError(absl::StrCat(
        path, ": the stored hardware is not valid: ", hw.status().message()));
  }
  return Open(sim_dir, node, *hw);
}

absl::StatusOr<std::vector<SimFunction>> SimSriovHost::Functions() {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(State s, Load());
  std::vector<SimFunction> out;
  for (const State::Func& f : s.funcs) {
    out.push_back({f.address, f.vf, hw_.pfs[f.pf_index].address, f.vf_index});
  }
  return out;
}

absl::StatusOr<uint32_t> SimSriovHost::ConfigRead(const PciAddress& bdf,
                                                  uint16_t offset, int size) {
  RETURN_IF_ERROR(CheckAccess(offset, size));
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, s.FindOrError(bdf));
  if (s.Dead(fi)) return size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
  return Get(s.funcs[fi].cfg, offset, size);
}

absl::StatusOr<std::vector<uint8_t>> SimSriovHost::ConfigSpace(
    const PciAddress& bdf) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, s.FindOrError(bdf));
  if (s.Dead(fi)) return std::vector<uint8_t>(4096, 0xff);
  return std::vector<uint8_t>(s.funcs[fi].cfg.begin(), s.funcs[fi].cfg.end());
}

absl::Status SimSriovHost::ConfigWrite(const PciAddress& bdf, uint16_t offset,
                                       int size, uint32_t value) {
  RETURN_IF_ERROR(CheckAccess(offset, size));
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(sim_internal::FileLock lock,
                   sim_internal::FileLock::Acquire(store_.lock_path()));
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, s.FindOrError(bdf));
  if (s.Dead(fi)) return absl::OkStatus();  // Dropped, as on a dead link.
  State::Func& f = s.funcs[fi];
  const SimPf& pf = hw_.pfs[f.pf_index];
  const Config mask = MaskOf(pf, f.vf);
  const Config old = f.cfg;
  for (int i = 0; i < size; ++i) {
    const size_t b = offset + i;
    const uint8_t v = static_cast<uint8_t>(value >> (8 * i));
    f.cfg[b] = static_cast<uint8_t>((old[b] & ~mask[b]) | (v & mask[b]));
  }
  const PciAddress addr = f.address;
  const int pf_index = f.pf_index;
  if (!f.vf) {
    // NumVFs: writable only while VF Enable is clear, and only to values the
    // device has (larger ones are undefined in the spec; ignored here).
    const bool was_enabled = Get(old, kSriovCtrl, 2) & kVfEnable;
    if (was_enabled || Get(f.cfg, kSriovNumVfs, 2) > pf.total_vfs) {
      Put(f.cfg, kSriovNumVfs, 2, Get(old, kSriovNumVfs, 2));
    }
    const bool now_enabled = Get(f.cfg, kSriovCtrl, 2) & kVfEnable;
    const int num_vfs = static_cast<int>(Get(f.cfg, kSriovNumVfs, 2));
    if (!was_enabled && now_enabled) {
      RETURN_IF_ERROR(EnableVfs(s, pf_index, num_vfs));
    } else if (was_enabled && !now_enabled) {
      DisableVfs(s, pf_index);
    }
  }
  const int at = s.Find(addr);
  const uint32_t old_ctl = Get(old, kMsixCtrl, 2);
  const uint32_t new_ctl = Get(s.funcs[at].cfg, kMsixCtrl, 2);
  const bool could = (old_ctl & kMsixEnable) && !(old_ctl & kMsixFunctionMask);
  const bool can = (new_ctl & kMsixEnable) && !(new_ctl & kMsixFunctionMask);
  RETURN_IF_ERROR(Save(s));
  if (can && !could) return DeliverPending(s, at, -1, nullptr);
  return absl::OkStatus();
}

absl::StatusOr<int> SimSriovHost::NumVfs(const PciAddress& pf) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, s.FindOrError(pf));
  if (s.funcs[fi].vf) {
    return absl::InvalidArgumentError(
        absl::StrCat(pf.ToString(), " is a VF, not a PF"));
  }
  const Config& c = s.funcs[fi].cfg;
  return (Get(c, kSriovCtrl, 2) & kVfEnable)
             ? static_cast<int>(Get(c, kSriovNumVfs, 2))
             : 0;
}

absl::Status SimSriovHost::SetNumVfs(const PciAddress& pf, int n) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(sim_internal::FileLock lock,
                   sim_internal::FileLock::Acquire(store_.lock_path()));
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, s.FindOrError(pf));
  if (s.funcs[fi].vf) {
    return absl::InvalidArgumentError(
        absl::StrCat(pf.ToString(), " is a VF, not a PF"));
  }
  const int pf_index = s.funcs[fi].pf_index;
  const SimPf& spec = hw_.pfs[pf_index];
  if (n < 0 || n > spec.total_vfs) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: %d VFs requested; TotalVFs is %d", pf.ToString(),
                        n, spec.total_vfs));
  }
  if (s.Dead(fi)) {
    return absl::UnavailableError(
        absl::StrCat(pf.ToString(), " does not respond (failed or link down)"));
  }
  Config& c = s.funcs[fi].cfg;
  const bool enabled = Get(c, kSriovCtrl, 2) & kVfEnable;
  const int current = enabled ? static_cast<int>(Get(c, kSriovNumVfs, 2)) : 0;
  if (n == current) return absl::OkStatus();
  if (current != 0 && n != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s: %d VFs already enabled; set 0 before enabling %d",
                        pf.ToString(), current, n));
  }
  if (n == 0) {
    Put(c, kSriovCtrl, 2, Get(c, kSriovCtrl, 2) & ~(kVfEnable | kVfMse));
    Put(c, kSriovNumVfs, 2, 0);
    DisableVfs(s, pf_index);
  } else {
    Put(c, kSriovNumVfs, 2, static_cast<uint32_t>(n));
    Put(c, kSriovCtrl, 2, Get(c, kSriovCtrl, 2) | kVfEnable | kVfMse);
    RETURN_IF_ERROR(EnableVfs(s, pf_index, n));
  }
  return Save(s);
}

namespace {

// The BAR's size, or NOT_FOUND.
absl::StatusOr<uint64_t> SizeOf(const SimPf& pf, bool vf, const PciAddress& a,
                                int bar) {
  if (bar < 0 || bar >= kBarCount ||
      (vf ? pf.vf_bar_sizes : pf.bar_sizes)[bar] == 0) {
    return absl::NotFoundError(
        absl::StrFormat("%s has no BAR%d", a.ToString(), bar));
  }
  return (vf ? pf.vf_bar_sizes : pf.bar_sizes)[bar];
}

// Where BAR `bar` (of size `size`) of function `f` of `s` decodes: its BAR
// register, or a VF's from its PF's VF BAR.
uint64_t AddressOf(const sim_internal::DeviceState& s,
                   const sim_internal::DeviceState::Func& f, int bar,
                   uint64_t size) {
  if (!f.vf) return BarValue(f.cfg, kBar0 + 4 * bar);
  const sim_internal::DeviceState::Func& p = s.funcs[s.FindPf(f.pf_index)];
  return BarValue(p.cfg, kSriovVfBar0 + 4 * bar) +
         static_cast<uint64_t>(f.vf_index) * size;
}

}  // namespace

absl::StatusOr<std::vector<SimFunctionImage>> SimSriovHost::Images() {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(State s, Load());
  std::vector<SimFunctionImage> out;
  out.reserve(s.funcs.size());
  for (size_t fi = 0; fi < s.funcs.size(); ++fi) {
    const State::Func& f = s.funcs[fi];
    const SimPf& pf = hw_.pfs[f.pf_index];
    SimFunctionImage& image = out.emplace_back();
    image.function = {f.address, f.vf, pf.address, f.vf_index};
    image.config = s.Dead(static_cast<int>(fi))
                       ? std::vector<uint8_t>(4096, 0xff)
                       : std::vector<uint8_t>(f.cfg.begin(), f.cfg.end());
    for (int bar = 0; bar < kBarCount; ++bar) {
      absl::StatusOr<uint64_t> size = SizeOf(pf, f.vf, f.address, bar);
      if (!size.ok()) continue;
      image.bar_sizes[bar] = *size;
      image.bar_addresses[bar] = AddressOf(s, f, bar, *size);
    }
  }
  return out;
}

absl::StatusOr<uint64_t> SimSriovHost::BarSize(const PciAddress& bdf, int bar) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, s.FindOrError(bdf));
  const State::Func& f = s.funcs[fi];
  return SizeOf(hw_.pfs[f.pf_index], f.vf, bdf, bar);
}

absl::StatusOr<uint64_t> SimSriovHost::BarAddress(const PciAddress& bdf,
                                                  int bar) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, s.FindOrError(bdf));
  const State::Func& f = s.funcs[fi];
  ASSIGN_OR_RETURN(uint64_t size, SizeOf(hw_.pfs[f.pf_index], f.vf, bdf, bar));
  return AddressOf(s, f, bar, size);
}

absl::Status SimSriovHost::MmioWriteAt(uint64_t addr,
                                       absl::Span<const uint8_t> data) {
  PciAddress bdf;
  int bar = -1;
  uint64_t offset = 0;
  {
    absl::MutexLock l(&mu_);
    ASSIGN_OR_RETURN(State s, Load());
    for (const State::Func& f : s.funcs) {
      const SimPf& pf = hw_.pfs[f.pf_index];
      for (int b = 0; b < kBarCount && bar < 0; ++b) {
        absl::StatusOr<uint64_t> size = SizeOf(pf, f.vf, f.address, b);
        if (!size.ok()) continue;
        const uint64_t base =
            f.vf ? BarValue(s.funcs[s.FindPf(f.pf_index)].cfg,
                            kSriovVfBar0 + 4 * b) +
                       static_cast<uint64_t>(f.vf_index) * *size
                 : BarValue(f.cfg, kBar0 + 4 * b);
        if (base != 0 && addr >= base && addr - base < *size) {
          bdf = f.address;
          bar = b;
          offset = addr - base;
        }
      }
      if (bar >= 0) break;
    }
  }
  if (bar < 0) {
    return absl::NotFoundError(
        absl::StrCat("no BAR of a function on ", node_, " decodes ",
                     FormatAddr(addr)));
  }
  return MmioWrite(bdf, bar, offset, data);
}

absl::Status SimDevicesMmio::Write(const std::string& node, uint64_t addr,
                                   absl::Span<const uint8_t> data) {
  ASSIGN_OR_RETURN(std::unique_ptr<SimSriovHost> host,
                   SimSriovHost::OpenExisting(sim_dir_, node));
  return host->MmioWriteAt(addr, data);
}

absl::Status SimSriovHost::MmioRead(const PciAddress& bdf, int bar,
                                    uint64_t offset, absl::Span<uint8_t> out) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, s.FindOrError(bdf));
  const State::Func& f = s.funcs[fi];
  ASSIGN_OR_RETURN(uint64_t size, SizeOf(hw_.pfs[f.pf_index], f.vf, bdf, bar));
  if (offset > size || out.size() > size - offset) {
    return absl::OutOfRangeError(
        absl::StrFormat("%s BAR%d: [0x%x, +0x%x) passes its size 0x%x",
                        bdf.ToString(), bar, offset, out.size(), size));
  }
  if (s.Dead(fi)) {
    std::fill(out.begin(), out.end(), 0xff);
    return absl::OkStatus();
  }
  const bool decodes =
      f.vf ? Get(s.funcs[s.FindPf(f.pf_index)].cfg, kSriovCtrl, 2) & kVfMse
           : Get(f.cfg, kCommand, 2) & kCmdMemory;
  if (!decodes) {
    return absl::FailedPreconditionError(
        absl::StrCat(bdf.ToString(), ": memory space disabled (",
                     f.vf ? "the PF's VF MSE" : "Command bit 1", " is clear)"));
  }
  return PRead(store_.BarPath(bdf, bar), offset, out);
}

absl::Status SimSriovHost::MmioWrite(const PciAddress& bdf, int bar,
                                     uint64_t offset,
                                     absl::Span<const uint8_t> data) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(sim_internal::FileLock lock,
                   sim_internal::FileLock::Acquire(store_.lock_path()));
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, s.FindOrError(bdf));
  const State::Func& f = s.funcs[fi];
  const SimPf& pf = hw_.pfs[f.pf_index];
  ASSIGN_OR_RETURN(uint64_t size, SizeOf(pf, f.vf, bdf, bar));
  if (offset > size || data.size() > size - offset) {
    return absl::OutOfRangeError(
        absl::StrFormat("%s BAR%d: [0x%x, +0x%x) passes its size 0x%x",
                        bdf.ToString(), bar, offset, data.size(), size));
  }
  if (s.Dead(fi)) return absl::OkStatus();  // Dropped.
  const bool decodes =
      f.vf ? Get(s.funcs[s.FindPf(f.pf_index)].cfg, kSriovCtrl, 2) & kVfMse
           : Get(f.cfg, kCommand, 2) & kCmdMemory;
  if (!decodes) {
    return absl::FailedPreconditionError(
        absl::StrCat(bdf.ToString(), ": memory space disabled (",
                     f.vf ? "the PF's VF MSE" : "Command bit 1", " is clear)"));
  }
  const std::string path = store_.BarPath(bdf, bar);
  if (bar != pf.msix_bar) return PWrite(path, offset, data);
  // The PBA is read-only: write around it.
  const uint64_t pba = MsixPbaOffset(pf.msix_vectors);
  const uint64_t pba_end = pba + MsixPbaBytes(pf.msix_vectors);
  const uint64_t end = offset + data.size();
  if (offset < pba) {
    RETURN_IF_ERROR(
        PWrite(path, offset, data.subspan(0, std::min(end, pba) - offset)));
  }
  if (end > pba_end) {
    const uint64_t from = std::max(offset, pba_end);
    RETURN_IF_ERROR(PWrite(path, from, data.subspan(from - offset)));
  }
  if (offset < MsixTableBytes(pf.msix_vectors)) {
    return DeliverPending(s, fi, -1, nullptr);
  }
  return absl::OkStatus();
}

absl::StatusOr<AccessResult> SimSriovHost::Dma(const PciAddress& bdf,
                                               uint64_t io_addr,
                                               absl::Span<const uint8_t> data) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, s.FindOrError(bdf));
  if (s.Dead(fi)) {
    return absl::UnavailableError(absl::StrCat(
        bdf.ToString(), " does not respond (failed or link down)"));
  }
  if (!(Get(s.funcs[fi].cfg, kCommand, 2) & kCmdBusMaster)) {
    return absl::FailedPreconditionError(
        absl::StrCat(bdf.ToString(), ": bus mastering disabled"));
  }
  return SimWorld::Write(sim_dir_, node_, io_addr, data);
}

absl::StatusOr<MsixResult> SimSriovHost::Send(const State& s, int fi,
                                              int vector) const {
  const State::Func& f = s.funcs[fi];
  const SimPf& pf = hw_.pfs[f.pf_index];
  std::array<uint8_t, kMsixEntryBytes> e{};
  RETURN_IF_ERROR(PRead(store_.BarPath(f.address, pf.msix_bar),
                        MsixEntryOffset(vector), absl::MakeSpan(e)));
  Config c{};
  std::copy(e.begin(), e.end(), c.begin());
  MsixResult r;
  r.outcome = MsixResult::Outcome::kDelivered;
  r.message.addr = (uint64_t{Get(c, vf::kMsixAddrHi, 4)} << 32) |
                   Get(c, vf::kMsixAddrLo, 4);
  r.message.data = Get(c, vf::kMsixData, 4);
  ASSIGN_OR_RETURN(r.access,
                   SimWorld::Write(sim_dir_, node_, r.message.addr,
                                   absl::MakeConstSpan(e.data() + vf::kMsixData, 4)));
  return r;
}

absl::Status SimSriovHost::DeliverPending(State& s, int fi, int only_vector,
                                          MsixResult* result) const {
  const State::Func& f = s.funcs[fi];
  const SimPf& pf = hw_.pfs[f.pf_index];
  const uint32_t ctl = Get(f.cfg, kMsixCtrl, 2);
  const bool can_send = !s.Dead(fi) && (ctl & kMsixEnable) &&
                        !(ctl & kMsixFunctionMask) &&
                        (Get(f.cfg, kCommand, 2) & kCmdBusMaster);
  const std::string path = store_.BarPath(f.address, pf.msix_bar);
  const uint64_t pba = MsixPbaOffset(pf.msix_vectors);
  std::vector<uint8_t> bits(MsixPbaBytes(pf.msix_vectors));
  RETURN_IF_ERROR(PRead(path, pba, absl::MakeSpan(bits)));
  for (uint32_t v = 0; v < pf.msix_vectors; ++v) {
    if (only_vector >= 0 && static_cast<int>(v) != only_vector) continue;
    const uint8_t bit = static_cast<uint8_t>(1u << (v % 8));
    if (!(bits[v / 8] & bit)) continue;
    std::array<uint8_t, 4> vc{};
    RETURN_IF_ERROR(PRead(path, MsixEntryOffset(v) + kMsixVectorControl,
                          absl::MakeSpan(vc)));
    if (!can_send || (vc[0] & kMsixVectorMasked)) {
      if (result != nullptr) result->outcome = MsixResult::Outcome::kPending;
      continue;
    }
    bits[v / 8] &= static_cast<uint8_t>(~bit);
    const std::array<uint8_t, 1> byte = {bits[v / 8]};
    RETURN_IF_ERROR(PWrite(path, pba + v / 8, byte));
    ASSIGN_OR_RETURN(MsixResult r, Send(s, fi, static_cast<int>(v)));
    if (result != nullptr) *result = r;
  }
  return absl::OkStatus();
}

absl::StatusOr<MsixResult> SimSriovHost::RaiseMsix(const PciAddress& bdf,
                                                   int vector) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(sim_internal::FileLock lock,
                   sim_internal::FileLock::Acquire(store_.lock_path()));
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, s.FindOrError(bdf));
  const State::Func& f = s.funcs[fi];
  const SimPf& pf = hw_.pfs[f.pf_index];
  if (s.Dead(fi)) {
    return absl::UnavailableError(absl::StrCat(
        bdf.ToString(), " does not respond (failed or link down)"));
  }
  if (vector < 0 || static_cast<uint32_t>(vector) >= pf.msix_vectors) {
    return absl::OutOfRangeError(
        absl::StrFormat("%s: MSI-X vector %d; the table has %d", bdf.ToString(),
                        vector, pf.msix_vectors));
  }
  const uint32_t ctl = Get(f.cfg, kMsixCtrl, 2);
  if (!(ctl & kMsixEnable)) {
    return absl::FailedPreconditionError(
        absl::StrCat(bdf.ToString(), ": MSI-X disabled"));
  }
  if (!(Get(f.cfg, kCommand, 2) & kCmdBusMaster)) {
    return absl::FailedPreconditionError(
        absl::StrCat(bdf.ToString(), ": bus mastering disabled"));
  }
  const std::string path = store_.BarPath(bdf, pf.msix_bar);
  std::array<uint8_t, kMsixEntryBytes> e{};
  RETURN_IF_ERROR(PRead(path, MsixEntryOffset(vector), absl::MakeSpan(e)));
  if ((ctl & kMsixFunctionMask) || (e[kMsixVectorControl] & kMsixVectorMasked)) {
    const uint64_t at = MsixPbaOffset(pf.msix_vectors) + vector / 8;
    std::array<uint8_t, 1> byte{};
    RETURN_IF_ERROR(PRead(path, at, absl::MakeSpan(byte)));
    byte[0] |= static_cast<uint8_t>(1u << (vector % 8));
    RETURN_IF_ERROR(PWrite(path, at, byte));
    MsixResult r;
    r.outcome = MsixResult::Outcome::kPending;
    Config c{};
    std::copy(e.begin(), e.end(), c.begin());
    r.message.addr = (uint64_t{Get(c, vf::kMsixAddrHi, 4)} << 32) |
                     Get(c, vf::kMsixAddrLo, 4);
    r.message.data = Get(c, vf::kMsixData, 4);
    return r;
  }
  return Send(s, fi, vector);
}

absl::StatusOr<MsixResult> SimSriovHost::Unmask(const PciAddress& bdf,
                                                int vector) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(sim_internal::FileLock lock,
                   sim_internal::FileLock::Acquire(store_.lock_path()));
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, s.FindOrError(bdf));
  const SimPf& pf = hw_.pfs[s.funcs[fi].pf_index];
  if (s.Dead(fi)) {
    return absl::UnavailableError(absl::StrCat(
        bdf.ToString(), " does not respond (failed or link down)"));
  }
  if (vector < 0 || static_cast<uint32_t>(vector) >= pf.msix_vectors) {
    return absl::OutOfRangeError(
        absl::StrFormat("%s: MSI-X vector %d; the table has %d", bdf.ToString(),
                        vector, pf.msix_vectors));
  }
  const std::string path = store_.BarPath(bdf, pf.msix_bar);
  std::array<uint8_t, 1> vc{};
  RETURN_IF_ERROR(PRead(path, MsixEntryOffset(vector) + kMsixVectorControl,
                        absl::MakeSpan(vc)));
  vc[0] &= static_cast<uint8_t>(~kMsixVectorMasked);
  RETURN_IF_ERROR(PWrite(path, MsixEntryOffset(vector) + kMsixVectorControl, vc));
  MsixResult r;
  RETURN_IF_ERROR(DeliverPending(s, fi, vector, &r));
  return r;
}

absl::StatusOr<FunctionHealth> SimSriovHost::Health(const PciAddress& bdf) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(State s, Load());
  FunctionHealth h;
  const int fi = s.Find(bdf);
  if (fi < 0) {
    // A VF that is not enabled.
    for (size_t i = 0; i < hw_.pfs.size(); ++i) {
      const SimPf& pf = hw_.pfs[i];
      for (int k = 0; k < pf.total_vfs; ++k) {
        if (pf.VfAddress(k) != bdf) continue;
        const int p = s.FindPf(static_cast<int>(i));
        h.pf_link_up = p >= 0 && !s.funcs[p].link_down;
        return h;
      }
    }
    return absl::NotFoundError(
        absl::StrCat("no simulated PCI function ", bdf.ToString()));
  }
  const State::Func& f = s.funcs[fi];
  const int p = s.FindPf(f.pf_index);
  h.pf_link_up = !s.funcs[p].link_down;
  h.config_readable = !s.Dead(fi);
  const bool pf_vendor_ok =
      !s.Dead(p) && Get(s.funcs[p].cfg, 0x00, 2) != 0xffff;
  if (!f.vf) {
    h.vendor_ok = pf_vendor_ok;
  } else {
    const Config& pc = s.funcs[p].cfg;
    h.vendor_ok = h.config_readable && pf_vendor_ok &&
                  (Get(pc, kSriovCtrl, 2) & kVfEnable) &&
                  f.vf_index < static_cast<int>(Get(pc, kSriovNumVfs, 2));
  }
  return h;
}

absl::Status SimSriovHost::SetPfLinkUp(const PciAddress& pf, bool up) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(sim_internal::FileLock lock,
                   sim_internal::FileLock::Acquire(store_.lock_path()));
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, s.FindOrError(pf));
  if (s.funcs[fi].vf) {
    return absl::InvalidArgumentError(
        absl::StrCat(pf.ToString(), " is a VF; links belong to PFs"));
  }
  s.funcs[fi].link_down = !up;
  return Save(s);
}

absl::Status SimSriovHost::SetFunctionFailed(const PciAddress& bdf,
                                             bool failed) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(sim_internal::FileLock lock,
                   sim_internal::FileLock::Acquire(store_.lock_path()));
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, s.FindOrError(bdf));
  s.funcs[fi].failed = failed;
  return Save(s);
}

}  // namespace fabric::agent::hw
