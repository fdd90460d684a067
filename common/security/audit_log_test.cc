#include "common/security/audit_log.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::security {
namespace {

using ::testing::HasSubstr;

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "audit-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/audit.log";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_;
  std::string path_;
};

AuditEvent Sample() {
  AuditEvent e;
  e.time = absl::FromUnixMillis(1796500800123);  // 2026-12-05T20:00:00.123Z
  e.identity = "user/alice";
  e.role = "scheduler";
  e.method = "/fabric.v1.FabricService/CreateAllocation";
  e.request_id = "r-17";
  e.code = "OK";
  return e;
}

void ExpectSame(const AuditEvent& a, const AuditEvent& b) {
  EXPECT_EQ(a.time, b.time);
  EXPECT_EQ(a.identity, b.identity);
  EXPECT_EQ(a.role, b.role);
  EXPECT_EQ(a.method, b.method);
  EXPECT_EQ(a.request_id, b.request_id);
  EXPECT_EQ(a.code, b.code);
  EXPECT_EQ(a.message, b.message);
}

TEST_F(AuditLogTest, FormatIsTheDocumentedLine) {
  EXPECT_EQ(
      AuditLog::Format(Sample()),
      "{\"time\":\"2026-12-05T20:00:00.123Z\",\"identity\":\"user/alice\","
      "\"role\":\"scheduler\",\"method\":\"/fabric.v1.FabricService/"
      "CreateAllocation\",\"request_id\":\"r-17\",\"code\":\"OK\","
      "\"message\":\"\"}");
}

TEST_F(AuditLogTest, EscapingRoundTrips) {
  AuditEvent e = Sample();
  e.code = "INVALID_ARGUMENT";
  e.message = "name \"x\\y\" is bad\nsecond line\ttab\r\x01 caf\xc3\xa9";
  std::string line = AuditLog::Format(e);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_THAT(line, HasSubstr("\\\"x\\\\y\\\""));
  EXPECT_THAT(line, HasSubstr("\\n"));
  EXPECT_THAT(line, HasSubstr("\\u0001"));
  absl::StatusOr<AuditEvent> back = AuditLog::ParseLine(line);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSame(*back, e);
}

