// A real etcd cluster for tests (issue 14): Debian's etcd binary, each
// member on free loopback ports in its own temporary directory. Nothing is
// mocked: the store, election and process tests talk to it over etcd's own
// gRPC API.
//
// Usage:
//
//   absl::StatusOr<std::unique_ptr<EtcdCluster>> etcd = EtcdCluster::Start(3);
//   ASSERT_TRUE(etcd.ok()) << etcd.status();
//   StartManager(..., {"--store", (*etcd)->StoreUrl("/fabric-a")});
//   (*etcd)->Kill(0);                      // one member lost: quorum kept
//   ASSERT_TRUE((*etcd)->WaitHealthy(absl::Seconds(20)));
//
// The destructor kills (SIGKILL) and reaps every member and removes their
// directories, so a failing assertion leaves nothing behind. Not
// thread-safe: one test thread drives it.
#ifndef FABRIC_TESTS_ETCD_ETCD_CLUSTER_H_
#define FABRIC_TESTS_ETCD_ETCD_CLUSTER_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tests/process/process_util.h"

namespace fabric::etcdtest {

class EtcdCluster {
 public:
  // Starts `members` members (1 or more) and waits, up to
  // proctest::Scaled(30 s), until every member answers and knows a leader.
  // Errors: FAILED_PRECONDITION when the etcd binary is missing (install
  // etcd-server: ./deploy/dev.sh deps); UNAVAILABLE when the cluster did not
  // come up (the message names the members' logs). Ports taken by someone
  // else between picking and binding are retried with new ports.
  static absl::StatusOr<std::unique_ptr<EtcdCluster>> Start(int members = 3);

  ~EtcdCluster();
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  int size() const { return static_cast<int>(members_.size()); }

  // Member i's client address, "127.0.0.1:PORT".
  std::string ClientAddress(int i) const;
  // Every member's client address, comma-separated.
  std::string Endpoints() const;
  // The manager's store flag value: "etcd://" + Endpoints() + prefix
  // (prefix empty or starting with '/').
  std::string StoreUrl(absl::string_view prefix = "") const;

  // Kills member i with SIGKILL and reaps it; its data stays for Restart.
  void Kill(int i);
  // Sends `sig` to member i (SIGSTOP / SIGCONT), if it runs.
  void Signal(int i, int sig);
  // Starts a killed member again on its ports with its data.
  absl::Status Restart(int i);
  bool running(int i) const;
  // Member i's process id; -1 when it does not run.
  pid_t pid(int i) const;

  // True once every running member answers Maintenance.Status and reports
  // a leader, and a linearizable read through member `via` (the first
  // running one when -1) succeeds, i.e. the cluster has quorum. Waits up to
  // proctest::Scaled(timeout).
  bool WaitHealthy(absl::Duration timeout, int via = -1);

  // The index of the member that is etcd's raft leader, as the running
  // members report it; -1 when none is known.
  int RaftLeader() const;
  // Hands raft leadership to member `to` (etcd's MoveLeader, sent to the
  // current leader), so that a test can lose a member that is NOT the raft
  // leader. Errors: UNAVAILABLE when there is no leader or it refuses.
  absl::Status MoveRaftLeader(int to);

  // Member i's log (etcd's stderr and stdout).
  std::string LogPath(int i) const;
  // The etcd binary: $FABRIC_ETCD_BIN, else /usr/bin/etcd.
  static std::string Binary();

 private:
  struct Member {
    std::string name;
    int client_port = 0;
    int peer_port = 0;
    std::string data_dir;
    std::string log_path;
    std::optional<proctest::Child> child;
  };

  EtcdCluster() = default;
  std::vector<std::string> ArgvFor(int i, bool existing) const;
  bool Answers(int i) const;
  // Member i's etcd member id and the leader id it reports (0, 0 when it
  // does not answer).
  std::pair<uint64_t, uint64_t> Ids(int i) const;
  bool QuorumRead(int i) const;

  proctest::TempDir dir_;
  std::string token_;
  std::vector<Member> members_;
};

}  // namespace fabric::etcdtest

#endif  // FABRIC_TESTS_ETCD_ETCD_CLUSTER_H_
