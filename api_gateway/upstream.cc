#include "api_gateway/upstream.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/write.hpp"

namespace taskmesh::gateway {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

// gRPC status codes used here (grpc::StatusCode values).
constexpr int kCancelled = 1;
constexpr int kUnknown = 2;
constexpr int kDeadlineExceeded = 4;
constexpr int kUnimplemented = 12;
constexpr int kPermissionDenied = 7;
constexpr int kResourceExhausted = 8;
constexpr int kInternal = 13;
constexpr int kUnavailable = 14;
constexpr int kUnauthenticated = 16;

// ---- the wire format -------------------------------------------------------

namespace grpc_wire {

std::string PercentDecode(absl::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() &&
        absl::ascii_isxdigit(static_cast<unsigned char>(in[i + 1])) &&
        absl::ascii_isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      auto hex = [](char c) { return absl::ascii_isdigit(c) ? c - '0' : absl::ascii_tolower(c) - 'a' + 10; };
      out.push_back(static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2])));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

std::string PercentEncode(absl::string_view in) {
  std::string out;
  for (unsigned char c : in) {
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppendFormat(&out, "%%%02X", c);
    }
  }
  return out;
}

std::string EncodeTimeout(absl::Duration timeout) {
  int64_t ns = absl::ToInt64Nanoseconds(timeout);
  if (ns <= 0) return "1n";
  struct Unit {
    int64_t ns;
    char c;
  };
  static constexpr Unit kUnits[] = {{1, 'n'},
                                    {1000, 'u'},
                                    {1000 * 1000, 'm'},
                                    {1000 * 1000 * 1000, 'S'},
                                    {60LL * 1000 * 1000 * 1000, 'M'},
                                    {3600LL * 1000 * 1000 * 1000, 'H'}};
  for (const Unit& u : kUnits) {
    const int64_t v = (ns + u.ns - 1) / u.ns;  // rounded up: never shorter
    if (v < 100000000) return absl::StrCat(v, std::string(1, u.c));
  }
  return "99999999H";
}

std::string Frame(absl::string_view message) {
  std::string out;
  out.reserve(5 + message.size());
  const uint32_t n = static_cast<uint32_t>(message.size());
  out.push_back('\0');
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  out.append(message.data(), message.size());
  return out;
}

int CodeFromHttpStatus(int http_status) {
  switch (http_status) {
    case 400: return kInternal;
    case 401: return kUnauthenticated;
    case 403: return kPermissionDenied;
    case 404: return kUnimplemented;
    case 429:
    case 502:
    case 503:
    case 504: return kUnavailable;
    default: return kUnknown;
  }
}

}  // namespace grpc_wire

namespace {

bool IsProtocolHeader(absl::string_view key) {
  return key.empty() || key[0] == ':' || key == "content-type" || key == "grpc-status" ||
         key == "grpc-message" || key == "grpc-status-details-bin" || key == "grpc-encoding" ||
         key == "grpc-accept-encoding" || key == "te";
}

std::string Base64DecodeLenient(absl::string_view in) {
  std::string out;
  if (!absl::Base64Unescape(in, &out)) absl::WebSafeBase64Unescape(in, &out);
  return out;
}

nghttp2_nv Nv(absl::string_view name, absl::string_view value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE};
}

RpcStatus Status(int code, std::string message) { return RpcStatus{code, std::move(message), {}}; }

class H2Connection;
class Pool;

}  // namespace

// ---- shared state, one per Upstream, outliving it while loops exist --------

struct UpstreamShared {
  UpstreamOptions options;
  std::vector<Upstream::Target> targets;
  std::atomic<int> in_flight{0};
  uint64_t id = 0;
  absl::Mutex mu;
  absl::flat_hash_set<Upstream::Loop*> loops ABSL_GUARDED_BY(mu);
};

namespace {

// One RPC: unary or server streaming. Owned by its Loop's `live` map (and by
// handles given to the caller); runs on the loop thread only, except Cancel().
class Call final : public UpstreamCall, public ServerStream, public std::enable_shared_from_this<Call> {
 public:
  Call(Upstream::Loop* loop, asio::io_context& ioc, const Upstream::Target* target,
       std::string path, CallOptions options, std::string request)
      : loop_(loop),
        ioc_(ioc),
        target_(target),
        path_(std::move(path)),
        options_(std::move(options)),
        body_(grpc_wire::Frame(request)),
        timer_(ioc) {}

  void Cancel() override {
    asio::post(ioc_, [self = shared_from_this()] {
      self->inbuf_.clear();
      self->Complete(Status(kCancelled, "Cancelled"));
    });
  }
  void ReadNext() override {
    auto self = shared_from_this();
    awaiting_ack_ = false;
    ConsumeIfPartial();
    Pump();
  }
  void Abandon() override {
    auto self = shared_from_this();
    awaiting_ack_ = false;
    inbuf_.clear();
    Complete(Status(kCancelled, "Cancelled: the reader left"));
  }

  void Start();
  // The h2 stream is gone or never was: a final status (first one wins).
  void Complete(RpcStatus status);
  void Pump();
  void ConsumeIfPartial();

  // From the connection.
  void OnHeader(bool trailers, absl::string_view name, absl::string_view value);
  void OnData(const uint8_t* data, size_t len);
  void OnStreamClose(uint32_t error_code);
  ssize_t ReadBody(uint8_t* buf, size_t len, uint32_t* flags);

