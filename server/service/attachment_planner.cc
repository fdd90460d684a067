#include "server/service/attachment_planner.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/service/convert.h"
#include "server/service/leases.h"
#include "server/service/records.h"

namespace fabric::service {
namespace {

constexpr uint64_t kDoorbellSize = 4096;

// OK when the agent of `node` is READY; UNAVAILABLE naming `field` else.
absl::Status AgentReady(const ManagerState& s, absl::string_view field,
                        const std::string& node) {
  const AgentEntry* agent = s.FindAgent(node);
  if (agent == nullptr || agent->state != v1::Node::READY) {
    return absl::UnavailableError(absl::StrCat(
        field, ": the agent of node ", node, " is ",
        agent == nullptr ? "not registered"
                         : v1::Node::AgentState_Name(agent->state),
        "; VF lending needs both agents READY"));
  }
  return absl::OkStatus();
}

// The grants of one attachment, added to its fabric's state as they are
// planned and removed again unless Keep() is called.
class WindowSet {
 public:
  WindowSet(FabricEntry* f, std::string id, v1::Attachment* record)
      : f_(f), id_(std::move(id)), record_(record) {}
  ~WindowSet() {
    if (keep_) return;
    for (const auto& g : added_) (void)f_->state.RemoveGrant(g);
  }

  // Adds the planned `grant` as window `role`; on error nothing is added
  // and the error names `field`.
  absl::Status Add(absl::string_view role, absl::string_view field,
                   absl::StatusOr<core::Grant> grant) {
    if (!grant.ok()) {
      return absl::Status(grant.status().code(),
                          absl::StrCat(field, " (", role, " window): ",
                                       grant.status().message()));
    }
    grant->id = AttachmentGrantId(id_, role);
    absl::Status st = f_->state.AddGrant(*grant);
    if (!st.ok()) {
      return absl::InternalError(
          absl::StrCat("planned grant was refused (a bug): ", st.message()));
    }
    added_.push_back(grant->id);
    *record_->add_windows() = WindowOf(role, *grant, f_->state.topology());
    return absl::OkStatus();
  }
  void Keep() { keep_ = true; }

