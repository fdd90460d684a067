// The one lifecycle that allocations and attachments share in the storm:
// both are leases, created with a request id, deleted (acknowledged only
// when the answer shows the lease gone), listed page by page, settled once
// READY or DEGRADED, and proven by a Verify RPC once READY.
//
// LeaseOps<Kind> implements ResourceOps over that lifecycle; Kind says what
// differs between the leases:
//
//   struct AllocationKind {
//     // Record (v1::Allocation), the RPCs' messages and stub methods, their
//     // names (for errors), the collection and the list's items.
//     FABRIC_CHAOS_LEASE_RPCS(Allocation, allocations)
//     // The state of a lease that is gone.
//     static constexpr v1::Allocation::State kGone = v1::Allocation::RELEASED;
//     // What the lease was created as, comparable to NewCreate::spec.
//     static std::string SpecOf(const Record& r);
//   };
//
// A subclass adds what the storm asks of a kind beyond the lifecycle
// (RandomCreate) and, when the proof needs a step first, BeforeVerify.
#ifndef FABRIC_TESTS_CHAOS_LEASE_OPS_H_
#define FABRIC_TESTS_CHAOS_LEASE_OPS_H_

#include <grpcpp/client_context.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "fabric/v1/diagnostics.pb.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "tests/chaos/ops.h"

// The members of a lease Kind for resource v1::Name, whose RPCs follow the
// API's pattern (CreateName, DeleteName, ListNames, VerifyName) and whose
// list response holds them in field `items`, also the collection's name.
#define FABRIC_CHAOS_LEASE_RPCS(Name, items)                                 \
  using Record = v1::Name;                                                   \
  using CreateRequest = v1::Create##Name##Request;                           \
  using DeleteRequest = v1::Delete##Name##Request;                           \
  using ListRequest = v1::List##Name##sRequest;                              \
  using ListResponse = v1::List##Name##sResponse;                            \
  using VerifyRequest = v1::Verify##Name##Request;                           \
  static constexpr char kCollection[] = #items;                              \
  static constexpr char kCreate[] = "Create" #Name;                          \
  static constexpr char kDelete[] = "Delete" #Name;                          \
  static constexpr char kList[] = "List" #Name "s";                          \
  static constexpr char kVerify[] = "Verify" #Name;                          \
  static constexpr auto kCreateRpc = &v1::FabricService::Stub::Create##Name; \
  static constexpr auto kDeleteRpc = &v1::FabricService::Stub::Delete##Name; \
  static constexpr auto kListRpc = &v1::FabricService::Stub::List##Name##s;  \
  static constexpr auto kVerifyRpc = &v1::FabricService::Stub::Verify##Name; \
  static const google::protobuf::RepeatedPtrField<Record>& Items(            \
      const ListResponse& r) {                                               \
    return r.items();                                                        \
  }

namespace fabric::chaos {

template <typename Kind>
class LeaseOps : public ResourceOps {
 public:
  using Record = typename Kind::Record;

  std::string kind() const override { return Kind::kCollection; }

  Attempt Create(v1::FabricService::Stub* stub, const std::string& request,
                 absl::Duration timeout) override {
    typename Kind::CreateRequest req;
    if (!req.ParseFromString(request)) {
      return {Outcome::kRejected, grpc::StatusCode::INVALID_ARGUMENT, "",
              absl::StrCat("unparsable ", Kind::kCreate, "Request")};
    }
    grpc::ClientContext ctx;
    SetDeadline(&ctx, timeout);
    Record out;
    grpc::Status s = (stub->*Kind::kCreateRpc)(&ctx, req, &out);
    return ToAttempt(s, out.name());
  }

  Attempt Delete(v1::FabricService::Stub* stub, const std::string& name,
                 const std::string& request_id,
                 absl::Duration timeout) override {
    typename Kind::DeleteRequest req;
    req.set_name(name);
    req.set_request_id(request_id);
    grpc::ClientContext ctx;
    SetDeadline(&ctx, timeout);
    Record out;
    grpc::Status s = (stub->*Kind::kDeleteRpc)(&ctx, req, &out);
    Attempt attempt = ToAttempt(s, name);
    if (s.ok() && out.state() != Kind::kGone) {
      // An acknowledged delete that did not end the lease is a refusal in
      // disguise.
      attempt.outcome = Outcome::kRejected;
      attempt.error = absl::StrCat(Kind::kDelete, " answered state ",
                                   Record::State_Name(out.state()));
    }
    return attempt;
  }

  absl::StatusOr<std::vector<ObservedResource>> List(
      v1::FabricService::Stub* stub) override {
    absl::StatusOr<std::vector<Record>> all = ListAll(stub);
    if (!all.ok()) return all.status();
    std::vector<ObservedResource> out;
    for (const Record& r : *all) {
      out.push_back(
          {kind(), r.name(), Kind::SpecOf(r), Record::State_Name(r.state())});
    }
    return out;
  }

  bool Settled(const ObservedResource& r) const override {
    return r.state == "READY" || r.state == "DEGRADED";
  }

  absl::Status Verify(v1::FabricService::Stub* stub,
                      const ObservedResource& r) override {
    if (r.state != "READY") {
      return absl::FailedPreconditionError(
          absl::StrCat(r.name, " is ", r.state, ", not READY"));
    }
    if (absl::Status ready = BeforeVerify(stub, r); !ready.ok()) return ready;
    typename Kind::VerifyRequest req;
    req.set_name(r.name);
    v1::VerifyResult result;
    grpc::ClientContext ctx;
    SetDeadline(&ctx, absl::Seconds(10));
    grpc::Status s = (stub->*Kind::kVerifyRpc)(&ctx, req, &result);
    if (!s.ok()) {
      return absl::InternalError(
          absl::StrCat(Kind::kVerify, " ", r.name, ": ", ErrorText(s)));
    }
    if (!result.ok()) {
      return absl::InternalError(
          absl::StrCat(r.name, " (", r.spec, ") failed: ", result.summary()));
    }
    return absl::OkStatus();
  }

  // Every lease of this kind the manager holds, whole, every page.
  // UNAVAILABLE naming the RPC when a page cannot be read.
  static absl::StatusOr<std::vector<Record>> ListAll(
      v1::FabricService::Stub* stub) {
    std::vector<Record> out;
    std::string token;
    do {
      typename Kind::ListRequest req;
      req.set_page_size(1000);
      req.set_page_token(token);
      typename Kind::ListResponse resp;
      grpc::ClientContext ctx;
      SetDeadline(&ctx, absl::Seconds(5));
      grpc::Status s = (stub->*Kind::kListRpc)(&ctx, req, &resp);
      if (!s.ok()) {
        return absl::UnavailableError(
            absl::StrCat(Kind::kList, ": ", ErrorText(s)));
      }
      const auto& items = Kind::Items(resp);
      out.insert(out.end(), items.begin(), items.end());
      token = resp.next_page_token();
    } while (!token.empty());
    return out;
  }

 protected:
  // What the proof of settled, READY `r` needs done first; an error fails
  // the proof with it.
  virtual absl::Status BeforeVerify(v1::FabricService::Stub* stub,
                                    const ObservedResource& r) {
    return absl::OkStatus();
  }
};

}  // namespace fabric::chaos

#endif  // FABRIC_TESTS_CHAOS_LEASE_OPS_H_
