// F2: `kill -9` redis-server (appendonly yes, appendfsync always) under load,
// then restart it (same port, same data): every acknowledged create survives
// and completes; while Redis is down creates fail with UNAVAILABLE, never OK;
// the task_service and the workers reconnect by themselves.
//
// Duplicates are allowed only for attempts that overlapped an outage (their
// outcome could not be recorded, or their lease ran out while Redis was away:
// at-least-once, by design). Tasks whose create failed (UNAVAILABLE) may
// still have been written before the kill: they are counted, not lost.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "tests/fault/fault_test.h"

namespace taskmesh::fault {
namespace {

constexpr char kQueue[] = "f2";

struct Call {
  absl::Time start;
  absl::Time end;
  grpc::StatusCode code;
  std::string name;
  std::string message;
};

struct Outage {
  absl::Time kill_begin;   // SIGKILL sent.
  absl::Time killed;       // redis-server reaped.
  absl::Time restart;      // Restart() called.
  absl::Time restarted;    // Answering PING again.
};

class F2RedisKillTest : public FaultTest {};

TEST_F(F2RedisKillTest, AcknowledgedCreatesSurviveAndCompleteAndServicesReconnect) {
  const int rounds = Scaled(1, 5);
  const int acks_between = Scaled(60, 300);
  testing::MeshOptions options;
  options.redis.appendonly = true;  // appendfsync always
  StartMesh(options);
  ASSERT_NE(mesh_, nullptr);
  for (int i = 0; i < 2; ++i) {
    ASSERT_NE(StartWorker(absl::StrCat("f2-w", i), kQueue, 4, {"--poison_after=50"}), nullptr);
  }

  absl::Mutex mu;
  std::vector<Call> calls;
  std::atomic<bool> stop{false};
  std::atomic<int> acks{0};
  // One call at a time, every 10 ms: a steady load that also samples the
  // outage densely.
  std::thread producer([&] {
    for (int i = 0; i < 100000 && !stop; ++i) {
      Call c;
      c.start = absl::Now();
      v1::Task t;
      grpc::Status s = mesh_->Create(RecordTask(kQueue, 100, /*max_attempts=*/50), &t,
                                     absl::Seconds(10));
      c.end = absl::Now();
      c.code = s.error_code();
      c.message = s.error_message();
      c.name = t.name();
      if (s.ok()) ++acks;
      {
        absl::MutexLock lock(&mu);
        calls.push_back(std::move(c));
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  });

  std::vector<Outage> outages;
  for (int r = 0; r < rounds && !HasFatalFailure(); ++r) {
    const int want = acks.load() + acks_between;
    ASSERT_TRUE(testing::WaitFor(absl::Seconds(60), [&] { return acks.load() >= want; }))
        << "round " << r << ": creates do not succeed\n" << mesh_->service().Log();
    Outage o;
    o.kill_begin = absl::Now();
    ASSERT_TRUE(mesh_->redis().Kill().ok());
    o.killed = absl::Now();
    // Down for a while: at least 1.5 s and five calls that began and ended
    // inside the outage.
    ASSERT_TRUE(testing::WaitFor(absl::Seconds(30), [&] {
      if (absl::Now() - o.killed < absl::Milliseconds(1500)) return false;
      absl::MutexLock lock(&mu);
      return std::count_if(calls.begin(), calls.end(),
                           [&](const Call& c) { return c.start >= o.killed; }) >= 5;
    }));
    o.restart = absl::Now();
    ASSERT_TRUE(mesh_->redis().Restart().ok());
    o.restarted = absl::Now();
    outages.push_back(o);
  }
  // Reconnect by themselves: creates succeed again, and their tasks run.
  const int want = acks.load() + 20;
  EXPECT_TRUE(testing::WaitFor(absl::Seconds(30), [&] { return acks.load() >= want; }))
      << "the task_service did not recover\n" << mesh_->service().Log();
  stop = true;
  producer.join();

  std::vector<std::string> acked;
  int64_t down_calls = 0, down_unavailable = 0, other_errors = 0, failed_creates = 0;
  std::string bad_detail;
  for (const Call& c : calls) {
    if (c.code == grpc::StatusCode::OK) {
      acked.push_back(c.name);
    } else {
      ++failed_creates;
      if (c.code != grpc::StatusCode::UNAVAILABLE) {
        ++other_errors;
        absl::StrAppend(&bad_detail, "create failed with code ", c.code, ": ", c.message, "\n");
      }
    }
    for (const Outage& o : outages) {
      if (c.start >= o.killed && c.end <= o.restart) {
        ++down_calls;
        if (c.code == grpc::StatusCode::UNAVAILABLE) {
          ++down_unavailable;
        } else {
          absl::StrAppend(&bad_detail, "while Redis was down a create returned code ", c.code,
                          " (", c.message, ")\n");
        }
      }
    }
  }

  // How long after each restart the first create succeeded again.
  absl::Duration slowest_recovery;
  for (const Outage& o : outages) {
    absl::Duration recovery = absl::InfiniteDuration();
    for (const Call& c : calls) {
      if (c.code == grpc::StatusCode::OK && c.start >= o.restarted) {
        recovery = std::min(recovery, c.end - o.restarted);
      }
    }
    slowest_recovery = std::max(slowest_recovery, recovery);
  }

  const auto final_states = mesh_->AwaitTerminal(acked, absl::Seconds(LongScale() ? 180 : 60));
  testing::LedgerFigures fig;
  fig.acknowledged = static_cast<int64_t>(acked.size());
  for (const std::string& name : acked) {
    auto it = final_states.find(name);
    if (it != final_states.end() && it->second.state() == v1::Task::SUCCEEDED) {
      ++fig.completed;
    } else {
      ADD_FAILURE() << name << " did not complete: "
                    << (it == final_states.end() ? "never read"
                                                 : v1::Task::State_Name(it->second.state()));
    }
  }
  fig.lost = fig.acknowledged - fig.completed;

  // An earlier execution may repeat only if it overlapped an outage (up to
  // 2 s after the restart, for the clients' reconnect backoff).
  auto overlaps_outage = [&](const testing::Execution& x) {
    const int64_t end = x.end.empty() ? INT64_MAX : x.end_ms;
    for (const Outage& o : outages) {
      if (x.start_ms <= absl::ToUnixMillis(o.restarted + absl::Seconds(2)) &&
          end >= absl::ToUnixMillis(o.kill_begin)) {
        return true;
      }
    }
    return false;
  };
  std::set<std::string> acked_set(acked.begin(), acked.end());
  int64_t unacked_executed = 0, outage_reruns = 0, unexplained = 0;
  std::string unexplained_detail;
  for (auto& [task, runs] : ledger_->ByTask()) {
    if (!acked_set.count(task)) ++unacked_executed;
    fig.executions += static_cast<int64_t>(runs.size());
    fig.duplicates += static_cast<int64_t>(runs.size()) - 1;
    std::sort(runs.begin(), runs.end(),
              [](const testing::Execution& a, const testing::Execution& b) {
                return a.attempt < b.attempt;
              });
    for (size_t i = 0; i + 1 < runs.size(); ++i) {
      if (overlaps_outage(runs[i])) {
        ++outage_reruns;
      } else {
        ++unexplained;
        absl::StrAppend(&unexplained_detail, task, " attempt ", runs[i].attempt,
                        " ran again though it did not overlap an outage\n");
      }
    }
  }

  Report(fig.Line(
      "F2", absl::StrCat("redis kills=", outages.size(), "; creates while down=", down_calls,
                         " all UNAVAILABLE=", down_unavailable == down_calls ? "yes" : "NO",
                         "; first OK create after restart within ",
                         absl::FormatDuration(absl::Trunc(slowest_recovery, absl::Milliseconds(1))),
                         "; failed creates=", failed_creates, " (written anyway and run: ",
                         unacked_executed, "); ", outage_reruns,
                         " re-runs of attempts that overlapped an outage, ", unexplained,
                         " unexplained")));
  EXPECT_EQ(static_cast<int>(outages.size()), rounds);
  EXPECT_GE(down_calls, 5 * rounds);
  EXPECT_EQ(down_unavailable, down_calls) << bad_detail;
  EXPECT_EQ(other_errors, 0) << bad_detail;
  EXPECT_LE(slowest_recovery, absl::Seconds(5));
  EXPECT_EQ(fig.lost, 0);
  EXPECT_EQ(unexplained, 0) << unexplained_detail;
  if (HasFailure()) ADD_FAILURE() << WorkerLogs() << "--- task_service\n" << mesh_->service().Log();
}

}  // namespace
}  // namespace taskmesh::fault
