#include "agent/vf_borrower.h"

#include <grpcpp/create_channel.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/vf/msix_layout.h"
#include "agent/vf_assignment.h"
#include "common/grpc_status.h"
#include "common/latency_trace.h"
#include "common/status_macros.h"
#include "common/units.h"

namespace fabric::agent {
namespace {

constexpr auto kLenderDeadline = std::chrono::seconds(2);
// How soon a shadow that could not be built (its lender has not applied the
// attachment yet) is tried again.
constexpr absl::Duration kShadowRetry = absl::Milliseconds(10);
constexpr uint16_t kCommand = 0x04;

vf::Policy PolicyFrom(v1::Attachment::InterruptPolicy p) {
  switch (p) {
    case v1::Attachment::DIRECT:
      return vf::Policy::kDirect;
    case v1::Attachment::HYPERVISOR:
      return vf::Policy::kHypervisor;
    default:
      return vf::Policy::kAuto;
  }
}

// Counts each interrupt that reaches a guest or the host in `metrics`
// (none when null).
vf::InterruptRouter::Sink InterruptSink(AgentMetrics* metrics) {
  if (metrics == nullptr) return nullptr;
  return [metrics](const vf::Injection& i) {
    metrics->Interrupt(
        i.at_entry ? InterruptMode::kHypervisor : InterruptMode::kDirect,
        /*exit_avoided=*/!i.at_entry && !i.vm.empty());
  };
}

}  // namespace

struct VfBorrower::Shadow {
  agentproto::v1::VfAssignment assignment;
  std::unique_ptr<vf::ConfigVirtualizer> config;
  // The doorbell page on this host that the VF's MSI-X messages land in.
  uint64_t doorbell_base = 0;
  uint64_t doorbell_size = 0;
  int msix_cap = -1;
};

VfBorrower::VfBorrower(std::string node, HostReader host_read,
                       std::function<void()> on_shadow_change,
                       LenderCredentials lender_credentials,
                       AgentMetrics* metrics)
    : node_(std::move(node)),
      host_read_(std::move(host_read)),
      metrics_(metrics),
      router_(InterruptSink(metrics)),
      stubs_(std::move(lender_credentials)),
      on_shadow_change_(std::move(on_shadow_change)) {
  reconciler_ = std::thread([this] {
    absl::MutexLock l(&mu_);
    auto missing = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const auto& [name, a] : borrowed_) {
        if (!shadows_.count(name)) return true;
      }
      return false;
    };
    auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stop_ || kicked_;
    };
    while (!stop_) {
      // A shadow waits for its lender to apply the attachment: retry soon.
      // With every shadow built, only SetAssignments (which kicks, and is
      // the only way one goes) or the destructor has work for this thread.
      mu_.AwaitWithTimeout(absl::Condition(&wake),
                           missing() ? kShadowRetry : absl::InfiniteDuration());
      if (stop_) break;
      kicked_ = false;
      if (!missing()) continue;
      mu_.Unlock();
      Reconcile();
      mu_.Lock();
    }
  });
}

VfBorrower::~VfBorrower() {
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
  }
  reconciler_.join();
}

agentproto::v1::NodeAgentService::Stub* VfBorrower::LenderStub(
    const std::string& attachment, int64_t* generation) {
  std::pair<std::string, std::string> key;  // address, lender node
  {
    absl::MutexLock l(&lender_mu_);
    *generation = generation_;
    auto it = lender_of_.find(attachment);
    if (it == lender_of_.end() || it->second.first.empty()) return nullptr;
    key = it->second;
  }
  return stubs_.Get(key.first, key.second);
}

void VfBorrower::SetAssignments(
    const std::vector<agentproto::v1::VfAssignment>& assignments,
    int64_t generation) {
  bool changed = false;
  {
    absl::MutexLock l(&mu_);
    std::map<std::string, agentproto::v1::VfAssignment> borrowed;
    for (const auto& a : assignments) {
      if (a.role() != agentproto::v1::VfAssignment::LENDER)
        borrowed[a.attachment()] = a;
    }
    // A new lender address alone (its agent restarted) keeps the shadow and
    // the borrower's state in it; anything else rebuilds it.
    {
      absl::MutexLock ll(&lender_mu_);
      lender_of_.clear();
      for (const auto& [name, a] : borrowed) {
        lender_of_[name] = {
            a.lender_agent(),
            std::string(absl::StripPrefix(a.lender(), "nodes/"))};
      }
      generation_ = generation;
    }
    for (auto it = shadows_.begin(); it != shadows_.end();) {
      auto want = borrowed.find(it->first);
      if (want == borrowed.end() ||
          !SameTerms(want->second, it->second->assignment)) {
        (void)router_.DetachDevice(it->first);
        it = shadows_.erase(it);
        changed = true;
      } else {
        ++it;
      }
    }
    for (auto it = shadow_errors_.begin(); it != shadow_errors_.end();) {
      it = borrowed.count(it->first) ? std::next(it) : shadow_errors_.erase(it);
    }
    borrowed_ = std::move(borrowed);
    kicked_ = true;
  }
  if (changed && on_shadow_change_) on_shadow_change_();
}

