#include "broker/partitions.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/ascii.h"
#include "broker/keys.h"

namespace taskmesh::broker {

std::string PartitionName(absl::string_view queue, int partition) {
  if (partition == 0) return std::string(queue);
  return absl::StrCat(queue, "~", partition);
}

absl::string_view QueueOfPartition(absl::string_view name) {
  const size_t tilde = name.find('~');
  return tilde == absl::string_view::npos ? name : name.substr(0, tilde);
}

bool IsPartitionName(absl::string_view name) {
  return name.find('~') != absl::string_view::npos;
}

int PartitionFor(absl::string_view id, int count) {
  if (count <= 1) return 0;
  uint64_t h = 14695981039346656037ull;  // FNV-1a, 64 bits.
  for (unsigned char c : id) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<int>(h % static_cast<uint64_t>(count));
}

int PartitionMap::highest() const {
  int most = count;
  for (int k : history) most = std::max(most, k);
  return most;
}

std::vector<int> PartitionMap::Candidates(absl::string_view id) const {
  std::vector<int> out;
  auto add = [&](int p) {
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  };
  add(PartitionFor(id, count));
  for (auto it = history.rbegin(); it != history.rend(); ++it) add(PartitionFor(id, *it));
  add(0);
  return out;
}

std::vector<std::string> PartitionMap::Names(absl::string_view queue) const {
  std::vector<std::string> names;
  const int n = highest();
  names.reserve(n);
  for (int p = 0; p < n; ++p) names.push_back(PartitionName(queue, p));
  return names;
}

std::string PartitionMap::HistoryText() const { return absl::StrJoin(history, ","); }

absl::StatusOr<PartitionLimits> ParsePartitionLimits(absl::string_view text) {
  PartitionLimits limits;
  for (absl::string_view entry : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    entry = absl::StripAsciiWhitespace(entry);
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(entry, '=');
    int k = 0;
    if (kv.first.empty() || !absl::SimpleAtoi(kv.second, &k) || k < 1 || k > kMaxPartitions) {
      return absl::InvalidArgumentError(absl::StrCat(
          "partition limits: want QUEUE=K with K from 1 to ", kMaxPartitions, "; got '", entry,
          "'"));
    }
    limits[std::string(kv.first)] = k;
  }
  return limits;
}

std::vector<std::string> ReadPartitionsArgs(absl::string_view queue) {
  return {"HMGET", MetaKey(queue), "partitions", "phist"};
}

absl::StatusOr<PartitionMap> ParsePartitionMap(const redis::Reply& reply) {
  if (reply.is_error()) return reply.ToStatus();
  absl::StatusOr<const std::vector<redis::Reply>*> fields = reply.AsArray(2);
  if (!fields.ok()) return fields.status();
  PartitionMap map;
  const redis::Reply& count = (**fields)[0];
  const redis::Reply& history = (**fields)[1];
  if (count.is_nil()) return map;  // Never partitioned.
  auto valid = [](int k) { return k >= 1 && k <= kMaxPartitions; };
  if (!absl::SimpleAtoi(count.str(), &map.count) || !valid(map.count)) {
    return absl::InternalError(absl::StrCat("queue meta: bad partitions '", count.str(), "'"));
  }
  map.history.clear();
  for (absl::string_view part : absl::StrSplit(history.str(), ',', absl::SkipEmpty())) {
    int k = 0;
    if (!absl::SimpleAtoi(part, &k) || !valid(k)) {
      return absl::InternalError(absl::StrCat("queue meta: bad phist '", history.str(), "'"));
    }
    if (std::find(map.history.begin(), map.history.end(), k) == map.history.end()) {
      map.history.push_back(k);
    }
  }
  if (std::find(map.history.begin(), map.history.end(), map.count) == map.history.end()) {
    map.history.push_back(map.count);
  }
  return map;
}

}  // namespace taskmesh::broker
