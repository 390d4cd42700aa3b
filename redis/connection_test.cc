// Integration tests for Connection against a real redis-server.
#include "redis/connection.h"

#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"

namespace taskmesh::redis {
namespace {

using ::taskmesh::testing::PickUnusedPort;
using ::taskmesh::testing::RedisServer;
using ::taskmesh::testing::RedisServerOptions;
using ::testing::HasSubstr;

class ConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  std::unique_ptr<Connection> MustConnect(ConnectionOptions options) {
    auto conn = Connection::Connect(options);
    EXPECT_TRUE(conn.ok()) << conn.status();
    return conn.ok() ? *std::move(conn) : nullptr;
  }
  std::unique_ptr<Connection> MustConnect() { return MustConnect(server_->options()); }

  std::unique_ptr<RedisServer> server_;
};

// Resumes a SIGSTOPped server even when an assertion returns early.
class Frozen {
 public:
  explicit Frozen(RedisServer& server) : server_(server) {
    EXPECT_TRUE(server_.process().Signal(SIGSTOP).ok());
  }
  ~Frozen() { Thaw(); }
  void Thaw() {
    if (frozen_) {
      EXPECT_TRUE(server_.process().Signal(SIGCONT).ok());
    }
    frozen_ = false;
  }

 private:
  RedisServer& server_;
  bool frozen_ = true;
};

TEST_F(ConnectionTest, CommandsRoundTrip) {
  auto conn = MustConnect();
  ASSERT_NE(conn, nullptr);
  absl::StatusOr<Reply> pong = conn->Command({"PING"});
  ASSERT_TRUE(pong.ok()) << pong.status();
  EXPECT_EQ(pong->type(), Reply::Type::kStatus);
  EXPECT_EQ(pong->str(), "PONG");

  EXPECT_EQ(conn->Command({"SET", "k", "v"})->str(), "OK");
  EXPECT_EQ(*conn->Command({"GET", "k"})->AsString(), "v");
  EXPECT_TRUE(conn->Command({"GET", "missing"})->is_nil());
  EXPECT_EQ(*conn->Command({"INCRBY", "n", "41"})->AsInteger(), 41);
  EXPECT_EQ(*conn->Command({"INCR", "n"})->AsInteger(), 42);
  EXPECT_EQ(conn->Command({"HSET", "h", "a", "1", "b", "2"})->integer(), 2);
  EXPECT_THAT(*conn->Command({"HGETALL", "h"})->AsMap(),
              ::testing::UnorderedElementsAre(::testing::Pair("a", "1"),
                                              ::testing::Pair("b", "2")));
  EXPECT_FALSE(conn->broken());
}

TEST_F(ConnectionTest, BinarySafeArguments) {
  auto conn = MustConnect();
  ASSERT_NE(conn, nullptr);
  const std::string key("key\0with\r\nnul", 13);
  std::string value;
  for (int i = 0; i < 256; ++i) value.push_back(static_cast<char>(i));
  value += std::string(1 << 20, '\0');  // And a large one: 1 MiB of NULs.
  EXPECT_EQ(conn->Command({"SET", key, value})->str(), "OK");
  absl::StatusOr<Reply> got = conn->Command({"GET", key});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->str().size(), value.size());
  EXPECT_TRUE(got->str() == value);
  // The key with the NUL is a different key from its prefix.
  EXPECT_TRUE(conn->Command({"GET", "key"})->is_nil());
  EXPECT_EQ(*conn->Command({"STRLEN", key})->AsInteger(), static_cast<int64_t>(value.size()));
  // Empty arguments are arguments too.
  EXPECT_EQ(conn->Command({"SET", "", ""})->str(), "OK");
  EXPECT_EQ(*conn->Command({"GET", ""})->AsString(), "");
}

TEST_F(ConnectionTest, PipelineKeepsOrder) {
  auto conn = MustConnect();
  ASSERT_NE(conn, nullptr);
  std::vector<Args> commands;
  for (int i = 0; i < 2000; ++i) {
    commands.push_back({"RPUSH", "list", absl::StrCat(i)});
    if (i % 100 == 0) commands.push_back({"LINDEX", "list", "-1"});
  }
  absl::StatusOr<std::vector<Reply>> replies = conn->Pipeline(commands);
  ASSERT_TRUE(replies.ok()) << replies.status();
  ASSERT_EQ(replies->size(), commands.size());
  int pushed = 0;
  for (size_t i = 0; i < commands.size(); ++i) {
    const Reply& r = (*replies)[i];
    if (commands[i][0] == "RPUSH") {
      ASSERT_EQ(r.integer(), ++pushed) << i;
    } else {
      ASSERT_EQ(r.str(), absl::StrCat(pushed - 1)) << i;
    }
  }
  absl::StatusOr<Reply> range = conn->Command({"LRANGE", "list", "0", "-1"});
  ASSERT_TRUE(range.ok());
  ASSERT_EQ(range->elements().size(), 2000u);
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(range->elements()[i].str(), absl::StrCat(i));
}

