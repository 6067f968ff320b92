// Integration test harness: runs the real flowrelayd (FLOWRELAYD_BIN) against the build-tree
// plugins (FLOWRELAY_PLUGIN_DIR) and talks to it over real sockets.
//
//  - Daemon:    temp config with free ports, spawn, wait for /ready, SIGTERM/SIGKILL, /proc stats.
//  - WsClient:  a Poco::Net::WebSocket client (well-behaved, masked frames).
//  - RawClient: a plain TCP socket that writes its own handshake and frames and parses the
//               server's frames itself, for bad handshakes and protocol violations.
#pragma once

#include <Poco/Net/StreamSocket.h>
#include <Poco/Net/WebSocket.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flowrelay::itest {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;
using namespace std::chrono_literals;

// Path of the daemon binary and of the build-tree plugin folder (compile definitions).
const char* daemon_binary();
const char* plugin_dir();

// Raises the soft RLIMIT_NOFILE of this process to the hard limit (the daemon, spawned later,
// inherits it). Returns the resulting soft limit.
rlim_t raise_nofile_limit();

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it back, release).
uint16_t free_port();

// ---------------------------------------------------------------------------------------------
// Processes

struct ExitStatus {
  bool finished = false;  // false: still running when the bounded wait ended
  bool exited = false;    // exited normally (then `code` is valid)
  int code = -1;
  int signal = 0;  // terminating signal when !exited
  std::string describe() const;
};

struct ProcessResult {
  ExitStatus status;
  std::string out;  // stdout
  std::string err;  // stderr
};

// The ExitStatus of a waitpid() status word.
ExitStatus decode_wait_status(int status);
// Waits (bounded) for child `pid` to exit; finished=false on timeout.
ExitStatus wait_pid(pid_t pid, Millis timeout);

// Runs FLOWRELAYD_BIN with `args`, waits up to `timeout` (SIGKILLs it after that) and returns the
// exit status and what it wrote to stdout/stderr.
ProcessResult run_daemon_command(const std::vector<std::string>& args, Millis timeout = 10s);

// Splits text into its non-empty lines.
std::vector<std::string> non_empty_lines(const std::string& text);

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return _path; }
  // Writes `content` to <dir>/<name>; returns the full path.
  std::string write(const std::string& name, const std::string& content) const;

 private:
  std::string _path;
};

// ---------------------------------------------------------------------------------------------
// Daemon

struct DaemonOptions {
  uint64_t max_message_size = 1048576;
  int shutdown_timeout_ms = 3000;
  std::string log_level = "information";
  // YAML lines merged into the transport entry (each line indented by 4 spaces, e.g.
  // "    idle_timeout_ms: 1000\n").
  std::string transport_extra;
  // YAML merged at the top level (appended at the end of the file, unindented).
  std::string extra;
  // YAML lines merged into the broker section (each indented by 2 spaces, e.g.
  // "  history_size: 50\n").
  std::string broker_extra;
  // The publish API key (http.api_key); empty: none configured.
  std::string api_key;
  // YAML lines merged into the http section (each indented by 2 spaces, e.g.
  // "  max_body_bytes: 1024\n").
  std::string http_extra;
};

struct Ports {
  uint16_t ws = 0;
  uint16_t http = 0;
};

// The config file of the contract, with the given ports and options.
std::string make_config(const Ports& ports, const DaemonOptions& options = {});

// The daemon's process status (Threads, VmRSS) from /proc/<pid>/status; -1 when unreadable.
long proc_status_field(pid_t pid, const std::string& field);

class Daemon {
 public:
  // Writes the config into a fresh temp dir, starts flowrelayd --config <file> and waits (up to
  // `ready_timeout`) for GET /ready to answer 200. Throws std::runtime_error (with the daemon's
  // stderr) if it exits or does not become ready.
  explicit Daemon(DaemonOptions options = {}, Millis ready_timeout = 10s);
  ~Daemon();  // SIGKILLs the daemon if it is still running
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  uint16_t ws_port() const { return _ports.ws; }
  uint16_t http_port() const { return _ports.http; }
  pid_t pid() const { return _pid; }
  const std::string& config_path() const { return _config_path; }
  std::string stderr_text() const;
  std::string stdout_text() const;

