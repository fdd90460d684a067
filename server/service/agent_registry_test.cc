// Agents through the manager (AgentRegistry): registration, sessions and
// fencing, reports, config streams as liveness, nodes in no fabric.
#include "server/service/manager.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

#include "gmock/gmock.h"
#include "server/service/agent_registry.h"
#include "gtest/gtest.h"
#include "server/service/manager_test_util.h"

namespace fabric::service {
namespace {

using ::testing::HasSubstr;

TEST_F(ManagerTest, SilentAgentGoesNotReady) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 3)).ok());
  auto a = manager_->CreateAllocation(AllocRequest("n0", "n1", 1 << 20));
  AllAgentsApply("lab");
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(), v1::Allocation::READY);
  clock_.Advance(absl::Seconds(4));
  manager_->Sweep();
  EXPECT_EQ(manager_->GetNode("n0")->agent_state(), v1::Node::NOT_READY);
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(),
            v1::Allocation::PENDING);
  AllAgentsApply("lab");
  EXPECT_EQ(manager_->GetNode("n0")->agent_state(), v1::Node::READY);
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(), v1::Allocation::READY);
}

// Agents that go silent together are handled in one sweep: each
// allocation whose path crosses any of them (as an endpoint or as a hop)
// turns PENDING, the others stay READY, and the derived states agree with
// fresh derivations.
TEST_F(ManagerTest, AgentsSilentInOneSweepUnsettleExactlyTheLeasesThatCrossThem) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 8)).ok());
  std::vector<v1::Allocation> allocs;
  for (auto [b, t] : std::vector<std::pair<const char*, const char*>>{
           {"n0", "n1"}, {"n0", "n3"}, {"n2", "n4"}, {"n4", "n5"},
           {"n6", "n7"}, {"n7", "n5"}, {"n1", "n6"}}) {
    auto a = manager_->CreateAllocation(AllocRequest(b, t, 1 << 20));
    ASSERT_TRUE(a.ok()) << a.status();
    allocs.push_back(*a);
  }
  AllAgentsApply("lab");
  // n2 and n6 stay silent; every other agent reports before the timeout.
  const std::vector<std::string> silent = {"bridges/n2", "bridges/n6"};
  clock_.Advance(opts_.heartbeat_timeout - absl::Seconds(1));
  for (int i = 0; i < 8; ++i) {
    const std::string node = absl::StrCat("n", i);
    if (node == "n2" || node == "n6") continue;
    agentproto::v1::ReportStatusRequest rep;
    rep.set_node(node);
    rep.set_applied_generation(manager_->DesiredConfigFor(node)->generation());
    ASSERT_TRUE(manager_->ReportStatus(rep).ok());
  }
  clock_.Advance(absl::Seconds(2));
  manager_->Sweep();
  int pending = 0;
  for (const v1::Allocation& a : allocs) {
    bool crosses = false;
    for (const std::string& hop : a.path()) {
      crosses |= std::find(silent.begin(), silent.end(), hop) != silent.end();
    }
    ASSERT_FALSE(a.path().empty()) << a.name();
    const v1::Allocation now = *manager_->GetAllocation(a.name());
    EXPECT_EQ(now.state(),
              crosses ? v1::Allocation::PENDING : v1::Allocation::READY)
        << a.name() << " via " << absl::StrJoin(a.path(), ",");
    pending += crosses;
  }
  // The layout has leases that cross a silent node only as a hop (n0->n3
  // via n2; n1->n6 from one side or the other) and leases that cross none.
  EXPECT_GE(pending, 3);
  EXPECT_LT(pending, static_cast<int>(allocs.size()));
  // The states the sweep derived (what the metrics count and Watch
  // reports), not only those a read derives afresh.
  EXPECT_EQ(manager_->Stats().allocations["READY"],
            static_cast<int>(allocs.size()) - pending);
  EXPECT_EQ(manager_->Stats().allocations["PENDING"], pending);
  EXPECT_EQ(manager_->GetNode("n2")->agent_state(), v1::Node::NOT_READY);
  EXPECT_EQ(manager_->GetNode("n6")->agent_state(), v1::Node::NOT_READY);
  EXPECT_EQ(manager_->GetNode("n0")->agent_state(), v1::Node::READY);
  EXPECT_TRUE(manager_->CheckIndexes().ok()) << manager_->CheckIndexes();
}

