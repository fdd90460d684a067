#include "client/fabric_client.h"

#include <algorithm>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"

namespace fabric::client {
namespace {

constexpr char kUnreachablePayload[] = "type.fabricctl/server-unreachable";

}  // namespace

namespace {

// `status` with the managers a call tried named in its message (same code
// and payloads).
absl::Status NameTried(const absl::Status& status,
                       const std::vector<std::string>& tried) {
  absl::Status named(
      status.code(),
      absl::StrCat(status.message(), " (managers tried until the deadline: ",
                   absl::StrJoin(tried, ", "), ")"));
  status.ForEachPayload(
      [&](absl::string_view url, const absl::Cord& payload) {
        named.SetPayload(url, payload);
      });
  return named;
}

}  // namespace

bool IsServerUnreachable(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable &&
         status.GetPayload(kUnreachablePayload).has_value();
}

std::unique_ptr<FabricClient> FabricClient::Connect(
    const std::string& target, const security::TlsConfig& tls,
    const Options& options) {
  std::shared_ptr<grpc::ChannelCredentials> creds = security::ChannelCredentials(
      tls, security::PeerRequirement::AnyManager());
  std::vector<std::string> targets;
  if (absl::StatusOr<std::vector<std::string>> list =
          ParseManagerList("--server", target);
      list.ok()) {
    targets = *std::move(list);
  } else {
    // Not checked by the caller: dialled as given, failing on the call.
    targets = {target};
  }
  if (targets.size() == 1) {
    std::shared_ptr<grpc::Channel> channel =
        grpc::CreateChannel(targets[0], creds);
    return std::make_unique<FabricClient>(
        v1::FabricService::NewStub(channel),
        hypervisor::v1::HypervisorService::NewStub(channel), target, options,
        channel);
  }
  // A killed leader's port stays closed until it is restarted; with gRPC's
  // default reconnect backoff (1 s, x1.6, up to 120 s) a client that met it
  // there waited up to 15 s before it dialled it again, as the leader it
  // becomes (a new leader's own port never closes: see
  // server/ha/ha_manager.h). Reconnect within 250 ms instead. A connection
  // attempt (TCP, TLS and HTTP/2 handshakes) is given up after 1 s
  // (GRPC_ARG_MIN_RECONNECT_BACKOFF_MS is gRPC's minimum connect timeout,
  // 20 s by default), so that a channel to a paused manager does not stay
  // CONNECTING for 20 s after it resumed.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 250);
  return std::make_unique<FabricClient>(
      std::make_shared<LeaderChannel>(
          std::move(targets),
          [creds, args](const std::string& t) {
            return grpc::CreateCustomChannel(t, creds, args);
          }),
      target, options);
}

FabricClient::FabricClient(
    std::unique_ptr<Stub> stub,
    std::unique_ptr<hypervisor::v1::HypervisorService::StubInterface>
        hypervisor,
    std::string target, const Options& options,
    std::shared_ptr<grpc::ChannelInterface> channel)
    : fixed_(std::make_shared<const Stubs>(
          Stubs{std::move(stub), std::move(hypervisor)})),
      channel_(std::move(channel)),
      target_(std::move(target)),
      options_(options) {}

FabricClient::FabricClient(std::shared_ptr<LeaderChannel> leader,
                           std::string target, const Options& options)
    : leader_(std::move(leader)),
      target_(std::move(target)),
      options_(options) {}

std::shared_ptr<const FabricClient::Stubs> FabricClient::StubsFor(
    const LeaderChannel::Endpoint& endpoint) {
  absl::MutexLock l(&stubs_mu_);
  std::shared_ptr<const Stubs>& stubs = stubs_[endpoint.target];
  if (stubs == nullptr) {
    stubs = std::make_shared<const Stubs>(
        Stubs{v1::FabricService::NewStub(endpoint.channel),
              hypervisor::v1::HypervisorService::NewStub(endpoint.channel)});
  }
  return stubs;
}

std::shared_ptr<const FabricClient::Stubs> FabricClient::CurrentStubs() {
  return leader_ == nullptr ? fixed_ : StubsFor(leader_->Current());
}

namespace {

// Waits for one resource of Watch collection `collection` to settle, or for
// `deadline`: opens a Watch stream, reads the resource with `get` once the
// stream is open (or after one `poll` if it does not open), and follows the
// stream on a helper thread (`pick`
// returns the event's resource when it is the one waited for, else
// nullptr), and re-reads it with `get` every `poll` in case the stream ends
// or says nothing.
// Returns the last known state, or get's error.
template <typename R, typename GetFn, typename PickFn, typename SettledFn>
absl::StatusOr<R> AwaitResource(v1::FabricService::StubInterface& stub,
                                const std::string& collection,
                                absl::Time deadline, absl::Duration poll,
                                GetFn get, PickFn pick, SettledFn settled) {
  absl::Mutex mu;
  std::optional<R> latest;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  v1::WatchRequest req;
  req.add_collections(collection);
  std::unique_ptr<grpc::ClientReaderInterface<v1::WatchEvent>> reader =
      stub.Watch(&ctx, req);
  // The manager sends a Watch's initial metadata once the stream follows
  // the hub (server/service/hub_stream.h): every change after it is
  // streamed. Reading the resource before that could miss a change made in
  // between, which only the next poll (a second by default) would see. So
  // the first read waits for the stream to open (or to be refused), but
  // for one poll at most: a manager that answers nothing (paused, say) must
  // not hold the wait until its deadline, while the reads, which follow the
  // leader, may find the answer elsewhere.
  bool open = false;
  std::thread events([&] {
    reader->WaitForInitialMetadata();
    {
      absl::MutexLock l(&mu);
      open = true;
    }
    v1::WatchEvent e;
    while (reader->Read(&e)) {
      const R* r = pick(e);
      if (r == nullptr) continue;
      absl::MutexLock l(&mu);
      latest = *r;
    }
    // Ended (deadline, server gone): the loop below falls back to polling.
  });
  {
    absl::MutexLock l(&mu);
    auto is_open = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return open; };
    mu.AwaitWithDeadline(absl::Condition(&is_open),
                         std::min(deadline, absl::Now() + poll));
  }
  absl::StatusOr<R> current = get();
  while (current.ok() && !settled(*current) && absl::Now() < deadline) {
    absl::MutexLock l(&mu);
    auto changed = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return latest.has_value();
    };
    const absl::Time wake = std::min(deadline, absl::Now() + poll);
    if (mu.AwaitWithDeadline(absl::Condition(&changed), wake)) {
      current = *std::move(latest);
      latest.reset();
    } else if (absl::Now() < deadline) {
      mu.Unlock();
      current = get();
      mu.Lock();
    }
  }
  ctx.TryCancel();
  events.join();
  (void)reader->Finish();
  return current;
}

}  // namespace

