// Paths of the taskmesh binaries inside a test's runfiles (declare them as
// `data` of the test).
#ifndef TASKMESH_TESTS_SUPPORT_BINARIES_H_
#define TASKMESH_TESTS_SUPPORT_BINARIES_H_

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace taskmesh::testing {

// `label_path` like "task_service/task_service" (package/target).
inline std::string BinaryPath(absl::string_view label_path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return absl::StrCat(srcdir != nullptr ? srcdir : ".", "/taskmesh/", label_path);
}

}  // namespace taskmesh::testing

#endif  // TASKMESH_TESTS_SUPPORT_BINARIES_H_
