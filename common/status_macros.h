// Early-return helpers for absl::Status and absl::StatusOr<T>.
//
// Debian's Abseil (20220623) predates Abseil's own versions of these.
//
// Example:
//   absl::StatusOr<Task> ReadTask(...) {
//     RETURN_IF_ERROR(Validate(name));
//     ASSIGN_OR_RETURN(Reply reply, client.Call({"HGETALL", key}));
//     ...
//   }
#ifndef TASKMESH_COMMON_STATUS_MACROS_H_
#define TASKMESH_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define TM_STATUS_CONCAT_INNER_(a, b) a##b
#define TM_STATUS_CONCAT_(a, b) TM_STATUS_CONCAT_INNER_(a, b)

// Returns the status of `expr` from the enclosing function unless it is OK.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::absl::Status tm_status_ = (expr);                \
    if (!tm_status_.ok()) return tm_status_;           \
  } while (false)

// Evaluates `rexpr` (an absl::StatusOr<T>); returns its status from the
// enclosing function on error, else moves the value into `lhs`, which may be
// a declaration (`ASSIGN_OR_RETURN(auto x, F())`).
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  TM_ASSIGN_OR_RETURN_IMPL_(TM_STATUS_CONCAT_(tm_statusor_, __LINE__), lhs, rexpr)

#define TM_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                              \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = *std::move(statusor)

#endif  // TASKMESH_COMMON_STATUS_MACROS_H_
