#include "backend_pool.h"

#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Timespan.h>
#include <Poco/URI.h>

#include <chrono>
#include <istream>

#include "signature.h"

namespace flowrelay {

namespace {

using Clock = std::chrono::steady_clock;

Poco::Timespan millis(int64_t ms) { return Poco::Timespan(std::max<int64_t>(ms, 1) * 1000); }

}  // namespace

BackendUrl BackendUrl::parse(const std::string& url) {
  const Poco::URI uri(url);
  BackendUrl out;
  out.host = uri.getHost();
  out.port = uri.getPort();
  out.target = uri.getPathEtc();
  if (out.target.empty()) out.target = "/";
  out.text = url;
  return out;
}

BackendPool::BackendPool(uint32_t max_workers, Limits limits)
    : _max_workers(max_workers), _limits(std::move(limits)) {}

void BackendPool::post(std::shared_ptr<const BackendUrl> url, std::string body, Done done) {
  {
    std::lock_guard lock(_mutex);
    if (!_stopping) {
      _jobs.push_back({std::move(url), std::move(body), std::move(done)});
      if (_idle == 0 && _threads.size() < _max_workers) {
        _workers.push_back(std::make_unique<Worker>());
        Worker* w = _workers.back().get();
        _threads.emplace_back([this, w] { run(*w); });
      } else {
        _wake.notify_one();
      }
      return;
    }
  }
  BackendAnswer a;
  a.failure = BackendAnswer::Failure::Unavailable;
  a.error = "the daemon is stopping";
  done(std::move(a));
}

void BackendPool::set_limits(Limits limits) {
  std::lock_guard lock(_mutex);
  _limits = std::move(limits);
}

size_t BackendPool::queued() const {
  std::lock_guard lock(_mutex);
  return _jobs.size();
}

void BackendPool::stop() {
  std::deque<Job> left;
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(_mutex);
    if (_stopping && _threads.empty()) return;
    _stopping = true;
    _aborting = true;
    left.swap(_jobs);
    threads.swap(_threads);
    // A backend that hangs must not hold up the shutdown: cut the connections in use (the
    // worker sees a broken connection and answers Unavailable).
    for (auto& w : _workers) {
      std::lock_guard wl(w->mutex);
      if (!w->current) continue;
      try {
        w->current->socket().shutdown();
      } catch (const Poco::Exception&) {
        // not connected yet: the connect timeout ends it
      }
    }
    _wake.notify_all();
  }
  for (Job& job : left) {
    BackendAnswer a;
    a.failure = BackendAnswer::Failure::Unavailable;
    a.error = "the daemon is stopping";
    job.done(std::move(a));
  }
  for (auto& t : threads) t.join();
  std::lock_guard lock(_mutex);
  _workers.clear();
}

void BackendPool::run(Worker& worker) {
  for (;;) {
    Job job;
    Limits limits;
    {
      std::unique_lock lock(_mutex);
      ++_idle;
      _wake.wait(lock, [&] { return _stopping || !_jobs.empty(); });
      --_idle;
      if (_jobs.empty()) return;  // stopping
      job = std::move(_jobs.front());
      _jobs.pop_front();
      limits = _limits;
    }
    BackendAnswer answer = exchange(worker, job, limits);
    job.done(std::move(answer));
  }
}

BackendAnswer BackendPool::exchange(Worker& worker, const Job& job, const Limits& limits) {
  using namespace Poco::Net;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::milliseconds(limits.timeout_ms);
  auto left_ms = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  };
  BackendAnswer a;
  auto fail = [&](BackendAnswer::Failure f, std::string why) {
    a.failure = f;
    a.error = std::move(why);
    a.status = 0;
    a.body.clear();
  };
  const std::string key = job.url->host + ":" + std::to_string(job.url->port);
  HTTPClientSession* s = nullptr;
  bool reused = false;
  {
    std::lock_guard lock(worker.mutex);
    auto& slot = worker.sessions[key];
    reused = slot && slot->connected();
    if (!slot) {
      slot = std::make_unique<HTTPClientSession>(job.url->host, job.url->port);
      slot->setKeepAlive(true);
    }
    s = slot.get();
    worker.current = s;
  }
  auto drop_connection = [&] {
    try {
      s->reset();
    } catch (const Poco::Exception&) {
    }
  };
  for (int attempt = 0;; ++attempt) {
    try {
      s->setTimeout(millis(left_ms()), millis(left_ms()), millis(left_ms()));
      HTTPRequest req(HTTPRequest::HTTP_POST, job.url->target, HTTPMessage::HTTP_1_1);
      req.setContentType("application/json");
      req.setContentLength(static_cast<std::streamsize>(job.body.size()));
      req.setKeepAlive(true);
      const std::string ts = unix_timestamp_now();
      req.set(kTimestampHeader, ts);
      req.set(kSignatureHeader, backend_signature(limits.secret, ts, job.body));
      std::ostream& out = s->sendRequest(req);
      out.write(job.body.data(), static_cast<std::streamsize>(job.body.size()));
      if (left_ms() <= 0) throw Poco::TimeoutException();
      s->socket().setReceiveTimeout(millis(left_ms()));
      HTTPResponse resp;
      std::istream& in = s->receiveResponse(resp);
      in.exceptions(std::ios::badbit);  // a broken read throws, not a silently short body
      a.status = static_cast<int>(resp.getStatus());
      if (resp.hasContentLength() &&
          static_cast<uint64_t>(resp.getContentLength64()) > limits.max_answer_bytes) {
        drop_connection();
        fail(BackendAnswer::Failure::TooLarge, "answer of " +
                                                   std::to_string(resp.getContentLength64()) +
                                                   " bytes is over max_answer_bytes (" +
                                                   std::to_string(limits.max_answer_bytes) + ")");
        break;
      }
      char buf[16384];
      bool too_large = false;
      while (in) {
        if (left_ms() <= 0) throw Poco::TimeoutException();
        s->socket().setReceiveTimeout(millis(left_ms()));
        in.read(buf, sizeof buf);
        a.body.append(buf, static_cast<size_t>(in.gcount()));
        if (a.body.size() > limits.max_answer_bytes) {
          too_large = true;
          break;
        }
      }
      if (too_large) {
        drop_connection();
        fail(BackendAnswer::Failure::TooLarge,
             "answer is over max_answer_bytes (" + std::to_string(limits.max_answer_bytes) + ")");
      }
      break;
    } catch (const Poco::TimeoutException&) {
      drop_connection();
      fail(BackendAnswer::Failure::Timeout,
           "timeout after " + std::to_string(limits.timeout_ms) + " ms");
      break;
    } catch (const Poco::Exception& e) {
      drop_connection();
      // A kept-alive connection the backend closed while idle fails at once: one retry on a
      // fresh connection. A fresh connection that fails is the backend's state: no retry.
      if (reused && attempt == 0 && left_ms() > 0 && !_aborting) {
        reused = false;
        a = {};
        continue;
      }
      fail(BackendAnswer::Failure::Unavailable, e.displayText());
      break;
    } catch (const std::exception& e) {
      drop_connection();
      fail(BackendAnswer::Failure::Unavailable, e.what());
      break;
    }
  }
  {
    std::lock_guard lock(worker.mutex);
    worker.current = nullptr;
  }
  a.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return a;
}

}  // namespace flowrelay
