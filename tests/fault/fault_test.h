// The fixture shared by the fault tests (F1-F7 of issue 4): a Mesh (private
// redis-server, the real task_service) plus ledger workers (the real worker
// main with the `record` and `crash` handlers), short leases, a ledger file,
// and the scale knob.
//
// Scale: TASKMESH_FAULT_SCALE=long (bazel test --test_env=...) selects the
// longer versions (tests/fault/run_long.sh); anything else, the short ones.
#ifndef TASKMESH_TESTS_FAULT_FAULT_TEST_H_
#define TASKMESH_TESTS_FAULT_FAULT_TEST_H_

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "taskmesh/v1/task_service.grpc.pb.h"
#include "tests/support/binaries.h"
#include "tests/support/ledger.h"
#include "tests/support/mesh.h"
#include "tests/support/process.h"

namespace taskmesh::fault {

inline bool LongScale() {
  const char* s = std::getenv("TASKMESH_FAULT_SCALE");
  return s != nullptr && std::string(s) == "long";
}

// `short_value` normally, `long_value` under TASKMESH_FAULT_SCALE=long.
inline int Scaled(int short_value, int long_value) {
  return LongScale() ? long_value : short_value;
}

// A `record` task: sleeps `ms`, writes start and end to the ledger.
inline v1::CreateTaskRequest RecordTask(const std::string& queue, int ms,
                                        int max_attempts = 0, bool ignore_cancel = false) {
  v1::CreateTaskRequest r;
  r.set_parent(absl::StrCat("queues/", queue));
  v1::Task* t = r.mutable_task();
  t->set_type("record");
  auto* fields = t->mutable_payload()->mutable_struct_value()->mutable_fields();
  (*fields)["ms"].set_number_value(ms);
  if (ignore_cancel) (*fields)["ignore_cancel"].set_bool_value(true);
  t->set_max_attempts(max_attempts);
  return r;
}

// Prints the figures on one line (stdout, kept in test.log) for quoting.
inline void Report(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  ::testing::Test::RecordProperty("ledger", line);
}

class FaultTest : public ::testing::Test {
 protected:
  void StartMesh(testing::MeshOptions options = {}) {
    auto mesh = testing::Mesh::Start(std::move(options));
    ASSERT_TRUE(mesh.ok()) << mesh.status();
    mesh_ = *std::move(mesh);
    ledger_path_ = absl::StrCat(mesh_->dir(), "/ledger.txt");
    ledger_ = std::make_unique<testing::Ledger>(ledger_path_);
  }

  // Flags for fast fault detection: 1 s leases renewed every 200 ms, expired
  // leases looked for every 200 ms.
  static std::vector<std::string> FastFlags(const std::string& queues, int concurrency) {
    return {absl::StrCat("--queues=", queues),
            absl::StrCat("--concurrency=", concurrency),
            "--lease=1s",
            "--heartbeat_interval=200ms",
            "--reclaim_interval=200ms",
            "--promote_interval=100ms",
            "--retry_base=50ms",
            "--retry_cap=1s",
            "--drain_timeout=5s"};
  }

  // Starts a ledger worker; `flags` come after (and so override) FastFlags.
  testing::Process* StartWorker(const std::string& consumer, const std::string& queues,
                                int concurrency, std::vector<std::string> flags = {},
                                std::vector<std::string> env = {}) {
    std::vector<std::string> all = FastFlags(queues, concurrency);
    all.insert(all.end(), flags.begin(), flags.end());
    env.push_back(absl::StrCat("FAULT_LEDGER=", ledger_path_));
    auto p = mesh_->StartWorker(
        {testing::BinaryPath("tests/fault/ledger_worker"), consumer, all, env});
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return nullptr;
    workers_.push_back(*std::move(p));
    names_[workers_.back().get()] = consumer;
    return workers_.back().get();
  }

  const std::string& NameOf(testing::Process* p) { return names_[p]; }

  // Executions that started in process `pid` and have not ended.
  std::vector<testing::Execution> OpenIn(int64_t pid) {
    std::vector<testing::Execution> open;
    for (testing::Execution& x : ledger_->Executions()) {
      if (x.pid == pid && x.end.empty()) open.push_back(std::move(x));
    }
    return open;
  }

  // Waits (up to 30 s, and until `pace` has passed since `last_kill`) for one
  // of `live` to have a task in flight: its index, or -1 when none had one.
  int BusyWorker(const std::vector<testing::Process*>& live, absl::Duration pace,
                 absl::Time last_kill) {
    int victim = -1;
    testing::WaitFor(absl::Seconds(30), [&] {
      if (absl::Now() - last_kill < pace) return false;
      for (size_t i = 0; i < live.size(); ++i) {
        if (!OpenIn(live[i]->pid()).empty()) {
          victim = static_cast<int>(i);
          return true;
        }
      }
      return false;
    });
    return victim;
  }

  // Every worker's log, for failure messages.
  std::string WorkerLogs() {
    std::string out;
    for (const auto& w : workers_) {
      absl::StrAppend(&out, "--- ", names_[w.get()], " (pid ", w->pid(), ")\n", w->Log());
    }
    return out;
  }

  std::unique_ptr<testing::Mesh> mesh_;
  std::string ledger_path_;
  std::unique_ptr<testing::Ledger> ledger_;
  std::vector<std::unique_ptr<testing::Process>> workers_;
  std::map<testing::Process*, std::string> names_;
};

}  // namespace taskmesh::fault

#endif  // TASKMESH_TESTS_FAULT_FAULT_TEST_H_
