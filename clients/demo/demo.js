// The demo chat page: one conversation over clients/js/flowrelay.js. Replies of the example
// agent (examples/agent) arrive as reply streams (open, delta, end; snapshot or the compacted
// reply after a resume), each with a Stop button while it streams; prompts are
// {"role":"user",...} messages; the log lane goes to the side panel. Everything is rendered
// with textContent (no HTML from the wire). The DOM carries the state a person (or a test)
// reads: #state[data-state], [data-reply-id][data-complete][data-reason][data-seq].
import { FlowrelayClient } from './flowrelay.js';

const params = new URLSearchParams(location.search);
const conversation = params.get('conversation') || 'demo';

const $ = (id) => document.getElementById(id);
const transcript = $('transcript');
const logList = $('log');
const stateLine = $('state');
const ack = $('ack');
const form = $('prompt-form');
const prompt = $('prompt');

// Where the WebSocket endpoint is: ?ws=ws://host:port/ws/ (the conversation is appended), else
// what the daemon that served this page says in config.json (its first transport-ws listener).
async function socketBase() {
  const fromQuery = params.get('ws');
  if (fromQuery) return fromQuery;
  const r = await fetch('config.json', { cache: 'no-store' });
  if (!r.ok) throw new Error(`config.json answered ${r.status}`);
  const { ws } = await r.json();
  if (typeof ws !== 'string') throw new Error('config.json has no "ws"');
  return ws;
}

function item(className, who, offset) {
  const li = document.createElement('li');
  li.className = className;
  if (offset !== undefined) li.dataset.offset = String(offset);
  const label = document.createElement('span');
  label.className = 'who';
  label.textContent = who;
  const text = document.createElement('p');
  text.className = 'text';
  li.append(label, text);
  // Keep the newest line in view unless the reader scrolled up to read older ones.
  const atBottom = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 40;
  transcript.append(li);
  if (atBottom) transcript.scrollTop = transcript.scrollHeight;
  return li;
}

// One assistant reply as the client library assembles it from reply frames: live deltas are
// appended (one span[data-seq] each), a snapshot or compacted reply entry after a resume
// replaces the text. The item carries what a reader (or a test) checks: data-seq (the last
// seq shown), data-complete, data-reason, data-stalled, data-tokens (the end's count),
// data-deltas / data-replaced (how many frames built the text).
const REASONS = { cancelled: 'stopped', producer_lost: 'the agent went silent', error: 'failed' };

class Reply {
  constructor(id, offset) {
    this.id = id;
    this.el = item('assistant', 'agent', offset);
    Object.assign(this.el.dataset, { replyId: id, complete: 'false', seq: '0', deltas: '0',
                                     replaced: '0', stalled: 'false' });
    this.text = this.el.querySelector('.text');
    this.status = document.createElement('span');
    this.status.className = 'reply-status';
    this.stop = document.createElement('button');
    this.stop.type = 'button';
    this.stop.className = 'stop';
    this.stop.textContent = 'Stop';
    this.stop.title = 'Stop this reply for everyone';
    this.el.querySelector('.who').after(this.stop, this.status);
  }

  update(r) {
    const d = this.el.dataset;
    if (r.change === 'delta') {
      const span = document.createElement('span');
      span.dataset.seq = String(r.seq);
      span.textContent = r.delta;
      this.text.append(span);
      d.deltas = String(Number(d.deltas) + 1);
    } else if (r.change === 'snapshot' || r.change === 'reply') {
      this.text.replaceChildren(r.text);
      d.replaced = String(Number(d.replaced) + 1);
    }
    d.seq = String(r.seq);
    d.stalled = String(r.stalled);
    if (r.incomplete) d.incomplete = 'true';
    else delete d.incomplete;
    let status = r.stalled ? 'waiting for the agent…' : '';
    if (r.ended) {
      d.complete = 'true';
      d.reason = r.reason;
      if (r.stats) d.tokens = String(r.stats.tokens);
      this.el.classList.add('complete');
      this.stop.remove();
      status = REASONS[r.reason] ?? '';
      if (r.reason === 'error' && r.error) status += `: ${r.error}`;
    }
    this.status.textContent = status;
  }

