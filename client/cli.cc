#include "client/cli.h"

#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/commands.h"
#include "client/fabric_client.h"
#include "client/output.h"
#include "common/leader_channel.h"
#include "common/security/tls.h"
#include "common/security/tls_flags.h"
#include "common/status_macros.h"
#include "common/units.h"

namespace fabric::client {
namespace {

// Flag values as CLI11 fills them in; validated by Run().
struct Flags {
  std::string server = kDefaultServer;
  std::string output = "table";
  std::string timeout = "10s";
  // --tls-cert/--tls-key/--tls-ca/--insecure (FABRIC_TLS_* fill the gaps).
  security::TlsConfig tls;

  // create ring|star
  std::string fabric_name;
  std::vector<std::string> nodes;
  std::string hub;
  std::string profile;
  std::string export_size;

  // apply
  std::string file;

  // get / describe
  std::string kind;
  std::string name;
  std::string fabric_filter;
  std::string node_filter;
  std::string limit;

  // alloc mem
  std::string from, to, size, owner, ttl, request_id;
  std::vector<std::string> labels;
  bool wait = false;
  std::string wait_timeout = "30s";

  // release, link, delete
  std::string alloc_id;
  std::string link_a, link_b;
  bool force = false;
  bool all = false;

  // vf attach (with owner, request_id, wait, wait_timeout above)
  std::string vf, borrower, vm;
  std::string interrupts = "auto";
  std::string dma_size;

  // vf detach|config|setup|verify|interrupt
  std::string attachment_id;
  std::string config_op, config_offset, config_value;
  std::string config_size = "4";
  bool msix_table = false;
  std::string probe_size;
  std::string vector = "0";
  std::string count = "1";

  // vm start|stop
  std::string vm_node, vm_name;
  std::string core = "0";

