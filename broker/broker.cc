#include "broker/broker.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "broker/keys.h"
#include "broker/scripts.h"
#include "common/status_macros.h"
#include "google/protobuf/util/time_util.h"

namespace taskmesh::broker {
namespace {

using ::google::protobuf::util::TimeUtil;
using ::taskmesh::redis::Reply;
using ::taskmesh::v1::Task;

int64_t ToInt(const Record& record, absl::string_view field) {
  int64_t v = 0;
  auto it = record.find(field);
  if (it != record.end()) (void)absl::SimpleAtoi(it->second, &v);
  return v;
}

absl::StatusOr<Lease> LeaseFromRecord(const Delivery& delivery, const Record& record) {
  Lease lease;
  lease.delivery = delivery;
  auto type = record.find("type");
  if (type == record.end()) {
    return absl::DataLossError(absl::StrCat("task ", delivery.task_id, " has no type"));
  }
  lease.type = type->second;
  auto payload = record.find("payload");
  if (payload != record.end()) lease.payload.data = payload->second;
  auto pk = record.find("pk");
  lease.payload.is_json = pk == record.end() || pk->second == "j";
  lease.attempt = static_cast<int>(ToInt(record, "attempt"));
  lease.max_attempts = static_cast<int>(ToInt(record, "max_att"));
  lease.timeout = absl::Milliseconds(ToInt(record, "tmo_ms"));
  return lease;
}

}  // namespace

Broker::Broker(redis::Client* client, BrokerOptions options)
    : client_(client), options_(std::move(options)) {}

void Broker::Create(const std::string& queue, const std::string& id, const Task& task,
                    absl::AnyInvocable<void(absl::StatusOr<Created>)> done) {
  absl::StatusOr<std::vector<std::string>> fields =
      NewTaskFields(task, options_.default_max_attempts);
  if (!fields.ok()) {
    done(fields.status());
    return;
  }
  std::vector<std::string> keys = {TaskKey(queue, id), StreamKey(queue)};
  if (!task.request_id().empty()) keys.push_back(IdempotencyKey(queue, task.request_id()));
  std::vector<std::string> args = {id, absl::StrCat(absl::ToInt64Seconds(options_.retention))};
  args.insert(args.end(), std::make_move_iterator(fields->begin()),
              std::make_move_iterator(fields->end()));

  // The registry of queue names lives outside the queue's slot, so it cannot
  // join the script; it is idempotent and written first.
  client_->Send({"SADD", std::string(kQueuesKey), queue}, [](absl::StatusOr<Reply>) {});

  // The reply is built from the request, so the task is copied for the callback.
  client_->Eval(
      scripts::Enqueue(), keys, args,
      [this, queue, id, task, done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
        if (!reply.ok()) {
          done(reply.status());
          return;
        }
        if (reply->is_error()) {
          done(reply->ToStatus());
          return;
        }
        const auto& e = reply->elements();
        if (reply->type() != Reply::Type::kArray || e.empty()) {
          done(absl::InternalError(absl::StrCat("enqueue: bad reply ", reply->DebugString())));
          return;
        }
        const int64_t code = e[0].integer();
        if (code == -1) {
          done(absl::AlreadyExistsError(
              absl::StrCat("task ", TaskName(queue, id), " already exists")));
          return;
        }
        if (code == 0 && e.size() == 2) {
          const std::string existing = e[1].str();
          Get(queue, existing, [done = std::move(done)](absl::StatusOr<Task> found) mutable {
            if (!found.ok()) {
              done(found.status());
              return;
            }
            done(Created{*std::move(found), /*existing=*/true});
          });
          return;
        }
        if (code != 1 || e.size() != 3) {
          done(absl::InternalError(absl::StrCat("enqueue: bad reply ", reply->DebugString())));
          return;
        }
        Created created;
        created.task = std::move(task);
        Task& t = created.task;
        t.set_name(TaskName(queue, id));
        if (t.max_attempts() <= 0) t.set_max_attempts(options_.default_max_attempts);
        t.set_state(Task::PENDING);
        t.set_attempt(0);
        *t.mutable_create_time() = TimeUtil::MillisecondsToTimestamp(e[1].integer());
        *t.mutable_update_time() = t.create_time();
        t.clear_start_time();
        t.clear_end_time();
        t.clear_result_kind();
        t.clear_last_error();
        t.clear_progress();
        done(std::move(created));
      });
}

void Broker::Get(const std::string& queue, const std::string& id,
                 absl::AnyInvocable<void(absl::StatusOr<Task>)> done) {
  client_->Send({"HGETALL", TaskKey(queue, id)},
                [queue, id, done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
                  if (!reply.ok()) {
                    done(reply.status());
                    return;
                  }
                  absl::StatusOr<Record> record = reply->AsMap();
                  if (!record.ok()) {
                    done(record.status());
                    return;
                  }
                  done(TaskFromRecord(queue, id, *record));
                });
}

absl::Status Broker::EnsureGroups(redis::Connection& conn,
                                  const std::vector<std::string>& queues) {
  std::vector<redis::Args> commands;
  for (const std::string& q : queues) {
    commands.push_back({"XGROUP", "CREATE", StreamKey(q), std::string(kConsumerGroup), "0",
                        "MKSTREAM"});
  }
  ASSIGN_OR_RETURN(std::vector<Reply> replies, conn.Pipeline(commands));
  for (const Reply& reply : replies) {
    if (reply.is_error() && !absl::StartsWith(reply.str(), "BUSYGROUP")) {
      return reply.ToStatus();
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Delivery>> Broker::Fetch(redis::Connection& conn,
                                                    const std::string& consumer,
                                                    const std::vector<std::string>& queues,
                                                    int count, absl::Duration block) {
  redis::Args args = {"XREADGROUP", "GROUP",  std::string(kConsumerGroup), consumer,
                      "COUNT",      absl::StrCat(count), "BLOCK",
                      absl::StrCat(absl::ToInt64Milliseconds(block)), "STREAMS"};
  absl::flat_hash_map<std::string, std::string> queue_of_stream;
  for (const std::string& q : queues) {
    args.push_back(StreamKey(q));
    queue_of_stream[args.back()] = q;
  }
  for (size_t i = 0; i < queues.size(); ++i) args.push_back(">");

  ASSIGN_OR_RETURN(Reply reply, conn.BlockingCommand(args, block));
  if (reply.is_error() && absl::StartsWith(reply.str(), "NOGROUP")) {
    // A stream (and so its group) was deleted, e.g. by a purge: recreate.
    RETURN_IF_ERROR(EnsureGroups(conn, queues));
    return std::vector<Delivery>();
  }
  RETURN_IF_ERROR(reply.ToStatus());
  std::vector<Delivery> deliveries;
  if (reply.is_nil()) return deliveries;  // Nothing arrived within `block`.
  for (const Reply& stream : reply.elements()) {
    ASSIGN_OR_RETURN(const std::vector<Reply>* pair, stream.AsArray(2));
    auto q = queue_of_stream.find((*pair)[0].str());
    if (q == queue_of_stream.end()) {
      return absl::InternalError(absl::StrCat("XREADGROUP: unknown stream ", (*pair)[0].str()));
    }
    for (const Reply& entry : (*pair)[1].elements()) {
      ASSIGN_OR_RETURN(const std::vector<Reply>* id_fields, entry.AsArray(2));
      Delivery d;
      d.queue = q->second;
      d.stream_id = (*id_fields)[0].str();
      const auto& fields = (*id_fields)[1].elements();
      for (size_t i = 0; i + 1 < fields.size(); i += 2) {
        if (fields[i].str() == "id") d.task_id = fields[i + 1].str();
      }
      deliveries.push_back(std::move(d));
    }
  }
  return deliveries;
}

void Broker::Start(const Delivery& delivery,
                   absl::AnyInvocable<void(absl::StatusOr<absl::optional<Lease>>)> done) {
  client_->Eval(
      scripts::Start(), {TaskKey(delivery.queue, delivery.task_id), StreamKey(delivery.queue)},
      {std::string(kConsumerGroup), delivery.stream_id},
      [delivery, done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
        if (!reply.ok()) {
          done(reply.status());
          return;
        }
        if (reply->is_nil()) {
          done(absl::optional<Lease>());
          return;
        }
        absl::StatusOr<Record> record = reply->AsMap();
        if (!record.ok()) {
          done(record.status());
          return;
        }
        absl::StatusOr<Lease> lease = LeaseFromRecord(delivery, *record);
        if (!lease.ok()) {
          done(lease.status());
          return;
        }
        done(absl::optional<Lease>(*std::move(lease)));
      });
}

void Broker::Complete(const Lease& lease, const Outcome& outcome,
                      absl::AnyInvocable<void(absl::StatusOr<Completion>)> done) {
  const Delivery& d = lease.delivery;
  const bool ok = outcome.status.ok();
  client_->Eval(
      scripts::Complete(), {TaskKey(d.queue, d.task_id), StreamKey(d.queue)},
      {std::string(kConsumerGroup), d.stream_id, absl::StrCat(lease.attempt), ok ? "S" : "F",
       outcome.result.is_json ? "j" : "b", ok ? outcome.result.data : "",
       absl::StrCat(ok ? 0 : static_cast<int>(outcome.status.code())),
       ok ? "" : std::string(outcome.status.message()),
       absl::StrCat(absl::ToInt64Milliseconds(options_.retention)),
       outcome.retryable ? "1" : "0", d.task_id},
      [done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
        if (!reply.ok()) {
          done(reply.status());
          return;
        }
        absl::StatusOr<std::string> word = reply->AsString();
        if (!word.ok()) {
          done(word.status());
          return;
        }
        if (*word == "succeeded") {
          done(Completion::kSucceeded);
        } else if (*word == "retrying") {
          done(Completion::kRetrying);
        } else if (*word == "failed") {
          done(Completion::kFailed);
        } else if (*word == "fenced") {
          done(Completion::kFenced);
        } else {
          done(absl::InternalError(absl::StrCat("complete: bad reply ", *word)));
        }
      });
}

}  // namespace taskmesh::broker
