// Fuzzes the node agent's VF-lending request handling (agent/vf_lending.h)
// in-process: the input is a serialized AgentSession (agent_fuzz.proto), the
// VfAssignments of one agent and a sequence of NodeAgentService requests run
// on its VfLending: VfAccess (lender side: CONFIG_READ, CONFIG_WRITE,
// CONFIG_SNAPSHOT, MSIX_ENTRY, DMA, RAISE_MSIX, its access control by
// borrower, offsets, sizes, vectors, addresses), AccessShadow,
// ShadowInterrupt and SetVmState (borrower side), SetAssignments between
// requests, and fault injection on the simulated functions.
//
// The agent is the lender "n1" of the simulator's one_pf hardware (a PF
// 0000:3b:00.0 with 8 VFs, agent/hw/sim/examples/one_pf.json) with a
// simulated bridge whose host memory is [4 GiB, +16 MiB), so that DMA and
// MSI-X messages inside it land. One temporary sim dir per process; every
// input starts from the power-on devices (the pristine devices.json and
// MSI-X BAR files are written back) and a fresh VfLending.
//
// Not covered: the borrower's shadow devices. VfLending builds them by
// calling the lender's agent over gRPC (a channel to lender_agent, with no
// seam to inject an in-process lender), so the fuzzer clears lender_agent:
// borrowed attachments stay without a shadow (UNAVAILABLE), and
// AccessShadow / ShadowInterrupt reach only their lookups. The shadow's
// logic itself, vf::ConfigVirtualizer, is config_virtualizer_fuzzer's.
// FillStatus and Reconcile are not NodeAgentService handlers (Reconcile
// runs on VfLending's own thread, finding no lender address).
//
// Callers: NodeAgentService::VfAccess acts for the borrower the caller's
// certificate names (agent::ResolveBorrower), so each VfAccess step is made
// by a caller built as security::CallerOf reads an admitted call: by turns
// the node its request names, the manager, node/intruder, or a user (whom
// the agent's policy refuses before any handler; ResolveBorrower refuses it
// again). The request then carries the borrower ResolveBorrower gave.
//
// Properties, besides no crash and no sanitizer finding (leaks included):
//  - ResolveBorrower: a node naming another node, and any user, are
//    PERMISSION_DENIED (and nothing is called); a node acts as itself, the
//    manager for the borrower it names.
//  - Every error has a canonical code (INVALID_ARGUMENT, NOT_FOUND,
//    PERMISSION_DENIED, FAILED_PRECONDITION, OUT_OF_RANGE, UNAVAILABLE,
//    RESOURCE_EXHAUSTED; never INTERNAL, UNKNOWN, ...) and a message.
//  - A refused VfAccess leaves the devices unchanged: the devices.json state
//    (every function's config space), the target function's config space
//    (SimSriovHost::ConfigSpace) and its MSI-X BAR.
//  - A VfAccess for a VF that is not lent to its borrower (by any
//    assignment) is PERMISSION_DENIED or NOT_FOUND, and changes nothing.
//  - CONFIG_WRITE, whatever it returns, changes no config byte of the
//    target outside the lender's allow-list (vf_lending.cc: Command and
//    Status, MSI-X Message Control, PCIe Device Control, here at the
//    simulator's capability offsets); a successful one lies inside one of
//    them.
//  - CONFIG_READ succeeds only for 1, 2 or 4 aligned bytes below 4096 and
//    returns those bytes; CONFIG_SNAPSHOT returns the config space; reads
//    change nothing.
//  - MSIX_ENTRY succeeds only for a vector of the table, and unmasked only
//    with an address inside the VF's msix window; the entry then holds it.
//    DMA succeeds only inside the dma window. RAISE_MSIX succeeds only for a
//    vector of the table, and a delivered message goes into the msix window
//    of the VF's current borrower.
//  - SetAssignments quiesces every VF whose lending ended: bus mastering
//    and MSI-X Enable clear (unless the function is dead).
//
// Found by it and fixed (agent/vf_lending.cc):
//  - quiescing a VF whose lending ended cleared Bus Master and MSI-X Enable
//    but left its MSI-X table as the last borrower programmed it, so the
//    next borrower only had to turn them back on for the VF's interrupts to
//    reach the previous borrower's doorbell; Quiesce now masks and clears
//    every vector first (corpus/agent_rpc_fuzzer/regress-relend-stale-msix).
//  - MSIX_ENTRY took any vector, so a borrower could write 16 bytes
//    anywhere in the VF's MSI-X BAR past the table (PBA, device memory),
//    bypassing the msix window check with masked set; the simulator's
//    WriteMsixEntry now refuses a vector outside the table with OUT_OF_RANGE
//    (corpus/agent_rpc_fuzzer/regress-msix-entry-vector-past-table).
//  - CONFIG_READ cut the offset to 16 bits (offset 0x10004 read 0x04), and
//    CONFIG_WRITE's allow-list check overflowed an int for an offset near
//    2^31 (UBSan); VfAccess now refuses config accesses at or past 4096 or
//    of more than 4 bytes with INVALID_ARGUMENT
//    (corpus/agent_rpc_fuzzer/regress-config-offset-past-4096).
//  - The borrower side: AccessShadow is NOT_FOUND for an attachment not
//    borrowed, else UNAVAILABLE (no shadow); ShadowInterrupt NOT_FOUND;
//    SetVmState INVALID_ARGUMENT without a vm; none touches the devices.

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/types/span.h"
#include "agent/discovery/pci_address.h"
#include "agent/hw/bridge_hardware.h"
#include "agent/hw/sim/sim_bridge.h"
#include "agent/hw/sim/sim_hardware.h"
#include "agent/hw/sim/sim_sriov_functions.h"
#include "agent/hw/sim/sim_world.h"
#include "agent/hw/sim/sriov_device.h"
#include "agent/hw/testing/temp_dir.h"
#include "agent/node_agent_service.h"
#include "agent/vf_lending.h"
#include "common/security/grpc_auth.h"
#include "common/security/identity.h"
#include "agent_fuzz.pb.h"
#include "fabric/agentproto/v1/agent_service.pb.h"
#include "fabric/agentproto/v1/node_agent_service.pb.h"
#include "fabric/v1/resources.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "tests/fuzz/fuzz_check.h"

