// The control plane of one chaos cycle: the manager(s) and their store, as
// processes (campaign.h runs the agents and the storm around it).
//
//   --store sqlite: one fabric-manager on <dir>/fabric.db.
//   --store etcd:   a real 3-member etcd cluster on loopback
//                   (tests/etcd/etcd_cluster.h) and two fabric-managers on
//                   it (--lease-ttl 2s): the leader and a standby. A manager
//                   that loses its leadership exits 1 and is restarted at
//                   once on its port, as systemd's Restart=always would
//                   (README "High availability"); that is counted, not
//                   reported as a crash.
//
// Usage:
//
//   ASSIGN_OR_RETURN(std::unique_ptr<ControlPlane> cp,
//                    ControlPlane::Start(StoreKind::kEtcd, bin_dir, dir));
//   agents and clients get cp->managers();
//   RETURN_IF_ERROR(cp->Kill(Victim::kLeader, -1));
//   ...
//   RETURN_IF_ERROR(cp->RestartKilled());
//   for (const std::string& crash : cp->ReapUnexpected()) ...
//
// Logs: <dir>/manager.log (SQLite), <dir>/manager-<i>.log (etcd), appended
// across restarts. The destructor kills (SIGKILL) and reaps every process.
// Kill, RestartKilled and the other methods are called from one thread;
// etcd's supervisor (the restarts after a lost leadership) runs on its own.
#ifndef FABRIC_TESTS_CHAOS_CONTROL_PLANE_H_
#define FABRIC_TESTS_CHAOS_CONTROL_PLANE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tests/chaos/fabric_checks.h"

namespace fabric::chaos {

enum class StoreKind { kSqlite, kEtcd };
// "sqlite", "etcd".
const char* StoreKindName(StoreKind kind);

// What Kill takes down.
enum class Victim {
  kLeader,       // the manager that serves (SQLite: the only one)
  kStandby,      // etcd: the manager that does not lead
  kStoreMember,  // etcd: one etcd member
};

class ControlPlane {
 public:
  // Starts the store and the manager(s) in `dir` (which exists), the
  // binaries being in `bin_dir`, and waits until a manager leads. Errors:
  // UNAVAILABLE naming the log of what did not come up; etcd's
  // FAILED_PRECONDITION when its binary is missing.
  static absl::StatusOr<std::unique_ptr<ControlPlane>> Start(
      StoreKind kind, const std::string& bin_dir, const std::string& dir);

  virtual ~ControlPlane() = default;

  // Every manager's "127.0.0.1:PORT", for agents and clients; each manager
  // keeps its address across restarts.
  virtual std::vector<std::string> managers() const = 0;
  // Whether a standby takes over when the leader is killed (etcd), rather
  // than the service waiting for the killed manager's restart (SQLite).
  virtual bool fails_over() const = 0;
  // How many etcd members there are (0 for SQLite).
  virtual int store_members() const = 0;

  // kill -9 `victim` now: etcd member `member` for kStoreMember. At most one
  // victim is down at a time. Errors: FAILED_PRECONDITION for a victim this
  // control plane does not have (SQLite: kStandby, kStoreMember) or while
  // another is down; UNAVAILABLE when no manager is found leading within
  // 10 s (kLeader and kStandby need to know which is which).
  virtual absl::Status Kill(Victim victim, int member) = 0;
  // Starts again what Kill took down, where it was (a manager on its port:
  // in HA it comes back as a standby; an etcd member with its data, and
  // it returns once that member serves a quorum read again).
  // Errors: UNAVAILABLE naming the log when it does not come up.
  virtual absl::Status RestartKilled() = 0;
  // What Kill took down, e.g. "manager 127.0.0.1:4242 (m1, the leader)";
  // "" before any kill.
  virtual std::string killed() const = 0;

  // The processes that exited although nobody killed them (or could not be
  // started again), one line each with its log; each is reported once. A
  // manager that exited 1 after losing its leadership is not one of them.
  virtual std::vector<std::string> ReapUnexpected() = 0;
  // How many times a manager exited after losing the leadership and was
  // restarted.
  virtual int leadership_losses() const = 0;

  // The managers' durable state as a restart would load it
  // (LoadDurableState, LoadEtcdDurableState); `copy_path` receives the copy
  // that is loaded.
  virtual absl::StatusOr<DurableState> LoadDurable(
      const std::string& copy_path) = 0;

  // Copies the logs that live outside `dir` (etcd members') into it, for a
  // cycle whose directory is kept.
  virtual void KeepLogs() {}
};

}  // namespace fabric::chaos

#endif  // FABRIC_TESTS_CHAOS_CONTROL_PLANE_H_