TEST_F(ConnectionTest, EmptyPipeline) {
  auto conn = MustConnect();
  ASSERT_NE(conn, nullptr);
  absl::StatusOr<std::vector<Reply>> replies = conn->Pipeline({});
  ASSERT_TRUE(replies.ok());
  EXPECT_TRUE(replies->empty());
  EXPECT_EQ(conn->Command({"PING"})->str(), "PONG");
}

TEST_F(ConnectionTest, AppendThenReadReply) {
  auto conn = MustConnect();
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Append({"SET", "a", "1"}).ok());
  ASSERT_TRUE(conn->Append({"GET", "a"}).ok());
  ASSERT_TRUE(conn->Append({"INCR", "a"}).ok());
  EXPECT_EQ(conn->ReadReply()->str(), "OK");
  EXPECT_EQ(conn->ReadReply()->str(), "1");
  EXPECT_EQ(conn->ReadReply()->integer(), 2);
}

TEST_F(ConnectionTest, ErrorRepliesAreValuesNotFailures) {
  auto conn = MustConnect();
  ASSERT_NE(conn, nullptr);
  absl::StatusOr<Reply> unknown = conn->Command({"NOSUCHCOMMAND", "x"});
  ASSERT_TRUE(unknown.ok()) << unknown.status();
  EXPECT_TRUE(unknown->is_error());
  EXPECT_THAT(unknown->str(), HasSubstr("unknown command"));
  EXPECT_FALSE(conn->broken());

  ASSERT_EQ(conn->Command({"SET", "s", "text"})->str(), "OK");
  absl::StatusOr<std::vector<Reply>> replies = conn->Pipeline(
      {{"INCR", "a"}, {"LPUSH", "s", "x"}, {"INCR", "s"}, {"INCR", "a"}});
  ASSERT_TRUE(replies.ok()) << replies.status();
  ASSERT_EQ(replies->size(), 4u);
  EXPECT_EQ((*replies)[0].integer(), 1);
  EXPECT_TRUE((*replies)[1].is_error());
  EXPECT_THAT((*replies)[1].str(), ::testing::StartsWith("WRONGTYPE"));
  EXPECT_TRUE((*replies)[2].is_error());
  EXPECT_EQ((*replies)[3].integer(), 2);
  EXPECT_FALSE(conn->broken());
}

TEST_F(ConnectionTest, SelectsDatabase) {
  ConnectionOptions db3 = server_->options();
  db3.db = 3;
  auto conn3 = MustConnect(db3);
  auto conn0 = MustConnect();
  ASSERT_NE(conn3, nullptr);
  ASSERT_NE(conn0, nullptr);
  ASSERT_EQ(conn3->Command({"SET", "where", "three"})->str(), "OK");
  EXPECT_TRUE(conn0->Command({"GET", "where"})->is_nil());
  EXPECT_EQ(*conn3->Command({"GET", "where"})->AsString(), "three");
  EXPECT_THAT(*conn3->Command({"CLIENT", "INFO"})->AsString(), HasSubstr(" db=3 "));

  ConnectionOptions bad = server_->options();
  bad.db = 999;  // The server has 16 databases.
  absl::StatusOr<std::unique_ptr<Connection>> refused = Connection::Connect(bad);
  EXPECT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("DB index"));
}

TEST_F(ConnectionTest, AuthenticatesWithRequirePass) {
  // The fixture probes without a password, so set it after start.
  auto admin = MustConnect();
  ASSERT_NE(admin, nullptr);
  ASSERT_EQ(admin->Command({"CONFIG", "SET", "requirepass", "s3cr3t"})->str(), "OK");

  ConnectionOptions good = server_->options();
  good.password = "s3cr3t";
  auto conn = MustConnect(good);
  ASSERT_NE(conn, nullptr);
  EXPECT_EQ(conn->Command({"PING"})->str(), "PONG");

  ConnectionOptions wrong = server_->options();
  wrong.password = "nope";
  absl::StatusOr<std::unique_ptr<Connection>> rejected = Connection::Connect(wrong);
  EXPECT_EQ(rejected.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(rejected.status().message()), ::testing::Not(HasSubstr("nope")));

  // No password at all: refused at connect time, not command by command.
  absl::StatusOr<std::unique_ptr<Connection>> anonymous = Connection::Connect(server_->options());
  EXPECT_EQ(anonymous.status().code(), absl::StatusCode::kUnauthenticated)
      << anonymous.status();
}

