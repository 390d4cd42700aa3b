#include "api_gateway/json_scan.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "api_gateway/utf8.h"

namespace taskmesh::gateway {
namespace {

class Scanner {
 public:
  Scanner(absl::string_view text, int max_depth) : text_(text), max_depth_(max_depth) {}

  absl::Status Run() {
    enum class Expect { kValue, kValueOrEnd, kKey, kKeyOrEnd, kAfterValue };
    Expect expect = Expect::kValue;
    while (true) {
      SkipWhitespace();
      const char c = pos_ < text_.size() ? text_[pos_] : '\0';
      switch (expect) {
        case Expect::kValueOrEnd:
          if (c == ']') {
            ++pos_;
            stack_.pop_back();
            expect = Expect::kAfterValue;
            break;
          }
          [[fallthrough]];
        case Expect::kValue:
          if (AtEnd()) return Error("unexpected end of input, expected a value");
          if (c == '{' || c == '[') {
            if (static_cast<int>(stack_.size()) >= max_depth_) {
              return Error(absl::StrCat("JSON nested deeper than ", max_depth_, " levels"), "");
            }
            stack_.push_back(c);
            ++pos_;
            expect = c == '{' ? Expect::kKeyOrEnd : Expect::kValueOrEnd;
          } else if (c == '"') {
            if (absl::Status s = ScanString(); !s.ok()) return s;
            expect = Expect::kAfterValue;
          } else if (c == '-' || (c >= '0' && c <= '9')) {
            if (absl::Status s = ScanNumber(); !s.ok()) return s;
            expect = Expect::kAfterValue;
          } else if (c == 't') {
            if (absl::Status s = ScanLiteral("true"); !s.ok()) return s;
            expect = Expect::kAfterValue;
          } else if (c == 'f') {
            if (absl::Status s = ScanLiteral("false"); !s.ok()) return s;
            expect = Expect::kAfterValue;
          } else if (c == 'n') {
            if (absl::Status s = ScanLiteral("null"); !s.ok()) return s;
            expect = Expect::kAfterValue;
          } else {
            return Error("expected a value");
          }
          break;
        case Expect::kKeyOrEnd:
          if (c == '}') {
            ++pos_;
            stack_.pop_back();
            expect = Expect::kAfterValue;
            break;
          }
          [[fallthrough]];
        case Expect::kKey:
          if (c != '"') return Error(AtEnd() ? "unexpected end of input, expected a string key"
                                             : "expected a string key");
          if (absl::Status s = ScanString(); !s.ok()) return s;
          SkipWhitespace();
          if (pos_ >= text_.size() || text_[pos_] != ':') return Error("expected ':'");
          ++pos_;
          expect = Expect::kValue;
          break;
        case Expect::kAfterValue:
          if (stack_.empty()) {
            if (AtEnd()) return absl::OkStatus();
            return Error("unexpected data after the JSON value");
          }
          if (c == ',') {
            ++pos_;
            expect = stack_.back() == '{' ? Expect::kKey : Expect::kValue;
          } else if (stack_.back() == '{' && c == '}') {
            ++pos_;
            stack_.pop_back();
          } else if (stack_.back() == '[' && c == ']') {
            ++pos_;
            stack_.pop_back();
          } else if (AtEnd()) {
            return Error("unexpected end of input");
          } else {
            return Error(stack_.back() == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
          }
          break;
      }
    }
  }

 private:
  bool AtEnd() const { return pos_ >= text_.size(); }

  void SkipWhitespace() {
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
      ++pos_;
    }
  }

  absl::Status ScanLiteral(absl::string_view literal) {
    if (text_.substr(pos_, literal.size()) != literal) return Error("expected a value");
    pos_ += literal.size();
    return absl::OkStatus();
  }

  absl::Status ScanNumber() {
    if (text_[pos_] == '-') ++pos_;
    if (AtEnd() || !IsDigit(text_[pos_])) return Error("malformed number");
    if (text_[pos_] == '0') {
      ++pos_;
    } else {
      while (!AtEnd() && IsDigit(text_[pos_])) ++pos_;
    }
    if (!AtEnd() && text_[pos_] == '.') {
      ++pos_;
      if (AtEnd() || !IsDigit(text_[pos_])) return Error("malformed number");
      while (!AtEnd() && IsDigit(text_[pos_])) ++pos_;
    }
    if (!AtEnd() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      if (!AtEnd() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (AtEnd() || !IsDigit(text_[pos_])) return Error("malformed number");
      while (!AtEnd() && IsDigit(text_[pos_])) ++pos_;
    }
    return absl::OkStatus();
  }

  absl::Status ScanString() {
    ++pos_;  // opening quote
    while (true) {
      if (AtEnd()) return Error("unterminated string");
      const unsigned char c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return absl::OkStatus();
      }
      if (c < 0x20) return Error("control character in string");
      if (c == '\\') {
        ++pos_;
        if (AtEnd()) return Error("unterminated string");
        switch (text_[pos_]) {
          case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            ++pos_;
            break;
          case 'u':
            ++pos_;
            for (int i = 0; i < 4; ++i, ++pos_) {
              if (AtEnd() || !IsHex(text_[pos_])) return Error("malformed \\u escape");
            }
            break;
          default:
            return Error("unknown escape in string");
        }
        continue;
      }
      if (c < 0x80) {
        ++pos_;
        continue;
      }
      if (!ScanUtf8()) return Error("invalid UTF-8 in string");
    }
  }

  // One multi-byte UTF-8 sequence (RFC 3629: no overlongs, no surrogates).
  bool ScanUtf8() {
    const size_t len = Utf8SequenceLength(text_, pos_);
    if (len == 0) return false;
    pos_ += len;
    return true;
  }

  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }
  static bool IsHex(char c) {
    return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  }

  absl::Status Error(absl::string_view what, absl::string_view prefix = "malformed JSON ") const {
    int line = 1;
    size_t line_start = 0;
    const size_t end = std::min(pos_, text_.size());
    for (size_t i = 0; i < end; ++i) {
      if (text_[i] == '\n') {
        ++line;
        line_start = i + 1;
      }
    }
    if (prefix.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(what, " at line ", line, ", column ",
                                                     end - line_start + 1, " (byte ", end, ")"));
    }
    return absl::InvalidArgumentError(absl::StrCat(prefix, "at line ", line, ", column ",
                                                   end - line_start + 1, " (byte ", end,
                                                   "): ", what));
  }

  absl::string_view text_;
  const int max_depth_;
  size_t pos_ = 0;
  std::string stack_;  // '{' or '[' per open container
};

}  // namespace

absl::Status ScanJson(absl::string_view text, int max_depth) {
  return Scanner(text, max_depth).Run();
}

}  // namespace taskmesh::gateway
