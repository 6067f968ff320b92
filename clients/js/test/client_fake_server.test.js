// The client against a scripted server (test-support/fake_websocket.js): the cases a real daemon
// does not produce on cue. The daemon tests (daemon_*.test.js) cover the real protocol.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FlowrelayClient, FlowrelayError } from '../flowrelay.js';
import { record, waitFor } from '../test-support/daemon.js';
import { fakeWebSocket, tick } from '../test-support/fake_websocket.js';

const URL_42 = 'ws://127.0.0.1:1/ws/42';
const fast = { initialMs: 1, maxMs: 4 };

function client(opts = {}) {
  const fake = fakeWebSocket();
  const c = new FlowrelayClient(URL_42, { WebSocket: fake.WebSocket, backoff: fast, ...opts });
  return { c, fake, seen: record(c) };
}

const msg = (offset, epoch = 'e1', data = `m${offset}`, lane = 'message') =>
  ({ type: 'message', lane, offset, epoch, data });

test('first connect asks for the whole history with the subprotocol; token in the query', async () => {
  const { c, fake } = client({ token: 'abc.def.ghi' });
  await tick();
  const ws = fake.last();
  assert.deepEqual(ws.protocols, ['flowrelay.v1']);
  assert.equal(ws.url.searchParams.get('since'), '0');
  assert.equal(ws.url.searchParams.get('epoch'), null);
  assert.equal(ws.url.searchParams.get('token'), 'abc.def.ghi');
  c.close();
});

test('a given since/epoch is the starting point', async () => {
  const { c, fake } = client({ since: 17, epoch: 'ep-x' });
  await tick();
  assert.equal(fake.last().url.searchParams.get('since'), '17');
  assert.equal(fake.last().url.searchParams.get('epoch'), 'ep-x');
  assert.equal(c.offset, 17);
  c.close();
});

test('duplicates and older offsets of the same epoch are dropped; lanes are split', async () => {
  const { c, fake, seen } = client();
  await tick();
  const ws = fake.last();
  ws.accept();
  for (const f of [msg(1), msg(2, 'e1', 'tr', 'log'), msg(2), msg(1), msg(3), msg(3)]) ws.deliver(f);
  assert.deepEqual(seen.message.map((m) => m.offset), [1, 3]);
  assert.deepEqual(seen.log, [{ lane: 'log', offset: 2, epoch: 'e1', data: 'tr' }]);
  assert.equal(c.offset, 3);
  assert.equal(c.epoch, 'e1');
  c.close();
});

test('a jump in live offsets is delivered and reported as a gap, not hidden', async () => {
  const { c, fake, seen } = client();
  await tick();
  fake.last().accept();
  fake.last().deliver(msg(1));
  fake.last().deliver({ type: 'resumed', recovered: true, offset: 1, epoch: 'e1' });
  fake.last().deliver(msg(5));
  assert.deepEqual(seen.message.map((m) => m.offset), [1, 5]);
  assert.deepEqual(seen.gap, [{ from: 2, to: 4, epoch: 'e1' }]);
  c.close();
});

test('holes in a replay are no gap: compacted replies leave them by design', async () => {
  const { c, fake, seen } = client();
  await tick();
  fake.last().accept();
  fake.last().deliver(msg(1));
  fake.last().deliver(msg(9));  // offsets 2..8: a reply's steps, now one entry elsewhere
  fake.last().deliver({ type: 'resumed', recovered: true, offset: 9, epoch: 'e1' });
  assert.deepEqual(seen.message.map((m) => m.offset), [1, 9]);
  assert.deepEqual(seen.gap, []);
  c.close();
});

test('reconnect resumes from the last offset and epoch; an epoch change resets the position', async () => {
  const { c, fake, seen } = client();
  await tick();
  fake.last().accept();
  fake.last().deliver(msg(1));
  fake.last().deliver(msg(2));
  fake.last().drop(1006);
  await waitFor(() => fake.sockets.length === 2, 'the reconnect');
  const ws = fake.last();
  assert.equal(ws.url.searchParams.get('since'), '2');
  assert.equal(ws.url.searchParams.get('epoch'), 'e1');
  ws.accept();
  ws.deliver({ type: 'resumed', recovered: false, offset: 7, epoch: 'e2' });
  assert.equal(c.offset, 7);
  assert.equal(c.epoch, 'e2');
  ws.deliver(msg(7, 'e2'));  // not after the position the server gave: already covered
  ws.deliver(msg(8, 'e2'));
  ws.deliver(msg(1, 'e3'));  // the history was reset while connected: offsets start again
  assert.deepEqual(seen.message.map((m) => `${m.epoch}:${m.offset}`), ['e1:1', 'e1:2', 'e2:8', 'e3:1']);
  assert.deepEqual(seen['recovered:false'], [{ recovered: false, offset: 7, epoch: 'e2' }]);
  assert.deepEqual(seen.resumed, seen['recovered:false']);
  assert.deepEqual(seen.state.map((s) => s.state),
                   ['connecting', 'open', 'reconnecting', 'connecting', 'open']);
  const rec = seen.state[2];
  assert.equal(rec.code, 1006);
  assert.ok(rec.delayMs >= 0 && rec.delayMs < fast.initialMs, `delay ${rec.delayMs}`);
  c.close();
});

