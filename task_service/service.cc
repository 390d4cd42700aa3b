#include "task_service/service.h"

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "broker/partitions.h"
#include "common/grpc_status.h"
#include "task_service/validation.h"
#include "task_service/watch_task.h"

namespace taskmesh::task_service {
namespace {

using ::taskmesh::v1::Task;

static_assert(kMaxBatch <= broker::Broker::kMaxBatchItems,
              "a BatchCreateTasks must fit one enqueue script call (tasks in order)");

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// Collects the results of a batch: the tasks are enqueued in order, in one
// script call (see Broker::CreateMany). The first
// error wins; tasks created before it stay created (each create is atomic,
// the batch is not).
class BatchState {
 public:
  BatchState(grpc::ServerUnaryReactor* reactor, taskmesh::v1::BatchCreateTasksResponse* response,
             int n)
      : reactor_(reactor), response_(response), remaining_(n) {
    for (int i = 0; i < n; ++i) response_->add_tasks();
  }

  void Done(int index, absl::StatusOr<broker::Broker::Created> created) {
    absl::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (created.ok()) {
        *response_->mutable_tasks(index) = std::move(created->task);
      } else if (first_error_.ok()) {
        first_error_ = absl::Status(created.status().code(),
                                    absl::StrCat("requests[", index, "]: ",
                                                 created.status().message()));
      }
      if (--remaining_ > 0) return;
      status = first_error_;
    }
    if (!status.ok()) response_->clear_tasks();
    reactor_->Finish(ToGrpcStatus(status));
    delete this;
  }

