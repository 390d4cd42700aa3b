// The upstream HTTP/2 gRPC client: real calls on
// loopback against the in-process gRPC test backend (gatewaytest.v1) and
// against a small nghttp2 server (FakeH2Server) for what a gRPC server does
// not do on request: GOAWAY, two listening addresses, holding a call.
#include "api_gateway/upstream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "api_gateway/testing/test_backend.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/write.hpp"
#include "gatewaytest/v1/transcoding.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"

namespace taskmesh::gateway {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using ::taskmesh::gateway::testing::TestBackend;
using ::testing::HasSubstr;

bool PollUntil(absl::Duration timeout, const std::function<bool()>& condition) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return condition();
}

TEST(UpstreamCreateTest, RejectsTargetsItCannotDial) {
  UpstreamOptions o;
  o.default_target = "unix:/tmp/socket";
  EXPECT_FALSE(Upstream::Create(o, {"a.B"}).ok());
  o.default_target = "no-port";
  EXPECT_FALSE(Upstream::Create(o, {"a.B"}).ok());
  o.default_target = "127.0.0.1:99999";
  EXPECT_FALSE(Upstream::Create(o, {"a.B"}).ok());
  o.default_target = "127.0.0.1:1";
  o.service_targets["x.Unknown"] = "127.0.0.1:2";
  EXPECT_FALSE(Upstream::Create(o, {"a.B"}).ok());
  o.service_targets.clear();
  o.service_targets["a.B"] = "dns:///backend.example:50051";
  auto up = Upstream::Create(o, {"a.B", "c.D"});
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ((*up)->TargetFor("a.B"), "dns:///backend.example:50051");
  EXPECT_EQ((*up)->TargetFor("c.D"), "127.0.0.1:1");
  EXPECT_EQ((*up)->targets().size(), 2u);
}

// ---- an event loop for the calls ---------------------------------------------------

class Loop {
 public:
  Loop() : guard_(asio::make_work_guard(ioc_)), thread_([this] { ioc_.run(); }) {}
  ~Loop() {
    guard_.reset();
    ioc_.stop();
    thread_.join();
  }
  asio::io_context& ioc() { return ioc_; }
  void Run(std::function<void()> f) { asio::post(ioc_, std::move(f)); }

 private:
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
};

struct UnaryResult {
  RpcStatus status;
  std::string reply;
  ResponseMetadata metadata;
};

Route MakeRoute(const std::string& method, const std::string& service = "gatewaytest.v1.Transcoding") {
  Route r;
  r.service = service;
  r.grpc_path = absl::StrCat("/", service, "/", method);
  return r;
}

UnaryResult CallSync(Upstream& up, Loop& loop, const Route& route, const std::string& request,
                     CallOptions options = {}, std::shared_ptr<UpstreamCall>* handle = nullptr,
                     absl::Notification* started = nullptr) {
  UnaryResult result;
  absl::Notification done;
  loop.Run([&] {
    auto h = up.CallUnary(loop.ioc(), route, options, request,
                          [&](const RpcStatus& s, std::string reply, const ResponseMetadata& md) {
                            result = {s, std::move(reply), md};
                            done.Notify();
                          });
    if (handle != nullptr) *handle = h;
    if (started != nullptr) started->Notify();
  });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  return result;
}

std::string Find(const Metadata& md, const std::string& key) {
  for (const auto& [k, v] : md) {
    if (k == key) return v;
  }
  return "<none>";
}

class UpstreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = TestBackend::Start().value();
    up_ = MakeUpstream(backend_->address());
  }
  void TearDown() override {
    up_->CancelAll();
    EXPECT_TRUE(up_->WaitIdle(absl::Seconds(5)));
  }
  std::unique_ptr<Upstream> MakeUpstream(const std::string& target, UpstreamOptions o = {}) {
    o.default_target = target;
    o.initial_backoff = absl::Milliseconds(50);
    o.max_backoff = absl::Milliseconds(200);
    return Upstream::Create(o, {"gatewaytest.v1.Transcoding"}).value();
  }
  std::string Behavior(const std::string& text_fields) {
    gatewaytest::v1::Behavior b;
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text_fields, &b));
    return b.SerializeAsString();
  }

  Loop loop_;
  std::unique_ptr<TestBackend> backend_;
  std::unique_ptr<Upstream> up_;
};