namespace fabric::fuzz {
namespace {

namespace discovery = agent::discovery;
using agent::hw::SimFunction;
using agent::hw::SimSriovHost;
using discovery::PciAddress;

constexpr int kMaxSteps = 32;
constexpr int kMaxAssignments = 8;
constexpr char kNode[] = "n1";
// agent/hw/sim/examples/one_pf.json.
constexpr char kHardware[] = R"json({
  "bridgeProfile": "sim",
  "pfs": [
    {"address": "0000:3b:00.0", "vendorId": 32902, "deviceId": 5490,
     "vfDeviceId": 5452, "totalVfs": 8, "initialVfs": 8, "numVfs": 8,
     "vfOffset": 16, "vfStride": 1,
     "barSizes": ["33554432", "0", "0", "32768"],
     "vfBarSizes": ["65536", "0", "0", "16384"],
     "msixVectors": 4, "msixBar": 3}
  ]
})json";
constexpr uint64_t kMemoryBase = uint64_t{1} << 32;
constexpr uint64_t kMemorySize = uint64_t{16} << 20;

constexpr uint16_t kCommand = 0x04;
constexpr uint16_t kMsixCtrl = agent::hw::kSimMsixCapOffset + 2;
// The config bytes a borrower may write, [begin, end): vf_lending.cc's
// allow-list at the simulator's capability offsets.
struct Range {
  uint64_t begin, end;
};
constexpr Range kWritable[] = {
    {0x04, 0x08},  // Command, Status
    {agent::hw::kSimMsixCapOffset + 2u,
     agent::hw::kSimMsixCapOffset + 4u},  // MSI-X Message Control
    {agent::hw::kSimPcieCapOffset + 8u,
     agent::hw::kSimPcieCapOffset + 10u},  // PCIe Device Control
};

bool Writable(uint64_t offset) {
  for (const Range& r : kWritable) {
    if (offset >= r.begin && offset < r.end) return true;
  }
  return false;
}

// [addr, addr + len) inside [base, base + size), without overflow.
bool Inside(uint64_t addr, uint64_t len, uint64_t base, uint64_t size) {
  using U = unsigned __int128;
  return addr >= base && U{addr} + len <= U{base} + size;
}

