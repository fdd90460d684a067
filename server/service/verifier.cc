#include "server/service/verifier.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <algorithm>
#include <set>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/grpc_status.h"
#include "common/units.h"

namespace fabric::service {
namespace {

constexpr uint32_t kDefaultProbe = 4096;
constexpr auto kAgentDeadline = std::chrono::seconds(5);

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

v1::NodeAgentService::Stub* Verifier::StubFor(const std::string& address) {
  absl::MutexLock l(&mu_);
  auto& stub = stubs_[address];
  if (stub == nullptr) {
    // Credentials are a seam: mTLS replaces these with the agents' certs.
    stub = v1::NodeAgentService::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  }
  return stub.get();
}

absl::StatusOr<v1::VerifyResult> Verifier::Verify(
    const v1::VerifyAllocationRequest& req) {
  auto target = manager_->PrepareVerify(req.name());
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
    v1::HostWriteRequest write;
    write.set_addr(a.borrower_addr() + off);
    write.set_data(pattern);
    v1::AccessResult* result = out.add_probes();
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + kAgentDeadline);
      grpc::Status s =
          StubFor(target->borrower_agent)->HostWrite(&ctx, write, result);
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
    v1::HostReadRequest read;
    read.set_addr(a.target_addr() + off);
    read.set_length(static_cast<uint32_t>(probe));
    v1::HostReadResponse got;
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + kAgentDeadline);
      grpc::Status s =
          StubFor(target->target_agent)->HostRead(&ctx, read, &got);
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

}  // namespace fabric::service
