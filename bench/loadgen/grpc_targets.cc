#include "bench/loadgen/grpc_targets.h"

#include <chrono>
#include <memory>
#include <utility>

#include "absl/time/clock.h"

namespace taskmesh::bench {
namespace {

using ::taskmesh::v1::Task;

bool Terminal(Task::State s) {
  return s == Task::SUCCEEDED || s == Task::FAILED || s == Task::CANCELLED;
}

}  // namespace

Channels::Channels(const GrpcOptions& options) : options_(options) {
  for (int i = 0; i < std::max(1, options.channels); ++i) {
    grpc::ChannelArguments args;
    // Distinct arguments and a local pool: one connection per channel.
    args.SetInt("taskmesh.bench.channel", i);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channels_.push_back(
        grpc::CreateCustomChannel(options.server, grpc::InsecureChannelCredentials(), args));
    stubs_.push_back(taskmesh::v1::TaskService::NewStub(channels_.back()));
  }
}

taskmesh::v1::TaskService::Stub* Channels::Next() {
  return stubs_[next_.fetch_add(1, std::memory_order_relaxed) % stubs_.size()].get();
}

bool Channels::WaitConnected(absl::Duration timeout) {
  const auto deadline = absl::ToChronoTime(absl::Now() + timeout);
  for (auto& c : channels_) {
    if (!c->WaitForConnected(deadline)) return false;
  }
  return true;
}

void CreateTarget::Issue(Done done) {
  struct Call {
    grpc::ClientContext ctx;
    Task response;
  };
  auto* call = new Call;
  call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + channels_->options().deadline));
  channels_->Next()->async()->CreateTask(&call->ctx, &request_, &call->response,
                                         [call, done = std::move(done)](grpc::Status s) {
                                           delete call;
                                           done(s.error_code());
                                         });
}

void BatchTarget::Issue(Done done) {
  struct Call {
    grpc::ClientContext ctx;
    taskmesh::v1::BatchCreateTasksResponse response;
  };
  auto* call = new Call;
  call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + channels_->options().deadline));
  channels_->Next()->async()->BatchCreateTasks(&call->ctx, &request_, &call->response,
                                               [call, done = std::move(done)](grpc::Status s) {
                                                 delete call;
                                                 done(s.error_code());
                                               });
}

int RoundTripTarget::Call() {
  taskmesh::v1::TaskService::Stub* stub = channels_->Next();
  Task created;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + channels_->options().deadline));
    grpc::Status s = stub->CreateTask(&ctx, request_, &created);
    if (!s.ok()) return s.error_code();
  }
  taskmesh::v1::WatchTaskRequest watch;
  watch.set_name(created.name());
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + channels_->options().deadline));
  std::unique_ptr<grpc::ClientReader<Task>> reader = stub->WatchTask(&ctx, watch);
  Task t;
  bool terminal = false, succeeded = false;
  while (reader->Read(&t)) {
    if (Terminal(t.state())) {
      terminal = true;
      succeeded = t.state() == Task::SUCCEEDED;
      break;
    }
  }
  if (terminal) {
    ctx.TryCancel();
    reader->Finish();
    return succeeded ? 0 : grpc::StatusCode::ABORTED;
  }
  grpc::Status s = reader->Finish();
  return s.ok() ? grpc::StatusCode::ABORTED : s.error_code();
}

}  // namespace taskmesh::bench
