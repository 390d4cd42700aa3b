// F3: SIGSTOP a worker past its lease, then SIGCONT: the task completes on
// another worker; the frozen worker's (stale) completion is fenced; the
// final outcome is recorded once.
//
// Two orders of events, each its own test:
//   * the frozen worker resumes and completes while the new attempt still
//     runs (its handler ignores the cancellation that the lost lease asks
//     for, so its completion really reaches Redis);
//   * it resumes only after the new attempt has succeeded.
#include <signal.h>

#include "tests/fault/fault_test.h"

namespace taskmesh::fault {
namespace {

class F3FrozenWorkerTest : public FaultTest {
 protected:
  // Sums the queue's per-second success counters: outcomes recorded.
  int64_t Successes(const std::string& queue) {
    auto keys = mesh_->RedisCommand({"KEYS", absl::StrCat("taskmesh:{", queue, "}:n:ok:*")});
    if (!keys.ok()) return -1;
    int64_t total = 0;
    for (const auto& k : keys->elements()) {
      auto v = mesh_->RedisCommand({"GET", k.str()});
      if (v.ok()) total += std::stoll(v->str());
    }
    return total;
  }

  int FencedCount(testing::Process* p) {
    const std::string log = p->Log();
    int n = 0;
    for (size_t at = log.find("outcome fenced"); at != std::string::npos;
         at = log.find("outcome fenced", at + 1)) {
      ++n;
    }
    return n;
  }

  // One round: a task starts on one of the two workers, that worker is
  // frozen past its lease, the other takes the task over; the frozen one
  // resumes while the new attempt runs (`resume_early`) or after it ended.
  void Round(const std::string& queue, bool resume_early, int round, testing::LedgerFigures* fig,
             int* fenced) {
    // Early: the stale attempt must end while the new one still runs.
    const int ms = resume_early ? 2500 : 1500;
    v1::Task created;
    ASSERT_TRUE(mesh_->Create(RecordTask(queue, ms, /*max_attempts=*/5,
                                         /*ignore_cancel=*/true),
                              &created)
                    .ok());
    ++fig->acknowledged;
    const std::string name = created.name();

    testing::Execution first;
    ASSERT_TRUE(testing::WaitFor(absl::Seconds(10), [&] {
      for (auto& x : ledger_->Executions()) {
        if (x.task == name) {
          first = x;
          return true;
        }
      }
      return false;
    })) << WorkerLogs();
    testing::Process* frozen = nullptr;
    testing::Process* rescuer = nullptr;
    for (auto& w : workers_) {
      (w->pid() == first.pid ? frozen : rescuer) = w.get();
    }
    ASSERT_NE(frozen, nullptr);
    ASSERT_NE(rescuer, nullptr);
    const int fenced_before = FencedCount(frozen);
    ASSERT_TRUE(frozen->Signal(SIGSTOP).ok());

    // Past the lease (1 s), another worker runs attempt 2.
    testing::Execution second;
    ASSERT_TRUE(testing::WaitFor(absl::Seconds(10), [&] {
      for (auto& x : ledger_->Executions()) {
        if (x.task == name && x.pid == rescuer->pid()) {
          second = x;
          return true;
        }
      }
      return false;
    })) << "no other worker took the frozen worker's task\n" << WorkerLogs();
    EXPECT_EQ(second.attempt, first.attempt + 1);

    v1::Task done;
    if (resume_early) {
      ASSERT_TRUE(frozen->Signal(SIGCONT).ok());
      // The stale attempt ends (its sleep is long over) and is fenced
      // while attempt 2 still runs.
      ASSERT_TRUE(testing::WaitFor(absl::Seconds(10), [&] {
        return FencedCount(frozen) > fenced_before;
      })) << frozen->Log();
      v1::Task mid;
      ASSERT_TRUE(mesh_->Get(name, &mid).ok());
      EXPECT_EQ(mid.state(), v1::Task::RUNNING) << "the stale completion overwrote the task";
      EXPECT_EQ(mid.attempt(), second.attempt);
      auto final_states = mesh_->AwaitTerminal({name}, absl::Seconds(15));
      done = final_states[name];
    } else {
      auto final_states = mesh_->AwaitTerminal({name}, absl::Seconds(15));
      done = final_states[name];
      ASSERT_EQ(done.state(), v1::Task::SUCCEEDED);
      ASSERT_TRUE(frozen->Signal(SIGCONT).ok());
      ASSERT_TRUE(testing::WaitFor(absl::Seconds(10), [&] {
        return FencedCount(frozen) > fenced_before;
      })) << frozen->Log();
    }
    ++*fenced;
    // The stale attempt really ran to its end: its completion was sent.
    bool stale_done = false;
    ASSERT_TRUE(testing::WaitFor(absl::Seconds(5), [&] {
      for (auto& x : ledger_->Executions()) {
        if (x.task == name && x.pid == frozen->pid() && x.end == "done") stale_done = true;
      }
      return stale_done;
    }));

    // The outcome is attempt 2's, recorded once, and stays so.
    v1::Task after;
    ASSERT_TRUE(mesh_->Get(name, &after).ok());
    EXPECT_EQ(after.state(), v1::Task::SUCCEEDED);
    EXPECT_EQ(after.attempt(), second.attempt);
    const auto& result = after.result().struct_value().fields();
    EXPECT_EQ(result.at("consumer").string_value(), NameOf(rescuer));
    EXPECT_EQ(static_cast<int>(result.at("attempt").number_value()), second.attempt);
    EXPECT_EQ(after.end_time().seconds(), done.end_time().seconds());
    EXPECT_EQ(after.end_time().nanos(), done.end_time().nanos());
    EXPECT_EQ(Successes(queue), round + 1) << "outcomes recorded in queue " << queue;
    if (after.state() == v1::Task::SUCCEEDED) ++fig->completed;

    const auto runs = ledger_->ByTask()[name];
    fig->executions += static_cast<int64_t>(runs.size());
    fig->duplicates += static_cast<int64_t>(runs.size()) - 1;
    EXPECT_EQ(runs.size(), 2u);
    EXPECT_TRUE(frozen->running()) << "the resumed worker died\n" << frozen->Log();
  }