  Upstream::Loop* loop_;
  asio::io_context& ioc_;
  const Upstream::Target* target_;
  const std::string path_;
  const CallOptions options_;
  const std::string body_;
  size_t sent_ = 0;
  asio::steady_timer timer_;
  Upstream::UnaryDone done_;
  StreamObserver* observer_ = nullptr;
  bool counted_ = true;  // in in_flight (health checks are not)
  int attempts_ = 0;

  std::shared_ptr<H2Connection> conn_;
  int32_t stream_id_ = -1;

  int http_status_ = 0;
  bool has_grpc_status_ = false;
  bool headers_seen_ = false;
  RpcStatus status_;
  ResponseMetadata metadata_;
  std::string inbuf_;
  size_t unconsumed_ = 0;  // stream-level bytes not yet acknowledged

  bool ended_ = false;         // final status known
  RpcStatus final_;
  bool delivered_ = false;     // OnDone / done ran
  bool awaiting_ack_ = false;  // a message is with the observer
};

// One HTTP/2 connection to one address, on one loop.
class H2Connection : public std::enable_shared_from_this<H2Connection> {
 public:
  H2Connection(Pool* pool, asio::io_context& ioc, tcp::endpoint endpoint)
      : pool_(pool), ioc_(ioc), endpoint_(endpoint), socket_(ioc) {}
  ~H2Connection() {
    if (session_ != nullptr) nghttp2_session_del(session_);
  }

  void Connect();
  // Queues or submits `call`.
  void Submit(const std::shared_ptr<Call>& call);
  // No new calls; closes once its streams are done.
  void Drain() {
    going_away_ = true;
    MaybeCloseIdle();
  }
  // The call no longer wants its stream (deadline, cancel): RST_STREAM.
  void Reset(Call* call, uint32_t error_code);
  void Consume(int32_t stream_id, size_t n) {
    if (session_ != nullptr && !closed_) {
      nghttp2_session_consume_stream(session_, stream_id, n);
      ScheduleFlush();
    }
  }
  void Close(const std::string& reason);
  bool usable() const { return !closed_ && !going_away_; }
  const tcp::endpoint& endpoint() const { return endpoint_; }

 private:
  friend class Pool;
  void Open(const std::shared_ptr<Call>& call);
  void Read();
  void ScheduleFlush();
  void Flush();
  void MaybeCloseIdle();
  void Detach(Call* call) {
    streams_.erase(call);
    if (session_ != nullptr && call->stream_id_ > 0 && !closed_) {
      nghttp2_session_set_stream_user_data(session_, call->stream_id_, nullptr);
    }
    call->conn_ = nullptr;
    call->stream_id_ = -1;
  }

  static int OnHeaderCb(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                        size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* ud);
  static int OnDataCb(nghttp2_session* s, uint8_t, int32_t id, const uint8_t* data, size_t len,
                      void* ud);
  static int OnStreamCloseCb(nghttp2_session* s, int32_t id, uint32_t error_code, void* ud);
  static int OnFrameRecvCb(nghttp2_session* s, const nghttp2_frame* frame, void* ud);

  Pool* pool_;
  asio::io_context& ioc_;
  const tcp::endpoint endpoint_;
  tcp::socket socket_;
  nghttp2_session* session_ = nullptr;
  bool connected_ = false;
  bool closed_ = false;
  bool going_away_ = false;
  bool flush_scheduled_ = false;
  bool write_in_flight_ = false;
  std::string out_;
  std::string writing_;
  char inbuf_[32 * 1024];
  std::vector<std::shared_ptr<Call>> pending_;  // waiting for the connection
  absl::flat_hash_set<Call*> streams_;           // submitted, not closed
};

// The addresses of one target on one loop, and their connections.
class Pool {
 public:
  Pool(asio::io_context& ioc, UpstreamShared* shared, const Upstream::Target* target)
      : ioc_(ioc), shared_(shared), target_(target), resolver_(ioc), timer_(ioc) {
    if (target->literal) {
      error_code ec;
      const auto address = asio::ip::make_address(target->host, ec);
      int port = 0;
      absl::SimpleAtoi(target->port, &port);
      SetAddresses({tcp::endpoint(address, static_cast<unsigned short>(port))});
    }
  }

  void Dispatch(const std::shared_ptr<Call>& call);
  // A connect to `endpoint` failed: back off from it, move its calls.
  void ConnectFailed(const tcp::endpoint& endpoint, const std::string& reason,
                     std::vector<std::shared_ptr<Call>> calls);
  void Connected(const tcp::endpoint& endpoint);
  // An established connection broke.
  void ConnectionLost() { ResolveSoon(); }
  void Shutdown() {
    shut_down_ = true;
    error_code ec;
    timer_.cancel();
    resolver_.cancel();
    for (Address& a : addresses_) {
      for (auto& c : a.conns) {
        if (c) c->Close("the gateway is shutting down");
      }
    }
    waiting_.clear();
  }

  asio::io_context& ioc() { return ioc_; }
  UpstreamShared* shared() { return shared_; }

 private:
  struct Address {
    tcp::endpoint endpoint;
    std::vector<std::shared_ptr<H2Connection>> conns;
    std::chrono::steady_clock::time_point retry_after{};
    absl::Duration backoff = absl::ZeroDuration();
    std::string last_error;
  };

  Address* Find(const tcp::endpoint& e) {
    for (Address& a : addresses_) {
      if (a.endpoint == e) return &a;
    }
    return nullptr;
  }
  void SetAddresses(const std::vector<tcp::endpoint>& endpoints);
  void ResolveSoon();
  void Resolve();
  void Resolved(const std::string& error, const std::vector<tcp::endpoint>& endpoints);
  void FailWaiting(const std::string& reason);

