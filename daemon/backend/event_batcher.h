// Join/leave events for the backend's events_url: collected from the transports' threads
// without waiting, POSTed in batches every events_batch_ms, best effort. When the backend is
// down or the buffer is full, events are dropped and counted, never held up.
#pragma once

#include <flowrelay/plugin.h>

#include <Poco/Logger.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backend_metrics.h"
#include "backend_pool.h"

namespace flowrelay {

class EventBatcher {
 public:
  static constexpr size_t kMaxBuffered = 65536;  // events waiting; past it new ones are dropped
  static constexpr size_t kMaxPerBatch = 1000;

  EventBatcher(BackendPool& pool, BackendMetrics& metrics, std::shared_ptr<const BackendUrl> url,
               std::string node_hex, uint32_t batch_ms);
  ~EventBatcher() { stop(); }

  // [any thread, non-blocking]
  void add(bool joined, const flowrelay_client_info& client);
  void stop();

 private:
  void run();
  void flush();  // posts the next batch unless one is at the backend
  void sent(size_t count, BackendAnswer&& answer);

  BackendPool& _pool;
  BackendMetrics& _metrics;
  const std::shared_ptr<const BackendUrl> _url;
  const std::string _node_hex;
  const uint32_t _batch_ms;
  Poco::Logger& _log = Poco::Logger::get("backend");
  std::mutex _mutex;
  std::condition_variable _wake;
  std::vector<std::string> _events;  // event_json() texts, oldest first
  bool _in_flight = false;
  bool _failing = false;  // the last batch failed (logged once per outage)
  bool _stopping = false;
  std::thread _thread;
};

}  // namespace flowrelay
