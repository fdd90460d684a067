#include "agent/hw/sim/sim_hardware.h"

#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/hw/sim/sim_hardware.pb.h"
#include "common/file_util.h"
#include "common/profiles.h"
#include "common/status_macros.h"
#include "google/protobuf/util/json_util.h"

namespace fabric::agent::hw {
namespace {

namespace pb = ::fabric::agent::hw::sim;
using discovery::PciAddress;

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

std::string Field(int pf, const std::string& name) {
  return absl::StrCat("pfs[", pf, "].", name);
}

absl::Status Bad(const std::string& field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

absl::Status CheckMax(const std::string& field, uint64_t v, uint64_t max) {
  if (v > max) {
    return Bad(field,
               absl::StrFormat("%d exceeds the limit %d (0x%x)", v, max, max));
  }
  return absl::OkStatus();
}

// Checks one BAR list: count, sizes, 64-bit pairing.
absl::Status CheckBars(int pf, const std::string& name,
                       const google::protobuf::RepeatedField<uint64_t>& in,
                       uint64_t min_size,
                       std::array<uint64_t, kBarCount>& out) {
  if (in.size() > kBarCount) {
    return Bad(Field(pf, name),
               absl::StrCat(in.size(), " entries; a function has at most ",
                            kBarCount, " BARs"));
  }
  for (int i = 0; i < in.size(); ++i) {
    const uint64_t s = in.Get(i);
    const std::string f = absl::StrCat(Field(pf, name), "[", i, "]");
    out[i] = s;
    if (s == 0) continue;
    if (!IsPowerOfTwo(s)) {
      return Bad(f, absl::StrCat(s, " is not a power of two"));
    }
    if (s < min_size || s > kMaxBarSize) {
      return Bad(f, absl::StrFormat("%d is outside [%d, 2^48]", s, min_size));
    }
    if (i == kBarCount - 1) {
      return Bad(f, "a 64-bit BAR at index 5 has no upper half (BAR6)");
    }
    if (i + 1 < in.size() && in.Get(i + 1) != 0) {
      return Bad(absl::StrCat(Field(pf, name), "[", i + 1, "]"),
                 absl::StrCat("must be 0: 64-bit BAR", i,
                              " uses it as its upper half"));
    }
    ++i;  // The upper half.
  }
  return absl::OkStatus();
}

absl::StatusOr<SimPf> FromProto(int i, const pb::SimPfSpec& p) {
  SimPf pf;
  absl::StatusOr<PciAddress> addr = discovery::ParsePciAddress(p.address());
  if (!addr.ok()) return Bad(Field(i, "address"), addr.status().message());
  pf.address = *addr;
  if (p.vendor_id() == 0 || p.vendor_id() >= 0xffff) {
    return Bad(Field(i, "vendorId"),
               absl::StrFormat("0x%x is not a vendor ID (0x0001..0xfffe)",
                               p.vendor_id()));
  }
  RETURN_IF_ERROR(CheckMax(Field(i, "deviceId"), p.device_id(), 0xffff));
  RETURN_IF_ERROR(CheckMax(Field(i, "vfDeviceId"), p.vf_device_id(), 0xffff));
  RETURN_IF_ERROR(CheckMax(Field(i, "classCode"), p.class_code(), 0xffffff));
  RETURN_IF_ERROR(CheckMax(Field(i, "totalVfs"), p.total_vfs(), kMaxVfsPerPf));
  RETURN_IF_ERROR(
      CheckMax(Field(i, "initialVfs"), p.initial_vfs(), p.total_vfs()));
  RETURN_IF_ERROR(CheckMax(Field(i, "numVfs"), p.num_vfs(), p.total_vfs()));
  RETURN_IF_ERROR(CheckMax(Field(i, "vfOffset"), p.vf_offset(), 0xffff));
  RETURN_IF_ERROR(CheckMax(Field(i, "vfStride"), p.vf_stride(), 0xffff));
  pf.vendor_id = static_cast<uint16_t>(p.vendor_id());
  pf.device_id = static_cast<uint16_t>(p.device_id());
  pf.vf_device_id = static_cast<uint16_t>(p.vf_device_id());
  pf.class_code = p.class_code() == 0 ? kDefaultClassCode : p.class_code();
  pf.total_vfs = static_cast<uint16_t>(p.total_vfs());
  pf.initial_vfs = static_cast<uint16_t>(
      p.initial_vfs() == 0 ? p.total_vfs() : p.initial_vfs());
  pf.num_vfs = static_cast<uint16_t>(p.num_vfs());
  pf.vf_offset = static_cast<uint16_t>(p.vf_offset());
  pf.vf_stride = static_cast<uint16_t>(p.vf_stride());
  if (pf.total_vfs >= 1 && pf.vf_offset == 0) {
    return Bad(Field(i, "vfOffset"),
               absl::StrCat("must be >= 1 with totalVfs ", pf.total_vfs));
  }
  if (pf.total_vfs >= 2 && pf.vf_stride == 0) {
    return Bad(Field(i, "vfStride"),
               absl::StrCat("must be >= 1 with totalVfs ", pf.total_vfs));
  }
  RETURN_IF_ERROR(CheckBars(i, "barSizes", p.bar_sizes(), 16, pf.bar_sizes));
  RETURN_IF_ERROR(CheckBars(i, "vfBarSizes", p.vf_bar_sizes(), kVfPageSize,
                            pf.vf_bar_sizes));
  if (p.msix_vectors() < 1 || p.msix_vectors() > kMaxMsixVectors) {
    return Bad(Field(i, "msixVectors"),
               absl::StrFormat("%d is outside [1, %d]", p.msix_vectors(),
                               kMaxMsixVectors));
  }
  pf.msix_vectors = p.msix_vectors();
  if (p.msix_bar() >= kBarCount) {
    return Bad(Field(i, "msixBar"),
               absl::StrFormat("%d is outside [0, 5]", p.msix_bar()));
  }
  pf.msix_bar = static_cast<int>(p.msix_bar());
  const uint64_t need =
      MsixPbaOffset(pf.msix_vectors) + MsixPbaBytes(pf.msix_vectors);
  const int b = pf.msix_bar;
  if (pf.bar_sizes[b] == 0) {
    return Bad(
        Field(i, "msixBar"),
        absl::StrFormat("barSizes[%d] is 0: BAR%d is not implemented", b, b));
  }
  if (need > pf.bar_sizes[b]) {
    return Bad(Field(i, "msixVectors"),
               absl::StrFormat("the MSI-X table and PBA of %d vectors need %d "
                               "bytes; barSizes[%d] is %d",
                               pf.msix_vectors, need, b, pf.bar_sizes[b]));
  }
  if (pf.total_vfs >= 1) {
    if (pf.vf_bar_sizes[b] == 0) {
      return Bad(Field(i, "msixBar"),
                 absl::StrFormat("vfBarSizes[%d] is 0: the VFs have no BAR%d "
                                 "for their MSI-X table",
                                 b, b));
    }
    if (need > pf.vf_bar_sizes[b]) {
      return Bad(Field(i, "msixVectors"),
                 absl::StrFormat("the MSI-X table and PBA of %d vectors need "
                                 "%d bytes; vfBarSizes[%d] is %d",
                                 pf.msix_vectors, need, b, pf.vf_bar_sizes[b]));
    }
  }
  for (int k = 0; k < pf.total_vfs; ++k) {
    const uint64_t rid = uint64_t{pf.address.RoutingId()} + pf.vf_offset +
                         uint64_t{pf.vf_stride} * k;
    if (rid > 0xffff) {
      return Bad(Field(i, "vfOffset"),
                 absl::StrFormat("VF %d would have routing ID 0x%x, past "
                                 "0xffff (offset %d, stride %d)",
                                 k, rid, pf.vf_offset, pf.vf_stride));
    }
  }
  return pf;
}

pb::SimHardwareSpec ToProto(const SimHardware& hw) {
  pb::SimHardwareSpec p;
  p.set_bridge_profile(hw.bridge_profile);
  p.set_mmio_base(hw.mmio_base);
  p.set_mmio_size(hw.mmio_size);
  for (const SimPf& pf : hw.pfs) {
    pb::SimPfSpec* s = p.add_pfs();
    s->set_address(pf.address.ToString());
    s->set_vendor_id(pf.vendor_id);
    s->set_device_id(pf.device_id);
    s->set_vf_device_id(pf.vf_device_id);
    s->set_class_code(pf.class_code);
    s->set_total_vfs(pf.total_vfs);
    s->set_initial_vfs(pf.initial_vfs);
    s->set_num_vfs(pf.num_vfs);
    s->set_vf_offset(pf.vf_offset);
    s->set_vf_stride(pf.vf_stride);
    for (uint64_t v : pf.bar_sizes) s->add_bar_sizes(v);
    for (uint64_t v : pf.vf_bar_sizes) s->add_vf_bar_sizes(v);
    s->set_msix_vectors(pf.msix_vectors);
    s->set_msix_bar(static_cast<uint32_t>(pf.msix_bar));
  }
  return p;
}

}  // namespace

PciAddress SimPf::VfAddress(int index) const {
  const uint32_t rid =
      uint32_t{address.RoutingId()} + vf_offset + uint32_t{vf_stride} * index;
  return PciAddress::FromRoutingId(address.domain, static_cast<uint16_t>(rid));
}

bool operator==(const SimPf& a, const SimPf& b) {
  return a.address == b.address && a.vendor_id == b.vendor_id &&
         a.device_id == b.device_id && a.vf_device_id == b.vf_device_id &&
         a.class_code == b.class_code && a.total_vfs == b.total_vfs &&
         a.initial_vfs == b.initial_vfs && a.num_vfs == b.num_vfs &&
         a.vf_offset == b.vf_offset && a.vf_stride == b.vf_stride &&
         a.bar_sizes == b.bar_sizes && a.vf_bar_sizes == b.vf_bar_sizes &&
         a.msix_vectors == b.msix_vectors && a.msix_bar == b.msix_bar;
}

bool operator==(const SimHardware& a, const SimHardware& b) {
  return a.bridge_profile == b.bridge_profile && a.mmio_base == b.mmio_base &&
         a.mmio_size == b.mmio_size && a.pfs == b.pfs;
}

absl::StatusOr<std::vector<PfBarLayout>> LayoutBars(const SimHardware& hw) {
  std::vector<PfBarLayout> out;
  // Sizes are <= 2^48 and regions <= 2^56, so with the end checked after
  // every step nothing below overflows 64 bits.
  const uint64_t end = hw.mmio_base + hw.mmio_size;
  uint64_t at = hw.mmio_base;
  auto place = [&](uint64_t size, uint64_t align) -> absl::StatusOr<uint64_t> {
    const uint64_t base = (at + align - 1) & ~(align - 1);
    if (base < at || base > end || size > end - base) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "mmioSize: the BARs do not fit in [0x%x, 0x%x) (mmioSize 0x%x)",
          hw.mmio_base, end, hw.mmio_size));
    }
    at = base + size;
    return base;
  };
  for (const SimPf& pf : hw.pfs) {
    PfBarLayout l;
    for (int i = 0; i < kBarCount; ++i) {
      if (pf.bar_sizes[i] == 0) continue;
      ASSIGN_OR_RETURN(l.bar_base[i], place(pf.bar_sizes[i], pf.bar_sizes[i]));
    }
    for (int i = 0; i < kBarCount; ++i) {
      if (pf.vf_bar_sizes[i] == 0 || pf.total_vfs == 0) continue;
      ASSIGN_OR_RETURN(
          l.vf_bar_base[i],
          place(pf.vf_bar_sizes[i] * pf.total_vfs, pf.vf_bar_sizes[i]));
    }
    out.push_back(l);
  }
  return out;
}

