// The client against the real flowrelayd on broker-local: lanes and offsets, history, acks,
// and a daemon restart (local history is lost: recovered:false, the position resets).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { FlowrelayClient, FlowrelayError } from '../flowrelay.js';
import { Daemon, record, sleep, waitFor } from '../test-support/daemon.js';

const fast = { initialMs: 20, maxMs: 200 };

describe('flowrelayd on broker-local', () => {
  let d;
  const clients = [];
  const connect = (conversation, opts = {}) => {
    const c = new FlowrelayClient(d.wsUrl(conversation), { backoff: fast, ...opts });
    clients.push(c);
    return { c, seen: record(c) };
  };
  before(async () => { d = await Daemon.start(); });
  after(async () => {
    for (const c of clients) c.close();
    await d.stop();
  });

  test('history first (since=0), then live; both lanes with offsets and the epoch', async () => {
    await d.publish('hist', 'first');
    await d.publish('hist', 'thinking...', 'log');
    const third = await d.publish('hist', 'second');
    assert.equal(third.offset, 3);
    const { c, seen } = connect('hist');
    await waitFor(() => seen.resumed.length === 1, 'the resumed frame');
    assert.deepEqual(seen.resumed[0], { recovered: true, offset: 3, epoch: third.epoch });
    const live = await d.publish('hist', 'live');
    await waitFor(() => seen.message.length === 3, 'the live message');
    assert.deepEqual(seen.message, [
      { lane: 'message', offset: 1, epoch: third.epoch, data: 'first' },
      { lane: 'message', offset: 3, epoch: third.epoch, data: 'second' },
      { lane: 'message', offset: 4, epoch: live.epoch, data: 'live' },
    ]);
    assert.deepEqual(seen.log, [{ lane: 'log', offset: 2, epoch: third.epoch, data: 'thinking...' }]);
    assert.deepEqual([c.offset, c.epoch, c.state], [4, third.epoch, 'open']);
    assert.deepEqual(seen.gap, []);
    assert.deepEqual(seen['recovered:false'], []);
  });

  test('a stored since/epoch resumes after it: nothing older is delivered', async () => {
    const r = [];
    for (const t of ['a', 'b', 'c', 'd']) r.push(await d.publish('since', t));
    const { seen } = connect('since', { since: 2, epoch: r[0].epoch });
    await waitFor(() => seen.resumed.length === 1, 'the resumed frame');
    assert.deepEqual(seen.message.map((m) => [m.offset, m.data]), [[3, 'c'], [4, 'd']]);
    assert.equal(seen.resumed[0].recovered, true);
  });

  test('a stale epoch is not recovered: recovered:false and the position follows the server', async () => {
    const r = await d.publish('stale', 'x');
    const { c, seen } = connect('stale', { since: 40, epoch: 'not-this-epoch' });
    await waitFor(() => seen['recovered:false'].length === 1, 'recovered:false');
    assert.deepEqual(seen['recovered:false'][0], { recovered: false, offset: 1, epoch: r.epoch });
    assert.deepEqual([c.offset, c.epoch], [1, r.epoch]);
    await d.publish('stale', 'y');
    await waitFor(() => seen.message.length === 1, 'the live message');
    assert.deepEqual(seen.message.map((m) => [m.offset, m.data]), [[2, 'y']]);
  });

  test('a client publish reaches every client of the conversation once, with its offset', async () => {
    const a = connect('pub');
    const b = connect('pub');
    await waitFor(() => a.seen.resumed.length && b.seen.resumed.length, 'both clients resumed');
    a.c.publish('from a', { lane: 'message' }).catch(() => {});  // the ack is the next test's
    a.c.publish('a is typing', { lane: 'log' }).catch(() => {});
    await waitFor(() => b.seen.log.length === 1 && a.seen.log.length === 1, 'both lanes at both');
    for (const { seen } of [a, b]) {
      assert.deepEqual(seen.message.map((m) => [m.offset, m.data]), [[1, 'from a']]);
      assert.deepEqual(seen.log.map((m) => [m.offset, m.data]), [[2, 'a is typing']]);
    }
  });

  // Needs the server's acks (issue 14, transport-ws): fails with 504 until they land.
  test('publish() resolves with the ack: the offset and epoch the message got', async () => {
    const { c, seen } = connect('ack', { publishTimeoutMs: 3000 });
    const ack = await c.publish('hello');
    assert.equal(ack.offset, 1);
    assert.equal(typeof ack.epoch, 'string');
    const ack2 = await c.publish('step 1', { lane: 'log' });
    assert.deepEqual(ack2, { offset: 2, epoch: ack.epoch });
    await waitFor(() => seen.log.length === 1, 'the echo');
    assert.deepEqual(seen.message, [{ lane: 'message', offset: 1, epoch: ack.epoch, data: 'hello' }]);
  });

  // Needs the server's acks: the error frame must carry the publish's id.
  test('publish() of a lane the server refuses rejects with the error frame (400)', async () => {
    const { c, seen } = connect('bad-lane', { publishTimeoutMs: 3000 });
    await assert.rejects(c.publish('x', { lane: 'bogus' }),
                         (e) => e instanceof FlowrelayError && e.code === 400 && /lane/.test(e.reason));
    assert.deepEqual(seen.error, [], 'the error went to the publish, not to the error event');
    assert.equal(c.state, 'open');
  });
});

