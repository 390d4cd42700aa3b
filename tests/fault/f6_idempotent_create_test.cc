// F6: CreateTask repeated with the same request_id, as a client does after it
// crashed or lost the answer, yields exactly one task and one execution.
//
// Each request id is sent: first with a deadline so short that the client
// gives up (the create may or may not have happened, as when a client dies
// mid-call), then again twice in a row, then three times at once from
// separate threads.
#include <set>
#include <thread>

#include "tests/fault/fault_test.h"

namespace taskmesh::fault {
namespace {

constexpr char kQueue[] = "f6";

class F6IdempotentCreateTest : public FaultTest {};

TEST_F(F6IdempotentCreateTest, RepeatedRequestIdYieldsOneTaskAndOneExecution) {
  const int ids = Scaled(20, 200);
  StartMesh();
  ASSERT_NE(mesh_, nullptr);
  ASSERT_NE(StartWorker("f6-w0", kQueue, 4), nullptr);

  std::vector<std::string> names;
  int64_t calls = 0, ok_calls = 0, abandoned = 0, abandoned_but_created = 0;
  for (int i = 0; i < ids; ++i) {
    v1::CreateTaskRequest request = RecordTask(kQueue, 20);
    request.mutable_task()->set_request_id(absl::StrCat("client-request-", i));
    // The client "crashes": it stops waiting after 0 to 0.7 ms.
    {
      v1::Task t;
      grpc::Status s = mesh_->Create(request, &t, absl::Microseconds(100 * (i % 8)));
      ++calls;
      if (s.ok()) ++ok_calls;
      if (!s.ok()) {
        ++abandoned;
        // Did the server create it all the same (the answer was lost)?
        if (testing::WaitFor(absl::Milliseconds(100), [&] {
              auto r = mesh_->RedisCommand(
                  {"EXISTS", absl::StrCat("taskmesh:{", kQueue, "}:idem:", request.task().request_id())});
              return r.ok() && r->integer() == 1;
            })) {
          ++abandoned_but_created;
        }
      }
    }
    std::set<std::string> seen;
    std::vector<grpc::Status> statuses;
    for (int k = 0; k < 2; ++k) {
      v1::Task t;
      grpc::Status s = mesh_->Create(request, &t);
      ++calls;
      ASSERT_TRUE(s.ok()) << s.error_message();
      ++ok_calls;
      seen.insert(t.name());
    }
    std::vector<v1::Task> concurrent(3);
    std::vector<grpc::Status> concurrent_status(3);
    std::vector<std::thread> threads;
    for (int k = 0; k < 3; ++k) {
      threads.emplace_back(
          [&, k] { concurrent_status[k] = mesh_->Create(request, &concurrent[k]); });
    }
    for (auto& th : threads) th.join();
    for (int k = 0; k < 3; ++k) {
      ++calls;
      ASSERT_TRUE(concurrent_status[k].ok()) << concurrent_status[k].error_message();
      ++ok_calls;
      seen.insert(concurrent[k].name());
    }
    EXPECT_EQ(seen.size(), 1u) << "request id client-request-" << i << " gave several tasks";
    names.push_back(*seen.begin());
  }

  const auto final_states = mesh_->AwaitTerminal(names, absl::Seconds(LongScale() ? 120 : 30));
  // Everything the queue holds: exactly one task per request id.
  std::set<std::string> listed;
  std::string token;
  for (int page = 0; page < 100; ++page) {
    v1::ListTasksRequest request;
    request.set_parent(absl::StrCat("queues/", kQueue));
    request.set_page_size(1000);
    request.set_page_token(token);
    v1::ListTasksResponse response;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    grpc::Status s = mesh_->stub().ListTasks(&ctx, request, &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    for (const auto& t : response.tasks()) listed.insert(t.name());
    token = response.next_page_token();
    if (token.empty()) break;
  }

  testing::LedgerFigures fig;
  fig.acknowledged = static_cast<int64_t>(names.size());
  for (const std::string& name : names) {
    auto it = final_states.find(name);
    if (it != final_states.end() && it->second.state() == v1::Task::SUCCEEDED) ++fig.completed;
  }
  fig.lost = fig.acknowledged - fig.completed;
  auto by_task = ledger_->ByTask();
  for (const auto& [task, runs] : by_task) {
    fig.executions += static_cast<int64_t>(runs.size());
    fig.duplicates += static_cast<int64_t>(runs.size()) - 1;
  }
  Report(fig.Line("F6", absl::StrCat("request ids=", ids, ", creates sent=", calls, " (", ok_calls,
                                     " OK, ", abandoned, " abandoned by the client, of which ",
                                     abandoned_but_created, " were created all the same), tasks in the "
                                     "queue=", listed.size())));
  EXPECT_EQ(static_cast<int>(listed.size()), ids);
  EXPECT_EQ(listed, std::set<std::string>(names.begin(), names.end()));
  EXPECT_EQ(static_cast<int>(by_task.size()), ids);
  EXPECT_EQ(fig.lost, 0);
  EXPECT_EQ(fig.duplicates, 0);
  EXPECT_EQ(fig.executions, ids);
  if (HasFailure()) ADD_FAILURE() << WorkerLogs();
}

}  // namespace
}  // namespace taskmesh::fault
