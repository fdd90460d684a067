#include "common/http/http_server.h"

#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/security/testing/test_pki.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::http {
namespace {

using ::testing::HasSubstr;

// Echoes who called, how, and what it sent.
HttpResponse Echo(const HttpRequest& r) {
  std::string who = r.peer.ok() ? r.peer->ToString() + " role=" +
                                      r.peer->cert_role
                                : std::string(r.peer.status().message());
  std::string query;
  for (const auto& [k, v] : r.query) absl::StrAppend(&query, k, "=", v, ";");
  return HttpResponse::Text(
      200, "text/plain",
      absl::StrCat(r.method, " ", r.path, " ", query, " ", r.body, " | ", who));
}

std::unique_ptr<httplib::SSLClient> Client(int port,
                                           const security::TlsConfig& tls,
                                           const std::string& ca) {
  auto client = std::make_unique<httplib::SSLClient>(
      "127.0.0.1", port, tls.cert_file, tls.key_file);
  client->set_ca_cert_path(ca.c_str());
  client->enable_server_certificate_verification(true);
  return client;
}

class HttpServerTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = security::TestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *std::move(pki);
    HttpServerOptions options;
    options.listen = "127.0.0.1:0";
    options.tls = pki_->Issue("manager", "m1");
    auto server = HttpServer::Start(options, Echo);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  std::unique_ptr<security::TestPki> pki_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTlsTest, TheHandlerSeesThePeersIdentityAndTheRequest) {
  auto client =
      Client(server_->port(), pki_->Issue("user", "alice", "scheduler"),
             pki_->ca_file());
  auto res = client->Post("/v1/things:do?a=1&a=2&b=x%20y", "{\"k\":1}",
                          "application/json");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body,
            "POST /v1/things:do a=1;a=2;b=x y; {\"k\":1} | user/alice "
            "role=scheduler");
}

TEST_F(HttpServerTlsTest, AFormEncodedBodyIsABodyNotAQuery) {
  auto client = Client(server_->port(), pki_->Issue("user", "bob"),
                       pki_->ca_file());
  // What curl -d sends without -H 'Content-Type: application/json'.
  auto res = client->Post("/v1/x?a=1", "{\"k\":1}",
                          "application/x-www-form-urlencoded");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->body, "POST /v1/x a=1; {\"k\":1} | user/bob role=");
}

TEST_F(HttpServerTlsTest, AClientWithoutACertificateIsRefusedAtTheHandshake) {
  httplib::SSLClient client("127.0.0.1", server_->port());
  client.set_ca_cert_path(pki_->ca_file().c_str());
  auto res = client.Get("/anything");
  EXPECT_FALSE(res);
}

TEST_F(HttpServerTlsTest, ACertificateOfAnotherCaIsRefused) {
  auto other = security::TestPki::Create();
  ASSERT_TRUE(other.ok());
  auto client = Client(server_->port(), (*other)->Issue("user", "mallory"),
                       pki_->ca_file());
  EXPECT_FALSE(client->Get("/anything"));
}

// Replaces `path` with `content` as a rotation does: a new file renamed
// over the old one.
bool Replace(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out.flush()) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

