// Memory allocations in the chaos storm: CreateAllocation /
// DeleteAllocation between random distinct nodes, 1, 2 or 4 MiB; proven
// with VerifyAllocation. The lifecycle is LeaseOps's (lease_ops.h).
#ifndef FABRIC_TESTS_CHAOS_ALLOCATION_OPS_H_
#define FABRIC_TESTS_CHAOS_ALLOCATION_OPS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "fabric/v1/fabric_service.grpc.pb.h"
#include "fabric/v1/resources.pb.h"
#include "tests/chaos/lease_ops.h"
#include "tests/chaos/ops.h"

namespace fabric::chaos {

// What allocations are to LeaseOps.
struct AllocationKind {
  FABRIC_CHAOS_LEASE_RPCS(Allocation, allocations)
  static constexpr v1::Allocation::State kGone = v1::Allocation::RELEASED;
  static std::string SpecOf(const Record& a);
};

class AllocationOps : public LeaseOps<AllocationKind> {
 public:
  std::optional<NewCreate> RandomCreate(v1::FabricService::Stub* stub,
                                        const FabricInfo& fabric,
                                        const std::string& request_id,
                                        Rng& rng) override;

  // "nodes/n1 -> nodes/n3, 2097152 bytes".
  static std::string Spec(const std::string& borrower,
                          const std::string& target, uint64_t size);
};

}  // namespace fabric::chaos

#endif  // FABRIC_TESTS_CHAOS_ALLOCATION_OPS_H_
