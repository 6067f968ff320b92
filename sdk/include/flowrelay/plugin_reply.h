/*
 * flowrelay plugin ABI 2.2: reply streams (included by plugin.h; see its rules).
 *
 * An AI reply is one stream of small deltas under a reply id. Producers open it (optional),
 * extend it with deltas numbered by `seq` from 1, and end it (done, error, cancelled by a
 * client, producer_lost when the daemon gave up waiting). The broker keeps the state of each
 * reply (its seq, its text so far, whether it ended), refuses what does not fit, and keeps
 * history compact:
 *  - while a reply streams, history holds it as one entry growing with each delta (its text so
 *    far, seq n): a history read returns it as a SNAPSHOT placed at its newest delta's offset;
 *  - when it ends, that entry becomes one REPLY entry with the whole text at the end's offset,
 *    atomically with the end (no read ever sees both or neither). The deltas' own offsets then
 *    have no entry: they are covered by the snapshot or the reply entry. History bounds
 *    (history_size, history_max_bytes) count entries after this compaction.
 * Live, every OPEN, DELTA and END takes the channel's next offset and is delivered as usual.
 */
#ifndef FLOWRELAY_PLUGIN_REPLY_H
#define FLOWRELAY_PLUGIN_REPLY_H

#ifndef FLOWRELAY_PLUGIN_H
#error "include <flowrelay/plugin.h>, not this file"
#endif

/* What a message is. Never renumbered. A message without reply info is a MESSAGE. */
typedef uint32_t flowrelay_kind;
#define FLOWRELAY_KIND_MESSAGE 0  /* a plain message */
#define FLOWRELAY_KIND_OPEN 1     /* a reply was opened: no text yet (optional: the first
                                   * delta opens it too); time to first token counts from here */
#define FLOWRELAY_KIND_DELTA 2    /* the reply's next piece: data, seq */
#define FLOWRELAY_KIND_END 3      /* the reply ended: reason (error), stats; data empty */
#define FLOWRELAY_KIND_SNAPSHOT 4 /* history (and gap fill) only: an unfinished reply's text so
                                   * far in data, seq = its newest delta's */
#define FLOWRELAY_KIND_REPLY 5    /* history (and gap fill) only: an ended reply compacted into
                                   * one entry: the whole text in data; seq, reason, stats */
#define FLOWRELAY_KIND_STALLED 6  /* the daemon's, to transports only: no delta of this open
                                   * reply for channels.reply_stall_ms; offset 0 */

/* The reply a message belongs to. Borrowed with its message. Statistics are the broker's,
 * measured on its own clock (broker-redis: Redis' TIME), so every node shows the same. */
typedef struct flowrelay_reply {
  uint32_t struct_size;
  flowrelay_kind kind;
  flowrelay_str id;      /* 1 to 64 printable ASCII characters (0x21-0x7E), per channel */
  uint64_t seq;          /* DELTA: its number, 1, 2, ...; SNAPSHOT, END, REPLY: the newest
                          * delta's (the reply's token count); OPEN: 0 */
  flowrelay_str reason;  /* END, REPLY: "done", "error", "cancelled" or "producer_lost" (on
                          * publish, what the producer says); empty otherwise */
  flowrelay_str error;   /* END, REPLY with reason "error": the producer's words, maybe empty */
  int64_t ttft_ms;       /* END, REPLY: opened (OPEN, else the first delta) to the first
                          * delta; -1 unknown or no delta */
  int64_t duration_ms;   /* END, REPLY: opened to ended; -1 unknown */
  uint64_t bytes;        /* END, REPLY: the whole text's length in bytes */
} flowrelay_reply;

/* The outcome of publish_reply(). Borrowed for the call of the completion. */
typedef struct flowrelay_reply_published {
  uint32_t struct_size;
  flowrelay_status status; /* FLOWRELAY_OK: stored and delivered, or a duplicate;
                            * FLOWRELAY_ECONFLICT: refused, it does not fit the reply (below);
                            * FLOWRELAY_ETOOBIG: the reply's text would exceed the channel's
                            * history_max_bytes; others as publish() */
  int32_t duplicate;       /* OK: 1 = this seq (or this end) was stored before: nothing was
                            * stored or delivered again */
  uint64_t offset;         /* OK: the offset it got (a duplicate's: the first copy's when the
                            * broker still knows it, else 0) */
  flowrelay_str epoch;
  uint64_t expected_seq;   /* ECONFLICT: the seq the reply expects next (a gap, or a delta
                            * of an unknown reply with seq > 1); 0 when the reply has ended */
  flowrelay_str ended;     /* ECONFLICT on an ended reply: how it ended ("cancelled", ...) */
} flowrelay_reply_published;
typedef void (*flowrelay_reply_published_fn)(void *ctx, const flowrelay_reply_published *result);

#endif /* FLOWRELAY_PLUGIN_REPLY_H */
