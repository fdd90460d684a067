// The REST API end to end: a real FabricManager and GrpcServer with mutual
// TLS (certificates made by deploy/pki.sh), and the RestListener in front
// of it on 127.0.0.1:0, called over HTTPS with client certificates of
// several identities.
#include "server/rest/rest_listener.h"

#include <httplib.h>

#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "common/file_util.h"
#include "common/security/audit_log.h"
#include "common/security/testing/test_pki.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/server.h"
#include "server/store/sqlite_store.h"

namespace fabric::rest {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

struct Certificates {
  std::unique_ptr<security::TestPki> pki;
  security::TlsConfig manager, admin, alice, bob, viewer;
};

class RestGatewayTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = new Certificates;
    certs_->pki = *security::TestPki::Create();
    certs_->manager = certs_->pki->Issue("manager", "m1");
    certs_->admin = certs_->pki->Issue("user", "root", "admin");
    certs_->alice = certs_->pki->Issue("user", "alice", "scheduler");
    certs_->bob = certs_->pki->Issue("user", "bob", "scheduler");
    certs_->viewer = certs_->pki->Issue("user", "val", "viewer");
  }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }

  void SetUp() override {
    audit_path_ = absl::StrCat(
        certs_->pki->dir(), "/",
        ::testing::UnitTest::GetInstance()->current_test_info()->name(),
        ".audit.log");
    audit_ = *security::AuditLog::Open(audit_path_);
    store_ = *store::OpenSqliteStore({.path = ":memory:"});
    manager_ = *service::FabricManager::Open(store_.get(), Clock::Real());
    service::ServerOptions options;
    options.tls = certs_->manager;
    options.audit = audit_.get();
    auto server =
        service::GrpcServer::Start(manager_.get(), "127.0.0.1:0", options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    RestListenerOptions rest;
    rest.listen = "127.0.0.1:0";
    rest.tls = certs_->manager;
    rest.policy = &policy_;
    rest.audit = audit_.get();
    auto listener = RestListener::Start(
        rest, [s = server_.get()] { return s->InProcessChannel(); });
    ASSERT_TRUE(listener.ok()) << listener.status();
    rest_ = *std::move(listener);
  }
  void TearDown() override {
    if (rest_ != nullptr) rest_->Shutdown();
    if (server_ != nullptr) server_->Shutdown();
    if (manager_ != nullptr) manager_->Shutdown();
  }

  std::unique_ptr<httplib::SSLClient> As(const security::TlsConfig& who) {
    auto c = std::make_unique<httplib::SSLClient>("127.0.0.1", rest_->port(),
                                                  who.cert_file, who.key_file);
    c->set_ca_cert_path(certs_->pki->ca_file().c_str());
    c->enable_server_certificate_verification(true);
    c->set_read_timeout(30, 0);
    return c;
  }

  // POST `path` with `body` as `who`; (status, parsed body).
  std::pair<int, json> Post(const security::TlsConfig& who,
                            const std::string& path, const json& body) {
    auto res = As(who)->Post(path.c_str(), body.dump(), "application/json");
    EXPECT_TRUE(res) << httplib::to_string(res.error());
    if (!res) return {0, json()};
    return {res->status, json::parse(res->body, nullptr, false)};
  }
  std::pair<int, json> Get(const security::TlsConfig& who,
                           const std::string& path) {
    auto res = As(who)->Get(path.c_str());
    EXPECT_TRUE(res) << httplib::to_string(res.error());
    if (!res) return {0, json()};
    return {res->status, json::parse(res->body, nullptr, false)};
  }
  std::pair<int, json> Delete(const security::TlsConfig& who,
                              const std::string& path) {
    auto res = As(who)->Delete(path.c_str());
    EXPECT_TRUE(res) << httplib::to_string(res.error());
    if (!res) return {0, json()};
    return {res->status, json::parse(res->body, nullptr, false)};
  }

  void CreateRing() {
    json spec = {{"name", "lab"}, {"topology", "RING"}, {"nodes", json::array()}};
    for (const char* n : {"n0", "n1", "n2"}) {
      spec["nodes"].push_back({{"name", n}});
    }
    auto [status, body] = Post(certs_->admin, "/v1/fabrics", spec);
    ASSERT_EQ(status, 200) << body.dump();
    ASSERT_EQ(body["name"], "fabrics/lab");
  }

  json AllocationSpec() {
    return {{"borrower", "nodes/n0"}, {"target", "nodes/n1"},
            {"size", "1048576"}};
  }

  static Certificates* certs_;
  security::Policy policy_ = security::Policy::Default();
  std::string audit_path_;
  std::unique_ptr<security::AuditLog> audit_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<service::FabricManager> manager_;
  std::unique_ptr<service::GrpcServer> server_;
  std::unique_ptr<RestListener> rest_;
};