 private:
  grpc::ServerUnaryReactor* const reactor_;
  taskmesh::v1::BatchCreateTasksResponse* const response_;
  absl::Mutex mu_;
  int remaining_ ABSL_GUARDED_BY(mu_);
  absl::Status first_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

grpc::ServerUnaryReactor* TaskServiceImpl::CreateTask(
    grpc::CallbackServerContext* context, const taskmesh::v1::CreateTaskRequest* request,
    Task* response) {
  const absl::Time now = absl::Now();
  absl::StatusOr<std::string> queue = ValidateCreate(*request, "", now);
  if (!queue.ok()) return FinishNow(context, queue.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // An empty id: the broker picks a new one.
  broker_->Create(*queue, request->task_id(), request->task(),
                  [reactor, response](absl::StatusOr<broker::Broker::Created> created) {
                    if (created.ok()) *response = std::move(created->task);
                    reactor->Finish(ToGrpcStatus(created.status()));
                  });
  return reactor;
}

grpc::ServerUnaryReactor* TaskServiceImpl::BatchCreateTasks(
    grpc::CallbackServerContext* context, const taskmesh::v1::BatchCreateTasksRequest* request,
    taskmesh::v1::BatchCreateTasksResponse* response) {
  absl::StatusOr<std::string> queue = ParseQueueName(request->parent(), "parent");
  if (!queue.ok()) return FinishNow(context, queue.status());
  const int n = request->requests_size();
  if (n == 0 || n > kMaxBatch) {
    return FinishNow(context, absl::InvalidArgumentError(absl::StrCat(
                                  "requests: must hold 1 to ", kMaxBatch, " tasks; got ", n)));
  }
  const absl::Time now = absl::Now();
  std::vector<std::string> ids(n);
  for (int i = 0; i < n; ++i) {
    const auto& r = request->requests(i);
    const std::string prefix = absl::StrCat("requests[", i, "].");
    absl::StatusOr<std::string> q = ValidateCreate(r, prefix, now);
    if (!q.ok()) return FinishNow(context, q.status());
    if (!q->empty() && *q != *queue) {
      return FinishNow(context, absl::InvalidArgumentError(absl::StrCat(
                                    prefix, "parent: must be empty or equal the batch's parent")));
    }
    ids[i] = r.task_id();  // Empty: the broker picks a new one.
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto* state = new BatchState(reactor, response, n);
  std::vector<broker::Broker::NewTask> tasks;
  tasks.reserve(n);
  for (int i = 0; i < n; ++i) {
    tasks.push_back({std::move(ids[i]), request->requests(i).task(),
                     [state, i](absl::StatusOr<broker::Broker::Created> created) {
                       state->Done(i, std::move(created));
                     }});
  }
  broker_->CreateMany(*queue, std::move(tasks));
  return reactor;
}

grpc::ServerUnaryReactor* TaskServiceImpl::GetTask(grpc::CallbackServerContext* context,
                                                   const taskmesh::v1::GetTaskRequest* request,
                                                   Task* response) {
  absl::StatusOr<TaskRef> ref = ParseTaskName(request->name(), "name");
  if (!ref.ok()) return FinishNow(context, ref.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  broker_->Get(ref->queue, ref->id, [reactor, response](absl::StatusOr<Task> task) {
    if (task.ok()) *response = *std::move(task);
    reactor->Finish(ToGrpcStatus(task.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* TaskServiceImpl::ListTasks(grpc::CallbackServerContext* context,
                                                     const taskmesh::v1::ListTasksRequest* request,
                                                     taskmesh::v1::ListTasksResponse* response) {
  absl::StatusOr<std::string> queue = ParseQueueName(request->parent(), "parent");
  if (!queue.ok()) return FinishNow(context, queue.status());
  if (absl::Status s = ValidatePageSize(request->page_size()); !s.ok()) {
    return FinishNow(context, s);
  }
  if (!Task::State_IsValid(request->state())) {
    return FinishNow(context, absl::InvalidArgumentError(
                                  absl::StrCat("state: unknown state ", request->state())));
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  broker_->List(*queue, request->state(), request->page_size(), request->page_token(),
                [reactor, response](absl::StatusOr<broker::Broker::TaskPage> page) {
                  if (page.ok()) {
                    for (Task& t : page->tasks) *response->add_tasks() = std::move(t);
                    response->set_next_page_token(page->next_page_token);
                  }
                  reactor->Finish(ToGrpcStatus(page.status()));
                });
  return reactor;
}

// The RPCs that act on one task by name and answer with the task.
template <typename Request, typename Call>
grpc::ServerUnaryReactor* OnTask(grpc::CallbackServerContext* context, const Request& request,
                                 Task* response, Call call) {
  absl::StatusOr<TaskRef> ref = ParseTaskName(request.name(), "name");
  if (!ref.ok()) return FinishNow(context, ref.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  call(ref->queue, ref->id, [reactor, response](absl::StatusOr<Task> task) {
    if (task.ok()) *response = *std::move(task);
    reactor->Finish(ToGrpcStatus(task.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* TaskServiceImpl::CancelTask(grpc::CallbackServerContext* context,
                                                      const taskmesh::v1::CancelTaskRequest* request,
                                                      Task* response) {
  return OnTask(context, *request, response, [this](auto queue, auto id, auto done) {
    broker_->Cancel(queue, id, std::move(done));
  });
}

grpc::ServerUnaryReactor* TaskServiceImpl::RetryTask(grpc::CallbackServerContext* context,
                                                     const taskmesh::v1::RetryTaskRequest* request,
                                                     Task* response) {
  return OnTask(context, *request, response, [this](auto queue, auto id, auto done) {
    broker_->Retry(queue, id, std::move(done));
  });
}

grpc::ServerUnaryReactor* TaskServiceImpl::DeleteTask(grpc::CallbackServerContext* context,
                                                      const taskmesh::v1::DeleteTaskRequest* request,
                                                      google::protobuf::Empty*) {
  absl::StatusOr<TaskRef> ref = ParseTaskName(request->name(), "name");
  if (!ref.ok()) return FinishNow(context, ref.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  broker_->Delete(ref->queue, ref->id, [reactor](absl::StatusOr<bool> deleted) {
    reactor->Finish(ToGrpcStatus(deleted.status()));
  });
  return reactor;
}

grpc::ServerWriteReactor<Task>* TaskServiceImpl::WatchTask(
    grpc::CallbackServerContext*, const taskmesh::v1::WatchTaskRequest* request) {
  return StartWatch(broker_, hub_, request->name());
}

// The RPCs that act on one queue by name and answer with the queue.
template <typename Request, typename Call>
grpc::ServerUnaryReactor* OnQueue(grpc::CallbackServerContext* context, const Request& request,
                                  taskmesh::v1::Queue* response, Call call) {
  absl::StatusOr<std::string> queue = ParseQueueName(request.name(), "name");
  if (!queue.ok()) return FinishNow(context, queue.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  call(*queue, [reactor, response](absl::StatusOr<taskmesh::v1::Queue> q) {
    if (q.ok()) *response = *std::move(q);
    reactor->Finish(ToGrpcStatus(q.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* TaskServiceImpl::GetQueue(grpc::CallbackServerContext* context,
                                                    const taskmesh::v1::GetQueueRequest* request,
                                                    taskmesh::v1::Queue* response) {
  return OnQueue(context, *request, response,
                 [this](auto queue, auto done) { broker_->GetQueue(queue, std::move(done)); });
}

grpc::ServerUnaryReactor* TaskServiceImpl::ListQueues(
    grpc::CallbackServerContext* context, const taskmesh::v1::ListQueuesRequest* request,
    taskmesh::v1::ListQueuesResponse* response) {
  if (absl::Status s = ValidatePageSize(request->page_size()); !s.ok()) {
    return FinishNow(context, s);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  broker_->ListQueues(request->page_size(), request->page_token(),
                      [reactor, response](absl::StatusOr<broker::Broker::QueuePage> page) {
                        if (page.ok()) {
                          for (auto& q : page->queues) *response->add_queues() = std::move(q);
                          response->set_next_page_token(page->next_page_token);
                        }
                        reactor->Finish(ToGrpcStatus(page.status()));
                      });
  return reactor;
}

grpc::ServerUnaryReactor* TaskServiceImpl::UpdateQueue(
    grpc::CallbackServerContext* context, const taskmesh::v1::UpdateQueueRequest* request,
    taskmesh::v1::Queue* response) {
  absl::StatusOr<std::string> queue = ParseQueueName(request->queue().name(), "queue.name");
  if (!queue.ok()) return FinishNow(context, queue.status());
  bool rate_named = request->update_mask().paths().empty();
  bool partitions_named = false;
  for (const std::string& path : request->update_mask().paths()) {
    if (path == "rate_limit" || path == "rateLimit") {
      rate_named = true;
    } else if (path == "partitions") {
      partitions_named = true;
    } else {
      return FinishNow(context, absl::InvalidArgumentError(absl::StrCat(
                                    "update_mask: only rate_limit and partitions can be "
                                    "updated; got '",
                                    path, "'")));
    }
  }
  const double rate = request->queue().rate_limit();
  if (rate_named && !(rate >= 0 && rate <= kMaxRateLimit)) {
    return FinishNow(context, absl::InvalidArgumentError(absl::StrCat(
                                  "queue.rate_limit: must be from 0 (unlimited) to ",
                                  kMaxRateLimit, " tasks per second")));
  }
  const int partitions = request->queue().partitions();
  if (partitions_named && !(partitions >= 1 && partitions <= broker::kMaxPartitions)) {
    return FinishNow(context, absl::InvalidArgumentError(absl::StrCat(
                                  "queue.partitions: must be from 1 to ", broker::kMaxPartitions,
                                  "; got ", partitions)));
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto finish = [reactor, response](absl::StatusOr<taskmesh::v1::Queue> q) {
    if (q.ok()) *response = *std::move(q);
    reactor->Finish(ToGrpcStatus(q.status()));
  };
  // Partitions first, so that a rate limit set with them is shared by all.
  auto set_rate = [this, queue = *queue, rate, rate_named,
                   finish](absl::StatusOr<taskmesh::v1::Queue> q) mutable {
    if (!q.ok() || !rate_named) {
      finish(std::move(q));
      return;
    }
    broker_->SetRateLimit(queue, rate, finish);
  };
  if (partitions_named) {
    broker_->SetPartitions(*queue, partitions, std::move(set_rate));
  } else {
    set_rate(taskmesh::v1::Queue());
  }
  return reactor;
}

grpc::ServerUnaryReactor* TaskServiceImpl::PauseQueue(grpc::CallbackServerContext* context,
                                                      const taskmesh::v1::PauseQueueRequest* request,
                                                      taskmesh::v1::Queue* response) {
  return OnQueue(context, *request, response, [this](auto queue, auto done) {
    broker_->SetPaused(queue, true, std::move(done));
  });
}

grpc::ServerUnaryReactor* TaskServiceImpl::ResumeQueue(
    grpc::CallbackServerContext* context, const taskmesh::v1::ResumeQueueRequest* request,
    taskmesh::v1::Queue* response) {
  return OnQueue(context, *request, response, [this](auto queue, auto done) {
    broker_->SetPaused(queue, false, std::move(done));
  });
}

grpc::ServerUnaryReactor* TaskServiceImpl::PurgeQueue(grpc::CallbackServerContext* context,
                                                      const taskmesh::v1::PurgeQueueRequest* request,
                                                      taskmesh::v1::PurgeQueueResponse* response) {
  absl::StatusOr<std::string> queue = ParseQueueName(request->name(), "name");
  if (!queue.ok()) return FinishNow(context, queue.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  broker_->Purge(*queue, request->include_pending(),
                 [reactor, response](absl::StatusOr<int64_t> purged) {
                   if (purged.ok()) response->set_purged(*purged);
                   reactor->Finish(ToGrpcStatus(purged.status()));
                 });
  return reactor;
}

}  // namespace taskmesh::task_service
