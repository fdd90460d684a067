#include "agent/vf_lender.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/discovery/config_space.h"
#include "agent/vf/msix_layout.h"
#include "agent/vf_assignment.h"
#include "common/status_macros.h"
#include "common/units.h"
#include "fabric/agentproto/v1/agent_service.pb.h"
#include "fabric/agentproto/v1/node_agent_service.pb.h"
#include "fabric/v1/diagnostics.pb.h"
#include "fabric/v1/resources.pb.h"

namespace fabric::agent {
namespace {

using discovery::PciAddress;

constexpr uint8_t kCapPcie = 0x10;
constexpr uint16_t kCommand = 0x04;

// Offset of capability `id` in `config`, or -1.
int FindCap(absl::Span<const uint8_t> config, uint8_t id) {
  auto caps = discovery::ListCapabilities(config);
  if (!caps.ok()) return -1;
  for (const auto& c : *caps) {
    if (c.id == id) return c.offset;
  }
  return -1;
}

// Offset of the MSI-X capability in `config`, or -1.
int MsixCap(absl::Span<const uint8_t> config) {
  absl::StatusOr<vf::MsixTable> t = vf::FindMsixTable(config);
  return t.ok() ? t->cap : -1;
}

void ToProto(const hw::AccessResult& r, v1::AccessResult* out) {
  out->set_landed(r.landed);
  out->set_node(r.node);
  out->set_addr(r.addr);
  for (const auto& h : r.hops) out->add_hops(h);
  out->set_fault_bridge(r.fault_bridge);
  out->set_fault_addr(r.fault_addr);
  out->set_reason(r.reason);
}


}  // namespace

VfLender::VfLender(std::string node, hw::SriovFunctions* local)
    : node_(std::move(node)), local_(local) {}

void VfLender::SetAssignments(
    const std::vector<agentproto::v1::VfAssignment>& assignments,
    int64_t generation) {
  // Lendings that ended are withdrawn and their VFs quiesced before any new
  // lending is published: the next borrower of the same VF must find it
  // quiet, and its own setup must not be undone by a late quiesce.
  std::map<std::string, agentproto::v1::VfAssignment> lent;
  for (const auto& a : assignments) {
    if (a.role() == agentproto::v1::VfAssignment::LENDER)
      lent[a.attachment()] = a;
  }
  std::vector<agentproto::v1::VfAssignment> ended;
  {
    absl::MutexLock l(&mu_);
    for (auto it = lent_.begin(); it != lent_.end();) {
      // A lending whose terms changed (another borrower, other windows)
      // ends too: its MSI-X entries still point into the old window. Only
      // a new lender address (this agent restarted) keeps it.
      auto now = lent.find(it->first);
      if (now != lent.end() && SameTerms(now->second, it->second)) {
        ++it;
      } else {
        ended.push_back(it->second);
        it = lent_.erase(it);
      }
    }
  }
  for (const auto& a : ended) Quiesce(a);
  absl::MutexLock l(&mu_);
  lent_ = std::move(lent);
  generation_ = std::max(generation_, generation);  // wakes VfAccess
}

void VfLender::Quiesce(const agentproto::v1::VfAssignment& a) {
  if (local_ == nullptr) return;
  auto bdf = discovery::ParsePciAddress(a.vf_address());
  if (!bdf.ok()) return;
  // The next borrower gets a VF that neither masters the bus nor signals:
  // every MSI-X vector masked with its message cleared (else re-enabling
  // MSI-X would send to the last borrower's doorbell), then bus mastering
  // and memory decode off and MSI-X disabled. The table is written first,
  // while the VF still decodes memory. Best effort: a VF that is gone needs
  // nothing.
  auto config = local_->ConfigSpace(*bdf);
  absl::StatusOr<vf::MsixTable> msix =
      config.ok() ? vf::FindMsixTable(*config) : config.status();
  if (msix.ok()) {
    for (int v = 0; v < msix->vectors; ++v) {
      (void)local_->WriteMsixEntry(*bdf, v, vf::MsixEntry{});
    }
  }
  (void)local_->ConfigWrite(*bdf, kCommand, 2, 0);
  if (msix.ok()) {
    (void)local_->ConfigWrite(
        *bdf, static_cast<uint16_t>(msix->cap + vf::kMsixControl), 2, 0);
  }
}

absl::StatusOr<agentproto::v1::VfAccessResponse> VfLender::VfAccess(
    const agentproto::v1::VfAccessRequest& req) {
  if (local_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("node ", node_, " has no SR-IOV functions to lend"));
  }
  agentproto::v1::VfAssignment a;
  {
    absl::MutexLock l(&mu_);
    // A borrower ahead of this lender asks about a lending this lender may
    // not have applied yet: wait for it rather than refuse.
    auto caught_up = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return generation_ >= req.generation();
    };
    mu_.AwaitWithTimeout(absl::Condition(&caught_up), kCatchUpTimeout);
    const agentproto::v1::VfAssignment* found = nullptr;
    for (const auto& [name, x] : lent_) {
      if (x.vf_address() == req.vf_address()) found = &x;
    }
    if (found == nullptr) {
      return absl::PermissionDeniedError(absl::StrCat(
          "vf_address: ", req.vf_address(), " is not lent by ", node_));
    }
    if (found->borrower() != req.borrower() &&
        found->borrower() != absl::StrCat("nodes/", req.borrower())) {
      return absl::PermissionDeniedError(
          absl::StrCat("vf_address: ", req.vf_address(), " is lent to ",
                       found->borrower(), ", not to ", req.borrower()));
    }
    a = *found;
  }
  ASSIGN_OR_RETURN(PciAddress bdf, discovery::ParsePciAddress(a.vf_address()));
  if ((req.op() == agentproto::v1::VfAccessRequest::CONFIG_READ ||
       req.op() == agentproto::v1::VfAccessRequest::CONFIG_WRITE) &&
      (req.offset() >= 4096 || req.size() > 4)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "offset: config access of ", req.size(), " bytes at ",
        FormatAddr(req.offset()), " is outside the 4096-byte config space"));
  }
  agentproto::v1::VfAccessResponse out;
  switch (req.op()) {
    case agentproto::v1::VfAccessRequest::CONFIG_READ: {
      ASSIGN_OR_RETURN(uint32_t v,
                       local_->ConfigRead(bdf, static_cast<uint16_t>(req.offset()),
                                          static_cast<int>(req.size())));
      out.set_value(v);
      return out;
    }
    case agentproto::v1::VfAccessRequest::CONFIG_WRITE: {
      // The lender enforces what the borrower's virtualizer forwards, so a
      // borrower calling here directly gains nothing: Command, Status, MSI-X
      // Message Control and PCIe Device Control only.
      ASSIGN_OR_RETURN(std::vector<uint8_t> config, local_->ConfigSpace(bdf));
      const int off = static_cast<int>(req.offset());
      const int end = off + static_cast<int>(req.size());
      const int msix = MsixCap(config);
      const int pcie = FindCap(config, kCapPcie);
      const bool allowed =
          (off >= 0x04 && end <= 0x08) ||
          (msix >= 0 && off >= msix + vf::kMsixControl &&
           end <= msix + vf::kMsixControl + 2) ||
          (pcie >= 0 && off >= pcie + 8 && end <= pcie + 10);
      if (!allowed) {
        return absl::PermissionDeniedError(absl::StrCat(
            "offset: config write at ", FormatAddr(req.offset()), " (",
            req.size(), " bytes) on lent VF ", a.vf_address(),
            " is not one a borrower may make"));
      }
      RETURN_IF_ERROR(local_->ConfigWrite(bdf, static_cast<uint16_t>(off),
                                          static_cast<int>(req.size()),
                                          req.value()));
      return out;
    }
    case agentproto::v1::VfAccessRequest::CONFIG_SNAPSHOT: {
      ASSIGN_OR_RETURN(std::vector<uint8_t> config, local_->ConfigSpace(bdf));
      out.set_config(std::string(config.begin(), config.end()));
      return out;
    }
    case agentproto::v1::VfAccessRequest::MSIX_ENTRY: {
      const v1::AttachmentWindow* w = FindWindow(a, "msix");
      if (!req.masked() &&
          (w == nullptr || !Inside(req.addr(), 4, w->local_addr(), w->size()))) {
        return absl::PermissionDeniedError(absl::StrCat(
            "addr: MSI-X message address ", FormatAddr(req.addr()),
            " is outside the window to the borrower's doorbell"));
      }
      vf::MsixEntry e;
      e.address = req.addr();
      e.data = req.msi_data();
      e.masked = req.masked();
      RETURN_IF_ERROR(local_->WriteMsixEntry(bdf, req.vector(), e));
      return out;
    }
    case agentproto::v1::VfAccessRequest::DMA: {
      const v1::AttachmentWindow* w = FindWindow(a, "dma");
      if (w == nullptr ||
          !Inside(req.addr(), req.data().size(), w->local_addr(), w->size())) {
        return absl::PermissionDeniedError(
            absl::StrCat("addr: DMA of ", req.data().size(), " bytes at ",
                         FormatAddr(req.addr()),
                         " is outside the VF's DMA window"));
      }
      ASSIGN_OR_RETURN(
          hw::AccessResult r,
          local_->Dma(bdf, req.addr(),
                      absl::MakeConstSpan(
                          reinterpret_cast<const uint8_t*>(req.data().data()),
                          req.data().size())));
      ToProto(r, out.mutable_access());
      return out;
    }
    case agentproto::v1::VfAccessRequest::RAISE_MSIX: {
      ASSIGN_OR_RETURN(hw::MsixResult r, local_->RaiseMsix(bdf, req.vector()));
      if (r.outcome == hw::MsixResult::Outcome::kDelivered) {
        out.set_outcome(agentproto::v1::VfAccessResponse::DELIVERED);
        out.set_msi_addr(r.message.addr);
        out.set_msi_data(r.message.data);
        ToProto(r.access, out.mutable_access());
      } else {
        out.set_outcome(agentproto::v1::VfAccessResponse::PENDING);
      }
      return out;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("op: unknown operation ", req.op()));
  }
}

