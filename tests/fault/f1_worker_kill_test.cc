// F1: `kill -9` a worker mid-task, 10 times or more (short) / 60 times
// (long), under a steady stream of creates: every acknowledged task
// completes, and the only re-runs are of attempts whose worker was killed.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "tests/fault/fault_test.h"

namespace taskmesh::fault {
namespace {

constexpr char kQueue[] = "f1";

class F1WorkerKillTest : public FaultTest {};

TEST_F(F1WorkerKillTest, EveryTaskCompletesAndOnlyKilledAttemptsRunAgain) {
  const int tasks = Scaled(150, 1500);
  const int kills = Scaled(10, 60);
  const int task_ms = 250;
  StartMesh();
  ASSERT_NE(mesh_, nullptr);

  // A task may be hit by several kills in a row: lost attempts must not
  // dead-letter it here (F5 covers poison tasks), so attempts and
  // poison_after are generous.
  const std::vector<std::string> flags = {"--poison_after=50"};
  int generation = 0;
  std::vector<testing::Process*> live;
  for (int i = 0; i < 3; ++i) {
    live.push_back(StartWorker(absl::StrCat("f1-w", generation++), kQueue, 4, flags));
    ASSERT_NE(live.back(), nullptr);
  }

  // Creates at a steady pace (about 30 a second) while workers are killed.
  std::vector<std::string> acked;
  std::atomic<int> create_errors{0};
  std::string first_error;
  std::thread producer([&] {
    const absl::Time start = absl::Now();
    for (int i = 0; i < tasks; ++i) {
      absl::Time due = start + absl::Milliseconds(33 * i);
      if (due > absl::Now()) absl::SleepFor(due - absl::Now());
      v1::Task t;
      grpc::Status s = mesh_->Create(RecordTask(kQueue, task_ms, /*max_attempts=*/50), &t);
      if (s.ok()) {
        acked.push_back(t.name());
      } else if (create_errors++ == 0) {
        first_error = s.error_message();
      }
    }
  });

  // Kills: each time, a worker with a task in flight, then a replacement.
  std::set<int64_t> killed_pids;
  const absl::Duration pace = absl::Milliseconds(300);
  absl::Time last_kill = absl::InfinitePast();
  for (int k = 0; k < kills; ++k) {
    const int victim = BusyWorker(live, pace, last_kill);
    ASSERT_GE(victim, 0) << "kill " << k << ": no worker had a task in flight\n" << WorkerLogs();
    testing::Process* p = live[victim];
    killed_pids.insert(p->pid());
    ASSERT_TRUE(p->Signal(SIGKILL).ok());
    ASSERT_TRUE(p->Wait(absl::Seconds(5)).ok());
    last_kill = absl::Now();
    live[victim] = StartWorker(absl::StrCat("f1-w", generation++), kQueue, 4, flags);
    ASSERT_NE(live[victim], nullptr);
  }
  producer.join();
  EXPECT_EQ(create_errors.load(), 0) << first_error;

  const auto final_states = mesh_->AwaitTerminal(acked, absl::Seconds(LongScale() ? 180 : 60));

  // The ledger: every execution, by task.
  testing::LedgerFigures fig;
  fig.acknowledged = static_cast<int64_t>(acked.size());
  std::set<std::string> acked_set(acked.begin(), acked.end());
  for (const auto& [name, task] : final_states) {
    if (task.state() == v1::Task::SUCCEEDED) ++fig.completed;
  }
  fig.lost = fig.acknowledged - fig.completed;
  int64_t unexplained = 0, killed_attempts = 0;
  std::string unexplained_detail;
  for (auto& [task, runs] : ledger_->ByTask()) {
    EXPECT_TRUE(acked_set.count(task)) << "executed but never acknowledged: " << task;
    fig.executions += static_cast<int64_t>(runs.size());
    fig.duplicates += static_cast<int64_t>(runs.size()) - 1;
    std::sort(runs.begin(), runs.end(), [](const testing::Execution& a,
                                           const testing::Execution& b) {
      return a.attempt < b.attempt;
    });
    // Every execution but the last must have died with its worker.
    for (size_t i = 0; i + 1 < runs.size(); ++i) {
      if (killed_pids.count(runs[i].pid)) {
        ++killed_attempts;
      } else {
        ++unexplained;
        absl::StrAppend(&unexplained_detail, task, " attempt ", runs[i].attempt, " by ",
                        runs[i].consumer, " ran again though its worker lived\n");
      }
    }
    const auto it = final_states.find(task);
    if (it != final_states.end() && it->second.state() == v1::Task::SUCCEEDED) {
      EXPECT_EQ(it->second.attempt(), runs.back().attempt) << task;
      EXPECT_EQ(runs.back().end, "done") << task;
    }
  }
  for (const std::string& name : acked) {
    const auto it = final_states.find(name);
    if (it == final_states.end() || it->second.state() != v1::Task::SUCCEEDED) {
      ADD_FAILURE() << name << " did not complete: "
                    << (it == final_states.end() ? "unknown"
                                                 : v1::Task::State_Name(it->second.state()))
                    << " " << (it == final_states.end() ? "" : it->second.last_error().message());
    }
  }

  Report(fig.Line("F1", absl::StrCat("kills=", killed_pids.size(), "; ", killed_attempts,
                                     " re-runs of killed attempts, ", unexplained,
                                     " unexplained")));
  EXPECT_EQ(static_cast<int>(killed_pids.size()), kills);
  EXPECT_EQ(fig.lost, 0);
  EXPECT_EQ(unexplained, 0) << unexplained_detail;
  EXPECT_EQ(fig.duplicates, killed_attempts);
  if (HasFailure()) ADD_FAILURE() << WorkerLogs();
}

}  // namespace
}  // namespace taskmesh::fault
