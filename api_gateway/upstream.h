// Upstream: the gRPC side of the gateway. An HTTP/2 client speaking the gRPC
// wire protocol (libnghttp2 for the framing), driven by the same Asio event
// loops as the HTTP server: a call started on an I/O thread runs on that
// thread's own connection to the upstream, and its completion runs there
// too, so a request never changes threads and no thread waits for a reply.
// Requests go out as the bytes the translator made; nothing is re-serialized.
// The pieces: grpc_wire.h (the gRPC wire format), h2_connection.h (one
// HTTP/2 connection and its streams); here the calls, the connection pools
// (names, round robin, backoff) and the per-loop state.
//
// Targets: `--upstream` for every service, `--route=pkg.Service=TARGET` to
// override one. A target is `HOST:PORT` or `dns:///NAME:PORT`. A name is
// resolved with Asio's resolver and calls go round robin over every address
// it resolved to (what gRPC's round_robin policy does, e.g. over a headless
// Kubernetes service); names are re-resolved every `resolve_interval` and
// after a connection to one of their addresses fails. An IP literal is used
// as is.
//
// Per I/O thread and upstream address: `connections_per_address` HTTP/2
// connections, opened on first use. A failed connect makes that address
// skipped for a backoff (growing from `initial_backoff` to `max_backoff`);
// its waiting calls move to another address, or fail UNAVAILABLE when there
// is none. A GOAWAY lets the connection's streams finish and the next call
// opens a new connection; streams the server refused are retried once.
//
// Thread-safety: CallUnary, StartServerStream and CheckHealth must be called
// on a thread running `loop` (their callbacks run there). UpstreamCall::Cancel,
// CancelAll, WaitIdle and in_flight are thread-safe.
//
// Example:
//   auto up = Upstream::Create({.default_target = "127.0.0.1:50051"},
//                              {"taskmesh.v1.TaskService"});
//   // on a thread running `ioc`:
//   (*up)->CallUnary(ioc, route, {.timeout = absl::Seconds(5)}, bytes,
//                    [](const RpcStatus& s, std::string reply, const ResponseMetadata& md) {...});
#ifndef TASKMESH_API_GATEWAY_UPSTREAM_H_
#define TASKMESH_API_GATEWAY_UPSTREAM_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "api_gateway/route_table.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace taskmesh::gateway {

struct UpstreamShared;

struct UpstreamOptions {
  std::string default_target = "127.0.0.1:50051";
  // Service full name -> target, overriding default_target.
  std::map<std::string, std::string> service_targets;
  // HTTP/2 connections per upstream address per I/O thread; calls alternate.
  int connections_per_address = 1;
  // A TCP connect to an address that takes longer fails; the calls waiting
  // for it move to another address (or fail UNAVAILABLE).
  absl::Duration connect_timeout = absl::Seconds(5);
  int max_receive_message_bytes = 4 << 20;
  // Names are looked up again this often (and after a connection failure).
  absl::Duration resolve_interval = absl::Seconds(30);
  // How a name is looked up: HOST -> IP addresses. Unset: the system's
  // resolver (getaddrinfo, through Asio, off the loop thread). A seam for
  // tests; when set, it runs on the loop thread and must not block.
  std::function<absl::StatusOr<std::vector<std::string>>(const std::string& host)> resolve;
  // After a failed connect, the address is skipped this long, doubling up to max.
  absl::Duration initial_backoff = absl::Milliseconds(250);
  absl::Duration max_backoff = absl::Seconds(10);
};

// A gRPC status as the upstream sent it (or as the client made it up:
// UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, RESOURCE_EXHAUSTED, INTERNAL).
struct RpcStatus {
  int code = 0;             // grpc::StatusCode values
  std::string message;      // grpc-message, percent-decoded
  std::string details;      // grpc-status-details-bin, decoded: a google.rpc.Status
  bool ok() const { return code == 0; }
};

// Metadata as (lower-case key, value) pairs; `-bin` values are raw bytes.
using Metadata = std::vector<std::pair<std::string, std::string>>;

