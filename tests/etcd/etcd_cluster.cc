#include "tests/etcd/etcd_cluster.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace fabric::etcdtest {
namespace {

// A port the kernel calls free right now on 127.0.0.1 (0 if none). Another
// process may take it before etcd binds it; Start retries then.
int PickFreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

std::string Url(int port) { return absl::StrCat("http://127.0.0.1:", port); }

std::shared_ptr<grpc::Channel> Dial(const std::string& address) {
  return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
}

}  // namespace

std::string EtcdCluster::Binary() {
  const char* bin = std::getenv("FABRIC_ETCD_BIN");
  return bin != nullptr ? bin : "/usr/bin/etcd";
}

absl::StatusOr<std::unique_ptr<EtcdCluster>> EtcdCluster::Start(int members) {
  if (members < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("members: ", members, "; an etcd cluster needs 1 or more"));
  }
  if (access(Binary().c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("no etcd at ", Binary(),
                     ": install etcd-server (./deploy/dev.sh deps) or set "
                     "FABRIC_ETCD_BIN"));
  }
  std::string last_logs;
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::unique_ptr<EtcdCluster> c(new EtcdCluster());
    c->token_ = absl::StrCat("fabric-test-", getpid(), "-", attempt);
    for (int i = 0; i < members; ++i) {
      Member m;
      m.name = absl::StrCat("e", i + 1);
      m.client_port = PickFreePort();
      m.peer_port = PickFreePort();
      m.data_dir = absl::StrCat(c->dir_.path(), "/", m.name);
      m.log_path = absl::StrCat(c->dir_.path(), "/", m.name, ".log");
      c->members_.push_back(std::move(m));
    }
    for (int i = 0; i < members; ++i) {
      c->members_[i].child.emplace(c->ArgvFor(i, /*existing=*/false),
                                   c->members_[i].log_path);
    }
    if (c->WaitHealthy(absl::Seconds(30))) return c;
    std::vector<std::string> logs;
    for (int i = 0; i < members; ++i) {
      logs.push_back(proctest::ReadFile(c->members_[i].log_path));
    }
    last_logs = absl::StrJoin(logs, "\n----\n");
    // The destructor kills this attempt's members; try fresh ports.
  }
  return absl::UnavailableError(absl::StrCat(
      "the etcd cluster did not come up in 3 attempts; last logs:\n",
      last_logs.substr(last_logs.size() > 4000 ? last_logs.size() - 4000 : 0)));
}

EtcdCluster::~EtcdCluster() {
  for (Member& m : members_) {
    if (m.child.has_value()) {
      m.child->Signal(SIGCONT);  // a stopped member still dies on SIGKILL
      m.child.reset();           // SIGKILL and reap
    }
  }
}

std::vector<std::string> EtcdCluster::ArgvFor(int i, bool existing) const {
  std::vector<std::string> peers;
  for (const Member& m : members_) {
    peers.push_back(absl::StrCat(m.name, "=", Url(m.peer_port)));
  }
  const Member& m = members_[i];
  return {Binary(),
          "--name", m.name,
          "--data-dir", m.data_dir,
          "--listen-client-urls", Url(m.client_port),
          "--advertise-client-urls", Url(m.client_port),
          "--listen-peer-urls", Url(m.peer_port),
          "--initial-advertise-peer-urls", Url(m.peer_port),
          "--initial-cluster", absl::StrJoin(peers, ","),
          "--initial-cluster-token", token_,
          "--initial-cluster-state", existing ? "existing" : "new",
          "--logger", "zap",
          "--log-outputs", "stderr"};
}

std::string EtcdCluster::ClientAddress(int i) const {
  return absl::StrCat("127.0.0.1:", members_[i].client_port);
}

std::string EtcdCluster::Endpoints() const {
  std::vector<std::string> all;
  for (int i = 0; i < size(); ++i) all.push_back(ClientAddress(i));
  return absl::StrJoin(all, ",");
}