absl::StatusOr<SimHardware> ParseSimHardware(const std::string& json) {
  pb::SimHardwareSpec p;
  google::protobuf::util::JsonParseOptions opts;
  auto st = google::protobuf::util::JsonStringToMessage(json, &p, opts);
  if (!st.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("hardware file does not parse: ", st.ToString()));
  }
  SimHardware hw;
  if (p.bridge_profile().empty()) {
    return Bad("bridgeProfile", absl::StrCat("required; known profiles: ",
                                             core::KnownProfileNames()));
  }
  if (core::FindProfile(p.bridge_profile()) == nullptr) {
    return Bad("bridgeProfile",
               absl::StrCat("unknown profile '", p.bridge_profile(),
                            "'; known profiles: ", core::KnownProfileNames()));
  }
  hw.bridge_profile = p.bridge_profile();
  hw.mmio_base = p.mmio_base() == 0 ? kDefaultMmioBase : p.mmio_base();
  hw.mmio_size = p.mmio_size() == 0 ? kDefaultMmioSize : p.mmio_size();
  if (hw.mmio_base % kVfPageSize != 0) {
    return Bad("mmioBase",
               absl::StrFormat("0x%x is not 4 KiB-aligned", hw.mmio_base));
  }
  if (hw.mmio_base > UINT64_MAX - hw.mmio_size) {
    return Bad("mmioSize",
               absl::StrFormat("0x%x from mmioBase 0x%x passes 2^64",
                               hw.mmio_size, hw.mmio_base));
  }
  // Every routing ID in use: PFs and all TotalVFs VFs of each PF.
  std::map<std::pair<uint32_t, uint16_t>, std::string> owner;
  for (int i = 0; i < p.pfs_size(); ++i) {
    ASSIGN_OR_RETURN(SimPf pf, FromProto(i, p.pfs(i)));
    const auto key = std::make_pair(pf.address.domain, pf.address.RoutingId());
    auto [it, fresh] = owner.emplace(key, absl::StrCat("pfs[", i, "]"));
    if (!fresh) {
      return Bad(Field(i, "address"),
                 absl::StrCat(pf.address.ToString(), " is already used by ",
                              it->second));
    }
    hw.pfs.push_back(pf);
  }
  for (int i = 0; i < static_cast<int>(hw.pfs.size()); ++i) {
    const SimPf& pf = hw.pfs[i];
    for (int k = 0; k < pf.total_vfs; ++k) {
      const PciAddress vf = pf.VfAddress(k);
      auto [it, fresh] =
          owner.emplace(std::make_pair(vf.domain, vf.RoutingId()),
                        absl::StrCat("pfs[", i, "] VF ", k));
      if (!fresh) {
        return Bad(Field(i, "vfOffset"),
                   absl::StrCat("VF ", k, " (", vf.ToString(),
                                ") collides with ", it->second));
      }
    }
  }
  RETURN_IF_ERROR(LayoutBars(hw).status());
  return hw;
}

absl::StatusOr<SimHardware> LoadSimHardware(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  absl::StatusOr<SimHardware> hw = ParseSimHardware(text);
  if (!hw.ok()) {
    return absl::Status(hw.status().code(),
                        absl::StrCat(path, ": ", hw.status().message()));
  }
  return hw;
}

std::string SimHardwareToJson(const SimHardware& hw) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.always_print_primitive_fields = true;
  opts.preserve_proto_field_names = true;
  std::string out;
  // Printing a well-formed message cannot fail.
  (void)google::protobuf::util::MessageToJsonString(ToProto(hw), &out, opts);
  return out;
}

}  // namespace fabric::agent::hw
