// EtcdStore against a real etcd (tests/etcd/etcd_cluster.h): one 1-member
// cluster shared by the tests that do not stop it, each test under its own
// prefix; the tests that kill the member start their own.
#include "server/store/etcd/etcd_store.h"

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/etcd/etcd_cluster.h"

namespace fabric::store {
namespace {

using ::fabric::etcdtest::EtcdCluster;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

EtcdStoreOptions OptionsFor(const EtcdCluster& etcd, const std::string& prefix) {
  EtcdStoreOptions options;
  absl::StatusOr<EtcdUrl> url = ParseEtcdUrl(etcd.StoreUrl(prefix));
  EXPECT_TRUE(url.ok()) << url.status();
  options.client.endpoints = url->endpoints;
  options.prefix = url->prefix;
  return options;
}

// etcd's own KV and Lease API, behind the store's back.
struct RawEtcd {
  explicit RawEtcd(const EtcdCluster& etcd) {
    EtcdClientOptions options;
    options.endpoints = {etcd.ClientAddress(0)};
    channel = *DialEtcd(options);
    kv = etcdserverpb::KV::NewStub(channel);
    lease = etcdserverpb::Lease::NewStub(channel);
  }
  int64_t Put(const std::string& key, const std::string& value,
              int64_t lease_id = 0) {
    grpc::ClientContext context;
    etcdserverpb::PutRequest request;
    request.set_key(key);
    request.set_value(value);
    request.set_lease(lease_id);
    etcdserverpb::PutResponse response;
    EXPECT_TRUE(kv->Put(&context, request, &response).ok());
    return response.header().revision();
  }
  void Delete(const std::string& key) {
    grpc::ClientContext context;
    etcdserverpb::DeleteRangeRequest request;
    request.set_key(key);
    etcdserverpb::DeleteRangeResponse response;
    EXPECT_TRUE(kv->DeleteRange(&context, request, &response).ok());
  }
  int64_t Grant() {
    grpc::ClientContext context;
    etcdserverpb::LeaseGrantRequest request;
    request.set_ttl(60);
    etcdserverpb::LeaseGrantResponse response;
    EXPECT_TRUE(lease->LeaseGrant(&context, request, &response).ok());
    return response.id();
  }
  void Revoke(int64_t id) {
    grpc::ClientContext context;
    etcdserverpb::LeaseRevokeRequest request;
    request.set_id(id);
    etcdserverpb::LeaseRevokeResponse response;
    EXPECT_TRUE(lease->LeaseRevoke(&context, request, &response).ok());
  }
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease;
};

class EtcdStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<EtcdCluster>> etcd = EtcdCluster::Start(1);
    ASSERT_TRUE(etcd.ok()) << etcd.status();
    etcd_ = etcd->release();
  }
  static void TearDownTestSuite() {
    delete etcd_;
    etcd_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(etcd_, nullptr);
    prefix_ = absl::StrCat(
        "/", ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  std::unique_ptr<EtcdStore> Open(EtcdStoreOptions options) {
    absl::StatusOr<std::unique_ptr<EtcdStore>> store = EtcdStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }
  std::unique_ptr<EtcdStore> Open() { return Open(OptionsFor(*etcd_, prefix_)); }

  static EtcdCluster* etcd_;
  std::string prefix_;
};
EtcdCluster* EtcdStoreTest::etcd_ = nullptr;

TEST_F(EtcdStoreTest, PutGetDeleteAndNoTableSeesAnothersKeys) {
  std::unique_ptr<EtcdStore> store = Open();
  ASSERT_NE(store, nullptr);
  const std::string nul_key("k\0z", 3);
  WriteBatch batch;
  batch.Put("a", "b/c", "1");
  batch.Put("a", nul_key, "2");
  batch.Put("a", "k", "3");
  batch.Put("ab", "c", "4");
  batch.Put("a/b", "c", "5");
  ASSERT_TRUE(store->Apply(batch).ok());

  EXPECT_EQ(*store->Get("a", nul_key), "2");
  EXPECT_EQ(store->Get("ab", "k").status().code(),
            absl::StatusCode::kNotFound);
  auto a = store->Scan("a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_THAT(*a, ElementsAre(Pair("b/c", "1"), Pair("k", "3"),
                              Pair(nul_key, "2")));
  EXPECT_THAT(*store->Scan("ab"), ElementsAre(Pair("c", "4")));
  EXPECT_THAT(*store->Scan("a/b"), ElementsAre(Pair("c", "5")));
  EXPECT_TRUE(store->Scan("b")->empty());

  WriteBatch del;
  del.Delete("a", nul_key);
  del.Delete("a", "absent");
  ASSERT_TRUE(store->Apply(del).ok());
  EXPECT_EQ(store->Get("a", nul_key).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store->Scan("a")->size(), 2u);
}

TEST_F(EtcdStoreTest, LaterMutationOfAKeyInABatchWins) {
  std::unique_ptr<EtcdStore> store = Open();
  ASSERT_NE(store, nullptr);
  WriteBatch batch;
  batch.Put("t", "k", "1");
  batch.Put("t", "gone", "x");
  batch.Put("t", "k", "2");
  batch.Delete("t", "gone");
  batch.Delete("t", "back");
  batch.Put("t", "back", "b");
  ASSERT_TRUE(store->Apply(batch).ok());
  EXPECT_THAT(*store->Scan("t"), ElementsAre(Pair("back", "b"), Pair("k", "2")));
}

TEST_F(EtcdStoreTest, ScanPagesThroughManyKeysInOrder) {
  std::unique_ptr<EtcdStore> store = Open();
  ASSERT_NE(store, nullptr);
  const int kKeys = 2 * kScanPageSize + 7;
  WriteBatch batch;
  for (int i = 0; i < kKeys; ++i) {
    batch.Put("t", absl::StrCat("key-", 100000 + i), absl::StrCat(i));
    if (batch.mutations().size() == 100 || i == kKeys - 1) {
      ASSERT_TRUE(store->Apply(batch).ok());
      batch = WriteBatch();
    }
  }
  auto all = store->Scan("t");
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), static_cast<size_t>(kKeys));
  for (int i = 0; i < kKeys; ++i) {
    EXPECT_EQ((*all)[i].first, absl::StrCat("key-", 100000 + i));
  }
  // ScanEach, page by page, stops on the second page at the visitor's
  // error.
  int visits = 0;
  absl::Status stopped =
      store->ScanEach("t", [&](absl::string_view key, absl::string_view) {
        ++visits;
        return key == absl::StrCat("key-", 100000 + kScanPageSize + 3)
                   ? absl::CancelledError("enough")
                   : absl::OkStatus();
      });
  EXPECT_EQ(stopped, absl::CancelledError("enough"));
  EXPECT_EQ(visits, static_cast<int>(kScanPageSize) + 4);
}

