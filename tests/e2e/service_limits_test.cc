// The task_service's limits against the real binary: RPCs in flight per
// client connection (--max_concurrent_streams) wait at the client beyond
// the limit, other connections are not affected.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "taskmesh/v1/task_service.grpc.pb.h"
#include "tests/support/mesh.h"

namespace taskmesh {
namespace {

using ::taskmesh::testing::Mesh;
using ::taskmesh::v1::Task;

TEST(ServiceLimitsTest, StreamsBeyondTheLimitWaitOnTheirConnectionOnly) {
  auto mesh = Mesh::Start({.service_flags = {"--max_concurrent_streams=2"}});
  ASSERT_TRUE(mesh.ok()) << mesh.status();
  // Two PENDING tasks (no worker runs) and a watch open on each: the two
  // streams the connection may have.
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<Task>>> watches;
  for (int i = 0; i < 2; ++i) {
    v1::CreateTaskRequest create;
    create.set_parent("queues/limits");
    create.mutable_task()->set_type("echo");
    Task created;
    ASSERT_TRUE((*mesh)->Create(create, &created).ok());
    v1::WatchTaskRequest watch;
    watch.set_name(created.name());
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    watches.push_back((*mesh)->stub().WatchTask(contexts.back().get(), watch));
    Task first;
    ASSERT_TRUE(watches.back()->Read(&first));  // Open: its snapshot came.
    EXPECT_EQ(first.state(), Task::PENDING);
  }
  // A third call on that connection waits for a free stream...
  Task t;
  grpc::Status waited = (*mesh)->Get("queues/limits/tasks/nope", &t, absl::Milliseconds(500));
  EXPECT_EQ(waited.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << waited.error_message();
  // ...while another connection is served at once.
  grpc::ChannelArguments args;
  args.SetInt("grpc.use_local_subchannel_pool", 1);  // A connection of its own.
  auto other = v1::TaskService::NewStub(grpc::CreateCustomChannel(
      (*mesh)->address(), grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  v1::GetTaskRequest get;
  get.set_name("queues/limits/tasks/nope");
  EXPECT_EQ(other->GetTask(&ctx, get, &t).error_code(), grpc::StatusCode::NOT_FOUND);
  // Once a watch ends, its stream is free again.
  contexts[0]->TryCancel();
  (void)watches[0]->Finish();
  grpc::Status after = (*mesh)->Get("queues/limits/tasks/nope", &t, absl::Seconds(5));
  EXPECT_EQ(after.error_code(), grpc::StatusCode::NOT_FOUND) << after.error_message();
  contexts[1]->TryCancel();
  (void)watches[1]->Finish();
}

}  // namespace
}  // namespace taskmesh
