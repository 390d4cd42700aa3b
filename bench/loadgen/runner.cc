#include "bench/loadgen/runner.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace taskmesh::bench {
namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Sleeps until about `t`, never spinning: on a 2-core machine a spinning
// client would take a core from the server it measures. A late wake-up only
// delays requests, and their latency still counts from the intended time.
void SleepUntilNs(int64_t t) {
  const int64_t left = t - NowNs();
  if (left > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(left));
}

// Shared with callbacks, which may outlive Run() after a drain timeout.
struct State {
  int64_t start = 0;
  int64_t measure_from = 0;
  int64_t end = 0;
  int64_t max_requests = 0;
  int items = 1;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> issued{0};
  std::atomic<int64_t> outstanding{0};
  std::atomic<int64_t> first_issue{LLONG_MAX};
  std::atomic<int64_t> last_done{0};
  std::atomic<int64_t> recorded{0};
  std::atomic<int64_t> ok{0};
  std::shared_ptr<Histogram> hist = std::make_shared<Histogram>();
  std::mutex mu;
  std::map<int, int64_t> codes;

  // Claims the right to start one more request; false once a bound is hit.
  bool Claim(int64_t now) {
    if (stop.load(std::memory_order_relaxed) || now >= end) return false;
    if (max_requests > 0 && issued.fetch_add(1) >= max_requests) {
      issued.fetch_sub(1);
      return false;
    }
    if (max_requests == 0) issued.fetch_add(1);
    return true;
  }

  void Finish(int64_t t0, int code) {
    if (t0 < measure_from) return;
    const int64_t now = NowNs();
    int64_t f = first_issue.load();
    while (t0 < f && !first_issue.compare_exchange_weak(f, t0)) {
    }
    int64_t l = last_done.load();
    while (now > l && !last_done.compare_exchange_weak(l, now)) {
    }
    recorded.fetch_add(1, std::memory_order_relaxed);
    if (code == 0) {
      ok.fetch_add(1, std::memory_order_relaxed);
      hist->Record(now - t0);
    }
    std::lock_guard<std::mutex> lock(mu);
    ++codes[code];
  }
};

void StartClosed(const std::shared_ptr<State>& s, Target* target) {
  // A transport may complete a failed call inline: bound the recursion.
  thread_local int depth = 0;
  if (depth > 32) {
    s->outstanding.fetch_add(1);
    std::thread([s, target] {
      StartClosed(s, target);
      s->outstanding.fetch_sub(1);
    }).detach();
    return;
  }
  const int64_t t0 = NowNs();
  if (!s->Claim(t0)) return;
  s->outstanding.fetch_add(1);
  ++depth;
  target->Issue([s, target, t0](int code) {
    s->Finish(t0, code);
    StartClosed(s, target);
    s->outstanding.fetch_sub(1);
  });
  --depth;
}

std::string Us(int64_t ns) { return absl::StrFormat("%.1f", ns / 1000.0); }

}  // namespace

std::string CodeName(int code) {
  static const char* kGrpc[] = {"OK",
                                "CANCELLED",
                                "UNKNOWN",
                                "INVALID_ARGUMENT",
                                "DEADLINE_EXCEEDED",
                                "NOT_FOUND",
                                "ALREADY_EXISTS",
                                "PERMISSION_DENIED",
                                "RESOURCE_EXHAUSTED",
                                "FAILED_PRECONDITION",
                                "ABORTED",
                                "OUT_OF_RANGE",
                                "UNIMPLEMENTED",
                                "INTERNAL",
                                "UNAVAILABLE",
                                "DATA_LOSS",
                                "UNAUTHENTICATED"};
  if (code >= 0 && code <= 16) return kGrpc[code];
  if (code == kTransportError) return "TRANSPORT_ERROR";
  if (code == kClientOverload) return "CLIENT_OVERLOAD";
  if (code >= 1000 && code < 2000) return absl::StrCat("HTTP_", code - 1000);
  return absl::StrCat("CODE_", code);
}

