#include "agent/hw/sim/sriov_device.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "agent/hw/sim/sim_hardware.pb.h"
#include "agent/hw/sim/sim_world.h"
#include "agent/hw/sim/state_file.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/units.h"
#include "google/protobuf/util/json_util.h"

namespace fabric::agent::hw {
namespace {

namespace pb = ::fabric::agent::hw::sim;
using discovery::PciAddress;
using Config = std::array<uint8_t, 4096>;

constexpr uint16_t kCommand = 0x04;
constexpr uint32_t kCmdMemory = 0x0002;
constexpr uint32_t kCmdBusMaster = 0x0004;
constexpr uint16_t kBar0 = 0x10;
constexpr uint32_t kBarFlags64Pref = 0xc;  // 64-bit (0b10 << 1), prefetchable
constexpr uint16_t kMsixCtrl = kSimMsixCapOffset + vf::kMsixControl;
using vf::kMsixEnable;
using vf::kMsixEntryBytes;
using vf::kMsixFunctionMask;
using vf::kMsixVectorControl;
using vf::kMsixVectorMasked;
using vf::MsixEntryOffset;
constexpr uint16_t kSriovCtrl = kSimSriovCapOffset + 0x08;
constexpr uint16_t kSriovNumVfs = kSimSriovCapOffset + 0x10;
constexpr uint16_t kSriovVfBar0 = kSimSriovCapOffset + 0x24;
constexpr uint32_t kVfEnable = 0x0001;
constexpr uint32_t kVfMse = 0x0008;

uint32_t Get(const Config& c, size_t off, int size) {
  uint32_t v = 0;
  for (int i = 0; i < size; ++i) v |= uint32_t{c[off + i]} << (8 * i);
  return v;
}
void Put(Config& c, size_t off, int size, uint32_t v) {
  for (int i = 0; i < size; ++i)
    c[off + i] = static_cast<uint8_t>(v >> (8 * i));
}

// Register value and write mask of a 64-bit memory BAR at `off`.
void PutBar(Config& cfg, Config& mask, size_t off, uint64_t base,
            uint64_t size) {
  if (size == 0) return;
  Put(cfg, off, 4, static_cast<uint32_t>(base & 0xfffffff0u) | kBarFlags64Pref);
  Put(cfg, off + 4, 4, static_cast<uint32_t>(base >> 32));
  const uint64_t keep = ~(size - 1);
  Put(mask, off, 4, static_cast<uint32_t>(keep) & 0xfffffff0u);
  Put(mask, off + 4, 4, static_cast<uint32_t>(keep >> 32));
}

uint64_t BarValue(const Config& cfg, size_t off) {
  return (uint64_t{Get(cfg, off + 4, 4)} << 32) |
         (Get(cfg, off, 4) & 0xfffffff0u);
}

// Builds the power-on config space of a PF (vf == false; `layout` places
// its BARs) or of a VF, together with its write mask.
void Build(const SimPf& pf, bool vf, bool multifunction,
           const PfBarLayout& layout, Config& cfg, Config& mask) {
  cfg.fill(0);
  mask.fill(0);
  // Type 0 header.
  Put(cfg, 0x00, 2, vf ? 0xffff : pf.vendor_id);
  Put(cfg, 0x02, 2, vf ? 0xffff : pf.device_id);
  Put(cfg, kCommand, 2, vf ? 0 : kCmdMemory);
  // PF: memory, bus master, parity, SERR, INTx disable. VF: memory decode
  // follows the PF's VF MSE and VFs have no INTx.
  Put(mask, kCommand, 2, vf ? 0x0144 : 0x0546);
  Put(cfg, 0x06, 2, 0x0010);                     // capability list
  Put(cfg, 0x08, 4, pf.class_code << 8 | 0x01);  // revision 1
  if (!vf) Put(mask, 0x0c, 1, 0xff);             // cache line size
  Put(cfg, 0x0e, 1, multifunction ? 0x80 : 0x00);
  for (int i = 0; i < kBarCount && !vf; ++i) {
    PutBar(cfg, mask, kBar0 + 4 * i, layout.bar_base[i], pf.bar_sizes[i]);
  }
  Put(cfg, 0x2c, 2, pf.vendor_id);
  Put(cfg, 0x2e, 2, vf ? pf.vf_device_id : pf.device_id);
  Put(cfg, 0x34, 1, kSimPcieCapOffset);
  if (!vf) {
    Put(cfg, 0x3c, 1, 0xff);  // interrupt line: unassigned
    Put(mask, 0x3c, 1, 0xff);
    Put(cfg, 0x3d, 1, 0x01);  // INTA
  }

  // PCI Express capability, version 2, endpoint.
  const size_t e = kSimPcieCapOffset;
  Put(cfg, e + 0x00, 1, 0x10);
  Put(cfg, e + 0x01, 1, kSimMsixCapOffset);
  Put(cfg, e + 0x02, 2, 0x0002);
  Put(cfg, e + 0x04, 4, 0x00008001);  // 256-byte MPS, role-based errors
  if (!vf) {  // VFs: Device Control, Link Control and Link Status RsvdP/Z.
    Put(cfg, e + 0x08, 2, 0x2810);  // 512-byte MRRS, no snoop, relaxed
    Put(mask, e + 0x08, 2, 0x7fff);
    Put(mask, e + 0x10, 2, 0x00c3);  // ASPM, common clock, extended synch
    Put(cfg, e + 0x12, 2, 0x0083);   // 8 GT/s, x8
  }
  Put(cfg, e + 0x0c, 4, 0x00000083);  // max 8 GT/s, x8
  Put(cfg, e + 0x2c, 4, 0x0000000e);  // 2.5, 5 and 8 GT/s

  // MSI-X capability.
  const size_t m = kSimMsixCapOffset;
  Put(cfg, m + 0x00, 1, vf::kMsixCapId);
  Put(cfg, m + 0x01, 1, 0x00);
  Put(cfg, m + vf::kMsixControl, 2,
      (pf.msix_vectors - 1) & vf::kMsixTableSizeMask);
  Put(mask, m + vf::kMsixControl, 2, kMsixEnable | kMsixFunctionMask);
  Put(cfg, m + vf::kMsixTableReg, 4, static_cast<uint32_t>(pf.msix_bar));
  Put(cfg, m + vf::kMsixPbaReg, 4,
      static_cast<uint32_t>(MsixPbaOffset(pf.msix_vectors)) |
          static_cast<uint32_t>(pf.msix_bar));
  if (vf) return;

  // SR-IOV extended capability, version 1, last in the list.
  const size_t s = kSimSriovCapOffset;
  Put(cfg, s + 0x00, 4, 0x00010010);
  Put(mask, s + 0x08, 2, kVfEnable | kVfMse | 0x10);  // + ARI Capable Hier.
  Put(cfg, s + 0x0c, 2, pf.initial_vfs);
  Put(cfg, s + 0x0e, 2, pf.total_vfs);
  Put(mask, s + 0x10, 2, 0xffff);  // NumVFs (with the rules in ConfigWrite)
  Put(cfg, s + 0x12, 1, pf.address.function);  // Function Dependency Link
  Put(cfg, s + 0x14, 2, pf.vf_offset);
  Put(cfg, s + 0x16, 2, pf.vf_stride);
  Put(cfg, s + 0x1a, 2, pf.vf_device_id);
  Put(cfg, s + 0x1c, 4, 0x00000001);  // Supported Page Sizes: 4 KiB
  Put(cfg, s + 0x20, 4, 0x00000001);  // System Page Size: 4 KiB
  for (int i = 0; i < kBarCount; ++i) {
    PutBar(cfg, mask, kSriovVfBar0 + 4 * i, layout.vf_bar_base[i],
           pf.vf_bar_sizes[i]);
  }
}

Config MaskOf(const SimPf& pf, bool vf) {
  Config cfg;
  Config mask;
  Build(pf, vf, false, PfBarLayout{}, cfg, mask);
  return mask;
}

std::string ConfigRow(const Config& c, size_t off) {
  std::string row = absl::StrFormat("%03x:", off);
  for (size_t i = 0; i < 16; ++i)
    absl::StrAppendFormat(&row, " %02x", c[off + i]);
  return row;
}

absl::Status ParseConfigRow(const std::string& row, Config& c) {
  std::vector<std::string> parts = absl::StrSplit(row, ' ', absl::SkipEmpty());
  uint32_t off = 0;
  if (parts.size() != 17 || parts[0].size() < 2 || parts[0].back() != ':' ||
      !absl::SimpleHexAtoi(parts[0].substr(0, parts[0].size() - 1), &off) ||
      off % 16 != 0 || off >= c.size()) {
    return absl::DataLossError(absl::StrCat("bad config row '", row, "'"));
  }
  for (size_t i = 0; i < 16; ++i) {
    uint32_t b = 0;
    if (!absl::SimpleHexAtoi(parts[i + 1], &b) || b > 0xff) {
      return absl::DataLossError(absl::StrCat("bad config row '", row, "'"));
    }
    c[off + i] = static_cast<uint8_t>(b);
  }
  return absl::OkStatus();
}

absl::Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoError("mkdir", path);
  }
  return absl::OkStatus();
}

