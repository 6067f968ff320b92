// The assertion every scenario ends with: the page shows exactly one reply, complete, with the
// agent's tokens each once and in order (seq 1..N), and nothing it had to drop as a duplicate.
import assert from 'node:assert/strict';

import { replies } from './browser.js';

export async function assertWholeReply(page, expected, label) {
  const shown = await replies(page);
  assert.equal(shown.length, 1, `${label}: one reply on the page, got ${shown.length}`);
  const [r] = shown;
  assert.equal(r.complete, true, `${label}: the reply is marked complete`);
  assert.equal(r.tokens, expected.length, `${label}: the end marker counts every token`);
  assert.deepEqual(r.seqs, expected.map((_, i) => i + 1), `${label}: seq 1..N, each once`);
  assert.deepEqual(r.deltas, expected, `${label}: the agent's tokens in order`);
  assert.equal(r.text, expected.join(''), `${label}: the reply text`);
  // The client library drops what it already delivered (by offset): the page never saw a token
  // twice, so nothing was delivered twice across the reconnect.
  assert.equal(r.duplicates, 0, `${label}: no token delivered twice`);
  assert.deepEqual(page.errors, [], `${label}: no uncaught error in the page`);
  return r;
}
