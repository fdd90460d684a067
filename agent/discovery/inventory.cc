#include "agent/discovery/inventory.h"

#include <algorithm>
#include <array>
#include <csetjmp>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

extern "C" {
#include <pci/pci.h>
}

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "agent/discovery/config_space.h"
#include "agent/discovery/dump_parser.h"
#include "agent/discovery/pci_address.h"
#include "agent/discovery/pci_ids.h"
#include "common/status_macros.h"
#include "common/units.h"
#include "google/protobuf/util/json_util.h"

namespace fabric::agent::discovery {
namespace {

namespace fs = std::filesystem;
using fabric::v1::NodeInventory;
using fabric::v1::PciFunction;

// ---------------------------------------------------------------------------
// libpci error handling.
//
// libpci reports fatal errors through pci_access::error, which must not
// return (the default prints and calls exit()). Ours records the message and
// longjmp()s back to the Guarded() call that is on this thread's stack. The
// frames jumped over are libpci's (C) and the trivial lambda passed to
// Guarded(), so no C++ destructor is skipped. libpci may leak what it had
// open at that moment; the access object is still cleaned up.

thread_local std::jmp_buf* tls_jump = nullptr;
thread_local char tls_error[512];

// GNU attribute, not [[noreturn]]: libpci's callback type carries it.
__attribute__((noreturn)) void PciError(char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(tls_error, sizeof(tls_error), fmt, ap);
  va_end(ap);
  if (tls_jump != nullptr) std::longjmp(*tls_jump, 1);
  // Every libpci call below runs inside Guarded(); reaching here is a bug.
  std::fprintf(stderr, "libpci fatal error outside a guard: %s\n", tls_error);
  std::abort();
}

void PciWarning(char* fmt, ...) {
  // Warnings (e.g. "Cannot open .../config") surface as unreadable config
  // space; there is no logger to send them to here.
  (void)fmt;
}

void PciDebug(char* fmt, ...) { (void)fmt; }

// Runs `fn`, which must call libpci and hold no objects with destructors.
// Returns FAILED_PRECONDITION with libpci's message when libpci gave up.
template <typename Fn>
absl::Status Guarded(const char* what, Fn&& fn) {
  std::jmp_buf env;
  std::jmp_buf* const outer = tls_jump;
  if (setjmp(env) != 0) {
    tls_jump = outer;
    return absl::FailedPreconditionError(
        absl::StrCat("libpci: ", what, ": ", tls_error));
  }
  tls_jump = &env;
  fn();
  tls_jump = outer;
  return absl::OkStatus();
}

struct PciAccessDeleter {
  void operator()(pci_access* a) const { pci_cleanup(a); }
};
using PciAccessPtr = std::unique_ptr<pci_access, PciAccessDeleter>;

// ---------------------------------------------------------------------------
// What one function looks like before classification.

struct RawFunction {
  PciAddress address;
  uint16_t vendor_id = 0;
  uint16_t device_id = 0;
  uint32_t class_code = 0;      // 24 bits
  std::vector<uint8_t> config;  // 64, 256 or 4096 bytes; empty if unreadable
  std::optional<std::array<uint64_t, 6>> bar_sizes;
  // sysfs extras (absent for dumps).
  std::optional<uint32_t> sysfs_total_vfs;
  std::optional<uint32_t> sysfs_num_vfs;
  std::vector<PciAddress> sysfs_virtfn;  // virtfn0, virtfn1, ...
  bool sysfs_has_physfn = false;
};

std::optional<uint32_t> ReadSysfsNumber(const fs::path& file) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  std::string text;
  std::getline(in, text);
  uint32_t v = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &v)) {
    return std::nullopt;
  }
  return v;
}