void VfBorrower::Reconcile() {
  std::vector<agentproto::v1::VfAssignment> todo;
  {
    absl::MutexLock l(&mu_);
    for (const auto& [name, a] : borrowed_) {
      if (!shadows_.count(name)) todo.push_back(a);
    }
  }
  bool changed = false;
  for (const agentproto::v1::VfAssignment& a : todo) {
    auto shadow = BuildShadow(a);
    LatencyTrace::Record(
        shadow.ok() ? "agent.shadow_built" : "agent.shadow_failed",
        a.attachment(), 0);
    absl::MutexLock l(&mu_);
    auto it = borrowed_.find(a.attachment());
    if (it == borrowed_.end() ||
        it->second.SerializeAsString() != a.SerializeAsString() ||
        shadows_.count(a.attachment())) {
      continue;  // changed meanwhile
    }
    if (!shadow.ok()) {
      const std::string error(shadow.status().message());
      changed |= shadow_errors_[a.attachment()] != error;
      shadow_errors_[a.attachment()] = error;
      continue;
    }
    const std::string& name = a.attachment();
    if (!a.vm().empty()) (void)router_.AddVm(a.vm());
    (void)router_.DetachDevice(name);
    absl::Status attached = router_.AttachDevice(
        name, a.vm(), PolicyFrom(a.interrupts()),
        std::max(1, (*shadow)->config->msix_vectors()));
    if (!attached.ok()) {
      shadow_errors_[name] =
          absl::StrCat("interrupt routing: ", attached.message());
      changed = true;
      continue;
    }
    shadow_errors_.erase(name);
    shadows_[name] = *std::move(shadow);
    changed = true;
  }
  if (changed && on_shadow_change_) on_shadow_change_();
}