Certificates* RestGatewayTest::certs_ = nullptr;

TEST_F(RestGatewayTest, ResourcesAreCreatedReadAndListedAsJson) {
  CreateRing();
  auto [status, fabric] = Get(certs_->viewer, "/v1/fabrics/lab");
  EXPECT_EQ(status, 200);
  EXPECT_EQ(fabric["name"], "fabrics/lab");
  EXPECT_EQ(fabric["spec"]["topology"], "RING");  // enums by name

  auto [list_status, page] =
      Get(certs_->viewer, "/v1/nodes?fabric=fabrics/lab&pageSize=2");
  EXPECT_EQ(list_status, 200);
  EXPECT_EQ(page["nodes"].size(), 2u);
  ASSERT_FALSE(page["nextPageToken"].get<std::string>().empty());
  auto [next_status, rest] =
      Get(certs_->viewer,
          absl::StrCat("/v1/nodes?fabric=fabrics/lab&page_size=2&page_token=",
                       page["nextPageToken"].get<std::string>()));
  EXPECT_EQ(next_status, 200);
  EXPECT_EQ(rest["nodes"].size(), 1u);
}

TEST_F(RestGatewayTest, ARetryWithTheSameRequestIdAllocatesOnce) {
  CreateRing();
  auto [s1, first] =
      Post(certs_->alice, "/v1/allocations?request_id=job-7", AllocationSpec());
  ASSERT_EQ(s1, 200) << first.dump();
  auto [s2, again] =
      Post(certs_->alice, "/v1/allocations?request_id=job-7", AllocationSpec());
  ASSERT_EQ(s2, 200) << again.dump();
  EXPECT_EQ(first["name"], again["name"]);
  auto [s3, list] = Get(certs_->admin, "/v1/allocations");
  EXPECT_EQ(list["allocations"].size(), 1u);
  // The owner is the caller's identity, as on gRPC.
  EXPECT_EQ(first["owner"], "user/alice");
}

TEST_F(RestGatewayTest, OwnershipAndRolesAreTheGrpcPolicys) {
  CreateRing();
  auto [s1, mine] = Post(certs_->alice, "/v1/allocations", AllocationSpec());
  ASSERT_EQ(s1, 200) << mine.dump();
  const std::string path = absl::StrCat("/v1/", mine["name"].get<std::string>());

  // Bob, another scheduler, cannot see or release Alice's allocation.
  auto [s2, bob_get] = Get(certs_->bob, path);
  EXPECT_TRUE(s2 == 404 || s2 == 403) << s2 << " " << bob_get.dump();
  auto [s3, bob_delete] = Delete(certs_->bob, path);
  EXPECT_TRUE(s3 == 404 || s3 == 403) << s3 << " " << bob_delete.dump();
  auto [s4, bob_list] = Get(certs_->bob, "/v1/allocations");
  EXPECT_EQ(s4, 200);
  EXPECT_TRUE(bob_list["allocations"].empty()) << bob_list.dump();

  // A viewer may not allocate: 403, google.rpc.Status, audited.
  auto [s5, denied] = Post(certs_->viewer, "/v1/allocations", AllocationSpec());
  EXPECT_EQ(s5, 403);
  EXPECT_EQ(denied["code"], 7);
  EXPECT_THAT(denied["message"].get<std::string>(), HasSubstr("user/val"));
  EXPECT_TRUE(denied["details"].is_array());
  auto audit = ReadFileToString(audit_path_);
  ASSERT_TRUE(audit.ok());
  EXPECT_THAT(*audit, HasSubstr("PERMISSION_DENIED"));
  EXPECT_THAT(*audit, HasSubstr("user/val"));

  // Alice releases her own.
  auto [s6, released] = Delete(certs_->alice, path);
  EXPECT_EQ(s6, 200) << released.dump();
  EXPECT_EQ(released["state"], "RELEASED");
}

