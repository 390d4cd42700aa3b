// REST through the api_gateway to the real task_service, Redis and a worker,
// all as separate processes: create, read until SUCCEEDED, and watch a task
// as NDJSON and as Server-Sent Events.
#include <signal.h>
#include <sys/wait.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "api_gateway/testing/http_client.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "taskmesh/v1/task.pb.h"
#include "tests/support/binaries.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"

namespace taskmesh {
namespace {

using ::taskmesh::gateway::testing::HttpClient;
using ::taskmesh::gateway::testing::HttpReply;
using ::taskmesh::v1::Task;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Processes listen on port 0 and log `msg=serving ... port=N`: no two tests
// can race for one port.
int ServingPort(testing::Process& p) {
  int port = 0;
  testing::WaitFor(absl::Seconds(20), [&] {
    const std::string log = p.Log();
    const size_t at = log.find(" port=");
    if (log.find("msg=serving") == std::string::npos || at == std::string::npos) return false;
    port = std::atoi(log.c_str() + at + 6);
    return port > 0;
  });
  return port;
}

Task ParseTask(const std::string& json) {
  Task task;
  auto s = google::protobuf::util::JsonStringToMessage(json, &task);
  EXPECT_TRUE(s.ok()) << s.ToString() << " in " << json;
  return task;
}

class GatewayTaskFlowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto redis = testing::RedisServer::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    auto service = testing::Process::Start(
        {testing::BinaryPath("task_service/task_service"), "--listen=127.0.0.1:0",
         absl::StrCat("--redis=", redis_->url())},
        {}, LogPath("task_service"));
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = *std::move(service);
    const int grpc_port = ServingPort(*service_);
    ASSERT_GT(grpc_port, 0) << service_->Log();
    auto worker = testing::Process::Start(
        {testing::BinaryPath("workers/worker"), absl::StrCat("--redis=", redis_->url()),
         "--queues=rest", "--concurrency=2", "--health_listen="},
        {}, LogPath("worker"));
    ASSERT_TRUE(worker.ok()) << worker.status();
    worker_ = *std::move(worker);
    auto gateway = testing::Process::Start(
        {testing::BinaryPath("api_gateway/api_gateway"), "--listen=127.0.0.1:0",
         absl::StrCat("--upstream=127.0.0.1:", grpc_port)},
        {}, LogPath("api_gateway"));
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    gateway_ = *std::move(gateway);
    http_port_ = ServingPort(*gateway_);
    ASSERT_GT(http_port_, 0) << gateway_->Log();
    // Ready once a read goes through the gateway and the service to Redis.
    ASSERT_TRUE(testing::WaitFor(absl::Seconds(20), [&] {
      HttpClient c(http_port_, absl::Seconds(2));
      if (!c.connected()) return false;
      auto r = c.Send("GET", "/v1/queues/rest/tasks/probe");
      return r.ok() && r->status == 404;
    })) << gateway_->Log() << service_->Log();
  }

  void TearDown() override {
    if (HasFailure()) {
      ADD_FAILURE() << "task_service log:\n" << service_->Log() << "\napi_gateway log:\n"
                    << gateway_->Log() << "\nworker log:\n" << worker_->Log();
    }
  }

  // One log per process and test: the port is read back from it.
  static std::string LogPath(const char* process) {
    return absl::StrCat(testing::TestTempDir(), "/",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name(), "-",
                        process, ".log");
  }

  HttpReply Send(const std::string& method, const std::string& target, const std::string& body = "",
                 gateway::testing::Headers headers = {}) {
    if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
    HttpClient c(http_port_, absl::Seconds(30));
    auto r = c.Send(method, target, headers, body);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : HttpReply{};
  }

  Task Create(const std::string& task_json) {
    HttpReply r = Send("POST", "/v1/queues/rest/tasks", task_json);
    EXPECT_EQ(r.status, 200) << r.body;
    return ParseTask(r.body);
  }

