// Path templates of google.api.http rules: parsing, and matching one template
// against a request path.
//
// Grammar (google/api/http.proto):
//   Template = "/" Segments [ Verb ] ;
//   Segments = Segment { "/" Segment } ;
//   Segment  = "*" | "**" | LITERAL | Variable ;
//   Variable = "{" FieldPath [ "=" Segments ] "}" ;
//   FieldPath = IDENT { "." IDENT } ;
//   Verb     = ":" LITERAL ;
// `**` matches zero or more segments and must be the last segment; a variable
// holds no other variable; `{var}` means `{var=*}`.
//
// Percent-decoding of variable values follows url_codec.h: a single-segment
// variable keeps `%2F` escaped, a multi-segment one keeps reserved characters
// escaped.
//
// PathTemplate is immutable after Parse() and thread-safe. RequestPath is a
// request's path split once and matched against many templates.
//
// Example:
//   PathTemplate t = PathTemplate::Parse("/v1/{name=queues/*/tasks/*}:cancel").value();
//   RequestPath p = RequestPath::Parse("/v1/queues/q/tasks/t1:cancel").value();
//   if (t.Matches(p)) {
//     std::vector<std::string> values = t.ExtractVariables(p).value();  // {"queues/q/tasks/t1"}
//   }
#ifndef TASKMESH_API_GATEWAY_PATH_TEMPLATE_H_
#define TASKMESH_API_GATEWAY_PATH_TEMPLATE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace taskmesh::gateway {

struct TemplateSegment {
  enum class Kind {
    kLiteral,        // matches its (decoded) text
    kWildcard,       // `*`: exactly one non-empty segment
    kMultiWildcard,  // `**`: zero or more segments, always last
  };
  Kind kind = Kind::kLiteral;
  std::string literal;  // kLiteral only, percent-decoded
};

struct TemplateVariable {
  std::vector<std::string> field_path;  // "a.b" -> {"a", "b"}
  int start_segment = 0;                // index of its first segment
  int end_segment = 0;                  // one past its last segment
  // More than one segment, or `**`: reserved-expansion decoding.
  bool multi_segment = false;
};

// A request path: raw segments (escapes intact) and their fully decoded forms,
// split once per request. The last segment's `:verb`, if any, is kept apart
// so templates with and without a verb can both be tried.
class RequestPath {
 public:
  // `path` is the part of the request target before '?'. INVALID_ARGUMENT when
  // it does not start with '/' or holds a malformed escape.
  static absl::StatusOr<RequestPath> Parse(absl::string_view path);

  const std::vector<std::string>& raw_segments() const { return raw_; }
  const std::vector<std::string>& decoded_segments() const { return decoded_; }
  // The last segment without its ":verb" (raw and decoded), and the verb.
  // has_verb() is false when the last segment holds no ':'.
  bool has_verb() const { return has_verb_; }
  absl::string_view verb() const { return verb_; }
  absl::string_view raw_last_without_verb() const { return raw_last_without_verb_; }
  const std::string& decoded_last_without_verb() const { return decoded_last_without_verb_; }

 private:
  std::vector<std::string> raw_;
  std::vector<std::string> decoded_;
  bool has_verb_ = false;
  std::string verb_;
  std::string raw_last_without_verb_;
  std::string decoded_last_without_verb_;
};

class PathTemplate {
 public:
  // INVALID_ARGUMENT with the reason and the offending position.
  static absl::StatusOr<PathTemplate> Parse(absl::string_view text);

  const std::string& text() const { return text_; }
  const std::vector<TemplateSegment>& segments() const { return segments_; }
  const std::vector<TemplateVariable>& variables() const { return variables_; }
  const std::string& verb() const { return verb_; }  // empty: none
  bool ends_with_multi_wildcard() const {
    return !segments_.empty() &&
           segments_.back().kind == TemplateSegment::Kind::kMultiWildcard;
  }

  // Whether `path` matches this template (segments and verb).
  bool Matches(const RequestPath& path) const;

  // The value of each variable (in variables() order), decoded. Call only
  // after Matches() returned true.
  absl::StatusOr<std::vector<std::string>> ExtractVariables(const RequestPath& path) const;

  // Orders templates that match the same path: negative when this one is the
  // more specific (a literal beats `*`, `*` beats `**`, segment by segment
  // from the left; then a verb beats no verb).
  int CompareSpecificity(const PathTemplate& other) const;

 private:
  std::string text_;
  std::vector<TemplateSegment> segments_;
  std::vector<TemplateVariable> variables_;
  std::string verb_;
};

}  // namespace taskmesh::gateway

#endif  // TASKMESH_API_GATEWAY_PATH_TEMPLATE_H_
