// H2Connection: one HTTP/2 client connection (a TCP socket and a libnghttp2
// client session) to one upstream address, carrying many streams at once.
// It knows HTTP/2, not gRPC: a stream (H2Stream, implemented by upstream.cc's
// gRPC call) supplies its request headers and body and receives the response
// headers, data and close; the connection's owner (H2Connection::Owner,
// upstream.cc's Pool) hears about connects, failed connects and breaks.
//
// Threading: everything runs on one Asio event loop (the io_context given at
// construction): the owner calls in on that loop's thread, and every
// callback, to streams and owner alike, runs there. Nothing is locked. The
// streams opened in one loop turn share one socket write (ScheduleFlush).
//
// Flow control and backpressure: nghttp2's automatic WINDOW_UPDATEs are off.
// The connection-level window (64 MiB) is re-opened as soon as data arrives;
// a stream's window (1 MiB) only when the stream calls Consume(), so a stream
// that holds back its acknowledgements (a server stream whose HTTP client
// reads slowly) makes the upstream wait for it, not the gateway's memory
// grow, and without stalling the connection's other streams.
//
// GOAWAY: the connection takes no new streams (usable() turns false), lets
// the ones below the GOAWAY's last stream id finish, and closes when none is
// left. nghttp2 closes the ones above it as REFUSED_STREAM, which the stream
// may send again elsewhere (the upstream never saw them).
//
// Reset: a stream that is no longer wanted (deadline, cancellation, a reply
// too large) calls Reset(): RST_STREAM(CANCEL) if it was open, else it just
// leaves the queue of streams waiting for the connect. Either way it is
// detached, and gets no more callbacks.
//
// Ownership: connections and streams are shared_ptrs. A connection keeps
// itself alive while it has I/O in flight and holds the streams waiting for
// its connect; open streams are kept alive by whoever owns them (upstream's
// Loop), and must Reset() before they go. A stream holds its connection
// while it is on one. The owner must outlive its connections' callbacks
// (Pool closes them on shutdown).
//
// Example (on the loop's thread):
//   auto conn = std::make_shared<H2Connection>(pool, ioc, endpoint);
//   conn->Connect();
//   conn->Submit(call);  // queued until connected, then opened as a stream
//   ...
//   call->Consume(n);    // from H2Stream::OnData: the peer may send n more
#ifndef TASKMESH_API_GATEWAY_H2_CONNECTION_H_
#define TASKMESH_API_GATEWAY_H2_CONNECTION_H_

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/steady_timer.hpp"

namespace taskmesh::gateway {

class H2Connection;

// A request header field. The views need to stay valid only until
// H2Stream::RequestHeaders' caller has submitted them (nghttp2 copies them).
struct H2Header {
  absl::string_view name;
  absl::string_view value;
  bool never_index = false;  // kept out of HPACK's tables (a value unique per request)
};

// One request/response exchange, as its connection sees it. Implemented by
// the protocol on top; used on the connection's loop thread only.
class H2Stream : public std::enable_shared_from_this<H2Stream> {
 public:
  virtual ~H2Stream() = default;

  // The connection it is queued or open on, or null.
  H2Connection* connection() const { return connection_.get(); }
  // Acknowledges `n` received bytes (they were handled): the peer may send
  // that many more on this stream. No-op when detached.
  void Consume(size_t n);
  // RST_STREAM(CANCEL), or out of the connect queue; detached afterwards.
  // No-op when detached.
  void Reset();

  // ---- called by the connection ----
  // False when the stream ended while it waited for the connect: not opened.
  virtual bool wants_open() const = 0;
  // Appends the request's headers, pseudo-headers first.
  virtual void RequestHeaders(std::vector<H2Header>* headers) = 0;
  // The request body, sent in full, then END_STREAM. Stays valid while open.
  virtual absl::string_view RequestBody() const = 0;
  // A response header (or trailer) field.
  virtual void OnHeader(bool trailers, absl::string_view name, absl::string_view value) = 0;
  // Response DATA; acknowledge it with Consume() when it is handled.
  virtual void OnData(absl::string_view data) = 0;
  // The stream closed (both sides ended, or a reset: `error_code` is its
  // HTTP/2 error code, NO_ERROR otherwise). Detached already.
  virtual void OnClose(uint32_t error_code) = 0;
  // The connection closed or broke before the stream closed. Detached already.
  virtual void OnConnectionClosed(const std::string& reason) = 0;
  // No stream could be opened (the connection's stream ids are used up);
  // the connection is draining. Detached already.
  virtual void OnOpenFailed(const std::string& reason) = 0;