TEST_F(UpstreamTest, UnaryCallCarriesMetadataAndDeadline) {
  gatewaytest::v1::Thing thing;
  thing.set_name("things/t1");
  CallOptions options;
  options.timeout = absl::Seconds(7);
  options.metadata = {{"x-request-id", "abc"}, {"blob-bin", std::string("\0\1\2", 3)}};
  UnaryResult r = CallSync(*up_, loop_, MakeRoute("GetThing"), thing.SerializeAsString(), options);
  ASSERT_TRUE(r.status.ok()) << r.status.code << " " << r.status.message;
  gatewaytest::v1::Echo echo;
  ASSERT_TRUE(echo.ParseFromString(r.reply));
  EXPECT_EQ(echo.method(), "/gatewaytest.v1.Transcoding/GetThing");
  EXPECT_EQ(echo.thing().name(), "things/t1");
  EXPECT_EQ(echo.metadata().at("x-request-id"), "abc");
  EXPECT_EQ(echo.metadata().at("blob-bin"), absl::Base64Escape(std::string("\0\1\2", 3)));
  EXPECT_GT(echo.deadline_ms(), 5000);
  EXPECT_LE(echo.deadline_ms(), 7000);
  EXPECT_EQ(up_->in_flight(), 0);
}

TEST_F(UpstreamTest, ErrorsKeepCodeDecodedMessageDetailsAndMetadata) {
  const std::string message = "na\xC3\xAFve: 100% sure\n(really)";
  gatewaytest::v1::Behavior b;
  b.set_code(9);
  b.set_message(message);
  b.set_with_details(true);
  (*b.mutable_reply_metadata())["i-x-initial"] = "one";
  (*b.mutable_reply_metadata())["t-x-trailing"] = "two";
  (*b.mutable_reply_metadata())["t-x-raw-bin"] = std::string("\x01\x00", 2);
  UnaryResult r = CallSync(*up_, loop_, MakeRoute("Fail"), b.SerializeAsString());
  EXPECT_EQ(r.status.code, 9);
  EXPECT_EQ(r.status.message, message);
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(r.status.details));
  EXPECT_EQ(details.code(), 9);
  EXPECT_EQ(details.details_size(), 1);
  EXPECT_EQ(Find(r.metadata.initial, "x-initial"), "one");
  EXPECT_EQ(Find(r.metadata.trailing, "x-trailing"), "two");
  EXPECT_EQ(Find(r.metadata.trailing, "x-raw-bin"), std::string("\x01\x00", 2));
  EXPECT_EQ(Find(r.metadata.trailing, "grpc-status"), "<none>");
}