// The CA bundle is re-read as the gRPC listeners re-read theirs: a client
// of a new CA gets in once the bundle names it, without a restart; a bundle
// that does not parse leaves the last good one in use.
TEST(HttpServerCaTest, ARotatedCaBundleIsUsedByTheNextHandshake) {
  auto pki = security::TestPki::Create();
  auto next = security::TestPki::Create();
  ASSERT_TRUE(pki.ok() && next.ok());
  const std::string bundle = absl::StrCat((*pki)->dir(), "/bundle.crt");
  absl::StatusOr<std::string> old_ca = ReadFileToString((*pki)->ca_file());
  absl::StatusOr<std::string> new_ca = ReadFileToString((*next)->ca_file());
  ASSERT_TRUE(old_ca.ok() && new_ca.ok());
  ASSERT_TRUE(Replace(bundle, *old_ca));
  HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  options.tls = (*pki)->Issue("manager", "m1");
  options.tls.ca_file = bundle;
  auto server = HttpServer::Start(options, Echo);
  ASSERT_TRUE(server.ok()) << server.status();
  const security::TlsConfig newcomer = (*next)->Issue("user", "nina");
  auto get = [&](const security::TlsConfig& who) {
    return static_cast<bool>(
        Client((*server)->port(), who, (*pki)->ca_file())->Get("/x"));
  };
  EXPECT_FALSE(get(newcomer));

  ASSERT_TRUE(Replace(bundle, *old_ca + *new_ca));
  EXPECT_TRUE(get(newcomer));
  EXPECT_TRUE(get((*pki)->Issue("user", "olga")));

  ASSERT_TRUE(Replace(bundle, "not a certificate\n"));
  EXPECT_TRUE(get(newcomer));  // the last good bundle
}

// Checked before anything is opened, as for the gRPC listeners
// (security::CheckTransport), naming the flag and the file.
TEST(HttpServerCaTest, ACaFileWithoutACertificateIsRefusedAtStart) {
  auto pki = security::TestPki::Create();
  ASSERT_TRUE(pki.ok());
  const std::string bad = absl::StrCat((*pki)->dir(), "/bad-ca.crt");
  ASSERT_TRUE(Replace(bad, "not a certificate\n"));
  HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  options.tls = (*pki)->Issue("manager", "m1");
  options.tls.ca_file = bad;
  auto server = HttpServer::Start(options, Echo);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(server.status().message()),
              HasSubstr("--tls-ca: " + bad + ": not a PEM certificate"));
}

TEST_F(HttpServerTlsTest, ThePortInUseIsRefusedNamingTheFlag) {
  HttpServerOptions options;
  options.listen = absl::StrCat("127.0.0.1:", server_->port());
  options.tls = pki_->Issue("manager", "m2");
  auto second = HttpServer::Start(options, Echo);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("--http-listen"));
}

TEST(HttpServerTest, PlaintextOnlyOnLoopback) {
  HttpServerOptions options;
  options.tls.insecure = true;
  options.listen = "0.0.0.0:0";
  auto refused = HttpServer::Start(options, Echo);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("loopback"));

  options.listen = "127.0.0.1:0";
  auto server = HttpServer::Start(options, Echo);
  ASSERT_TRUE(server.ok()) << server.status();
  httplib::Client client("127.0.0.1", (*server)->port());
  auto res = client.Get("/x");
  ASSERT_TRUE(res);
  EXPECT_THAT(res->body, HasSubstr("plaintext HTTP carries no identity"));
}

TEST(HttpServerTest, WithoutCertificatesItRefusesToStart) {
  HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  auto refused = HttpServer::Start(options, Echo);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(HttpServerTest, AStreamedResponseArrivesInChunksAndEndsWhenTheClientGoes) {
  HttpServerOptions options;
  options.tls.insecure = true;
  options.listen = "127.0.0.1:0";
  std::atomic<int> written{0};
  auto server = HttpServer::Start(options, [&](const HttpRequest&) {
    HttpResponse r;
    r.content_type = "application/x-ndjson";
    r.stream = [&](const ChunkWriter& write) {
      for (int i = 0; i < 3; ++i) {
        if (!write(absl::StrCat("{\"n\":", i, "}\n"))) return;
        ++written;
      }
    };
    return r;
  });
  ASSERT_TRUE(server.ok()) << server.status();
  httplib::Client client("127.0.0.1", (*server)->port());
  std::string got;
  auto res = client.Get("/stream", [&](const char* data, size_t n) {
    got.append(data, n);
    return true;
  });
  ASSERT_TRUE(res);
  EXPECT_EQ(got, "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n");
  EXPECT_EQ(written.load(), 3);
  (*server)->Shutdown();
  (*server)->Shutdown();  // idempotent
}

}  // namespace
}  // namespace fabric::http
