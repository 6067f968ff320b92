// What a producer's reply step must look like before it reaches the broker (plugin_reply.h):
// the checks the transport host and the publish API share.
#pragma once

#include <flowrelay/plugin.h>

#include <string>
#include <string_view>

namespace flowrelay {

// 1 to 64 characters of 0x21-0x7E.
bool valid_reply_id(std::string_view id);

// Why a step from a producer is malformed, "" when it is fine: kind OPEN, DELTA (seq >= 1) or
// END (reason done or error; "cancelled" only from a client, `from_client`), a valid id.
// producer_lost is the daemon's own and never taken from a producer.
std::string reply_step_problem(const flowrelay_reply& reply, bool from_client);

}  // namespace flowrelay