  // True while the process has not exited (reaps it if it has).
  bool running();
  long thread_count() const { return proc_status_field(_pid, "Threads"); }
  long vm_rss_kb() const { return proc_status_field(_pid, "VmRSS"); }

  // Sends SIGTERM and waits (bounded) for the exit.
  ExitStatus stop(Millis timeout = 10s);
  // Waits (bounded) for the process to exit by itself.
  ExitStatus wait_exit(Millis timeout);

 private:
  TempDir _dir;
  Ports _ports;
  std::string _config_path;
  std::string _stderr_path;
  std::string _stdout_path;
  pid_t _pid = -1;
  std::optional<ExitStatus> _exit;
};

// ---------------------------------------------------------------------------------------------
// HTTP

struct HttpResult {
  int status = 0;  // 0: no answer (connection refused, timeout)
  std::string content_type;
  std::string body;
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

HttpResult http_get(uint16_t port, const std::string& path, Millis timeout = 2s);
// One request on a fresh connection to 127.0.0.1:<port>.
HttpResult http_request(uint16_t port, const std::string& method, const std::string& path,
                        const std::string& body = "", const HttpHeaders& headers = {},
                        Millis timeout = 5s);
HttpResult http_post(uint16_t port, const std::string& path, const std::string& body,
                     const HttpHeaders& headers = {}, Millis timeout = 5s);

// One keep-alive connection reused for every request (as a backend streaming a reply token by
// token would do); reconnects by itself if the server closed it.
class HttpSession {
 public:
  explicit HttpSession(uint16_t port, Millis timeout = 5s);
  ~HttpSession();
  HttpSession(const HttpSession&) = delete;
  HttpSession& operator=(const HttpSession&) = delete;
  HttpResult post(const std::string& path, const std::string& body,
                  const HttpHeaders& headers = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> _impl;
};

// The value of a Prometheus metric in GET /metrics: the sum over all its label sets; -1 if the
// metric is absent or the page did not load.
double metric_value(uint16_t http_port, const std::string& name);

// Polls `condition` until it is true or `timeout` passes; returns its last value.
bool wait_for(const std::function<bool()>& condition, Millis timeout, Millis interval = 10ms);

// ---------------------------------------------------------------------------------------------
// WebSocket client (Poco)

struct WsMessage {
  int flags = 0;  // Poco::Net::WebSocket flags: FIN/RSV bits | opcode
  std::string payload;
  bool eof = false;  // the server closed the TCP connection
  int opcode() const { return flags & Poco::Net::WebSocket::FRAME_OP_BITMASK; }
  bool fin() const { return (flags & Poco::Net::WebSocket::FRAME_FLAG_FIN) != 0; }
};

class WsClient {
 public:
  // Connects to ws://127.0.0.1:<port>/ws/<id> (id may carry a query string), offering
  // `subprotocol` (Sec-WebSocket-Protocol) if not empty. Throws on failure. Poco loses frames
  // that arrive in the same read as the 101 (they stay in its HTTP session's buffer): where the
  // server may speak first (a resume), use RawClient or EnvelopeClient (envelope.h).
  WsClient(uint16_t port, const std::string& id, const std::string& subprotocol = "");
  // The Sec-WebSocket-Protocol of the server's 101 ("" when absent).
  const std::string& subprotocol() const { return _subprotocol; }
  void send_text(std::string_view text);
  void send_ping(std::string_view payload);
  // The next frame, or nullopt if none arrives within `timeout`.
  std::optional<WsMessage> receive(Millis timeout = 5s);
  // Sends a close frame with `code` (does not wait for the answer).
  void close(uint16_t code = 1000);
  Poco::Net::WebSocket& socket() { return *_ws; }

