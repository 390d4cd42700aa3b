// F7: workers whose clocks are 5 minutes ahead and 5 minutes behind
// (libfaketime, as `faketime -m -f +5m` sets it up: LD_PRELOAD and FAKETIME)
// neither steal live leases nor run scheduled tasks early or late: leases
// and schedules are judged by the Redis server's clock.
//
// Only skewed workers run: P at +5m and M at -5m. P starts alone and takes
// long tasks (3 leases long) until it is full; then M starts and takes as
// many. Each one's reclaimer looks at the other's leases all along: every
// long task must run once, never reclaimed. Then scheduled tasks must start
// no earlier than their schedule_time and less than a second after it.
//
// libfaketime skews the clock that a process reads, not the kernel's. Abseil
// (Debian's 20220623) turns every timed wait into an absolute CLOCK_REALTIME
// deadline for futex(), so under libfaketime alone a +5m process waits 5
// minutes too long at each timed wait, and a -5m one not at all: no real
// host behaves so. The main test therefore adds futex_skew_shim.c, which
// gives futex() the same skew (as on a host whose clock is 5 minutes off).
// The second test runs libfaketime alone, as after a backward clock step: it
// failed until every timed wait of the worker became monotonic (README.md,
// bug 4), and now guards that.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "google/protobuf/util/time_util.h"
#include "tests/fault/fault_test.h"

namespace taskmesh::fault {
namespace {

using ::google::protobuf::util::TimeUtil;

constexpr char kQueue[] = "f7";
constexpr char kFaketimeLib[] = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

class F7ClockSkewTest : public FaultTest {
 protected:
  // Environment of `faketime -m -f OFFSET --exclude-monotonic` (only the
  // wall clock is skewed, as between two hosts), plus the futex shim when
  // `whole_host`.
  static std::vector<std::string> Skewed(const std::string& offset, bool whole_host) {
    std::string preload = kFaketimeLib;
    if (whole_host) {
      absl::StrAppend(&preload, " ", testing::BinaryPath("tests/fault/libfutex_skew_shim.so"));
    }
    return {absl::StrCat("LD_PRELOAD=", preload), absl::StrCat("FAKETIME=", offset),
            "FAKETIME_DONT_FAKE_MONOTONIC=1"};
  }

  void Run(const std::string& label, bool whole_host);