  // audit (with limit above)
  std::string identity, method, code, since;
};

struct Subcommands {
  CLI::App* create_ring;
  CLI::App* create_star;
  CLI::App* apply;
  CLI::App* get;
  CLI::App* describe;
  CLI::App* alloc_mem;
  CLI::App* release;
  CLI::App* link_up;
  CLI::App* link_down;
  CLI::App* delete_fabric;
  CLI::App* verify;
  CLI::App* vf_attach;
  CLI::App* vf_detach;
  CLI::App* vf_config;
  CLI::App* vf_setup;
  CLI::App* vf_verify;
  CLI::App* vf_interrupt;
  CLI::App* vm_start;
  CLI::App* vm_stop;
  CLI::App* audit;
};

Subcommands Define(CLI::App& app, Flags& f) {
  app.require_subcommand(1);
  // Global flags may come after the subcommand ("get nodes -o json").
  app.fallthrough();
  app.add_option("--server,--manager", f.server,
                 "fabric-manager address host:port, or the managers of an HA "
                 "fabric host:port,host:port,... whose leader is followed "
                 "(env FABRIC_SERVER)")
      ->envname("FABRIC_SERVER")
      ->capture_default_str();
  app.add_option("-o,--output", f.output, "output format: table or json")
      ->capture_default_str();
  app.add_option("--timeout", f.timeout, "deadline of each RPC, e.g. 10s")
      ->capture_default_str();
  security::AddTlsFlags(app, &f.tls);

  Subcommands s;
  auto add_fabric_flags = [&f](CLI::App* c) {
    c->add_option("NAME", f.fabric_name, "fabric name")->required();
    // Split by ParseNameList, which refuses empty names (CLI11's delimiter
    // drops them silently).
    c->add_option("--nodes", f.nodes, "node names, comma-separated")
        ->required();
    c->add_option("--profile", f.profile,
                  "default hardware profile (see 'get profiles')");
    c->add_option("--export", f.export_size,
                  "memory each node lends, e.g. 1GiB (default 1 GiB)");
  };
  CLI::App* create = app.add_subcommand("create", "create a fabric");
  create->require_subcommand(1);
  s.create_ring = create->add_subcommand("ring", "create a RING fabric");
  add_fabric_flags(s.create_ring);
  s.create_star = create->add_subcommand("star", "create a STAR fabric");
  add_fabric_flags(s.create_star);
  s.create_star->add_option("--hub", f.hub, "the management host")
      ->required();

  s.apply = app.add_subcommand(
      "apply", "create the fabric described by a FabricSpec JSON file");
  s.apply->add_option("-f,--filename", f.file, "FabricSpec in protobuf JSON")
      ->required();

  s.get = app.add_subcommand(
      "get",
      "list resources: fabrics, nodes, bridges, links, maps, allocations, "
      "profiles, vfs, attachments; and managers (role, store, lease)");
  s.get->add_option("KIND", f.kind, "resource type")->required();
  s.get->add_option("NAME", f.name,
                    "one resource (a VF: n1/0000:3b:00.4 or "
                    "nodes/n1/vfs/0000-3b-00.4)");
  s.get->add_option("--fabric", f.fabric_filter, "only this fabric's");
  s.get->add_option("--node", f.node_filter,
                    "allocations: only those it borrows or lends; vfs: only "
                    "this node's; attachments: only those lent by or to it");
  s.get->add_option("--limit", f.limit,
                    "list at most this many (default: all, page by page)");

  s.describe = app.add_subcommand(
      "describe",
      "show one fabric, node, bridge, allocation, vf or attachment in "
      "detail");
  s.describe->add_option("KIND", f.kind, "resource type")->required();
  s.describe->add_option("NAME", f.name, "resource name")->required();

  CLI::App* alloc = app.add_subcommand("alloc", "allocate resources");
  alloc->require_subcommand(1);
  s.alloc_mem = alloc->add_subcommand(
      "mem", "lend memory of --to to --from (CreateAllocation)");
  s.alloc_mem->add_option("--from", f.from, "borrower node")->required();
  s.alloc_mem->add_option("--to", f.to, "target node (lends the memory)")
      ->required();
  s.alloc_mem->add_option("--size", f.size, "bytes, e.g. 4MiB")->required();
  s.alloc_mem->add_option("--owner", f.owner, "who holds it");
  s.alloc_mem->add_option("--label", f.labels, "key=value (repeatable)");
  s.alloc_mem->add_option("--ttl", f.ttl, "lease, e.g. 30s, 5m, 1h");
  s.alloc_mem->add_option("--request-id", f.request_id,
                          "idempotency key (default: random)");
  s.alloc_mem->add_flag("--wait", f.wait, "wait until READY");
  s.alloc_mem->add_option("--wait-timeout", f.wait_timeout,
                          "how long --wait waits")
      ->capture_default_str();

  s.release = app.add_subcommand("release", "release an allocation");
  s.release->add_option("ID", f.alloc_id, "alloc-x or allocations/alloc-x")
      ->required();
  s.release->add_option("--request-id", f.request_id,
                        "idempotency key (default: random)");

  s.verify = app.add_subcommand(
      "verify", "prove allocations by bytes through the agents' data paths");
  s.verify->add_option("ID", f.alloc_id, "alloc-x or allocations/alloc-x");
  s.verify->add_flag("--all", f.all, "every READY allocation");

  CLI::App* link = app.add_subcommand("link", "set a link up or down");
  link->require_subcommand(1);
  s.link_down = link->add_subcommand("down", "take the link A--B down");
  s.link_up = link->add_subcommand("up", "bring the link A--B up");
  for (CLI::App* c : {s.link_down, s.link_up}) {
    c->add_option("A", f.link_a, "one end (bridge or node)")->required();
    c->add_option("B", f.link_b, "the other end")->required();
  }

  CLI::App* del = app.add_subcommand("delete", "delete a resource");
  del->require_subcommand(1);
  s.delete_fabric = del->add_subcommand("fabric", "delete a fabric");
  s.delete_fabric->add_option("NAME", f.fabric_name, "fabric name")
      ->required();
  s.delete_fabric->add_flag(
      "--force", f.force, "release its allocations first");

  CLI::App* vf = app.add_subcommand(
      "vf", "lend SR-IOV virtual functions to other nodes and drive them");
  vf->require_subcommand(1);
  s.vf_attach = vf->add_subcommand(
      "attach", "lend a VF to a borrower node (CreateAttachment)");
  s.vf_attach
      ->add_option("--vf", f.vf,
                   "the VF: NODE/BDF (n1/0000:3b:00.4) or "
                   "nodes/n1/vfs/0000-3b-00.4")
      ->required();
  s.vf_attach->add_option("--to", f.borrower, "borrower node")->required();
  s.vf_attach->add_option("--vm", f.vm,
                          "the VM on the borrower that gets it (default: "
                          "the host)");
  s.vf_attach
      ->add_option("--interrupts", f.interrupts,
                   "delivery: direct, hypervisor or auto (direct while the "
                   "VM runs)")
      ->capture_default_str();
  s.vf_attach->add_option("--dma-size", f.dma_size,
                          "borrower memory the VF may DMA into (default "
                          "1MiB)");
  s.vf_attach->add_option("--owner", f.owner, "who holds it");
  s.vf_attach->add_option("--request-id", f.request_id,
                          "idempotency key (default: random)");
  s.vf_attach->add_flag("--wait", f.wait, "wait until READY");
  s.vf_attach
      ->add_option("--wait-timeout", f.wait_timeout, "how long --wait waits")
      ->capture_default_str();

  s.vf_detach = vf->add_subcommand(
      "detach", "end an attachment; the VF returns to its lender");
  s.vf_detach->add_option("ID", f.attachment_id, "att-x or attachments/att-x")
      ->required();
  s.vf_detach->add_option("--request-id", f.request_id,
                          "idempotency key (default: random)");

  s.vf_config = vf->add_subcommand(
      "config",
      "read or write the shadow device's config space (or MSI-X table) as "
      "the borrower's driver would");
  s.vf_config->add_option("ID", f.attachment_id, "att-x or attachments/att-x")
      ->required();
  s.vf_config->add_option("OP", f.config_op, "read or write")->required();
  s.vf_config
      ->add_option("OFFSET", f.config_offset, "byte offset, decimal or 0x hex")
      ->required();
  s.vf_config->add_option("VALUE", f.config_value,
                          "write: the value, decimal or 0x hex");
  s.vf_config->add_option("--size", f.config_size, "access size: 1, 2 or 4")
      ->capture_default_str();
  s.vf_config->add_flag("--msix-table", f.msix_table,
                        "the MSI-X table instead of config space (dwords)");

  s.vf_setup = vf->add_subcommand(
      "setup",
      "start the shadow device as a driver would: enable it and point every "
      "MSI-X vector at its doorbell");
  s.vf_setup->add_option("ID", f.attachment_id, "att-x or attachments/att-x")
      ->required();

  s.vf_verify = vf->add_subcommand(
      "verify",
      "prove an attachment by bytes: the VF DMAs a pattern that the "
      "borrower reads back");
  s.vf_verify->add_option("ID", f.attachment_id, "att-x or attachments/att-x")
      ->required();
  s.vf_verify->add_option("--probe-size", f.probe_size,
                          "bytes of the pattern (default 4KiB)");

  s.vf_interrupt = vf->add_subcommand(
      "interrupt",
      "make the VF raise an MSI-X vector and show how it was delivered");
  s.vf_interrupt
      ->add_option("ID", f.attachment_id, "att-x or attachments/att-x")
      ->required();
  s.vf_interrupt->add_option("--vector", f.vector, "MSI-X vector")
      ->capture_default_str();
  s.vf_interrupt
      ->add_option("--count", f.count, "how many times (at most 100000)")
      ->capture_default_str();

  CLI::App* vm = app.add_subcommand(
      "vm", "tell a borrower's hypervisor that a VM started or stopped");
  vm->require_subcommand(1);
  s.vm_start = vm->add_subcommand(
      "start",
      "the VM entered guest mode on --core; interrupts queued for it are "
      "injected");
  s.vm_stop = vm->add_subcommand(
      "stop",
      "the VM left guest mode; its interrupts are queued until it starts");
  for (CLI::App* c : {s.vm_start, s.vm_stop}) {
    c->add_option("NODE", f.vm_node, "the borrower node")->required();
    c->add_option("VM", f.vm_name, "the VM")->required();
  }
  s.vm_start->add_option("--core", f.core, "the core it runs on")
      ->capture_default_str();

  s.audit = app.add_subcommand(
      "audit",
      "read the manager's audit log: who changed what, and which calls were "
      "refused (admin)");
  s.audit->add_option("--identity", f.identity,
                      "only this caller's, e.g. user/alice");
  s.audit->add_option("--method", f.method,
                      "only this method's, e.g. CreateAllocation");
  s.audit->add_option("--code", f.code,
                      "only this outcome's, e.g. PERMISSION_DENIED; ERROR: "
                      "every refusal and failure");
  s.audit->add_option("--since", f.since,
                      "only from this time (2026-12-05T20:00:00Z) or this "
                      "long ago (90m)");
  s.audit->add_option("--limit", f.limit,
                      "at most this many (default: all, page by page)");
  return s;
}

absl::StatusOr<uint64_t> Size(const std::string& text,
                              absl::string_view flag) {
  absl::StatusOr<uint64_t> size = ParseSize(text, flag);
  if (!size.ok()) return UsageError(size.status().message());
  return size;
}

// Usage error unless `server` (--server or FABRIC_SERVER) is HOST:PORT, or
// a comma-separated list of them (the managers of an HA fabric), with ports
// that can be connected to (1-65535).
absl::Status CheckServer(const std::string& server) {
  const std::string hint = absl::StrCat(
      "set --server or FABRIC_SERVER to HOST:PORT, e.g. ", kDefaultServer,
      ", or to the list of managers, e.g. m1:7070,m2:7070");
  absl::StatusOr<std::vector<std::string>> list =
      ParseManagerList("--server", server);
  if (!list.ok()) return WithHint(UsageError(list.status().message()), hint);
  return absl::OkStatus();
}

// The transport fabricctl dials with: the --tls-* flags, each file still
// missing taken from FABRIC_TLS_CERT/KEY/CA (an explicit --insecure takes
// none of them), checked by security::CheckTransport. A usage error says
// what is missing or wrong before anything is dialed.
absl::StatusOr<security::TlsConfig> Transport(const Flags& f) {
  security::TlsConfig tls = f.tls;
  security::ApplyTlsEnvironment(&tls);
  // Every manager of the list is checked (plaintext only on loopback).
  absl::StatusOr<std::vector<std::string>> servers =
      ParseManagerList("--server", f.server);
  absl::Status status = servers.status();
  for (const std::string& server : servers.value_or(std::vector<std::string>())) {
    status = security::CheckTransport("fabricctl", tls, server);
    if (!status.ok()) break;
  }
  if (!status.ok()) {
    return WithHint(UsageError(status.message()),
                    "the certificate files may also come from "
                    "FABRIC_TLS_CERT, FABRIC_TLS_KEY and FABRIC_TLS_CA");
  }
  return tls;
}

// Validates the parsed flags and runs the chosen command. Every flag value
// is checked (usage errors) before the client connects.
absl::Status Dispatch(const Flags& f, const Subcommands& s,
                      std::ostream& out) {
  absl::StatusOr<OutputFormat> format = ParseOutputFormat(f.output);
  if (!format.ok()) return UsageError(format.status().message());
  ASSIGN_OR_RETURN(absl::Duration timeout,
                   ParseDurationFlag(f.timeout, "--timeout"));
  RETURN_IF_ERROR(CheckServer(f.server));

  // Everything the chosen command needs, validated before connecting.
  std::optional<v1::FabricSpec> spec;
  std::optional<ResourceKind> kind;
  std::optional<AllocOptions> alloc;
  std::optional<AttachOptions> attach;
  std::optional<ShadowAccessOptions> access;
  std::optional<AuditOptions> audit;
  uint32_t probe_size = 0;
  int64_t limit = 0;
  int vector = 0, count = 1, core = 0;
  if (!f.limit.empty()) {  // get and audit
    ASSIGN_OR_RETURN(uint64_t n, ParseNumberFlag(f.limit, "--limit", INT32_MAX));
    if (n == 0) return UsageError("--limit: must be at least 1");
    limit = static_cast<int64_t>(n);
  }
  if (s.create_ring->parsed() || s.create_star->parsed()) {
    ASSIGN_OR_RETURN(std::vector<std::string> nodes,
                     ParseNameList(f.nodes, "--nodes"));
    uint64_t export_size = 0;
    if (!f.export_size.empty()) {
      ASSIGN_OR_RETURN(export_size, Size(f.export_size, "--export"));
    }
    spec = s.create_ring->parsed()
               ? RingSpec(f.fabric_name, nodes, f.profile, export_size)
               : StarSpec(f.fabric_name, f.hub, nodes, f.profile, export_size);
  } else if (s.get->parsed() || s.describe->parsed()) {
    ASSIGN_OR_RETURN(kind, ParseResourceKind(f.kind));
    RETURN_IF_ERROR(CheckNodeFilter(*kind, f.node_filter));
  } else if (s.audit->parsed()) {
    AuditOptions a;
    a.identity = f.identity;
    a.method = f.method;
    a.code = absl::AsciiStrToUpper(f.code);
    if (!f.since.empty()) {
      ASSIGN_OR_RETURN(a.since, ParseSince(f.since, absl::Now()));
    }
    audit = std::move(a);
  } else if (s.vf_attach->parsed()) {
    AttachOptions a;
    a.vf = f.vf;
    a.borrower = f.borrower;
    a.vm = f.vm;
    ASSIGN_OR_RETURN(a.interrupts, ParseInterruptPolicy(f.interrupts));
    if (a.interrupts == v1::Attachment::HYPERVISOR && a.vm.empty()) {
      return UsageError(
          "--interrupts: hypervisor delivery needs --vm (a device the host "
          "owns has no guest to inject into)");
    }
    if (!f.dma_size.empty()) {
      ASSIGN_OR_RETURN(a.dma_size, Size(f.dma_size, "--dma-size"));
      if (a.dma_size == 0) {
        return UsageError("--dma-size: must be larger than 0");
      }
    }
    a.owner = f.owner;
    a.request_id = f.request_id;
    a.wait = f.wait;
    ASSIGN_OR_RETURN(a.wait_timeout,
                     ParseDurationFlag(f.wait_timeout, "--wait-timeout"));
    attach = std::move(a);
  } else if (s.vf_config->parsed()) {
    ShadowAccessOptions a;
    a.attachment = f.attachment_id;
    a.msix_table = f.msix_table;
    const std::string op = absl::AsciiStrToLower(f.config_op);
    if (op != "read" && op != "write") {
      return UsageError(absl::StrCat("OP: unknown operation \"", f.config_op,
                                     "\"; use read or write"));
    }
    a.write = op == "write";
    if (a.write && f.config_value.empty()) {
      return UsageError("VALUE: write needs a value, e.g. 'write 0x4 0x6'");
    }
    if (!a.write && !f.config_value.empty()) {
      return UsageError(absl::StrCat("VALUE: read takes no value (got \"",
                                     f.config_value, "\")"));
    }
    ASSIGN_OR_RETURN(uint64_t offset,
                     ParseNumberFlag(f.config_offset, "OFFSET"));
    a.offset = static_cast<uint32_t>(offset);
    ASSIGN_OR_RETURN(uint64_t size, ParseNumberFlag(f.config_size, "--size"));
    a.size = static_cast<uint32_t>(size);
    if (a.write) {
      ASSIGN_OR_RETURN(uint64_t value,
                       ParseNumberFlag(f.config_value, "VALUE"));
      a.value = static_cast<uint32_t>(value);
    }
    RETURN_IF_ERROR(CheckShadowAccess(a));
    access = std::move(a);
  } else if (s.vf_verify->parsed()) {
    if (!f.probe_size.empty()) {
      ASSIGN_OR_RETURN(uint64_t probe, Size(f.probe_size, "--probe-size"));
      if (probe == 0 || probe > UINT32_MAX) {
        return UsageError(absl::StrCat("--probe-size: \"", f.probe_size,
                                       "\" must be between 1 byte and 4 GiB"));
      }
      probe_size = static_cast<uint32_t>(probe);
    }
  } else if (s.vf_interrupt->parsed()) {
    // MSI-X has at most 2048 vectors; RaiseVfInterrupt at most 100000 at once.
    ASSIGN_OR_RETURN(uint64_t v, ParseNumberFlag(f.vector, "--vector", 2047));
    ASSIGN_OR_RETURN(uint64_t n, ParseNumberFlag(f.count, "--count", 100000));
    if (n == 0) return UsageError("--count: must be at least 1");
    vector = static_cast<int>(v);
    count = static_cast<int>(n);
  } else if (s.vm_start->parsed()) {
    ASSIGN_OR_RETURN(uint64_t c, ParseNumberFlag(f.core, "--core", INT32_MAX));
    core = static_cast<int>(c);
  } else if (s.alloc_mem->parsed()) {
    AllocOptions a;
    a.borrower = f.from;
    a.target = f.to;
    ASSIGN_OR_RETURN(a.size, Size(f.size, "--size"));
    if (a.size == 0) return UsageError("--size: must be larger than 0");
    a.owner = f.owner;
    ASSIGN_OR_RETURN(a.labels, ParseLabels(f.labels));
    if (!f.ttl.empty()) {
      ASSIGN_OR_RETURN(a.ttl, ParseDurationFlag(f.ttl, "--ttl"));
    }
    a.request_id = f.request_id;
    a.wait = f.wait;
    ASSIGN_OR_RETURN(a.wait_timeout,
                     ParseDurationFlag(f.wait_timeout, "--wait-timeout"));
    alloc = std::move(a);
  }

  ASSIGN_OR_RETURN(const security::TlsConfig tls, Transport(f));
  FabricClient::Options client_options;
  client_options.timeout = timeout;
  // Pages no larger than the limit, so no more is fetched than is printed.
  if (limit > 0 && limit < client_options.page_size) {
    client_options.page_size = static_cast<int>(limit);
  }
  std::unique_ptr<FabricClient> client =
      FabricClient::Connect(f.server, tls, client_options);
  Commands::Options options;
  options.format = *format;
  options.limit = limit;
  Commands commands(client.get(), &out, options);

  if (spec.has_value()) return commands.CreateFabric(*spec);
  if (s.apply->parsed()) return commands.Apply(f.file);
  if (s.get->parsed()) {
    return commands.Get(*kind, f.name, f.fabric_filter, f.node_filter);
  }
  if (s.describe->parsed()) return commands.Describe(*kind, f.name);
  if (alloc.has_value()) return commands.Alloc(*alloc);
  if (s.release->parsed()) {
    return commands.Release(f.alloc_id, f.request_id);
  }
  if (s.verify->parsed()) {
    if (f.alloc_id.empty() == !f.all) {
      return UsageError("verify: give one allocation ID, or --all");
    }
    return commands.Verify(f.alloc_id, f.all);
  }
  if (s.link_up->parsed()) return commands.SetLink(f.link_a, f.link_b, true);
  if (s.link_down->parsed()) {
    return commands.SetLink(f.link_a, f.link_b, false);
  }
  if (s.delete_fabric->parsed()) {
    return commands.DeleteFabric(f.fabric_name, f.force);
  }
  if (attach.has_value()) return commands.Attach(*attach);
  if (s.vf_detach->parsed()) {
    return commands.Detach(f.attachment_id, f.request_id);
  }
  if (access.has_value()) return commands.ShadowConfig(*access);
  if (s.vf_setup->parsed()) return commands.ShadowSetup(f.attachment_id);
  if (s.vf_verify->parsed()) {
    return commands.VerifyAttachment(f.attachment_id, probe_size);
  }
  if (s.vf_interrupt->parsed()) {
    return commands.RaiseInterrupt(f.attachment_id, vector, count);
  }
  if (s.vm_start->parsed()) {
    return commands.SetVmState(f.vm_node, f.vm_name, true, core);
  }
  if (s.vm_stop->parsed()) {
    return commands.SetVmState(f.vm_node, f.vm_name, false, 0);
  }
  if (audit.has_value()) return commands.Audit(*audit);
  return UsageError("no command given");
}

// A hint for errors whose cause is usually on the user's side.
std::string GenericHint(const absl::Status& status, const Flags& f) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
      // Only when the manager could not be reached: an UNAVAILABLE that it
      // returned itself (an agent out of reach) is not about --server.
      if (!IsServerUnreachable(status)) return "";
      return absl::StrCat("is fabric-manager running at ", f.server,
                          "? set --server or FABRIC_SERVER");
    case absl::StatusCode::kDeadlineExceeded:
      return absl::StrCat("no answer from ", f.server, " within --timeout=",
                          f.timeout, "; raise --timeout if it is busy");
    default:
      return "";
  }
}

}  // namespace

