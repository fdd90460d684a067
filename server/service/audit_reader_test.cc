#include "server/service/audit_reader.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::service {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::string_view kCreate =
    "/fabric.v1.FabricService/CreateAllocation";
constexpr absl::string_view kDelete =
    "/fabric.v1.FabricService/DeleteAllocation";

class AuditReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "audit-reader-XXXXXX")
            .string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    absl::StatusOr<std::unique_ptr<security::AuditLog>> log =
        security::AuditLog::Open(dir_ + "/audit.log");
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = *std::move(log);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Record i: at t0 + i minutes, by alice (even) or bob (odd); every third
  // refused.
  void Write(int from, int to) {
    for (int i = from; i < to; ++i) {
      security::AuditEvent e;
      e.time = t0_ + absl::Minutes(i);
      e.identity = i % 2 == 0 ? "user/alice" : "user/bob";
      e.role = "scheduler";
      e.method = std::string(i % 2 == 0 ? kCreate : kDelete);
      e.request_id = absl::StrCat("r-", i);
      e.code = i % 3 == 0 ? "PERMISSION_DENIED" : "OK";
      e.message = i % 3 == 0 ? "refused" : "";
      log_->Record(e);
    }
  }

  // Every request id `req` reads, page by page; the pages' count.
  std::vector<std::string> ReadAll(v1::ReadAuditLogRequest req,
                                   int* pages = nullptr,
                                   size_t page_bytes = kAuditPageBytes) {
    std::vector<std::string> ids;
    int n = 0;
    do {
      absl::StatusOr<v1::ReadAuditLogResponse> page =
          ReadAuditLog(log_.get(), req, page_bytes);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok() || ++n > 1000) break;
      for (const v1::AuditRecord& r : page->records()) {
        ids.push_back(r.request_id());
      }
      EXPECT_FALSE(page->resume_token().empty());
      req.set_page_token(page->next_page_token());
    } while (!req.page_token().empty());
    if (pages != nullptr) *pages = n;
    return ids;
  }

  std::string dir_;
  std::unique_ptr<security::AuditLog> log_;
  const absl::Time t0_ = absl::FromUnixSeconds(1796500800);
};

TEST_F(AuditReaderTest, ReadsEveryFieldOldestFirstInPages) {
  Write(0, 7);
  v1::ReadAuditLogRequest req;
  req.set_page_size(3);
  int pages = 0;
  EXPECT_THAT(ReadAll(req, &pages),
              ElementsAre("r-0", "r-1", "r-2", "r-3", "r-4", "r-5", "r-6"));
  EXPECT_EQ(pages, 3);

  absl::StatusOr<v1::ReadAuditLogResponse> first =
      ReadAuditLog(log_.get(), v1::ReadAuditLogRequest());
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->records_size(), 7);
  const v1::AuditRecord& r = first->records(3);
  EXPECT_EQ(r.time().seconds(), absl::ToUnixSeconds(t0_ + absl::Minutes(3)));
  EXPECT_EQ(r.identity(), "user/bob");
  EXPECT_EQ(r.role(), "scheduler");
  EXPECT_EQ(r.method(), kDelete);
  EXPECT_EQ(r.code(), "PERMISSION_DENIED");
  EXPECT_EQ(r.message(), "refused");
  EXPECT_TRUE(first->next_page_token().empty());
}