test('daemon restart on broker-local: recovered:false, new epoch, offsets start again', async () => {
  const d = await Daemon.start();
  const c = new FlowrelayClient(d.wsUrl('restart'), { backoff: fast });
  const seen = record(c);
  try {
    for (const t of ['one', 'two', 'three']) await d.publish('restart', t);
    await waitFor(() => seen.message.length === 3, 'the history');
    const before = c.epoch;
    await d.restart();
    await waitFor(() => seen.resumed.length === 2, 'the resume after the restart');
    assert.equal(seen.resumed[1].recovered, false);
    assert.equal(seen['recovered:false'].length, 1, 'the app is told to refetch, once');
    assert.notEqual(c.epoch, before);
    const states = seen.state.map((s) => s.state);
    assert.deepEqual(states.slice(0, 3), ['connecting', 'open', 'reconnecting']);
    assert.equal(states.at(-1), 'open');
    const r = await d.publish('restart', 'after');
    assert.equal(r.offset, 1);
    await waitFor(() => seen.message.length === 4, 'the message of the new epoch');
    assert.deepEqual(seen.message[3], { lane: 'message', offset: 1, epoch: r.epoch, data: 'after' });
    assert.deepEqual([c.offset, c.epoch], [1, r.epoch]);
  } finally {
    c.close();
    await d.stop();
  }
});

// Needs the server's acks.
test('publishes made while the daemon is down are sent after the reconnect, once each', async () => {
  const d = await Daemon.start();
  const c = new FlowrelayClient(d.wsUrl('queued'), { backoff: fast, publishTimeoutMs: 8000 });
  const seen = record(c);
  try {
    await waitFor(() => seen.resumed.length === 1, 'the first connection');
    await d.kill();
    await waitFor(() => c.state !== 'open', 'the drop');
    const queued = [c.publish('typed offline 1'), c.publish('typed offline 2', { lane: 'log' })];
    await d.restart();
    const acks = await Promise.all(queued);
    assert.deepEqual(acks.map((a) => a.offset), [1, 2]);
    await waitFor(() => seen.log.length === 1, 'the echo of both');
    await sleep(100);  // a second copy would arrive now
    assert.deepEqual(seen.message.map((m) => [m.offset, m.data]), [[1, 'typed offline 1']]);
    assert.deepEqual(seen.log.map((m) => [m.offset, m.data]), [[2, 'typed offline 2']]);
  } finally {
    c.close();
    await d.stop();
  }
});
