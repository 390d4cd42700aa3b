// TaskServiceImpl: the gRPC TaskService on the callback API.
//
// No handler ever blocks a gRPC thread: each RPC validates its request,
// hands the Redis work to the Broker (auto-pipelined by redis::Client) and
// finishes its reactor from the Broker's callback.
//
// Thread-safe. Owns neither the Broker nor the WatchHub.
//
// Example:
//   TaskServiceImpl service(&broker, &hub);
//   grpc::ServerBuilder builder;
//   builder.RegisterService(&service);
#ifndef TASKMESH_TASK_SERVICE_SERVICE_H_
#define TASKMESH_TASK_SERVICE_SERVICE_H_

#include "broker/broker.h"
#include "grpcpp/grpcpp.h"
#include "broker/watch_hub.h"
#include "taskmesh/v1/task_service.grpc.pb.h"

namespace taskmesh::task_service {

class TaskServiceImpl final : public taskmesh::v1::TaskService::CallbackService {
 public:
  TaskServiceImpl(broker::Broker* broker, broker::WatchHub* hub) : broker_(broker), hub_(hub) {}

  grpc::ServerUnaryReactor* CreateTask(grpc::CallbackServerContext* context,
                                       const taskmesh::v1::CreateTaskRequest* request,
                                       taskmesh::v1::Task* response) override;

  grpc::ServerUnaryReactor* BatchCreateTasks(
      grpc::CallbackServerContext* context, const taskmesh::v1::BatchCreateTasksRequest* request,
      taskmesh::v1::BatchCreateTasksResponse* response) override;

  grpc::ServerUnaryReactor* GetTask(grpc::CallbackServerContext* context,
                                    const taskmesh::v1::GetTaskRequest* request,
                                    taskmesh::v1::Task* response) override;

  grpc::ServerUnaryReactor* ListTasks(grpc::CallbackServerContext* context,
                                      const taskmesh::v1::ListTasksRequest* request,
                                      taskmesh::v1::ListTasksResponse* response) override;
  grpc::ServerUnaryReactor* CancelTask(grpc::CallbackServerContext* context,
                                       const taskmesh::v1::CancelTaskRequest* request,
                                       taskmesh::v1::Task* response) override;
  grpc::ServerUnaryReactor* RetryTask(grpc::CallbackServerContext* context,
                                      const taskmesh::v1::RetryTaskRequest* request,
                                      taskmesh::v1::Task* response) override;
  grpc::ServerUnaryReactor* DeleteTask(grpc::CallbackServerContext* context,
                                       const taskmesh::v1::DeleteTaskRequest* request,
                                       google::protobuf::Empty* response) override;
  grpc::ServerWriteReactor<taskmesh::v1::Task>* WatchTask(
      grpc::CallbackServerContext* context,
      const taskmesh::v1::WatchTaskRequest* request) override;
  grpc::ServerUnaryReactor* GetQueue(grpc::CallbackServerContext* context,
                                     const taskmesh::v1::GetQueueRequest* request,
                                     taskmesh::v1::Queue* response) override;
  grpc::ServerUnaryReactor* ListQueues(grpc::CallbackServerContext* context,
                                       const taskmesh::v1::ListQueuesRequest* request,
                                       taskmesh::v1::ListQueuesResponse* response) override;
  grpc::ServerUnaryReactor* UpdateQueue(grpc::CallbackServerContext* context,
                                        const taskmesh::v1::UpdateQueueRequest* request,
                                        taskmesh::v1::Queue* response) override;
  grpc::ServerUnaryReactor* PauseQueue(grpc::CallbackServerContext* context,
                                       const taskmesh::v1::PauseQueueRequest* request,
                                       taskmesh::v1::Queue* response) override;
  grpc::ServerUnaryReactor* ResumeQueue(grpc::CallbackServerContext* context,
                                        const taskmesh::v1::ResumeQueueRequest* request,
                                        taskmesh::v1::Queue* response) override;
  grpc::ServerUnaryReactor* PurgeQueue(grpc::CallbackServerContext* context,
                                       const taskmesh::v1::PurgeQueueRequest* request,
                                       taskmesh::v1::PurgeQueueResponse* response) override;

 private:
  broker::Broker* const broker_;
  broker::WatchHub* const hub_;
};

}  // namespace taskmesh::task_service

#endif  // TASKMESH_TASK_SERVICE_SERVICE_H_
