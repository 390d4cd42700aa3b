#include "api_gateway/upstream.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "api_gateway/grpc_wire.h"
#include "api_gateway/h2_connection.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/steady_timer.hpp"

namespace taskmesh::gateway {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

using grpc_wire::kCancelled;
using grpc_wire::kDeadlineExceeded;
using grpc_wire::kInternal;
using grpc_wire::kResourceExhausted;
using grpc_wire::kUnavailable;
using grpc_wire::kUnknown;

namespace {

RpcStatus Status(int code, std::string message) { return RpcStatus{code, std::move(message), {}}; }

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

// One RPC, unary or server streaming, and its HTTP/2 stream. Owned by its
// Loop's `live` map (and by handles given to the caller); runs on the loop
// thread only, except Cancel().
class Call final : public UpstreamCall, public ServerStream, public H2Stream {
 public:
  Call(Upstream::Loop* loop, asio::io_context& ioc, const Upstream::Target* target,
       std::string path, CallOptions options, std::string request)
      : loop_(loop),
        target_(target),
        ioc_(ioc),
        path_(std::move(path)),
        options_(std::move(options)),
        grpc_timeout_(grpc_wire::EncodeTimeout(options_.timeout)),
        body_(grpc_wire::Frame(request)) {}

  std::shared_ptr<Call> SharedSelf() { return std::static_pointer_cast<Call>(shared_from_this()); }

  // UpstreamCall
  void Cancel() override {
    asio::post(ioc_, [self = SharedSelf()] {
      self->inbuf_.clear();
      self->Complete(Status(kCancelled, "Cancelled"));
    });
  }
  // ServerStream
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
  // The call is over (the stream is gone or never was): a final status; the
  // first one wins. Delivers it once the messages before it are out.
  void Complete(RpcStatus status);

  // H2Stream
  bool wants_open() const override { return !ended_; }
  void RequestHeaders(std::vector<H2Header>* headers) override;
  absl::string_view RequestBody() const override { return body_; }
  void OnHeader(bool trailers, absl::string_view name, absl::string_view value) override;
  void OnData(absl::string_view data) override;
  void OnClose(uint32_t error_code) override;
  void OnConnectionClosed(const std::string& reason) override {
    Complete(Status(kUnavailable, reason));
  }
  void OnOpenFailed(const std::string& reason) override;

  Upstream::Loop* const loop_;
  const Upstream::Target* const target_;
  Upstream::UnaryDone done_;
  StreamObserver* observer_ = nullptr;
  bool counted_ = true;  // in in_flight (health checks are not)
  int attempts_ = 0;     // sends that did not reach the application, and failed connects
  bool ended_ = false;      // final status known
  bool delivered_ = false;  // OnDone / done ran
  // Set by Start(); the Loop's deadline sweep ends the call then.
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
  std::string inbuf_;       // received, not yet delivered

 private:
  void Pump();
  void ConsumeIfPartial();

  asio::io_context& ioc_;
  const std::string path_;
  const CallOptions options_;
  const std::string grpc_timeout_;
  const std::string body_;
  std::vector<std::string> encoded_;  // base64 of -bin metadata, for RequestHeaders

  int http_status_ = 0;
  bool has_grpc_status_ = false;
  bool headers_seen_ = false;
  RpcStatus status_;
  ResponseMetadata metadata_;
  size_t unconsumed_ = 0;  // stream-level bytes not yet acknowledged

  RpcStatus final_;
  bool awaiting_ack_ = false;  // a message is with the observer
  bool starting_ = false;      // inside Start()
};

// The addresses of one target on one loop, and their connections.
class Pool final : public H2Connection::Owner {
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
  void Shutdown() {
    shut_down_ = true;
    timer_.cancel();
    resolver_.cancel();
    for (Address& a : addresses_) {
      for (auto& c : a.conns) {
        if (c) c->Close("the gateway is shutting down");
      }
    }
    waiting_.clear();
  }

  // H2Connection::Owner
  void OnConnected(const tcp::endpoint& endpoint) override;
  // Backs off from `endpoint` and moves its calls.
  void OnConnectFailed(const tcp::endpoint& endpoint, const std::string& reason,
                       std::vector<std::shared_ptr<H2Stream>> streams) override;
  void OnConnectionLost() override { ResolveSoon(); }

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
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for resolver/timer handlers
};

}  // namespace


// Everything one io_context has for one Upstream: a pool per target and the
// calls in flight. Owned by the io_context (through LoopService), so it
// never outlives the sockets' event loop; touched on that loop's thread only.
class Upstream::Loop {
 public:
  Loop(std::shared_ptr<UpstreamShared> shared, asio::io_context& ioc)
      : shared_(std::move(shared)), ioc_(ioc), deadline_timer_(ioc) {
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
  void Dispatch(const std::shared_ptr<Call>& call) { pools_[call->target_->index]->Dispatch(call); }

  // Deadlines: one timer per loop, not one per call. It is set for the
  // earliest deadline it knows of and left alone when a call ends, or starts
  // with a later deadline (the usual case: calls share a timeout), so a call
  // costs it nothing; when it fires, one sweep ends the calls that are past
  // their deadline and sets it for the next.
  void WatchDeadline(std::chrono::steady_clock::time_point deadline) {
    if (deadline_timer_set_ && deadline >= deadline_timer_at_) return;
    SetDeadlineTimer(deadline);
  }
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
    deadline_timer_.cancel();
  }
  UpstreamShared* shared() { return shared_.get(); }
  asio::io_context& ioc() { return ioc_; }

