#include "api_gateway/response_translator.h"

#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "api_gateway/utf8.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/message.h"
#include "google/protobuf/wire_format_lite.h"
#include "google/protobuf/util/json_util.h"
#include "google/rpc/status.pb.h"

namespace taskmesh::gateway {
namespace {

namespace pb = ::google::protobuf;

// The JSON of a field that holds its default value.
std::string DefaultJson(const pb::FieldDescriptor* field) {
  if (field->is_map()) return "{}";
  if (field->is_repeated()) return "[]";
  switch (field->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_STRING: return "\"\"";
    case pb::FieldDescriptor::CPPTYPE_BOOL: return "false";
    case pb::FieldDescriptor::CPPTYPE_INT64:
    case pb::FieldDescriptor::CPPTYPE_UINT64: return "\"0\"";
    case pb::FieldDescriptor::CPPTYPE_ENUM:
      return absl::StrCat("\"", field->enum_type()->value(0)->name(), "\"");
    case pb::FieldDescriptor::CPPTYPE_MESSAGE: return "{}";
    default: return "0";
  }
}

}  // namespace

int HttpStatusFromGrpc(int code) {
  switch (code) {
    case 0: return 200;    // OK
    case 1: return 499;    // CANCELLED
    case 2: return 500;    // UNKNOWN
    case 3: return 400;    // INVALID_ARGUMENT
    case 4: return 504;    // DEADLINE_EXCEEDED
    case 5: return 404;    // NOT_FOUND
    case 6: return 409;    // ALREADY_EXISTS
    case 7: return 403;    // PERMISSION_DENIED
    case 8: return 429;    // RESOURCE_EXHAUSTED
    case 9: return 400;    // FAILED_PRECONDITION
    case 10: return 409;   // ABORTED
    case 11: return 400;   // OUT_OF_RANGE
    case 12: return 501;   // UNIMPLEMENTED
    case 13: return 500;   // INTERNAL
    case 14: return 503;   // UNAVAILABLE
    case 15: return 500;   // DATA_LOSS
    case 16: return 401;   // UNAUTHENTICATED
    default: return 500;
  }
}

const char* GrpcCodeName(int code) {
  static const char* const kNames[] = {
      "OK",        "CANCELLED",         "UNKNOWN",        "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS",    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",   "UNIMPLEMENTED",      "INTERNAL",
      "UNAVAILABLE", "DATA_LOSS",       "UNAUTHENTICATED"};
  return code >= 0 && code <= 16 ? kNames[code] : "UNKNOWN";
}

std::string JsonString(absl::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const size_t len = Utf8SequenceLength(s, i);
      if (len == 0) {
        out += "\xEF\xBF\xBD";  // U+FFFD
        ++i;
      } else {
        out.append(s.data() + i, len);
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  out.push_back('"');
  return out;
}

ResponseTranslator::ResponseTranslator(const ApiDescriptors* api, ResponseTranslatorOptions options)
    : api_(api) {
  print_options_.preserve_proto_field_names = options.use_proto_names;
  print_options_.always_print_primitive_fields = options.emit_defaults;
}

absl::Status ResponseTranslator::ToJson(const Route& route, const std::string& message,
                                        std::string* json) const {
  // protobuf's BinaryToJsonString renders truncated input without a word;
  // a linear skip over the wire format catches it first.
  {
    pb::io::CodedInputStream input(reinterpret_cast<const uint8_t*>(message.data()),
                                   static_cast<int>(message.size()));
    if (!pb::internal::WireFormatLite::SkipMessage(&input) || !input.ConsumedEntireMessage() ||
        input.CurrentPosition() != static_cast<int>(message.size())) {
      return absl::InternalError("the upstream response is not a valid protobuf message");
    }
  }
  pb::util::Status s;
  if (route.response_body_field == nullptr) {
    s = pb::util::BinaryToJsonString(api_->resolver(), route.response_type_url, message, json,
                                     print_options_);
  } else {
    // Only one field becomes the body.
    const pb::Message* prototype = api_->factory()->GetPrototype(route.method->output_type());
    std::unique_ptr<pb::Message> full(prototype->New());
    if (!full->ParseFromString(message)) {
      return absl::InternalError("the upstream response does not parse as its type");
    }
    const pb::FieldDescriptor* field = route.response_body_field;
    if (field->type() == pb::FieldDescriptor::TYPE_MESSAGE && !field->is_repeated()) {
      const pb::Message& sub = full->GetReflection()->GetMessage(*full, field);
      s = pb::util::BinaryToJsonString(api_->resolver(), ApiDescriptors::TypeUrl(field->message_type()),
                                       sub.SerializeAsString(), json, print_options_);
    } else {
      // A repeated or scalar field: render a message holding only it, then
      // strip the `{"name":` ... `}` around its value.
      std::unique_ptr<pb::Message> only(prototype->New());
      full->GetReflection()->SwapFields(full.get(), only.get(), {field});
      pb::util::JsonPrintOptions options = print_options_;
      options.always_print_primitive_fields = false;
      std::string wrapped;
      s = pb::util::BinaryToJsonString(api_->resolver(), route.response_type_url,
                                       only->SerializeAsString(), &wrapped, options);
      const size_t colon = wrapped.find("\":");
      if (s.ok() && colon != std::string::npos) {
        json->assign(wrapped, colon + 2, wrapped.size() - colon - 3);
      } else if (s.ok()) {
        *json = DefaultJson(field);
      }
    }
  }
  if (!s.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot render the upstream response as JSON: ", std::string(s.message())));
  }
  return absl::OkStatus();
}

std::string ResponseTranslator::StatusJson(int grpc_code, absl::string_view message,
                                           absl::string_view details_bin) const {
  std::string out = absl::StrCat("{\"code\":", grpc_code, ",\"message\":", JsonString(message),
                                 ",\"details\":[");
  google::rpc::Status details;
  if (!details_bin.empty() &&
      details.ParseFromArray(details_bin.data(), static_cast<int>(details_bin.size()))) {
    for (int i = 0; i < details.details_size(); ++i) {
      const pb::Any& any = details.details(i);
      if (i > 0) out.push_back(',');
      std::string json;
      pb::util::Status s = pb::util::BinaryToJsonString(
          api_->resolver(), std::string(kTypeUrlPrefix) + "/google.protobuf.Any",
          any.SerializeAsString(), &json, print_options_);
      if (s.ok()) {
        out += json;
      } else {
        absl::StrAppend(&out, "{\"@type\":", JsonString(any.type_url()),
                        ",\"value\":", JsonString(absl::Base64Escape(any.value())), "}");
      }
    }
  }
  out += "]}";
  return out;
}

void ResponseTranslator::AppendStreamMessage(StreamFormat format, absl::string_view json,
                                             std::string* out) {
  if (format == StreamFormat::kSse) {
    absl::StrAppend(out, "data: ", json, "\n\n");
  } else {
    absl::StrAppend(out, json, "\n");
  }
}

void ResponseTranslator::AppendStreamError(StreamFormat format, absl::string_view status_json,
                                           std::string* out) {
  if (format == StreamFormat::kSse) {
    absl::StrAppend(out, "event: error\ndata: ", status_json, "\n\n");
  } else {
    absl::StrAppend(out, "{\"error\":", status_json, "}\n");
  }
}

}  // namespace taskmesh::gateway
