#include "api_gateway/path_template.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api_gateway/url_codec.h"

namespace taskmesh::gateway {
namespace {

// Characters allowed in a template literal: RFC 3986 pchar without ':'
// (which starts the verb), plus '%' for escapes.
bool IsLiteralChar(char c) {
  if (absl::ascii_isalnum(static_cast<unsigned char>(c))) return true;
  switch (c) {
    case '-': case '.': case '_': case '~': case '%': case '!': case '$': case '&':
    case '\'': case '(': case ')': case '+': case ',': case ';': case '=': case '@':
      return true;
    default:
      return false;
  }
}

bool IsIdentStart(char c) { return absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsIdentChar(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Recursive-descent parser over the template text.
class Parser {
 public:
  explicit Parser(absl::string_view text) : text_(text) {}

  absl::Status Parse(std::vector<TemplateSegment>* segments,
                     std::vector<TemplateVariable>* variables, std::string* verb) {
    segments_ = segments;
    variables_ = variables;
    if (!Consume('/')) return Error("must start with '/'");
    if (absl::Status s = ParseSegments(/*in_variable=*/false); !s.ok()) return s;
    if (Consume(':')) {
      const size_t start = pos_;
      while (pos_ < text_.size() && IsLiteralChar(text_[pos_])) ++pos_;
      if (pos_ == start) return Error("empty verb after ':'");
      std::string decoded;
      if (!PercentDecode(text_.substr(start, pos_ - start), DecodeMode::kFull, &decoded)) {
        return Error("malformed percent-encoding in verb");
      }
      *verb = std::move(decoded);
    }
    if (pos_ != text_.size()) return Error(absl::StrCat("unexpected '", text_.substr(pos_, 1), "'"));
    // `**` only at the end.
    for (size_t i = 0; i + 1 < segments_->size(); ++i) {
      if ((*segments_)[i].kind == TemplateSegment::Kind::kMultiWildcard) {
        return absl::InvalidArgumentError(
            absl::StrCat("path template '", text_, "': '**' must be the last segment"));
      }
    }
    return absl::OkStatus();
  }

 private:
  absl::Status ParseSegments(bool in_variable) {
    while (true) {
      if (absl::Status s = ParseSegment(in_variable); !s.ok()) return s;
      if (!Consume('/')) return absl::OkStatus();
    }
  }

  absl::Status ParseSegment(bool in_variable) {
    if (Peek() == '{') {
      if (in_variable) return Error("a variable cannot hold another variable");
      return ParseVariable();
    }
    TemplateSegment segment;
    if (Consume('*')) {
      segment.kind = Consume('*') ? TemplateSegment::Kind::kMultiWildcard
                                  : TemplateSegment::Kind::kWildcard;
      segments_->push_back(std::move(segment));
      return absl::OkStatus();
    }
    const size_t start = pos_;
    while (pos_ < text_.size() && IsLiteralChar(text_[pos_])) ++pos_;
    if (pos_ == start) return Error("empty segment");
    if (!PercentDecode(text_.substr(start, pos_ - start), DecodeMode::kFull, &segment.literal)) {
      return Error("malformed percent-encoding in literal");
    }
    segments_->push_back(std::move(segment));
    return absl::OkStatus();
  }

  absl::Status ParseVariable() {
    Consume('{');
    TemplateVariable variable;
    while (true) {
      const size_t start = pos_;
      if (pos_ >= text_.size() || !IsIdentStart(text_[pos_])) {
        return Error("expected a field name");
      }
      while (pos_ < text_.size() && IsIdentChar(text_[pos_])) ++pos_;
      variable.field_path.emplace_back(text_.substr(start, pos_ - start));
      if (!Consume('.')) break;
    }
    const std::string name = absl::StrJoin(variable.field_path, ".");
    for (const TemplateVariable& other : *variables_) {
      if (absl::StrJoin(other.field_path, ".") == name) {
        return Error(absl::StrCat("variable '", name, "' appears twice"));
      }
    }
    variable.start_segment = static_cast<int>(segments_->size());
    if (Consume('=')) {
      if (absl::Status s = ParseSegments(/*in_variable=*/true); !s.ok()) return s;
    } else {
      segments_->push_back({TemplateSegment::Kind::kWildcard, ""});
    }
    if (!Consume('}')) return Error("expected '}'");
    variable.end_segment = static_cast<int>(segments_->size());
    const int count = variable.end_segment - variable.start_segment;
    variable.multi_segment =
        count > 1 || segments_->back().kind == TemplateSegment::Kind::kMultiWildcard;
    variables_->push_back(std::move(variable));
    return absl::OkStatus();
  }

  char Peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool Consume(char c) {
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("path template '", text_, "' at offset ", pos_, ": ", what));
  }

  absl::string_view text_;
  size_t pos_ = 0;
  std::vector<TemplateSegment>* segments_ = nullptr;
  std::vector<TemplateVariable>* variables_ = nullptr;
};

int Rank(TemplateSegment::Kind kind) {
  switch (kind) {
    case TemplateSegment::Kind::kLiteral:
      return 0;
    case TemplateSegment::Kind::kWildcard:
      return 1;
    case TemplateSegment::Kind::kMultiWildcard:
      return 2;
  }
  return 3;
}

}  // namespace

absl::StatusOr<RequestPath> RequestPath::Parse(absl::string_view path) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError("the request path must start with '/'");
  }
  RequestPath p;
  absl::string_view rest = path.substr(1);
  while (true) {
    const size_t slash = rest.find('/');
    p.raw_.emplace_back(rest.substr(0, slash));
    if (slash == absl::string_view::npos) break;
    rest = rest.substr(slash + 1);
  }
  p.decoded_.reserve(p.raw_.size());
  for (const std::string& raw : p.raw_) {
    std::string decoded;
    if (!PercentDecode(raw, DecodeMode::kFull, &decoded)) {
      return absl::InvalidArgumentError("malformed percent-encoding in the request path");
    }
    p.decoded_.push_back(std::move(decoded));
  }
  const std::string& last = p.raw_.back();
  const size_t colon = last.rfind(':');
  if (colon != std::string::npos) {
    p.has_verb_ = true;
    p.verb_ = last.substr(colon + 1);
    p.raw_last_without_verb_ = last.substr(0, colon);
    PercentDecode(p.raw_last_without_verb_, DecodeMode::kFull, &p.decoded_last_without_verb_);
  }
  return p;
}

