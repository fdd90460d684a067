#include "client/allocation_commands.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "common/units.h"
#include "google/protobuf/util/json_util.h"

namespace fabric::client {


absl::Status AllocationCommands::Alloc(const AllocOptions& opts) {
  v1::CreateAllocationRequest req;
  v1::Allocation* a = req.mutable_allocation();
  a->set_borrower(opts.borrower);
  a->set_target(opts.target);
  a->set_size(opts.size);
  a->set_owner(opts.owner);
  for (const auto& [k, v] : opts.labels) (*a->mutable_labels())[k] = v;
  if (opts.ttl.has_value()) {
    int64_t secs = absl::ToInt64Seconds(*opts.ttl);
    a->mutable_ttl()->set_seconds(secs);
    a->mutable_ttl()->set_nanos(static_cast<int32_t>(
        absl::ToInt64Nanoseconds(*opts.ttl - absl::Seconds(secs))));
  }
  req.set_request_id(opts.request_id.empty() ? NewRequestId()
                                             : opts.request_id);
  std::string what = absl::StrCat("alloc ", FormatSize(opts.size), " of ",
                                  Id("nodes", opts.target), " for ",
                                  Id("nodes", opts.borrower));
  absl::StatusOr<v1::Allocation> alloc = client_->CreateAllocation(req);
  RETURN_IF_ERROR(Annotate(alloc.status(), what));
  if (!opts.request_id.empty()) {
    // A request id the manager has seen is answered with the allocation as
    // it was created, even when it has been released since: ask whether it
    // still exists. (A random id is never a replay of an older request.)
    absl::StatusOr<v1::Allocation> now = client_->GetAllocation(alloc->name());
    if (now.status().code() == absl::StatusCode::kNotFound) {
      return WithHint(
          absl::FailedPreconditionError(absl::StrCat(
              what, ": request id \"", opts.request_id,
              "\" was used before: allocation ", alloc->name(),
              " was created by this request id and has since been released")),
          "a new --request-id (or none) makes a new allocation");
    }
    // Otherwise its current state, when known, rather than the replayed one.
    if (now.ok()) alloc = std::move(now);
  }
  const bool json = options_.format == OutputFormat::kJson;
  if (!json) *out_ << AllocationSummary(*alloc) << "\n";
  if (!opts.wait || alloc->state() == v1::Allocation::READY) {
    if (json) *out_ << ToJson(*alloc) << "\n";
    return absl::OkStatus();
  }

  const absl::Time deadline = absl::Now() + opts.wait_timeout;
  const std::string name = alloc->name();
  const std::string id = Id("allocations", name);
  while (alloc->state() != v1::Allocation::READY) {
    if (alloc->state() == v1::Allocation::RELEASED) {
      return absl::FailedPreconditionError(absl::StrCat(
          name, " was released while waiting for it to become READY",
          alloc->state_reason().empty()
              ? ""
              : absl::StrCat(": ", alloc->state_reason())));
    }
    absl::Time now = absl::Now();
    if (now >= deadline) {
      std::vector<std::string> path;
      for (const std::string& p : alloc->path()) path.push_back(ShortName(p));
      return WithHint(
          absl::DeadlineExceededError(absl::StrCat(
              name, " exists but is not READY after ",
              absl::FormatDuration(opts.wait_timeout), ": state ",
              v1::Allocation::State_Name(alloc->state()),
              alloc->state_reason().empty()
                  ? ""
                  : absl::StrCat(" (", alloc->state_reason(), ")"),
              "; the agents on its path",
              path.empty() ? ""
                           : absl::StrCat(" (", absl::StrJoin(path, ", "), ")"),
              " have not applied generation ", alloc->required_generation())),
          absl::StrCat("the allocation is kept; check the agents with "
                       "'fabricctl get nodes', or free it with "
                       "'fabricctl release ",
                       id, "'"));
    }
    absl::StatusOr<v1::Allocation> polled =
        client_->AwaitAllocation(name, deadline, options_.poll_interval);
    RETURN_IF_ERROR(Annotate(polled.status(), absl::StrCat("wait for ", name)));
    alloc = std::move(polled);
  }
  if (json) {
    *out_ << ToJson(*alloc) << "\n";
  } else {
    *out_ << name << " is READY\n";
  }
  return absl::OkStatus();
}

absl::Status AllocationCommands::Release(const std::string& id,
                               const std::string& request_id) {
  v1::DeleteAllocationRequest req;
  req.set_name(Qualify("allocations", id));
  req.set_request_id(request_id.empty() ? NewRequestId() : request_id);
  absl::StatusOr<v1::Allocation> alloc = client_->DeleteAllocation(req);
  RETURN_IF_ERROR(
      Annotate(alloc.status(), absl::StrCat("release ", req.name())));
  Report(*alloc, absl::StrCat(req.name(), " released"));
  return absl::OkStatus();
}

absl::Status AllocationCommands::Verify(const std::string& id, bool all) {
  std::vector<std::string> names;
  int skipped = 0;
  if (all) {
    ASSIGN_OR_RETURN(std::vector<v1::Allocation> allocs,
                     client_->ListAllocations(v1::ListAllocationsRequest()));
    for (const v1::Allocation& a : allocs) {
      if (a.state() == v1::Allocation::READY) {
        names.push_back(a.name());
      } else {
        ++skipped;
      }
    }
  } else {
    names.push_back(Qualify("allocations", id));
  }
  int failed = 0;
  std::vector<v1::VerifyResult> results;
  for (const std::string& name : names) {
    v1::VerifyAllocationRequest req;
    req.set_name(name);
    absl::StatusOr<v1::VerifyResult> r = client_->VerifyAllocation(req);
    if (!r.ok() && all && !IsServerUnreachable(r.status())) {
      // One allocation's error (an agent that does not answer, released
      // meanwhile) is its result; the others are still verified.
      v1::VerifyResult failure;
      failure.set_allocation(name);
      failure.set_ok(false);
      failure.set_summary(std::string(r.status().message()));
      r = std::move(failure);
    }
    RETURN_IF_ERROR(Annotate(r.status(), absl::StrCat("verify ", name)));
    failed += r->ok() ? 0 : 1;
    if (options_.format == OutputFormat::kJson) {
      results.push_back(*r);
    } else {
      PrintVerify(*r, *out_);
    }
  }
  if (options_.format == OutputFormat::kJson) {
    *out_ << "[";
    for (size_t i = 0; i < results.size(); ++i) {
      std::string json;
      google::protobuf::util::JsonPrintOptions o;
      o.always_print_primitive_fields = true;
      (void)google::protobuf::util::MessageToJsonString(results[i], &json, o);
      *out_ << (i ? ",\n" : "") << json;
    }
    *out_ << "]\n";
  } else if (all) {
    *out_ << names.size() - failed << " of " << names.size()
          << " READY allocation(s) verified";
    if (skipped > 0) *out_ << "; " << skipped << " not READY, skipped";
    *out_ << "\n";
  }
  if (failed > 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(failed, " allocation(s) failed verification"));
  }
  return absl::OkStatus();
}

}  // namespace fabric::client
