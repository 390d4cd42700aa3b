// taskctl: a small command-line gRPC client for TaskService.
//
//   taskctl create QUEUE TYPE [PAYLOAD_JSON] [--wait]
//   taskctl get|wait|watch|cancel|retry queues/Q/tasks/ID
//   taskctl list queues/Q [STATE]
//   taskctl queue queues/Q
//   taskctl queues
//
// Prints tasks as JSON on stdout; errors as "ERROR: CODE: message" on stderr
// with a non-zero exit status.
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/flags.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "taskmesh/v1/task_service.grpc.pb.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "TaskService address (HOST:PORT)");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10), "Deadline of each call");
ABSL_FLAG(absl::Duration, wait_timeout, absl::Minutes(5),
          "With --wait, `wait` or `watch`: give up after this long");
ABSL_FLAG(bool, wait, false, "create: wait until the task is terminal and print it then");

namespace taskmesh {
namespace {

using ::taskmesh::v1::Task;

constexpr char kUsage[] =
    "taskctl: create and read taskmesh tasks over gRPC.\n\n"
    "Usage:\n"
    "  taskctl create QUEUE TYPE [PAYLOAD_JSON] [--wait]\n"
    "  taskctl get    queues/QUEUE/tasks/ID   the task now\n"
    "  taskctl wait   queues/QUEUE/tasks/ID   the task once terminal\n"
    "  taskctl watch  queues/QUEUE/tasks/ID   every change until terminal\n"
    "  taskctl cancel queues/QUEUE/tasks/ID\n"
    "  taskctl retry  queues/QUEUE/tasks/ID\n"
    "  taskctl list   queues/QUEUE [STATE]    e.g. STATE=FAILED for dead letters\n"
    "  taskctl queue  queues/QUEUE            depth, running, scheduled, dead, rates\n"
    "  taskctl partition queues/QUEUE K       spread new tasks over K partitions (1-64)\n"
    "  taskctl queues\n\n"
    "Example:\n"
    "  taskctl create default echo '{\"hello\":\"world\"}' --wait";

const char* CodeName(grpc::StatusCode code) {
  static const char* kNames[] = {"OK",        "CANCELLED",         "UNKNOWN",
                                 "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                                 "ALREADY_EXISTS",   "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION", "ABORTED",        "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",    "INTERNAL",          "UNAVAILABLE",
                                 "DATA_LOSS",        "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i < 17 ? kNames[i] : "UNKNOWN";
}

int Error(const grpc::Status& s) {
  std::fprintf(stderr, "ERROR: %s: %s\n", CodeName(s.error_code()), s.error_message().c_str());
  return 1;
}

int Usage(const std::string& why) {
  std::fprintf(stderr, "ERROR: %s (see taskctl --help)\n", why.c_str());
  return 2;
}

void Print(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  std::fwrite(json.data(), 1, json.size(), stdout);
}

class Client {
 public:
  explicit Client(const std::string& server)
      : stub_(v1::TaskService::NewStub(
            grpc::CreateChannel(server, grpc::InsecureChannelCredentials()))) {}

  grpc::Status Create(const v1::CreateTaskRequest& request, Task* task) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_timeout)));
    return stub_->CreateTask(&ctx, request, task);
  }

  grpc::Status Get(const std::string& name, Task* task) {
    v1::GetTaskRequest request;
    request.set_name(name);
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_timeout)));
    return stub_->GetTask(&ctx, request, task);
  }

  // Follows the task with WatchTask until it is terminal; `each` sees every
  // snapshot.
  grpc::Status Watch(const std::string& name, Task* task,
                     const std::function<void(const Task&)>& each) {
    v1::WatchTaskRequest request;
    request.set_name(name);
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_wait_timeout)));
    std::unique_ptr<grpc::ClientReader<Task>> reader = stub_->WatchTask(&ctx, request);
    while (reader->Read(task)) each(*task);
    return reader->Finish();
  }

  template <typename Request, typename Response, typename Method>
  grpc::Status Call(Method method, const Request& request, Response* response) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_timeout)));
    return (stub_.get()->*method)(&ctx, request, response);
  }

 private:
  std::unique_ptr<v1::TaskService::Stub> stub_;
};

// Runs `method` with a request whose `name` is `arg`, and prints the response.
template <typename Request, typename Response, typename Method>
int NameCall(Client& client, Method method, const std::string& arg) {
  Request request;
  request.set_name(arg);
  Response response;
  grpc::Status s = client.Call(method, request, &response);
  if (!s.ok()) return Error(s);
  Print(response);
  std::fputc('\n', stdout);
  return 0;
}

