// The pieces of flowrelay-reply-bench that talk plain TCP: loopback addresses, a keep-alive
// HTTP/1.1 client for the publish API, Redis' INFO CPU and /proc CPU times.
//
// The HTTP client is written by hand (not Poco's HTTPClientSession) because the producer path is
// measured with the client on the same two cores as the server: a request here is one write and
// one or two reads, nothing else.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

namespace flowrelay::bench {

int64_t mono_ns();
[[noreturn]] void die(const std::string& msg);

// "127.0.0.1:9090" (loopback only: this tool measures servers on this machine).
struct Endpoint {
  std::string host_port;
  sockaddr_in addr{};
};
Endpoint parse_endpoint(const std::string& host_port);

// One keep-alive connection; reconnects once when the server closed it.
class HttpClient {
 public:
  explicit HttpClient(Endpoint ep, std::string api_key);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;
  // POST /api/publish; returns the status (0: no answer) and the body in `answer`.
  int publish(const std::string& body, std::string& answer);

 private:
  bool open();
  int exchange(const std::string& request, std::string& answer);
  Endpoint _ep;
  std::string _head;  // the request head up to Content-Length
  int _fd = -1;
  std::string _in;
};

// used_cpu_sys + used_cpu_user of the Redis at `port` (INFO CPU), seconds; -1 on failure.
double redis_cpu_s(uint16_t port);

// utime + stime of the processes, milliseconds (0 for a pid that is gone).
double process_cpu_ms(const std::vector<int>& pids);

// {"conversation":<c>,"reply":<r>,"seq":<n>,"delta":<d>} and {...,"end":true}; c, r and d are
// written as they are (callers use characters that need no JSON escape).
void append_delta(std::string& out, const std::string& conv, const std::string& reply, uint64_t seq,
                  const std::string& data);
void append_end(std::string& out, const std::string& conv, const std::string& reply);

// Occurrences of `what` in `text`.
size_t count_of(const std::string& text, const std::string& what);

}  // namespace flowrelay::bench
