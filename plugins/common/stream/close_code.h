// Why the server ends a stream: RFC 6455's close codes (section 7.4.1), the vocabulary of every
// transport on the stream library (a WebSocket close frame, an SSE `close` event).
#pragma once

#include <cstdint>

namespace flowrelay::stream {

namespace close_code {
inline constexpr uint16_t Normal = 1000;
inline constexpr uint16_t GoingAway = 1001;
inline constexpr uint16_t ProtocolError = 1002;
inline constexpr uint16_t UnsupportedData = 1003;
inline constexpr uint16_t NoStatus = 1005;  // never sent on the wire
inline constexpr uint16_t InvalidPayload = 1007;
inline constexpr uint16_t PolicyViolation = 1008;
inline constexpr uint16_t TooBig = 1009;
inline constexpr uint16_t InternalError = 1011;
inline constexpr uint16_t TryAgainLater = 1013;
}  // namespace close_code

}  // namespace flowrelay::stream
