#include "broker/broker.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "broker/ids.h"
#include "broker/keys.h"
#include "broker/script_call.h"
#include "broker/scripts.h"
#include "broker/task_codec.h"
#include "google/protobuf/util/time_util.h"

namespace taskmesh::broker {
namespace {

using ::google::protobuf::util::TimeUtil;
using ::taskmesh::redis::Reply;
using ::taskmesh::v1::Task;

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 1000;
constexpr int kPurgeBatch = 500;
constexpr const char* kAllStates = "PENDING,SCHEDULED,RUNNING,SUCCEEDED,FAILED,CANCELLED";

std::string EncodeToken(absl::string_view raw) { return absl::WebSafeBase64Escape(raw); }

// Page tokens are opaque to clients: base64 of "a:b" numbers.
absl::Status DecodeToken(const std::string& token, int64_t* a, int64_t* b) {
  std::string raw;
  std::vector<std::string> parts;
  if (absl::WebSafeBase64Unescape(token, &raw)) parts = absl::StrSplit(raw, ':');
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], a) || !absl::SimpleAtoi(parts[1], b) ||
      *a < 0 || *b < 0) {
    return absl::InvalidArgumentError("page_token: not a token this server issued");
  }
  return absl::OkStatus();
}

int ClampPageSize(int page_size) {
  if (page_size <= 0) return kDefaultPageSize;
  return std::min(page_size, kMaxPageSize);
}

absl::StatusOr<Record> RecordOf(const Reply& reply) { return reply.AsMap(); }

// Decodes a task record reply (HGETALL) into `done`'s Versioned task.
redis::Commands::Callback VersionedReader(const std::string& queue, const std::string& id,
                                        Callback<Broker::Versioned> done) {
  return [queue, id, done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
    if (!reply.ok()) {
      done(reply.status());
      return;
    }
    if (reply->is_error()) {
      done(reply->ToStatus());
      return;
    }
    absl::StatusOr<Record> record = RecordOf(*reply);
    if (!record.ok()) {
      done(record.status());
      return;
    }
    absl::StatusOr<Task> task = TaskFromRecord(queue, id, *record);
    if (!task.ok()) {
      done(task.status());
      return;
    }
    done(Broker::Versioned{*std::move(task), RecordVersion(*record)});
  };
}


}  // namespace

Broker::Broker(redis::Commands* client, BrokerOptions options)
    : client_(client),
      options_(std::move(options)),
      enqueue_(client, scripts::Enqueue(), options_,
               ScriptBatcher::Limits{.max_items = kMaxBatchItems}) {}

void Broker::Create(const std::string& queue, const std::string& id, const Task& task,
                    Callback<Created> done) {
  std::vector<NewTask> one;
  one.push_back(NewTask{id, task, std::move(done)});
  CreateMany(queue, std::move(one));
}

void Broker::CreateMany(const std::string& queue, std::vector<NewTask> tasks) {
  std::vector<ScriptBatcher::Item> items;
  items.reserve(tasks.size());
  for (NewTask& t : tasks) {
    absl::StatusOr<ScriptBatcher::Item> item =
        EnqueueItem(queue, t.id, std::move(t.task), "", 0, std::move(t.done));
    if (item.ok()) items.push_back(*std::move(item));
  }
  Submit(queue, std::move(items));
}

void Broker::CreateForTick(const std::string& queue, const std::string& name,
                           int64_t tick_unix_s, const Task& task, Callback<Created> done) {
  absl::StatusOr<ScriptBatcher::Item> item =
      EnqueueItem(queue, absl::StrCat("periodic-", name, "-", tick_unix_s), task,
                  PeriodicTickKey(queue, name), tick_unix_s, std::move(done));
  if (!item.ok()) return;
  std::vector<ScriptBatcher::Item> items;
  items.push_back(*std::move(item));
  Submit(queue, std::move(items));
}

void Broker::Submit(const std::string& queue, std::vector<ScriptBatcher::Item> items) {
  if (items.empty()) return;
  // The registry of queue names lives outside the queue's slot, so it cannot
  // join the script; it is idempotent and written first.
  client_->Send({"SADD", std::string(kQueuesKey), queue}, [](absl::StatusOr<Reply>) {});
  enqueue_.Add(queue, std::move(items));
}

