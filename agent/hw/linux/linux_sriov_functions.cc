#include "agent/hw/linux/linux_sriov_functions.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/discovery/inventory.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/units.h"

namespace fabric::agent::hw {
namespace {

using discovery::PciAddress;

constexpr int kConfigBytes = 4096;
constexpr uint16_t kVendorId = 0x00;
constexpr uint16_t kClassRevision = 0x08;

// Closes a file descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  const int fd_;
};

absl::Status CheckConfigAccess(uint16_t offset, int size) {
  if ((size != 1 && size != 2 && size != 4) || offset % size != 0 ||
      offset + size > kConfigBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "offset: config access of ", size, " bytes at ", FormatAddr(offset),
        " must be 1, 2 or 4 bytes, aligned, below 0x1000"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> OpenFile(const std::string& path, int flags) {
  int fd;
  do {
    fd = open(path.c_str(), flags | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoError("open", path);
  return fd;
}

}  // namespace

LinuxSriovFunctions::LinuxSriovFunctions(std::string sysfs_root)
    : sysfs_root_(std::move(sysfs_root)), sriov_(sysfs_root_) {}

std::string LinuxSriovFunctions::DeviceFile(const PciAddress& bdf,
                                            const std::string& file) const {
  return absl::StrCat(sriov_.DevicePath(bdf), "/", file);
}

absl::StatusOr<v1::NodeInventory> LinuxSriovFunctions::Inventory() {
  discovery::DiscoveryOptions options;
  options.source = discovery::DiscoveryOptions::Source::kSysfsTree;
  options.path = sysfs_root_;
  return discovery::Discover(options);
}

absl::StatusOr<uint32_t> LinuxSriovFunctions::ConfigRead(const PciAddress& bdf,
                                                         uint16_t offset,
                                                         int size) {
  RETURN_IF_ERROR(CheckConfigAccess(offset, size));
  const std::string path = DeviceFile(bdf, "config");
  ASSIGN_OR_RETURN(int raw, OpenFile(path, O_RDONLY));
  Fd fd(raw);
  uint8_t bytes[4] = {};
  const ssize_t n = pread(fd.get(), bytes, size, offset);
  if (n < 0) return ErrnoError("pread", path);
  if (n != size) {
    return absl::OutOfRangeError(absl::StrCat(
        "offset: ", path, " shows fewer than ", offset + size,
        " bytes (unprivileged readers see 64)"));
  }
  uint32_t v = 0;
  for (int i = 0; i < size; ++i) v |= uint32_t{bytes[i]} << (8 * i);
  return v;
}

absl::Status LinuxSriovFunctions::ConfigWrite(const PciAddress& bdf,
                                              uint16_t offset, int size,
                                              uint32_t value) {
  RETURN_IF_ERROR(CheckConfigAccess(offset, size));
  const std::string path = DeviceFile(bdf, "config");
  ASSIGN_OR_RETURN(int raw, OpenFile(path, O_WRONLY));
  Fd fd(raw);
  uint8_t bytes[4];
  for (int i = 0; i < 4; ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
  const ssize_t n = pwrite(fd.get(), bytes, size, offset);
  if (n < 0) return ErrnoError("pwrite", path);
  if (n != size) {
    return absl::InternalError(absl::StrCat("short write to ", path, " at ",
                                            FormatAddr(offset)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint8_t>> LinuxSriovFunctions::ConfigSpace(
    const PciAddress& bdf) {
  const std::string path = DeviceFile(bdf, "config");
  ASSIGN_OR_RETURN(int raw, OpenFile(path, O_RDONLY));
  Fd fd(raw);
  std::vector<uint8_t> config(kConfigBytes);
  size_t got = 0;
  while (got < config.size()) {
    const ssize_t n =
        pread(fd.get(), config.data() + got, config.size() - got, got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("pread", path);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  config.resize(got);
  return config;
}

absl::Status LinuxSriovFunctions::WithBar(
    const PciAddress& bdf, int bar, uint64_t offset, uint64_t len, bool write,
    const std::function<void(volatile uint8_t*)>& access) {
  if (bar < 0 || bar > 5) {
    return absl::InvalidArgumentError(
        absl::StrCat("bar: ", bar, " is not a BAR number 0-5"));
  }
  const std::string path = DeviceFile(bdf, absl::StrCat("resource", bar));
  absl::StatusOr<int> raw = OpenFile(path, write ? O_RDWR : O_RDONLY);
  if (absl::IsNotFound(raw.status())) {
    return absl::NotFoundError(absl::StrCat(
        "bar: BAR ", bar, " of ", bdf.ToString(), " is not implemented (no ",
        path, ")"));
  }
  RETURN_IF_ERROR(raw.status());
  Fd fd(*raw);
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoError("stat", path);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (offset > size || len > size - offset) {
    return absl::OutOfRangeError(absl::StrCat(
        "offset: ", len, " bytes at ", FormatAddr(offset), " pass the end of BAR ",
        bar, " of ", bdf.ToString(), " (", FormatSize(size), ")"));
  }
  if (len == 0) return absl::OkStatus();
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t start = offset / page * page;
  const uint64_t map_len = offset + len - start;
  void* map = mmap(nullptr, map_len, write ? PROT_READ | PROT_WRITE : PROT_READ,
                   MAP_SHARED, fd.get(), static_cast<off_t>(start));
  if (map == MAP_FAILED) return ErrnoError("mmap", path);
  access(static_cast<volatile uint8_t*>(map) + (offset - start));
  munmap(map, map_len);
  return absl::OkStatus();
}

// MMIO is accessed in dwords where the range allows (registers such as an
// MSI-X entry's take dword writes), else in bytes.
absl::Status LinuxSriovFunctions::BarRead(const PciAddress& bdf, int bar,
                                          uint64_t offset,
                                          absl::Span<uint8_t> out) {
  return WithBar(bdf, bar, offset, out.size(), false,
                 [out](volatile uint8_t* p) {
                   size_t i = 0;
                   if (reinterpret_cast<uintptr_t>(p) % 4 == 0) {
                     for (; i + 4 <= out.size(); i += 4) {
                       const uint32_t v =
                           *reinterpret_cast<volatile uint32_t*>(p + i);
                       std::memcpy(out.data() + i, &v, 4);
                     }
                   }
                   for (; i < out.size(); ++i) out[i] = p[i];
                 });
}

absl::Status LinuxSriovFunctions::BarWrite(const PciAddress& bdf, int bar,
                                           uint64_t offset,
                                           absl::Span<const uint8_t> data) {
  return WithBar(bdf, bar, offset, data.size(), true,
                 [data](volatile uint8_t* p) {
                   size_t i = 0;
                   if (reinterpret_cast<uintptr_t>(p) % 4 == 0) {
                     for (; i + 4 <= data.size(); i += 4) {
                       uint32_t v;
                       std::memcpy(&v, data.data() + i, 4);
                       *reinterpret_cast<volatile uint32_t*>(p + i) = v;
                     }
                   }
                   for (; i < data.size(); ++i) p[i] = data[i];
                 });
}

absl::StatusOr<int> LinuxSriovFunctions::NumVfs(const PciAddress& pf) {
  return sriov_.NumVfs(pf);
}

absl::Status LinuxSriovFunctions::SetNumVfs(const PciAddress& pf, int n) {
  return sriov_.SetNumVfs(pf, n);
}

absl::Status LinuxSriovFunctions::ResetFunction(const PciAddress& bdf) {
  const std::string dev = sriov_.DevicePath(bdf);
  if (access(dev.c_str(), F_OK) != 0) return ErrnoError("access", dev);
  const std::string path = DeviceFile(bdf, "reset");
  absl::StatusOr<int> raw = OpenFile(path, O_WRONLY);
  if (absl::IsNotFound(raw.status())) {
    return absl::FailedPreconditionError(absl::StrCat(
        bdf.ToString(), " has no reset file: the kernel knows no reset "
                        "method (FLR or other) for it"));
  }
  RETURN_IF_ERROR(raw.status());
  Fd fd(*raw);
  ssize_t n;
  do {
    n = write(fd.get(), "1", 1);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoError("write '1' to", path);
  return absl::OkStatus();
}

absl::StatusOr<AccessResult> LinuxSriovFunctions::Dma(
    const PciAddress& bdf, uint64_t io_addr, absl::Span<const uint8_t> data) {
  return absl::UnimplementedError(absl::StrCat(
      "Linux has no interface to make VF ", bdf.ToString(), " DMA ",
      data.size(), " bytes to ", FormatAddr(io_addr),
      " on demand: only its driver programs its DMA; map the borrower's "
      "memory through an NTB window and give the VF's driver that window's "
      "address"));
}

absl::StatusOr<MsixResult> LinuxSriovFunctions::RaiseMsix(const PciAddress& bdf,
                                                          int vector) {
  return absl::UnimplementedError(absl::StrCat(
      "Linux has no interface to make ", bdf.ToString(),
      " signal MSI-X vector ", vector,
      ": a function raises its vectors when its driver makes it work"));
}

absl::StatusOr<FunctionHealth> LinuxSriovFunctions::Health(
    const PciAddress& bdf) {
  const std::string dev = sriov_.DevicePath(bdf);
  if (access(dev.c_str(), F_OK) != 0) return ErrnoError("access", dev);
  auto answers = [this](const PciAddress& f) {
    absl::StatusOr<uint32_t> cls = ConfigRead(f, kClassRevision, 4);
    return cls.ok() && *cls != 0xffffffffu;
  };
  auto vendor_reads = [this](const PciAddress& f) {
    absl::StatusOr<uint32_t> vendor = ConfigRead(f, kVendorId, 2);
    return vendor.ok() && *vendor != 0xffffu;
  };
  FunctionHealth h;
  h.config_readable = answers(bdf);
  absl::StatusOr<PciAddress> pf = sriov_.PhysFn(bdf);
  if (!pf.ok()) {  // a PF (or a function without SR-IOV)
    h.vendor_ok = vendor_reads(bdf);
    h.pf_link_up = h.config_readable;
    return h;
  }
  h.pf_link_up = answers(*pf);
  absl::StatusOr<std::vector<PciAddress>> vfs = sriov_.VfAddresses(*pf);
  h.vendor_ok = vendor_reads(*pf) && vfs.ok() &&
                std::find(vfs->begin(), vfs->end(), bdf) != vfs->end();
  return h;
}

}  // namespace fabric::agent::hw
