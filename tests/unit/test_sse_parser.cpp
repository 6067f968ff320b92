// The test support's SSE parser (tests/support/sse_client.h) against the HTML Living Standard's
// "event stream interpretation" on canned bytes: the transport-sse tests trust it to read what
// a browser's EventSource would read, so it is checked on its own first.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/sse_client.h"

namespace {

using flowrelay::test::SseEvent;
using flowrelay::test::SseParser;

// Everything the parser produced from `chunks`, fed one after the other.
std::vector<SseEvent> parse(const std::vector<std::string>& chunks, SseParser& p) {
  for (const auto& c : chunks) p.feed(c);
  std::vector<SseEvent> out;
  while (auto e = p.pop()) out.push_back(std::move(*e));
  return out;
}
std::vector<SseEvent> parse(const std::vector<std::string>& chunks) {
  SseParser p;
  return parse(chunks, p);
}

// The same bytes fed whole, then split at every position, then one byte at a time: the result
// never depends on how the bytes arrived.
std::vector<SseEvent> parse_every_split(const std::string& bytes) {
  const auto whole = parse({bytes});
  for (size_t cut = 1; cut < bytes.size(); ++cut) {
    const auto split = parse({bytes.substr(0, cut), bytes.substr(cut)});
    EXPECT_EQ(split.size(), whole.size()) << "split at " << cut;
    for (size_t i = 0; i < std::min(split.size(), whole.size()); ++i) {
      EXPECT_EQ(split[i].describe(), whole[i].describe()) << "split at " << cut;
    }
  }
  std::vector<std::string> bytewise;
  for (char c : bytes) bytewise.emplace_back(1, c);
  const auto single = parse(bytewise);
  EXPECT_EQ(single.size(), whole.size()) << "byte by byte";
  for (size_t i = 0; i < std::min(single.size(), whole.size()); ++i) {
    EXPECT_EQ(single[i].describe(), whole[i].describe()) << "byte by byte";
  }
  return whole;
}

TEST(SseParser, TheProtocolsMessageFrameIsOneMessageEventWithItsId) {
  SseParser p;
  const auto ev = parse({"retry: 1000\n\n", "id: e1:7\ndata: hello\n\n"}, p);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_FALSE(ev[0].comment);
  EXPECT_EQ(ev[0].event, "message");
  EXPECT_EQ(ev[0].data, "hello");
  EXPECT_EQ(ev[0].id, "e1:7");
  EXPECT_EQ(p.retry_ms(), std::optional<uint64_t>(1000));
  EXPECT_EQ(p.last_event_id(), "e1:7");
}

TEST(SseParser, CrLfCrlfAndMixedLineEndsGiveTheSameEvents) {
  for (const std::string eol : {"\n", "\r", "\r\n"}) {
    const std::string s = "event: log" + eol + "id: 1" + eol + "data: a" + eol + "data: b" + eol +
                          eol + "data: c" + eol + eol;
    const auto ev = parse_every_split(s);
    ASSERT_EQ(ev.size(), 2u) << "line end " << testing::PrintToString(eol);
    EXPECT_EQ(ev[0].event, "log");
    EXPECT_EQ(ev[0].data, "a\nb");
    EXPECT_EQ(ev[0].id, "1");
    EXPECT_EQ(ev[1].event, "message") << "the type does not carry over to the next event";
    EXPECT_EQ(ev[1].data, "c");
  }
  // All three in one stream; "\r\r" is two line ends (a blank line), "\r\n" only one.
  const auto ev = parse_every_split("data: x\r\ndata: y\rdata: z\n\r\ndata: w\r\r");
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].data, "x\ny\nz");
  EXPECT_EQ(ev[1].data, "w");
}

TEST(SseParser, ACrAtTheEndOfOneReadAndItsLfInTheNextAreOneLineEnd) {
  // Were the LF taken as a second line end, the blank line would dispatch "a" alone.
  const auto ev = parse({"data: a\r", "\ndata: b\r", "\n\r", "\n"});
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, "a\nb");
}

TEST(SseParser, OnlyOneLeadingSpaceOfTheValueIsStripped) {
  const auto ev = parse_every_split(
      "data:no space\n\ndata:  two spaces\n\ndata:\ttab\n\ndata: trailing \n\n"
      "data: a: b\n\n");
  ASSERT_EQ(ev.size(), 5u);
  EXPECT_EQ(ev[0].data, "no space");
  EXPECT_EQ(ev[1].data, " two spaces");
  EXPECT_EQ(ev[2].data, "\ttab");
  EXPECT_EQ(ev[3].data, "trailing ");
  EXPECT_EQ(ev[4].data, "a: b") << "the field ends at the first colon";
}

