#include "redis/commands.h"

#include <utility>

#include "absl/synchronization/notification.h"

namespace taskmesh::redis {

absl::StatusOr<Reply> Commands::Call(Args args) {
  absl::Notification done;
  absl::StatusOr<Reply> result;
  Send(std::move(args), [&](absl::StatusOr<Reply> reply) {
    result = std::move(reply);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

absl::StatusOr<Reply> Commands::CallEval(const Script& script,
                                         const std::vector<std::string>& keys,
                                         const std::vector<std::string>& args) {
  absl::Notification done;
  absl::StatusOr<Reply> result;
  Eval(script, keys, args, [&](absl::StatusOr<Reply> reply) {
    result = std::move(reply);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

}  // namespace taskmesh::redis