// A late heartbeat from an agent whose config stream is open (a live
// transport, e.g. an agent starved of CPU under load) does not flip its
// node; once the stream closes, or stream_grace passes, it does.
TEST_F(ManagerTest, OpenConfigStreamKeepsALateAgentReady) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 3)).ok());
  auto a = manager_->CreateAllocation(AllocRequest("n0", "n1", 1 << 20));
  AllAgentsApply("lab");
  const int64_t s0 = manager_->GetNode("n0")->agent_session();
  const int64_t s1 = manager_->GetNode("n1")->agent_session();
  ASSERT_TRUE(manager_->ConfigStreamOpened("n0", s0).ok());
  ASSERT_TRUE(manager_->ConfigStreamOpened("nodes/n1", s1).ok());
  // A reader's stream (no session) proves nothing of n2's agent.
  ASSERT_TRUE(manager_->ConfigStreamOpened("n2", 0).ok());
  clock_.Advance(absl::Seconds(4));  // past heartbeat_timeout (3 s)
  manager_->Sweep();
  EXPECT_EQ(manager_->GetNode("n0")->agent_state(), v1::Node::READY);
  EXPECT_EQ(manager_->GetNode("n1")->agent_state(), v1::Node::READY);
  EXPECT_EQ(manager_->GetNode("n2")->agent_state(), v1::Node::NOT_READY);

  // The stream of n0 ends (the agent died): its late heartbeat counts, and
  // its address is not kept.
  manager_->ConfigStreamClosed("n0", s0);
  manager_->Sweep();
  EXPECT_EQ(manager_->GetNode("n0")->agent_state(), v1::Node::NOT_READY);
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(),
            v1::Allocation::PENDING);

  // n1's stream stays open, but past stream_grace (30 s) it is silent too.
  clock_.Advance(absl::Seconds(27));
  manager_->Sweep();
  EXPECT_EQ(manager_->GetNode("n1")->agent_state(), v1::Node::NOT_READY);
  manager_->ConfigStreamClosed("n1", s1);
  manager_->ConfigStreamClosed("n2", 0);
  // Unknown and unregistered nodes have no stream.
  EXPECT_EQ(manager_->ConfigStreamOpened("nope", 0).code(),
            absl::StatusCode::kFailedPrecondition);
}

// One session per node: a newer registration fences the older one, whose
// reports and streams are refused (ABORTED); the takeover is shown; the
// address of a session whose stream ended is not kept.
TEST_F(ManagerTest, NewerRegistrationFencesTheOlderSession) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 3)).ok());
  agentproto::v1::RegisterNodeRequest reg;
  reg.set_node("n1");
  reg.set_control_address("127.0.0.1:1001");
  auto first = manager_->RegisterNode(reg);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_NE(first->session(), 0);
  ASSERT_TRUE(manager_->ConfigStreamOpened("n1", first->session()).ok());

  reg.set_control_address("127.0.0.1:1002");
  auto second = manager_->RegisterNode(reg);
  ASSERT_TRUE(second.ok());
  EXPECT_NE(second->session(), first->session());
  v1::Node n1 = *manager_->GetNode("n1");
  EXPECT_EQ(n1.agent_session(), second->session());
  EXPECT_EQ(n1.agent_address(), "127.0.0.1:1002");
  EXPECT_THAT(n1.agent_takeover(), HasSubstr("127.0.0.1:1001"));
  EXPECT_THAT(n1.agent_takeover(), HasSubstr("127.0.0.1:1002"));

  agentproto::v1::ReportStatusRequest rep;
  rep.set_node("n1");
  rep.set_session(first->session());
  auto refused = manager_->ReportStatus(rep);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(refused.status().message(), HasSubstr("fenced"));
  EXPECT_EQ(manager_->ConfigStreamOpened("n1", first->session()).code(),
            absl::StatusCode::kAborted);
  // The fenced session's stream ending changes nothing of the new one.
  manager_->ConfigStreamClosed("n1", first->session());
  EXPECT_EQ(manager_->GetNode("n1")->agent_address(), "127.0.0.1:1002");
  rep.set_session(second->session());
  EXPECT_TRUE(manager_->ReportStatus(rep).ok());

  // The current session's transport ends: its address is forgotten until
  // the agent registers again.
  ASSERT_TRUE(manager_->ConfigStreamOpened("n1", second->session()).ok());
  manager_->ConfigStreamClosed("n1", second->session());
  EXPECT_EQ(manager_->GetNode("n1")->agent_address(), "");
}

