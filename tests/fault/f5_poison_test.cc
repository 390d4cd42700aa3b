// F5: a poison task that crashes its worker (abort) every time it runs ends
// dead-lettered (FAILED) after --poison_after deliveries, while the other
// tasks of the queue are unaffected: each runs once and succeeds.
//
// The test plays Kubernetes: a worker that died is replaced by a new one.
// Workers run one task at a time (--concurrency=1), so that a crash takes
// down only the poison task; with more slots the tasks running beside it
// would die too and run again (F1 covers such re-runs).
#include <signal.h>
#include <sys/wait.h>

#include <set>

#include "tests/fault/fault_test.h"

namespace taskmesh::fault {
namespace {

constexpr char kQueue[] = "f5";
constexpr int kPoisonAfter = 3;

class F5PoisonTest : public FaultTest {};

TEST_F(F5PoisonTest, PoisonTaskIsDeadLetteredAfterNDeliveriesAndOthersRunOnce) {
  const int poisons = Scaled(1, 5);
  const int normals = Scaled(30, 300);
  StartMesh();
  ASSERT_NE(mesh_, nullptr);
  const std::vector<std::string> flags = {absl::StrCat("--poison_after=", kPoisonAfter)};
  int generation = 0;
  std::vector<testing::Process*> live;
  for (int i = 0; i < 2; ++i) {
    live.push_back(StartWorker(absl::StrCat("f5-w", generation++), kQueue, 1, flags));
    ASSERT_NE(live.back(), nullptr);
  }

  std::vector<std::string> acked, poison_names, normal_names;
  auto create = [&](const v1::CreateTaskRequest& request, std::vector<std::string>* names) {
    v1::Task t;
    grpc::Status s = mesh_->Create(request, &t);
    ASSERT_TRUE(s.ok()) << s.error_message();
    acked.push_back(t.name());
    names->push_back(t.name());
  };
  v1::CreateTaskRequest poison;
  poison.set_parent(absl::StrCat("queues/", kQueue));
  poison.mutable_task()->set_type("crash");
  // Attempts to spare: what ends it must be the lost deliveries.
  poison.mutable_task()->set_max_attempts(20);
  for (int i = 0; i < normals; ++i) {
    if (i % (normals / poisons) == normals / poisons / 2 &&
        static_cast<int>(poison_names.size()) < poisons) {
      create(poison, &poison_names);
    }
    create(RecordTask(kQueue, 50, /*max_attempts=*/1), &normal_names);
  }
  ASSERT_EQ(static_cast<int>(poison_names.size()), poisons);

  // Replace dead workers until every task is terminal (bounded).
  int crashes = 0;
  std::string crash_detail;
  const int max_restarts = poisons * kPoisonAfter + 5;
  std::set<std::string> open(acked.begin(), acked.end());
  const absl::Time deadline = absl::Now() + absl::Seconds(LongScale() ? 180 : 60);
  bool all_terminal = false;
  while (absl::Now() < deadline && crashes <= max_restarts) {
    for (auto& p : live) {
      if (p == nullptr || p->running()) continue;
      ++crashes;
      auto status = p->Wait(absl::Seconds(1));
      if (status.ok() && !(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGABRT)) {
        absl::StrAppend(&crash_detail, NameOf(p), " ended with status ", *status, "\n");
      }
      p = StartWorker(absl::StrCat("f5-w", generation++), kQueue, 1, flags);
    }
    for (auto it = open.begin(); it != open.end();) {
      v1::Task t;
      if (mesh_->Get(*it, &t).ok() && testing::IsTerminal(t.state())) {
        it = open.erase(it);
      } else {
        ++it;
      }
    }
    if (open.empty()) {
      all_terminal = true;
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(all_terminal) << WorkerLogs();
  ASSERT_LE(crashes, max_restarts) << WorkerLogs();
  const auto final_states = mesh_->AwaitTerminal(acked, absl::Seconds(5));

  auto by_task = ledger_->ByTask();
  testing::LedgerFigures fig;
  fig.acknowledged = static_cast<int64_t>(acked.size());
  int64_t dead_lettered = 0, poison_deliveries = 0, normal_reruns = 0;
  for (const std::string& name : poison_names) {
    const v1::Task& t = final_states.at(name);
    EXPECT_EQ(t.state(), v1::Task::FAILED) << name;
    EXPECT_EQ(t.last_error().code(), static_cast<int>(grpc::StatusCode::ABORTED)) << name;
    EXPECT_TRUE(absl::StrContains(t.last_error().message(), "dead-lettered"))
        << t.last_error().message();
    EXPECT_EQ(static_cast<int>(by_task[name].size()), kPoisonAfter)
        << name << ": deliveries before it was dead-lettered";
    if (t.state() == v1::Task::FAILED) ++dead_lettered;
    poison_deliveries += static_cast<int64_t>(by_task[name].size());
  }
  for (const std::string& name : normal_names) {
    const v1::Task& t = final_states.at(name);
    EXPECT_EQ(t.state(), v1::Task::SUCCEEDED) << name << " " << t.last_error().message();
    if (t.state() == v1::Task::SUCCEEDED) ++fig.completed;
    EXPECT_EQ(by_task[name].size(), 1u) << name;
    if (by_task[name].size() > 1) normal_reruns += static_cast<int64_t>(by_task[name].size()) - 1;
  }
  for (const auto& [task, runs] : by_task) {
    fig.executions += static_cast<int64_t>(runs.size());
    fig.duplicates += static_cast<int64_t>(runs.size()) - 1;
  }
  // Lost: neither done nor dead-lettered as it should be.
  fig.lost = fig.acknowledged - fig.completed - dead_lettered;
  Report(fig.Line("F5", absl::StrCat("poison tasks=", poisons, " dead-lettered=", dead_lettered,
                                     " after ", poison_deliveries, " deliveries (poison_after=",
                                     kPoisonAfter, "), worker crashes=", crashes,
                                     "; all duplicates are poison re-deliveries; other tasks=",
                                     normals, " succeeded=", fig.completed, " re-runs=",
                                     normal_reruns)));
  EXPECT_EQ(fig.lost, 0);
  EXPECT_EQ(crashes, poisons * kPoisonAfter);
  EXPECT_EQ(normal_reruns, 0);
  EXPECT_EQ(fig.duplicates, poisons * (kPoisonAfter - 1));
  EXPECT_TRUE(crash_detail.empty()) << crash_detail;
  if (HasFailure()) ADD_FAILURE() << WorkerLogs();
}

}  // namespace
}  // namespace taskmesh::fault
