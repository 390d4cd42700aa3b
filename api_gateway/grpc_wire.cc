#include "api_gateway/grpc_wire.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace taskmesh::gateway::grpc_wire {

std::string PercentDecode(absl::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() &&
        absl::ascii_isxdigit(static_cast<unsigned char>(in[i + 1])) &&
        absl::ascii_isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      auto hex = [](char c) { return absl::ascii_isdigit(c) ? c - '0' : absl::ascii_tolower(c) - 'a' + 10; };
      out.push_back(static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2])));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

std::string PercentEncode(absl::string_view in) {
  std::string out;
  for (unsigned char c : in) {
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppendFormat(&out, "%%%02X", c);
    }
  }
  return out;
}

std::string EncodeTimeout(absl::Duration timeout) {
  int64_t ns = absl::ToInt64Nanoseconds(timeout);
  if (ns <= 0) return "1n";
  struct Unit {
    int64_t ns;
    char c;
  };
  static constexpr Unit kUnits[] = {{1, 'n'},
                                    {1000, 'u'},
                                    {1000 * 1000, 'm'},
                                    {1000 * 1000 * 1000, 'S'},
                                    {60LL * 1000 * 1000 * 1000, 'M'},
                                    {3600LL * 1000 * 1000 * 1000, 'H'}};
  for (const Unit& u : kUnits) {
    const int64_t v = (ns + u.ns - 1) / u.ns;  // rounded up: never shorter
    if (v < 100000000) return absl::StrCat(v, absl::string_view(&u.c, 1));
  }
  return "99999999H";
}

std::string Frame(absl::string_view message) {
  std::string out;
  out.reserve(kPrefixBytes + message.size());
  const uint32_t n = static_cast<uint32_t>(message.size());
  out.push_back('\0');
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  out.append(message.data(), message.size());
  return out;
}

std::optional<Prefix> ReadPrefix(absl::string_view buffered) {
  if (buffered.size() < kPrefixBytes) return std::nullopt;
  const auto* p = reinterpret_cast<const uint8_t*>(buffered.data());
  return Prefix{p[0], (uint32_t{p[1]} << 24) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 8) | p[4]};
}

int CodeFromHttpStatus(int http_status) {
  switch (http_status) {
    case 400: return kInternal;
    case 401: return kUnauthenticated;
    case 403: return kPermissionDenied;
    case 404: return kUnimplemented;
    case 429:
    case 502:
    case 503:
    case 504: return kUnavailable;
    default: return kUnknown;
  }
}

bool IsProtocolHeader(absl::string_view key) {
  return key.empty() || key[0] == ':' || key == "content-type" || key == "grpc-status" ||
         key == "grpc-message" || key == "grpc-status-details-bin" || key == "grpc-encoding" ||
         key == "grpc-accept-encoding" || key == "te";
}

std::string DecodeBinaryHeader(absl::string_view value) {
  std::string out;
  if (!absl::Base64Unescape(value, &out)) absl::WebSafeBase64Unescape(value, &out);
  return out;
}

}  // namespace taskmesh::gateway::grpc_wire