  asio::io_context& ioc_;
  UpstreamShared* shared_;
  const Upstream::Target* target_;
  tcp::resolver resolver_;
  asio::steady_timer timer_;  // periodic re-resolution
  bool resolved_ = false;
  bool resolving_ = false;
  bool shut_down_ = false;
  std::chrono::steady_clock::time_point last_resolve_{};
  std::vector<Address> addresses_;
  size_t next_ = 0;
  std::vector<std::shared_ptr<Call>> waiting_;  // for the first resolution
  std::string resolve_error_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for resolver/timer handlers
};

}  // namespace

// Everything one io_context has for one Upstream: a pool per target and the
// calls in flight. Owned by the io_context (through LoopService), so it
// never outlives the sockets' event loop; touched on that loop's thread only.
class Upstream::Loop {
 public:
  Loop(std::shared_ptr<UpstreamShared> shared, asio::io_context& ioc)
      : shared_(std::move(shared)), ioc_(ioc) {
    for (const Target& t : shared_->targets) {
      pools_.push_back(std::make_unique<Pool>(ioc, shared_.get(), &t));
    }
    absl::MutexLock lock(&shared_->mu);
    shared_->loops.insert(this);
  }
  ~Loop() {
    absl::MutexLock lock(&shared_->mu);
    shared_->loops.erase(this);
  }

  // `counted`: in in_flight (health checks are not).
  std::shared_ptr<Call> NewCall(const Target* target, std::string path, CallOptions options,
                                std::string request, bool counted = true) {
    auto call = std::make_shared<Call>(this, ioc_, target, std::move(path), std::move(options),
                                       std::move(request));
    call->counted_ = counted;
    if (counted) shared_->in_flight.fetch_add(1, std::memory_order_relaxed);
    live_.emplace(call.get(), call);
    return call;
  }
  void Start(const std::shared_ptr<Call>& call) { pools_[call->target_->index]->Dispatch(call); }
  void Dispatch(const std::shared_ptr<Call>& call) { pools_[call->target_->index]->Dispatch(call); }
  void Ended(Call* call) {
    if (call->counted_) shared_->in_flight.fetch_sub(1, std::memory_order_relaxed);
    live_.erase(call);
  }
  void CancelAll() {
    std::vector<std::shared_ptr<Call>> calls;
    for (const auto& [raw, call] : live_) calls.push_back(call);
    for (const auto& call : calls) {
      call->inbuf_.clear();
      call->Complete(Status(kCancelled, "Cancelled: the gateway is shutting down"));
    }
  }
  // The io_context is going away: no callbacks any more, just close.
  void Shutdown() {
    for (auto& [raw, call] : live_) {
      if (!call->delivered_ && call->counted_) {
        shared_->in_flight.fetch_sub(1, std::memory_order_relaxed);
      }
      call->delivered_ = true;
    }
    for (auto& p : pools_) p->Shutdown();
    live_.clear();
  }
  UpstreamShared* shared() { return shared_.get(); }
  asio::io_context& ioc() { return ioc_; }

 private:
  std::shared_ptr<UpstreamShared> shared_;
  asio::io_context& ioc_;
  std::vector<std::unique_ptr<Pool>> pools_;
  absl::flat_hash_map<Call*, std::shared_ptr<Call>> live_;
};

namespace {

// The io_context's registry of Loops, one per Upstream; destroyed (with its
// loops, sockets first) when the io_context is.
class LoopService : public asio::io_context::service {
 public:
  static asio::io_context::id id;
  explicit LoopService(asio::io_context& ioc) : asio::io_context::service(ioc) {}
  void shutdown() override {
    for (auto& [id, loop] : loops) loop->Shutdown();
    loops.clear();
  }
  absl::flat_hash_map<uint64_t, std::unique_ptr<Upstream::Loop>> loops;  // loop thread only
};
asio::io_context::id LoopService::id;

std::atomic<uint64_t> next_upstream_id{1};

// ---- Call -------------------------------------------------------------------

void Call::Start() {
  if (ended_) return;  // cancelled before it started
  timer_.expires_after(absl::ToChronoNanoseconds(std::max(options_.timeout, absl::ZeroDuration())));
  timer_.async_wait([self = shared_from_this()](const error_code& ec) {
    if (ec || self->ended_) return;
    self->inbuf_.clear();
    self->Complete(Status(kDeadlineExceeded, "Deadline Exceeded"));
  });
  loop_->Start(shared_from_this());
}

void Call::Complete(RpcStatus status) {
  if (ended_) {
    Pump();
    return;
  }
  ended_ = true;
  final_ = std::move(status);
  timer_.cancel();
  if (conn_ != nullptr) conn_->Reset(this, NGHTTP2_CANCEL);
  Pump();
}

void Call::ConsumeIfPartial() {
  // Acknowledge received bytes unless a whole message is waiting for the
  // reader: then the upstream waits too (flow control is the backpressure).
  if (unconsumed_ == 0 || conn_ == nullptr) return;
  if (inbuf_.size() >= 5) {
    const auto* p = reinterpret_cast<const uint8_t*>(inbuf_.data());
    const uint32_t n = (uint32_t{p[1]} << 24) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 8) | p[4];
    if (inbuf_.size() >= 5 + size_t{n}) return;
  }
  conn_->Consume(stream_id_, unconsumed_);
  unconsumed_ = 0;
}

