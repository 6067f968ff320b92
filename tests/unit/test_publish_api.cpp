// POST /api/publish helpers (daemon/publish_api.h): the API key comparison and the
// conversation id rule it shares with the WebSocket path.
#include <gtest/gtest.h>

#include <string>

#include "publish_api.h"

using flowrelay::constant_time_equal;
using flowrelay::valid_conversation_id;

TEST(ConstantTimeEqual, Equal) {
  EXPECT_TRUE(constant_time_equal("dev-key-123", "dev-key-123"));
  EXPECT_TRUE(constant_time_equal("", "")) << "two empty strings are equal";
  const std::string binary("a\0b", 3);
  EXPECT_TRUE(constant_time_equal(binary, std::string("a\0b", 3)));
}

TEST(ConstantTimeEqual, DifferentContentOfTheSameLength) {
  EXPECT_FALSE(constant_time_equal("dev-key-123", "dev-key-124"));
  EXPECT_FALSE(constant_time_equal("Xev-key-123", "dev-key-123"));
  EXPECT_FALSE(constant_time_equal(std::string("a\0b", 3), std::string("a\0c", 3)));
}

TEST(ConstantTimeEqual, DifferentLength) {
  EXPECT_FALSE(constant_time_equal("dev-key", "dev-key-123")) << "a prefix is not the key";
  EXPECT_FALSE(constant_time_equal("dev-key-123", "dev-key")) << "the key plus more is not it";
  EXPECT_FALSE(constant_time_equal("abcabc", "abc")) << "a repetition of the key is not it";
  EXPECT_FALSE(constant_time_equal("", "dev-key-123")) << "a missing header is not the key";
  EXPECT_FALSE(constant_time_equal("dev-key-123", ""));
}

TEST(PublishApiConversationId, SameRuleAsTheWebSocketPath) {
  EXPECT_TRUE(valid_conversation_id("42", 128));
  EXPECT_TRUE(valid_conversation_id("a-b_c.d:e-Z9", 128));
  EXPECT_TRUE(valid_conversation_id(std::string(128, 'a'), 128));
  EXPECT_FALSE(valid_conversation_id(std::string(129, 'a'), 128));
  EXPECT_TRUE(valid_conversation_id("abcd", 4));
  EXPECT_FALSE(valid_conversation_id("abcde", 4)) << "max_length is honoured";
  EXPECT_FALSE(valid_conversation_id("", 128));
  for (const char* bad : {"a b", "a/b", "a%20b", "a?b", "chat*", "caf\xc3\xa9", "a\nb", "a\"b"})
    EXPECT_FALSE(valid_conversation_id(bad, 128)) << "'" << bad << "' must be refused";
  EXPECT_FALSE(valid_conversation_id(std::string("a\0b", 3), 128));
}
