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
  /** Publishes not acked yet (sent or queued) at most; past it publish() rejects with 503. Default 1000. */
  maxQueued?: number;
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
}

export interface FlowrelayEvents {
  message: Message;
  log: Message;
  resumed: Resumed;
  'recovered:false': Resumed;
  state: StateChange;
  error: ErrorEvent;
  gap: Gap;
}

export interface PublishOptions {
  lane?: Lane;
}

export declare class FlowrelayError extends Error {
  constructor(code: number, reason: string, id?: string);
  readonly name: 'FlowrelayError';
  /**
   * 400 bad frame, other 4xx refused by the backend, 429 rate limited, 503 unavailable or
   * queue full, 504 no ack in time; 1000 the client was closed, 1008 the server refused the token.
   */
  readonly code: number;
  readonly reason: string;
  /** The publish's id, when the error belongs to one. */
  readonly id?: string;
}

export declare class FlowrelayClient {
  constructor(url: string | URL, options?: FlowrelayClientOptions);
  /** Returns a function that removes this listener. */
  on<E extends keyof FlowrelayEvents>(event: E, listener: (value: FlowrelayEvents[E]) => void): () => void;
  /** Resolves on the server's ack; rejects with a FlowrelayError. */
  publish(data: string, options?: PublishOptions): Promise<Ack>;
  /** Closes for good: no reconnect, pending publishes reject with code 1000. */
  close(): void;
  /** The newest offset delivered (or given as `since`). */
  readonly offset: number;
  readonly epoch: string | null;
  readonly state: ConnectionState;
}

/** Full-jitter capped exponential backoff: uniform in [0, min(maxMs, initialMs * 2^(attempt-1))). */
export declare function backoffDelay(attempt: number, backoff?: BackoffOptions, random?: () => number): number;