// Delivers what can be delivered: the next message when the reader wants
// one, else the final status once the messages are out.
void Call::Pump() {
  if (delivered_) return;
  auto self = shared_from_this();
  const int max = loop_->shared()->options.max_receive_message_bytes;
  std::string message;
  bool have = false;
  if (inbuf_.size() >= 5) {
    const auto* p = reinterpret_cast<const uint8_t*>(inbuf_.data());
    const uint32_t n = (uint32_t{p[1]} << 24) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 8) | p[4];
    if (p[0] != 0) {
      inbuf_.clear();
      Complete(Status(kInternal, "a compressed message, and none was asked for"));
      return;
    }
    if (n > static_cast<uint32_t>(max)) {
      inbuf_.clear();
      Complete(Status(kResourceExhausted,
                      absl::StrCat("Received message larger than max (", n, " vs. ", max, ")")));
      return;
    }
    if (inbuf_.size() >= 5 + size_t{n} && (observer_ == nullptr ? ended_ : !awaiting_ack_)) {
      message = inbuf_.substr(5, n);
      inbuf_.erase(0, 5 + size_t{n});
      have = true;
    }
  }
  if (observer_ != nullptr) {
    if (have) {
      awaiting_ack_ = true;
      ConsumeIfPartial();
      observer_->OnMessage(this, std::move(message));
      return;
    }
    if (!ended_ || awaiting_ack_) return;
    if (!inbuf_.empty() && final_.ok()) final_ = Status(kInternal, "the stream ended inside a message");
    delivered_ = true;
    loop_->Ended(this);
    observer_->OnDone(final_, metadata_);
    return;
  }
  // Unary: wait for the end, then exactly one message.
  if (!ended_) return;
  if (final_.ok()) {
    if (!have) {
      final_ = Status(kInternal, "the upstream sent no response message");
    } else if (!inbuf_.empty()) {
      final_ = Status(kInternal, "the upstream sent more than one response message");
    }
  }
  delivered_ = true;
  loop_->Ended(this);
  Upstream::UnaryDone done = std::move(done_);
  done(final_, final_.ok() ? std::move(message) : std::string(), metadata_);
}

void Call::OnHeader(bool trailers, absl::string_view name, absl::string_view value) {
  headers_seen_ = true;
  if (name == ":status") {
    absl::SimpleAtoi(value, &http_status_);
  } else if (name == "grpc-status") {
    has_grpc_status_ = absl::SimpleAtoi(value, &status_.code);
    if (!has_grpc_status_) status_.code = kUnknown;
  } else if (name == "grpc-message") {
    status_.message = grpc_wire::PercentDecode(value);
  } else if (name == "grpc-status-details-bin") {
    status_.details = Base64DecodeLenient(value);
  } else if (!IsProtocolHeader(name)) {
    std::string v = absl::EndsWith(name, "-bin") ? Base64DecodeLenient(value) : std::string(value);
    (trailers ? metadata_.trailing : metadata_.initial).emplace_back(std::string(name), std::move(v));
  }
}

void Call::OnData(const uint8_t* data, size_t len) {
  if (ended_) {
    if (conn_ != nullptr) conn_->Consume(stream_id_, len);
    return;
  }
  inbuf_.append(reinterpret_cast<const char*>(data), len);
  unconsumed_ += len;
  if (observer_ == nullptr) {  // unary: take it all, check the size early
    conn_->Consume(stream_id_, unconsumed_);
    unconsumed_ = 0;
    if (inbuf_.size() >= 5) {
      const auto* p = reinterpret_cast<const uint8_t*>(inbuf_.data());
      const uint32_t n = (uint32_t{p[1]} << 24) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 8) | p[4];
      if (n > static_cast<uint32_t>(loop_->shared()->options.max_receive_message_bytes)) {
        auto self = shared_from_this();
        Pump();  // RESOURCE_EXHAUSTED
      }
    }
    return;
  }
  ConsumeIfPartial();
  Pump();
}

void Call::OnStreamClose(uint32_t error_code) {
  RpcStatus s;
  if (has_grpc_status_) {
    s = status_;
  } else if (http_status_ != 0 && http_status_ != 200) {
    s = Status(grpc_wire::CodeFromHttpStatus(http_status_),
               absl::StrCat("the upstream answered HTTP status ", http_status_));
  } else if (error_code == NGHTTP2_REFUSED_STREAM && !headers_seen_ && attempts_ < 2) {
    // Never processed (GOAWAY, or a stream limit): safe to send again.
    ++attempts_;
    inbuf_.clear();
    sent_ = 0;
    loop_->Dispatch(shared_from_this());
    return;
  } else if (error_code == NGHTTP2_REFUSED_STREAM) {
    s = Status(kUnavailable, "the upstream refused the stream");
  } else if (error_code == NGHTTP2_CANCEL) {
    s = Status(kCancelled, "the upstream cancelled the stream");
  } else if (error_code != NGHTTP2_NO_ERROR) {
    s = Status(kInternal, absl::StrCat("the upstream reset the stream: ",
                                       nghttp2_http2_strerror(error_code)));
  } else {
    s = Status(kUnknown, "the upstream's response had no grpc-status");
  }
  Complete(std::move(s));
}

