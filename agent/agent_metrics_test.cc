#include "agent/agent_metrics.h"

#include <httplib.h>

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/testing/scrape.h"
#include "agent/vf/config_virtualizer.h"
#include "common/security/testing/test_pki.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::agent {
namespace {

using ::testing::HasSubstr;
using testing::ParseSamples;
using testing::Samples;
using testing::Value;

Samples Scrape(const AgentMetrics& m) {
  absl::StatusOr<Samples> s = ParseSamples(m.Render());
  EXPECT_TRUE(s.ok()) << s.status();
  return s.value_or(Samples());
}

TEST(AgentMetricsTest, EveryFamilyIsThereBeforeAnythingHappened) {
  AgentMetrics m;
  const std::string text = m.Render();
  for (const char* family :
       {"fabric_agent_apply_duration_seconds",
        "fabric_agent_applied_generation", "fabric_agent_drift_repairs_total",
        "fabric_agent_refused_entries_total", "fabric_agent_interrupts_total",
        "fabric_agent_vm_exits_avoided_total",
        "fabric_agent_shadow_accesses_total", "fabric_agent_reconnects_total",
        "fabric_agent_rpc_duration_seconds"}) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("# TYPE ", family, " ")))
        << family;
  }
  const Samples s = Scrape(m);
  EXPECT_EQ(Value(s, "fabric_agent_interrupts_total{mode=\"direct\"}"), 0);
  EXPECT_EQ(s.count("fabric_agent_interrupts_total{mode=\"hypervisor\"}"), 1u);
  EXPECT_EQ(s.count("fabric_agent_apply_duration_seconds_count"), 1u);
  // Bounded label sets are there at 0 from the start.
  EXPECT_EQ(s.count("fabric_agent_refused_entries_total{kind=\"window\"}"), 1u);
  EXPECT_EQ(s.count("fabric_agent_shadow_accesses_total{op=\"write\",rule="
                    "\"msix_table\"}"),
            1u);
}

TEST(AgentMetricsTest, RecordsEachEventUnderItsLabels) {
  AgentMetrics m;
  m.ApplyDone(absl::Milliseconds(3));
  m.ApplyDone(absl::Milliseconds(5));
  m.SetAppliedGeneration(7);
  m.DriftRepaired(3);
  m.DriftRepaired(1);
  m.Refused(RefusalKind::kWindow);
  m.Refused(RefusalKind::kWindow);
  m.Refused(RefusalKind::kMapEntry);
  m.Interrupt(InterruptMode::kDirect, /*exit_avoided=*/true);
  m.Interrupt(InterruptMode::kDirect, /*exit_avoided=*/false);  // the host
  m.Interrupt(InterruptMode::kHypervisor, /*exit_avoided=*/false);
  m.ShadowAccess(ShadowOp::kRead, "vendor_id");
  m.ShadowAccess(ShadowOp::kWrite, "command");
  m.ShadowAccess(ShadowOp::kWrite, "command");
  m.Reconnected();
  m.rpc().Record("/fabric.agentproto.v1.NodeAgentService/HostRead",
                 grpc::StatusCode::OK, absl::Milliseconds(1));
  const Samples s = Scrape(m);
  EXPECT_EQ(Value(s, "fabric_agent_apply_duration_seconds_count"), 2);
  EXPECT_NEAR(Value(s, "fabric_agent_apply_duration_seconds_sum"), 0.008, 1e-9);
  EXPECT_EQ(Value(s, "fabric_agent_applied_generation"), 7);
  EXPECT_EQ(Value(s, "fabric_agent_drift_repairs_total"), 4);
  EXPECT_EQ(Value(s, "fabric_agent_refused_entries_total{kind=\"window\"}"), 2);
  EXPECT_EQ(Value(s, "fabric_agent_refused_entries_total{kind=\"map_entry\"}"),
            1);
  EXPECT_EQ(Value(s, "fabric_agent_interrupts_total{mode=\"direct\"}"), 2);
  EXPECT_EQ(Value(s, "fabric_agent_interrupts_total{mode=\"hypervisor\"}"), 1);
  EXPECT_EQ(Value(s, "fabric_agent_vm_exits_avoided_total"), 1);
  EXPECT_EQ(Value(s,
                  "fabric_agent_shadow_accesses_total{op=\"read\",rule="
                  "\"vendor_id\"}"),
            1);
  EXPECT_EQ(Value(s,
                  "fabric_agent_shadow_accesses_total{op=\"write\",rule="
                  "\"command\"}"),
            2);
  EXPECT_EQ(Value(s, "fabric_agent_reconnects_total"), 1);
  EXPECT_EQ(
      Value(s, "fabric_agent_rpcs_total{method=\"HostRead\",code=\"OK\"}"), 1);
}

