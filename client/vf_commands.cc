#include "client/vf_commands.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "common/units.h"

namespace fabric::client {
namespace {

// Hints for the errors of an operation on attachment `name` that the server
// relays to the agents: not READY yet, not there, an agent out of reach.
absl::Status AttachmentOpHint(absl::Status status, const std::string& name) {
  if (status.ok() || !StatusHint(status).empty()) return status;
  const std::string id(absl::StripPrefix(name, "attachments/"));
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      if (name.empty()) return status;
      return WithHint(std::move(status), kAttachmentListHint);
    case absl::StatusCode::kFailedPrecondition:
      if (!name.empty() && absl::StrContains(status.message(), "not READY")) {
        return WithHint(std::move(status),
                        absl::StrCat("'fabricctl describe attachment ", id,
                                     "' says what it waits for"));
      }
      return status;
    case absl::StatusCode::kUnavailable:
      if (absl::StrContains(status.message(), "agent")) {
        return WithHint(std::move(status),
                        "'fabricctl get nodes' shows whether the agents are "
                        "READY");
      }
      return status;
    default:
      return status;
  }
}

// A register value in hex, two digits per byte: 0x0006 for 2 bytes.
std::string HexValue(uint32_t value, uint32_t size) {
  return absl::StrFormat("0x%0*x", static_cast<int>(size * 2), value);
}

std::string Count(int64_t n, absl::string_view one, absl::string_view many) {
  return absl::StrCat(n, " ", n == 1 ? one : many);
}

}  // namespace


absl::Status CheckShadowAccess(const ShadowAccessOptions& a) {
  constexpr uint32_t kConfigSpaceSize = 4096;
  if (a.size != 1 && a.size != 2 && a.size != 4) {
    return UsageError(
        absl::StrCat("--size: ", a.size, " bytes; use 1, 2 or 4"));
  }
  if (a.msix_table && a.size != 4) {
    return UsageError(absl::StrCat(
        "--size: the MSI-X table takes dwords only; use --size 4 (the "
        "default), not ",
        a.size));
  }
  if (!a.msix_table && a.offset >= kConfigSpaceSize) {
    return UsageError(absl::StrFormat(
        "OFFSET: 0x%x is outside the 4 KiB config space (0x000-0xfff)",
        a.offset));
  }
  if (a.offset % a.size != 0) {
    return UsageError(absl::StrFormat(
        "OFFSET: 0x%x is not aligned to the %d-byte access size", a.offset,
        a.size));
  }
  if (a.write && a.size < 4 && a.value >> (8 * a.size) != 0) {
    return UsageError(absl::StrFormat("VALUE: 0x%x does not fit in %d byte%s",
                                      a.value, a.size, a.size == 1 ? "" : "s"));
  }
  return absl::OkStatus();
}