TEST_F(UpstreamTest, DeadlineEndsTheCallAndResetsTheStream) {
  CallOptions options;
  options.timeout = absl::Milliseconds(100);
  const absl::Time start = absl::Now();
  UnaryResult r = CallSync(*up_, loop_, MakeRoute("Fail"), Behavior("delay_ms: 5000"), options);
  EXPECT_EQ(r.status.code, 4);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST_F(UpstreamTest, LargerReplyThanTheLimitIsResourceExhausted) {
  UpstreamOptions o;
  o.max_receive_message_bytes = 64;
  auto up = MakeUpstream(backend_->address(), o);
  gatewaytest::v1::Thing thing;
  thing.set_name(std::string(200, 'n'));
  UnaryResult r = CallSync(*up, loop_, MakeRoute("GetThing"), thing.SerializeAsString());
  EXPECT_EQ(r.status.code, 8);
  EXPECT_THAT(r.status.message, HasSubstr("larger than max"));
  thing.set_name("small");
  EXPECT_EQ(CallSync(*up, loop_, MakeRoute("GetThing"), thing.SerializeAsString()).status.code, 0);
}

TEST_F(UpstreamTest, ManyCallsShareOneConnection) {
  std::atomic<int> ok{0};
  absl::Notification all;
  constexpr int kCalls = 200;
  std::atomic<int> remaining{kCalls};
  gatewaytest::v1::Thing thing;
  thing.set_name("x");
  const std::string request = thing.SerializeAsString();
  loop_.Run([&] {
    for (int i = 0; i < kCalls; ++i) {
      up_->CallUnary(loop_.ioc(), MakeRoute("GetThing"), {}, request,
                     [&](const RpcStatus& s, std::string, const ResponseMetadata&) {
                       if (s.ok()) ok++;
                       if (--remaining == 0) all.Notify();
                     });
    }
  });
  ASSERT_TRUE(all.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_EQ(ok.load(), kCalls);
}

TEST_F(UpstreamTest, UnreachableIsUnavailableAndARestartedUpstreamIsUsedAgain) {
  const int port = backend_->port();
  const Route route = MakeRoute("GetThing");
  ASSERT_TRUE(CallSync(*up_, loop_, route, "").status.ok());
  backend_.reset();
  UnaryResult r = CallSync(*up_, loop_, route, "");
  EXPECT_EQ(r.status.code, 14) << r.status.message;
  // Still down (and backing off): fails fast.
  EXPECT_EQ(CallSync(*up_, loop_, route, "").status.code, 14);
  backend_ = TestBackend::Start(port).value();
  EXPECT_TRUE(PollUntil(absl::Seconds(10), [&] { return CallSync(*up_, loop_, route, "").status.ok(); }));
}

TEST_F(UpstreamTest, HealthCheckAsksEveryTarget) {
  auto check = [&](Upstream& up) {
    std::optional<std::pair<bool, std::string>> result;
    absl::Notification done;
    loop_.Run([&] {
      up.CheckHealth(loop_.ioc(), absl::Seconds(2), [&](bool ok, std::string detail) {
        result.emplace(ok, detail);
        done.Notify();
      });
    });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
    return *result;
  };
  EXPECT_TRUE(check(*up_).first);
  // A second target that is down makes the whole check fail.
  auto gone = TestBackend::Start().value();
  const std::string gone_address = gone->address();
  gone.reset();
  UpstreamOptions o;
  o.default_target = backend_->address();
  o.service_targets["other.Service"] = gone_address;
  auto up = Upstream::Create(o, {"gatewaytest.v1.Transcoding", "other.Service"}).value();
  auto [ok, detail] = check(*up);
  EXPECT_FALSE(ok);
  EXPECT_THAT(detail, HasSubstr(gone_address));
}

// Records a stream; reads on only when told to.
class Recorder : public StreamObserver {
 public:
  void OnMessage(ServerStream* stream, std::string message) override {
    absl::MutexLock lock(&mu_);
    stream_ = stream;
    messages_.push_back(std::move(message));
  }
  void OnDone(const RpcStatus& status, const ResponseMetadata&) override {
    absl::MutexLock lock(&mu_);
    status_ = status;
    done_ = true;
  }
  int messages() {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(messages_.size());
  }
  bool done() {
    absl::MutexLock lock(&mu_);
    return done_;
  }
  RpcStatus status() {
    absl::MutexLock lock(&mu_);
    return status_;
  }
  ServerStream* stream() {
    absl::MutexLock lock(&mu_);
    return stream_;
  }

 private:
  absl::Mutex mu_;
  ServerStream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<std::string> messages_ ABSL_GUARDED_BY(mu_);
  RpcStatus status_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

TEST_F(UpstreamTest, StreamDeliversOneMessagePerReadNextThenTheStatus) {
  Recorder recorder;
  loop_.Run([&] {
    up_->StartServerStream(loop_.ioc(), MakeRoute("Stream"), {}, Behavior("count: 3 code: 14 message: \"lost\""),
                           &recorder);
  });
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(PollUntil(absl::Seconds(5), [&] { return recorder.messages() == i; }));
    // Nothing more arrives until the reader asks.
    absl::SleepFor(absl::Milliseconds(30));
    EXPECT_EQ(recorder.messages(), i);
    EXPECT_FALSE(recorder.done());
    ServerStream* s = recorder.stream();
    loop_.Run([s] { s->ReadNext(); });
  }
  ASSERT_TRUE(PollUntil(absl::Seconds(5), [&] { return recorder.done(); }));
  EXPECT_EQ(recorder.status().code, 14);
  EXPECT_EQ(recorder.status().message, "lost");
  EXPECT_EQ(up_->in_flight(), 0);
}

TEST_F(UpstreamTest, AbandonedAndCancelledStreamsAreCancelledUpstream) {
  Recorder abandoned;
  loop_.Run([&] {
    up_->StartServerStream(loop_.ioc(), MakeRoute("Stream"), {}, Behavior("count: -1 delay_ms: 10"),
                           &abandoned);
  });
  ASSERT_TRUE(PollUntil(absl::Seconds(5), [&] { return abandoned.messages() == 1; }));
  ServerStream* s = abandoned.stream();
  loop_.Run([s] { s->Abandon(); });
  ASSERT_TRUE(PollUntil(absl::Seconds(5), [&] { return abandoned.done(); }));
  EXPECT_EQ(abandoned.status().code, 1);
  EXPECT_TRUE(PollUntil(absl::Seconds(5), [&] { return backend_->cancelled_streams() == 1; }));

  Recorder cancelled;
  std::shared_ptr<UpstreamCall> handle;
  absl::Notification started;
  loop_.Run([&] {
    handle = up_->StartServerStream(loop_.ioc(), MakeRoute("Stream"), {},
                                    Behavior("count: -1 delay_ms: 10"), &cancelled);
    started.Notify();
  });
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(5)));
  ASSERT_TRUE(PollUntil(absl::Seconds(5), [&] { return cancelled.messages() == 1; }));
  handle->Cancel();  // from this (non-loop) thread
  ServerStream* s2 = cancelled.stream();
  loop_.Run([s2] { s2->ReadNext(); });
  ASSERT_TRUE(PollUntil(absl::Seconds(5), [&] { return cancelled.done(); }));
  EXPECT_EQ(cancelled.status().code, 1);
  EXPECT_TRUE(PollUntil(absl::Seconds(5), [&] { return backend_->cancelled_streams() == 2; }));
  EXPECT_TRUE(PollUntil(absl::Seconds(5), [&] { return up_->in_flight() == 0; }));
}

