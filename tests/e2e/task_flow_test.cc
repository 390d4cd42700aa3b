// A task from gRPC in to result out, through the real binaries: a private
// redis-server, the task_service and a worker, as separate processes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sys/wait.h>

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "taskmesh/v1/task_service.grpc.pb.h"
#include "tests/support/binaries.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"

namespace taskmesh {
namespace {

using ::taskmesh::v1::Task;
using ::testing::HasSubstr;

class TaskFlowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto redis = testing::RedisServer::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);

    const int port = testing::PickUnusedPort();
    auto service = testing::Process::Start(
        {testing::BinaryPath("task_service/task_service"), absl::StrCat("--listen=127.0.0.1:", port),
         absl::StrCat("--redis=", redis_->url())},
        {}, absl::StrCat(testing::TestTempDir(), "/task_service.log"));
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = *std::move(service);
    stub_ = v1::TaskService::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                                         grpc::InsecureChannelCredentials()));
    // Ready once a read reaches Redis (NOT_FOUND), not merely the port.
    ASSERT_TRUE(testing::WaitFor(absl::Seconds(15), [&] {
      Task t;
      return Get("queues/e2e/tasks/probe", &t).error_code() == grpc::StatusCode::NOT_FOUND;
    })) << service_->Log();
  }

  void StartWorker() {
    metrics_port_ = testing::PickUnusedPort();
    auto worker = testing::Process::Start(
        {testing::BinaryPath("workers/worker"), absl::StrCat("--redis=", redis_->url()),
         "--queues=e2e,other", "--concurrency=2", "--health_listen=127.0.0.1:0",
         "--drain_timeout=5s", "--retry_base=50ms",
         absl::StrCat("--metrics_listen=127.0.0.1:", metrics_port_)},
        {}, absl::StrCat(testing::TestTempDir(), "/worker.log"));
    ASSERT_TRUE(worker.ok()) << worker.status();
    worker_ = *std::move(worker);
  }

  grpc::Status Create(const std::string& json, Task* task) {
    v1::CreateTaskRequest request;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &request).ok()) << json;
    request.set_parent("queues/e2e");
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    return stub_->CreateTask(&ctx, request, task);
  }

  grpc::Status Get(const std::string& name, Task* task) {
    v1::GetTaskRequest request;
    request.set_name(name);
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    return stub_->GetTask(&ctx, request, task);
  }

  Task CreateOk(const std::string& json) {
    Task task;
    grpc::Status s = Create(json, &task);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return task;
  }

  Task AwaitTerminal(const std::string& name) {
    Task task;
    const bool done = testing::WaitFor(absl::Seconds(20), [&] {
      return Get(name, &task).ok() &&
             (task.state() == Task::SUCCEEDED || task.state() == Task::FAILED);
    });
    EXPECT_TRUE(done) << name << " is " << Task::State_Name(task.state()) << "\nworker log:\n"
                      << (worker_ ? worker_->Log() : "(no worker)");
    return task;
  }

  // SIGTERM; the process must exit 0 within `timeout`.
  static void ExpectCleanExit(testing::Process& p, absl::Duration timeout) {
    ASSERT_TRUE(p.Signal(SIGTERM).ok());
    auto status = p.Wait(timeout);
    ASSERT_TRUE(status.ok()) << "did not exit after SIGTERM:\n" << p.Log();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << p.Log();
  }

  // The body of GET /metrics from the worker ("" on failure).
  std::string ScrapeWorker() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(metrics_port_);
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    std::string response;
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      const std::string request = "GET /metrics HTTP/1.1\r\nHost: worker\r\n\r\n";
      (void)!send(fd, request.data(), request.size(), 0);
      char buf[4096];
      ssize_t n;
      while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, n);
    }
    close(fd);
    return response;
  }

  int metrics_port_ = 0;
  std::unique_ptr<testing::RedisServer> redis_;
  std::unique_ptr<testing::Process> service_;
  std::unique_ptr<testing::Process> worker_;
  std::unique_ptr<v1::TaskService::Stub> stub_;
};

