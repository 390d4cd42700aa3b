// TaskService over real gRPC (in-process server on a free port) and a real
// redis-server.
#include "task_service/service.h"

#include <memory>
#include <string>

#include "redis/client.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "broker/partitions.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "broker/consumer.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"

namespace taskmesh::task_service {
namespace {

using ::taskmesh::v1::Task;
using ::testing::HasSubstr;

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    redis_ = *std::move(server);
    redis::ClientOptions options;
    options.connection = redis_->options();
    options.connection.command_timeout = absl::Milliseconds(500);
    client_ = std::make_unique<redis::Client>(options);
    broker_ = std::make_unique<broker::Broker>(client_.get(), broker::BrokerOptions{});
    const redis::ConnectionOptions node = redis_->options();
    hub_ = std::make_unique<broker::WatchHub>(node, [node](const std::string&) { return node; });
    service_ = std::make_unique<TaskServiceImpl>(broker_.get(), hub_.get());
    broker::ConsumerOptions consumer_options;
    consumer_options.consumer = "test";
    consumer_ = std::make_unique<broker::Consumer>(client_.get(), broker::BrokerOptions{},
                                                   consumer_options);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(port, 0);
    stub_ = taskmesh::v1::TaskService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  // Plays a worker: starts the queue's next task.
  broker::Lease StartNext(const std::string& queue) {
    EXPECT_TRUE(consumer_->EnsureGroups({queue}).ok());
    auto f = consumer_->Fetch(queue, 1);
    EXPECT_TRUE(f.ok() && f->leases.size() == 1);
    return f.ok() && !f->leases.empty() ? f->leases[0] : broker::Lease{};
  }

  void Finish(const broker::Lease& lease, const std::string& result) {
    broker::Outcome outcome;
    outcome.result = broker::Blob{false, result};
    absl::Notification done;
    consumer_->Complete(lease, outcome, absl::ZeroDuration(),
                        [&](absl::StatusOr<broker::Completion>) { done.Notify(); });
    done.WaitForNotification();
  }

  grpc::Status Create(const std::string& json, Task* task, absl::Duration deadline = absl::Seconds(5)) {
    taskmesh::v1::CreateTaskRequest request;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &request).ok()) << json;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    return stub_->CreateTask(&ctx, request, task);
  }

  grpc::Status Get(const std::string& name, Task* task) {
    taskmesh::v1::GetTaskRequest request;
    request.set_name(name);
    grpc::ClientContext ctx;
    return stub_->GetTask(&ctx, request, task);
  }

  std::unique_ptr<testing::RedisServer> redis_;
  std::unique_ptr<redis::Client> client_;
  std::unique_ptr<broker::Broker> broker_;
  std::unique_ptr<broker::WatchHub> hub_;
  std::unique_ptr<broker::Consumer> consumer_;
  std::unique_ptr<TaskServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<taskmesh::v1::TaskService::Stub> stub_;
};

TEST_F(ServiceTest, CreateThenGet) {
  Task created;
  grpc::Status s = Create(R"({"parent":"queues/emails","task":{"type":"echo","payload":{"to":"a@b"},
                               "labels":{"k":"v"}}})", &created);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(created.name(), ::testing::StartsWith("queues/emails/tasks/"));
  EXPECT_EQ(created.name().size(), std::string("queues/emails/tasks/").size() + 26);
  EXPECT_EQ(created.state(), Task::PENDING);
  EXPECT_EQ(created.max_attempts(), 3);
  EXPECT_TRUE(created.has_create_time());

  Task got;
  ASSERT_TRUE(Get(created.name(), &got).ok());
  EXPECT_EQ(got.name(), created.name());
  EXPECT_EQ(got.payload().struct_value().fields().at("to").string_value(), "a@b");
  EXPECT_EQ(got.labels().at("k"), "v");
  EXPECT_EQ(got.create_time().seconds(), created.create_time().seconds());
}

TEST_F(ServiceTest, ClientChosenIdAndAlreadyExists) {
  Task t;
  ASSERT_TRUE(Create(R"({"parent":"queues/q","taskId":"mine","task":{"type":"echo"}})", &t).ok());
  EXPECT_EQ(t.name(), "queues/q/tasks/mine");
  grpc::Status again = Create(R"({"parent":"queues/q","taskId":"mine","task":{"type":"echo"}})", &t);
  EXPECT_EQ(again.error_code(), grpc::StatusCode::ALREADY_EXISTS);
}