TEST_F(RestGatewayTest, ErrorsAreStatusJsonUnderTheMatchingHttpCode) {
  CreateRing();
  auto [s1, missing] = Get(certs_->admin, "/v1/fabrics/nope");
  EXPECT_EQ(s1, 404);
  EXPECT_EQ(missing["code"], 5);
  auto [s2, bad] = Post(certs_->admin, "/v1/allocations",
                        {{"borrower", "nodes/n0"}, {"sise", "1"}});
  EXPECT_EQ(s2, 400);
  EXPECT_EQ(bad["code"], 3);
  EXPECT_THAT(bad["message"].get<std::string>(), HasSubstr("sise"));
  auto [s3, no_route] = Get(certs_->admin, "/v1/nothing/here/at/all");
  EXPECT_EQ(s3, 404);
  EXPECT_THAT(no_route["message"].get<std::string>(), HasSubstr("no such route"));
  auto res = As(certs_->admin)->Put("/v1/fabrics/lab", "{}", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 405);
  // A size of zero: the manager's own validation, unchanged.
  auto [s4, zero] = Post(certs_->admin, "/v1/allocations",
                         {{"borrower", "nodes/n0"}, {"target", "nodes/n1"},
                          {"size", "0"}});
  EXPECT_EQ(s4, 400);
  EXPECT_THAT(zero["message"].get<std::string>(), HasSubstr("size"));
}

TEST_F(RestGatewayTest, WatchStreamsNewlineDelimitedEventsAsTheyHappen) {
  CreateRing();
  std::string buffer;
  std::vector<json> events;
  std::future<std::pair<int, json>> link_change;
  bool saw_change = false;
  auto client = As(certs_->viewer);
  std::string content_type;
  client->Get(
      "/v1/watch?collections=links&initial_state=true",
      [&](const httplib::Response& response) {
        content_type = response.get_header_value("Content-Type");
        return response.status == 200;
      },
      [&](const char* data, size_t n) {
        buffer.append(data, n);
        size_t nl;
        while ((nl = buffer.find('\n')) != std::string::npos) {
          events.push_back(json::parse(buffer.substr(0, nl)));
          buffer.erase(0, nl + 1);
          const json& e = events.back()["result"];
          if (e["type"] == "SYNCED" && !link_change.valid()) {
            link_change = std::async(std::launch::async, [&] {
              return Post(certs_->admin, "/v1/links/n0--n1:setState",
                          {{"up", false}});
            });
          }
          if (e["type"] == "MODIFIED" && e.contains("link")) saw_change = true;
        }
        return !saw_change;  // stop reading once the change arrived
      });
  ASSERT_TRUE(link_change.valid()) << "no SYNCED event in " << events.size();
  EXPECT_EQ(link_change.get().first, 200);
  EXPECT_TRUE(saw_change);
  ASSERT_GE(events.size(), 4u);  // three links, SYNCED, the change
  EXPECT_EQ(events[0]["result"]["type"], "ADDED");
  EXPECT_TRUE(events[0]["result"].contains("link"));
  EXPECT_EQ(content_type, "application/x-ndjson");
}

