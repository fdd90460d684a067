// Records when allocations and attachments turn READY, from a Watch stream,
// for the benchmarks that time CreateX -> READY.
#ifndef FABRIC_TESTS_BENCH_READY_WATCHER_H_
#define FABRIC_TESTS_BENCH_READY_WATCHER_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "fabric/v1/fabric_service.grpc.pb.h"
#include "fabric/v1/resources.pb.h"
#include "tests/bench/bench_util.h"

namespace fabric::bench {

class ReadyWatcher {
 public:
  // Watches `collection` ("allocations" or "attachments").
  ReadyWatcher(v1::FabricService::Stub* stub, const std::string& collection) {
    v1::WatchRequest req;
    req.add_collections(collection);
    reader_ = stub->Watch(&ctx_, req);
    thread_ = std::thread([this] {
      v1::WatchEvent e;
      while (reader_->Read(&e)) {
        std::string name;
        if (e.has_allocation() &&
            e.allocation().state() == v1::Allocation::READY) {
          name = e.allocation().name();
        } else if (e.has_attachment() &&
                   e.attachment().state() == v1::Attachment::READY) {
          name = e.attachment().name();
        } else {
          continue;
        }
        std::lock_guard<std::mutex> l(mu_);
        ready_.emplace(name, Clock::now());
        cv_.notify_all();
      }
    });
  }
  ~ReadyWatcher() {
    ctx_.TryCancel();
    thread_.join();
  }
  // When `name` turned READY; false after `timeout`.
  bool Wait(const std::string& name, Clock::time_point* at,
            std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> l(mu_);
    if (!cv_.wait_for(l, timeout, [&] { return ready_.count(name) > 0; })) {
      return false;
    }
    *at = ready_[name];
    ready_.erase(name);
    return true;
  }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::WatchEvent>> reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Clock::time_point> ready_;
  std::thread thread_;
};

// How many nodes have a READY agent that has applied its desired
// generation (0 when ListNodes fails); benchmarks wait for all of them
// before they start timing.
inline int ReadyAppliedNodes(v1::FabricService::Stub* stub) {
  grpc::ClientContext ctx;
  v1::ListNodesRequest req;
  v1::ListNodesResponse resp;
  int ready = 0;
  if (stub->ListNodes(&ctx, req, &resp).ok()) {
    for (const auto& n : resp.nodes()) {
      ready += n.agent_state() == v1::Node::READY &&
               n.applied_generation() == n.desired_generation();
    }
  }
  return ready;
}

}  // namespace fabric::bench

#endif  // FABRIC_TESTS_BENCH_READY_WATCHER_H_
