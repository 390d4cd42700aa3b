// The fixture shared by the cluster fault tests (F8-F10): the mesh on a
// private 3-master + 3-replica Redis Cluster, queues chosen by the master
// that serves their slot, a producer that logs every CreateTask call, and
// the ledger check that every cluster test makes.
//
// The check (Verify): every acknowledged task must end SUCCEEDED (else it is
// counted lost); its final record (attempt and consumer in the `record`
// handler's result) must be an execution of the ledger that ended `done`
// with the highest attempt the ledger saw for that task (a fenced outcome
// that was accepted would show an older attempt or another consumer); every
// other execution of the task is a duplicate and must be explained by the
// fault (the test's `explained` predicate).
//
// Example:
//   StartClusterMesh({});
//   auto queues = PickQueues({{0, 1}, {1, 1}, {2, 1}});   // master -> count
//   Producer producer(mesh_.get(), names_of(queues), absl::Milliseconds(30));
//   ... inject the fault ...
//   producer.Stop();
//   ClusterFigures f = Verify(producer.Acked(), [&](const Execution& x) { ... });
#ifndef TASKMESH_TESTS_FAULT_CLUSTER_FAULT_TEST_H_
#define TASKMESH_TESTS_FAULT_CLUSTER_FAULT_TEST_H_

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "redis/slots.h"
#include "tests/fault/fault_test.h"

namespace taskmesh::fault {

// One CreateTask call as the client saw it.
struct Call {
  absl::Time start;
  absl::Time end;
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string queue;
  std::string name;
  std::string message;
};

// Creates `record` tasks round-robin over `queues`, one call at a time, one
// call every `pace` at most, until Stop() or `max_calls`. Thread-safe.
class Producer {
 public:
  Producer(testing::Mesh* mesh, std::vector<std::string> queues, absl::Duration pace,
           int task_ms, int max_calls = 20000)
      : mesh_(mesh), queues_(std::move(queues)) {
    thread_ = std::thread([this, pace, task_ms, max_calls] {
      for (int i = 0; i < max_calls && !stop_; ++i) {
        const absl::Time due = absl::Now() + pace;
        Call c;
        c.queue = queues_[i % queues_.size()];
        c.start = absl::Now();
        v1::Task t;
        grpc::Status s =
            mesh_->Create(RecordTask(c.queue, task_ms, /*max_attempts=*/50), &t, absl::Seconds(5));
        c.end = absl::Now();
        c.code = s.error_code();
        c.message = s.error_message();
        c.name = t.name();
        {
          absl::MutexLock lock(&mu_);
          if (s.ok()) ++acked_[c.queue];
          calls_.push_back(std::move(c));
        }
        if (due > absl::Now()) absl::SleepFor(due - absl::Now());
      }
    });
  }
  ~Producer() { Stop(); }

  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  // OK answers so far, for `queue` (or for every queue).
  int AckedCount(const std::string& queue = "") {
    absl::MutexLock lock(&mu_);
    if (!queue.empty()) return acked_[queue];
    int n = 0;
    for (const auto& [q, count] : acked_) n += count;
    return n;
  }

  std::vector<Call> Calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

  // Names of the tasks whose create was answered OK.
  std::vector<std::string> Acked() {
    std::vector<std::string> out;
    for (const Call& c : Calls()) {
      if (c.code == grpc::StatusCode::OK) out.push_back(c.name);
    }
    return out;
  }

 private:
  testing::Mesh* const mesh_;
  const std::vector<std::string> queues_;
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  std::vector<Call> calls_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> acked_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

struct ClusterFigures {
  testing::LedgerFigures ledger;
  // Executions of tasks whose create was not acknowledged (written anyway).
  int64_t unacked_executed = 0;
  // Duplicates the fault explains, and those it does not.
  int64_t explained = 0;
  int64_t unexplained = 0;
  // Acknowledged tasks that Redis no longer knows (NOT_FOUND at the end).
  int64_t not_found = 0;
  // Final records that do not match the ledger's last done execution.
  int64_t wrong_outcome = 0;
  std::string detail;
};

class ClusterFaultTest : public FaultTest {
 protected:
  void StartClusterMesh(std::vector<std::string> service_flags) {
    testing::MeshOptions options;
    options.cluster = true;
    options.service_flags = std::move(service_flags);
    StartMesh(std::move(options));
  }

  // The slot of a queue's keys (they share the hash tag {queue}).
  static int SlotOf(const std::string& queue) {
    return redis::KeySlot(absl::StrCat("{", queue, "}"));
  }

