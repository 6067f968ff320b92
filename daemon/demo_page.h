// The demo chat page (clients/demo/ and clients/js/flowrelay.js) under /demo/, when the config
// says `http.demo: true`. The files are compiled into flowrelayd (cmake/EmbedFiles.cmake), so a
// packaged daemon serves them without files of its own to install or find.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "http_route.h"

namespace flowrelay {

struct Config;

// One embedded file: its name under /demo/ ("index.html", "flowrelay.js") and its bytes.
struct EmbeddedFile {
  std::string_view name;
  std::string_view body;
};

// Defined by the generated demo_files.cpp.
std::span<const EmbeddedFile> demo_files();

class DemoPage {
 public:
  // `ws_port`/`ws_path`: where the page's WebSocket goes (GET /demo/config.json answers
  // ws://<the host the page was loaded from>:<ws_port><ws_path>).
  DemoPage(uint16_t ws_port, std::string ws_path);

  // The first transport-ws section's listen port and path. Throws std::runtime_error if the
  // config has no transport-ws (the page would have nothing to connect to).
  static DemoPage from_config(const Config& config);

  // GET /demo/ (index.html), /demo/<file>, /demo/config.json; 404 for other names, 405 for
  // other methods. Answers at once; any listener thread.
  void handle(const HttpRequest& req, HttpReply reply) const;

 private:
  std::string config_json(const HttpRequest& req) const;

  uint16_t _ws_port;
  std::string _ws_path;
};

}  // namespace flowrelay
