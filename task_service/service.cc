#include "task_service/service.h"

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "broker/ids.h"
#include "common/grpc_status.h"
#include "task_service/validation.h"

namespace taskmesh::task_service {
namespace {

using ::taskmesh::v1::Task;

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* NotImplemented(grpc::CallbackServerContext* context,
                                         absl::string_view method) {
  return FinishNow(context, absl::UnimplementedError(absl::StrCat(
                                "taskmesh.v1.TaskService/", method,
                                " is not implemented in this version of taskmesh")));
}

// Finishes a server stream at once with UNIMPLEMENTED.
class UnimplementedWriter final : public grpc::ServerWriteReactor<Task> {
 public:
  explicit UnimplementedWriter(absl::string_view method) {
    Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        absl::StrCat("taskmesh.v1.TaskService/", method,
                                     " is not implemented in this version of taskmesh")));
  }
  void OnDone() override { delete this; }
};

// Collects the results of a batch: every task is enqueued through the same
// auto-pipelined client, so the batch shares few round trips. The first
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
  const std::string id =
      request->task_id().empty() ? broker::NewTaskId(now) : request->task_id();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  broker_->Create(*queue, id, request->task(),
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
    ids[i] = r.task_id().empty() ? broker::NewTaskId(now) : r.task_id();
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto* state = new BatchState(reactor, response, n);
  for (int i = 0; i < n; ++i) {
    broker_->Create(*queue, ids[i], request->requests(i).task(),
                    [state, i](absl::StatusOr<broker::Broker::Created> created) {
                      state->Done(i, std::move(created));
                    });
  }
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
                                                     const taskmesh::v1::ListTasksRequest*,
                                                     taskmesh::v1::ListTasksResponse*) {
  return NotImplemented(context, "ListTasks");
}

grpc::ServerUnaryReactor* TaskServiceImpl::CancelTask(grpc::CallbackServerContext* context,
                                                      const taskmesh::v1::CancelTaskRequest*,
                                                      Task*) {
  return NotImplemented(context, "CancelTask");
}

grpc::ServerUnaryReactor* TaskServiceImpl::RetryTask(grpc::CallbackServerContext* context,
                                                     const taskmesh::v1::RetryTaskRequest*, Task*) {
  return NotImplemented(context, "RetryTask");
}

grpc::ServerUnaryReactor* TaskServiceImpl::DeleteTask(grpc::CallbackServerContext* context,
                                                      const taskmesh::v1::DeleteTaskRequest*,
                                                      google::protobuf::Empty*) {
  return NotImplemented(context, "DeleteTask");
}

grpc::ServerWriteReactor<Task>* TaskServiceImpl::WatchTask(grpc::CallbackServerContext*,
                                                           const taskmesh::v1::WatchTaskRequest*) {
  return new UnimplementedWriter("WatchTask");
}

grpc::ServerUnaryReactor* TaskServiceImpl::GetQueue(grpc::CallbackServerContext* context,
                                                    const taskmesh::v1::GetQueueRequest*,
                                                    taskmesh::v1::Queue*) {
  return NotImplemented(context, "GetQueue");
}

grpc::ServerUnaryReactor* TaskServiceImpl::ListQueues(grpc::CallbackServerContext* context,
                                                      const taskmesh::v1::ListQueuesRequest*,
                                                      taskmesh::v1::ListQueuesResponse*) {
  return NotImplemented(context, "ListQueues");
}

grpc::ServerUnaryReactor* TaskServiceImpl::PauseQueue(grpc::CallbackServerContext* context,
                                                      const taskmesh::v1::PauseQueueRequest*,
                                                      taskmesh::v1::Queue*) {
  return NotImplemented(context, "PauseQueue");
}

grpc::ServerUnaryReactor* TaskServiceImpl::ResumeQueue(grpc::CallbackServerContext* context,
                                                       const taskmesh::v1::ResumeQueueRequest*,
                                                       taskmesh::v1::Queue*) {
  return NotImplemented(context, "ResumeQueue");
}

grpc::ServerUnaryReactor* TaskServiceImpl::PurgeQueue(grpc::CallbackServerContext* context,
                                                      const taskmesh::v1::PurgeQueueRequest*,
                                                      taskmesh::v1::PurgeQueueResponse*) {
  return NotImplemented(context, "PurgeQueue");
}

}  // namespace taskmesh::task_service
