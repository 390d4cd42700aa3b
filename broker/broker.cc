#include "broker/broker.h"

#include <algorithm>
#include <functional>
#include <iterator>
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
#include "absl/types/optional.h"
#include "broker/ids.h"
#include "broker/keys.h"
#include "broker/partitions.h"
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

// Page tokens are opaque to clients: base64 of "a:b" or "a:b:c" numbers
// (c, a partition, defaults to 0).
absl::Status DecodeToken(const std::string& token, int64_t* a, int64_t* b, int64_t* c = nullptr) {
  std::string raw;
  std::vector<std::string> parts;
  if (absl::WebSafeBase64Unescape(token, &raw)) parts = absl::StrSplit(raw, ':');
  int64_t third = 0;
  const bool ok = (parts.size() == 2 || (parts.size() == 3 && c != nullptr &&
                                         absl::SimpleAtoi(parts[2], &third) && third >= 0 &&
                                         third < kMaxPartitions)) &&
                  absl::SimpleAtoi(parts[0], a) && absl::SimpleAtoi(parts[1], b) && *a >= 0 &&
                  *b >= 0;
  if (!ok) return absl::InvalidArgumentError("page_token: not a token this server issued");
  if (c != nullptr) *c = third;
  return absl::OkStatus();
}

int ClampPageSize(int page_size) {
  if (page_size <= 0) return kDefaultPageSize;
  return std::min(page_size, kMaxPageSize);
}

absl::StatusOr<Record> RecordOf(const Reply& reply) { return reply.AsMap(); }

// How long a queue's partition map is trusted (Broker::WithMap).
constexpr absl::Duration kMapTtl = absl::Seconds(1);
// Most queues whose maps are cached; beyond, the cache starts over.
constexpr size_t kMaxCachedMaps = 4096;

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

// Runs one call per partition 0..n-1 at once and answers with all results
// in order, or with the first error.
template <typename T>
void ForEachPartition(int n, std::function<void(int, Callback<T>)> op,
                      Callback<std::vector<T>> done) {
  struct Gather {
    absl::Mutex mu;
    std::vector<T> results;
    int remaining;
    absl::Status error;
    Callback<std::vector<T>> done;
  };
  auto gather = std::make_shared<Gather>();
  gather->results.resize(n);
  gather->remaining = n;
  gather->done = std::move(done);
  for (int p = 0; p < n; ++p) {
    op(p, [gather, p](absl::StatusOr<T> r) {
      bool last;
      {
        absl::MutexLock lock(&gather->mu);
        if (r.ok()) {
          gather->results[p] = *std::move(r);
        } else if (gather->error.ok()) {
          gather->error = r.status();
        }
        last = --gather->remaining == 0;
      }
      if (!last) return;
      if (gather->error.ok()) {
        gather->done(std::move(gather->results));
      } else {
        gather->done(gather->error);
      }
    });
  }
}

// The state of one OnTask() call: the partitions tried so far.
template <typename T>
struct TaskProbe : std::enable_shared_from_this<TaskProbe<T>> {
  std::string id;
  Broker::PartitionOp<T> op;
  Callback<T> done;
  std::function<void(Callback<PartitionMap>)> refresh;
  std::vector<int> tried;
  bool refreshed = false;
  absl::Status missing;

  void Next(const PartitionMap& map) {
    for (int c : map.Candidates(id)) {
      if (std::find(tried.begin(), tried.end(), c) != tried.end()) continue;
      tried.push_back(c);
      auto self = this->shared_from_this();
      op(c, [self, map](absl::StatusOr<T> r) {
        if (!r.ok() && absl::IsNotFound(r.status())) {
          self->missing = r.status();
          self->Next(map);
          return;
        }
        self->done(std::move(r));
      });
      return;
    }
    if (refreshed) {
      done(missing);
      return;
    }
    // Every candidate said NOT_FOUND; the map may predate a change of the
    // queue's partition count, so it is read again before answering.
    refreshed = true;
    auto self = this->shared_from_this();
    refresh([self](absl::StatusOr<PartitionMap> fresh) {
      if (!fresh.ok()) {
        self->done(fresh.status());
        return;
      }
      self->Next(*fresh);
    });
  }
};

}  // namespace

Broker::Broker(redis::Commands* client, BrokerOptions options)
    : client_(client),
      options_(std::move(options)),
      enqueue_(client, scripts::Enqueue(), options_,
               ScriptBatcher::Limits{.max_items = kMaxBatchItems}) {}

