// Assertions on absl::Status and absl::StatusOr for tests: the one copy.
//
//   ASSERT_OK(expr)                  expr is an absl::Status; fails the test
//                                    (and returns) unless it is OK, printing
//                                    the expression and the status.
//   EXPECT_OK(expr)                  the same, without returning.
//   ASSERT_OK_AND_ASSIGN(lhs, expr)  expr is an absl::StatusOr<T>; unless it
//                                    is OK, fails and returns; else moves its
//                                    value into `lhs` (a declaration or an
//                                    lvalue). Usable once per line.
//
// Header only, no gRPC: unit tests link it as the target `test_status`.
// (gRPC statuses: ASSERT_GRPC_OK in tests/support/ledger_client.h.)
#ifndef TESTS_SUPPORT_STATUS_MATCHERS_H_
#define TESTS_SUPPORT_STATUS_MATCHERS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

#define ASSERT_OK(expr)                                      \
  do {                                                       \
    const ::absl::Status _status = (expr);                   \
    ASSERT_TRUE(_status.ok()) << #expr << ": " << _status;   \
  } while (0)

#define EXPECT_OK(expr)                                      \
  do {                                                       \
    const ::absl::Status _status = (expr);                   \
    EXPECT_TRUE(_status.ok()) << #expr << ": " << _status;   \
  } while (0)

#define LEDGER_TEST_CONCAT_INNER(a, b) a##b
#define LEDGER_TEST_CONCAT(a, b) LEDGER_TEST_CONCAT_INNER(a, b)
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  LEDGER_TEST_ASSERT_OK_AND_ASSIGN_IMPL(LEDGER_TEST_CONCAT(_status_or_, __LINE__), lhs, expr)
#define LEDGER_TEST_ASSERT_OK_AND_ASSIGN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                          \
  ASSERT_TRUE(tmp.ok()) << #expr << ": " << tmp.status();     \
  lhs = *std::move(tmp)

#endif  // TESTS_SUPPORT_STATUS_MATCHERS_H_
