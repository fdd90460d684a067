// FabricClient: a thin, synchronous wrapper over the generated
// fabric.v1.FabricService stub, and the fabric.hypervisor.v1.HypervisorService
// stub (SetVmState) on the same channel.
//
// Every call carries a deadline (Options::timeout) and returns absl::Status
// (converted by fabric::FromGrpcStatus: same code and message). Calls that
// fail with UNAVAILABLE are retried up to Options::max_attempts times with
// the same request, so a mutating request retried with its request_id is
// applied at most once by the server. The calls that act on a lent VF and
// carry no request_id (AccessShadow writes, RaiseVfInterrupt, SetVmState)
// are made once: the server relays them to agents, and an UNAVAILABLE may
// come after part of the effect. List* methods follow next_page_token to the
// end and return every item; List*Pages hand each page on as it arrives, so
// a caller that does not keep them holds one page at a time. An UNAVAILABLE
// that did not come from the server is marked (IsServerUnreachable).
//
// With several managers (HA, issue 14) the client follows the leader
// (common/leader_channel.h): a standby's answer naming the leader moves the
// client there, and a call that is retried at all (every call but the three
// above) is made again on the leader at once; a standby naming no leader,
// or a manager out of reach, moves it to the next address. Such a call is
// retried, with backoff (retry_backoff doubling up to max_retry_backoff),
// until its deadline (Options::timeout from its start), so it rides through
// a failover: a killed leader's standby takes over within the lease TTL.
// Each attempt has a deadline of its own (Options::attempt_timeout): a
// manager that answers nothing in time (a paused leader) is left for the
// next one. CANCELLED (a standby's server ending its calls as it hands the
// port to its leader's server) is retried like UNAVAILABLE. Retrying is
// safe: a standby applies nothing, and the leader applies a mutation's
// request id once.
// It then fails with the last error, its message naming every manager tried.
// A single address keeps max_attempts.
//
//   auto client = FabricClient::Connect("127.0.0.1:7070", tls, {});
//   auto ha = FabricClient::Connect("m1:7070,m2:7070,m3:7070", tls, {});
//   absl::StatusOr<std::vector<v1::Node>> nodes = client->ListNodes("");
//
// Thread-safe.
#ifndef FABRIC_CLIENT_FABRIC_CLIENT_H_
#define FABRIC_CLIENT_FABRIC_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/synchronization/mutex.h"
#include "common/leader_channel.h"
#include "common/security/tls.h"
#include "fabric/hypervisor/v1/hypervisor.grpc.pb.h"
#include "fabric/v1/audit.pb.h"
#include "fabric/v1/diagnostics.pb.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "fabric/v1/resources.pb.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "grpcpp/grpcpp.h"

namespace fabric::client {

namespace v1 = ::fabric::v1;

// The largest page the manager serves (kMaxPageSize in
// server/service/paginate.h; larger requests are cut to it).
inline constexpr int kMaxListPageSize = 1000;

// True when `status` is an UNAVAILABLE that a FabricClient call got without
// the server answering. The rule: the call failed with UNAVAILABLE and the
// channel to the server was not READY (connected) right after, as when the
// connection is refused, the name does not resolve or the connection
// dropped ("failed to connect to all addresses", "Socket closed"). An
// UNAVAILABLE the server itself returned (an agent it could not reach, a
// store write that failed) arrives over a READY channel and is not marked.
// Kept by copies of the status that keep its payloads.
bool IsServerUnreachable(const absl::Status& status);

class FabricClient {
 public:
  struct Options {
    // Deadline of each RPC attempt; with a manager list, of each call that
    // may be retried (all its attempts together, see below).
    absl::Duration timeout = absl::Seconds(10);
    // With a manager list, the deadline of each attempt of a call that is
    // retried until its deadline: a leader that answers nothing (paused) is
    // left for the next manager after this long. Shorter than timeout.
    absl::Duration attempt_timeout = absl::Seconds(2);
    // Total attempts for a call that fails with UNAVAILABLE (>= 1). With a
    // manager list, a call with max_attempts > 1 is instead retried until
    // its deadline (it rides through a failover).
    int max_attempts = 3;
    // Sleep before the second attempt; doubles for each further attempt.
    absl::Duration retry_backoff = absl::Milliseconds(200);
    // With a manager list, the longest sleep between two attempts.
    absl::Duration max_retry_backoff = absl::Milliseconds(500);
    // page_size of List* requests; 0 lets the server choose (100).
    int page_size = kMaxListPageSize;
  };

  // Creates a client for `target` ("host:port", or a comma-separated list
  // of them: the managers of one fabric, whose leader it follows) over
  // `tls`: mutual TLS that
  // accepts any fabric manager's certificate (PeerRequirement::AnyManager),
  // or plaintext when tls.insecure. The caller checks `tls` first
  // (security::CheckTransport). Connects lazily: an unreachable server, or
  // one whose certificate is refused, shows up as UNAVAILABLE on the first
  // call.
  static std::unique_ptr<FabricClient> Connect(const std::string& target,
                                               const security::TlsConfig& tls,
                                               const Options& options);

