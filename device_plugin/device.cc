#include "device_plugin/device.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace fabric::device_plugin {

std::string ResourceNameFor(const fabric::v1::Offer& offer) {
  switch (offer.device_case()) {
    case fabric::v1::Offer::kVf:
      return absl::StrFormat("%s/vf-%04x-%04x", kResourceDomain,
                             offer.vf().vendor_id() & 0xffff,
                             offer.vf().device_id() & 0xffff);
    case fabric::v1::Offer::kMemory:
      return absl::StrCat(kResourceDomain, "/remote-memory");
    case fabric::v1::Offer::DEVICE_NOT_SET:
      break;
  }
  return "";
}

}  // namespace fabric::device_plugin