TEST_F(TaskFlowTest, TasksGoFromCreateToTheirOutcome) {
  // Created while no worker runs: waits in the stream.
  Task early = CreateOk(R"({"task":{"type":"echo","payload":{"created":"before any worker"}}})");
  Task pending;
  ASSERT_TRUE(Get(early.name(), &pending).ok());
  EXPECT_EQ(pending.state(), Task::PENDING);

  StartWorker();
  Task echo = CreateOk(R"({"task":{"type":"echo","payload":{"hello":"world","n":[1,2]}}})");
  Task sha = CreateOk(R"({"task":{"type":"sha256","payload":{"data":"abc","rounds":1000}}})");
  Task fail = CreateOk(R"({"task":{"type":"fail","maxAttempts":2,"payload":{"message":"boom"}}})");
  Task unknown = CreateOk(R"({"task":{"type":"no_such_handler"}})");

  Task e = AwaitTerminal(early.name());
  EXPECT_EQ(e.state(), Task::SUCCEEDED);
  EXPECT_EQ(e.result().struct_value().fields().at("created").string_value(), "before any worker");

  e = AwaitTerminal(echo.name());
  EXPECT_EQ(e.state(), Task::SUCCEEDED);
  EXPECT_EQ(e.result().struct_value().fields().at("hello").string_value(), "world");
  EXPECT_EQ(e.attempt(), 1);
  EXPECT_TRUE(e.has_start_time());
  EXPECT_TRUE(e.has_end_time());

  Task s = AwaitTerminal(sha.name());
  EXPECT_EQ(s.state(), Task::SUCCEEDED);
  EXPECT_EQ(s.result().struct_value().fields().at("rounds").number_value(), 1000);
  EXPECT_EQ(s.result().struct_value().fields().at("sha256").string_value().size(), 64u);

  Task f = AwaitTerminal(fail.name());
  EXPECT_EQ(f.state(), Task::FAILED);
  EXPECT_EQ(f.attempt(), 2);
  EXPECT_EQ(f.last_error().message(), "boom");
  EXPECT_EQ(f.last_error().code(), static_cast<int>(grpc::StatusCode::INTERNAL));

  Task u = AwaitTerminal(unknown.name());
  EXPECT_EQ(u.state(), Task::FAILED);
  EXPECT_EQ(u.attempt(), 1);
  EXPECT_THAT(u.last_error().message(), HasSubstr("no handler for task type 'no_such_handler'"));

  // The worker's Prometheus endpoint counts what it did: early, echo and
  // sha256 succeeded; fail retried once then failed; unknown failed.
  // (Polled: the worker counts an outcome once Redis has confirmed it.)
  std::string metrics;
  testing::WaitFor(absl::Seconds(5), [&] {
    metrics = ScrapeWorker();
    return absl::StrContains(metrics, "outcome=\"failed\"} 2\n");
  });
  EXPECT_THAT(metrics, HasSubstr("HTTP/1.1 200 OK"));
  EXPECT_THAT(metrics, HasSubstr("taskmesh_worker_outcomes_total{outcome=\"succeeded\"} 3\n"));
  EXPECT_THAT(metrics, HasSubstr("taskmesh_worker_outcomes_total{outcome=\"retried\"} 1\n"));
  EXPECT_THAT(metrics, HasSubstr("taskmesh_worker_outcomes_total{outcome=\"failed\"} 2\n"));
  EXPECT_THAT(metrics, HasSubstr("taskmesh_worker_outcomes_total{outcome=\"fenced\"} 0\n"));
  EXPECT_THAT(metrics, HasSubstr("taskmesh_worker_redis_connected 1\n"));

  ExpectCleanExit(*worker_, absl::Seconds(10));
  ExpectCleanExit(*service_, absl::Seconds(10));
}

TEST_F(TaskFlowTest, WorkerDrainsInFlightTaskOnSigterm) {
  StartWorker();
  Task slow = CreateOk(R"({"task":{"type":"sleep","payload":{"ms":500}}})");
  ASSERT_TRUE(testing::WaitFor(absl::Seconds(10), [&] {
    Task t;
    return Get(slow.name(), &t).ok() && t.state() == Task::RUNNING;
  }));
  ExpectCleanExit(*worker_, absl::Seconds(10));
  Task t;
  ASSERT_TRUE(Get(slow.name(), &t).ok());
  EXPECT_EQ(t.state(), Task::SUCCEEDED);
}

TEST_F(TaskFlowTest, BadRequestAndUnknownTaskGetClearErrors) {
  Task t;
  grpc::Status s = Create(R"({"task":{"type":"echo","maxAttempts":1000}})", &t);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("task.max_attempts"));
  s = Get("queues/e2e/tasks/nope", &t);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace taskmesh