// AGENT_FUZZ_TRACE=1 prints each call and its outcome.
void Trace(absl::string_view what, const absl::Status& s) {
  static const CallTracer tracer("AGENT_FUZZ_TRACE");
  tracer(what, s);
}

// An error a client can act on: a canonical code, and a message saying why.
void CheckError(absl::string_view what, const absl::Status& s,
                absl::string_view request) {
  CheckActionableError(what, s, request,
                       {absl::StatusCode::kInvalidArgument,
                        absl::StatusCode::kNotFound,
                        absl::StatusCode::kPermissionDenied,
                        absl::StatusCode::kFailedPrecondition,
                        absl::StatusCode::kOutOfRange,
                        absl::StatusCode::kUnavailable,
                        absl::StatusCode::kResourceExhausted});
}

std::string ReadFile(const std::string& path) {
  std::string out;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return out;
  char buf[1 << 14];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

void WriteFile(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".fuzz-tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  FUZZ_CHECK(f != nullptr, "cannot create ", tmp);
  FUZZ_CHECK(std::fwrite(content.data(), 1, content.size(), f) ==
                 content.size(),
             "cannot write ", tmp);
  std::fclose(f);
  FUZZ_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename ",
             tmp);
}

// The simulated host, made once per process; Reset() powers it on again.
class World {
 public:
  static World& Get() {
    static World world;
    return world;
  }

  SimSriovHost* host() { return host_.get(); }
  const std::string& dir() const { return dir_.path(); }
  const std::vector<SimFunction>& functions() const { return functions_; }
  const agent::hw::SimHardware& hardware() const { return hw_; }
  uint32_t msix_vectors() const { return hw_.pfs[0].msix_vectors; }

  // devices.json as it is now.
  std::string State() const { return ReadFile(state_path_); }
  // The MSI-X BAR of `bdf` as it is now ("" if it has none).
  std::string MsixBar(const PciAddress& bdf) const {
    return ReadFile(MsixBarPath(bdf));
  }

  void Reset() {
    WriteFile(state_path_, pristine_state_);
    for (const auto& [path, content] : pristine_bars_) WriteFile(path, content);
  }

 private:
  World() {
    absl::StatusOr<agent::hw::SimHardware> hw =
        agent::hw::ParseSimHardware(kHardware);
    FUZZ_CHECK(hw.ok(), hw.status().ToString());
    hw_ = *std::move(hw);
    agent::hw::HardwareLimits limits;
    limits.profile = "sim";
    limits.window_count = 8;
    limits.lut_entries = 32;
    limits.lut_entry_size = 1 << 20;
    limits.xlat_align = 4096;
    limits.size_granularity = 4096;
    limits.min_window_size = 4096;
    limits.max_window_size = 1 << 30;
    limits.mapping_entries = 64;
    limits.doorbells = 32;
    limits.scratchpads = 16;
    auto bridge = agent::hw::SimBridge::Open(dir(), kNode, limits);
    FUZZ_CHECK(bridge.ok(), bridge.status().ToString());
    agent::hw::HostMemory memory;
    memory.base = kMemoryBase;
    memory.size = kMemorySize;
    absl::Status mem = (*bridge)->SetHostMemory(memory);
    FUZZ_CHECK(mem.ok(), mem.ToString());
    auto host = SimSriovHost::Open(dir(), kNode, hw_);
    FUZZ_CHECK(host.ok(), host.status().ToString());
    host_ = *std::move(host);
    auto fns = host_->Functions();
    FUZZ_CHECK(fns.ok() && !fns->empty(), fns.status().ToString());
    functions_ = *std::move(fns);
    state_path_ = absl::StrCat(dir(), "/", kNode, "/devices.json");
    pristine_state_ = State();
    FUZZ_CHECK(!pristine_state_.empty(), "no ", state_path_);
    for (const SimFunction& f : functions_) {
      const std::string path = MsixBarPath(f.address);
      pristine_bars_[path] = ReadFile(path);
      FUZZ_CHECK(!pristine_bars_[path].empty(), "no ", path);
    }
  }

  std::string MsixBarPath(const PciAddress& bdf) const {
    return absl::StrCat(dir(), "/", kNode, "/devices/", bdf.ToString(),
                        ".bar", hw_.pfs[0].msix_bar);
  }