absl::Status PRead(const std::string& path, uint64_t off,
                   absl::Span<uint8_t> out) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open", path);
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = pread(fd, out.data() + done, out.size() - done,
                            static_cast<off_t>(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status s = n < 0 ? ErrnoError("read", path)
                             : absl::DataLossError(absl::StrCat(
                                   path, " is shorter than its BAR"));
      close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  close(fd);
  return absl::OkStatus();
}

absl::Status PWrite(const std::string& path, uint64_t off,
                    absl::Span<const uint8_t> data) {
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open", path);
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = pwrite(fd, data.data() + done, data.size() - done,
                             static_cast<off_t>(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = ErrnoError("write", path);
      close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  close(fd);
  return absl::OkStatus();
}

absl::Status CheckAccess(uint16_t offset, int size) {
  if ((size != 1 && size != 2 && size != 4) || offset % size != 0 ||
      offset + size > 4096) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "config access of %d bytes at 0x%03x: size must be 1, 2 or 4, "
        "aligned, below 0x1000",
        size, offset));
  }
  return absl::OkStatus();
}

}  // namespace

struct SimSriovHost::State {
  struct Func {
    PciAddress address;
    int pf_index = 0;  // into hw_.pfs
    bool vf = false;
    int vf_index = -1;
    bool failed = false;
    bool link_down = false;  // PFs only
    Config cfg{};
  };
  std::vector<Func> funcs;  // sorted by address

