// Deliveries that are not valid UTF-8 (a backend's raw PUBLISH into Redis) are repaired with
// U+FFFD instead of being sent as invalid text frames or dropped.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "utf8_repair.h"

using flowrelay::stream::is_valid_utf8;
using flowrelay::stream::repair_utf8;

namespace {
const std::string kFffd = "\xEF\xBF\xBD";
}

TEST(Utf8Repair, ValidTextIsKeptByteForByte) {
  for (const std::string& s :
       std::vector<std::string>{"", "hello", "h\xC3\xA9llo", "\xE6\x97\xA5\xE6\x9C\xAC",
                                "\xF0\x9F\x98\x80 emoji", std::string("nul\0byte", 8)}) {
    EXPECT_TRUE(is_valid_utf8(s)) << s;
    EXPECT_EQ(repair_utf8(s), s);
  }
}

TEST(Utf8Repair, LoneInvalidBytesBecomeOneReplacementEach) {
  EXPECT_FALSE(
      is_valid_utf8("a\xFF"
                    "b"));
  EXPECT_EQ(repair_utf8("a\xFF"
                        "b"),
            "a" + kFffd + "b");
  EXPECT_EQ(repair_utf8("\x80\x80"), kFffd + kFffd);
}

TEST(Utf8Repair, BrokenSequenceKeepsTheByteThatBrokeIt) {
  // C3 starts a 2-byte sequence; 'x' breaks it and is itself kept.
  EXPECT_EQ(repair_utf8("\xC3x"), kFffd + "x");
  // E6 97 then a new valid 2-byte sequence.
  EXPECT_EQ(repair_utf8("\xE6\x97\xC3\xA9"), kFffd + "\xC3\xA9");
}

TEST(Utf8Repair, OverlongsSurrogatesAndTruncationAreReplaced) {
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));  // overlong '/'
  EXPECT_TRUE(is_valid_utf8(repair_utf8("\xC0\xAF")));
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));  // surrogate D800
  EXPECT_TRUE(is_valid_utf8(repair_utf8("\xED\xA0\x80")));
  EXPECT_EQ(repair_utf8("ok\xE6\x97"), "ok" + kFffd);  // cut at the end
}

TEST(Utf8Repair, OutputIsAlwaysValid) {
  // Every two-byte string: the repaired text always validates.
  for (int a = 0; a < 256; ++a)
    for (int b = 0; b < 256; b += 7) {
      const std::string s{static_cast<char>(a), static_cast<char>(b)};
      ASSERT_TRUE(is_valid_utf8(repair_utf8(s))) << a << " " << b;
    }
}
