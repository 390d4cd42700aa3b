// Command-line parsing shared by every taskmesh binary.
//
// Each flag `--foo_bar` may also be set with the environment variable
// `TASKMESH_FOO_BAR`; a flag on the command line wins over the environment.
// A bad flag or value ends the process with a non-zero status and a one-line
// reason. `--help` lists the binary's own flags with their defaults and
// environment variables, and exits 0.
//
// Example:
//   ABSL_FLAG(int32_t, concurrency, 8, "handler threads");
//   int main(int argc, char** argv) {
//     taskmesh::ParseFlags(argc, argv, "worker: runs tasks from Redis Streams");
//     ...
//   }
#ifndef TASKMESH_COMMON_FLAGS_H_
#define TASKMESH_COMMON_FLAGS_H_

#include <string>
#include "absl/strings/string_view.h"
#include <vector>

namespace taskmesh {

// Applies TASKMESH_* environment variables, then parses argv. Returns the
// positional arguments (argv[0] first); servers take none, so any is an
// error unless `allow_positional`. Exits on --help or on an error.
std::vector<std::string> ParseFlags(int argc, char** argv, absl::string_view usage,
                                    bool allow_positional = false);

// The environment variable that sets `flag_name`: "foo_bar" -> "TASKMESH_FOO_BAR".
std::string FlagEnvName(absl::string_view flag_name);

}  // namespace taskmesh

#endif  // TASKMESH_COMMON_FLAGS_H_
