import assert from 'node:assert/strict';
import { test } from 'node:test';

import { backoffDelay } from '../flowrelay.js';

const top = 1 - Number.EPSILON;  // the largest value Math.random can return

test('the ceiling doubles from initialMs and stops at maxMs', () => {
  const b = { initialMs: 250, maxMs: 10000 };
  const ceilings = [1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelay(n, b, () => top));
  assert.deepEqual(ceilings, [249, 499, 999, 1999, 3999, 7999, 9999, 9999]);
});

test('full jitter: the delay spans [0, ceiling)', () => {
  const b = { initialMs: 100, maxMs: 1000 };
  assert.equal(backoffDelay(3, b, () => 0), 0);
  assert.equal(backoffDelay(3, b, () => 0.5), 200);
  let lo = Infinity;
  let hi = 0;
  for (let i = 0; i < 2000; ++i) {
    const d = backoffDelay(3, b);
    lo = Math.min(lo, d);
    hi = Math.max(hi, d);
  }
  assert.ok(lo < 40, `smallest of 2000 draws ${lo}`);
  assert.ok(hi > 360 && hi < 400, `largest of 2000 draws ${hi}`);
});

test('huge attempt counts stay capped (no Infinity or NaN)', () => {
  const b = { initialMs: 250, maxMs: 10000 };
  for (const n of [50, 1000, 1e9, Number.MAX_SAFE_INTEGER]) {
    const d = backoffDelay(n, b, () => top);
    assert.equal(d, 9999, `attempt ${n}`);
  }
});

test('defaults are 250 ms doubling to 10 s; attempt 0 counts as the first', () => {
  assert.equal(backoffDelay(1, {}, () => top), 249);
  assert.equal(backoffDelay(0, {}, () => top), 249);
  assert.equal(backoffDelay(30, undefined, () => top), 9999);
});
