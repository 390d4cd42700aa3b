#include "redis/connection.h"

#include <poll.h>
#include <signal.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "hiredis/hiredis.h"

namespace taskmesh::redis {
namespace {

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};

// hiredis writes with write(2): on a connection the server has reset, that
// raises SIGPIPE, whose default action kills the process (a Redis restart
// would take every client down with it). Ignore it, unless the program has
// chosen a disposition of its own; write(2) then fails with EPIPE instead.
void IgnoreSigpipeOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction current;
    if (sigaction(SIGPIPE, nullptr, &current) != 0) return;
    if ((current.sa_flags & SA_SIGINFO) == 0 && current.sa_handler == SIG_DFL) {
      signal(SIGPIPE, SIG_IGN);
    }
  });
}

}  // namespace

void Connection::ContextDeleter::operator()(redisContext* context) const {
  redisFree(context);
}

Connection::Connection(const ConnectionOptions& options, redisContext* context)
    : options_(options), context_(context), timeout_(options.connect_timeout) {}

Connection::~Connection() = default;

absl::StatusOr<std::unique_ptr<Connection>> Connection::Connect(
    const ConnectionOptions& options) {
  IgnoreSigpipeOnce();
  redisContext* raw = redisConnectWithTimeout(options.host.c_str(), options.port,
                                              absl::ToTimeval(options.connect_timeout));
  if (raw == nullptr) {
    return absl::ResourceExhaustedError("redis: cannot allocate a connection");
  }
  std::unique_ptr<Connection> conn(new Connection(options, raw));
  if (raw->err != 0) {
    return absl::UnavailableError(absl::StrCat("redis: cannot connect to ", options.host, ":",
                                               options.port, ": ", raw->errstr));
  }
  // Handshake under the connect timeout, then switch to the command timeout.
  RETURN_IF_ERROR(conn->SetReadTimeout(options.connect_timeout));
  redisEnableKeepAlive(raw);
  if (!options.password.empty()) {
    Args auth = {"AUTH"};
    if (!options.username.empty()) auth.push_back(options.username);
    auth.push_back(options.password);
    ASSIGN_OR_RETURN(Reply reply, conn->Command(auth));
    if (reply.is_error()) {
      // A server still loading the dataset refuses AUTH too: that is not a
      // bad password, and retrying will succeed.
      absl::Status status = reply.ToStatus();
      if (absl::IsUnavailable(status)) return status;
      return absl::UnauthenticatedError(absl::StrCat("redis: AUTH failed: ", reply.str()));
    }
  }
  if (options.db != 0) {
    ASSIGN_OR_RETURN(Reply reply, conn->Command({"SELECT", absl::StrCat(options.db)}));
    RETURN_IF_ERROR(reply.ToStatus());
  }
  if (options.password.empty() && options.db == 0) {
    // No handshake happened: make sure a live server is on the other end
    // (NOAUTH -> UNAUTHENTICATED, LOADING -> UNAVAILABLE).
    ASSIGN_OR_RETURN(Reply reply, conn->Command({"PING"}));
    RETURN_IF_ERROR(reply.ToStatus());
  }
  RETURN_IF_ERROR(conn->SetReadTimeout(options.command_timeout));
  return conn;
}

absl::Status Connection::SetReadTimeout(absl::Duration timeout) {
  errno = 0;
  if (redisSetTimeout(context_.get(), absl::ToTimeval(timeout)) != REDIS_OK) return Fail(errno);
  timeout_ = timeout;
  return absl::OkStatus();
}

absl::Status Connection::Fail(int saved_errno) {
  broken_ = true;
  const redisContext* c = context_.get();
  const std::string where = absl::StrCat(options_.host, ":", options_.port);
  if (c->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK)) {
    // SO_RCVTIMEO / SO_SNDTIMEO expired.
    return absl::UnavailableError(absl::StrCat("redis: ", where, " did not answer within ",
                                               absl::FormatDuration(timeout_)));
  }
  if (c->err == REDIS_ERR_EOF) {
    return absl::UnavailableError(absl::StrCat("redis: ", where, " closed the connection"));
  }
  return absl::UnavailableError(
      absl::StrCat("redis: ", where, ": ", c->err != 0 ? c->errstr : "connection broken"));
}