 private:
  void SetDeadlineTimer(std::chrono::steady_clock::time_point at) {
    deadline_timer_set_ = true;
    deadline_timer_at_ = at;
    ++deadline_timer_generation_;
    deadline_timer_.expires_at(at);  // cancels the wait for an earlier setting
    deadline_timer_.async_wait([this, generation = deadline_timer_generation_](const error_code& ec) {
      // The io_context owns this Loop, and destroys it (and the timer) only
      // as it shuts down, when handlers no longer run.
      if (ec || generation != deadline_timer_generation_) return;
      deadline_timer_set_ = false;
      SweepDeadlines();
    });
  }

  void SweepDeadlines() {
    const auto now = std::chrono::steady_clock::now();
    auto next = std::chrono::steady_clock::time_point::max();
    std::vector<std::shared_ptr<Call>> expired;
    for (const auto& [raw, call] : live_) {
      if (call->ended_) continue;
      if (call->deadline_ <= now) {
        expired.push_back(call);
      } else {
        next = std::min(next, call->deadline_);  // max: not started
      }
    }
    for (const auto& call : expired) {
      call->inbuf_.clear();
      call->Complete(Status(kDeadlineExceeded, "Deadline Exceeded"));
    }
    if (next != std::chrono::steady_clock::time_point::max()) WatchDeadline(next);
  }

