// A deep copy of a hiredis reply that outlives its callback: hiredis frees a reply as soon as
// the callback returns, and with wait_replicas a script's reply completes its request only once
// the batch's WAIT answered (publisher.cpp).
#pragma once

#include <hiredis/hiredis.h>

#include <cstring>
#include <memory>

namespace flowrelay::redis {

struct CopiedReplyFree {
  void operator()(redisReply* r) const {
    if (!r) return;
    for (size_t i = 0; i < r->elements; ++i) CopiedReplyFree{}(r->element[i]);
    delete[] r->element;
    delete[] r->str;
    delete r;
  }
};
using CopiedReply = std::unique_ptr<redisReply, CopiedReplyFree>;

inline CopiedReply copy_reply(const redisReply* from) {
  CopiedReply to(new redisReply{});
  to->type = from->type;
  to->integer = from->integer;
  if (from->str) {
    to->str = new char[from->len + 1];
    std::memcpy(to->str, from->str, from->len);
    to->str[from->len] = '\0';
    to->len = from->len;
  }
  if (from->elements > 0) {
    to->element = new redisReply*[from->elements]();
    for (size_t i = 0; i < from->elements; ++i) {
      to->element[i] = copy_reply(from->element[i]).release();
      to->elements = i + 1;  // freed correctly even if a later copy throws
    }
  }
  return to;
}

}  // namespace flowrelay::redis
