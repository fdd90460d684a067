#include "agent/hw/sim/sim_device_store.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "agent/hw/sim/sim_hardware.pb.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "google/protobuf/util/json_util.h"

namespace fabric::agent::hw::sim_internal {
namespace {

namespace pb = ::fabric::agent::hw::sim;
using discovery::PciAddress;
using sim_config::Config;
using vf::kMsixVectorControl;
using vf::kMsixVectorMasked;
using vf::MsixEntryOffset;

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

}  // namespace

int DeviceState::Find(const PciAddress& a) const {
  for (size_t i = 0; i < funcs.size(); ++i) {
    if (funcs[i].address == a) return static_cast<int>(i);
  }
  return -1;
}

absl::StatusOr<int> DeviceState::FindOrError(const PciAddress& a) const {
  const int fi = Find(a);
  if (fi < 0) {
    return absl::NotFoundError(
        absl::StrCat("no simulated PCI function ", a.ToString()));
  }
  return fi;
}

int DeviceState::FindPf(int pf_index) const {
  for (size_t i = 0; i < funcs.size(); ++i) {
    if (!funcs[i].vf && funcs[i].pf_index == pf_index) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

void DeviceState::Sort() {
  std::sort(funcs.begin(), funcs.end(), [](const Func& a, const Func& b) {
    return a.address < b.address;
  });
}

bool DeviceState::Dead(int fi) const {
  const Func& f = funcs[fi];
  if (f.failed) return true;
  const int p = FindPf(f.pf_index);
  return p < 0 || funcs[p].link_down;
}

DeviceStore::DeviceStore(const std::string& sim_dir, const std::string& node,
                         const SimHardware& hw)
    : hw_(hw),
      node_(node),
      state_path_(absl::StrCat(sim_dir, "/", node, "/devices.json")),
      lock_path_(absl::StrCat(sim_dir, "/", node, "/devices.lock")),
      bar_dir_(absl::StrCat(sim_dir, "/", node, "/devices")) {}

std::string DeviceStore::BarPath(const PciAddress& addr, int bar) const {
  return absl::StrCat(bar_dir_, "/", addr.ToString(), ".bar", bar);
}

absl::Status DeviceStore::CreateFunctionFiles(int pf_index, bool vf,
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

void DeviceStore::RemoveFunctionFiles(int pf_index, bool vf,
                                       const PciAddress& addr) const {
  const auto& sizes =
      vf ? hw_.pfs[pf_index].vf_bar_sizes : hw_.pfs[pf_index].bar_sizes;
  for (int i = 0; i < kBarCount; ++i) {
    if (sizes[i] != 0) unlink(BarPath(addr, i).c_str());
  }
}

absl::StatusOr<DeviceState> DeviceStore::Load() const {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(state_path_));
  pb::SimDevicesState p;
  auto st = google::protobuf::util::JsonStringToMessage(
      text, &p, google::protobuf::util::JsonParseOptions());
  if (!st.ok()) {
    return absl::DataLossError(
        absl::StrCat(state_path_, " does not parse: ", st.ToString()));
  }
  DeviceState s;
  for (const pb::SimFunctionState& fp : p.functions()) {
    DeviceState::Func f;
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

absl::Status DeviceStore::Save(const DeviceState& s) const {
  pb::SimDevicesState p;
  p.set_node(node_);
  auto st = google::protobuf::util::JsonStringToMessage(
      SimHardwareToJson(hw_), p.mutable_hardware(),
      google::protobuf::util::JsonParseOptions());
  if (!st.ok()) return absl::InternalError(st.ToString());
  for (const DeviceState::Func& f : s.funcs) {
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

absl::StatusOr<std::string> StoredHardwareJson(const std::string& path,
                                               const std::string& text) {
  pb::SimDevicesState p;
  auto st = google::protobuf::util::JsonStringToMessage(
      text, &p, google::protobuf::util::JsonParseOptions());
  if (!st.ok()) {
    return absl::DataLossError(
        absl::StrCat(path, " does not parse: ", st.ToString()));
  }
  std::string hw_json;
  (void)google::protobuf::util::MessageToJsonString(p.hardware(), &hw_json);
  return hw_json;
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

}  // namespace fabric::agent::hw::sim_internal
