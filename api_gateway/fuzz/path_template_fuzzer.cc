// libFuzzer target: the path-template parser, the request-path splitter and
// matcher, percent-decoding and query parsing, with arbitrary bytes.
// Input: "<template>\n<method> <path>" (either part may be anything).
#include <cstddef>
#include <cstdint>
#include <string>

#include "api_gateway/path_matcher.h"
#include "api_gateway/path_template.h"
#include "api_gateway/url_codec.h"

using namespace taskmesh::gateway;  // NOLINT

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nl = input.find('\n');
  const std::string text = input.substr(0, nl);
  const std::string request = nl == std::string::npos ? "" : input.substr(nl + 1);
  const size_t space = request.find(' ');
  const std::string method = space == std::string::npos ? "GET" : request.substr(0, space);
  const std::string target = space == std::string::npos ? request : request.substr(space + 1);
  const size_t q = target.find('?');
  const std::string path = target.substr(0, q);

  absl::StatusOr<PathTemplate> t = PathTemplate::Parse(text);
  absl::StatusOr<RequestPath> p = RequestPath::Parse(path);
  if (t.ok() && p.ok() && t->Matches(*p)) {
    absl::StatusOr<std::vector<std::string>> values = t->ExtractVariables(*p);
    if (values.ok() && values->size() != t->variables().size()) __builtin_trap();
  }
  if (t.ok()) (void)t->CompareSpecificity(*t);

  // A matcher with the fuzzed template among fixed ones.
  PathMatcher::Builder builder;
  (void)builder.Add("GET", "/v1/{name=queues/*/tasks/*}", 0);
  (void)builder.Add("POST", "/v1/{name=queues/*/tasks/*}:cancel", 1);
  (void)builder.Add("GET", "/v1/{path=files/**}", 2);
  (void)builder.Add(method, text, 3);
  PathMatcher matcher = std::move(builder).Build();
  PathMatcher::Result r = matcher.Lookup(method, path);
  if (r.outcome == PathMatcher::Outcome::kMatched && r.value < 0) __builtin_trap();

  for (DecodeMode mode : {DecodeMode::kFull, DecodeMode::kSingleSegment, DecodeMode::kMultiSegment,
                          DecodeMode::kQuery}) {
    std::string out;
    if (PercentDecode(input, mode, &out) && out.size() > input.size()) __builtin_trap();
  }
  if (q != std::string::npos) (void)ParseQuery(target.substr(q + 1));
  return 0;
}