RunResult Runner::Run(Target& target) {
  auto s = std::make_shared<State>();
  s->start = NowNs();
  s->measure_from = s->start + absl::ToInt64Nanoseconds(options_.warmup);
  s->end = s->start + absl::ToInt64Nanoseconds(options_.duration + options_.warmup);
  s->max_requests = options_.requests;
  s->items = target.ItemsPerRequest();

  std::vector<std::thread> threads;
  if (target.IsBlocking()) {
    for (int i = 0; i < std::max(1, options_.concurrency); ++i) {
      threads.emplace_back([s, &target] {
        while (true) {
          const int64_t t0 = NowNs();
          if (!s->Claim(t0)) return;
          s->Finish(t0, target.Call());
        }
      });
    }
    for (std::thread& t : threads) t.join();
  } else if (options_.rate > 0) {
    const double period = 1e9 / options_.rate;
    for (int64_t i = 0;; ++i) {
      const int64_t intended = s->start + static_cast<int64_t>(period * static_cast<double>(i));
      if (intended >= s->end) break;
      if (s->max_requests > 0 && i >= s->max_requests) break;
      SleepUntilNs(intended);
      s->issued.fetch_add(1);
      if (s->outstanding.load() >= options_.max_outstanding) {
        s->Finish(intended, kClientOverload);
        continue;
      }
      s->outstanding.fetch_add(1);
      target.Issue([s, intended](int code) {
        s->Finish(intended, code);
        s->outstanding.fetch_sub(1);
      });
    }
  } else {
    for (int i = 0; i < std::max(1, options_.concurrency); ++i) StartClosed(s, &target);
    while (NowNs() < s->end && !(s->max_requests > 0 && s->issued.load() >= s->max_requests &&
                                 s->outstanding.load() == 0)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  s->stop = true;
  const int64_t drain_end = NowNs() + absl::ToInt64Nanoseconds(options_.drain_timeout);
  while (s->outstanding.load() > 0 && NowNs() < drain_end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  RunResult r;
  r.issued = s->issued.load();
  r.recorded = s->recorded.load();
  r.ok = s->ok.load();
  r.items_ok = r.ok * s->items;
  r.unfinished = s->outstanding.load();
  const int64_t first = s->first_issue.load();
  const int64_t last = s->last_done.load();
  r.seconds = (first == LLONG_MAX || last <= first) ? 0 : (last - first) / 1e9;
  r.rps = r.seconds > 0 ? r.ok / r.seconds : 0;
  r.items_per_s = r.seconds > 0 ? r.items_ok / r.seconds : 0;
  r.target_rate = options_.rate;
  r.concurrency = options_.rate > 0 ? 0 : options_.concurrency;
  {
    std::lock_guard<std::mutex> lock(s->mu);
    r.codes = s->codes;
  }
  if (r.unfinished > 0) r.codes[kTransportError] += 0;  // keep the key visible
  r.latency = s->hist;
  return r;
}

std::string RunResult::ToJson(const std::string& name) const {
  std::vector<std::string> codes_json;
  for (const auto& [code, n] : codes) {
    codes_json.push_back(absl::StrCat("\"", CodeName(code), "\":", n));
  }
  const Histogram& h = *latency;
  return absl::StrCat(
      "{\"name\":\"", name, "\",\"mode\":\"", target_rate > 0 ? "open" : "closed",
      "\",\"concurrency\":", concurrency, ",\"target_rate\":", absl::StrFormat("%.0f", target_rate),
      ",\"issued\":", issued, ",\"recorded\":", recorded, ",\"ok\":", ok,
      ",\"errors\":", recorded - ok, ",\"unfinished\":", unfinished,
      ",\"seconds\":", absl::StrFormat("%.3f", seconds), ",\"rps\":", absl::StrFormat("%.1f", rps),
      ",\"items_per_s\":", absl::StrFormat("%.1f", items_per_s), ",\"p50_us\":", Us(h.Percentile(50)),
      ",\"p90_us\":", Us(h.Percentile(90)), ",\"p99_us\":", Us(h.Percentile(99)),
      ",\"p999_us\":", Us(h.Percentile(99.9)), ",\"max_us\":", Us(h.max()),
      ",\"mean_us\":", absl::StrFormat("%.1f", h.mean() / 1000.0), ",\"codes\":{",
      absl::StrJoin(codes_json, ","), "}}");
}

std::string RunResult::ToText(const std::string& name) const {
  const Histogram& h = *latency;
  std::string out = absl::StrFormat(
      "%s: %s, %lld ok of %lld recorded (%lld issued, %lld unfinished) in %.2f s\n"
      "  throughput %.0f req/s (%.0f items/s)\n"
      "  latency us: p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %.1f\n  codes:",
      name,
      target_rate > 0 ? absl::StrFormat("open loop at %.0f/s", target_rate)
                      : absl::StrFormat("closed loop, concurrency %d", concurrency),
      static_cast<long long>(ok), static_cast<long long>(recorded),
      static_cast<long long>(issued), static_cast<long long>(unfinished), seconds, rps,
      items_per_s, Us(h.Percentile(50)), Us(h.Percentile(90)), Us(h.Percentile(99)),
      Us(h.Percentile(99.9)), Us(h.max()), h.mean() / 1000.0);
  for (const auto& [code, n] : codes) absl::StrAppend(&out, " ", CodeName(code), "=", n);
  return out + "\n";
}

}  // namespace taskmesh::bench