template <typename S, typename Req, typename Resp>
absl::StatusOr<Resp> FabricClient::CallOn(MethodOf<S, Req, Resp> method,
                                          const Req& req, int max_attempts) {
  if (max_attempts <= 0) max_attempts = options_.max_attempts;
  // Following a leader, a call that may be retried is retried until its own
  // deadline: a failover takes about a lease TTL.
  const bool until_deadline = leader_ != nullptr && max_attempts > 1;
  const absl::Time call_deadline = absl::Now() + options_.timeout;
  absl::Duration backoff = options_.retry_backoff;
  // The managers this call tried, and whether it waited for a leader.
  std::vector<std::string> tried;
  bool waited = false;
  absl::Status status;
  for (int attempt = 1;; ++attempt) {
    Resp resp;
    auto one = [&](const Stubs& stubs, grpc::ClientContext& ctx) {
      // Following a leader, each attempt has a deadline of its own, shorter
      // than the call's: a paused leader answers nothing, and the call
      // moves on to the next manager in time to reach the new leader.
      ctx.set_deadline(absl::ToChronoTime(
          until_deadline
              ? std::min(call_deadline, absl::Now() + options_.attempt_timeout)
              : absl::Now() + options_.timeout));
      resp.Clear();
      return (Pick(stubs, static_cast<S*>(nullptr)).*method)(&ctx, req, &resp);
    };
    std::shared_ptr<grpc::ChannelInterface> channel = channel_;
    bool no_leader = false;
    if (leader_ == nullptr) {
      grpc::ClientContext ctx;
      status = FromGrpcStatus(one(*fixed_, ctx));
    } else {
      // Calls that are retried at all may be made again on the leader.
      LeaderChannel::Endpoint last;
      grpc::Status answer = leader_->Call(
          [&](const LeaderChannel::Endpoint& e, grpc::ClientContext& ctx) {
            if (std::find(tried.begin(), tried.end(), e.target) ==
                tried.end()) {
              tried.push_back(e.target);
            }
            return one(*StubsFor(e), ctx);
          },
          // Retrying is safe: every call retried at all (max_attempts > 1)
          // is a read or a mutation with a request id, which the leader
          // applies once however often it arrives (and a standby applies
          // nothing).
          /*retry_safe=*/max_attempts > 1, &last, call_deadline);
      channel = last.channel;
      status = FromGrpcStatus(answer);
      // A standby's answer, no manager reached, one that answered nothing
      // within the attempt's deadline (paused), or one switching from
      // standby to leader: no leader serves yet.
      no_leader = IsStandbyAnswer(answer) ||
                  answer.error_code() == grpc::StatusCode::CANCELLED ||
                  (answer.error_code() ==
                       grpc::StatusCode::DEADLINE_EXCEEDED &&
                   absl::Now() < call_deadline) ||
                  (channel != nullptr &&
                   channel->GetState(/*try_to_connect=*/false) !=
                       GRPC_CHANNEL_READY);
    }
    if (status.ok()) return resp;
    if (until_deadline && no_leader &&
        (status.code() == absl::StatusCode::kDeadlineExceeded ||
         status.code() == absl::StatusCode::kCancelled)) {
      // Waited for as UNAVAILABLE is, below (retrying is safe, see above).
      status = absl::UnavailableError(status.message());
    }
    if (status.code() == absl::StatusCode::kDeadlineExceeded && waited) {
      return NameTried(status, tried);
    }
    if (status.code() != absl::StatusCode::kUnavailable) return status;
    const absl::Duration left = call_deadline - absl::Now();
    // Waiting for a leader stops when the next attempt would start at the
    // deadline; the leader's own UNAVAILABLE (an agent out of reach) keeps
    // max_attempts.
    if (until_deadline && no_leader ? left <= backoff
                                    : attempt >= max_attempts) {
      // See IsServerUnreachable: a server that answered left the channel
      // READY.
      if (waited) status = NameTried(status, tried);
      if (channel != nullptr &&
          channel->GetState(/*try_to_connect=*/false) != GRPC_CHANNEL_READY) {
        status.SetPayload(kUnreachablePayload, absl::Cord("1"));
      }
      return status;
    }
    if (until_deadline && no_leader) {
      waited = true;
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, options_.max_retry_backoff);
    } else {
      absl::SleepFor(backoff);
      backoff *= 2;
    }
  }
}