  agent::hw::testing::TempDir dir_;
  agent::hw::SimHardware hw_;
  std::unique_ptr<SimSriovHost> host_;
  std::vector<SimFunction> functions_;
  std::string state_path_;
  std::string pristine_state_;
  std::map<std::string, std::string> pristine_bars_;
};

uint32_t Le(absl::Span<const uint8_t> b, uint64_t at, int size) {
  uint32_t v = 0;
  for (int i = 0; i < size; ++i) v |= static_cast<uint32_t>(b[at + i]) << (8 * i);
  return v;
}

const v1::AttachmentWindow* Window(const agentproto::v1::VfAssignment& a,
                                   absl::string_view role) {
  for (const auto& w : a.windows()) {
    if (w.role() == role) return &w;
  }
  return nullptr;
}

class Session {
 public:
  explicit Session(World& w) : w_(w) {
    local_ = std::make_unique<agent::hw::SimSriovFunctions>(w.host());
    const std::string dir = w.dir();
    lending_ = std::make_unique<agent::VfLending>(
        kNode, local_.get(), [dir](uint64_t addr, absl::Span<uint8_t> out) {
          return agent::hw::SimWorld::ReadMemory(dir, kNode, addr, out);
        });
  }

  void Run(const AgentSession& session) {
    Assign(session.assignments());
    int steps = 0;
    for (const AgentStep& step : session.steps()) {
      if (++steps > kMaxSteps) break;
      step_ = steps;
      RunStep(step);
    }
  }

 private:
  // "#k" -> the k-th simulated function.
  std::string Address(const std::string& a) const {
    if (!absl::StartsWith(a, "#")) return a;
    uint32_t k = 0;
    if (!absl::SimpleAtoi(a.substr(1), &k)) return a;
    const auto& fns = w_.functions();
    return fns[k % fns.size()].address.ToString();
  }

  void Assign(
      const google::protobuf::RepeatedPtrField<agentproto::v1::VfAssignment>&
          in) {
    std::vector<agentproto::v1::VfAssignment> as;
    std::map<std::string, agentproto::v1::VfAssignment> lent;
    std::map<std::string, agentproto::v1::VfAssignment> borrowed;
    for (agentproto::v1::VfAssignment a : in) {
      if (static_cast<int>(as.size()) >= kMaxAssignments) break;
      a.set_vf_address(Address(a.vf_address()));
      // No lender address: building a shadow fails at once (UNAVAILABLE)
      // instead of dialing a lender's agent over gRPC.
      a.clear_lender_agent();
      (a.role() == agentproto::v1::VfAssignment::LENDER
           ? lent
           : borrowed)[a.attachment()] = a;
      as.push_back(std::move(a));
    }
    Trace("SetAssignments", absl::OkStatus());
    lending_->SetAssignments(as);
    // Every lending that ended left its VF quiesced.
    for (const auto& [name, a] : lent_) {
      if (lent.count(name)) continue;
      auto bdf = discovery::ParsePciAddress(a.vf_address());
      if (!bdf.ok()) continue;
      auto health = w_.host()->Health(*bdf);
      if (!health.ok() || !health->config_readable) continue;
      auto config = w_.host()->ConfigSpace(*bdf);
      FUZZ_CHECK(config.ok(), config.status().ToString());
      const uint32_t cmd = Le(*config, kCommand, 2);
      const uint32_t msix = Le(*config, kMsixCtrl, 2);
      FUZZ_CHECK(!(cmd & 0x4) && !(msix & 0x8000), "the lending ", name,
                 " of ", a.vf_address(), " ended, but its Command is ", cmd,
                 " and MSI-X Message Control ", msix);
    }
    lent_ = std::move(lent);
    borrowed_ = std::move(borrowed);
  }

  // The lendings of req's VF to req's borrower (as VfAccess matches them).
  std::vector<const agentproto::v1::VfAssignment*> LentTo(
      const agentproto::v1::VfAccessRequest& req) const {
    std::vector<const agentproto::v1::VfAssignment*> out;
    for (const auto& [name, a] : lent_) {
      if (a.vf_address() != req.vf_address()) continue;
      if (a.borrower() == req.borrower() ||
          a.borrower() == absl::StrCat("nodes/", req.borrower())) {
        out.push_back(&a);
      }
    }
    return out;
  }

