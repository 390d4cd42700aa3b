#include "api_gateway/url_codec.h"

#include "absl/strings/str_cat.h"

namespace taskmesh::gateway {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsUnreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~';
}

// RFC 6570 reserved characters (gen-delims and sub-delims of RFC 3986).
bool IsReserved(unsigned char c) {
  switch (c) {
    case '!': case '#': case '$': case '&': case '\'': case '(': case ')':
    case '*': case '+': case ',': case '/': case ':': case ';': case '=':
    case '?': case '@': case '[': case ']':
      return true;
    default:
      return false;
  }
}

// Whether the escape for `c` is decoded in `mode`.
bool Decodes(DecodeMode mode, unsigned char c) {
  switch (mode) {
    case DecodeMode::kFull:
    case DecodeMode::kQuery:
      return true;
    case DecodeMode::kSingleSegment:
      return c != '/';
    case DecodeMode::kMultiSegment:
      return !IsReserved(c);
  }
  return true;
}

}  // namespace

bool PercentDecode(absl::string_view in, DecodeMode mode, std::string* out) {
  out->reserve(out->size() + in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '+' && mode == DecodeMode::kQuery) {
      out->push_back(' ');
      continue;
    }
    if (c != '%') {
      out->push_back(c);
      continue;
    }
    if (i + 2 >= in.size()) return false;  // needs two hex digits
    const int hi = HexValue(in[i + 1]);
    const int lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    const unsigned char decoded = static_cast<unsigned char>(hi * 16 + lo);
    if (Decodes(mode, decoded)) {
      out->push_back(static_cast<char>(decoded));
    } else {
      out->append(in.data() + i, 3);  // kept as the client wrote it
    }
    i += 2;
  }
  return true;
}

std::string PercentEncode(absl::string_view in, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size());
  for (unsigned char c : in) {
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseQuery(
    absl::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const absl::string_view part = query.substr(0, amp);
    query = amp == absl::string_view::npos ? absl::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    std::pair<std::string, std::string> param;
    const absl::string_view key = part.substr(0, eq);
    const absl::string_view value =
        eq == absl::string_view::npos ? absl::string_view() : part.substr(eq + 1);
    if (!PercentDecode(key, DecodeMode::kQuery, &param.first) ||
        !PercentDecode(value, DecodeMode::kQuery, &param.second)) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed percent-encoding in query parameter '", key, "'"));
    }
    params.push_back(std::move(param));
  }
  return params;
}

}  // namespace taskmesh::gateway