absl::StatusOr<std::shared_ptr<VfBorrower::Shadow>> VfBorrower::BuildShadow(
    const agentproto::v1::VfAssignment& a) {
  auto call = [this, a](agentproto::v1::VfAccessRequest req)
      -> absl::StatusOr<agentproto::v1::VfAccessResponse> {
    int64_t generation = 0;
    agentproto::v1::NodeAgentService::Stub* lender =
        LenderStub(a.attachment(), &generation);
    if (lender == nullptr) {
      return absl::UnavailableError(absl::StrCat(
          "the agent of lender ", a.lender(), " has no control address"));
    }
    req.set_borrower(a.borrower());
    req.set_vf_address(a.vf_address());
    // The lending's own generation: the lender is sent it (or a newer
    // one), not necessarily the borrower's newer ones.
    req.set_generation(a.generation() != 0 ? a.generation() : generation);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kLenderDeadline);
    agentproto::v1::VfAccessResponse resp;
    grpc::Status s = lender->VfAccess(&ctx, req, &resp);
    if (!s.ok()) {
      absl::Status st = FromGrpcStatus(s);
      return absl::Status(st.code(), absl::StrCat("lender ", a.lender(), ": ",
                                                  st.message()));
    }
    return resp;
  };
  agentproto::v1::VfAccessRequest snap;
  snap.set_op(agentproto::v1::VfAccessRequest::CONFIG_SNAPSHOT);
  ASSIGN_OR_RETURN(agentproto::v1::VfAccessResponse snapshot, call(snap));
  const std::string& bytes = snapshot.config();
  std::vector<uint8_t> config(bytes.begin(), bytes.end());

  auto shadow = std::make_shared<Shadow>();
  shadow->assignment = a;
  absl::StatusOr<vf::MsixTable> table = vf::FindMsixTable(config);
  shadow->msix_cap = table.ok() ? table->cap : -1;
  const v1::AttachmentWindow* msix = FindWindow(a, "msix");
  if (msix == nullptr) {
    return absl::InvalidArgumentError("the attachment has no msix window");
  }
  shadow->doorbell_base = msix->target_addr();
  shadow->doorbell_size = msix->size();
  std::vector<vf::VirtualBar> bars;
  for (int bar = 0; bar < 6; ++bar) {
    const v1::AttachmentWindow* w = FindWindow(a, absl::StrCat("mmio-bar", bar));
    if (w == nullptr) continue;
    vf::VirtualBar vb;
    vb.index = bar;
    vb.size = w->size();
    vb.is64 = true;  // the simulated (and most real) VF BARs
    vb.prefetchable = true;
    vb.borrower_base = w->local_addr();
    bars.push_back(vb);
  }
  vf::RealAccess real;
  real.read = [call](int offset, int size) -> absl::StatusOr<uint32_t> {
    agentproto::v1::VfAccessRequest r;
    r.set_op(agentproto::v1::VfAccessRequest::CONFIG_READ);
    r.set_offset(static_cast<uint32_t>(offset));
    r.set_size(static_cast<uint32_t>(size));
    ASSIGN_OR_RETURN(agentproto::v1::VfAccessResponse resp, call(r));
    return resp.value();
  };
  real.write = [call](int offset, int size, uint32_t value) -> absl::Status {
    agentproto::v1::VfAccessRequest r;
    r.set_op(agentproto::v1::VfAccessRequest::CONFIG_WRITE);
    r.set_offset(static_cast<uint32_t>(offset));
    r.set_size(static_cast<uint32_t>(size));
    r.set_value(value);
    return call(r).status();
  };
  real.write_msix_entry = [call](int vector,
                                 const vf::MsixEntry& e) -> absl::Status {
    agentproto::v1::VfAccessRequest r;
    r.set_op(agentproto::v1::VfAccessRequest::MSIX_ENTRY);
    r.set_vector(vector);
    r.set_addr(e.address);
    r.set_msi_data(e.data);
    r.set_masked(e.masked);
    return call(r).status();
  };
  vf::ConfigVirtualizerOptions opts;
  opts.vendor_id = static_cast<uint16_t>(a.vendor_id());
  opts.device_id = static_cast<uint16_t>(a.device_id());
  const uint64_t base = shadow->doorbell_base;
  const uint64_t size = shadow->doorbell_size;
  const uint64_t lender_window = msix->local_addr();
  opts.translate_msi_address =
      [base, size, lender_window](uint64_t addr) -> absl::StatusOr<uint64_t> {
    if (!Inside(addr, 4, base, size)) {
      return absl::NotFoundError(
          absl::StrCat("MSI address ", FormatAddr(addr),
                       " is outside the shadow device's doorbell page [",
                       FormatAddr(base), ", +", FormatSize(size), ")"));
    }
    return lender_window + (addr - base);
  };
  ASSIGN_OR_RETURN(shadow->config,
                   vf::ConfigVirtualizer::Create(config, std::move(bars),
                                                 std::move(real), opts));
  return shadow;
}