template <typename Req, typename Resp, typename Item, typename ItemsFn>
absl::Status FabricClient::ForEachPage(Method<Req, Resp> method, Req req,
                                       ItemsFn items, PageFn<Item> on_page) {
  req.set_page_token("");
  req.set_page_size(options_.page_size);
  while (true) {
    absl::StatusOr<Resp> resp = Call(method, req);
    if (!resp.ok()) return resp.status();
    if (!on_page(items(*resp))) return absl::OkStatus();
    if (resp->next_page_token().empty()) return absl::OkStatus();
    // A server that hands back the same token would loop forever.
    if (resp->next_page_token() == req.page_token()) {
      return absl::InternalError(
          "server returned the same next_page_token twice");
    }
    req.set_page_token(resp->next_page_token());
  }
}

namespace {

// Every item of the pages `list` hands on: list(on_page) is a List*Pages
// call.
template <typename Item, typename ListFn>
absl::StatusOr<std::vector<Item>> Collect(ListFn list) {
  std::vector<Item> out;
  absl::Status status =
      list([&out](const google::protobuf::RepeatedPtrField<Item>& page) {
        out.insert(out.end(), page.begin(), page.end());
        return true;
      });
  if (!status.ok()) return status;
  return out;
}

}  // namespace

absl::StatusOr<v1::Fabric> FabricClient::CreateFabric(
    const v1::CreateFabricRequest& req) {
  return Call(&Stub::CreateFabric, req);
}

