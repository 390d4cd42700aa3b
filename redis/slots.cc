#include "redis/slots.h"

#include <array>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace taskmesh::redis {
namespace {

// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as Redis Cluster
// specifies (src/crc16.c).
constexpr std::array<uint16_t, 256> MakeCrc16Table() {
  std::array<uint16_t, 256> table{};
  for (int i = 0; i < 256; ++i) {
    uint16_t crc = static_cast<uint16_t>(i << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) != 0 ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<uint16_t>(crc << 1);
    }
    table[i] = crc;
  }
  return table;
}

constexpr std::array<uint16_t, 256> kCrc16Table = MakeCrc16Table();

uint16_t Crc16(absl::string_view data) {
  uint16_t crc = 0;
  for (char c : data) {
    crc = static_cast<uint16_t>((crc << 8) ^
                                kCrc16Table[((crc >> 8) ^ static_cast<uint8_t>(c)) & 0xff]);
  }
  return crc;
}

// Where a command's first key is (the table in slots.h).
enum class KeyAt { kKeyless, kArg2, kArg3, kAfterNumkeys, kAfterStreams };

const absl::flat_hash_map<std::string, KeyAt>& Rules() {
  static const auto* rules = new absl::flat_hash_map<std::string, KeyAt>{
      {"EVAL", KeyAt::kAfterNumkeys},    {"EVALSHA", KeyAt::kAfterNumkeys},
      {"EVAL_RO", KeyAt::kAfterNumkeys}, {"EVALSHA_RO", KeyAt::kAfterNumkeys},
      {"FCALL", KeyAt::kAfterNumkeys},   {"FCALL_RO", KeyAt::kAfterNumkeys},
      {"XREAD", KeyAt::kAfterStreams},   {"XREADGROUP", KeyAt::kAfterStreams},
      {"XGROUP", KeyAt::kArg2},          {"XINFO", KeyAt::kArg2},
      {"OBJECT", KeyAt::kArg2},          {"MEMORY", KeyAt::kArg2},
      {"BITOP", KeyAt::kArg2},           {"ZUNION", KeyAt::kArg2},
      {"ZINTER", KeyAt::kArg2},          {"ZDIFF", KeyAt::kArg2},
      {"ZINTERCARD", KeyAt::kArg2},      {"SINTERCARD", KeyAt::kArg2},
      {"LMPOP", KeyAt::kArg2},           {"ZMPOP", KeyAt::kArg2},
      {"BLMPOP", KeyAt::kArg3},          {"BZMPOP", KeyAt::kArg3},
      {"PING", KeyAt::kKeyless},         {"ECHO", KeyAt::kKeyless},
      {"TIME", KeyAt::kKeyless},         {"INFO", KeyAt::kKeyless},
      {"CLUSTER", KeyAt::kKeyless},      {"SCRIPT", KeyAt::kKeyless},
      {"FUNCTION", KeyAt::kKeyless},     {"CONFIG", KeyAt::kKeyless},
      {"CLIENT", KeyAt::kKeyless},       {"COMMAND", KeyAt::kKeyless},
      {"DBSIZE", KeyAt::kKeyless},       {"FLUSHALL", KeyAt::kKeyless},
      {"FLUSHDB", KeyAt::kKeyless},      {"KEYS", KeyAt::kKeyless},
      {"SCAN", KeyAt::kKeyless},         {"RANDOMKEY", KeyAt::kKeyless},
      {"PUBLISH", KeyAt::kKeyless},      {"WAIT", KeyAt::kKeyless},
      {"LASTSAVE", KeyAt::kKeyless},     {"SLOWLOG", KeyAt::kKeyless},
      {"ACL", KeyAt::kKeyless},          {"HELLO", KeyAt::kKeyless},
      {"AUTH", KeyAt::kKeyless},         {"SELECT", KeyAt::kKeyless},
      {"READONLY", KeyAt::kKeyless},     {"READWRITE", KeyAt::kKeyless},
      {"MULTI", KeyAt::kKeyless},        {"EXEC", KeyAt::kKeyless},
      {"DISCARD", KeyAt::kKeyless},      {"UNWATCH", KeyAt::kKeyless},
      {"ASKING", KeyAt::kKeyless},
  };
  return *rules;
}