TEST(AgentMetricsTest, LabelsStayWithinTheirSets) {
  AgentMetrics m;
  for (RefusalKind k :
       {RefusalKind::kHostMemory, RefusalKind::kMapEntry, RefusalKind::kWindow,
        RefusalKind::kInbound, RefusalKind::kPort, RefusalKind::kBridge,
        RefusalKind::kHardware}) {
    m.Refused(k);
  }
  for (const std::string& rule : vf::ConfigVirtualizer::RuleNames()) {
    m.ShadowAccess(ShadowOp::kRead, rule);
    m.ShadowAccess(ShadowOp::kWrite, rule);
  }
  const Samples s = Scrape(m);
  int refused = 0, shadow = 0;
  for (const auto& [series, value] : s) {
    refused += absl::StartsWith(series, "fabric_agent_refused_entries_total{");
    shadow += absl::StartsWith(series, "fabric_agent_shadow_accesses_total{");
    EXPECT_THAT(series, ::testing::Not(HasSubstr("\"other\""))) << series;
  }
  EXPECT_EQ(refused, 7);
  EXPECT_EQ(shadow,
            2 * static_cast<int>(vf::ConfigVirtualizer::RuleNames().size()));
}

TEST(AgentMetricsTest, PrometheusClientReadsTheExposition) {
  AgentMetrics m;
  m.ApplyDone(absl::Milliseconds(2));
  m.Interrupt(InterruptMode::kHypervisor, false);
  m.ShadowAccess(ShadowOp::kRead, vf::kMsixTableRule);
  absl::StatusOr<int> samples = testing::CheckWithPrometheusClient(m.Render());
  if (absl::IsUnimplemented(samples.status())) {
    GTEST_SKIP() << samples.status().message();
  }
  ASSERT_TRUE(samples.ok()) << samples.status();
  absl::StatusOr<Samples> ours = ParseSamples(m.Render());
  ASSERT_TRUE(ours.ok());
  EXPECT_EQ(*samples, static_cast<int>(ours->size()));
}

TEST(MetricsHandlerTest, ServesMetricsOnlyOnGetMetrics) {
  AgentMetrics m;
  m.Reconnected();
  http::HttpHandler handler = MetricsHandler(&m);
  http::HttpRequest get;
  get.method = "GET";
  get.path = "/metrics";
  http::HttpResponse r = handler(get);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, metrics::kContentType);
  EXPECT_THAT(r.body, HasSubstr("fabric_agent_reconnects_total 1\n"));
  http::HttpRequest other = get;
  other.path = "/v1/nodes";
  EXPECT_EQ(handler(other).status, 404);
  http::HttpRequest post = get;
  post.method = "POST";
  EXPECT_EQ(handler(post).status, 405);
}

TEST(ServeAgentMetricsTest, AnyFabricCertificateReadsMetricsOverTls) {
  auto pki = security::TestPki::Create();
  ASSERT_TRUE(pki.ok()) << pki.status();
  AgentMetrics m;
  m.SetAppliedGeneration(3);
  http::HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  options.tls = (*pki)->Issue("node", "n1");
  options.threads = 2;
  auto server = ServeAgentMetrics(options, &m);
  ASSERT_TRUE(server.ok()) << server.status();
  const security::TlsConfig reader = (*pki)->Issue("user", "bob", "viewer");
  httplib::SSLClient client("127.0.0.1", (*server)->port(), reader.cert_file,
                            reader.key_file);
  client.set_ca_cert_path((*pki)->ca_file().c_str());
  client.enable_server_certificate_verification(true);
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), metrics::kContentType);
  EXPECT_THAT(res->body, HasSubstr("fabric_agent_applied_generation 3\n"));
  auto missing = client.Get("/nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);

  // No client certificate: refused at the handshake.
  httplib::SSLClient anonymous("127.0.0.1", (*server)->port());
  anonymous.set_ca_cert_path((*pki)->ca_file().c_str());
  EXPECT_FALSE(anonymous.Get("/metrics"));
}

TEST(ServeAgentMetricsTest, PlaintextOffLoopbackIsRefused) {
  AgentMetrics m;
  http::HttpServerOptions options;
  options.listen = "0.0.0.0:0";
  options.tls.insecure = true;
  auto server = ServeAgentMetrics(options, &m);
  EXPECT_FALSE(server.ok());
}

}  // namespace
}  // namespace fabric::agent
