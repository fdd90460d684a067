#include "server/service/validate.h"

#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/units.h"
#include "server/service/manager_options.h"

namespace fabric::service {

bool IsPciAddress(absl::string_view a) {
  if (a.size() != 12 || a[4] != ':' || a[7] != ':' || a[10] != '.') {
    return false;
  }
  for (int i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(a[i]))) return false;
  }
  const int device = std::stoi(std::string(a.substr(8, 2)), nullptr, 16);
  return device < 32 && a[11] >= '0' && a[11] <= '7';
}

absl::Status ValidateInventory(const v1::NodeInventory& inv,
                               absl::string_view field) {
  if (inv.functions_size() > kMaxInventoryFunctions) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".functions: ", inv.functions_size(),
        " functions is over the limit of ", kMaxInventoryFunctions));
  }
  for (int i = 0; i < inv.functions_size(); ++i) {
    const v1::PciFunction& f = inv.functions(i);
    if (!IsPciAddress(f.address())) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".functions[", i, "].address: \"",
          absl::CHexEscape(f.address().substr(0, 64)),
          "\" is not a PCI address of the form DDDD:BB:DD.F (hex)"));
    }
    if (!f.pf_address().empty() && !IsPciAddress(f.pf_address())) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".functions[", i, "].pf_address: \"",
          absl::CHexEscape(f.pf_address().substr(0, 64)),
          "\" is not a PCI address of the form DDDD:BB:DD.F (hex)"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateNewAllocation(const v1::Allocation& in,
                                   absl::Duration* ttl) {
  if (in.size() == 0) {
    return absl::InvalidArgumentError(
        "allocation.size: required and must be > 0 bytes");
  }
  if (in.owner().size() > kMaxOwnerLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("allocation.owner: ", in.owner().size(),
                     " characters is over the limit of ", kMaxOwnerLength));
  }
  if (in.labels_size() > kMaxLabels) {
    return absl::InvalidArgumentError(
        absl::StrCat("allocation.labels: ", in.labels_size(),
                     " labels is over the limit of ", kMaxLabels));
  }
  for (const auto& [k, v] : in.labels()) {
    if (k.empty() || k.size() > kMaxLabelKeyLength) {
      return absl::InvalidArgumentError(
          absl::StrCat("allocation.labels: key \"", k, "\" must be 1-",
                       kMaxLabelKeyLength, " characters"));
    }
    if (v.size() > kMaxLabelValueLength) {
      return absl::InvalidArgumentError(
          absl::StrCat("allocation.labels[", k, "]: value is over ",
                       kMaxLabelValueLength, " characters"));
    }
  }
  *ttl = absl::ZeroDuration();
  if (in.has_ttl()) {
    *ttl =
        absl::Seconds(in.ttl().seconds()) + absl::Nanoseconds(in.ttl().nanos());
    if (*ttl <= absl::ZeroDuration() || *ttl > kMaxTtl) {
      return absl::InvalidArgumentError(absl::StrCat(
          "allocation.ttl: must be between 1ns and ",
          absl::FormatDuration(kMaxTtl), ", got ", absl::FormatDuration(*ttl)));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateNewAttachment(const v1::Attachment& in,
                                   uint64_t* dma_size) {
  if (in.vf().empty()) {
    return absl::InvalidArgumentError(
        "attachment.vf: required (nodes/{node}/vfs/{vf} or {node}/{address})");
  }
  if (in.borrower().empty()) {
    return absl::InvalidArgumentError("attachment.borrower: required");
  }
  if (!v1::Attachment::InterruptPolicy_IsValid(in.interrupts())) {
    return absl::InvalidArgumentError(
        absl::StrCat("attachment.interrupts: unknown policy ", in.interrupts(),
                     "; use AUTO, DIRECT or HYPERVISOR"));
  }
  if (in.interrupts() == v1::Attachment::HYPERVISOR && in.vm().empty()) {
    return absl::InvalidArgumentError(
        "attachment.interrupts: HYPERVISOR delivery needs a VM "
        "(attachment.vm); a host-owned device has no guest to inject into");
  }
  if (in.vm().size() > kMaxVmNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("attachment.vm: ", in.vm().size(),
                     " characters is over the limit of ", kMaxVmNameLength));
  }
  if (in.owner().size() > kMaxOwnerLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("attachment.owner: ", in.owner().size(),
                     " characters is over the limit of ", kMaxOwnerLength));
  }
  *dma_size = in.dma_size() == 0 ? kDefaultDmaSize : in.dma_size();
  if (*dma_size % 4096 != 0 || *dma_size > kMaxDmaSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "attachment.dma_size: ", *dma_size,
        " bytes must be a multiple of 4 KiB and at most ",
        FormatSize(kMaxDmaSize)));
  }
  return absl::OkStatus();
}

absl::Status ValidateManagerOptions(const ManagerOptions& options) {
  if (options.max_request_ids < 1 ||
      options.max_request_ids > kMaxRequestIdsLimit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_request_ids: must be between 1 and ", kMaxRequestIdsLimit,
        ", got ", options.max_request_ids));
  }
  for (const auto& [name, d] :
       {std::pair<const char*, absl::Duration>{"heartbeat_timeout",
                                               options.heartbeat_timeout},
        {"heartbeat_interval", options.heartbeat_interval},
        {"request_retention", options.request_retention}}) {
    if (d <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": must be positive, got ", absl::FormatDuration(d)));
    }
  }
  if (options.heartbeat_timeout < 2 * options.heartbeat_interval) {
    return absl::InvalidArgumentError(absl::StrCat(
        "heartbeat_timeout: must be at least twice heartbeat_interval (",
        absl::FormatDuration(options.heartbeat_interval),
        ") so that one late heartbeat does not make a live node NOT_READY; "
        "got ",
        absl::FormatDuration(options.heartbeat_timeout)));
  }
  return ValidateGatherOptions(options.commit_gather);
}

}  // namespace fabric::service
