#include "server/store/open_store.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/store_test_util.h"
#include "tests/etcd/etcd_cluster.h"

namespace fabric::store {
namespace {

using ::fabric::etcdtest::EtcdCluster;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

void ExpectWritable(Store& store) {
  WriteBatch b;
  b.Put("t", "k", "v");
  ASSERT_TRUE(store.Apply(b).ok());
  EXPECT_EQ(*store.Get("t", "k"), "v");
}

TEST(ParseStoreFlagTest, Sqlite) {
  auto spec = ParseStoreFlag("sqlite:/var/lib/fabric/state.db");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->kind, StoreSpec::Kind::kSqlite);
  EXPECT_EQ(spec->sqlite.path, "/var/lib/fabric/state.db");
  EXPECT_EQ(spec->text, "sqlite:/var/lib/fabric/state.db");
}

TEST(ParseStoreFlagTest, Etcd) {
  auto spec = ParseStoreFlag("etcd://10.0.0.1:2379,10.0.0.2:2379/fabric-a");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->kind, StoreSpec::Kind::kEtcd);
  EXPECT_THAT(spec->etcd.client.endpoints,
              ElementsAre("10.0.0.1:2379", "10.0.0.2:2379"));
  EXPECT_EQ(spec->etcd.prefix, "/fabric-a");
}

TEST(ParseStoreFlagTest, Errors) {
  for (const char* bad :
       {"sqlite:", "fabric.db", "mysql://x", "etcd://", "etcd://host"}) {
    auto spec = ParseStoreFlag(bad);
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(spec.status().message(), HasSubstr("--store")) << bad;
  }
}

TEST(SetEtcdTlsTest, OnlyForEtcdAndCertWithKey) {
  StoreSpec sqlite = *ParseStoreFlag("sqlite:a.db");
  EXPECT_TRUE(SetEtcdTls(sqlite, "", "", "").ok());
  EXPECT_EQ(SetEtcdTls(sqlite, "ca.pem", "", "").code(),
            absl::StatusCode::kInvalidArgument);
  StoreSpec etcd = *ParseStoreFlag("etcd://127.0.0.1:2379");
  EXPECT_EQ(SetEtcdTls(etcd, "ca.pem", "c.pem", "").code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(SetEtcdTls(etcd, "ca.pem", "c.pem", "k.pem").ok());
  EXPECT_EQ(etcd.etcd.client.ca_file, "ca.pem");
  EXPECT_EQ(etcd.etcd.client.cert_file, "c.pem");
  EXPECT_EQ(etcd.etcd.client.key_file, "k.pem");
}

TEST(OpenStoreTest, OpensSqlite) {
  testing::ScopedTempDir dir;
  ASSERT_TRUE(dir.ok());
  auto spec = ParseStoreFlag("sqlite:" + dir.File("a.db"));
  ASSERT_TRUE(spec.ok());
  auto store = OpenStore(*spec);
  ASSERT_TRUE(store.ok()) << store.status();
  ExpectWritable(**store);
  EXPECT_EQ((*store)->limits().max_ops, 0u);
}

TEST(OpenStoreTest, OpensEtcdWithItsLimits) {
  auto etcd = EtcdCluster::Start(1);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  auto spec = ParseStoreFlag((*etcd)->StoreUrl("/open-test"));
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto store = OpenStore(*spec);
  ASSERT_TRUE(store.ok()) << store.status();
  ExpectWritable(**store);
  EXPECT_GT((*store)->limits().max_ops, 0u);
  EXPECT_LE((*store)->limits().max_ops, 128u);
}

}  // namespace
}  // namespace fabric::store