  std::shared_ptr<UpstreamShared> shared_;
  asio::io_context& ioc_;
  std::vector<std::unique_ptr<Pool>> pools_;
  absl::flat_hash_map<Call*, std::shared_ptr<Call>> live_;
  asio::steady_timer deadline_timer_;
  std::chrono::steady_clock::time_point deadline_timer_at_{};
  bool deadline_timer_set_ = false;
  uint64_t deadline_timer_generation_ = 0;
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

// Runs inside CallUnary / StartServerStream / CheckHealth, which promise
// not to run the caller's callbacks inside them: a delivery that becomes due
// meanwhile (a call that fails at once) is posted instead.
void Call::Start() {
  starting_ = true;
  // Clamped: a century is "never", and stays clear of overflow.
  deadline_ = std::chrono::steady_clock::now() +
              absl::ToChronoNanoseconds(std::clamp(options_.timeout, absl::ZeroDuration(),
                                                   absl::Hours(24 * 365 * 100)));
  loop_->WatchDeadline(deadline_);
  loop_->Dispatch(SharedSelf());
  starting_ = false;
}

void Call::Complete(RpcStatus status) {
  if (ended_) {
    Pump();
    return;
  }
  ended_ = true;
  final_ = std::move(status);
  Reset();  // RST_STREAM, if the stream is still open
  Pump();
}

void Call::ConsumeIfPartial() {
  // Acknowledge received bytes unless a whole message is waiting for the
  // reader: then the upstream waits too (flow control is the backpressure).
  if (unconsumed_ == 0 || connection() == nullptr) return;
  if (auto prefix = grpc_wire::ReadPrefix(inbuf_)) {
    if (inbuf_.size() >= grpc_wire::kPrefixBytes + size_t{prefix->length}) return;
  }
  Consume(unconsumed_);
  unconsumed_ = 0;
}

// Delivers what can be delivered: the next message when the reader wants
// one, else the final status once the messages are out.
void Call::Pump() {
  if (delivered_) return;
  if (starting_) {
    asio::post(ioc_, [self = SharedSelf()] { self->Pump(); });
    return;
  }
  auto self = shared_from_this();
  const int max = loop_->shared()->options.max_receive_message_bytes;
  std::string message;
  bool have = false;
  if (auto prefix = grpc_wire::ReadPrefix(inbuf_)) {
    const uint32_t n = prefix->length;
    if (prefix->flags != 0) {
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
    const size_t end = grpc_wire::kPrefixBytes + size_t{n};
    if (inbuf_.size() >= end && (observer_ == nullptr ? ended_ : !awaiting_ack_)) {
      message = inbuf_.substr(grpc_wire::kPrefixBytes, n);
      inbuf_.erase(0, end);
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

void Call::RequestHeaders(std::vector<H2Header>* headers) {
  headers->reserve(7 + options_.metadata.size());
  headers->push_back({":method", "POST"});
  headers->push_back({":scheme", "http"});
  headers->push_back({":path", path_});
  headers->push_back({":authority", target_->authority});
  headers->push_back({"content-type", "application/grpc"});
  headers->push_back({"te", "trailers"});
  headers->push_back({"grpc-timeout", grpc_timeout_});
  encoded_.clear();
  size_t binary = 0;
  for (const auto& [key, value] : options_.metadata) binary += absl::EndsWith(key, "-bin");
  encoded_.reserve(binary);  // so that the views into it stay valid
  for (const auto& [key, value] : options_.metadata) {
    if (absl::EndsWith(key, "-bin")) {
      encoded_.push_back(absl::Base64Escape(value));
      headers->push_back({key, encoded_.back()});
    } else {
      // A fresh value every call: indexing it would only churn both sides'
      // HPACK tables.
      headers->push_back({key, value, /*never_index=*/key == "x-request-id"});
    }
  }
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
    status_.details = grpc_wire::DecodeBinaryHeader(value);
  } else if (!grpc_wire::IsProtocolHeader(name)) {
    std::string v = absl::EndsWith(name, "-bin") ? grpc_wire::DecodeBinaryHeader(value) : std::string(value);
    (trailers ? metadata_.trailing : metadata_.initial).emplace_back(std::string(name), std::move(v));
  }
}

void Call::OnData(absl::string_view data) {
  if (ended_) {
    Consume(data.size());
    return;
  }
  inbuf_.append(data.data(), data.size());
  unconsumed_ += data.size();
  if (observer_ == nullptr) {  // unary: take it all, check the size early
    Consume(unconsumed_);
    unconsumed_ = 0;
    if (auto prefix = grpc_wire::ReadPrefix(inbuf_)) {
      if (prefix->length > static_cast<uint32_t>(loop_->shared()->options.max_receive_message_bytes)) {
        auto self = shared_from_this();
        Pump();  // RESOURCE_EXHAUSTED
      }
    }
    return;
  }
  ConsumeIfPartial();
  Pump();
}

void Call::OnClose(uint32_t error_code) {
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
    loop_->Dispatch(SharedSelf());
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

void Call::OnOpenFailed(const std::string& reason) {
  if (++attempts_ < 3) {
    loop_->Dispatch(SharedSelf());
  } else {
    Complete(Status(kUnavailable, absl::StrCat("cannot start a stream: ", reason)));
  }
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
      conn = std::make_shared<H2Connection>(this, ioc_, a.endpoint,
                                            shared_->options.connect_timeout);
      conn->Connect();
    }
    conn->Submit(call);
    return;
  }
  call->Complete(Status(kUnavailable, absl::StrCat("failed to connect to ", target_->name,
                                                   last_error.empty() ? "" : ": ", last_error)));
}

void Pool::OnConnectFailed(const tcp::endpoint& endpoint, const std::string& reason,
                           std::vector<std::shared_ptr<H2Stream>> streams) {
  const std::string error = absl::StrCat(endpoint.address().to_string(), ":", endpoint.port(), ": ", reason);
  if (Address* a = Find(endpoint)) {
    const UpstreamOptions& o = shared_->options;
    a->backoff = a->backoff == absl::ZeroDuration() ? o.initial_backoff
                                                     : std::min(a->backoff * 2, o.max_backoff);
    a->retry_after = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(a->backoff);
    a->last_error = error;
  }
  ResolveSoon();
  for (auto& stream : streams) {
    auto call = std::static_pointer_cast<Call>(stream);  // a pool's streams are its calls
    if (call->ended_) continue;
    // Another address may take it; each call tries each address at most once.
    if (++call->attempts_ < static_cast<int>(addresses_.size()) + 1 && addresses_.size() > 1) {
      Dispatch(call);
    } else {
      call->Complete(Status(kUnavailable, absl::StrCat("failed to connect to ", error)));
    }
  }
}

void Pool::OnConnected(const tcp::endpoint& endpoint) {
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
    if (!resolved_) {
      FailWaiting(absl::StrCat("cannot resolve ", target_->name, ": ", error.empty() ? "no addresses" : error));
    }
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
  call->Start();
  return call;
}

std::shared_ptr<UpstreamCall> Upstream::StartServerStream(asio::io_context& ioc, const Route& route,
                                                          CallOptions options, std::string request,
                                                          StreamObserver* observer) {
  Loop* loop = LoopFor(ioc);
  auto call = loop->NewCall(TargetOf(route.service), route.grpc_path, std::move(options),
                            std::move(request));
  call->observer_ = observer;
  call->Start();
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
    call->Start();
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
