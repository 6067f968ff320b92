/*
 * flowrelay plugin ABI, version 2.
 *
 * The only contract between flowrelayd and its plugins (brokers and transports). Plain C so
 * that a plugin built with another compiler, standard library or Poco keeps working.
 *
 * Rules that hold for every table and call below:
 *  - A plugin exports exactly one symbol, flowrelay_plugin_entry_v2 (FLOWRELAY_ENTRY_SYMBOL).
 *    ABI 2 is not compatible with ABI 1: the daemon refuses a plugin that exports only
 *    flowrelay_plugin_entry_v1, naming the file and the SDK to rebuild it against.
 *  - One table per direction: the daemon calls the plugin through its vtable, the plugin calls
 *    the daemon through the host API it got in create(). Every table starts with
 *    `uint32_t struct_size` and only ever grows at its end; a slot beyond a table's
 *    struct_size, or NULL where that is allowed, means "not supported". A breaking change
 *    renames the entry symbol (_v3); status codes and log levels are never renumbered.
 *  - Strings are borrowed views ({ptr, len}, not NUL-terminated, may contain NUL bytes) valid
 *    only for the duration of the call. Whoever wants to keep data copies it. Nothing is ever
 *    freed across the boundary.
 *  - No exception, longjmp or signal crosses the boundary (flowrelay/plugin.hpp catches them
 *    for C++ plugins).
 *  - Thread annotations: [main] = the daemon's main thread, never concurrently with another
 *    [main] call of the same plugin instance; [any thread] = may be called concurrently from
 *    several threads; [non-blocking] = must not wait on I/O, sleep or take a lock held across
 *    I/O.
 */
#ifndef FLOWRELAY_PLUGIN_H
#define FLOWRELAY_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FLOWRELAY_ABI_MAJOR 2
#define FLOWRELAY_ABI_MINOR 2
#define FLOWRELAY_ENTRY_SYMBOL "flowrelay_plugin_entry_v2"

#if defined(__GNUC__)
#define FLOWRELAY_EXPORT __attribute__((visibility("default")))
#else
#define FLOWRELAY_EXPORT
#endif

/* True if a table of the given struct_size contains `field` (for slots added after 2.0). */
#define FLOWRELAY_HAS_SLOT(table, type, field) \
  ((table)->struct_size >= offsetof(type, field) + sizeof(((type *)0)->field))

/* A borrowed byte string: valid for the duration of the call only. */
typedef struct flowrelay_str {
  const char *ptr;
  size_t len;
} flowrelay_str;

/* Status codes. Never renumbered; new codes are only appended. */
typedef int32_t flowrelay_status;
#define FLOWRELAY_OK 0           /* done */
#define FLOWRELAY_PENDING 1      /* accepted; completion is reported later by a callback */
#define FLOWRELAY_EINVAL 2       /* bad argument or option; nothing changed */
#define FLOWRELAY_EAGAIN 3       /* temporarily full (buffer bound reached): retry later */
#define FLOWRELAY_EUNAVAIL 4     /* backend unreachable and nothing could be queued */
#define FLOWRELAY_ENOMEM 5       /* out of memory */
#define FLOWRELAY_EUNSUPPORTED 6 /* the operation is not supported by this plugin */
#define FLOWRELAY_EINTERNAL 7    /* any other failure; details go to log/report_error */
#define FLOWRELAY_ECONFLICT 8    /* ABI 2.2: refused, it contradicts the state (a reply's seq) */
#define FLOWRELAY_ETOOBIG 9      /* ABI 2.2: refused, it would exceed a size bound */

/* Log levels (syslog numbering). */
typedef int32_t flowrelay_log_level;
#define FLOWRELAY_LOG_ERROR 3
#define FLOWRELAY_LOG_WARNING 4
#define FLOWRELAY_LOG_NOTICE 5
#define FLOWRELAY_LOG_INFO 6
#define FLOWRELAY_LOG_DEBUG 7

/* One configuration option: a key of the plugin's YAML section and its scalar value. Nested
 * maps are flattened with dots ("timeouts.connect_ms"), lists joined with commas. Borrowed
 * for the call of create() or reconfigure(). */
typedef struct flowrelay_option {
  flowrelay_str key;
  flowrelay_str value;
} flowrelay_option;

/* Where a plugin writes text the daemon collects (metrics): called any number of times with
 * consecutive pieces, each borrowed for the call. */
