#include "task_service/watch_task.h"

#include <deque>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "broker/task_codec.h"
#include "common/grpc_status.h"
#include "google/protobuf/util/time_util.h"
#include "task_service/validation.h"

namespace taskmesh::task_service {
namespace {

using ::taskmesh::v1::Task;

bool IsTerminal(Task::State s) {
  return s == Task::SUCCEEDED || s == Task::FAILED || s == Task::CANCELLED;
}

class Watch final : public grpc::ServerWriteReactor<Task>,
                    public std::enable_shared_from_this<Watch> {
 public:
  Watch(broker::Broker* broker, broker::WatchHub* hub) : broker_(broker), hub_(hub) {}

  // Second phase of construction: needs shared_from_this().
  void Begin(const std::string& name) {
    absl::StatusOr<TaskRef> ref = ParseTaskName(name, "name");
    if (!ref.ok()) {
      End(ref.status());
      return;
    }
    ref_ = *ref;
    // Events come on the channel of the task's partition (broker/partitions.h).
    std::weak_ptr<Watch> weak = shared_from_this();
    broker_->Locate(ref_.queue, ref_.id, [weak](absl::StatusOr<int> partition) {
      if (auto self = weak.lock()) self->Subscribe(std::move(partition));
    });
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) {
        FinishLocked(absl::CancelledError("client went away"));
        return;
      }
      if (end_after_write_) {
        FinishLocked(absl::OkStatus());
        return;
      }
    }
    Pump();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(absl::CancelledError("watch cancelled by the client"));
  }

  void OnDone() override {
    uint64_t handle;
    {
      absl::MutexLock lock(&mu_);
      handle = handle_;
    }
    if (handle != 0) hub_->Remove(handle);
    self_.reset();  // May delete this.
  }

  // Keeps the object alive until OnDone.
  std::shared_ptr<Watch> self_;

 private:
  void Subscribe(absl::StatusOr<int> partition) {
    if (!partition.ok()) {
      End(partition.status());
      return;
    }
    std::weak_ptr<Watch> weak = shared_from_this();
    absl::StatusOr<uint64_t> handle =
        hub_->Add(broker::PartitionName(ref_.queue, *partition), ref_.id,
                  [weak](const broker::WatchHub::Event& event) {
                    if (auto self = weak.lock()) self->OnEvent(event);
                  });
    if (!handle.ok()) {
      End(handle.status());
      return;
    }
    bool cancelled;
    {
      absl::MutexLock lock(&mu_);
      cancelled = finished_;  // While the task was being located.
      if (!cancelled) {
        partition_ = *partition;
        handle_ = *handle;
        // The first snapshot is a plain read.
        broker::WatchHub::Event first;
        first.resync = true;
        events_.push_back(first);
      }
    }
    if (cancelled) {
      hub_->Remove(*handle);
      return;
    }
    Pump();
  }

  void OnEvent(const broker::WatchHub::Event& event) {
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      events_.push_back(event);
    }
    Pump();
  }

  // Takes the next event, reads the task, and queues one snapshot; one read
  // at a time, so snapshots keep the events' order.
  void Pump() {
    broker::WatchHub::Event event;
    int partition;
    {
      absl::MutexLock lock(&mu_);
      partition = partition_;
      while (true) {
        if (finished_ || reading_ || writing_ || events_.empty()) return;
        event = events_.front();
        events_.pop_front();
        // Skip what the last snapshot already reflects.
        if (event.resync || event.version > version_) break;
      }
      if (event.state == "DELETED") {
        FinishLocked(absl::NotFoundError(absl::StrCat(
            "task queues/", ref_.queue, "/tasks/", ref_.id, " was deleted")));
        return;
      }
      reading_ = true;
    }
    if (event.record != nullptr) {
      // The event carries the record at its version: no read needed.
      absl::StatusOr<Task> task = broker::TaskFromRecord(ref_.queue, ref_.id, *event.record);
      if (!task.ok()) {
        OnRead(event, task.status());
      } else {
        OnRead(event, broker::Broker::Versioned{*std::move(task), event.version});
      }
      return;
    }
    std::shared_ptr<Watch> self = shared_from_this();
    auto on_read = [self, event](absl::StatusOr<broker::Broker::Versioned> read) {
      self->OnRead(event, std::move(read));
    };
    if (event.resync) {
      // Marks the task watched, so that its transitions publish events.
      broker_->WatchAt(ref_.queue, partition, ref_.id, std::move(on_read));
    } else {
      broker_->ReadAt(ref_.queue, partition, ref_.id, std::move(on_read));
    }
  }

  void OnRead(const broker::WatchHub::Event& event, absl::StatusOr<broker::Broker::Versioned> read) {
    {
      absl::MutexLock lock(&mu_);
      reading_ = false;
      if (finished_) return;
      if (!read.ok()) {
        FinishLocked(read.status());
        return;
      }
      Task snapshot = std::move(read->task);
      int64_t version = read->version;
      Task::State state;
      if (!event.resync && Task::State_Parse(event.state, &state)) {
        // Reports this event's transition even if the read is ahead of it.
        snapshot.set_state(state);
        snapshot.set_attempt(event.attempt);
        version = event.version;
      }
      if (version > version_) {
        version_ = std::max(version_, version);
        end_after_write_ = IsTerminal(snapshot.state());
        current_ = std::move(snapshot);
        writing_ = true;
        StartWrite(&current_);
        return;
      }
    }
    Pump();
  }

  void End(const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    FinishLocked(status);
  }

  void FinishLocked(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(ToGrpcStatus(status));
  }

  broker::Broker* const broker_;
  broker::WatchHub* const hub_;
  TaskRef ref_;

  absl::Mutex mu_;
  // The task's partition; its events' listener in the hub (0: none yet).
  int partition_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t handle_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<broker::WatchHub::Event> events_ ABSL_GUARDED_BY(mu_);
  int64_t version_ ABSL_GUARDED_BY(mu_) = -1;
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool end_after_write_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  Task current_;  // The snapshot being written; stable until OnWriteDone.
};

}  // namespace

grpc::ServerWriteReactor<Task>* StartWatch(broker::Broker* broker, broker::WatchHub* hub,
                                           const std::string& name) {
  auto watch = std::make_shared<Watch>(broker, hub);
  watch->self_ = watch;
  watch->Begin(name);
  return watch.get();
}

}  // namespace taskmesh::task_service
