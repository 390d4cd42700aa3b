#include "api_gateway/request_translator.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "api_gateway/json_scan.h"
#include "api_gateway/plain_json.h"
#include "api_gateway/url_codec.h"
#include "api_gateway/utf8.h"
#include "google/protobuf/util/json_util.h"

namespace taskmesh::gateway {
namespace {

namespace pb = ::google::protobuf;
using FD = pb::FieldDescriptor;

// ---- wire format ---------------------------------------------------------

enum WireType { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void PutTag(int number, WireType type, std::string* out) {
  PutVarint((static_cast<uint64_t>(number) << 3) | type, out);
}

void PutFixed32(uint32_t v, std::string* out) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, 4);
}

void PutFixed64(uint64_t v, std::string* out) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, 8);
}

void PutLengthDelimited(int number, absl::string_view bytes, std::string* out) {
  PutTag(number, kLengthDelimited, out);
  PutVarint(bytes.size(), out);
  out->append(bytes.data(), bytes.size());
}

// ---- text values ----------------------------------------------------------

absl::Status BadValue(const FD* field, absl::string_view value, absl::string_view expected) {
  return absl::InvalidArgumentError(absl::StrCat("invalid value '", value, "' for field '",
                                                 field->name(), "': expected ", expected));
}

bool ParseBool(absl::string_view v, bool* out) {
  if (v == "true" || v == "1") {
    *out = true;
    return true;
  }
  if (v == "false" || v == "0") {
    *out = false;
    return true;
  }
  return false;
}

bool ParseDouble(absl::string_view v, double* out) {
  if (v == "NaN") {
    *out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (v == "Infinity") {
    *out = std::numeric_limits<double>::infinity();
    return true;
  }
  if (v == "-Infinity") {
    *out = -std::numeric_limits<double>::infinity();
    return true;
  }
  // SimpleAtod also takes "inf", "nan" and hex; proto JSON does not.
  for (char c : v) {
    if (!(absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+' || c == '.' ||
          c == 'e' || c == 'E')) {
      return false;
    }
  }
  return !v.empty() && absl::SimpleAtod(v, out);
}

std::string JsonQuote(absl::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      absl::StrAppend(&out, "\\u00", absl::Hex(c, absl::kZeroPad2));
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
  return out;
}

bool IsWrapper(const pb::Descriptor* m) {
  const std::string& n = m->full_name();
  return n == "google.protobuf.DoubleValue" || n == "google.protobuf.FloatValue" ||
         n == "google.protobuf.Int64Value" || n == "google.protobuf.UInt64Value" ||
         n == "google.protobuf.Int32Value" || n == "google.protobuf.UInt32Value" ||
         n == "google.protobuf.BoolValue" || n == "google.protobuf.StringValue" ||
         n == "google.protobuf.BytesValue";
}

bool IsJsonStringWkt(const pb::Descriptor* m) {
  const std::string& n = m->full_name();
  return n == "google.protobuf.Timestamp" || n == "google.protobuf.Duration" ||
         n == "google.protobuf.FieldMask";
}

absl::Status FromProtobuf(const pb::util::Status& s, absl::string_view context) {
  return absl::InvalidArgumentError(absl::StrCat(context, std::string(s.message())));
}

}  // namespace

RequestTranslator::RequestTranslator(const ApiDescriptors* api, RequestTranslatorOptions options)
    : api_(api), options_(options) {}