// An agent whose registration timed out registers again; if the first
// one reaches the manager after the second (a manager behind under a
// registration storm), it is refused, not taken as a newer agent: it would
// fence the session the agent holds, and the agent, told another agent
// serves its node, would stop. Other instances, and agents that do not
// number their registrations, still fence as before.
TEST_F(ManagerTest, ALateCopyOfAnEarlierRegistrationDoesNotFence) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 3)).ok());
  agentproto::v1::RegisterNodeRequest reg;
  reg.set_node("n1");
  reg.set_control_address("127.0.0.1:1001");
  reg.set_instance(0xfeed);
  reg.set_attempt(2);
  auto second = manager_->RegisterNode(reg);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE(manager_->ConfigStreamOpened("n1", second->session()).ok());
  for (uint64_t late : {1, 2}) {
    reg.set_attempt(late);
    auto refused = manager_->RegisterNode(reg);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition)
        << late;
    EXPECT_THAT(refused.status().message(), HasSubstr("attempt"));
    EXPECT_THAT(refused.status().message(), HasSubstr("late"));
  }
  v1::Node n1 = *manager_->GetNode("n1");
  EXPECT_EQ(n1.agent_session(), second->session());
  EXPECT_EQ(n1.agent_takeover(), "");
  agentproto::v1::ReportStatusRequest rep;
  rep.set_node("n1");
  rep.set_session(second->session());
  EXPECT_TRUE(manager_->ReportStatus(rep).ok());
  EXPECT_TRUE(manager_->ConfigStreamOpened("n1", second->session()).ok());

  // A newer attempt of the same agent is a new session.
  reg.set_attempt(3);
  auto third = manager_->RegisterNode(reg);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_NE(third->session(), second->session());
  // Another instance (the agent restarted, or another one) fences it,
  // whatever its count; so does an agent that does not count.
  reg.set_instance(0xbeef);
  reg.set_attempt(1);
  auto other = manager_->RegisterNode(reg);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_NE(other->session(), third->session());
  reg.set_instance(0);
  reg.set_attempt(0);
  auto uncounted = manager_->RegisterNode(reg);
  ASSERT_TRUE(uncounted.ok()) << uncounted.status();
  EXPECT_EQ(manager_->GetNode("n1")->agent_session(), uncounted->session());
  rep.set_session(third->session());
  EXPECT_EQ(manager_->ReportStatus(rep).status().code(),
            absl::StatusCode::kAborted);
}

// Reports travel on two threads of the agent (heartbeats, and the report
// after each apply) and may arrive out of order: an older one is ignored,
// so the applied generation never goes backwards.
TEST_F(ManagerTest, OvertakenReportIsIgnored) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 2)).ok());
  auto a = manager_->CreateAllocation(AllocRequest("n0", "n1", 1 << 20));
  ASSERT_TRUE(a.ok());
  for (const char* n : {"n0", "n1"}) {
    agentproto::v1::RegisterNodeRequest reg;
    reg.set_node(n);
    auto registered = manager_->RegisterNode(reg);
    ASSERT_TRUE(registered.ok());
    const int64_t generation = manager_->DesiredConfigFor(n)->generation();
    agentproto::v1::ReportStatusRequest fresh;
    fresh.set_node(n);
    fresh.set_session(registered->session());
    fresh.set_sequence(2);
    fresh.set_applied_generation(generation);
    ASSERT_TRUE(manager_->ReportStatus(fresh).ok());
    // A heartbeat built before the apply arrives after it.
    agentproto::v1::ReportStatusRequest stale = fresh;
    stale.set_sequence(1);
    stale.set_applied_generation(0);
    ASSERT_TRUE(manager_->ReportStatus(stale).ok());
    EXPECT_EQ(manager_->GetNode(n)->applied_generation(), generation);
  }
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(), v1::Allocation::READY);
}

