// Upstream: the gRPC side of the gateway. Forwards serialized requests as
// bytes through grpc::GenericStub with gRPC's callback API (no thread waits
// for a reply), one channel set per upstream target.
//
// Targets: `--upstream` for every service, `--route=pkg.Service=TARGET` to
// override one. A target is anything grpc::CreateChannel takes
// ("127.0.0.1:50051", "dns:///tasks.svc:50051"); channels use the
// round_robin policy, so a DNS name with several addresses spreads calls
// over all replicas.
//
// Thread-safe. Every call holds its grpc::ClientContext until it completes;
// CancelAll() + WaitIdle() end them all (shutdown).
//
// Example:
//   auto up = Upstream::Create({.default_target = "127.0.0.1:50051"}, {"taskmesh.v1.TaskService"});
//   (*up)->CallUnary(route, std::move(ctx), bytes,
//                    [](const grpc::Status& s, const std::string& reply,
//                       grpc::ClientContext& ctx) { ... });
#ifndef TASKMESH_API_GATEWAY_UPSTREAM_H_
#define TASKMESH_API_GATEWAY_UPSTREAM_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "api_gateway/route_table.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"

namespace taskmesh::gateway {

struct UpstreamOptions {
  std::string default_target = "127.0.0.1:50051";
  // Service full name -> target, overriding default_target.
  std::map<std::string, std::string> service_targets;
  // Independent HTTP/2 connections per target; calls alternate over them.
  int channels_per_target = 1;
  int max_receive_message_bytes = 4 << 20;
};

class ServerStream;

// Receives a server stream. OnMessage and OnDone run on gRPC threads, one
// at a time, in order.
class StreamObserver {
 public:
  virtual ~StreamObserver() = default;
  // After each message the observer calls exactly one of
  // ServerStream::ReadNext() or ServerStream::Abandon().
  virtual void OnMessage(ServerStream* stream, std::string message) = 0;
  // Last call; the stream object is gone afterwards.
  virtual void OnDone(const grpc::Status& status, grpc::ClientContext& context) = 0;
};

class ServerStream {
 public:
  virtual ~ServerStream() = default;
  virtual void ReadNext() = 0;
  // Instead of ReadNext(): the observer wants no more (client gone).
  virtual void Abandon() = 0;
  // Any time, from any thread: cancel the call (OnDone follows).
  virtual void Cancel() = 0;
};

class Upstream {
 public:
  // INVALID_ARGUMENT when a service_targets key is not among `services`.
  static absl::StatusOr<std::unique_ptr<Upstream>> Create(
      UpstreamOptions options, const std::vector<std::string>& services);
  ~Upstream();

  using UnaryDone = std::function<void(const grpc::Status& status, std::string reply,
                                       grpc::ClientContext& context)>;
  // `done` runs on a gRPC thread.
  void CallUnary(const Route& route, std::shared_ptr<grpc::ClientContext> context,
                 std::string request, UnaryDone done);

  // The stream lives until observer->OnDone() returns.
  // (Cancel a stream from outside with context->TryCancel(); the context is
  // shared for that.)
  void StartServerStream(const Route& route, std::shared_ptr<grpc::ClientContext> context,
                         std::string request, StreamObserver* observer);

  // grpc.health.v1.Health/Check (service "") on every target; `done(ok,
  // detail)` runs once with ok when all answer SERVING.
  void CheckHealth(absl::Duration timeout, std::function<void(bool, std::string)> done);

  // Cancels every call in flight (shutdown).
  void CancelAll();
  // Waits until no call is in flight; false on timeout.
  bool WaitIdle(absl::Duration timeout);
  int in_flight() const { return in_flight_.load(std::memory_order_relaxed); }

  const std::string& TargetFor(const std::string& service) const;
  std::vector<std::string> targets() const;

  // Call bookkeeping, used by the call objects. Contexts are shared so that
  // CancelAll() can cancel outside the lock (a cancel may run callbacks
  // inline) without a context vanishing under it.
  void Track(std::shared_ptr<grpc::ClientContext> context);
  void Untrack(grpc::ClientContext* context);

 private:
  struct Target {
    std::string address;
    std::vector<std::shared_ptr<grpc::Channel>> channels;
    std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
    std::atomic<uint32_t> next{0};
  };

  Upstream() = default;
  grpc::GenericStub* StubFor(const std::string& service);

  UpstreamOptions options_;
  std::map<std::string, std::unique_ptr<Target>> targets_;  // by address
  absl::flat_hash_map<std::string, Target*> by_service_;
  Target* default_target_ = nullptr;
  std::atomic<int> in_flight_{0};
  mutable absl::Mutex mu_;
  absl::flat_hash_map<grpc::ClientContext*, std::shared_ptr<grpc::ClientContext>> live_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace taskmesh::gateway

#endif  // TASKMESH_API_GATEWAY_UPSTREAM_H_
