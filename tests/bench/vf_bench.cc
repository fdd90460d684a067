// fabric-vf-bench: VF lending with the manager and three simulated agents as
// processes (n1 lends the VFs of agent/hw/sim/examples/one_pf.json to n0
// and n2), each figure next to the no-op Ping on the same manager in the
// same run:
//  - attach time to READY (CreateAttachment until the attachment's READY
//    event on a Watch stream: windows applied on both sides and the
//    borrower's shadow device built from the lender's config space), p50 and
//    p99 over --count attach/detach cycles;
//  - shadow config-space reads per second, through the manager's relay to
//    the borrower's agent: an emulated register (Vendor ID, answered by the
//    shadow) and a forwarded one (Command, read from the real VF through
//    the lender's agent);
//  - simulated MSI-X interrupts delivered per second by mode: each is raised
//    by the VF on the lender, crosses the fabric into the borrower's
//    doorbell page, and is decoded and delivered by the borrower's agent
//    (two agent RPCs each; vf_interrupt_bench measures the router alone).
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <CLI/CLI.hpp>
#include <condition_variable>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/mutex_mode.h"
#include "fabric/hypervisor/v1/hypervisor.grpc.pb.h"
#include "fabric/v1/diagnostics.pb.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "fabric/v1/resources.pb.h"
#include "tests/bench/bench_util.h"
#include "tests/bench/ready_watcher.h"
#include "tests/process/process_util.h"

