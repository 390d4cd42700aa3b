// F9: slots of busy queues move between Redis Cluster masters under load
// (creates, and workers running `record` tasks), two ways each round:
//
// - queue R lives in slot 0, the lowest slot of its master, and
//   `redis-cli --cluster reshard --cluster-slots 1` (which takes a source's
//   slots from its lowest) moves it on to the next master;
// - queue M's slot is moved by hand (RedisCluster::BeginSlotMigration, then
//   at least 300 ms of traffic while clients get ASK and TRYAGAIN, then
//   FinishSlotMigration: MIGRATE of its keys, SETSLOT NODE everywhere).
//
// Queue C, on a master, stays put (a control). Asserted: no acknowledged
// task lost; every task ends SUCCEEDED with the outcome of its last attempt
// (no fenced outcome accepted); a re-run only of an attempt that overlapped
// a move of its queue's slot; creates fail only with UNAVAILABLE or a
// deadline; C's creates never fail.
#include "tests/fault/cluster_fault_test.h"

namespace taskmesh::fault {
namespace {

struct Move {
  std::string queue;
  int from = -1;
  int to = -1;
  absl::Time begin;
  absl::Time end;
};

class F9ClusterReshardTest : public ClusterFaultTest {};

TEST_F(F9ClusterReshardTest, MovedQueuesLoseNothingAndAcceptNoFencedOutcome) {
  const int rounds = Scaled(3, 9);
  StartClusterMesh({});
  ASSERT_NE(mesh_, nullptr);
  testing::RedisCluster& cluster = mesh_->cluster();
  std::string r_queue;
  for (int i = 0; i < 200000 && r_queue.empty(); ++i) {
    if (SlotOf(absl::StrCat("f9r", i)) == 0) r_queue = absl::StrCat("f9r", i);
  }
  ASSERT_FALSE(r_queue.empty());
  // M on the second master, C on the third (R's slot 0 is on the first).
  const std::vector<std::string> mc = PickQueues("f9q", {0, 1, 1});
  ASSERT_EQ(mc.size(), 2u);
  const std::string m_queue = mc[0], c_queue = mc[1];
  const std::vector<std::string> queues = {r_queue, m_queue, c_queue};
  auto masters_or = cluster.Masters();
  ASSERT_TRUE(masters_or.ok());
  std::vector<int> masters = *masters_or;
  std::sort(masters.begin(), masters.end());
  auto next_master = [&](int m) {
    const size_t i = std::find(masters.begin(), masters.end(), m) - masters.begin();
    return masters[(i + 1) % masters.size()];
  };

  const std::string list = absl::StrJoin(queues, ",");
  for (int i = 0; i < 2; ++i) {
    testing::Process* w = StartWorker(absl::StrCat("f9-w", i), list, 4, {"--poison_after=50"});
    ASSERT_NE(w, nullptr);
    ASSERT_TRUE(testing::WaitFor(absl::Seconds(30), [&] { return testing::WorkerServing(*w); }))
        << w->Log();
  }
  Producer producer(mesh_.get(), queues, absl::Milliseconds(20), /*task_ms=*/150);

  std::vector<Move> moves;
  for (int r = 0; r < rounds && !HasFatalFailure(); ++r) {
    const int want = producer.AckedCount() + 30;
    ASSERT_TRUE(testing::WaitFor(absl::Seconds(60), [&] { return producer.AckedCount() >= want; }))
        << "round " << r << ": creates do not succeed\n" << AllLogs();

    // R: redis-cli --cluster reshard of one slot (its source's lowest: 0).
    Move a;
    a.queue = r_queue;
    a.from = *cluster.MasterOfSlot(0);
    a.to = next_master(a.from);
    a.begin = absl::Now();
    const absl::Status resharded = cluster.Reshard(a.from, a.to, 1);
    ASSERT_TRUE(resharded.ok()) << resharded;
    a.end = absl::Now();
    ASSERT_EQ(*cluster.MasterOfSlot(0), a.to) << "redis-cli moved another slot than 0";
    moves.push_back(a);

    // M: by hand, with traffic while the slot is MIGRATING / IMPORTING.
    Move b;
    b.queue = m_queue;
    const int slot = SlotOf(m_queue);
    b.from = *cluster.MasterOfSlot(slot);
    b.to = next_master(b.from);
    b.begin = absl::Now();
    ASSERT_TRUE(cluster.BeginSlotMigration(slot, b.from, b.to).ok());
    const absl::Time migrating = absl::Now();
    // 300 ms of traffic while the slot is half moved (scripts of M answer
    // TRYAGAIN, which the cluster client retries for up to --redis_timeout).
    testing::WaitFor(absl::Seconds(5),
                     [&] { return absl::Now() - migrating >= absl::Milliseconds(300); });
    const absl::Status finished = cluster.FinishSlotMigration(slot, b.from, b.to);
    ASSERT_TRUE(finished.ok()) << finished;
    b.end = absl::Now();
    ASSERT_EQ(*cluster.MasterOfSlot(slot), b.to);
    moves.push_back(b);
  }
  // Creates go on after the last move, on every queue.
  const absl::Time settled = absl::Now();
  ASSERT_TRUE(testing::WaitFor(absl::Seconds(30), [&] {
    int ok = 0;
    for (const Call& c : producer.Calls()) {
      ok += c.code == grpc::StatusCode::OK && c.start >= settled && c.queue == m_queue;
    }
    return ok >= 10;
  })) << "creates on the moved queue did not resume\n" << AllLogs();
  producer.Stop();
  const std::vector<Call> calls = producer.Calls();

  int64_t failed = 0, control_failed = 0, bad_codes = 0;
  std::string bad_detail;
  for (const Call& c : calls) {
    if (c.code == grpc::StatusCode::OK) continue;
    ++failed;
    control_failed += c.queue == c_queue;
    if (c.code != grpc::StatusCode::UNAVAILABLE &&
        c.code != grpc::StatusCode::DEADLINE_EXCEEDED) {
      ++bad_codes;
      absl::StrAppend(&bad_detail, c.queue, ": code ", c.code, " ", c.message, "\n");
    }
  }
  // Creates on a queue whose slot was moving while they ran.
  int64_t during_move = 0, during_move_ok = 0;
  for (const Call& c : calls) {
    for (const Move& m : moves) {
      if (c.queue == m.queue && c.start <= m.end && c.end >= m.begin) {
        ++during_move;
        during_move_ok += c.code == grpc::StatusCode::OK;
        break;
      }
    }
  }
  absl::Duration slowest_cli, slowest_manual;
  for (const Move& m : moves) {
    (m.queue == r_queue ? slowest_cli : slowest_manual) =
        std::max(m.queue == r_queue ? slowest_cli : slowest_manual, m.end - m.begin);
  }

  // A re-run is explained only if the earlier attempt overlapped a move of
  // its own queue's slot (from 1 s before it to 3 s after: 1 s leases).
  auto explained = [&](const testing::Execution& x) {
    const int64_t end = x.end.empty() ? INT64_MAX : x.end_ms;
    for (const Move& m : moves) {
      if (absl::StartsWith(x.task, absl::StrCat("queues/", m.queue, "/")) &&
          x.start_ms <= absl::ToUnixMillis(m.end + absl::Seconds(3)) &&
          end >= absl::ToUnixMillis(m.begin - absl::Seconds(1))) {
        return true;
      }
    }
    return false;
  };
  const ClusterFigures fig =
      Verify(producer.Acked(), absl::Seconds(LongScale() ? 180 : 60), explained);

  Report(fig.ledger.Line(
      "F9", absl::StrCat("slot moves=", moves.size(), " (redis-cli reshard ", moves.size() / 2,
                         ", each <= ", Ms(slowest_cli), "; by hand with ASK traffic ",
                         moves.size() - moves.size() / 2, ", each <= ", Ms(slowest_manual),
                         "); creates while their slot moved ", during_move, " (OK ", during_move_ok,
                         "); failed creates ", failed, " (", ErrorCodes(calls), "; control queue ",
                         control_failed, "), written anyway and run: ", fig.unacked_executed,
                         "; ", fig.explained, " re-runs of attempts that overlapped a move, ",
                         fig.unexplained, " unexplained; wrong outcomes ", fig.wrong_outcome)));
  EXPECT_EQ(static_cast<int>(moves.size()), 2 * rounds);
  EXPECT_EQ(fig.ledger.lost, 0) << fig.detail;
  EXPECT_EQ(fig.unexplained, 0) << fig.detail;
  EXPECT_EQ(fig.wrong_outcome, 0) << fig.detail;
  EXPECT_EQ(bad_codes, 0) << bad_detail;
  EXPECT_EQ(control_failed, 0);
  EXPECT_GE(during_move, rounds) << "no create ran while a slot moved";
  if (HasFailure()) ADD_FAILURE() << AllLogs();
}

}  // namespace
}  // namespace taskmesh::fault