TEST_F(EtcdStoreTest, LimitsFitEtcdsAndRefuseWhatDoesNot) {
  std::unique_ptr<EtcdStore> store = Open();
  ASSERT_NE(store, nullptr);
  const StoreLimits limits = store->limits();
  // etcd counts max(compares, success ops, failure ops) against
  // --max-txn-ops, so the fence's compare costs no op.
  EXPECT_EQ(limits.max_ops, 128u);
  RawEtcd raw(*etcd_);
  const std::string fence_key = prefix_ + "/election/x";
  store->SetFence(Fence{fence_key, raw.Put(fence_key, "me")});

  WriteBatch full;
  for (size_t i = 0; i < limits.max_ops; ++i) {
    full.Put("t", absl::StrCat("k", i), "v");
  }
  ASSERT_TRUE(limits.Fits(full));
  ASSERT_TRUE(store->Apply(full).ok());

  WriteBatch too_many = full;
  too_many.Put("t", "one-more", "v");
  absl::Status status = store->Apply(too_many);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("max_ops 128"),
                                      HasSubstr("--max-txn-ops")));
  EXPECT_EQ(store->Get("t", "one-more").status().code(),
            absl::StatusCode::kNotFound);

  // The largest value that fits is accepted by etcd's --max-request-bytes.
  WriteBatch biggest;
  biggest.Put("t", "big",
              std::string(limits.max_bytes - limits.per_op_overhead_bytes -
                              std::string("tbig").size(),
                          'x'));
  ASSERT_TRUE(limits.Fits(biggest));
  EXPECT_TRUE(store->Apply(biggest).ok());
  WriteBatch too_big;
  too_big.Put("t", "huge", std::string(limits.max_bytes, 'x'));
  status = store->Apply(too_big);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr(absl::StrCat("max_bytes ", limits.max_bytes)),
                    HasSubstr("--max-request-bytes")));
  EXPECT_EQ(store->Get("t", "huge").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(EtcdStoreTest, EtcdsOwnRefusalIsInvalidArgument) {
  EtcdStoreOptions options = OptionsFor(*etcd_, prefix_);
  options.max_txn_ops = 200;  // more than the cluster's --max-txn-ops
  std::unique_ptr<EtcdStore> store = Open(options);
  ASSERT_NE(store, nullptr);
  WriteBatch batch;
  for (int i = 0; i < 150; ++i) batch.Put("t", absl::StrCat(i), "v");
  absl::Status status = store->Apply(batch);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("too many operations"));
  EXPECT_TRUE(store->Scan("t")->empty());
}