TEST_F(ServiceTest, RequestIdMakesCreateIdempotent) {
  Task a, b;
  ASSERT_TRUE(Create(R"({"parent":"queues/q","task":{"type":"echo","requestId":"r-1"}})", &a).ok());
  ASSERT_TRUE(Create(R"({"parent":"queues/q","task":{"type":"echo","requestId":"r-1"}})", &b).ok());
  EXPECT_EQ(a.name(), b.name());
  EXPECT_EQ(client_->Call({"XLEN", "taskmesh:{q}:stream"})->integer(), 1);
}

TEST_F(ServiceTest, BadRequestsAreInvalidArgumentNamingTheField) {
  Task t;
  grpc::Status s = Create(R"({"parent":"queues/q","task":{"type":""}})", &t);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("task.type"));
  s = Create(R"({"parent":"nope","task":{"type":"echo"}})", &t);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("parent"));
  s = Get("queues/q/oops", &t);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("name"));
}

TEST_F(ServiceTest, UnknownTaskIsNotFound) {
  Task t;
  grpc::Status s = Get("queues/q/tasks/does-not-exist", &t);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("queues/q/tasks/does-not-exist"));
}

TEST_F(ServiceTest, BatchCreatesEveryTaskInOrder) {
  taskmesh::v1::BatchCreateTasksRequest request;
  request.set_parent("queues/b");
  for (int i = 0; i < 100; ++i) {
    auto* r = request.add_requests();
    r->set_task_id(absl::StrCat("t", i));
    r->mutable_task()->set_type("echo");
  }
  taskmesh::v1::BatchCreateTasksResponse response;
  grpc::ClientContext ctx;
  grpc::Status s = stub_->BatchCreateTasks(&ctx, request, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(response.tasks_size(), 100);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(response.tasks(i).name(), absl::StrCat("queues/b/tasks/t", i));
  }
  EXPECT_EQ(client_->Call({"XLEN", "taskmesh:{b}:stream"})->integer(), 100);
}

TEST_F(ServiceTest, BatchRejectsABadEntryBeforeWritingAnything) {
  taskmesh::v1::BatchCreateTasksRequest request;
  request.set_parent("queues/b");
  request.add_requests()->mutable_task()->set_type("echo");
  request.add_requests()->mutable_task()->set_type("");
  taskmesh::v1::BatchCreateTasksResponse response;
  grpc::ClientContext ctx;
  grpc::Status s = stub_->BatchCreateTasks(&ctx, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("requests[1].task.type"));
  EXPECT_EQ(client_->Call({"EXISTS", "taskmesh:{b}:stream"})->integer(), 0);
}

TEST_F(ServiceTest, RedisDownIsUnavailableWithinTheDeadlineNeverOk) {
  ASSERT_TRUE(redis_->Kill().ok());
  Task t;
  const absl::Time start = absl::Now();
  grpc::Status s = Create(R"({"parent":"queues/q","task":{"type":"echo"}})", &t, absl::Seconds(3));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  s = Get("queues/q/tasks/x", &t);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
}

TEST_F(ServiceTest, FrozenRedisIsUnavailableNotAHang) {
  ASSERT_TRUE(redis_->process().Signal(SIGSTOP).ok());
  Task t;
  grpc::Status s = Create(R"({"parent":"queues/q","task":{"type":"echo"}})", &t, absl::Seconds(5));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  ASSERT_TRUE(redis_->process().Signal(SIGCONT).ok());
}