// A client that leaves a Watch on which nothing happens frees its call (and
// its HTTP thread) without waiting for an event that may never come.
TEST_F(RestGatewayTest, AClientLeavingAQuietWatchEndsItsCall) {
  CreateRing();
  auto client = As(certs_->viewer);
  absl::Notification synced;
  std::thread watcher([&] {
    std::string buffer;
    client->Get("/v1/watch?collections=links&initial_state=true",
                [&](const char* data, size_t n) {
                  buffer.append(data, n);
                  if (!synced.HasBeenNotified() &&
                      absl::StrContains(buffer, "SYNCED")) {
                    synced.Notify();
                  }
                  return true;  // reads on: the stream stays open
                });
  });
  ASSERT_TRUE(synced.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(rest_->gateway().open_calls(), 1u);
  client->stop();  // the client closes its connection
  watcher.join();
  // No event comes on this fabric; the gateway notices the client left.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (rest_->gateway().open_calls() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(rest_->gateway().open_calls(), 0u);
}

TEST_F(RestGatewayTest, AStreamRefusedBeforeItsFirstMessageIsAPlainError) {
  auto [status, body] = Get(certs_->admin,
                            "/v1/nodes/ghost:watchOffers");
  EXPECT_EQ(status, 404) << body.dump();
  EXPECT_EQ(body["code"], 5);
}

// Every route of the OpenAPI document protoc-gen-swagger made from the
// annotations answers: with the method's own result or error, never with
// the gateway's "no such route" or 405.
TEST_F(RestGatewayTest, EveryRouteOfTheOpenApiDocumentAnswers) {
  CreateRing();
  auto [status, doc] = Get(certs_->viewer, "/openapi.json");
  ASSERT_EQ(status, 200);
  ASSERT_EQ(doc["swagger"], "2.0");
  int routes = 0;
  for (const auto& [templ, methods] : doc["paths"].items()) {
    // "/v1/{name=fabrics/*}" -> "/v1/fabrics/x"; "{attachment}" ->
    // "attachments/x" (protoc-gen-swagger 1.6 drops some patterns).
    std::string path;
    for (absl::string_view part : absl::StrSplit(templ, '{')) {
      const size_t close = part.find('}');
      if (close == absl::string_view::npos) {
        absl::StrAppend(&path, part);
        continue;
      }
      absl::string_view var = part.substr(0, close);
      const size_t eq = var.find('=');
      std::string value =
          eq == absl::string_view::npos
              ? absl::StrCat(var, "s/x")
              : absl::StrReplaceAll(var.substr(eq + 1), {{"*", "x"}});
      absl::StrAppend(&path, value, part.substr(close + 1));
    }
    for (const auto& [method, op] : methods.items()) {
      ++routes;
      auto client = As(certs_->admin);
      const bool stream = absl::StrContains(path, "watch");
      // A stream's headers are enough (a Watch may send nothing for long).
      int stream_status = 0;
      httplib::ResponseHandler on_headers = [&](const httplib::Response& r) {
        stream_status = r.status;
        return false;
      };
      httplib::ContentReceiver no_content = [](const char*, size_t) {
        return false;
      };
      if (method != "get" && method != "post" && method != "delete") {
        ADD_FAILURE() << "unexpected method " << method << " " << templ;
        continue;
      }
      httplib::Result res =
          method == "post"     ? client->Post(path.c_str(), "{}",
                                              "application/json")
          : method == "delete" ? client->Delete(path.c_str())
          : stream             ? client->Get(path.c_str(), on_headers,
                                                    no_content)
                               : client->Get(path.c_str());
      if (stream) {
        EXPECT_TRUE(stream_status == 200 || stream_status == 404)
            << path << " " << stream_status;
        continue;
      }
      ASSERT_TRUE(res) << method << " " << path << ": "
                       << httplib::to_string(res.error());
      EXPECT_NE(res->status, 405) << method << " " << path;
      EXPECT_THAT(res->body, ::testing::Not(HasSubstr("no such route")))
          << method << " " << path;
      json body = json::parse(res->body, nullptr, false);
      EXPECT_FALSE(body.is_discarded()) << method << " " << path << ": "
                                        << res->body;
    }
  }
  EXPECT_GE(routes, 32);  // every public method
}

}  // namespace
}  // namespace fabric::rest
