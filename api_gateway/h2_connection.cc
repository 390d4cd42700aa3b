#include "api_gateway/h2_connection.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "boost/asio/post.hpp"
#include "boost/asio/write.hpp"

namespace taskmesh::gateway {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

nghttp2_nv Nv(const H2Header& h) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(h.name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(h.value.data())), h.name.size(),
                    h.value.size(),
                    static_cast<uint8_t>(h.never_index ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE)};
}

}  // namespace

// ---- H2Stream ------------------------------------------------------------------

void H2Stream::Consume(size_t n) {
  if (connection_ != nullptr) connection_->Consume(id_, n);
}

void H2Stream::Reset() {
  if (connection_ != nullptr) connection_->Reset(this);
}

// ---- H2Connection --------------------------------------------------------------

H2Connection::H2Connection(Owner* owner, asio::io_context& ioc, tcp::endpoint endpoint,
                           absl::Duration connect_timeout)
    : owner_(owner),
      ioc_(ioc),
      endpoint_(endpoint),
      socket_(ioc),
      connect_timeout_(connect_timeout),
      connect_timer_(ioc) {}

H2Connection::~H2Connection() {
  if (session_ != nullptr) nghttp2_session_del(session_);
}

void H2Connection::Connect() {
  // An address that drops SYNs would otherwise hold its calls for the
  // kernel's connect timeout (minutes) or their deadlines.
  connect_timer_.expires_after(absl::ToChronoNanoseconds(connect_timeout_));
  connect_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
    if (ec || self->connected_ || self->closed_) return;
    self->connect_timed_out_ = true;
    error_code ignored;
    self->socket_.close(ignored);  // The connect completes with an error.
  });
  socket_.async_connect(endpoint_, [self = shared_from_this()](const error_code& ec) {
    if (self->closed_) return;
    if (ec || self->connect_timed_out_) {
      self->closed_ = true;
      auto streams = std::move(self->pending_);
      self->pending_.clear();
      for (auto& stream : streams) stream->connection_ = nullptr;
      self->owner_->OnConnectFailed(
          self->endpoint_,
          self->connect_timed_out_
              ? absl::StrCat("connect timed out after ", absl::FormatDuration(self->connect_timeout_))
              : ec.message(),
          std::move(streams));
      return;
    }
    self->connect_timer_.cancel();
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
    // Window updates are ours to send: that is the backpressure.
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
    self->owner_->OnConnected(self->endpoint_);
    auto streams = std::move(self->pending_);
    self->pending_.clear();
    for (auto& stream : streams) {
      if (stream->wants_open()) self->Open(stream);
    }
    self->Flush();
    self->Read();
  });
}

void H2Connection::Submit(const std::shared_ptr<H2Stream>& stream) {
  stream->connection_ = shared_from_this();
  if (!connected_) {
    pending_.push_back(stream);
    return;
  }
  Open(stream);
  ScheduleFlush();
}

void H2Connection::Drain() {
  going_away_ = true;
  MaybeCloseIdle();
}

void H2Connection::Open(const std::shared_ptr<H2Stream>& stream) {
  H2Stream* s = stream.get();
  s->connection_ = shared_from_this();
  s->body_sent_ = 0;
  headers_.clear();
  s->RequestHeaders(&headers_);
  nva_.clear();
  for (const H2Header& h : headers_) nva_.push_back(Nv(h));
  nghttp2_data_provider provider;
  provider.source.ptr = s;
  provider.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t len, uint32_t* flags,
                              nghttp2_data_source* source, void*) -> ssize_t {
    auto* s = static_cast<H2Stream*>(source->ptr);
    const absl::string_view body = s->RequestBody();
    const size_t n = std::min(len, body.size() - s->body_sent_);
    std::memcpy(buf, body.data() + s->body_sent_, n);
    s->body_sent_ += n;
    if (s->body_sent_ == body.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  };
  const int32_t id = nghttp2_submit_request(session_, nullptr, nva_.data(), nva_.size(), &provider, s);
  if (id < 0) {
    // Stream ids used up (a very long-lived connection): the stream goes
    // elsewhere, and this connection drains.
    s->connection_ = nullptr;
    going_away_ = true;
    s->OnOpenFailed(nghttp2_strerror(id));
    MaybeCloseIdle();
    return;
  }
  s->id_ = id;
  streams_.insert(s);
}