absl::Status VfCommands::Attach(const AttachOptions& opts) {
  v1::CreateAttachmentRequest req;
  v1::Attachment* a = req.mutable_attachment();
  a->set_vf(opts.vf);
  a->set_borrower(opts.borrower);
  a->set_vm(opts.vm);
  a->set_interrupts(opts.interrupts);
  a->set_dma_size(opts.dma_size);
  a->set_owner(opts.owner);
  req.set_request_id(opts.request_id.empty() ? NewRequestId()
                                             : opts.request_id);
  const std::string what =
      absl::StrCat("attach VF ", opts.vf, " to ", Id("nodes", opts.borrower));
  absl::StatusOr<v1::Attachment> att = client_->CreateAttachment(req);
  if (!att.ok()) {
    absl::Status s = Annotate(att.status(), what);
    if (s.code() == absl::StatusCode::kNotFound) {
      return WithHint(
          s, absl::StrCat(kVfListHint, "; 'fabricctl get nodes' the nodes"));
    }
    if (s.code() == absl::StatusCode::kFailedPrecondition &&
        absl::StrContains(s.message(), "already lent")) {
      return WithHint(s, "'fabricctl get attachments' shows who holds it");
    }
    return AttachmentOpHint(s, "");
  }
  const bool json = options_.format == OutputFormat::kJson;
  if (!json) *out_ << AttachmentSummary(*att) << "\n";
  if (!opts.wait || att->state() == v1::Attachment::READY) {
    if (json) *out_ << ToJson(*att) << "\n";
    return absl::OkStatus();
  }

  const absl::Time deadline = absl::Now() + opts.wait_timeout;
  const std::string name = att->name();
  const std::string id = Id("attachments", name);
  while (att->state() != v1::Attachment::READY) {
    if (att->state() == v1::Attachment::DETACHED) {
      return absl::FailedPreconditionError(absl::StrCat(
          name, " was detached while waiting for it to become READY"));
    }
    if (absl::Now() >= deadline) {
      return WithHint(
          absl::DeadlineExceededError(
              absl::StrCat(name, " exists but is not READY after ",
                           absl::FormatDuration(opts.wait_timeout), ": state ",
                           v1::Attachment::State_Name(att->state()),
                           att->state_reason().empty()
                               ? ""
                               : absl::StrCat(" (", att->state_reason(), ")"))),
          absl::StrCat("the attachment is kept; 'fabricctl describe "
                       "attachment ",
                       id, "' shows it, 'fabricctl vf detach ", id,
                       "' frees the VF"));
    }
    absl::StatusOr<v1::Attachment> polled =
        client_->AwaitAttachment(name, deadline, options_.poll_interval);
    RETURN_IF_ERROR(Annotate(polled.status(), absl::StrCat("wait for ", name)));
    att = std::move(polled);
  }
  if (json) {
    *out_ << ToJson(*att) << "\n";
  } else {
    *out_ << name << " is READY\n";
  }
  return absl::OkStatus();
}

absl::Status VfCommands::Detach(const std::string& id,
                              const std::string& request_id) {
  v1::DeleteAttachmentRequest req;
  req.set_name(Qualify("attachments", id));
  req.set_request_id(request_id.empty() ? NewRequestId() : request_id);
  absl::StatusOr<v1::Attachment> att = client_->DeleteAttachment(req);
  RETURN_IF_ERROR(AttachmentOpHint(
      Annotate(att.status(), absl::StrCat("detach ", req.name())), req.name()));
  Report(*att, absl::StrCat("attachment/", Id("attachments", req.name()),
                            " detached"));
  return absl::OkStatus();
}

absl::Status VfCommands::ShadowConfig(const ShadowAccessOptions& access) {
  RETURN_IF_ERROR(CheckShadowAccess(access));
  v1::AccessShadowRequest req;
  req.set_attachment(Qualify("attachments", access.attachment));
  req.set_space(access.msix_table ? v1::AccessShadowRequest::MSIX_TABLE
                                  : v1::AccessShadowRequest::CONFIG);
  req.set_op(access.write ? v1::AccessShadowRequest::WRITE
                          : v1::AccessShadowRequest::READ);
  req.set_offset(access.offset);
  req.set_size(access.size);
  if (access.write) req.set_value(access.value);
  const std::string where = absl::StrFormat(
      "%s 0x%03x (%s)", access.msix_table ? "msix-table" : "config",
      access.offset, Count(access.size, "byte", "bytes"));
  absl::StatusOr<v1::AccessShadowResponse> resp = client_->AccessShadow(req);
  RETURN_IF_ERROR(AttachmentOpHint(
      Annotate(resp.status(), absl::StrCat(access.write ? "write " : "read ",
                                           where, " of ", req.attachment())),
      req.attachment()));
  if (!access.write) {
    Report(*resp,
           absl::StrCat(where, " = ", HexValue(resp->value(), access.size)));
    return absl::OkStatus();
  }
  Report(*resp,
         absl::StrCat(
             where, " <- ", HexValue(access.value, access.size), ": ",
             ShadowWriteOutcome(resp->outcome()),
             resp->reason().empty() ? "" : absl::StrCat(": ", resp->reason())));
  return absl::OkStatus();
}