absl::Status RequestTranslator::AppendLeaf(const FD* field, absl::string_view value,
                                           std::string* out) const {
  const int n = field->number();
  switch (field->type()) {
    case FD::TYPE_INT32:
    case FD::TYPE_SINT32:
    case FD::TYPE_SFIXED32: {
      int32_t v;
      if (!absl::SimpleAtoi(value, &v)) return BadValue(field, value, "a 32-bit integer");
      if (field->type() == FD::TYPE_SFIXED32) {
        PutTag(n, kFixed32, out);
        PutFixed32(static_cast<uint32_t>(v), out);
      } else {
        PutTag(n, kVarint, out);
        PutVarint(field->type() == FD::TYPE_SINT32
                      ? static_cast<uint32_t>((static_cast<uint32_t>(v) << 1) ^ (v >> 31))
                      : static_cast<uint64_t>(static_cast<int64_t>(v)),
                  out);
      }
      return absl::OkStatus();
    }
    case FD::TYPE_INT64:
    case FD::TYPE_SINT64:
    case FD::TYPE_SFIXED64: {
      int64_t v;
      if (!absl::SimpleAtoi(value, &v)) return BadValue(field, value, "a 64-bit integer");
      if (field->type() == FD::TYPE_SFIXED64) {
        PutTag(n, kFixed64, out);
        PutFixed64(static_cast<uint64_t>(v), out);
      } else {
        PutTag(n, kVarint, out);
        PutVarint(field->type() == FD::TYPE_SINT64
                      ? (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63)
                      : static_cast<uint64_t>(v),
                  out);
      }
      return absl::OkStatus();
    }
    case FD::TYPE_UINT32:
    case FD::TYPE_FIXED32: {
      uint32_t v;
      if (value.empty() || value[0] == '-' || !absl::SimpleAtoi(value, &v)) {
        return BadValue(field, value, "an unsigned 32-bit integer");
      }
      if (field->type() == FD::TYPE_FIXED32) {
        PutTag(n, kFixed32, out);
        PutFixed32(v, out);
      } else {
        PutTag(n, kVarint, out);
        PutVarint(v, out);
      }
      return absl::OkStatus();
    }
    case FD::TYPE_UINT64:
    case FD::TYPE_FIXED64: {
      uint64_t v;
      if (value.empty() || value[0] == '-' || !absl::SimpleAtoi(value, &v)) {
        return BadValue(field, value, "an unsigned 64-bit integer");
      }
      if (field->type() == FD::TYPE_FIXED64) {
        PutTag(n, kFixed64, out);
        PutFixed64(v, out);
      } else {
        PutTag(n, kVarint, out);
        PutVarint(v, out);
      }
      return absl::OkStatus();
    }
    case FD::TYPE_DOUBLE: {
      double v;
      if (!ParseDouble(value, &v)) return BadValue(field, value, "a number");
      uint64_t bits;
      std::memcpy(&bits, &v, sizeof bits);
      PutTag(n, kFixed64, out);
      PutFixed64(bits, out);
      return absl::OkStatus();
    }
    case FD::TYPE_FLOAT: {
      double v;
      if (!ParseDouble(value, &v)) return BadValue(field, value, "a number");
      if (std::isfinite(v) && std::fabs(v) > std::numeric_limits<float>::max()) {
        return BadValue(field, value, "a number in float range");
      }
      const float f = static_cast<float>(v);
      uint32_t bits;
      std::memcpy(&bits, &f, sizeof bits);
      PutTag(n, kFixed32, out);
      PutFixed32(bits, out);
      return absl::OkStatus();
    }
    case FD::TYPE_BOOL: {
      bool v;
      if (!ParseBool(value, &v)) return BadValue(field, value, "true or false");
      PutTag(n, kVarint, out);
      PutVarint(v ? 1 : 0, out);
      return absl::OkStatus();
    }
    case FD::TYPE_ENUM: {
      int32_t number;
      if (const pb::EnumValueDescriptor* ev = field->enum_type()->FindValueByName(std::string(value))) {
        number = ev->number();
      } else if (!absl::SimpleAtoi(value, &number)) {
        return BadValue(field, value,
                        absl::StrCat("a value of ", field->enum_type()->full_name(),
                                     " (a name or a number)"));
      }
      PutTag(n, kVarint, out);
      PutVarint(static_cast<uint64_t>(static_cast<int64_t>(number)), out);
      return absl::OkStatus();
    }
    case FD::TYPE_STRING:
      if (!IsValidUtf8(value)) return BadValue(field, "(bytes)", "valid UTF-8");
      PutLengthDelimited(n, value, out);
      return absl::OkStatus();
    case FD::TYPE_BYTES: {
      std::string decoded;
      if (!absl::Base64Unescape(value, &decoded) && !absl::WebSafeBase64Unescape(value, &decoded)) {
        return BadValue(field, value, "base64");
      }
      PutLengthDelimited(n, decoded, out);
      return absl::OkStatus();
    }
    case FD::TYPE_MESSAGE: {
      const pb::Descriptor* m = field->message_type();
      std::string inner;
      if (IsWrapper(m)) {
        if (absl::Status s = AppendLeaf(m->FindFieldByNumber(1), value, &inner); !s.ok()) {
          return BadValue(field, value, absl::StrCat("a ", m->name(), " value"));
        }
      } else if (IsJsonStringWkt(m)) {
        pb::util::Status s = pb::util::JsonToBinaryString(
            api_->resolver(), ApiDescriptors::TypeUrl(m), JsonQuote(value), &inner);
        if (!s.ok()) return BadValue(field, value, absl::StrCat("a ", m->name(), " in JSON form"));
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            "field '", field->name(), "' (", m->full_name(), ") cannot be set from the URL"));
      }
      PutLengthDelimited(n, inner, out);
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("field '", field->name(), "' cannot be set from the URL"));
  }
}

absl::Status RequestTranslator::AppendField(const FieldPath& path, absl::string_view value,
                                            std::string* out) const {
  std::string encoded;
  if (absl::Status s = AppendLeaf(path.back(), value, &encoded); !s.ok()) return s;
  // Wrap in the messages the path goes through, innermost first.
  for (size_t i = path.size() - 1; i-- > 0;) {
    std::string wrapped;
    PutLengthDelimited(path[i]->number(), encoded, &wrapped);
    encoded.swap(wrapped);
  }
  out->append(encoded);
  return absl::OkStatus();
}


