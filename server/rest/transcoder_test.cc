#include "server/rest/transcoder.h"

#include <set>

#include "fabric/v1/fabric_service.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fabric::rest {
namespace {

using ::testing::HasSubstr;

const google::protobuf::ServiceDescriptor* Service() {
  return v1::CreateFabricRequest::descriptor()->file()->FindServiceByName(
      "FabricService");
}

class TranscoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = Transcoder::ForService(*Service());
    ASSERT_TRUE(t.ok()) << t.status();
    transcoder_.emplace(*std::move(t));
  }

  // The request `method path?query` with `body` builds, as text format.
  absl::StatusOr<PreparedCall> Build(
      const std::string& method, const std::string& path,
      const std::multimap<std::string, std::string>& query = {},
      const std::string& body = "") {
    Bindings bindings;
    NoRoute why;
    const Route* route = transcoder_->Find(method, path, &bindings, &why);
    if (route == nullptr) {
      return absl::NotFoundError(why == NoRoute::kMethodNotAllowed
                                     ? "method not allowed"
                                     : "no route");
    }
    return transcoder_->Prepare(*route, bindings, query, body);
  }

  std::optional<Transcoder> transcoder_;
};

TEST_F(TranscoderTest, EveryPublicMethodHasARoute) {
  std::set<std::string> routed;
  for (const Route& r : transcoder_->routes()) routed.insert(r.method->name());
  const auto* service = Service();
  for (int i = 0; i < service->method_count(); ++i) {
    EXPECT_TRUE(routed.count(service->method(i)->name()) > 0)
        << service->method(i)->name() << " has no google.api.http annotation";
  }
}

TEST_F(TranscoderTest, APathVariableFillsItsField) {
  auto call = Build("GET", "/v1/fabrics/f1");
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->route->grpc_method, "/fabric.v1.FabricService/GetFabric");
  auto* req = dynamic_cast<v1::GetFabricRequest*>(call->request.get());
  ASSERT_NE(req, nullptr);
  EXPECT_EQ(req->name(), "fabrics/f1");
}

TEST_F(TranscoderTest, TheBodyFieldAndTheQueryFillTheRest) {
  auto call = Build("POST", "/v1/allocations", {{"request_id", "r-1"}},
                    R"({"borrower": "nodes/n1", "target": "nodes/n2",
                        "size": "1048576"})");
  ASSERT_TRUE(call.ok()) << call.status();
  auto* req = dynamic_cast<v1::CreateAllocationRequest*>(call->request.get());
  ASSERT_NE(req, nullptr);
  EXPECT_EQ(req->request_id(), "r-1");
  EXPECT_EQ(req->allocation().borrower(), "nodes/n1");
  EXPECT_EQ(req->allocation().size(), 1048576u);
}

TEST_F(TranscoderTest, ACustomVerbWithABodyOfEverything) {
  auto call = Build("POST", "/v1/links/n1--n2:setState", {},
                    R"({"up": true, "requestId": "r-2"})");
  ASSERT_TRUE(call.ok()) << call.status();
  auto* req = dynamic_cast<v1::SetLinkStateRequest*>(call->request.get());
  ASSERT_NE(req, nullptr);
  EXPECT_EQ(req->name(), "links/n1--n2");
  EXPECT_TRUE(req->up());
  EXPECT_EQ(req->request_id(), "r-2");
}

TEST_F(TranscoderTest, QueryNamesAreProtoOrJsonNamesAndRepeatedFieldsRepeat) {
  auto call = Build("GET", "/v1/watch",
                    {{"collections", "nodes"},
                     {"collections", "links"},
                     {"initialState", "true"}});
  ASSERT_TRUE(call.ok()) << call.status();
  auto* req = dynamic_cast<v1::WatchRequest*>(call->request.get());
  ASSERT_EQ(req->collections_size(), 2);
  EXPECT_EQ(req->collections(1), "links");
  EXPECT_TRUE(req->initial_state());
}

TEST_F(TranscoderTest, AVerbRouteWinsOverTheResourceRoute) {
  auto call = Build("GET", "/v1/nodes/n1:watchOffers",
                    {{"memory_chunk_bytes", "4096"}});
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->route->method->name(), "WatchOffers");
}

TEST_F(TranscoderTest, BadRequestsNameTheirFault) {
  struct Case {
    std::string method, path;
    std::multimap<std::string, std::string> query;
    std::string body, why;
  } cases[] = {
      {"GET", "/v1/nodes", {{"page_size", "ten"}}, "", "page_size"},
      {"GET", "/v1/nodes", {{"colour", "red"}}, "", "has no field \"colour\""},
      {"GET", "/v1/fabrics/f1", {{"name", "fabrics/f2"}}, "", "bound by"},
      {"POST", "/v1/allocations", {}, R"({"sise": 1})", "sise"},
      {"POST", "/v1/allocations", {}, "{", "not a valid"},
      {"GET", "/v1/fabrics", {}, R"({"x":1})", "takes no body"},
      {"GET", "/v1/watch", {{"initial_state", "maybe"}}, "", "true or false"},
      {"POST", "/v1/links/a--b:setState", {{"up", "true"}}, "{}", "bound by"},
  };
  for (const Case& c : cases) {
    auto call = Build(c.method, c.path, c.query, c.body);
    ASSERT_FALSE(call.ok()) << c.path;
    EXPECT_EQ(call.status().code(), absl::StatusCode::kInvalidArgument)
        << call.status();
    EXPECT_THAT(call.status().message(), HasSubstr(c.why)) << c.path;
  }
}

TEST_F(TranscoderTest, UnknownPathsAndWrongMethodsAreToldApart) {
  Bindings b;
  NoRoute why;
  EXPECT_EQ(transcoder_->Find("GET", "/v2/fabrics", &b, &why), nullptr);
  EXPECT_EQ(why, NoRoute::kNotFound);
  EXPECT_EQ(transcoder_->Find("PUT", "/v1/fabrics/f1", &b, &why), nullptr);
  EXPECT_EQ(why, NoRoute::kMethodNotAllowed);
}

TEST_F(TranscoderTest, JsonOutIsCanonicalWithDefaults) {
  v1::Allocation a;
  a.set_name("allocations/a1");
  a.set_size(1ull << 40);
  auto json = Transcoder::ToJson(a);
  ASSERT_TRUE(json.ok());
  EXPECT_THAT(*json, HasSubstr("\"name\":\"allocations/a1\""));
  EXPECT_THAT(*json, HasSubstr("\"size\":\"1099511627776\""));  // a string
  EXPECT_THAT(*json, HasSubstr("\"borrower\":\"\""));           // a default
}

}  // namespace
}  // namespace fabric::rest
