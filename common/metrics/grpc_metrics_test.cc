#include "common/metrics/grpc_metrics.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/manual_clock.h"
#include "fabric/v1/fabric_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "health_check.grpc.pb.h"

namespace fabric::metrics {
namespace {

using ::testing::HasSubstr;

constexpr char kService[] = "fabric.v1.FabricService";

// Ping takes 3 ms of the manual clock; GetFabric finds nothing; the other
// methods are the generated UNIMPLEMENTED.
class SyncFabric final : public v1::FabricService::Service {
 public:
  explicit SyncFabric(ManualClock* clock) : clock_(clock) {}
  grpc::Status Ping(grpc::ServerContext*, const v1::PingRequest*,
                    v1::PingResponse*) override {
    clock_->Advance(absl::Milliseconds(3));
    return grpc::Status::OK;
  }
  grpc::Status GetFabric(grpc::ServerContext*, const v1::GetFabricRequest*,
                         v1::Fabric*) override {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such fabric");
  }

 private:
  ManualClock* const clock_;
};

class CallbackFabric final : public v1::FabricService::CallbackService {
 public:
  explicit CallbackFabric(ManualClock* clock) : clock_(clock) {}
  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* context,
                                 const v1::PingRequest*,
                                 v1::PingResponse*) override {
    clock_->Advance(absl::Milliseconds(3));
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  ManualClock* const clock_;
};

class GrpcMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<RpcMetrics>> m =
        RpcMetrics::Create(&registry_, "test", {kService}, &clock_);
    ASSERT_TRUE(m.ok()) << m.status();
    metrics_ = *std::move(m);
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  // Serves `service` and the default health service (not named at Create)
  // on 127.0.0.1, port 0.
  void Start(grpc::Service* service) {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(service);
    std::vector<
        std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(metrics_->NewInterceptorFactory());
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port, 0);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials());
  }

  grpc::StatusCode Ping() {
    grpc::ClientContext ctx;
    v1::PingResponse response;
    return v1::FabricService::NewStub(channel_)
        ->Ping(&ctx, v1::PingRequest(), &response)
        .error_code();
  }

  ManualClock clock_;
  Registry registry_;
  std::unique_ptr<RpcMetrics> metrics_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(GrpcMetricsTest, SyncServerCountsByMethodAndCode) {
  SyncFabric service(&clock_);
  ASSERT_NO_FATAL_FAILURE(Start(&service));
  auto stub = v1::FabricService::NewStub(channel_);
  ASSERT_EQ(Ping(), grpc::StatusCode::OK);
  ASSERT_EQ(Ping(), grpc::StatusCode::OK);
  {
    grpc::ClientContext ctx;
    v1::Fabric fabric;
    ASSERT_EQ(stub->GetFabric(&ctx, {}, &fabric).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext ctx;
    v1::ListFabricsResponse response;
    ASSERT_EQ(stub->ListFabrics(&ctx, {}, &response).error_code(),
              grpc::StatusCode::UNIMPLEMENTED);
  }
  {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(grpc::health::v1::Health::NewStub(channel_)
                    ->Check(&ctx, {}, &response)
                    .ok());
  }

  // The status is recorded before it is sent: no waiting needed.
  const std::string text = registry_.Render();
  EXPECT_THAT(text,
              HasSubstr("test_rpcs_total{method=\"Ping\",code=\"OK\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("test_rpcs_total{method=\"GetFabric\","
                              "code=\"NOT_FOUND\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("test_rpcs_total{method=\"ListFabrics\","
                              "code=\"UNIMPLEMENTED\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("test_rpcs_total{method=\"unknown\",code=\"OK\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("test_rpc_duration_seconds_bucket{method=\"Ping\","
                        "le=\"0.0025\"} 0\n"));
  EXPECT_THAT(text,
              HasSubstr("test_rpc_duration_seconds_bucket{method=\"Ping\","
                        "le=\"0.005\"} 2\n"));
  EXPECT_THAT(
      text,
      HasSubstr("test_rpc_duration_seconds_sum{method=\"Ping\"} 0.006\n"));
  EXPECT_THAT(
      text, HasSubstr("test_rpc_duration_seconds_count{method=\"Ping\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("test_rpc_duration_seconds_count{method="
                              "\"GetFabric\"} 1\n"));
}

TEST_F(GrpcMetricsTest, CallbackServerIsCountedToo) {
  CallbackFabric service(&clock_);
  ASSERT_NO_FATAL_FAILURE(Start(&service));
  ASSERT_EQ(Ping(), grpc::StatusCode::OK);
  const std::string text = registry_.Render();
  EXPECT_THAT(text,
              HasSubstr("test_rpcs_total{method=\"Ping\",code=\"OK\"} 1\n"));
  EXPECT_THAT(
      text,
      HasSubstr("test_rpc_duration_seconds_sum{method=\"Ping\"} 0.003\n"));
}

TEST_F(GrpcMetricsTest, RecordBoundsItsLabels) {
  // Not a code a call ends with (an enumerator: a value outside the enum
  // would be undefined behaviour, which UBSan reports).
  metrics_->Record("/no.Such/Method", grpc::StatusCode::DO_NOT_USE,
                   absl::ZeroDuration());
  metrics_->Record("/fabric.v1.FabricService/Ping",
                   grpc::StatusCode::RESOURCE_EXHAUSTED, absl::Seconds(20));
  const std::string text = registry_.Render();
  EXPECT_THAT(text, HasSubstr("test_rpcs_total{method=\"unknown\","
                              "code=\"UNKNOWN\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("test_rpcs_total{method=\"Ping\","
                              "code=\"RESOURCE_EXHAUSTED\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("test_rpc_duration_seconds_bucket{method=\"Ping\","
                        "le=\"10\"} 0\n"));
}

TEST_F(GrpcMetricsTest, CreateErrors) {
  EXPECT_EQ(RpcMetrics::Create(&registry_, "test", {kService}, &clock_)
                .status()
                .code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(RpcMetrics::Create(&registry_, "other", {"no.Such"}, &clock_)
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(
      RpcMetrics::Create(&registry_, "9x", {kService}, &clock_).status().code(),
      absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fabric::metrics
