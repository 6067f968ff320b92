// GoogleTest expectations on what an envelope-mode client receives, shared by the integration
// and cluster tests of history and resume.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>

#include "support/envelope_client.h"

namespace flowrelay::test {

// Reads the next frame; it must be a message-lane message with `offset` and `data` (and
// `epoch` when given).
inline void expect_message(EnvelopeClient& c, uint64_t offset, const std::string& data,
                           const std::optional<std::string>& epoch) {
  auto e = c.next(std::chrono::seconds(5));
  ASSERT_TRUE(e.has_value()) << "no frame within 5 s (closed: " << c.closed()
                             << "); expected offset " << offset << " \"" << data << "\"";
  ASSERT_EQ(e->type, "message") << "expected offset " << offset << ", got " << e->describe();
  EXPECT_EQ(e->lane, "message") << e->describe();
  EXPECT_EQ(e->offset, std::optional<uint64_t>(offset)) << e->describe();
  EXPECT_EQ(e->data, data) << e->describe();
  if (epoch) {
    EXPECT_EQ(e->epoch, epoch) << e->describe();
  }
}

// Reads the next frame; it must be a resumed frame. Returns it.
inline Envelope expect_resumed(EnvelopeClient& c) {
  auto e = c.next(std::chrono::seconds(5));
  if (!e) {
    ADD_FAILURE() << "no resumed frame within 5 s (closed: " << c.closed() << ")";
    return {};
  }
  EXPECT_EQ(e->type, "resumed") << "the first frame after the history must be the resumed frame"
                                << " (or, when not recovered, the very first): " << e->describe();
  return *e;
}

// Nothing more arrives within `quiet`.
inline void expect_nothing_more(EnvelopeClient& c,
                                std::chrono::milliseconds quiet = std::chrono::milliseconds(300)) {
  auto e = c.next(quiet);
  EXPECT_FALSE(e.has_value()) << "unexpected extra frame: " << e->describe();
}

}  // namespace flowrelay::test