TEST(ConnectionAclTest, AuthenticatesAclUserGivenInExtraArgs) {
  RedisServerOptions options;
  options.extra_args = {"--user", "worker", "on", ">w0rker", "~*", "&*", "+@all", "-xadd"};
  auto server = RedisServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();

  absl::StatusOr<ConnectionOptions> url =
      ParseRedisUrl(absl::StrCat("redis://worker:w0rker@127.0.0.1:", (*server)->port(), "/2"));
  ASSERT_TRUE(url.ok());
  auto conn = Connection::Connect(*url);
  ASSERT_TRUE(conn.ok()) << conn.status();
  EXPECT_EQ(*(*conn)->Command({"ACL", "WHOAMI"})->AsString(), "worker");
  absl::StatusOr<Reply> denied = (*conn)->Command({"XADD", "s", "*", "f", "v"});
  ASSERT_TRUE(denied.ok());
  EXPECT_EQ(denied->ToStatus().code(), absl::StatusCode::kPermissionDenied);

  ConnectionOptions wrong = *url;
  wrong.password = "bad";
  EXPECT_EQ(Connection::Connect(wrong).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(ConnectionRefusedTest, NoServerFailsFastWithUnavailable) {
  ConnectionOptions options;
  options.port = PickUnusedPort();
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<Connection>> conn = Connection::Connect(options);
  EXPECT_EQ(conn.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));
}

TEST_F(ConnectionTest, CommandTimesOutWhenServerIsFrozen) {
  ConnectionOptions options = server_->options();
  options.command_timeout = absl::Milliseconds(300);
  auto conn = MustConnect(options);
  ASSERT_NE(conn, nullptr);
  ASSERT_EQ(conn->Command({"PING"})->str(), "PONG");

  Frozen frozen(*server_);
  const absl::Time start = absl::Now();
  absl::StatusOr<Reply> reply = conn->Command({"PING"});
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable) << reply.status();
  EXPECT_THAT(std::string(reply.status().message()), HasSubstr("did not answer within 300ms"));
  EXPECT_GE(took, absl::Milliseconds(250));
  EXPECT_LT(took, absl::Milliseconds(1500));
  EXPECT_TRUE(conn->broken());

  // A broken connection fails at once, without touching the socket.
  const absl::Time again = absl::Now();
  EXPECT_EQ(conn->Command({"PING"}).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(conn->Pipeline({{"PING"}, {"PING"}}).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(conn->Append({"PING"}).code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - again, absl::Milliseconds(50));

  frozen.Thaw();
  auto fresh = MustConnect(options);
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(fresh->Command({"PING"})->str(), "PONG");
}

TEST_F(ConnectionTest, PipelineTimesOutWhenServerIsFrozen) {
  ConnectionOptions options = server_->options();
  options.command_timeout = absl::Milliseconds(300);
  auto conn = MustConnect(options);
  ASSERT_NE(conn, nullptr);
  Frozen frozen(*server_);
  // Large enough to fill the socket buffers: the write itself must time out.
  std::vector<Args> commands(64, Args{"SET", "k", std::string(256 << 10, 'x')});
  const absl::Time start = absl::Now();
  absl::StatusOr<std::vector<Reply>> replies = conn->Pipeline(commands);
  EXPECT_EQ(replies.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(1500));
  EXPECT_TRUE(conn->broken());
}

TEST_F(ConnectionTest, ConnectTimesOutWhenServerIsFrozen) {
  // The kernel still accepts TCP connections for a stopped server: only a
  // round trip tells a live server from a frozen one.
  ConnectionOptions options = server_->options();
  options.connect_timeout = absl::Milliseconds(300);
  Frozen frozen(*server_);
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<Connection>> conn = Connection::Connect(options);
  EXPECT_EQ(conn.status().code(), absl::StatusCode::kUnavailable) << conn.status();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(1500));
}

TEST_F(ConnectionTest, BlockingCommandWaitsLongerThanCommandTimeout) {
  ConnectionOptions options = server_->options();
  options.command_timeout = absl::Milliseconds(200);
  auto conn = MustConnect(options);
  ASSERT_NE(conn, nullptr);
  const absl::Time start = absl::Now();
  absl::StatusOr<Reply> popped =
      conn->BlockingCommand({"BLPOP", "empty", "0.6"}, absl::Milliseconds(600));
  ASSERT_TRUE(popped.ok()) << popped.status();
  EXPECT_TRUE(popped->is_nil());
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(550));
  EXPECT_FALSE(conn->broken());

  // The command timeout is back afterwards: a plain Command that blocks
  // longer than it fails.
  const absl::Time again = absl::Now();
  absl::StatusOr<Reply> timed_out = conn->Command({"BLPOP", "empty", "2"});
  EXPECT_EQ(timed_out.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - again, absl::Milliseconds(1000));
  EXPECT_TRUE(conn->broken());
}