typedef void (*flowrelay_write_fn)(void *ctx, flowrelay_str text);

#include <flowrelay/plugin_reply.h> /* ABI 2.2: reply streams */

/* Lanes of a conversation. Never renumbered. */
typedef uint32_t flowrelay_lane;
#define FLOWRELAY_LANE_MESSAGE 0 /* the conversation itself: never dropped */
#define FLOWRELAY_LANE_LOG 1     /* progress/trace lines: may be shed first under backpressure */

/* Who published a message. (node, seq) is unique cluster-wide; (node, session) names the
 * publishing session, so a node recognises its sessions' own messages (channels.echo: false).
 *  - node:    the publishing daemon's node_id (random per start, never 0); 0: unknown (the
 *             message entered the backend by other means, e.g. a raw Redis PUBLISH).
 *  - session: the publishing session (from new_session_id()); 0: not a session (publish API).
 *  - seq:     numbers one node's publishes from 1 in the order its broker accepted them. The
 *             host leaves it 0; a broker that can resend (after a lost reply) sets it and
 *             stores and delivers a resent (node, seq) once, with its first offset. 0 from a
 *             broker that never resends. */
typedef struct flowrelay_origin {
  uint64_t node;
  uint64_t session;
  uint64_t seq;
} flowrelay_origin;

/* A message with its place in the channel's history. Borrowed for the call. */
typedef struct flowrelay_message {
  uint32_t struct_size;
  flowrelay_lane lane;
  uint64_t offset;     /* 1, 2, 3... per channel, gap-free; 0 = not kept in history (no history
                        * configured, or a raw publish into the backend); ignored on publish */
  flowrelay_str epoch; /* names the history's lifetime: a new epoch restarts offsets at 1;
                        * empty when offset is 0; ignored on publish */
  flowrelay_origin origin;
  flowrelay_str data;
  /* ABI 2.2 (read it with flowrelay_reply_of()): the reply this message belongs to, NULL for a
   * plain message. */
  const flowrelay_reply *reply;
} flowrelay_message;

/* ABI 2.2. A message's reply info, NULL when it has none or comes from an older plugin. */
static inline const flowrelay_reply *flowrelay_reply_of(const flowrelay_message *m) {
  return FLOWRELAY_HAS_SLOT(m, flowrelay_message, reply) ? m->reply : NULL;
}

/* Completion of a publish: FLOWRELAY_OK with the offset and epoch assigned (offset 0 and an
 * empty epoch if the broker keeps no history; offset 0 with the epoch in the rare case of a
 * resend whose first copy was trimmed from history before its offset could be read back), or
 * the error that lost the message. */
typedef void (*flowrelay_published_fn)(void *ctx, flowrelay_status status, uint64_t offset,
                                       flowrelay_str epoch);

/* What a history read found: the channel's current epoch and newest offset, and the messages
 * after `since` still kept, oldest first, each with the origin it was published with ({0,0,0}
 * when the broker does not know it). Borrowed for the call of the completion. */
typedef struct flowrelay_history {
  uint32_t struct_size;
  flowrelay_str epoch; /* empty if the channel has no history (never published, or expired) */
  uint64_t top;        /* offset of the newest message ever published in this epoch (0: none) */
  const flowrelay_message *messages; /* offsets > since, ascending, contiguous; may start
                                      * after since + 1 when older ones were trimmed. ABI 2.2:
                                      * with replies not contiguous (plugin_reply.h: a reply's
                                      * deltas are covered by its SNAPSHOT or REPLY entry) */
  size_t count;
  /* ABI 2.2 (check with FLOWRELAY_HAS_SLOT): every message with an offset above this one is
   * in `messages` or covered by one of its reply entries; older ones may have been trimmed.
   * A reader at `since` >= trimmed has everything. A broker that cannot tell leaves out the
   * field (older struct_size): readers then judge by the first offset, as in 2.1. */
  uint64_t trimmed;
} flowrelay_history;
typedef void (*flowrelay_history_fn)(void *ctx, flowrelay_status status,
                                     const flowrelay_history *history);

/* ABI 2.1. How many clients a channel has on all nodes (presence). */
typedef void (*flowrelay_presence_fn)(void *ctx, flowrelay_status status, uint64_t clients,
                                      uint32_t nodes);

