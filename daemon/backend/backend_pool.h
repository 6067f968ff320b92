// The backend HTTP client: a bounded pool of worker threads, each with its own keep-alive
// connection per backend host, that POSTs signed JSON bodies and hands the answers back. The
// callers (transport I/O threads) only queue; a worker thread does the waiting.
#pragma once

#include <Poco/Net/HTTPClientSession.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace flowrelay {

// What became of one request.
struct BackendAnswer {
  enum class Failure {
    None,         // `status` and `body` are the backend's answer
    Unavailable,  // no answer: connection refused or broken, not HTTP, daemon stopping
    Timeout,      // no complete answer within timeout_ms
    TooLarge,     // the answer's body is over max_answer_bytes
  };
  Failure failure = Failure::None;
  int status = 0;
  std::string body;
  std::string error;   // why, when failure != None ("timeout after 5000 ms")
  double seconds = 0;  // from sending the request to the end of the answer (or the failure)
};

// A parsed http:// URL (checked by backend_url_problem()).
struct BackendUrl {
  std::string host;
  uint16_t port = 80;
  std::string target;  // path and query, "/" when empty
  std::string text;    // as configured
  static BackendUrl parse(const std::string& url);
};

class BackendPool {
 public:
  using Done = std::function<void(BackendAnswer&&)>;
  struct Limits {
    uint32_t timeout_ms = 5000;
    uint64_t max_answer_bytes = 1 << 20;
    std::string secret;
  };

  // At most `max_workers` requests at once; the threads start as the load needs them.
  BackendPool(uint32_t max_workers, Limits limits);
  ~BackendPool() { stop(); }
  BackendPool(const BackendPool&) = delete;
  BackendPool& operator=(const BackendPool&) = delete;

  // [any thread, non-blocking] Queues a signed POST of `body` (JSON) to `url`; `done` runs
  // exactly once, on a worker thread (or on this one if the pool has stopped). Never call it
  // holding a lock that `done` takes.
  void post(std::shared_ptr<const BackendUrl> url, std::string body, Done done);
  // [main] SIGHUP: the next requests use these (secret rotation).
  void set_limits(Limits limits);
  // Cuts the requests in flight, answers the queued ones Unavailable and joins the threads.
  void stop();

  size_t queued() const;

 private:
  struct Job {
    std::shared_ptr<const BackendUrl> url;
    std::string body;
    Done done;
  };
  struct Worker {
    std::mutex mutex;  // guards `current` and the map against stop()'s abort
    std::map<std::string, std::unique_ptr<Poco::Net::HTTPClientSession>> sessions;
    Poco::Net::HTTPClientSession* current = nullptr;
  };

  void run(Worker& worker);
  BackendAnswer exchange(Worker& worker, const Job& job, const Limits& limits);

  const uint32_t _max_workers;
  mutable std::mutex _mutex;
  std::condition_variable _wake;
  std::deque<Job> _jobs;
  std::vector<std::unique_ptr<Worker>> _workers;
  std::vector<std::thread> _threads;
  uint32_t _idle = 0;
  bool _stopping = false;
  std::atomic<bool> _aborting{false};  // stop() began: no retry
  Limits _limits;
};

}  // namespace flowrelay
