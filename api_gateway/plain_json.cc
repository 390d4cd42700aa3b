#include "api_gateway/plain_json.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"

namespace taskmesh::gateway {
namespace {

namespace pb = ::google::protobuf;

class FastJsonEncoder {
 public:
  explicit FastJsonEncoder(absl::string_view json) : p_(json.data()), end_(json.data() + json.size()) {}

  bool Encode(const pb::Descriptor* type, std::string* out) {
    if (!Object(type, 0, out)) return false;
    Ws();
    return p_ == end_;
  }

 private:
  static constexpr int kMaxDepth = 16;

  void Ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool Eat(char c) {
    Ws();
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  // A string without escapes; its contents.
  bool String(absl::string_view* s) {
    Ws();
    if (p_ >= end_ || *p_ != '"') return false;
    const char* start = ++p_;
    while (p_ < end_ && *p_ != '"') {
      if (*p_ == '\\') return false;
      ++p_;
    }
    if (p_ >= end_) return false;
    *s = absl::string_view(start, static_cast<size_t>(p_ - start));
    ++p_;
    return true;
  }
  // A plain integer, as a number or a string: [-]digits.
  bool Integer(absl::string_view* digits) {
    Ws();
    if (p_ < end_ && *p_ == '"') {
      if (!String(digits)) return false;
    } else {
      const char* start = p_;
      if (p_ < end_ && *p_ == '-') ++p_;
      while (p_ < end_ && absl::ascii_isdigit(static_cast<unsigned char>(*p_))) ++p_;
      *digits = absl::string_view(start, static_cast<size_t>(p_ - start));
      if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) return false;
    }
    if (digits->empty() || digits->size() > 20) return false;
    for (size_t i = (*digits)[0] == '-' ? 1 : 0; i < digits->size(); ++i) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>((*digits)[i]))) return false;
    }
    return (*digits)[0] != '-' || digits->size() > 1;
  }

  static void Varint(uint64_t v, std::string* out) {
    while (v >= 0x80) {
      out->push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out->push_back(static_cast<char>(v));
  }
  static void Tag(const pb::FieldDescriptor* f, int wire_type, std::string* out) {
    Varint((static_cast<uint64_t>(f->number()) << 3) | wire_type, out);
  }
  static void Fixed(uint64_t v, int bytes, std::string* out) {
    for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
  }

  const pb::FieldDescriptor* Field(const pb::Descriptor* type, absl::string_view name) {
    for (int i = 0; i < type->field_count(); ++i) {
      const pb::FieldDescriptor* f = type->field(i);
      if (f->json_name() == name || f->name() == name) return f;
    }
    return nullptr;
  }

  bool Object(const pb::Descriptor* type, int depth, std::string* out) {
    if (depth > kMaxDepth || absl::StartsWith(type->full_name(), "google.protobuf.")) return false;
    if (!Eat('{')) return false;
    if (Eat('}')) return true;
    uint64_t seen = 0;  // by field index, for the first 64 fields
    do {
      absl::string_view name;
      if (!String(&name) || !Eat(':')) return false;
      const pb::FieldDescriptor* f = Field(type, name);
      if (f == nullptr || f->is_repeated() || f->containing_oneof() != nullptr ||
          f->index() >= 64 || (seen & (uint64_t{1} << f->index())) != 0) {
        return false;
      }
      seen |= uint64_t{1} << f->index();
      if (!Value(f, depth, out)) return false;
    } while (Eat(','));
    return Eat('}');
  }

  bool Value(const pb::FieldDescriptor* f, int depth, std::string* out) {
    using FD = pb::FieldDescriptor;
    switch (f->type()) {
      case FD::TYPE_MESSAGE: {
        std::string inner;
        if (!Object(f->message_type(), depth + 1, &inner)) return false;
        Tag(f, 2, out);
        Varint(inner.size(), out);
        out->append(inner);
        return true;
      }
      case FD::TYPE_STRING: {
        absl::string_view s;
        if (!String(&s)) return false;
        Tag(f, 2, out);
        Varint(s.size(), out);
        out->append(s.data(), s.size());
        return true;
      }
      case FD::TYPE_BOOL: {
        Ws();
        if (end_ - p_ >= 4 && absl::string_view(p_, 4) == "true") {
          p_ += 4;
          Tag(f, 0, out);
          Varint(1, out);
          return true;
        }
        if (end_ - p_ >= 5 && absl::string_view(p_, 5) == "false") {
          p_ += 5;
          Tag(f, 0, out);
          Varint(0, out);
          return true;
        }
        return false;
      }
      case FD::TYPE_ENUM: {
        Ws();
        if (p_ < end_ && *p_ == '"') {
          absl::string_view name;
          if (!String(&name)) return false;
          const pb::EnumValueDescriptor* v = f->enum_type()->FindValueByName(std::string(name));
          if (v == nullptr) return false;
          Tag(f, 0, out);
          Varint(static_cast<uint64_t>(static_cast<int64_t>(v->number())), out);
          return true;
        }
        absl::string_view digits;
        int32_t n;
        if (!Integer(&digits) || !absl::SimpleAtoi(digits, &n)) return false;
        Tag(f, 0, out);
        Varint(static_cast<uint64_t>(static_cast<int64_t>(n)), out);
        return true;
      }
      case FD::TYPE_INT32:
      case FD::TYPE_SINT32:
      case FD::TYPE_SFIXED32: {
        absl::string_view digits;
        int32_t n;
        if (!Integer(&digits) || !absl::SimpleAtoi(digits, &n)) return false;
        if (f->type() == FD::TYPE_SFIXED32) {
          Tag(f, 5, out);
          Fixed(static_cast<uint32_t>(n), 4, out);
        } else {
          Tag(f, 0, out);
          Varint(f->type() == FD::TYPE_SINT32
                     ? static_cast<uint64_t>((static_cast<uint32_t>(n) << 1) ^ static_cast<uint32_t>(n >> 31))
                     : static_cast<uint64_t>(static_cast<int64_t>(n)),
                 out);
        }
        return true;
      }
      case FD::TYPE_INT64:
      case FD::TYPE_SINT64:
      case FD::TYPE_SFIXED64: {
        absl::string_view digits;
        int64_t n;
        if (!Integer(&digits) || !absl::SimpleAtoi(digits, &n)) return false;
        if (f->type() == FD::TYPE_SFIXED64) {
          Tag(f, 1, out);
          Fixed(static_cast<uint64_t>(n), 8, out);
        } else {
          Tag(f, 0, out);
          Varint(f->type() == FD::TYPE_SINT64
                     ? (static_cast<uint64_t>(n) << 1) ^ static_cast<uint64_t>(n >> 63)
                     : static_cast<uint64_t>(n),
                 out);
        }
        return true;
      }
      case FD::TYPE_UINT32:
      case FD::TYPE_FIXED32: {
        absl::string_view digits;
        uint32_t n;
        if (!Integer(&digits) || digits[0] == '-' || !absl::SimpleAtoi(digits, &n)) return false;
        if (f->type() == FD::TYPE_FIXED32) {
          Tag(f, 5, out);
          Fixed(n, 4, out);
        } else {
          Tag(f, 0, out);
          Varint(n, out);
        }
        return true;
      }
      case FD::TYPE_UINT64:
      case FD::TYPE_FIXED64: {
        absl::string_view digits;
        uint64_t n;
        if (!Integer(&digits) || digits[0] == '-' || !absl::SimpleAtoi(digits, &n)) return false;
        if (f->type() == FD::TYPE_FIXED64) {
          Tag(f, 1, out);
          Fixed(n, 8, out);
        } else {
          Tag(f, 0, out);
          Varint(n, out);
        }
        return true;
      }
      default:  // bytes, float, double, group
        return false;
    }
  }

  const char* p_;
  const char* const end_;
};


}  // namespace

bool EncodePlainJson(absl::string_view json, const google::protobuf::Descriptor* type,
                     std::string* out) {
  return FastJsonEncoder(json).Encode(type, out);
}

}  // namespace taskmesh::gateway