ssize_t Call::ReadBody(uint8_t* buf, size_t len, uint32_t* flags) {
  const size_t n = std::min(len, body_.size() - sent_);
  std::memcpy(buf, body_.data() + sent_, n);
  sent_ += n;
  if (sent_ == body_.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

// ---- H2Connection -------------------------------------------------------------

void H2Connection::Connect() {
  socket_.async_connect(endpoint_, [self = shared_from_this()](const error_code& ec) {
    if (self->closed_) return;
    if (ec) {
      self->closed_ = true;
      auto calls = std::move(self->pending_);
      self->pending_.clear();
      self->pool_->ConnectFailed(self->endpoint_, ec.message(), std::move(calls));
      return;
    }
    error_code ignored;
    self->socket_.set_option(tcp::no_delay(true), ignored);
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &H2Connection::OnHeaderCb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &H2Connection::OnDataCb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &H2Connection::OnStreamCloseCb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &H2Connection::OnFrameRecvCb);
    nghttp2_option* option;
    nghttp2_option_new(&option);
    nghttp2_option_set_no_auto_window_update(option, 1);
    nghttp2_session_client_new2(&self->session_, cbs, self.get(), option);
    nghttp2_option_del(option);
    nghttp2_session_callbacks_del(cbs);
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 64 << 10},
    };
    nghttp2_submit_settings(self->session_, NGHTTP2_FLAG_NONE, settings, 3);
    nghttp2_session_set_local_window_size(self->session_, NGHTTP2_FLAG_NONE, 0, 64 << 20);
    self->connected_ = true;
    self->pool_->Connected(self->endpoint_);
    auto calls = std::move(self->pending_);
    self->pending_.clear();
    for (auto& call : calls) {
      if (!call->ended_) self->Open(call);
    }
    self->Flush();
    self->Read();
  });
}

void H2Connection::Submit(const std::shared_ptr<Call>& call) {
  call->conn_ = shared_from_this();
  if (!connected_) {
    pending_.push_back(call);
    return;
  }
  Open(call);
  ScheduleFlush();
}

void H2Connection::Open(const std::shared_ptr<Call>& call) {
  Call* c = call.get();
  c->conn_ = shared_from_this();
  const std::string timeout = grpc_wire::EncodeTimeout(c->options_.timeout);
  std::vector<nghttp2_nv> nva;
  nva.reserve(8 + c->options_.metadata.size());
  nva.push_back(Nv(":method", "POST"));
  nva.push_back(Nv(":scheme", "http"));
  nva.push_back(Nv(":path", c->path_));
  nva.push_back(Nv(":authority", c->target_->authority));
  nva.push_back(Nv("content-type", "application/grpc"));
  nva.push_back(Nv("te", "trailers"));
  nva.push_back(Nv("grpc-timeout", timeout));
  std::vector<std::string> encoded;  // base64 values; reserved, so nva's pointers stay valid
  encoded.reserve(c->options_.metadata.size());
  for (const auto& [key, value] : c->options_.metadata) {
    if (absl::EndsWith(key, "-bin")) {
      encoded.push_back(absl::Base64Escape(value));
      nva.push_back(Nv(key, encoded.back()));
    } else {
      nva.push_back(Nv(key, value));
      // A fresh value every call: indexing it would only churn both sides'
      // HPACK tables.
      if (key == "x-request-id") nva.back().flags = NGHTTP2_NV_FLAG_NO_INDEX;
    }
  }
  nghttp2_data_provider provider;
  provider.source.ptr = c;
  provider.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t len, uint32_t* flags,
                              nghttp2_data_source* source, void*) -> ssize_t {
    return static_cast<Call*>(source->ptr)->ReadBody(buf, len, flags);
  };
  const int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), &provider, c);
  if (id < 0) {
    // Stream ids used up (a very long-lived connection): a fresh one.
    c->conn_ = nullptr;
    going_away_ = true;
    call->attempts_++;
    if (call->attempts_ < 3) {
      pool_->Dispatch(call);
    } else {
      call->Complete(Status(kUnavailable, absl::StrCat("cannot start a stream: ", nghttp2_strerror(id))));
    }
    MaybeCloseIdle();
    return;
  }
  c->stream_id_ = id;
  streams_.insert(c);
}

void H2Connection::Reset(Call* call, uint32_t error_code) {
  if (call->stream_id_ > 0 && session_ != nullptr && !closed_) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, call->stream_id_, error_code);
    ScheduleFlush();
  }
  if (call->stream_id_ < 0) {
    pending_.erase(std::remove_if(pending_.begin(), pending_.end(),
                                  [call](const std::shared_ptr<Call>& c) { return c.get() == call; }),
                   pending_.end());
  }
  Detach(call);
  MaybeCloseIdle();
}

void H2Connection::Read() {
  socket_.async_read_some(asio::buffer(inbuf_), [self = shared_from_this()](const error_code& ec,
                                                                            size_t n) {
    if (self->closed_) return;
    if (ec) {
      self->Close(ec == asio::error::eof ? "the upstream closed the connection"
                                         : absl::StrCat("upstream connection: ", ec.message()));
      return;
    }
    const ssize_t r = nghttp2_session_mem_recv(
        self->session_, reinterpret_cast<const uint8_t*>(self->inbuf_), n);
    if (self->closed_) return;
    if (r < 0) {
      self->Close(absl::StrCat("HTTP/2 error from the upstream: ", nghttp2_strerror(static_cast<int>(r))));
      return;
    }
    self->Flush();
    if (!self->closed_) self->Read();
  });
}

void H2Connection::ScheduleFlush() {
  if (flush_scheduled_ || write_in_flight_ || closed_ || !connected_) return;
  flush_scheduled_ = true;
  // Later in this loop turn: the calls started meanwhile share one write.
  asio::post(ioc_, [self = shared_from_this()] {
    self->flush_scheduled_ = false;
    self->Flush();
  });
}

