// F10: F1 on a Redis Cluster. `kill -9` of a worker with a task in flight,
// 6 times (short) / 30 times (long), under a steady stream of creates on
// three queues, one per master; a replacement worker each time. The killed
// worker's tasks are reclaimed once their 1 s lease runs out (by XAUTOCLAIM
// on each queue's own master) and finish on another worker.
//
// Asserted: lost = 0; every execution but a task's accepted one belongs to a
// killed worker; each killed worker's in-flight tasks end SUCCEEDED on
// another worker; the final record is the last attempt's outcome.
#include <signal.h>

#include "tests/fault/cluster_fault_test.h"

namespace taskmesh::fault {
namespace {

class F10ClusterWorkerKillTest : public ClusterFaultTest {};

TEST_F(F10ClusterWorkerKillTest, KilledWorkersTasksAreReclaimedAndFinishElsewhere) {
  const int kills = Scaled(6, 30);
  const int tasks = Scaled(150, 1200);
  StartClusterMesh({});
  ASSERT_NE(mesh_, nullptr);
  const std::vector<std::string> queues = PickQueues("f10q", {1, 1, 1});
  ASSERT_EQ(queues.size(), 3u);
  const std::string list = absl::StrJoin(queues, ",");
  const std::vector<std::string> flags = {"--poison_after=50"};

  int generation = 0;
  std::vector<testing::Process*> live;
  for (int i = 0; i < 3; ++i) {
    live.push_back(StartWorker(absl::StrCat("f10-w", generation++), list, 4, flags));
    ASSERT_NE(live.back(), nullptr);
  }
  Producer producer(mesh_.get(), queues, absl::Milliseconds(33), /*task_ms=*/250, tasks);

  std::set<int64_t> killed_pids;
  // Tasks in flight in each killed worker when it died.
  std::map<std::string, std::string> orphaned;  // task -> killed consumer
  const absl::Duration pace = absl::Milliseconds(400);
  absl::Time last_kill = absl::InfinitePast();
  for (int k = 0; k < kills; ++k) {
    const int victim = BusyWorker(live, pace, last_kill);
    ASSERT_GE(victim, 0) << "kill " << k << ": no worker had a task in flight\n" << AllLogs();
    testing::Process* p = live[victim];
    killed_pids.insert(p->pid());
    ASSERT_TRUE(p->Signal(SIGKILL).ok());
    ASSERT_TRUE(p->Wait(absl::Seconds(5)).ok());
    last_kill = absl::Now();
    for (const testing::Execution& x : OpenIn(p->pid())) orphaned[x.task] = x.consumer;
    live[victim] = StartWorker(absl::StrCat("f10-w", generation++), list, 4, flags);
    ASSERT_NE(live[victim], nullptr);
  }
  // Bounded: the producer stops after `tasks` calls.
  ASSERT_TRUE(testing::WaitFor(absl::Seconds(120), [&] {
    return static_cast<int>(producer.Calls().size()) >= tasks;
  }));
  producer.Stop();
  const std::vector<Call> calls = producer.Calls();
  int64_t failed = 0;
  for (const Call& c : calls) failed += c.code != grpc::StatusCode::OK;

  const ClusterFigures fig =
      Verify(producer.Acked(), absl::Seconds(LongScale() ? 180 : 60),
             [&](const testing::Execution& x) { return killed_pids.count(x.pid) > 0; });

  // Each orphaned task finished on a worker other than the killed one.
  int64_t orphans_elsewhere = 0;
  std::string orphan_detail;
  auto by_task = ledger_->ByTask();
  for (const auto& [task, consumer] : orphaned) {
    bool elsewhere = false;
    for (const testing::Execution& x : by_task[task]) {
      elsewhere |= x.end == "done" && x.consumer != consumer;
    }
    if (elsewhere) {
      ++orphans_elsewhere;
    } else {
      absl::StrAppend(&orphan_detail, task, " (in flight in ", consumer,
                      ") did not finish elsewhere\n");
    }
  }
  Report(fig.ledger.Line(
      "F10", absl::StrCat("worker kills=", killed_pids.size(), "; tasks in flight at a kill ",
                          orphaned.size(), ", finished on another worker ", orphans_elsewhere,
                          "; failed creates ", failed, "; ", fig.explained,
                          " re-runs of killed attempts, ", fig.unexplained,
                          " unexplained; wrong outcomes ", fig.wrong_outcome)));
  EXPECT_EQ(static_cast<int>(killed_pids.size()), kills);
  EXPECT_EQ(failed, 0) << ErrorCodes(calls);
  EXPECT_EQ(fig.ledger.lost, 0) << fig.detail;
  EXPECT_EQ(fig.unexplained, 0) << fig.detail;
  EXPECT_EQ(fig.wrong_outcome, 0) << fig.detail;
  EXPECT_EQ(orphans_elsewhere, static_cast<int64_t>(orphaned.size())) << orphan_detail;
  EXPECT_GE(orphaned.size(), static_cast<size_t>(kills));
  if (HasFailure()) ADD_FAILURE() << AllLogs();
}

}  // namespace
}  // namespace taskmesh::fault