TEST_F(UpstreamTest, CancelAllEndsEveryCall) {
  std::atomic<int> cancelled{0};
  loop_.Run([&] {
    for (int i = 0; i < 3; ++i) {
      up_->CallUnary(loop_.ioc(), MakeRoute("Fail"), {}, Behavior("delay_ms: 5000"),
                     [&](const RpcStatus& s, std::string, const ResponseMetadata&) {
                       if (s.code == 1) cancelled++;
                     });
    }
  });
  ASSERT_TRUE(PollUntil(absl::Seconds(5), [&] { return up_->in_flight() == 3; }));
  up_->CancelAll();
  EXPECT_TRUE(up_->WaitIdle(absl::Seconds(5)));
  EXPECT_EQ(cancelled.load(), 3);
}

// ---- a scriptable HTTP/2 server -------------------------------------------------------

// A minimal gRPC-over-HTTP/2 server on nghttp2, with its own thread. It
// answers every call with its request message and grpc-status 0, and can
// send GOAWAY instead (the first `goaway_connections` connections), or hold
// calls unanswered. Counts connections, calls per listening address and
// RST_STREAMs received. Test-only.
class FakeH2Server {
 public:
  explicit FakeH2Server(const std::vector<std::string>& hosts) {
    for (const std::string& host : hosts) {
      auto acceptor = std::make_unique<tcp::acceptor>(ioc_);
      boost::system::error_code ec;
      const tcp::endpoint e(asio::ip::make_address(host), static_cast<unsigned short>(port_));
      acceptor->open(e.protocol(), ec);
      if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec) acceptor->bind(e, ec);
      if (!ec) acceptor->listen(64, ec);
      if (ec) {
        error_ = absl::StrCat(host, ": ", ec.message());
        return;
      }
      port_ = acceptor->local_endpoint().port();
      calls_per_acceptor_.push_back(std::make_unique<std::atomic<int>>(0));
      acceptors_.push_back(std::move(acceptor));
    }
    for (size_t i = 0; i < acceptors_.size(); ++i) Accept(i);
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~FakeH2Server() {
    asio::post(ioc_, [this] {
      for (auto& a : acceptors_) a->close();
      for (auto& c : sessions_) c->Close();
    });
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
  }