TEST_F(AuditReaderTest, FiltersMatchEveryFieldGiven) {
  Write(0, 12);
  v1::ReadAuditLogRequest req;
  req.set_identity("user/alice");
  EXPECT_THAT(ReadAll(req),
              ElementsAre("r-0", "r-2", "r-4", "r-6", "r-8", "r-10"));
  req.Clear();
  req.set_method("DeleteAllocation");  // the last part
  EXPECT_EQ(ReadAll(req).size(), 6u);
  req.set_method(std::string(kDelete));  // or the whole name
  EXPECT_EQ(ReadAll(req).size(), 6u);
  req.set_method("Delete");  // not a part of it
  EXPECT_TRUE(ReadAll(req).empty());
  req.Clear();
  req.set_code("PERMISSION_DENIED");
  EXPECT_THAT(ReadAll(req), ElementsAre("r-0", "r-3", "r-6", "r-9"));
  req.set_code("ERROR");
  EXPECT_THAT(ReadAll(req), ElementsAre("r-0", "r-3", "r-6", "r-9"));
  req.set_code("OK");
  EXPECT_EQ(ReadAll(req).size(), 8u);
  req.Clear();
  req.mutable_since()->set_seconds(
      absl::ToUnixSeconds(t0_ + absl::Minutes(10)));
  EXPECT_THAT(ReadAll(req), ElementsAre("r-10", "r-11"));
  req.set_identity("user/bob");
  req.set_code("ERROR");
  EXPECT_TRUE(ReadAll(req).empty());
}

TEST_F(AuditReaderTest, APageReadsABoundedStretchAndTheResumeTokenFollows) {
  Write(0, 50);
  // A filter that matches nothing, with a budget of about ten lines: many
  // empty pages, each with a token to go on.
  v1::ReadAuditLogRequest req;
  req.set_identity("user/nobody");
  int pages = 0;
  const std::string line = security::AuditLog::Format(security::AuditEvent{
      t0_, "user/alice", "scheduler", std::string(kCreate), "r-10", "OK", ""});
  EXPECT_TRUE(ReadAll(req, &pages, 10 * line.size()).empty());
  EXPECT_GE(pages, 5);

  // Reading to the end, then again with the last resume token: only what
  // was written since.
  v1::ReadAuditLogRequest all;
  absl::StatusOr<v1::ReadAuditLogResponse> page =
      ReadAuditLog(log_.get(), all);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->records_size(), 50);
  EXPECT_TRUE(page->next_page_token().empty());
  Write(50, 52);
  all.set_page_token(page->resume_token());
  page = ReadAuditLog(log_.get(), all);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->records_size(), 2);
  EXPECT_EQ(page->records(0).request_id(), "r-50");
}

TEST_F(AuditReaderTest, BadRequestsNameTheField) {
  Write(0, 2);
  auto code_of = [&](const v1::ReadAuditLogRequest& req,
                     absl::string_view field) {
    absl::StatusOr<v1::ReadAuditLogResponse> r =
        ReadAuditLog(log_.get(), req);
    EXPECT_FALSE(r.ok());
    EXPECT_THAT(r.status().message(), HasSubstr(field));
    return r.status().code();
  };
  v1::ReadAuditLogRequest req;
  req.set_page_size(-1);
  EXPECT_EQ(code_of(req, "page_size"), absl::StatusCode::kInvalidArgument);
  req.Clear();
  req.set_code("DENIED");
  EXPECT_EQ(code_of(req, "code"), absl::StatusCode::kInvalidArgument);
  req.Clear();
  req.mutable_since()->set_nanos(-1);
  EXPECT_EQ(code_of(req, "since"), absl::StatusCode::kInvalidArgument);
  req.Clear();
  req.set_page_token("not-a-token");
  EXPECT_EQ(code_of(req, "page_token"), absl::StatusCode::kInvalidArgument);
  // A token of a longer log than this one (it was replaced).
  v1::ReadAuditLogResponse page = *ReadAuditLog(log_.get(), {});
  std::filesystem::resize_file(dir_ + "/audit.log", 10);
  req.Clear();
  req.set_page_token(page.resume_token());
  EXPECT_EQ(code_of(req, "page_token"), absl::StatusCode::kOutOfRange);
  // No log at all.
  absl::StatusOr<v1::ReadAuditLogResponse> none =
      ReadAuditLog(nullptr, v1::ReadAuditLogRequest());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(none.status().message(), HasSubstr("--audit-log"));
}

}  // namespace
}  // namespace fabric::service
