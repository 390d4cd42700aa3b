#include "api_gateway/route_table.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api_gateway/descriptors.h"
#include "google/api/annotations.pb.h"
#include "google/api/http.pb.h"

namespace taskmesh::gateway {
namespace {

namespace pb = ::google::protobuf;

bool IsScalarLikeMessage(const pb::Descriptor* message) {
  const std::string& n = message->full_name();
  return n == "google.protobuf.Timestamp" || n == "google.protobuf.Duration" ||
         n == "google.protobuf.FieldMask" || n == "google.protobuf.DoubleValue" ||
         n == "google.protobuf.FloatValue" || n == "google.protobuf.Int64Value" ||
         n == "google.protobuf.UInt64Value" || n == "google.protobuf.Int32Value" ||
         n == "google.protobuf.UInt32Value" || n == "google.protobuf.BoolValue" ||
         n == "google.protobuf.StringValue" || n == "google.protobuf.BytesValue";
}

// A path variable binds a singular scalar (or scalar-like well-known type)
// reached through singular message fields.
absl::StatusOr<FieldPath> ResolveVariable(const pb::Descriptor* request,
                                          const std::vector<std::string>& parts) {
  FieldPath path;
  const pb::Descriptor* message = request;
  for (size_t i = 0; i < parts.size(); ++i) {
    const pb::FieldDescriptor* field = message == nullptr ? nullptr : message->FindFieldByName(parts[i]);
    if (field == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("'", absl::StrJoin(parts, "."),
                                                     "' names no field of ", request->full_name()));
    }
    if (field->is_repeated()) {
      return absl::InvalidArgumentError(
          absl::StrCat("path variable '", absl::StrJoin(parts, "."), "' is a repeated field"));
    }
    path.push_back(field);
    const bool last = i + 1 == parts.size();
    if (field->type() == pb::FieldDescriptor::TYPE_MESSAGE) {
      if (last && !IsScalarLikeMessage(field->message_type())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "path variable '", absl::StrJoin(parts, "."), "' is a message field"));
      }
      message = field->message_type();
    } else {
      message = nullptr;
      if (!last) {
        return absl::InvalidArgumentError(
            absl::StrCat("'", absl::StrJoin(parts, "."), "' goes through a non-message field"));
      }
    }
  }
  return path;
}

const char* MethodOf(const google::api::HttpRule& rule, std::string* path) {
  switch (rule.pattern_case()) {
    case google::api::HttpRule::kGet: *path = rule.get(); return "GET";
    case google::api::HttpRule::kPut: *path = rule.put(); return "PUT";
    case google::api::HttpRule::kPost: *path = rule.post(); return "POST";
    case google::api::HttpRule::kDelete: *path = rule.delete_(); return "DELETE";
    case google::api::HttpRule::kPatch: *path = rule.patch(); return "PATCH";
    case google::api::HttpRule::kCustom: *path = rule.custom().path(); return nullptr;
    default: return nullptr;
  }
}

