// flowrelay client: envelope mode (subprotocol flowrelay.v1) with resume, lanes and acked
// publishes, for browsers and Node.js (a global WebSocket or one passed in the options).
// No dependencies, so that a page can load it as it is (docs/PROTOCOL.md); reply streams are
// assembled by replies.js next to it.
import { isReplyId, REPLY_FRAME_TYPES, ReplyTracker } from './replies.js';

export const SUBPROTOCOL = 'flowrelay.v1';

const DEFAULTS = {
  backoff: { initialMs: 250, maxMs: 10000, resetAfterMs: 5000 },
  publishTimeoutMs: 10000,
  maxQueued: 1000,
};

const BAD_REPLY_ID = 'reply must be 1 to 64 printable ASCII characters without spaces';

// A close 1008 whose reason names the token or a missing right: reconnecting cannot help.
// Other 1008s (slow consumer, publish rate) are transient and reconnect.
const AUTH_REASON = /token|permission|not allowed|forbidden|unauthori[sz]ed|denied|grant/i;

// Rejection of publish() and the reply requests: `code` is an HTTP-like status from the
// server's error frame (400, 4xx, 409, 413, 429, 501, 503), 504 for publishTimeoutMs, or the
// WebSocket close code that ended the client (1000 after close(), 1008 when the server refused
// the token). A 409 about a reply says `expectedSeq` (a gap) or `ended` (how it ended).
export class FlowrelayError extends Error {
  constructor(code, reason, id, details = {}) {
    super(`flowrelay ${code}: ${reason}`);
    this.name = 'FlowrelayError';
    this.code = code;
    this.reason = reason;
    if (id !== undefined) this.id = id;
    if (details.expected_seq !== undefined) this.expectedSeq = details.expected_seq;
    if (details.ended !== undefined) this.ended = details.ended;
  }
}

// Capped exponential backoff with full jitter (uniform in [0, min(maxMs, initialMs * 2^(n-1))]):
// clients dropped together by a restart do not come back in lockstep.
export function backoffDelay(attempt, backoff = {}, random = Math.random) {
  const initialMs = backoff.initialMs ?? DEFAULTS.backoff.initialMs;
  const maxMs = backoff.maxMs ?? DEFAULTS.backoff.maxMs;
  const exponent = Math.min(Math.max(attempt, 1) - 1, 40);  // 2^40: past any sane maxMs
  const cap = Math.min(maxMs, initialMs * 2 ** exponent);
  return Math.floor(random() * cap);
}