void H2Connection::Flush() {
  if (write_in_flight_ || closed_ || session_ == nullptr) return;
  for (;;) {
    const uint8_t* data;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      Close(absl::StrCat("HTTP/2 error: ", nghttp2_strerror(static_cast<int>(n))));
      return;
    }
    if (n == 0) break;
    out_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  if (out_.empty()) {
    MaybeCloseIdle();
    return;
  }
  writing_.swap(out_);
  out_.clear();
  write_in_flight_ = true;
  asio::async_write(socket_, asio::buffer(writing_),
                    [self = shared_from_this()](const error_code& ec, size_t) {
                      self->write_in_flight_ = false;
                      self->writing_.clear();
                      if (self->closed_) return;
                      if (ec) {
                        self->Close(absl::StrCat("upstream connection: ", ec.message()));
                        return;
                      }
                      self->Flush();
                    });
}

void H2Connection::MaybeCloseIdle() {
  if (closed_ || !connected_) return;
  if (going_away_ && streams_.empty() && pending_.empty() && !write_in_flight_) {
    Close("drained");
    return;
  }
  if (session_ != nullptr && !nghttp2_session_want_read(session_) &&
      !nghttp2_session_want_write(session_) && !write_in_flight_) {
    Close("the HTTP/2 session ended");
  }
}

void H2Connection::Close(const std::string& reason) {
  if (closed_) return;
  closed_ = true;
  const bool was_connected = connected_;
  error_code ec;
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  auto self = shared_from_this();
  std::vector<Call*> streams(streams_.begin(), streams_.end());
  auto pending = std::move(pending_);
  pending_.clear();
  for (Call* call : streams) {
    auto keep = call->shared_from_this();
    Detach(call);
    call->Complete(Status(kUnavailable, reason));
  }
  for (auto& call : pending) {
    call->conn_ = nullptr;
    call->Complete(Status(kUnavailable, reason));
  }
  if (was_connected) pool_->ConnectionLost();
}

int H2Connection::OnHeaderCb(nghttp2_session* s, const nghttp2_frame* frame, const uint8_t* name,
                             size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                             void*) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto* call = static_cast<Call*>(nghttp2_session_get_stream_user_data(s, frame->hd.stream_id));
  if (call == nullptr) return 0;
  call->OnHeader(frame->headers.cat == NGHTTP2_HCAT_HEADERS,
                 absl::string_view(reinterpret_cast<const char*>(name), namelen),
                 absl::string_view(reinterpret_cast<const char*>(value), valuelen));
  return 0;
}

int H2Connection::OnDataCb(nghttp2_session* s, uint8_t, int32_t id, const uint8_t* data,
                           size_t len, void* ud) {
  nghttp2_session_consume_connection(s, len);
  auto* call = static_cast<Call*>(nghttp2_session_get_stream_user_data(s, id));
  if (call == nullptr) {
    nghttp2_session_consume_stream(s, id, len);
    return 0;
  }
  call->OnData(data, len);
  return 0;
}

int H2Connection::OnStreamCloseCb(nghttp2_session* s, int32_t id, uint32_t error_code, void* ud) {
  auto* self = static_cast<H2Connection*>(ud);
  auto* call = static_cast<Call*>(nghttp2_session_get_stream_user_data(s, id));
  if (call == nullptr) return 0;
  auto keep = call->shared_from_this();
  self->streams_.erase(call);
  nghttp2_session_set_stream_user_data(s, id, nullptr);
  call->conn_ = nullptr;
  call->stream_id_ = -1;
  call->OnStreamClose(error_code);
  self->MaybeCloseIdle();
  return 0;
}

int H2Connection::OnFrameRecvCb(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    // Streams above last_stream_id are closed as REFUSED_STREAM (and sent
    // again elsewhere); the rest may finish. New calls go elsewhere.
    auto* self = static_cast<H2Connection*>(ud);
    self->going_away_ = true;
  }
  return 0;
}

// ---- Pool -------------------------------------------------------------------------