  // `target` is only used in messages. `channel`, the stubs' channel, tells
  // whether an UNAVAILABLE came from the server (see IsServerUnreachable);
  // without it no status is marked.
  FabricClient(std::unique_ptr<v1::FabricService::StubInterface> stub,
               std::unique_ptr<hypervisor::v1::HypervisorService::StubInterface>
                   hypervisor,
               std::string target, const Options& options,
               std::shared_ptr<grpc::ChannelInterface> channel = nullptr);

  // Follows the leader among `leader`'s managers; `target` is only used in
  // messages.
  FabricClient(std::shared_ptr<LeaderChannel> leader, std::string target,
               const Options& options);

  FabricClient(const FabricClient&) = delete;
  FabricClient& operator=(const FabricClient&) = delete;

  // Called with each page of a List*Pages call, in order, as it arrives.
  // Returns false to stop: no further page is requested.
  template <typename Item>
  using PageFn = absl::FunctionRef<bool(
      const google::protobuf::RepeatedPtrField<Item>& page)>;

  const std::string& target() const { return target_; }
  const Options& options() const { return options_; }

  absl::StatusOr<v1::Fabric> CreateFabric(const v1::CreateFabricRequest& req);
  absl::StatusOr<v1::Fabric> GetFabric(const std::string& name);
  absl::StatusOr<std::vector<v1::Fabric>> ListFabrics();
  // The List*Pages calls return the error of the first page that failed
  // (the pages before it were handed on), or OK after the last page or
  // when `on_page` stopped them. Their filters are as for List*.
  absl::Status ListFabricPages(PageFn<v1::Fabric> on_page);
  absl::StatusOr<v1::Fabric> DeleteFabric(const v1::DeleteFabricRequest& req);

  absl::StatusOr<v1::Node> GetNode(const std::string& name);
  // `fabric` is an optional filter, "fabrics/{fabric}" or empty.
  absl::StatusOr<std::vector<v1::Node>> ListNodes(const std::string& fabric);
  absl::Status ListNodePages(const std::string& fabric,
                             PageFn<v1::Node> on_page);
  absl::StatusOr<v1::Bridge> GetBridge(const std::string& name);
  absl::StatusOr<std::vector<v1::Bridge>> ListBridges(
      const std::string& fabric);
  absl::Status ListBridgePages(const std::string& fabric,
                               PageFn<v1::Bridge> on_page);
  absl::StatusOr<v1::Link> GetLink(const std::string& name);
  absl::StatusOr<std::vector<v1::Link>> ListLinks(const std::string& fabric);
  absl::Status ListLinkPages(const std::string& fabric,
                             PageFn<v1::Link> on_page);
  absl::StatusOr<v1::Link> SetLinkState(const v1::SetLinkStateRequest& req);

  absl::StatusOr<v1::AddressMap> GetAddressMap(const std::string& name);
  absl::StatusOr<std::vector<v1::AddressMap>> ListAddressMaps(
      const std::string& fabric);
  absl::Status ListAddressMapPages(const std::string& fabric,
                                   PageFn<v1::AddressMap> on_page);

  absl::StatusOr<v1::Allocation> CreateAllocation(
      const v1::CreateAllocationRequest& req);
  absl::StatusOr<v1::Allocation> GetAllocation(const std::string& name);
  // Page fields of `filter` are ignored.
  absl::StatusOr<std::vector<v1::Allocation>> ListAllocations(
      const v1::ListAllocationsRequest& filter);
  absl::Status ListAllocationPages(const v1::ListAllocationsRequest& filter,
                                   PageFn<v1::Allocation> on_page);
  absl::StatusOr<v1::Allocation> DeleteAllocation(
      const v1::DeleteAllocationRequest& req);
  // Waits until allocation `name` is READY or RELEASED, or until
  // `deadline`, following the server's Watch stream (and re-reading it every
  // `poll` in case an event raced with the stream's start). Returns its last
  // known state; reaching the deadline is not an error.
  absl::StatusOr<v1::Allocation> AwaitAllocation(
      const std::string& name, absl::Time deadline,
      absl::Duration poll = absl::Seconds(1));
  absl::StatusOr<v1::VerifyResult> VerifyAllocation(
      const v1::VerifyAllocationRequest& req);

