// JsonPrinter against protobuf's printer (util::MessageToJsonString with
// always_print_primitive_fields, what the REST gateway used before), on the
// same messages in the same run: one Allocation (the reply of a REST
// allocate or release) and a page of 100 (a REST list).
//
//   ./build/bin/rest_json_bench --benchmark_repetitions=5
//   (add --benchmark_report_aggregates_only=true for medians only)
#include <google/protobuf/util/json_util.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "fabric/v1/fabric_service.pb.h"
#include "server/rest/json_printer.h"

namespace fabric::rest {
namespace {

v1::Allocation SampleAllocation(int i) {
  v1::Allocation a;
  a.set_name(absl::StrCat("allocations/a-", i));
  a.set_fabric("fabrics/f1");
  a.set_borrower("nodes/n1");
  a.set_target("nodes/n7");
  a.set_size(1 << 20);
  a.set_state(v1::Allocation::READY);
  a.set_borrower_addr(0x4000000000 + i * (1 << 20));
  a.set_target_addr(0x2000000000);
  a.set_fabric_addr(0x100000000 + i);
  a.set_slot(i % 64);
  a.set_slot_count(1);
  a.set_owner("scheduler");
  (*a.mutable_labels())["job"] = "train-7";
  a.mutable_create_time()->set_seconds(1764979200);
  a.mutable_create_time()->set_nanos(123000000);
  for (const char* b : {"b1", "b2", "b3"}) a.add_path(b);
  a.set_required_generation(42);
  return a;
}

v1::ListAllocationsResponse SamplePage() {
  v1::ListAllocationsResponse page;
  for (int i = 0; i < 100; ++i) *page.add_allocations() = SampleAllocation(i);
  page.set_next_page_token("token");
  return page;
}

void ProtobufPrinter(benchmark::State& state, const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  for (auto _ : state) {
    std::string out;
    benchmark::DoNotOptimize(
        google::protobuf::util::MessageToJsonString(m, &out, options));
    benchmark::DoNotOptimize(out);
  }
}

void FabricPrinter(benchmark::State& state, const google::protobuf::Message& m) {
  for (auto _ : state) {
    std::string out;
    benchmark::DoNotOptimize(PrintJson(m, &out));
    benchmark::DoNotOptimize(out);
  }
}

void BM_Allocation_Protobuf(benchmark::State& s) { ProtobufPrinter(s, SampleAllocation(1)); }
void BM_Allocation_JsonPrinter(benchmark::State& s) { FabricPrinter(s, SampleAllocation(1)); }
void BM_Page100_Protobuf(benchmark::State& s) { ProtobufPrinter(s, SamplePage()); }
void BM_Page100_JsonPrinter(benchmark::State& s) { FabricPrinter(s, SamplePage()); }
BENCHMARK(BM_Allocation_Protobuf);
BENCHMARK(BM_Allocation_JsonPrinter);
BENCHMARK(BM_Page100_Protobuf);
BENCHMARK(BM_Page100_JsonPrinter);

}  // namespace
}  // namespace fabric::rest

BENCHMARK_MAIN();