void Broker::WithMap(const std::string& queue, bool fresh, Callback<PartitionMap> then) {
  if (!fresh) {
    absl::optional<PartitionMap> cached;
    {
      absl::MutexLock lock(&maps_mu_);
      auto it = maps_.find(queue);
      if (it != maps_.end() && absl::Now() - it->second.read < kMapTtl) cached = it->second.map;
    }
    if (cached) {
      then(*std::move(cached));
      return;
    }
  }
  client_->Send(ReadPartitionsArgs(queue), [this, queue, then = std::move(then)](
                                               absl::StatusOr<Reply> reply) mutable {
    absl::StatusOr<PartitionMap> map = reply.ok() ? ParsePartitionMap(*reply) : reply.status();
    if (map.ok()) {
      absl::MutexLock lock(&maps_mu_);
      if (maps_.size() >= kMaxCachedMaps) maps_.clear();
      maps_[queue] = CachedMap{*map, absl::Now()};
    }
    then(std::move(map));
  });
}

void Broker::Forget(const std::string& queue) {
  absl::MutexLock lock(&maps_mu_);
  maps_.erase(queue);
}

template <typename T>
void Broker::OnTask(const std::string& queue, const std::string& id, PartitionOp<T> op,
                    Callback<T> done) {
  auto probe = std::make_shared<TaskProbe<T>>();
  probe->id = id;
  probe->op = std::move(op);
  probe->done = std::move(done);
  probe->missing = absl::NotFoundError(absl::StrCat("task ", TaskName(queue, id), " not found"));
  probe->refresh = [this, queue](Callback<PartitionMap> then) {
    WithMap(queue, /*fresh=*/true, std::move(then));
  };
  WithMap(queue, /*fresh=*/false, [probe](absl::StatusOr<PartitionMap> map) {
    if (!map.ok()) {
      probe->done(map.status());
      return;
    }
    probe->Next(*map);
  });
}

void Broker::Create(const std::string& queue, const std::string& id, const Task& task,
                    Callback<Created> done) {
  std::vector<NewTask> one;
  one.push_back(NewTask{id, task, std::move(done)});
  CreateMany(queue, std::move(one));
}

void Broker::CreateMany(const std::string& queue, std::vector<NewTask> tasks) {
  if (tasks.empty()) return;
  WithMap(queue, /*fresh=*/false, [this, queue, tasks = std::move(tasks)](
                                      absl::StatusOr<PartitionMap> map) mutable {
    if (!map.ok()) {
      for (NewTask& t : tasks) t.done(map.status());
      return;
    }
    // Items by partition, partitions in the order first seen.
    std::vector<std::pair<int, std::vector<ScriptBatcher::Item>>> batches;
    for (NewTask& t : tasks) {
      const bool fresh = t.id.empty();
      std::string id = fresh ? NewTaskId(absl::Now()) : std::move(t.id);
      const int partition = PartitionFor(id, map->count);
      if (partition != 0 && !t.task.request_id().empty()) {
        Reserve(queue, *map, std::move(id), fresh, std::move(t.task), std::move(t.done));
        continue;
      }
      if (!fresh && map->Candidates(id).size() > 1) {
        Place(queue, *map, partition, std::move(id), std::move(t.task), /*reserved=*/false,
              std::move(t.done));
        continue;
      }
      absl::StatusOr<ScriptBatcher::Item> item =
          EnqueueItem(queue, partition, id, fresh, std::move(t.task), /*idem_here=*/true,
                      /*reserved=*/false, "", 0, std::move(t.done));
      if (!item.ok()) continue;
      auto it = std::find_if(batches.begin(), batches.end(),
                             [&](const auto& b) { return b.first == partition; });
      if (it == batches.end()) {
        batches.emplace_back(partition, std::vector<ScriptBatcher::Item>());
        it = std::prev(batches.end());
      }
      it->second.push_back(*std::move(item));
    }
    for (auto& [partition, items] : batches) Submit(queue, partition, std::move(items));
  });
}

