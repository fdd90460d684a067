// Small helpers over a agentproto::v1::VfAssignment shared by the VF lender and
// the borrower (agent/vf_lender.h, agent/vf_borrower.h).
#ifndef FABRIC_AGENT_VF_ASSIGNMENT_H_
#define FABRIC_AGENT_VF_ASSIGNMENT_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "fabric/agentproto/v1/agent_service.pb.h"
#include "fabric/v1/resources.pb.h"

namespace fabric::agent {

// The assignment's window of `role` ("dma", "msix", "mmio-bar<i>"); null if
// it has none.
inline const v1::AttachmentWindow* FindWindow(
    const agentproto::v1::VfAssignment& a, absl::string_view role) {
  for (const auto& w : a.windows()) {
    if (w.role() == role) return &w;
  }
  return nullptr;
}

// Whether [addr, addr + len) lies inside [base, base + size).
inline bool Inside(uint64_t addr, uint64_t len, uint64_t base, uint64_t size) {
  return addr >= base && addr - base <= size && size - (addr - base) >= len;
}

// Whether `a` and `b` are the same lending on the same terms (VF, peers,
// windows, policy), whatever the lender agent's address: a lender that only
// restarted keeps its lendings and the borrower its shadows; any other
// change ends the old one (quiesced on the lender, rebuilt on the borrower).
inline bool SameTerms(agentproto::v1::VfAssignment a,
                      agentproto::v1::VfAssignment b) {
  a.clear_lender_agent();
  b.clear_lender_agent();
  return a.SerializeAsString() == b.SerializeAsString();
}

}  // namespace fabric::agent

#endif  // FABRIC_AGENT_VF_ASSIGNMENT_H_