 private:
  FabricEntry* const f_;
  const std::string id_;
  v1::Attachment* const record_;
  std::vector<std::string> added_;
  bool keep_ = false;
};

}  // namespace

absl::StatusOr<Plan> PlanAttachment(ManagerState& s, const v1::Attachment& in,
                                    uint64_t dma_size, absl::Time now) {
  ASSIGN_OR_RETURN(VfRef vf, s.FindVf("attachment.vf", in.vf()));
  FabricEntry* f = vf.fabric;
  if (f->deleting) {
    return absl::FailedPreconditionError(
        absl::StrCat("attachment: fabric ", f->id(), " is being deleted"));
  }
  RETURN_IF_ERROR(AgentReady(s, "attachment.vf", vf.node_name));
  if (vf.function == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "attachment.vf: node ", vf.node_name, " reports no function ",
        vf.address, " (see fabricctl get vfs)"));
  }
  if (vf.function->kind() != v1::PciFunction::SRIOV_VF) {
    return absl::InvalidArgumentError(absl::StrCat(
        "attachment.vf: ", vf.address, " on ", vf.node_name, " is ",
        vf.function->kind() == v1::PciFunction::SRIOV_PF
            ? "an SR-IOV physical function"
            : "not a virtual function",
        "; only VFs can be lent"));
  }
  ASSIGN_OR_RETURN(auto to, s.FindNode("attachment.borrower", in.borrower()));
  if (to.first != f) {
    return absl::InvalidArgumentError(absl::StrCat(
        "attachment.borrower: node ", in.borrower(), " is in fabric ",
        to.first->id(), ", but the VF is in fabric ", f->id()));
  }
  const core::Topology& topo = f->state.topology();
  const std::string borrower = topo.node(to.second).name;
  if (to.second == vf.node) {
    return absl::InvalidArgumentError(absl::StrCat(
        "attachment.borrower: node ", borrower,
        " is the VF's lender; a host cannot borrow its own VF"));
  }
  const auto& lent = f->attachment_ids.by_node[vf.node];  // committed or not
  for (absl::string_view id : lent) {
    const AttachmentEntry* a = s.attachments.find(id)->second.get();
    if (a->record.lender() == NodeName(vf.node_name) &&
        a->record.vf_address() == vf.address) {
      if (a->releasing || !a->committed) {
        return absl::UnavailableError(absl::StrCat(
            "attachment.vf: ", vf.address, " on ", vf.node_name,
            " is being attached or detached (", id, "); retry"));
      }
      return absl::FailedPreconditionError(absl::StrCat(
          "attachment.vf: ", vf.address, " on ", vf.node_name,
          " is already lent to ", a->record.borrower(), " (",
          a->record.name(), ")"));
    }
  }
  const AgentEntry& lender_agent = *s.FindAgent(vf.node_name);
  if (auto h = lender_agent.vf_health.find(vf.address);
      h != lender_agent.vf_health.end() && !h->second.healthy()) {
    return absl::FailedPreconditionError(
        absl::StrCat("attachment.vf: ", vf.address, " on ", vf.node_name,
                     " is unhealthy: ", h->second.reason()));
  }
  RETURN_IF_ERROR(AgentReady(s, "attachment.borrower", borrower));

  // Plan every window; nothing stays if one fails.
  const std::string id = NewLeaseId<v1::Attachment>(s);
  v1::Attachment r;
  WindowSet windows(f, id, &r);
  const v1::PciFunction& fn = *vf.function;
  for (int bar = 0; bar < fn.bar_sizes_size(); ++bar) {
    const uint64_t size = fn.bar_sizes(bar);
    if (size == 0) continue;
    const uint64_t addr =
        bar < fn.bar_addresses_size() ? fn.bar_addresses(bar) : 0;
    if (addr == 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "attachment.vf: the lender reports no address for BAR ", bar,
          " of ", vf.address, "; it cannot be mapped"));
    }
    RETURN_IF_ERROR(windows.Add(
        absl::StrCat("mmio-bar", bar), "attachment.vf",
        f->state.PlanDeviceGrant(to.second, vf.node, addr, size)));
  }
  RETURN_IF_ERROR(windows.Add("dma", "attachment.dma_size",
                              f->state.PlanGrant(vf.node, to.second, dma_size)));
  const uint64_t doorbell = std::max<uint64_t>(
      kDoorbellSize, topo.node(vf.node).profile->min_window_size);
  RETURN_IF_ERROR(windows.Add("msix", "attachment.borrower",
                              f->state.PlanGrant(vf.node, to.second, doorbell)));
  windows.Keep();

  auto entry = std::make_unique<AttachmentEntry>();
  r.set_name(AttachmentName(id));
  r.set_fabric(FabricName(f->id()));
  r.set_vf(VfName(vf.node_name, vf.address));
  r.set_lender(NodeName(vf.node_name));
  r.set_vf_address(vf.address);
  r.set_borrower(NodeName(borrower));
  r.set_vm(in.vm());
  r.set_interrupts(in.interrupts() ==
                           v1::Attachment::INTERRUPT_POLICY_UNSPECIFIED
                       ? v1::Attachment::AUTO
                       : in.interrupts());
  r.set_dma_size(dma_size);
  r.set_shadow_device(absl::StrCat("shadow-", id));
  r.set_owner(in.owner());
  *r.mutable_create_time() = ToProtoTime(now);
  entry->record = r;
  Plan plan;
  plan.batch.Put(kTableAttachments, id, r.SerializeAsString());
  v1::Attachment response = r;
  response.set_state(v1::Attachment::PENDING);
  response.set_state_reason(
      "recorded; waiting for both agents and the shadow device");
  plan.response = response.SerializeAsString();
  PlanNewLease<v1::Attachment>(s, id, std::move(entry), &plan);
  return plan;
}

}  // namespace fabric::service