  const std::string& error() const { return error_; }
  int port() const { return port_; }
  int connections() const { return connections_.load(); }
  int calls(size_t acceptor) const { return calls_per_acceptor_[acceptor]->load(); }
  int resets() const { return resets_.load(); }

  std::atomic<int> goaway_connections{0};
  std::atomic<bool> hold{false};

 private:
  class Session {
   public:
    Session(FakeH2Server* server, tcp::socket socket, size_t acceptor, int index)
        : server_(server), socket_(std::move(socket)), acceptor_(acceptor), index_(index) {
      nghttp2_session_callbacks* cbs;
      nghttp2_session_callbacks_new(&cbs);
      nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Session::OnFrame);
      nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Session::OnData);
      nghttp2_session_server_new(&session_, cbs, this);
      nghttp2_session_callbacks_del(cbs);
      nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
    }
    ~Session() { nghttp2_session_del(session_); }
    void Start() {
      Flush();
      Read();
    }
    void Close() {
      boost::system::error_code ec;
      socket_.close(ec);
    }

   private:
    void Read() {
      socket_.async_read_some(asio::buffer(buf_), [this](const boost::system::error_code& ec, size_t n) {
        if (ec) return;
        if (nghttp2_session_mem_recv(session_, reinterpret_cast<uint8_t*>(buf_), n) < 0) return;
        Flush();
        Read();
      });
    }
    void Flush() {
      std::string out;
      const uint8_t* data;
      ssize_t n;
      while ((n = nghttp2_session_mem_send(session_, &data)) > 0) {
        out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
      }
      boost::system::error_code ec;
      if (!out.empty()) asio::write(socket_, asio::buffer(out), ec);  // test-sized writes
    }
    static int OnData(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                      void* ud) {
      static_cast<Session*>(ud)->bodies_[id].append(reinterpret_cast<const char*>(data), len);
      return 0;
    }
    static int OnFrame(nghttp2_session* s, const nghttp2_frame* frame, void* ud) {
      auto* self = static_cast<Session*>(ud);
      if (frame->hd.type == NGHTTP2_RST_STREAM) self->server_->resets_++;
      const bool request_headers =
          frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST;
      if (request_headers && self->index_ < self->server_->goaway_connections.load()) {
        nghttp2_submit_goaway(s, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, nullptr, 0);
        return 0;
      }
      if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) return 0;
      if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
      self->server_->calls_per_acceptor_[self->acceptor_]->fetch_add(1);
      if (self->server_->hold.load()) return 0;
      const int32_t id = frame->hd.stream_id;
      self->reply_[id] = self->bodies_[id];  // echo the framed request
      static const nghttp2_nv kHeaders[] = {
          {(uint8_t*)":status", (uint8_t*)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
          {(uint8_t*)"content-type", (uint8_t*)"application/grpc", 12, 16, NGHTTP2_NV_FLAG_NONE},
      };
      nghttp2_data_provider provider;
      provider.source.ptr = self;
      provider.read_callback = [](nghttp2_session* s, int32_t id, uint8_t* buf, size_t len,
                                  uint32_t* flags, nghttp2_data_source* src, void*) -> ssize_t {
        auto* self = static_cast<Session*>(src->ptr);
        std::string& r = self->reply_[id];
        const size_t n = std::min(len, r.size());
        std::memcpy(buf, r.data(), n);
        r.erase(0, n);
        if (r.empty()) {
          *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
          static const nghttp2_nv kTrailers[] = {
              {(uint8_t*)"grpc-status", (uint8_t*)"0", 11, 1, NGHTTP2_NV_FLAG_NONE},
          };
          nghttp2_submit_trailer(s, id, kTrailers, 1);
        }
        return static_cast<ssize_t>(n);
      };
      nghttp2_submit_response(s, id, kHeaders, 2, &provider);
      return 0;
    }

    FakeH2Server* server_;
    tcp::socket socket_;
    size_t acceptor_;
    int index_;
    nghttp2_session* session_ = nullptr;
    char buf_[16384];
    std::map<int32_t, std::string> bodies_;
    std::map<int32_t, std::string> reply_;
  };

  void Accept(size_t i) {
    acceptors_[i]->async_accept([this, i](const boost::system::error_code& ec, tcp::socket socket) {
      if (ec) return;
      sessions_.push_back(std::make_unique<Session>(this, std::move(socket), i, connections_++));
      sessions_.back()->Start();
      Accept(i);
    });
  }

  asio::io_context ioc_;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors_;
  std::vector<std::unique_ptr<std::atomic<int>>> calls_per_acceptor_;
  std::vector<std::unique_ptr<Session>> sessions_;  // server thread only
  std::atomic<int> connections_{0};
  std::atomic<int> resets_{0};
  int port_ = 0;
  std::string error_;
  std::thread thread_;
};