// A node in no fabric: its agent is accepted with an empty desired
// configuration (it clears its bridge), GetNode shows it without a fabric,
// and it joins when a fabric names it.
TEST_F(ManagerTest, AgentOfANodeInNoFabricGetsAnEmptyConfiguration) {
  agentproto::v1::RegisterNodeRequest reg;
  reg.set_node("loose");
  reg.set_control_address("127.0.0.1:1003");
  auto registered = manager_->RegisterNode(reg);
  ASSERT_TRUE(registered.ok()) << registered.status();
  EXPECT_EQ(registered->node().fabric(), "");
  auto cfg = manager_->DesiredConfigFor("loose");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->address_map().entries_size(), 0);
  EXPECT_EQ(cfg->address_map().windows_size(), 0);
  EXPECT_EQ(cfg->address_map().inbound_size(), 0);
  EXPECT_EQ(cfg->export_size(), 0u);
  agentproto::v1::ReportStatusRequest rep;
  rep.set_node("loose");
  rep.set_session(registered->session());
  rep.set_applied_generation(cfg->generation());
  ASSERT_TRUE(manager_->ReportStatus(rep).ok());
  v1::Node n = *manager_->GetNode("loose");
  EXPECT_EQ(n.fabric(), "");
  EXPECT_EQ(n.agent_state(), v1::Node::READY);
  EXPECT_EQ(n.applied_generation(), n.desired_generation());
  // A node nobody registered is still unknown.
  EXPECT_EQ(manager_->GetNode("ghost").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(manager_->DesiredConfigFor("ghost").status().code(),
            absl::StatusCode::kNotFound);

  // A fabric that names it: the next configuration is the real one.
  v1::CreateFabricRequest create = RingRequest("lab", 2);
  create.mutable_spec()->add_nodes()->set_name("loose");
  ASSERT_TRUE(manager_->CreateFabric(create).ok());
  cfg = manager_->DesiredConfigFor("loose");
  ASSERT_TRUE(cfg.ok());
  EXPECT_GT(cfg->address_map().entries_size(), 0);
  EXPECT_EQ(manager_->GetNode("loose")->fabric(), "fabrics/lab");

  // Its fabric deleted, it is in no fabric again; once silent, forgotten.
  v1::DeleteFabricRequest del;
  del.set_name("lab");
  del.set_force(true);
  ASSERT_TRUE(manager_->DeleteFabric(del).ok());
  cfg = manager_->DesiredConfigFor("loose");
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->address_map().entries_size(), 0);
  clock_.Advance(absl::Seconds(4));
  manager_->Sweep();
  EXPECT_EQ(manager_->GetNode("loose").status().code(),
            absl::StatusCode::kNotFound);
}