void Pool::Dispatch(const std::shared_ptr<Call>& call) {
  if (call->ended_) return;
  if (shut_down_) {
    call->Complete(Status(kUnavailable, "the gateway is shutting down"));
    return;
  }
  if (!resolved_) {
    waiting_.push_back(call);
    Resolve();
    return;
  }
  if (addresses_.empty()) {
    call->Complete(Status(kUnavailable, absl::StrCat("no addresses for ", target_->name)));
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  const int per_address = std::max(1, shared_->options.connections_per_address);
  std::string last_error;
  for (size_t i = 0; i < addresses_.size(); ++i) {
    const size_t pick = next_++;
    Address& a = addresses_[pick % addresses_.size()];
    if (now < a.retry_after) {
      last_error = a.last_error;
      continue;
    }
    if (a.conns.size() != static_cast<size_t>(per_address)) a.conns.resize(per_address);
    std::shared_ptr<H2Connection>& conn = a.conns[(pick / addresses_.size()) % per_address];
    if (conn == nullptr || !conn->usable()) {
      if (conn != nullptr) conn->Drain();
      conn = std::make_shared<H2Connection>(this, ioc_, a.endpoint);
      conn->Connect();
    }
    conn->Submit(call);
    return;
  }
  call->Complete(Status(kUnavailable, absl::StrCat("failed to connect to ", target_->name,
                                                   last_error.empty() ? "" : ": ", last_error)));
}

void Pool::ConnectFailed(const tcp::endpoint& endpoint, const std::string& reason,
                         std::vector<std::shared_ptr<Call>> calls) {
  const std::string error = absl::StrCat(endpoint.address().to_string(), ":", endpoint.port(), ": ", reason);
  if (Address* a = Find(endpoint)) {
    const UpstreamOptions& o = shared_->options;
    a->backoff = a->backoff == absl::ZeroDuration() ? o.initial_backoff
                                                     : std::min(a->backoff * 2, o.max_backoff);
    a->retry_after = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(a->backoff);
    a->last_error = error;
  }
  ResolveSoon();
  for (auto& call : calls) {
    call->conn_ = nullptr;
    if (call->ended_) continue;
    // Another address may take it; each call tries each address at most once.
    if (++call->attempts_ < static_cast<int>(addresses_.size()) + 1 && addresses_.size() > 1) {
      Dispatch(call);
    } else {
      call->Complete(Status(kUnavailable, absl::StrCat("failed to connect to ", error)));
    }
  }
}

void Pool::Connected(const tcp::endpoint& endpoint) {
  if (Address* a = Find(endpoint)) {
    a->backoff = absl::ZeroDuration();
    a->retry_after = {};
    a->last_error.clear();
  }
}

void Pool::SetAddresses(const std::vector<tcp::endpoint>& endpoints) {
  std::vector<Address> next;
  for (const tcp::endpoint& e : endpoints) {
    bool dup = false;
    for (const Address& a : next) dup = dup || a.endpoint == e;
    if (dup) continue;
    if (Address* old = Find(e)) {
      next.push_back(std::move(*old));
    } else {
      Address a;
      a.endpoint = e;
      next.push_back(std::move(a));
    }
  }
  // What is left in addresses_ (kept ones were moved out) is gone from DNS:
  // its connections finish their calls and close.
  for (Address& a : addresses_) {
    for (auto& c : a.conns) {
      if (c) c->Drain();
    }
  }
  addresses_ = std::move(next);
  resolved_ = true;
}

void Pool::ResolveSoon() {
  if (target_->literal || shut_down_) return;
  // At most once a second after failures.
  if (std::chrono::steady_clock::now() - last_resolve_ < std::chrono::seconds(1)) return;
  Resolve();
}

void Pool::Resolve() {
  if (target_->literal || resolving_ || shut_down_) return;
  resolving_ = true;
  last_resolve_ = std::chrono::steady_clock::now();
  std::weak_ptr<bool> alive = alive_;
  const UpstreamOptions& o = shared_->options;
  if (o.resolve) {
    absl::StatusOr<std::vector<std::string>> ips = o.resolve(target_->host);
    std::vector<tcp::endpoint> endpoints;
    std::string error = ips.ok() ? "" : std::string(ips.status().message());
    int port = 0;
    absl::SimpleAtoi(target_->port, &port);
    for (const std::string& ip : ips.ok() ? *ips : std::vector<std::string>{}) {
      error_code ec;
      const auto address = asio::ip::make_address(ip, ec);
      if (!ec) endpoints.emplace_back(address, static_cast<unsigned short>(port));
    }
    asio::post(ioc_, [this, alive, error, endpoints] {
      if (!alive.expired()) Resolved(error, endpoints);
    });
    return;
  }
  resolver_.async_resolve(target_->host, target_->port,
                          [this, alive](const error_code& ec, tcp::resolver::results_type results) {
                            if (alive.expired()) return;
                            std::vector<tcp::endpoint> endpoints;
                            for (const auto& r : results) endpoints.push_back(r.endpoint());
                            Resolved(ec ? ec.message() : "", endpoints);
                          });
}

void Pool::Resolved(const std::string& error, const std::vector<tcp::endpoint>& endpoints) {
  if (shut_down_) return;
  resolving_ = false;
  if (!error.empty() || endpoints.empty()) {
    resolve_error_ = error.empty() ? "no addresses" : error;
    if (!resolved_) FailWaiting(absl::StrCat("cannot resolve ", target_->name, ": ", resolve_error_));
  } else {
    SetAddresses(endpoints);
    auto waiting = std::move(waiting_);
    waiting_.clear();
    for (auto& call : waiting) Dispatch(call);
  }
  // Periodically again, so that new replicas get calls and gone ones stop.
  timer_.expires_after(absl::ToChronoNanoseconds(shared_->options.resolve_interval));
  timer_.async_wait([this, alive = std::weak_ptr<bool>(alive_)](const error_code& ec) {
    if (ec || alive.expired() || shut_down_) return;
    Resolve();
  });
}

void Pool::FailWaiting(const std::string& reason) {
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& call : waiting) call->Complete(Status(kUnavailable, reason));
}

}  // namespace

// ---- Upstream -----------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Upstream>> Upstream::Create(
    UpstreamOptions options, const std::vector<std::string>& services) {
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
  auto shared = std::make_shared<UpstreamShared>();
  shared->id = next_upstream_id.fetch_add(1);
  std::vector<std::string> names;
  auto add = [&](const std::string& name) -> absl::StatusOr<int> {
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == name) return static_cast<int>(i);
    }
    Target t;
    t.name = name;
    absl::string_view rest = name;
    if (absl::ConsumePrefix(&rest, "dns:///")) {
    } else if (absl::StrContains(rest, "://") || absl::StartsWith(rest, "unix:")) {
      return absl::InvalidArgumentError(
          absl::StrCat("upstream '", name, "': only HOST:PORT and dns:///NAME:PORT are supported"));
    }
    const size_t colon = rest.rfind(':');
    if (colon == absl::string_view::npos || colon == 0 || colon + 1 == rest.size()) {
      return absl::InvalidArgumentError(absl::StrCat("upstream '", name, "' is not HOST:PORT"));
    }
    std::string host(rest.substr(0, colon));
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    int port;
    if (!absl::SimpleAtoi(rest.substr(colon + 1), &port) || port <= 0 || port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("upstream '", name, "' has a bad port"));
    }
    error_code ec;
    asio::ip::make_address(host, ec);
    t.host = host;
    t.port = std::string(rest.substr(colon + 1));
    t.authority = std::string(rest);
    t.literal = !ec;
    t.index = static_cast<int>(names.size());
    shared->targets.push_back(std::move(t));
    names.push_back(name);
    return static_cast<int>(names.size() - 1);
  };
  std::unique_ptr<Upstream> up(new Upstream());
  absl::StatusOr<int> default_index = add(options.default_target);
  if (!default_index.ok()) return default_index.status();
  std::map<std::string, int> service_index;
  for (const std::string& service : services) {
    auto it = options.service_targets.find(service);
    absl::StatusOr<int> index = it == options.service_targets.end() ? default_index : add(it->second);
    if (!index.ok()) return index.status();
    service_index[service] = *index;
  }
  shared->options = std::move(options);
  // Targets are final now: pointers into the vector stay valid.
  up->default_target_ = &shared->targets[*default_index];
  for (const auto& [service, index] : service_index) up->by_service_[service] = &shared->targets[index];
  up->shared_ = std::move(shared);
  return up;
}

