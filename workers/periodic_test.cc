#include "workers/periodic.h"

#include <memory>
#include <string>

#include "redis/client.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/redis_server.h"

namespace taskmesh::workers {
namespace {

using ::testing::HasSubstr;

// 2026-11-25 03:00:00 UTC, a Wednesday.
constexpr int64_t kWed0300 = 1795575600;

int64_t Tick(const std::string& spec, int64_t now) {
  auto s = Schedule::Parse(spec);
  EXPECT_TRUE(s.ok()) << spec << ": " << s.status();
  auto t = s->CurrentTick(now);
  return t.has_value() ? *t : -1;
}

TEST(ScheduleTest, CronMatchesTheCurrentMinute) {
  EXPECT_EQ(Tick("0 3 * * *", kWed0300 + 42), kWed0300);
  EXPECT_EQ(Tick("0 3 * * *", kWed0300 + 60), -1);
  EXPECT_EQ(Tick("* * * * *", kWed0300 + 61), kWed0300 + 60);
  EXPECT_EQ(Tick("*/15 * * * *", kWed0300 + 15 * 60), kWed0300 + 15 * 60);
  EXPECT_EQ(Tick("*/15 * * * *", kWed0300 + 14 * 60), -1);
  EXPECT_EQ(Tick("0 1-4 * * 3", kWed0300), kWed0300);       // Wednesday.
  EXPECT_EQ(Tick("0 3 * * 0,7", kWed0300), -1);             // Sunday only.
  EXPECT_EQ(Tick("0 3 25 11 *", kWed0300), kWed0300);       // 25 November.
  EXPECT_EQ(Tick("0 3 1 * 3", kWed0300), kWed0300);         // Day 1 OR Wednesday.
  EXPECT_EQ(Tick("0 3 1 * 1", kWed0300), -1);
}

TEST(ScheduleTest, EveryTicksOnMultiplesOfItsPeriod) {
  EXPECT_EQ(Tick("@every 30s", 1000), 990);
  EXPECT_EQ(Tick("@every 1m", 1000), 960);
  EXPECT_EQ(Tick("@every 1s", 1000), 1000);
}

TEST(ScheduleTest, RejectsBadSpecsWithAReason) {
  for (const char* bad : {"", "* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *",
                          "* * * * 8", "*/0 * * * *", "5-1 * * * *", "@every 500ms",
                          "@every soon", "@every 1.5s"}) {
    auto s = Schedule::Parse(bad);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_THAT(std::string(Schedule::Parse("61 * * * *").status().message()),
              HasSubstr("minute"));
}

TEST(PeriodicConfigTest, ParsesAndChecksEveryEntry) {
  auto ok = ParsePeriodicConfig(R"({"periodicTasks":[
      {"name":"nightly","queue":"reports","schedule":"0 3 * * *",
       "task":{"type":"echo","payload":{"a":1}}}]})");
  ASSERT_TRUE(ok.ok()) << ok.status();
  ASSERT_EQ(ok->size(), 1u);
  EXPECT_EQ((*ok)[0].spec.task().type(), "echo");

  auto bad_schedule = ParsePeriodicConfig(
      R"({"periodicTasks":[{"name":"n","queue":"q","schedule":"nope","task":{"type":"echo"}}]})");
  EXPECT_THAT(std::string(bad_schedule.status().message()), HasSubstr("periodic_tasks[0]"));
  auto bad_type = ParsePeriodicConfig(
      R"({"periodicTasks":[{"name":"n","queue":"q","schedule":"@every 1s","task":{}}]})");
  EXPECT_THAT(std::string(bad_type.status().message()), HasSubstr("periodic_tasks[0].task.type"));
  auto bad_name = ParsePeriodicConfig(
      R"({"periodicTasks":[{"name":"a/b","queue":"q","schedule":"@every 1s","task":{"type":"e"}}]})");
  EXPECT_THAT(std::string(bad_name.status().message()), HasSubstr("name"));
  auto twice = ParsePeriodicConfig(R"({"periodicTasks":[
      {"name":"n","queue":"q","schedule":"@every 1s","task":{"type":"e"}},
      {"name":"n","queue":"q","schedule":"@every 2s","task":{"type":"e"}}]})");
  EXPECT_THAT(std::string(twice.status().message()), HasSubstr("appears twice"));
  EXPECT_FALSE(ParsePeriodicConfig("{not json").ok());
}

TEST(PeriodicSchedulerTest, ManySchedulersCreateEachTickOnce) {
  auto redis = testing::RedisServer::Start();
  ASSERT_TRUE(redis.ok()) << redis.status();
  redis::ClientOptions options;
  options.connection = (*redis)->options();
  redis::Client client(options);
  broker::Broker broker(&client, broker::BrokerOptions{});
  auto entries = ParsePeriodicConfig(
      R"({"periodicTasks":[{"name":"beat","queue":"q","schedule":"@every 1s",
                            "task":{"type":"echo"}}]})");
  ASSERT_TRUE(entries.ok());
  // Three workers' schedulers, each passing often.
  std::vector<std::unique_ptr<PeriodicScheduler>> schedulers;
  for (int i = 0; i < 3; ++i) {
    schedulers.push_back(std::make_unique<PeriodicScheduler>(*entries, &broker, &client));
  }
  auto redis_second = [&] {
    auto t = client.Call({"TIME"});
    int64_t s = 0;
    EXPECT_TRUE(t.ok() && absl::SimpleAtoi(t->elements()[0].str(), &s));
    return s;
  };
  int created = 0;
  const int64_t first_second = redis_second();
  const absl::Time end = absl::Now() + absl::Milliseconds(2500);
  while (absl::Now() < end) {
    for (auto& s : schedulers) {
      auto n = s->RunOnce();
      ASSERT_TRUE(n.ok()) << n.status();
      created += *n;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  // Every second from the first to now was current during some pass, with
  // one last pass to cover the current second.
  const int64_t last_second = redis_second();
  for (auto& s : schedulers) created += *s->RunOnce();
  const int64_t final_second = redis_second();
  // One task per second, never more: duplicates would exceed the bound.
  EXPECT_GE(created, last_second - first_second + 1);
  EXPECT_LE(created, final_second - first_second + 1);
  auto len = client.Call({"XLEN", "taskmesh:{q}:stream"});
  EXPECT_EQ(len->integer(), created);
}

}  // namespace
}  // namespace taskmesh::workers
