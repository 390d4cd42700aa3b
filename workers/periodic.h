// Periodic tasks: schedules (cron or @every) and the scheduler that creates
// one task per tick.
//
// Every worker may run the scheduler: Broker::CreateForTick makes each tick
// exactly once across all of them. Ticks are computed on the Redis server's
// clock (TIME), so a worker with a skewed clock neither runs them early nor
// late. A tick is created while it is current (its minute, for cron; its
// period, for @every): a tick missed entirely while no worker ran is skipped,
// not replayed.
//
// Example config (worker --periodic_config=FILE, JSON of
// taskmesh.v1.PeriodicConfig):
//   {"periodicTasks": [
//     {"name": "nightly-report", "queue": "reports", "schedule": "0 3 * * *",
//      "task": {"type": "echo", "payload": {"report": "daily"}}},
//     {"name": "heartbeat", "queue": "default", "schedule": "@every 30s",
//      "task": {"type": "echo"}}]}
#ifndef TASKMESH_WORKERS_PERIODIC_H_
#define TASKMESH_WORKERS_PERIODIC_H_

#include <bitset>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"
#include "broker/broker.h"
#include "redis/commands.h"
#include "taskmesh/v1/periodic.pb.h"

namespace taskmesh::workers {

// When a periodic task ticks, in UTC. Immutable; thread-safe.
class Schedule {
 public:
  // Five cron fields (minute hour day-of-month month day-of-week, with `*`,
  // `a-b`, `*/n`, `a-b/n` and comma lists; day-of-week 0-7, both 0 and 7
  // Sunday; when both day fields are restricted, either may match), or
  // `@every DURATION` (at least 1s, whole seconds, e.g. `@every 90s`).
  static absl::StatusOr<Schedule> Parse(absl::string_view spec);

  // The current tick at Unix time `now_s`: for cron, the start of this
  // minute if it matches; for @every N, the last multiple of N. nullopt
  // when this minute is not a tick.
  absl::optional<int64_t> CurrentTick(int64_t now_s) const;

 private:
  int64_t every_s_ = 0;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;
  std::bitset<13> months_;
  std::bitset<7> weekdays_;
  bool any_day_ = true;
  bool any_weekday_ = true;
};

struct PeriodicEntry {
  taskmesh::v1::PeriodicTask spec;
  Schedule schedule;
};

// Parses and checks a config (JSON of taskmesh.v1.PeriodicConfig): names,
// queues, schedules and tasks, each error naming the entry and field.
absl::StatusOr<std::vector<PeriodicEntry>> ParsePeriodicConfig(absl::string_view json);

// Creates the current tick of each entry. Not thread-safe: one thread calls
// RunOnce() periodically (well under a minute apart).
class PeriodicScheduler {
 public:
  // `broker` and `client` must outlive the scheduler.
  PeriodicScheduler(std::vector<PeriodicEntry> entries, broker::Broker* broker,
                    redis::Commands* client);

  // One pass; returns how many tasks this pass created.
  absl::StatusOr<int> RunOnce();

 private:
  std::vector<PeriodicEntry> entries_;
  broker::Broker* const broker_;
  redis::Commands* const client_;
  // The last tick this process asked for, per entry name: one request each.
  absl::flat_hash_map<std::string, int64_t> asked_;
};

}  // namespace taskmesh::workers

#endif  // TASKMESH_WORKERS_PERIODIC_H_
