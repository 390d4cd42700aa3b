// TestBackend: an in-process gRPC server for gatewaytest.v1.Transcoding
// (api_gateway/testdata) on a free loopback port. It echoes what it received
// (request, metadata, deadline) so gateway tests can see exactly what the
// gateway sent, and fails, delays, streams and replies with metadata as a
// Behavior asks. grpc.health.v1 answers SERVING.
//
// Thread-safe. Test-only.
//
// Example:
//   auto backend = TestBackend::Start().value();
//   ... --upstream=backend->address() ...
//   EXPECT_EQ(backend->cancelled_streams(), 1);
#ifndef TASKMESH_API_GATEWAY_TESTING_TEST_BACKEND_H_
#define TASKMESH_API_GATEWAY_TESTING_TEST_BACKEND_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "gatewaytest/v1/transcoding.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace taskmesh::gateway::testing {

class TestBackend {
 public:
  // On 127.0.0.1:`port` (0: a free one; a fixed one restarts a backend).
  static absl::StatusOr<std::unique_ptr<TestBackend>> Start(int port = 0);
  ~TestBackend();

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  // Server streams that ended because the client cancelled them.
  int cancelled_streams() const { return cancelled_->load(); }
  // Streams still open.
  int open_streams() const { return open_->load(); }

  class Service;

 private:
  TestBackend() = default;

  std::unique_ptr<gatewaytest::v1::Transcoding::CallbackService> impl_;
  std::shared_ptr<std::atomic<int>> cancelled_;
  std::shared_ptr<std::atomic<int>> open_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace taskmesh::gateway::testing

#endif  // TASKMESH_API_GATEWAY_TESTING_TEST_BACKEND_H_
