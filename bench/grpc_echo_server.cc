// grpc_echo_server: the gRPC ceiling. Serves taskmesh.v1.TaskService's
// CreateTask and BatchCreateTasks on the callback API exactly as the real
// task_service does (same messages, same threading), but answers from the
// request at once, without Redis: what loadgen measures against it is the
// cost of gRPC itself, on this machine, with the same client.
//
// Usage: grpc_echo_server --listen=127.0.0.1:50061
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/str_cat.h"
#include "common/flags.h"
#include "common/shutdown.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/grpcpp.h"
#include "taskmesh/v1/task_service.grpc.pb.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50061", "gRPC address (HOST:PORT)");

namespace taskmesh::bench {
namespace {

using ::taskmesh::v1::Task;

// What CreateTask answers: the request's task, named and PENDING.
void Echo(const taskmesh::v1::CreateTaskRequest& request, uint64_t n, Task* out) {
  *out = request.task();
  out->set_name(absl::StrCat(request.parent(), "/tasks/echo", n));
  out->set_state(Task::PENDING);
  *out->mutable_create_time() = google::protobuf::util::TimeUtil::GetCurrentTime();
}

class EchoService final : public taskmesh::v1::TaskService::CallbackService {
 public:
  grpc::ServerUnaryReactor* CreateTask(grpc::CallbackServerContext* context,
                                       const taskmesh::v1::CreateTaskRequest* request,
                                       Task* response) override {
    Echo(*request, next_.fetch_add(1, std::memory_order_relaxed), response);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* BatchCreateTasks(
      grpc::CallbackServerContext* context, const taskmesh::v1::BatchCreateTasksRequest* request,
      taskmesh::v1::BatchCreateTasksResponse* response) override {
    for (const auto& r : request->requests()) {
      Echo(r, next_.fetch_add(1, std::memory_order_relaxed), response->add_tasks());
    }
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  std::atomic<uint64_t> next_{0};
};

int Main() {
  BlockShutdownSignals();
  EchoService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "ERROR: cannot listen on %s\n", absl::GetFlag(FLAGS_listen).c_str());
    return 1;
  }
  std::fprintf(stderr, "grpc_echo_server: serving on port %d\n", port);
  WaitForShutdownSignal();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}

}  // namespace
}  // namespace taskmesh::bench

int main(int argc, char** argv) {
  // Debian's Abseil is built without NDEBUG: every absl::Mutex (gRPC's too)
  // would run deadlock detection, 3x the cost of a lock. Not in a benchmark.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  taskmesh::ParseFlags(argc, argv, "grpc_echo_server: TaskService.CreateTask without Redis.");
  return taskmesh::bench::Main();
}
