#include "agent/hw/linux/sriov_sysfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace fabric::agent::hw {
namespace {

using discovery::PciAddress;

// One write() of the whole text, as sysfs store handlers expect (O_TRUNC
// is ignored by sysfs and keeps a fabricated regular file exact).
absl::Status WriteSysfs(const std::string& path, const std::string& text) {
  const int fd = open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open", path);
  ssize_t n;
  do {
    n = write(fd, text.data(), text.size());
  } while (n < 0 && errno == EINTR);
  absl::Status s;
  if (n < 0 && errno == EBUSY) {
    s = absl::FailedPreconditionError(
        absl::StrCat("write '", text, "' to ", path,
                     ": device busy (VFs already enabled or in use)"));
  } else if (n < 0) {
    s = ErrnoError(absl::StrCat("write '", text, "' to"), path);
  } else if (static_cast<size_t>(n) != text.size()) {
    s = absl::InternalError(absl::StrCat("short write to ", path));
  }
  close(fd);
  return s;
}

}  // namespace

LinuxSriov::LinuxSriov(std::string sysfs_root)
    : sysfs_root_(std::move(sysfs_root)) {}

std::string LinuxSriov::DevicePath(const PciAddress& bdf) const {
  return absl::StrCat(sysfs_root_, "/bus/pci/devices/", bdf.ToString());
}

absl::StatusOr<int> LinuxSriov::ReadCount(const PciAddress& pf,
                                          const std::string& file) const {
  const std::string path = absl::StrCat(DevicePath(pf), "/", file);
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  int v = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &v) || v < 0) {
    return absl::DataLossError(absl::StrCat(
        path, ": '", absl::StripAsciiWhitespace(text), "' is not a count"));
  }
  return v;
}

absl::StatusOr<int> LinuxSriov::TotalVfs(const PciAddress& pf) const {
  return ReadCount(pf, "sriov_totalvfs");
}

absl::StatusOr<int> LinuxSriov::NumVfs(const PciAddress& pf) const {
  return ReadCount(pf, "sriov_numvfs");
}

absl::Status LinuxSriov::SetNumVfs(const PciAddress& pf, int n) const {
  ASSIGN_OR_RETURN(int total, TotalVfs(pf));
  if (n < 0 || n > total) {
    return absl::InvalidArgumentError(
        absl::StrCat(pf.ToString(), ": ", n,
                     " VFs requested; sriov_totalvfs "
                     "is ",
                     total));
  }
  ASSIGN_OR_RETURN(int current, NumVfs(pf));
  if (n == current) return absl::OkStatus();
  const std::string path = absl::StrCat(DevicePath(pf), "/sriov_numvfs");
  if (current != 0 && n != 0) RETURN_IF_ERROR(WriteSysfs(path, "0"));
  return WriteSysfs(path, absl::StrCat(n));
}

absl::StatusOr<PciAddress> LinuxSriov::ReadLink(const std::string& path) const {
  char buf[PATH_MAX];
  const ssize_t n = readlink(path.c_str(), buf, sizeof(buf) - 1);
  if (n < 0) return ErrnoError("readlink", path);
  std::string target(buf, static_cast<size_t>(n));
  const size_t slash = target.find_last_of('/');
  const std::string name =
      slash == std::string::npos ? target : target.substr(slash + 1);
  absl::StatusOr<PciAddress> a = discovery::ParsePciAddress(name);
  if (!a.ok()) {
    return absl::DataLossError(absl::StrCat(
        path, " -> ", target, ": not a PCI device: ", a.status().message()));
  }
  return a;
}

absl::StatusOr<std::vector<PciAddress>> LinuxSriov::VfAddresses(
    const PciAddress& pf) const {
  // virtfn<N> exist for N < sriov_numvfs, numbered without gaps.
  const std::string dev = DevicePath(pf);
  if (access(dev.c_str(), F_OK) != 0) return ErrnoError("access", dev);
  std::vector<PciAddress> vfs;
  for (int i = 0;; ++i) {
    const std::string link = absl::StrCat(dev, "/virtfn", i);
    absl::StatusOr<PciAddress> a = ReadLink(link);
    if (absl::IsNotFound(a.status())) break;
    if (!a.ok()) return a.status();
    vfs.push_back(*a);
  }
  return vfs;
}

absl::StatusOr<PciAddress> LinuxSriov::PhysFn(const PciAddress& vf) const {
  const std::string dev = DevicePath(vf);
  if (access(dev.c_str(), F_OK) != 0) return ErrnoError("access", dev);
  absl::StatusOr<PciAddress> a = ReadLink(absl::StrCat(dev, "/physfn"));
  if (absl::IsNotFound(a.status())) {
    return absl::NotFoundError(
        absl::StrCat(vf.ToString(), " has no physfn link: not a VF"));
  }
  return a;
}

}  // namespace fabric::agent::hw