absl::StatusOr<ScriptBatcher::Item> Broker::EnqueueItem(const std::string& queue,
                                                        const std::string& given_id, Task task,
                                                        const std::string& tick_key, int64_t tick,
                                                        Callback<Created> done) {
  absl::StatusOr<std::vector<std::string>> fields =
      NewTaskFields(task, options_.default_max_attempts);
  if (!fields.ok()) {
    done(fields.status());
    return fields.status();
  }
  const bool fresh = given_id.empty();
  const std::string id = fresh ? NewTaskId(absl::Now()) : given_id;
  ScriptBatcher::Item item;
  item.key = TaskKey(queue, id);
  item.args = {id,
               absl::StrCat(absl::ToInt64Seconds(options_.retention)),
               task.request_id().empty() ? "" : IdempotencyKey(queue, task.request_id()),
               tick_key,
               absl::StrCat(tick),
               std::string(fresh ? "1" : "0")};
  item.args.insert(item.args.end(), std::make_move_iterator(fields->begin()),
                   std::make_move_iterator(fields->end()));
  item.done = [this, queue, id, task = std::move(task),
               done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
    if (!reply.ok()) {
      done(reply.status());
      return;
    }
    if (reply->is_error()) {
      done(reply->ToStatus());
      return;
    }
    const auto& e = reply->elements();
    const int64_t code = e.empty() ? -3 : e[0].integer();
    if (code == -1) {
      done(absl::AlreadyExistsError(absl::StrCat("task ", TaskName(queue, id), " already exists")));
      return;
    }
    if (code == -2) {
      done(absl::AlreadyExistsError(
          absl::StrCat("task ", TaskName(queue, id), ": its tick was already created")));
      return;
    }
    if (code == 0 && e.size() == 2) {
      Get(queue, e[1].str(), [done = std::move(done)](absl::StatusOr<Task> found) mutable {
        if (!found.ok()) {
          done(found.status());
          return;
        }
        done(Created{*std::move(found), /*existing=*/true});
      });
      return;
    }
    Task::State state;
    if (code != 1 || e.size() != 3 || !Task::State_Parse(e[2].str(), &state)) {
      done(absl::InternalError(absl::StrCat("enqueue: bad reply ", reply->DebugString())));
      return;
    }
    // The reply is built from the request rather than read back.
    Created created;
    created.task = std::move(task);
    Task& t = created.task;
    t.set_name(TaskName(queue, id));
    if (t.max_attempts() <= 0) t.set_max_attempts(options_.default_max_attempts);
    t.set_state(state);
    t.set_attempt(0);
    *t.mutable_create_time() = TimeUtil::MillisecondsToTimestamp(e[1].integer());
    *t.mutable_update_time() = t.create_time();
    t.clear_start_time();
    t.clear_end_time();
    t.clear_result_kind();
    t.clear_last_error();
    t.clear_progress();
    done(std::move(created));
  };
  return item;
}

void Broker::Get(const std::string& queue, const std::string& id, Callback<Task> done) {
  Read(queue, id, [done = std::move(done)](absl::StatusOr<Versioned> v) mutable {
    if (!v.ok()) {
      done(v.status());
      return;
    }
    done(std::move(v->task));
  });
}

void Broker::Read(const std::string& queue, const std::string& id, Callback<Versioned> done) {
  client_->Send({"HGETALL", TaskKey(queue, id)}, VersionedReader(queue, id, std::move(done)));
}

void Broker::Watch(const std::string& queue, const std::string& id, Callback<Versioned> done) {
  client_->Eval(scripts::Watch(), ScriptKeys(queue, TaskKey(queue, id)),
                ScriptArgs(QueuePrefix(queue), options_, {}),
                VersionedReader(queue, id, std::move(done)));
}

void Broker::List(const std::string& queue, Task::State state, int page_size,
                  const std::string& page_token, Callback<TaskPage> done) {
  int64_t state_index = 1, offset = 0;
  if (!page_token.empty()) {
    if (absl::Status s = DecodeToken(page_token, &state_index, &offset); !s.ok()) {
      done(s);
      return;
    }
  }
  const std::string states =
      state == Task::STATE_UNSPECIFIED ? kAllStates : Task::State_Name(state);
  client_->Eval(
      scripts::List(), ScriptKeys(queue, MetaKey(queue)),
      ScriptArgs(QueuePrefix(queue), options_,
                 {states, absl::StrCat(std::max<int64_t>(1, state_index)), absl::StrCat(offset),
                  absl::StrCat(ClampPageSize(page_size))}),
      [queue, done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
        if (!reply.ok()) {
          done(reply.status());
          return;
        }
        if (reply->is_error() || reply->elements().size() < 2) {
          done(reply->is_error() ? reply->ToStatus()
                                 : absl::InternalError("list: bad reply"));
          return;
        }
        const auto& e = reply->elements();
        TaskPage page;
        for (size_t i = 2; i + 1 < e.size(); i += 2) {
          absl::StatusOr<Record> record = RecordOf(e[i + 1]);
          if (!record.ok()) {
            done(record.status());
            return;
          }
          absl::StatusOr<Task> task = TaskFromRecord(queue, e[i].str(), *record);
          if (task.ok()) page.tasks.push_back(*std::move(task));
        }
        if (e[1].integer() >= 0) {
          page.next_page_token = EncodeToken(absl::StrCat(e[0].integer(), ":", e[1].integer()));
        }
        done(std::move(page));
      });
}