absl::optional<absl::string_view> Arg(const Args& args, size_t i) {
  if (i >= args.size()) return absl::nullopt;
  return absl::string_view(args[i]);
}

// A field of a RESP2 map (a flat [name, value, name, value, ...] array).
const Reply* Field(const Reply& map, absl::string_view name) {
  const std::vector<Reply>& e = map.elements();
  for (size_t i = 0; i + 1 < e.size(); i += 2) {
    if (e[i].str() == name) return &e[i + 1];
  }
  return nullptr;
}

std::string FieldString(const Reply& map, absl::string_view name) {
  const Reply* f = Field(map, name);
  return f == nullptr ? std::string() : f->str();
}

absl::StatusOr<int> FieldInt(const Reply& reply) {
  absl::StatusOr<int64_t> v = reply.AsInteger();
  if (!v.ok()) return v.status();
  return static_cast<int>(*v);
}

absl::Status BadMap(absl::string_view what, const Reply& reply) {
  return absl::InternalError(
      absl::StrCat("redis: unexpected ", what, " reply: ", reply.DebugString()));
}

bool UnknownHost(const std::string& host) { return host.empty() || host == "?"; }

}  // namespace

uint16_t KeySlot(absl::string_view key) {
  const size_t open = key.find('{');
  if (open != absl::string_view::npos) {
    const size_t close = key.find('}', open + 1);
    if (close != absl::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return Crc16(key) & (kClusterSlots - 1);
}

absl::optional<absl::string_view> RoutingKey(const Args& args) {
  if (args.size() < 2) return absl::nullopt;
  const auto& rules = Rules();
  auto rule = rules.find(absl::AsciiStrToUpper(args[0]));
  if (rule == rules.end()) return absl::string_view(args[1]);
  switch (rule->second) {
    case KeyAt::kKeyless:
      return absl::nullopt;
    case KeyAt::kArg2:
      return Arg(args, 2);
    case KeyAt::kArg3:
      return Arg(args, 3);
    case KeyAt::kAfterNumkeys: {
      int numkeys = 0;
      if (args.size() < 4 || !absl::SimpleAtoi(args[2], &numkeys) || numkeys <= 0) {
        return absl::nullopt;
      }
      return Arg(args, 3);
    }
    case KeyAt::kAfterStreams:
      for (size_t i = 1; i + 1 < args.size(); ++i) {
        if (absl::EqualsIgnoreCase(args[i], "STREAMS")) return absl::string_view(args[i + 1]);
      }
      return absl::nullopt;
  }
  return absl::nullopt;
}

std::string NodeAddress::ToString() const {
  if (absl::StrContains(host, ':')) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

SlotMap::SlotMap() : owner_(kClusterSlots, -1) {}

int SlotMap::IndexOf(const NodeAddress& node) {
  for (size_t i = 0; i < masters_.size(); ++i) {
    if (masters_[i] == node) return static_cast<int>(i);
  }
  masters_.push_back(node);
  return static_cast<int>(masters_.size()) - 1;
}

const NodeAddress* SlotMap::master_of(int slot) const {
  if (slot < 0 || slot >= kClusterSlots || owner_[slot] < 0) return nullptr;
  return &masters_[owner_[slot]];
}

int SlotMap::covered() const {
  int n = 0;
  for (int16_t o : owner_) n += o >= 0 ? 1 : 0;
  return n;
}

void SlotMap::Assign(int slot, const NodeAddress& node) {
  if (slot < 0 || slot >= kClusterSlots) return;
  owner_[slot] = static_cast<int16_t>(IndexOf(node));
}

absl::StatusOr<SlotMap> SlotMap::FromClusterShards(const Reply& reply,
                                                   const std::string& default_host) {
  if (reply.is_error()) return reply.ToStatus();
  if (reply.type() != Reply::Type::kArray) return BadMap("CLUSTER SHARDS", reply);
  SlotMap map;
  for (const Reply& shard : reply.elements()) {
    const Reply* slots = Field(shard, "slots");
    const Reply* nodes = Field(shard, "nodes");
    if (slots == nullptr || nodes == nullptr || slots->elements().size() % 2 != 0) {
      return BadMap("CLUSTER SHARDS", reply);
    }
    if (slots->elements().empty()) continue;
    const Reply* master = nullptr;
    for (const Reply& node : nodes->elements()) {
      if (FieldString(node, "role") != "master") continue;
      // During a failover the old master may still be listed: prefer the
      // one that is online.
      if (master == nullptr || FieldString(node, "health") == "online") master = &node;
    }
    if (master == nullptr) continue;
    NodeAddress address;
    address.host = FieldString(*master, "endpoint");
    if (UnknownHost(address.host)) address.host = FieldString(*master, "ip");
    if (UnknownHost(address.host)) address.host = default_host;
    const Reply* port = Field(*master, "port");
    if (port == nullptr) return BadMap("CLUSTER SHARDS", reply);
    absl::StatusOr<int> p = FieldInt(*port);
    if (!p.ok()) return p.status();
    address.port = *p;
    const int index = map.IndexOf(address);
    const std::vector<Reply>& ranges = slots->elements();
    for (size_t i = 0; i < ranges.size(); i += 2) {
      absl::StatusOr<int> first = FieldInt(ranges[i]);
      absl::StatusOr<int> last = FieldInt(ranges[i + 1]);
      if (!first.ok() || !last.ok() || *first < 0 || *last >= kClusterSlots || *first > *last) {
        return BadMap("CLUSTER SHARDS", reply);
      }
      for (int s = *first; s <= *last; ++s) map.owner_[s] = static_cast<int16_t>(index);
    }
  }
  return map;
}

absl::StatusOr<SlotMap> SlotMap::FromClusterSlots(const Reply& reply,
                                                  const std::string& default_host) {
  if (reply.is_error()) return reply.ToStatus();
  if (reply.type() != Reply::Type::kArray) return BadMap("CLUSTER SLOTS", reply);
  SlotMap map;
  for (const Reply& range : reply.elements()) {
    const std::vector<Reply>& e = range.elements();
    if (e.size() < 3 || e[2].elements().size() < 2) return BadMap("CLUSTER SLOTS", reply);
    absl::StatusOr<int> first = FieldInt(e[0]);
    absl::StatusOr<int> last = FieldInt(e[1]);
    absl::StatusOr<int> port = FieldInt(e[2].elements()[1]);
    if (!first.ok() || !last.ok() || !port.ok() || *first < 0 || *last >= kClusterSlots ||
        *first > *last) {
      return BadMap("CLUSTER SLOTS", reply);
    }
    NodeAddress address{e[2].elements()[0].str(), *port};
    if (UnknownHost(address.host)) address.host = default_host;
    const int index = map.IndexOf(address);
    for (int s = *first; s <= *last; ++s) map.owner_[s] = static_cast<int16_t>(index);
  }
  return map;
}

absl::optional<Redirect> ParseRedirect(absl::string_view error,
                                       const std::string& replying_host) {
  Redirect r;
  if (absl::ConsumePrefix(&error, "MOVED ")) {
    r.ask = false;
  } else if (absl::ConsumePrefix(&error, "ASK ")) {
    r.ask = true;
  } else {
    return absl::nullopt;
  }
  const size_t space = error.find(' ');
  if (space == absl::string_view::npos) return absl::nullopt;
  if (!absl::SimpleAtoi(error.substr(0, space), &r.slot) || r.slot < 0 ||
      r.slot >= kClusterSlots) {
    return absl::nullopt;
  }
  absl::string_view hostport = error.substr(space + 1);
  const size_t colon = hostport.rfind(':');
  if (colon == absl::string_view::npos ||
      !absl::SimpleAtoi(hostport.substr(colon + 1), &r.node.port)) {
    return absl::nullopt;
  }
  absl::string_view host = hostport.substr(0, colon);
  if (absl::ConsumePrefix(&host, "[")) absl::ConsumeSuffix(&host, "]");
  r.node.host = host.empty() ? replying_host : std::string(host);
  return r;
}

}  // namespace taskmesh::redis
