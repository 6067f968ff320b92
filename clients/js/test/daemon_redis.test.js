// A cut mid-stream with the history in Redis: the client's replica is killed while a backend
// streams through another replica, comes back on the same port, and the client resumes with
// its offset and epoch. It must end with every message exactly once, in order.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FlowrelayClient } from '../flowrelay.js';
import { Daemon, Redis, record, sleep, waitFor } from '../test-support/daemon.js';

const TOTAL = 300;

// The real WebSocket, watched: the URLs the client opens and every message frame on the wire
// (the client's own dedup must not be what hides a replayed history).
function watchedWebSocket() {
  const urls = [];
  const wire = [];
  class Watched extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      urls.push(new URL(url));
      this.addEventListener('message', (e) => {
        const f = JSON.parse(e.data);
        if (f.type === 'message') wire.push(f.offset);
      });
    }
  }
  return { Watched, urls, wire };
}

test('replica killed mid-stream: resumed from Redis history, every message once', async () => {
  const redis = await Redis.start();
  const broker = { redisPort: redis.port };
  const viewerSide = await Daemon.start({ broker });
  const backendSide = await Daemon.start({ broker });
  const { Watched, urls, wire } = watchedWebSocket();
  const c = new FlowrelayClient(viewerSide.wsUrl('cut'),
                                { WebSocket: Watched, backoff: { initialMs: 20, maxMs: 100 } });
  const seen = record(c);
  let streamed = 0;
  const stream = (async () => {
    for (; streamed < TOTAL; ++streamed) {
      const lane = streamed % 10 === 9 ? 'log' : 'message';
      await backendSide.publish('cut', `token ${streamed}`, lane);
      await sleep(2);
    }
  })();
  try {
    await waitFor(() => seen.message.length >= 40, 'the first part of the stream');
    await viewerSide.kill();
    const cutAt = streamed;
    const [lastOffset, epoch] = [c.offset, c.epoch];
    await sleep(300);  // the stream goes on while the client has no replica
    assert.ok(streamed > cutAt, 'messages were published during the cut');
    await viewerSide.restart();
    await stream;
    await waitFor(() => seen.message.length + seen.log.length >= TOTAL, 'the whole stream', 15000);
    await sleep(200);  // a duplicate would arrive now
    const all = [...seen.message, ...seen.log].sort((a, b) => a.offset - b.offset);
    assert.equal(all.length, TOTAL, 'every message once, none doubled');
    assert.deepEqual(all.map((m) => m.offset), Array.from({ length: TOTAL }, (_, i) => i + 1));
    assert.deepEqual(all.map((m) => m.data), Array.from({ length: TOTAL }, (_, i) => `token ${i}`));
    assert.equal(new Set(all.map((m) => m.epoch)).size, 1);
    // Arrival order per lane is offset order.
    for (const lane of [seen.message, seen.log])
      assert.deepEqual(lane.map((m) => m.offset), [...lane].map((m) => m.offset).sort((a, b) => a - b));
    assert.ok(seen.state.some((s) => s.state === 'reconnecting'), 'the cut was seen');
    assert.deepEqual(seen.resumed.map((r) => r.recovered), [true, true]);
    assert.deepEqual(seen['recovered:false'], []);
    assert.deepEqual(seen.gap, []);
    assert.equal(c.offset, TOTAL);
    // It resumed from where it was, so the wire carried each message once too.
    const resumedFrom = urls.slice(1).map((u) => u.searchParams.get('since'));
    assert.ok(resumedFrom.every((v) => v === String(lastOffset)), `since: ${resumedFrom}`);
    assert.ok(urls.slice(1).every((u) => u.searchParams.get('epoch') === epoch));
    assert.equal(wire.length, TOTAL, 'frames on the wire');
    assert.equal(new Set(wire).size, TOTAL);
  } finally {
    c.close();
    await stream.catch(() => {});
    await viewerSide.stop();
    await backendSide.stop();
    await redis.stop();
  }
});

// The same cut in the middle of a reply stream, then a cancel across replicas: the client's
// replica is killed while the reply streams through the other; it resumes with the snapshot
// and ends with the exact text once. A cancel sent to one replica seals the reply for the
// producer on the other (409).
test('replica killed mid-reply: the snapshot from Redis, the exact text once; cancel across', async () => {
  const redis = await Redis.start();
  const broker = { redisPort: redis.port };
  const viewerSide = await Daemon.start({ broker });
  const backendSide = await Daemon.start({ broker });
  const c = new FlowrelayClient(viewerSide.wsUrl('cut-reply'),
                                { backoff: { initialMs: 20, maxMs: 100 }, publishTimeoutMs: 5000 });
  const seen = record(c);
  const tokens = Array.from({ length: 150 }, (_, i) => `t${i + 1} `);
  const step = async (body) => (await backendSide.api({ conversation: 'cut-reply', ...body }));
  let sent = 0;
  const stream = (async () => {
    for (; sent < tokens.length; ++sent) {
      const r = await step({ reply: 'r1', seq: sent + 1, delta: tokens[sent] });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      await sleep(2);
    }
    assert.equal((await step({ reply: 'r1', end: true })).status, 200);
  })();
  try {
    await waitFor(() => (c.reply('r1')?.seq ?? 0) >= 30, 'the first part of the reply');
    await viewerSide.kill();
    const cutAt = sent;
    await sleep(300);
    assert.ok(sent > cutAt, 'deltas were published during the cut');
    await viewerSide.restart();
    await stream;
    await waitFor(() => seen['reply-end'].length === 1, 'the end', 15000);
    await sleep(200);  // a duplicate would arrive now
    assert.equal(seen['reply-end'].length, 1);
    const r = c.reply('r1');
    assert.deepEqual([r.text, r.seq, r.reason, r.incomplete], [tokens.join(''), 150, 'done', false]);
    const changes = seen.reply.map((u) => u.change);
    assert.ok(changes.includes('snapshot') || changes.includes('reply'),
              `resumed from the reply's one entry: ${[...new Set(changes)]}`);
    assert.deepEqual(seen.resumed.map((x) => x.recovered), [true, true]);

    // Cancel on the viewer's replica, the producer on the other.
    for (let seq = 1; seq <= 3; ++seq)
      assert.equal((await step({ reply: 'r2', seq, delta: tokens[seq - 1] })).status, 200);
    await waitFor(() => c.reply('r2')?.seq === 3, 'r2 streaming');
    await c.cancel('r2');
    await waitFor(() => seen['reply-end'].length === 2, 'r2 cancelled');
    assert.equal(c.reply('r2').reason, 'cancelled');
    const refused = await step({ reply: 'r2', seq: 4, delta: tokens[3] });
    assert.deepEqual([refused.status, refused.body.ended], [409, 'cancelled']);
  } finally {
    c.close();
    await stream.catch(() => {});
    await viewerSide.stop();
    await backendSide.stop();
    await redis.stop();
  }
});
