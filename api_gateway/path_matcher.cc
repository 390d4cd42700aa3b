#include "api_gateway/path_matcher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace taskmesh::gateway {
namespace {

bool SameShape(const PathTemplate& a, const PathTemplate& b) {
  if (a.verb() != b.verb() || a.segments().size() != b.segments().size()) return false;
  for (size_t i = 0; i < a.segments().size(); ++i) {
    const TemplateSegment& x = a.segments()[i];
    const TemplateSegment& y = b.segments()[i];
    if (x.kind != y.kind || x.literal != y.literal) return false;
  }
  return true;
}

}  // namespace

absl::Status PathMatcher::Builder::Add(absl::string_view method, absl::string_view path_template,
                                       int value) {
  absl::StatusOr<PathTemplate> parsed = PathTemplate::Parse(path_template);
  if (!parsed.ok()) return parsed.status();
  for (const Entry& e : entries_) {
    if (e.method == method && SameShape(e.path_template, *parsed)) {
      return absl::AlreadyExistsError(absl::StrCat(method, " ", path_template,
                                                   " conflicts with ", e.method, " ",
                                                   e.path_template.text()));
    }
  }
  entries_.push_back({std::string(method), *std::move(parsed), value});
  return absl::OkStatus();
}

PathMatcher PathMatcher::Builder::Build() && {
  PathMatcher m;
  m.entries_ = std::move(entries_);
  return m;
}

PathMatcher::Result PathMatcher::Lookup(absl::string_view method, absl::string_view path) const {
  Result result;
  absl::StatusOr<RequestPath> request_path = RequestPath::Parse(path);
  if (!request_path.ok()) {
    result.outcome = Outcome::kBadPath;
    result.error = std::string(request_path.status().message());
    return result;
  }
  const Builder::Entry* best = nullptr;
  for (const Builder::Entry& e : entries_) {
    if (!e.path_template.Matches(*request_path)) continue;
    if (e.method != method) {
      result.allowed_methods.push_back(e.method);
      continue;
    }
    if (best == nullptr || e.path_template.CompareSpecificity(best->path_template) < 0) best = &e;
  }
  if (best == nullptr) {
    if (result.allowed_methods.empty()) return result;
    std::sort(result.allowed_methods.begin(), result.allowed_methods.end());
    result.allowed_methods.erase(
        std::unique(result.allowed_methods.begin(), result.allowed_methods.end()),
        result.allowed_methods.end());
    result.outcome = Outcome::kMethodNotAllowed;
    return result;
  }
  absl::StatusOr<std::vector<std::string>> values = best->path_template.ExtractVariables(*request_path);
  if (!values.ok()) {
    result.outcome = Outcome::kBadPath;
    result.error = std::string(values.status().message());
    return result;
  }
  result.allowed_methods.clear();
  result.outcome = Outcome::kMatched;
  result.value = best->value;
  result.variable_values = *std::move(values);
  return result;
}

const PathTemplate* PathMatcher::TemplateFor(int value) const {
  for (const Builder::Entry& e : entries_) {
    if (e.value == value) return &e.path_template;
  }
  return nullptr;
}

}  // namespace taskmesh::gateway
