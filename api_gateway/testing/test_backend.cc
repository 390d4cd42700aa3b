#include "api_gateway/testing/test_backend.h"

#include <chrono>
#include <thread>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "google/protobuf/empty.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/health_check_service_interface.h"

namespace taskmesh::gateway::testing {
namespace {

using gatewaytest::v1::Behavior;
using gatewaytest::v1::CreateThingRequest;
using gatewaytest::v1::Echo;
using gatewaytest::v1::Thing;

void FillEcho(grpc::CallbackServerContext* ctx, absl::string_view method, Echo* echo) {
  echo->set_method(std::string(method));
  for (const auto& [k, v] : ctx->client_metadata()) {
    const std::string key(k.data(), k.size());
    const std::string value(v.data(), v.size());
    (*echo->mutable_metadata())[key] =
        absl::EndsWith(key, "-bin") ? absl::Base64Escape(value) : value;
  }
  const auto deadline = ctx->deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) {
    echo->set_deadline_ms(-1);
  } else {
    echo->set_deadline_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                              deadline - std::chrono::system_clock::now())
                              .count());
  }
}

void AddReplyMetadata(grpc::CallbackServerContext* ctx, const Behavior& b) {
  for (const auto& [k, v] : b.reply_metadata()) {
    if (absl::StartsWith(k, "i-")) ctx->AddInitialMetadata(k.substr(2), v);
    if (absl::StartsWith(k, "t-")) ctx->AddTrailingMetadata(k.substr(2), v);
  }
}

grpc::Status StatusFor(const Behavior& b) {
  if (b.code() == 0) return grpc::Status::OK;
  if (!b.with_details()) {
    return grpc::Status(static_cast<grpc::StatusCode>(b.code()), b.message());
  }
  google::rpc::Status details;
  details.set_code(b.code());
  details.set_message(b.message());
  Echo detail;
  detail.set_method("detail");
  details.add_details()->PackFrom(detail);
  return grpc::Status(static_cast<grpc::StatusCode>(b.code()), b.message(),
                      details.SerializeAsString());
}

// Streams `count` Echo messages (endless when negative, until cancelled),
// `delay_ms` apart, then finishes with the Behavior's status.
class StreamReactor : public grpc::ServerWriteReactor<Echo> {
 public:
  StreamReactor(grpc::CallbackServerContext* ctx, const Behavior& b,
                std::shared_ptr<std::atomic<int>> cancelled, std::shared_ptr<std::atomic<int>> open)
      : ctx_(ctx), behavior_(b), cancelled_(std::move(cancelled)), open_(std::move(open)) {
    ++*open_;
    AddReplyMetadata(ctx, b);
    FillEcho(ctx, "/gatewaytest.v1.Transcoding/Stream", &template_);
    template_.mutable_thing()->set_name(b.name());
    Next();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
      return;
    }
    Next();
  }

  void OnCancel() override { cancelled_flag_ = true; }

  void OnDone() override {
    if (cancelled_flag_) ++*cancelled_;
    --*open_;
    delete this;
  }

 private:
  void Next() {
    if (behavior_.count() >= 0 && sent_ >= behavior_.count()) {
      Finish(StatusFor(behavior_));
      return;
    }
    if (behavior_.delay_ms() > 0 && sent_ > 0) {
      // Test-only pacing; the callback API has no timer of its own here.
      std::this_thread::sleep_for(std::chrono::milliseconds(behavior_.delay_ms()));
      if (ctx_->IsCancelled()) {
        Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
        return;
      }
    }
    message_ = template_;
    message_.set_index(sent_++);
    StartWrite(&message_);
  }

  grpc::CallbackServerContext* ctx_;
  Behavior behavior_;
  Echo template_;
  Echo message_;
  int sent_ = 0;
  std::atomic<bool> cancelled_flag_{false};
  std::shared_ptr<std::atomic<int>> cancelled_;
  std::shared_ptr<std::atomic<int>> open_;
};

}  // namespace

class TestBackend::Service : public gatewaytest::v1::Transcoding::CallbackService {
 public:
  Service()
      : cancelled_(std::make_shared<std::atomic<int>>(0)),
        open_(std::make_shared<std::atomic<int>>(0)) {}