absl::StatusOr<v1::Fabric> FabricClient::GetFabric(const std::string& name) {
  v1::GetFabricRequest req;
  req.set_name(name);
  return Call(&Stub::GetFabric, req);
}

absl::StatusOr<std::vector<v1::Fabric>> FabricClient::ListFabrics() {
  return Collect<v1::Fabric>(
      [&](PageFn<v1::Fabric> on_page) { return ListFabricPages(on_page); });
}

absl::Status FabricClient::ListFabricPages(PageFn<v1::Fabric> on_page) {
  return ForEachPage<v1::ListFabricsRequest, v1::ListFabricsResponse>(
      &Stub::ListFabrics, {},
      [](const v1::ListFabricsResponse& r) -> const auto& {
        return r.fabrics();
      },
      on_page);
}

absl::StatusOr<v1::Fabric> FabricClient::DeleteFabric(
    const v1::DeleteFabricRequest& req) {
  return Call(&Stub::DeleteFabric, req);
}

absl::StatusOr<v1::Node> FabricClient::GetNode(const std::string& name) {
  v1::GetNodeRequest req;
  req.set_name(name);
  return Call(&Stub::GetNode, req);
}

absl::StatusOr<std::vector<v1::Node>> FabricClient::ListNodes(
    const std::string& fabric) {
  return Collect<v1::Node>([&](PageFn<v1::Node> on_page) {
    return ListNodePages(fabric, on_page);
  });
}

absl::Status FabricClient::ListNodePages(const std::string& fabric,
                                       PageFn<v1::Node> on_page) {
  v1::ListNodesRequest req;
  req.set_fabric(fabric);
  return ForEachPage<v1::ListNodesRequest, v1::ListNodesResponse>(
      &Stub::ListNodes, req,
      [](const v1::ListNodesResponse& r) -> const auto& { return r.nodes(); },
      on_page);
}

absl::StatusOr<v1::Bridge> FabricClient::GetBridge(const std::string& name) {
  v1::GetBridgeRequest req;
  req.set_name(name);
  return Call(&Stub::GetBridge, req);
}

absl::StatusOr<std::vector<v1::Bridge>> FabricClient::ListBridges(
    const std::string& fabric) {
  return Collect<v1::Bridge>([&](PageFn<v1::Bridge> on_page) {
    return ListBridgePages(fabric, on_page);
  });
}

absl::Status FabricClient::ListBridgePages(const std::string& fabric,
                                       PageFn<v1::Bridge> on_page) {
  v1::ListBridgesRequest req;
  req.set_fabric(fabric);
  return ForEachPage<v1::ListBridgesRequest, v1::ListBridgesResponse>(
      &Stub::ListBridges, req,
      [](const v1::ListBridgesResponse& r) -> const auto& { return r.bridges(); },
      on_page);
}

absl::StatusOr<v1::Link> FabricClient::GetLink(const std::string& name) {
  v1::GetLinkRequest req;
  req.set_name(name);
  return Call(&Stub::GetLink, req);
}

absl::StatusOr<std::vector<v1::Link>> FabricClient::ListLinks(
    const std::string& fabric) {
  return Collect<v1::Link>([&](PageFn<v1::Link> on_page) {
    return ListLinkPages(fabric, on_page);
  });
}

absl::Status FabricClient::ListLinkPages(const std::string& fabric,
                                       PageFn<v1::Link> on_page) {
  v1::ListLinksRequest req;
  req.set_fabric(fabric);
  return ForEachPage<v1::ListLinksRequest, v1::ListLinksResponse>(
      &Stub::ListLinks, req,
      [](const v1::ListLinksResponse& r) -> const auto& { return r.links(); },
      on_page);
}

absl::StatusOr<v1::Link> FabricClient::SetLinkState(
    const v1::SetLinkStateRequest& req) {
  return Call(&Stub::SetLinkState, req);
}

absl::StatusOr<v1::AddressMap> FabricClient::GetAddressMap(
    const std::string& name) {
  v1::GetAddressMapRequest req;
  req.set_name(name);
  return Call(&Stub::GetAddressMap, req);
}

