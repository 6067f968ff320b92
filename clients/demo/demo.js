// The demo chat page: one conversation over clients/js/flowrelay.js. Replies of the example
// agent (examples/agent) stream in as {"role":"assistant","reply":id,"seq":n,"delta":text} and
// end with {"reply":id,"seq":last+1,"end":true,"tokens":N}; prompts are {"role":"user",...};
// the log lane goes to the side panel. Everything is rendered with textContent (no HTML from
// the wire). The DOM carries the state a person (or a test) reads: #state[data-state],
// [data-reply-id][data-complete], one span[data-seq] per token.
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

// One assistant reply as it grows. Tokens are shown in seq order, each once: a seq already
// shown is counted (data-duplicates) and dropped, one that arrives early waits for the gap.
class Reply {
  constructor(id, offset) {
    this.el = item('assistant', 'agent', offset);
    this.el.dataset.replyId = id;
    this.el.dataset.complete = 'false';
    this.el.dataset.duplicates = '0';
    this.text = this.el.querySelector('.text');
    this.next = 1;            // the seq shown next
    this.waiting = new Map(); // seq -> message that came before its predecessors
    this.endSeq = null;
  }

  add(m) {
    const seq = Number(m.seq);
    if (!Number.isInteger(seq) || seq < 1) return;
    if (seq < this.next || this.waiting.has(seq)) {
      this.el.dataset.duplicates = String(Number(this.el.dataset.duplicates) + 1);
      return;
    }
    this.waiting.set(seq, m);
    while (this.waiting.has(this.next)) {
      const part = this.waiting.get(this.next);
      this.waiting.delete(this.next);
      if (part.end) {
        this.endSeq = this.next;
        this.el.dataset.complete = 'true';
        if (part.tokens !== undefined) this.el.dataset.tokens = String(part.tokens);
        this.el.classList.add('complete');
      } else {
        const span = document.createElement('span');
        span.dataset.seq = String(this.next);
        span.textContent = String(part.delta ?? '');
        this.text.append(span);
      }
      this.next += 1;
    }
  }
}

const replies = new Map(); // reply id -> Reply

function showMessage(m) {
  let body = null;
  try {
    body = JSON.parse(m.data);
  } catch { /* plain text: a raw client or a backend that does not speak the app protocol */ }
  const isObject = body !== null && typeof body === 'object';
  if (isObject && body.role === 'assistant' && typeof body.reply === 'string') {
    let reply = replies.get(body.reply);
    if (!reply) replies.set(body.reply, (reply = new Reply(body.reply, m.offset)));
    reply.add(body);
  } else if (isObject && body.role === 'user') {
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
