// The allocation label that ties a memory claim to the offer it took.
//
// Contract (proto/fabric/v1/offers.proto, MemoryOffer): a consumer that
// claims a memory offer puts the offer's id under this label. The manager's
// offer book then lists the claim as held under that same id, whatever
// order claims arrive in and across manager restarts and takeovers; the
// consumer (device_plugin/) finds its claims again by it after a restart.
#ifndef FABRIC_COMMON_OFFER_LABEL_H_
#define FABRIC_COMMON_OFFER_LABEL_H_

#include "absl/strings/string_view.h"

namespace fabric {

inline constexpr absl::string_view kOfferLabel = "pciefabric.dev/offer";

}  // namespace fabric

#endif  // FABRIC_COMMON_OFFER_LABEL_H_