 private:
  friend class H2Connection;
  std::shared_ptr<H2Connection> connection_;
  int32_t id_ = -1;     // the HTTP/2 stream id once open
  size_t body_sent_ = 0;
};

// See the file comment. Not thread-safe: its loop's thread only.
class H2Connection : public std::enable_shared_from_this<H2Connection> {
 public:
  // Who made the connection: told about its life, on the loop thread.
  class Owner {
   public:
    virtual ~Owner() = default;
    virtual void OnConnected(const boost::asio::ip::tcp::endpoint& endpoint) = 0;
    // The connect failed; `streams` were waiting for it (detached now).
    virtual void OnConnectFailed(const boost::asio::ip::tcp::endpoint& endpoint,
                                 const std::string& reason,
                                 std::vector<std::shared_ptr<H2Stream>> streams) = 0;
    // An established connection broke or was closed.
    virtual void OnConnectionLost() = 0;
  };

  // A connect that has not completed within `connect_timeout` fails (its
  // waiting streams go back to the owner, which may try another address).
  H2Connection(Owner* owner, boost::asio::io_context& ioc, boost::asio::ip::tcp::endpoint endpoint,
               absl::Duration connect_timeout);
  ~H2Connection();

  void Connect();
  // Opens a stream for `stream`, or queues it until connected.
  void Submit(const std::shared_ptr<H2Stream>& stream);
  // No new streams; closes once its streams are done (GOAWAY, or the
  // address left the name's resolution).
  void Drain();
  // Closes the socket; open and queued streams get OnConnectionClosed(reason).
  void Close(const std::string& reason);
  // Takes new streams: not closed, not draining.
  bool usable() const { return !closed_ && !going_away_; }

 private:
  friend class H2Stream;
  void Open(const std::shared_ptr<H2Stream>& stream);
  void Consume(int32_t stream_id, size_t n);
  void Reset(H2Stream* stream);
  void Detach(H2Stream* stream);
  void Read();
  void ScheduleFlush();
  void Flush();
  void MaybeCloseIdle();

  static int OnHeaderCb(nghttp2_session* s, const nghttp2_frame* frame, const uint8_t* name,
                        size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                        void* ud);
  static int OnDataCb(nghttp2_session* s, uint8_t flags, int32_t id, const uint8_t* data,
                      size_t len, void* ud);
  static int OnStreamCloseCb(nghttp2_session* s, int32_t id, uint32_t error_code, void* ud);
  static int OnFrameRecvCb(nghttp2_session* s, const nghttp2_frame* frame, void* ud);

  Owner* const owner_;
  boost::asio::io_context& ioc_;
  const boost::asio::ip::tcp::endpoint endpoint_;
  boost::asio::ip::tcp::socket socket_;
  const absl::Duration connect_timeout_;
  boost::asio::steady_timer connect_timer_;
  bool connect_timed_out_ = false;
  nghttp2_session* session_ = nullptr;
  bool connected_ = false;
  bool closed_ = false;
  bool going_away_ = false;
  bool flush_scheduled_ = false;
  bool write_in_flight_ = false;
  bool receiving_ = false;  // inside nghttp2_session_mem_recv
  std::string out_;      // frames for the next write
  std::string writing_;  // the write in flight
  char inbuf_[32 * 1024];
  std::vector<H2Header> headers_;  // Open()'s scratch space, kept for its capacity
  std::vector<nghttp2_nv> nva_;
  std::vector<std::shared_ptr<H2Stream>> pending_;  // waiting for the connect
  absl::flat_hash_set<H2Stream*> streams_;          // open, not closed yet
};

}  // namespace taskmesh::gateway

#endif  // TASKMESH_API_GATEWAY_H2_CONNECTION_H_