  grpc::ServerUnaryReactor* GetThing(grpc::CallbackServerContext* c, const Thing* r, Echo* e) override {
    return EchoThing(c, "/gatewaytest.v1.Transcoding/GetThing", r, e);
  }
  grpc::ServerUnaryReactor* ReplaceThing(grpc::CallbackServerContext* c, const Thing* r, Echo* e) override {
    return EchoThing(c, "/gatewaytest.v1.Transcoding/ReplaceThing", r, e);
  }
  grpc::ServerUnaryReactor* UpdateThing(grpc::CallbackServerContext* c, const Thing* r, Echo* e) override {
    return EchoThing(c, "/gatewaytest.v1.Transcoding/UpdateThing", r, e);
  }
  grpc::ServerUnaryReactor* SearchThings(grpc::CallbackServerContext* c, const Thing* r, Echo* e) override {
    return EchoThing(c, "/gatewaytest.v1.Transcoding/SearchThings", r, e);
  }
  grpc::ServerUnaryReactor* CancelThing(grpc::CallbackServerContext* c, const Thing* r, Echo* e) override {
    return EchoThing(c, "/gatewaytest.v1.Transcoding/CancelThing", r, e);
  }
  grpc::ServerUnaryReactor* SetTags(grpc::CallbackServerContext* c, const Thing* r, Echo* e) override {
    return EchoThing(c, "/gatewaytest.v1.Transcoding/SetTags", r, e);
  }
  grpc::ServerUnaryReactor* GetThingOnly(grpc::CallbackServerContext* c, const Thing* r, Echo* e) override {
    return EchoThing(c, "/gatewaytest.v1.Transcoding/GetThingOnly", r, e);
  }
  grpc::ServerUnaryReactor* GetPath(grpc::CallbackServerContext* c, const Thing* r, Echo* e) override {
    return EchoThing(c, "/gatewaytest.v1.Transcoding/GetPath", r, e);
  }
  grpc::ServerUnaryReactor* Unbound(grpc::CallbackServerContext* c, const Thing* r, Echo* e) override {
    return EchoThing(c, "/gatewaytest.v1.Transcoding/Unbound", r, e);
  }

  grpc::ServerUnaryReactor* CreateThing(grpc::CallbackServerContext* c, const CreateThingRequest* r,
                                        Echo* e) override {
    FillEcho(c, "/gatewaytest.v1.Transcoding/CreateThing", e);
    *e->mutable_create() = *r;
    auto* reactor = c->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* DeleteThing(grpc::CallbackServerContext* c, const Thing*,
                                        google::protobuf::Empty*) override {
    auto* reactor = c->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* Fail(grpc::CallbackServerContext* c, const Behavior* b, Echo* e) override {
    FillEcho(c, "/gatewaytest.v1.Transcoding/Fail", e);
    AddReplyMetadata(c, *b);
    auto* reactor = c->DefaultReactor();
    if (b->delay_ms() > 0) {
      // Answer later from another thread, as a slow backend would.
      std::thread([reactor, c, b = *b] {
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(b.delay_ms());
        while (std::chrono::steady_clock::now() < until && !c->IsCancelled()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        reactor->Finish(StatusFor(b));
      }).detach();
    } else {
      reactor->Finish(StatusFor(*b));
    }
    return reactor;
  }

  grpc::ServerWriteReactor<Echo>* Stream(grpc::CallbackServerContext* c, const Behavior* b) override {
    return new StreamReactor(c, *b, cancelled_, open_);
  }

  std::shared_ptr<std::atomic<int>> cancelled_;
  std::shared_ptr<std::atomic<int>> open_;

 private:
  grpc::ServerUnaryReactor* EchoThing(grpc::CallbackServerContext* c, const char* method,
                                      const Thing* r, Echo* e) {
    FillEcho(c, method, e);
    *e->mutable_thing() = *r;
    auto* reactor = c->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

absl::StatusOr<std::unique_ptr<TestBackend>> TestBackend::Start(int port) {
  std::unique_ptr<TestBackend> b(new TestBackend());
  auto service = std::make_unique<Service>();
  Service* raw = service.get();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(),
                           &b->port_);
  builder.RegisterService(raw);
  b->server_ = builder.BuildAndStart();
  if (b->server_ == nullptr || b->port_ == 0) return absl::UnavailableError("cannot start backend");
  b->cancelled_ = raw->cancelled_;
  b->open_ = raw->open_;
  b->impl_ = std::move(service);
  return b;
}

TestBackend::~TestBackend() {
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_->Wait();
  }
}

}  // namespace taskmesh::gateway::testing
