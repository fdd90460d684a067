// The chaos campaign's load: concurrent clients creating and deleting fabric
// resources over gRPC, every operation entered in a Ledger.
//
// The storm knows nothing about any one kind of resource: each kind is a
// ResourceOps (how to make a random create request, create, delete, list,
// verify). Memory allocations are AllocationOps (allocation_ops.h), SR-IOV
// VF attachments AttachmentOps (attachment_ops.h); both are leases and share
// one lifecycle (LeaseOps, lease_ops.h). Another kind that is created and
// deleted with request ids is added by implementing ResourceOps (or
// LeaseOps, for another lease) and listing it where the campaign builds its
// ops (MakeResourceOps in campaign.cc); the storm, the ledger, the resolve
// step, the convergence wait, the checks and the final release pick it up.
#ifndef FABRIC_TESTS_CHAOS_OPS_H_
#define FABRIC_TESTS_CHAOS_OPS_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "tests/chaos/ledger.h"

namespace fabric::chaos {

using Rng = std::mt19937_64;

// A channel of its own (not shared with other channels) to the manager at
// `address`, an IPv4 HOST:PORT, with a short reconnect backoff.
std::shared_ptr<grpc::Channel> Dial(const std::string& address);

// A client's way to the manager: one address, or the managers of an HA
// pair (issue 14), whose leader it follows through common/leader_channel.h.
// Not thread-safe: one per client thread.
class ManagerConnection {
 public:
  // `managers`: at least one IPv4 HOST:PORT. With several, the constructor
  // already looks for the leader (Reconnect).
  explicit ManagerConnection(std::vector<std::string> managers);

  // The stub calls go through now; valid until the next Reconnect.
  v1::FabricService::Stub* stub() const { return stub_.get(); }
  // Where stub() goes.
  const std::string& target() const { return target_; }

  // After a call on stub() failed with UNAVAILABLE: a fresh channel (gRPC's
  // reconnect backoff would keep the client away from a restarted manager
  // for seconds). With several managers, one probe (ListFabrics, retried by
  // LeaderChannel on the leader a standby names, or on the next address)
  // finds the leader and the stub goes there; when none answers it goes to
  // the last address tried.
  void Reconnect();

 private:
  const std::vector<std::string> managers_;
  std::string target_;
  std::unique_ptr<v1::FabricService::Stub> stub_;
};

// OK is acknowledged; codes that mean "refused, nothing done" are rejected;
// the rest (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, ABORTED, INTERNAL,
// UNKNOWN, ...) leave the outcome unknown.
Outcome Classify(const grpc::Status& s);

// One RPC attempt's result.
struct Attempt {
  Outcome outcome = Outcome::kUnknown;
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string name;   // create: the resource acknowledged
  std::string error;  // "CODE message" unless OK
};

// The Attempt a gRPC status makes; `name` is kept when it is OK.
Attempt ToAttempt(const grpc::Status& s, std::string name);

// "CODE message" of a gRPC status.
std::string ErrorText(const grpc::Status& s);
// Sets `ctx`'s deadline `timeout` from now.
void SetDeadline(grpc::ClientContext* ctx, absl::Duration timeout);
// "nodes/NODE" for "NODE" or "nodes/NODE".
std::string FullNode(const std::string& node);

// A create request ready to send.
struct NewCreate {
  std::string spec;     // CreateRecord::spec
  std::string request;  // serialized request message
};

// What a ResourceOps is told about the fabric.
struct FabricInfo {
  std::string fabric;              // fabric id
  std::vector<std::string> nodes;  // node ids, ring order
};

// The create/delete operations of one kind of resource. Implementations
// must be thread-safe (all storm clients share one).
class ResourceOps {
 public:
  virtual ~ResourceOps() = default;

  // The collection, e.g. "allocations"; the kind of its ledger records.
  virtual std::string kind() const = 0;
  // Relative share of the storm's operations.
  virtual int weight() const { return 1; }

