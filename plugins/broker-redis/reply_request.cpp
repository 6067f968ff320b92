// A reply step on the publisher link (PublisherRequest::Kind::Reply): its EVALSHA of the reply
// script (reply_scripts.h) and the outcome handed to the producer's completion.
#include <hiredis/hiredis.h>

#include "history_scripts.h"
#include "publisher_request.h"
#include "redis_command.h"

namespace flowrelay::redis {

namespace {

char step_letter(flowrelay_kind step) {
  return step == FLOWRELAY_KIND_OPEN ? 'o' : step == FLOWRELAY_KIND_DELTA ? 'd' : 'e';
}

}  // namespace

int PublisherRequest::write_reply(redisAsyncContext* ac, redisCallbackFn* fn, void* priv,
                                  const HistoryScripts& scripts, HistoryBounds bounds) const {
  const char letter = step_letter(step);
  return write_argv(ac, fn, priv, "EVALSHA", scripts.reply_sha, "5", history_stream_key(channel),
                    history_seq_key(channel), replies_key(channel), history_entries_key(channel),
                    reply_text_key(channel, reply_id), channel, std::string_view(&letter, 1),
                    reply_id, Decimal(reply_seq), reason, data, Decimal(bounds.size),
                    Decimal(bounds.max_age_ms), Decimal(bounds.max_bytes), Decimal(origin.node),
                    Decimal(origin.session), floor_epoch, Decimal(floor_offset));
}

// {result 0 stored | 1 duplicate | 2 conflict | 3 too big, offset, epoch, expected_seq, ended,
// fenced}
PublisherRequest::Outcome PublisherRequest::complete_reply(const redisReply* r, Ack* ack) const {
  flowrelay_reply_published p{};
  p.struct_size = sizeof p;
  const redisReply* const* e = r->element;
  const bool ok = r->type == REDIS_REPLY_ARRAY && r->elements == 6 &&
                  e[0]->type == REDIS_REPLY_INTEGER && e[0]->integer >= 0 && e[0]->integer <= 3 &&
                  e[1]->type == REDIS_REPLY_INTEGER && e[1]->integer >= 0 && is_string(e[2]) &&
                  e[3]->type == REDIS_REPLY_INTEGER && e[3]->integer >= 0 && is_string(e[4]) &&
                  e[5]->type == REDIS_REPLY_INTEGER;
  if (!ok) {
    p.status = FLOWRELAY_EINTERNAL;
    if (replied) replied(ctx, &p);
    return Outcome::Refused;
  }
  static constexpr flowrelay_status kStatus[] = {FLOWRELAY_OK, FLOWRELAY_OK, FLOWRELAY_ECONFLICT,
                                                 FLOWRELAY_ETOOBIG};
  p.status = kStatus[e[0]->integer];
  p.duplicate = e[0]->integer == 1;
  p.offset = static_cast<uint64_t>(e[1]->integer);
  p.epoch = sdk::str(str_of(e[2]));
  p.expected_seq = static_cast<uint64_t>(e[3]->integer);
  p.ended = sdk::str(str_of(e[4]));
  ack->fenced = e[5]->integer == 1;
  if (p.offset > 0) {
    ack->epoch.assign(str_of(e[2]));
    ack->offset = p.offset;
  }
  if (replied) replied(ctx, &p);
  return e[0]->integer == 0 ? Outcome::Done : Outcome::Answered;
}

}  // namespace flowrelay::redis