absl::Status Connection::CheckAlive() {
  if (broken_) return absl::UnavailableError("redis: connection is broken");
  pollfd p{context_->fd, POLLIN | POLLRDHUP, 0};
  int n;
  do {
    n = poll(&p, 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n == 0) return absl::OkStatus();
  const int saved_errno = errno;
  broken_ = true;
  const std::string where = absl::StrCat(options_.host, ":", options_.port);
  if (n < 0) {
    return absl::UnavailableError(
        absl::StrCat("redis: ", where, ": poll: ", std::strerror(saved_errno)));
  }
  // EOF, a reset, or bytes nobody asked for (an error the server sent just
  // before closing, such as "max number of clients reached").
  return absl::UnavailableError(absl::StrCat("redis: ", where, " closed the connection"));
}

absl::Status Connection::Append(const Args& args) {
  if (broken_) return absl::UnavailableError("redis: connection is broken");
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const std::string& arg : args) {
    argv.push_back(arg.data());
    lens.push_back(arg.size());
  }
  errno = 0;
  if (redisAppendCommandArgv(context_.get(), static_cast<int>(args.size()), argv.data(),
                             lens.data()) != REDIS_OK) {
    return Fail(errno);
  }
  return absl::OkStatus();
}

absl::StatusOr<Reply> Connection::ReadReply() {
  if (broken_) return absl::UnavailableError("redis: connection is broken");
  void* raw = nullptr;
  errno = 0;
  const int rc = redisGetReply(context_.get(), &raw);
  const int saved_errno = errno;
  if (rc != REDIS_OK || raw == nullptr) return Fail(saved_errno);
  std::unique_ptr<redisReply, ReplyDeleter> reply(static_cast<redisReply*>(raw));
  return Reply::FromHiredis(reply.get());
}

absl::Status Connection::Flush() {
  if (broken_) return absl::UnavailableError("redis: connection is broken");
  int done = 0;
  while (!done) {
    errno = 0;
    if (redisBufferWrite(context_.get(), &done) != REDIS_OK) return Fail(errno);
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::optional<Reply>> Connection::Poll(absl::Duration wait) {
  if (broken_) return absl::UnavailableError("redis: connection is broken");
  auto take = [this]() -> absl::StatusOr<absl::optional<Reply>> {
    void* raw = nullptr;
    if (redisGetReplyFromReader(context_.get(), &raw) != REDIS_OK) return Fail(errno);
    if (raw == nullptr) return absl::optional<Reply>();
    std::unique_ptr<redisReply, ReplyDeleter> reply(static_cast<redisReply*>(raw));
    return absl::optional<Reply>(Reply::FromHiredis(reply.get()));
  };
  // A reply may already sit in hiredis's buffer.
  absl::StatusOr<absl::optional<Reply>> buffered = take();
  if (!buffered.ok() || buffered->has_value()) return buffered;
  pollfd p{context_->fd, POLLIN, 0};
  int n;
  do {
    n = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(wait)));
  } while (n < 0 && errno == EINTR);
  if (n == 0) return absl::optional<Reply>();
  if (redisBufferRead(context_.get()) != REDIS_OK) return Fail(errno);
  return take();
}

absl::StatusOr<Reply> Connection::Command(const Args& args) {
  RETURN_IF_ERROR(Append(args));
  return ReadReply();
}

absl::StatusOr<std::vector<Reply>> Connection::Pipeline(absl::Span<const Args> commands) {
  for (const Args& args : commands) RETURN_IF_ERROR(Append(args));
  std::vector<Reply> replies;
  replies.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    ASSIGN_OR_RETURN(Reply reply, ReadReply());
    replies.push_back(std::move(reply));
  }
  return replies;
}

absl::StatusOr<Reply> Connection::BlockingCommand(const Args& args, absl::Duration block) {
  RETURN_IF_ERROR(SetReadTimeout(options_.command_timeout + block));
  absl::StatusOr<Reply> reply = Command(args);
  if (!broken_) RETURN_IF_ERROR(SetReadTimeout(options_.command_timeout));
  return reply;
}

}  // namespace taskmesh::redis
