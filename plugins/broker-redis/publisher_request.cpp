#include "publisher_request.h"

#include <hiredis/hiredis.h>

#include <string_view>
#include <vector>

#include "history_scripts.h"
#include "redis_command.h"
#include "wire_format.h"

namespace flowrelay::redis {

namespace {

using sdk::str;

// Reply of the append script: {offset, epoch, resent, fenced} (history_scripts.h).
bool parse_appended(const redisReply* r, uint64_t& offset, std::string_view& epoch,
                    long long& resent, bool& fenced) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 4) return false;
  const redisReply* const* e = r->element;
  if (e[0]->type != REDIS_REPLY_INTEGER || !is_string(e[1]) || e[2]->type != REDIS_REPLY_INTEGER ||
      e[3]->type != REDIS_REPLY_INTEGER)
    return false;
  offset = static_cast<uint64_t>(e[0]->integer);
  epoch = str_of(e[1]);
  resent = e[2]->integer;
  fenced = e[3]->integer == 1;
  return e[0]->integer >= 0 && (offset > 0) == (resent != 2) && resent >= 0 && resent <= 2;
}

// Reply of the history script: {epoch, top, trimmed, fenced, then offset, lane, node, session,
// seq, data, reply, error per entry}, oldest first (history_scripts.h). The messages (and their
// replies, in `replies`) view the reply's strings.
constexpr size_t kHeader = 4, kFields = 8;
bool parse_history(const redisReply* r, flowrelay_history& h, bool& fenced,
                   std::vector<flowrelay_message>& messages,
                   std::vector<flowrelay_reply>& replies) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements < kHeader ||
      (r->elements - kHeader) % kFields != 0)
    return false;
  if (!is_string(r->element[0]) || r->element[1]->type != REDIS_REPLY_INTEGER ||
      r->element[2]->type != REDIS_REPLY_INTEGER || r->element[3]->type != REDIS_REPLY_INTEGER)
    return false;
  h.epoch = str(str_of(r->element[0]));
  h.top = static_cast<uint64_t>(r->element[1]->integer);
  h.trimmed = static_cast<uint64_t>(r->element[2]->integer);
  fenced = r->element[3]->integer == 1;
  const size_t n = (r->elements - kHeader) / kFields;
  messages.reserve(n);
  replies.reserve(n);  // never reallocated below: the messages point into it
  for (size_t i = kHeader; i < r->elements; i += kFields) {
    const redisReply* const* f = r->element + i;
    flowrelay_message m{};
    m.struct_size = sizeof m;
    if (!number_of(f[0], m.offset) || !is_string(f[1]) || !number_of(f[2], m.origin.node) ||
        !number_of(f[3], m.origin.session) || !number_of(f[4], m.origin.seq) || !is_string(f[5]) ||
        !is_string(f[6]) || !is_string(f[7]))
      return false;
    m.lane = str_of(f[1]) == "l" ? FLOWRELAY_LANE_LOG : FLOWRELAY_LANE_MESSAGE;
    m.epoch = h.epoch;
    m.data = str(str_of(f[5]));
    if (f[6]->len > 0) {
      flowrelay_reply reply{};
      if (!parse_history_reply(str_of(f[6]), reply)) return false;
      reply.error = str(str_of(f[7]));
      reply.bytes = m.data.len;
      replies.push_back(reply);
      m.reply = &replies.back();
    }
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
  scripted = kind != Kind::Publish || bounds.size > 0;
  if (kind == Kind::Reply) return write_reply(ac, fn, priv, scripts, bounds);
  const Decimal max_age(bounds.max_age_ms), size(bounds.size), max_bytes(bounds.max_bytes);
  if (kind == Kind::History) {
    return write_argv(ac, fn, priv, "EVALSHA", scripts.history_sha, "4",
                      history_stream_key(channel), history_seq_key(channel), replies_key(channel),
                      history_entries_key(channel), Decimal(since), size, max_age, max_bytes,
                      floor_epoch, Decimal(floor_offset));
  }
  const char lane_name = wire_lane(lane).value_or('m');
  if (scripted) {
    return write_argv(ac, fn, priv, "EVALSHA", scripts.append_sha, "4", history_stream_key(channel),
                      history_seq_key(channel), replies_key(channel), history_entries_key(channel),
                      channel, std::string_view(&lane_name, 1), data, size, max_age, max_bytes,
                      Decimal(origin.node), Decimal(origin.session), Decimal(origin.seq),
                      floor_epoch, Decimal(floor_offset));
  }
  // Without history the wire form still carries lane and origin: the subscribers' echo
  // suppression and their drop of a resend (same node and seq) need it.
  return write_argv(ac, fn, priv, scripts.sharded ? "SPUBLISH" : "PUBLISH", channel,
                    encode_wire(lane, 0, {}, origin, data));
}

PublisherRequest::Outcome PublisherRequest::complete(const redisReply* reply, Ack* ack) const {
  Ack ignored;
  if (!ack) ack = &ignored;
  if (kind == Kind::Reply) return complete_reply(reply, ack);
  if (kind == Kind::History) {
    flowrelay_history h = empty_history();
    std::vector<flowrelay_message> messages;
    std::vector<flowrelay_reply> replies;
    if (reply->type == REDIS_REPLY_ERROR ||
        !parse_history(reply, h, ack->fenced, messages, replies)) {
      fail(FLOWRELAY_EINTERNAL);
      return Outcome::Refused;
    }
    if (ack->fenced) ack->epoch.assign(sdk::view(h.epoch));
    if (read) read(ctx, FLOWRELAY_OK, &h);
    return Outcome::Done;
  }
  uint64_t offset = 0;
  std::string_view epoch;
  long long resent = 0;
  const bool ok = reply->type != REDIS_REPLY_ERROR &&
                  (!scripted || parse_appended(reply, offset, epoch, resent, ack->fenced));
  if (ok && offset > 0) {
    ack->epoch.assign(epoch);
    ack->offset = offset;
  }
  if (published) published(ctx, ok ? FLOWRELAY_OK : FLOWRELAY_EINTERNAL, offset, str(epoch));
  if (!ok) return Outcome::Refused;
  return resent == 0 ? Outcome::Done : resent == 1 ? Outcome::Resent : Outcome::ResentLost;
}

void PublisherRequest::fail(flowrelay_status status) const {
  if (read) {
    const flowrelay_history h = empty_history();
    read(ctx, status, &h);
  } else if (replied) {
    flowrelay_reply_published p{};
    p.struct_size = sizeof p;
    p.status = status;
    replied(ctx, &p);
  } else if (published) {
    published(ctx, status, 0, {"", 0});
  }
}

}  // namespace flowrelay::redis
