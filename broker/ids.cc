#include "broker/ids.h"

#include <cstdint>
#include <string>

#include "absl/random/random.h"

namespace taskmesh::broker {

std::string NewTaskId(absl::Time now) {
  static constexpr char kAlphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
  thread_local absl::BitGen gen;
  const uint64_t ms = static_cast<uint64_t>(absl::ToUnixMillis(now)) & ((uint64_t{1} << 48) - 1);
  const uint64_t r1 = absl::Uniform<uint64_t>(gen);                   // 64 random bits
  const uint64_t r2 = absl::Uniform<uint64_t>(gen) & ((1u << 16) - 1);  // 16 more
  std::string id(26, '0');
  // 10 characters of time (50 bits, top 2 zero).
  for (int i = 9; i >= 0; --i) id[9 - i] = kAlphabet[(ms >> (5 * i)) & 31];
  // 16 characters of randomness (80 bits).
  for (int i = 0; i < 16; ++i) {
    const int bit = 5 * i;
    uint64_t chunk;
    if (bit + 5 <= 64) {
      chunk = r1 >> bit;
    } else if (bit >= 64) {
      chunk = r2 >> (bit - 64);
    } else {
      chunk = (r1 >> bit) | (r2 << (64 - bit));
    }
    id[10 + i] = kAlphabet[chunk & 31];
  }
  return id;
}

}  // namespace taskmesh::broker