TEST_F(ServiceTest, WatchStreamsEveryTransitionUntilTerminal) {
  Task created;
  ASSERT_TRUE(Create(R"({"parent":"queues/w","task":{"type":"echo"}})", &created).ok());
  taskmesh::v1::WatchTaskRequest request;
  request.set_name(created.name());
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  auto reader = stub_->WatchTask(&ctx, request);
  Task snapshot;
  ASSERT_TRUE(reader->Read(&snapshot));
  EXPECT_EQ(snapshot.state(), Task::PENDING);
  broker::Lease lease = StartNext("w");
  ASSERT_TRUE(reader->Read(&snapshot));
  EXPECT_EQ(snapshot.state(), Task::RUNNING);
  EXPECT_EQ(snapshot.attempt(), 1);
  Finish(lease, "done");
  ASSERT_TRUE(reader->Read(&snapshot));
  EXPECT_EQ(snapshot.state(), Task::SUCCEEDED);
  EXPECT_EQ(snapshot.result_bytes(), "done");
  EXPECT_FALSE(reader->Read(&snapshot));  // Ends after the terminal snapshot.
  grpc::Status s = reader->Finish();
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(ServiceTest, WatchOfAnUnknownTaskIsNotFound) {
  taskmesh::v1::WatchTaskRequest request;
  request.set_name("queues/w/tasks/nope");
  grpc::ClientContext ctx;
  auto reader = stub_->WatchTask(&ctx, request);
  Task snapshot;
  EXPECT_FALSE(reader->Read(&snapshot));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServiceTest, WatchEndsNotFoundWhenTheTaskIsDeleted) {
  Task created;
  ASSERT_TRUE(Create(R"({"parent":"queues/w","task":{"type":"echo"}})", &created).ok());
  taskmesh::v1::WatchTaskRequest request;
  request.set_name(created.name());
  grpc::ClientContext ctx;
  auto reader = stub_->WatchTask(&ctx, request);
  Task snapshot;
  ASSERT_TRUE(reader->Read(&snapshot));
  taskmesh::v1::DeleteTaskRequest del;
  del.set_name(created.name());
  google::protobuf::Empty empty;
  grpc::ClientContext dctx;
  ASSERT_TRUE(stub_->DeleteTask(&dctx, del, &empty).ok());
  EXPECT_FALSE(reader->Read(&snapshot));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServiceTest, CancelRetryAndListOverGrpc) {
  Task a, b;
  ASSERT_TRUE(Create(R"({"parent":"queues/c","task":{"type":"echo"}})", &a).ok());
  ASSERT_TRUE(Create(R"({"parent":"queues/c","task":{"type":"echo"}})", &b).ok());
  taskmesh::v1::CancelTaskRequest cancel;
  cancel.set_name(a.name());
  Task t;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->CancelTask(&ctx, cancel, &t).ok());
    EXPECT_EQ(t.state(), Task::CANCELLED);
  }
  {
    grpc::ClientContext ctx;
    grpc::Status s = stub_->CancelTask(&ctx, cancel, &t);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  }
  taskmesh::v1::ListTasksRequest list;
  list.set_parent("queues/c");
  list.set_state(Task::CANCELLED);
  taskmesh::v1::ListTasksResponse page;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->ListTasks(&ctx, list, &page).ok());
    ASSERT_EQ(page.tasks_size(), 1);
    EXPECT_EQ(page.tasks(0).name(), a.name());
  }
  taskmesh::v1::RetryTaskRequest retry;
  retry.set_name(a.name());
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->RetryTask(&ctx, retry, &t).ok());
    EXPECT_EQ(t.state(), Task::PENDING);
  }
  list.set_state(Task::STATE_UNSPECIFIED);
  list.set_page_size(1);
  {
    grpc::ClientContext ctx;
    page.Clear();
    ASSERT_TRUE(stub_->ListTasks(&ctx, list, &page).ok());
    EXPECT_EQ(page.tasks_size(), 1);
    EXPECT_FALSE(page.next_page_token().empty());
  }
  list.set_page_size(5000);
  {
    grpc::ClientContext ctx;
    EXPECT_EQ(stub_->ListTasks(&ctx, list, &page).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
}

TEST_F(ServiceTest, QueueControlOverGrpc) {
  Task t;
  ASSERT_TRUE(Create(R"({"parent":"queues/ops","task":{"type":"echo"}})", &t).ok());
  taskmesh::v1::Queue q;
  {
    taskmesh::v1::PauseQueueRequest r;
    r.set_name("queues/ops");
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->PauseQueue(&ctx, r, &q).ok());
    EXPECT_TRUE(q.paused());
    EXPECT_EQ(q.pending(), 1);
  }
  {
    taskmesh::v1::ResumeQueueRequest r;
    r.set_name("queues/ops");
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->ResumeQueue(&ctx, r, &q).ok());
    EXPECT_FALSE(q.paused());
  }
  {
    taskmesh::v1::ListQueuesRequest r;
    taskmesh::v1::ListQueuesResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->ListQueues(&ctx, r, &resp).ok());
    ASSERT_EQ(resp.queues_size(), 1);
    EXPECT_EQ(resp.queues(0).name(), "queues/ops");
  }
  {
    taskmesh::v1::UpdateQueueRequest r;
    r.mutable_queue()->set_name("queues/ops");
    r.mutable_queue()->set_rate_limit(2.5);
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->UpdateQueue(&ctx, r, &q).ok());
    EXPECT_EQ(q.rate_limit(), 2.5);
    r.mutable_update_mask()->add_paths("paused");
    grpc::ClientContext bad;
    EXPECT_EQ(stub_->UpdateQueue(&bad, r, &q).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    r.clear_update_mask();
    r.mutable_queue()->set_rate_limit(-1);
    grpc::ClientContext negative;
    EXPECT_EQ(stub_->UpdateQueue(&negative, r, &q).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    taskmesh::v1::PurgeQueueRequest r;
    r.set_name("queues/ops");
    r.set_include_pending(true);
    taskmesh::v1::PurgeQueueResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->PurgeQueue(&ctx, r, &resp).ok());
    EXPECT_EQ(resp.purged(), 1);
  }
  {
    taskmesh::v1::GetQueueRequest r;
    r.set_name("queues/never");
    grpc::ClientContext ctx;
    EXPECT_EQ(stub_->GetQueue(&ctx, r, &q).error_code(), grpc::StatusCode::NOT_FOUND);
  }
}