  int Find(const PciAddress& a) const {
    for (size_t i = 0; i < funcs.size(); ++i) {
      if (funcs[i].address == a) return static_cast<int>(i);
    }
    return -1;
  }
  int FindPf(int pf_index) const {
    for (size_t i = 0; i < funcs.size(); ++i) {
      if (!funcs[i].vf && funcs[i].pf_index == pf_index) {
        return static_cast<int>(i);
      }
    }
    return -1;
  }
  void Sort() {
    std::sort(funcs.begin(), funcs.end(), [](const Func& a, const Func& b) {
      return a.address < b.address;
    });
  }
  // Failed, or behind a PF link that is down.
  bool Dead(int fi) const {
    const Func& f = funcs[fi];
    if (f.failed) return true;
    const int p = FindPf(f.pf_index);
    return p < 0 || funcs[p].link_down;
  }
};

namespace {

using State = SimSriovHost::State;

absl::StatusOr<int> FindOrError(const State& s, const PciAddress& a) {
  const int fi = s.Find(a);
  if (fi < 0) {
    return absl::NotFoundError(
        absl::StrCat("no simulated PCI function ", a.ToString()));
  }
  return fi;
}

}  // namespace

SimSriovHost::SimSriovHost(std::string sim_dir, std::string node,
                           SimHardware hw)
    : sim_dir_(std::move(sim_dir)),
      node_(std::move(node)),
      hw_(std::move(hw)),
      state_path_(absl::StrCat(sim_dir_, "/", node_, "/devices.json")),
      lock_path_(absl::StrCat(sim_dir_, "/", node_, "/devices.lock")),
      bar_dir_(absl::StrCat(sim_dir_, "/", node_, "/devices")) {}

std::string SimSriovHost::BarPath(const PciAddress& addr, int bar) const {
  return absl::StrCat(bar_dir_, "/", addr.ToString(), ".bar", bar);
}