// A transition script that answers 'notfound', or with the state that forbids
// it, or with `ok_words`; then the task is read back.
void Broker::Transition(const redis::Script& script, const std::string& queue,
                        const std::string& id, std::vector<std::string> ok_words,
                        absl::string_view is, absl::string_view rule, Callback<Task> done) {
  const std::string name = TaskName(queue, id);
  EvalWord<bool>(
      client_, script, ScriptKeys(queue, TaskKey(queue, id)),
      ScriptArgs(QueuePrefix(queue), options_, {id}),
      [name, ok_words = std::move(ok_words), is = std::string(is),
       rule = std::string(rule)](const std::string& word) -> absl::StatusOr<bool> {
        if (word == "notfound") return absl::NotFoundError(absl::StrCat("task ", name, " not found"));
        if (std::find(ok_words.begin(), ok_words.end(), word) == ok_words.end()) {
          return absl::FailedPreconditionError(
              absl::StrCat("task ", name, " ", is, " ", word, "; ", rule));
        }
        return true;
      },
      [this, queue, id, done = std::move(done)](absl::StatusOr<bool> ok) mutable {
        if (!ok.ok()) {
          done(ok.status());
          return;
        }
        Get(queue, id, std::move(done));
      });
}

void Broker::Cancel(const std::string& queue, const std::string& id, Callback<Task> done) {
  Transition(scripts::Cancel(), queue, id, {"cancelled", "requested"}, "is already",
             "only SCHEDULED, PENDING and RUNNING tasks can be cancelled", std::move(done));
}

void Broker::Retry(const std::string& queue, const std::string& id, Callback<Task> done) {
  Transition(scripts::Retry(), queue, id, {"retried"}, "is",
             "only FAILED and CANCELLED tasks can be retried", std::move(done));
}

void Broker::Delete(const std::string& queue, const std::string& id, Callback<bool> done) {
  const std::string name = TaskName(queue, id);
  EvalWord<bool>(
      client_, scripts::Delete(), ScriptKeys(queue, TaskKey(queue, id)),
      ScriptArgs(QueuePrefix(queue), options_, {id}),
      [name](const std::string& word) -> absl::StatusOr<bool> {
        if (word == "notfound") return absl::NotFoundError(absl::StrCat("task ", name, " not found"));
        if (word == "RUNNING") {
          return absl::FailedPreconditionError(
              absl::StrCat("task ", name, " is RUNNING; cancel it first, then delete it"));
        }
        return true;
      },
      std::move(done));
}

void Broker::GetQueue(const std::string& queue, Callback<taskmesh::v1::Queue> done) {
  IfQueueExists(queue, std::move(done),
                [this, queue](Callback<taskmesh::v1::Queue> done) {
                  ReadStats(queue, std::move(done));
                });
}

void Broker::IfQueueExists(const std::string& queue, Callback<taskmesh::v1::Queue> done,
                           absl::AnyInvocable<void(Callback<taskmesh::v1::Queue>)> then) {
  client_->Send({"SISMEMBER", std::string(kQueuesKey), queue},
                [queue, done = std::move(done),
                 then = std::move(then)](absl::StatusOr<Reply> known) mutable {
                  if (!known.ok()) {
                    done(known.status());
                  } else if (known->integer() != 1) {
                    done(absl::NotFoundError(absl::StrCat("queue queues/", queue, " not found")));
                  } else {
                    then(std::move(done));
                  }
                });
}

void Broker::ReadStats(const std::string& queue, Callback<taskmesh::v1::Queue> done) {
  client_->Eval(
      scripts::Stats(), ScriptKeys(queue, MetaKey(queue)),
      ScriptArgs(QueuePrefix(queue), options_, {}),
      [queue, done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
        if (!reply.ok()) {
          done(reply.status());
          return;
        }
        absl::StatusOr<const std::vector<Reply>*> v = reply->AsArray(8);
        if (!v.ok()) {
          done(v.status());
          return;
        }
        const auto& e = **v;
        taskmesh::v1::Queue q;
        q.set_name(absl::StrCat("queues/", queue));
        q.set_paused(e[0].integer() == 1);
        q.set_pending(e[1].integer());
        q.set_running(e[2].integer());
        q.set_scheduled(e[3].integer());
        q.set_dead(e[4].integer());
        q.set_succeeded_per_second(e[5].integer() / 60.0);
        q.set_failed_per_second(e[6].integer() / 60.0);
        double rate = 0;
        (void)absl::SimpleAtod(e[7].str(), &rate);
        q.set_rate_limit(rate);
        done(std::move(q));
      });
}

