// Reply: an owned, immutable copy of one hiredis reply tree, with typed
// accessors that return absl::StatusOr.
//
// Error replies are values (type kError), not transport failures; the typed
// accessors and ToStatus() turn them into an absl::Status whose code follows
// the error's prefix (LOADING -> UNAVAILABLE, NOPERM -> PERMISSION_DENIED, ...).
//
// Example:
//   ASSIGN_OR_RETURN(Reply reply, connection.Command({"HGETALL", key}));
//   ASSIGN_OR_RETURN(auto fields, reply.AsMap());
#ifndef TASKMESH_REDIS_REPLY_H_
#define TASKMESH_REDIS_REPLY_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/optional.h"

struct redisReply;

namespace taskmesh::redis {

class Reply {
 public:
  enum class Type { kNil, kString, kStatus, kError, kInteger, kArray };

  // Deep-copies a hiredis reply; `reply` stays owned by the caller.
  static Reply FromHiredis(const redisReply* reply);

  static Reply Nil() { return Reply(Type::kNil); }
  static Reply String(std::string s) { return Reply(Type::kString, std::move(s)); }
  static Reply StatusReply(std::string s) { return Reply(Type::kStatus, std::move(s)); }
  static Reply Error(std::string s) { return Reply(Type::kError, std::move(s)); }
  static Reply Integer(int64_t i);
  static Reply Array(std::vector<Reply> elements);

  Type type() const { return type_; }
  bool is_nil() const { return type_ == Type::kNil; }
  bool is_error() const { return type_ == Type::kError; }

  // The text of a string, status or error reply; empty otherwise.
  const std::string& str() const { return str_; }
  // The value of an integer reply; 0 otherwise.
  int64_t integer() const { return integer_; }
  // The elements of an array reply; empty otherwise.
  const std::vector<Reply>& elements() const { return elements_; }

  // OK unless this is an error reply.
  absl::Status ToStatus() const;

  // A bulk or status string.
  absl::StatusOr<std::string> AsString() const;
  // A string, or nullopt for nil.
  absl::StatusOr<absl::optional<std::string>> AsOptionalString() const;
  // An integer reply, or a string holding a base-10 integer.
  absl::StatusOr<int64_t> AsInteger() const;
  // An array of [key, value, key, value, ...] strings (HGETALL, CONFIG GET).
  absl::StatusOr<absl::flat_hash_map<std::string, std::string>> AsMap() const;
  // An array of exactly `n` elements.
  absl::StatusOr<const std::vector<Reply>*> AsArray(size_t n) const;

  // For logs and test failures: e.g. `["a", 1, (nil)]`.
  std::string DebugString() const;

 private:
  explicit Reply(Type type, std::string str = {}) : type_(type), str_(std::move(str)) {}

  Type type_;
  std::string str_;
  int64_t integer_ = 0;
  std::vector<Reply> elements_;
};

// The status for an error reply's text: its first word picks the code.
absl::Status ErrorReplyToStatus(const std::string& message);

}  // namespace taskmesh::redis

#endif  // TASKMESH_REDIS_REPLY_H_
