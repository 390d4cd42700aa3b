#include "broker/consumer.h"

#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "broker/keys.h"
#include "broker/partitions.h"
#include "broker/script_call.h"
#include "broker/scripts.h"
#include "common/status_macros.h"

namespace taskmesh::broker {
namespace {

using ::taskmesh::redis::Reply;

constexpr absl::string_view kSuffixes[] = {"high", "", "low"};

}  // namespace

std::string PriorityOrder(double draw1, double draw2) {
  // Weights: h 6, d 3, l 1. First pick by weight, then the second among the
  // remaining two by weight; the last is what is left.
  std::string all = "hdl";
  const int weights[] = {6, 3, 1};
  auto weight = [&](char c) { return weights[all.find(c)]; };
  std::string left = all, order;
  for (double draw : {draw1, draw2}) {
    int total = 0;
    for (char c : left) total += weight(c);
    double x = draw * total;
    for (size_t i = 0; i < left.size(); ++i) {
      x -= weight(left[i]);
      if (x < 0 || i + 1 == left.size()) {
        order.push_back(left[i]);
        left.erase(i, 1);
        break;
      }
    }
  }
  return order + left;
}

Consumer::Consumer(redis::Commands* client, BrokerOptions broker_options, ConsumerOptions options)
    : client_(client),
      broker_options_(std::move(broker_options)),
      options_(std::move(options)),
      complete_(client, scripts::Complete(), broker_options_, ScriptBatcher::Limits{}) {}

std::vector<std::string> Consumer::Args(const std::string& queue,
                                        std::vector<std::string> rest) const {
  return ScriptArgs(QueuePrefix(queue), broker_options_, std::move(rest));
}

absl::Status Consumer::EnsureGroups(const std::vector<std::string>& queues) {
  // Sent together (pipelined, each to its queue's node), then awaited.
  struct Wait {
    absl::Mutex mu;
    int left ABSL_GUARDED_BY(mu) = 0;
    absl::Status first_error ABSL_GUARDED_BY(mu);
  };
  auto wait = std::make_shared<Wait>();
  {
    absl::MutexLock lock(&wait->mu);
    wait->left = static_cast<int>(queues.size() * std::size(kSuffixes));
  }
  for (const std::string& q : queues) {
    for (absl::string_view suffix : kSuffixes) {
      client_->Send({"XGROUP", "CREATE", StreamKey(q, suffix), std::string(kConsumerGroup), "0",
                     "MKSTREAM"},
                    [wait](absl::StatusOr<Reply> reply) {
                      absl::Status s = reply.ok() ? absl::OkStatus() : reply.status();
                      if (reply.ok() && reply->is_error() &&
                          !absl::StartsWith(reply->str(), "BUSYGROUP")) {
                        s = reply->ToStatus();
                      }
                      absl::MutexLock lock(&wait->mu);
                      if (wait->first_error.ok()) wait->first_error = s;
                      --wait->left;
                    });
    }
  }
  absl::MutexLock lock(&wait->mu);
  wait->mu.Await(absl::Condition(
      +[](int* left) { return *left == 0; }, &wait->left));
  return wait->first_error;
}

absl::StatusOr<std::vector<std::string>> Consumer::Partitions(const std::string& queue) {
  ASSIGN_OR_RETURN(Reply reply, client_->Call(ReadPartitionsArgs(queue)));
  ASSIGN_OR_RETURN(PartitionMap map, ParsePartitionMap(reply));
  return map.Names(queue);
}

absl::StatusOr<redis::ConnectionOptions> Consumer::NodeOf(const std::string& queue) const {
  return client_->NodeForKey(StreamKey(queue));
}

absl::StatusOr<std::vector<Lease>> Consumer::ParseStarted(const std::string& queue,
                                                          const Reply& reply) const {
  RETURN_IF_ERROR(reply.ToStatus());
  const auto& e = reply.elements();
  std::vector<Lease> leases;
  for (size_t i = 2; i + 2 < e.size(); i += 3) {
    // The start script's fields: id, type, payload, pk, attempt, max_att, tmo_ms.
    ASSIGN_OR_RETURN(const std::vector<Reply>* f, e[i + 2].AsArray(7));
    auto integer = [&](size_t k) -> int64_t {
      int64_t v = 0;
      (void)absl::SimpleAtoi((*f)[k].str(), &v);
      return v;
    };
    Lease lease;
    lease.queue = queue;
    lease.stream = e[i].str();
    lease.stream_id = e[i + 1].str();
    lease.task_id = (*f)[0].str();
    lease.type = (*f)[1].str();
    lease.payload.data = (*f)[2].str();
    lease.payload.is_json = (*f)[3].str() != "b";
    lease.attempt = static_cast<int>(integer(4));
    lease.max_attempts = static_cast<int>(integer(5));
    lease.timeout = absl::Milliseconds(integer(6));
    leases.push_back(std::move(lease));
  }
  return leases;
}

absl::StatusOr<Consumer::Fetched> Consumer::Fetch(const std::string& queue, int count) {
  thread_local absl::BitGen gen;
  const std::string order =
      PriorityOrder(absl::Uniform(gen, 0.0, 1.0), absl::Uniform(gen, 0.0, 1.0));
  ASSIGN_OR_RETURN(Reply reply,
                   client_->CallEval(scripts::Fetch(), ScriptKeys(queue, MetaKey(queue)),
                                     Args(queue, {options_.consumer, absl::StrCat(count),
                                                  absl::StrCat(absl::ToInt64Milliseconds(
                                                      options_.lease)),
                                                  absl::StrCat(options_.poison_after), order})));
  RETURN_IF_ERROR(reply.ToStatus());
  Fetched fetched;
  if (reply.elements().empty()) return absl::InternalError("fetch: empty reply");
  const std::string& word = reply.elements()[0].str();
  if (word == "paused") {
    fetched.paused = true;
    return fetched;
  }
  if (word == "nogroup") {
    return absl::FailedPreconditionError(absl::StrCat("queue ", queue, ": consumer group missing"));
  }
  if (word == "limited") {
    fetched.limited = true;
    fetched.retry_after = absl::Milliseconds(reply.elements().size() > 1 ? reply.elements()[1].integer() : 0);
  }
  ASSIGN_OR_RETURN(fetched.leases, ParseStarted(queue, reply));
  return fetched;
}

absl::StatusOr<std::vector<Lease>> Consumer::Wait(redis::Connection& conn,
                                                  const std::vector<std::string>& queues,
                                                  absl::Duration block,
                                                  const std::function<bool()>& may_start) {
  redis::Args args = {"XREADGROUP",       "GROUP", std::string(kConsumerGroup), options_.consumer,
                      "COUNT",            "1",     "BLOCK",
                      absl::StrCat(absl::ToInt64Milliseconds(block)), "STREAMS"};
  absl::flat_hash_map<std::string, std::string> queue_of_stream;
  for (const std::string& q : queues) {
    for (absl::string_view suffix : kSuffixes) {
      args.push_back(StreamKey(q, suffix));
      queue_of_stream[args.back()] = q;
    }
  }
  const size_t streams = queue_of_stream.size();
  for (size_t i = 0; i < streams; ++i) args.push_back(">");

  ASSIGN_OR_RETURN(Reply reply, conn.BlockingCommand(args, block));
  if (reply.is_error() && absl::StartsWith(reply.str(), "NOGROUP")) {
    // A stream (and so its group) was deleted: recreate, then read again.
    RETURN_IF_ERROR(EnsureGroups(queues));
    return std::vector<Lease>();
  }
  RETURN_IF_ERROR(reply.ToStatus());
  std::vector<Lease> leases;
  if (reply.is_nil()) return leases;  // Nothing arrived within `block`.

  // stream, entry id, task id triples per queue.
  absl::flat_hash_map<std::string, std::vector<std::string>> per_queue;
  for (const Reply& stream : reply.elements()) {
    ASSIGN_OR_RETURN(const std::vector<Reply>* pair, stream.AsArray(2));
    const std::string& key = (*pair)[0].str();
    auto q = queue_of_stream.find(key);
    if (q == queue_of_stream.end()) return absl::InternalError("XREADGROUP: unknown stream");
    for (const Reply& entry : (*pair)[1].elements()) {
      ASSIGN_OR_RETURN(const std::vector<Reply>* id_fields, entry.AsArray(2));
      const auto& fields = (*id_fields)[1].elements();
      for (size_t i = 0; i + 1 < fields.size(); i += 2) {
        if (fields[i].str() != "id") continue;
        auto& triples = per_queue[q->second];
        triples.insert(triples.end(), {key, (*id_fields)[0].str(), fields[i + 1].str()});
      }
    }
  }
  const bool start = may_start();
  for (auto& [queue, triples] : per_queue) {
    std::vector<std::string> rest = {
        options_.consumer, absl::StrCat(absl::ToInt64Milliseconds(options_.lease)),
        absl::StrCat(options_.poison_after), start ? "1" : "0"};
    rest.insert(rest.end(), triples.begin(), triples.end());
    // On the fetch connection, from the fetch thread: no hand-off to the
    // client's I/O thread on the idle path, where latency is what counts.
    ASSIGN_OR_RETURN(Reply started,
                     redis::EvalOn(conn, scripts::StartDelivered(),
                                   ScriptKeys(queue, MetaKey(queue)), Args(queue, std::move(rest))));
    ASSIGN_OR_RETURN(std::vector<Lease> got, ParseStarted(queue, started));
    for (Lease& l : got) leases.push_back(std::move(l));
  }
  return leases;
}

absl::Status Consumer::AwaitWork(redis::Connection& conn, const std::vector<std::string>& queues,
                                 absl::Duration block) {
  std::vector<std::string> streams;
  std::vector<redis::Args> infos;
  for (const std::string& q : queues) {
    for (absl::string_view suffix : kSuffixes) {
      streams.push_back(StreamKey(q, suffix));
      infos.push_back({"XINFO", "GROUPS", streams.back()});
    }
  }
  ASSIGN_OR_RETURN(std::vector<Reply> groups, conn.Pipeline(infos));
  redis::Args xread = {"XREAD", "COUNT", "1", "BLOCK",
                       absl::StrCat(absl::ToInt64Milliseconds(block)), "STREAMS"};
  xread.insert(xread.end(), streams.begin(), streams.end());
  for (const Reply& g : groups) {
    // The group's last-delivered-id; 0-0 without a group or a stream (any
    // entry then wakes the worker, whose fetch recreates the group).
    std::string last = "0-0";
    if (g.type() == Reply::Type::kArray) {
      for (const Reply& group : g.elements()) {
        const auto& f = group.elements();
        bool ours = false;
        std::string id;
        for (size_t i = 0; i + 1 < f.size(); i += 2) {
          if (f[i].str() == "name") ours = f[i + 1].str() == kConsumerGroup;
          if (f[i].str() == "last-delivered-id") id = f[i + 1].str();
        }
        if (ours && !id.empty()) last = id;
      }
    }
    xread.push_back(last);
  }
  ASSIGN_OR_RETURN(Reply reply, conn.BlockingCommand(xread, block));
  return reply.is_error() ? reply.ToStatus() : absl::OkStatus();
}

absl::StatusOr<std::vector<Lease>> Consumer::Reclaim(const std::string& queue, int count) {
  ASSIGN_OR_RETURN(
      Reply reply,
      client_->CallEval(scripts::Reclaim(), ScriptKeys(queue, MetaKey(queue)),
                        Args(queue, {options_.consumer,
                                     absl::StrCat(absl::ToInt64Milliseconds(options_.lease)),
                                     absl::StrCat(options_.poison_after), absl::StrCat(count)})));
  RETURN_IF_ERROR(reply.ToStatus());
  if (!reply.elements().empty() && reply.elements()[0].str() == "paused") {
    return std::vector<Lease>();
  }
  return ParseStarted(queue, reply);
}

absl::StatusOr<absl::Duration> Consumer::Promote(const std::string& queue, int max) {
  ASSIGN_OR_RETURN(Reply reply,
                   client_->CallEval(scripts::Promote(), ScriptKeys(queue, ScheduledKey(queue)),
                                     Args(queue, {absl::StrCat(max)})));
  ASSIGN_OR_RETURN(const std::vector<Reply>* v, reply.AsArray(2));
  const int64_t wait_ms = (*v)[1].integer();
  if ((*v)[0].integer() >= max) return absl::ZeroDuration();  // More may be due.
  return wait_ms < 0 ? absl::InfiniteDuration() : absl::Milliseconds(wait_ms);
}

void Consumer::Renew(const Lease& lease, Callback<Renewal> done) {
  EvalWord<Renewal>(
      client_, scripts::Renew(), ScriptKeys(lease.queue, TaskKey(lease.queue, lease.task_id)),
      Args(lease.queue, {options_.consumer, absl::StrCat(absl::ToInt64Milliseconds(options_.lease)),
                         lease.stream_id, absl::StrCat(lease.attempt), lease.stream}),
      [](const std::string& word) -> absl::StatusOr<Renewal> {
        if (word == "ok") return Renewal::kOk;
        if (word == "cancel") return Renewal::kCancelRequested;
        return Renewal::kLost;
      },
      std::move(done));
}

void Consumer::Progress(const Lease& lease, int percent, const std::string& message,
                        Callback<bool> done) {
  EvalWord<bool>(client_, scripts::Progress(),
                 ScriptKeys(lease.queue, TaskKey(lease.queue, lease.task_id)),
                 Args(lease.queue, {lease.task_id, lease.stream_id, absl::StrCat(lease.attempt),
                                    absl::StrCat(percent), message}),
                 [](const std::string& word) -> absl::StatusOr<bool> { return word == "1"; },
                 std::move(done));
}

void Consumer::Complete(const Lease& lease, const Outcome& outcome, absl::Duration retry_delay,
                        Callback<Completion> done) {
  const bool ok = outcome.status.ok();
  ScriptBatcher::Item item;
  item.key = TaskKey(lease.queue, lease.task_id);
  item.args = {lease.task_id,
               lease.stream_id,
               absl::StrCat(lease.attempt),
               lease.stream,
               ok ? "S" : "F",
               outcome.result.is_json ? "j" : "b",
               ok ? outcome.result.data : "",
               absl::StrCat(ok ? 0 : static_cast<int>(outcome.status.code())),
               ok ? "" : std::string(outcome.status.message()),
               outcome.retryable ? "1" : "0",
               absl::StrCat(absl::ToInt64Milliseconds(retry_delay))};
  item.done = [done = std::move(done)](absl::StatusOr<redis::Reply> reply) mutable {
    absl::StatusOr<std::string> word = WordOf(reply);
    if (!word.ok()) {
      done(word.status());
    } else if (*word == "succeeded") {
      done(Completion::kSucceeded);
    } else if (*word == "retrying") {
      done(Completion::kRetrying);
    } else if (*word == "failed") {
      done(Completion::kFailed);
    } else if (*word == "cancelled") {
      done(Completion::kCancelled);
    } else if (*word == "fenced") {
      done(Completion::kFenced);
    } else {
      done(absl::InternalError(absl::StrCat("complete: bad reply ", *word)));
    }
  };
  std::vector<ScriptBatcher::Item> items;
  items.push_back(std::move(item));
  complete_.Add(lease.queue, std::move(items));
}

void Consumer::HandBack(const Lease& lease, Callback<bool> done) {
  EvalWord<bool>(client_, scripts::HandBack(),
                 ScriptKeys(lease.queue, TaskKey(lease.queue, lease.task_id)),
                 Args(lease.queue, {lease.task_id, lease.stream_id, absl::StrCat(lease.attempt),
                                    lease.stream}),
                 [](const std::string& word) -> absl::StatusOr<bool> { return word == "1"; },
                 std::move(done));
}

}  // namespace taskmesh::broker