// Reads sriov_totalvfs, sriov_numvfs, virtfnN and physfn of one function.
void ReadSysfsExtras(const fs::path& devices_dir, RawFunction& f) {
  const fs::path dir = devices_dir / f.address.ToString();
  f.sysfs_total_vfs = ReadSysfsNumber(dir / "sriov_totalvfs");
  f.sysfs_num_vfs = ReadSysfsNumber(dir / "sriov_numvfs");
  std::error_code ec;
  f.sysfs_has_physfn = fs::is_symlink(dir / "physfn", ec);
  std::map<int, PciAddress> vfs;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    absl::string_view rest = name;
    int n = 0;
    if (!absl::ConsumePrefix(&rest, "virtfn") || !absl::SimpleAtoi(rest, &n)) {
      continue;
    }
    std::error_code link_ec;
    fs::path target = fs::read_symlink(e.path(), link_ec);
    if (link_ec) continue;
    absl::StatusOr<PciAddress> a = ParsePciAddress(target.filename().string());
    if (a.ok()) vfs[n] = *a;
  }
  for (const auto& [n, a] : vfs) f.sysfs_virtfn.push_back(a);
}

// Scans with libpci. `sysfs_devices` is set for the sysfs methods.
absl::Status ScanWithLibpci(pci_access* pacc, bool sizes_known,
                            const std::optional<fs::path>& sysfs_devices,
                            std::vector<RawFunction>& out) {
  RETURN_IF_ERROR(Guarded("init", [&] { pci_init(pacc); }));
  RETURN_IF_ERROR(Guarded("scan", [&] { pci_scan_bus(pacc); }));
  for (pci_dev* dev = pacc->devices; dev != nullptr; dev = dev->next) {
    constexpr int kFill = PCI_FILL_IDENT | PCI_FILL_CLASS | PCI_FILL_BASES |
                          PCI_FILL_SIZES | PCI_FILL_EXT_CAPS;
    int known = 0;
    RETURN_IF_ERROR(
        Guarded("fill info", [&] { known = pci_fill_info(dev, kFill); }));
    RawFunction f;
    f.address.domain = static_cast<uint32_t>(dev->domain);
    f.address.bus = dev->bus;
    f.address.device = dev->dev;
    f.address.function = dev->func;
    f.vendor_id = dev->vendor_id;
    f.device_id = dev->device_id;
    f.class_code = static_cast<uint32_t>(dev->device_class) << 8;
    // Largest readable prefix: 4096 (extended), 256, then 64 bytes.
    uint8_t buf[kConfigExtendedBytes];
    for (size_t len :
         {kConfigExtendedBytes, kConfigLegacyBytes, kConfigHeaderBytes}) {
      int ok = 0;
      RETURN_IF_ERROR(Guarded("read config", [&] {
        ok = pci_read_block(dev, 0, buf, static_cast<int>(len));
      }));
      if (ok) {
        f.config.assign(buf, buf + len);
        break;
      }
    }
    if (!f.config.empty()) f.class_code |= f.config[0x09];  // prog-if
    if (sizes_known && (known & PCI_FILL_SIZES)) {
      std::array<uint64_t, 6> sizes{};
      for (int i = 0; i < 6; ++i) sizes[i] = dev->size[i];
      f.bar_sizes = sizes;
    }
    if (sysfs_devices) ReadSysfsExtras(*sysfs_devices, f);
    out.push_back(std::move(f));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Classification.

using Namer = std::function<std::string(uint16_t vendor, uint16_t device)>;

struct Analysis {
  std::optional<SriovCapability> sriov;
  std::vector<PciAddress> vf_addresses;
  std::vector<std::string> problems;
};

Analysis Analyze(const RawFunction& f) {
  Analysis a;
  if (f.config.empty()) {
    a.problems.push_back("config space unreadable");
  } else if (absl::Status s = CheckConfigSize(f.config); !s.ok()) {
    a.problems.push_back(std::string(s.message()));
  } else {
    if (absl::StatusOr<std::vector<Capability>> caps =
            ListCapabilities(f.config);
        !caps.ok() && caps.status().code() == absl::StatusCode::kDataLoss) {
      a.problems.push_back(std::string(caps.status().message()));
    }
    if (f.config.size() == kConfigExtendedBytes) {
      absl::StatusOr<std::optional<SriovCapability>> s = FindSriov(f.config);
      if (s.ok()) {
        a.sriov = *s;
      } else {
        a.problems.push_back(std::string(s.status().message()));
      }
    }
  }
  if (!f.sysfs_virtfn.empty()) {
    a.vf_addresses = f.sysfs_virtfn;
  } else if (a.sriov) {
    const uint32_t n = f.sysfs_num_vfs.value_or(a.sriov->num_vfs);
    absl::StatusOr<std::vector<PciAddress>> vfs =
        VfAddresses(f.address, a.sriov->first_vf_offset, a.sriov->vf_stride, n);
    if (vfs.ok()) {
      a.vf_addresses = *std::move(vfs);
    } else {
      a.problems.push_back(std::string(vfs.status().message()));
    }
  }
  return a;
}

NodeInventory BuildInventory(std::vector<RawFunction> raw, const Namer& namer) {
  std::sort(raw.begin(), raw.end(),
            [](const RawFunction& a, const RawFunction& b) {
              return a.address < b.address;
            });
  std::vector<Analysis> analyses;
  std::map<PciAddress, size_t> index_of;
  for (size_t i = 0; i < raw.size(); ++i) {
    analyses.push_back(Analyze(raw[i]));
    index_of[raw[i].address] = i;
  }
  // VF address -> index of its PF.
  std::map<PciAddress, size_t> pf_of;
  for (size_t i = 0; i < raw.size(); ++i) {
    for (const PciAddress& vf : analyses[i].vf_addresses) pf_of[vf] = i;
  }

  NodeInventory inv;
  for (size_t i = 0; i < raw.size(); ++i) {
    const RawFunction& f = raw[i];
    const Analysis& a = analyses[i];
    PciFunction* out = inv.add_functions();
    out->set_address(f.address.ToString());
    uint16_t vendor = f.vendor_id;
    uint16_t device = f.device_id;
    auto pf = pf_of.find(f.address);
    const bool is_vf = f.sysfs_has_physfn || pf != pf_of.end();
    if (is_vf && vendor == 0xffff && pf != pf_of.end()) {
      // VFs read 0xffff for both IDs; the PF says what they are.
      vendor = raw[pf->second].vendor_id;
      const auto& pf_sriov = analyses[pf->second].sriov;
      if (pf_sriov) device = pf_sriov->vf_device_id;
    }
    out->set_vendor_id(vendor);
    out->set_device_id(device);
    out->set_class_code(f.class_code);
    if (f.bar_sizes) {
      for (uint64_t s : *f.bar_sizes) out->add_bar_sizes(s);
    }

    const NtbMatch ntb = LookupNtb(vendor, device, f.class_code);
    const bool is_pf = a.sriov.has_value() || f.sysfs_total_vfs.has_value();
    if (ntb.is_ntb()) {
      out->set_kind(PciFunction::NTB);
    } else if (is_pf) {
      out->set_kind(PciFunction::SRIOV_PF);
    } else if (is_vf) {
      out->set_kind(PciFunction::SRIOV_VF);
    } else {
      out->set_kind(PciFunction::OTHER);
    }

    if (is_pf) {
      fabric::v1::SriovInfo* s = out->mutable_sriov();
      if (a.sriov) {
        s->set_initial_vfs(a.sriov->initial_vfs);
        s->set_total_vfs(a.sriov->total_vfs);
        s->set_num_vfs(a.sriov->num_vfs);
        s->set_vf_offset(a.sriov->first_vf_offset);
        s->set_vf_stride(a.sriov->vf_stride);
        s->set_vf_device_id(a.sriov->vf_device_id);
      }
      if (f.sysfs_total_vfs) s->set_total_vfs(*f.sysfs_total_vfs);
      if (f.sysfs_num_vfs) s->set_num_vfs(*f.sysfs_num_vfs);
      for (const PciAddress& vf : a.vf_addresses) {
        s->add_vf_addresses(vf.ToString());
      }
      if (!a.vf_addresses.empty()) {
        auto first = index_of.find(a.vf_addresses.front());
        if (first != index_of.end() && raw[first->second].bar_sizes) {
          for (uint64_t b : *raw[first->second].bar_sizes) {
            s->add_vf_bar_sizes(b);
          }
        }
      }
    }

    std::string description = ntb.description;
    if (!ntb.is_ntb()) {
      std::string name = namer ? namer(vendor, device) : std::string();
      description = name.empty() ? "unknown" : name;
    }
    if (!a.problems.empty()) {
      absl::StrAppend(&description, " [", absl::StrJoin(a.problems, "; "), "]");
    }
    out->set_description(description);
  }
  return inv;
}

absl::StatusOr<fs::path> SysfsDevicesDir(const std::string& root) {
  const fs::path devices = fs::path(root) / "bus" / "pci" / "devices";
  std::error_code ec;
  if (!fs::is_directory(devices, ec)) {
    return absl::NotFoundError(
        absl::StrCat("sysfs root ", root, " has no bus/pci/devices directory"));
  }
  return devices;
}

std::string KindName(PciFunction::Kind kind) {
  switch (kind) {
    case PciFunction::NTB:
      return "NTB";
    case PciFunction::SRIOV_PF:
      return "SRIOV_PF";
    case PciFunction::SRIOV_VF:
      return "SRIOV_VF";
    case PciFunction::OTHER:
      return "OTHER";
    default:
      return "UNSPECIFIED";
  }
}

std::string BarList(const google::protobuf::RepeatedField<uint64_t>& sizes) {
  if (sizes.empty()) return "?";
  std::vector<std::string> parts;
  for (int i = 0; i < sizes.size(); ++i) {
    if (sizes[i] != 0)
      parts.push_back(absl::StrCat(i, ":", FormatSize(sizes[i])));
  }
  return parts.empty() ? "-" : absl::StrJoin(parts, " ");
}

}  // namespace

absl::StatusOr<NodeInventory> Discover(const DiscoveryOptions& options) {
  std::optional<fs::path> sysfs_devices;
  std::string sysfs_path;  // libpci's "sysfs.path": <root>/bus/pci
  switch (options.source) {
    case DiscoveryOptions::Source::kDumpFile:
      if (options.path.empty()) {
        return absl::InvalidArgumentError("no PCI dump file given");
      }
      // Validate first: libpci's own reader treats any flaw as fatal and
      // does not say where it is.
      RETURN_IF_ERROR(ReadLspciDump(options.path).status());
      break;
    case DiscoveryOptions::Source::kSysfsTree:
    case DiscoveryOptions::Source::kLiveBus: {
      const std::string root =
          options.source == DiscoveryOptions::Source::kLiveBus ? "/sys"
                                                               : options.path;
      if (root.empty())
        return absl::InvalidArgumentError("no sysfs root given");
      ASSIGN_OR_RETURN(sysfs_devices, SysfsDevicesDir(root));
      sysfs_path = (fs::path(root) / "bus" / "pci").string();
      break;
    }
  }

  PciAccessPtr pacc(pci_alloc());
  if (pacc == nullptr) return absl::ResourceExhaustedError("pci_alloc failed");
  pacc->error = PciError;
  pacc->warning = PciWarning;
  pacc->debug = PciDebug;
  std::string param_value;
  if (options.source == DiscoveryOptions::Source::kDumpFile) {
    pacc->method = PCI_ACCESS_DUMP;
    param_value = options.path;
  } else {
    pacc->method = PCI_ACCESS_SYS_BUS_PCI;
    param_value = sysfs_path;
  }
  const char* param = options.source == DiscoveryOptions::Source::kDumpFile
                          ? "dump.name"
                          : "sysfs.path";
  // libpci copies the value; the casts only satisfy its char* signature.
  if (pci_set_param(pacc.get(), const_cast<char*>(param),
                    const_cast<char*>(param_value.c_str())) != 0) {
    return absl::InternalError(absl::StrCat("libpci has no parameter ", param));
  }

  std::vector<RawFunction> raw;
  RETURN_IF_ERROR(ScanWithLibpci(
      pacc.get(), options.source != DiscoveryOptions::Source::kDumpFile,
      sysfs_devices, raw));

  pci_access* const a = pacc.get();
  Namer namer = [a](uint16_t vendor, uint16_t device) -> std::string {
    char buf[256];
    char* name = nullptr;
    absl::Status s = Guarded("name lookup", [&] {
      name = pci_lookup_name(
          a, buf, sizeof(buf),
          PCI_LOOKUP_VENDOR | PCI_LOOKUP_DEVICE | PCI_LOOKUP_NO_NUMBERS,
          static_cast<int>(vendor), static_cast<int>(device));
    });
    if (!s.ok() || name == nullptr) return "";
    return name;
  };
  return BuildInventory(std::move(raw), namer);
}

std::string FormatInventory(const NodeInventory& inv) {
  struct Row {
    std::array<std::string, 6> cells;
  };
  std::vector<Row> rows;
  rows.push_back({{"ADDRESS", "KIND", "ID", "CLASS", "BARS", "DESCRIPTION"}});
  for (const PciFunction& f : inv.functions()) {
    rows.push_back({{f.address(), KindName(f.kind()),
                     absl::StrFormat("%04x:%04x", f.vendor_id(), f.device_id()),
                     absl::StrFormat("%06x", f.class_code()),
                     BarList(f.bar_sizes()), f.description()}});
  }
  std::array<size_t, 6> width{};
  for (const Row& r : rows) {
    for (size_t c = 0; c < width.size(); ++c) {
      width[c] = std::max(width[c], r.cells[c].size());
    }
  }
  std::string out;
  for (const Row& r : rows) {
    std::string line;
    for (size_t c = 0; c < width.size(); ++c) {
      if (c + 1 == width.size()) {
        absl::StrAppend(&line, r.cells[c]);
      } else {
        absl::StrAppend(&line, r.cells[c],
                        std::string(width[c] - r.cells[c].size() + 2, ' '));
      }
    }
    absl::StrAppend(&out, absl::StripTrailingAsciiWhitespace(line), "\n");
  }
  absl::StrAppend(&out, inv.functions_size(), " PCI functions");
  absl::StrAppend(&out, "; BARS lists index:size (? = sizes unknown)\n");
  for (const PciFunction& f : inv.functions()) {
    if (!f.has_sriov()) continue;
    const fabric::v1::SriovInfo& s = f.sriov();
    absl::StrAppend(
        &out, "\nSR-IOV ", f.address(), ": ", s.num_vfs(), " of ",
        s.total_vfs(), " VFs enabled (initial ", s.initial_vfs(), ")\n",
        absl::StrFormat("  first VF offset 0x%x, stride %d, VF device %04x\n",
                        s.vf_offset(), s.vf_stride(), s.vf_device_id()),
        "  VF BARs: ", BarList(s.vf_bar_sizes()), "\n");
    if (s.vf_addresses_size() > 0) {
      absl::StrAppend(&out, "  VFs: ", absl::StrJoin(s.vf_addresses(), " "),
                      "\n");
    }
  }
  return out;
}

int RunDiscover(const DiscoveryOptions& options, bool json, std::ostream& out,
                std::ostream& err) {
  absl::StatusOr<NodeInventory> inv = Discover(options);
  if (!inv.ok()) {
    err << "discover: " << inv.status().message() << "\n";
    return 1;
  }
  if (!json) {
    out << FormatInventory(*inv);
    return 0;
  }
  google::protobuf::util::JsonPrintOptions print;
  print.add_whitespace = true;
  print.always_print_primitive_fields = true;
  std::string text;
  if (!google::protobuf::util::MessageToJsonString(*inv, &text, print).ok()) {
    err << "discover: cannot render the inventory as JSON\n";
    return 1;
  }
  out << text;
  if (text.empty() || text.back() != '\n') out << "\n";
  return 0;
}

}  // namespace fabric::agent::discovery