absl::StatusOr<std::vector<v1::AddressMap>> FabricClient::ListAddressMaps(
    const std::string& fabric) {
  return Collect<v1::AddressMap>([&](PageFn<v1::AddressMap> on_page) {
    return ListAddressMapPages(fabric, on_page);
  });
}

absl::Status FabricClient::ListAddressMapPages(const std::string& fabric,
                                       PageFn<v1::AddressMap> on_page) {
  v1::ListAddressMapsRequest req;
  req.set_fabric(fabric);
  return ForEachPage<v1::ListAddressMapsRequest, v1::ListAddressMapsResponse>(
      &Stub::ListAddressMaps, req,
      [](const v1::ListAddressMapsResponse& r) -> const auto& { return r.address_maps(); },
      on_page);
}

absl::StatusOr<v1::Allocation> FabricClient::CreateAllocation(
    const v1::CreateAllocationRequest& req) {
  return Call(&Stub::CreateAllocation, req);
}

absl::StatusOr<v1::Allocation> FabricClient::GetAllocation(
    const std::string& name) {
  v1::GetAllocationRequest req;
  req.set_name(name);
  return Call(&Stub::GetAllocation, req);
}

absl::StatusOr<std::vector<v1::Allocation>> FabricClient::ListAllocations(
    const v1::ListAllocationsRequest& filter) {
  return Collect<v1::Allocation>([&](PageFn<v1::Allocation> on_page) {
    return ListAllocationPages(filter, on_page);
  });
}

absl::Status FabricClient::ListAllocationPages(
    const v1::ListAllocationsRequest& filter, PageFn<v1::Allocation> on_page) {
  return ForEachPage<v1::ListAllocationsRequest, v1::ListAllocationsResponse>(
      &Stub::ListAllocations, filter,
      [](const v1::ListAllocationsResponse& r) -> const auto& { return r.allocations(); },
      on_page);
}

absl::Status FabricClient::ReadAuditLogPages(
    const v1::ReadAuditLogRequest& filter, PageFn<v1::AuditRecord> on_page) {
  return ForEachPage<v1::ReadAuditLogRequest, v1::ReadAuditLogResponse>(
      &Stub::ReadAuditLog, filter,
      [](const v1::ReadAuditLogResponse& r) -> const auto& {
        return r.records();
      },
      on_page);
}

absl::StatusOr<v1::Allocation> FabricClient::DeleteAllocation(
    const v1::DeleteAllocationRequest& req) {
  return Call(&Stub::DeleteAllocation, req);
}

absl::StatusOr<v1::Allocation> FabricClient::AwaitAllocation(
    const std::string& name, absl::Time deadline, absl::Duration poll) {
  std::shared_ptr<const Stubs> stubs = CurrentStubs();
  return AwaitResource<v1::Allocation>(
      *stubs->fabric, "allocations", deadline, poll,
      [&] { return GetAllocation(name); },
      [&](const v1::WatchEvent& e) -> const v1::Allocation* {
        return e.has_allocation() && e.allocation().name() == name
                   ? &e.allocation()
                   : nullptr;
      },
      [](const v1::Allocation& a) {
        return a.state() == v1::Allocation::READY ||
               a.state() == v1::Allocation::RELEASED;
      });
}

absl::StatusOr<v1::VerifyResult> FabricClient::VerifyAllocation(
    const v1::VerifyAllocationRequest& req) {
  return Call(&Stub::VerifyAllocation, req);
}

absl::StatusOr<std::vector<v1::VirtualFunction>> FabricClient::ListVirtualFunctions(
    const v1::ListVirtualFunctionsRequest& filter) {
  return Collect<v1::VirtualFunction>([&](PageFn<v1::VirtualFunction> on_page) {
    return ListVirtualFunctionPages(filter, on_page);
  });
}

absl::Status FabricClient::ListVirtualFunctionPages(
    const v1::ListVirtualFunctionsRequest& filter, PageFn<v1::VirtualFunction> on_page) {
  return ForEachPage<v1::ListVirtualFunctionsRequest, v1::ListVirtualFunctionsResponse>(
      &Stub::ListVirtualFunctions, filter,
      [](const v1::ListVirtualFunctionsResponse& r) -> const auto& { return r.virtual_functions(); },
      on_page);
}