  // `want[m]` queues named PREFIX<i> on master m (the masters as the cluster
  // lists them, in node order), in order of master.
  std::vector<std::string> PickQueues(const std::string& prefix, const std::vector<int>& want) {
    auto masters = mesh_->cluster().Masters();
    EXPECT_TRUE(masters.ok()) << masters.status();
    if (!masters.ok()) return {};
    std::vector<int> sorted = *masters;
    std::sort(sorted.begin(), sorted.end());
    std::map<int, std::vector<std::string>> by_master;
    for (int i = 0; i < 100000; ++i) {
      const std::string q = absl::StrCat(prefix, i);
      auto m = mesh_->cluster().MasterOfSlot(SlotOf(q));
      if (!m.ok()) continue;
      for (size_t k = 0; k < sorted.size() && k < want.size(); ++k) {
        if (sorted[k] == *m && static_cast<int>(by_master[*m].size()) < want[k]) {
          by_master[*m].push_back(q);
        }
      }
      size_t done = 0;
      for (size_t k = 0; k < sorted.size() && k < want.size(); ++k) {
        done += static_cast<int>(by_master[sorted[k]].size()) == want[k];
      }
      if (done == std::min(sorted.size(), want.size())) break;
    }
    std::vector<std::string> out;
    for (size_t k = 0; k < sorted.size() && k < want.size(); ++k) {
      for (const std::string& q : by_master[sorted[k]]) out.push_back(q);
    }
    return out;
  }

  // The ledger check described at the top of the file. `explained(x)` says
  // whether the fault explains that execution `x` was not the task's final
  // one (it ran again).
  ClusterFigures Verify(const std::vector<std::string>& acked, absl::Duration timeout,
                        const std::function<bool(const testing::Execution&)>& explained) {
    ClusterFigures f;
    std::set<std::string> not_found;
    const auto finals = mesh_->AwaitTerminal(acked, timeout, &not_found);
    f.ledger.acknowledged = static_cast<int64_t>(acked.size());
    f.not_found = static_cast<int64_t>(not_found.size());
    for (const std::string& name : acked) {
      const auto it = finals.find(name);
      if (it != finals.end() && it->second.state() == v1::Task::SUCCEEDED) {
        ++f.ledger.completed;
      } else {
        absl::StrAppend(&f.detail, "lost: ", name, " ",
                        not_found.count(name) ? "NOT_FOUND"
                        : it == finals.end()  ? "never read"
                                              : v1::Task::State_Name(it->second.state()),
                        "\n");
      }
    }
    f.ledger.lost = f.ledger.acknowledged - f.ledger.completed;
    const std::set<std::string> acked_set(acked.begin(), acked.end());
    for (auto& [task, runs] : ledger_->ByTask()) {
      f.ledger.executions += static_cast<int64_t>(runs.size());
      f.ledger.duplicates += static_cast<int64_t>(runs.size()) - 1;
      if (!acked_set.count(task)) ++f.unacked_executed;
      std::sort(runs.begin(), runs.end(),
                [](const testing::Execution& a, const testing::Execution& b) {
                  return a.seq < b.seq;
                });
      // The execution the final record names; without one, the last start.
      size_t accepted = runs.size() - 1;
      const auto it = finals.find(task);
      if (it != finals.end() && it->second.state() == v1::Task::SUCCEEDED) {
        const auto& fields = it->second.result().struct_value().fields();
        const int attempt = fields.count("attempt") ? fields.at("attempt").number_value() : -1;
        const std::string consumer =
            fields.count("consumer") ? fields.at("consumer").string_value() : "";
        int max_attempt = 0;
        for (const auto& x : runs) max_attempt = std::max(max_attempt, x.attempt);
        bool found = false;
        for (size_t i = runs.size(); i-- > 0;) {
          if (runs[i].attempt == attempt && runs[i].consumer == consumer &&
              runs[i].end == "done") {
            accepted = i;
            found = true;
            break;
          }
        }
        if (!found || attempt != max_attempt || it->second.attempt() != attempt) {
          ++f.wrong_outcome;
          absl::StrAppend(&f.detail, "wrong outcome: ", task, " record attempt ",
                          it->second.attempt(), " result attempt ", attempt, " by ", consumer,
                          "; ledger's highest attempt ", max_attempt,
                          found ? "" : " (no such done execution)", "\n");
        }
      }
      for (size_t i = 0; i < runs.size(); ++i) {
        if (i == accepted) continue;
        if (explained(runs[i])) {
          ++f.explained;
        } else {
          ++f.unexplained;
          absl::StrAppend(&f.detail, "unexplained re-run: ", task, " attempt ", runs[i].attempt,
                          " by ", runs[i].consumer, " started ", runs[i].start_ms, " end '",
                          runs[i].end, "' ", runs[i].end_ms, "\n");
        }
      }
    }
    return f;
  }

  // Every create call's error, counted by code.
  static std::string ErrorCodes(const std::vector<Call>& calls) {
    std::map<int, int> codes;
    for (const Call& c : calls) {
      if (c.code != grpc::StatusCode::OK) ++codes[c.code];
    }
    std::vector<std::string> parts;
    for (const auto& [code, n] : codes) parts.push_back(absl::StrCat("code ", code, " x", n));
    return parts.empty() ? "none" : absl::StrJoin(parts, ", ");
  }

  static std::string Ms(absl::Duration d) {
    return absl::FormatDuration(absl::Trunc(d, absl::Milliseconds(1)));
  }

  std::string AllLogs() {
    return absl::StrCat(WorkerLogs(), "--- task_service\n", mesh_->service().Log());
  }
};

}  // namespace taskmesh::fault

#endif  // TASKMESH_TESTS_FAULT_CLUSTER_FAULT_TEST_H_
