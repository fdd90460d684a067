#include "tests/chaos/ledger.h"

#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"

namespace fabric::chaos {

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kUnknown:
      return "unknown";
    case Outcome::kAcknowledged:
      return "acknowledged";
    case Outcome::kRejected:
      return "rejected";
  }
  return "?";
}

size_t Ledger::AddCreate(CreateRecord r) {
  absl::MutexLock l(&mu_);
  creates_.push_back(std::move(r));
  return creates_.size() - 1;
}

size_t Ledger::AddDelete(DeleteRecord r) {
  absl::MutexLock l(&mu_);
  deletes_.push_back(std::move(r));
  return deletes_.size() - 1;
}

void Ledger::NoteCreateAttempt(size_t index, Outcome o, const std::string& name,
                               const std::string& error) {
  absl::MutexLock l(&mu_);
  CreateRecord& r = creates_.at(index);
  ++r.attempts;
  if (o == Outcome::kUnknown) r.had_unknown_attempt = true;
  if (!error.empty()) r.error = error;
  if (o == Outcome::kAcknowledged) {
    if (r.outcome == Outcome::kAcknowledged) {
      if (name != r.name) r.other_names.push_back(name);
      return;
    }
    r.name = name;
  }
  // A definite answer is never downgraded by a later unknown one.
  if (r.outcome == Outcome::kUnknown) r.outcome = o;
}

void Ledger::NoteDeleteAttempt(size_t index, Outcome o,
                               const std::string& error) {
  absl::MutexLock l(&mu_);
  DeleteRecord& r = deletes_.at(index);
  ++r.attempts;
  if (o == Outcome::kUnknown) r.had_unknown_attempt = true;
  if (!error.empty()) r.error = error;
  if (r.outcome == Outcome::kUnknown) r.outcome = o;
}

std::vector<CreateRecord> Ledger::creates() const {
  absl::MutexLock l(&mu_);
  return creates_;
}

std::vector<DeleteRecord> Ledger::deletes() const {
  absl::MutexLock l(&mu_);
  return deletes_;
}

CreateRecord Ledger::create(size_t index) const {
  absl::MutexLock l(&mu_);
  return creates_.at(index);
}

DeleteRecord Ledger::del(size_t index) const {
  absl::MutexLock l(&mu_);
  return deletes_.at(index);
}

LedgerFindings CheckLedger(const std::vector<CreateRecord>& creates,
                           const std::vector<DeleteRecord>& deletes,
                           const std::vector<ObservedResource>& observed) {
  using Key = std::pair<std::string, std::string>;  // kind, name
  LedgerFindings f;
  auto note = [&f](int* counter, std::string line) {
    ++*counter;
    f.details.push_back(std::move(line));
  };

  std::map<Key, const ObservedResource*> held;
  for (const ObservedResource& o : observed) {
    if (!held.emplace(Key(o.kind, o.name), &o).second) {
      note(&f.duplicated, absl::StrCat(o.name, " is listed twice"));
    }
  }

  struct DeleteSummary {
    bool acknowledged = false;
    bool unknown = false;
    // Rejected after an attempt whose outcome was unknown.
    const DeleteRecord* rejected_after_unknown = nullptr;
  };
  std::map<Key, DeleteSummary> deleted;
  for (const DeleteRecord& d : deletes) {
    DeleteSummary& s = deleted[Key(d.kind, d.name)];
    switch (d.outcome) {
      case Outcome::kAcknowledged:
        s.acknowledged = true;
        break;
      case Outcome::kUnknown:
        s.unknown = true;
        note(&f.unresolved,
             absl::StrCat("delete of ", d.name, " (request ", d.request_id,
                          ") never got an answer: ", d.error));
        break;
      case Outcome::kRejected:
        if (d.had_unknown_attempt) s.rejected_after_unknown = &d;
        break;
    }
  }

  std::map<Key, const CreateRecord*> acknowledged;
  // Unresolved creates by (kind, spec): each may account for one resource
  // nobody was told about.
  std::map<Key, int> unresolved_specs;
  for (const CreateRecord& c : creates) {
    if (c.outcome == Outcome::kUnknown) {
      note(&f.unresolved, absl::StrCat("create ", c.request_id, " (", c.spec,
                                       ") never got an answer: ", c.error));
      ++unresolved_specs[Key(c.kind, c.spec)];
      continue;
    }
    if (c.outcome != Outcome::kAcknowledged) continue;
    for (const std::string& other : c.other_names) {
      note(&f.duplicated,
           absl::StrCat("request ", c.request_id, " was answered with ", c.name,
                        " and, on a retry, with ", other));
    }
    auto [it, fresh] = acknowledged.emplace(Key(c.kind, c.name), &c);
    if (!fresh) {
      note(&f.duplicated,
           absl::StrCat(c.name, " was acknowledged to two requests: ",
                        it->second->request_id, " and ", c.request_id));
    }
  }

  for (const auto& [key, c] : acknowledged) {
    const DeleteSummary& d = deleted[key];
    auto h = held.find(key);
    const bool present = h != held.end();
    if (d.acknowledged) {
      if (present) {
        note(&f.resurrected, absl::StrCat(c->name,
                                          " was released (acknowledged) but is "
                                          "there again, ",
                                          h->second->state));
      }
      continue;
    }
    if (!present) {
      if (d.unknown) continue;  // counted as unresolved
      if (d.rejected_after_unknown != nullptr) {
        note(
            &f.idempotency,
            absl::StrCat(c->name, " is gone, but the retry of its delete ",
                         d.rejected_after_unknown->request_id,
                         " did not say so: ", d.rejected_after_unknown->error));
        continue;
      }
      note(&f.lost,
           absl::StrCat(c->name, " (", c->spec, ", request ", c->request_id,
                        ") was acknowledged and is gone"));
      continue;
    }
    if (h->second->spec != c->spec) {
      note(&f.mismatched,
           absl::StrCat(c->name, " is ", h->second->spec, ", but request ",
                        c->request_id, " asked for ", c->spec));
    }
  }

  for (const auto& [key, o] : held) {
    if (acknowledged.count(key)) continue;
    auto u = unresolved_specs.find(Key(o->kind, o->spec));
    if (u != unresolved_specs.end() && u->second > 0) {
      --u->second;  // may be that create's
      continue;
    }
    note(&f.duplicated, absl::StrCat(o->name, " (", o->spec, ", ", o->state,
                                     ") was acknowledged to no request"));
  }
  return f;
}

}  // namespace fabric::chaos
