// The integration and security suites are written in flowrelay::itest: there the whole test
// support is visible unqualified (daemon, processes, HTTP, metrics, both WebSocket clients).
#pragma once

#include "support/daemon.h"
#include "support/http.h"
#include "support/metrics.h"
#include "support/poco_ws_client.h"
#include "support/ports.h"
#include "support/process.h"
#include "support/temp_dir.h"
#include "support/text.h"
#include "support/wait.h"
#include "support/ws_client.h"
#include "support/ws_frame.h"

namespace flowrelay::itest {
using namespace ::flowrelay::test;
}  // namespace flowrelay::itest
