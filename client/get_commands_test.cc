// GetCommands against a fake FabricService whose ListNodes pages the test
// scripts: pages are printed as they arrive, and a page that fails midway
// is reported with how many were printed.
#include "client/get_commands.h"

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/args.h"
#include "client/fabric_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::client {
namespace {

// The in-process server listens on loopback, in plaintext.
const security::TlsConfig kLoopbackPlaintext{.insecure = true};

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// ListNodes answers the page of its token from `pages` (next token: the
// page's index + 1); a token not there is INVALID_ARGUMENT.
class FakeNodePages final : public v1::FabricService::Service {
 public:
  std::map<std::string, std::vector<std::string>> pages;
  std::map<std::string, std::string> next;

  grpc::Status ListNodes(grpc::ServerContext*, const v1::ListNodesRequest* r,
                         v1::ListNodesResponse* out) override {
    auto page = pages.find(r->page_token());
    if (page == pages.end()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "page_token: not one this server wrote");
    }
    for (const std::string& n : page->second) out->add_nodes()->set_name(n);
    out->set_next_page_token(next[r->page_token()]);
    return grpc::Status::OK;
  }
};

class GetCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    client_ = FabricClient::Connect(absl::StrCat("127.0.0.1:", port),
                                    kLoopbackPlaintext, {});
  }
  void TearDown() override { server_->Shutdown(); }

  absl::Status GetNodes(OutputFormat format, int64_t limit = 0) {
    out_.str("");
    CommandOptions options;
    options.format = format;
    options.limit = limit;
    return GetCommands(client_.get(), &out_, options)
        .Get(ResourceKind::kNode, "", "");
  }

  FakeNodePages service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<FabricClient> client_;
  std::ostringstream out_;
};

TEST_F(GetCommandsTest, PagesShareOneTableSizedByTheFirst) {
  service_.pages = {{"", {"nodes/a", "nodes/b"}}, {"p2", {"nodes/long-name"}}};
  service_.next = {{"", "p2"}};
  ASSERT_TRUE(GetNodes(OutputFormat::kTable).ok());
  EXPECT_THAT(out_.str(), StartsWith("NAME   FABRIC   ROLE"));
  EXPECT_THAT(out_.str(), HasSubstr("\na      -        server"));
  EXPECT_THAT(out_.str(), HasSubstr("\nlong-name   -   server"));
}

TEST_F(GetCommandsTest, LimitStopsAfterThatMany) {
  service_.pages = {{"", {"nodes/a", "nodes/b"}}, {"p2", {"nodes/c"}}};
  service_.next = {{"", "p2"}};
  ASSERT_TRUE(GetNodes(OutputFormat::kJson, 1).ok());
  EXPECT_THAT(out_.str(), HasSubstr("nodes/a"));
  EXPECT_THAT(out_.str(), Not(HasSubstr("nodes/b")));
  EXPECT_THAT(out_.str(), EndsWith("\n]\n"));
}

TEST_F(GetCommandsTest, AFailedFirstPagePrintsNothing) {
  absl::Status s = GetNodes(OutputFormat::kTable);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "list nodes: page_token: not one this server wrote");
  EXPECT_EQ(out_.str(), "");
}

TEST_F(GetCommandsTest, APageFailingMidwaySaysHowManyWerePrinted) {
  service_.pages = {{"", {"nodes/a", "nodes/b"}}, {"p2", {"nodes/c"}}};
  service_.next = {{"", "p2"}, {"p2", "gone"}};
  absl::Status s = GetNodes(OutputFormat::kTable);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "list nodes: page 3 failed after 3 were printed: page_token: not "
            "one this server wrote");
  EXPECT_THAT(StatusHint(s), HasSubstr("only the first ones"));
  EXPECT_THAT(out_.str(), HasSubstr("\nc "));

  // The JSON array is left open: no parser takes the part for the whole.
  s = GetNodes(OutputFormat::kJson);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out_.str(), StartsWith("[\n"));
  EXPECT_THAT(out_.str(), Not(EndsWith("]\n")));
  EXPECT_THAT(out_.str(), HasSubstr("nodes/c"));
}

}  // namespace
}  // namespace fabric::client