 private:
  std::unique_ptr<Poco::Net::WebSocket> _ws;
  std::string _subprotocol;
};

// ---------------------------------------------------------------------------------------------
// Raw client: hand-built handshakes and frames

struct HttpHead {
  int status = 0;           // 0: no (complete) response head
  std::string status_line;  // e.g. "HTTP/1.1 400 Bad Request"
  std::vector<std::pair<std::string, std::string>> headers;
  // First header of that name (case-insensitive), or nullopt.
  std::optional<std::string> header(std::string_view name) const;
};

struct Frame {
  bool fin = false;
  uint8_t rsv = 0;  // the three RSV bits, shifted down (0..7)
  uint8_t opcode = 0;
  bool masked = false;
  std::string payload;
  bool has_close_code() const { return opcode == 0x8 && payload.size() >= 2; }
  uint16_t close_code() const;
  std::string close_reason() const;
  std::string describe() const;
};

enum Op : uint8_t {
  kCont = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

struct FrameSpec {
  uint8_t opcode = kText;
  std::string payload;
  bool fin = true;
  uint8_t rsv = 0;  // 0..7: RSV1 = 4, RSV2 = 2, RSV3 = 1
  bool masked = true;
  std::array<uint8_t, 4> mask{{0x37, 0xfa, 0x21, 0x3d}};
  // Length written in the header if it differs from payload.size() (e.g. to announce a huge
  // frame and send only its header).
  std::optional<uint64_t> declared_len;
  // 0: minimal length encoding; 16 or 64: force that extended length form.
  int len_bits = 0;
};

std::string encode_frame(const FrameSpec& spec);
std::string close_payload(uint16_t code, std::string_view reason = "");

// A random Sec-WebSocket-Key (base64 of 16 random bytes) and its expected accept value.
std::string make_ws_key();
std::string expected_accept(const std::string& key);

// "GET <path> HTTP/1.1" with Host, Upgrade, Connection, Sec-WebSocket-Key/Version, followed by
// `extra_headers` (complete "Name: value\r\n" lines) and the blank line.
std::string handshake_request(const std::string& path, const std::string& key,
                              const std::string& extra_headers = "");

enum class ReadResult { Frame, Timeout, Eof, Reset };

class RawClient {
 public:
  // TCP connect only. rcvbuf > 0: SO_RCVBUF set before connecting (a small receive window, so a
  // client that does not read stalls the server's writes sooner).
  explicit RawClient(uint16_t port, int rcvbuf = 0);
  RawClient(RawClient&&) = default;

  // Sends a valid handshake for `path` and reads the response head (keeps any bytes after it).
  HttpHead handshake(const std::string& path, const std::string& extra_headers = "");
  // Valid handshake expecting 101 with the right Sec-WebSocket-Accept; false otherwise.
  bool upgrade(const std::string& path, const std::string& extra_headers = "");
  // Sends raw bytes and reads a response head.
  HttpHead request(std::string_view raw, Millis timeout = 5s);
  HttpHead read_head(Millis timeout = 5s);

  // false if the connection broke while sending (EPIPE/ECONNRESET).
  bool send_raw(std::string_view bytes);
  bool send_frame(const FrameSpec& spec) { return send_raw(encode_frame(spec)); }
  bool send_text(std::string_view payload, bool fin = true);

  // Reads the next server frame within `timeout`.
  ReadResult read_frame(Frame& out, Millis timeout = 5s);
  // Reads frames until a close frame (other frames are collected into `skipped` if given).
  std::optional<Frame> read_until_close(Millis timeout = 5s, std::vector<Frame>* skipped = nullptr);
  // Discards incoming bytes until the server closes the connection (FIN or RST) or `timeout`.
  bool wait_closed(Millis timeout = 5s);
  bool closed() const { return _closed; }

  // For many-client polling: the socket, one non-blocking read into the buffer (false once the
  // connection is closed), and the next complete buffered frame.
  int fd() const;
  bool pump();
  std::optional<Frame> pop_frame();

  // By default the client closes its socket as soon as it sees the server's EOF (as browsers
  // do); false keeps its half open, like a peer that never notices.
  void set_close_on_eof(bool on) { _close_on_eof = on; }

  // Abrupt disconnects without a close frame: RST (SO_LINGER 0) or a plain FIN.
  void reset_close();
  void fin_close();

 private:
  bool fill(Clock::time_point deadline);  // waits for and reads more bytes
  Poco::Net::StreamSocket _sock;
  std::string _buf;
  bool _closed = false;
  bool _reset = false;
  bool _close_on_eof = true;
};

// Polls all clients (poll(2)) until `done()` is true or `timeout` passes, handing every complete
// frame to on_frame(index, frame). Returns done().
bool pump_clients(const std::vector<RawClient*>& clients,
                  const std::function<void(size_t, Frame&&)>& on_frame,
                  const std::function<bool()>& done, Millis timeout);

}  // namespace flowrelay::itest