absl::Status SimSriovHost::CreateFunctionFiles(int pf_index, bool vf,
                                               const PciAddress& addr) const {
  const SimPf& pf = hw_.pfs[pf_index];
  const auto& sizes = vf ? pf.vf_bar_sizes : pf.bar_sizes;
  for (int i = 0; i < kBarCount; ++i) {
    if (sizes[i] == 0) continue;
    const std::string path = BarPath(addr, i);
    const int fd =
        open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoError("create", path);
    const int rc = ftruncate(fd, static_cast<off_t>(sizes[i]));
    absl::Status st = rc == 0 ? absl::OkStatus() : ErrnoError("size", path);
    close(fd);
    RETURN_IF_ERROR(st);
  }
  // Every MSI-X vector comes out of reset masked.
  const std::array<uint8_t, 4> masked = {kMsixVectorMasked, 0, 0, 0};
  for (uint32_t v = 0; v < pf.msix_vectors; ++v) {
    RETURN_IF_ERROR(PWrite(BarPath(addr, pf.msix_bar),
                           MsixEntryOffset(v) + kMsixVectorControl, masked));
  }
  return absl::OkStatus();
}

void SimSriovHost::RemoveFunctionFiles(int pf_index, bool vf,
                                       const PciAddress& addr) const {
  const auto& sizes =
      vf ? hw_.pfs[pf_index].vf_bar_sizes : hw_.pfs[pf_index].bar_sizes;
  for (int i = 0; i < kBarCount; ++i) {
    if (sizes[i] != 0) unlink(BarPath(addr, i).c_str());
  }
}

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
    RETURN_IF_ERROR(CreateFunctionFiles(pf_index, true, f.address));
    s.funcs.push_back(f);
  }
  s.Sort();
  return absl::OkStatus();
}

void SimSriovHost::DisableVfs(State& s, int pf_index) const {
  std::vector<State::Func> keep;
  for (const State::Func& f : s.funcs) {
    if (f.vf && f.pf_index == pf_index) {
      RemoveFunctionFiles(pf_index, true, f.address);
    } else {
      keep.push_back(f);
    }
  }
  s.funcs = std::move(keep);
}

absl::StatusOr<State> SimSriovHost::Load() const {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(state_path_));
  pb::SimDevicesState p;
  auto st = google::protobuf::util::JsonStringToMessage(
      text, &p, google::protobuf::util::JsonParseOptions());
  if (!st.ok()) {
    return absl::DataLossError(
        absl::StrCat(state_path_, " does not parse: ", st.ToString()));
  }
  State s;
  for (const pb::SimFunctionState& fp : p.functions()) {
    State::Func f;
    auto bad = [&](const std::string& what) {
      return absl::DataLossError(
          absl::StrCat(state_path_, ": function '", fp.address(), "': ", what));
    };
    absl::StatusOr<PciAddress> a = discovery::ParsePciAddress(fp.address());
    if (!a.ok()) return bad(std::string(a.status().message()));
    f.address = *a;
    f.vf = !fp.pf().empty();
    absl::StatusOr<PciAddress> pf_addr =
        discovery::ParsePciAddress(f.vf ? fp.pf() : fp.address());
    if (!pf_addr.ok()) return bad(std::string(pf_addr.status().message()));
    f.pf_index = -1;
    for (size_t i = 0; i < hw_.pfs.size(); ++i) {
      if (hw_.pfs[i].address == *pf_addr) f.pf_index = static_cast<int>(i);
    }
    if (f.pf_index < 0) return bad("its PF is not in the hardware");
    f.vf_index = f.vf ? static_cast<int>(fp.vf_index()) : -1;
    if (f.vf && (f.vf_index >= hw_.pfs[f.pf_index].total_vfs ||
                 hw_.pfs[f.pf_index].VfAddress(f.vf_index) != f.address)) {
      return bad("not that PF's VF");
    }
    f.failed = fp.failed();
    f.link_down = fp.link_down();
    for (const std::string& row : fp.config()) {
      absl::Status rs = ParseConfigRow(row, f.cfg);
      if (!rs.ok()) return bad(std::string(rs.message()));
    }
    s.funcs.push_back(f);
  }
  s.Sort();
  return s;
}