absl::Status VfCommands::ShadowSetup(const std::string& id) {
  v1::AccessShadowRequest req;
  req.set_attachment(Qualify("attachments", id));
  req.set_space(v1::AccessShadowRequest::CONFIG);
  req.set_op(v1::AccessShadowRequest::DRIVER_SETUP);
  absl::StatusOr<v1::AccessShadowResponse> resp = client_->AccessShadow(req);
  RETURN_IF_ERROR(AttachmentOpHint(
      Annotate(resp.status(),
               absl::StrCat("set up the shadow device of ", req.attachment())),
      req.attachment()));
  Report(*resp,
         absl::StrCat("shadow device of attachment/",
                      Id("attachments", req.attachment()), " set up: ",
                      Count(resp->value(), "MSI-X vector", "MSI-X vectors"),
                      " at its doorbell"));
  return absl::OkStatus();
}

absl::Status VfCommands::VerifyAttachment(const std::string& id,
                                        uint32_t probe_size) {
  v1::VerifyAttachmentRequest req;
  req.set_name(Qualify("attachments", id));
  req.set_probe_size(probe_size);
  absl::StatusOr<v1::VerifyResult> r = client_->VerifyAttachment(req);
  RETURN_IF_ERROR(AttachmentOpHint(
      Annotate(r.status(), absl::StrCat("verify ", req.name())), req.name()));
  if (r->allocation().empty()) r->set_allocation(req.name());
  if (options_.format == OutputFormat::kJson) {
    *out_ << ToJson(*r) << "\n";
  } else {
    PrintVerify(*r, *out_);
  }
  if (!r->ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(req.name(), " failed verification"));
  }
  return absl::OkStatus();
}

absl::Status VfCommands::RaiseInterrupt(const std::string& id, int vector,
                                      int count) {
  v1::RaiseVfInterruptRequest req;
  req.set_attachment(Qualify("attachments", id));
  req.set_vector(vector);
  req.set_count(count);
  absl::StatusOr<v1::RaiseVfInterruptResponse> r =
      client_->RaiseVfInterrupt(req);
  RETURN_IF_ERROR(AttachmentOpHint(
      Annotate(r.status(), absl::StrCat("raise MSI-X vector ", vector, " of ",
                                        req.attachment())),
      req.attachment()));
  if (options_.format == OutputFormat::kJson) {
    *out_ << ToJson(*r) << "\n";
    return absl::OkStatus();
  }
  *out_ << "raised " << (count == 0 ? 1 : count) << ": "
        << r->delivered_direct() << " direct, " << r->delivered_via_hypervisor()
        << " via hypervisor, " << r->dropped() << " dropped, "
        << r->pending_in_vf() << " pending in VF\n"
        << CountersSummary(r->counters()) << "\n";
  return absl::OkStatus();
}

absl::Status VfCommands::SetVmState(const std::string& node,
                                  const std::string& vm, bool running,
                                  int core) {
  hypervisor::v1::SetVmStateRequest req;
  req.set_node(Qualify("nodes", node));
  req.set_vm(vm);
  req.set_running(running);
  if (running) req.set_core(core);
  const std::string n = Id("nodes", node);
  absl::StatusOr<hypervisor::v1::SetVmStateResponse> r =
      client_->SetVmState(req);
  absl::Status status =
      Annotate(r.status(),
               absl::StrCat(running ? "start" : "stop", " vm ", vm, " on ", n));
  if (status.code() == absl::StatusCode::kNotFound ||
      (status.code() == absl::StatusCode::kFailedPrecondition &&
       absl::StrContains(status.message(), "agent"))) {
    return WithHint(status,
                    "'fabricctl get nodes' lists the nodes and their "
                    "agents");
  }
  RETURN_IF_ERROR(AttachmentOpHint(status, ""));
  Report(*r, running ? absl::StrCat("vm ", vm, " on ", n, " running on core ",
                                    core, " (injected ",
                                    Count(r->injected(), "queued interrupt",
                                          "queued interrupts"),
                                    ")")
                     : absl::StrCat("vm ", vm, " on ", n, " stopped"));
  return absl::OkStatus();
}

}  // namespace fabric::client
