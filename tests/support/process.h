// Process: a child process for tests (a real redis-server, task_service,
// worker), with its output in a log file and signals for fault injection.
//
// Not thread-safe. The destructor kills (SIGKILL) and reaps a live child.
//
// Example:
//   ASSIGN_OR_RETURN(auto p, Process::Start({"/usr/bin/redis-server", "--port", "0"},
//                                           {}, log_path));
//   p->Signal(SIGSTOP);
//   int status = p->Wait(absl::Seconds(5)).value();
#ifndef TASKMESH_TESTS_SUPPORT_PROCESS_H_
#define TASKMESH_TESTS_SUPPORT_PROCESS_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace taskmesh::testing {

class Process {
 public:
  // Starts argv[0] (a path) with argv; `env` entries ("NAME=value") are
  // added to the inherited environment. stdout and stderr go to `log_path`.
  static absl::StatusOr<std::unique_ptr<Process>> Start(
      std::vector<std::string> argv, std::vector<std::string> env, std::string log_path);

  ~Process();

  pid_t pid() const { return pid_; }
  bool running();
  absl::Status Signal(int sig);
  // Waits for exit; returns the wait status (use WIFEXITED etc.), or
  // DEADLINE_EXCEEDED if still running after `timeout`.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  // The child's output so far.
  std::string Log() const;
  const std::string& log_path() const { return log_path_; }

 private:
  Process(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}

  pid_t pid_;
  std::string log_path_;
  bool reaped_ = false;
  int wait_status_ = 0;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
int PickUnusedPort();

// The folder for a test's files: $TEST_TMPDIR, or /tmp outside Bazel.
std::string TestTempDir();

// Polls `condition` every few milliseconds until it holds or `timeout` passes.
bool WaitFor(absl::Duration timeout, const std::function<bool()>& condition);

}  // namespace taskmesh::testing

#endif  // TASKMESH_TESTS_SUPPORT_PROCESS_H_
