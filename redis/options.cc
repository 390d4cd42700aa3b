#include "redis/options.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace taskmesh::redis {
namespace {

absl::Status BadUrl(absl::string_view url, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("bad Redis URL (want redis://[:PASSWORD@]HOST[:PORT][/DB]): ", why));
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

absl::StatusOr<std::string> PercentDecode(absl::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) {
      return absl::InvalidArgumentError("truncated percent-escape");
    }
    const int hi = HexValue(in[i + 1]);
    const int lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return absl::InvalidArgumentError("bad percent-escape");
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

// Plain decimal digits only (SimpleAtoi would also take "+1" and " 1"), in
// [min, max].
bool ParseNumber(absl::string_view text, int min, int max, int* out) {
  if (text.empty() || text.size() > 9) return false;
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  if (value < min || value > max) return false;
  *out = value;
  return true;
}

}  // namespace

absl::StatusOr<ConnectionOptions> ParseRedisUrl(absl::string_view url) {
  ConnectionOptions options;
  absl::string_view rest = url;
  if (absl::StartsWith(rest, "rediss://")) {
    return BadUrl(url, "rediss:// (TLS) is not supported; use a TLS tunnel");
  }
  if (!absl::ConsumePrefix(&rest, "redis://")) return BadUrl(url, "must start with redis://");

  if (size_t at = rest.rfind('@'); at != absl::string_view::npos) {
    absl::string_view userinfo = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    absl::string_view user = userinfo, password;
    if (size_t colon = userinfo.find(':'); colon != absl::string_view::npos) {
      user = userinfo.substr(0, colon);
      password = userinfo.substr(colon + 1);
    } else {
      // "redis://secret@host": a lone userinfo is the password, as redis-cli reads it.
      password = userinfo;
      user = {};
    }
    auto u = PercentDecode(user);
    auto p = PercentDecode(password);
    if (!u.ok() || !p.ok()) return BadUrl(url, "bad percent-escape in user or password");
    options.username = *u;
    options.password = *p;
  }

  absl::string_view hostport = rest;
  if (size_t slash = rest.find('/'); slash != absl::string_view::npos) {
    hostport = rest.substr(0, slash);
    absl::string_view db = rest.substr(slash + 1);
    if (!db.empty() && !ParseNumber(db, 0, 15, &options.db)) {
      return BadUrl(url, "database must be a number from 0 to 15");
    }
  }
  absl::string_view port;
  bool has_port = false;
  if (absl::ConsumePrefix(&hostport, "[")) {
    // An IPv6 literal is written in brackets: redis://[::1]:6379.
    const size_t close = hostport.find(']');
    if (close == absl::string_view::npos) return BadUrl(url, "unclosed [ in host");
    absl::string_view after = hostport.substr(close + 1);
    hostport = hostport.substr(0, close);
    if (!after.empty()) {
      if (!absl::ConsumePrefix(&after, ":")) return BadUrl(url, "junk after ]");
      port = after;
      has_port = true;
    }
  } else if (size_t colon = hostport.find(':'); colon != absl::string_view::npos) {
    port = hostport.substr(colon + 1);
    hostport = hostport.substr(0, colon);
    has_port = true;
    if (absl::StrContains(port, ':')) {
      return BadUrl(url, "an IPv6 host must be in brackets: redis://[::1]:6379");
    }
  }
  if (has_port && !ParseNumber(port, 1, 65535, &options.port)) {
    return BadUrl(url, "port must be a number from 1 to 65535");
  }
  if (hostport.empty()) return BadUrl(url, "missing host");
  if (absl::StrContains(hostport, '[') || absl::StrContains(hostport, ']')) {
    return BadUrl(url, "stray bracket in host");
  }
  options.host = std::string(hostport);
  return options;
}

absl::StatusOr<std::vector<ConnectionOptions>> ParseRedisSeeds(absl::string_view seeds) {
  if (!absl::StrContains(seeds, ",redis://")) {
    absl::StatusOr<ConnectionOptions> one = ParseRedisUrl(seeds);
    if (one.ok() && !absl::StrContains(one->host, ',')) {
      return std::vector<ConnectionOptions>{*std::move(one)};
    }
  }
  std::vector<ConnectionOptions> out;
  for (absl::string_view piece : absl::StrSplit(seeds, ',')) {
    if (absl::StartsWith(piece, "redis://") || absl::StartsWith(piece, "rediss://")) {
      absl::StatusOr<ConnectionOptions> seed = ParseRedisUrl(piece);
      if (!seed.ok()) return seed.status();
      out.push_back(*std::move(seed));
      continue;
    }
    if (out.empty()) return BadUrl(seeds, "the first seed must start with redis://");
    if (piece.empty()) return BadUrl(seeds, "empty seed in the list");
    if (absl::StrContains(piece, '@') || absl::StrContains(piece, '/')) {
      return BadUrl(seeds, "a bare seed is HOST:PORT; give a full redis:// URL for others");
    }
    absl::StatusOr<ConnectionOptions> seed = ParseRedisUrl(absl::StrCat("redis://", piece));
    if (!seed.ok()) return seed.status();
    seed->username = out.front().username;
    seed->password = out.front().password;
    seed->db = out.front().db;
    out.push_back(*std::move(seed));
  }
  return out;
}

std::string DescribeEndpoint(const ConnectionOptions& options) {
  return absl::StrCat(HostPort(options), "/", options.db);
}

std::string HostPort(const ConnectionOptions& options) {
  if (absl::StrContains(options.host, ':')) return absl::StrCat("[", options.host, "]:", options.port);
  return absl::StrCat(options.host, ":", options.port);
}

}  // namespace taskmesh::redis