int RunFabricctl(const std::vector<std::string>& args, std::ostream& out,
                 std::ostream& err) {
  CLI::App app("fabricctl: manage a PCIe fabric through fabric-manager",
               args.empty() ? "fabricctl" : args[0]);
  Flags flags;
  Subcommands subs = Define(app, flags);

  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  if (argv.empty()) argv.push_back("fabricctl");
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e, out, err);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e, out, err);
  } catch (const CLI::ParseError& e) {
    // The chain of subcommands parsed so far, e.g. "create star".
    std::string path;
    for (const CLI::App* a = &app; !a->get_subcommands().empty();) {
      a = a->get_subcommands().front();
      absl::StrAppend(&path, path.empty() ? "" : " ", a->get_name());
    }
    std::vector<std::string> rest = app.remaining();
    if (path.empty() && !rest.empty() && rest.front()[0] != '-') {
      err << "error: unknown command \"" << rest.front() << "\"\n";
    } else {
      err << "error: " << e.what() << "\n";
    }
    if (path.empty()) {
      err << "hint: commands are create, apply, get, describe, alloc, "
             "release, verify, link, delete, vf, vm and audit; see "
             "'fabricctl --help'\n";
    } else {
      err << "hint: see 'fabricctl " << path << " --help'\n";
    }
    return kExitUsage;
  }

  absl::Status status = Dispatch(flags, subs, out);
  if (status.ok()) return kExitOk;
  err << "error: " << status.message() << "\n";
  std::string hint = StatusHint(status);
  if (hint.empty()) hint = GenericHint(status, flags);
  if (!hint.empty()) err << "hint: " << hint << "\n";
  return IsUsageError(status) ? kExitUsage : kExitError;
}

}  // namespace fabric::client
