#include "tests/support/mesh.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "grpcpp/generic/generic_stub.h"
#include "redis/connection.h"
#include "redis/slots.h"
#include "tests/support/binaries.h"

namespace taskmesh::testing {

bool IsTerminal(v1::Task::State state) {
  return state == v1::Task::SUCCEEDED || state == v1::Task::FAILED ||
         state == v1::Task::CANCELLED;
}

std::string OutputDir() {
  const char* dir = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  return dir != nullptr ? dir : TestTempDir();
}

namespace {

// True when something accepts TCP connections on 127.0.0.1:`port`.
bool PortOpen(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  const bool open = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return open;
}

}  // namespace

int WorkerHealthPort(const Process& worker) {
  const std::string log = worker.Log();
  const size_t at = log.find("msg=\"health serving\"");
  if (at == std::string::npos) return 0;
  const size_t p = log.find(" port=", at);
  const size_t eol = log.find('\n', at);
  if (p == std::string::npos || p > eol) return 0;
  int port = 0;
  return absl::SimpleAtoi(log.substr(p + 6, eol - p - 6), &port) ? port : 0;
}

bool WorkerServing(const Process& worker) {
  const int port = WorkerHealthPort(worker);
  if (port == 0) return false;
  // grpc.health.v1.Health/Check by hand (Debian ships no stubs for it): an
  // empty HealthCheckRequest; SERVING is field 1 = 1, the bytes 08 01.
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  grpc::ByteBuffer request, response;
  grpc::Slice empty;
  request = grpc::ByteBuffer(&empty, 1);
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return false;
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return false;
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return bytes == std::string("\x08\x01", 2);
}

absl::StatusOr<std::unique_ptr<Mesh>> Mesh::Start(MeshOptions options) {
  static std::atomic<int> counter{0};
  std::unique_ptr<Mesh> mesh(new Mesh());
  mesh->dir_ = absl::StrCat(OutputDir(), "/mesh-", getpid(), "-", counter++);
  mkdir(mesh->dir_.c_str(), 0755);
  if (options.cluster) {
    ASSIGN_OR_RETURN(mesh->cluster_, RedisCluster::Start());
    mesh->redis_url_ = mesh->cluster_->seeds();
  } else {
    ASSIGN_OR_RETURN(mesh->redis_, RedisServer::Start(options.redis));
    mesh->redis_url_ = mesh->redis_->url();
  }

  // A port can be taken between picking and binding: try a few.
  for (int attempt = 0; attempt < 5; ++attempt) {
    const int port = PickUnusedPort();
    std::vector<std::string> argv = {BinaryPath("task_service/task_service"),
                                     absl::StrCat("--listen=127.0.0.1:", port),
                                     absl::StrCat("--redis=", mesh->redis_url_)};
    argv.insert(argv.end(), options.service_flags.begin(), options.service_flags.end());
    ASSIGN_OR_RETURN(mesh->service_,
                     Process::Start(argv, {}, absl::StrCat(mesh->dir_, "/task_service.log")));
    // The channel connects once the port listens: a gRPC channel that tried
    // too early stays in reconnect backoff for seconds.
    WaitFor(absl::Seconds(15), [&] { return !mesh->service_->running() || PortOpen(port); });
    mesh->address_ = absl::StrCat("127.0.0.1:", port);
    mesh->stub_ = v1::TaskService::NewStub(
        grpc::CreateChannel(mesh->address_, grpc::InsecureChannelCredentials()));
    // Ready once a read reaches Redis (NOT_FOUND), not merely the port.
    const bool ready = WaitFor(absl::Seconds(15), [&] {
      if (!mesh->service_->running()) return true;
      v1::Task t;
      return mesh->Get("queues/probe/tasks/probe", &t).error_code() ==
             grpc::StatusCode::NOT_FOUND;
    });
    if (ready && mesh->service_->running()) return mesh;
  }
  return absl::UnavailableError(
      absl::StrCat("task_service did not become ready:\n", mesh->service_->Log()));
}

Mesh::~Mesh() {
  // Processes die (SIGKILL) in their destructors: the service before Redis.
  service_.reset();
  redis_.reset();
  cluster_.reset();
}

absl::StatusOr<std::unique_ptr<Process>> Mesh::StartWorker(const WorkerSpec& spec) {
  std::vector<std::string> argv = {spec.binary, absl::StrCat("--redis=", redis_url_),
                                   absl::StrCat("--consumer=", spec.consumer),
                                   "--health_listen=127.0.0.1:0"};
  argv.insert(argv.end(), spec.flags.begin(), spec.flags.end());
  return Process::Start(argv, spec.env, absl::StrCat(dir_, "/", spec.consumer, ".log"));
}

grpc::Status Mesh::Create(const v1::CreateTaskRequest& request, v1::Task* task,
                          absl::Duration deadline) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  return stub_->CreateTask(&ctx, request, task);
}

grpc::Status Mesh::Get(const std::string& name, v1::Task* task, absl::Duration deadline) {
  v1::GetTaskRequest request;
  request.set_name(name);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  return stub_->GetTask(&ctx, request, task);
}

std::map<std::string, v1::Task> Mesh::AwaitTerminal(const std::vector<std::string>& names,
                                                    absl::Duration timeout,
                                                    std::set<std::string>* not_found) {
  std::map<std::string, v1::Task> last;
  std::map<std::string, int> missing;  // NOT_FOUND reads in a row
  std::vector<std::string> open = names;
  const absl::Time deadline = absl::Now() + timeout;
  while (!open.empty()) {
    std::vector<std::string> still;
    for (const std::string& name : open) {
      v1::Task t;
      grpc::Status s = Get(name, &t);
      if (s.ok()) {
        last[name] = t;
        missing.erase(name);
        if (IsTerminal(t.state())) continue;
      } else if (not_found != nullptr && s.error_code() == grpc::StatusCode::NOT_FOUND &&
                 ++missing[name] >= 3) {
        continue;  // Three reads in a row: gone.
      }
      still.push_back(name);
    }
    open = std::move(still);
    if (open.empty() || absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(open.size() > 100 ? 100 : 20));
  }
  if (not_found != nullptr) {
    for (const auto& [name, count] : missing) {
      if (count >= 3) not_found->insert(name);
    }
  }
  return last;
}

absl::StatusOr<redis::Reply> Mesh::RedisCommand(const std::vector<std::string>& args) {
  redis::ConnectionOptions node;
  if (cluster_ != nullptr) {
    const absl::optional<absl::string_view> key = redis::RoutingKey(args);
    const int slot = key.has_value() ? redis::KeySlot(*key) : 0;
    ASSIGN_OR_RETURN(int master, cluster_->MasterOfSlot(slot));
    if (master < 0) return absl::UnavailableError("no master serves the slot");
    node = cluster_->options(master);
  } else {
    node = redis_->options();
  }
  ASSIGN_OR_RETURN(auto conn, redis::Connection::Connect(node));
  return conn->Command(args);
}

}  // namespace taskmesh::testing