void Broker::Reserve(const std::string& queue, const PartitionMap& map, std::string id,
                     bool fresh, Task task, Callback<Created> done) {
  (void)fresh;  // A reserved id may be created by a concurrent retry: always checked.
  const std::string request_id = task.request_id();
  client_->Send(
      {"SET", IdempotencyKey(queue, request_id), id, "NX", "GET", "EX",
       absl::StrCat(absl::ToInt64Seconds(options_.retention))},
      [this, queue, map, id, request_id, task = std::move(task),
       done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
        if (!reply.ok() || reply->is_error()) {
          done(reply.ok() ? reply->ToStatus() : reply.status());
          return;
        }
        if (reply->is_nil()) {  // Reserved for `id` now.
          Place(queue, map, PartitionFor(id, map.count), id, std::move(task), /*reserved=*/true,
                std::move(done));
          return;
        }
        // Reserved before, by this request's earlier try or a concurrent one:
        // that task, or (the try died between its two steps) its id.
        const std::string reserved = reply->str();
        Read(queue, reserved,
             [this, queue, map, reserved, request_id, task = std::move(task),
              done = std::move(done)](absl::StatusOr<Versioned> found) mutable {
               if (found.ok()) {
                 if (found->task.request_id() == request_id) {
                   done(Created{std::move(found->task), /*existing=*/true});
                 } else {
                   done(absl::AlreadyExistsError(absl::StrCat(
                       "task ", TaskName(queue, reserved), " already exists")));
                 }
                 return;
               }
               if (!absl::IsNotFound(found.status())) {
                 done(found.status());
                 return;
               }
               Place(queue, map, PartitionFor(reserved, map.count), reserved, std::move(task),
                     /*reserved=*/true, std::move(done));
             });
      });
}

void Broker::Place(const std::string& queue, const PartitionMap& map, int partition,
                   std::string id, Task task, bool reserved, Callback<Created> done) {
  std::vector<int> others;
  for (int c : map.Candidates(id)) {
    if (c != partition) others.push_back(c);
  }
  auto submit = [this, queue, partition, id, reserved, task = std::move(task)](
                    Callback<Created> done) mutable {
    absl::StatusOr<ScriptBatcher::Item> item =
        EnqueueItem(queue, partition, id, /*fresh=*/false, std::move(task),
                    /*idem_here=*/!reserved, reserved, "", 0, std::move(done));
    if (!item.ok()) return;
    std::vector<ScriptBatcher::Item> items;
    items.push_back(*std::move(item));
    Submit(queue, partition, std::move(items));
  };
  if (others.empty()) {
    submit(std::move(done));
    return;
  }
  // Is the id taken in a partition it could be in under an earlier count?
  const std::string request_id = task.request_id();
  ForEachPartition<bool>(
      static_cast<int>(others.size()),
      [this, queue, id, others](int i, Callback<bool> exists) {
        client_->Send({"EXISTS", TaskKey(PartitionName(queue, others[i]), id)},
                      [exists = std::move(exists)](absl::StatusOr<Reply> r) mutable {
                        if (!r.ok()) {
                          exists(r.status());
                        } else if (r->is_error()) {
                          exists(r->ToStatus());
                        } else {
                          exists(r->integer() == 1);
                        }
                      });
      },
      [this, queue, id, request_id, submit = std::move(submit),
       done = std::move(done)](absl::StatusOr<std::vector<bool>> found) mutable {
        if (!found.ok()) {
          done(found.status());
          return;
        }
        if (std::find(found->begin(), found->end(), true) != found->end()) {
          AnswerTaken(queue, id, request_id, std::move(done));
          return;
        }
        submit(std::move(done));
      });
}

void Broker::AnswerTaken(const std::string& queue, const std::string& id,
                         const std::string& request_id, Callback<Created> done) {
  Read(queue, id, [queue, id, request_id,
                   done = std::move(done)](absl::StatusOr<Versioned> found) mutable {
    if (found.ok() && !request_id.empty() && found->task.request_id() == request_id) {
      done(Created{std::move(found->task), /*existing=*/true});
      return;
    }
    if (!found.ok() && !absl::IsNotFound(found.status())) {
      done(found.status());
      return;
    }
    done(absl::AlreadyExistsError(absl::StrCat("task ", TaskName(queue, id), " already exists")));
  });
}

void Broker::CreateForTick(const std::string& queue, const std::string& name,
                           int64_t tick_unix_s, const Task& task, Callback<Created> done) {
  absl::StatusOr<ScriptBatcher::Item> item =
      EnqueueItem(queue, 0, absl::StrCat("periodic-", name, "-", tick_unix_s), /*fresh=*/false,
                  task, /*idem_here=*/true, /*reserved=*/false, PeriodicTickKey(queue, name),
                  tick_unix_s, std::move(done));
  if (!item.ok()) return;
  std::vector<ScriptBatcher::Item> items;
  items.push_back(*std::move(item));
  Submit(queue, 0, std::move(items));
}

