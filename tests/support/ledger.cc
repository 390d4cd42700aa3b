#include "tests/support/ledger.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace taskmesh::testing {

absl::Status AppendLedger(const std::string& path, const LedgerEntry& e) {
  const std::string line = absl::StrCat(e.event, " ", e.task, " ", e.attempt, " ", e.consumer,
                                        " ", e.pid, " ", e.wall_ms, "\n");
  const int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("open ", path, ": ", strerror(errno)));
  // One write() of a short line with O_APPEND: atomic with respect to the
  // other writers of the file.
  const ssize_t n = write(fd, line.data(), line.size());
  const int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(line.size())) {
    return absl::InternalError(absl::StrCat("write ", path, ": ", strerror(err)));
  }
  return absl::OkStatus();
}

const std::vector<LedgerEntry>& Ledger::Entries() {
  std::ifstream in(path_, std::ios::binary);
  if (!in) return entries_;
  in.seekg(offset_);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string fresh = ss.str();
  offset_ += static_cast<int64_t>(fresh.size());
  std::string text = partial_ + fresh;
  size_t begin = 0;
  while (true) {
    const size_t end = text.find('\n', begin);
    if (end == std::string::npos) break;
    std::vector<std::string> f = absl::StrSplit(text.substr(begin, end - begin), ' ');
    begin = end + 1;
    LedgerEntry e;
    if (f.size() != 6 || !absl::SimpleAtoi(f[2], &e.attempt) || !absl::SimpleAtoi(f[4], &e.pid) ||
        !absl::SimpleAtoi(f[5], &e.wall_ms)) {
      continue;
    }
    e.event = f[0];
    e.task = f[1];
    e.consumer = f[3];
    entries_.push_back(std::move(e));
  }
  partial_ = text.substr(begin);
  return entries_;
}

std::vector<Execution> Ledger::Executions() {
  std::vector<Execution> out;
  int seq = 0;
  for (const LedgerEntry& e : Entries()) {
    ++seq;
    if (e.event == "start") {
      Execution x;
      x.task = e.task;
      x.attempt = e.attempt;
      x.consumer = e.consumer;
      x.pid = e.pid;
      x.start_ms = e.wall_ms;
      x.seq = seq;
      out.push_back(std::move(x));
      continue;
    }
    // The latest open execution of the same attempt in the same process.
    for (auto it = out.rbegin(); it != out.rend(); ++it) {
      if (it->end.empty() && it->task == e.task && it->attempt == e.attempt && it->pid == e.pid) {
        it->end = e.event;
        it->end_ms = e.wall_ms;
        break;
      }
    }
  }
  return out;
}

std::map<std::string, std::vector<Execution>> Ledger::ByTask() {
  std::map<std::string, std::vector<Execution>> by_task;
  for (Execution& x : Executions()) by_task[x.task].push_back(std::move(x));
  return by_task;
}

std::string LedgerFigures::Line(absl::string_view test, absl::string_view note) const {
  std::string line = absl::StrCat(test, " ledger: acknowledged=", acknowledged,
                                  " completed=", completed, " lost=", lost,
                                  " executions=", executions, " duplicates=", duplicates);
  if (!note.empty()) absl::StrAppend(&line, " (", note, ")");
  return line;
}

}  // namespace taskmesh::testing
