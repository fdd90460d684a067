#include "server/store/etcd/etcd_client.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::store {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ParseEtcdUrlTest, OneEndpointNoPrefix) {
  absl::StatusOr<EtcdUrl> url = ParseEtcdUrl("etcd://127.0.0.1:2379");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_THAT(url->endpoints, ElementsAre("127.0.0.1:2379"));
  EXPECT_EQ(url->prefix, "");
}

TEST(ParseEtcdUrlTest, SeveralEndpointsAndAPrefix) {
  absl::StatusOr<EtcdUrl> url =
      ParseEtcdUrl("etcd://10.0.0.1:2379,[::1]:2380,etcd-3.lan:1/fab/a");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_THAT(url->endpoints,
              ElementsAre("10.0.0.1:2379", "[::1]:2380", "etcd-3.lan:1"));
  EXPECT_EQ(url->prefix, "/fab/a");
}

TEST(ParseEtcdUrlTest, LoneSlashIsNoPrefix) {
  absl::StatusOr<EtcdUrl> url = ParseEtcdUrl("etcd://h:65535/");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->prefix, "");
}

TEST(ParseEtcdUrlTest, BadUrlsNameTheFlagAndTheProblem) {
  const struct {
    const char* url;
    const char* problem;
  } cases[] = {
      {"sqlite:/x.db", "etcd://HOST:PORT"},
      {"etcd://", "empty endpoint"},
      {"etcd://h:1,,h:2", "empty endpoint"},
      {"etcd://host", "needs HOST:PORT"},
      {"etcd://:2379", "needs HOST:PORT"},
      {"etcd://h:0", "port must be 1..65535"},
      {"etcd://h:65536", "port must be 1..65535"},
      {"etcd://h:port", "port must be 1..65535"},
      {"etcd://[::1:2379", "unclosed '['"},
      {"etcd://h:1/fab/", "must not end with '/'"},
      {"etcd://h:1/a//b", "must not hold \"//\""},
  };
  for (const auto& c : cases) {
    absl::StatusOr<EtcdUrl> url = ParseEtcdUrl(c.url);
    EXPECT_EQ(url.status().code(), absl::StatusCode::kInvalidArgument)
        << c.url;
    EXPECT_THAT(url.status().message(),
                AllOf(HasSubstr("--store"), HasSubstr(c.problem)))
        << c.url;
  }
}

TEST(DialEtcdTest, RefusesNoEndpointsAndUnreadableTlsFiles) {
  EXPECT_EQ(DialEtcd({}).status().code(), absl::StatusCode::kInvalidArgument);
  EtcdClientOptions options;
  options.endpoints = {"127.0.0.1:2379"};
  options.ca_file = "/nonexistent/ca.pem";
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = DialEtcd(options);
  EXPECT_EQ(channel.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(channel.status().message(), HasSubstr("--etcd-ca"));
}

}  // namespace
}  // namespace fabric::store
