#include "workers/periodic.h"

#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "google/protobuf/util/json_util.h"
#include "task_service/validation.h"

namespace taskmesh::workers {
namespace {

// Parses one cron field into `bits` (values lo..hi).
template <size_t N>
absl::Status ParseField(absl::string_view field, int lo, int hi, absl::string_view what,
                        std::bitset<N>* bits, bool* any) {
  *any = field == "*";
  for (absl::string_view part : absl::StrSplit(field, ',')) {
    int step = 1;
    absl::string_view range = part;
    if (size_t slash = part.find('/'); slash != absl::string_view::npos) {
      range = part.substr(0, slash);
      if (!absl::SimpleAtoi(part.substr(slash + 1), &step) || step < 1) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": bad step in '", part, "'"));
      }
    }
    int from = lo, to = hi;
    if (range != "*") {
      std::vector<absl::string_view> ends = absl::StrSplit(range, '-');
      if (ends.size() > 2 || !absl::SimpleAtoi(ends[0], &from) ||
          (ends.size() == 2 && !absl::SimpleAtoi(ends[1], &to))) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": bad value '", part, "'"));
      }
      if (ends.size() == 1) to = part.find('/') != absl::string_view::npos ? hi : from;
    }
    if (from < lo || to > hi || from > to) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": '", part, "' is outside ", lo, "-", hi));
    }
    for (int v = from; v <= to; v += step) bits->set(v);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Schedule> Schedule::Parse(absl::string_view spec) {
  Schedule s;
  absl::string_view rest = absl::StripAsciiWhitespace(spec);
  if (absl::ConsumePrefix(&rest, "@every")) {
    absl::Duration d;
    if (!absl::ParseDuration(absl::StripAsciiWhitespace(rest), &d) || d < absl::Seconds(1) ||
        d % absl::Seconds(1) != absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat("schedule '", spec, "': @every needs whole seconds, at least 1s"));
    }
    s.every_s_ = absl::ToInt64Seconds(d);
    return s;
  }
  std::vector<absl::string_view> f = absl::StrSplit(rest, ' ', absl::SkipEmpty());
  if (f.size() != 5) {
    return absl::InvalidArgumentError(absl::StrCat(
        "schedule '", spec, "': want 5 cron fields (minute hour day month weekday) or @every"));
  }
  bool unused;
  absl::Status st = ParseField(f[0], 0, 59, "minute", &s.minutes_, &unused);
  if (st.ok()) st = ParseField(f[1], 0, 23, "hour", &s.hours_, &unused);
  if (st.ok()) st = ParseField(f[2], 1, 31, "day of month", &s.days_, &s.any_day_);
  if (st.ok()) st = ParseField(f[3], 1, 12, "month", &s.months_, &unused);
  std::bitset<8> weekdays;
  if (st.ok()) st = ParseField(f[4], 0, 7, "day of week", &weekdays, &s.any_weekday_);
  if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat("schedule '", spec, "': ", st.message()));
  for (int d = 0; d < 7; ++d) s.weekdays_[d] = weekdays[d] || (d == 0 && weekdays[7]);
  return s;
}

absl::optional<int64_t> Schedule::CurrentTick(int64_t now_s) const {
  if (every_s_ > 0) return now_s - now_s % every_s_;
  const int64_t minute = now_s - now_s % 60;
  const time_t t = static_cast<time_t>(minute);
  struct tm tm;
  gmtime_r(&t, &tm);
  if (!minutes_[tm.tm_min] || !hours_[tm.tm_hour] || !months_[tm.tm_mon + 1]) {
    return absl::nullopt;
  }
  const bool day = days_[tm.tm_mday], weekday = weekdays_[tm.tm_wday];
  // Cron's rule: with both day fields restricted, either may match.
  const bool match = any_day_ ? (any_weekday_ || weekday)
                              : (any_weekday_ ? day : (day || weekday));
  if (!match) return absl::nullopt;
  return minute;
}

absl::StatusOr<std::vector<PeriodicEntry>> ParsePeriodicConfig(absl::string_view json) {
  taskmesh::v1::PeriodicConfig config;
  auto parsed = google::protobuf::util::JsonStringToMessage(std::string(json), &config);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("periodic config: ", parsed.ToString()));
  }
  std::vector<PeriodicEntry> entries;
  absl::flat_hash_map<std::string, bool> seen;
  for (int i = 0; i < config.periodic_tasks_size(); ++i) {
    const auto& p = config.periodic_tasks(i);
    const std::string where = absl::StrCat("periodic_tasks[", i, "]");
    // A name is a task id prefix: the same characters, shorter.
    if (p.name().empty() || p.name().size() > 64 ||
        !task_service::ParseTaskName(absl::StrCat("queues/q/tasks/", p.name()), "name").ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".name: must be 1-64 characters of [A-Za-z0-9_-]"));
    }
    if (!seen.emplace(absl::StrCat(p.queue(), "/", p.name()), true).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".name: '", p.name(), "' appears twice for queue ", p.queue()));
    }
    taskmesh::v1::CreateTaskRequest request;
    request.set_parent(absl::StrCat("queues/", p.queue()));
    *request.mutable_task() = p.task();
    absl::StatusOr<std::string> queue =
        task_service::ValidateCreate(request, absl::StrCat(where, "."), absl::Now());
    if (!queue.ok()) return queue.status();
    absl::StatusOr<Schedule> schedule = Schedule::Parse(p.schedule());
    if (!schedule.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".", schedule.status().message()));
    }
    entries.push_back(PeriodicEntry{p, *schedule});
  }
  return entries;
}

PeriodicScheduler::PeriodicScheduler(std::vector<PeriodicEntry> entries, broker::Broker* broker,
                                     redis::Commands* client)
    : entries_(std::move(entries)), broker_(broker), client_(client) {}

absl::StatusOr<int> PeriodicScheduler::RunOnce() {
  // The Redis server's clock, like every other time in the protocol.
  absl::StatusOr<redis::Reply> time = client_->Call({"TIME"});
  if (!time.ok()) return time.status();
  if (time->elements().size() != 2) return absl::InternalError("TIME: bad reply");
  int64_t now_s;
  if (!absl::SimpleAtoi(time->elements()[0].str(), &now_s)) {
    return absl::InternalError("TIME: bad reply");
  }
  int created = 0;
  for (const PeriodicEntry& e : entries_) {
    absl::optional<int64_t> tick = e.schedule.CurrentTick(now_s);
    const std::string key = absl::StrCat(e.spec.queue(), "/", e.spec.name());
    if (!tick.has_value() || asked_[key] >= *tick) continue;
    absl::Notification done;
    absl::Status status;
    broker_->CreateForTick(e.spec.queue(), e.spec.name(), *tick, e.spec.task(),
                           [&](absl::StatusOr<broker::Broker::Created> c) {
                             status = c.status();
                             done.Notify();
                           });
    done.WaitForNotification();
    if (status.ok()) {
      ++created;
      log::Info("periodic task created", {{"name", e.spec.name()},
                                          {"queue", e.spec.queue()},
                                          {"tick", absl::StrCat(*tick)}});
    } else if (!absl::IsAlreadyExists(status)) {
      return status;  // Asked again next pass.
    }
    asked_[key] = *tick;
  }
  return created;
}

}  // namespace taskmesh::workers
