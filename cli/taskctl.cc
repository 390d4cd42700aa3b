// taskctl: a small command-line gRPC client for TaskService.
//
//   taskctl create QUEUE TYPE [PAYLOAD_JSON] [--wait]
//   taskctl get queues/Q/tasks/ID
//   taskctl wait queues/Q/tasks/ID
//
// Prints tasks as JSON on stdout; errors as "ERROR: CODE: message" on stderr
// with a non-zero exit status.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
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
          "With --wait or `wait`: give up after this long");
ABSL_FLAG(bool, wait, false, "create: wait until the task is terminal and print it then");

namespace taskmesh {
namespace {

using ::taskmesh::v1::Task;

constexpr char kUsage[] =
    "taskctl: create and read taskmesh tasks over gRPC.\n\n"
    "Usage:\n"
    "  taskctl create QUEUE TYPE [PAYLOAD_JSON] [--wait]\n"
    "  taskctl get queues/QUEUE/tasks/ID\n"
    "  taskctl wait queues/QUEUE/tasks/ID\n\n"
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

void Print(const Task& task) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  (void)google::protobuf::util::MessageToJsonString(task, &json, options);
  std::fwrite(json.data(), 1, json.size(), stdout);
}

bool Terminal(const Task& t) {
  return t.state() == Task::SUCCEEDED || t.state() == Task::FAILED ||
         t.state() == Task::CANCELLED;
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

  // Polls until terminal (WatchTask is not served yet).
  grpc::Status Wait(const std::string& name, Task* task) {
    const absl::Time deadline = absl::Now() + absl::GetFlag(FLAGS_wait_timeout);
    absl::Duration pause = absl::Milliseconds(5);
    while (true) {
      grpc::Status s = Get(name, task);
      if (!s.ok() || Terminal(*task)) return s;
      if (absl::Now() > deadline) {
        return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                            absl::StrCat(name, " is still ", Task::State_Name(task->state())));
      }
      absl::SleepFor(pause);
      pause = std::min(pause * 2, absl::Milliseconds(250));
    }
  }

 private:
  std::unique_ptr<v1::TaskService::Stub> stub_;
};

int Main(const std::vector<std::string>& args) {
  if (args.size() < 2) return Usage("name a command: create, get or wait");
  Client client(absl::GetFlag(FLAGS_server));
  const std::string& command = args[1];
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
    s = client.Create(request, &task);
    if (s.ok() && absl::GetFlag(FLAGS_wait)) s = client.Wait(task.name(), &task);
  } else if (command == "get" && args.size() == 3) {
    s = client.Get(args[2], &task);
  } else if (command == "wait" && args.size() == 3) {
    s = client.Wait(args[2], &task);
  } else {
    return Usage(absl::StrCat("unknown command or arguments: ", command));
  }
  if (!s.ok()) return Error(s);
  Print(task);
  std::fputc('\n', stdout);
  return 0;
}

}  // namespace
}  // namespace taskmesh

int main(int argc, char** argv) {
  return taskmesh::Main(taskmesh::ParseFlags(argc, argv, taskmesh::kUsage, true));
}
