// The client against flowrelayd with `auth: jwt` (HS256 tokens signed here with node:crypto):
// the token goes as ?token=, a refused handshake backs off, a 1008 about rights stops it.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { FlowrelayClient } from '../flowrelay.js';
import { Daemon, record, sleep, waitFor } from '../test-support/daemon.js';

const SECRET = 'js-client-test-secret-0123456789';
const b64url = (s) => Buffer.from(s).toString('base64url');

function hs256(claims) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({ exp: Math.floor(Date.now() / 1000) + 600, ...claims }));
  const sig = createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

describe('flowrelayd with auth: jwt', () => {
  let d;
  let dir;
  const clients = [];
  const connect = (conversation, opts) => {
    const c = new FlowrelayClient(d.wsUrl(conversation), opts);
    clients.push(c);
    return { c, seen: record(c) };
  };
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flowrelay-js-jwt-'));
    const secretFile = join(dir, 'jwt.secret');
    writeFileSync(secretFile, SECRET);
    d = await Daemon.start({
      transportExtra: `    auth: jwt\n    jwt:\n      hs256_secret_file: ${secretFile}\n`,
    });
  });
  after(async () => {
    for (const c of clients) c.close();
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a token with the rights: ?token= admits the client, it reads and publishes', async () => {
    const token = hs256({ sub: 'ana', read: ['room-*'], publish: ['room-*'] });
    const { c, seen } = connect('room-1', { token, backoff: { initialMs: 20, maxMs: 100 } });
    await waitFor(() => seen.resumed.length === 1, 'the resume');
    c.publish('hi from ana').catch(() => {});  // acks are daemon_local's concern
    await waitFor(() => seen.message.length === 1, 'the echo');
    assert.deepEqual(seen.message.map((m) => [m.offset, m.data]), [[1, 'hi from ana']]);
  });

  test('no token: the refused handshake is retried with growing, capped delays, never opened', async () => {
    const backoff = { initialMs: 10, maxMs: 80 };
    const { c, seen } = connect('room-2', { backoff });
    await waitFor(() => seen.state.filter((s) => s.state === 'reconnecting').length >= 6,
                  'six failed attempts');
    c.close();
    const waits = seen.state.filter((s) => s.state === 'reconnecting');
    assert.deepEqual(waits.slice(0, 6).map((s) => s.attempt), [2, 3, 4, 5, 6, 7]);
    waits.forEach((s, i) => {
      const ceiling = Math.min(backoff.maxMs, backoff.initialMs * 2 ** i);
      assert.ok(s.delayMs >= 0 && s.delayMs < ceiling, `attempt ${s.attempt}: ${s.delayMs} ms`);
    });
    assert.ok(!seen.state.some((s) => s.state === 'open'));
  });

  test('publishing without the publish right: close 1008, the client stops for good', async () => {
    const token = hs256({ sub: 'viewer', read: ['room-3'] });
    const { c, seen } = connect('room-3', { token, backoff: { initialMs: 10, maxMs: 50 } });
    await waitFor(() => seen.resumed.length === 1, 'the resume');
    await assert.rejects(c.publish('not mine to say'), (e) => e.code === 1008 && /allowed/.test(e.reason));
    await sleep(150);  // several backoff delays: a reconnect would show here
    assert.equal(c.state, 'closed');
    assert.deepEqual(seen.state.map((s) => s.state), ['connecting', 'open', 'closed']);
    assert.equal(seen.state.at(-1).code, 1008);
  });
});