  refused(e) {
    this.status.textContent = `stop refused: ${e.code ?? ''} ${e.reason ?? e.message}`;
    this.stop.disabled = false;
  }
}

const replies = new Map(); // reply id -> Reply

function showReply(client, r) {
  let reply = replies.get(r.id);
  if (!reply) {
    replies.set(r.id, (reply = new Reply(r.id, r.offset)));
    reply.stop.addEventListener('click', () => {
      reply.stop.disabled = true;  // the end frame removes it; a refusal gives it back
      client.cancel(r.id).catch((e) => reply.refused(e));
    });
  }
  reply.update(r);
}

function showMessage(m) {
  let body = null;
  try {
    body = JSON.parse(m.data);
  } catch { /* plain text: a raw client or a backend that does not speak the app protocol */ }
  if (body !== null && typeof body === 'object' && body.role === 'user') {
    item('user', 'you', m.offset).querySelector('.text').textContent = String(body.text ?? '');
  } else {
    item('plain', 'message', m.offset).querySelector('.text').textContent = m.data;
  }
}

function logLine(text, className = '') {
  const li = document.createElement('li');
  if (className) li.className = className;
  li.textContent = text;
  logList.append(li);
  logList.scrollTop = logList.scrollHeight;
}

// Connections lost so far (#state[data-reconnects]): a drop and reconnect quicker than a
// repaint still leaves a trace.
let reconnects = 0;

function showState(s) {
  if (s.state === 'reconnecting') reconnects += 1;
  stateLine.dataset.reconnects = String(reconnects);
  stateLine.dataset.state = s.state;
  stateLine.dataset.attempt = String(s.attempt ?? 0);
  let text = s.state;
  if (s.state === 'connecting' && s.attempt > 1) text += ` (attempt ${s.attempt})`;
  if (s.state === 'reconnecting') {
    text += ` (attempt ${s.attempt} in ${(s.delayMs / 1000).toFixed(1)} s`;
    text += s.code ? `; closed ${s.code}${s.reason ? ': ' + s.reason : ''})` : ')';
  }
  if (s.state === 'closed' && (s.code || s.reason))
    text += ` (${[s.code, s.reason].filter(Boolean).join(': ')})`;
  stateLine.textContent = text;
}

function showAck(status, text) {
  ack.dataset.status = status;
  ack.textContent = text;
}

function connect(url) {
  const client = new FlowrelayClient(url, {
    token: params.get('token') ?? undefined,
    backoff: { initialMs: 200, maxMs: 5000 },
  });
  client.on('state', showState);
  client.on('message', showMessage);
  client.on('reply', (r) => showReply(client, r));
  client.on('log', (m) => logLine(m.data));
  // Every connection ends its catch-up with a resumed frame; only a reconnect's is news.
  let connectedBefore = false;
  client.on('resumed', (r) => {
    if (r.recovered && connectedBefore)
      logLine(`reconnected, resumed after offset ${r.offset}`, 'notice');
    connectedBefore = true;
  });
  client.on('recovered:false', (r) =>
    logLine(`history no longer covers what was missed (now at offset ${r.offset}); ` +
            'reload for the current conversation', 'notice warning'));
  client.on('error', (e) => logLine(`error ${e.code}: ${e.reason}`, 'notice warning'));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = prompt.value.trim();
    if (!text) return;
    prompt.value = '';
    showAck('pending', 'sending…');
    try {
      const r = await client.publish(text);
      showAck('ok', r.relayed === false ? 'accepted (not relayed)' : `sent (offset ${r.offset})`);
    } catch (e) {
      showAck('error', `not sent: ${e.code ?? ''} ${e.reason ?? e.message}`);
      prompt.value ||= text;  // give the text back to retry
    }
  });
  prompt.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });
  return client;
}

$('conversation').textContent = conversation;
document.title = `flowrelay demo: ${conversation}`;
try {
  const base = await socketBase();
  connect(new URL(encodeURIComponent(conversation), base.endsWith('/') ? base : base + '/').href);
} catch (e) {
  showState({ state: 'closed', reason: e.message });
  showAck('error', `cannot connect: ${e.message}`);
}