TEST(UpstreamH2Test, GoawayRefusedCallIsSentAgainOnANewConnection) {
  FakeH2Server server({"127.0.0.1"});
  ASSERT_EQ(server.error(), "");
  server.goaway_connections = 1;
  UpstreamOptions o;
  o.default_target = absl::StrCat("127.0.0.1:", server.port());
  auto up = Upstream::Create(o, {"a.Svc"}).value();
  Loop loop;
  UnaryResult r = CallSync(*up, loop, MakeRoute("M", "a.Svc"), "hello");
  EXPECT_TRUE(r.status.ok()) << r.status.code << " " << r.status.message;
  EXPECT_EQ(r.reply, "hello");
  EXPECT_EQ(server.connections(), 2);
  // The new connection keeps serving.
  EXPECT_EQ(CallSync(*up, loop, MakeRoute("M", "a.Svc"), "again").reply, "again");
  EXPECT_EQ(server.connections(), 2);
}

TEST(UpstreamH2Test, CancellingAUnaryCallResetsItsStream) {
  FakeH2Server server({"127.0.0.1"});
  ASSERT_EQ(server.error(), "");
  server.hold = true;
  UpstreamOptions o;
  o.default_target = absl::StrCat("127.0.0.1:", server.port());
  auto up = Upstream::Create(o, {"a.Svc"}).value();
  Loop loop;
  std::shared_ptr<UpstreamCall> handle;
  absl::Notification started;
  std::optional<UnaryResult> result;
  std::thread caller([&] { result = CallSync(*up, loop, MakeRoute("M", "a.Svc"), "x", {}, &handle, &started); });
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(5)));
  ASSERT_TRUE(PollUntil(absl::Seconds(5), [&] { return server.calls(0) == 1; }));
  handle->Cancel();
  caller.join();
  EXPECT_EQ(result->status.code, 1);
  EXPECT_TRUE(PollUntil(absl::Seconds(5), [&] { return server.resets() == 1; }));
  EXPECT_EQ(up->in_flight(), 0);
}

