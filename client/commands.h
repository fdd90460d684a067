// The fabricctl commands, one method per verb, independent of flag parsing.
//
// Each command talks to the server through a FabricClient, writes its
// result to the output stream it was given (a table or protobuf JSON, see
// output.h) and returns a status. A failed status's message says what was
// being done and what the server answered ("get nodes/x: node not found");
// it may carry a hint (StatusHint) and may be marked as a usage error
// (IsUsageError), which fabricctl turns into exit code 2.
//
//   auto client = FabricClient::Connect("127.0.0.1:7070", tls, {});
//   Commands cmds(client.get(), &std::cout, {OutputFormat::kTable});
//   absl::Status s = cmds.Get(ResourceKind::kNode, "", "");
//
// Commands only dispatches: each verb is carried out by the unit of its
// concern (fabric_commands.h, get_commands.h, allocation_commands.h,
// vf_commands.h, audit_commands.h); this header also brings in the argument helpers (args.h,
// fabric_spec.h) that fabricctl's flag handling uses.
//
// Not thread-safe (writes to one stream); use one Commands per thread.
#ifndef FABRIC_CLIENT_COMMANDS_H_
#define FABRIC_CLIENT_COMMANDS_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "client/allocation_commands.h"
#include "client/audit_commands.h"
#include "client/args.h"
#include "client/command_base.h"
#include "client/fabric_client.h"
#include "client/fabric_commands.h"
#include "client/fabric_spec.h"
#include "client/get_commands.h"
#include "client/output.h"
#include "client/vf_commands.h"
#include "fabric/v1/resources.pb.h"

namespace fabric::client {

class Commands {
 public:
  using Options = CommandOptions;

  // `client` and `out` are not owned and must outlive this object.
  Commands(FabricClient* client, std::ostream* out, const Options& options);

  // The contracts are those of the unit each call goes to.
  // FabricCommands: create ring|star, apply -f, link up|down, delete fabric.
  absl::Status CreateFabric(const v1::FabricSpec& spec);
  absl::Status Apply(const std::string& path);
  absl::Status SetLink(const std::string& a, const std::string& b, bool up);
  absl::Status DeleteFabric(const std::string& name, bool force);

  // GetCommands: get KIND [NAME] (lists streamed page by page, at most
  // Options::limit), describe KIND NAME.
  absl::Status Get(ResourceKind kind, const std::string& name,
                   const std::string& fabric, const std::string& node = "");
  absl::Status Describe(ResourceKind kind, const std::string& name);

  // AllocationCommands: alloc mem, release, verify.
  absl::Status Alloc(const AllocOptions& options);
  absl::Status Release(const std::string& id, const std::string& request_id);
  absl::Status Verify(const std::string& id, bool all);

  // VfCommands: vf attach|detach|config|setup|verify|interrupt, vm
  // start|stop.
  absl::Status Attach(const AttachOptions& options);
  absl::Status Detach(const std::string& id, const std::string& request_id);
  absl::Status ShadowConfig(const ShadowAccessOptions& access);
  absl::Status ShadowSetup(const std::string& id);
  absl::Status VerifyAttachment(const std::string& id, uint32_t probe_size);
  absl::Status RaiseInterrupt(const std::string& id, int vector, int count);
  absl::Status SetVmState(const std::string& node, const std::string& vm,
                          bool running, int core);

  // AuditCommands: audit (streamed page by page, at most Options::limit).
  absl::Status Audit(const AuditOptions& options);

 private:
  FabricCommands fabric_;
  GetCommands get_;
  AllocationCommands allocations_;
  VfCommands vfs_;
  AuditCommands audit_;
};

}  // namespace fabric::client

#endif  // FABRIC_CLIENT_COMMANDS_H_
