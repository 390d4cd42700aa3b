#include "tests/support/redis_cluster.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace taskmesh::testing {
namespace {

constexpr int kSlots = 16384;
// A node's cluster bus listens on its port + 10000.
constexpr int kBusOffset = 10000;

bool PortFree(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// A port P such that P and P + 10000 are free and not in `taken`.
int PickClusterPort(const std::vector<int>& taken) {
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const int port = PickUnusedPort();
    if (port <= 0 || port + kBusOffset > 65535) continue;
    bool clash = false;
    for (int t : taken) clash |= (t == port || t + kBusOffset == port || port + kBusOffset == t);
    if (!clash && PortFree(port + kBusOffset)) return port;
  }
  return 0;
}

// One line of CLUSTER NODES.
struct NodeLine {
  std::string id;
  int port = 0;
  bool myself = false;
  bool master = false;
  bool failed = false;
  std::string master_id;
  // Slot ranges served, [first, last]; migrating/importing markers skipped.
  std::vector<std::pair<int, int>> slots;
};

absl::StatusOr<std::vector<NodeLine>> ParseClusterNodes(const std::string& text) {
  std::vector<NodeLine> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 8) return absl::InternalError(absl::StrCat("bad CLUSTER NODES line: ", line));
    NodeLine node;
    node.id = std::string(f[0]);
    // ip:port@cport[,hostname]
    absl::string_view addr = f[1].substr(0, f[1].find('@'));
    if (!absl::SimpleAtoi(addr.substr(addr.rfind(':') + 1), &node.port)) {
      return absl::InternalError(absl::StrCat("bad address in CLUSTER NODES: ", line));
    }
    for (absl::string_view flag : absl::StrSplit(f[2], ',')) {
      if (flag == "myself") node.myself = true;
      if (flag == "master") node.master = true;
      if (flag == "fail" || flag == "fail?") node.failed = true;
    }
    if (f[3] != "-") node.master_id = std::string(f[3]);
    for (size_t i = 8; i < f.size(); ++i) {
      if (absl::StartsWith(f[i], "[")) continue;
      std::pair<absl::string_view, absl::string_view> range = absl::StrSplit(f[i], '-');
      int first, last;
      if (!absl::SimpleAtoi(range.first, &first)) continue;
      if (range.second.empty()) {
        last = first;
      } else if (!absl::SimpleAtoi(range.second, &last)) {
        continue;
      }
      node.slots.emplace_back(first, last);
    }
    out.push_back(std::move(node));
  }
  return out;
}

