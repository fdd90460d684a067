#include "server/service/request_log.h"

#include <string>
#include <vector>

#include "fabric/internal/records.pb.h"
#include "fabric/v1/fabric_service.pb.h"
#include "gtest/gtest.h"
#include "openssl/sha.h"

namespace fabric::service {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

void Complete(RequestLog& log, const std::string& id, absl::Time t) {
  auto p = log.Record(id, "M", DigestOf("fp"), t);
  p->done = true;
}

TEST(FingerprintTest, IgnoresRequestIdOnly) {
  v1::DeleteAllocationRequest a, b;
  a.set_name("allocations/x");
  a.set_request_id("one");
  b.set_name("allocations/x");
  b.set_request_id("two");
  EXPECT_EQ(Fingerprint(a), Fingerprint(b));
  b.set_name("allocations/y");
  EXPECT_NE(Fingerprint(a), Fingerprint(b));
}

TEST(RequestLogTest, ForgetsTheOldestOverTheCap) {
  RequestLog log(/*max_ids=*/2, absl::Hours(1));
  Complete(log, "a", kT0);
  Complete(log, "b", kT0);
  Complete(log, "c", kT0);
  std::vector<RequestSlot> taken = log.TakeToForget(kT0, 10);
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].id(), "a");
  EXPECT_NE(log.Find("a"), nullptr);  // until its row is deleted
  log.Forget(taken);
  EXPECT_EQ(log.Find("a"), nullptr);
  EXPECT_EQ(log.size(), 2u);
}

TEST(RequestLogTest, ForgetsPastRetentionButNeverInFlight) {
  RequestLog log(100, absl::Minutes(1));
  log.Record("flying", "M", DigestOf("fp"), kT0);  // not done
  Complete(log, "old", kT0);
  Complete(log, "new", kT0 + absl::Minutes(5));
  std::vector<RequestSlot> taken =
      log.TakeToForget(kT0 + absl::Minutes(5), 10);
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].id(), "old");
  log.Forget(taken);
  EXPECT_NE(log.Find("flying"), nullptr);
  EXPECT_NE(log.Find("new"), nullptr);
}

TEST(RequestLogTest, RestoredIdsAreTakenAgainInOrder) {
  RequestLog log(1, absl::Hours(1));
  Complete(log, "a", kT0);
  Complete(log, "b", kT0);
  Complete(log, "c", kT0);
  std::vector<RequestSlot> taken = log.TakeToForget(kT0, 10);
  ASSERT_EQ(taken.size(), 2u);
  log.Restore(std::move(taken));  // the delete failed
  taken = log.TakeToForget(kT0, 1);
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].id(), "a");
}

TEST(RequestLogTest, AbandonedIdMayBeUsedAgain) {
  RequestLog log(10, absl::Hours(1));
  log.Record("x", "M", DigestOf("fp"), kT0);
  log.Abandon(log.Find("x"));
  EXPECT_EQ(log.Find("x"), nullptr);
  Complete(log, "x", kT0);
  EXPECT_TRUE(log.Find("x")->done);
  // The abandoned record's slot is skipped, not counted.
  EXPECT_TRUE(log.TakeToForget(kT0, 10).empty());
}

TEST(RequestLogTest, LoadKeepsTheNewestAndDeletesTheRest) {
  const std::string method = "CreateAllocation";
  PendingRequest p;
  p.method = &method;
  p.fingerprint = DigestOf("fp");
  std::vector<std::pair<std::string, std::string>> rows;
  for (int i = 0; i < 3; ++i) {
    p.set_time(kT0 + absl::Seconds(i));
    rows.push_back({"id" + std::to_string(i), RequestLog::Row(p, "resp")});
  }
  rows.push_back({"junk", "\xff\xff\xff"});
  RequestLog log(2, absl::Hours(1));
  store::WriteBatch batch;
  log.Load(rows, &batch);
  EXPECT_EQ(log.size(), 2u);
  EXPECT_EQ(log.Find("id0"), nullptr);
  ASSERT_NE(log.Find("id2"), nullptr);
  EXPECT_EQ(*log.Find("id2")->method, method);
  EXPECT_EQ(log.Find("id2")->fingerprint, DigestOf("fp"));
  EXPECT_TRUE(log.Find("id2")->done);
  EXPECT_EQ(batch.mutations().size(), 2u);  // junk and id0
}