  static bool InWindow(
      const std::vector<const agentproto::v1::VfAssignment*>& as,
      absl::string_view role, uint64_t addr, uint64_t len) {
    for (const agentproto::v1::VfAssignment* a : as) {
      const v1::AttachmentWindow* w = Window(*a, role);
      if (w != nullptr && Inside(addr, len, w->local_addr(), w->size())) {
        return true;
      }
    }
    return false;
  }

  // Who makes the VfAccess of this step, admitted as the agent's
  // AuthProcessor admits it (the fields CallerOf fills).
  security::Caller VfCaller(absl::string_view borrower) const {
    security::Caller c;
    c.authenticated = true;
    c.scope = internal::SELF_NODE;
    c.role = "node";
    c.identity.kind = security::PrincipalKind::kNode;
    const absl::string_view named = absl::StripPrefix(borrower, "nodes/");
    switch (step_ % 4) {
      case 0:
      case 1:
        c.identity.name =
            security::ValidatePrincipalName("node", named).ok()
                ? std::string(named)
                : "intruder";
        break;
      case 2:
        c.identity = {security::PrincipalKind::kManager, "m1", ""};
        c.role = "manager";
        c.scope = internal::ANY;
        break;
      default:
        if ((step_ / 4) % 2 == 0) {
          c.identity.name = "intruder";
        } else {
          c.identity = {security::PrincipalKind::kUser, "alice", "scheduler"};
          c.role = "scheduler";
          c.scope = internal::ANY;
        }
    }
    return c;
  }

