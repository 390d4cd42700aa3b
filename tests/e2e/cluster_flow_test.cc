// The mesh on a real Redis Cluster (3 masters + 3 replicas): the binaries
// get the nodes as seeds and tell the cluster from INFO cluster; queues whose
// slots live on every master run through the whole API.
#include <sys/wait.h>

#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "redis/slots.h"
#include "taskmesh/v1/task_service.grpc.pb.h"
#include "tests/support/binaries.h"
#include "tests/support/mesh.h"
#include "tests/support/process.h"

namespace taskmesh {
namespace {

using ::taskmesh::v1::Task;

class ClusterFlowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::MeshOptions options;
    options.cluster = true;
    auto mesh = testing::Mesh::Start(options);
    ASSERT_TRUE(mesh.ok()) << mesh.status();
    mesh_ = *std::move(mesh);
    // Two queues on each master (their hash tag decides the slot).
    auto masters = mesh_->cluster().Masters();
    ASSERT_TRUE(masters.ok()) << masters.status();
    std::set<int> seen;
    for (int i = 0; queues_.size() < 6 && i < 1000; ++i) {
      const std::string q = absl::StrCat("cq", i);
      auto master = mesh_->cluster().MasterOfSlot(redis::KeySlot(absl::StrCat("{", q, "}")));
      ASSERT_TRUE(master.ok());
      if (per_master_[*master] < 2) {
        ++per_master_[*master];
        queues_.push_back(q);
        seen.insert(*master);
      }
    }
    ASSERT_EQ(seen.size(), 3u);
  }

  // A worker of `queues` (default: queues_).
  void StartWorker(const std::string& name, std::vector<std::string> queues = {}) {
    if (queues.empty()) queues = queues_;
    std::string list;
    for (const std::string& q : queues) absl::StrAppend(&list, list.empty() ? "" : ",", q);
    auto w = mesh_->StartWorker({testing::BinaryPath("workers/worker"), name,
                                 {absl::StrCat("--queues=", list), "--concurrency=4",
                                  "--drain_timeout=5s"}});
    ASSERT_TRUE(w.ok()) << w.status();
    workers_.push_back(*std::move(w));
    ASSERT_TRUE(testing::WaitFor(absl::Seconds(20),
                                 [&] { return testing::WorkerServing(*workers_.back()); }))
        << workers_.back()->Log();
  }

  Task CreateOk(const std::string& queue, const std::string& type, int ms = 0) {
    v1::CreateTaskRequest request;
    request.set_parent(absl::StrCat("queues/", queue));
    request.mutable_task()->set_type(type);
    if (type == "sleep") {
      (*request.mutable_task()->mutable_payload()->mutable_struct_value()->mutable_fields())["ms"]
          .set_number_value(ms);
    }
    Task task;
    grpc::Status s = mesh_->Create(request, &task);
    EXPECT_TRUE(s.ok()) << s.error_message() << "\n" << mesh_->service().Log();
    return task;
  }

  template <typename Request, typename Response, typename Method>
  grpc::Status Call(Method method, const Request& request, Response* response) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    return (mesh_->stub().*method)(&ctx, request, response);
  }

  std::unique_ptr<testing::Mesh> mesh_;
  std::vector<std::string> queues_;
  std::map<int, int> per_master_;
  std::vector<std::unique_ptr<testing::Process>> workers_;
};

TEST_F(ClusterFlowTest, TasksOfQueuesOnEveryMasterRunAndAreListed) {
  // Created before any worker: they wait, then one worker runs them all
  // (its idle blocking reads take turns over the three masters).
  std::vector<std::string> names;
  for (const std::string& q : queues_) {
    for (int i = 0; i < 3; ++i) names.push_back(CreateOk(q, "echo").name());
  }
  StartWorker("cw1");
  auto done = mesh_->AwaitTerminal(names, absl::Seconds(30));
  for (const std::string& n : names) {
    EXPECT_EQ(done[n].state(), Task::SUCCEEDED) << n << "\n" << workers_[0]->Log();
  }
  // Idle now: a new task on each master is picked up by the blocking reads.
  names.clear();
  for (const std::string& q : queues_) names.push_back(CreateOk(q, "echo").name());
  done = mesh_->AwaitTerminal(names, absl::Seconds(30));
  for (const std::string& n : names) EXPECT_EQ(done[n].state(), Task::SUCCEEDED) << n;

  // ListQueues reads the registry key, on whichever node serves its slot.
  v1::ListQueuesRequest list;
  list.set_page_size(100);
  v1::ListQueuesResponse queues;
  ASSERT_TRUE(Call(&v1::TaskService::Stub::ListQueues, list, &queues).ok());
  std::set<std::string> listed;
  for (const auto& q : queues.queues()) listed.insert(q.name());
  for (const std::string& q : queues_) EXPECT_TRUE(listed.count(absl::StrCat("queues/", q))) << q;
}