function randomTag() {
  const bytes = new Uint8Array(6);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export class FlowrelayClient {
  constructor(url, options = {}) {
    this._url = String(url);
    this._token = options.token;
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this._WebSocket !== 'function')
      throw new TypeError('no WebSocket: pass options.WebSocket (Node 20: --experimental-websocket)');
    this._backoff = { ...DEFAULTS.backoff, ...options.backoff };
    this._publishTimeoutMs = options.publishTimeoutMs ?? DEFAULTS.publishTimeoutMs;
    this._maxQueued = options.maxQueued ?? DEFAULTS.maxQueued;
    this._offset = Number(options.since ?? 0);
    this._epoch = options.epoch ?? null;
    this._listeners = new Map();
    this._pending = new Map();  // id -> request not acked yet (sent or queued), in call order
    this._replies = new ReplyTracker((event, value) => this._emit(event, value),
                                     { maxEnded: options.maxEndedReplies });
    this._replaying = false;  // between a connection's open and its resumed frame
    this._idPrefix = randomTag();
    this._nextId = 0;
    this._state = 'connecting';
    this._attempt = 0;
    this._ws = null;
    this._openedAt = 0;
    this._retryTimer = null;
    // Connect on the next microtask so that listeners added right after `new` see every event.
    queueMicrotask(() => this._connect());
  }

  get offset() { return this._offset; }
  get epoch() { return this._epoch; }
  get state() { return this._state; }

  // A reply's state as assembled so far ({id, text, seq, ended, reason, ...}), or undefined.
  reply(id) { return this._replies.get(id); }
  get replies() { return this._replies.all(); }

  on(event, listener) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    const set = this._listeners.get(event);
    // A wrapper per call, so that the same function added twice is removed one at a time.
    const entry = (value) => listener(value);
    set.add(entry);
    return () => set.delete(entry);
  }

  publish(data, { lane = 'message' } = {}) {
    if (typeof data !== 'string')
      return Promise.reject(new FlowrelayError(400, 'data must be a string'));
    return this._request({ type: 'publish', lane, data });
  }

  // Stops a reply for everyone (its producer's next delta gets 409); resolves on the ack.
  cancel(reply) {
    return this._replyRequest({ type: 'cancel', reply });
  }

  // Producing a reply from this client (it needs the publish right): open (optional), deltas
  // numbered from 1 (a resend of a seq is answered duplicate, stored once), end.
  openReply(reply) {
    return this._replyRequest({ type: 'open', reply });
  }

  appendReply(reply, seq, data) {
    if (!Number.isInteger(seq) || seq < 1)
      return Promise.reject(new FlowrelayError(400, 'seq must be a positive integer'));
    if (typeof data !== 'string')
      return Promise.reject(new FlowrelayError(400, 'data must be a string'));
    return this._replyRequest({ type: 'delta', reply, seq, data });
  }

  endReply(reply, { error } = {}) {
    if (error !== undefined && typeof error !== 'string')
      return Promise.reject(new FlowrelayError(400, 'error must be a string'));
    return this._replyRequest(error === undefined ? { type: 'end', reply }
                                                  : { type: 'end', reply, error });
  }

  _replyRequest(frame) {
    if (!isReplyId(frame.reply))
      return Promise.reject(new FlowrelayError(400, BAD_REPLY_ID));
    return this._request(frame);
  }

  // Sends `frame` with a new id (now, or once connected; again after a reconnect until it
  // is answered) and settles on the server's ack or error frame for that id.
  _request({ type, ...fields }) {
    if (this._state === 'closed')
      return Promise.reject(new FlowrelayError(this._closeCode ?? 1000, 'the client is closed'));
    if (this._pending.size >= this._maxQueued)
      return Promise.reject(new FlowrelayError(503, `more than ${this._maxQueued} requests pending`));
    const id = `${this._idPrefix}-${++this._nextId}`;
    return new Promise((resolve, reject) => {
      const entry = { frame: JSON.stringify({ type, id, ...fields }), resolve, reject };
      entry.timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new FlowrelayError(504, `no ack within ${this._publishTimeoutMs} ms`, id));
      }, this._publishTimeoutMs);
      this._pending.set(id, entry);
      if (this._isOpen()) this._ws.send(entry.frame);
    });
  }

  close() {
    this._stop(1000, 'closed by the application');
  }

  // --- connection -----------------------------------------------------------------------------

  _isOpen() {
    return this._ws !== null && this._ws.readyState === 1 && this._state === 'open';
  }

  _socketUrl() {
    const u = new URL(this._url);
    u.searchParams.set('since', String(this._offset));
    if (this._epoch) u.searchParams.set('epoch', this._epoch);
    else u.searchParams.delete('epoch');
    if (this._token) u.searchParams.set('token', this._token);
    return u.toString();
  }

  _connect() {
    if (this._state === 'closed') return;
    this._retryTimer = null;
    this._attempt += 1;
    this._setState({ state: 'connecting', attempt: this._attempt });
    let ws;
    try {
      ws = new this._WebSocket(this._socketUrl(), [SUBPROTOCOL]);
    } catch (e) {  // a malformed URL: retrying cannot fix it
      this._emit('error', { code: 0, reason: String(e?.message ?? e) });
      return this._stop(1002, 'cannot open a WebSocket: ' + (e?.message ?? e));
    }
    this._ws = ws;
    ws.onopen = () => ws === this._ws && this._onOpen(ws);
    ws.onmessage = (ev) => ws === this._ws && this._onFrame(ev.data);
    ws.onclose = (ev) => ws === this._ws && this._onClose(ev.code, ev.reason);
    // Browsers follow an error with a close event (the real code); Node 20's WebSocket fires
    // no close when the connection fails. So an error not followed by a close soon is one.
    ws.onerror = () => setTimeout(() => ws === this._ws && this._onClose(1006, ''), 50);
  }

  _onOpen(ws) {
    if (ws.protocol !== SUBPROTOCOL) {
      // A server (or a proxy in between) that dropped the subprotocol speaks raw mode: frames
      // would be taken as chat text, so this is fatal rather than retried.
      this._emit('error', { code: 0, reason: `server did not accept ${SUBPROTOCOL}` });
      return this._stop(1002, `server did not accept ${SUBPROTOCOL}`);
    }
    this._openedAt = Date.now();
    this._replaying = true;
    this._setState({ state: 'open', attempt: this._attempt });
    // Everything not acked goes again, in call order, with its id (see README: at-least-once).
    for (const entry of this._pending.values()) ws.send(entry.frame);
  }

  _onClose(code, reason) {
    this._ws = null;
    if (this._state === 'closed') return;
    if (code === 1008 && AUTH_REASON.test(reason ?? '')) return this._stop(code, reason);
    // A connection that stayed up a while was healthy: start the backoff over. One that failed
    // at once (refused handshake, which a browser reports as 1006 only) keeps backing off.
    const stable = this._openedAt && Date.now() - this._openedAt >= this._backoff.resetAfterMs;
    if (stable) this._attempt = 0;
    this._openedAt = 0;
    // The n-th failure in a row waits up to initialMs * 2^(n-1).
    const delayMs = backoffDelay(Math.max(1, this._attempt), this._backoff);
    this._setState({ state: 'reconnecting', attempt: this._attempt + 1, delayMs, code, reason });
    this._retryTimer = setTimeout(() => this._connect(), delayMs);
  }

  _stop(code, reason) {
    if (this._state === 'closed') return;
    this._closeCode = code;
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    const ws = this._ws;
    this._ws = null;
    if (ws && ws.readyState <= 1) {
      try { ws.close(1000); } catch { /* already closing */ }
    }
    for (const [id, entry] of this._pending) {
      clearTimeout(entry.timer);
      entry.reject(new FlowrelayError(code, reason, id));
    }
    this._pending.clear();
    this._setState({ state: 'closed', attempt: this._attempt, code, reason });
  }

  // --- frames ---------------------------------------------------------------------------------

  _onFrame(text) {
    let f;
    try {
      f = JSON.parse(text);
    } catch {
      return this._emit('error', { code: 0, reason: 'frame from the server is not JSON' });
    }
    if (f === null || typeof f !== 'object') return;
    switch (f.type) {
      case 'message': return this._onMessage(f);
      case 'resumed': return this._onResumed(f);
      case 'ack': return this._settle(f.id, (e) => e.resolve(ackResult(f)));
      case 'error':
        if (f.id !== undefined && this._pending.has(f.id))
          return this._settle(f.id, (e) => e.reject(new FlowrelayError(f.code, f.reason, f.id, f)));
        if (f.id !== undefined) return;  // answer to a request that already timed out
        return this._emit('error', errorEvent(f));
      default:
        if (REPLY_FRAME_TYPES.has(f.type)) return this._onReplyFrame(f);
        return;  // frame types of later protocol versions
    }
  }

  _onReplyFrame(f) {
    this._emit('reply-frame', f);
    // A merged delta stands for seq - from + 1 deltas, each of which took an offset.
    const covers = f.type === 'delta' && Number.isInteger(f.from) ? f.seq - f.from + 1 : 1;
    if (!this._advance(f, covers)) return;
    this._replies.onFrame(f);
  }

  _settle(id, fn) {
    const entry = this._pending.get(id);
    if (!entry) return;
    this._pending.delete(id);
    clearTimeout(entry.timer);
    fn(entry);
  }

  _onMessage(f) {
    const m = { lane: f.lane === 'log' ? 'log' : 'message', offset: f.offset, epoch: f.epoch,
                data: f.data };
    if (this._advance(f, 1)) this._emit(m.lane, m);
  }

  // Moves the position to a frame's offset; false when that offset was delivered already.
  // `covers`: how many offsets the frame stands for (a merged delta: several).
  _advance(f, covers) {
    if (typeof f.offset !== 'number' || f.offset <= 0) return true;  // not kept in history
    if (f.epoch === this._epoch) {
      if (f.offset <= this._offset) return false;  // already delivered (history overlapping live)
      // A replay has holes by design (a reply's deltas live on in its one entry), so only
      // live frames can show a gap.
      if (!this._replaying && f.offset > this._offset + covers)
        this._emit('gap', { from: this._offset + 1, to: f.offset - covers, epoch: f.epoch });
    }
    // A new epoch: the history was reset and offsets start again, so the position follows.
    this._offset = f.offset;
    this._epoch = f.epoch ?? null;
    return true;
  }

  _onResumed(f) {
    this._replaying = false;
    const r = { recovered: f.recovered === true, offset: f.offset ?? 0, epoch: f.epoch ?? null };
    if (!r.recovered || (r.epoch !== null && r.epoch !== this._epoch)) {
      // Not recovered, or another epoch: live messages continue after the server's offset
      // (none and no epoch: the conversation has no history yet, so the next resume asks for
      // all of it).
      this._offset = r.offset;
      this._epoch = r.epoch;
    } else if (r.epoch !== null && r.offset > this._offset) {
      this._offset = r.offset;
    }
    this._emit('resumed', r);
    if (!r.recovered) this._emit('recovered:false', r);
  }

  // --- events ---------------------------------------------------------------------------------

  _setState(s) {
    this._state = s.state;
    this._emit('state', s);
  }

  _emit(event, value) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(value);
      } catch (e) {
        // A failing listener must not break delivery to the others nor the client's state.
        if (typeof globalThis.reportError === 'function') globalThis.reportError(e);
        else setTimeout(() => { throw e; });
      }
    }
  }
}

function ackResult(f) {
  const r = { offset: f.offset ?? 0, epoch: f.epoch ?? null };
  if (f.relayed !== undefined) r.relayed = f.relayed;
  if (f.duplicate === true) r.duplicate = true;
  return r;
}

function errorEvent(f) {
  const e = { code: f.code, reason: f.reason };
  if (f.reply !== undefined) e.reply = f.reply;
  if (f.expected_seq !== undefined) e.expectedSeq = f.expected_seq;
  if (f.ended !== undefined) e.ended = f.ended;
  return e;
}
