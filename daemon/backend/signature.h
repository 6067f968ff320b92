// How the daemon signs what it sends to the backend, so that the backend can reject forgeries
// and replays: X-Flowrelay-Timestamp: <unix seconds>, X-Flowrelay-Signature: sha256=<hex of
// HMAC-SHA256(secret, timestamp + "." + body)>.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace flowrelay {

inline constexpr const char* kTimestampHeader = "X-Flowrelay-Timestamp";
inline constexpr const char* kSignatureHeader = "X-Flowrelay-Signature";

// "sha256=" + lowercase hex HMAC-SHA256(secret, timestamp + "." + body).
std::string backend_signature(std::string_view secret, std::string_view timestamp,
                              std::string_view body);

// The current time as X-Flowrelay-Timestamp wants it (whole seconds since 1970).
std::string unix_timestamp_now();

}  // namespace flowrelay
