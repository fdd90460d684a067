#include "server/service/agent_relay.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <algorithm>
#include <set>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "common/units.h"

namespace fabric::service {
namespace {

constexpr uint32_t kDefaultProbe = 4096;

// RelayTargets from the FabricManager.
class ManagerTargets : public RelayTargets {
 public:
  explicit ManagerTargets(FabricManager* manager) : manager_(manager) {}
  absl::StatusOr<FabricManager::VerifyTarget> PrepareVerify(
      absl::string_view allocation) override {
    return manager_->PrepareVerify(allocation);
  }
  absl::StatusOr<FabricManager::AttachmentTarget> PrepareAttachmentOp(
      absl::string_view attachment, bool need_ready) override {
    return manager_->PrepareAttachmentOp(attachment, need_ready);
  }
  absl::StatusOr<std::string> AgentAddress(absl::string_view node) override {
    return manager_->AgentAddress(node);
  }

 private:
  FabricManager* const manager_;  // not owned
};

std::string Describe(const v1::AccessResult& r) {
  std::string hops = absl::StrJoin(r.hops(), " -> ");
  if (r.landed()) {
    return absl::StrCat("landed on ", r.node(), " at ", FormatAddr(r.addr()),
                        " via ", hops);
  }
  return absl::StrCat("faulted at bridge ", r.fault_bridge(), " on address ",
                      FormatAddr(r.fault_addr()), ": ", r.reason(),
                      hops.empty() ? "" : absl::StrCat(" (after ", hops, ")"));
}

}  // namespace

StubCache<agentproto::v1::NodeAgentService>::CredentialsFactory
AgentCredentials(const security::TlsConfig& tls) {
  if (tls.insecure) return nullptr;
  return [tls](const std::string& node) {
    return security::ChannelCredentials(tls,
                                        security::PeerRequirement::Node(node));
  };
}

AgentRelay::AgentRelay(FabricManager* manager, AgentRelayOptions options)
    : owned_targets_(std::make_unique<ManagerTargets>(manager)),
      targets_(owned_targets_.get()),
      options_(options),
      stubs_(options_.agent_credentials) {}

AgentRelay::AgentRelay(RelayTargets* targets, AgentRelayOptions options)
    : targets_(targets),
      options_(options),
      stubs_(options_.agent_credentials) {}

agentproto::v1::NodeAgentService::Stub* AgentRelay::AgentStub(
    const std::string& address, absl::string_view node) {
  return stubs_.Get(address, std::string(absl::StripPrefix(node, "nodes/")));
}

AgentRelay::~AgentRelay() = default;

absl::StatusOr<v1::VerifyResult> AgentRelay::Verify(
    const v1::VerifyAllocationRequest& req) {
  auto target = targets_->PrepareVerify(req.name());
  if (!target.ok()) return target.status();
  const v1::Allocation& a = target->allocation;
  const uint64_t probe = std::min<uint64_t>(
      req.probe_size() == 0 ? kDefaultProbe : req.probe_size(), a.size());
  std::set<uint64_t> offsets = {0, (a.size() / 2) & ~uint64_t{63},
                                a.size() - probe};
  v1::VerifyResult out;
  out.set_allocation(a.name());
  out.set_ok(true);
  absl::BitGen gen;
  for (uint64_t off : offsets) {
    if (off + probe > a.size()) off = a.size() - probe;
    std::string pattern(probe, '\0');
    for (char& c : pattern) c = static_cast<char>(absl::Uniform<uint8_t>(gen));
    agentproto::v1::HostWriteRequest write;
    write.set_addr(a.borrower_addr() + off);
    write.set_data(pattern);
    v1::AccessResult* result = out.add_probes();
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(
          absl::ToChronoTime(absl::Now() + options_.agent_deadline));
      grpc::Status s = AgentStub(target->borrower_agent, a.borrower())
                           ->HostWrite(&ctx, write, result);
      if (!s.ok()) {
        return absl::UnavailableError(absl::StrCat(
            "the agent of ", a.borrower(), " at ", target->borrower_agent,
            " did not take the write: ", s.error_message()));
      }
    }
    const std::string where =
        absl::StrCat("write of ", FormatSize(probe), " at ", a.borrower(), " ",
                     FormatAddr(write.addr()), " (offset ", off, ")");
    if (!result->landed()) {
      out.set_ok(false);
      out.set_summary(absl::StrCat(where, " ", Describe(*result)));
      return out;
    }
    const std::string target_node(absl::StripPrefix(a.target(), "nodes/"));
    if (result->node() != target_node ||
        result->addr() != a.target_addr() + off) {
      out.set_ok(false);
      out.set_summary(absl::StrCat(where, " ", Describe(*result), ", expected ",
                                   target_node, " at ",
                                   FormatAddr(a.target_addr() + off)));
      return out;
    }
    agentproto::v1::HostReadRequest read;
    read.set_addr(a.target_addr() + off);
    read.set_length(static_cast<uint32_t>(probe));
    agentproto::v1::HostReadResponse got;
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(
          absl::ToChronoTime(absl::Now() + options_.agent_deadline));
      grpc::Status s = AgentStub(target->target_agent, a.target())
                           ->HostRead(&ctx, read, &got);
      if (!s.ok()) {
        return absl::UnavailableError(absl::StrCat(
            "the agent of ", a.target(), " at ", target->target_agent,
            " did not answer the read: ", s.error_message()));
      }
    }
    if (got.data() != pattern) {
      size_t first = 0;
      while (first < pattern.size() && first < got.data().size() &&
             pattern[first] == got.data()[first]) {
        ++first;
      }
      out.set_ok(false);
      out.set_summary(absl::StrCat(where, " ", Describe(*result), ", but ",
                                   a.target(),
                                   " reads different bytes from offset ", first,
                                   " at ", FormatAddr(read.addr() + first)));
      return out;
    }
    out.set_bytes_verified(out.bytes_verified() + probe);
  }
  out.set_summary(absl::StrCat("OK: ", out.probes_size(), " probe(s), ",
                               FormatSize(out.bytes_verified()), " written at ",
                               a.borrower(), " read back at ", a.target(),
                               " via ",
                               absl::StrJoin(out.probes(0).hops(), " -> ")));
  return out;
}