TEST_F(ClusterFlowTest, APartitionedQueueSpansTheMastersAndChangingKUnderLoadLosesNothing) {
  // A queue whose first three partitions live on three different masters.
  std::string hot;
  for (int i = 0; hot.empty() && i < 1000; ++i) {
    const std::string q = absl::StrCat("hot", i);
    std::set<int> masters;
    for (const std::string& part : {q, q + "~1", q + "~2"}) {
      auto m = mesh_->cluster().MasterOfSlot(redis::KeySlot(absl::StrCat("{", part, "}")));
      ASSERT_TRUE(m.ok());
      masters.insert(*m);
    }
    if (masters.size() == 3) hot = q;
  }
  ASSERT_FALSE(hot.empty());
  std::vector<std::string> names = {CreateOk(hot, "echo").name()};
  StartWorker("pw1", {hot});
  auto set_partitions = [&](int k) {
    v1::UpdateQueueRequest update;
    update.mutable_queue()->set_name(absl::StrCat("queues/", hot));
    update.mutable_queue()->set_partitions(k);
    update.mutable_update_mask()->add_paths("partitions");
    v1::Queue q;
    grpc::Status s = Call(&v1::TaskService::Stub::UpdateQueue, update, &q);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(q.partitions(), k);
  };
  // taskctl partition sets K (what an operator runs).
  {
    auto taskctl = testing::Process::Start(
        {testing::BinaryPath("cli/taskctl"), absl::StrCat("--server=", mesh_->address()),
         "partition", absl::StrCat("queues/", hot), "3"},
        {}, absl::StrCat(mesh_->dir(), "/taskctl.log"));
    ASSERT_TRUE(taskctl.ok()) << taskctl.status();
    auto status = (*taskctl)->Wait(absl::Seconds(10));
    ASSERT_TRUE(status.ok() && WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << (*taskctl)->Log();
    EXPECT_NE((*taskctl)->Log().find("\"partitions\": 3"), std::string::npos) << (*taskctl)->Log();
  }
  for (int i = 0; i < 40; ++i) names.push_back(CreateOk(hot, "echo").name());
  // Tasks flow while K goes 3 -> 5 -> 2.
  for (int k : {5, 2}) {
    set_partitions(k);
    for (int i = 0; i < 40; ++i) names.push_back(CreateOk(hot, "echo").name());
  }
  auto done = mesh_->AwaitTerminal(names, absl::Seconds(60));
  for (const std::string& n : names) {
    EXPECT_EQ(done[n].state(), Task::SUCCEEDED) << n << "\n" << workers_[0]->Log();
    EXPECT_EQ(done[n].attempt(), 1) << n;
  }
  // Stats sum the 5 partitions; nothing is left anywhere.
  v1::GetQueueRequest get;
  get.set_name(absl::StrCat("queues/", hot));
  v1::Queue q;
  ASSERT_TRUE(Call(&v1::TaskService::Stub::GetQueue, get, &q).ok());
  EXPECT_EQ(q.partitions(), 2);
  EXPECT_EQ(q.pending() + q.running() + q.scheduled(), 0);
  // Every partition was used, on every master.
  std::set<int> used_partitions;
  for (const std::string& n : names) {
    const std::string id = n.substr(n.rfind('/') + 1);
    for (int p = 0; p < 5; ++p) {
      const std::string part = p == 0 ? hot : absl::StrCat(hot, "~", p);
      const std::string key = absl::StrCat("taskmesh:{", part, "}:t:", id);
      auto master = mesh_->cluster().MasterOfSlot(redis::KeySlot(key));
      ASSERT_TRUE(master.ok());
      auto exists = mesh_->cluster().Command(*master, {"EXISTS", key});
      if (exists.ok() && exists->integer() == 1) used_partitions.insert(p);
    }
  }
  EXPECT_EQ(used_partitions.size(), 5u);
}

TEST_F(ClusterFlowTest, WatchPauseAndCancelWorkOnEveryMaster) {
  StartWorker("cw1");
  for (const std::string& q : queues_) {
    // WatchTask: sharded pub/sub on the queue's master.
    const Task slow = CreateOk(q, "sleep", 300);
    v1::WatchTaskRequest watch;
    watch.set_name(slow.name());
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(15)));
    auto reader = mesh_->stub().WatchTask(&ctx, watch);
    Task t, last;
    std::vector<Task::State> states;
    while (reader->Read(&t)) {
      states.push_back(t.state());
      last = t;
    }
    ASSERT_TRUE(reader->Finish().ok()) << q;
    EXPECT_EQ(last.state(), Task::SUCCEEDED) << q;
    EXPECT_GE(states.size(), 2u) << q;

    // A paused queue starts nothing; resumed, it does.
    v1::PauseQueueRequest pause;
    pause.set_name(absl::StrCat("queues/", q));
    v1::Queue queue;
    ASSERT_TRUE(Call(&v1::TaskService::Stub::PauseQueue, pause, &queue).ok());
    const Task held = CreateOk(q, "echo");
    const Task cancelled = CreateOk(q, "echo");
    v1::CancelTaskRequest cancel;
    cancel.set_name(cancelled.name());
    Task c;
    ASSERT_TRUE(Call(&v1::TaskService::Stub::CancelTask, cancel, &c).ok());
    EXPECT_EQ(c.state(), Task::CANCELLED);
    absl::SleepFor(absl::Milliseconds(300));  // A paused queue must stay still: nothing to poll.
    Task h;
    ASSERT_TRUE(mesh_->Get(held.name(), &h).ok());
    EXPECT_EQ(h.state(), Task::PENDING) << q;
    // The lag KEDA reads stays exact on the queue's master.
    auto lag = mesh_->RedisCommand({"XINFO", "GROUPS", absl::StrCat("taskmesh:{", q, "}:stream")});
    ASSERT_TRUE(lag.ok());
    int64_t lag_value = -2;
    for (const auto& g : lag->elements()) {
      const auto& f = g.elements();
      for (size_t i = 0; i + 1 < f.size(); i += 2) {
        if (f[i].str() == "lag") lag_value = f[i + 1].is_nil() ? -1 : f[i + 1].integer();
      }
    }
    EXPECT_EQ(lag_value, 1) << q;
    v1::ResumeQueueRequest resume;
    resume.set_name(absl::StrCat("queues/", q));
    ASSERT_TRUE(Call(&v1::TaskService::Stub::ResumeQueue, resume, &queue).ok());
    auto done = mesh_->AwaitTerminal({held.name()}, absl::Seconds(15));
    EXPECT_EQ(done[held.name()].state(), Task::SUCCEEDED) << q;
  }
}

