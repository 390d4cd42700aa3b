// The backend of the gateway benchmark: a C++ gRPC callback-API echo server
// for bench.gateway.v1.EchoService, with grpc.health.v1.
//
//   echo_backend --listen=127.0.0.1:PORT
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "bench/gateway/v1/echo.grpc.pb.h"
#include "common/flags.h"
#include "common/shutdown.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50151", "gRPC address");

namespace {

class EchoImpl final : public bench::gateway::v1::EchoService::CallbackService {
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* ctx,
                                 const bench::gateway::v1::EchoRequest* request,
                                 bench::gateway::v1::EchoResponse* response) override {
    response->set_message(request->message());
    response->set_n(request->n());
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

}  // namespace

int main(int argc, char** argv) {
  taskmesh::ParseFlags(argc, argv, "echo_backend: the gateway benchmark's gRPC echo server");
  taskmesh::BlockShutdownSignals();
  EchoImpl service;
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) return 1;
  std::fprintf(stderr, "echo_backend listening on port %d\n", port);
  taskmesh::WaitForShutdownSignal();
  server->Shutdown();
  return 0;
}
