// Process-level durability: the real fabric-manager, driven by the real
// fabricctl, is killed with SIGKILL while allocations are in flight. After a
// restart every acknowledged allocation and every map must be intact, and
// retrying the unacknowledged requests with their request ids must not
// allocate anything twice. Every process speaks mutual TLS.
#include <grpcpp/create_channel.h>
#include <signal.h>

#include <map>
#include <regex>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "fabric/v1/resources.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/process/process_util.h"
#include "tests/process/test_transport.h"

namespace fabric::proctest {
namespace {

constexpr int kNodes = 8;
constexpr int kClients = 24;

std::unique_ptr<v1::FabricService::Stub> Connect(int port) {
  return v1::FabricService::NewStub(
      Transport::Tls().DialManager(absl::StrCat("127.0.0.1:", port)));
}

std::vector<v1::Allocation> ListAllocations(v1::FabricService::Stub* stub) {
  grpc::ClientContext ctx;
  v1::ListAllocationsRequest req;
  req.set_page_size(1000);
  v1::ListAllocationsResponse resp;
  EXPECT_TRUE(stub->ListAllocations(&ctx, req, &resp).ok());
  return {resp.allocations().begin(), resp.allocations().end()};
}

std::vector<v1::AddressMap> ListMaps(v1::FabricService::Stub* stub) {
  grpc::ClientContext ctx;
  v1::ListAddressMapsRequest req;
  req.set_page_size(1000);
  v1::ListAddressMapsResponse resp;
  EXPECT_TRUE(stub->ListAddressMaps(&ctx, req, &resp).ok());
  return {resp.address_maps().begin(), resp.address_maps().end()};
}

TEST(ManagerKillTest, AcknowledgedAllocationsSurviveKill9) {
  TempDir dir;
  const std::string db = dir.path() + "/fabric.db";
  const std::string log = dir.path() + "/manager.log";
  Transport& tls = Transport::Tls();

  Manager m = StartManager(db, log, tls.ManagerFlags());
  ASSERT_GT(m.port, 0) << ReadFile(log);
  const std::string server = absl::StrCat("127.0.0.1:", m.port);

  std::vector<std::string> nodes;
  for (int i = 0; i < kNodes; ++i) nodes.push_back(absl::StrCat("n", i));
  std::string out, err;
  ASSERT_EQ(
      RunCommand(tls.Fabricctl(server, {"create", "ring", "lab", "--nodes",
                                        "n0,n1,n2,n3,n4,n5,n6,n7"}),
                 &out, &err),
      0)
      << err;
  // Some allocations acknowledged before the storm.
  std::set<std::string> acked;
  static const std::regex kName("allocations/alloc-[0-9a-f]+");
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(
        RunCommand(
            tls.Fabricctl(server, {"alloc", "mem", "--from", nodes[i], "--to",
                                   nodes[(i + 2) % kNodes], "--size", "2MiB",
                                   "--request-id", absl::StrCat("pre-", i)}),
            &out, &err),
        0)
        << err;
    std::smatch match;
    ASSERT_TRUE(std::regex_search(out, match, kName)) << out;
    acked.insert(match[0]);
  }
  auto stub = Connect(m.port);
  const std::vector<v1::AddressMap> maps_before = ListMaps(stub.get());

  // The storm: concurrent fabricctl processes, each with its own request id;
  // the manager is killed while they run.
  struct Attempt {
    std::string request_id, from, to;
    std::string out_path;
    std::unique_ptr<Child> child;
  };
  std::vector<Attempt> attempts(kClients);
  for (int i = 0; i < kClients; ++i) {
    Attempt& a = attempts[i];
    a.request_id = absl::StrCat("storm-", i);
    a.from = nodes[i % kNodes];
    a.to = nodes[(i + 1 + i / kNodes) % kNodes];
    a.out_path = absl::StrCat(dir.path(), "/ctl-", i, ".out");
    a.child = std::make_unique<Child>(
        tls.Fabricctl(server, {"--timeout", "3s", "alloc", "mem", "--from",
                               a.from, "--to", a.to, "--size", "1MiB",
                               "--request-id", a.request_id}),
        a.out_path);
  }
  // Kill once a quarter have been acknowledged, so the rest are in flight
  // (or after the timeout, whatever has been acknowledged by then).
  WaitFor(
      [&] {
        int done = 0;
        for (const Attempt& a : attempts) {
          done += std::regex_search(ReadFile(a.out_path), kName) ? 1 : 0;
        }
        return done >= kClients / 4;
      },
      absl::Seconds(2), absl::Milliseconds(2));
  m.child.Signal(SIGKILL);
  m.child.Wait();
  std::map<std::string, std::string> acked_by_request;
  for (Attempt& a : attempts) {
    const int code = a.child->Wait();
    std::string text = ReadFile(a.out_path);
    std::smatch match;
    if (code == 0) {
      ASSERT_TRUE(std::regex_search(text, match, kName)) << text;
      acked.insert(match[0]);
      acked_by_request[a.request_id] = match[0];
    }
  }
  std::cout << "acknowledged during the storm: " << acked_by_request.size()
            << " of " << kClients << "\n";

  // Restart on the same database.
  Manager again = StartManager(db, log, tls.ManagerFlags());
  ASSERT_GT(again.port, 0) << ReadFile(log);
  stub = Connect(again.port);
  std::set<std::string> present;
  for (const auto& a : ListAllocations(stub.get())) present.insert(a.name());
  for (const auto& name : acked) {
    EXPECT_TRUE(present.count(name)) << name << " was acknowledged but lost";
  }
  // Routing entries are intact; windows of acknowledged allocations exist.
  const std::vector<v1::AddressMap> maps_after = ListMaps(stub.get());
  ASSERT_EQ(maps_after.size(), maps_before.size());
  for (size_t i = 0; i < maps_after.size(); ++i) {
    ASSERT_EQ(maps_after[i].entries_size(), maps_before[i].entries_size());
    for (int e = 0; e < maps_after[i].entries_size(); ++e) {
      EXPECT_EQ(maps_after[i].entries(e).SerializeAsString(),
                maps_before[i].entries(e).SerializeAsString())
          << maps_after[i].name();
    }
  }
  std::set<std::string> windows;
  for (const auto& map : maps_after)
    for (const auto& w : map.windows()) windows.insert(w.allocation());
  for (const auto& name : acked) EXPECT_TRUE(windows.count(name)) << name;

  // Retrying every storm request with its request id completes it exactly
  // once: acknowledged ones return the same allocation.
  for (Attempt& a : attempts) {
    ASSERT_EQ(RunCommand(tls.Fabricctl(
                             absl::StrCat("127.0.0.1:", again.port),
                             {"alloc", "mem", "--from", a.from, "--to", a.to,
                              "--size", "1MiB", "--request-id", a.request_id}),
                         &out, &err),
              0)
        << a.request_id << ": " << err;
    std::smatch match;
    ASSERT_TRUE(std::regex_search(out, match, kName)) << out;
    auto it = acked_by_request.find(a.request_id);
    if (it != acked_by_request.end()) {
      EXPECT_EQ(match[0], it->second);
    }
  }
  EXPECT_EQ(ListAllocations(stub.get()).size(), 4u + kClients)
      << "a retried request allocated twice, or one was lost";
}

}  // namespace
}  // namespace fabric::proctest
