// ResponseTranslator: gRPC response bytes to canonical proto3 JSON, gRPC
// status to HTTP status and a google.rpc.Status JSON body, and the framing
// of server streams (NDJSON lines or Server-Sent Events).
//
// JSON output is protobuf's own (BinaryToJsonString over the gateway's
// TypeResolver): lowerCamelCase names (or proto names), int64 as strings,
// well-known types in their JSON forms, one line with no whitespace.
//
// Thread-safe (const after construction).
//
// Example:
//   ResponseTranslator t(api.get(), {});
//   std::string json;
//   absl::Status s = t.ToJson(route, bytes, &json);
//   int http = HttpStatusFromGrpc(grpc::StatusCode::NOT_FOUND);  // 404
#ifndef TASKMESH_API_GATEWAY_RESPONSE_TRANSLATOR_H_
#define TASKMESH_API_GATEWAY_RESPONSE_TRANSLATOR_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "api_gateway/descriptors.h"
#include "api_gateway/route_table.h"
#include "google/protobuf/util/json_util.h"

namespace taskmesh::gateway {

struct ResponseTranslatorOptions {
  bool use_proto_names = false;  // `display_name` instead of `displayName`
  bool emit_defaults = false;    // print fields that hold their default value
};

// The gRPC -> HTTP status table of grpc-gateway and Envoy
// (shared/notes/reliability-facts.md). Unknown codes give 500.
int HttpStatusFromGrpc(int grpc_code);

// "OK", "NOT_FOUND", ...
const char* GrpcCodeName(int grpc_code);

// Escapes `s` as a JSON string (with the quotes); invalid UTF-8 becomes U+FFFD.
std::string JsonString(absl::string_view s);

enum class StreamFormat { kNdjson, kSse };

class ResponseTranslator {
 public:
  ResponseTranslator(const ApiDescriptors* api, ResponseTranslatorOptions options);

  // The JSON body for a response message of `route` (honours response_body).
  absl::Status ToJson(const Route& route, const std::string& message, std::string* json) const;

  // A google.rpc.Status as JSON: {"code":N,"message":"...","details":[...]}.
  // `details_bin` is a serialized google.rpc.Status (gRPC's
  // `grpc-status-details-bin`) whose details are rendered; a detail whose type
  // the gateway does not know is shown as {"@type": URL, "value": BASE64}.
  std::string StatusJson(int grpc_code, absl::string_view message,
                         absl::string_view details_bin = {}) const;

  // Stream framing: one message, and the final error of a failed stream.
  static void AppendStreamMessage(StreamFormat format, absl::string_view json, std::string* out);
  static void AppendStreamError(StreamFormat format, absl::string_view status_json,
                                std::string* out);

 private:
  const ApiDescriptors* api_;
  google::protobuf::util::JsonPrintOptions print_options_;
};

}  // namespace taskmesh::gateway

#endif  // TASKMESH_API_GATEWAY_RESPONSE_TRANSLATOR_H_