void Broker::ListQueues(int page_size, const std::string& page_token, Callback<QueuePage> done) {
  int64_t offset = 0, unused = 0;
  if (!page_token.empty()) {
    if (absl::Status s = DecodeToken(page_token, &offset, &unused); !s.ok()) {
      done(s);
      return;
    }
  }
  const int size = ClampPageSize(page_size);
  client_->Send(
      {"SMEMBERS", std::string(kQueuesKey)},
      [this, offset, size, done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
        if (!reply.ok()) {
          done(reply.status());
          return;
        }
        std::vector<std::string> names;
        for (const Reply& r : reply->elements()) names.push_back(r.str());
        std::sort(names.begin(), names.end());
        const size_t begin = std::min<size_t>(offset, names.size());
        const size_t end = std::min<size_t>(begin + size, names.size());
        // Collects the queues' figures, which arrive in any order.
        struct Gather {
          absl::Mutex mu;
          QueuePage page;
          size_t remaining;
          absl::Status error;
          Callback<QueuePage> done;
        };
        auto gather = std::make_shared<Gather>();
        gather->page.queues.resize(end - begin);
        gather->remaining = end - begin;
        gather->done = std::move(done);
        if (end < names.size()) gather->page.next_page_token = EncodeToken(absl::StrCat(end, ":0"));
        if (begin == end) {
          gather->done(std::move(gather->page));
          return;
        }
        for (size_t i = begin; i < end; ++i) {
          GetQueue(names[i], [gather, i, begin](absl::StatusOr<taskmesh::v1::Queue> q) {
            bool last;
            {
              absl::MutexLock lock(&gather->mu);
              if (q.ok()) {
                gather->page.queues[i - begin] = *std::move(q);
              } else if (gather->error.ok()) {
                gather->error = q.status();
              }
              last = --gather->remaining == 0;
            }
            if (!last) return;
            if (gather->error.ok()) {
              gather->done(std::move(gather->page));
            } else {
              gather->done(gather->error);
            }
          });
        }
      });
}

void Broker::SetPaused(const std::string& queue, bool paused, Callback<taskmesh::v1::Queue> done) {
  UpdateMeta(queue,
             paused ? redis::Args{"HSET", MetaKey(queue), "paused", "1"}
                    : redis::Args{"HDEL", MetaKey(queue), "paused"},
             std::move(done));
}

void Broker::SetRateLimit(const std::string& queue, double rate_limit,
                          Callback<taskmesh::v1::Queue> done) {
  // A new limit starts with a fresh bucket.
  UpdateMeta(queue,
             rate_limit > 0
                 ? redis::Args{"EVAL",
                               "redis.call('HDEL', KEYS[1], 'tokens', 'tts') "
                               "return redis.call('HSET', KEYS[1], 'rate', ARGV[1])",
                               "1", MetaKey(queue), absl::StrCat(rate_limit)}
                 : redis::Args{"HDEL", MetaKey(queue), "rate", "tokens", "tts"},
             std::move(done));
}

void Broker::UpdateMeta(const std::string& queue, redis::Args command,
                        Callback<taskmesh::v1::Queue> done) {
  IfQueueExists(queue, std::move(done),
                [this, queue, command = std::move(command)](
                    Callback<taskmesh::v1::Queue> done) mutable {
                  client_->Send(std::move(command), [this, queue, done = std::move(done)](
                                                        absl::StatusOr<Reply> reply) mutable {
                    if (!reply.ok() || reply->is_error()) {
                      done(reply.ok() ? reply->ToStatus() : reply.status());
                      return;
                    }
                    ReadStats(queue, std::move(done));
                  });
                });
}

void Broker::Purge(const std::string& queue, bool include_pending, Callback<int64_t> done) {
  PurgeMore(queue, include_pending, 0, std::move(done));
}

// Deletes in batches, so that Redis never blocks long on one script.
void Broker::PurgeMore(const std::string& queue, bool include_pending, int64_t so_far,
                       Callback<int64_t> done) {
  client_->Eval(scripts::Purge(), ScriptKeys(queue, MetaKey(queue)),
                ScriptArgs(QueuePrefix(queue), options_,
                           {include_pending ? "1" : "0", absl::StrCat(kPurgeBatch)}),
                [this, queue, include_pending, so_far,
                 done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
                  absl::StatusOr<int64_t> n = reply.ok() ? reply->AsInteger() : reply.status();
                  if (!n.ok()) {
                    done(n.status());
                    return;
                  }
                  if (*n >= kPurgeBatch) {
                    PurgeMore(queue, include_pending, so_far + *n, std::move(done));
                    return;
                  }
                  done(so_far + *n);
                });
}

}  // namespace taskmesh::broker