absl::Status AddRule(const pb::MethodDescriptor* method, const google::api::HttpRule& rule,
                     bool is_additional, std::vector<Route>* routes,
                     PathMatcher::Builder* matcher) {
  const std::string where = absl::StrCat(method->service()->full_name(), "/", method->name());
  if (is_additional && rule.additional_bindings_size() > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": additional_bindings must not nest additional_bindings"));
  }
  Route route;
  const char* verb = MethodOf(rule, &route.path_template);
  if (rule.pattern_case() == google::api::HttpRule::kCustom) {
    route.http_method = rule.custom().kind();
    if (route.http_method.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": custom rule without a kind"));
    }
  } else if (verb != nullptr) {
    route.http_method = verb;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(where, ": http rule without a pattern"));
  }
  absl::StatusOr<PathTemplate> parsed = PathTemplate::Parse(route.path_template);
  if (!parsed.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", parsed.status().message()));
  route.parsed_template = *parsed;
  route.method = method;
  route.service = method->service()->full_name();
  route.grpc_path = absl::StrCat("/", route.service, "/", method->name());
  route.request_type_url = ApiDescriptors::TypeUrl(method->input_type());
  route.response_type_url = ApiDescriptors::TypeUrl(method->output_type());
  route.server_streaming = method->server_streaming();
  route.label = absl::StrCat(route.http_method, " ", route.path_template);
  for (const TemplateVariable& v : parsed->variables()) {
    absl::StatusOr<FieldPath> field_path = ResolveVariable(method->input_type(), v.field_path);
    if (!field_path.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " ", route.label, ": ", field_path.status().message()));
    }
    route.variable_fields.push_back(*std::move(field_path));
  }
  route.body = rule.body();
  if (!route.body.empty() && route.body != "*") {
    route.body_field = method->input_type()->FindFieldByName(route.body);
    if (route.body_field == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": body '", route.body,
                                                     "' names no top-level field of ",
                                                     method->input_type()->full_name()));
    }
  }
  if (!rule.response_body().empty()) {
    route.response_body_field = method->output_type()->FindFieldByName(rule.response_body());
    if (route.response_body_field == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": response_body '",
                                                     rule.response_body(),
                                                     "' names no top-level field of ",
                                                     method->output_type()->full_name()));
    }
  }
  route.id = static_cast<int>(routes->size());
  if (absl::Status s = matcher->Add(route.http_method, route.path_template, route.id); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", s.message()));
  }
  routes->push_back(std::move(route));
  return absl::OkStatus();
}

}  // namespace

std::string FieldPathName(const FieldPath& path) {
  std::string name;
  for (const pb::FieldDescriptor* f : path) {
    if (!name.empty()) name.push_back('.');
    name += f->name();
  }
  return name;
}

const pb::FieldDescriptor* FindFieldByAnyName(const pb::Descriptor* message,
                                              absl::string_view name) {
  const pb::FieldDescriptor* field = message->FindFieldByName(std::string(name));
  if (field != nullptr) return field;
  for (int i = 0; i < message->field_count(); ++i) {
    if (message->field(i)->json_name() == name) return message->field(i);
  }
  return nullptr;
}

absl::StatusOr<std::shared_ptr<const RouteTable>> RouteTable::Build(
    const std::vector<const pb::ServiceDescriptor*>& services) {
  std::shared_ptr<RouteTable> table(new RouteTable());
  PathMatcher::Builder matcher;
  for (const pb::ServiceDescriptor* service : services) {
    for (int m = 0; m < service->method_count(); ++m) {
      const pb::MethodDescriptor* method = service->method(m);
      const std::string where = absl::StrCat(service->full_name(), "/", method->name());
      if (!method->options().HasExtension(google::api::http)) {
        table->skipped_.push_back(absl::StrCat(where, ": no google.api.http rule"));
        continue;
      }
      if (method->client_streaming()) {
        table->skipped_.push_back(absl::StrCat(where, ": client streaming is not transcoded"));
        continue;
      }
      const google::api::HttpRule& rule = method->options().GetExtension(google::api::http);
      if (absl::Status s = AddRule(method, rule, false, &table->routes_, &matcher); !s.ok()) return s;
      for (const google::api::HttpRule& extra : rule.additional_bindings()) {
        if (absl::Status s = AddRule(method, extra, true, &table->routes_, &matcher); !s.ok()) {
          return s;
        }
      }
    }
  }
  table->matcher_ = std::move(matcher).Build();
  return std::shared_ptr<const RouteTable>(std::move(table));
}

RouteTable::Match RouteTable::Lookup(absl::string_view http_method, absl::string_view path) const {
  PathMatcher::Result r = matcher_.Lookup(http_method, path);
  Match m;
  m.outcome = r.outcome;
  m.allowed_methods = std::move(r.allowed_methods);
  m.error = std::move(r.error);
  if (r.outcome == PathMatcher::Outcome::kMatched) {
    m.route = &routes_[r.value];
    m.variable_values = std::move(r.variable_values);
  }
  return m;
}

std::vector<std::string> RouteTable::service_names() const {
  std::vector<std::string> names;
  for (const Route& r : routes_) {
    if (names.empty() || names.back() != r.service) {
      bool seen = false;
      for (const std::string& n : names) seen = seen || n == r.service;
      if (!seen) names.push_back(r.service);
    }
  }
  return names;
}

}  // namespace taskmesh::gateway
