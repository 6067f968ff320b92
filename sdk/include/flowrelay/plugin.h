/*
 * flowrelay plugin ABI, version 1.
 *
 * The only contract between flowrelayd and its plugins (brokers and transports). Plain C so
 * that a plugin built with another compiler, standard library or Poco keeps working.
 *
 * Rules that hold for every table and call below:
 *  - A plugin exports exactly one symbol, flowrelay_plugin_entry_v1 (FLOWRELAY_ENTRY_SYMBOL).
 *  - Every table starts with `uint32_t struct_size` and only ever grows at its end. A reader
 *    uses a slot only if struct_size covers it (FLOWRELAY_HAS_SLOT) and the slot is not NULL.
 *    A breaking change renames the entry symbol (_v2); the numbering of flowrelay_status and of
 *    the log levels never changes.
 *  - Strings are borrowed views ({ptr, len}, not NUL-terminated, may contain NUL bytes) valid
 *    only for the duration of the call. Whoever wants to keep data copies it. Nothing is ever
 *    freed across the boundary.
 *  - No exception, longjmp or signal crosses the boundary.
 *  - Thread annotations: [main] = the daemon's main thread, never concurrently with another
 *    [main] call of the same plugin; [any thread] = may be called concurrently from several
 *    threads; [non-blocking] = must not wait on I/O, sleep or take a lock held across I/O.
 */
#ifndef FLOWRELAY_PLUGIN_H
#define FLOWRELAY_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FLOWRELAY_ABI_MAJOR 1
#define FLOWRELAY_ABI_MINOR 2 /* 1.1: metrics, reconfigure; 1.2: lanes, offsets, history */
#define FLOWRELAY_ENTRY_SYMBOL "flowrelay_plugin_entry_v1"

#if defined(__GNUC__)
#define FLOWRELAY_EXPORT __attribute__((visibility("default")))
#else
#define FLOWRELAY_EXPORT
#endif

/* True if a table of the given struct_size contains `field` (use before calling a slot). */
#define FLOWRELAY_HAS_SLOT(table, type, field)                                                 \
  ((table)->struct_size >= offsetof(type, field) + sizeof(((type *)0)->field))

/* A borrowed byte string: valid for the duration of the call only. */
typedef struct flowrelay_str {
  const char *ptr;
  size_t len;
} flowrelay_str;

/* Status codes. Never renumbered; new codes are only appended. */
typedef int32_t flowrelay_status;
#define FLOWRELAY_OK 0          /* done */
#define FLOWRELAY_PENDING 1     /* accepted; completion is reported later by a callback */
#define FLOWRELAY_EINVAL 2      /* bad argument or option; nothing changed */
#define FLOWRELAY_EAGAIN 3      /* temporarily full (buffer bound reached): retry later */
#define FLOWRELAY_EUNAVAIL 4    /* backend unreachable and nothing could be queued */
#define FLOWRELAY_ENOMEM 5      /* out of memory */
#define FLOWRELAY_EUNSUPPORTED 6 /* the operation is not supported by this plugin */
#define FLOWRELAY_EINTERNAL 7   /* any other failure; details go to log/report_error */

/* Log levels (syslog numbering). */
typedef int32_t flowrelay_log_level;
#define FLOWRELAY_LOG_ERROR 3
#define FLOWRELAY_LOG_WARNING 4
#define FLOWRELAY_LOG_NOTICE 5
#define FLOWRELAY_LOG_INFO 6
#define FLOWRELAY_LOG_DEBUG 7

/* One configuration option: a key of the plugin's YAML section and its scalar value. Nested
 * maps are flattened with dots ("timeouts.connect_ms"). Borrowed for the call of create(). */
typedef struct flowrelay_option {
  flowrelay_str key;
  flowrelay_str value;
} flowrelay_option;

/* Where a plugin writes text the daemon collects (metrics): called any number of times with
 * consecutive pieces, each borrowed for the call. */
typedef void (*flowrelay_write_fn)(void *ctx, flowrelay_str text);

/* Lanes of a conversation (ABI 1.2). Never renumbered. */
typedef uint32_t flowrelay_lane;
#define FLOWRELAY_LANE_MESSAGE 0 /* the conversation itself: never dropped */
#define FLOWRELAY_LANE_LOG 1     /* progress/trace lines: may be shed first under backpressure */

/* A message with its place in the channel's history (ABI 1.2). Borrowed for the call. */
typedef struct flowrelay_message {
  uint32_t struct_size;
  flowrelay_lane lane;
  uint64_t offset;     /* 1, 2, 3... per channel, gap-free; 0 = not kept in history (e.g. a
                        * raw PUBLISH straight into Redis) */
  flowrelay_str epoch; /* names the history's lifetime: a new epoch restarts offsets at 1;
                        * empty when offset is 0 */
  flowrelay_str data;
} flowrelay_message;

