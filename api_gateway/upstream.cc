#include "api_gateway/upstream.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/support/byte_buffer.h"

namespace taskmesh::gateway {
namespace {

grpc::ByteBuffer ToByteBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

std::string FromByteBuffer(const grpc::ByteBuffer& buffer) {
  std::string out;
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return out;
  out.reserve(buffer.Length());
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

struct UnaryCall {
  std::shared_ptr<grpc::ClientContext> context;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
  Upstream::UnaryDone done;
};

// A server-streaming call over the generic (bidi) callback API: one request
// written, then messages read one at a time, each only after the observer
// asked for it (backpressure from the HTTP client).
class StreamCall final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                         public ServerStream {
 public:
  StreamCall(Upstream* upstream, std::shared_ptr<grpc::ClientContext> context,
             std::string request, StreamObserver* observer)
      : upstream_(upstream),
        context_(std::move(context)),
        request_(ToByteBuffer(request)),
        observer_(observer) {}

  void Start(grpc::GenericStub* stub, const std::string& method) {
    upstream_->Track(context_);
    stub->PrepareBidiStreamingCall(context_.get(), method, grpc::StubOptions(), this);
    // Held until we stop reading, so OnDone never runs while the observer
    // still owes a ReadNext()/Abandon().
    AddHold();
    StartWriteLast(&request_, grpc::WriteOptions());
    StartRead(&response_);
    StartCall();
  }

  void ReadNext() override { StartRead(&response_); }

  void Abandon() override {
    context_->TryCancel();
    RemoveHold();
  }

  void Cancel() override { context_->TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      RemoveHold();
      return;
    }
    std::string message = FromByteBuffer(response_);
    response_.Clear();
    observer_->OnMessage(this, std::move(message));
  }

  void OnDone(const grpc::Status& status) override {
    upstream_->Untrack(context_.get());
    observer_->OnDone(status, *context_);
    delete this;
  }

 private:
  Upstream* upstream_;
  std::shared_ptr<grpc::ClientContext> context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  StreamObserver* observer_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Upstream>> Upstream::Create(
    UpstreamOptions options, const std::vector<std::string>& services) {
  std::unique_ptr<Upstream> up(new Upstream());
  for (const auto& [service, target] : options.service_targets) {
    bool known = false;
    for (const std::string& s : services) known = known || s == service;
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat("--route names '", service, "', which is not a served service"));
    }
    if (target.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--route for '", service, "' has no target"));
    }
  }
  if (options.default_target.empty()) {
    return absl::InvalidArgumentError("--upstream must not be empty");
  }
  const int shards = std::max(1, options.channels_per_target);
  auto target_for = [&](const std::string& address) -> Target* {
    auto it = up->targets_.find(address);
    if (it != up->targets_.end()) return it->second.get();
    auto t = std::make_unique<Target>();
    t->address = address;
    for (int i = 0; i < shards; ++i) {
      grpc::ChannelArguments args;
      args.SetLoadBalancingPolicyName("round_robin");
      args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
      // Separate connections per shard, not one shared subchannel.
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      args.SetInt("taskmesh.channel_shard", i);
      auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
      channel->GetState(/*try_to_connect=*/true);
      t->stubs.push_back(std::make_unique<grpc::GenericStub>(channel));
      t->channels.push_back(std::move(channel));
    }
    Target* raw = t.get();
    up->targets_.emplace(address, std::move(t));
    return raw;
  };
  up->default_target_ = target_for(options.default_target);
  for (const std::string& service : services) {
    auto it = options.service_targets.find(service);
    up->by_service_[service] =
        it == options.service_targets.end() ? up->default_target_ : target_for(it->second);
  }
  up->options_ = std::move(options);
  return up;
}

Upstream::~Upstream() {
  CancelAll();
  WaitIdle(absl::Seconds(5));
}

grpc::GenericStub* Upstream::StubFor(const std::string& service) {
  auto it = by_service_.find(service);
  Target* t = it == by_service_.end() ? default_target_ : it->second;
  const uint32_t n = t->next.fetch_add(1, std::memory_order_relaxed);
  return t->stubs[n % t->stubs.size()].get();
}

const std::string& Upstream::TargetFor(const std::string& service) const {
  auto it = by_service_.find(service);
  return (it == by_service_.end() ? default_target_ : it->second)->address;
}

std::vector<std::string> Upstream::targets() const {
  std::vector<std::string> out;
  for (const auto& [address, t] : targets_) out.push_back(address);
  return out;
}

void Upstream::Track(std::shared_ptr<grpc::ClientContext> context) {
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  absl::MutexLock lock(&mu_);
  grpc::ClientContext* key = context.get();
  live_.emplace(key, std::move(context));
}

void Upstream::Untrack(grpc::ClientContext* context) {
  {
    absl::MutexLock lock(&mu_);
    live_.erase(context);
  }
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
}

void Upstream::CallUnary(const Route& route, std::shared_ptr<grpc::ClientContext> context,
                         std::string request, UnaryDone done) {
  auto* call = new UnaryCall{std::move(context), ToByteBuffer(request), grpc::ByteBuffer(),
                             std::move(done)};
  Track(call->context);
  StubFor(route.service)
      ->UnaryCall(call->context.get(), route.grpc_path, grpc::StubOptions(), &call->request,
                  &call->response, [this, call](grpc::Status status) {
                    Untrack(call->context.get());
                    std::string reply = status.ok() ? FromByteBuffer(call->response) : "";
                    call->done(status, std::move(reply), *call->context);
                    delete call;
                  });
}

void Upstream::StartServerStream(const Route& route, std::shared_ptr<grpc::ClientContext> context,
                                 std::string request, StreamObserver* observer) {
  auto* call = new StreamCall(this, std::move(context), std::move(request), observer);
  call->Start(StubFor(route.service), route.grpc_path);
}

void Upstream::CheckHealth(absl::Duration timeout, std::function<void(bool, std::string)> done) {
  struct Check {
    std::unique_ptr<grpc::ClientContext> context;
    grpc::ByteBuffer request;
    grpc::ByteBuffer response;
  };
  struct State {
    absl::Mutex mu;
    int remaining ABSL_GUARDED_BY(mu);
    bool ok ABSL_GUARDED_BY(mu) = true;
    std::string detail ABSL_GUARDED_BY(mu);
    std::function<void(bool, std::string)> done;
  };
  auto state = std::make_shared<State>();
  state->remaining = static_cast<int>(targets_.size());
  state->done = std::move(done);
  static const std::string kMethod = "/grpc.health.v1.Health/Check";
  for (const auto& [address, target] : targets_) {
    auto check = std::make_shared<Check>();
    check->context = std::make_unique<grpc::ClientContext>();
    check->context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    check->request = ToByteBuffer("");  // HealthCheckRequest{service: ""}
    const std::string name = address;
    target->stubs[0]->UnaryCall(
        check->context.get(), kMethod, grpc::StubOptions(), &check->request, &check->response,
        [state, check, name](grpc::Status status) {
          // HealthCheckResponse{status = 1 (SERVING)} is the bytes 08 01.
          const bool serving = status.ok() && FromByteBuffer(check->response) == "\x08\x01";
          bool last;
          bool ok;
          std::string detail;
          {
            absl::MutexLock lock(&state->mu);
            if (!serving) {
              state->ok = false;
              absl::StrAppend(&state->detail, state->detail.empty() ? "" : "; ", name, ": ",
                              status.ok() ? "NOT_SERVING" : status.error_message());
            }
            last = --state->remaining == 0;
            ok = state->ok;
            detail = state->detail;
          }
          if (last) state->done(ok, detail);
        });
  }
}

void Upstream::CancelAll() {
  std::vector<std::shared_ptr<grpc::ClientContext>> live;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [key, context] : live_) live.push_back(context);
  }
  for (const auto& context : live) context->TryCancel();
}

bool Upstream::WaitIdle(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (in_flight_.load() > 0) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

}  // namespace taskmesh::gateway
