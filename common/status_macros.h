// Status helpers missing from Abseil 20220623.
//
//   RETURN_IF_ERROR(DoThing());           // returns the status if not OK
//   ASSIGN_OR_RETURN(auto v, MakeThing()); // v = *statusor, or returns status
#ifndef FABRIC_COMMON_STATUS_MACROS_H_
#define FABRIC_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define FABRIC_STATUS_CONCAT_INNER_(a, b) a##b
#define FABRIC_STATUS_CONCAT_(a, b) FABRIC_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    const ::absl::Status fabric_status_ = (expr);    \
    if (!fabric_status_.ok()) return fabric_status_; \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(*tmp)

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(FABRIC_STATUS_CONCAT_(fabric_or_, __LINE__), lhs, expr)

#endif  // FABRIC_COMMON_STATUS_MACROS_H_