// Rows are keyed "{time}/{id}" so that they sit in the order recorded;
// rows of older builds, keyed by the bare id, are loaded and forgotten under
// the key they have. A bare id that only looks like the new form (its time
// is not the row's) stays a bare id.
TEST(RequestLogTest, RowKeysAreInTheOrderRecordedAndOlderKeysAreKept) {
  EXPECT_EQ(RequestRowKey(absl::FromUnixMicros(0x1234), "a/b"),
            "0000000000001234/a/b");
  EXPECT_LT(RequestRowKey(kT0, "zz"), RequestRowKey(kT0 + absl::Seconds(1), "aa"));
  const std::string method = "CreateAllocation";
  PendingRequest p;
  p.method = &method;
  p.fingerprint = DigestOf("fp");
  std::vector<std::pair<std::string, std::string>> rows;
  p.set_time(kT0);
  rows.push_back({"bare", RequestLog::Row(p, "r0")});
  p.set_time(kT0 + absl::Seconds(1));
  const std::string lookalike =
      RequestRowKey(kT0 + absl::Seconds(5), "x");  // not the row's time
  rows.push_back({lookalike, RequestLog::Row(p, "r1")});
  p.set_time(kT0 + absl::Seconds(2));
  rows.push_back({RequestRowKey(p.time(), "new"), RequestLog::Row(p, "r2")});
  RequestLog log(10, absl::Hours(1));
  store::WriteBatch batch;
  log.Load(rows, &batch);
  EXPECT_TRUE(batch.mutations().empty());
  ASSERT_NE(log.Find("bare"), nullptr);
  ASSERT_NE(log.Find(lookalike), nullptr);
  ASSERT_NE(log.Find("new"), nullptr);
  EXPECT_EQ(log.Find("x"), nullptr);
  EXPECT_EQ(RequestLog::RowKey(*log.Find("bare")), "bare");
  EXPECT_EQ(RequestLog::RowKey(*log.Find(lookalike)), lookalike);
  EXPECT_EQ(RequestLog::RowKey(*log.Find("new")),
            RequestRowKey(kT0 + absl::Seconds(2), "new"));
  // A new record is keyed by its time; forgetting names each row's key.
  Complete(log, "later", kT0 + absl::Seconds(3));
  EXPECT_EQ(RequestLog::RowKey(*log.Find("later")),
            RequestRowKey(kT0 + absl::Seconds(3), "later"));
  std::vector<std::string> keys;
  for (const RequestSlot& slot :
       log.TakeToForget(kT0 + absl::Hours(2), 10)) {
    keys.push_back(RequestLog::RowKey(*slot.request));
  }
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "bare", lookalike,
                      RequestRowKey(kT0 + absl::Seconds(2), "new"),
                      RequestRowKey(kT0 + absl::Seconds(3), "later")}));
}

// A completed request's answer is in its row, not in memory; the row names
// its request by the fingerprint's digest, and rows of older builds (the
// fingerprint itself) are read too.
TEST(RequestLogTest, RowsHoldTheAnswerOfTheirRequestOnly) {
  const std::string method = "CreateAllocation";
  PendingRequest p;
  p.method = &method;
  p.fingerprint = DigestOf("fp");
  const std::string row = RequestLog::Row(p, "resp");
  EXPECT_EQ(*RequestLog::RecordedAnswer(row, DigestOf("fp")), "resp");
  EXPECT_EQ(RequestLog::RecordedAnswer(row, DigestOf("other")).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(RequestLog::RecordedAnswer("\xff\xff", DigestOf("fp")).status().code(),
            absl::StatusCode::kDataLoss);
  internal::RequestRecord old;
  old.set_method(method);
  old.set_fingerprint("fp");
  old.set_response("old resp");
  EXPECT_EQ(*RequestLog::RecordedAnswer(old.SerializeAsString(), DigestOf("fp")),
            "old resp");
  // Rows of builds that kept the whole SHA-256 (32 bytes): its first 16
  // are the digest.
  internal::RequestRecord full;
  full.set_method(method);
  full.set_response("full resp");
  std::string sha(SHA256_DIGEST_LENGTH, '\0');
  SHA256(reinterpret_cast<const unsigned char*>("fp"), 2,
         reinterpret_cast<unsigned char*>(sha.data()));
  full.set_fingerprint_sha256(sha);
  EXPECT_EQ(
      *RequestLog::RecordedAnswer(full.SerializeAsString(), DigestOf("fp")),
      "full resp");
  EXPECT_EQ(
      RequestLog::RecordedAnswer(full.SerializeAsString(), DigestOf("other"))
          .status()
          .code(),
      absl::StatusCode::kNotFound);
  RequestLog log(10, absl::Hours(1));
  store::WriteBatch batch;
  log.Load({{"old", old.SerializeAsString()},
            {"full", full.SerializeAsString()}},
           &batch);
  ASSERT_NE(log.Find("old"), nullptr);
  EXPECT_EQ(log.Find("old")->fingerprint, DigestOf("fp"));
  ASSERT_NE(log.Find("full"), nullptr);
  EXPECT_EQ(log.Find("full")->fingerprint, DigestOf("fp"));
  EXPECT_TRUE(batch.empty());
}

}  // namespace
}  // namespace fabric::service
