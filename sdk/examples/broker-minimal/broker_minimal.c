/*
 * broker-minimal: the smallest working flowrelay broker, in plain C11.
 *
 * An in-process broker: it remembers which channels this node subscribed to, and publish()
 * hands a message of a subscribed channel straight back to the host through deliver(), on the
 * publishing thread. Messages of other channels are dropped (no other node can see them).
 *
 * Locking: `channels_lock` (a reader/writer lock) guards the set of channels; publish() only
 * reads it, and releases it before delivering. `deliver_lock` exists because the host requires
 * the messages of one channel to be delivered "in order, from one thread at a time": two
 * threads publishing on one channel would otherwise call deliver() concurrently. It is
 * recursive so that a host which publishes from inside deliver() does not deadlock, and it is
 * never held across I/O (deliver() is non-blocking).
 */
#define _POSIX_C_SOURCE 200809L

#include <flowrelay/plugin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One subscribed channel: an owned copy of the borrowed name (may contain NUL bytes). */
typedef struct channel_entry {
  char *name;
  size_t len;
} channel_entry;

struct flowrelay_broker {
  const flowrelay_broker_host_api *api; /* borrowed from the host until destroy() returns */
  flowrelay_host *host;
  pthread_rwlock_t channels_lock;
  pthread_mutex_t deliver_lock;
  channel_entry *channels; /* unordered; linear search is fine for an example */
  size_t n_channels;
  size_t cap_channels;
};

/* Writes a NUL-terminated, possibly truncated message into err[0..cap) if there is room. */
static void set_error(char *err, size_t cap, const char *what, flowrelay_str key) {
  if (err && cap > 0) {
    int key_len = key.len > 200 ? 200 : (int)key.len;
    snprintf(err, cap, "%s '%.*s'", what, key_len, key.ptr ? key.ptr : "");
  }
}

/* Index of `name` in b->channels, or b->n_channels if absent. Caller holds channels_lock. */
static size_t find_channel(const flowrelay_broker *b, flowrelay_str name) {
  size_t i;
  for (i = 0; i < b->n_channels; ++i) {
    const channel_entry *c = &b->channels[i];
    if (c->len == name.len && (name.len == 0 || memcmp(c->name, name.ptr, name.len) == 0)) break;
  }
  return i;
}

/* [main] Rejects every option (this broker has none); allocates the instance. On failure
 * *out is untouched and nothing is allocated. */
static flowrelay_status broker_create(const flowrelay_broker_host_api *api, flowrelay_host *host,
                                      const flowrelay_option *options, size_t n_options,
                                      flowrelay_broker **out, char *err, size_t err_cap) {
  flowrelay_broker *b;
  pthread_mutexattr_t attr;
  int failed;
  if (n_options > 0) {
    set_error(err, err_cap, "broker-minimal: unknown option", options[0].key);
    return FLOWRELAY_EINVAL;
  }
  if (!api || !out || !FLOWRELAY_HAS_SLOT(api, flowrelay_broker_host_api, set_ready) ||
      !api->deliver || !api->set_ready) {
    if (err && err_cap > 0) snprintf(err, err_cap, "broker-minimal: host API too old");
    return FLOWRELAY_EUNSUPPORTED;
  }
  b = calloc(1, sizeof *b);
  if (!b) return FLOWRELAY_ENOMEM;
  b->api = api;
  b->host = host;
  if (pthread_rwlock_init(&b->channels_lock, NULL) != 0) {
    free(b);
    return FLOWRELAY_ENOMEM;
  }
  failed = pthread_mutexattr_init(&attr) != 0;
  if (!failed) {
    failed = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE) != 0 ||
             pthread_mutex_init(&b->deliver_lock, &attr) != 0;
    pthread_mutexattr_destroy(&attr);
  }
  if (failed) {
    pthread_rwlock_destroy(&b->channels_lock);
    free(b);
    return FLOWRELAY_ENOMEM;
  }
  *out = b;
  return FLOWRELAY_OK;
}

/* [main] Nothing to connect to: the broker is ready at once. */
static flowrelay_status broker_start(flowrelay_broker *self, char *err, size_t err_cap) {
  static const char started[] = "in-process broker started";
  (void)err;
  (void)err_cap;
  if (self->api->log) {
    flowrelay_str msg = {started, sizeof started - 1};
    self->api->log(self->host, FLOWRELAY_LOG_INFO, msg);
  }
  self->api->set_ready(self->host, 1);
  return FLOWRELAY_OK;
}