// What came back besides messages: response headers and trailers, without
// the protocol's own (content-type, grpc-status, grpc-message, ...).
struct ResponseMetadata {
  Metadata initial;
  Metadata trailing;
};

struct CallOptions {
  absl::Duration timeout = absl::Seconds(30);  // sent as grpc-timeout and enforced locally
  Metadata metadata;                           // sent as headers (`-bin`: base64)
};

// A call in flight, for cancelling it. Held by whoever may cancel.
class UpstreamCall {
 public:
  virtual ~UpstreamCall() = default;
  // Any time, from any thread, also after the call ended (then nothing
  // happens), as long as the call's io_context exists: RST_STREAM(CANCEL)
  // and the call ends with CANCELLED.
  virtual void Cancel() = 0;
};

class ServerStream;

// Receives a server stream. OnMessage and OnDone run on the call's loop
// thread, one at a time, in order.
class StreamObserver {
 public:
  virtual ~StreamObserver() = default;
  // After each message the observer calls exactly one of
  // ServerStream::ReadNext() or ServerStream::Abandon(), on the loop thread.
  virtual void OnMessage(ServerStream* stream, std::string message) = 0;
  // Last call; the stream object must not be used afterwards.
  virtual void OnDone(const RpcStatus& status, const ResponseMetadata& metadata) = 0;
};

class ServerStream {
 public:
  virtual ~ServerStream() = default;
  // Deliver the next message when there is one. Until then, the upstream's
  // data stays unacknowledged (HTTP/2 flow control), so a slow HTTP client
  // slows the upstream down.
  virtual void ReadNext() = 0;
  // Instead of ReadNext(): the observer wants no more (client gone).
  virtual void Abandon() = 0;
};

class Upstream {
 public:
  // INVALID_ARGUMENT for a malformed target or a service_targets key that is
  // not among `services`.
  static absl::StatusOr<std::unique_ptr<Upstream>> Create(
      UpstreamOptions options, const std::vector<std::string>& services);
  ~Upstream();  // CancelAll(), then waits (bounded) for the calls to end

  using UnaryDone =
      std::function<void(const RpcStatus& status, std::string reply, const ResponseMetadata& md)>;
  // `done` runs once, on `loop`'s thread, never inside this call.
  std::shared_ptr<UpstreamCall> CallUnary(boost::asio::io_context& loop, const Route& route,
                                          CallOptions options, std::string request,
                                          UnaryDone done);

  // The stream lives until observer->OnDone() returns.
  std::shared_ptr<UpstreamCall> StartServerStream(boost::asio::io_context& loop,
                                                  const Route& route, CallOptions options,
                                                  std::string request, StreamObserver* observer);

  // grpc.health.v1.Health/Check (service "") on every target; `done(ok,
  // detail)` runs once on `loop`'s thread, with ok when all answer SERVING.
  void CheckHealth(boost::asio::io_context& loop, absl::Duration timeout,
                   std::function<void(bool, std::string)> done);

  // Cancels every call in flight (shutdown).
  void CancelAll();
  // Waits until no call is in flight; false on timeout.
  bool WaitIdle(absl::Duration timeout);
  int in_flight() const;

  const std::string& TargetFor(const std::string& service) const;
  std::vector<std::string> targets() const;

  // One upstream target, parsed; immutable.
  struct Target {
    std::string name;       // as given
    std::string authority;  // HOST:PORT, the requests' :authority
    std::string host;
    std::string port;
    bool literal = false;  // host is an IP address: no resolution
    int index = 0;
  };
  class Loop;

 private:
  Upstream() = default;
  Loop* LoopFor(boost::asio::io_context& loop);
  const Target* TargetOf(const std::string& service) const;

  // Options, targets, the in-flight count and the registry of loops: shared
  // with the loops, which the io_contexts own and which may outlive this.
  std::shared_ptr<UpstreamShared> shared_;
  absl::flat_hash_map<std::string, const Target*> by_service_;
  const Target* default_target_ = nullptr;
};

}  // namespace taskmesh::gateway

#endif  // TASKMESH_API_GATEWAY_UPSTREAM_H_