int Main(const std::vector<std::string>& args) {
  if (args.size() < 2) return Usage("name a command (see taskctl --help)");
  Client client(absl::GetFlag(FLAGS_server));
  const std::string& command = args[1];
  using S = v1::TaskService::Stub;
  const std::string arg = args.size() > 2 ? args[2] : "";
  auto ignore = [](const Task&) {};
  Task task;
  grpc::Status s;
  if (command == "create") {
    if (args.size() < 4 || args.size() > 5) return Usage("create QUEUE TYPE [PAYLOAD_JSON]");
    v1::CreateTaskRequest request;
    request.set_parent(absl::StrCat("queues/", args[2]));
    request.mutable_task()->set_type(args[3]);
    if (args.size() == 5) {
      auto parsed = google::protobuf::util::JsonStringToMessage(
          args[4], request.mutable_task()->mutable_payload());
      if (!parsed.ok()) return Usage(absl::StrCat("PAYLOAD_JSON: ", parsed.ToString()));
    }
    s = client.Call(&S::CreateTask, request, &task);
    if (s.ok() && absl::GetFlag(FLAGS_wait)) s = client.Watch(task.name(), &task, ignore);
  } else if (command == "get" && args.size() == 3) {
    return NameCall<v1::GetTaskRequest, Task>(client, &S::GetTask, arg);
  } else if (command == "wait" && args.size() == 3) {
    s = client.Watch(arg, &task, ignore);
  } else if (command == "watch" && args.size() == 3) {
    s = client.Watch(arg, &task, [](const Task& t) {
      std::printf("%s attempt=%d%s\n", Task::State_Name(t.state()).c_str(), t.attempt(),
                  t.has_progress() ? absl::StrCat(" progress=", t.progress().percent(), "% ",
                                                  t.progress().message()).c_str()
                                   : "");
      std::fflush(stdout);
    });
  } else if (command == "cancel" && args.size() == 3) {
    return NameCall<v1::CancelTaskRequest, Task>(client, &S::CancelTask, arg);
  } else if (command == "retry" && args.size() == 3) {
    return NameCall<v1::RetryTaskRequest, Task>(client, &S::RetryTask, arg);
  } else if (command == "queue" && args.size() == 3) {
    return NameCall<v1::GetQueueRequest, v1::Queue>(client, &S::GetQueue, arg);
  } else if (command == "partition" && args.size() == 4) {
    int k = 0;
    if (!absl::SimpleAtoi(args[3], &k)) return Usage(absl::StrCat("K: not a number: ", args[3]));
    v1::UpdateQueueRequest request;
    request.mutable_queue()->set_name(arg);
    request.mutable_queue()->set_partitions(k);
    request.mutable_update_mask()->add_paths("partitions");
    v1::Queue queue;
    s = client.Call(&S::UpdateQueue, request, &queue);
    if (!s.ok()) return Error(s);
    Print(queue);
    std::fputc('\n', stdout);
    return 0;
  } else if (command == "queues" && args.size() == 2) {
    v1::ListQueuesResponse response;
    s = client.Call(&S::ListQueues, v1::ListQueuesRequest(), &response);
    if (!s.ok()) return Error(s);
    Print(response);
    std::fputc('\n', stdout);
    return 0;
  } else if (command == "list" && (args.size() == 3 || args.size() == 4)) {
    v1::ListTasksRequest request;
    request.set_parent(arg);
    if (args.size() == 4) {
      Task::State state;
      if (!Task::State_Parse(args[3], &state)) return Usage(absl::StrCat("unknown state ", args[3]));
      request.set_state(state);
    }
    v1::ListTasksResponse response;
    s = client.Call(&S::ListTasks, request, &response);
    if (!s.ok()) return Error(s);
    Print(response);
    std::fputc('\n', stdout);
    return 0;
  } else {
    return Usage(absl::StrCat("unknown command or arguments: ", command));
  }
  if (!s.ok()) return Error(s);
  if (command != "watch") {
    Print(task);
    std::fputc('\n', stdout);
  }
  return 0;
}

}  // namespace
}  // namespace taskmesh

int main(int argc, char** argv) {
  return taskmesh::Main(taskmesh::ParseFlags(argc, argv, taskmesh::kUsage, true));
}
