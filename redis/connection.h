// Connection: one synchronous hiredis connection with connect and command
// timeouts, AUTH and SELECT, and pipelining.
//
// Not thread-safe: one thread uses a Connection at a time (hiredis contexts
// are not thread-safe). For concurrent callers use redis::Client, which owns
// a few Connections and pipelines many callers' commands on them.
//
// After a transport error (timeout, reset, protocol error) the connection is
// broken(): every further call fails at once and the owner reconnects. All
// transport errors, timeouts included, are UNAVAILABLE.
//
// Writing to a connection the server has reset would raise SIGPIPE, which
// kills the process by default: the first Connect() therefore sets SIGPIPE to
// SIG_IGN unless the program already installed its own disposition.
//
// Example:
//   ASSIGN_OR_RETURN(auto conn, Connection::Connect(options));
//   ASSIGN_OR_RETURN(Reply pong, conn->Command({"PING"}));
//   ASSIGN_OR_RETURN(auto replies, conn->Pipeline({{"INCR", "a"}, {"INCR", "b"}}));
#ifndef TASKMESH_REDIS_CONNECTION_H_
#define TASKMESH_REDIS_CONNECTION_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"
#include "redis/options.h"
#include "redis/reply.h"

struct redisContext;

namespace taskmesh::redis {

// One command: its name and arguments, binary-safe.
using Args = std::vector<std::string>;

class Connection {
 public:
  // Connects, authenticates and selects the database, each step bounded by
  // options.connect_timeout. Without AUTH or SELECT it sends a PING, so that
  // a connection only counts as made once the server has answered (the
  // kernel accepts TCP connections for a frozen server). Fails with
  // UNAVAILABLE when Redis cannot be reached or does not answer (or is still
  // LOADING), UNAUTHENTICATED on a bad or missing password.
  static absl::StatusOr<std::unique_ptr<Connection>> Connect(const ConnectionOptions& options);

  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Sends one command and reads its reply. An error reply is a Reply of type
  // kError, not a failed status; a failed status means the connection broke.
  absl::StatusOr<Reply> Command(const Args& args);

  // Sends all commands in one write, then reads all replies in order.
  absl::StatusOr<std::vector<Reply>> Pipeline(absl::Span<const Args> commands);

  // A command that may block in Redis (XREADGROUP ... BLOCK ms): the read
  // timeout is raised by `block` for this call only.
  absl::StatusOr<Reply> BlockingCommand(const Args& args, absl::Duration block);

  // The pieces of Pipeline(), for callers that interleave other work.
  // Append() only buffers; ReadReply() flushes the buffer first.
  absl::Status Append(const Args& args);
  absl::StatusOr<Reply> ReadReply();

  // Writes what Append() buffered, without reading.
  absl::Status Flush();

  // Waits up to `wait` for one reply (pub/sub messages arrive unasked);
  // nullopt when none came. A timeout here does not break the connection.
  absl::StatusOr<absl::optional<Reply>> Poll(absl::Duration wait);

  // Without sending or blocking, checks that the server has not closed or
  // reset an idle connection (one with no replies outstanding), as after a
  // Redis restart. Anything readable on an idle connection means it is dead
  // or out of step: the connection becomes broken() and this fails with
  // UNAVAILABLE.
  absl::Status CheckAlive();

  bool broken() const { return broken_; }
  const ConnectionOptions& options() const { return options_; }

 private:
  struct ContextDeleter {
    void operator()(redisContext* context) const;
  };

  Connection(const ConnectionOptions& options, redisContext* context);
  // Marks the connection broken; returns the status why. `saved_errno` is
  // errno as the failed hiredis call left it, read before anything else
  // could overwrite it.
  absl::Status Fail(int saved_errno);
  absl::Status SetReadTimeout(absl::Duration timeout);

  ConnectionOptions options_;
  std::unique_ptr<redisContext, ContextDeleter> context_;
  bool broken_ = false;
  // The socket timeout now in force, for error messages.
  absl::Duration timeout_;
};

}  // namespace taskmesh::redis

#endif  // TASKMESH_REDIS_CONNECTION_H_