namespace fabric::bench {
namespace {

struct Fail {
  std::string what;
};

template <typename Fn>
void Check(const grpc::Status& s, Fn what) {
  if (!s.ok()) throw Fail{absl::StrCat(what(), ": ", s.error_message())};
}

int Main(int argc, char** argv) {
  CLI::App app{"fabric-vf-bench: VF attach, shadow config and interrupt "
               "throughput against a no-op RPC"};
  int count = 100;
  int reads = 2000;
  int interrupts = 2000;
  std::string hardware = "agent/hw/sim/examples/one_pf.json";
  std::string output = "table";
  app.add_option("--count", count, "attach/detach cycles to time")
      ->capture_default_str();
  app.add_option("--reads", reads, "shadow config reads per register")
      ->capture_default_str();
  app.add_option("--interrupts", interrupts, "interrupts per mode")
      ->capture_default_str();
  app.add_option("--sim-hardware", hardware, "the lender's hardware file")
      ->capture_default_str();
  app.add_option("-o,--output", output, "table or json")
      ->check(CLI::IsMember({"table", "json"}));
  CLI11_PARSE(app, argc, argv);

  proctest::TempDir dir;
  // Plaintext on loopback, for the manager, the agents and this client.
  proctest::Manager manager = proctest::StartManager(
      dir.path() + "/fabric.db", dir.path() + "/manager.log", {"--insecure"});
  if (manager.port < 0) {
    std::cerr << "fabric-manager did not start:\n"
              << proctest::ReadFile(dir.path() + "/manager.log");
    return 1;
  }
  const std::string address = absl::StrCat("127.0.0.1:", manager.port);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = v1::FabricService::NewStub(channel);
  auto hypervisor = hypervisor::v1::HypervisorService::NewStub(channel);
  std::vector<std::unique_ptr<proctest::Child>> agents;
  try {
    v1::CreateFabricRequest fabric;
    fabric.mutable_spec()->set_name("bench");
    fabric.mutable_spec()->set_topology(v1::RING);
    fabric.mutable_spec()->set_default_export_size(64 << 20);
    for (int i = 0; i < 3; ++i) {
      v1::NodeSpec* n = fabric.mutable_spec()->add_nodes();
      n->set_name(absl::StrCat("n", i));
      if (i == 1) {
        n->set_mmio_base(0x300'0000'0000ull);
        n->set_mmio_size(64ull << 30);
      }
    }
    {
      grpc::ClientContext ctx;
      v1::Fabric out;
      Check(stub->CreateFabric(&ctx, fabric, &out),
            [] { return "create fabric"; });
    }
    for (int i = 0; i < 3; ++i) {
      std::vector<std::string> argv = {proctest::BinDir() + "/fabric-agent",
                                       "--manager",
                                       address,
                                       "--node",
                                       absl::StrCat("n", i),
                                       "--backend",
                                       "sim",
                                       "--sim-dir",
                                       dir.path() + "/sim",
                                       "--insecure"};
      if (i == 1) {
        argv.push_back("--sim-hardware");
        argv.push_back(hardware);
      }
      agents.push_back(std::make_unique<proctest::Child>(
          argv, absl::StrCat(dir.path(), "/agent-", i, ".log")));
    }
    // Every agent registered and applied, and the lender's VFs are in the
    // pool.
    if (!proctest::WaitFor([&] { return ReadyAppliedNodes(stub.get()) == 3; },
                           absl::Seconds(10), absl::Milliseconds(10))) {
      throw Fail{"the agents did not come up"};
    }
    if (!proctest::WaitFor(
            [&] {
              grpc::ClientContext ctx;
              v1::ListVirtualFunctionsRequest req;
              v1::ListVirtualFunctionsResponse resp;
              int healthy = 0;
              if (stub->ListVirtualFunctions(&ctx, req, &resp).ok()) {
                for (const auto& v : resp.virtual_functions()) {
                  healthy += v.health() == v1::VirtualFunction::HEALTHY;
                }
              }
              return healthy >= 2;
            },
            absl::Seconds(10), absl::Milliseconds(10))) {
      throw Fail{"the lender's VFs did not appear"};
    }

    // The no-op baseline.
    std::vector<double> ping_us;
    for (int i = 0; i < std::max(count, 200); ++i) {
      grpc::ClientContext ctx;
      v1::PingResponse resp;
      const auto t0 = Clock::now();
      Check(stub->Ping(&ctx, v1::PingRequest(), &resp),
            [] { return "ping"; });
      ping_us.push_back(Micros(Clock::now() - t0));
    }
    const double ping50 = Percentile(ping_us, 50);

    ReadyWatcher watcher(stub.get(), "attachments");
    auto attach = [&](const std::string& vf, const std::string& to,
                      const std::string& vm,
                      v1::Attachment::InterruptPolicy policy,
                      Clock::time_point* t0) {
      v1::CreateAttachmentRequest req;
      req.mutable_attachment()->set_vf(vf);
      req.mutable_attachment()->set_borrower(to);
      req.mutable_attachment()->set_vm(vm);
      req.mutable_attachment()->set_interrupts(policy);
      v1::Attachment a;
      grpc::ClientContext ctx;
      *t0 = Clock::now();
      Check(stub->CreateAttachment(&ctx, req, &a),
            [&] { return absl::StrCat("attach ", vf, " to ", to); });
      return a.name();
    };
    auto detach = [&](const std::string& name) {
      grpc::ClientContext ctx;
      v1::DeleteAttachmentRequest req;
      req.set_name(name);
      v1::Attachment out;
      Check(stub->DeleteAttachment(&ctx, req, &out),
            [&] { return absl::StrCat("detach ", name); });
    };

    // 1. Attach time to READY.
    std::vector<double> attach_us;
    for (int i = 0; i < count; ++i) {
      Clock::time_point t0, at;
      const std::string name =
          attach(absl::StrCat("n1/0000:3b:02.", i % 8), i % 2 ? "n2" : "n0",
                 "", v1::Attachment::AUTO, &t0);
      if (!watcher.Wait(name, &at, std::chrono::seconds(10))) throw Fail{name + " never became READY"};
      attach_us.push_back(Micros(at - t0));
      detach(name);
    }

    // 2. Shadow config reads through the manager.
    Clock::time_point t0, at;
    const std::string a0 =
        attach("n1/0000:3b:02.0", "n0", "vm0", v1::Attachment::AUTO, &t0);
    const std::string a1 = attach("n1/0000:3b:02.1", "n2", "vm2",
                                  v1::Attachment::HYPERVISOR, &t0);
    if (!watcher.Wait(a0, &at, std::chrono::seconds(10)) ||
        !watcher.Wait(a1, &at, std::chrono::seconds(10))) {
      throw Fail{"attachments for the read and interrupt runs not READY"};
    }
    auto shadow = [&](const std::string& att, v1::AccessShadowRequest::Op op,
                      uint32_t offset, uint32_t size) {
      v1::AccessShadowRequest req;
      req.set_attachment(att);
      req.set_space(v1::AccessShadowRequest::CONFIG);
      req.set_op(op);
      req.set_offset(offset);
      req.set_size(size);
      v1::AccessShadowResponse resp;
      grpc::ClientContext ctx;
      Check(stub->AccessShadow(&ctx, req, &resp),
            [&] { return absl::StrCat("shadow access on ", att); });
      return resp;
    };
    struct ReadRun {
      double per_s = 0, p50 = 0;
    };
    auto read_run = [&](uint32_t offset, uint32_t size) {
      std::vector<double> us;
      const auto start = Clock::now();
      for (int i = 0; i < reads; ++i) {
        const auto r0 = Clock::now();
        shadow(a0, v1::AccessShadowRequest::READ, offset, size);
        us.push_back(Micros(Clock::now() - r0));
      }
      ReadRun r;
      r.per_s = reads / (Micros(Clock::now() - start) / 1e6);
      r.p50 = Percentile(us, 50);
      return r;
    };
    const ReadRun emulated = read_run(0x00, 4);
    const ReadRun forwarded = read_run(0x04, 2);

    // 3. Interrupts by mode.
    shadow(a0, v1::AccessShadowRequest::DRIVER_SETUP, 0, 0);
    shadow(a1, v1::AccessShadowRequest::DRIVER_SETUP, 0, 0);
    auto set_vm = [&](const std::string& node, const std::string& vm,
                      bool running) {
      hypervisor::v1::SetVmStateRequest req;
      req.set_node(node);
      req.set_vm(vm);
      req.set_running(running);
      req.set_core(1);
      hypervisor::v1::SetVmStateResponse resp;
      grpc::ClientContext ctx;
      Check(hypervisor->SetVmState(&ctx, req, &resp),
            [&] { return "vm state"; });
    };
    struct IrqRun {
      double per_s = 0;
      int64_t direct = 0, hypervisor = 0, dropped = 0;
    };
    auto irq_run = [&](const std::string& att) {
      v1::RaiseVfInterruptRequest req;
      req.set_attachment(att);
      req.set_vector(0);
      req.set_count(interrupts);
      v1::RaiseVfInterruptResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::minutes(5));
      const auto start = Clock::now();
      Check(stub->RaiseVfInterrupt(&ctx, req, &resp),
            [&] { return absl::StrCat("interrupts on ", att); });
      IrqRun r;
      r.per_s = interrupts / (Micros(Clock::now() - start) / 1e6);
      r.direct = resp.delivered_direct();
      r.hypervisor = resp.delivered_via_hypervisor();
      r.dropped = resp.dropped();
      return r;
    };
    set_vm("n0", "vm0", true);
    const IrqRun direct = irq_run(a0);
    set_vm("n0", "vm0", false);
    const IrqRun queued = irq_run(a0);
    set_vm("n2", "vm2", true);
    const IrqRun exits = irq_run(a1);
    const int64_t lost = direct.dropped + queued.dropped + exits.dropped;
    detach(a0);
    detach(a1);

    const double att50 = Percentile(attach_us, 50);
    const double att99 = Percentile(attach_us, 99);
    if (output == "json") {
      std::cout << absl::StrFormat(
          "{\"attachments\":%d,\"attach_ready_p50_us\":%.1f,"
          "\"attach_ready_p99_us\":%.1f,\"ping_p50_us\":%.1f,"
          "\"ping_per_s\":%.0f,"
          "\"shadow_reads_emulated_per_s\":%.0f,"
          "\"shadow_reads_forwarded_per_s\":%.0f,"
          "\"shadow_read_emulated_p50_us\":%.1f,"
          "\"shadow_read_forwarded_p50_us\":%.1f,"
          "\"irq_direct_per_s\":%.0f,\"irq_hypervisor_queued_per_s\":%.0f,"
          "\"irq_hypervisor_exit_per_s\":%.0f,\"irq_dropped\":%d}\n",
          count, att50, att99, ping50, 1e6 / ping50, emulated.per_s,
          forwarded.per_s, emulated.p50, forwarded.p50, direct.per_s,
          queued.per_s, exits.per_s, lost);
    } else {
      std::cout << absl::StrFormat(
          "fabric-vf-bench: 3-node ring, agents as processes on the "
          "simulator, lender n1 (%s)\n"
          "no-op Ping: p50 %.0f us (%.0f/s serial)\n"
          "attach to READY (%d cycles): p50 %.0f us, p99 %.0f us "
          "(p50 = %.1fx Ping)\n"
          "shadow config reads (%d each, via the manager):\n"
          "  emulated (Vendor ID):      %.0f/s, p50 %.0f us (%.2fx Ping)\n"
          "  forwarded (Command, real VF via the lender): %.0f/s, p50 %.0f "
          "us (%.2fx Ping)\n"
          "interrupts (%d each, VF -> fabric -> borrower's doorbell -> "
          "router):\n"
          "  auto, VM running (direct):          %.0f/s (%d direct)\n"
          "  auto, VM stopped (hypervisor queue): %.0f/s (%d via hypervisor)\n"
          "  hypervisor policy, VM running:      %.0f/s (%d via hypervisor)\n"
          "  dropped: %d\n",
          hardware, ping50, 1e6 / ping50, count, att50, att99, att50 / ping50,
          reads, emulated.per_s, emulated.p50, emulated.p50 / ping50,
          forwarded.per_s, forwarded.p50, forwarded.p50 / ping50, interrupts,
          direct.per_s, direct.direct, queued.per_s, queued.hypervisor,
          exits.per_s, exits.hypervisor, lost);
    }
    const bool counted = direct.direct == interrupts &&
                         queued.hypervisor == interrupts &&
                         exits.hypervisor == interrupts;
    if (!counted || lost != 0) {
      std::cerr << "interrupts were not all delivered in their mode\n";
      return 1;
    }
  } catch (const Fail& f) {
    std::cerr << "fabric-vf-bench: " << f.what << "\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace fabric::bench

int main(int argc, char** argv) {
  fabric::DisableMutexDeadlockDetection();  // as the programs measured
  return fabric::bench::Main(argc, argv);
}
