#include "api_gateway/testing/http_client.h"

#include <sys/socket.h>
#include <sys/time.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/http.hpp"

namespace taskmesh::gateway::testing {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

struct HttpClient::Impl {
  asio::io_context ioc;
  tcp::socket socket{ioc};
  boost::beast::flat_buffer buffer;
  absl::Duration timeout;
  bool ok = false;

  void SetReadTimeout(absl::Duration d) {
    timeval tv = absl::ToTimeval(d);
    setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
};

HttpClient::HttpClient(int port, absl::Duration timeout) : impl_(std::make_unique<Impl>()) {
  impl_->timeout = timeout;
  boost::system::error_code ec;
  impl_->socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                                      static_cast<unsigned short>(port)),
                        ec);
  impl_->ok = !ec;
  if (impl_->ok) impl_->SetReadTimeout(timeout);
}

HttpClient::~HttpClient() { Close(); }

bool HttpClient::connected() const { return impl_->ok; }

void HttpClient::Close() {
  boost::system::error_code ec;
  impl_->socket.shutdown(tcp::socket::shutdown_both, ec);
  impl_->socket.close(ec);
  impl_->ok = false;
}

absl::Status HttpClient::SendRaw(const std::string& bytes) {
  if (!impl_->ok) return absl::UnavailableError("not connected");
  boost::system::error_code ec;
  asio::write(impl_->socket, asio::buffer(bytes), ec);
  if (ec) return absl::UnavailableError(absl::StrCat("write: ", ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<HttpReply> HttpClient::Send(const std::string& method, const std::string& target,
                                           const Headers& headers, const std::string& body) {
  std::string request = absl::StrCat(method, " ", target, " HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  bool has_length = false;
  for (const auto& [name, value] : headers) {
    absl::StrAppend(&request, name, ": ", value, "\r\n");
    has_length = has_length || absl::EqualsIgnoreCase(name, "content-length") ||
                 absl::EqualsIgnoreCase(name, "transfer-encoding");
  }
  if (!has_length && (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH")) {
    absl::StrAppend(&request, "Content-Length: ", body.size(), "\r\n");
  }
  absl::StrAppend(&request, "\r\n", body);
  if (absl::Status s = SendRaw(request); !s.ok()) return s;
  return ReadReply();
}

absl::StatusOr<HttpReply> HttpClient::ReadReply() {
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  parser.header_limit(1 << 20);
  boost::system::error_code ec;
  http::read(impl_->socket, impl_->buffer, parser, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("read: ", ec.message()));
  HttpReply reply;
  const auto& msg = parser.get();
  reply.status = static_cast<int>(msg.result_int());
  for (const auto& field : msg) {
    std::string name = absl::AsciiStrToLower(std::string(field.name_string()));
    std::string value(field.value());
    auto [it, inserted] = reply.headers.emplace(name, value);
    if (!inserted) absl::StrAppend(&it->second, ", ", value);
  }
  reply.body = msg.body();
  return reply;
}

absl::StatusOr<std::string> HttpClient::ReadUntil(const std::string& needle) {
  std::string got(static_cast<const char*>(impl_->buffer.data().data()), impl_->buffer.size());
  impl_->buffer.consume(impl_->buffer.size());
  const absl::Time deadline = absl::Now() + impl_->timeout;
  while (got.find(needle) == std::string::npos) {
    if (absl::Now() > deadline) return absl::DeadlineExceededError(absl::StrCat("got: ", got));
    char buf[4096];
    boost::system::error_code ec;
    const size_t n = impl_->socket.read_some(asio::buffer(buf), ec);
    if (ec) return absl::UnavailableError(absl::StrCat("read: ", ec.message(), "; got: ", got));
    got.append(buf, n);
  }
  return got;
}

bool HttpClient::WaitClosed(absl::Duration timeout) {
  impl_->SetReadTimeout(absl::Milliseconds(50));
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    char buf[4096];
    boost::system::error_code ec;
    impl_->socket.read_some(asio::buffer(buf), ec);
    if (ec == asio::error::eof || ec == asio::error::connection_reset) return true;
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) return true;
  }
  impl_->SetReadTimeout(impl_->timeout);
  return false;
}

}  // namespace taskmesh::gateway::testing