/* Completion of publish_message(): status FLOWRELAY_OK with the offset and epoch assigned (offset
 * 0 and an empty epoch if the broker keeps no history), or the error that lost the message. */
typedef void (*flowrelay_published_fn)(void *ctx, flowrelay_status status, uint64_t offset,
                                       flowrelay_str epoch);

/* What history() found: the channel's current epoch and newest offset, and the messages after
 * `since` still kept, oldest first. Borrowed for the call of the completion. */
typedef struct flowrelay_history {
  uint32_t struct_size;
  flowrelay_str epoch; /* empty if the channel has no history (never published, or expired) */
  uint64_t top;        /* offset of the newest message ever published in this epoch (0: none) */
  const flowrelay_message *messages; /* offsets > since, ascending, contiguous; may start
                                      * after since + 1 when older ones were trimmed */
  size_t count;
} flowrelay_history;
typedef void (*flowrelay_history_fn)(void *ctx, flowrelay_status status,
                                     const flowrelay_history *history);

/* Opaque handles. flowrelay_host is the daemon's per-plugin-instance context; the others are
 * the plugin's own instance types. */
typedef struct flowrelay_host flowrelay_host;
typedef struct flowrelay_broker flowrelay_broker;
typedef struct flowrelay_transport flowrelay_transport;

/* ------------------------------------------------------------------------------------------ */
/* Host callbacks for brokers. Owned by the daemon; valid from create() until destroy() returns. */
typedef struct flowrelay_broker_host_api {
  uint32_t struct_size;
  uint32_t abi_minor; /* the daemon's FLOWRELAY_ABI_MINOR */

  /* [any thread, non-blocking] Writes one log line under the plugin's name. */
  void (*log)(flowrelay_host *host, flowrelay_log_level level, flowrelay_str message);

  /* [any thread, non-blocking] A message arrived on a channel this node subscribed to. The
   * daemon fans it out to the local sessions and copies what it keeps before returning.
   * Messages of one channel must be delivered in order, from one thread at a time. */
  void (*deliver)(flowrelay_host *host, flowrelay_str channel, flowrelay_str payload);

  /* [any thread, non-blocking] Completes a subscribe() that returned FLOWRELAY_PENDING:
   * status FLOWRELAY_OK once messages of `channel` will be delivered, or an error. Must be
   * called exactly once per PENDING subscribe, unless that channel is unsubscribed first. */
  void (*subscribed)(flowrelay_host *host, flowrelay_str channel, flowrelay_status status);

  /* [any thread, non-blocking] Asynchronous failure (lost backend link, rejected command).
   * `detail` is human-readable, ideally in the backend's own words. Logged and counted. */
  void (*report_error)(flowrelay_host *host, flowrelay_status code, flowrelay_str detail);

  /* [any thread, non-blocking] Readiness changed: 1 = can publish and deliver, 0 = not (the
   * daemon's /ready answers 503). A broker starts not ready until it says otherwise. After
   * a reconnect the broker re-establishes every subscription itself before reporting 1. */
  void (*set_ready)(flowrelay_host *host, int32_t ready);

  /* --- ABI 1.2 (check FLOWRELAY_HAS_SLOT and abi_minor >= 2) --- */

  /* [any thread, non-blocking] As deliver(), with the lane, offset and epoch. A 1.2 broker
   * uses it for every delivery (deliver() means: lane message, offset 0). */
  void (*deliver_message)(flowrelay_host *host, flowrelay_str channel,
                          const flowrelay_message *message);
} flowrelay_broker_host_api;

