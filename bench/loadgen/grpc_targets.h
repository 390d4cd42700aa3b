// gRPC targets for the Runner, against taskmesh.v1.TaskService (the real
// task_service, or bench's bare echo server, which serves the same methods).
//
//   CreateTarget     CreateTask, unary (callback API)
//   BatchTarget      BatchCreateTasks of N tasks, unary (callback API)
//   RoundTripTarget  CreateTask, then WatchTask until the task is terminal
//                    (blocking; one thread per concurrency slot)
//
// Thread-safe. Requests are spread over `channels` separate HTTP/2
// connections.
#ifndef TASKMESH_BENCH_LOADGEN_GRPC_TARGETS_H_
#define TASKMESH_BENCH_LOADGEN_GRPC_TARGETS_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "bench/loadgen/runner.h"
#include "grpcpp/grpcpp.h"
#include "taskmesh/v1/task_service.grpc.pb.h"

namespace taskmesh::bench {

struct GrpcOptions {
  std::string server = "127.0.0.1:50051";
  int channels = 1;
  absl::Duration deadline = absl::Seconds(10);
};

// Channels to one server, each its own connection.
class Channels {
 public:
  explicit Channels(const GrpcOptions& options);
  taskmesh::v1::TaskService::Stub* Next();
  // Waits until every channel is connected; false after `timeout`.
  bool WaitConnected(absl::Duration timeout);
  const GrpcOptions& options() const { return options_; }

 private:
  GrpcOptions options_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<taskmesh::v1::TaskService::Stub>> stubs_;
  std::atomic<uint64_t> next_{0};
};

class CreateTarget : public Target {
 public:
  CreateTarget(Channels* channels, taskmesh::v1::CreateTaskRequest request)
      : channels_(channels), request_(std::move(request)) {}
  void Issue(Done done) override;

 private:
  Channels* const channels_;
  const taskmesh::v1::CreateTaskRequest request_;
};

class BatchTarget : public Target {
 public:
  BatchTarget(Channels* channels, taskmesh::v1::BatchCreateTasksRequest request)
      : channels_(channels), request_(std::move(request)) {}
  void Issue(Done done) override;
  int ItemsPerRequest() const override { return request_.requests_size(); }

 private:
  Channels* const channels_;
  const taskmesh::v1::BatchCreateTasksRequest request_;
};

class RoundTripTarget : public Target {
 public:
  RoundTripTarget(Channels* channels, taskmesh::v1::CreateTaskRequest request)
      : channels_(channels), request_(std::move(request)) {}
  void Issue(Done done) override { done(kTransportError); }
  bool IsBlocking() const override { return true; }
  // OK only when the task ends SUCCEEDED; ABORTED when it ends otherwise.
  int Call() override;

 private:
  Channels* const channels_;
  const taskmesh::v1::CreateTaskRequest request_;
};

}  // namespace taskmesh::bench

#endif  // TASKMESH_BENCH_LOADGEN_GRPC_TARGETS_H_
