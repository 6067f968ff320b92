// A client's message on its way into the router, reported the way publish_client() promises
// (flowrelay_client_published): used after the publish proxy's verdict and, without a proxy,
// for every client message.
#pragma once

#include <flowrelay/plugin.h>

#include <cstdint>
#include <string_view>

namespace flowrelay {

class Router;

// Publishes through the router; the broker's outcome reaches `done` as relayed = 1 with the
// offset and epoch, or as code 503 (501 for a lane the broker does not carry). Returns the
// router's status: OK or PENDING, then `done` runs exactly once (maybe before this returns);
// anything else, then it does not run.
flowrelay_status relay_client_message(Router& router, std::string_view channel,
                                      const flowrelay_message& message,
                                      flowrelay_client_published_fn done, void* ctx);

// The completion of a message that was not relayed: OK with relayed = 0 (accepted privately),
// or an error status with the code and reason for the client.
void report_client_message(flowrelay_client_published_fn done, void* ctx, flowrelay_status status,
                           uint32_t code, std::string_view reason);

// The client-facing code of a broker status that lost a message (501 unsupported lane, 503).
uint32_t client_code_of(flowrelay_status broker_status);
std::string_view client_reason_of(flowrelay_status broker_status);

}  // namespace flowrelay