void H2Connection::Consume(int32_t stream_id, size_t n) {
  if (session_ != nullptr && !closed_) {
    nghttp2_session_consume_stream(session_, stream_id, n);
    if (!receiving_) ScheduleFlush();  // else Read() flushes right after
  }
}

void H2Connection::Reset(H2Stream* stream) {
  if (stream->id_ > 0 && session_ != nullptr && !closed_) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream->id_, NGHTTP2_CANCEL);
    ScheduleFlush();
  }
  if (stream->id_ < 0) {
    pending_.erase(std::remove_if(pending_.begin(), pending_.end(),
                                  [stream](const std::shared_ptr<H2Stream>& s) { return s.get() == stream; }),
                   pending_.end());
  }
  Detach(stream);
  MaybeCloseIdle();
}

void H2Connection::Detach(H2Stream* stream) {
  streams_.erase(stream);
  if (session_ != nullptr && stream->id_ > 0 && !closed_) {
    nghttp2_session_set_stream_user_data(session_, stream->id_, nullptr);
  }
  stream->connection_ = nullptr;
  stream->id_ = -1;
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
    self->receiving_ = true;
    const ssize_t r = nghttp2_session_mem_recv(
        self->session_, reinterpret_cast<const uint8_t*>(self->inbuf_), n);
    self->receiving_ = false;
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
  // Later in this loop turn: the streams opened meanwhile share one write.
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
  std::vector<H2Stream*> streams(streams_.begin(), streams_.end());
  auto pending = std::move(pending_);
  pending_.clear();
  for (H2Stream* stream : streams) {
    auto keep = stream->shared_from_this();
    Detach(stream);
    stream->OnConnectionClosed(reason);
  }
  for (auto& stream : pending) {
    stream->connection_ = nullptr;
    stream->OnConnectionClosed(reason);
  }
  if (was_connected) owner_->OnConnectionLost();
}

int H2Connection::OnHeaderCb(nghttp2_session* s, const nghttp2_frame* frame, const uint8_t* name,
                             size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                             void*) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto* stream = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(s, frame->hd.stream_id));
  if (stream == nullptr) return 0;
  stream->OnHeader(frame->headers.cat == NGHTTP2_HCAT_HEADERS,
                   absl::string_view(reinterpret_cast<const char*>(name), namelen),
                   absl::string_view(reinterpret_cast<const char*>(value), valuelen));
  return 0;
}

int H2Connection::OnDataCb(nghttp2_session* s, uint8_t, int32_t id, const uint8_t* data,
                           size_t len, void*) {
  nghttp2_session_consume_connection(s, len);
  auto* stream = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(s, id));
  if (stream == nullptr) {  // detached: nobody will acknowledge it
    nghttp2_session_consume_stream(s, id, len);
    return 0;
  }
  stream->OnData(absl::string_view(reinterpret_cast<const char*>(data), len));
  return 0;
}

int H2Connection::OnStreamCloseCb(nghttp2_session* s, int32_t id, uint32_t error_code, void* ud) {
  auto* self = static_cast<H2Connection*>(ud);
  auto* stream = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(s, id));
  if (stream == nullptr) return 0;
  auto keep = stream->shared_from_this();
  self->Detach(stream);
  stream->OnClose(error_code);
  self->MaybeCloseIdle();
  return 0;
}

int H2Connection::OnFrameRecvCb(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    // Streams above last_stream_id are closed as REFUSED_STREAM (and may be
    // sent again elsewhere); the rest may finish. New streams go elsewhere.
    static_cast<H2Connection*>(ud)->going_away_ = true;
  }
  return 0;
}

}  // namespace taskmesh::gateway