TEST_F(EtcdStoreTest, LostFenceFailsAppliesAndCallsBackOnce) {
  std::unique_ptr<EtcdStore> store = Open();
  ASSERT_NE(store, nullptr);
  RawEtcd raw(*etcd_);
  const int64_t lease = raw.Grant();
  const std::string fence_key = prefix_ + "/election/694d";
  const int64_t created = raw.Put(fence_key, "me", lease);
  std::atomic<int> lost{0};
  store->SetFence(Fence{fence_key, created}, [&] { ++lost; });
  WriteBatch before;
  before.Put("t", "k", "1");
  ASSERT_TRUE(store->Apply(before).ok());

  raw.Delete(fence_key);
  WriteBatch after;
  after.Put("t", "k", "2");
  after.Put("t", "new", "x");
  for (int i = 0; i < 2; ++i) {
    absl::Status status = store->Apply(after);
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(status.message(),
                AllOf(HasSubstr("not the leader"), HasSubstr(fence_key),
                      HasSubstr("is gone")));
  }
  EXPECT_EQ(lost.load(), 1);
  EXPECT_THAT(*store->Scan("t"), ElementsAre(Pair("k", "1")));

  // Another manager's key under the same name: a new create revision.
  raw.Put(fence_key, "other");
  absl::Status status = store->Apply(after);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("created again"));
  raw.Revoke(lease);

  // A new fence on a new lease; revoking the lease loses it.
  const int64_t lease2 = raw.Grant();
  const std::string key2 = prefix_ + "/election/2";
  std::atomic<int> lost2{0};
  store->SetFence(Fence{key2, raw.Put(key2, "me", lease2)}, [&] { ++lost2; });
  ASSERT_TRUE(store->Apply(before).ok());
  raw.Revoke(lease2);
  EXPECT_EQ(store->Apply(after).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(lost2.load(), 1);
  EXPECT_EQ(lost.load(), 1);
  EXPECT_THAT(*store->Scan("t"), ElementsAre(Pair("k", "1")));

  store->SetFence(std::nullopt);
  EXPECT_TRUE(store->Apply(after).ok());
}

TEST_F(EtcdStoreTest, SchemaIsWrittenOnceAndANewerOneRefused) {
  std::vector<std::thread> openers;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    openers.emplace_back([&] {
      if (EtcdStore::Open(OptionsFor(*etcd_, prefix_)).ok()) ++ok;
    });
  }
  for (std::thread& t : openers) t.join();
  EXPECT_EQ(ok.load(), 4);

  RawEtcd raw(*etcd_);
  raw.Put(prefix_ + "/meta/schema", "2");
  absl::StatusOr<std::unique_ptr<EtcdStore>> newer =
      EtcdStore::Open(OptionsFor(*etcd_, prefix_));
  EXPECT_EQ(newer.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(newer.status().message(),
              AllOf(HasSubstr("schema version is 2"),
                    HasSubstr(absl::StrCat("binary's ", kEtcdSchemaVersion))));
}