// A commit names the nodes whose configuration it changes (ManagerState::
// BumpGeneration(nodes)); a node it does not name holds the new generation
// as soon as its agent holds its last change, with nothing sent, applied or
// reported. A node named by a change that leaves its configuration as it
// was (a link down and up again) learns it from its config stream's skip
// (ConfigUnchanged): an agent that holds what the stream last sent counts
// as holding the skipped generation. Only the current session's stream is
// believed, and only for the generation it sent.
TEST_F(ManagerTest, AGenerationThatChangesNothingForANodeCountsAsHeldThere) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 5)).ok());
  AllAgentsApply("lab");
  const auto content = [&](const std::string& node) {
    agentproto::v1::DesiredConfig c = *manager_->DesiredConfigFor(node);
    return ConfigContent(&c);
  };
  const int64_t sent = manager_->DesiredConfigFor("n4")->generation();
  const std::string before = content("n4");
  // n0 borrows from n3: on the ring of five the path is n0, n4, n3, and n4
  // only forwards, so the commit does not name it.
  auto a = manager_->CreateAllocation(AllocRequest("n0", "n3", 1 << 20));
  ASSERT_TRUE(a.ok()) << a.status();
  const int64_t required = manager_->DesiredConfigFor("n4")->generation();
  ASSERT_GT(required, sent);
  ASSERT_EQ(content("n4"), before);
  EXPECT_EQ(manager_->ConfigChangedAt("n4"), sent);
  EXPECT_EQ(manager_->ConfigChangedAt("n0"), required);
  EXPECT_EQ(manager_->ConfigChangedAt("n3"), required);
  EXPECT_EQ(manager_->GetNode("n4")->applied_generation(), required);
  EXPECT_EQ(manager_->GetNode("n0")->applied_generation(), sent);
  for (const char* n : {"n0", "n3"}) {
    agentproto::v1::ReportStatusRequest rep;
    rep.set_node(n);
    rep.set_applied_generation(required);
    ASSERT_TRUE(manager_->ReportStatus(rep).ok());
  }
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(), v1::Allocation::READY)
      << manager_->GetAllocation(a->name())->state_reason();

  // A link down and up again names every node; n4's configuration is what
  // it was, but the manager does not know it until n4's stream compares.
  v1::SetLinkStateRequest link;
  link.set_name("links/n1--n2");
  link.set_up(false);
  ASSERT_TRUE(manager_->SetLinkState(link).ok());
  link.set_up(true);
  ASSERT_TRUE(manager_->SetLinkState(link).ok());
  const int64_t flapped = manager_->DesiredConfigFor("n4")->generation();
  ASSERT_EQ(content("n4"), before);
  EXPECT_EQ(manager_->ConfigChangedAt("n4"), flapped);
  EXPECT_EQ(manager_->GetNode("n4")->applied_generation(), required);
  auto b = manager_->CreateAllocation(AllocRequest("n0", "n3", 1 << 20));
  ASSERT_TRUE(b.ok()) << b.status();
  const int64_t next = manager_->DesiredConfigFor("n4")->generation();
  for (const char* n : {"n0", "n3"}) {
    agentproto::v1::ReportStatusRequest rep;
    rep.set_node(n);
    rep.set_applied_generation(next);
    ASSERT_TRUE(manager_->ReportStatus(rep).ok());
  }
  EXPECT_THAT(manager_->GetAllocation(b->name())->state_reason(),
              HasSubstr("waiting for node n4"));

  const int64_t session = manager_->GetNode("n4")->agent_session();
  // Not believed: a reader's stream, a fenced session, a skip that goes
  // backwards.
  manager_->ConfigUnchanged("n4", 0, sent, flapped);
  manager_->ConfigUnchanged("n4", session + 1, sent, flapped);
  manager_->ConfigUnchanged("n4", session, flapped, sent);
  EXPECT_EQ(manager_->GetAllocation(b->name())->state(),
            v1::Allocation::PENDING);
  EXPECT_EQ(manager_->GetNode("n4")->applied_generation(), required);

  // The agent's stream skipped `flapped`, and n4 holds `sent`: it holds
  // `flapped`, and with it `next`, which did not name it.
  manager_->ConfigUnchanged("nodes/n4", session, sent, flapped);
  EXPECT_EQ(manager_->GetAllocation(b->name())->state(),
            v1::Allocation::READY)
      << manager_->GetAllocation(b->name())->state_reason();
  EXPECT_EQ(manager_->GetNode("n4")->applied_generation(), next);
  EXPECT_EQ(manager_->GetNode("n4")->desired_generation(), next);

  // A commit that names n4 (it borrows): n4 held every generation before
  // it, and still does; it does not hold the new one.
  auto c = manager_->CreateAllocation(AllocRequest("n4", "n1", 1 << 20));
  ASSERT_TRUE(c.ok());
  const int64_t last = manager_->DesiredConfigFor("n4")->generation();
  EXPECT_EQ(manager_->GetNode("n4")->applied_generation(), next);
  EXPECT_EQ(manager_->GetAllocation(c->name())->state(),
            v1::Allocation::PENDING);
  // A skip names the generation the stream sent; an agent that has not
  // reported that one yet holds nothing newer, and what it held stays.
  manager_->ConfigUnchanged("n4", session, last - 1, last);
  EXPECT_EQ(manager_->GetNode("n4")->applied_generation(), next);
  EXPECT_EQ(manager_->GetAllocation(b->name())->state(),
            v1::Allocation::READY);
  // Once it reports that one, it holds the skipped one too.
  agentproto::v1::ReportStatusRequest rep;
  rep.set_node("n4");
  rep.set_applied_generation(last - 1);
  ASSERT_TRUE(manager_->ReportStatus(rep).ok());
  EXPECT_EQ(manager_->GetNode("n4")->applied_generation(), last);

  // A new registration starts from nothing: the old session's skips are
  // gone with it.
  agentproto::v1::RegisterNodeRequest reg;
  reg.set_node("n4");
  ASSERT_TRUE(manager_->RegisterNode(reg).ok());
  EXPECT_EQ(manager_->GetNode("n4")->applied_generation(), 0);
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(),
            v1::Allocation::PENDING);
}

