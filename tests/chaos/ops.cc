#include "tests/chaos/ops.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <map>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/leader_channel.h"

namespace fabric::chaos {
namespace {

// How long ManagerConnection::Reconnect waits for each manager's answer.
constexpr absl::Duration kProbeTimeout = absl::Seconds(1);

}  // namespace

std::string ErrorText(const grpc::Status& s) {
  return absl::StrCat(s.error_code(), " ", s.error_message());
}

void SetDeadline(grpc::ClientContext* ctx, absl::Duration timeout) {
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

std::string FullNode(const std::string& node) {
  return absl::StartsWith(node, "nodes/") ? node : absl::StrCat("nodes/", node);
}

Attempt ToAttempt(const grpc::Status& s, std::string name) {
  Attempt a;
  a.outcome = Classify(s);
  a.code = s.error_code();
  if (s.ok()) {
    a.name = std::move(name);
  } else {
    a.error = ErrorText(s);
  }
  return a;
}

std::shared_ptr<grpc::Channel> Dial(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
  // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS is left alone: gRPC also takes it as
  // the minimum connect timeout, and at 20 ms handshakes with a busy,
  // just-restarted manager were cut short ("tcp handshaker shutdown").
  // One connection per channel, so that clients do not share one.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // Plaintext: the campaign's manager runs with --insecure on loopback.
  return grpc::CreateCustomChannel(absl::StrCat("ipv4:", address),
                                   grpc::InsecureChannelCredentials(), args);
}

ManagerConnection::ManagerConnection(std::vector<std::string> managers)
    : managers_(std::move(managers)), target_(managers_.front()) {
  Reconnect();
}

void ManagerConnection::Reconnect() {
  if (managers_.size() == 1) {
    stub_ = v1::FabricService::NewStub(Dial(target_));
    return;
  }
  // Fresh channels, starting where the last call went.
  std::vector<std::string> order = {target_};
  for (const std::string& m : managers_) {
    if (m != target_) order.push_back(m);
  }
  LeaderChannel leader(std::move(order), Dial);
  LeaderChannel::Endpoint last;
  leader.Call(
      [](const LeaderChannel::Endpoint& e, grpc::ClientContext& ctx) {
        SetDeadline(&ctx, kProbeTimeout);
        v1::ListFabricsRequest req;
        req.set_page_size(1);
        v1::ListFabricsResponse resp;
        return v1::FabricService::NewStub(e.channel)->ListFabrics(&ctx, req,
                                                                  &resp);
      },
      /*retry_safe=*/true, &last);
  target_ = last.target;
  stub_ = v1::FabricService::NewStub(last.channel);
}

Outcome Classify(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      return Outcome::kAcknowledged;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::UNIMPLEMENTED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::UNAUTHENTICATED:
      return Outcome::kRejected;
    default:
      return Outcome::kUnknown;
  }
}

// --- Storm ------------------------------------------------------------------

Storm::Storm(std::vector<ResourceOps*> ops, FabricInfo fabric,
             std::vector<std::string> managers, Ledger* ledger,
             StormOptions options)
    : ops_(std::move(ops)),
      fabric_(std::move(fabric)),
      managers_(std::move(managers)),
      ledger_(ledger),
      options_(options) {}

Storm::~Storm() { Stop(); }

void Storm::Start() {
  stop_ = false;
  for (int i = 0; i < options_.clients; ++i) {
    threads_.emplace_back([this, i] { ClientLoop(i); });
  }
}

void Storm::Stop() {
  stop_ = true;
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

StormStats Storm::stats() const {
  StormStats s;
  s.creates_acknowledged = creates_acknowledged_;
  s.creates_rejected = creates_rejected_;
  s.deletes_acknowledged = deletes_acknowledged_;
  s.deletes_rejected = deletes_rejected_;
  s.unknown_attempts = unknown_attempts_;
  return s;
}

ResourceOps* Storm::OpsFor(const std::string& kind) const {
  for (ResourceOps* op : ops_) {
    if (op->kind() == kind) return op;
  }
  return nullptr;
}

template <typename Until>
void Storm::DriveCreate(ManagerConnection* conn, ResourceOps* op,
                        size_t index, Until until) {
  const std::string request = ledger_->create(index).request;
  while (true) {
    Attempt a = op->Create(conn->stub(), request, options_.rpc_timeout);
    ledger_->NoteCreateAttempt(index, a.outcome, a.name, a.error);
    if (a.outcome == Outcome::kAcknowledged) {
      ++creates_acknowledged_;
      return;
    }
    if (a.outcome == Outcome::kRejected) {
      ++creates_rejected_;
      return;
    }
    ++unknown_attempts_;
    if (until()) return;
    if (a.code == grpc::StatusCode::UNAVAILABLE) conn->Reconnect();
    // A client's pause before retrying (load generation, as a real client
    // backs off), not a wait for a state.
    absl::SleepFor(options_.retry_pause);
  }
}

template <typename Until>
void Storm::DriveDelete(ManagerConnection* conn, ResourceOps* op,
                        size_t index, Until until) {
  const DeleteRecord d = ledger_->del(index);
  while (true) {
    Attempt a =
        op->Delete(conn->stub(), d.name, d.request_id, options_.rpc_timeout);
    ledger_->NoteDeleteAttempt(index, a.outcome, a.error);
    if (a.outcome == Outcome::kAcknowledged) {
      ++deletes_acknowledged_;
      return;
    }
    if (a.outcome == Outcome::kRejected) {
      ++deletes_rejected_;
      return;
    }
    ++unknown_attempts_;
    if (until()) return;
    if (a.code == grpc::StatusCode::UNAVAILABLE) conn->Reconnect();
    // A client's pause before retrying (load generation, as a real client
    // backs off), not a wait for a state.
    absl::SleepFor(options_.retry_pause);
  }
}

void Storm::ClientLoop(int client) {
  ManagerConnection conn(managers_);
  Rng rng(options_.seed ^ (0x9e3779b97f4a7c15ull * (client + 1)));
  int total_weight = 0;
  for (ResourceOps* op : ops_) total_weight += std::max(op->weight(), 0);
  if (total_weight == 0) return;
  // This client's live resources, by kind.
  std::map<std::string, std::vector<std::string>> held;
  auto stopping = [this] { return stop_.load(); };
  for (int seq = 0; !stop_; ++seq) {
    int pick = static_cast<int>(rng() % total_weight);
    ResourceOps* op = ops_.front();
    for (ResourceOps* o : ops_) {
      pick -= std::max(o->weight(), 0);
      if (pick < 0) {
        op = o;
        break;
      }
    }
    std::vector<std::string>& mine = held[op->kind()];
    const bool must_delete =
        static_cast<int>(mine.size()) >= options_.max_held_per_client;
    const double roll = std::uniform_real_distribution<double>(0, 1)(rng);
    if (!mine.empty() && (must_delete || roll < options_.delete_share)) {
      const size_t i = rng() % mine.size();
      DeleteRecord d;
      d.kind = op->kind();
      d.name = mine[i];
      d.request_id = absl::StrCat("chaos-del-", client, "-", seq);
      const size_t index = ledger_->AddDelete(std::move(d));
      DriveDelete(&conn, op, index, stopping);
      // Answered either way, or left unknown for Resolve: not ours any
      // more.
      mine.erase(mine.begin() + i);
      continue;
    }
    const std::string request_id = absl::StrCat("chaos-new-", client, "-", seq);
    std::optional<NewCreate> create =
        op->RandomCreate(conn.stub(), fabric_, request_id, rng);
    if (!create.has_value()) {
      // Nothing to create right now: the client pauses as a real one would
      // (load generation), not waiting for a particular state.
      absl::SleepFor(options_.retry_pause);
      continue;
    }
    CreateRecord c;
    c.kind = op->kind();
    c.request_id = request_id;
    c.spec = create->spec;
    c.request = std::move(create->request);
    const size_t index = ledger_->AddCreate(std::move(c));
    DriveCreate(&conn, op, index, stopping);
    const CreateRecord done = ledger_->create(index);
    if (done.outcome == Outcome::kAcknowledged) mine.push_back(done.name);
  }
}

int Storm::Resolve(absl::Time deadline) {
  ManagerConnection conn(managers_);
  auto past_deadline = [deadline] { return absl::Now() >= deadline; };
  int resolved = 0;
  const std::vector<CreateRecord> creates = ledger_->creates();
  for (size_t i = 0; i < creates.size(); ++i) {
    if (creates[i].outcome != Outcome::kUnknown) continue;
    ResourceOps* op = OpsFor(creates[i].kind);
    if (op == nullptr) continue;
    DriveCreate(&conn, op, i, past_deadline);
    resolved += ledger_->create(i).outcome != Outcome::kUnknown;
  }
  const std::vector<DeleteRecord> deletes = ledger_->deletes();
  for (size_t i = 0; i < deletes.size(); ++i) {
    if (deletes[i].outcome != Outcome::kUnknown) continue;
    ResourceOps* op = OpsFor(deletes[i].kind);
    if (op == nullptr) continue;
    DriveDelete(&conn, op, i, past_deadline);
    resolved += ledger_->del(i).outcome != Outcome::kUnknown;
  }
  return resolved;
}

}  // namespace fabric::chaos