absl::StatusOr<std::string> InfoField(const std::string& info, absl::string_view field) {
  for (absl::string_view line : absl::StrSplit(info, absl::ByAnyChar("\r\n"), absl::SkipEmpty())) {
    if (absl::ConsumePrefix(&line, field) && absl::ConsumePrefix(&line, ":")) {
      return std::string(line);
    }
  }
  return absl::NotFoundError(absl::StrCat(field, " not in reply"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisCluster>> RedisCluster::Start(RedisClusterOptions options) {
  static std::atomic<int> counter{0};
  std::unique_ptr<RedisCluster> cluster(new RedisCluster(options));
  cluster->dir_ = absl::StrCat(TestTempDir(), "/redis-cluster-", getpid(), "-", counter++);
  mkdir(cluster->dir_.c_str(), 0755);
  const int n = options.masters * (1 + options.replicas_per_master);
  std::vector<int> taken;
  for (int i = 0; i < n; ++i) {
    Node node;
    node.dir = absl::StrCat(cluster->dir_, "/node-", i);
    mkdir(node.dir.c_str(), 0755);
    cluster->nodes_.push_back(std::move(node));
    // A port can be taken between picking and binding: try a few.
    absl::Status launched;
    for (int attempt = 0; attempt < 5; ++attempt) {
      const int port = PickClusterPort(taken);
      if (port == 0) return absl::UnavailableError("no free port pair for a cluster node");
      cluster->nodes_[i].port = port;
      launched = cluster->Launch(i);
      if (launched.ok()) break;
    }
    RETURN_IF_ERROR(launched);
    taken.push_back(cluster->nodes_[i].port);
  }
  std::vector<std::string> args = {"--cluster", "create"};
  for (const Node& node : cluster->nodes_) args.push_back(absl::StrCat("127.0.0.1:", node.port));
  args.insert(args.end(), {"--cluster-replicas", absl::StrCat(options.replicas_per_master),
                           "--cluster-yes"});
  RETURN_IF_ERROR(cluster->RunRedisCli(args, absl::Seconds(60)));
  RETURN_IF_ERROR(cluster->WaitHealthy(absl::Seconds(60)));
  return cluster;
}

redis::ConnectionOptions RedisCluster::options(int node) const {
  redis::ConnectionOptions o;
  o.host = "127.0.0.1";
  o.port = nodes_[node].port;
  return o;
}

std::string RedisCluster::url(int node) const {
  return absl::StrCat("redis://127.0.0.1:", nodes_[node].port);
}

std::string RedisCluster::seeds() const {
  std::vector<std::string> parts;
  for (const Node& node : nodes_) parts.push_back(absl::StrCat("127.0.0.1:", node.port));
  return absl::StrCat("redis://", absl::StrJoin(parts, ","));
}

absl::Status RedisCluster::Launch(int i) {
  Node& node = nodes_[i];
  std::vector<std::string> argv = {"/usr/bin/redis-server",
                                   "--port", absl::StrCat(node.port),
                                   "--bind", "127.0.0.1",
                                   "--dir", node.dir,
                                   "--cluster-enabled", "yes",
                                   "--cluster-config-file", "nodes.conf",
                                   "--cluster-node-timeout", "2000",
                                   "--save", "",
                                   "--appendonly", "no",
                                   "--daemonize", "no",
                                   "--protected-mode", "yes"};
  argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  ASSIGN_OR_RETURN(node.process, Process::Start(argv, {}, node.dir + "/redis.log"));
  const bool up = WaitFor(absl::Seconds(10), [&] {
    if (!node.process->running()) return true;
    auto pong = Command(i, {"PING"});
    return pong.ok() && pong->str() == "PONG";
  });
  if (!up || !node.process->running()) {
    return absl::UnavailableError(absl::StrCat("redis-server did not start on port ", node.port,
                                               ":\n", node.process->Log()));
  }
  return absl::OkStatus();
}

absl::Status RedisCluster::RunRedisCli(const std::vector<std::string>& args,
                                       absl::Duration timeout) const {
  static std::atomic<int> counter{0};
  std::vector<std::string> argv = {"/usr/bin/redis-cli"};
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string log = absl::StrCat(dir_, "/redis-cli-", counter++, ".log");
  ASSIGN_OR_RETURN(auto cli, Process::Start(argv, {}, log));
  absl::StatusOr<int> status = cli->Wait(timeout);
  if (!status.ok() || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return absl::InternalError(absl::StrCat("redis-cli ", absl::StrJoin(args, " "),
                                            " failed:\n", cli->Log()));
  }
  return absl::OkStatus();
}

absl::Status RedisCluster::Kill(int node) {
  RETURN_IF_ERROR(nodes_[node].process->Signal(SIGKILL));
  return nodes_[node].process->Wait(absl::Seconds(10)).status();
}

absl::Status RedisCluster::Restart(int node) {
  if (running(node)) RETURN_IF_ERROR(Kill(node));
  return Launch(node);
}

bool RedisCluster::running(int node) const {
  return nodes_[node].process != nullptr && nodes_[node].process->running();
}

absl::StatusOr<redis::Reply> RedisCluster::Command(int node, const redis::Args& args) const {
  ASSIGN_OR_RETURN(auto conn, redis::Connection::Connect(options(node)));
  return conn->Command(args);
}

absl::StatusOr<std::string> RedisCluster::NodeId(int node) const {
  ASSIGN_OR_RETURN(redis::Reply reply, Command(node, {"CLUSTER", "MYID"}));
  return reply.AsString();
}

absl::StatusOr<int> RedisCluster::AnyRunning() const {
  for (int i = 0; i < size(); ++i) {
    if (running(i)) return i;
  }
  return absl::FailedPreconditionError("no cluster node is running");
}

int RedisCluster::NodeOfPort(int port) const {
  for (int i = 0; i < size(); ++i) {
    if (nodes_[i].port == port) return i;
  }
  return -1;
}

absl::StatusOr<int> RedisCluster::MasterOfSlot(int slot) const {
  ASSIGN_OR_RETURN(int any, AnyRunning());
  ASSIGN_OR_RETURN(redis::Reply reply, Command(any, {"CLUSTER", "NODES"}));
  ASSIGN_OR_RETURN(std::string text, reply.AsString());
  ASSIGN_OR_RETURN(std::vector<NodeLine> lines, ParseClusterNodes(text));
  for (const NodeLine& line : lines) {
    if (!line.master) continue;
    for (auto [first, last] : line.slots) {
      if (slot >= first && slot <= last) return NodeOfPort(line.port);
    }
  }
  return -1;
}

absl::StatusOr<std::vector<int>> RedisCluster::Masters() const {
  ASSIGN_OR_RETURN(int any, AnyRunning());
  ASSIGN_OR_RETURN(redis::Reply reply, Command(any, {"CLUSTER", "NODES"}));
  ASSIGN_OR_RETURN(std::string text, reply.AsString());
  ASSIGN_OR_RETURN(std::vector<NodeLine> lines, ParseClusterNodes(text));
  std::vector<int> masters;
  for (const NodeLine& line : lines) {
    if (line.master && !line.slots.empty()) masters.push_back(NodeOfPort(line.port));
  }
  return masters;
}

absl::Status RedisCluster::WaitHealthy(absl::Duration timeout) const {
  absl::Status why = absl::DeadlineExceededError("cluster not healthy");
  const bool healthy = WaitFor(timeout, [&] {
    // Every running node's view of slot -> master port, which must agree.
    std::string agreed;
    for (int i = 0; i < size(); ++i) {
      if (!running(i)) continue;
      auto info = Command(i, {"CLUSTER", "INFO"});
      if (!info.ok() || info->is_error()) {
        why = info.ok() ? info->ToStatus() : info.status();
        return false;
      }
      for (auto [field, want] : std::vector<std::pair<const char*, std::string>>{
               {"cluster_state", "ok"},
               {"cluster_slots_assigned", absl::StrCat(kSlots)},
               {"cluster_slots_ok", absl::StrCat(kSlots)},
               {"cluster_known_nodes", absl::StrCat(size())}}) {
        auto value = InfoField(info->str(), field);
        if (!value.ok() || *value != want) {
          why = absl::UnavailableError(absl::StrCat("node ", i, ": ", field, " is ",
                                                    value.ok() ? *value : "missing"));
          return false;
        }
      }
      auto nodes = Command(i, {"CLUSTER", "NODES"});
      if (!nodes.ok() || nodes->is_error()) return false;
      auto lines = ParseClusterNodes(nodes->str());
      if (!lines.ok()) return false;
      std::map<int, std::string> owners;  // first slot of a range -> "port-last"
      for (const NodeLine& line : *lines) {
        if (line.myself && !line.master) {
          auto repl = Command(i, {"INFO", "replication"});
          auto link = repl.ok() ? InfoField(repl->str(), "master_link_status")
                                : absl::StatusOr<std::string>(repl.status());
          if (!link.ok() || *link != "up") {
            why = absl::UnavailableError(absl::StrCat("node ", i, ": replica link not up"));
            return false;
          }
        }
        if (!line.master) continue;
        if (line.failed && !line.slots.empty()) return false;
        for (auto [first, last] : line.slots) owners[first] = absl::StrCat(line.port, "-", last);
      }
      std::string view;
      for (auto [first, owner] : owners) absl::StrAppend(&view, first, ":", owner, ";");
      if (agreed.empty()) {
        agreed = view;
      } else if (view != agreed) {
        why = absl::UnavailableError("nodes disagree about the slots");
        return false;
      }
    }
    return true;
  });
  return healthy ? absl::OkStatus() : why;
}

absl::Status RedisCluster::Reshard(int from, int to, int slots) {
  ASSIGN_OR_RETURN(std::string from_id, NodeId(from));
  ASSIGN_OR_RETURN(std::string to_id, NodeId(to));
  RETURN_IF_ERROR(RunRedisCli({"--cluster", "reshard", absl::StrCat("127.0.0.1:", port(from)),
                               "--cluster-from", from_id, "--cluster-to", to_id,
                               "--cluster-slots", absl::StrCat(slots), "--cluster-yes"},
                              absl::Seconds(120)));
  return WaitHealthy();
}

absl::Status RedisCluster::BeginSlotMigration(int slot, int from, int to) {
  ASSIGN_OR_RETURN(std::string from_id, NodeId(from));
  ASSIGN_OR_RETURN(std::string to_id, NodeId(to));
  const std::string s = absl::StrCat(slot);
  ASSIGN_OR_RETURN(redis::Reply importing,
                   Command(to, {"CLUSTER", "SETSLOT", s, "IMPORTING", from_id}));
  RETURN_IF_ERROR(importing.ToStatus());
  ASSIGN_OR_RETURN(redis::Reply migrating,
                   Command(from, {"CLUSTER", "SETSLOT", s, "MIGRATING", to_id}));
  return migrating.ToStatus();
}

absl::Status RedisCluster::FinishSlotMigration(int slot, int from, int to) {
  ASSIGN_OR_RETURN(std::string to_id, NodeId(to));
  const std::string s = absl::StrCat(slot);
  ASSIGN_OR_RETURN(auto conn, redis::Connection::Connect(options(from)));
  while (true) {
    ASSIGN_OR_RETURN(redis::Reply keys, conn->Command({"CLUSTER", "GETKEYSINSLOT", s, "100"}));
    RETURN_IF_ERROR(keys.ToStatus());
    if (keys.elements().empty()) break;
    redis::Args migrate = {"MIGRATE", "127.0.0.1", absl::StrCat(port(to)), "", "0", "5000",
                           "KEYS"};
    for (const redis::Reply& key : keys.elements()) migrate.push_back(key.str());
    ASSIGN_OR_RETURN(redis::Reply moved, conn->Command(migrate));
    RETURN_IF_ERROR(moved.ToStatus());
  }
  // The new owner first, then the old one, then the rest (as redis-cli does).
  ASSIGN_OR_RETURN(std::vector<int> masters, Masters());
  std::vector<int> order = {to, from};
  for (int m : masters) {
    if (m != to && m != from) order.push_back(m);
  }
  for (int node : order) {
    ASSIGN_OR_RETURN(redis::Reply set, Command(node, {"CLUSTER", "SETSLOT", s, "NODE", to_id}));
    RETURN_IF_ERROR(set.ToStatus());
  }
  return WaitHealthy();
}

}  // namespace taskmesh::testing