/* [main] Frees the instance and every channel copy. No publish/subscribe runs concurrently
 * (the host stopped calling them), so no callback can follow. */
static void broker_destroy(flowrelay_broker *self) {
  size_t i;
  if (!self) return;
  for (i = 0; i < self->n_channels; ++i) free(self->channels[i].name);
  free(self->channels);
  pthread_mutex_destroy(&self->deliver_lock);
  pthread_rwlock_destroy(&self->channels_lock);
  free(self);
}

/* [any thread, non-blocking] Delivers synchronously if `channel` is subscribed, else drops the
 * message (still FLOWRELAY_OK: no node wants it). channel and payload are borrowed. */
static flowrelay_status broker_publish(flowrelay_broker *self, flowrelay_str channel,
                                       flowrelay_str payload) {
  int subscribed;
  pthread_rwlock_rdlock(&self->channels_lock);
  subscribed = find_channel(self, channel) < self->n_channels;
  pthread_rwlock_unlock(&self->channels_lock);
  if (!subscribed) return FLOWRELAY_OK;
  /* An unsubscribe() racing with this call may let this one message through; the header
   * allows deliveries shortly after unsubscribe() returns. */
  pthread_mutex_lock(&self->deliver_lock);
  self->api->deliver(self->host, channel, payload);
  pthread_mutex_unlock(&self->deliver_lock);
  return FLOWRELAY_OK;
}

/* [any thread, non-blocking] Adds an owned copy of `channel` to the set; deliveries start as
 * soon as it returns FLOWRELAY_OK. Subscribing twice is harmless. */
static flowrelay_status broker_subscribe(flowrelay_broker *self, flowrelay_str channel) {
  flowrelay_status status = FLOWRELAY_OK;
  pthread_rwlock_wrlock(&self->channels_lock);
  if (find_channel(self, channel) == self->n_channels) {
    char *name = malloc(channel.len ? channel.len : 1);
    if (!name) {
      status = FLOWRELAY_ENOMEM;
    } else {
      if (self->n_channels == self->cap_channels) {
        size_t cap = self->cap_channels ? 2 * self->cap_channels : 16;
        channel_entry *grown = realloc(self->channels, cap * sizeof *grown);
        if (grown) {
          self->channels = grown;
          self->cap_channels = cap;
        }
      }
      if (self->n_channels < self->cap_channels) {
        if (channel.len) memcpy(name, channel.ptr, channel.len);
        self->channels[self->n_channels].name = name;
        self->channels[self->n_channels].len = channel.len;
        self->n_channels++;
      } else {
        free(name);
        status = FLOWRELAY_ENOMEM;
      }
    }
  }
  pthread_rwlock_unlock(&self->channels_lock);
  return status;
}

/* [any thread, non-blocking] Removes `channel` from the set (no-op if absent). */
static flowrelay_status broker_unsubscribe(flowrelay_broker *self, flowrelay_str channel) {
  size_t i;
  pthread_rwlock_wrlock(&self->channels_lock);
  i = find_channel(self, channel);
  if (i < self->n_channels) {
    free(self->channels[i].name);
    self->channels[i] = self->channels[--self->n_channels];
  }
  pthread_rwlock_unlock(&self->channels_lock);
  return FLOWRELAY_OK;
}

static const flowrelay_broker_vtable broker_vtable = {
    .struct_size = sizeof(flowrelay_broker_vtable),
    .abi_major = FLOWRELAY_ABI_MAJOR,
    .create = broker_create,
    .start = broker_start,
    .destroy = broker_destroy,
    .publish = broker_publish,
    .subscribe = broker_subscribe,
    .unsubscribe = broker_unsubscribe,
};

static const flowrelay_plugin_info plugin_info = {
    .struct_size = sizeof(flowrelay_plugin_info),
    .abi_major = FLOWRELAY_ABI_MAJOR,
    .abi_minor = FLOWRELAY_ABI_MINOR,
    .name = "broker-minimal",
    .version = "0.1.0",
    .broker = &broker_vtable,
    .transport = NULL,
};

/* [main] The only exported symbol. This plugin needs nothing newer than ABI 1.0, so it accepts
 * every host minor. */
FLOWRELAY_EXPORT const flowrelay_plugin_info *flowrelay_plugin_entry_v1(uint32_t host_abi_minor) {
  (void)host_abi_minor;
  return &plugin_info;
}