test('publish: queued while disconnected, sent on open, resent with the same id after a drop', async () => {
  const { c, fake } = client();
  const p1 = c.publish('one');
  const p2 = c.publish('two', { lane: 'log' });
  await tick();
  const ws1 = fake.last();
  assert.deepEqual(ws1.sent, []);
  ws1.accept();
  assert.deepEqual(ws1.sent.map((f) => [f.type, f.lane, f.data]),
                   [['publish', 'message', 'one'], ['publish', 'log', 'two']]);
  const [id1, id2] = ws1.sent.map((f) => f.id);
  assert.notEqual(id1, id2);
  ws1.deliver({ type: 'ack', id: id1, offset: 4, epoch: 'e1' });
  assert.deepEqual(await p1, { offset: 4, epoch: 'e1' });
  ws1.drop(1001, 'server shutting down');
  await waitFor(() => fake.sockets.length === 2, 'the reconnect');
  const ws2 = fake.last();
  ws2.accept();
  assert.deepEqual(ws2.sent.map((f) => f.id), [id2], 'only the unacked publish is resent');
  ws2.deliver({ type: 'ack', id: id2, offset: 5, epoch: 'e1' });
  assert.deepEqual(await p2, { offset: 5, epoch: 'e1' });
  c.close();
});

test('an error frame with the id rejects that publish; one without an id is an error event', async () => {
  const { c, fake, seen } = client();
  await tick();
  fake.last().accept();
  const p = c.publish('x');
  const id = fake.last().sent[0].id;
  fake.last().deliver({ type: 'error', id, code: 429, reason: 'publish rate exceeded' });
  await assert.rejects(p, (e) => e instanceof FlowrelayError && e.code === 429 && e.id === id);
  fake.last().deliver({ type: 'error', code: 400, reason: 'not a JSON object' });
  assert.deepEqual(seen.error, [{ code: 400, reason: 'not a JSON object' }]);
  c.close();
});

test('no ack within publishTimeoutMs rejects with 504 and is not resent later', async () => {
  const { c, fake } = client({ publishTimeoutMs: 30 });
  const p = c.publish('late');
  await assert.rejects(p, (e) => e instanceof FlowrelayError && e.code === 504);
  await tick();
  fake.last().accept();
  assert.deepEqual(fake.last().sent, []);
  c.close();
});

test('the queue is bounded: past maxQueued publish rejects at once with 503', async () => {
  const { c } = client({ maxQueued: 2 });
  const kept = [c.publish('a'), c.publish('b')];
  await assert.rejects(c.publish('c'), (e) => e.code === 503);
  c.close();
  for (const p of kept) await assert.rejects(p, (e) => e.code === 1000);
});

test('close 1008 about the token stops the client; other 1008s reconnect', async () => {
  const { c, fake, seen } = client();
  await tick();
  fake.last().accept();
  fake.last().drop(1008, 'slow consumer');
  await waitFor(() => fake.sockets.length === 2, 'the reconnect after a slow-consumer close');
  fake.last().accept();
  const p = c.publish('x');
  fake.last().drop(1008, 'not allowed to publish here');
  await assert.rejects(p, (e) => e.code === 1008);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(fake.sockets.length, 2, 'no reconnect after the auth close');
  assert.equal(c.state, 'closed');
  assert.deepEqual(seen.state.at(-1),
                   { state: 'closed', attempt: 2, code: 1008, reason: 'not allowed to publish here' });
});

test('handshakes that fail at once keep backing off (attempts grow) until one stays up', async () => {
  const { c, fake, seen } = client({ backoff: { initialMs: 2, maxMs: 16, resetAfterMs: 40 } });
  for (let n = 1; n <= 5; ++n) {
    await waitFor(() => fake.sockets.length === n, `attempt ${n}`);
    fake.last().drop(1006);  // what a browser sees for a 401/403/503 handshake answer
  }
  const attempts = seen.state.filter((s) => s.state === 'reconnecting').map((s) => s.attempt);
  assert.deepEqual(attempts, [2, 3, 4, 5, 6]);
  await waitFor(() => fake.sockets.length === 6, 'attempt 6');
  fake.last().accept();
  await new Promise((r) => setTimeout(r, 50));  // stays up past resetAfterMs
  fake.last().drop(1006);
  assert.equal(seen.state.at(-1).attempt, 1, 'a stable connection resets the backoff');
  c.close();
});

test('a failed connection that reports only an error (Node 20) is retried', async () => {
  const { c, fake, seen } = client();
  await tick();
  fake.last().fail();
  await waitFor(() => fake.sockets.length === 2, 'the retry');
  assert.deepEqual(seen.state.map((s) => [s.state, s.code]),
                   [['connecting', undefined], ['reconnecting', 1006], ['connecting', undefined]]);
  c.close();
});

test('close() is final: no reconnect, state closed, later publishes reject', async () => {
  const { c, fake, seen } = client();
  await tick();
  const ws = fake.last();
  ws.accept();
  c.close();
  assert.equal(ws.closedWith, 1000);
  ws.drop(1000);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(fake.sockets.length, 1);
  assert.equal(c.state, 'closed');
  assert.equal(seen.state.at(-1).state, 'closed');
  await assert.rejects(c.publish('x'), (e) => e.code === 1000);
});

test('a server without the subprotocol is refused, not read as envelopes', async () => {
  const { c, fake, seen } = client();
  await tick();
  fake.last().accept('');
  assert.equal(c.state, 'closed');
  assert.match(seen.error[0].reason, /flowrelay\.v1/);
});

test('on() returns an unsubscribe function; a throwing listener does not stop the others', async () => {
  const { c, fake } = client();
  const got = [];
  const off = c.on('message', (m) => got.push(m.offset));
  const errors = [];
  const saved = globalThis.reportError;
  globalThis.reportError = (e) => errors.push(e.message);
  c.on('message', () => { throw new Error('listener bug'); });
  await tick();
  fake.last().accept();
  fake.last().deliver(msg(1));
  off();
  fake.last().deliver(msg(2));
  globalThis.reportError = saved;
  assert.deepEqual(got, [1]);
  assert.deepEqual(errors, ['listener bug', 'listener bug']);
  assert.equal(c.offset, 2);
  c.close();
});