std::string EtcdCluster::StoreUrl(absl::string_view prefix) const {
  return absl::StrCat("etcd://", Endpoints(), prefix);
}

std::string EtcdCluster::LogPath(int i) const { return members_[i].log_path; }

bool EtcdCluster::running(int i) const {
  return members_[i].child.has_value() && members_[i].child->pid() > 0;
}

pid_t EtcdCluster::pid(int i) const {
  return running(i) ? members_[i].child->pid() : -1;
}

void EtcdCluster::Kill(int i) {
  if (!members_[i].child.has_value()) return;
  members_[i].child->Signal(SIGCONT);
  members_[i].child.reset();
}

void EtcdCluster::Signal(int i, int sig) {
  if (members_[i].child.has_value()) members_[i].child->Signal(sig);
}

absl::Status EtcdCluster::Restart(int i) {
  if (running(i)) {
    return absl::FailedPreconditionError(
        absl::StrCat("etcd member ", members_[i].name, " is still running"));
  }
  members_[i].child.emplace(ArgvFor(i, /*existing=*/true),
                            members_[i].log_path);
  if (members_[i].child->pid() <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot start etcd member ", members_[i].name, "; see ",
        members_[i].log_path));
  }
  return absl::OkStatus();
}

std::pair<uint64_t, uint64_t> EtcdCluster::Ids(int i) const {
  auto stub = etcdserverpb::Maintenance::NewStub(Dial(ClientAddress(i)));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::seconds(1));
  etcdserverpb::StatusResponse resp;
  if (!stub->Status(&ctx, etcdserverpb::StatusRequest(), &resp).ok()) {
    return {0, 0};
  }
  return {resp.header().member_id(), resp.leader()};
}

bool EtcdCluster::Answers(int i) const { return Ids(i).second != 0; }

int EtcdCluster::RaftLeader() const {
  for (int i = 0; i < size(); ++i) {
    if (!running(i)) continue;
    const auto [self, leader] = Ids(i);
    if (self != 0 && self == leader) return i;
  }
  return -1;
}

absl::Status EtcdCluster::MoveRaftLeader(int to) {
  const int from = RaftLeader();
  if (from < 0) return absl::UnavailableError("etcd has no raft leader");
  if (from == to) return absl::OkStatus();
  const uint64_t target = Ids(to).first;
  if (target == 0) {
    return absl::UnavailableError(
        absl::StrCat("etcd member ", members_[to].name, " does not answer"));
  }
  auto stub = etcdserverpb::Maintenance::NewStub(Dial(ClientAddress(from)));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::seconds(10));
  etcdserverpb::MoveLeaderRequest req;
  req.set_targetid(target);
  etcdserverpb::MoveLeaderResponse resp;
  grpc::Status s = stub->MoveLeader(&ctx, req, &resp);
  if (!s.ok()) {
    return absl::UnavailableError(
        absl::StrCat("etcd MoveLeader: ", s.error_message()));
  }
  return absl::OkStatus();
}

bool EtcdCluster::QuorumRead(int i) const {
  auto stub = etcdserverpb::KV::NewStub(Dial(ClientAddress(i)));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::seconds(2));
  etcdserverpb::RangeRequest req;
  req.set_key("fabric-test-health");  // linearizable: needs quorum
  etcdserverpb::RangeResponse resp;
  return stub->Range(&ctx, req, &resp).ok();
}

bool EtcdCluster::WaitHealthy(absl::Duration timeout, int via) {
  return proctest::WaitFor(
      [&] {
        int first = -1;
        for (int i = 0; i < size(); ++i) {
          if (!running(i)) continue;
          int code = 0;
          if (members_[i].child->TryWait(&code)) {
            // Exited (a port taken, a bad flag): never healthy.
            return false;
          }
          if (first < 0) first = i;
          if (!Answers(i)) return false;
        }
        const int reader = via >= 0 ? via : first;
        return reader >= 0 && QuorumRead(reader);
      },
      timeout, absl::Milliseconds(50));
}

}  // namespace fabric::etcdtest
