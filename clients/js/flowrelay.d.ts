// Types of flowrelay.js: the envelope-mode (flowrelay.v1) client of docs/PROTOCOL.md.

export declare const SUBPROTOCOL: 'flowrelay.v1';

export type Lane = 'message' | 'log';

export interface BackoffOptions {
  /** Ceiling of the first retry's delay (ms). Default 250. */
  initialMs?: number;
  /** The ceiling doubles per failed attempt up to this (ms). Default 10000. */
  maxMs?: number;
  /** A connection open at least this long (ms) starts the backoff over. Default 5000. */
  resetAfterMs?: number;
}

/** The WebSocket constructor the client uses (the browser's, Node's global, or `ws`-like). */
export interface WebSocketConstructor {
  new (url: string, protocols?: string | string[]): WebSocketLike;
}

export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  // `any` events: the DOM's handler types (Event, MessageEvent, CloseEvent) must fit.
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
}

export interface FlowrelayClientOptions {
  /** A JWT, sent as `?token=` (the browser WebSocket API cannot set headers). */
  token?: string;
  /** Default: globalThis.WebSocket. */
  WebSocket?: WebSocketConstructor;
  backoff?: BackoffOptions;
  /** Start after this offset (a stored position). Default 0: the whole history. */
  since?: number;
  /** The epoch `since` belongs to. */
  epoch?: string;
  /** publish() rejects with code 504 when no ack came within this (ms). Default 10000. */
  publishTimeoutMs?: number;
  /** Requests not acked yet (sent or queued) at most; past it they reject with 503. Default 1000. */
  maxQueued?: number;
  /** Ended replies whose state the client keeps (the oldest are forgotten). Default 1000. */
  maxEndedReplies?: number;
}

export interface Message {
  lane: Lane;
  /** Absent for messages not kept in history (raw Redis PUBLISH, a broker without history). */
  offset?: number;
  epoch?: string;
  data: string;
}

export interface Resumed {
  recovered: boolean;
  /** The newest offset the server sent (0 when unknown). */
  offset: number;
  epoch: string | null;
}

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface StateChange {
  state: ConnectionState;
  /** The connection attempt: the current one, or for 'reconnecting' the next one. */
  attempt: number;
  /** 'reconnecting': the wait before the next attempt. */
  delayMs?: number;
  /** 'reconnecting' and 'closed': the close code (1006: the connection failed or dropped). */
  code?: number;
  reason?: string;
}

export interface ErrorEvent {
  code: number;
  reason: string;
  /** A 409 about a reply step sent without an id. */
  expectedSeq?: number;
  ended?: string;
}

export interface Gap {
  /** The first and last offsets missing (same epoch). */
  from: number;
  to: number;
  epoch: string;
}

export interface Ack {
  offset: number;
  epoch: string | null;
  /** Present when the server says whether the message was relayed (publish proxy). */
  relayed?: boolean;
  /** A reply step or cancel the server had already (stored once). */
  duplicate?: boolean;
}

/** How a reply ended: by its producer (done, error), a client's cancel, or the daemon's timeout. */
export type ReplyEndReason = 'done' | 'error' | 'cancelled' | 'producer_lost';

/** Measured by the broker, the same on every replica. */
export interface ReplyStats {
  /** Deltas (the last seq). */
  tokens: number;
  /** Opened to first delta; absent without deltas. */
  ttft_ms?: number;
  /** Opened to end. */
  duration_ms: number;
  /** Bytes of the whole text. */
  bytes: number;
}

/** A reply as the client assembled it from its frames. */
export interface ReplyState {
  id: string;
  /** The text so far (the whole text once ended). */
  text: string;
  /** The last seq the text covers (0: opened, no delta yet). */
  seq: number;
  ended: boolean;
  /** No delta for the server's reply_stall_ms; cleared by the next delta. */
  stalled: boolean;
  /**
   * The text misses deltas that never reached this client (it joined mid-reply without
   * history, or the history no longer had them); a later snapshot or reply entry repairs it.
   */
  incomplete: boolean;
  /** Once ended. */
  reason?: ReplyEndReason | string;
  /** reason 'error': the producer's words, when it gave some. */
  error?: string;
  stats?: ReplyStats;
}

