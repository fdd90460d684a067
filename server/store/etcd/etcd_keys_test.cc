#include "server/store/etcd/etcd_keys.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::store {
namespace {

using ::testing::HasSubstr;

TEST(EtcdKeysTest, LayoutUnderThePrefix) {
  EtcdKeys keys("/fab");
  EXPECT_EQ(keys.Key("alloc", "a-1"), "/fab/kv/5:alloc/a-1");
  EXPECT_EQ(keys.SchemaKey(), "/fab/meta/schema");
  EXPECT_EQ(EtcdKeys("").Key("t", "k"), "/kv/1:t/k");
  EXPECT_EQ(keys.Table("alloc").begin, "/fab/kv/5:alloc/");
  EXPECT_EQ(keys.Table("alloc").end, "/fab/kv/5:alloc0");
  EXPECT_EQ(keys.All().begin, "/fab/");
  EXPECT_EQ(keys.All().end, "/fab0");
}

bool InRange(const EtcdKeyRange& r, const std::string& key) {
  return key >= r.begin && key < r.end;
}

TEST(EtcdKeysTest, NoTableRangeHoldsAnotherTablesKeys) {
  EtcdKeys keys("/p");
  const std::string nul("x\0y", 3);
  const std::string tables[] = {"a", "ab", "a/", "a/b", nul, "", "b"};
  const std::string ks[] = {"", "k", "/", "b/c", nul, "\xff"};
  for (const std::string& t : tables) {
    for (const std::string& other : tables) {
      for (const std::string& k : ks) {
        EXPECT_EQ(InRange(keys.Table(t), keys.Key(other, k)), t == other)
            << "table " << t << " key " << k << " of " << other;
      }
    }
    EXPECT_FALSE(InRange(keys.Table(t), keys.SchemaKey()));
    EXPECT_TRUE(InRange(keys.All(), keys.Key(t, "k")));
  }
}

TEST(EtcdKeysTest, KeysOfATableSortAsTheStoreKeys) {
  EtcdKeys keys("/p");
  EXPECT_LT(keys.Key("t", std::string("a\0", 2)), keys.Key("t", "a/"));
  EXPECT_LT(keys.Key("t", "a"), keys.Key("t", std::string("a\0", 2)));
  EXPECT_LT(keys.Key("t", "Z"), keys.Key("t", "\xff"));
}

TEST(EtcdKeysTest, StoreKeyRoundTripsAndRefusesOtherTables) {
  EtcdKeys keys("/p");
  const std::string k("a/\0b", 4);
  absl::StatusOr<std::string> back = keys.StoreKey("t", keys.Key("t", k));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, k);
  absl::StatusOr<std::string> bad = keys.StoreKey("t", keys.Key("tt", k));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(bad.status().message(), HasSubstr("not in table \"t\""));
}

TEST(EtcdKeysTest, PrefixEnd) {
  EXPECT_EQ(EtcdPrefixEnd("ab"), "ac");
  EXPECT_EQ(EtcdPrefixEnd("a\xff"), "b");
  EXPECT_EQ(EtcdPrefixEnd("\xff\xff"), std::string(1, '\0'));
  EXPECT_EQ(EtcdPrefixEnd(""), std::string(1, '\0'));
}

TEST(EtcdKeysTest, KeyOverheadCoversTheLayout) {
  EtcdKeys keys("/fabric-a");
  const std::string table(123, 't');
  EXPECT_EQ(keys.Key(table, "k").size(),
            table.size() + 1 + keys.KeyOverhead() + 3);
}

}  // namespace
}  // namespace fabric::store
