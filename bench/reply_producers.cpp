#include "reply_producers.h"

#include <time.h>

#include <algorithm>
#include <mutex>
#include <thread>

namespace flowrelay::bench {

namespace {

void sleep_until_ns(int64_t t) {
  for (int64_t now = mono_ns(); now < t; now = mono_ns()) {
    const int64_t d = std::min<int64_t>(t - now, 10'000'000);
    timespec ts{static_cast<time_t>(d / 1'000'000'000), static_cast<long>(d % 1'000'000'000)};
    nanosleep(&ts, nullptr);
  }
}

struct Step {
  std::string json;
  int32_t stream = -1;  // counted in per_stream when a delta; -1: an end
};

// Sends `steps` in one request (a batch unless it is one step and `as_batch` is false); counts
// what was accepted.
void send_steps(HttpClient& http, const std::vector<Step>& steps, bool as_batch,
                ProducerTotals& t) {
  std::string body;
  if (as_batch || steps.size() > 1) {
    body = "{\"messages\":[";
    for (size_t i = 0; i < steps.size(); ++i) (body += i ? "," : "") += steps[i].json;
    body += "]}";
  } else {
    body = steps[0].json;
  }
  std::string answer;
  const int status = http.publish(body, answer);
  ++t.requests;
  const size_t accepted = status == 200 ? count_of(answer, "\"offset\"") : 0;
  if (status != 200 || accepted != steps.size()) {
    t.errors += steps.size() - std::min(accepted, steps.size());
    if (t.first_error.empty()) t.first_error = std::to_string(status) + " " + answer.substr(0, 300);
  }
  t.duplicates += count_of(answer, "\"duplicate\":true");
  for (size_t i = 0; i < std::min(accepted, steps.size()); ++i) {
    if (steps[i].stream < 0) {
      ++t.ends;
      continue;
    }
    ++t.deltas;
    if (!t.per_stream.empty()) ++t.per_stream[static_cast<size_t>(steps[i].stream)];
  }
}

void merge(ProducerTotals& into, const ProducerTotals& t) {
  into.requests += t.requests, into.deltas += t.deltas, into.ends += t.ends;
  into.errors += t.errors, into.duplicates += t.duplicates;
  into.deltas_in_window += t.deltas_in_window;
  into.max_behind_ms = std::max(into.max_behind_ms, t.max_behind_ms);
  if (into.per_stream.size() < t.per_stream.size()) into.per_stream.resize(t.per_stream.size());
  for (size_t i = 0; i < t.per_stream.size(); ++i) into.per_stream[i] += t.per_stream[i];
  if (into.first_error.empty()) into.first_error = t.first_error;
}

std::string reply_id(uint64_t k) { return "r" + std::to_string(k); }

}  // namespace

ProducerTotals run_paced(const PacedPlan& plan) {
  std::mutex mu;
  ProducerTotals all;
  all.per_stream.assign(plan.streams, 0);
  std::vector<std::thread> threads;
  for (uint32_t p = 0; p < plan.producers; ++p) {
    threads.emplace_back([&, p] {
      HttpClient http(plan.apis[p % plan.apis.size()], plan.key);
      ProducerTotals t;
      t.per_stream.assign(plan.streams, 0);
      std::vector<uint32_t> mine;
      for (uint32_t s = p; s < plan.streams; s += plan.producers) mine.push_back(s);
      std::vector<uint64_t> reply(mine.size(), 1), seq(mine.size(), 0);
      const auto period = static_cast<int64_t>(1e9 / plan.rate);
      // Connections tick out of phase (p / producers of a period apart): replies that all emit
      // at the same instant would measure the burst, not the relay.
      const int64_t phase = period * p / plan.producers;
      std::vector<Step> chunk;
      auto flush = [&] {
        if (chunk.empty()) return;
        send_steps(http, chunk, plan.batch > 1, t);
        chunk.clear();
      };
      for (int64_t tick = 0;; ++tick) {
        const int64_t at = plan.start_ns + phase + tick * period;
        // A producer that fell behind does not catch up past the end: the run stays bounded
        // and the rate it reached is what producedPerSec reports.
        if (at >= plan.stop_ns || mono_ns() >= plan.stop_ns) break;
        sleep_until_ns(at);
        t.max_behind_ms = std::max(t.max_behind_ms, static_cast<double>(mono_ns() - at) / 1e6);
        for (size_t i = 0; i < mine.size(); ++i) {
          const std::string conv = plan.conv_prefix + std::to_string(mine[i]);
          if (chunk.size() + 2 > plan.batch) flush();
          if (seq[i] == plan.reply_deltas) {  // this reply is complete: end it, begin the next
            chunk.push_back({"", -1});
            append_end(chunk.back().json, conv, reply_id(reply[i]++));
            seq[i] = 0;
          }
          const int64_t now = mono_ns();
          if (now >= plan.window_from && now < plan.window_to) ++t.deltas_in_window;
          chunk.push_back({"", static_cast<int32_t>(mine[i])});
          append_delta(chunk.back().json, conv, reply_id(reply[i]), ++seq[i],
                       std::to_string(now) + ";");
          if (chunk.size() >= plan.batch) flush();
        }
        flush();
      }
      for (size_t i = 0; i < mine.size(); ++i) {  // end what is still open
        if (seq[i] == 0) continue;
        chunk.push_back({"", -1});
        append_end(chunk.back().json, plan.conv_prefix + std::to_string(mine[i]),
                   reply_id(reply[i]));
        if (chunk.size() >= plan.batch) flush();
      }
      flush();
      std::lock_guard<std::mutex> lock(mu);
      merge(all, t);
    });
  }
  for (auto& th : threads) th.join();
  return all;
}

ProducerTotals run_flood(const FloodPlan& plan) {
  std::mutex mu;
  ProducerTotals all;
  const int64_t deadline = mono_ns() + static_cast<int64_t>(plan.seconds * 1e9);
  std::vector<std::thread> threads;
  for (uint32_t c = 0; c < plan.conns; ++c) {
    threads.emplace_back([&, c] {
      HttpClient http(plan.api, plan.key);
      ProducerTotals t;
      const std::string conv = plan.conv_prefix + std::to_string(c);
      uint64_t reply = 1, seq = 0;
      std::vector<Step> chunk;
      while (mono_ns() < deadline) {
        for (uint32_t i = 0; i < std::max<uint32_t>(plan.batch, 1); ++i) {
          chunk.push_back({"", 0});
          append_delta(chunk.back().json, conv, reply_id(reply), ++seq, plan.token);
          if (seq == plan.reply_deltas) {
            if (plan.batch <= 1) {
              send_steps(http, chunk, false, t);
              chunk.clear();
            }
            chunk.push_back({"", -1});
            append_end(chunk.back().json, conv, reply_id(reply++));
            seq = 0;
            if (plan.batch <= 1) break;
          }
        }
        send_steps(http, chunk, plan.batch > 1, t);
        chunk.clear();
        if (t.errors > 0) break;  // a refused step breaks the seq chain: stop, report it
      }
      if (seq > 0) {
        chunk.push_back({"", -1});
        append_end(chunk.back().json, conv, reply_id(reply));
        send_steps(http, chunk, false, t);
      }
      std::lock_guard<std::mutex> lock(mu);
      merge(all, t);
    });
  }
  for (auto& th : threads) th.join();
  return all;
}

ProducerTotals produce_reply(const Endpoint& api, const std::string& key, const std::string& conv,
                             const std::string& reply, uint64_t deltas, uint32_t batch) {
  HttpClient http(api, key);
  ProducerTotals t;
  std::vector<Step> chunk;
  for (uint64_t seq = 1; seq <= deltas; ++seq) {
    chunk.push_back({"", 0});
    append_delta(chunk.back().json, conv, reply, seq, "w" + std::to_string(seq) + " ");
    if (chunk.size() >= batch || seq == deltas) {
      send_steps(http, chunk, batch > 1, t);
      chunk.clear();
    }
  }
  return t;
}

int end_reply(const Endpoint& api, const std::string& key, const std::string& conv,
              const std::string& reply) {
  HttpClient http(api, key);
  std::string body, answer;
  append_end(body, conv, reply);
  return http.publish(body, answer);
}

}  // namespace flowrelay::bench