/* A broker: moves messages between nodes (or within one). */
typedef struct flowrelay_broker_vtable {
  uint32_t struct_size;
  uint32_t abi_major; /* FLOWRELAY_ABI_MAJOR the plugin was built with */

  /* [main] Parses options and allocates the instance; no network I/O yet. Unknown or invalid
   * options fail with FLOWRELAY_EINVAL and a one-line message (naming the key) written,
   * NUL-terminated, into err[0..err_cap). On failure *out is untouched and nothing leaks. */
  flowrelay_status (*create)(const flowrelay_broker_host_api *api, flowrelay_host *host,
                             const flowrelay_option *options, size_t n_options,
                             flowrelay_broker **out, char *err, size_t err_cap);

  /* [main] Starts I/O (connects, spawns threads). May return FLOWRELAY_OK while the backend
   * is still unreachable: readiness is reported through set_ready(). Errors here are fatal
   * for the daemon (message in err). */
  flowrelay_status (*start)(flowrelay_broker *self, char *err, size_t err_cap);

  /* [main] Stops all I/O and frees the instance. No host callback runs after it returns. */
  void (*destroy)(flowrelay_broker *self);

  /* [any thread, non-blocking] Publishes payload on channel to every node subscribed to it
   * (this one included). Returns FLOWRELAY_OK once queued or sent; FLOWRELAY_EAGAIN when a
   * bounded buffer is full; FLOWRELAY_EUNAVAIL when it cannot be queued at all. Never drops
   * a message it returned OK for without report_error(). */
  flowrelay_status (*publish)(flowrelay_broker *self, flowrelay_str channel,
                              flowrelay_str payload);

  /* [any thread, non-blocking] The first local session joined `channel`. The daemon calls it
   * once per channel until unsubscribe(); never twice in a row for one channel. Returns
   * FLOWRELAY_OK if messages are delivered from now on, or FLOWRELAY_PENDING and later calls
   * host->subscribed() -- from another thread or after returning, never from inside this
   * call (the daemon holds its channel table locked around subscribe/unsubscribe). */
  flowrelay_status (*subscribe)(flowrelay_broker *self, flowrelay_str channel);

  /* [any thread, non-blocking] The last local session left `channel`. Deliveries of the
   * channel may still arrive briefly after it returns; the daemon drops them. */
  flowrelay_status (*unsubscribe)(flowrelay_broker *self, flowrelay_str channel);

  /* --- ABI 1.1 (may be NULL or absent: check FLOWRELAY_HAS_SLOT) --- */

  /* [any thread, non-blocking] Writes the plugin's metrics in the Prometheus text format
   * 0.0.4 (# HELP / # TYPE lines, then samples; names start with "flowrelay_"). Served on
   * GET /metrics next to the daemon's own. */
  void (*metrics)(flowrelay_broker *self, flowrelay_write_fn write, void *ctx);

  /* [main] Configuration reload (SIGHUP): the section's options as create() got them. Applies
   * what can change while running and returns FLOWRELAY_OK; FLOWRELAY_EUNSUPPORTED when some
   * option changed that needs a restart (err names it; the rest is applied); FLOWRELAY_EINVAL
   * when the options are invalid (err says why; nothing is applied). */
  flowrelay_status (*reconfigure)(flowrelay_broker *self, const flowrelay_option *options,
                                  size_t n_options, char *err, size_t err_cap);

  /* --- ABI 1.2 (may be NULL or absent: check FLOWRELAY_HAS_SLOT) --- */

  /* [any thread, non-blocking] Publishes message->data on `channel` in message->lane, appending
   * it to the channel's history when the broker keeps one (message->offset and ->epoch are
   * ignored: the broker assigns them, monotonic per channel across all nodes). Every node
   * subscribed to the channel gets it through deliver_message() with that offset. Returns
   * FLOWRELAY_OK once queued: then `done` (if not NULL) is called exactly once, from any
   * thread, possibly before this returns, with the outcome. Any other return: nothing was
   * queued and `done` is not called. Same ordering and loss rules as publish(). */
  flowrelay_status (*publish_message)(flowrelay_broker *self, flowrelay_str channel,
                                      const flowrelay_message *message,
                                      flowrelay_published_fn done, void *done_ctx);

  /* [any thread, non-blocking] Reads the messages of `channel` with offset > since still in
   * history. Returns FLOWRELAY_OK and later (or from inside this call) calls `done` exactly
   * once, from any thread; any other return: `done` is not called. A read issued after the
   * channel's subscribe() completed sees at least every message published before any message
   * delivered afterwards (so a reader can join history and live messages without a gap).
   * Brokers without history return FLOWRELAY_EUNSUPPORTED or leave the slot NULL. */
  flowrelay_status (*history)(flowrelay_broker *self, flowrelay_str channel, uint64_t since,
                              flowrelay_history_fn done, void *done_ctx);
} flowrelay_broker_vtable;

