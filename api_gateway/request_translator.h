// RequestTranslator: turns an HTTP request (path variables, query string,
// JSON body) into the serialized gRPC request message of its route.
//
// How: the JSON body goes through a linear pre-scan (json_scan.h: syntax,
// UTF-8, nesting depth) and then protobuf's own JsonToBinaryString for the
// request type (`body: "*"`) or for `{"<field>": BODY}` (`body: "field"`).
// A plain `body: "*"` body (strings without escapes, integers, bools, enums,
// nested such objects) is encoded by the translator itself, which costs a
// fraction of protobuf's parser; anything else, or anything it doubts,
// goes to protobuf (so errors and their messages are protobuf's).
// Path variables and query parameters are encoded straight to wire format
// for their fields and appended: protobuf merges concatenated messages, so
// path and query values win over the body, repeated values accumulate, and
// no intermediate message object is built.
//
// Query parameters: `a.b.c=v` for nested fields (proto or JSON names),
// repeated fields by repeating the key, enums by name or number, bools as
// true/false/1/0, bytes as base64, Timestamp/Duration/FieldMask in their JSON
// forms, wrappers as their value. A parameter naming no field, or a field
// that the path or body already binds, is INVALID_ARGUMENT unless
// `ignore_unknown_query_parameters`.
//
// Thread-safe (const after construction).
//
// Example:
//   RequestTranslator t(api.get(), {});
//   absl::StatusOr<std::string> bytes = t.Translate(*m.route, m.variable_values,
//                                                   "page_size=10", "");
#ifndef TASKMESH_API_GATEWAY_REQUEST_TRANSLATOR_H_
#define TASKMESH_API_GATEWAY_REQUEST_TRANSLATOR_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "api_gateway/descriptors.h"
#include "api_gateway/route_table.h"

namespace taskmesh::gateway {

struct RequestTranslatorOptions {
  // Deepest JSON body nesting accepted (objects and arrays). Protobuf stops
  // at 100 on its own, after super-linear work.
  int max_json_depth = 64;
  // Skip query parameters that name no (unbound) field instead of failing.
  bool ignore_unknown_query_parameters = false;
  // Skip JSON body fields that the message does not have instead of failing.
  bool ignore_unknown_json_fields = false;
};

class RequestTranslator {
 public:
  RequestTranslator(const ApiDescriptors* api, RequestTranslatorOptions options);

  // INVALID_ARGUMENT with a message fit for the client on any bad input.
  absl::StatusOr<std::string> Translate(const Route& route,
                                        const std::vector<std::string>& variable_values,
                                        absl::string_view query, absl::string_view body) const;

  // Appends the wire encoding of `value` (text, as in a URL) for the leaf of
  // `path`, nested in the messages the path goes through. Exposed for tests.
  absl::Status AppendField(const FieldPath& path, absl::string_view value, std::string* out) const;

 private:
  absl::Status AppendBody(const Route& route, absl::string_view body, std::string* out) const;
  absl::Status AppendQuery(const Route& route, absl::string_view query, std::string* out) const;
  absl::Status AppendLeaf(const google::protobuf::FieldDescriptor* field, absl::string_view value,
                          std::string* out) const;

  const ApiDescriptors* api_;
  RequestTranslatorOptions options_;
};

}  // namespace taskmesh::gateway

#endif  // TASKMESH_API_GATEWAY_REQUEST_TRANSLATOR_H_
