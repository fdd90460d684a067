#include "tests/chaos/allocation_ops.h"

#include "absl/strings/str_cat.h"

namespace fabric::chaos {

std::string AllocationKind::SpecOf(const Record& a) {
  return AllocationOps::Spec(a.borrower(), a.target(), a.size());
}

std::string AllocationOps::Spec(const std::string& borrower,
                                const std::string& target, uint64_t size) {
  return absl::StrCat(FullNode(borrower), " -> ", FullNode(target), ", ", size,
                      " bytes");
}

std::optional<NewCreate> AllocationOps::RandomCreate(
    v1::FabricService::Stub* stub, const FabricInfo& fabric,
    const std::string& request_id, Rng& rng) {
  const int n = static_cast<int>(fabric.nodes.size());
  if (n < 2) return std::nullopt;
  const int from = static_cast<int>(rng() % n);
  int to = static_cast<int>(rng() % (n - 1));
  if (to >= from) ++to;
  const uint64_t size = (uint64_t{1} << (rng() % 3)) << 20;
  v1::CreateAllocationRequest req;
  req.mutable_allocation()->set_borrower(fabric.nodes[from]);
  req.mutable_allocation()->set_target(fabric.nodes[to]);
  req.mutable_allocation()->set_size(size);
  req.mutable_allocation()->set_owner("fabric-chaos");
  req.set_request_id(request_id);
  return NewCreate{Spec(fabric.nodes[from], fabric.nodes[to], size),
                   req.SerializeAsString()};
}

}  // namespace fabric::chaos
