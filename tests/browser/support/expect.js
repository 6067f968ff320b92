// The assertion every scenario ends with: the page shows exactly one reply, ended "done", whose
// text is the agent's tokens each once and in order. A page that stayed connected built it
// from the N live deltas (seq 1..N, each once); one that lost its connection may have had it
// replaced by a snapshot or the compacted reply after the resume, and still shows it once.
import assert from 'node:assert/strict';

import { replies } from './browser.js';

export async function assertWholeReply(page, expected, label, { live = false } = {}) {
  const shown = await replies(page);
  assert.equal(shown.length, 1, `${label}: one reply on the page, got ${shown.length}`);
  const [r] = shown;
  assert.equal(r.complete, true, `${label}: the reply is marked complete`);
  assert.equal(r.reason, 'done', `${label}: it ended done`);
  assert.equal(r.tokens, expected.length, `${label}: the end counts every token`);
  assert.equal(r.seq, expected.length, `${label}: the text covers seq 1..N`);
  assert.equal(r.incomplete, false, `${label}: no delta known missing`);
  assert.equal(r.text, expected.join(''), `${label}: the reply text, each token once`);
  assert.equal(r.stopButton, false, `${label}: no Stop button on an ended reply`);
  assert.equal(r.status, '', `${label}: nothing to say about a reply that ended done`);
  if (live) {
    assert.equal(r.replaced, 0, `${label}: no snapshot needed`);
    assert.deepEqual(r.liveSeqs, expected.map((_, i) => i + 1), `${label}: deltas 1..N, each once`);
    assert.equal(r.deltas, expected.length, `${label}: N deltas appended`);
  } else {
    // Live deltas after the last replacement continue it without a gap or a repeat.
    const after = r.liveSeqs;
    assert.deepEqual(after, after.map((_, i) => r.seq - after.length + 1 + i),
                     `${label}: the live deltas are the last ones, consecutive`);
  }
  assert.deepEqual(page.errors, [], `${label}: no uncaught error in the page`);
  return r;
}