/* ABI 2.1. Who a client is, for the backend (publish proxy, join/leave events). Borrowed. */
typedef struct flowrelay_client_info {
  uint32_t struct_size;
  uint64_t session;           /* the session's id (new_session_id()) */
  flowrelay_str conversation; /* the conversation id (channel without the prefix) */
  flowrelay_str user;         /* a JSON object: the token's claims or the connect proxy's user;
                               * empty = anonymous (null) */
  flowrelay_str remote_addr;  /* the peer, "ip:port" */
  flowrelay_str transport;    /* the plugin's short name: "ws", "sse" */
} flowrelay_client_info;

/* ABI 2.1. The outcome of publish_client(). Borrowed for the call of the completion. */
typedef struct flowrelay_client_published {
  uint32_t struct_size;
  flowrelay_status status; /* FLOWRELAY_OK: published (relayed = 1) or accepted without being
                            * relayed (relayed = 0); else it was not published */
  int32_t relayed;         /* 1: published on the channel, with offset and epoch as in
                            * flowrelay_published_fn */
  uint32_t code;           /* when status is not OK, what to tell the client: 4xx the backend
                            * refused it (reason: the backend's words), 503 the backend or the
                            * broker is unavailable (try again later), 501 unsupported lane */
  uint64_t offset;
  flowrelay_str epoch;
  flowrelay_str reason; /* human-readable, for the client's error; empty when OK */
} flowrelay_client_published;
typedef void (*flowrelay_client_published_fn)(void *ctx, const flowrelay_client_published *result);

/* ABI 2.1. A client's handshake, for the backend's connect proxy. Borrowed. */
typedef struct flowrelay_connect_request {
  uint32_t struct_size;
  flowrelay_str conversation;
  flowrelay_str cookie;        /* the request's Cookie header, empty if none */
  flowrelay_str authorization; /* the request's Authorization header, empty if none */
  flowrelay_str remote_addr;
  flowrelay_str transport;
} flowrelay_connect_request;

/* ABI 2.1. The connect proxy's verdict. Borrowed for the call of the completion. */
typedef struct flowrelay_connect_result {
  uint32_t struct_size;
  uint32_t code;       /* 200 admit; 401 or 403: refuse with it; 503: the backend failed */
  int32_t can_publish; /* when admitted: 1 the client may publish */
  flowrelay_str user;  /* when admitted: the backend's user (JSON object), or empty */
  flowrelay_str reason;
} flowrelay_connect_result;
typedef void (*flowrelay_connect_fn)(void *ctx, const flowrelay_connect_result *result);

/* Opaque handles. flowrelay_host is the daemon's per-plugin-instance context; the others are
 * the plugin's own instance types. */
typedef struct flowrelay_host flowrelay_host;
typedef struct flowrelay_broker flowrelay_broker;
typedef struct flowrelay_transport flowrelay_transport;

/* ------------------------------------------------------------------------------------------ */
/* Daemon -> broker. Owned by the daemon; valid from create() until destroy() returns. */
typedef struct flowrelay_broker_host_api {
  uint32_t struct_size;
  uint32_t abi_minor;       /* the daemon's FLOWRELAY_ABI_MINOR */
  uint64_t node_id;         /* this daemon's node id (flowrelay_origin.node), never 0 */
  flowrelay_str config_dir; /* folder of the config file: relative paths in options resolve
                             * against it; lives as long as the table */

  /* [any thread, non-blocking] Writes one log line under the plugin's name. */
  void (*log)(flowrelay_host *host, flowrelay_log_level level, flowrelay_str message);

  /* [any thread, non-blocking] The daemon's monotonic clock, in milliseconds. A broker
   * measures the ages it keeps (history_max_age_ms) with it, so that a test host can move
   * time instead of sleeping it out. */
  int64_t (*now_ms)(flowrelay_host *host);

  /* [any thread, non-blocking] Asynchronous failure (lost backend link, rejected command).
   * `detail` is human-readable, ideally in the backend's own words. Logged and counted. */
  void (*report_error)(flowrelay_host *host, flowrelay_status code, flowrelay_str detail);

  /* [any thread, non-blocking] Readiness changed: 1 = can publish and deliver, 0 = not (the
   * daemon's /ready answers 503). A broker starts not ready until it says otherwise. */
  void (*set_ready)(flowrelay_host *host, int32_t ready);

  /* [any thread, non-blocking] A message of a channel this node subscribed to. The daemon
   * fans it out to the local sessions and copies what it keeps before returning. Messages of
   * one channel are delivered in order, from one thread at a time. May be called on the
   * publishing thread from inside publish() (broker-local does): the daemon holds no lock
   * across publish() that deliver() takes. The daemon never calls publish() or history() from
   * inside deliver() or a completion (it only queues), so a broker may hold its own lock
   * across these callbacks. Deliveries of a channel may still arrive briefly
   * after its unsubscribe(); the daemon drops them. */
  void (*deliver)(flowrelay_host *host, flowrelay_str channel, const flowrelay_message *message);

  /* [any thread, non-blocking] The outcome of a subscription:
   *  - once for every subscribe() that returned FLOWRELAY_PENDING (unless the channel is
   *    unsubscribed first): FLOWRELAY_OK once its messages will be delivered, or an error;
   *  - after a backend reconnect the broker re-subscribes every channel itself, without
   *    calling this again when that succeeds (meanwhile it reports set_ready(0)). If a channel
   *    cannot be re-subscribed, it calls subscribed(channel, error) once: the daemon then
   *    closes that channel's sessions (clients are told to retry and resume) and, once they
   *    have left, calls unsubscribe() as usual; a session joining meanwhile makes the daemon
   *    call subscribe() again.
   * Never from inside subscribe(). */
  void (*subscribed)(flowrelay_host *host, flowrelay_str channel, flowrelay_status status);
} flowrelay_broker_host_api;

