/* broker-minimal: the smallest working flowrelay broker (plugin ABI 2), in plain C11. One node,
 * in-process: publish() hands a message of a channel this node subscribed to back to the host
 * (deliver(), on the publishing thread), drops the others; keeps no history (offsets are 0). */
#include <flowrelay/plugin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct channel { /* a subscribed channel: a copy of its name (may contain NULs) */
  struct channel *next;
  size_t len;
  char name[];
} channel;

/* `lock` guards the list and is held across deliver(), so a channel's deliveries come in publish
 * order from one thread at a time (plugin.h). Hence the host must not publish() from inside
 * deliver(): that would deadlock on this plain mutex (the daemon's transports only queue). */
struct flowrelay_broker {
  const flowrelay_broker_host_api *api;
  flowrelay_host *host;
  pthread_mutex_t lock;
  channel *channels;
};

static channel **find(flowrelay_broker *b, flowrelay_str name) { /* caller holds lock */
  channel **c = &b->channels;
  while (*c && ((*c)->len != name.len || (name.len && memcmp((*c)->name, name.ptr, name.len))))
    c = &(*c)->next;
  return c;
}

static flowrelay_status create(const flowrelay_broker_host_api *api, flowrelay_host *host,
                               const flowrelay_option *options, size_t n_options,
                               flowrelay_broker **out, char *err, size_t err_cap) {
  if (n_options > 0) { /* this broker has no options: name the first one given */
    int len = options[0].key.len > 200 ? 200 : (int)options[0].key.len;
    snprintf(err, err_cap, "broker-minimal: unknown option '%.*s'", len, options[0].key.ptr);
    return FLOWRELAY_EINVAL;
  }
  flowrelay_broker *b = calloc(1, sizeof *b);
  if (!b || pthread_mutex_init(&b->lock, NULL) != 0) return free(b), FLOWRELAY_ENOMEM;
  b->api = api, b->host = host, *out = b;
  return FLOWRELAY_OK;
}

static flowrelay_status start(flowrelay_broker *b, char *err, size_t err_cap) {
  (void)err, (void)err_cap;
  b->api->set_ready(b->host, 1); /* nothing to connect to */
  return FLOWRELAY_OK;
}

static void destroy(flowrelay_broker *b) { /* the host calls nothing else any more */
  for (channel *c = b->channels, *next; c; c = next) next = c->next, free(c);
  pthread_mutex_destroy(&b->lock);
  free(b);
}

static flowrelay_status publish(flowrelay_broker *b, flowrelay_str ch, const flowrelay_message *m,
                                flowrelay_published_fn done, void *done_ctx) {
  flowrelay_message out = *m; /* lane, origin and data as published */
  if (m->lane > FLOWRELAY_LANE_LOG) return FLOWRELAY_EUNSUPPORTED; /* a lane it does not know */
  out.struct_size = sizeof out, out.offset = 0, out.epoch = (flowrelay_str){NULL, 0};
  pthread_mutex_lock(&b->lock);
  if (*find(b, ch)) b->api->deliver(b->host, ch, &out);
  pthread_mutex_unlock(&b->lock);
  if (done) done(done_ctx, FLOWRELAY_OK, 0, out.epoch);
  return FLOWRELAY_OK;
}

static flowrelay_status subscribe(flowrelay_broker *b, flowrelay_str ch) {
  pthread_mutex_lock(&b->lock);
  channel *c = *find(b, ch); /* the daemon never subscribes twice in a row; harmless anyway */
  if (!c && (c = malloc(sizeof *c + ch.len)) != NULL) {
    if (ch.len) memcpy(c->name, ch.ptr, ch.len);
    c->len = ch.len, c->next = b->channels, b->channels = c;
  }
  pthread_mutex_unlock(&b->lock);
  return c ? FLOWRELAY_OK : FLOWRELAY_ENOMEM; /* c: the channel, or NULL if out of memory */
}

static void unsubscribe(flowrelay_broker *b, flowrelay_str ch) {
  pthread_mutex_lock(&b->lock);
  channel **c = find(b, ch), *gone = *c;
  if (gone) *c = gone->next, free(gone);
  pthread_mutex_unlock(&b->lock);
}

/* No history, metrics, reload or presence (the daemon counts this node's clients itself), and
 * no reply streams (the daemon answers them 501). */
static const flowrelay_broker_vtable vtable = {
    sizeof vtable, FLOWRELAY_ABI_MAJOR, create, start, destroy, publish, NULL,
    subscribe,     unsubscribe,         NULL,   NULL,  NULL,    NULL,    NULL};
static const flowrelay_plugin_info info = {
    sizeof info, FLOWRELAY_ABI_MAJOR, FLOWRELAY_ABI_MINOR, "broker-minimal", "0.1.0", &vtable,
    NULL /* not a transport */};

FLOWRELAY_EXPORT const flowrelay_plugin_info *flowrelay_plugin_entry_v2(uint32_t host_abi_minor) {
  (void)host_abi_minor; /* needs nothing beyond ABI 2.0 */
  return &info;
}