absl::StatusOr<PathTemplate> PathTemplate::Parse(absl::string_view text) {
  PathTemplate t;
  t.text_ = std::string(text);
  Parser parser(text);
  if (absl::Status s = parser.Parse(&t.segments_, &t.variables_, &t.verb_); !s.ok()) return s;
  return t;
}

bool PathTemplate::Matches(const RequestPath& path) const {
  if (!verb_.empty() && (!path.has_verb() || path.verb() != verb_)) return false;
  const bool strip_verb = !verb_.empty();
  const size_t n = path.raw_segments().size();
  const size_t fixed = ends_with_multi_wildcard() ? segments_.size() - 1 : segments_.size();
  if (ends_with_multi_wildcard() ? n < fixed : n != fixed) return false;
  for (size_t i = 0; i < n; ++i) {
    const bool last = i + 1 == n;
    if (i >= fixed) {
      continue;  // inside `**`: any segment
    }
    const TemplateSegment& segment = segments_[i];
    const absl::string_view raw =
        last && strip_verb ? path.raw_last_without_verb() : path.raw_segments()[i];
    switch (segment.kind) {
      case TemplateSegment::Kind::kLiteral: {
        const std::string& decoded =
            last && strip_verb ? path.decoded_last_without_verb() : path.decoded_segments()[i];
        if (decoded != segment.literal) return false;
        break;
      }
      case TemplateSegment::Kind::kWildcard:
        if (raw.empty()) return false;
        break;
      case TemplateSegment::Kind::kMultiWildcard:
        break;
    }
  }
  return true;
}

absl::StatusOr<std::vector<std::string>> PathTemplate::ExtractVariables(
    const RequestPath& path) const {
  std::vector<std::string> values;
  values.reserve(variables_.size());
  const size_t n = path.raw_segments().size();
  const bool strip_verb = !verb_.empty();
  for (const TemplateVariable& v : variables_) {
    // A variable ending in `**` takes every remaining segment.
    const size_t end = v.end_segment == static_cast<int>(segments_.size()) &&
                               ends_with_multi_wildcard()
                           ? n
                           : static_cast<size_t>(v.end_segment);
    std::string value;
    for (size_t i = v.start_segment; i < end; ++i) {
      if (i > static_cast<size_t>(v.start_segment)) value.push_back('/');
      const absl::string_view raw =
          i + 1 == n && strip_verb ? path.raw_last_without_verb() : path.raw_segments()[i];
      if (!PercentDecode(raw, v.multi_segment ? DecodeMode::kMultiSegment
                                              : DecodeMode::kSingleSegment,
                         &value)) {
        return absl::InvalidArgumentError("malformed percent-encoding in the request path");
      }
    }
    values.push_back(std::move(value));
  }
  return values;
}

int PathTemplate::CompareSpecificity(const PathTemplate& other) const {
  const size_t n = std::min(segments_.size(), other.segments_.size());
  for (size_t i = 0; i < n; ++i) {
    const int a = Rank(segments_[i].kind);
    const int b = Rank(other.segments_[i].kind);
    if (a != b) return a < b ? -1 : 1;
  }
  if (segments_.size() != other.segments_.size()) {
    // One is a prefix of the other. When the longer one's extra segment is a
    // `**` that matched nothing, the shorter one is exact and wins.
    const bool longer_is_this = segments_.size() > other.segments_.size();
    const TemplateSegment& extra = longer_is_this ? segments_[n] : other.segments_[n];
    const bool longer_wins = extra.kind != TemplateSegment::Kind::kMultiWildcard;
    return longer_wins == longer_is_this ? -1 : 1;
  }
  if (verb_.empty() != other.verb_.empty()) return verb_.empty() ? 1 : -1;
  return 0;
}

}  // namespace taskmesh::gateway