namespace {

// Runs one unary call on an agent with `deadline`; UNAVAILABLE
// naming the agent when it cannot be reached, its own status otherwise.
template <typename Req, typename Resp, typename Fn>
absl::Status CallAgent(absl::Duration deadline, Fn fn, const std::string& who,
                       const std::string& addr, const Req& req, Resp* resp) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  grpc::Status s = fn(&ctx, req, resp);
  if (s.ok()) return absl::OkStatus();
  absl::Status st = FromGrpcStatus(s);
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
      s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::UnavailableError(
        absl::StrCat("the agent of ", who, " at ", addr, ": ", st.message()));
  }
  return st;
}

const v1::AttachmentWindow* FindWindow(const v1::Attachment& a,
                                       absl::string_view role) {
  for (const auto& w : a.windows()) {
    if (w.role() == role) return &w;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<v1::VerifyResult> AgentRelay::VerifyAttachment(
    const v1::VerifyAttachmentRequest& req) {
  auto target = targets_->PrepareAttachmentOp(req.name(), true);
  if (!target.ok()) return target.status();
  const v1::Attachment& a = target->attachment;
  const v1::AttachmentWindow* dma = FindWindow(a, "dma");
  if (dma == nullptr) {
    return absl::InternalError(absl::StrCat(a.name(), " has no dma window"));
  }
  const uint64_t probe = std::min<uint64_t>(
      req.probe_size() == 0 ? kDefaultProbe : req.probe_size(), dma->size());
  v1::VerifyResult out;
  out.set_allocation(a.name());
  out.set_ok(true);
  absl::BitGen gen;
  for (uint64_t off : std::set<uint64_t>{0, dma->size() - probe}) {
    std::string pattern(probe, '\0');
    for (char& c : pattern) c = static_cast<char>(absl::Uniform<uint8_t>(gen));
    agentproto::v1::VfAccessRequest write;
    write.set_borrower(a.borrower());
    write.set_vf_address(a.vf_address());
    write.set_op(agentproto::v1::VfAccessRequest::DMA);
    write.set_addr(dma->local_addr() + off);
    write.set_data(pattern);
    agentproto::v1::VfAccessResponse wrote;
    absl::Status s = CallAgent(
        options_.agent_deadline,
        [&](grpc::ClientContext* c, const agentproto::v1::VfAccessRequest& r,
            agentproto::v1::VfAccessResponse* w) {
          return AgentStub(target->lender_agent, a.lender())->VfAccess(c, r, w);
        },
        a.lender(), target->lender_agent, write, &wrote);
    const std::string where =
        absl::StrCat("DMA of ", FormatSize(probe), " by VF ", a.vf_address(),
                     " at I/O address ", FormatAddr(write.addr()));
    if (!s.ok()) {
      if (absl::IsUnavailable(s)) return s;
      out.set_ok(false);
      out.set_summary(absl::StrCat(where, " refused: ", s.message()));
      return out;
    }
    *out.add_probes() = wrote.access();
    const std::string borrower(absl::StripPrefix(a.borrower(), "nodes/"));
    if (!wrote.access().landed() || wrote.access().node() != borrower ||
        wrote.access().addr() != dma->target_addr() + off) {
      out.set_ok(false);
      out.set_summary(absl::StrCat(where, " ", Describe(wrote.access()),
                                   ", expected ", borrower, " at ",
                                   FormatAddr(dma->target_addr() + off)));
      return out;
    }
    agentproto::v1::HostReadRequest read;
    read.set_addr(dma->target_addr() + off);
    read.set_length(static_cast<uint32_t>(probe));
    agentproto::v1::HostReadResponse got;
    RETURN_IF_ERROR(CallAgent(
        options_.agent_deadline,
        [&](grpc::ClientContext* c, const agentproto::v1::HostReadRequest& r,
            agentproto::v1::HostReadResponse* w) {
          return AgentStub(target->borrower_agent, a.borrower())
              ->HostRead(c, r, w);
        },
        a.borrower(), target->borrower_agent, read, &got));
    if (got.data() != pattern) {
      out.set_ok(false);
      out.set_summary(absl::StrCat(where, " ", Describe(wrote.access()),
                                   ", but ", a.borrower(),
                                   " reads different bytes in its DMA region"));
      return out;
    }
    out.set_bytes_verified(out.bytes_verified() + probe);
  }
  out.set_summary(absl::StrCat(
      "OK: VF ", a.vf_address(), " on ", a.lender(), " DMA-wrote ",
      FormatSize(out.bytes_verified()), " read back in ", a.borrower(),
      "'s DMA region via ", absl::StrJoin(out.probes(0).hops(), " -> ")));
  return out;
}

absl::StatusOr<v1::AccessShadowResponse> AgentRelay::AccessShadow(
    const v1::AccessShadowRequest& req) {
  auto target = targets_->PrepareAttachmentOp(req.attachment(), true);
  if (!target.ok()) return target.status();
  v1::AccessShadowRequest fwd = req;
  fwd.set_attachment(target->attachment.name());
  v1::AccessShadowResponse out;
  RETURN_IF_ERROR(CallAgent(
      options_.agent_deadline,
      [&](grpc::ClientContext* c, const v1::AccessShadowRequest& r,
          v1::AccessShadowResponse* w) {
        return AgentStub(target->borrower_agent, target->attachment.borrower())
            ->AccessShadow(c, r, w);
      },
      target->attachment.borrower(), target->borrower_agent, fwd, &out));
  return out;
}

absl::StatusOr<v1::RaiseVfInterruptResponse> AgentRelay::RaiseVfInterrupt(
    const v1::RaiseVfInterruptRequest& req) {
  constexpr int kMaxCount = 100000;
  if (req.count() < 0 || req.count() > kMaxCount) {
    return absl::InvalidArgumentError(
        absl::StrCat("count: ", req.count(), " is outside 0..", kMaxCount));
  }
  auto target = targets_->PrepareAttachmentOp(req.attachment(), true);
  if (!target.ok()) return target.status();
  const v1::Attachment& a = target->attachment;
  const int count = req.count() == 0 ? 1 : req.count();
  v1::RaiseVfInterruptResponse out;
  for (int i = 0; i < count; ++i) {
    agentproto::v1::VfAccessRequest raise;
    raise.set_borrower(a.borrower());
    raise.set_vf_address(a.vf_address());
    raise.set_op(agentproto::v1::VfAccessRequest::RAISE_MSIX);
    raise.set_vector(req.vector());
    agentproto::v1::VfAccessResponse raised;
    RETURN_IF_ERROR(CallAgent(
        options_.agent_deadline,
        [&](grpc::ClientContext* c, const agentproto::v1::VfAccessRequest& r,
            agentproto::v1::VfAccessResponse* w) {
          return AgentStub(target->lender_agent, a.lender())->VfAccess(c, r, w);
        },
        a.lender(), target->lender_agent, raise, &raised));
    if (raised.outcome() == agentproto::v1::VfAccessResponse::PENDING) {
      out.set_pending_in_vf(out.pending_in_vf() + 1);
      continue;
    }
    if (!raised.access().landed()) {
      out.set_dropped(out.dropped() + 1);
      continue;
    }
    agentproto::v1::ShadowInterruptRequest deliver;
    deliver.set_attachment(a.name());
    deliver.set_addr(raised.access().addr());
    deliver.set_data(raised.msi_data());
    agentproto::v1::ShadowInterruptResponse delivered;
    RETURN_IF_ERROR(CallAgent(
        options_.agent_deadline,
        [&](grpc::ClientContext* c,
            const agentproto::v1::ShadowInterruptRequest& r,
            agentproto::v1::ShadowInterruptResponse* w) {
          return AgentStub(target->borrower_agent, a.borrower())
              ->ShadowInterrupt(c, r, w);
        },
        a.borrower(), target->borrower_agent, deliver, &delivered));
    if (delivered.delivery() ==
        agentproto::v1::ShadowInterruptResponse::DIRECT) {
      out.set_delivered_direct(out.delivered_direct() + 1);
    } else if (delivered.delivery() ==
               agentproto::v1::ShadowInterruptResponse::HYPERVISOR) {
      out.set_delivered_via_hypervisor(out.delivered_via_hypervisor() + 1);
    } else {
      out.set_dropped(out.dropped() + 1);
    }
    *out.mutable_counters() = delivered.counters();
  }
  return out;
}

absl::StatusOr<hypervisor::v1::SetVmStateResponse> AgentRelay::SetVmState(
    const hypervisor::v1::SetVmStateRequest& req) {
  auto addr = targets_->AgentAddress(req.node());
  if (!addr.ok()) return addr.status();
  hypervisor::v1::SetVmStateResponse out;
  RETURN_IF_ERROR(CallAgent(
      options_.agent_deadline,
      [&](grpc::ClientContext* c, const hypervisor::v1::SetVmStateRequest& r,
          hypervisor::v1::SetVmStateResponse* w) {
        return AgentStub(*addr, req.node())->SetVmState(c, r, w);
      },
      req.node(), *addr, req, &out));
  return out;
}

}  // namespace fabric::service
