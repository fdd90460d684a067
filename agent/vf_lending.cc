#include "agent/vf_lending.h"

#include <utility>

namespace fabric::agent {

VfLending::VfLending(std::string node, hw::SriovFunctions* local,
                     HostReader host_read,
                     std::function<void()> on_shadow_change,
                     LenderCredentials lender_credentials,
                     AgentMetrics* metrics)
    : lender_(node, local),
      borrower_(std::move(node), std::move(host_read),
                std::move(on_shadow_change), std::move(lender_credentials),
                metrics) {}

void VfLending::SetAssignments(
    const std::vector<agentproto::v1::VfAssignment>& assignments,
    int64_t generation) {
  // Ended lendings are quiesced before the borrower's side changes, as
  // before the split: a VF moving from lender to borrower role on one node
  // is quiet first.
  lender_.SetAssignments(assignments, generation);
  borrower_.SetAssignments(assignments, generation);
}

void VfLending::FillStatus(agentproto::v1::ReportStatusRequest* report) {
  lender_.FillStatus(report);
  borrower_.FillStatus(report);
}

}  // namespace fabric::agent