  void Access(agentproto::v1::VfAccessRequest req) {
    req.set_vf_address(Address(req.vf_address()));
    const security::Caller caller = VfCaller(req.borrower());
    const absl::string_view named =
        absl::StripPrefix(req.borrower(), "nodes/");
    absl::StatusOr<std::string> borrower =
        agent::ResolveBorrower(caller, req.borrower());
    const bool refused =
        caller.identity.kind == security::PrincipalKind::kUser ||
        (caller.identity.kind == security::PrincipalKind::kNode &&
         !named.empty() && named != caller.identity.name);
    Trace("ResolveBorrower", borrower.status());
    if (refused) {
      FUZZ_CHECK(absl::IsPermissionDenied(borrower.status()),
                 caller.identity.ToString(), " acting for borrower \"",
                 req.borrower(), "\" got ", borrower.status().ToString());
      return;  // the handler stops here
    }
    FUZZ_CHECK(borrower.ok(), caller.identity.ToString(), " for \"",
               req.borrower(), "\": ", borrower.status().ToString());
    FUZZ_CHECK(*borrower == (caller.identity.kind ==
                                     security::PrincipalKind::kManager
                                 ? req.borrower()
                                 : caller.identity.name),
               caller.identity.ToString(), " for \"", req.borrower(),
               "\" acts for \"", *borrower, "\"");
    req.set_borrower(*borrower);
    const std::string what = absl::StrCat(
        "VfAccess ", agentproto::v1::VfAccessRequest::Op_Name(req.op()));
    SimSriovHost* host = w_.host();
    auto bdf = discovery::ParsePciAddress(req.vf_address());
    std::vector<uint8_t> config_before;
    std::string msix_before;
    bool present = false;
    if (bdf.ok()) {
      auto c = host->ConfigSpace(*bdf);
      present = c.ok();
      if (present) {
        config_before = *std::move(c);
        msix_before = w_.MsixBar(*bdf);
      }
    }
    const std::string state_before = w_.State();

    absl::StatusOr<agentproto::v1::VfAccessResponse> r =
        lending_->VfAccess(req);
    Trace(what, r.status());
    CheckError(what, r.status(), req.ShortDebugString());

    std::vector<uint8_t> config_after;
    std::string msix_after;
    if (present) {
      auto c = host->ConfigSpace(*bdf);
      FUZZ_CHECK(c.ok(), "ConfigSpace of ", req.vf_address(), " after ", what,
                 ": ", c.status().ToString());
      config_after = *std::move(c);
      msix_after = w_.MsixBar(*bdf);
    }
    const std::vector<const agentproto::v1::VfAssignment*> lent = LentTo(req);
    if (lent.empty()) {
      FUZZ_CHECK(absl::IsPermissionDenied(r.status()) ||
                     absl::IsNotFound(r.status()),
                 what, " by a borrower the VF is not lent to returned ",
                 r.status().ToString(), "\nrequest: ", req.ShortDebugString());
    }
    if (req.op() == agentproto::v1::VfAccessRequest::CONFIG_WRITE && present) {
      for (uint64_t i = 0; i < config_before.size(); ++i) {
        FUZZ_CHECK(Writable(i) || config_before[i] == config_after[i], what,
                   " (", r.status().ToString(), ") changed protected byte ",
                   i, " of ", req.vf_address(), " from ",
                   config_before[i], " to ", config_after[i],
                   "\nrequest: ", req.ShortDebugString());
      }
    }
    if (!r.ok()) {
      FUZZ_CHECK(w_.State() == state_before, what, " (", r.status().ToString(),
                 ") changed the devices' state\nrequest: ",
                 req.ShortDebugString());
      FUZZ_CHECK(config_after == config_before && msix_after == msix_before,
                 what, " (", r.status().ToString(), ") changed ",
                 req.vf_address(), "\nrequest: ", req.ShortDebugString());
      return;
    }
    FUZZ_CHECK(present, what, " succeeded on ", req.vf_address(),
               ", which is no simulated function");
    const uint64_t offset = req.offset();
    const uint64_t size = req.size();
    const int64_t vector = req.vector();
    switch (req.op()) {
      case agentproto::v1::VfAccessRequest::CONFIG_READ:
        FUZZ_CHECK((size == 1 || size == 2 || size == 4) &&
                       offset % size == 0 && offset + size <= 4096,
                   what, " of ", size, " bytes at ", offset, " succeeded");
        FUZZ_CHECK(r->value() == Le(config_before, offset, size), what,
                   " at ", offset, " returned ", r->value());
        break;
      case agentproto::v1::VfAccessRequest::CONFIG_WRITE: {
        bool inside = false;
        for (const Range& k : kWritable) {
          inside |= offset >= k.begin && offset + size <= k.end;
        }
        FUZZ_CHECK(inside && size > 0, what, " of ", size, " bytes at ", offset,
                   " succeeded outside the allow-list");
        break;
      }
      case agentproto::v1::VfAccessRequest::CONFIG_SNAPSHOT:
        FUZZ_CHECK(r->config() == std::string(config_before.begin(),
                                              config_before.end()),
                   what, " returned ", r->config().size(),
                   " bytes that are not the config space");
        break;
      case agentproto::v1::VfAccessRequest::MSIX_ENTRY: {
        FUZZ_CHECK(vector >= 0 && vector < w_.msix_vectors(), what,
                   " wrote vector ", vector, ", outside the table of ",
                   w_.msix_vectors());
        FUZZ_CHECK(req.masked() || InWindow(lent, "msix", req.addr(), 4), what,
                   " pointed an unmasked vector at ", req.addr(),
                   ", outside the msix window\nrequest: ",
                   req.ShortDebugString());
        auto health = host->Health(*bdf);
        if (health.ok() && health->config_readable) {
          const auto* e =
              reinterpret_cast<const uint8_t*>(msix_after.data()) + 16 * vector;
          FUZZ_CHECK(msix_after.size() >= 16 * static_cast<uint64_t>(vector + 1) &&
                         Le({e, 16}, 0, 4) == static_cast<uint32_t>(req.addr()) &&
                         Le({e, 16}, 4, 4) == req.addr() >> 32 &&
                         Le({e, 16}, 8, 4) == req.msi_data() &&
                         (e[12] & 1) == (req.masked() ? 1 : 0),
                     what, " did not program vector ", vector);
        }
        break;
      }
      case agentproto::v1::VfAccessRequest::DMA:
        FUZZ_CHECK(InWindow(lent, "dma", req.addr(), req.data().size()), what,
                   " of ", req.data().size(), " bytes at ", req.addr(),
                   " succeeded outside the dma window");
        break;
      case agentproto::v1::VfAccessRequest::RAISE_MSIX:
        FUZZ_CHECK(vector >= 0 && vector < w_.msix_vectors(), what,
                   " raised vector ", vector);
        if (r->outcome() == agentproto::v1::VfAccessResponse::DELIVERED) {
          FUZZ_CHECK(InWindow(lent, "msix", r->msi_addr(), 4), what, " delivered a message at ", r->msi_addr(),
                     ", outside the msix window of the VF's borrower");
        } else {
          FUZZ_CHECK(
              r->outcome() == agentproto::v1::VfAccessResponse::PENDING, what,
              " outcome ",
              agentproto::v1::VfAccessResponse::Outcome_Name(r->outcome()));
        }
        break;
      default:
        FUZZ_CHECK(false, what, " succeeded");
    }
    if (req.op() == agentproto::v1::VfAccessRequest::CONFIG_READ ||
        req.op() == agentproto::v1::VfAccessRequest::CONFIG_SNAPSHOT) {
      FUZZ_CHECK(w_.State() == state_before && config_after == config_before &&
                     msix_after == msix_before,
                 what, " changed the devices");
    }
  }

