// RouteTable: the HTTP routes of gRPC methods, built once at start-up from
// proto descriptors and their `google.api.http` rules (every binding,
// additional_bindings included), then shared read-only by all requests.
//
// Each route knows its HTTP method and path template, the gRPC method, the
// request fields its path variables and body bind (resolved to field
// descriptors and checked at build time), and its response_body field.
// Methods without an http rule, and client- or bidi-streaming methods, get no
// route (listed in skipped()).
//
// Thread-safe after Build().
//
// Example:
//   auto table = RouteTable::Build(api->services()).value();
//   RouteTable::Match m = table->Lookup("GET", "/v1/queues/q/tasks/t");
//   if (m.route != nullptr) ... m.route->grpc_path, m.variable_values ...
#ifndef TASKMESH_API_GATEWAY_ROUTE_TABLE_H_
#define TASKMESH_API_GATEWAY_ROUTE_TABLE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "api_gateway/path_matcher.h"
#include "google/protobuf/descriptor.h"

namespace taskmesh::gateway {

// A chain of fields from a message to a (nested) leaf: "inner.deep.value".
using FieldPath = std::vector<const google::protobuf::FieldDescriptor*>;

std::string FieldPathName(const FieldPath& path);  // "inner.deep.value"

struct Route {
  int id = 0;                 // index in RouteTable::routes()
  std::string http_method;    // "GET", "POST", ... or a custom kind
  std::string path_template;  // as written in the rule
  PathTemplate parsed_template;
  const google::protobuf::MethodDescriptor* method = nullptr;
  std::string service;    // "taskmesh.v1.TaskService"
  std::string grpc_path;  // "/taskmesh.v1.TaskService/GetTask"
  std::string request_type_url;
  std::string response_type_url;
  std::vector<FieldPath> variable_fields;  // one per template variable
  // "" (no body), "*" (the whole request) or a top-level request field.
  std::string body;
  const google::protobuf::FieldDescriptor* body_field = nullptr;
  // A top-level response field that alone becomes the HTTP body, or null.
  const google::protobuf::FieldDescriptor* response_body_field = nullptr;
  bool server_streaming = false;
  std::string label;  // "GET /v1/{name=queues/*/tasks/*}", for metrics
};

class RouteTable {
 public:
  struct Match {
    PathMatcher::Outcome outcome = PathMatcher::Outcome::kNotFound;
    const Route* route = nullptr;               // kMatched
    std::vector<std::string> variable_values;   // kMatched, per route->variable_fields
    std::vector<std::string> allowed_methods;   // kMethodNotAllowed
    std::string error;                          // kBadPath
  };

  // INVALID_ARGUMENT naming the method and rule when a rule is malformed: a
  // bad template, a variable or body naming no field (or a repeated or
  // message field), two rules for one method and path.
  static absl::StatusOr<std::shared_ptr<const RouteTable>> Build(
      const std::vector<const google::protobuf::ServiceDescriptor*>& services);

  Match Lookup(absl::string_view http_method, absl::string_view path) const;

  const std::vector<Route>& routes() const { return routes_; }
  // "pkg.Service/Method: why" for each method that got no route.
  const std::vector<std::string>& skipped() const { return skipped_; }
  // Services with at least one route.
  std::vector<std::string> service_names() const;

 private:
  RouteTable() = default;

  std::vector<Route> routes_;
  std::vector<std::string> skipped_;
  PathMatcher matcher_;
};

// Resolves "a.b.c" in `message`, accepting proto names and JSON names for
// each part. Null when a part names no field or crosses a non-message or
// repeated field.
const google::protobuf::FieldDescriptor* FindFieldByAnyName(
    const google::protobuf::Descriptor* message, absl::string_view name);

}  // namespace taskmesh::gateway

#endif  // TASKMESH_API_GATEWAY_ROUTE_TABLE_H_
