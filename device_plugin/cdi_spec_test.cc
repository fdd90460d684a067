#include "device_plugin/cdi_spec.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace fabric::device_plugin {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

class CdiSpecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() /
                        "cdi-spec-test-XXXXXX")
                           .string();
    dir_ = mkdtemp(tmpl.data());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static CdiDevice Vf() {
    CdiDevice d;
    d.device_class = std::string(kVfClass);
    d.device_id = "vf-n3-0000-3b-02.1";
    d.claim = "attachments/7";
    d.epoch = 12;
    d.env = {{"FABRIC_VF_VF_N3_0000_3B_02_1", "shadow-7"}};
    return d;
  }

  std::vector<std::string> Files() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
      out.push_back(e.path().filename().string());
    }
    return out;
  }

  std::string dir_;
};

TEST_F(CdiSpecTest, NamesFollowTheCdiSpecification) {
  EXPECT_EQ(CdiKind("vf"), "pciefabric.dev/vf");
  EXPECT_EQ(CdiDeviceName("memory", "mem-n2-0"),
            "pciefabric.dev/memory=mem-n2-0");
  EXPECT_EQ(CdiSpecPath("/var/run/cdi", "memory", "mem-n2-0"),
            "/var/run/cdi/pciefabric.dev-memory-mem-n2-0.json");
}

TEST_F(CdiSpecTest, WrittenSpecParsesAndNamesTheDevice) {
  ASSERT_TRUE(WriteCdiSpec(dir_, Vf()).ok());
  absl::StatusOr<std::string> text =
      ReadFileToString(CdiSpecPath(dir_, "vf", Vf().device_id));
  ASSERT_TRUE(text.ok()) << text.status();
  nlohmann::json spec = nlohmann::json::parse(*text);
  EXPECT_EQ(spec["cdiVersion"], "0.6.0");
  EXPECT_EQ(spec["kind"], "pciefabric.dev/vf");
  ASSERT_EQ(spec["devices"].size(), 1u);
  EXPECT_EQ(spec["devices"][0]["name"], "vf-n3-0000-3b-02.1");
  EXPECT_EQ(spec["devices"][0]["containerEdits"]["env"],
            nlohmann::json::array({"FABRIC_VF_VF_N3_0000_3B_02_1=shadow-7"}));
  // No device node to give for a shadow device.
  EXPECT_FALSE(spec["devices"][0]["containerEdits"].contains("deviceNodes"));
  // The fully-qualified name a runtime resolves is kind=name.
  EXPECT_EQ(absl::StrCat(spec["kind"].get<std::string>(), "=",
                         spec["devices"][0]["name"].get<std::string>()),
            CdiDeviceName("vf", Vf().device_id));

  absl::StatusOr<CdiDevice> back = ParseCdiSpec("x", *text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->device_class, "vf");
  EXPECT_EQ(back->device_id, Vf().device_id);
  EXPECT_EQ(back->claim, "attachments/7");
  EXPECT_EQ(back->epoch, 12);
  EXPECT_THAT(back->env,
              ElementsAre(Pair("FABRIC_VF_VF_N3_0000_3B_02_1", "shadow-7")));
}

TEST_F(CdiSpecTest, RewriteReplacesWholeFileAndLeavesNoTemporary) {
  ASSERT_TRUE(WriteCdiSpec(dir_, Vf()).ok());
  CdiDevice again = Vf();
  again.env = {{"A", "1"}, {"B", "2"}};
  ASSERT_TRUE(WriteCdiSpec(dir_, again).ok());
  EXPECT_THAT(Files(), ElementsAre("pciefabric.dev-vf-vf-n3-0000-3b-02.1.json"));
  absl::StatusOr<std::vector<CdiDevice>> specs = ListCdiSpecs(dir_);
  ASSERT_TRUE(specs.ok());
  ASSERT_EQ(specs->size(), 1u);
  EXPECT_THAT((*specs)[0].env, ElementsAre(Pair("A", "1"), Pair("B", "2")));
}

TEST_F(CdiSpecTest, WriteCreatesTheDirectory) {
  const std::string sub = dir_ + "/a/b";
  ASSERT_TRUE(WriteCdiSpec(sub, Vf()).ok());
  EXPECT_TRUE(std::filesystem::exists(CdiSpecPath(sub, "vf", Vf().device_id)));
}

TEST_F(CdiSpecTest, WriteIntoAnUnwritableDirectoryFailsNamingIt) {
  const std::string file = dir_ + "/not-a-dir";
  std::ofstream(file) << "x";
  absl::Status s = WriteCdiSpec(file, Vf());
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr(file));
}

TEST_F(CdiSpecTest, RemoveDeletesAndToleratesAbsence) {
  ASSERT_TRUE(WriteCdiSpec(dir_, Vf()).ok());
  ASSERT_TRUE(RemoveCdiSpec(dir_, "vf", Vf().device_id).ok());
  EXPECT_THAT(Files(), IsEmpty());
  EXPECT_TRUE(RemoveCdiSpec(dir_, "vf", Vf().device_id).ok());
}

TEST_F(CdiSpecTest, ListFindsOnlyOurSpecsAndKeepsUnparsableOnesByName) {
  ASSERT_TRUE(WriteCdiSpec(dir_, Vf()).ok());
  std::ofstream(dir_ + "/nvidia.com-gpu.json") << "{}";
  std::ofstream(dir_ + "/pciefabric.dev-memory-mem-n2-3.json") << "garbage";
  absl::StatusOr<std::vector<CdiDevice>> specs = ListCdiSpecs(dir_);
  ASSERT_TRUE(specs.ok());
  ASSERT_EQ(specs->size(), 2u);
  std::map<std::string, CdiDevice> by_id;
  for (const CdiDevice& d : *specs) by_id[d.device_id] = d;
  EXPECT_EQ(by_id["mem-n2-3"].device_class, "memory");
  EXPECT_EQ(by_id["mem-n2-3"].claim, "");
  EXPECT_EQ(by_id[Vf().device_id].claim, "attachments/7");
  EXPECT_TRUE(ListCdiSpecs(dir_ + "/absent").ok());
}

TEST_F(CdiSpecTest, ParseRejectsForeignOrBrokenSpecs) {
  EXPECT_TRUE(absl::IsInvalidArgument(ParseCdiSpec("p", "nope").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      ParseCdiSpec("p", R"({"kind":"nvidia.com/gpu","devices":[]})").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      ParseCdiSpec("p", R"({"kind":"pciefabric.dev/vf","devices":[]})")
          .status()));
}

}  // namespace
}  // namespace fabric::device_plugin
