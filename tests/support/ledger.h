// Ledger: an append-only record of task executions, written by test-only
// handlers inside real worker processes and read by fault tests to prove
// that nothing was lost and to explain every duplicate execution.
//
// Format: one line per event, appended with O_APPEND in a single write()
// (so lines from concurrent processes never interleave), kept in a file so
// that it survives the death of any worker or of redis-server:
//
//   EVENT TASK_NAME ATTEMPT CONSUMER PID WALL_MS
//
// EVENT is `start` (a handler began an attempt), `done` (it returned a
// result), or `cancelled` (it stopped when asked to). WALL_MS is the
// writer's own clock (skewed under faketime).
//
// AppendLedger may be called from any thread of any process. A Ledger (the
// reader) is not thread-safe: it reads the file incrementally, so that
// polling a long ledger stays cheap.
//
// Example:
//   AppendLedger(path, {"start", ctx.task_name, ctx.attempt, "w1", getpid(), now_ms});
//   Ledger ledger(path);
//   for (const Execution& e : ledger.Executions()) ...
#ifndef TASKMESH_TESTS_SUPPORT_LEDGER_H_
#define TASKMESH_TESTS_SUPPORT_LEDGER_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace taskmesh::testing {

struct LedgerEntry {
  std::string event;
  std::string task;
  int attempt = 0;
  std::string consumer;
  int64_t pid = 0;
  int64_t wall_ms = 0;
};

// Appends one line. Never throws; returns the write error, if any.
absl::Status AppendLedger(const std::string& path, const LedgerEntry& entry);

// One attempt of one task as a handler ran it: its `start` line and, unless
// its worker died first, the line that ended it.
struct Execution {
  std::string task;
  int attempt = 0;
  std::string consumer;
  int64_t pid = 0;
  int64_t start_ms = 0;
  // "done", "cancelled", or empty while running / when the worker died.
  std::string end;
  int64_t end_ms = 0;
  // Position of the start line in the ledger (orders executions).
  int seq = 0;
};

class Ledger {
 public:
  explicit Ledger(std::string path) : path_(std::move(path)) {}

  const std::string& path() const { return path_; }

  // Every complete line written so far (a torn last line waits for its end).
  const std::vector<LedgerEntry>& Entries();
  // Start lines paired with their end lines, in start order.
  std::vector<Execution> Executions();
  // Executions grouped by task name.
  std::map<std::string, std::vector<Execution>> ByTask();

 private:
  std::string path_;
  // Bytes of the file consumed so far, and a partial last line.
  int64_t offset_ = 0;
  std::string partial_;
  std::vector<LedgerEntry> entries_;
};

// The figures every fault test prints and asserts.
struct LedgerFigures {
  int64_t acknowledged = 0;
  int64_t completed = 0;
  int64_t lost = 0;
  int64_t executions = 0;
  // Executions beyond the first of each task.
  int64_t duplicates = 0;

  // "F1 ledger: acknowledged=200 completed=200 lost=0 executions=203
  // duplicates=3 (note)".
  std::string Line(absl::string_view test, absl::string_view note) const;
};

}  // namespace taskmesh::testing

#endif  // TASKMESH_TESTS_SUPPORT_LEDGER_H_