void Broker::Submit(const std::string& queue, int partition,
                    std::vector<ScriptBatcher::Item> items) {
  if (items.empty()) return;
  // The registry of queue names lives outside the queue's slot, so it cannot
  // join the script; it is idempotent and written first.
  client_->Send({"SADD", std::string(kQueuesKey), queue}, [](absl::StatusOr<Reply>) {});
  enqueue_.Add(PartitionName(queue, partition), std::move(items));
}

absl::StatusOr<ScriptBatcher::Item> Broker::EnqueueItem(
    const std::string& queue, int partition, const std::string& id, bool fresh, Task task,
    bool idem_here, bool reserved, const std::string& tick_key, int64_t tick,
    Callback<Created> done) {
  absl::StatusOr<std::vector<std::string>> fields =
      NewTaskFields(task, options_.default_max_attempts);
  if (!fields.ok()) {
    done(fields.status());
    return fields.status();
  }
  const std::string where = PartitionName(queue, partition);
  ScriptBatcher::Item item;
  item.key = TaskKey(where, id);
  item.args = {id,
               absl::StrCat(absl::ToInt64Seconds(options_.retention)),
               idem_here && !task.request_id().empty() ? IdempotencyKey(where, task.request_id())
                                                       : "",
               tick_key,
               absl::StrCat(tick),
               std::string(fresh ? "1" : "0")};
  item.args.insert(item.args.end(), std::make_move_iterator(fields->begin()),
                   std::make_move_iterator(fields->end()));
  item.done = [this, queue, id, reserved, task = std::move(task),
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
      if (reserved) {
        // A concurrent try of the same request may have created it.
        AnswerTaken(queue, id, task.request_id(), std::move(done));
        return;
      }
      done(absl::AlreadyExistsError(absl::StrCat("task ", TaskName(queue, id), " already exists")));
      return;
    }
    if (code == -2) {
      done(absl::AlreadyExistsError(
          absl::StrCat("task ", TaskName(queue, id), ": its tick was already created")));
      return;
    }
    if (code == 0 && e.size() == 2) {
      // The request_id's task, or (a try reserved it in partition 0 for a
      // task of another partition, then died) the id to create it with.
      const std::string known = e[1].str();
      Read(queue, known, [this, queue, known, task = std::move(task),
                          done = std::move(done)](absl::StatusOr<Versioned> found) mutable {
        if (found.ok()) {
          done(Created{std::move(found->task), /*existing=*/true});
          return;
        }
        if (!absl::IsNotFound(found.status())) {
          done(found.status());
          return;
        }
        WithMap(queue, /*fresh=*/false, [this, queue, known, task = std::move(task),
                                         done = std::move(done)](
                                            absl::StatusOr<PartitionMap> map) mutable {
          if (!map.ok()) {
            done(map.status());
            return;
          }
          Place(queue, *map, PartitionFor(known, map->count), known, std::move(task),
                /*reserved=*/true, std::move(done));
        });
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
  OnTask<Versioned>(
      queue, id,
      [this, queue, id](int partition, Callback<Versioned> done) {
        ReadAt(queue, partition, id, std::move(done));
      },
      std::move(done));
}

void Broker::ReadAt(const std::string& queue, int partition, const std::string& id,
                    Callback<Versioned> done) {
  client_->Send({"HGETALL", TaskKey(PartitionName(queue, partition), id)},
                VersionedReader(queue, id, std::move(done)));
}

void Broker::WatchAt(const std::string& queue, int partition, const std::string& id,
                     Callback<Versioned> done) {
  const std::string where = PartitionName(queue, partition);
  client_->Eval(scripts::Watch(), ScriptKeys(where, TaskKey(where, id)),
                ScriptArgs(QueuePrefix(where), options_, {}),
                VersionedReader(queue, id, std::move(done)));
}

void Broker::Locate(const std::string& queue, const std::string& id, Callback<int> done) {
  OnTask<int>(
      queue, id,
      [this, queue, id](int partition, Callback<int> done) {
        client_->Send({"EXISTS", TaskKey(PartitionName(queue, partition), id)},
                      [queue, id, partition, done = std::move(done)](
                          absl::StatusOr<Reply> r) mutable {
                        if (!r.ok() || r->is_error()) {
                          done(r.ok() ? r->ToStatus() : r.status());
                        } else if (r->integer() != 1) {
                          done(absl::NotFoundError(
                              absl::StrCat("task ", TaskName(queue, id), " not found")));
                        } else {
                          done(partition);
                        }
                      });
      },
      std::move(done));
}

// A listing in progress: where the next page starts and what it has so far.
struct Broker::ListCursor {
  std::string queue;
  std::vector<std::string> states;
  int partitions = 1;
  // 1-based index into `states`, offset within the state, partition.
  int64_t state_index = 1;
  int64_t offset = 0;
  int64_t partition = 0;
  int page_size = 0;
  TaskPage page;
  Callback<TaskPage> done;
};

void Broker::List(const std::string& queue, Task::State state, int page_size,
                  const std::string& page_token, Callback<TaskPage> done) {
  auto cursor = std::make_shared<ListCursor>();
  if (!page_token.empty()) {
    if (absl::Status s =
            DecodeToken(page_token, &cursor->state_index, &cursor->offset, &cursor->partition);
        !s.ok()) {
      done(s);
      return;
    }
  }
  cursor->queue = queue;
  cursor->state_index = std::max<int64_t>(1, cursor->state_index);
  cursor->states = absl::StrSplit(
      state == Task::STATE_UNSPECIFIED ? kAllStates : Task::State_Name(state), ',');
  cursor->page_size = ClampPageSize(page_size);
  cursor->done = std::move(done);
  // A token past partition 0 comes from a partitioned queue: its map is read
  // fresh, in case this server's copy is older than the token.
  WithMap(queue, /*fresh=*/cursor->partition > 0,
          [this, cursor](absl::StatusOr<PartitionMap> map) {
            if (!map.ok()) {
              cursor->done(map.status());
              return;
            }
            cursor->partitions = map->highest();
            ListStep(cursor);
          });
}

// One List script call: on a queue of one partition, every state left; on a
// partitioned queue, one state of one partition, then the next partition,
// then the next state, until the page is full.
void Broker::ListStep(std::shared_ptr<ListCursor> cursor) {
  const bool single = cursor->partitions == 1;
  if (cursor->partition >= cursor->partitions ||
      cursor->state_index > static_cast<int64_t>(cursor->states.size())) {
    cursor->done(std::move(cursor->page));  // Past the end: the last page.
    return;
  }
  const std::vector<std::string> states(
      cursor->states.begin() + (single ? 0 : cursor->state_index - 1),
      single ? cursor->states.end() : cursor->states.begin() + cursor->state_index);
  const std::string where = PartitionName(cursor->queue, static_cast<int>(cursor->partition));
  const int want = cursor->page_size - static_cast<int>(cursor->page.tasks.size());
  client_->Eval(
      scripts::List(), ScriptKeys(where, MetaKey(where)),
      ScriptArgs(QueuePrefix(where), options_,
                 {absl::StrJoin(states, ","), absl::StrCat(single ? cursor->state_index : 1),
                  absl::StrCat(cursor->offset), absl::StrCat(want)}),
      [this, cursor, single](absl::StatusOr<Reply> reply) mutable {
        if (!reply.ok()) {
          cursor->done(reply.status());
          return;
        }
        if (reply->is_error() || reply->elements().size() < 2) {
          cursor->done(reply->is_error() ? reply->ToStatus()
                                         : absl::InternalError("list: bad reply"));
          return;
        }
        const auto& e = reply->elements();
        for (size_t i = 2; i + 1 < e.size(); i += 2) {
          absl::StatusOr<Record> record = RecordOf(e[i + 1]);
          if (!record.ok()) {
            cursor->done(record.status());
            return;
          }
          absl::StatusOr<Task> task = TaskFromRecord(cursor->queue, e[i].str(), *record);
          if (task.ok()) cursor->page.tasks.push_back(*std::move(task));
        }
        if (single) {
          if (e[1].integer() >= 0) {
            cursor->page.next_page_token =
                EncodeToken(absl::StrCat(e[0].integer(), ":", e[1].integer()));
          }
          cursor->done(std::move(cursor->page));
          return;
        }
        if (e[1].integer() >= 0) {  // The page filled up within this state and partition.
          cursor->page.next_page_token = EncodeToken(
              absl::StrCat(cursor->state_index, ":", e[1].integer(), ":", cursor->partition));
          cursor->done(std::move(cursor->page));
          return;
        }
        cursor->offset = 0;
        if (++cursor->partition == cursor->partitions) {
          cursor->partition = 0;
          ++cursor->state_index;
        }
        if (cursor->state_index > static_cast<int64_t>(cursor->states.size())) {
          cursor->done(std::move(cursor->page));
          return;
        }
        if (static_cast<int>(cursor->page.tasks.size()) >= cursor->page_size) {
          cursor->page.next_page_token = EncodeToken(
              absl::StrCat(cursor->state_index, ":0:", cursor->partition));
          cursor->done(std::move(cursor->page));
          return;
        }
        ListStep(std::move(cursor));
      });
}

// A transition script that answers 'notfound', or with the state that forbids
// it, or with `ok_words`; then the task is read back.
void Broker::Transition(const redis::Script& script, const std::string& queue, int partition,
                        const std::string& id, std::vector<std::string> ok_words,
                        absl::string_view is, absl::string_view rule, Callback<Task> done) {
  const std::string name = TaskName(queue, id);
  const std::string where = PartitionName(queue, partition);
  EvalWord<bool>(
      client_, script, ScriptKeys(where, TaskKey(where, id)),
      ScriptArgs(QueuePrefix(where), options_, {id}),
      [name, ok_words = std::move(ok_words), is = std::string(is),
       rule = std::string(rule)](const std::string& word) -> absl::StatusOr<bool> {
        if (word == "notfound") return absl::NotFoundError(absl::StrCat("task ", name, " not found"));
        if (std::find(ok_words.begin(), ok_words.end(), word) == ok_words.end()) {
          return absl::FailedPreconditionError(
              absl::StrCat("task ", name, " ", is, " ", word, "; ", rule));
        }
        return true;
      },
      [this, queue, partition, id, done = std::move(done)](absl::StatusOr<bool> ok) mutable {
        if (!ok.ok()) {
          done(ok.status());
          return;
        }
        ReadAt(queue, partition, id,
               [done = std::move(done)](absl::StatusOr<Versioned> v) mutable {
                 if (!v.ok()) {
                   done(v.status());
                   return;
                 }
                 done(std::move(v->task));
               });
      });
}

void Broker::Cancel(const std::string& queue, const std::string& id, Callback<Task> done) {
  OnTask<Task>(
      queue, id,
      [this, queue, id](int partition, Callback<Task> done) {
        Transition(scripts::Cancel(), queue, partition, id, {"cancelled", "requested"},
                   "is already", "only SCHEDULED, PENDING and RUNNING tasks can be cancelled",
                   std::move(done));
      },
      std::move(done));
}

void Broker::Retry(const std::string& queue, const std::string& id, Callback<Task> done) {
  OnTask<Task>(
      queue, id,
      [this, queue, id](int partition, Callback<Task> done) {
        Transition(scripts::Retry(), queue, partition, id, {"retried"}, "is",
                   "only FAILED and CANCELLED tasks can be retried", std::move(done));
      },
      std::move(done));
}

void Broker::Delete(const std::string& queue, const std::string& id, Callback<bool> done) {
  const std::string name = TaskName(queue, id);
  OnTask<bool>(
      queue, id,
      [this, queue, id, name](int partition, Callback<bool> done) {
        const std::string where = PartitionName(queue, partition);
        EvalWord<bool>(
            client_, scripts::Delete(), ScriptKeys(where, TaskKey(where, id)),
            ScriptArgs(QueuePrefix(where), options_, {id}),
            [name](const std::string& word) -> absl::StatusOr<bool> {
              if (word == "notfound") {
                return absl::NotFoundError(absl::StrCat("task ", name, " not found"));
              }
              if (word == "RUNNING") {
                return absl::FailedPreconditionError(
                    absl::StrCat("task ", name, " is RUNNING; cancel it first, then delete it"));
              }
              return true;
            },
            std::move(done));
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
  WithMap(queue, /*fresh=*/false, [this, queue, done = std::move(done)](
                                      absl::StatusOr<PartitionMap> map) mutable {
    if (!map.ok()) {
      done(map.status());
      return;
    }
    const int count = map->count;
    ForEachPartition<taskmesh::v1::Queue>(
        map->highest(),
        [this, queue](int partition, Callback<taskmesh::v1::Queue> done) {
          const std::string where = PartitionName(queue, partition);
          client_->Eval(
              scripts::Stats(), ScriptKeys(where, MetaKey(where)),
              ScriptArgs(QueuePrefix(where), options_, {}),
              [done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
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
        },
        [queue, count, done = std::move(done)](
            absl::StatusOr<std::vector<taskmesh::v1::Queue>> parts) mutable {
          if (!parts.ok()) {
            done(parts.status());
            return;
          }
          // Partition 0 holds the queue's settings; figures are summed.
          taskmesh::v1::Queue q = (*parts)[0];
          for (size_t i = 1; i < parts->size(); ++i) {
            const taskmesh::v1::Queue& p = (*parts)[i];
            q.set_pending(q.pending() + p.pending());
            q.set_running(q.running() + p.running());
            q.set_scheduled(q.scheduled() + p.scheduled());
            q.set_dead(q.dead() + p.dead());
            q.set_succeeded_per_second(q.succeeded_per_second() + p.succeeded_per_second());
            q.set_failed_per_second(q.failed_per_second() + p.failed_per_second());
          }
          q.set_name(absl::StrCat("queues/", queue));
          q.set_partitions(count);
          done(std::move(q));
        });
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
        std::string next_page_token;
        if (end < names.size()) next_page_token = EncodeToken(absl::StrCat(end, ":0"));
        if (begin == end) {
          done(QueuePage{{}, std::move(next_page_token)});
          return;
        }
        std::vector<std::string> page(names.begin() + begin, names.begin() + end);
        ForEachPartition<taskmesh::v1::Queue>(
            static_cast<int>(page.size()),
            [this, page](int i, Callback<taskmesh::v1::Queue> got) { GetQueue(page[i], std::move(got)); },
            [next_page_token, done = std::move(done)](
                absl::StatusOr<std::vector<taskmesh::v1::Queue>> queues) mutable {
              if (!queues.ok()) {
                done(queues.status());
                return;
              }
              done(QueuePage{*std::move(queues), std::move(next_page_token)});
            });
      });
}

void Broker::SetPaused(const std::string& queue, bool paused, Callback<taskmesh::v1::Queue> done) {
  UpdateMeta(
      queue,
      [paused](const std::string& where) {
        return paused ? redis::Args{"HSET", MetaKey(where), "paused", "1"}
                      : redis::Args{"HDEL", MetaKey(where), "paused"};
      },
      std::move(done));
}

void Broker::SetRateLimit(const std::string& queue, double rate_limit,
                          Callback<taskmesh::v1::Queue> done) {
  WithMap(queue, /*fresh=*/true, [this, queue, rate_limit, done = std::move(done)](
                                     absl::StatusOr<PartitionMap> map) mutable {
    if (!map.ok()) {
      done(map.status());
      return;
    }
    const std::string share = absl::StrCat(map->highest());
    // A new limit starts with a fresh bucket in each partition.
    UpdateMeta(
        queue,
        [rate_limit, share](const std::string& where) {
          return rate_limit > 0
                     ? redis::Args{"EVAL",
                                   "redis.call('HDEL', KEYS[1], 'tokens', 'tts') "
                                   "return redis.call('HSET', KEYS[1], 'rate', ARGV[1], "
                                   "'rshare', ARGV[2])",
                                   "1", MetaKey(where), absl::StrCat(rate_limit), share}
                     : redis::Args{"HDEL", MetaKey(where), "rate", "rshare", "tokens", "tts"};
        },
        std::move(done));
  });
}

void Broker::UpdateMeta(const std::string& queue,
                        std::function<redis::Args(const std::string& partition)> command,
                        Callback<taskmesh::v1::Queue> done) {
  IfQueueExists(queue, std::move(done), [this, queue, command = std::move(command)](
                                            Callback<taskmesh::v1::Queue> done) mutable {
    WithMap(queue, /*fresh=*/true, [this, queue, command = std::move(command),
                                    done = std::move(done)](
                                       absl::StatusOr<PartitionMap> map) mutable {
      if (!map.ok()) {
        done(map.status());
        return;
      }
      ForEachPartition<bool>(
          map->highest(),
          [this, queue, command](int partition, Callback<bool> set) {
            client_->Send(command(PartitionName(queue, partition)),
                          [set = std::move(set)](absl::StatusOr<Reply> reply) mutable {
                            if (!reply.ok() || reply->is_error()) {
                              set(reply.ok() ? reply->ToStatus() : reply.status());
                            } else {
                              set(true);
                            }
                          });
          },
          [this, queue, done = std::move(done)](absl::StatusOr<std::vector<bool>> set) mutable {
            if (!set.ok()) {
              done(set.status());
              return;
            }
            ReadStats(queue, std::move(done));
          });
    });
  });
}

void Broker::SetPartitions(const std::string& queue, int count,
                           Callback<taskmesh::v1::Queue> done) {
  if (count < 1 || count > kMaxPartitions) {
    done(absl::InvalidArgumentError(
        absl::StrCat("partitions: must be from 1 to ", kMaxPartitions, "; got ", count)));
    return;
  }
  if (auto limit = options_.partition_limits.find(queue);
      limit != options_.partition_limits.end() && count > limit->second) {
    done(absl::FailedPreconditionError(absl::StrCat(
        "partitions: queue ", queue, " may have at most ", limit->second,
        " partitions here: its workers' autoscaler watches that many (--partition_limits, the "
        "chart's workers.pools[].partitions); raise that first")));
    return;
  }
  IfQueueExists(queue, std::move(done), [this, queue, count](
                                            Callback<taskmesh::v1::Queue> done) mutable {
    WithMap(queue, /*fresh=*/true, [this, queue, count, done = std::move(done)](
                                       absl::StatusOr<PartitionMap> map) mutable {
      if (!map.ok()) {
        done(map.status());
        return;
      }
      PartitionMap next = *map;
      next.count = count;
      if (std::find(next.history.begin(), next.history.end(), count) == next.history.end()) {
        next.history.push_back(count);
      }
      // The queue's settings, from partition 0, for every partition.
      client_->Send(
          {"HMGET", MetaKey(queue), "paused", "rate"},
          [this, queue, next, done = std::move(done)](absl::StatusOr<Reply> meta) mutable {
            absl::StatusOr<const std::vector<Reply>*> fields =
                meta.ok() ? meta->AsArray(2) : meta.status();
            if (!fields.ok()) {
              done(fields.status());
              return;
            }
            const std::string paused = (**fields)[0].str() == "1" ? "1" : "0";
            const std::string rate = (**fields)[1].is_nil() ? "0" : (**fields)[1].str();
            const std::string share = absl::StrCat(next.highest());
            ForEachPartition<bool>(
                next.highest(),
                [this, queue, paused, rate, share](int partition, Callback<bool> ready) {
                  const std::string where = PartitionName(queue, partition);
                  EvalWord<bool>(
                      client_, scripts::InitPartition(), ScriptKeys(where, MetaKey(where)),
                      ScriptArgs(QueuePrefix(where), options_, {paused, rate, share}),
                      [](const std::string& word) -> absl::StatusOr<bool> {
                        if (word != "ok") return absl::InternalError("init_partition: " + word);
                        return true;
                      },
                      std::move(ready));
                },
                [this, queue, next, done = std::move(done)](
                    absl::StatusOr<std::vector<bool>> ready) mutable {
                  if (!ready.ok()) {
                    done(ready.status());
                    return;
                  }
                  // Every partition is ready: new tasks may go to them now.
                  client_->Send({"HSET", MetaKey(queue), "partitions", absl::StrCat(next.count),
                                 "phist", next.HistoryText()},
                                [this, queue, done = std::move(done)](
                                    absl::StatusOr<Reply> set) mutable {
                                  if (!set.ok() || set->is_error()) {
                                    done(set.ok() ? set->ToStatus() : set.status());
                                    return;
                                  }
                                  Forget(queue);
                                  ReadStats(queue, std::move(done));
                                });
                });
          });
    });
  });
}

void Broker::Purge(const std::string& queue, bool include_pending, Callback<int64_t> done) {
  WithMap(queue, /*fresh=*/true, [this, queue, include_pending, done = std::move(done)](
                                     absl::StatusOr<PartitionMap> map) mutable {
    if (!map.ok()) {
      done(map.status());
      return;
    }
    ForEachPartition<int64_t>(
        map->highest(),
        [this, queue, include_pending](int partition, Callback<int64_t> purged) {
          PurgeMore(PartitionName(queue, partition), include_pending, 0, std::move(purged));
        },
        [done = std::move(done)](absl::StatusOr<std::vector<int64_t>> purged) mutable {
          if (!purged.ok()) {
            done(purged.status());
            return;
          }
          int64_t total = 0;
          for (int64_t n : *purged) total += n;
          done(total);
        });
  });
}

// Deletes in batches, so that Redis never blocks long on one script.
void Broker::PurgeMore(const std::string& partition, bool include_pending, int64_t so_far,
                       Callback<int64_t> done) {
  client_->Eval(scripts::Purge(), ScriptKeys(partition, MetaKey(partition)),
                ScriptArgs(QueuePrefix(partition), options_,
                           {include_pending ? "1" : "0", absl::StrCat(kPurgeBatch)}),
                [this, partition, include_pending, so_far,
                 done = std::move(done)](absl::StatusOr<Reply> reply) mutable {
                  absl::StatusOr<int64_t> n = reply.ok() ? reply->AsInteger() : reply.status();
                  if (!n.ok()) {
                    done(n.status());
                    return;
                  }
                  if (*n >= kPurgeBatch) {
                    PurgeMore(partition, include_pending, so_far + *n, std::move(done));
                    return;
                  }
                  done(so_far + *n);
                });
}

}  // namespace taskmesh::broker
