#include "device_plugin/resource_server.h"

#include <memory>

#include "device_plugin/device_plugin_test_util.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace fabric::device_plugin {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::FakeClaimer;
using testing::kVfResource;
using testing::VfOffer;

std::vector<Device> Devices(std::initializer_list<fabric::v1::Offer> offers) {
  std::vector<Device> out;
  for (const auto& o : offers) out.push_back({o.id(), ResourceNameFor(o), o});
  return out;
}

v1beta1::ContainerPreferredAllocationRequest Request(
    std::vector<std::string> available, std::vector<std::string> must,
    int size) {
  v1beta1::ContainerPreferredAllocationRequest r;
  for (auto& id : available) r.add_available_deviceids(id);
  for (auto& id : must) r.add_must_include_deviceids(id);
  r.set_allocation_size(size);
  return r;
}

TEST(PreferDevicesTest, MustIncludeThenHopsThenLoadThenId) {
  fabric::v1::Offer sick = VfOffer("near-sick", 1, 0.0);
  sick.set_healthy(false);
  const std::vector<Device> current =
      Devices({VfOffer("far", 3, 0.0), VfOffer("near-busy", 1, 0.9),
               VfOffer("near-idle-b", 1, 0.1), VfOffer("near-idle-a", 1, 0.1),
               VfOffer("mid", 2, 0.0), sick});
  std::vector<std::string> all = {"far",         "near-busy", "near-idle-b",
                                  "near-idle-a", "mid",       "near-sick",
                                  "gone"};
  auto got = PreferDevices(Request(all, {"far"}, 7), current);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, ElementsAre("far", "near-idle-a", "near-idle-b",
                                "near-busy", "mid", "near-sick", "gone"));
  got = PreferDevices(Request(all, {}, 2), current);
  ASSERT_TRUE(got.ok());
  EXPECT_THAT(*got, ElementsAre("near-idle-a", "near-idle-b"));
}

TEST(PreferDevicesTest, RefusesImpossibleRequests) {
  const std::vector<Device> current = Devices({VfOffer("a"), VfOffer("b")});
  auto too_many = PreferDevices(Request({"a", "b"}, {}, 3), current);
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(too_many.status().message()),
              HasSubstr("allocation_size"));
  auto too_few = PreferDevices(Request({"a", "b"}, {"a", "b"}, 1), current);
  EXPECT_EQ(too_few.status().code(), absl::StatusCode::kInvalidArgument);
  auto stranger = PreferDevices(Request({"a", "b"}, {"c"}, 1), current);
  EXPECT_EQ(stranger.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(stranger.status().message()),
              HasSubstr("must_include_deviceIDs: \"c\""));
}

// A ResourceServer for kVfResource behind an in-process gRPC server.
class ResourceServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Apply({VfOffer("vf-a", 2), VfOffer("vf-b", 1)});
    service_ = std::make_unique<ResourceServer>(kVfResource, &table_,
                                                &claimer_);
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    stub_ = v1beta1::DevicePlugin::NewStub(
        server_->InProcessChannel(grpc::ChannelArguments()));
  }
  void TearDown() override {
    service_->Shutdown();
    server_->Shutdown();
  }
  void Apply(std::initializer_list<fabric::v1::Offer> offers) {
    fabric::v1::OfferSet set;
    for (const auto& o : offers) *set.add_offers() = o;
    table_.Apply(set);
  }
  grpc::Status Allocate(std::vector<std::vector<std::string>> containers,
                        v1beta1::AllocateResponse* resp) {
    v1beta1::AllocateRequest req;
    for (auto& ids : containers) {
      auto* c = req.add_container_requests();
      for (auto& id : ids) c->add_devices_ids(id);
    }
    grpc::ClientContext ctx;
    return stub_->Allocate(&ctx, req, resp);
  }

  DeviceTable table_;
  FakeClaimer claimer_;
  std::unique_ptr<ResourceServer> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1beta1::DevicePlugin::Stub> stub_;
};

TEST_F(ResourceServerTest, OptionsOfferPreferredAllocation) {
  grpc::ClientContext ctx;
  v1beta1::DevicePluginOptions options;
  ASSERT_TRUE(
      stub_->GetDevicePluginOptions(&ctx, v1beta1::Empty(), &options).ok());
  EXPECT_TRUE(options.get_preferred_allocation_available());
  EXPECT_FALSE(options.pre_start_required());
}