  // A borrower-side call: it must not touch the local devices.
  void Borrower(absl::string_view what, const google::protobuf::Message& req,
                const absl::Status& s, absl::StatusCode want,
                const std::string& state_before) {
    Trace(what, s);
    CheckError(what, s, req.ShortDebugString());
    FUZZ_CHECK(s.code() == want, what, " returned ", s.ToString(),
               ", expected ", absl::StatusCodeToString(want),
               "\nrequest: ", req.ShortDebugString());
    FUZZ_CHECK(w_.State() == state_before, what, " changed the devices");
  }

  void RunStep(const AgentStep& step) {
    switch (step.step_case()) {
      case AgentStep::kSetAssignments:
        Assign(step.set_assignments().assignments());
        break;
      case AgentStep::kVfAccess:
        Access(step.vf_access());
        break;
      case AgentStep::kAccessShadow: {
        const auto& req = step.access_shadow();
        const std::string before = w_.State();
        auto r = lending_->AccessShadow(req);
        Borrower("AccessShadow", req, r.status(),
                 borrowed_.count(req.attachment())
                     ? absl::StatusCode::kUnavailable
                     : absl::StatusCode::kNotFound,
                 before);
        break;
      }
      case AgentStep::kShadowInterrupt: {
        const auto& req = step.shadow_interrupt();
        const std::string before = w_.State();
        auto r = lending_->ShadowInterrupt(req);
        Borrower("ShadowInterrupt", req, r.status(),
                 absl::StatusCode::kNotFound, before);
        break;
      }
      case AgentStep::kSetVmState: {
        const auto& req = step.set_vm_state();
        const std::string before = w_.State();
        auto r = lending_->SetVmState(req);
        Trace("SetVmState", r.status());
        CheckError("SetVmState", r.status(), req.ShortDebugString());
        if (req.vm().empty()) {
          FUZZ_CHECK(absl::IsInvalidArgument(r.status()),
                     "SetVmState without a vm returned ",
                     r.status().ToString());
        }
        FUZZ_CHECK(w_.State() == before, "SetVmState changed the devices");
        break;
      }
      case AgentStep::kFault: {
        const FunctionFault& f = step.fault();
        auto bdf = discovery::ParsePciAddress(Address(f.vf_address()));
        if (!bdf.ok()) break;
        (void)w_.host()->SetFunctionFailed(*bdf, f.failed());
        for (const SimFunction& fn : w_.functions()) {
          if (fn.address == *bdf) (void)w_.host()->SetPfLinkUp(fn.pf, !f.link_down());
        }
        break;
      }
      case AgentStep::STEP_NOT_SET:
        break;
    }
  }

  World& w_;
  std::unique_ptr<agent::hw::SimSriovFunctions> local_;
  std::unique_ptr<agent::VfLending> lending_;
  int step_ = 0;  // 1-based, of the step running
  // The session's assignments by attachment, as VfLending splits them.
  std::map<std::string, agentproto::v1::VfAssignment> lent_;
  std::map<std::string, agentproto::v1::VfAssignment> borrowed_;
};

}  // namespace
}  // namespace fabric::fuzz

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  // Mutated inputs are mostly not valid protobuf (e.g. strings that are
  // not UTF-8); the parser's complaints are expected, not news.
  google::protobuf::SetLogHandler(nullptr);
  fabric::fuzz::World::Get();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fabric::fuzz::AgentSession session;
  if (!session.ParseFromArray(data, static_cast<int>(size))) return 0;
  fabric::fuzz::World& world = fabric::fuzz::World::Get();
  world.Reset();
  fabric::fuzz::Session s(world);
  s.Run(session);
  return 0;
}
