#include "broker/ids.h"

#include <string>

#include "absl/container/flat_hash_set.h"
#include "gtest/gtest.h"

namespace taskmesh::broker {
namespace {

TEST(IdsTest, AreUlidShapedLowercaseBase32) {
  const std::string id = NewTaskId(absl::FromUnixMillis(1700000000000));
  ASSERT_EQ(id.size(), 26u);
  for (char c : id) {
    EXPECT_NE(std::string("0123456789abcdefghjkmnpqrstvwxyz").find(c), std::string::npos) << id;
  }
}

TEST(IdsTest, SortByCreationTime) {
  const std::string earlier = NewTaskId(absl::FromUnixMillis(1700000000000));
  const std::string later = NewTaskId(absl::FromUnixMillis(1700000000001));
  EXPECT_LT(earlier.substr(0, 10), later.substr(0, 10));
  EXPECT_LT(earlier, later);
}

TEST(IdsTest, AreUniqueWithinOneMillisecond) {
  absl::flat_hash_set<std::string> seen;
  const absl::Time now = absl::FromUnixMillis(1700000000000);
  for (int i = 0; i < 100000; ++i) ASSERT_TRUE(seen.insert(NewTaskId(now)).second);
}

}  // namespace
}  // namespace taskmesh::broker