  // SR-IOV VF lending. `filter`'s page fields are ignored; a VF name is
  // "nodes/{node}/vfs/{0000-3b-00.4}" or "{node}/{0000:3b:00.4}".
  absl::StatusOr<std::vector<v1::VirtualFunction>> ListVirtualFunctions(
      const v1::ListVirtualFunctionsRequest& filter);
  absl::Status ListVirtualFunctionPages(
      const v1::ListVirtualFunctionsRequest& filter,
      PageFn<v1::VirtualFunction> on_page);
  absl::StatusOr<v1::VirtualFunction> GetVirtualFunction(
      const std::string& name);
  absl::StatusOr<v1::Attachment> CreateAttachment(
      const v1::CreateAttachmentRequest& req);
  absl::StatusOr<v1::Attachment> GetAttachment(const std::string& name);
  absl::StatusOr<std::vector<v1::Attachment>> ListAttachments(
      const v1::ListAttachmentsRequest& filter);
  absl::Status ListAttachmentPages(const v1::ListAttachmentsRequest& filter,
                                   PageFn<v1::Attachment> on_page);
  absl::StatusOr<v1::Attachment> DeleteAttachment(
      const v1::DeleteAttachmentRequest& req);
  // The manager's audit log (ReadAuditLog), oldest first: the records
  // `filter` keeps (its page_size and page_token are the client's), page by
  // page. A page may be empty while more follow; every one is handed on.
  absl::Status ReadAuditLogPages(const v1::ReadAuditLogRequest& filter,
                                 PageFn<v1::AuditRecord> on_page);
  // As AwaitAllocation, for attachment `name`: until READY or DETACHED (a
  // deleted attachment's last event), or `deadline`.
  absl::StatusOr<v1::Attachment> AwaitAttachment(
      const std::string& name, absl::Time deadline,
      absl::Duration poll = absl::Seconds(1));
  // Not retried when it writes (see above); reads and DRIVER_SETUP are.
  absl::StatusOr<v1::AccessShadowResponse> AccessShadow(
      const v1::AccessShadowRequest& req);
  absl::StatusOr<v1::VerifyResult> VerifyAttachment(
      const v1::VerifyAttachmentRequest& req);
  // Not retried: a retry would raise the interrupts again.
  absl::StatusOr<v1::RaiseVfInterruptResponse> RaiseVfInterrupt(
      const v1::RaiseVfInterruptRequest& req);
  // Not retried: a retry would report no injected interrupts.
  absl::StatusOr<hypervisor::v1::SetVmStateResponse> SetVmState(
      const hypervisor::v1::SetVmStateRequest& req);

  absl::StatusOr<std::vector<v1::HardwareProfile>> ListProfiles();
  // Every manager serving the fabric (not paged: there are few).
  absl::StatusOr<std::vector<v1::Manager>> ListManagers();
  absl::Status Ping();

 private:
  using Stub = v1::FabricService::StubInterface;
  template <typename S, typename Req, typename Resp>
  using MethodOf = grpc::Status (S::*)(grpc::ClientContext*, const Req&, Resp*);
  template <typename Req, typename Resp>
  using Method = MethodOf<Stub, Req, Resp>;

  using HypervisorStub = hypervisor::v1::HypervisorService::StubInterface;
  // The stubs of one manager.
  struct Stubs {
    std::unique_ptr<Stub> fabric;
    std::unique_ptr<HypervisorStub> hypervisor;
  };
  static Stub& Pick(const Stubs& s, Stub*) { return *s.fabric; }
  static HypervisorStub& Pick(const Stubs& s, HypervisorStub*) {
    return *s.hypervisor;
  }
  // The stubs of `endpoint`, made on first use and kept.
  std::shared_ptr<const Stubs> StubsFor(const LeaderChannel::Endpoint& endpoint)
      ABSL_LOCKS_EXCLUDED(stubs_mu_);
  // The stubs calls go to now.
  std::shared_ptr<const Stubs> CurrentStubs();

  // One unary call of the stub S of the manager (the leader, when following
  // one) with deadline and UNAVAILABLE retries (at most `max_attempts`
  // attempts, 0 meaning Options::max_attempts; following a leader, until
  // the call's deadline when max_attempts > 1).
  template <typename S, typename Req, typename Resp>
  absl::StatusOr<Resp> CallOn(MethodOf<S, Req, Resp> method, const Req& req,
                              int max_attempts = 0);
  // CallOn the FabricService stub.
  template <typename Req, typename Resp>
  absl::StatusOr<Resp> Call(Method<Req, Resp> method, const Req& req,
                            int max_attempts = 0) {
    return CallOn<Stub>(method, req, max_attempts);
  }

  // Calls `method` page by page, handing items(resp) of each to `on_page`.
  template <typename Req, typename Resp, typename Item, typename ItemsFn>
  absl::Status ForEachPage(Method<Req, Resp> method, Req req, ItemsFn items,
                           PageFn<Item> on_page);

  // Either fixed stubs on one channel (leader_ null), or the leader's.
  const std::shared_ptr<const Stubs> fixed_;
  const std::shared_ptr<grpc::ChannelInterface> channel_;
  const std::shared_ptr<LeaderChannel> leader_;
  absl::Mutex stubs_mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<const Stubs>> stubs_
      ABSL_GUARDED_BY(stubs_mu_);
  const std::string target_;
  const Options options_;
};

}  // namespace fabric::client

#endif  // FABRIC_CLIENT_FABRIC_CLIENT_H_