absl::Status SimSriovHost::Save(const State& s) const {
  pb::SimDevicesState p;
  p.set_node(node_);
  auto st = google::protobuf::util::JsonStringToMessage(
      SimHardwareToJson(hw_), p.mutable_hardware(),
      google::protobuf::util::JsonParseOptions());
  if (!st.ok()) return absl::InternalError(st.ToString());
  for (const State::Func& f : s.funcs) {
    pb::SimFunctionState* fp = p.add_functions();
    fp->set_address(f.address.ToString());
    if (f.vf) {
      fp->set_pf(hw_.pfs[f.pf_index].address.ToString());
      fp->set_vf_index(static_cast<uint32_t>(f.vf_index));
    }
    fp->set_failed(f.failed);
    fp->set_link_down(f.link_down);
    for (size_t off = 0; off < f.cfg.size(); off += 16) {
      if (std::any_of(f.cfg.begin() + off, f.cfg.begin() + off + 16,
                      [](uint8_t b) { return b != 0; })) {
        fp->add_config(ConfigRow(f.cfg, off));
      }
    }
  }
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.always_print_primitive_fields = true;
  opts.preserve_proto_field_names = true;
  std::string json;
  st = google::protobuf::util::MessageToJsonString(p, &json, opts);
  if (!st.ok()) return absl::InternalError(st.ToString());
  json.push_back('\n');
  // Same scheme as the bridge state: temporary file, then rename (atomic for
  // readers and against the writer being killed; no fsync).
  const std::string tmp = absl::StrCat(state_path_, ".tmp.", getpid());
  const int fd =
      open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("create", tmp);
  size_t done = 0;
  while (done < json.size()) {
    const ssize_t n = write(fd, json.data() + done, json.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status e = ErrnoError("write", tmp);
      close(fd);
      unlink(tmp.c_str());
      return e;
    }
    done += static_cast<size_t>(n);
  }
  close(fd);
  if (rename(tmp.c_str(), state_path_.c_str()) != 0) {
    absl::Status e = ErrnoError("rename over", state_path_);
    unlink(tmp.c_str());
    return e;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SimSriovHost>> SimSriovHost::Open(
    const std::string& sim_dir, const std::string& node,
    const SimHardware& hw) {
  if (node.empty() || node == "." || node == ".." ||
      node.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "simulated node name '", node, "' must be a non-empty path component"));
  }
  RETURN_IF_ERROR(MakeDir(sim_dir));
  RETURN_IF_ERROR(MakeDir(absl::StrCat(sim_dir, "/", node)));
  std::unique_ptr<SimSriovHost> h(new SimSriovHost(sim_dir, node, hw));
  RETURN_IF_ERROR(MakeDir(h->bar_dir_));
  absl::MutexLock l(&h->mu_);
  ASSIGN_OR_RETURN(sim_internal::FileLock lock,
                   sim_internal::FileLock::Acquire(h->lock_path_));
  absl::StatusOr<std::string> text = ReadFileToString(h->state_path_);
  if (text.ok()) {
    pb::SimDevicesState p;
    auto st = google::protobuf::util::JsonStringToMessage(
        *text, &p, google::protobuf::util::JsonParseOptions());
    if (!st.ok()) {
      return absl::DataLossError(
          absl::StrCat(h->state_path_, " does not parse: ", st.ToString()));
    }
    std::string hw_json;
    (void)google::protobuf::util::MessageToJsonString(p.hardware(), &hw_json);
    absl::StatusOr<SimHardware> stored = ParseSimHardware(hw_json);
    if (!stored.ok() || *stored != hw) {
      return absl::FailedPreconditionError(absl::StrCat(
          h->state_path_,
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
    RETURN_IF_ERROR(h->CreateFunctionFiles(f.pf_index, false, f.address));
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
  if (node.empty() || node == "." || node == ".." ||
      node.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "simulated node name '", node, "' must be a non-empty path component"));
  }
  const std::string path = absl::StrCat(sim_dir, "/", node, "/devices.json");
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (absl::IsNotFound(text.status())) {
    return absl::NotFoundError(
        absl::StrCat("node ", node, " has no simulated devices (", path, ")"));
  }
  if (!text.ok()) return text.status();
  pb::SimDevicesState p;
  auto st = google::protobuf::util::JsonStringToMessage(
      *text, &p, google::protobuf::util::JsonParseOptions());
  if (!st.ok()) {
    return absl::DataLossError(
        absl::StrCat(path, " does not parse: ", st.ToString()));
  }
  std::string hw_json;
  (void)google::protobuf::util::MessageToJsonString(p.hardware(), &hw_json);
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
  ASSIGN_OR_RETURN(int fi, FindOrError(s, bdf));
  if (s.Dead(fi)) return size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
  return Get(s.funcs[fi].cfg, offset, size);
}

absl::StatusOr<std::vector<uint8_t>> SimSriovHost::ConfigSpace(
    const PciAddress& bdf) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, FindOrError(s, bdf));
  if (s.Dead(fi)) return std::vector<uint8_t>(4096, 0xff);
  return std::vector<uint8_t>(s.funcs[fi].cfg.begin(), s.funcs[fi].cfg.end());
}