TEST_F(AuditLogTest, ParseLineRefusesOtherLines) {
  for (const char* bad :
       {"", "not json", "{\"time\":\"2026-12-05T20:00:00Z\"}",
        "{\"time\":\"yesterday\",\"identity\":\"\",\"role\":\"\","
        "\"method\":\"\",\"request_id\":\"\",\"code\":\"\",\"message\":\"\"}",
        "{\"time\":\"2026-12-05T20:00:00Z\",\"identity\":\"a} x",
        "{\"a\":\"b\"} trailing"}) {
    EXPECT_EQ(AuditLog::ParseLine(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST_F(AuditLogTest, RecordAppendsAndReadReadsBack) {
  std::vector<AuditEvent> written;
  {
    absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(path_);
    ASSERT_TRUE(log.ok()) << log.status();
    AuditEvent a = Sample();
    AuditEvent b = Sample();
    b.identity = "";
    b.role = "";
    b.code = "PERMISSION_DENIED";
    b.message = "user/bob (role viewer) may not call \"x\"";
    (*log)->Record(a);
    (*log)->Record(b);
    written = {a, b};
    EXPECT_EQ((*log)->write_errors(), 0);
  }
  {
    // Reopening appends.
    absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(path_);
    ASSERT_TRUE(log.ok()) << log.status();
    (*log)->Record(Sample());
    written.push_back(Sample());
  }
  absl::StatusOr<std::vector<AuditEvent>> read = AuditLog::Read(path_);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), written.size());
  for (size_t i = 0; i < written.size(); ++i)
    ExpectSame((*read)[i], written[i]);
}

TEST_F(AuditLogTest, ReadFromPagesThroughWholeLinesAndFilters) {
  absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(path_);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ((*log)->path(), path_);
  for (int i = 0; i < 10; ++i) {
    AuditEvent e = Sample();
    e.request_id = absl::StrCat("r-", i);
    e.code = i % 3 == 0 ? "PERMISSION_DENIED" : "OK";
    (*log)->Record(e);
  }
  auto all = [](const AuditEvent&) { return true; };
  // Three at a time: four reads, each resuming where the last stopped.
  std::vector<std::string> ids;
  uint64_t offset = 0;
  int reads = 0;
  for (bool end = false; !end; ++reads) {
    absl::StatusOr<AuditLog::Chunk> c =
        AuditLog::ReadFrom(path_, offset, 3, 1 << 20, all);
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_LE(c->events.size(), 3u);
    for (const AuditEvent& e : c->events) ids.push_back(e.request_id);
    EXPECT_GT(c->next_offset, offset);
    offset = c->next_offset;
    end = c->at_end;
  }
  EXPECT_EQ(reads, 4);
  ASSERT_EQ(ids.size(), 10u);
  EXPECT_EQ(ids.front(), "r-0");
  EXPECT_EQ(ids.back(), "r-9");
  EXPECT_EQ(offset, std::filesystem::file_size(path_));

  // A filter keeps only what it accepts; the byte budget cuts a read after
  // whole lines (here: one line), never inside one.
  absl::StatusOr<AuditLog::Chunk> denied = AuditLog::ReadFrom(
      path_, 0, 100, 1 << 20,
      [](const AuditEvent& e) { return e.code == "PERMISSION_DENIED"; });
  ASSERT_TRUE(denied.ok());
  EXPECT_EQ(denied->events.size(), 4u);  // r-0, r-3, r-6, r-9
  EXPECT_TRUE(denied->at_end);
  absl::StatusOr<AuditLog::Chunk> one =
      AuditLog::ReadFrom(path_, 0, 100, 1, all);
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->events.size(), 1u);
  EXPECT_FALSE(one->at_end);
  AuditEvent first = Sample();
  first.request_id = "r-0";
  first.code = "PERMISSION_DENIED";
  EXPECT_EQ(one->next_offset, AuditLog::Format(first).size() + 1);

  // A line still being written (no newline yet) is left for later; what
  // follows it once written is read from the same offset.
  {
    std::ofstream out(path_, std::ios::app);
    out << "{\"time\":\"2026";
  }
  absl::StatusOr<AuditLog::Chunk> tail =
      AuditLog::ReadFrom(path_, offset, 100, 1 << 20, all);
  ASSERT_TRUE(tail.ok()) << tail.status();
  EXPECT_TRUE(tail->events.empty());
  EXPECT_EQ(tail->next_offset, offset);
  EXPECT_TRUE(tail->at_end);
  {
    std::ofstream out(path_, std::ios::app);
    out << "-12-05T20:00:00.000Z\",\"identity\":\"user/late\",\"role\":"
           "\"\",\"method\":\"m\",\"request_id\":\"\",\"code\":\"OK\","
           "\"message\":\"\"}\n";
  }
  tail = AuditLog::ReadFrom(path_, offset, 100, 1 << 20, all);
  ASSERT_TRUE(tail.ok()) << tail.status();
  ASSERT_EQ(tail->events.size(), 1u);
  EXPECT_EQ(tail->events[0].identity, "user/late");

  // Past the end (the file was replaced): OUT_OF_RANGE.
  EXPECT_EQ(AuditLog::ReadFrom(path_, 1 << 30, 1, 1, all).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(AuditLog::ReadFrom(dir_ + "/none", 0, 1, 1, all).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(AuditLogTest, ReadNamesTheBadLine) {
  {
    std::ofstream out(path_);
    out << AuditLog::Format(Sample()) << "\n"
        << "garbage\n";
  }
  absl::StatusOr<std::vector<AuditEvent>> read = AuditLog::Read(path_);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("line 2"));
  EXPECT_THAT(read.status().message(), HasSubstr(path_));
}

TEST_F(AuditLogTest, OpenNamesThePath) {
  std::string bad = dir_ + "/no/such/dir/audit.log";
  absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(bad);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(log.status().message(), HasSubstr(bad));
}

TEST_F(AuditLogTest, ConcurrentRecordsAreWholeLines) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(path_);
  ASSERT_TRUE(log.ok()) << log.status();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        AuditEvent e = Sample();
        e.request_id = absl::StrCat("t", t, "-", i);
        e.message = std::string(300 + i, 'x');  // long enough to interleave
        (*log)->Record(e);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  absl::StatusOr<std::vector<AuditEvent>> read = AuditLog::Read(path_);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), kThreads * kPerThread);
  std::vector<int> next(kThreads, 0);
  for (const AuditEvent& e : *read) {
    int t = 0, i = 0;
    ASSERT_EQ(std::sscanf(e.request_id.c_str(), "t%d-%d", &t, &i), 2);
    // Each thread's lines appear whole and in its order.
    EXPECT_EQ(i, next[t]++);
    EXPECT_EQ(e.message.size(), 300u + i);
  }
}

}  // namespace
}  // namespace fabric::security
