// Rotation under traffic (issue 13, section 4): the manager's and the
// clients' certificate files are replaced on disk while clients call
// continuously; new connections use the new certificates, and no call
// fails.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/security/secure_fabric.h"

namespace fabric::sectest {
namespace {

// Replaces `to` with a copy of `from` in one rename (same directory).
void Replace(const std::string& from, const std::string& to) {
  const std::string tmp = to + ".tmp";
  std::filesystem::copy_file(from, tmp,
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::rename(tmp, to);
}

// Puts `issued`'s certificate and key at `at`'s paths: the key first, then
// the certificate, each atomically.
void Install(const security::TlsConfig& issued, const security::TlsConfig& at) {
  Replace(issued.key_file, at.key_file);
  Replace(issued.cert_file, at.cert_file);
}

std::string Trimmed(absl::string_view pem) {
  return std::string(absl::StripAsciiWhitespace(pem));
}

// The certificate (PEM) the server presented on a new connection, after a
// Ping as `client`; "" if the call failed.
std::string ServerCertificate(const std::string& address,
                              const security::TlsConfig& client) {
  auto stub = v1::FabricService::NewStub(
      Dial(address, client, security::PeerRequirement::AnyManager()));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
  v1::PingRequest req;
  v1::PingResponse resp;
  if (!stub->Ping(&ctx, req, &resp).ok()) return "";
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  if (auth == nullptr) return "";
  std::vector<grpc::string_ref> pem = auth->FindPropertyValues("x509_pem_cert");
  if (pem.empty()) return "";
  return Trimmed(absl::string_view(pem[0].data(), pem[0].size()));
}

TEST(RotationTest, CertificatesReplacedUnderTrafficFailNoCall) {
  SecurityPki& pki = SecurityPki::Get();
  ScratchDir dir;
  // The files the programs are configured with, which the test replaces.
  auto at = [&](const std::string& name) {
    security::TlsConfig tls;
    tls.cert_file = absl::StrCat(dir.path(), "/", name, ".crt");
    tls.key_file = absl::StrCat(dir.path(), "/", name, ".key");
    tls.ca_file = pki.ca_file();
    return tls;
  };
  const security::TlsConfig server_files = at("manager");
  const security::TlsConfig client_files = at("client");
  Install(pki.Reissue("manager", "m1"), server_files);
  Install(pki.Reissue("user", "rot-admin", "admin"), client_files);
  const std::string old_server_pem = Trimmed(ReadFile(server_files.cert_file));

  SecureFabric fabric;
  ASSERT_TRUE(fabric.Start({.manager_tls = server_files}).ok());
  ASSERT_EQ(ServerCertificate(fabric.address(), client_files), old_server_pem);

  // Traffic: half the clients keep one connection, half dial anew for
  // every call (each of those is a handshake with the files of the moment).
  std::atomic<bool> stop{false};
  std::atomic<int64_t> calls{0};
  absl::Mutex mu;
  std::vector<std::string> failures;  // guarded by mu
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      const bool redial = t % 2 == 1;
      std::unique_ptr<v1::FabricService::Stub> stub;
      while (!stop.load()) {
        if (stub == nullptr || redial) {
          stub = v1::FabricService::NewStub(fabric.DialManager(client_files));
        }
        grpc::ClientContext ctx;
        ctx.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
        v1::PingRequest req;
        v1::PingResponse resp;
        grpc::Status s = stub->Ping(&ctx, req, &resp);
        if (!s.ok()) {
          absl::MutexLock l(&mu);
          failures.push_back(absl::StrCat("client ", t, ": ",
                                          s.error_code(), " ",
                                          s.error_message()));
        }
        calls.fetch_add(1);
      }
    });
  }
  auto calls_past = [&](int64_t n) {
    const int64_t target = calls.load() + n;
    return WaitFor([&] { return calls.load() >= target; });
  };
  ASSERT_TRUE(calls_past(50));

  // Rotate both sides.
  const security::TlsConfig new_server = pki.Reissue("manager", "m1");
  const security::TlsConfig new_client = pki.Reissue("user", "rot-admin", "admin");
  const std::string new_server_pem = Trimmed(ReadFile(new_server.cert_file));
  ASSERT_NE(new_server_pem, old_server_pem);
  Install(new_server, server_files);
  Install(new_client, client_files);

  // A new connection sees the new server certificate once the server has
  // re-read its files.
  std::string seen;
  EXPECT_TRUE(WaitFor([&] {
    seen = ServerCertificate(fabric.address(), client_files);
    return seen == new_server_pem;
  })) << "a new connection still sees\n"
      << seen;
  // And the traffic goes on over the new certificates.
  EXPECT_TRUE(calls_past(50));

  stop.store(true);
  for (std::thread& c : clients) c.join();
  absl::MutexLock l(&mu);
  EXPECT_TRUE(failures.empty())
      << failures.size() << " of " << calls.load() << " calls failed, first: "
      << failures.front();
  EXPECT_GT(calls.load(), 100);
}

}  // namespace
}  // namespace fabric::sectest
