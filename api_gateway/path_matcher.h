// PathMatcher: finds the route for an HTTP method and path among many path
// templates, the way Google's and Envoy's transcoders do: the most specific
// template wins (literal > `*` > `**`, segment by segment, then a verb over
// none), a path that matches only under other methods is "method not
// allowed", anything else is "not found".
//
// Build once with the Builder, then share: Lookup() is const and thread-safe.
//
// Example:
//   PathMatcher::Builder b;
//   b.Add("GET", "/v1/{name=queues/*/tasks/*}", 0).IgnoreError();
//   b.Add("POST", "/v1/{name=queues/*/tasks/*}:cancel", 1).IgnoreError();
//   PathMatcher m = std::move(b).Build();
//   PathMatcher::Result r = m.Lookup("POST", "/v1/queues/q/tasks/t:cancel");
//   // r.outcome == kMatched, r.value == 1, r.variable_values == {"queues/q/tasks/t"}
#ifndef TASKMESH_API_GATEWAY_PATH_MATCHER_H_
#define TASKMESH_API_GATEWAY_PATH_MATCHER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "api_gateway/path_template.h"

namespace taskmesh::gateway {

class PathMatcher {
 public:
  enum class Outcome { kMatched, kNotFound, kMethodNotAllowed, kBadPath };

  struct Result {
    Outcome outcome = Outcome::kNotFound;
    int value = -1;                           // kMatched: the value given to Add()
    std::vector<std::string> variable_values;  // kMatched: in the template's variable order
    std::vector<std::string> allowed_methods;  // kMethodNotAllowed: sorted, unique
    std::string error;                         // kBadPath: why
  };

  class Builder {
   public:
    // INVALID_ARGUMENT for a bad template, ALREADY_EXISTS when an equivalent
    // template (same segments and verb) is already bound to `method`.
    absl::Status Add(absl::string_view method, absl::string_view path_template, int value);
    PathMatcher Build() &&;

   private:
    friend class PathMatcher;
    struct Entry {
      std::string method;
      PathTemplate path_template;
      int value;
    };
    std::vector<Entry> entries_;
  };

  Result Lookup(absl::string_view method, absl::string_view path) const;

  // The template bound to `value` (for error messages and documents).
  const PathTemplate* TemplateFor(int value) const;

 private:
  std::vector<Builder::Entry> entries_;
};

}  // namespace taskmesh::gateway

#endif  // TASKMESH_API_GATEWAY_PATH_MATCHER_H_