// An agent that registers again (reconnecting, or to a new leader) and
// attests that its bridge holds what the current generation wants of the
// node holds that generation from the start: its leases stay READY without
// a round of applies. A digest of anything else, or none, proves nothing.
TEST_F(ManagerTest, ARegistrationThatAttestsTheWantedConfigurationHoldsIt) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 4)).ok());
  AllAgentsApply("lab");
  auto a = manager_->CreateAllocation(AllocRequest("n0", "n1", 1 << 20));
  ASSERT_TRUE(a.ok()) << a.status();
  AllAgentsApply("lab");
  ASSERT_EQ(manager_->GetAllocation(a->name())->state(), v1::Allocation::READY);
  const std::string held = ConfigDigest(*manager_->DesiredConfigFor("n1"));
  const auto reregister = [&](const std::string& digest) {
    agentproto::v1::RegisterNodeRequest reg;
    reg.set_node("n1");
    reg.set_held_config_digest(digest);
    ASSERT_TRUE(manager_->RegisterNode(reg).ok());
  };

  // A digest of another configuration (what n1 held before the
  // allocation): the node must apply again.
  agentproto::v1::DesiredConfig other = *manager_->DesiredConfigFor("n1");
  other.set_window_base(other.window_base() + 4096);
  reregister(ConfigDigest(other));
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(),
            v1::Allocation::PENDING);
  EXPECT_EQ(manager_->GetNode("n1")->applied_generation(), 0);
  // No digest: the same.
  AllAgentsApply("lab");
  reregister("");
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(),
            v1::Allocation::PENDING);

  // The digest of what the current generation wants of n1.
  const int64_t generation = manager_->DesiredConfigFor("n1")->generation();
  reregister(held);
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(), v1::Allocation::READY)
      << manager_->GetAllocation(a->name())->state_reason();
  EXPECT_EQ(manager_->GetNode("n1")->applied_generation(), generation);
}

// What agents attested their nodes hold is kept in the store (at the
// sweep's pace), so that after a restart (or a takeover) the nodes whose
// holding is what the manager wants of them now are presumed to hold it:
// their leases stay READY until the agents register again, or stay silent
// past their allowance. A node changed after the last save is not
// presumed. Its agent's reports, of the old manager's session, are told
// to register, not fenced.
TEST_F(ManagerTest, SavedHoldingsKeepLeasesReadyAcrossARestart) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 4)).ok());
  AllAgentsApply("lab");
  auto a = manager_->CreateAllocation(AllocRequest("n0", "n1", 1 << 20));
  ASSERT_TRUE(a.ok()) << a.status();
  AllAgentsApply("lab");
  const int64_t old_session = manager_->GetNode("n1")->agent_session();
  EXPECT_EQ(manager_->Stats().holdings_unsaved, 4);
  manager_->Sweep();  // saves the holdings
  EXPECT_EQ(manager_->Stats().holdings_unsaved, 0);
  // A change the sweep has not saved: n2 and n3 hold it, but the store
  // does not know.
  auto b = manager_->CreateAllocation(AllocRequest("n2", "n3", 1 << 20));
  ASSERT_TRUE(b.ok()) << b.status();
  AllAgentsApply("lab");
  ASSERT_EQ(manager_->GetAllocation(b->name())->state(), v1::Allocation::READY);
  // (The metric that says so.)
  EXPECT_GE(manager_->Stats().holdings_unsaved, 2);

  Reopen();
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(), v1::Allocation::READY)
      << manager_->GetAllocation(a->name())->state_reason();
  EXPECT_EQ(manager_->GetNode("n1")->agent_state(), v1::Node::READY);
  EXPECT_EQ(manager_->GetNode("n1")->applied_generation(),
            manager_->DesiredConfigFor("n1")->generation());
  EXPECT_EQ(manager_->GetAllocation(b->name())->state(),
            v1::Allocation::PENDING);
  EXPECT_THAT(manager_->GetAllocation(b->name())->state_reason(),
              HasSubstr("to register"));
  // The metrics count what the reads say, from the first answer on.
  EXPECT_EQ(manager_->Stats().allocations["READY"], 1);
  EXPECT_EQ(manager_->Stats().allocations["PENDING"], 1);
  EXPECT_TRUE(manager_->CheckIndexes().ok()) << manager_->CheckIndexes();

  // The agent of n1 still speaks in the old manager's session.
  agentproto::v1::ReportStatusRequest rep;
  rep.set_node("n1");
  rep.set_session(old_session);
  EXPECT_EQ(manager_->ReportStatus(rep).status().code(),
            absl::StatusCode::kFailedPrecondition);

  // Silent past the allowance: the presumption ends.
  clock_.Advance(opts_.heartbeat_timeout + absl::Seconds(1));
  manager_->Sweep();
  EXPECT_EQ(manager_->GetNode("n1")->agent_state(), v1::Node::NOT_READY);
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(),
            v1::Allocation::PENDING);
  // And its holding is no longer kept: another restart presumes nothing.
  Reopen();
  EXPECT_EQ(manager_->GetAllocation(a->name())->state(),
            v1::Allocation::PENDING);
  EXPECT_EQ(manager_->GetNode("n1")->agent_state(), v1::Node::UNREGISTERED);
}

