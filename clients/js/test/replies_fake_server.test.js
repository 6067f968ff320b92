// Reply streams against a scripted server (test-support/fake_websocket.js): the frame orders a
// real daemon produces only under load or crashes (merged deltas, duplicates across a resume,
// a snapshot after a reconnect, the compacted entry after the seam), each assembled once.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FlowrelayClient, FlowrelayError } from '../flowrelay.js';
import { record, waitFor } from '../test-support/daemon.js';
import { fakeWebSocket, tick } from '../test-support/fake_websocket.js';

const fast = { initialMs: 1, maxMs: 4 };

async function connected(opts = {}) {
  const fake = fakeWebSocket();
  const c = new FlowrelayClient('ws://127.0.0.1:1/ws/42', { WebSocket: fake.WebSocket,
                                                            backoff: fast, ...opts });
  const seen = record(c);
  await tick();
  fake.last().accept();
  fake.last().deliver({ type: 'resumed', recovered: true, epoch: 'e1' });
  return { c, fake, seen };
}

const delta = (seq, offset, data, extra = {}) =>
  ({ type: 'delta', reply: 'r1', seq, offset, epoch: 'e1', data, ...extra });
const stats = { tokens: 3, ttft_ms: 40, duration_ms: 900, bytes: 9 };

test('deltas are appended in seq order, each once; the end seals it with its stats', async () => {
  const { c, fake, seen } = await connected();
  const ws = fake.last();
  ws.deliver({ type: 'open', reply: 'r1', offset: 1, epoch: 'e1' });
  ws.deliver(delta(1, 2, 'The '));
  ws.deliver(delta(1, 2, 'The '));  // the same frame again (offset already passed)
  ws.deliver(delta(2, 3, 'ans'));
  ws.deliver(delta(2, 9, 'ans'));  // a later offset but a seq already shown
  ws.deliver(delta(3, 10, 'wer'));
  ws.deliver({ type: 'end', reply: 'r1', offset: 11, epoch: 'e1', reason: 'done', stats });
  ws.deliver({ type: 'end', reply: 'r1', offset: 12, epoch: 'e1', reason: 'done', stats });
  assert.deepEqual(seen.reply.map((r) => [r.change, r.seq, r.text]), [
    ['open', 0, ''], ['delta', 1, 'The '], ['delta', 2, 'The ans'], ['delta', 3, 'The answer'],
    ['end', 3, 'The answer']]);
  assert.deepEqual(seen.reply.filter((r) => r.change === 'delta').map((r) => r.delta),
                   ['The ', 'ans', 'wer']);
  assert.deepEqual(seen['reply-end'], [{ id: 'r1', text: 'The answer', seq: 3, ended: true,
                                         stalled: false, incomplete: false, reason: 'done',
                                         stats }]);
  assert.equal(seen['reply-frame'].length, 8, 'raw frames: every one, duplicates included');
  assert.deepEqual(c.reply('r1'), seen['reply-end'][0]);
  assert.equal(c.offset, 12);
  assert.deepEqual(seen.gap, [{ from: 4, to: 8, epoch: 'e1' }], 'offsets 4..8 were not seen');
  c.close();
});

test('a merged delta (from..seq) is appended whole and its offsets are no gap', async () => {
  const { c, fake, seen } = await connected();
  fake.last().deliver(delta(1, 1, 'a'));
  fake.last().deliver(delta(4, 4, 'bcd', { from: 2 }));
  fake.last().deliver(delta(3, 5, 'c', {}));  // older seq at a newer offset: nothing
  fake.last().deliver(delta(5, 6, 'e'));
  assert.equal(c.reply('r1').text, 'abcde');
  assert.equal(c.reply('r1').seq, 5);
  assert.deepEqual(seen.gap, []);
  c.close();
});

test('a reconnect mid-reply: the snapshot replaces the text, live deltas follow once', async () => {
  const { c, fake, seen } = await connected();
  fake.last().deliver(delta(1, 1, 'one '));
  fake.last().deliver(delta(2, 2, 'two '));
  fake.last().drop(1006);
  await waitFor(() => fake.sockets.length === 2, 'the reconnect');
  const ws = fake.last();
  assert.equal(ws.url.searchParams.get('since'), '2');
  ws.accept();
  ws.deliver({ type: 'snapshot', reply: 'r1', seq: 4, offset: 6, epoch: 'e1',
               data: 'one two three four ' });
  ws.deliver({ type: 'resumed', recovered: true, offset: 6, epoch: 'e1' });
  ws.deliver(delta(4, 6, 'four '));  // live copy of what the snapshot held: dropped
  ws.deliver(delta(5, 7, 'five'));
  ws.deliver({ type: 'end', reply: 'r1', offset: 8, epoch: 'e1', reason: 'done',
               stats: { ...stats, tokens: 5 } });
  assert.equal(c.reply('r1').text, 'one two three four five');
  assert.equal(c.reply('r1').incomplete, false);
  assert.deepEqual(seen.reply.map((r) => r.change), ['delta', 'delta', 'snapshot', 'delta', 'end']);
  assert.equal(seen['reply-end'].length, 1);
  c.close();
});