TEST_F(ConnectionTest, BlockingCommandGetsPushedValue) {
  auto conn = MustConnect();
  auto pusher = MustConnect();
  ASSERT_NE(conn, nullptr);
  ASSERT_NE(pusher, nullptr);
  std::thread push([&] {
    // Push once the other connection is blocked on the list.
    ::taskmesh::testing::WaitFor(absl::Seconds(5), [&] {
      absl::StatusOr<Reply> info = pusher->Command({"INFO", "clients"});
      return info.ok() && info->str().find("blocked_clients:1") != std::string::npos;
    });
    EXPECT_EQ(pusher->Command({"RPUSH", "q", "job"})->integer(), 1);
  });
  absl::StatusOr<Reply> popped = conn->BlockingCommand({"BLPOP", "q", "5"}, absl::Seconds(5));
  push.join();
  ASSERT_TRUE(popped.ok()) << popped.status();
  const std::vector<Reply>* kv = *popped->AsArray(2);
  EXPECT_EQ((*kv)[0].str(), "q");
  EXPECT_EQ((*kv)[1].str(), "job");
}

TEST_F(ConnectionTest, ServerClosingTheConnectionBreaksIt) {
  auto conn = MustConnect();
  auto admin = MustConnect();
  ASSERT_NE(conn, nullptr);
  ASSERT_NE(admin, nullptr);
  const int64_t id = *conn->Command({"CLIENT", "ID"})->AsInteger();
  ASSERT_EQ(*admin->Command({"CLIENT", "KILL", "ID", absl::StrCat(id)})->AsInteger(), 1);
  absl::StatusOr<Reply> reply = conn->Command({"PING"});
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(conn->broken());
}

TEST_F(ConnectionTest, KilledServerBreaksTheConnection) {
  auto conn = MustConnect();
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(server_->Kill().ok());
  const absl::Time start = absl::Now();
  absl::StatusOr<Reply> reply = conn->Command({"SET", "k", std::string(4 << 20, 'x')});
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_TRUE(conn->broken());
  // Restarted: a new connection works.
  ASSERT_TRUE(server_->Restart().ok());
  auto fresh = MustConnect();
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(fresh->Command({"PING"})->str(), "PONG");
}

TEST_F(ConnectionTest, IdleConnectionNoticesServerRestart) {
  auto conn = MustConnect();
  ASSERT_NE(conn, nullptr);
  EXPECT_TRUE(conn->CheckAlive().ok());
  ASSERT_TRUE(server_->Kill().ok());
  ASSERT_TRUE(server_->Restart().ok());
  // The old socket saw the old server's FIN: found without sending anything.
  EXPECT_EQ(conn->CheckAlive().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(conn->broken());
}

// A TCP server that answers PING, then resets the connection (SO_LINGER 0),
// so that the client's next write() hits EPIPE.
class ResettingServer {
 public:
  ResettingServer() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(listen_fd_, 4), 0);
    EXPECT_EQ(getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ResettingServer() {
    Reset();
    close(listen_fd_);
  }
  int port() const { return port_; }
  // Resets the accepted connection and returns once it is closed.
  void Reset() {
    if (!reset_.HasBeenNotified()) reset_.Notify();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Serve() {
    // The client connects before anything else happens.
    pollfd lp{listen_fd_, POLLIN, 0};
    if (poll(&lp, 1, 5000) != 1) return;
    const int fd = accept(listen_fd_, nullptr, nullptr);
    ASSERT_GE(fd, 0);
    std::string in;
    while (!reset_.HasBeenNotified()) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 10) != 1) continue;
      char buf[4096];
      const ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) break;
      in.append(buf, n);
      if (in.find("PING\r\n") != std::string::npos) {
        in.clear();
        ASSERT_EQ(write(fd, "+PONG\r\n", 7), 7);
      }
    }
    linger lg{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
  }

  int listen_fd_ = -1;
  int port_ = 0;
  absl::Notification reset_;
  std::thread thread_;
};

TEST(ConnectionResetTest, WriteToResetConnectionIsAnErrorNotSigpipe) {
  ResettingServer server;
  ConnectionOptions options;
  options.port = server.port();
  auto conn = Connection::Connect(options);
  ASSERT_TRUE(conn.ok()) << conn.status();
  server.Reset();
  // Without SIGPIPE handling the process dies here.
  absl::StatusOr<Reply> reply = (*conn)->Command({"SET", "k", std::string(8 << 20, 'x')});
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable) << reply.status();
  EXPECT_TRUE((*conn)->broken());
}

}  // namespace
}  // namespace taskmesh::redis