absl::StatusOr<v1::VirtualFunction> FabricClient::GetVirtualFunction(
    const std::string& name) {
  v1::GetVirtualFunctionRequest req;
  req.set_name(name);
  return Call(&Stub::GetVirtualFunction, req);
}

absl::StatusOr<v1::Attachment> FabricClient::CreateAttachment(
    const v1::CreateAttachmentRequest& req) {
  return Call(&Stub::CreateAttachment, req);
}

absl::StatusOr<v1::Attachment> FabricClient::GetAttachment(
    const std::string& name) {
  v1::GetAttachmentRequest req;
  req.set_name(name);
  return Call(&Stub::GetAttachment, req);
}

absl::StatusOr<std::vector<v1::Attachment>> FabricClient::ListAttachments(
    const v1::ListAttachmentsRequest& filter) {
  return Collect<v1::Attachment>([&](PageFn<v1::Attachment> on_page) {
    return ListAttachmentPages(filter, on_page);
  });
}

absl::Status FabricClient::ListAttachmentPages(
    const v1::ListAttachmentsRequest& filter, PageFn<v1::Attachment> on_page) {
  return ForEachPage<v1::ListAttachmentsRequest, v1::ListAttachmentsResponse>(
      &Stub::ListAttachments, filter,
      [](const v1::ListAttachmentsResponse& r) -> const auto& { return r.attachments(); },
      on_page);
}

absl::StatusOr<v1::Attachment> FabricClient::DeleteAttachment(
    const v1::DeleteAttachmentRequest& req) {
  return Call(&Stub::DeleteAttachment, req);
}

absl::StatusOr<v1::Attachment> FabricClient::AwaitAttachment(
    const std::string& name, absl::Time deadline, absl::Duration poll) {
  std::shared_ptr<const Stubs> stubs = CurrentStubs();
  return AwaitResource<v1::Attachment>(
      *stubs->fabric, "attachments", deadline, poll,
      [&] { return GetAttachment(name); },
      [&](const v1::WatchEvent& e) -> const v1::Attachment* {
        return e.has_attachment() && e.attachment().name() == name
                   ? &e.attachment()
                   : nullptr;
      },
      [](const v1::Attachment& a) {
        return a.state() == v1::Attachment::READY ||
               a.state() == v1::Attachment::DETACHED;
      });
}

absl::StatusOr<v1::AccessShadowResponse> FabricClient::AccessShadow(
    const v1::AccessShadowRequest& req) {
  return Call(&Stub::AccessShadow, req,
              req.op() == v1::AccessShadowRequest::WRITE ? 1 : 0);
}

absl::StatusOr<v1::VerifyResult> FabricClient::VerifyAttachment(
    const v1::VerifyAttachmentRequest& req) {
  return Call(&Stub::VerifyAttachment, req);
}

absl::StatusOr<v1::RaiseVfInterruptResponse> FabricClient::RaiseVfInterrupt(
    const v1::RaiseVfInterruptRequest& req) {
  return Call(&Stub::RaiseVfInterrupt, req, 1);
}

absl::StatusOr<hypervisor::v1::SetVmStateResponse> FabricClient::SetVmState(
    const hypervisor::v1::SetVmStateRequest& req) {
  return CallOn<HypervisorStub>(&HypervisorStub::SetVmState, req, 1);
}

absl::StatusOr<std::vector<v1::HardwareProfile>> FabricClient::ListProfiles() {
  // ListProfiles is not paged.
  absl::StatusOr<v1::ListProfilesResponse> resp =
      Call(&Stub::ListProfiles, v1::ListProfilesRequest());
  if (!resp.ok()) return resp.status();
  return std::vector<v1::HardwareProfile>(resp->profiles().begin(),
                                          resp->profiles().end());
}

absl::StatusOr<std::vector<v1::Manager>> FabricClient::ListManagers() {
  absl::StatusOr<v1::ListManagersResponse> resp =
      Call(&Stub::ListManagers, v1::ListManagersRequest());
  if (!resp.ok()) return resp.status();
  return std::vector<v1::Manager>(resp->managers().begin(),
                                  resp->managers().end());
}

absl::Status FabricClient::Ping() {
  return Call(&Stub::Ping, v1::PingRequest()).status();
}

}  // namespace fabric::client
