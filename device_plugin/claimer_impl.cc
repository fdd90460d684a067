#include "device_plugin/claimer_impl.h"

#include <cctype>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/offer_label.h"

namespace fabric::device_plugin {
namespace {

namespace v1 = ::fabric::v1;

constexpr size_t kMaxRequestIdLength = 128;  // the manager's limit
constexpr absl::string_view kEpochLabel = "pciefabric.dev/epoch";

// 64-bit FNV-1a: stable across processes and builds (the request id of a
// claim must not change when the plugin restarts).
uint64_t Fnv1a(absl::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

absl::string_view NodeOf(absl::string_view name) {
  absl::ConsumePrefix(&name, "nodes/");
  return name;
}

std::string VfEnv(absl::string_view device_id) {
  return absl::StrCat("FABRIC_VF_", EnvName(device_id));
}

std::string MemoryEnv(absl::string_view device_id) {
  return absl::StrCat("FABRIC_MEMORY_", EnvName(device_id));
}

std::string MemoryValue(const v1::Allocation& a) {
  return absl::StrCat("0x", absl::Hex(a.borrower_addr()), ":", a.size());
}

// The env of a READY claim.
void FillFromAttachment(const v1::Attachment& a, HeldDevice& held) {
  held.shadow_device = a.shadow_device();
  held.env = {{VfEnv(held.id), a.shadow_device()}};
}

void FillFromAllocation(const v1::Allocation& a, HeldDevice& held) {
  held.env = {{MemoryEnv(held.id), MemoryValue(a)}};
}

// The offers' documented id of a VF: "vf-<lender>-<address, ':' as '-'>".
std::string VfDeviceId(const v1::Attachment& a) {
  std::string address = a.vf_address();
  for (char& c : address) {
    if (c == ':') c = '-';
  }
  return absl::AsciiStrToLower(
      absl::StrCat("vf-", NodeOf(a.lender()), "-", address));
}

}  // namespace

std::string DefaultOwner(absl::string_view node) {
  return absl::StrCat("node/", node);
}

std::string EnvName(absl::string_view name) {
  std::string out(name);
  for (char& c : out) {
    if (c == '.' || c == '/' || c == '-') {
      c = '_';
    } else {
      c = absl::ascii_toupper(static_cast<unsigned char>(c));
    }
  }
  return out;
}

std::string ClaimRequestId(absl::string_view node, absl::string_view device_id,
                           int64_t epoch, int retired) {
  const std::string suffix =
      retired == 0 ? absl::StrCat(epoch) : absl::StrCat(epoch, "/", retired);
  std::string id = absl::StrCat("dp/", node, "/", device_id, "/", suffix);
  if (id.size() <= kMaxRequestIdLength) return id;
  return absl::StrCat("dp/", absl::Hex(Fnv1a(id), absl::kZeroPad16), "/",
                      suffix);
}

FabricClaimer::FabricClaimer(ClaimerOptions options,
                             std::shared_ptr<client::FabricClient> client,
                             std::string owner)
    : options_(std::move(options)),
      client_(std::move(client)),
      owner_(std::move(owner)) {}

absl::StatusOr<HeldDevice> FabricClaimer::Create(const Device& device) {
  const v1::Offer& offer = device.offer;
  HeldDevice held;
  held.id = device.id;
  held.epoch = offer.epoch();
  const std::string request_id = ClaimRequestId(
      options_.node, device.id, offer.epoch(), RetiredClaims(device));
  if (offer.has_vf()) {
    held.device_class = std::string(kVfClass);
    v1::CreateAttachmentRequest req;
    req.mutable_attachment()->set_vf(offer.vf().vf());
    req.mutable_attachment()->set_borrower(options_.node);
    req.mutable_attachment()->set_owner(owner_);
    req.set_request_id(request_id);
    absl::StatusOr<v1::Attachment> a = client_->CreateAttachment(req);
    if (!a.ok()) {
      return absl::Status(a.status().code(),
                          absl::StrCat("claim of device ", device.id, " (",
                                       offer.vf().vf(), "): ",
                                       a.status().message()));
    }
    held.claim = a->name();
    return held;
  }
  if (offer.has_memory()) {
    held.device_class = std::string(kMemoryClass);
    v1::CreateAllocationRequest req;
    v1::Allocation* alloc = req.mutable_allocation();
    alloc->set_borrower(options_.node);
    alloc->set_target(offer.lender());
    alloc->set_size(offer.memory().size());
    alloc->set_owner(owner_);
    (*alloc->mutable_labels())[std::string(kOfferLabel)] = device.id;
    (*alloc->mutable_labels())[std::string(kEpochLabel)] =
        absl::StrCat(offer.epoch());
    req.set_request_id(request_id);
    absl::StatusOr<v1::Allocation> a = client_->CreateAllocation(req);
    if (!a.ok()) {
      return absl::Status(a.status().code(),
                          absl::StrCat("claim of device ", device.id, " (",
                                       offer.memory().size(), " bytes of ",
                                       offer.lender(), "): ",
                                       a.status().message()));
    }
    held.claim = a->name();
    return held;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "devices: ", device.id, " is neither a VF nor a memory offer"));
}

absl::Status FabricClaimer::AwaitReady(HeldDevice& held, absl::Time deadline) {
  auto not_ready = [&](absl::string_view state, absl::string_view reason) {
    return absl::DeadlineExceededError(absl::StrCat(
        "claim ", held.claim, " of device ", held.id, " is ", state,
        reason.empty() ? "" : absl::StrCat(" (", reason, ")"),
        ", not READY within ready_timeout ",
        absl::FormatDuration(options_.ready_timeout)));
  };
  if (held.device_class == kVfClass) {
    absl::StatusOr<v1::Attachment> a =
        client_->AwaitAttachment(held.claim, deadline);
    if (!a.ok()) return a.status();
    if (a->state() != v1::Attachment::READY) {
      return not_ready(v1::Attachment::State_Name(a->state()),
                       a->state_reason());
    }
    FillFromAttachment(*a, held);
    return absl::OkStatus();
  }
  absl::StatusOr<v1::Allocation> a =
      client_->AwaitAllocation(held.claim, deadline);
  if (!a.ok()) return a.status();
  if (a->state() != v1::Allocation::READY) {
    return not_ready(v1::Allocation::State_Name(a->state()),
                     a->state_reason());
  }
  FillFromAllocation(*a, held);
  return absl::OkStatus();
}

absl::Status FabricClaimer::Delete(const HeldDevice& held) {
  const std::string request_id =
      absl::StrCat("dp/", options_.node, "/release/", held.claim);
  absl::Status s;
  if (held.device_class == kVfClass) {
    v1::DeleteAttachmentRequest req;
    req.set_name(held.claim);
    if (request_id.size() <= kMaxRequestIdLength) req.set_request_id(request_id);
    s = client_->DeleteAttachment(req).status();
  } else {
    v1::DeleteAllocationRequest req;
    req.set_name(held.claim);
    if (request_id.size() <= kMaxRequestIdLength) req.set_request_id(request_id);
    s = client_->DeleteAllocation(req).status();
  }
  if (absl::IsNotFound(s)) s = absl::OkStatus();
  if (s.ok()) {
    // The next claim of this device under this epoch needs a request id of
    // its own: the manager would answer the old one with this claim.
    Retired& r = retired_[held.id];
    if (r.epoch != held.epoch) r = Retired{.epoch = held.epoch, .count = 0};
    ++r.count;
  }
  return s;
}

int FabricClaimer::RetiredClaims(const Device& device) const {
  auto it = retired_.find(device.id);
  return it != retired_.end() && it->second.epoch == device.offer.epoch()
             ? it->second.count
             : 0;
}

CdiDevice FabricClaimer::SpecOf(const HeldDevice& held) const {
  CdiDevice spec;
  spec.device_class = held.device_class;
  spec.device_id = held.id;
  spec.claim = held.claim;
  spec.epoch = held.epoch;
  spec.env = held.env;
  return spec;
}

absl::StatusOr<ClaimedDevices> FabricClaimer::Claim(
    absl::string_view resource, absl::Span<const Device> devices) {
  absl::MutexLock ops(&ops_mu_);
  const absl::Time deadline = absl::Now() + options_.ready_timeout;
  // The devices of this call, and which of them this call claimed (the
  // others were held before it and stay held on failure).
  std::vector<HeldDevice> claims;
  std::vector<bool> created;
  auto fail = [&](absl::Status status) {
    ops_mu_.AssertHeld();  // held by this call, around the lambda
    for (size_t i = 0; i < claims.size(); ++i) {
      if (!created[i]) continue;
      // Best effort: the error returned is the claim's, and a delete that
      // fails leaves the claim for the pod-resources GC or Recover.
      (void)Delete(claims[i]);
      (void)RemoveCdiSpec(options_.cdi_dir, claims[i].device_class,
                          claims[i].id);
    }
    return status;
  };
  for (const Device& device : devices) {
    {
      absl::MutexLock l(&mu_);
      auto it = held_.find(device.id);
      if (it != held_.end()) {
        const std::string& named = device.offer.has_vf()
                                       ? device.offer.attachment()
                                       : device.offer.allocation();
        if (it->second.epoch == device.offer.epoch() ||
            (!named.empty() && named == it->second.claim)) {
          claims.push_back(it->second);
          created.push_back(false);
          continue;
        }
      }
    }
    absl::StatusOr<HeldDevice> held = Create(device);
    if (!held.ok()) return fail(held.status());
    claims.push_back(*std::move(held));
    created.push_back(true);
  }
  for (size_t i = 0; i < claims.size(); ++i) {
    if (!created[i] && !claims[i].env.empty()) continue;
    absl::Status s = AwaitReady(claims[i], deadline);
    if (!s.ok()) return fail(s);
  }
  for (const HeldDevice& held : claims) {
    absl::Status s = WriteCdiSpec(options_.cdi_dir, SpecOf(held));
    if (!s.ok()) return fail(s);
  }
  ClaimedDevices out;
  std::vector<std::string> shadows;
  for (const HeldDevice& held : claims) {
    out.cdi_devices.push_back(CdiDeviceName(held.device_class, held.id));
    if (held.device_class == kVfClass) {
      shadows.push_back(held.shadow_device);
    } else {
      for (const auto& [k, v] : held.env) out.envs[k] = v;
    }
  }
  if (!shadows.empty()) {
    out.envs[absl::StrCat("PCIDEVICE_", EnvName(resource))] =
        absl::StrJoin(shadows, ",");
  }
  absl::MutexLock l(&mu_);
  for (HeldDevice& held : claims) held_[held.id] = std::move(held);
  return out;
}

absl::Status FabricClaimer::Release(absl::string_view device_id) {
  absl::MutexLock ops(&ops_mu_);
  HeldDevice held;
  {
    absl::MutexLock l(&mu_);
    auto it = held_.find(device_id);
    if (it == held_.end()) return absl::OkStatus();
    held = it->second;
  }
  absl::Status s = Delete(held);
  if (!s.ok()) return s;
  s = RemoveCdiSpec(options_.cdi_dir, held.device_class, held.id);
  absl::MutexLock l(&mu_);
  held_.erase(held.id);
  return s;
}

absl::Status FabricClaimer::Recover() {
  absl::MutexLock ops(&ops_mu_);
  absl::StatusOr<std::vector<CdiDevice>> specs =
      ListCdiSpecs(options_.cdi_dir);
  if (!specs.ok()) return specs.status();
  std::map<std::string, const CdiDevice*> spec_of_claim;
  for (const CdiDevice& spec : *specs) {
    if (!spec.claim.empty()) spec_of_claim[spec.claim] = &spec;
  }
  std::map<std::string, HeldDevice, std::less<>> held;

  v1::ListAttachmentsRequest attachments;
  attachments.set_node(options_.node);
  attachments.set_owner(owner_);
  absl::StatusOr<std::vector<v1::Attachment>> as =
      client_->ListAttachments(attachments);
  if (!as.ok()) return as.status();
  for (const v1::Attachment& a : *as) {
    if (NodeOf(a.borrower()) != options_.node || a.owner() != owner_ ||
        a.state() == v1::Attachment::DETACHED) {
      continue;
    }
    HeldDevice h;
    h.device_class = std::string(kVfClass);
    h.claim = a.name();
    auto spec = spec_of_claim.find(a.name());
    if (spec != spec_of_claim.end()) {
      h.id = spec->second->device_id;
      h.epoch = spec->second->epoch;
    } else {
      h.id = VfDeviceId(a);
    }
    FillFromAttachment(a, h);
    held[h.id] = std::move(h);
  }

  v1::ListAllocationsRequest allocations;
  allocations.set_node(options_.node);
  allocations.set_owner(owner_);
  absl::StatusOr<std::vector<v1::Allocation>> ls =
      client_->ListAllocations(allocations);
  if (!ls.ok()) return ls.status();
  for (const v1::Allocation& a : *ls) {
    auto device = a.labels().find(std::string(kOfferLabel));
    if (NodeOf(a.borrower()) != options_.node || a.owner() != owner_ ||
        a.state() == v1::Allocation::RELEASED || device == a.labels().end()) {
      continue;
    }
    HeldDevice h;
    h.device_class = std::string(kMemoryClass);
    h.claim = a.name();
    h.id = device->second;
    auto epoch = a.labels().find(std::string(kEpochLabel));
    if (epoch != a.labels().end()) (void)absl::SimpleAtoi(epoch->second, &h.epoch);
    FillFromAllocation(a, h);
    held[h.id] = std::move(h);
  }

  for (const auto& [id, h] : held) {
    absl::Status s = WriteCdiSpec(options_.cdi_dir, SpecOf(h));
    if (!s.ok()) return s;
  }
  for (const CdiDevice& spec : *specs) {
    auto it = held.find(spec.device_id);
    if (it != held.end() && it->second.device_class == spec.device_class) {
      continue;
    }
    absl::Status s =
        RemoveCdiSpec(options_.cdi_dir, spec.device_class, spec.device_id);
    if (!s.ok()) return s;
  }
  absl::MutexLock l(&mu_);
  held_ = std::move(held);
  return absl::OkStatus();
}

std::vector<HeldDevice> FabricClaimer::HeldDevices() const {
  absl::MutexLock l(&mu_);
  std::vector<HeldDevice> out;
  for (const auto& [id, h] : held_) out.push_back(h);
  return out;
}

std::vector<std::string> FabricClaimer::HeldDeviceIds() const {
  absl::MutexLock l(&mu_);
  std::vector<std::string> out;
  for (const auto& [id, h] : held_) out.push_back(id);
  return out;
}

}  // namespace fabric::device_plugin