TEST_F(ResourceServerTest, PreferredAllocationPerContainer) {
  v1beta1::PreferredAllocationRequest req;
  *req.add_container_requests() = Request({"vf-a", "vf-b"}, {}, 1);
  *req.add_container_requests() = Request({"vf-a", "vf-b"}, {"vf-a"}, 1);
  v1beta1::PreferredAllocationResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub_->GetPreferredAllocation(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.container_responses_size(), 2);
  EXPECT_THAT(resp.container_responses(0).deviceids(), ElementsAre("vf-b"));
  EXPECT_THAT(resp.container_responses(1).deviceids(), ElementsAre("vf-a"));
}

TEST_F(ResourceServerTest, AllocateRefusesUnknownIdsBeforeClaiming) {
  v1beta1::AllocateResponse resp;
  grpc::Status s = Allocate({{"vf-a"}, {"vf-b", "vf-zzz"}}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              HasSubstr("container_requests[1].devices_ids: \"vf-zzz\""));
  EXPECT_TRUE(claimer_.claims().empty());
  s = Allocate({{"vf-a", "vf-a"}}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("listed twice"));
}

TEST_F(ResourceServerTest, AllocateClaimsPerContainer) {
  v1beta1::AllocateResponse resp;
  ASSERT_TRUE(Allocate({{"vf-a"}, {"vf-b"}}, &resp).ok());
  ASSERT_EQ(resp.container_responses_size(), 2);
  EXPECT_EQ(resp.container_responses(1).cdi_devices(0).name(),
            "pciefabric.dev/test=vf-b");
  auto claims = claimer_.claims();
  ASSERT_EQ(claims.size(), 2u);
  EXPECT_EQ(claims[0].resource, kVfResource);
  EXPECT_THAT(claims[0].ids, ElementsAre("vf-a"));
  EXPECT_THAT(claims[1].ids, ElementsAre("vf-b"));
}

TEST_F(ResourceServerTest, AFailedClaimReleasesTheContainersBefore) {
  claimer_.FailClaims(absl::UnavailableError("lender n2 unreachable"), 1);
  v1beta1::AllocateResponse resp;
  grpc::Status s = Allocate({{"vf-a"}, {"vf-b"}}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("container_requests[1]"));
  EXPECT_THAT(claimer_.released(), ElementsAre("vf-a"));
}

TEST_F(ResourceServerTest, ListAndWatchStreamsChanges) {
  grpc::ClientContext ctx;
  auto reader = stub_->ListAndWatch(&ctx, v1beta1::Empty());
  v1beta1::ListAndWatchResponse list;
  auto health = [&list] {
    std::vector<std::string> out;
    for (const auto& d : list.devices()) out.push_back(d.id() + ":" + d.health());
    return out;
  };
  ASSERT_TRUE(reader->Read(&list));
  EXPECT_THAT(health(), ElementsAre("vf-a:Healthy", "vf-b:Healthy"));
  // Offered away.
  Apply({VfOffer("vf-b", 1)});
  ASSERT_TRUE(reader->Read(&list));
  EXPECT_THAT(health(), ElementsAre("vf-b:Healthy"));
  // A load change only: nothing the kubelet sees; then the lender goes down.
  fabric::v1::Offer sick = VfOffer("vf-b", 1, 0.5);
  Apply({VfOffer("vf-b", 1, 0.5)});
  sick.set_healthy(false);
  sick.set_reason("lender n2 is down");
  Apply({sick});
  ASSERT_TRUE(reader->Read(&list));
  EXPECT_THAT(health(), ElementsAre("vf-b:Unhealthy"));
  Apply({VfOffer("vf-b", 1)});
  ASSERT_TRUE(reader->Read(&list));
  EXPECT_THAT(health(), ElementsAre("vf-b:Healthy"));
  // Shutdown ends the stream.
  service_->Shutdown();
  EXPECT_FALSE(reader->Read(&list));
  EXPECT_TRUE(reader->Finish().ok());
}

}  // namespace
}  // namespace fabric::device_plugin