absl::Status RequestTranslator::AppendBody(const Route& route, absl::string_view body,
                                           std::string* out) const {
  if (route.body.empty()) return absl::OkStatus();  // no body binding: ignored
  const size_t first = body.find_first_not_of(" \t\r\n");
  if (first == absl::string_view::npos) return absl::OkStatus();  // empty: nothing set
  if (absl::Status s = ScanJson(body, options_.max_json_depth); !s.ok()) return s;
  pb::util::JsonParseOptions parse_options;
  parse_options.ignore_unknown_fields = options_.ignore_unknown_json_fields;
  pb::util::Status s;
  if (route.body_field == nullptr) {  // body: "*"
    const size_t before = out->size();
    if (EncodePlainJson(body, route.method->input_type(), out)) return absl::OkStatus();
    out->resize(before);
    s = pb::util::JsonToBinaryString(api_->resolver(), route.request_type_url,
                                     pb::StringPiece(body.data(), body.size()), out,
                                     parse_options);
  } else {
    // {"<field>": BODY}: the scan proved BODY is exactly one JSON value, so
    // it cannot smuggle other fields in.
    std::string wrapped;
    wrapped.reserve(body.size() + route.body_field->name().size() + 5);
    absl::StrAppend(&wrapped, "{\"", route.body_field->name(), "\":", body, "}");
    s = pb::util::JsonToBinaryString(api_->resolver(), route.request_type_url, wrapped, out,
                                     parse_options);
  }
  if (!s.ok()) return FromProtobuf(s, "invalid JSON body: ");
  return absl::OkStatus();
}

absl::Status RequestTranslator::AppendQuery(const Route& route, absl::string_view query,
                                            std::string* out) const {
  if (query.empty()) return absl::OkStatus();
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> params = ParseQuery(query);
  if (!params.ok()) return params.status();
  absl::flat_hash_set<std::string> seen;  // singular fields already set
  for (const auto& param : *params) {
    const std::string& key = param.first;
    const std::string& value = param.second;
    auto unknown = [&](absl::string_view why) -> absl::Status {
      if (options_.ignore_unknown_query_parameters) return absl::OkStatus();
      return absl::InvalidArgumentError(absl::StrCat("unknown query parameter '", key, "': ", why));
    };
    if (route.body == "*") {
      if (absl::Status s = unknown("the body binds every field"); !s.ok()) return s;
      continue;
    }
    FieldPath path;
    const pb::Descriptor* message = route.method->input_type();
    bool resolved = true;
    for (absl::string_view part : absl::StrSplit(key, '.')) {
      const FD* field = message == nullptr ? nullptr : FindFieldByAnyName(message, part);
      if (field == nullptr || (!path.empty() && path.back()->is_repeated())) {
        resolved = false;
        break;
      }
      path.push_back(field);
      message = field->type() == FD::TYPE_MESSAGE && !field->is_map() ? field->message_type()
                                                                       : nullptr;
    }
    if (!resolved) {
      if (absl::Status s = unknown(absl::StrCat("no such field in ",
                                                route.method->input_type()->full_name()));
          !s.ok()) {
        return s;
      }
      continue;
    }
    // Fields bound by the path or the body are not query parameters.
    bool bound = route.body_field != nullptr && path.front() == route.body_field;
    for (const FieldPath& var : route.variable_fields) {
      const size_t n = std::min(var.size(), path.size());
      bound = bound || std::equal(var.begin(), var.begin() + n, path.begin());
    }
    if (bound) {
      if (absl::Status s = unknown("the field is bound by the path or the body"); !s.ok()) return s;
      continue;
    }
    const FD* leaf = path.back();
    if (leaf->is_map()) {
      return absl::InvalidArgumentError(
          absl::StrCat("query parameter '", key, "': map fields cannot be set from the URL"));
    }
    if (leaf->is_repeated() && leaf->type() == FD::TYPE_MESSAGE &&
        !IsWrapper(leaf->message_type()) && !IsJsonStringWkt(leaf->message_type())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "query parameter '", key, "': repeated message fields cannot be set from the URL"));
    }
    if (!leaf->is_repeated()) {
      const std::string name = FieldPathName(path);
      if (!seen.insert(name).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("query parameter '", key, "' is given more than once"));
      }
    }
    if (absl::Status s = AppendField(path, value, out); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> RequestTranslator::Translate(
    const Route& route, const std::vector<std::string>& variable_values, absl::string_view query,
    absl::string_view body) const {
  std::string out;
  // The body first: what the path and query set is appended after it and so
  // wins when both name one field.
  if (absl::Status s = AppendBody(route, body, &out); !s.ok()) return s;
  if (absl::Status s = AppendQuery(route, query, &out); !s.ok()) return s;
  for (size_t i = 0; i < route.variable_fields.size() && i < variable_values.size(); ++i) {
    if (absl::Status s = AppendField(route.variable_fields[i], variable_values[i], &out); !s.ok()) {
      return s;
    }
  }
  return out;
}

}  // namespace taskmesh::gateway
