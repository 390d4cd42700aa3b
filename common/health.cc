#include "common/health.h"

#include <utility>

namespace taskmesh {

HealthReporter::HealthReporter(grpc::HealthCheckServiceInterface* service,
                               std::function<bool()> ready, std::vector<std::string> services)
    : service_(service), services_(std::move(services)) {
  Set(false);
  thread_ = std::thread([this, ready = std::move(ready)] {
    bool last = false;
    while (!stop_.WaitFor(absl::Milliseconds(250))) {
      const bool now = ready();
      if (now != last) Set(now);
      last = now;
    }
  });
}

void HealthReporter::Stop() {
  if (!thread_.joinable()) return;
  stop_.Notify();
  thread_.join();
  Set(false);
}

void HealthReporter::Set(bool serving) {
  service_->SetServingStatus(serving);
  for (const std::string& s : services_) service_->SetServingStatus(s, serving);
}

}  // namespace taskmesh