absl::StatusOr<v1::AccessShadowResponse> VfBorrower::AccessShadow(
    const v1::AccessShadowRequest& req) {
  std::shared_ptr<Shadow> shadow;
  {
    absl::MutexLock l(&mu_);
    if (!borrowed_.count(req.attachment())) {
      return absl::NotFoundError(absl::StrCat(
          "attachment: ", req.attachment(), " is not borrowed by ", node_));
    }
    auto it = shadows_.find(req.attachment());
    if (it == shadows_.end()) {
      auto e = shadow_errors_.find(req.attachment());
      return absl::UnavailableError(absl::StrCat(
          "attachment: the shadow device of ", req.attachment(),
          " is not built yet",
          e == shadow_errors_.end() ? "" : absl::StrCat(": ", e->second)));
    }
    shadow = it->second;
  }
  vf::ConfigVirtualizer& v = *shadow->config;
  v1::AccessShadowResponse out;
  const int offset = static_cast<int>(req.offset());
  const int size = static_cast<int>(req.size());
  auto record = [&out](const vf::WriteResult& r) {
    out.set_outcome(r.outcome == vf::WriteOutcome::kForwarded
                        ? v1::AccessShadowResponse::FORWARDED
                    : r.outcome == vf::WriteOutcome::kEmulated
                        ? v1::AccessShadowResponse::EMULATED
                        : v1::AccessShadowResponse::DROPPED);
    out.set_reason(r.reason);
  };
  const bool table = req.space() == v1::AccessShadowRequest::MSIX_TABLE;
  auto count = [&](ShadowOp op) {
    if (metrics_ == nullptr) return;
    metrics_->ShadowAccess(op, table ? vf::kMsixTableRule : v.RuleAt(offset));
  };
  switch (req.op()) {
    case v1::AccessShadowRequest::READ: {
      ASSIGN_OR_RETURN(uint32_t value, table ? v.ReadMsixTable(offset, size)
                                             : v.Read(offset, size));
      count(ShadowOp::kRead);
      out.set_value(value);
      return out;
    }
    case v1::AccessShadowRequest::WRITE: {
      ASSIGN_OR_RETURN(vf::WriteResult r,
                       table ? v.WriteMsixTable(offset, size, req.value())
                             : v.Write(offset, size, req.value()));
      count(ShadowOp::kWrite);
      record(r);
      return out;
    }
    case v1::AccessShadowRequest::DRIVER_SETUP: {
      // As the borrower's driver: decode + bus mastering, then each vector
      // at doorbell + 4 * vector with data = vector, unmasked, then MSI-X
      // on with the function unmasked.
      ASSIGN_OR_RETURN(vf::WriteResult cmd, v.Write(kCommand, 2, 0x0006));
      if (cmd.outcome != vf::WriteOutcome::kForwarded) {
        return absl::InternalError(
            absl::StrCat("command write was not forwarded: ", cmd.reason));
      }
      for (int vec = 0; vec < v.msix_vectors(); ++vec) {
        const uint64_t addr =
            shadow->doorbell_base + 4 * static_cast<uint64_t>(vec);
        const vf::MsixEntry entry{addr, static_cast<uint32_t>(vec), false};
        const int e = static_cast<int>(vf::MsixEntryOffset(vec));
        for (int field : {vf::kMsixAddrLo, vf::kMsixAddrHi, vf::kMsixData}) {
          RETURN_IF_ERROR(
              v.WriteMsixTable(e + field, 4, vf::MsixEntryDword(entry, field))
                  .status());
        }
        ASSIGN_OR_RETURN(
            vf::WriteResult unmask,
            v.WriteMsixTable(e + vf::kMsixVectorControl, 4,
                             vf::MsixEntryDword(entry, vf::kMsixVectorControl)));
        if (unmask.outcome == vf::WriteOutcome::kDropped) {
          return absl::FailedPreconditionError(absl::StrCat(
              "MSI-X vector ", vec, " was not programmed: ", unmask.reason));
        }
      }
      if (shadow->msix_cap >= 0) {
        const int control = shadow->msix_cap + vf::kMsixControl;
        ASSIGN_OR_RETURN(uint32_t ctrl, v.Read(control, 2));
        ctrl = (ctrl | vf::kMsixEnable) & ~uint32_t{vf::kMsixFunctionMask};
        ASSIGN_OR_RETURN(vf::WriteResult on, v.Write(control, 2, ctrl));
        record(on);
      } else {
        record(cmd);
      }
      out.set_value(static_cast<uint32_t>(v.msix_vectors()));
      return out;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("op: unknown operation ", req.op()));
  }
}

