// Keeps a gRPC server's grpc.health.v1 status in step with a readiness
// check (for example "connected to Redis"), on a thread of its own.
//
// Example:
//   HealthReporter health(server->GetHealthCheckService(),
//                         [&] { return client.connected(); }, {"taskmesh.v1.TaskService"});
//   ...                                     // SERVING while the check holds
//   health.Stop();                          // NOT_SERVING, thread joined
#ifndef TASKMESH_COMMON_HEALTH_H_
#define TASKMESH_COMMON_HEALTH_H_

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/stop_signal.h"
#include "grpcpp/health_check_service_interface.h"

namespace taskmesh {

class HealthReporter {
 public:
  // Checks `ready` every 250 ms; sets the overall status and each of
  // `services` to SERVING or NOT_SERVING when it changes. `service` must
  // outlive the reporter.
  HealthReporter(grpc::HealthCheckServiceInterface* service, std::function<bool()> ready,
                 std::vector<std::string> services = {});
  ~HealthReporter() { Stop(); }

  // Reports NOT_SERVING and stops checking. Idempotent.
  void Stop();

 private:
  void Set(bool serving);

  grpc::HealthCheckServiceInterface* const service_;
  const std::vector<std::string> services_;
  StopSignal stop_;
  std::thread thread_;
};

}  // namespace taskmesh

#endif  // TASKMESH_COMMON_HEALTH_H_