test('resume across the compaction seam: the reply entry replaces the half, once', async () => {
  const { c, fake, seen } = await connected();
  fake.last().deliver(delta(1, 1, 'half '));
  fake.last().drop(1006);
  await waitFor(() => fake.sockets.length === 2, 'the reconnect');
  const ws = fake.last();
  ws.accept();
  const entry = { type: 'reply', reply: 'r1', seq: 2, offset: 4, epoch: 'e1',
                  data: 'half whole', reason: 'done', stats: { ...stats, tokens: 2 } };
  ws.deliver(entry);
  ws.deliver({ type: 'resumed', recovered: true, offset: 4, epoch: 'e1' });
  ws.deliver({ ...entry, offset: 5 });  // the same entry again (say, a gap fill)
  assert.deepEqual(c.reply('r1'), { id: 'r1', text: 'half whole', seq: 2, ended: true,
                                    stalled: false, incomplete: false, reason: 'done',
                                    stats: entry.stats });
  assert.equal(seen['reply-end'].length, 1);
  assert.deepEqual(seen.reply.map((r) => r.change), ['delta', 'reply']);
  c.close();
});

test('stalled is shown until the next delta; an end without some deltas is incomplete', async () => {
  const { c, fake, seen } = await connected();
  fake.last().deliver(delta(1, 1, 'a'));
  fake.last().deliver({ type: 'stalled', reply: 'r1' });
  fake.last().deliver({ type: 'stalled', reply: 'r1' });
  assert.equal(c.reply('r1').stalled, true);
  fake.last().deliver(delta(2, 2, 'b'));
  assert.equal(c.reply('r1').stalled, false);
  fake.last().deliver({ type: 'end', reply: 'r1', offset: 4, epoch: 'e1',
                        reason: 'producer_lost', stats: { ...stats, tokens: 3 } });
  assert.deepEqual([c.reply('r1').reason, c.reply('r1').incomplete], ['producer_lost', true]);
  assert.deepEqual(seen.reply.map((r) => [r.change, r.stalled]),
                   [['delta', false], ['stalled', true], ['delta', false], ['end', false]]);
  c.close();
});

test('a client that joins mid-reply without history shows what it got, marked incomplete', async () => {
  const { c, fake } = await connected();
  fake.last().deliver(delta(7, 40, ' tail'));
  assert.deepEqual([c.reply('r1').text, c.reply('r1').incomplete], [' tail', true]);
  c.close();
});

test('cancel() sends a cancel frame with an id and resolves on its ack', async () => {
  const { c, fake } = await connected();
  const p = c.cancel('r1');
  const sent = fake.last().sent.at(-1);
  assert.deepEqual(Object.keys(sent).sort(), ['id', 'reply', 'type']);
  assert.deepEqual([sent.type, sent.reply], ['cancel', 'r1']);
  fake.last().deliver({ type: 'ack', id: sent.id, offset: 9, epoch: 'e1' });
  assert.deepEqual(await p, { offset: 9, epoch: 'e1' });
  const again = c.cancel('r1');
  const id = fake.last().sent.at(-1).id;
  fake.last().deliver({ type: 'error', id, code: 409, reason: 'reply ended', ended: 'done' });
  await assert.rejects(again, (e) => e instanceof FlowrelayError && e.code === 409 &&
                                     e.ended === 'done' && e.id === id);
  c.close();
});

test('producer helpers: open, deltas, end with an id each; a gap rejects with expectedSeq', async () => {
  const { c, fake } = await connected();
  const ws = fake.last();
  const steps = [c.openReply('r9'), c.appendReply('r9', 1, 'x'), c.endReply('r9', { error: 'boom' })];
  assert.deepEqual(ws.sent.map(({ id, ...f }) => f), [
    { type: 'open', reply: 'r9' }, { type: 'delta', reply: 'r9', seq: 1, data: 'x' },
    { type: 'end', reply: 'r9', error: 'boom' }]);
  ws.sent.forEach((f, i) => ws.deliver({ type: 'ack', id: f.id, offset: i + 1, epoch: 'e1',
                                         ...(i === 1 ? { duplicate: true } : {}) }));
  assert.deepEqual((await Promise.all(steps)).map((a) => a.duplicate ?? false), [false, true, false]);
  const gap = c.appendReply('r9', 5, 'y');
  ws.deliver({ type: 'error', id: ws.sent.at(-1).id, code: 409, reason: 'gap', expected_seq: 2 });
  await assert.rejects(gap, (e) => e.code === 409 && e.expectedSeq === 2);
  c.close();
});

test('bad reply requests are refused before anything is sent', async () => {
  const { c, fake } = await connected();
  for (const p of [c.cancel(''), c.cancel('has space'), c.cancel('x'.repeat(65)), c.cancel(7),
                   c.appendReply('r1', 0, 'x'), c.appendReply('r1', 1.5, 'x'),
                   c.appendReply('r1', 1, 5), c.endReply('r1', { error: 3 })]) {
    await assert.rejects(p, (e) => e instanceof FlowrelayError && e.code === 400);
  }
  assert.deepEqual(fake.last().sent, []);
  c.close();
});

test('only the newest maxEndedReplies ended replies are kept', async () => {
  const { c, fake } = await connected({ maxEndedReplies: 2 });
  for (let i = 1; i <= 4; ++i) {
    fake.last().deliver({ type: 'reply', reply: `r${i}`, seq: 1, offset: i, epoch: 'e1',
                          data: `t${i}`, reason: 'done' });
  }
  fake.last().deliver({ type: 'delta', reply: 'live', seq: 1, offset: 5, epoch: 'e1', data: 'x' });
  assert.deepEqual(c.replies.map((r) => r.id), ['r3', 'r4', 'live']);
  c.close();
});