absl::StatusOr<agentproto::v1::ShadowInterruptResponse>
VfBorrower::ShadowInterrupt(const agentproto::v1::ShadowInterruptRequest& req) {
  std::shared_ptr<Shadow> shadow;
  {
    absl::MutexLock l(&mu_);
    auto it = shadows_.find(req.attachment());
    if (it == shadows_.end()) {
      return absl::NotFoundError(absl::StrCat(
          "attachment: ", req.attachment(), " has no shadow device on ", node_));
    }
    shadow = it->second;
  }
  agentproto::v1::ShadowInterruptResponse out;
  auto drop = [&](std::string why) -> agentproto::v1::ShadowInterruptResponse {
    out.set_delivery(agentproto::v1::ShadowInterruptResponse::DROPPED);
    out.set_reason(std::move(why));
    absl::MutexLock l(&mu_);
    auto c = CountersLocked(*shadow);
    if (c.ok()) *out.mutable_counters() = *c;
    return out;
  };
  if (!Inside(req.addr(), 4, shadow->doorbell_base, shadow->doorbell_size)) {
    return drop("message landed outside the shadow device's doorbell page");
  }
  // The message's bytes must really be in this host's memory.
  uint8_t got[4];
  RETURN_IF_ERROR(host_read_(req.addr(), absl::MakeSpan(got)));
  const uint32_t value = got[0] | got[1] << 8 | got[2] << 16 |
                         static_cast<uint32_t>(got[3]) << 24;
  if (value != req.data()) {
    return drop(absl::StrCat("doorbell holds ", value, ", not the message data ",
                             req.data()));
  }
  vf::ConfigVirtualizer& v = *shadow->config;
  int vector = -1;
  for (int vec = 0; vec < v.msix_vectors() && vector < 0; ++vec) {
    const int e = static_cast<int>(vf::MsixEntryOffset(vec));
    auto lo = v.ReadMsixTable(e + vf::kMsixAddrLo, 4);
    auto hi = v.ReadMsixTable(e + vf::kMsixAddrHi, 4);
    auto data = v.ReadMsixTable(e + vf::kMsixData, 4);
    if (!lo.ok() || !hi.ok() || !data.ok()) continue;
    const uint64_t addr = static_cast<uint64_t>(*hi) << 32 | *lo;
    if (addr == req.addr() && *data == req.data()) vector = vec;
  }
  if (vector < 0) return drop("no MSI-X vector of the shadow sends this message");
  vf::DeliveryResult r = router_.Deliver(req.attachment(), vector);
  out.set_delivery(
      r.delivery == vf::Delivery::kDirect
          ? agentproto::v1::ShadowInterruptResponse::DIRECT
      : r.delivery == vf::Delivery::kViaHypervisor
          ? agentproto::v1::ShadowInterruptResponse::HYPERVISOR
          : agentproto::v1::ShadowInterruptResponse::DROPPED);
  out.set_reason(r.reason);
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(*out.mutable_counters(), CountersLocked(*shadow));
  return out;
}

absl::StatusOr<hypervisor::v1::SetVmStateResponse> VfBorrower::SetVmState(
    const hypervisor::v1::SetVmStateRequest& req) {
  if (req.vm().empty()) {
    return absl::InvalidArgumentError("vm: required");
  }
  hypervisor::v1::SetVmStateResponse out;
  if (req.running()) {
    const size_t queued = router_.Pending(req.vm()).size();
    RETURN_IF_ERROR(router_.SetVmRunning(req.vm(), req.core()));
    out.set_injected(static_cast<int64_t>(queued));
  } else {
    RETURN_IF_ERROR(router_.SetVmStopped(req.vm()));
  }
  return out;
}

absl::StatusOr<v1::VfCounters> VfBorrower::CountersLocked(
    const Shadow& s) const {
  v1::VfCounters out;
  ASSIGN_OR_RETURN(vf::DeviceCounters d,
                   router_.counters(s.assignment.attachment()));
  out.set_delivered_direct(d.delivered_direct);
  out.set_delivered_via_hypervisor(d.delivered_via_hypervisor);
  out.set_exits_avoided(d.exits_avoided);
  out.set_exits(d.exits);
  out.set_injected_at_entry(d.injected_at_entry);
  out.set_coalesced(d.coalesced);
  for (const auto& [why, n] : d.dropped_by_reason) {
    (*out.mutable_dropped_by_reason())[why] = n;
  }
  vf::ConfigCounters c = s.config->counters();
  out.set_config_reads(c.reads);
  out.set_config_writes_forwarded(c.writes_forwarded);
  out.set_config_writes_emulated(c.writes_emulated);
  out.set_config_writes_dropped(c.writes_dropped);
  for (const auto& [why, n] : c.dropped_by_reason) {
    (*out.mutable_config_dropped_by_reason())[why] = n;
  }
  return out;
}

void VfBorrower::FillStatus(agentproto::v1::ReportStatusRequest* report) {
  absl::MutexLock l(&mu_);
  for (const auto& [name, a] : borrowed_) {
    agentproto::v1::ShadowStatus* s = report->add_shadows();
    s->set_attachment(name);
    auto it = shadows_.find(name);
    s->set_ready(it != shadows_.end());
    if (auto e = shadow_errors_.find(name); e != shadow_errors_.end()) {
      s->set_error(e->second);
    }
    if (it != shadows_.end()) {
      auto c = CountersLocked(*it->second);
      if (c.ok()) *s->mutable_counters() = *c;
    }
  }
}

}  // namespace fabric::agent