/* Broker: moves messages between nodes (or within one). */
typedef struct flowrelay_broker_vtable {
  uint32_t struct_size;
  uint32_t abi_major; /* FLOWRELAY_ABI_MAJOR the plugin was built with */

  /* [main] Parses options and allocates the instance; no network I/O yet. Unknown or invalid
   * options fail with FLOWRELAY_EINVAL and a one-line message naming the key in single quotes
   * ('history_size'), written NUL-terminated into err[0..err_cap); the daemon points at that
   * key's line in the config file. On failure *out is untouched and nothing leaks. */
  flowrelay_status (*create)(const flowrelay_broker_host_api *api, flowrelay_host *host,
                             const flowrelay_option *options, size_t n_options,
                             flowrelay_broker **out, char *err, size_t err_cap);

  /* [main] Starts I/O (connects, spawns threads). May return FLOWRELAY_OK while the backend
   * is still unreachable: readiness is reported through set_ready(). An error here is fatal
   * for the daemon (message in err). */
  flowrelay_status (*start)(flowrelay_broker *self, char *err, size_t err_cap);

  /* [main] Stops all I/O and frees the instance. Pending completions are called (with
   * FLOWRELAY_EUNAVAIL) before it returns; no host callback runs after it returns. */
  void (*destroy)(flowrelay_broker *self);

  /* [any thread, non-blocking] Publishes message->data on `channel` in message->lane to every
   * node subscribed to it (this one included), appending it to the channel's history when the
   * broker keeps one: the broker assigns offset and epoch (monotonic per channel across all
   * nodes) and seq (see flowrelay_origin); deliveries carry lane, origin and data as given.
   * Returns FLOWRELAY_OK once queued: then `done` (if not NULL) is called exactly once, from
   * any thread, possibly before publish() returns, with the outcome. Any other return:
   * nothing was queued and `done` is not called (EAGAIN: a bounded buffer is full; EUNAVAIL:
   * cannot queue at all; EUNSUPPORTED: a lane this broker does not carry). A message it
   * returned OK for is never dropped without `done` or report_error() saying so, and never
   * stored or delivered twice. Publishes of one thread to one channel keep their order. */
  flowrelay_status (*publish)(flowrelay_broker *self, flowrelay_str channel,
                              const flowrelay_message *message, flowrelay_published_fn done,
                              void *done_ctx);

  /* [any thread, non-blocking] Reads the messages of `channel` with offset > since still in
   * history. Returns FLOWRELAY_OK and later (or from inside this call) calls `done` exactly
   * once, from any thread; any other return: `done` is not called. A read issued after the
   * channel's subscription completed sees at least every message published before any message
   * delivered afterwards (so a reader can join history and live messages without a gap). A
   * broker without history leaves the slot NULL or returns FLOWRELAY_EUNSUPPORTED. */
  flowrelay_status (*history)(flowrelay_broker *self, flowrelay_str channel, uint64_t since,
                              flowrelay_history_fn done, void *done_ctx);

  /* [any thread, non-blocking] The first local session joined `channel`. The daemon calls it
   * once per channel until unsubscribe(); never twice in a row for one channel (except after
   * subscribed() reported an error for it: a session joining then retries), never for two
   * channels at once (it holds its channel table locked around subscribe and unsubscribe, so
   * neither may call back into the host synchronously). Returns FLOWRELAY_OK if messages are
   * delivered from now on, FLOWRELAY_PENDING and later host->subscribed(), or an error (the
   * session is refused). */
  flowrelay_status (*subscribe)(flowrelay_broker *self, flowrelay_str channel);

  /* [any thread, non-blocking] The last local session left `channel`. Cannot fail: a broker
   * that cannot tell its backend now does so when it can (or drops the deliveries). */
  void (*unsubscribe)(flowrelay_broker *self, flowrelay_str channel);

  /* [any thread, non-blocking] May be NULL. Writes the plugin's metrics in the Prometheus
   * text format 0.0.4 (# HELP / # TYPE lines, then samples; names start with "flowrelay_").
   * Served on GET /metrics next to the daemon's own. */
  void (*metrics)(flowrelay_broker *self, flowrelay_write_fn write, void *ctx);

  /* [main] May be NULL (every change needs a restart). Configuration reload (SIGHUP): the
   * section's options as create() got them. Applies what can change while running and returns
   * FLOWRELAY_OK; FLOWRELAY_EUNSUPPORTED when some option changed that needs a restart (err
   * names it; the rest is applied); FLOWRELAY_EINVAL when the options are invalid (err says
   * why, as in create(); nothing is applied). */
  flowrelay_status (*reconfigure)(flowrelay_broker *self, const flowrelay_option *options,
                                  size_t n_options, char *err, size_t err_cap);

  /* ABI 2.1 (check with FLOWRELAY_HAS_SLOT; may be NULL). */

  /* [any thread, non-blocking] This node now has `clients` sessions in `channel` (0: none
   * left). Called after every change, under the daemon's channel lock (never call back into
   * the host from it). A broker shared by nodes keeps each node's count where the others can
   * read it and lets it expire when the node stops refreshing it, so that a crashed node's
   * clients are gone within seconds; it may batch the writes. */
  void (*presence_set)(flowrelay_broker *self, flowrelay_str channel, uint64_t clients);

  /* [any thread, non-blocking] Counts the clients of `channel` on every node (the latest
   * counts given to presence_set, minus expired nodes). Returns FLOWRELAY_OK and calls `done`
   * exactly once (maybe before returning), or an error and `done` is not called. NULL or
   * FLOWRELAY_EUNSUPPORTED: the daemon answers with its own count (right for a broker that
   * serves one node). */
  flowrelay_status (*presence)(flowrelay_broker *self, flowrelay_str channel,
                               flowrelay_presence_fn done, void *done_ctx);

  /* ABI 2.2 (check with FLOWRELAY_HAS_SLOT; may be NULL: then the daemon refuses replies with
   * 501). */

  /* [any thread, non-blocking] A producer's step of a reply (plugin_reply.h): message->reply
   * is set with kind OPEN, DELTA (data: the delta) or END (reason, error). The broker, for
   * every node at once (atomically with the append, e.g. in one Redis script):
   *  - OPEN of a new reply opens it; of an open or ended one: a duplicate;
   *  - DELTA with seq = the reply's last + 1 appends it (a new reply needs seq 1); seq <= last
   *    is a duplicate; a higher seq is ECONFLICT with expected_seq; any delta of an ended
   *    reply is ECONFLICT with `ended`; a text growing past history_max_bytes is ETOOBIG;
   *  - END seals an open reply (history: its entry becomes the compacted REPLY entry) and
   *    delivers an END with the stats; END of an ended reply: a duplicate when the reason is
   *    the same, else ECONFLICT with `ended` (a cancel that lost the race to done, ...).
   * Stored steps take the next offset and are delivered like publish()'s messages (kind,
   * reply id, seq, stats in message->reply); duplicates and refusals deliver nothing. Returns
   * FLOWRELAY_OK and calls `done` exactly once (any thread, maybe before returning), or an
   * error as publish() (then `done` is not called). A broker forgets an ended reply when its
   * entry leaves history; a delta for it is then a delta of an unknown reply. */
  flowrelay_status (*publish_reply)(flowrelay_broker *self, flowrelay_str channel,
                                    const flowrelay_message *message,
                                    flowrelay_reply_published_fn done, void *done_ctx);
} flowrelay_broker_vtable;

