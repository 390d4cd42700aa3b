// Redis Cluster's key space: the hash slot of a key, the key a command is
// routed by, the slot map (which master serves which slot) read from
// CLUSTER SHARDS or CLUSTER SLOTS, and MOVED/ASK redirects.
//
// Routing rule (ClusterClient::Send): a command goes to the master of its
// first key's slot. The first key is args[1], except:
//
//   command                                    first key
//   EVAL, EVALSHA, EVAL_RO, EVALSHA_RO,        args[3] (after numkeys);
//   FCALL, FCALL_RO                            none when numkeys is 0
//   XREAD, XREADGROUP                          the word after STREAMS
//   XGROUP, XINFO, OBJECT, MEMORY, BITOP       args[2] (after the subcommand)
//   ZUNION, ZINTER, ZDIFF, ZINTERCARD,         args[2] (after numkeys)
//   SINTERCARD, LMPOP, ZMPOP
//   BLMPOP, BZMPOP                             args[3] (after timeout, numkeys)
//   PING, ECHO, TIME, INFO, CLUSTER, SCRIPT,   none: any master
//   FUNCTION, CONFIG, CLIENT, COMMAND, DBSIZE,
//   FLUSHALL, FLUSHDB, KEYS, SCAN, RANDOMKEY,
//   PUBLISH, WAIT, LASTSAVE, SLOWLOG, ACL,
//   HELLO, AUTH, SELECT, READONLY, READWRITE,
//   MULTI, EXEC, DISCARD, UNWATCH, ASKING
//   a command with no arguments                none: any master
//
// The other keys of a multi-key command must share the first key's slot
// (Redis answers CROSSSLOT otherwise); a `{tag}` in the key names makes them
// share one. Keyless commands that act on the data set (DBSIZE, KEYS, SCAN,
// FLUSHALL) reach ONE master: send them to every master of
// ClusterClient::Masters() for the whole cluster.
//
// Example:
//   KeySlot("123456789") == 12739
//   KeySlot("{user1000}.following") == KeySlot("{user1000}.followers")
//   ASSIGN_OR_RETURN(SlotMap map, SlotMap::FromClusterShards(reply));
//   const NodeAddress* owner = map.master_of(KeySlot(key));
#ifndef TASKMESH_REDIS_SLOTS_H_
#define TASKMESH_REDIS_SLOTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"
#include "redis/connection.h"
#include "redis/reply.h"

namespace taskmesh::redis {

constexpr int kClusterSlots = 16384;

// CRC16 (XMODEM) of the key's hash tag mod 16384. The hash tag is the part
// between the first `{` and the first `}` after it, when that part is not
// empty; otherwise the whole key.
uint16_t KeySlot(absl::string_view key);

// The key `args` is routed by (see the table above); nullopt for keyless
// commands. Points into `args`.
absl::optional<absl::string_view> RoutingKey(const Args& args);

struct NodeAddress {
  std::string host;
  int port = 0;

  bool operator==(const NodeAddress& other) const {
    return port == other.port && host == other.host;
  }
  bool operator!=(const NodeAddress& other) const { return !(*this == other); }
  // host:port ([host]:port for IPv6).
  std::string ToString() const;
};

// Which master serves each slot. A plain value: copy it to change it.
class SlotMap {
 public:
  SlotMap();

  // CLUSTER SHARDS (Redis 7+): in each shard, the node whose role is
  // master serves the shard's slots (an online one when several claim it).
  // A node's address is its `endpoint`, else its `ip`; `default_host`
  // stands in when neither is known ("?" or empty).
  static absl::StatusOr<SlotMap> FromClusterShards(const Reply& reply,
                                                   const std::string& default_host);
  // CLUSTER SLOTS (Redis 3+): [[first, last, [host, port, id, ...], replicas...], ...].
  static absl::StatusOr<SlotMap> FromClusterSlots(const Reply& reply,
                                                  const std::string& default_host);

  // The master serving `slot`, or nullptr when no node does.
  const NodeAddress* master_of(int slot) const;
  // Index into masters() of the master serving `slot`; -1 when none.
  int owner(int slot) const { return owner_[slot]; }
  // Every master that serves at least one slot, in no particular order.
  const std::vector<NodeAddress>& masters() const { return masters_; }
  // Slots served by some master.
  int covered() const;

  // Makes `node` the master of `slot` (after a MOVED).
  void Assign(int slot, const NodeAddress& node);

 private:
  int IndexOf(const NodeAddress& node);

  std::vector<NodeAddress> masters_;
  std::vector<int16_t> owner_;
};

// A MOVED or ASK error reply: "MOVED 3999 127.0.0.1:6381".
struct Redirect {
  bool ask = false;
  int slot = 0;
  NodeAddress node;
};

// The redirect in an error reply's text, or nullopt when it is none. An
// empty host ("MOVED 3999 :6381") means `replying_host`, as Redis documents.
absl::optional<Redirect> ParseRedirect(absl::string_view error, const std::string& replying_host);

}  // namespace taskmesh::redis

#endif  // TASKMESH_REDIS_SLOTS_H_