TEST_F(ServiceTest, PartitionedQueueOverGrpc) {
  Task seed;
  ASSERT_TRUE(Create(R"({"parent":"queues/hot","task":{"type":"echo"}})", &seed).ok());
  taskmesh::v1::Queue q;
  {
    taskmesh::v1::UpdateQueueRequest r;
    r.mutable_queue()->set_name("queues/hot");
    r.mutable_queue()->set_partitions(3);
    r.mutable_queue()->set_rate_limit(9);
    r.mutable_update_mask()->add_paths("partitions");
    r.mutable_update_mask()->add_paths("rate_limit");
    grpc::ClientContext ctx;
    grpc::Status s = stub_->UpdateQueue(&ctx, r, &q);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(q.partitions(), 3);
    EXPECT_EQ(q.rate_limit(), 9);
    r.mutable_queue()->set_partitions(65);
    grpc::ClientContext bad;
    s = stub_->UpdateQueue(&bad, r, &q);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("queue.partitions: must be from 1 to 64"));
  }
  // A task outside partition 0, watched through its queue's name.
  std::string id;
  for (int i = 0; id.empty(); ++i) {
    if (broker::PartitionFor(absl::StrCat("w", i), 3) == 2) id = absl::StrCat("w", i);
  }
  Task created;
  ASSERT_TRUE(Create(absl::StrCat(R"({"parent":"queues/hot","task_id":")", id,
                                  R"(","task":{"type":"echo"}})"),
                     &created)
                  .ok());
  taskmesh::v1::WatchTaskRequest request;
  request.set_name(created.name());
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  auto reader = stub_->WatchTask(&ctx, request);
  Task snapshot;
  ASSERT_TRUE(reader->Read(&snapshot));
  EXPECT_EQ(snapshot.state(), Task::PENDING);
  EXPECT_EQ(snapshot.name(), "queues/hot/tasks/" + id);
  broker::Lease lease = StartNext(broker::PartitionName("hot", 2));
  EXPECT_EQ(lease.task_id, id);
  ASSERT_TRUE(reader->Read(&snapshot));
  EXPECT_EQ(snapshot.state(), Task::RUNNING);
  Finish(lease, "done");
  ASSERT_TRUE(reader->Read(&snapshot));
  EXPECT_EQ(snapshot.state(), Task::SUCCEEDED);
  EXPECT_FALSE(reader->Read(&snapshot));
  EXPECT_TRUE(reader->Finish().ok());
  {
    taskmesh::v1::ListTasksRequest r;
    r.set_parent("queues/hot");
    r.set_page_size(1);
    std::vector<std::string> names;
    for (int pages = 0; pages < 10; ++pages) {
      taskmesh::v1::ListTasksResponse resp;
      grpc::ClientContext lctx;
      ASSERT_TRUE(stub_->ListTasks(&lctx, r, &resp).ok());
      for (const Task& t : resp.tasks()) names.push_back(t.name());
      if (resp.next_page_token().empty()) break;
      r.set_page_token(resp.next_page_token());
    }
    EXPECT_THAT(names, ::testing::UnorderedElementsAre(seed.name(), created.name()));
  }
  {
    taskmesh::v1::GetQueueRequest r;
    r.set_name("queues/hot");
    grpc::ClientContext gctx;
    ASSERT_TRUE(stub_->GetQueue(&gctx, r, &q).ok());
    EXPECT_EQ(q.pending(), 1);
    EXPECT_EQ(q.partitions(), 3);
  }
}

}  // namespace
}  // namespace taskmesh::task_service