absl::Status SimSriovHost::ConfigWrite(const PciAddress& bdf, uint16_t offset,
                                       int size, uint32_t value) {
  RETURN_IF_ERROR(CheckAccess(offset, size));
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(sim_internal::FileLock lock,
                   sim_internal::FileLock::Acquire(lock_path_));
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, FindOrError(s, bdf));
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
  ASSIGN_OR_RETURN(int fi, FindOrError(s, pf));
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
                   sim_internal::FileLock::Acquire(lock_path_));
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, FindOrError(s, pf));
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

}  // namespace

absl::StatusOr<uint64_t> SimSriovHost::BarSize(const PciAddress& bdf, int bar) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, FindOrError(s, bdf));
  const State::Func& f = s.funcs[fi];
  return SizeOf(hw_.pfs[f.pf_index], f.vf, bdf, bar);
}

absl::StatusOr<uint64_t> SimSriovHost::BarAddress(const PciAddress& bdf,
                                                  int bar) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, FindOrError(s, bdf));
  const State::Func& f = s.funcs[fi];
  ASSIGN_OR_RETURN(uint64_t size, SizeOf(hw_.pfs[f.pf_index], f.vf, bdf, bar));
  if (!f.vf) return BarValue(f.cfg, kBar0 + 4 * bar);
  const State::Func& p = s.funcs[s.FindPf(f.pf_index)];
  return BarValue(p.cfg, kSriovVfBar0 + 4 * bar) +
         static_cast<uint64_t>(f.vf_index) * size;
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
  ASSIGN_OR_RETURN(int fi, FindOrError(s, bdf));
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
  return PRead(BarPath(bdf, bar), offset, out);
}

absl::Status SimSriovHost::MmioWrite(const PciAddress& bdf, int bar,
                                     uint64_t offset,
                                     absl::Span<const uint8_t> data) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(sim_internal::FileLock lock,
                   sim_internal::FileLock::Acquire(lock_path_));
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, FindOrError(s, bdf));
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
  const std::string path = BarPath(bdf, bar);
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
  ASSIGN_OR_RETURN(int fi, FindOrError(s, bdf));
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
  RETURN_IF_ERROR(PRead(BarPath(f.address, pf.msix_bar), MsixEntryOffset(vector),
                        absl::MakeSpan(e)));
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
  const std::string path = BarPath(f.address, pf.msix_bar);
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
                   sim_internal::FileLock::Acquire(lock_path_));
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, FindOrError(s, bdf));
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
  const std::string path = BarPath(bdf, pf.msix_bar);
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
                   sim_internal::FileLock::Acquire(lock_path_));
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, FindOrError(s, bdf));
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
  const std::string path = BarPath(bdf, pf.msix_bar);
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
                   sim_internal::FileLock::Acquire(lock_path_));
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, FindOrError(s, pf));
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
                   sim_internal::FileLock::Acquire(lock_path_));
  ASSIGN_OR_RETURN(State s, Load());
  ASSIGN_OR_RETURN(int fi, FindOrError(s, bdf));
  s.funcs[fi].failed = failed;
  return Save(s);
}

}  // namespace fabric::agent::hw