  void Run(const std::string& queue, bool resume_early, const std::string& label) {
    StartMesh();
    ASSERT_NE(mesh_, nullptr);
    ASSERT_NE(StartWorker(queue + "-a", queue, 2), nullptr);
    ASSERT_NE(StartWorker(queue + "-b", queue, 2), nullptr);
    testing::LedgerFigures fig;
    int fenced = 0;
    const int rounds = Scaled(1, 5);
    for (int r = 0; r < rounds; ++r) {
      Round(queue, resume_early, r, &fig, &fenced);
      if (HasFatalFailure() || HasFailure()) break;
    }
    fig.lost = fig.acknowledged - fig.completed;
    Report(fig.Line(label, absl::StrCat("rounds=", rounds, "; each task ran twice: the frozen "
                                        "attempt and its successor; stale completions fenced=",
                                        fenced, ", outcomes recorded=", Successes(queue))));
    EXPECT_EQ(fig.lost, 0);
    EXPECT_EQ(fig.duplicates, rounds);
    if (HasFailure()) ADD_FAILURE() << WorkerLogs();
  }
};

TEST_F(F3FrozenWorkerTest, StaleCompletionWhileTheNewAttemptRunsIsFenced) {
  Run("f3a", /*resume_early=*/true, "F3 (resumed during attempt 2)");
}

TEST_F(F3FrozenWorkerTest, StaleCompletionAfterTheNewAttemptSucceededIsFenced) {
  Run("f3b", /*resume_early=*/false, "F3 (resumed after attempt 2 succeeded)");
}

}  // namespace
}  // namespace taskmesh::fault