/* ------------------------------------------------------------------------------------------ */
/* Host callbacks for transports: how a transport's sessions reach the daemon's router. */
typedef struct flowrelay_transport_host_api {
  uint32_t struct_size;
  uint32_t abi_minor;

  /* [any thread, non-blocking] as in flowrelay_broker_host_api. */
  void (*log)(flowrelay_host *host, flowrelay_log_level level, flowrelay_str message);

  /* [any thread, non-blocking] One session joined `channel` (the router counts them). Returns
   * FLOWRELAY_OK if the channel is live now, FLOWRELAY_PENDING if the daemon will call the
   * transport's subscribed() for this channel once the broker confirms, or an error (the
   * session must then be refused; the router did not count it). */
  flowrelay_status (*subscribe)(flowrelay_host *host, flowrelay_str channel);

  /* [any thread, non-blocking] One session left `channel` (balances a successful or pending
   * subscribe). */
  void (*unsubscribe)(flowrelay_host *host, flowrelay_str channel);

  /* [any thread, non-blocking] A session published payload on channel. Status as in
   * flowrelay_broker_vtable.publish; on an error the transport tells its client. */
  flowrelay_status (*publish)(flowrelay_host *host, flowrelay_str channel,
                              flowrelay_str payload);

  /* --- ABI 1.2 (check FLOWRELAY_HAS_SLOT and abi_minor >= 2) --- */

  /* [any thread, non-blocking] As flowrelay_broker_vtable.publish_message. A broker older than
   * 1.2 takes the message lane only (offset 0); other lanes fail with FLOWRELAY_EUNSUPPORTED. */
  flowrelay_status (*publish_message)(flowrelay_host *host, flowrelay_str channel,
                                      const flowrelay_message *message,
                                      flowrelay_published_fn done, void *done_ctx);

  /* [any thread, non-blocking] As flowrelay_broker_vtable.history; FLOWRELAY_EUNSUPPORTED when
   * the broker keeps no history. */
  flowrelay_status (*history)(flowrelay_host *host, flowrelay_str channel, uint64_t since,
                              flowrelay_history_fn done, void *done_ctx);
} flowrelay_transport_host_api;

/* A transport: accepts clients and turns their traffic into router calls. */
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
   * most timeout_ms for them, then closes what is left. No router call after it returns. */
  void (*stop)(flowrelay_transport *self, uint32_t timeout_ms);

  /* [main] Frees the instance (after stop(), or instead of start() when only validating). */
  void (*destroy)(flowrelay_transport *self);

  /* [any thread, non-blocking] A message for `channel`: send it to every local session of it.
   * Called once per message per node, in order per channel; copies what it keeps. */
  void (*deliver)(flowrelay_transport *self, flowrelay_str channel, flowrelay_str payload);

  /* [any thread, non-blocking] Completes the PENDING subscribes of `channel`: status
   * FLOWRELAY_OK lets the waiting sessions in, an error refuses them. */
  void (*subscribed)(flowrelay_transport *self, flowrelay_str channel, flowrelay_status status);

  /* --- ABI 1.1 (may be NULL or absent: check FLOWRELAY_HAS_SLOT) --- */

  /* [any thread, non-blocking] As in flowrelay_broker_vtable. */
  void (*metrics)(flowrelay_transport *self, flowrelay_write_fn write, void *ctx);

  /* [main] As in flowrelay_broker_vtable (limits may change live, listen addresses not). */
  flowrelay_status (*reconfigure)(flowrelay_transport *self, const flowrelay_option *options,
                                  size_t n_options, char *err, size_t err_cap);

  /* --- ABI 1.2 (may be NULL or absent: check FLOWRELAY_HAS_SLOT) --- */

  /* [any thread, non-blocking] As deliver(), with lane, offset and epoch; a 1.2 daemon calls
   * it instead of deliver() when present. */
  void (*deliver_message)(flowrelay_transport *self, flowrelay_str channel,
                          const flowrelay_message *message);
} flowrelay_transport_vtable;

/* ------------------------------------------------------------------------------------------ */
/* What a plugin provides. Static storage in the plugin; valid while the plugin is loaded. */
typedef struct flowrelay_plugin_info {
  uint32_t struct_size;
  uint32_t abi_major; /* FLOWRELAY_ABI_MAJOR: the daemon refuses another major */
  uint32_t abi_minor; /* FLOWRELAY_ABI_MINOR the plugin was built with */
  const char *name;    /* e.g. "broker-local"; NUL-terminated, static */
  const char *version; /* the plugin's own version; NUL-terminated, static */
  const flowrelay_broker_vtable *broker;       /* NULL if not a broker */
  const flowrelay_transport_vtable *transport; /* NULL if not a transport */
} flowrelay_plugin_info;

/* The entry symbol. [main] Called once after dlopen with the daemon's ABI minor; returns the
 * plugin's static info, or NULL if this daemon is too old for it (log nothing). */
typedef const flowrelay_plugin_info *(*flowrelay_plugin_entry_fn)(uint32_t host_abi_minor);

#ifdef __cplusplus
}
#endif

#endif /* FLOWRELAY_PLUGIN_H */
