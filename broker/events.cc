#include "broker/events.h"

#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace taskmesh::broker {
namespace {

absl::Status Bad(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("task event: ", why));
}

// Takes one netstring ("LEN:BYTES,") off the front of `in`.
absl::StatusOr<std::string> TakeNetstring(absl::string_view& in) {
  const size_t colon = in.find(':');
  size_t len = 0;
  if (colon == absl::string_view::npos || colon == 0 || colon > 10 ||
      !absl::SimpleAtoi(in.substr(0, colon), &len) || in.size() - colon - 1 < len + 1 ||
      in[colon + 1 + len] != ',') {
    return Bad("malformed record");
  }
  std::string out(in.substr(colon + 1, len));
  in.remove_prefix(colon + 2 + len);
  return out;
}

}  // namespace

absl::StatusOr<TaskEvent> ParseTaskEvent(absl::string_view message) {
  absl::string_view header = message;
  absl::string_view body;
  bool has_record = false;
  if (const size_t nl = message.find('\n'); nl != absl::string_view::npos) {
    header = message.substr(0, nl);
    body = message.substr(nl + 1);
    has_record = true;
  }
  std::vector<absl::string_view> parts = absl::StrSplit(header, ' ');
  TaskEvent event;
  if (parts.size() != 4 || parts[0].empty() || parts[2].empty() ||
      !absl::SimpleAtoi(parts[1], &event.version) || !absl::SimpleAtoi(parts[3], &event.attempt)) {
    return Bad("not 'ID VERSION STATE ATTEMPT'");
  }
  event.id = std::string(parts[0]);
  event.state = std::string(parts[2]);
  if (has_record) {
    auto record = std::make_shared<Record>();
    while (!body.empty()) {
      absl::StatusOr<std::string> field = TakeNetstring(body);
      if (!field.ok()) return field.status();
      absl::StatusOr<std::string> value = TakeNetstring(body);
      if (!value.ok()) return value.status();
      (*record)[*std::move(field)] = *std::move(value);
    }
    if (record->empty()) return Bad("empty record");
    event.record = std::move(record);
  }
  return event;
}

}  // namespace taskmesh::broker
