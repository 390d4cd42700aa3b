// MetricsServer: serves Prometheus text at GET /metrics over plain HTTP/1.1,
// for binaries that have no HTTP server of their own (task_service, worker).
//
// One thread; one request per connection (Connection: close); requests must
// arrive within 2 s and fit in 8 KiB. Anything but GET /metrics is a 404.
// IPv4 addresses only.
//
// Example:
//   ASSIGN_OR_RETURN(auto metrics, MetricsServer::Start("0.0.0.0:9464", [&] {
//     return PrometheusCounter("taskmesh_x_total", "Things.", {{"", n}});
//   }));
#ifndef TASKMESH_COMMON_METRICS_SERVER_H_
#define TASKMESH_COMMON_METRICS_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/stop_signal.h"

namespace taskmesh {

class MetricsServer {
 public:
  // Binds `listen` (HOST:PORT, port 0 picks one). `render` runs on the
  // server's thread for each scrape.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(absl::string_view listen,
                                                              std::function<std::string()> render);
  ~MetricsServer();

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const { return port_; }

 private:
  MetricsServer(int fd, int port, std::function<std::string()> render);
  void Run();
  void Serve(int client);

  const int fd_;
  const int port_;
  const std::function<std::string()> render_;
  StopSignal stop_;
  std::thread thread_;
};

// One metric family in Prometheus text format: HELP and TYPE lines, then one
// sample per (labels, value); `labels` like `outcome="failed"`, or empty.
std::string PrometheusFamily(absl::string_view name, absl::string_view type,
                             absl::string_view help,
                             const std::vector<std::pair<std::string, double>>& samples);

}  // namespace taskmesh

#endif  // TASKMESH_COMMON_METRICS_SERVER_H_
