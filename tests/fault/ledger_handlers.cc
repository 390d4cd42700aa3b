#include "tests/fault/ledger_handlers.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "tests/support/ledger.h"
#include "workers/builtin_handlers.h"

// Defined by workers/main.cc, which this library is linked with.
ABSL_DECLARE_FLAG(std::string, consumer);

namespace taskmesh::workers {
namespace {

std::string Consumer() {
  std::string c = absl::GetFlag(FLAGS_consumer);
  return c.empty() ? absl::StrCat("pid-", getpid()) : c;
}

absl::Status Write(const TaskContext& ctx, const char* event) {
  const char* path = std::getenv("FAULT_LEDGER");
  if (path == nullptr || *path == '\0') {
    return SkipRetry(absl::FailedPreconditionError("FAULT_LEDGER is not set"));
  }
  return testing::AppendLedger(
      path, {event, ctx.task_name, ctx.attempt, Consumer(), getpid(), absl::ToUnixMillis(absl::Now())});
}

absl::StatusOr<Result> Record(const TaskContext& ctx) {
  google::protobuf::Struct payload;
  if (!ctx.payload.data.empty() &&
      !google::protobuf::util::JsonStringToMessage(ctx.payload.data, &payload).ok()) {
    return SkipRetry(absl::InvalidArgumentError("record: payload must be a JSON object"));
  }
  const auto& f = payload.fields();
  const double ms = f.count("ms") ? f.at("ms").number_value() : 0;
  const bool ignore_cancel = f.count("ignore_cancel") && f.at("ignore_cancel").bool_value();

  if (absl::Status s = Write(ctx, "start"); !s.ok()) return s;
  // Wall time: a SIGSTOPped worker finds its sleep over when it resumes.
  const absl::Time until = absl::Now() + absl::Milliseconds(ms);
  while (absl::Now() < until) {
    if (ctx.cancelled() && !ignore_cancel) {
      (void)Write(ctx, "cancelled");
      return absl::CancelledError("record: cancelled");
    }
    absl::SleepFor(std::min(absl::Milliseconds(5), until - absl::Now()));
  }
  if (absl::Status s = Write(ctx, "done"); !s.ok()) return s;
  return Result::Json(absl::StrCat(R"({"task":")", ctx.task_name, R"(","attempt":)", ctx.attempt,
                                   R"(,"consumer":")", Consumer(), R"("})"));
}

absl::StatusOr<Result> Crash(const TaskContext& ctx) {
  if (absl::Status s = Write(ctx, "start"); !s.ok()) return s;
  // No core file: the crash is the point, not its dump.
  rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none);
  std::abort();
}

}  // namespace

void RegisterLedgerWorkerHandlers(HandlerRegistry& registry) {
  RegisterBuiltinHandlers(registry);
  registry.Register("record", Record);
  registry.Register("crash", Crash);
}

}  // namespace taskmesh::workers