  // A random create request carrying `request_id`, or nullopt when none can
  // be made now (e.g. nothing free to lend).
  virtual std::optional<NewCreate> RandomCreate(v1::FabricService::Stub* stub,
                                                const FabricInfo& fabric,
                                                const std::string& request_id,
                                                Rng& rng) = 0;
  // Sends `request` (from RandomCreate) once.
  virtual Attempt Create(v1::FabricService::Stub* stub,
                         const std::string& request,
                         absl::Duration timeout) = 0;
  // Deletes `name` once.
  virtual Attempt Delete(v1::FabricService::Stub* stub, const std::string& name,
                         const std::string& request_id,
                         absl::Duration timeout) = 0;
  // Everything of this kind the manager holds, with specs comparable to
  // NewCreate::spec.
  virtual absl::StatusOr<std::vector<ObservedResource>> List(
      v1::FabricService::Stub* stub) = 0;
  // Whether `r` has settled (e.g. READY or DEGRADED, not PENDING).
  virtual bool Settled(const ObservedResource& r) const = 0;
  // Proves a settled resource end to end. OK; FAILED_PRECONDITION when it is
  // not in a state that can be proven (e.g. DEGRADED: skipped); any other
  // error says what failed.
  virtual absl::Status Verify(v1::FabricService::Stub* stub,
                              const ObservedResource& r) = 0;
};

struct StormOptions {
  int clients = 4;
  // Seeds the clients' choices (not their timing).
  uint64_t seed = 1;
  absl::Duration rpc_timeout = absl::Seconds(3);
  // A client with resources deletes one with this probability...
  double delete_share = 0.4;
  // ...and always once it holds this many.
  int max_held_per_client = 16;
  // Pause before retrying an operation whose outcome was unknown.
  absl::Duration retry_pause = absl::Milliseconds(25);
};

// Counters of one storm.
struct StormStats {
  int64_t creates_acknowledged = 0;
  int64_t creates_rejected = 0;
  int64_t deletes_acknowledged = 0;
  int64_t deletes_rejected = 0;
  // Attempts whose outcome was unknown (each was retried).
  int64_t unknown_attempts = 0;
};

// Runs `clients` threads, each looping: pick a ResourceOps by weight, then
// delete one of its own resources or create a new one; an attempt with an
// unknown outcome is retried with the same request id until it is answered
// or the storm stops. Every operation is entered in the ledger before it is
// sent.
class Storm {
 public:
  // `ops` and `ledger` are not owned and must outlive the storm. `managers`
  // as for ManagerConnection.
  Storm(std::vector<ResourceOps*> ops, FabricInfo fabric,
        std::vector<std::string> managers, Ledger* ledger,
        StormOptions options);
  ~Storm();

  void Start();
  // Stops the clients; an operation in flight ends as it ends (answered, or
  // left unknown in the ledger).
  void Stop();

  // Retries every ledger entry whose outcome is still unknown with its
  // request id, until it is answered or `deadline`. Returns how many it
  // resolved.
  int Resolve(absl::Time deadline);

  StormStats stats() const;

 private:
  void ClientLoop(int client);
  // Retries the create or delete at `index` until answered or `until`
  // returns true; after an UNAVAILABLE, on a reconnected `conn`.
  template <typename Until>
  void DriveCreate(ManagerConnection* conn, ResourceOps* op, size_t index,
                   Until until);
  template <typename Until>
  void DriveDelete(ManagerConnection* conn, ResourceOps* op, size_t index,
                   Until until);
  ResourceOps* OpsFor(const std::string& kind) const;

  const std::vector<ResourceOps*> ops_;
  const FabricInfo fabric_;
  const std::vector<std::string> managers_;
  Ledger* const ledger_;
  const StormOptions options_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  std::atomic<int64_t> creates_acknowledged_{0};
  std::atomic<int64_t> creates_rejected_{0};
  std::atomic<int64_t> deletes_acknowledged_{0};
  std::atomic<int64_t> deletes_rejected_{0};
  std::atomic<int64_t> unknown_attempts_{0};
};

}  // namespace fabric::chaos

#endif  // FABRIC_TESTS_CHAOS_OPS_H_
