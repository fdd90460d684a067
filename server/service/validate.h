// Input checks that need no manager state: every error is INVALID_ARGUMENT
// naming the field (as the client spelled it in the request) and the limit.
//
// Pure functions; thread-compatible.
#ifndef FABRIC_SERVER_SERVICE_VALIDATE_H_
#define FABRIC_SERVER_SERVICE_VALIDATE_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fabric/v1/resources.pb.h"

namespace fabric::service {

inline constexpr size_t kMaxOwnerLength = 128;
inline constexpr int kMaxLabels = 64;
inline constexpr size_t kMaxLabelKeyLength = 63;
inline constexpr size_t kMaxLabelValueLength = 256;
inline constexpr absl::Duration kMaxTtl = absl::Hours(24 * 365);
// Functions in one inventory: every function of a PCI domain.
inline constexpr int kMaxInventoryFunctions = 256 * 32 * 8;
// An attachment's DMA window: the default and the largest.
inline constexpr uint64_t kDefaultDmaSize = 1ull << 20;
inline constexpr uint64_t kMaxDmaSize = 1ull << 30;
inline constexpr size_t kMaxVmNameLength = 63;

// A PCI address as discovery writes it, DDDD:BB:DD.F in hex (function 0-7).
// VF resource names are built from it by turning ':' into '-', which only
// reads back for addresses of this form.
bool IsPciAddress(absl::string_view a);

// An agent's inventory, before anything of it is taken in. `field` names it
// in the request, e.g. "inventory".
absl::Status ValidateInventory(const v1::NodeInventory& inv,
                               absl::string_view field);

// The checks of a new allocation that need no state. On OK, *ttl is its
// lease (zero: none).
absl::Status ValidateNewAllocation(const v1::Allocation& in,
                                   absl::Duration* ttl);

// The checks of a new attachment that need no state. On OK, *dma_size is
// its DMA window's size (the default when unset).
absl::Status ValidateNewAttachment(const v1::Attachment& in,
                                   uint64_t* dma_size);

}  // namespace fabric::service

#endif  // FABRIC_SERVER_SERVICE_VALIDATE_H_