  // The worker's clock minus ours, from the timestamp of its first log line.
  static absl::Duration LogSkew(const testing::Process& p, absl::Time now) {
    const std::string log = p.Log();
    absl::Time ts;
    std::string err;
    if (log.rfind("ts=", 0) != 0 ||
        !absl::ParseTime("%Y-%m-%dT%H:%M:%E3SZ", log.substr(3, 24), &ts, &err)) {
      return absl::InfiniteDuration();
    }
    return ts - now;
  }
};

void F7ClockSkewTest::Run(const std::string& label, bool whole_host) {
  ASSERT_EQ(access(kFaketimeLib, R_OK), 0)
      << kFaketimeLib << " is missing: scripts/install_deps.sh installs Debian's faketime";
  const int longs = Scaled(6, 40);
  const int scheduled = Scaled(6, 40);
  StartMesh();
  ASSERT_NE(mesh_, nullptr);

  std::vector<std::string> long_names, sched_names, all;
  std::map<std::string, absl::Time> due;
  auto create_longs = [&] {
    for (int i = 0; i < longs; ++i) {
      v1::Task t;
      ASSERT_TRUE(mesh_->Create(RecordTask(kQueue, 3000, /*max_attempts=*/5), &t).ok());
      long_names.push_back(t.name());
    }
  };
  auto started_by = [&](testing::Process* p) {
    int n = 0;
    for (const auto& x : ledger_->Executions()) n += x.pid == p->pid();
    return n;
  };
  // Up: SERVING on health (under libfaketime alone a +5m worker's health
  // loop never gets there: its log line must do).
  auto up = [&](testing::Process* p, bool health) {
    return testing::WaitFor(absl::Seconds(15), [&] {
      return health ? testing::WorkerServing(*p)
                    : absl::StrContains(p->Log(), "msg=\"worker started\"");
    });
  };

  const absl::Time started = absl::Now();
  testing::Process* plus =
      StartWorker("f7-plus5m", kQueue, longs, {}, Skewed("+5m", whole_host));
  ASSERT_NE(plus, nullptr);
  ASSERT_TRUE(up(plus, whole_host)) << WorkerLogs();
  create_longs();
  ASSERT_TRUE(testing::WaitFor(absl::Seconds(10), [&] { return started_by(plus) == longs; }))
      << WorkerLogs();
  testing::Process* minus =
      StartWorker("f7-minus5m", kQueue, longs + scheduled, {}, Skewed("-5m", whole_host));
  ASSERT_NE(minus, nullptr);
  ASSERT_TRUE(up(minus, true)) << WorkerLogs();
  create_longs();
  ASSERT_TRUE(testing::WaitFor(absl::Seconds(10), [&] { return started_by(minus) >= longs; }))
      << WorkerLogs();
  // They really live 5 minutes away from us (their first log line was
  // written between `started` and now).
  const absl::Duration plus_skew = LogSkew(*plus, started);
  const absl::Duration minus_skew = LogSkew(*minus, started);
  const absl::Duration slack = absl::Now() - started + absl::Seconds(2);
  EXPECT_LE(absl::AbsDuration(plus_skew - absl::Minutes(5)), slack) << plus->Log();
  EXPECT_LE(absl::AbsDuration(minus_skew + absl::Minutes(5)), slack) << minus->Log();

  const absl::Time base = absl::Now() + absl::Milliseconds(1500);
  const absl::Duration spread = absl::Milliseconds(LongScale() ? 200 : 250);
  for (int i = 0; i < scheduled; ++i) {
    v1::CreateTaskRequest r = RecordTask(kQueue, 10, /*max_attempts=*/5);
    const absl::Time when = base + i * spread;
    *r.mutable_task()->mutable_schedule_time() =
        TimeUtil::MillisecondsToTimestamp(absl::ToUnixMillis(when));
    v1::Task t;
    grpc::Status s = mesh_->Create(r, &t);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(t.state(), v1::Task::SCHEDULED);
    sched_names.push_back(t.name());
    due[t.name()] = absl::FromUnixMillis(absl::ToUnixMillis(when));
  }
  all = long_names;
  all.insert(all.end(), sched_names.begin(), sched_names.end());
  const auto final_states = mesh_->AwaitTerminal(all, absl::Seconds(LongScale() ? 60 : 30));

  auto by_task = ledger_->ByTask();
  testing::LedgerFigures fig;
  fig.acknowledged = static_cast<int64_t>(all.size());
  for (const auto& [task, runs] : by_task) {
    fig.executions += static_cast<int64_t>(runs.size());
    fig.duplicates += static_cast<int64_t>(runs.size()) - 1;
  }
  std::map<std::string, int> long_by_worker;
  int long_reruns = 0;
  // The worker's clock minus the Redis clock, at the start of an attempt.
  std::map<std::string, absl::Duration> clock_gap;
  for (const std::string& name : long_names) {
    const v1::Task& t = final_states.at(name);
    EXPECT_EQ(t.state(), v1::Task::SUCCEEDED) << name;
    EXPECT_EQ(t.attempt(), 1) << name << " was taken from a live worker";
    EXPECT_EQ(by_task[name].size(), 1u) << name;
    if (by_task[name].size() > 1) ++long_reruns;
    if (!by_task[name].empty()) {
      const testing::Execution& x = by_task[name][0];
      ++long_by_worker[x.consumer];
      clock_gap[x.consumer] =
          absl::FromUnixMillis(x.start_ms) -
          absl::FromUnixMillis(TimeUtil::TimestampToMilliseconds(t.start_time()));
    }
  }
  absl::Duration earliest = absl::InfiniteDuration(), latest = -absl::InfiniteDuration();
  for (const std::string& name : sched_names) {
    const v1::Task& t = final_states.at(name);
    EXPECT_EQ(t.state(), v1::Task::SUCCEEDED) << name;
    EXPECT_EQ(by_task[name].size(), 1u) << name;
    const absl::Time start =
        absl::FromUnixMillis(TimeUtil::TimestampToMilliseconds(t.start_time()));
    const absl::Duration offset = start - due[name];
    earliest = std::min(earliest, offset);
    latest = std::max(latest, offset);
    EXPECT_GE(offset, absl::ZeroDuration()) << name << " ran early";
    EXPECT_LT(offset, absl::Seconds(1)) << name << " ran late";
    if (!by_task[name].empty()) {
      const testing::Execution& x = by_task[name][0];
      clock_gap[x.consumer] = absl::FromUnixMillis(x.start_ms) - start;
    }
  }
  for (testing::Process* p : {plus, minus}) {
    EXPECT_FALSE(absl::StrContains(p->Log(), "reclaimed tasks with expired leases"))
        << NameOf(p) << " reclaimed a live lease\n" << p->Log();
    EXPECT_FALSE(absl::StrContains(p->Log(), "lease lost")) << p->Log();
  }
  for (const std::string& name : all) {
    if (final_states.at(name).state() == v1::Task::SUCCEEDED) ++fig.completed;
  }
  fig.lost = fig.acknowledged - fig.completed;

  auto ms = [](absl::Duration d) {
    return absl::FormatDuration(absl::Trunc(d, absl::Milliseconds(1)));
  };
  std::string gaps;
  for (const auto& [consumer, gap] : clock_gap) {
    absl::StrAppend(&gaps, gaps.empty() ? "" : ", ", consumer, " ", ms(gap));
  }
  Report(fig.Line(
      label, absl::StrCat("worker clocks vs Redis: ", gaps, "; ", 2 * longs,
                         " tasks of 3 leases each (first run by: ",
                         absl::StrJoin(long_by_worker, ", ", absl::PairFormatter("=")),
                         "), taken from a live worker: ", long_reruns, "; ", scheduled,
                         " scheduled tasks started ", ms(earliest), " to ", ms(latest),
                         " after their schedule_time")));
  EXPECT_EQ(fig.lost, 0);
  EXPECT_EQ(fig.duplicates, 0);
  EXPECT_EQ(fig.executions, 2 * longs + scheduled);
  if (HasFailure()) ADD_FAILURE() << WorkerLogs();
}

TEST_F(F7ClockSkewTest, SkewedHostsNeitherStealLeasesNorMissSchedules) {
  Run("F7", /*whole_host=*/true);
}

// libfaketime alone: a timed wait on the wall clock would overrun by 5
// minutes in the +5m worker (as after a backward clock step), which would stop
// renewing its leases; the worker's waits are monotonic (common/stop_signal.h).
TEST_F(F7ClockSkewTest, FaketimeAloneSkewedWorkersNeitherStealLeasesNorMissSchedules) {
  Run("F7 (libfaketime alone)", /*whole_host=*/false);
}

}  // namespace
}  // namespace taskmesh::fault