/* ------------------------------------------------------------------------------------------ */
/* Daemon -> transport: how a transport's sessions reach the daemon's router. */
typedef struct flowrelay_transport_host_api {
  uint32_t struct_size;
  uint32_t abi_minor;
  uint64_t node_id;             /* as in flowrelay_broker_host_api */
  flowrelay_str config_dir;     /* as in flowrelay_broker_host_api */
  flowrelay_str channel_prefix; /* channels.prefix: channel = prefix + conversation id */
  int32_t echo;                 /* channels.echo: 0 = a session never receives a message whose
                                 * origin is (node_id, its session id) */

  /* [any thread, non-blocking] as in flowrelay_broker_host_api. */
  void (*log)(flowrelay_host *host, flowrelay_log_level level, flowrelay_str message);

  /* [any thread, non-blocking] A new session id, unique on this node across all transports,
   * never 0: what a session puts in flowrelay_origin.session. */
  uint64_t (*new_session_id)(flowrelay_host *host);

  /* [any thread, non-blocking] One session joined `channel` (the router counts them). Returns
   * FLOWRELAY_OK if the channel is live now, FLOWRELAY_PENDING if the daemon will call the
   * transport's subscribed() for this channel once the broker confirms, or an error (the
   * session must then be refused; the router did not count it). */
  flowrelay_status (*subscribe)(flowrelay_host *host, flowrelay_str channel);

  /* [any thread, non-blocking] One session left `channel` (balances a subscribe that returned
   * OK or PENDING, whatever came of it). */
  void (*unsubscribe)(flowrelay_host *host, flowrelay_str channel);

  /* [any thread, non-blocking] A session published: as flowrelay_broker_vtable.publish. The
   * transport sets origin.session (origin.node and seq are the daemon's and the broker's); on
   * an error the transport tells its client. `done` may run before this returns. */
  flowrelay_status (*publish)(flowrelay_host *host, flowrelay_str channel,
                              const flowrelay_message *message, flowrelay_published_fn done,
                              void *done_ctx);

  /* [any thread, non-blocking] As flowrelay_broker_vtable.history; FLOWRELAY_EUNSUPPORTED when
   * the broker keeps no history. */
  flowrelay_status (*history)(flowrelay_host *host, flowrelay_str channel, uint64_t since,
                              flowrelay_history_fn done, void *done_ctx);

  /* ABI 2.1 (check with FLOWRELAY_HAS_SLOT). */

  /* [any thread, non-blocking] A client's message: what a transport calls instead of
   * publish() for what its clients send. When the daemon has a publish proxy
   * (backend.publish_url), the backend sees the message with `client` first and decides
   * (publish it, publish other data, accept it privately, refuse it); then it is published as
   * by publish(). Returns FLOWRELAY_OK and calls `done` exactly once, from any thread, maybe
   * before returning; EAGAIN when too many are waiting for the backend (tell the client 503);
   * other errors as publish(). Messages of one session keep their order (the daemon waits for
   * the backend's answer to one before sending the next). `client` is borrowed. */
  flowrelay_status (*publish_client)(flowrelay_host *host, flowrelay_str channel,
                                     const flowrelay_message *message,
                                     const flowrelay_client_info *client,
                                     flowrelay_client_published_fn done, void *done_ctx);

  /* [any thread, non-blocking] Asks the backend's connect proxy (backend.connect_url) whether
   * to admit a client: FLOWRELAY_OK and `done` exactly once (any thread, maybe before
   * returning); FLOWRELAY_EUNSUPPORTED when no connect proxy is configured (the transport's
   * own policy decides, and `done` is not called). */
  flowrelay_status (*authorize)(flowrelay_host *host, const flowrelay_connect_request *request,
                                flowrelay_connect_fn done, void *done_ctx);

  /* [any thread, non-blocking] A client was admitted to its conversation (joined = 1) or left
   * it (0): join/leave events for the backend (backend.events_url), batched, best effort. */
  void (*client_event)(flowrelay_host *host, int32_t joined, const flowrelay_client_info *client);

  /* ABI 2.2 (check with FLOWRELAY_HAS_SLOT). */

  /* [any thread, non-blocking] A producer's step of a reply, as the broker's publish_reply
   * (message->reply: OPEN, DELTA or END). `client` (borrowed, may be NULL) is the session that
   * sent it: an END with reason "cancelled" from a client is a stop, and the daemon tells the
   * backend's publish proxy (a `cancel` event) once the reply is sealed. Reply steps do not go
   * through the publish proxy otherwise. FLOWRELAY_EUNSUPPORTED: the broker has no replies. */
  flowrelay_status (*publish_reply)(flowrelay_host *host, flowrelay_str channel,
                                    const flowrelay_message *message,
                                    const flowrelay_client_info *client,
                                    flowrelay_reply_published_fn done, void *done_ctx);
} flowrelay_transport_host_api;