TEST(UpstreamH2Test, NamesGoRoundRobinOverEveryAddressAndAreResolvedAgain) {
  // Two loopback addresses, one port; a resolver seam instead of DNS.
  FakeH2Server server({"127.0.0.1", "127.0.0.2"});
  ASSERT_EQ(server.error(), "");
  auto both = std::make_shared<std::atomic<bool>>(true);
  // Resolutions that answered without 127.0.0.1.
  auto narrowed = std::make_shared<std::atomic<int>>(0);
  UpstreamOptions o;
  o.default_target = absl::StrCat("dns:///backends.test:", server.port());
  o.resolve_interval = absl::Milliseconds(50);
  o.resolve = [both, narrowed](const std::string& host)
      -> absl::StatusOr<std::vector<std::string>> {
    if (host != "backends.test") return absl::NotFoundError("unknown host");
    if (both->load()) return std::vector<std::string>{"127.0.0.1", "127.0.0.2"};
    ++*narrowed;
    return std::vector<std::string>{"127.0.0.2"};
  };
  auto up = Upstream::Create(o, {"a.Svc"}).value();
  Loop loop;
  for (int i = 0; i < 20; ++i) {
    UnaryResult r = CallSync(*up, loop, MakeRoute("M", "a.Svc"), "hi");
    ASSERT_TRUE(r.status.ok()) << r.status.message;
  }
  EXPECT_EQ(server.calls(0), 10);
  EXPECT_EQ(server.calls(1), 10);
  // 127.0.0.1 leaves the name: after the next resolution, calls go to .2 only.
  both->store(false);
  // Resolutions run one after another: once a second has begun, the first
  // one's answer is in use (polled, bounded).
  for (int i = 0; i < 1000 && narrowed->load() < 2; ++i) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_GE(narrowed->load(), 2) << "the name was not resolved again within 5 s";
  const int before = server.calls(0);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(CallSync(*up, loop, MakeRoute("M", "a.Svc"), "hi").status.ok());
  EXPECT_EQ(server.calls(0), before);
  EXPECT_EQ(server.calls(1), 20);
}

// A listener on 127.0.0.1:`port` whose accept queue is full, so the kernel
// drops new SYNs: a connect to it hangs, like one to a vanished pod's address.
class SilentListener {
 public:
  explicit SilentListener(int port) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ok_ = bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
          listen(listener_, 0) == 0;
    // One connection fills a backlog of 0; it is never accepted.
    filler_ = socket(AF_INET, SOCK_STREAM, 0);
    ok_ = ok_ && connect(filler_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  ~SilentListener() {
    close(filler_);
    close(listener_);
  }
  bool ok() const { return ok_; }

 private:
  int listener_ = -1;
  int filler_ = -1;
  bool ok_ = false;
};

TEST(UpstreamH2Test, ASlowConnectTimesOutAndItsCallMovesToAnotherAddress) {
  FakeH2Server server({"127.0.0.2"});
  ASSERT_EQ(server.error(), "");
  SilentListener silent(server.port());  // 127.0.0.1, same port.
  ASSERT_TRUE(silent.ok()) << std::strerror(errno);
  UpstreamOptions o;
  o.default_target = absl::StrCat("dns:///backends.test:", server.port());
  o.connect_timeout = absl::Milliseconds(300);
  o.resolve = [](const std::string&) -> absl::StatusOr<std::vector<std::string>> {
    return std::vector<std::string>{"127.0.0.1", "127.0.0.2"};  // The silent one first.
  };
  auto up = Upstream::Create(o, {"a.Svc"}).value();
  Loop loop;
  CallOptions options;
  options.timeout = absl::Seconds(15);
  const absl::Time start = absl::Now();
  UnaryResult r = CallSync(*up, loop, MakeRoute("M", "a.Svc"), "hi", options);
  ASSERT_TRUE(r.status.ok()) << r.status.message;
  // Served by 127.0.0.2 after the connect timeout, long before the deadline
  // (or the kernel's own connect timeout, minutes).
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(250));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(server.calls(0), 1);
  // The silent address waits out its backoff: the next calls go straight on.
  const absl::Time again = absl::Now();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(CallSync(*up, loop, MakeRoute("M", "a.Svc"), "hi", options).status.ok());
  }
  EXPECT_LT(absl::Now() - again, absl::Milliseconds(250));
  EXPECT_EQ(server.calls(0), 4);
}

TEST(UpstreamH2Test, AnUnresolvableNameIsUnavailable) {
  UpstreamOptions o;
  o.default_target = "dns:///nowhere.test:50051";
  o.resolve = [](const std::string&) -> absl::StatusOr<std::vector<std::string>> {
    return absl::NotFoundError("no such host");
  };
  auto up = Upstream::Create(o, {"a.Svc"}).value();
  Loop loop;
  UnaryResult r = CallSync(*up, loop, MakeRoute("M", "a.Svc"), "hi");
  EXPECT_EQ(r.status.code, 14);
  EXPECT_THAT(r.status.message, HasSubstr("no such host"));
}

}  // namespace
}  // namespace taskmesh::gateway
