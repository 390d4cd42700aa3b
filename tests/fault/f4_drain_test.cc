// F4: SIGTERM a worker under load: it exits 0 within --drain_timeout;
// nothing is lost; the tasks it could not finish start on another worker
// within a second of being handed back.
//
// Each round uses its own queue: the draining worker T starts alone, takes
// two long tasks (longer than its drain timeout) and short ones; a rescuer
// R joins; creates keep coming; T gets SIGTERM. Expected: T's short tasks
// finish on T during the drain (no re-run), its long ones are handed back at
// the drain timeout and start on R within a second (the only re-runs).
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "tests/fault/fault_test.h"

namespace taskmesh::fault {
namespace {

constexpr int kLongMs = 4000;
// Short tasks must outlast the rescuer's start (a process start, slow on a loaded
// machine) to be still running on T at SIGTERM, and fit in the drain.
constexpr int kShortMs = 1200;
constexpr int kDrainMs = 1500;
// Process teardown after the drain (threads joined, connections closed).
constexpr int kExitSlackMs = 300;

class F4DrainTest : public FaultTest {
 protected:
  void Run(const std::string& label, int busy_slots, bool load);
};

// `busy_slots` of T's 4 handler slots are taken at SIGTERM (2 long tasks,
// the rest short); with free slots T's fetcher is idle in its blocking read.
// `load`: creates go on during the drain.
void F4DrainTest::Run(const std::string& label, int busy_slots, bool load) {
  const int rounds = Scaled(1, 5);
  StartMesh();
  ASSERT_NE(mesh_, nullptr);

  std::vector<std::string> acked;
  std::set<int64_t> drained_pids;
  absl::Duration slowest_exit, slowest_restart;
  int64_t handed_back = 0, finished_in_drain = 0, started_after_term = 0;

  for (int r = 0; r < rounds; ++r) {
    const std::string queue = absl::StrCat("f4b", busy_slots, "r", r);
    testing::Process* t = StartWorker(absl::StrCat(queue, "-t"), queue, 4,
                                      {absl::StrCat("--drain_timeout=", kDrainMs, "ms")});
    ASSERT_NE(t, nullptr);
    auto create = [&](int ms) {
      v1::Task task;
      grpc::Status s = mesh_->Create(RecordTask(queue, ms, /*max_attempts=*/5), &task);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (s.ok()) acked.push_back(task.name());
    };
    create(kLongMs);
    create(kLongMs);
    for (int i = 2; i < busy_slots; ++i) create(kShortMs);
    ASSERT_TRUE(testing::WaitFor(absl::Seconds(10), [&] {
      return static_cast<int>(OpenIn(t->pid()).size()) == busy_slots;
    })) << WorkerLogs();
    // A full T has more short tasks waiting behind it, for the rescuer.
    if (busy_slots == 4) {
      for (int i = 0; i < 4; ++i) create(kShortMs);
    }
    testing::Process* rescuer = StartWorker(absl::StrCat(queue, "-r"), queue, 8);
    ASSERT_NE(rescuer, nullptr);
    ASSERT_TRUE(testing::WaitFor(absl::Seconds(10), [&] { return testing::WorkerServing(*rescuer); }))
        << rescuer->Log();

    const std::vector<testing::Execution> in_flight = OpenIn(t->pid());
    const absl::Time term = absl::Now();
    ASSERT_TRUE(t->Signal(SIGTERM).ok());
    // Load while T drains, from the moment T has taken the signal in (its
    // "draining" line): every task created from then on was created after
    // T began to stop, and T must not start it.
    ASSERT_TRUE(testing::WaitFor(absl::Seconds(5), [&] {
      return absl::StrContains(t->Log(), "msg=draining");
    })) << t->Log();
    std::set<std::string> created_while_draining;
    std::thread producer([&] {
      for (int i = 0; load && i < 40; ++i) {
        const size_t before = acked.size();
        create(100);
        if (acked.size() > before) created_while_draining.insert(acked.back());
        absl::SleepFor(absl::Milliseconds(50));
      }
    });
    auto status = t->Wait(absl::Milliseconds(kDrainMs + kExitSlackMs + 5000));
    const absl::Duration exit_after = absl::Now() - term;
    producer.join();
    drained_pids.insert(t->pid());
    ASSERT_TRUE(status.ok()) << "did not exit after SIGTERM\n" << t->Log();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << t->Log();
    slowest_exit = std::max(slowest_exit, exit_after);
    EXPECT_LE(exit_after, absl::Milliseconds(kDrainMs + kExitSlackMs))
        << "round " << r << ": exit took " << exit_after << " after SIGTERM with --drain_timeout="
        << kDrainMs << "ms\n"
        << t->Log();

    // Stopped fetching: T started nothing created after it began to drain.
    for (const auto& x : ledger_->Executions()) {
      if (x.pid == t->pid() && created_while_draining.count(x.task)) {
        ++started_after_term;
        ADD_FAILURE() << "round " << r << ": T started " << x.task << ", created after T "
                      << "logged 'draining', " << x.start_ms - absl::ToUnixMillis(term)
                      << " ms after SIGTERM";
      }
    }
    // What T had in flight: short tasks finished there, long ones were
    // handed back (cancelled on T) and started on the rescuer soon after.
    std::map<std::string, std::vector<testing::Execution>> by_task;
    ASSERT_TRUE(testing::WaitFor(absl::Seconds(10), [&] {
      by_task = ledger_->ByTask();
      for (const auto& x : in_flight) {
        const auto& runs = by_task[x.task];
        const bool ended_on_t = std::any_of(runs.begin(), runs.end(), [&](const auto& y) {
          return y.pid == t->pid() && !y.end.empty();
        });
        const bool restarted = std::any_of(runs.begin(), runs.end(),
                                           [&](const auto& y) { return y.pid != t->pid(); });
        if (!ended_on_t) return false;
        if (!restarted && std::any_of(runs.begin(), runs.end(), [&](const auto& y) {
              return y.pid == t->pid() && y.end == "cancelled";
            })) {
          return false;
        }
      }
      return true;
    })) << WorkerLogs();
    // When T handed its running tasks back: the log line just before.
    int64_t handback_ms = 0;
    {
      const std::string log = t->Log();
      const size_t at = log.find("msg=\"drain timeout: handing running tasks back\"");
      const size_t ts = at == std::string::npos ? at : log.rfind("ts=", at);
      absl::Time when;
      std::string err;
      if (ts != std::string::npos &&
          absl::ParseTime("%Y-%m-%dT%H:%M:%E3SZ", log.substr(ts + 3, 24), &when, &err)) {
        handback_ms = absl::ToUnixMillis(when);
      }
    }
    for (const auto& x : in_flight) {
      const auto& runs = by_task[x.task];
      auto mine = std::find_if(runs.begin(), runs.end(),
                               [&](const auto& y) { return y.pid == t->pid(); });
      ASSERT_NE(mine, runs.end());
      if (mine->end == "done") {
        ++finished_in_drain;
        EXPECT_EQ(runs.size(), 1u) << x.task << " finished on T during the drain yet ran again";
        continue;
      }
      EXPECT_EQ(mine->end, "cancelled") << x.task;
      ASSERT_GT(handback_ms, 0) << "no hand-back in T's log\n" << t->Log();
      ++handed_back;
      auto next = std::find_if(runs.begin(), runs.end(),
                               [&](const auto& y) { return y.pid != t->pid(); });
      ASSERT_NE(next, runs.end());
      const absl::Duration restart = absl::Milliseconds(next->start_ms - handback_ms);
      slowest_restart = std::max(slowest_restart, restart);
      EXPECT_LE(restart, absl::Seconds(1))
          << x.task << " started elsewhere " << restart << " after it was handed back";
      // A handed-back attempt is not counted: the same attempt number runs.
      EXPECT_EQ(next->attempt, mine->attempt) << x.task;
    }
    EXPECT_TRUE(rescuer->running());
  }

  const auto final_states = mesh_->AwaitTerminal(acked, absl::Seconds(60));
  testing::LedgerFigures fig;
  fig.acknowledged = static_cast<int64_t>(acked.size());
  for (const std::string& name : acked) {
    auto it = final_states.find(name);
    if (it != final_states.end() && it->second.state() == v1::Task::SUCCEEDED) {
      ++fig.completed;
    } else {
      ADD_FAILURE() << name << " did not complete";
    }
  }
  fig.lost = fig.acknowledged - fig.completed;
  int64_t unexplained = 0;
  for (const auto& [task, runs] : ledger_->ByTask()) {
    fig.executions += static_cast<int64_t>(runs.size());
    fig.duplicates += static_cast<int64_t>(runs.size()) - 1;
    for (size_t i = 0; i + 1 < runs.size(); ++i) {
      if (!(drained_pids.count(runs[i].pid) && runs[i].end == "cancelled")) ++unexplained;
    }
  }
  Report(fig.Line(
      label, absl::StrCat("drains=", rounds, "; slowest exit ",
                         absl::FormatDuration(absl::Trunc(slowest_exit, absl::Milliseconds(1))),
                         " after SIGTERM with --drain_timeout=", kDrainMs, "ms; in flight at "
                         "SIGTERM: ", finished_in_drain, " finished during the drain, ",
                         handed_back, " handed back and re-run (slowest restart elsewhere ",
                         absl::FormatDuration(absl::Trunc(slowest_restart, absl::Milliseconds(1))),
                         "); tasks created during the drain that T started: ", started_after_term, "; ", unexplained,
                         " unexplained")));
  EXPECT_EQ(fig.lost, 0);
  EXPECT_EQ(unexplained, 0);
  EXPECT_EQ(fig.duplicates, handed_back);
  EXPECT_GE(handed_back, 2 * rounds);
  if (busy_slots > 2) EXPECT_GE(finished_in_drain, rounds);
  if (HasFailure()) ADD_FAILURE() << WorkerLogs();
}

TEST_F(F4DrainTest, FullWorkerExitsInTimeAndHandsBackWhatItCannotFinish) {
  Run("F4 (all 4 slots busy, under load)", 4, /*load=*/true);
}

// T's fetcher is blocked in XREADGROUP BLOCK when SIGTERM comes: what that
// read receives during the drain goes back to the queue unstarted.
TEST_F(F4DrainTest, WorkerWithFreeSlotsStartsNothingNewWhileDraining) {
  Run("F4 (2 of 4 slots busy, under load)", 2, /*load=*/true);
}

// The drain clock starts at the stop request, not when that blocking read
// returns, so an idle worker exits within --drain_timeout.
TEST_F(F4DrainTest, WorkerWithFreeSlotsExitsWithinTheDrainTimeout) {
  Run("F4 (2 of 4 slots busy, no load)", 2, /*load=*/false);
}

}  // namespace
}  // namespace taskmesh::fault
