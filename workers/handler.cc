#include "workers/handler.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/cord.h"

namespace taskmesh::workers {
namespace {

constexpr absl::string_view kSkipRetryUrl = "type.taskmesh.dev/skip_retry";

}  // namespace

absl::Status SkipRetry(absl::Status status) {
  if (status.ok()) return status;
  status.SetPayload(kSkipRetryUrl, absl::Cord("1"));
  return status;
}

bool IsSkipRetry(const absl::Status& status) {
  return status.GetPayload(kSkipRetryUrl).has_value();
}

void HandlerRegistry::Register(std::string type, Handler handler) {
  handlers_[std::move(type)] = std::move(handler);
}

const Handler* HandlerRegistry::Find(absl::string_view type) const {
  auto it = handlers_.find(type);
  return it == handlers_.end() ? nullptr : &it->second;
}

std::vector<std::string> HandlerRegistry::Types() const {
  std::vector<std::string> types;
  for (const auto& [type, handler] : handlers_) types.push_back(type);
  std::sort(types.begin(), types.end());
  return types;
}

}  // namespace taskmesh::workers
