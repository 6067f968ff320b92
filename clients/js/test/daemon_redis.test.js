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