// Periodic tasks on the cluster: two workers schedule the same @every tick
// of a queue (its master is one of three); each tick's task (one id per
// tick, created once by the routed enqueue script) is created and runs.
TEST_F(ClusterFlowTest, PeriodicTicksAreCreatedOnceOnTheQueuesMaster) {
  const std::string q = queues_.back();
  const std::string config = absl::StrCat(testing::TestTempDir(), "/periodic.json");
  {
    std::ofstream out(config);
    out << R"({"periodicTasks": [{"name": "beat", "queue": ")" << q
        << R"(", "schedule": "@every 1s", "task": {"type": "echo"}}]})";
  }
  for (const char* name : {"pw1", "pw2"}) {
    auto w = mesh_->StartWorker({testing::BinaryPath("workers/worker"), name,
                                 {absl::StrCat("--queues=", q), "--concurrency=2",
                                  absl::StrCat("--periodic_config=", config)}});
    ASSERT_TRUE(w.ok()) << w.status();
    workers_.push_back(*std::move(w));
  }
  v1::ListTasksRequest list;
  list.set_parent(absl::StrCat("queues/", q));
  list.set_state(Task::SUCCEEDED);
  list.set_page_size(100);
  v1::ListTasksResponse page;
  ASSERT_TRUE(testing::WaitFor(absl::Seconds(30), [&] {
    page.Clear();
    return Call(&v1::TaskService::Stub::ListTasks, list, &page).ok() && page.tasks_size() >= 3;
  })) << workers_[0]->Log();
  for (const Task& t : page.tasks()) {
    EXPECT_NE(t.name().find("/tasks/periodic-beat-"), std::string::npos) << t.name();
  }
}

}  // namespace
}  // namespace taskmesh