Upstream::~Upstream() {
  if (shared_ == nullptr) return;
  CancelAll();
  WaitIdle(absl::Seconds(5));
}

Upstream::Loop* Upstream::LoopFor(asio::io_context& ioc) {
  if (!asio::has_service<LoopService>(ioc)) {
    // The services our sockets, timers and resolvers use must be older than
    // LoopService: an io_context shuts its services down newest first, and
    // the loops' objects need theirs while LoopService closes them.
    tcp::resolver resolver(ioc);
    asio::steady_timer timer(ioc);
    tcp::socket socket(ioc);
  }
  LoopService& service = asio::use_service<LoopService>(ioc);
  auto it = service.loops.find(shared_->id);
  if (it != service.loops.end()) return it->second.get();
  auto loop = std::make_unique<Loop>(shared_, ioc);
  Loop* raw = loop.get();
  service.loops.emplace(shared_->id, std::move(loop));
  return raw;
}

const Upstream::Target* Upstream::TargetOf(const std::string& service) const {
  auto it = by_service_.find(service);
  return it == by_service_.end() ? default_target_ : it->second;
}

const std::string& Upstream::TargetFor(const std::string& service) const {
  return TargetOf(service)->name;
}

std::vector<std::string> Upstream::targets() const {
  std::vector<std::string> out;
  for (const Target& t : shared_->targets) out.push_back(t.name);
  return out;
}

std::shared_ptr<UpstreamCall> Upstream::CallUnary(asio::io_context& ioc, const Route& route,
                                                  CallOptions options, std::string request,
                                                  UnaryDone done) {
  Loop* loop = LoopFor(ioc);
  auto call = loop->NewCall(TargetOf(route.service), route.grpc_path, std::move(options),
                            std::move(request));
  call->done_ = std::move(done);
  // Start on the next loop turn: `done` never runs inside this call.
  asio::post(ioc, [call] { call->Start(); });
  return call;
}

std::shared_ptr<UpstreamCall> Upstream::StartServerStream(asio::io_context& ioc, const Route& route,
                                                          CallOptions options, std::string request,
                                                          StreamObserver* observer) {
  Loop* loop = LoopFor(ioc);
  auto call = loop->NewCall(TargetOf(route.service), route.grpc_path, std::move(options),
                            std::move(request));
  call->observer_ = observer;
  asio::post(ioc, [call] { call->Start(); });
  return call;
}

void Upstream::CheckHealth(asio::io_context& ioc, absl::Duration timeout,
                           std::function<void(bool, std::string)> done) {
  struct State {
    int remaining;
    bool ok = true;
    std::string detail;
    std::function<void(bool, std::string)> done;
  };
  auto state = std::make_shared<State>();
  state->remaining = static_cast<int>(shared_->targets.size());
  state->done = std::move(done);
  Loop* loop = LoopFor(ioc);
  for (const Target& target : shared_->targets) {
    CallOptions options;
    options.timeout = timeout;
    // HealthCheckRequest{service: ""} is empty.
    auto call = loop->NewCall(&target, "/grpc.health.v1.Health/Check", std::move(options), "",
                              /*counted=*/false);
    call->done_ = [state, name = target.name](const RpcStatus& status, std::string reply,
                                              const ResponseMetadata&) {
      // HealthCheckResponse{status = 1 (SERVING)} is the bytes 08 01.
      if (!status.ok() || reply != "\x08\x01") {
        state->ok = false;
        absl::StrAppend(&state->detail, state->detail.empty() ? "" : "; ", name, ": ",
                        status.ok() ? "NOT_SERVING" : status.message);
      }
      if (--state->remaining == 0) state->done(state->ok, state->detail);
    };
    asio::post(ioc, [call] { call->Start(); });
  }
}

void Upstream::CancelAll() {
  absl::MutexLock lock(&shared_->mu);
  for (Loop* loop : shared_->loops) {
    // A loop is registered while its io_context lives, so posting is safe;
    // the handler finds the loop again (it may be gone by then).
    asio::post(loop->ioc(), [&ioc = loop->ioc(), id = shared_->id] {
      if (!asio::has_service<LoopService>(ioc)) return;
      LoopService& service = asio::use_service<LoopService>(ioc);
      auto it = service.loops.find(id);
      if (it != service.loops.end()) it->second->CancelAll();
    });
  }
}

bool Upstream::WaitIdle(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (shared_->in_flight.load() > 0) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

int Upstream::in_flight() const { return shared_->in_flight.load(std::memory_order_relaxed); }

}  // namespace taskmesh::gateway
