// EventLoop: what the backend hears of its sessions, through the host's ABI 2.1 calls. Client
// publishes (publish_client(), or publish() on a 2.0 daemon) and their outcome's way back to the
// session on this loop's thread (publish_link.h), the connect proxy's verdict on a parked
// handshake, join/leave events. See docs/PROTOCOL.md.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <new>

#include "envelope_reply.h"
#include "event_loop.h"
#include "utf8_repair.h"

namespace flowrelay::stream {

namespace {

// "ip:port" ("[ip]:port" for IPv6) of the peer, in `buf`. Only the address bytes are kept per
// connection (the per-IP cap needs them), so it is formatted here, when the backend asks.
std::string_view remote_addr(const Connection& c, char (&buf)[64]) {
  char ip[INET6_ADDRSTRLEN] = "";
  const bool v4 = std::all_of(c.ip.begin(), c.ip.begin() + 10, [](uint8_t b) { return b == 0; }) &&
                  c.ip[10] == 0xff && c.ip[11] == 0xff;
  if (v4)
    inet_ntop(AF_INET, c.ip.data() + 12, ip, sizeof ip);
  else
    inet_ntop(AF_INET6, c.ip.data(), ip, sizeof ip);
  const int n = std::snprintf(buf, sizeof buf, v4 ? "%s:%u" : "[%s]:%u", ip, unsigned(c.port));
  return {buf, n > 0 ? std::min(size_t(n), sizeof buf - 1) : 0};
}

// Who the client is, publishing into or joined to `channel`. Borrows from `c`, `channel`,
// `transport` and `addr`.
flowrelay_client_info client_info(const Connection& c, std::string_view channel, size_t prefix_len,
                                  std::string_view transport, char (&addr)[64]) {
  return {sizeof(flowrelay_client_info),
          c.id(),
          sdk::str(channel.substr(std::min(prefix_len, channel.size()))),
          sdk::str(c.user()),
          sdk::str(remote_addr(c, addr)),
          sdk::str(transport)};
}

// What reaches a client must be valid UTF-8 (a close reason, a JSON string).
std::string client_text(flowrelay_str s) {
  const std::string_view v = sdk::view(s);
  return is_valid_utf8(v) ? std::string(v) : repair_utf8(v);
}

uint32_t code_of(flowrelay_status status) {
  if (status == FLOWRELAY_EAGAIN || status == FLOWRELAY_EUNAVAIL) return 503;
  if (status == FLOWRELAY_EUNSUPPORTED) return 501;
  return 500;
}

// A publish with an id, or one whose success must be answered too (transport-sse's POST);
// one without either passes its link as the context (no allocation).
struct PublishCall {
  PublishLink* link;  // one reference
  std::string id;
  bool answer_success = false;
};

struct Result {
  bool ok;
  bool relayed;
  uint32_t code;
  uint64_t offset;
  flowrelay_str epoch;
  flowrelay_str reason;
  // Reply steps (flowrelay_reply_published).
  bool duplicate = false;
  uint64_t expected_seq = 0;
  flowrelay_str ended{};
};

// [any thread, maybe inside the publish call] Takes over one reference of `link`. A success
// nobody asked to hear of ends here; the rest is copied and posted to the connection's loop.
void hand_back(PublishLink* link, std::string&& id, bool answer_success, const Result& r) noexcept {
  if (r.ok && id.empty() && !answer_success) return link->unref();
  PublishAnswer* raw = new (std::nothrow) PublishAnswer(link);
  if (!raw) return link->unref();  // out of memory: this one answer is lost, not the session
  std::unique_ptr<PublishAnswer> answer(raw);
  try {
    PublishOutcome& o = answer->outcome;
    o.id = std::move(id);
    o.ok = r.ok;
    o.relayed = r.relayed;
    o.code = r.code;
    o.offset = r.offset;
    o.epoch.assign(r.epoch.ptr, r.epoch.len);
    if (!r.ok) o.reason = client_text(r.reason);
    o.duplicate = r.duplicate;
    o.expected_seq = r.expected_seq;
    if (r.ended.len) o.ended = client_text(r.ended);
    link->loop->post_published(std::move(answer));
  } catch (const std::bad_alloc&) {
  }
}

template <bool kWithId>
PublishLink* take_context(void* ctx, std::string& id, bool& answer_success) {
  answer_success = false;
  if constexpr (kWithId) {
    std::unique_ptr<PublishCall> call(static_cast<PublishCall*>(ctx));
    id = std::move(call->id);
    answer_success = call->answer_success;
    return call->link;
  } else {
    return static_cast<PublishLink*>(ctx);
  }
}

template <bool kWithId>
void client_published(void* ctx, const flowrelay_client_published* r) noexcept {
  std::string id;
  bool always;
  PublishLink* link = take_context<kWithId>(ctx, id, always);
  if (!r) return hand_back(link, std::move(id), always, {false, false, 500, 0, {}, {}});
  const bool ok = r->status == FLOWRELAY_OK;
  hand_back(link, std::move(id), always,
            {ok, r->relayed != 0, ok ? 0 : (r->code ? r->code : code_of(r->status)), r->offset,
             r->epoch, r->reason});
}

// publish() of a 2.0 daemon: what it publishes is relayed.
template <bool kWithId>
void broker_published(void* ctx, flowrelay_status status, uint64_t offset,
                      flowrelay_str epoch) noexcept {
  std::string id;
  bool always;
  PublishLink* link = take_context<kWithId>(ctx, id, always);
  const bool ok = status == FLOWRELAY_OK;
  hand_back(link, std::move(id), always, {ok, true, ok ? 0 : code_of(status), offset, epoch, {}});
}

uint32_t reply_code(flowrelay_status status) {
  if (status == FLOWRELAY_ECONFLICT) return 409;
  if (status == FLOWRELAY_ETOOBIG) return 413;
  if (status == FLOWRELAY_EINVAL) return 400;
  return code_of(status);
}

template <bool kWithId>
void reply_published(void* ctx, const flowrelay_reply_published* r) noexcept {
  std::string id;
  bool always;
  PublishLink* link = take_context<kWithId>(ctx, id, always);
  if (!r) return hand_back(link, std::move(id), always, {false, false, 500, 0, {}, {}});
  const bool ok = r->status == FLOWRELAY_OK;
  Result result{ok, true, ok ? 0 : reply_code(r->status), r->offset, r->epoch, {}};
  result.duplicate = ok && r->duplicate != 0;
  result.expected_seq = r->expected_seq;
  result.ended = r->ended;
  hand_back(link, std::move(id), always, result);
}

struct ConnectCall {
  EventLoop* loop;
  std::unique_ptr<ConnectAnswer> answer;
};

// [any thread, maybe inside authorize()] Copies the verdict for the loop.
void connect_answered(void* ctx, const flowrelay_connect_result* r) noexcept {
  std::unique_ptr<ConnectCall> call(static_cast<ConnectCall*>(ctx));
  try {
    ConnectAnswer& a = *call->answer;
    if (r) {
      a.code = r->code;
      a.can_publish = r->can_publish != 0;
      a.user.assign(r->user.ptr, r->user.len);
      a.reason = client_text(r->reason);
    }
    call->loop->post_authorized(std::move(call->answer));
  } catch (const std::bad_alloc&) {
    // The loop's inbox could not grow: the handshake timer answers 503 instead.
  }
}

}  // namespace

// ---------------------------------------------------------------------------- publish

flowrelay_status EventLoop::publish(Connection& s, flowrelay_lane lane, std::string_view data,
                                    std::string_view id) {
  if (!s.channel) return FLOWRELAY_EINTERNAL;  // not a member: cannot happen while Open
  return publish_on(s, s.channel->name, lane, data, id, false);
}

flowrelay_status EventLoop::publish_to(Connection& s, std::string_view conversation,
                                       flowrelay_lane lane, std::string_view data,
                                       std::string_view id) {
  std::string channel(_ctx.host.channel_prefix());
  channel += conversation;
  return publish_on(s, channel, lane, data, id, true);
}

flowrelay_status EventLoop::publish_on(Connection& c, std::string_view channel, flowrelay_lane lane,
                                       std::string_view data, std::string_view id,
                                       bool answer_success) {
  if (!c.link) c.link = new PublishLink(this, &c);
  // origin.session names the publisher (echo suppression); the daemon adds origin.node.
  const flowrelay_message m = sdk::make_message(lane, data, c.id());
  std::unique_ptr<PublishCall> call;
  void* ctx = c.link;
  if (!id.empty() || answer_success) {
    call.reset(new PublishCall{c.link, std::string(id), answer_success});
    ctx = call.get();
  }
  c.link->ref();  // the completion's
  flowrelay_status status;
  if (_ctx.host.has_publish_client()) {
    char addr[64];
    const flowrelay_client_info info =
        client_info(c, channel, _ctx.host.channel_prefix().size(), _ctx.transport_name, addr);
    status = _ctx.host.publish_client(channel, m, info,
                                      call ? client_published<true> : client_published<false>, ctx);
  } else {
    status =
        _ctx.host.publish(channel, m, call ? broker_published<true> : broker_published<false>, ctx);
  }
  if (status == FLOWRELAY_OK || status == FLOWRELAY_PENDING) {
    call.release();  // the completion owns it (and may have run already)
    return FLOWRELAY_OK;
  }
  c.link->unref();  // no completion follows
  return status;
}

// A producer's step goes to the broker through the host (never through the publish proxy; the
// client info lets the daemon tell the backend of a cancel).
flowrelay_status EventLoop::publish_reply(Connection& s, const ClientReplyStep& step,
                                          std::string_view data, std::string_view id) {
  Connection& c = s;
  if (!c.channel) return FLOWRELAY_EINTERNAL;
  if (!c.link) c.link = new PublishLink(this, &c);
  const bool delta = step.kind == FLOWRELAY_KIND_DELTA;
  flowrelay_message m =
      sdk::make_message(FLOWRELAY_LANE_MESSAGE, delta ? data : std::string_view(), s.id());
  const std::string_view reason = step.kind != FLOWRELAY_KIND_END ? ""
                                  : step.cancel                   ? "cancelled"
                                  : step.has_error                ? "error"
                                                                  : "done";
  const flowrelay_reply reply{sizeof reply,
                              step.kind,
                              sdk::str(step.reply),
                              delta ? step.seq : 0,
                              sdk::str(reason),
                              sdk::str(step.has_error ? step.error : std::string_view()),
                              -1,
                              -1,
                              0};
  m.reply = &reply;
  std::unique_ptr<PublishCall> call;
  void* ctx = c.link;
  if (!id.empty()) {
    call.reset(new PublishCall{c.link, std::string(id)});
    ctx = call.get();
  }
  c.link->ref();  // the completion's
  char addr[64];
  const flowrelay_client_info info =
      client_info(c, c.channel->name, _ctx.host.channel_prefix().size(), _ctx.transport_name, addr);
  const flowrelay_status status = _ctx.host.publish_reply(
      c.channel->name, m, &info, call ? reply_published<true> : reply_published<false>, ctx);
  if (status == FLOWRELAY_OK || status == FLOWRELAY_PENDING) {
    call.release();  // the completion owns it (and may have run already)
    return FLOWRELAY_OK;
  }
  c.link->unref();  // no completion follows
  return status;
}

void EventLoop::post_published(std::unique_ptr<PublishAnswer> answer) {
  Item item{Item::Published};
  item.published = std::move(answer);
  post(std::move(item));
}

void EventLoop::on_published(std::unique_ptr<PublishAnswer> answer) {
  Connection* c = answer->link->conn;
  if (!c) return;  // closed meanwhile: nobody to tell
  c->published(answer->outcome);
  settle(c);
}

// ---------------------------------------------------------------------------- connect proxy

flowrelay_status EventLoop::authorize(Connection& s, std::string_view conversation,
                                      std::string_view cookie, std::string_view authorization) {
  Connection& c = s;
  char addr[64];
  const flowrelay_connect_request request{sizeof(flowrelay_connect_request),
                                          sdk::str(conversation),
                                          sdk::str(cookie),
                                          sdk::str(authorization),
                                          sdk::str(remote_addr(c, addr)),
                                          sdk::str(_ctx.transport_name)};
  auto call = std::make_unique<ConnectCall>(ConnectCall{this, std::make_unique<ConnectAnswer>()});
  call->answer->session = s.id();
  call->answer->conversation.assign(conversation);
  const flowrelay_status status = _ctx.host.authorize(request, connect_answered, call.get());
  if (status != FLOWRELAY_OK) return status;
  call.release();  // connect_answered owns it; its answer is handled on a later pass
  c.authorizing = true;
  _authorizing[s.id()] = &c;
  return status;
}

void EventLoop::post_authorized(std::unique_ptr<ConnectAnswer> answer) {
  Item item{Item::Authorized};
  item.connect = std::move(answer);
  post(std::move(item));
}

void EventLoop::on_authorized(std::unique_ptr<ConnectAnswer> answer) {
  auto it = _authorizing.find(answer->session);
  if (it == _authorizing.end()) return;  // the client left meanwhile
  Connection* c = it->second;
  _authorizing.erase(it);
  c->authorizing = false;
  c->authorized(*answer);
  settle(c);
}

// ---------------------------------------------------------------------------- join/leave

void EventLoop::opened(Connection& s) { client_event(&s, true); }

void EventLoop::client_event(Connection* c, bool joined) {
  if (!c->channel) return;
  c->joined_event = joined;
  char addr[64];
  _ctx.host.client_event(joined,
                         client_info(*c, c->channel->name, _ctx.host.channel_prefix().size(),
                                     _ctx.transport_name, addr));
}

}  // namespace flowrelay::stream
