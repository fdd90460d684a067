// The chaos campaign's record of what the manager acknowledged, and the pure
// check of that record against what the manager holds afterwards.
//
// Every create and delete the storm issues is entered before it is sent, so
// an operation cut short by a kill stays on record with an unknown outcome
// until it is resolved (retried with its request id). The checker is kind
// agnostic: allocations today, attachments (VF lending) or any other
// resource with request-id creates and deletes tomorrow.
#ifndef FABRIC_TESTS_CHAOS_LEDGER_H_
#define FABRIC_TESTS_CHAOS_LEDGER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace fabric::chaos {

// What the client learnt from an operation.
enum class Outcome {
  // Not answered yet, or cut short (UNAVAILABLE, DEADLINE_EXCEEDED, ...):
  // it may or may not have taken effect.
  kUnknown,
  // The manager said OK: it must be durable.
  kAcknowledged,
  // The manager refused it (RESOURCE_EXHAUSTED, NOT_FOUND, ...): it must
  // have had no effect.
  kRejected,
};

const char* OutcomeName(Outcome o);

struct CreateRecord {
  std::string kind;        // resource collection, e.g. "allocations"
  std::string request_id;  // unique per create
  // What was asked for, in the form ResourceOps::ObservedSpec gives for
  // the resource the manager holds, e.g. "nodes/n1 -> nodes/n3, 2097152".
  std::string spec;
  // The serialized request, for retries with the same request id.
  std::string request;
  Outcome outcome = Outcome::kUnknown;
  int attempts = 0;
  // Some attempt ended with an unknown outcome (so it may have been applied
  // before the one that answered).
  bool had_unknown_attempt = false;
  std::string name;   // the resource's name once acknowledged
  std::string error;  // the last error
  // Names returned by acknowledged attempts other than the first (retries
  // must all return the same name).
  std::vector<std::string> other_names;
};

struct DeleteRecord {
  std::string kind;
  std::string name;  // the resource deleted
  std::string request_id;
  Outcome outcome = Outcome::kUnknown;
  int attempts = 0;
  bool had_unknown_attempt = false;
  std::string error;
};

// A resource the manager holds, as listed after the storm.
struct ObservedResource {
  std::string kind;
  std::string name;
  std::string spec;   // comparable with CreateRecord::spec
  std::string state;  // e.g. "READY"
};

// Thread-safe: storm threads add and update records concurrently.
class Ledger {
 public:
  // Adds a record and returns its index.
  size_t AddCreate(CreateRecord r) ABSL_LOCKS_EXCLUDED(mu_);
  size_t AddDelete(DeleteRecord r) ABSL_LOCKS_EXCLUDED(mu_);

  // Notes one attempt's outcome on a record. `name` is the acknowledged
  // resource (creates only); `error` the failure, if any.
  void NoteCreateAttempt(size_t index, Outcome o, const std::string& name,
                         const std::string& error) ABSL_LOCKS_EXCLUDED(mu_);
  void NoteDeleteAttempt(size_t index, Outcome o, const std::string& error)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Snapshots.
  std::vector<CreateRecord> creates() const ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<DeleteRecord> deletes() const ABSL_LOCKS_EXCLUDED(mu_);
  CreateRecord create(size_t index) const ABSL_LOCKS_EXCLUDED(mu_);
  DeleteRecord del(size_t index) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  std::vector<CreateRecord> creates_ ABSL_GUARDED_BY(mu_);
  std::vector<DeleteRecord> deletes_ ABSL_GUARDED_BY(mu_);
};

// What the check found. Each problem also has one line in `details`.
struct LedgerFindings {
  // Acknowledged, never acknowledged-deleted, and gone.
  int lost = 0;
  // Held by the manager but acknowledged to no create (a create committed
  // twice, or one refused that took effect anyway), or one request id
  // answered with two different resources, or one resource answered to two
  // request ids.
  int duplicated = 0;
  // Acknowledged-deleted and still (or again) there.
  int resurrected = 0;
  // There, but not what its create asked for.
  int mismatched = 0;
  // A retry with the same request id did not return the original result
  // (e.g. a delete retried after an unknown outcome answered NOT_FOUND).
  int idempotency = 0;
  // Operations whose outcome is still unknown (retries never got an
  // answer): their effect cannot be judged.
  int unresolved = 0;
  std::vector<std::string> details;

  int violations() const {
    return lost + duplicated + resurrected + mismatched + idempotency +
           unresolved;
  }
};

// Checks `creates` and `deletes` against everything the manager holds now
// (`observed`, of every kind the ledger has records of). Pure; the rules:
//  - an acknowledged create whose resource was not acknowledged-deleted is
//    observed, with its spec;
//  - an acknowledged-deleted resource is not observed;
//  - every observed resource is an acknowledged create's (resources whose
//    create or delete outcome is unknown are allowed either way);
//  - a request id is answered with one resource, and a resource answers one
//    request id.
LedgerFindings CheckLedger(const std::vector<CreateRecord>& creates,
                           const std::vector<DeleteRecord>& deletes,
                           const std::vector<ObservedResource>& observed);

}  // namespace fabric::chaos

#endif  // FABRIC_TESTS_CHAOS_LEDGER_H_
