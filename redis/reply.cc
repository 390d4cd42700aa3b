#include "redis/reply.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "hiredis/hiredis.h"

namespace taskmesh::redis {
namespace {

absl::Status WrongType(const Reply& reply, absl::string_view wanted) {
  return absl::InternalError(
      absl::StrCat("redis: expected ", wanted, " reply, got ", reply.DebugString()));
}

}  // namespace

Reply Reply::FromHiredis(const redisReply* reply) {
  if (reply == nullptr) return Nil();
  switch (reply->type) {
    case REDIS_REPLY_STRING:
      return String(std::string(reply->str, reply->len));
    case REDIS_REPLY_STATUS:
      return StatusReply(std::string(reply->str, reply->len));
    case REDIS_REPLY_ERROR:
      return Error(std::string(reply->str, reply->len));
    case REDIS_REPLY_INTEGER:
      return Integer(reply->integer);
    case REDIS_REPLY_ARRAY: {
      std::vector<Reply> elements;
      elements.reserve(reply->elements);
      for (size_t i = 0; i < reply->elements; ++i) {
        elements.push_back(FromHiredis(reply->element[i]));
      }
      return Array(std::move(elements));
    }
    case REDIS_REPLY_NIL:
    default:
      return Nil();
  }
}

Reply Reply::Integer(int64_t i) {
  Reply r(Type::kInteger);
  r.integer_ = i;
  return r;
}

Reply Reply::Array(std::vector<Reply> elements) {
  Reply r(Type::kArray);
  r.elements_ = std::move(elements);
  return r;
}

absl::Status Reply::ToStatus() const {
  if (type_ == Type::kError) return ErrorReplyToStatus(str_);
  return absl::OkStatus();
}

absl::StatusOr<std::string> Reply::AsString() const {
  if (type_ == Type::kString || type_ == Type::kStatus) return str_;
  if (type_ == Type::kError) return ToStatus();
  return WrongType(*this, "string");
}

absl::StatusOr<absl::optional<std::string>> Reply::AsOptionalString() const {
  if (type_ == Type::kNil) return absl::optional<std::string>();
  if (type_ == Type::kString || type_ == Type::kStatus) {
    return absl::optional<std::string>(str_);
  }
  if (type_ == Type::kError) return ToStatus();
  return WrongType(*this, "string or nil");
}

absl::StatusOr<int64_t> Reply::AsInteger() const {
  if (type_ == Type::kInteger) return integer_;
  if (type_ == Type::kString) {
    int64_t value;
    if (absl::SimpleAtoi(str_, &value)) return value;
  }
  if (type_ == Type::kError) return ToStatus();
  return WrongType(*this, "integer");
}

absl::StatusOr<absl::flat_hash_map<std::string, std::string>> Reply::AsMap() const {
  if (type_ == Type::kError) return ToStatus();
  if (type_ != Type::kArray || elements_.size() % 2 != 0) {
    return WrongType(*this, "array of field-value pairs");
  }
  absl::flat_hash_map<std::string, std::string> map;
  map.reserve(elements_.size() / 2);
  for (size_t i = 0; i < elements_.size(); i += 2) {
    const Reply& key = elements_[i];
    const Reply& value = elements_[i + 1];
    if (key.type_ != Type::kString || value.type_ != Type::kString) {
      return WrongType(*this, "array of field-value pairs");
    }
    map[key.str_] = value.str_;
  }
  return map;
}

absl::StatusOr<const std::vector<Reply>*> Reply::AsArray(size_t n) const {
  if (type_ == Type::kError) return ToStatus();
  if (type_ != Type::kArray || elements_.size() != n) {
    return WrongType(*this, absl::StrCat("array of ", n));
  }
  return &elements_;
}

std::string Reply::DebugString() const {
  switch (type_) {
    case Type::kNil:
      return "(nil)";
    case Type::kString:
      // Escaped: values are binary and must not put control bytes in logs.
      return absl::StrCat("\"", absl::CEscape(absl::string_view(str_).substr(0, 64)),
                          str_.size() > 64 ? "..." : "", "\"");
    case Type::kStatus:
      return str_;
    case Type::kError:
      return absl::StrCat("(error) ", str_);
    case Type::kInteger:
      return absl::StrCat(integer_);
    case Type::kArray:
      return absl::StrCat(
          "[",
          absl::StrJoin(elements_, ", ",
                        [](std::string* out, const Reply& r) {
                          out->append(r.DebugString());
                        }),
          "]");
  }
  return "?";
}

absl::Status ErrorReplyToStatus(const std::string& message) {
  const std::string prefix = message.substr(0, message.find(' '));
  const std::string text = absl::StrCat("redis: ", message);
  if (prefix == "LOADING" || prefix == "READONLY" || prefix == "MASTERDOWN" ||
      prefix == "TRYAGAIN" || prefix == "CLUSTERDOWN" || prefix == "BUSY") {
    return absl::UnavailableError(text);
  }
  if (prefix == "NOPERM") return absl::PermissionDeniedError(text);
  if (prefix == "NOAUTH" || prefix == "WRONGPASS") return absl::UnauthenticatedError(text);
  if (prefix == "OOM") return absl::ResourceExhaustedError(text);
  if (prefix == "NOSCRIPT") return absl::NotFoundError(text);
  if (prefix == "BUSYGROUP") return absl::AlreadyExistsError(text);
  return absl::InternalError(text);
}

}  // namespace taskmesh::redis
