#include "publisher_request.h"

#include <hiredis/hiredis.h>

#include <charconv>
#include <string_view>
#include <vector>

#include "history_scripts.h"
#include "wire_format.h"

namespace flowrelay::redis {

namespace {

std::string_view str_of(const redisReply* r) { return {r->str, static_cast<size_t>(r->len)}; }
flowrelay_str view(std::string_view s) { return {s.data(), s.size()}; }

bool is_string(const redisReply* r) {
  return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

int write_argv(redisAsyncContext* ac, redisCallbackFn* fn, void* priv,
               std::initializer_list<std::string_view> args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (std::string_view a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return redisAsyncCommandArgv(ac, fn, priv, static_cast<int>(argv.size()), argv.data(),
                               lens.data());
}

// Reply of the append script: {offset, epoch}.
bool parse_appended(const redisReply* r, uint64_t& offset, std::string_view& epoch) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) return false;
  if (r->element[0]->type != REDIS_REPLY_INTEGER || !is_string(r->element[1])) return false;
  offset = static_cast<uint64_t>(r->element[0]->integer);
  epoch = str_of(r->element[1]);
  return offset > 0;
}

// Reply of the history script: {epoch, top, offset, lane, data, offset, lane, data...}, the
// messages oldest first. The messages view the reply's strings.
bool parse_history(const redisReply* r, flowrelay_history& h,
                   std::vector<flowrelay_message>& messages) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || (r->elements - 2) % 3 != 0) return false;
  if (!is_string(r->element[0]) || r->element[1]->type != REDIS_REPLY_INTEGER) return false;
  h.epoch = view(str_of(r->element[0]));
  h.top = static_cast<uint64_t>(r->element[1]->integer);
  for (size_t i = 2; i < r->elements; i += 3) {
    const redisReply* const* f = r->element + i;
    if (!is_string(f[0]) || !is_string(f[1]) || !is_string(f[2])) return false;
    flowrelay_message m{};
    m.struct_size = sizeof m;
    const std::string_view offset = str_of(f[0]);
    if (std::from_chars(offset.data(), offset.data() + offset.size(), m.offset).ec != std::errc())
      return false;
    m.lane = str_of(f[1]) == "l" ? FLOWRELAY_LANE_LOG : FLOWRELAY_LANE_MESSAGE;
    m.epoch = h.epoch;
    m.data = view(str_of(f[2]));
    messages.push_back(m);
  }
  h.messages = messages.empty() ? nullptr : messages.data();
  h.count = messages.size();
  return true;
}

flowrelay_history empty_history() {
  flowrelay_history h{};
  h.struct_size = sizeof h;
  return h;
}

}  // namespace

int PublisherRequest::write(redisAsyncContext* ac, redisCallbackFn* fn, void* priv,
                            const HistoryScripts& scripts, HistoryBounds bounds) {
  const std::string stream = history_stream_key(channel), seq = history_seq_key(channel);
  const std::string max_age = std::to_string(bounds.max_age_ms);
  scripted = kind == Kind::History || bounds.size > 0;
  if (kind == Kind::History) {
    return write_argv(ac, fn, priv,
                      {"EVALSHA", scripts.history_sha, "2", stream, seq, std::to_string(since),
                       std::to_string(bounds.size), max_age});
  }
  const char lane_name = wire_lane(lane).value_or('m');
  if (scripted) {
    return write_argv(
        ac, fn, priv,
        {"EVALSHA", scripts.append_sha, "2", stream, seq, channel, std::string_view(&lane_name, 1),
         data, std::to_string(bounds.size), max_age});
  }
  // Without history the message lane keeps today's plain payload (raw clients and backends
  // subscribed to the channel see exactly what was sent); other lanes need the wire form.
  if (lane == FLOWRELAY_LANE_MESSAGE) return write_argv(ac, fn, priv, {"PUBLISH", channel, data});
  return write_argv(ac, fn, priv, {"PUBLISH", channel, encode_wire(lane, 0, {}, data)});
}

bool PublisherRequest::complete(const redisReply* reply) const {
  if (kind == Kind::History) {
    flowrelay_history h = empty_history();
    std::vector<flowrelay_message> messages;
    if (reply->type == REDIS_REPLY_ERROR || !parse_history(reply, h, messages)) {
      fail(FLOWRELAY_EINTERNAL);
      return false;
    }
    if (read) read(ctx, FLOWRELAY_OK, &h);
    return true;
  }
  uint64_t offset = 0;
  std::string_view epoch;
  const bool ok =
      reply->type != REDIS_REPLY_ERROR && (!scripted || parse_appended(reply, offset, epoch));
  if (published) published(ctx, ok ? FLOWRELAY_OK : FLOWRELAY_EINTERNAL, offset, view(epoch));
  return ok;
}

void PublisherRequest::fail(flowrelay_status status) const {
  if (read) {
    const flowrelay_history h = empty_history();
    read(ctx, status, &h);
  } else if (published) {
    published(ctx, status, 0, {"", 0});
  }
}

}  // namespace flowrelay::redis
