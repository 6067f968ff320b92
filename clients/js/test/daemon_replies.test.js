// Reply streams through the real flowrelayd (broker-local): a reply produced through the
// publish API is assembled exactly; a socket killed mid-reply (a TCP proxy cut, no close frame)
// resumes with the snapshot and ends with the exact text once, also across the compaction seam;
// cancel() stops a reply for every client and its producer gets 409.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { FlowrelayClient, FlowrelayError } from '../flowrelay.js';
import { Daemon, record, waitFor } from '../test-support/daemon.js';
import { CuttableProxy } from '../test-support/proxy.js';

const fast = { initialMs: 20, maxMs: 200 };
const words = (n, tag = 'w') => Array.from({ length: n }, (_, i) => `${tag}${i + 1} `);

describe('reply streams on broker-local', () => {
  let d, proxy;
  const clients = [];
  const connect = (conversation, { through = null, ...opts } = {}) => {
    const url = through ? `${through.wsBase()}${conversation}` : d.wsUrl(conversation);
    const c = new FlowrelayClient(url, { backoff: fast, publishTimeoutMs: 5000, ...opts });
    clients.push(c);
    return { c, seen: record(c) };
  };
  // Deltas from..to of `tokens` through the publish API, `batch` per request.
  const deltas = async (conversation, reply, tokens, from, to, batch = 1) => {
    for (let seq = from; seq <= to; seq += batch) {
      const items = [];
      for (let k = seq; k <= Math.min(to, seq + batch - 1); ++k)
        items.push({ conversation, reply, seq: k, delta: tokens[k - 1] });
      const r = await d.api(items.length === 1 ? items[0] : { messages: items });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
  };
  const step = async (body, status = 200) => {
    const r = await d.api(body);
    assert.equal(r.status, status, JSON.stringify(r.body));
    return r.body;
  };
  const resumed = (seen, n = 1) => waitFor(() => seen.resumed.length >= n, 'the resumed frame');

  before(async () => {
    d = await Daemon.start();
    proxy = await CuttableProxy.start(d.wsPort);
  });
  after(async () => {
    for (const c of clients) c.close();
    await proxy.stop();
    await d.stop();
  });

  test('a reply streamed through the API is assembled exactly, a resent delta once', async () => {
    const { c, seen } = connect('api-reply');
    await resumed(seen);
    const tokens = words(40);
    await step({ conversation: 'api-reply', reply: 'r1', open: true });
    await deltas('api-reply', 'r1', tokens, 1, 10);
    await deltas('api-reply', 'r1', tokens, 11, 40, 7);  // batches
    const dup = await step({ conversation: 'api-reply', reply: 'r1', seq: 40, delta: tokens[39] });
    assert.equal(dup.duplicate, true);
    const gap = await step({ conversation: 'api-reply', reply: 'r1', seq: 42, delta: 'x' }, 409);
    assert.equal(gap.expected_seq, 41);
    await step({ conversation: 'api-reply', reply: 'r1', end: true });
    await waitFor(() => seen['reply-end'].length === 1, 'the end');
    const end = seen['reply-end'][0];
    assert.equal(end.text, tokens.join(''));
    assert.deepEqual([end.seq, end.reason, end.incomplete], [40, 'done', false]);
    assert.equal(end.stats.tokens, 40);
    assert.equal(end.stats.bytes, Buffer.byteLength(tokens.join('')));
    const changes = seen.reply.map((r) => r.change);
    assert.deepEqual(changes, ['open', ...Array(40).fill('delta'), 'end']);
    assert.deepEqual(seen.reply.filter((r) => r.change === 'delta').map((r) => r.seq),
                     tokens.map((_, i) => i + 1), 'each delta once, in order');
    assert.deepEqual(seen.gap, []);

    // A late joiner gets the compacted reply: one entry with the whole text.
    const late = connect('api-reply');
    await resumed(late.seen);
    assert.deepEqual(late.seen.reply.map((r) => r.change), ['reply']);
    assert.deepEqual(late.c.reply('r1'), end);
  });

  test('the socket killed mid-reply: the snapshot, then live deltas; the exact text once', async () => {
    const conv = 'cut-reply';
    const { c, seen } = connect(conv, { through: proxy });
    await resumed(seen);
    const tokens = words(30);
    await deltas(conv, 'r2', tokens, 1, 10);
    await waitFor(() => c.reply('r2')?.seq === 10, 'ten deltas');
    // Refused until deltas 11..20 are in: the client's 20 ms reconnect could otherwise come
    // back before them (no snapshot to test) or between two polls of its state.
    proxy.refuse();
    assert.ok(proxy.cut() >= 1);
    await waitFor(() => c.state !== 'open', 'the drop');
    await deltas(conv, 'r2', tokens, 11, 20);  // while the client is away
    proxy.refuse(false);
    await resumed(seen, 2);
    await deltas(conv, 'r2', tokens, 21, 30);
    await step({ conversation: conv, reply: 'r2', end: true });
    await waitFor(() => seen['reply-end'].length === 1, 'the end');
    assert.equal(seen['reply-end'][0].text, tokens.join(''));
    assert.equal(seen.resumed[1].recovered, true);
    const changes = seen.reply.map((r) => r.change);
    assert.ok(changes.includes('snapshot'), `a snapshot after the resume: ${changes}`);
    // Every seq reached the text exactly once: 1..10 live, the snapshot up to n, then n+1..30.
    const snap = seen.reply.find((r) => r.change === 'snapshot');
    assert.equal(snap.text, tokens.slice(0, snap.seq).join(''));
    const liveAfter = seen.reply.slice(changes.indexOf('snapshot') + 1)
      .filter((r) => r.change === 'delta').map((r) => r.seq);
    assert.deepEqual(liveAfter, tokens.map((_, i) => i + 1).slice(snap.seq));
    assert.deepEqual(seen.gap, []);
  });

  test('cut mid-reply, and the reply ends meanwhile: the compacted entry, whole, once', async () => {
    const conv = 'seam-reply';
    const { c, seen } = connect(conv, { through: proxy });
    await resumed(seen);
    const tokens = words(12);
    await deltas(conv, 'r3', tokens, 1, 5);
    await waitFor(() => c.reply('r3')?.seq === 5, 'five deltas');
    proxy.refuse();  // the client stays away until the reply has ended
    proxy.cut();
    await waitFor(() => c.state !== 'open', 'the drop');
    await deltas(conv, 'r3', tokens, 6, 12);
    await step({ conversation: conv, reply: 'r3', end: true, error: 'model overloaded' });
    proxy.refuse(false);
    await resumed(seen, 2);
    await waitFor(() => seen['reply-end'].length === 1, 'the end');
    assert.deepEqual(seen.reply.map((r) => r.change), [...Array(5).fill('delta'), 'reply']);
    const r = seen['reply-end'][0];
    assert.deepEqual([r.text, r.seq, r.reason, r.error], [tokens.join(''), 12, 'error',
                                                          'model overloaded']);
  });

  test('cancel(): every client sees it end cancelled; the producer gets 409', async () => {
    const conv = 'cancel-reply';
    const a = connect(conv);
    const b = connect(conv);
    await Promise.all([resumed(a.seen), resumed(b.seen)]);
    const tokens = words(8);
    await deltas(conv, 'r4', tokens, 1, 3);
    await waitFor(() => a.c.reply('r4')?.seq === 3, 'three deltas at a');
    const ack = await a.c.cancel('r4');
    assert.equal(typeof ack.offset, 'number');
    await waitFor(() => a.seen['reply-end'].length && b.seen['reply-end'].length, 'both ends');
    for (const { seen } of [a, b]) {
      const r = seen['reply-end'][0];
      assert.deepEqual([r.text, r.reason, r.stats.tokens], [tokens.slice(0, 3).join(''),
                                                            'cancelled', 3]);
    }
    const refused = await step({ conversation: conv, reply: 'r4', seq: 4, delta: tokens[3] }, 409);
    assert.equal(refused.ended, 'cancelled');
    // A reply that ended otherwise cannot be cancelled.
    await deltas(conv, 'r5', tokens, 1, 2);
    await step({ conversation: conv, reply: 'r5', end: true });
    await assert.rejects(a.c.cancel('r5'), (e) => e instanceof FlowrelayError && e.code === 409 &&
                                                  e.ended === 'done');
    assert.equal(a.c.state, 'open');
  });

  test('a client produces a reply (open, deltas, end); a resent seq is acked duplicate', async () => {
    const conv = 'client-reply';
    const p = connect(conv);
    const v = connect(conv);
    await Promise.all([resumed(p.seen), resumed(v.seen)]);
    await p.c.openReply('mine');
    await p.c.appendReply('mine', 1, 'Hello ');
    assert.equal((await p.c.appendReply('mine', 1, 'Hello ')).duplicate, true);
    await assert.rejects(p.c.appendReply('mine', 3, 'x'), (e) => e.code === 409 && e.expectedSeq === 2);
    await p.c.appendReply('mine', 2, 'world');
    await p.c.endReply('mine');
    await waitFor(() => v.seen['reply-end'].length === 1, 'the end at the viewer');
    assert.deepEqual([v.c.reply('mine').text, v.c.reply('mine').seq], ['Hello world', 2]);
    assert.deepEqual(v.seen.reply.map((r) => r.change), ['open', 'delta', 'delta', 'end']);
  });
});