// A registration or report that can only settle leases looks only at the
// leases that wait for its node (LeaseIds::waiting_on) and those that wait
// for none. Whatever order the agents come in, each lease's last derived
// state (what watchers were told, and the metrics count) stays what a
// fresh derivation says, and the indexes agree with a scan.
TEST_F(ManagerTest, LeasesSettleAsTheAgentsTheyWaitForComeInAnyOrder) {
  ASSERT_TRUE(manager_->CreateFabric(RingRequest("lab", 6)).ok());
  std::vector<std::string> names;
  for (auto [b, t] : std::vector<std::pair<const char*, const char*>>{
           {"n0", "n3"}, {"n3", "n0"}, {"n1", "n2"}, {"n5", "n1"},
           {"n2", "n4"}}) {
    auto a = manager_->CreateAllocation(AllocRequest(b, t, 1 << 20));
    ASSERT_TRUE(a.ok()) << a.status();
    names.push_back(a->name());
  }
  // Last derived states (the metrics' counts) against fresh derivations.
  const auto check = [&](const std::string& step) {
    int ready = 0;
    for (const std::string& name : names) {
      ready += manager_->GetAllocation(name)->state() == v1::Allocation::READY;
    }
    EXPECT_EQ(manager_->Stats().allocations["READY"], ready) << step;
    EXPECT_TRUE(manager_->CheckIndexes().ok())
        << step << ": " << manager_->CheckIndexes();
    return ready;
  };
  const auto report = [&](const std::string& node, bool with_error) {
    agentproto::v1::ReportStatusRequest rep;
    rep.set_node(node);
    rep.set_applied_generation(manager_->DesiredConfigFor(node)->generation());
    if (with_error) {
      v1::ApplyError* e = rep.add_errors();
      e->set_allocation(names[0]);
      e->set_entry("window 0");
      e->set_message("refused");
    }
    ASSERT_TRUE(manager_->ReportStatus(rep).ok());
  };
  check("none registered");
  for (const char* node : {"n4", "n2", "n5", "n0", "n3", "n1"}) {
    agentproto::v1::RegisterNodeRequest reg;
    reg.set_node(node);
    ASSERT_TRUE(manager_->RegisterNode(reg).ok());
    check(absl::StrCat(node, " registered"));
    report(node, false);
    check(absl::StrCat(node, " reported"));
  }
  EXPECT_EQ(check("all reported"), static_cast<int>(names.size()));
  // An error unsettles the lease it names; clearing it settles it again.
  report("n0", true);
  EXPECT_EQ(check("n0 refused"), static_cast<int>(names.size()) - 1);
  report("n0", false);
  EXPECT_EQ(check("n0 applied"), static_cast<int>(names.size()));
  // Silent agents, then registrations again in another order.
  clock_.Advance(opts_.heartbeat_timeout + absl::Seconds(1));
  manager_->Sweep();
  EXPECT_EQ(check("all silent"), 0);
  for (const char* node : {"n1", "n3", "n0", "n5", "n2", "n4"}) {
    agentproto::v1::RegisterNodeRequest reg;
    reg.set_node(node);
    ASSERT_TRUE(manager_->RegisterNode(reg).ok());
    report(node, false);
    check(absl::StrCat(node, " back"));
  }
  EXPECT_EQ(check("all back"), static_cast<int>(names.size()));
}

}  // namespace
}  // namespace fabric::service