TEST(SseParser, EmptyDataLinesMakeLineBreaksAndAFieldWithoutColonHasAnEmptyValue) {
  const auto ev = parse_every_split("data\ndata\n\ndata:\ndata: x\ndata:\n\n");
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].data, "\n") << "two empty data lines: one LF (the last one is removed)";
  EXPECT_EQ(ev[1].data, "\nx\n");
}

TEST(SseParser, AnEventWithoutDataIsNotDispatchedAndItsTypeIsDropped) {
  const auto ev = parse_every_split("event: open\n\nid: 5\n\ndata: after\n\n");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].event, "message") << "event: of an undispatched event leaked into the next";
  EXPECT_EQ(ev[0].id, "5") << "an id: alone still sets the last event ID";
}

TEST(SseParser, TheLastEventIdPersistsUntilTheServerSetsItAgain) {
  SseParser p;
  const auto ev = parse(
      {"id: a:1\ndata: one\n\n", "data: two\n\n", "id: a:3\ndata: three\n\n", "id\ndata: four\n\n"},
      p);
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[0].id, "a:1");
  EXPECT_EQ(ev[1].id, "a:1") << "an event without id: keeps the previous one";
  EXPECT_EQ(ev[2].id, "a:3");
  EXPECT_EQ(ev[3].id, "") << "an id field without a value resets it";
  EXPECT_EQ(p.last_event_id(), "");
  // A NULL inside the id (a literal with an explicit length).
  SseParser q;
  const std::string with_null("id: a:1\n\nid: x\0y\ndata: d\n\n", 26);
  const auto nul = parse({with_null}, q);
  ASSERT_EQ(nul.size(), 1u);
  EXPECT_EQ(nul[0].id, "a:1") << "an id: containing NULL is ignored";
}

TEST(SseParser, CommentsAreReportedApartAndDoNotTouchTheEvent) {
  const auto ev = parse_every_split(": hb\n\ndata: a\n:inside\ndata: b\n\n:\n");
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_TRUE(ev[0].comment);
  EXPECT_EQ(ev[0].data, " hb");
  EXPECT_TRUE(ev[1].comment);
  EXPECT_EQ(ev[1].data, "inside");
  EXPECT_FALSE(ev[2].comment);
  EXPECT_EQ(ev[2].data, "a\nb");
  EXPECT_TRUE(ev[3].comment);
  EXPECT_EQ(ev[3].data, "");
}

TEST(SseParser, RetryNeedsOnlyDigitsAndUnknownFieldsAreIgnored) {
  SseParser p;
  const auto ev = parse({"retry: 1500\n", "retry: 2x\nretry: -1\nretry:\nretry:  30\n",
                         "foo: bar\nData: no\nid : no\ndata: ok\n\n"},
                        p);
  EXPECT_EQ(p.retry_ms(), std::optional<uint64_t>(1500));
  ASSERT_EQ(ev.size(), 1u) << "field names are case-sensitive; \"id \" is not id";
  EXPECT_EQ(ev[0].data, "ok");
  EXPECT_EQ(ev[0].id, "");
}

TEST(SseParser, AnEventCutOffByTheEndOfTheStreamIsDiscarded) {
  SseParser p;
  auto ev = parse({"data: whole\n\ndata: half"}, p);
  ASSERT_EQ(ev.size(), 1u);
  p.finish();
  p.feed("\n\n");  // nothing after the end counts; the cut line was discarded
  EXPECT_FALSE(p.pop().has_value());
  // Without a trailing blank line even a complete data line is not an event.
  SseParser q;
  EXPECT_TRUE(parse({"data: no blank line\n"}, q).empty());
  q.finish();
  EXPECT_FALSE(q.pop().has_value());
}

TEST(SseParser, OneLeadingByteOrderMarkIsSkippedEvenWhenSplit) {
  const std::string bom = "\xEF\xBB\xBF";
  auto ev = parse({"\xEF", "\xBB",
                   "\xBF"
                   "data: x\n\n"});
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, "x");
  // A second one is part of the first line: "\uFEFFdata" is not the data field.
  EXPECT_TRUE(parse({bom + bom + "data: y\n\n"}).empty());
  // Not a BOM: the bytes are kept.
  ev = parse({"\xEF", "data: z\n\n"});
  EXPECT_TRUE(ev.empty()) << "\"\\xEFdata\" is an unknown field";
  ev = parse({"d", "ata: z\n\n"});
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, "z");
}

TEST(SseParser, MultiLineTextSentAsTheProtocolSaysReadsBackWithLfLineEnds) {
  // The server splits "l1\r\nl2\rl3\nl4" on CRLF, CR or LF into one data: line each.
  const auto ev = parse_every_split("id: E:3\ndata: l1\ndata: l2\ndata: l3\ndata: l4\n\n");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, "l1\nl2\nl3\nl4");
  EXPECT_EQ(ev[0].id, "E:3");
}

}  // namespace
