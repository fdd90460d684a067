// GrantGuard: the agent's own check that the host's data path (HostRead,
// HostWrite of NodeAgentService) touches only memory that is granted now,
// as the agent knows from the desired configuration the manager streams.
// The manager's word on a call is not enough: a caller that slipped past
// the policy, or a manager with a stale view, still reaches only granted
// ranges.
//
//   GrantGuard guard;
//   guard.Update(config);                        // each DesiredConfig
//   RETURN_IF_ERROR(guard.Check(HostAccess::kRead, addr, length));
//
// What is granted on this host, from its DesiredConfig:
//   - reads: the ranges of this host's memory exported to borrowers
//     (address_map.inbound: this host as a TARGET), and the DMA regions of
//     the VFs it borrows (BORROWER assignments' "dma" windows, where the
//     lent VF writes and the manager's VerifyAttachment reads back);
//   - writes: this host's outbound windows mapped to grants
//     (address_map.windows: this host as a BORROWER, where Verify writes its
//     probes), and its windows onto borrowed VFs' BARs (BORROWER
//     assignments' "mmio-bar<i>" windows).
// Adjacent ranges of one grant (a grant spread over LUT slots) are one
// range. An access must lie wholly inside one range. Before the first
// configuration nothing is granted.
//
// Thread-safe: Update() may run while Check() is called from RPC threads.
#ifndef FABRIC_AGENT_GRANT_GUARD_H_
#define FABRIC_AGENT_GRANT_GUARD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "fabric/agentproto/v1/agent_service.pb.h"

namespace fabric::agent {

enum class HostAccess { kRead, kWrite };

// "HostRead" or "HostWrite".
const char* HostAccessName(HostAccess access);

// One range of host-physical addresses a grant covers.
struct GrantedRange {
  uint64_t base = 0;
  uint64_t size = 0;
  // What grants it: "allocations/a1", or "attachments/x (dma)".
  std::string grant;

  friend bool operator==(const GrantedRange& a, const GrantedRange& b) {
    return a.base == b.base && a.size == b.size && a.grant == b.grant;
  }
};

// The ranges a configuration grants, each list sorted by base.
struct GrantedRanges {
  std::vector<GrantedRange> read;
  std::vector<GrantedRange> write;
};

// The ranges `config` grants on its node (see above). Pure.
GrantedRanges GrantedRangesOf(const agentproto::v1::DesiredConfig& config);

class GrantGuard {
 public:
  GrantGuard() = default;
  GrantGuard(const GrantGuard&) = delete;
  GrantGuard& operator=(const GrantGuard&) = delete;

  // Makes `config` the configuration the guard enforces; what it no longer
  // grants is refused from now on.
  void Update(const agentproto::v1::DesiredConfig& config)
      ABSL_LOCKS_EXCLUDED(mu_);

  // OK when [addr, addr + length) lies wholly inside one range granted for
  // `access`. Else PERMISSION_DENIED naming the access, the address and
  // length, and that no grant covers it (and which grant's range it
  // straddles, when it overlaps one).
  absl::Status Check(HostAccess access, uint64_t addr, uint64_t length) const
      ABSL_LOCKS_EXCLUDED(mu_);

  GrantedRanges ranges() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  GrantedRanges ranges_ ABSL_GUARDED_BY(mu_);
  int64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fabric::agent

#endif  // FABRIC_AGENT_GRANT_GUARD_H_
