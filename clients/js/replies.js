// Reply streams (docs/PROTOCOL.md "Reply streams"): assembles each reply's text from the
// server's open / delta / snapshot / reply / end / stalled frames, every seq once, whatever
// reconnects and replays happened in between. Used by flowrelay.js; no dependencies.

export const REPLY_FRAME_TYPES = new Set(['open', 'delta', 'end', 'snapshot', 'reply', 'stalled']);

// 1 to 64 printable ASCII characters without spaces (the server refuses others with 400).
const REPLY_ID = /^[\x21-\x7e]{1,64}$/;

export function isReplyId(id) {
  return typeof id === 'string' && REPLY_ID.test(id);
}

const DEFAULT_MAX_ENDED = 1000;

// What a listener gets: a copy, so that later frames do not change what it kept.
function view(st) {
  const v = { id: st.id, text: st.text, seq: st.seq, ended: st.ended, stalled: st.stalled,
              incomplete: st.incomplete };
  if (st.reason !== undefined) v.reason = st.reason;
  if (st.error !== undefined) v.error = st.error;
  if (st.stats !== undefined) v.stats = { ...st.stats };
  return v;
}

function isSeq(n) {
  return Number.isInteger(n) && n >= 1;
}

export class ReplyTracker {
  // `emit(event, value)`: 'reply' on every change of a reply, 'reply-end' once when it ends.
  constructor(emit, { maxEnded = DEFAULT_MAX_ENDED } = {}) {
    this._emit = emit;
    this._maxEnded = maxEnded;
    this._replies = new Map();  // id -> state, in the order the replies were first seen
    this._ended = 0;
  }

  get(id) {
    const st = this._replies.get(id);
    return st ? view(st) : undefined;
  }

  all() {
    return [...this._replies.values()].map(view);
  }

  // Handles one reply frame; returns false when it changed nothing (a duplicate, an older
  // snapshot, a malformed frame).
  onFrame(f) {
    if (!isReplyId(f.reply)) return false;
    switch (f.type) {
      case 'open': return this._open(f);
      case 'delta': return this._delta(f);
      case 'snapshot': return this._snapshot(f);
      case 'reply': return this._reply(f);
      case 'end': return this._end(f);
      case 'stalled': return this._stalled(f);
      default: return false;
    }
  }

  _state(id) {
    let st = this._replies.get(id);
    if (!st) {
      st = { id, text: '', seq: 0, ended: false, stalled: false, incomplete: false };
      this._replies.set(id, st);
    }
    return st;
  }

  _changed(st, f, extra = {}) {
    const v = view(st);
    v.change = f.type;
    if (f.offset !== undefined) v.offset = f.offset;
    if (f.epoch !== undefined) v.epoch = f.epoch;
    this._emit('reply', Object.assign(v, extra));
    return true;
  }

  _open(f) {
    if (this._replies.has(f.reply)) return false;  // a resent open, or after its deltas
    return this._changed(this._state(f.reply), f);
  }

  _delta(f) {
    // A merged delta (a slow client's queued deltas in one frame) covers seqs from..seq.
    const from = f.from ?? f.seq;
    if (!isSeq(f.seq) || !isSeq(from) || from > f.seq || typeof f.data !== 'string') return false;
    const st = this._state(f.reply);
    if (st.ended || f.seq <= st.seq) return false;
    st.stalled = false;
    if (from > st.seq + 1) {
      // Deltas before `from` never reached this client (it joined mid-reply without history,
      // or the history no longer had them): the text shown misses them.
      st.incomplete = true;
    } else if (from <= st.seq) {
      // Overlaps what is shown and cannot be split (the server merges only unsent frames of
      // one connection, so this does not happen): skip it rather than show text twice.
      st.seq = f.seq;
      st.incomplete = true;
      return this._changed(st, f, { delta: '' });
    }
    st.text += f.data;
    st.seq = f.seq;
    return this._changed(st, f, { delta: f.data });
  }

  _snapshot(f) {
    if (!isSeq(f.seq) || typeof f.data !== 'string') return false;
    const st = this._state(f.reply);
    // An ended reply's text is final; an older snapshot than what is shown changes nothing.
    if (st.ended || f.seq < st.seq || (f.seq === st.seq && f.data === st.text)) return false;
    st.text = f.data;
    st.seq = f.seq;
    st.incomplete = false;
    st.stalled = false;
    return this._changed(st, f);
  }

  _reply(f) {
    if (typeof f.data !== 'string') return false;
    const st = this._state(f.reply);
    if (st.ended && st.text === f.data) return false;
    const ends = !st.ended;
    st.text = f.data;
    if (Number.isInteger(f.seq) && f.seq >= 0) st.seq = f.seq;
    st.incomplete = false;
    this._seal(st, f);
    this._changed(st, f);
    if (ends) this._emit('reply-end', view(st));
    return true;
  }

  _end(f) {
    const st = this._state(f.reply);
    if (st.ended) return false;
    // The end carries the reply's delta count: a client that missed some knows it.
    const tokens = f.stats?.tokens;
    if (Number.isInteger(tokens) && tokens > st.seq) st.incomplete = true;
    this._seal(st, f);
    this._changed(st, f);
    this._emit('reply-end', view(st));
    return true;
  }

  _stalled(f) {
    const st = this._replies.get(f.reply);
    if (!st || st.ended || st.stalled) return false;
    st.stalled = true;
    return this._changed(st, f);
  }

  _seal(st, f) {
    if (!st.ended) this._ended += 1;
    st.ended = true;
    st.stalled = false;
    st.reason = typeof f.reason === 'string' ? f.reason : 'done';
    if (typeof f.error === 'string') st.error = f.error;
    if (f.stats && typeof f.stats === 'object') st.stats = { ...f.stats };
    this._forgetOldEnded();
  }

  // A long-lived client sees many replies: only the newest maxEnded ended ones are kept.
  _forgetOldEnded() {
    if (this._ended <= this._maxEnded) return;
    for (const [id, st] of this._replies) {
      if (this._ended <= this._maxEnded) break;
      if (!st.ended) continue;
      this._replies.delete(id);
      this._ended -= 1;
    }
  }
}