TEST_F(EtcdStoreTest, BadOptionsAreRefused) {
  EtcdStoreOptions options = OptionsFor(*etcd_, prefix_);
  options.prefix = "/trailing/";
  EXPECT_EQ(EtcdStore::Open(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = OptionsFor(*etcd_, prefix_);
  options.max_txn_ops = 0;
  EXPECT_EQ(EtcdStore::Open(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(EtcdStoreTest, IsEmptyIgnoresTheSchemaAndRevisionFollowsWrites) {
  std::unique_ptr<EtcdStore> store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(*store->IsEmpty());
  const int64_t opened = store->revision();
  EXPECT_GT(opened, 0);
  WriteBatch put;
  put.Put("t", "k", "v");
  ASSERT_TRUE(store->Apply(put).ok());
  EXPECT_FALSE(*store->IsEmpty());
  EXPECT_GT(store->revision(), opened);
  WriteBatch del;
  del.Delete("t", "k");
  ASSERT_TRUE(store->Apply(del).ok());
  EXPECT_TRUE(*store->IsEmpty());
}

TEST_F(EtcdStoreTest, ConcurrentCallersAreGroupedIntoFewerTxns) {
  std::unique_ptr<EtcdStore> store = Open();
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 8;
  constexpr int kApplies = 50;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kApplies; ++i) {
        WriteBatch batch;
        batch.Put("t", absl::StrCat(t, "-", i), "v");
        batch.Put("shared", "last", absl::StrCat(t));  // same key in a group
        if (!store->Apply(batch).ok()) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  const StoreStats stats = store->stats();
  EXPECT_EQ(stats.batches, kThreads * kApplies);
  EXPECT_LT(stats.commits, stats.batches);
  EXPECT_EQ(store->Scan("t")->size(), static_cast<size_t>(kThreads * kApplies));
}

TEST(EtcdStoreFailureTest, UnreachableEtcdIsUnavailableWithinTheRpcTimeout) {
  absl::StatusOr<std::unique_ptr<EtcdCluster>> etcd = EtcdCluster::Start(1);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  EtcdStoreOptions options = OptionsFor(**etcd, "/p");
  options.client.rpc_timeout = absl::Seconds(1);
  absl::StatusOr<std::unique_ptr<EtcdStore>> store = EtcdStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();

  (*etcd)->Kill(0);
  WriteBatch batch;
  batch.Put("t", "k", "v");
  const absl::Time start = absl::Now();
  absl::Status status = (*store)->Apply(batch);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr((*etcd)->ClientAddress(0)));
  EXPECT_EQ((*store)->Get("t", "k").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(EtcdStore::Open(options).status().code(),
            absl::StatusCode::kUnavailable);

  ASSERT_TRUE((*etcd)->Restart(0).ok());
  ASSERT_TRUE((*etcd)->WaitHealthy(absl::Seconds(30)));
  const absl::Time t1 = absl::Now();
  absl::Status again;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  // The channel reconnects within its (1 s) maximal backoff.
  while (!(again = (*store)->Apply(batch)).ok() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));  // a poll interval
  }
  EXPECT_TRUE(again.ok()) << again;
  EXPECT_LT(absl::Now() - t1, absl::Seconds(5));
}

TEST(EtcdStoreFailureTest, AcknowledgedBatchesSurviveSigkillOfTheMember) {
  absl::StatusOr<std::unique_ptr<EtcdCluster>> etcd = EtcdCluster::Start(1);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  EtcdStoreOptions options = OptionsFor(**etcd, "/durable");
  options.client.rpc_timeout = absl::Seconds(2);
  absl::StatusOr<std::unique_ptr<EtcdStore>> store = EtcdStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();

  absl::Mutex mu;
  std::vector<std::string> acked;  // guarded by mu
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        WriteBatch batch;
        const std::string key = absl::StrCat(t, "-", i);
        batch.Put("t", key, key);
        if ((*store)->Apply(batch).ok()) {
          absl::MutexLock lock(&mu);
          acked.push_back(key);
        }
      }
    });
  }
  {
    absl::MutexLock lock(&mu);
    auto enough = [&] { return acked.size() >= 200; };
    mu.Await(absl::Condition(&enough));
  }
  (*etcd)->Kill(0);  // SIGKILL while the writers write
  stop = true;
  for (std::thread& t : writers) t.join();
  store->reset();

  ASSERT_TRUE((*etcd)->Restart(0).ok());
  ASSERT_TRUE((*etcd)->WaitHealthy(absl::Seconds(30)));
  absl::StatusOr<std::unique_ptr<EtcdStore>> reopened =
      EtcdStore::Open(options);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  auto all = (*reopened)->Scan("t");
  ASSERT_TRUE(all.ok()) << all.status();
  std::set<std::string> present;
  for (const auto& [key, value] : *all) present.insert(key);
  absl::MutexLock lock(&mu);
  EXPECT_GE(acked.size(), 200u);
  for (const std::string& key : acked) {
    EXPECT_TRUE(present.count(key)) << key << " was acknowledged, then lost";
  }
}

}  // namespace
}  // namespace fabric::store
