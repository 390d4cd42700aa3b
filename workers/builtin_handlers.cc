#include "workers/builtin_handlers.h"

#include <openssl/sha.h>

#include <cmath>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace taskmesh::workers {
namespace {

constexpr int64_t kMaxSleepMs = 3600 * 1000;
constexpr int64_t kMaxRounds = 10 * 1000 * 1000;

// The payload as a JSON object; null or empty becomes an empty object.
absl::StatusOr<google::protobuf::Struct> ObjectPayload(const TaskContext& ctx) {
  google::protobuf::Struct object;
  if (!ctx.payload.is_json) {
    return SkipRetry(absl::InvalidArgumentError(
        absl::StrCat(ctx.type, ": payload must be a JSON object, not bytes")));
  }
  if (ctx.payload.data.empty() || ctx.payload.data == "null") return object;
  auto status = google::protobuf::util::JsonStringToMessage(ctx.payload.data, &object);
  if (!status.ok()) {
    return SkipRetry(absl::InvalidArgumentError(
        absl::StrCat(ctx.type, ": payload must be a JSON object: ", status.ToString())));
  }
  return object;
}

// A non-negative integer field, or `fallback` when absent.
absl::StatusOr<int64_t> IntField(const TaskContext& ctx, const google::protobuf::Struct& object,
                                 const std::string& name, int64_t fallback, int64_t max) {
  auto it = object.fields().find(name);
  if (it == object.fields().end()) return fallback;
  const double v = it->second.number_value();
  if (it->second.kind_case() != google::protobuf::Value::kNumberValue || v < 0 || v > max ||
      std::floor(v) != v) {
    return SkipRetry(absl::InvalidArgumentError(absl::StrCat(
        ctx.type, ": payload.", name, " must be an integer from 0 to ", max)));
  }
  return static_cast<int64_t>(v);
}

absl::StatusOr<Result> Echo(const TaskContext& ctx) {
  return Result{ctx.payload.is_json, ctx.payload.data};
}

absl::StatusOr<Result> Sleep(const TaskContext& ctx) {
  auto object = ObjectPayload(ctx);
  if (!object.ok()) return object.status();
  auto ms = IntField(ctx, *object, "ms", 0, kMaxSleepMs);
  if (!ms.ok()) return ms.status();
  const absl::Time until = absl::Now() + absl::Milliseconds(*ms);
  while (absl::Now() < until) {
    if (ctx.cancelled()) return absl::CancelledError("sleep: cancelled");
    if (absl::Now() >= ctx.deadline) return absl::DeadlineExceededError("sleep: past deadline");
    absl::SleepFor(std::min(absl::Milliseconds(10), until - absl::Now()));
  }
  return Result::Json(absl::StrCat(R"({"slept_ms":)", *ms, "}"));
}

absl::StatusOr<Result> Sha256(const TaskContext& ctx) {
  auto object = ObjectPayload(ctx);
  if (!object.ok()) return object.status();
  auto rounds = IntField(ctx, *object, "rounds", 1, kMaxRounds);
  if (!rounds.ok()) return rounds.status();
  std::string data;
  if (auto it = object->fields().find("data"); it != object->fields().end()) {
    data = it->second.string_value();
  }
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  for (int64_t i = 1; i < *rounds; ++i) {
    if (i % 4096 == 0 && ctx.should_stop()) {
      return absl::DeadlineExceededError("sha256: stopped (cancelled or past deadline)");
    }
    SHA256(digest, sizeof(digest), digest);
  }
  const std::string hex =
      absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(digest), sizeof(digest)));
  return Result::Json(absl::StrCat(R"({"sha256":")", hex, R"(","rounds":)", *rounds, "}"));
}

absl::StatusOr<Result> Fail(const TaskContext& ctx) {
  std::string message = "failed on purpose (the fail handler always fails)";
  if (ctx.payload.is_json) {
    google::protobuf::Struct object;
    if (google::protobuf::util::JsonStringToMessage(ctx.payload.data, &object).ok()) {
      if (auto it = object.fields().find("message"); it != object.fields().end()) {
        message = it->second.string_value();
      }
    }
  }
  return absl::InternalError(message);
}

}  // namespace

void RegisterBuiltinHandlers(HandlerRegistry& registry) {
  registry.Register("echo", Echo);
  registry.Register("sleep", Sleep);
  registry.Register("sha256", Sha256);
  registry.Register("fail", Fail);
}

}  // namespace taskmesh::workers