/* Transport: accepts clients and turns their traffic into host calls. */
typedef struct flowrelay_transport_vtable {
  uint32_t struct_size;
  uint32_t abi_major;

  /* [main] As broker create(): parse options, no I/O. */
  flowrelay_status (*create)(const flowrelay_transport_host_api *api, flowrelay_host *host,
                             const flowrelay_option *options, size_t n_options,
                             flowrelay_transport **out, char *err, size_t err_cap);

  /* [main] Binds its listeners and starts serving. A bind failure is returned here. */
  flowrelay_status (*start)(flowrelay_transport *self, char *err, size_t err_cap);

  /* [main] Stops accepting, says goodbye to every client (WebSocket: close 1001), waits at
   * most timeout_ms for them, then closes what is left. No host call after it returns. */
  void (*stop)(flowrelay_transport *self, uint32_t timeout_ms);

  /* [main] Frees the instance (after stop(), or instead of start() when only validating). */
  void (*destroy)(flowrelay_transport *self);

  /* [any thread, non-blocking] A message for `channel`: send it to every local session of it
   * (minus the sender when echo is 0). Called once per message per node, in order per
   * channel, possibly from inside one of this transport's own publish calls on the same
   * thread; copies what it keeps. ABI 2.2: messages may carry a reply (flowrelay_reply_of());
   * a transport built against an older minor gets plain messages and deltas only (a delta as
   * a plain message with its text), and history entries' text. */
  void (*deliver)(flowrelay_transport *self, flowrelay_str channel,
                  const flowrelay_message *message);

  /* [any thread, non-blocking] The broker's word on `channel` (see the host's subscribed()):
   * FLOWRELAY_OK lets the sessions waiting for it in; an error refuses them (HTTP 503) and
   * closes the channel's open sessions (WebSocket: 1013), each unsubscribing as usual. */
  void (*subscribed)(flowrelay_transport *self, flowrelay_str channel, flowrelay_status status);

  /* Each may be NULL; as in flowrelay_broker_vtable (limits may change live, listen addresses
   * not). */
  void (*metrics)(flowrelay_transport *self, flowrelay_write_fn write, void *ctx);
  flowrelay_status (*reconfigure)(flowrelay_transport *self, const flowrelay_option *options,
                                  size_t n_options, char *err, size_t err_cap);
} flowrelay_transport_vtable;

/* ------------------------------------------------------------------------------------------ */
/* What a plugin provides. Static storage in the plugin; valid while the plugin is loaded. */
typedef struct flowrelay_plugin_info {
  uint32_t struct_size;
  uint32_t abi_major;                    /* FLOWRELAY_ABI_MAJOR: the daemon refuses another major */
  uint32_t abi_minor;                    /* FLOWRELAY_ABI_MINOR the plugin was built with */
  const char *name;                      /* e.g. "broker-local"; NUL-terminated, static */
  const char *version;                   /* the plugin's own version; NUL-terminated, static */
  const flowrelay_broker_vtable *broker; /* NULL if not a broker */
  const flowrelay_transport_vtable *transport; /* NULL if not a transport */
} flowrelay_plugin_info;

/* The entry symbol. [main] Called once after dlopen with the daemon's ABI minor; returns the
 * plugin's static info, or NULL if this daemon is too old for it (log nothing). */
typedef const flowrelay_plugin_info *(*flowrelay_plugin_entry_fn)(uint32_t host_abi_minor);

#ifdef __cplusplus
}
#endif

#endif /* FLOWRELAY_PLUGIN_H */