/** The frame types of a reply stream (docs/PROTOCOL.md "Reply streams"). */
export type ReplyFrameType = 'open' | 'delta' | 'end' | 'snapshot' | 'reply' | 'stalled';

/** A reply changed: its state after the frame (`change` says which). */
export interface ReplyUpdate extends ReplyState {
  change: ReplyFrameType;
  /** 'delta': the text appended (a merged delta's whole text). */
  delta?: string;
  offset?: number;
  epoch?: string;
}

/** A reply frame as the server sent it (duplicates included). */
export interface ReplyFrame {
  type: ReplyFrameType;
  reply: string;
  seq?: number;
  /** A merged delta: its first seq (`seq` its last). */
  from?: number;
  offset?: number;
  epoch?: string;
  data?: string;
  reason?: string;
  error?: string;
  stats?: ReplyStats;
}

export interface FlowrelayEvents {
  message: Message;
  log: Message;
  resumed: Resumed;
  'recovered:false': Resumed;
  state: StateChange;
  error: ErrorEvent;
  gap: Gap;
  /** Every change of a reply: opened, a delta appended, a snapshot or reply entry, stalled, ended. */
  reply: ReplyUpdate;
  /** Once per reply, when it ends (live end, or its compacted reply entry). */
  'reply-end': ReplyState;
  /** Every reply frame received, before deduplication. */
  'reply-frame': ReplyFrame;
}

export interface PublishOptions {
  lane?: Lane;
}

export declare class FlowrelayError extends Error {
  constructor(code: number, reason: string, id?: string,
              details?: { expected_seq?: number; ended?: string });
  readonly name: 'FlowrelayError';
  /**
   * 400 bad frame, other 4xx refused by the backend, 409 reply conflict, 413 reply too big,
   * 429 rate limited, 501 no reply streams, 503 unavailable or queue full, 504 no ack in time;
   * 1000 the client was closed, 1008 the server refused the token.
   */
  readonly code: number;
  readonly reason: string;
  /** The request's id, when the error belongs to one. */
  readonly id?: string;
  /** 409: the seq the reply expects (a gap). */
  readonly expectedSeq?: number;
  /** 409: the reply has ended, this way. */
  readonly ended?: string;
}

export declare class FlowrelayClient {
  constructor(url: string | URL, options?: FlowrelayClientOptions);
  /** Returns a function that removes this listener. */
  on<E extends keyof FlowrelayEvents>(event: E, listener: (value: FlowrelayEvents[E]) => void): () => void;
  /** Resolves on the server's ack; rejects with a FlowrelayError. */
  publish(data: string, options?: PublishOptions): Promise<Ack>;
  /**
   * Stops a reply for everyone (end reason 'cancelled'; its producer's next delta gets 409).
   * Needs the publish right. Rejects with 409 (`ended`) when it had ended already.
   */
  cancel(reply: string): Promise<Ack>;
  /** Producing a reply from this client (publish right): optional, the first delta opens it too. */
  openReply(reply: string): Promise<Ack>;
  /** Delta `seq` (1, 2, ...); a resent seq is acked with `duplicate`, stored once; a gap rejects 409. */
  appendReply(reply: string, seq: number, data: string): Promise<Ack>;
  /** Ends it: reason 'done', or 'error' with `error`. */
  endReply(reply: string, options?: { error?: string }): Promise<Ack>;
  /** A reply's state as assembled so far. */
  reply(id: string): ReplyState | undefined;
  /** Every reply known (open, and the newest ended ones), in the order first seen. */
  readonly replies: ReplyState[];
  /** Closes for good: no reconnect, pending publishes reject with code 1000. */
  close(): void;
  /** The newest offset delivered (or given as `since`). */
  readonly offset: number;
  readonly epoch: string | null;
  readonly state: ConnectionState;
}

/** Full-jitter capped exponential backoff: uniform in [0, min(maxMs, initialMs * 2^(attempt-1))). */
export declare function backoffDelay(attempt: number, backoff?: BackoffOptions, random?: () => number): number;