  std::unique_ptr<testing::RedisServer> redis_;
  std::unique_ptr<testing::Process> service_;
  std::unique_ptr<testing::Process> worker_;
  std::unique_ptr<testing::Process> gateway_;
  int http_port_ = 0;
};

TEST_F(GatewayTaskFlowTest, CreateThenGetUntilSucceeded) {
  Task created = Create(R"({"type":"echo","payload":{"hello":"rest","n":[1,2]}})");
  EXPECT_THAT(created.name(), StartsWith("queues/rest/tasks/"));
  Task task;
  ASSERT_TRUE(testing::WaitFor(absl::Seconds(20), [&] {
    HttpReply r = Send("GET", "/v1/" + created.name());
    if (r.status != 200) return false;
    task = ParseTask(r.body);
    return task.state() == Task::SUCCEEDED;
  })) << Task::State_Name(task.state()) << "\n" << worker_->Log();
  EXPECT_EQ(task.result().struct_value().fields().at("hello").string_value(), "rest");
  EXPECT_EQ(task.attempt(), 1);
}

TEST_F(GatewayTaskFlowTest, ErrorsAreStatusBodies) {
  HttpReply r = Send("GET", "/v1/queues/rest/tasks/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_THAT(r.body, StartsWith(R"({"code":5,"message":")"));
  r = Send("POST", "/v1/queues/rest/tasks", R"({"type":""})");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, StartsWith(R"({"code":3,"message":")"));
  r = Send("POST", "/v1/queues/rest/tasks", R"({"type":"echo",})");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("malformed JSON at line 1, column 16"));
}

// WatchTask until the task is terminal: every snapshot, in order, ending at
// SUCCEEDED, and nothing that looks like an error.
void ExpectWatchedToSuccess(const std::vector<std::string>& messages, const std::string& name) {
  ASSERT_FALSE(messages.empty());
  int last_state = 0;
  for (const std::string& m : messages) {
    ASSERT_THAT(m, ::testing::Not(HasSubstr("\"error\""))) << m;
    Task t = ParseTask(m);
    EXPECT_EQ(t.name(), name);
    EXPECT_GE(static_cast<int>(t.state()), last_state) << "states went backwards: " << m;
    last_state = static_cast<int>(t.state());
  }
  EXPECT_EQ(ParseTask(messages.back()).state(), Task::SUCCEEDED) << messages.back();
}

TEST_F(GatewayTaskFlowTest, WatchAsNdjson) {
  Task created = Create(R"({"type":"sleep","payload":{"ms":300}})");
  HttpReply r = Send("GET", "/v1/" + created.name() + ":watch");
  ASSERT_EQ(r.status, 200) << "WatchTask through the gateway failed: " << r.body;
  EXPECT_EQ(r.header("content-type"), "application/x-ndjson");
  ExpectWatchedToSuccess(absl::StrSplit(r.body, '\n', absl::SkipEmpty()), created.name());
}

TEST_F(GatewayTaskFlowTest, WatchAsServerSentEvents) {
  Task created = Create(R"({"type":"sleep","payload":{"ms":300}})");
  HttpReply r = Send("GET", "/v1/" + created.name() + ":watch", "", {{"Accept", "text/event-stream"}});
  ASSERT_EQ(r.status, 200) << "WatchTask through the gateway failed: " << r.body;
  EXPECT_EQ(r.header("content-type"), "text/event-stream");
  std::vector<std::string> messages;
  for (absl::string_view event : absl::StrSplit(r.body, "\n\n", absl::SkipEmpty())) {
    ASSERT_THAT(std::string(event), StartsWith("data: ")) << r.body;
    messages.emplace_back(event.substr(6));
  }
  ExpectWatchedToSuccess(messages, created.name());
}

TEST_F(GatewayTaskFlowTest, SigtermStopsTheGatewayCleanly) {
  ASSERT_TRUE(gateway_->Signal(SIGTERM).ok());
  auto status = gateway_->Wait(absl::Seconds(15));
  ASSERT_TRUE(status.ok()) << gateway_->Log();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << gateway_->Log();
}

}  // namespace
}  // namespace taskmesh