void VfLender::FillStatus(agentproto::v1::ReportStatusRequest* report) {
  if (local_ == nullptr) return;
  {
    // Probing reads every function's state; reports right after an apply
    // reuse a probe younger than kProbeMaxAge.
    constexpr absl::Duration kProbeMaxAge = absl::Milliseconds(100);
    absl::MutexLock probe(&probe_mu_);
    if (absl::Now() - probed_at_ < kProbeMaxAge) {
      for (const auto& h : last_health_) *report->add_vf_health() = h;
      *report->mutable_inventory() = last_inventory_;
    } else if (auto inventory = local_->Inventory(); inventory.ok()) {
      for (const v1::PciFunction& f : inventory->functions()) {
        if (f.kind() != v1::PciFunction::SRIOV_VF) continue;
        auto bdf = discovery::ParsePciAddress(f.address());
        if (!bdf.ok()) continue;
        agentproto::v1::VfHealthReport* h = report->add_vf_health();
        h->set_vf_address(f.address());
        auto health = local_->Health(*bdf);
        if (!health.ok()) {
          h->set_healthy(false);
          h->set_reason(std::string(health.status().message()));
          continue;
        }
        std::vector<std::string> failed;
        if (!health->config_readable) failed.push_back("config space unreadable");
        if (!health->vendor_ok) failed.push_back("vendor id reads 0xffff");
        if (!health->pf_link_up) failed.push_back("PF link down");
        h->set_healthy(failed.empty());
        h->set_reason(absl::StrJoin(failed, "; "));
      }
      *report->mutable_inventory() = *std::move(inventory);
      last_inventory_ = report->inventory();
      last_health_.assign(report->vf_health().begin(),
                          report->vf_health().end());
      probed_at_ = absl::Now();
    }
  }
}

}  // namespace fabric::agent
