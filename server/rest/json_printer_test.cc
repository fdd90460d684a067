#include "server/rest/json_printer.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/duration.pb.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "fabric/v1/fabric_service.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/rest/transcoder.h"

namespace fabric::rest {
namespace {

namespace pb = google::protobuf;
using Cpp = pb::FieldDescriptor::CppType;
using ::testing::HasSubstr;
using json = nlohmann::json;

// What protobuf's own printer writes with the options the gateway used
// before JsonPrinter: the reference.
std::string Reference(const pb::Message& m) {
  pb::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string out;
  pb::util::Status s = pb::util::MessageToJsonString(m, &out, options);
  EXPECT_TRUE(s.ok()) << s.message();
  return out;
}

std::string Print(const pb::Message& m) {
  std::string out;
  absl::Status s = PrintJson(m, &out);
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

// Fills messages at random through reflection: every field kind, defaults
// left unset on purpose, oneofs, maps, repeated fields, open enums with
// unnamed numbers, strings that need escaping, and the edges of numbers.
class Filler {
 public:
  explicit Filler(uint32_t seed) : rng_(seed) {}

  void Fill(pb::Message* m, int depth) {
    const pb::Descriptor* d = m->GetDescriptor();
    if (d->full_name() == "google.protobuf.Timestamp") {
      auto* t = static_cast<pb::Timestamp*>(m);
      t->set_seconds(Uniform(-62135596800, 253402300799));
      t->set_nanos(Nanos());
      return;
    }
    if (d->full_name() == "google.protobuf.Duration") {
      auto* t = static_cast<pb::Duration*>(m);
      const int64_t s = Uniform(-315576000000, 315576000000);
      const int32_t n = Nanos();
      t->set_seconds(s);
      t->set_nanos(s < 0 ? -n : (s == 0 && Chance(2) ? -n : n));
      return;
    }
    std::set<const pb::OneofDescriptor*> oneofs_set;
    for (int i = 0; i < d->field_count(); ++i) {
      const pb::FieldDescriptor* f = d->field(i);
      if (Chance(4)) continue;  // left at its default
      if (const pb::OneofDescriptor* o = f->containing_oneof()) {
        if (!oneofs_set.insert(o).second) continue;
      }
      if (f->is_map()) {
        const int n = Uniform(0, 3);
        for (int k = 0; k < n; ++k) {
          pb::Message* entry = m->GetReflection()->AddMessage(m, f);
          SetSingular(entry, f->message_type()->map_key(), depth);
          SetSingular(entry, f->message_type()->map_value(), depth);
        }
      } else if (f->is_repeated()) {
        const int n = Uniform(0, 3);
        for (int k = 0; k < n; ++k) AddRepeated(m, f, depth);
      } else {
        SetSingular(m, f, depth);
      }
    }
  }

 private:
  int64_t Uniform(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }
  bool Chance(int one_in) { return Uniform(1, one_in) == 1; }
  int32_t Nanos() {
    static constexpr int32_t kNanos[] = {0, 500000000, 123000, 123456789,
                                         999999999, 1000};
    return kNanos[Uniform(0, 5)];
  }
  template <typename T>
  T Pick(const std::vector<T>& v) {
    return v[Uniform(0, v.size() - 1)];
  }
  int64_t Int64() {
    return Pick<int64_t>({0, 1, -1, 42, std::numeric_limits<int64_t>::max(),
                          std::numeric_limits<int64_t>::min(),
                          Uniform(-1000000000000, 1000000000000)});
  }
  uint64_t UInt64() {
    return Pick<uint64_t>({0, 1, 1ull << 40,
                           std::numeric_limits<uint64_t>::max(),
                           static_cast<uint64_t>(Uniform(0, 1ll << 62))});
  }
  double Double() {
    return Pick<double>({0.0, -0.0, 0.1, 1.5, -2.25, 1e300, 5e-324,
                         1.0 / 3, std::numeric_limits<double>::infinity(),
                         -std::numeric_limits<double>::infinity(),
                         std::nan(""), static_cast<double>(Uniform(-1000, 1000)) / 7});
  }
  std::string String() {
    return Pick<std::string>({"", "n1", "nodes/n-2", "quote \" backslash \\",
                              "tab\tnew\nline\r", std::string("nul\0x", 5),
                              "\x01\x1f control", "caf\xc3\xa9 \xe6\x97\xa5",
                              "emoji \xf0\x9f\x98\x80", "</script>&'"});
  }

  void SetSingular(pb::Message* m, const pb::FieldDescriptor* f, int depth) {
    const pb::Reflection* r = m->GetReflection();
    switch (f->cpp_type()) {
      case Cpp::CPPTYPE_INT32:
        r->SetInt32(m, f, static_cast<int32_t>(Int64()));
        break;
      case Cpp::CPPTYPE_UINT32:
        r->SetUInt32(m, f, static_cast<uint32_t>(UInt64()));
        break;
      case Cpp::CPPTYPE_INT64: r->SetInt64(m, f, Int64()); break;
      case Cpp::CPPTYPE_UINT64: r->SetUInt64(m, f, UInt64()); break;
      case Cpp::CPPTYPE_DOUBLE: r->SetDouble(m, f, Double()); break;
      case Cpp::CPPTYPE_FLOAT:
        r->SetFloat(m, f, static_cast<float>(Double()));
        break;
      case Cpp::CPPTYPE_BOOL: r->SetBool(m, f, Chance(2)); break;
      case Cpp::CPPTYPE_ENUM: r->SetEnumValue(m, f, EnumNumber(f)); break;
      case Cpp::CPPTYPE_STRING:
        r->SetString(m, f, f->type() == pb::FieldDescriptor::TYPE_BYTES
                               ? std::string("\x00\xff\x10 bytes", 9)
                               : String());
        break;
      case Cpp::CPPTYPE_MESSAGE:
        if (depth < 3) Fill(r->MutableMessage(m, f), depth + 1);
        break;
    }
  }

  void AddRepeated(pb::Message* m, const pb::FieldDescriptor* f, int depth) {
    const pb::Reflection* r = m->GetReflection();
    switch (f->cpp_type()) {
      case Cpp::CPPTYPE_INT32:
        r->AddInt32(m, f, static_cast<int32_t>(Int64()));
        break;
      case Cpp::CPPTYPE_UINT32:
        r->AddUInt32(m, f, static_cast<uint32_t>(UInt64()));
        break;
      case Cpp::CPPTYPE_INT64: r->AddInt64(m, f, Int64()); break;
      case Cpp::CPPTYPE_UINT64: r->AddUInt64(m, f, UInt64()); break;
      case Cpp::CPPTYPE_DOUBLE: r->AddDouble(m, f, Double()); break;
      case Cpp::CPPTYPE_FLOAT:
        r->AddFloat(m, f, static_cast<float>(Double()));
        break;
      case Cpp::CPPTYPE_BOOL: r->AddBool(m, f, Chance(2)); break;
      case Cpp::CPPTYPE_ENUM: r->AddEnumValue(m, f, EnumNumber(f)); break;
      case Cpp::CPPTYPE_STRING: r->AddString(m, f, String()); break;
      case Cpp::CPPTYPE_MESSAGE: {
        pb::Message* child = r->AddMessage(m, f);
        if (depth < 3) Fill(child, depth + 1);
        break;
      }
    }
  }

  // A named value, or (1 in 5) a number without a name: proto3 enums are
  // open.
  int EnumNumber(const pb::FieldDescriptor* f) {
    const pb::EnumDescriptor* e = f->enum_type();
    if (Chance(5)) return 1000 + static_cast<int>(Uniform(0, 9));
    return e->value(static_cast<int>(Uniform(0, e->value_count() - 1)))
        ->number();
  }

  std::mt19937_64 rng_;
};

// Every message type of fabric.v1 (the files of the service, and what they
// import from the package), map entries excepted.
std::vector<const pb::Descriptor*> FabricMessages() {
  std::vector<const pb::Descriptor*> out;
  std::vector<const pb::FileDescriptor*> files = {
      v1::CreateFabricRequest::descriptor()->file()};
  std::set<const pb::FileDescriptor*> seen(files.begin(), files.end());
  for (size_t i = 0; i < files.size(); ++i) {
    for (int k = 0; k < files[i]->dependency_count(); ++k) {
      const pb::FileDescriptor* dep = files[i]->dependency(k);
      if (dep->package() == "fabric.v1" && seen.insert(dep).second) {
        files.push_back(dep);
      }
    }
  }
  std::vector<const pb::Descriptor*> stack;
  for (const pb::FileDescriptor* f : files) {
    for (int k = 0; k < f->message_type_count(); ++k) {
      stack.push_back(f->message_type(k));
    }
  }
  while (!stack.empty()) {
    const pb::Descriptor* d = stack.back();
    stack.pop_back();
    if (d->options().map_entry()) continue;
    out.push_back(d);
    for (int k = 0; k < d->nested_type_count(); ++k) {
      stack.push_back(d->nested_type(k));
    }
  }
  return out;
}

TEST(JsonPrinterTest, EveryFabricMessageAtRandomPrintsAsProtobufsPrinter) {
  const std::vector<const pb::Descriptor*> types = FabricMessages();
  ASSERT_GT(types.size(), 50u);  // the whole API, not a few types
  int compared = 0;
  for (const pb::Descriptor* d : types) {
    const pb::Message* prototype =
        pb::MessageFactory::generated_factory()->GetPrototype(d);
    for (uint32_t seed = 0; seed < 25; ++seed) {
      std::unique_ptr<pb::Message> m(prototype->New());
      Filler(seed * 7919 + d->index()).Fill(m.get(), 0);
      const std::string mine = Print(*m);
      const std::string reference = Reference(*m);
      const json a = json::parse(mine, nullptr, /*allow_exceptions=*/false);
      const json b = json::parse(reference, nullptr, false);
      ASSERT_FALSE(a.is_discarded()) << d->full_name() << ": " << mine;
      ASSERT_EQ(a, b) << d->full_name() << " seed " << seed
                      << "\n  printer:  " << mine
                      << "\n  protobuf: " << reference
                      << "\n  message:  " << m->ShortDebugString();
      ++compared;
    }
  }
  EXPECT_EQ(compared, static_cast<int>(types.size()) * 25);
}

TEST(JsonPrinterTest, DefaultsArePrintedAndUnsetMessagesAreNot) {
  v1::Allocation a;
  a.set_name("allocations/a1");
  EXPECT_EQ(json::parse(Print(a)),
            json::parse(R"({"name":"allocations/a1","fabric":"","borrower":"",
              "target":"","size":"0","state":"STATE_UNSPECIFIED",
              "stateReason":"","borrowerAddr":"0","targetAddr":"0",
              "fabricAddr":"0","slotKind":"SLOT_KIND_UNSPECIFIED","slot":0,
              "slotCount":0,"owner":"","labels":{},"path":[],
              "requiredGeneration":"0"})"));
}

TEST(JsonPrinterTest, TimesAndDurationsUseTheCanonicalForms) {
  v1::Allocation a;
  a.mutable_create_time()->set_seconds(0);
  a.mutable_expire_time()->set_seconds(1700000000);
  a.mutable_expire_time()->set_nanos(120000000);
  a.mutable_ttl()->set_seconds(-1);
  a.mutable_ttl()->set_nanos(-500000);
  const json j = json::parse(Print(a));
  EXPECT_EQ(j["createTime"], "1970-01-01T00:00:00Z");
  EXPECT_EQ(j["expireTime"], "2023-11-14T22:13:20.120Z");
  EXPECT_EQ(j["ttl"], "-1.000500s");
}

TEST(JsonPrinterTest, StringsAreEscapedAndEnumsWithoutANameAreNumbers) {
  v1::Allocation a;
  a.set_owner(std::string("a\"b\\c\n\x01", 7));
  a.set_state(static_cast<v1::Allocation::State>(77));
  const std::string out = Print(a);
  EXPECT_THAT(out, HasSubstr(R"("owner":"a\"b\\c\n\u0001")"));
  EXPECT_THAT(out, HasSubstr(R"("state":77)"));
}

TEST(JsonPrinterTest, AnOutOfRangeTimestampNamesTheField) {
  v1::Allocation a;
  a.mutable_create_time()->set_seconds(253402300800);  // year 10000
  std::string out;
  absl::Status s = PrintJson(a, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("fabric.v1.Allocation.create_time"));
  // The gateway turns it into INTERNAL naming the message.
  absl::StatusOr<std::string> j = Transcoder::ToJson(a);
  EXPECT_EQ(j.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(j.status().message(), HasSubstr("fabric.v1.Allocation"));
}

TEST(JsonPrinterTest, OtherWellKnownTypesAreLeftToProtobuf) {
  pb::Struct st;
  (*st.mutable_fields())["k"].set_number_value(2);
  std::string out;
  EXPECT_EQ(PrintJson(st, &out).code(), absl::StatusCode::kUnimplemented);
  // ... and Transcoder::ToJson falls back to protobuf's printer for them.
  absl::StatusOr<std::string> j = Transcoder::ToJson(st);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(json::parse(*j), json::parse(R"({"k":2})"));
}

}  // namespace
}  // namespace fabric::rest
