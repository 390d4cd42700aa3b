// HttpClient: a small blocking HTTP/1.1 client for tests, over one keep-alive
// connection to 127.0.0.1, with raw access for malformed or slow requests.
// Every read gives up after a timeout, so a broken server fails a test
// instead of hanging it.
//
// Not thread-safe. Test-only.
//
// Example:
//   HttpClient c(port);
//   HttpReply r = c.Send("GET", "/v1/things/t1").value();
//   EXPECT_EQ(r.status, 200);
#ifndef TASKMESH_API_GATEWAY_TESTING_HTTP_CLIENT_H_
#define TASKMESH_API_GATEWAY_TESTING_HTTP_CLIENT_H_

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace taskmesh::gateway::testing {

struct HttpReply {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names; repeats joined by ", "
  std::string body;                            // chunked bodies are decoded
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

using Headers = std::vector<std::pair<std::string, std::string>>;

class HttpClient {
 public:
  explicit HttpClient(int port, absl::Duration timeout = absl::Seconds(10));
  ~HttpClient();

  bool connected() const;
  absl::StatusOr<HttpReply> Send(const std::string& method, const std::string& target,
                                 const Headers& headers = {}, const std::string& body = "");
  // Writes bytes as they are.
  absl::Status SendRaw(const std::string& bytes);
  // Reads one response.
  absl::StatusOr<HttpReply> ReadReply();
  // Reads raw bytes until `needle` has arrived; returns all bytes read.
  absl::StatusOr<std::string> ReadUntil(const std::string& needle);
  // True once the server has closed the connection (EOF) within `timeout`.
  bool WaitClosed(absl::Duration timeout);
  void Close();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace taskmesh::gateway::testing

#endif  // TASKMESH_API_GATEWAY_TESTING_HTTP_CLIENT_H_
