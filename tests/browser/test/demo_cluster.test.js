// The demo page in a real browser, cluster mode: redis-server, two flowrelayd replicas with
// broker-redis behind nginx (deploy/nginx.conf), the example agent publishing through replica 2.
// Both pages connect through nginx; the replica page A landed on is SIGKILLed mid-reply, A
// reconnects through nginx to the other one, resumes from its offset and ends with the whole
// reply.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { launchBrowser, openChat, sendPrompt, waitForComplete, waitForReconnected,
  waitForTokens } from '../support/browser.js';
import { assertWholeReply } from '../support/expect.js';
import { Agent, cleanup, Flowrelayd, freePort, Nginx, Redis, sleep, waitFor, workDir,
  writeSecret } from '../support/stack.js';

const REPLY_TOKENS = 80;
const TOKEN_DELAY_MS = 30;

let dir, redis, replicas, agent, nginx, browser;
let failed = false;

before(async () => {
  dir = workDir('cluster');
  const secretFile = writeSecret(dir);
  redis = await Redis.start();
  const agentPort = await freePort();
  replicas = [];
  for (const name of ['replica1', 'replica2']) {
    replicas.push(await Flowrelayd.start({ dir, name, redisPort: redis.port, agentPort,
                                           secretFile }));
  }
  // The agent publishes through replica 2, the one that stays up.
  agent = await Agent.start({ dir, port: agentPort, apiPort: replicas[1].httpPort, secretFile,
                              replyTokens: REPLY_TOKENS, tokenDelayMs: TOKEN_DELAY_MS });
  nginx = await Nginx.start({ dir, replicas: replicas.map((r) => `127.0.0.1:${r.wsPort}`) });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await cleanup(dir, [redis, ...(replicas ?? []), agent, nginx], failed);
});

// Which replica holds each of `pages`' connections, from the replicas' connection gauges: the
// pages are opened one at a time and each one's new connection is looked for.
async function replicaOf(open) {
  const before = await Promise.all(replicas.map((r) => r.connections()));
  const page = await open();
  let index = -1;
  await waitFor(async () => {
    const now = await Promise.all(replicas.map((r) => r.connections()));
    index = now.findIndex((n, i) => n === before[i] + 1);
    return index >= 0;
  }, 'the new connection in a replica\'s /metrics');
  return { page, index };
}

test('page A\'s replica is killed mid-reply; A resumes on the other and ends whole', async () => {
  try {
    const conversation = 'browser-cluster';
    // Pages load from replica 2's HTTP listener; their WebSockets go through nginx.
    const url = replicas[1].pageUrl({ conversation, ws: nginx.wsBase() });
    // A must be on replica 1 (the one to kill: replica 2 carries the agent's publishes). nginx
    // spreads round-robin per worker, so a page that lands on replica 2 is reloaded.
    let a = null;
    const others = [];
    for (let attempt = 0; attempt < 12 && !a; ++attempt) {
      const { page, index } = await replicaOf(() => openChat(browser, url));
      if (index === 0) a = page;
      else others.push(page);
    }
    assert.ok(a, 'a page landed on replica 1 within 12 tries');
    const b = others.shift() ?? (await openChat(browser, url));
    for (const extra of others) await extra.close();

    const prompt = 'what happens when a replica dies?';
    const expected = agent.expectedTokens(prompt);
    await sendPrompt(a, prompt);
    const atKill = await waitForTokens(a, 10);
    assert.equal(atKill.complete, false, 'the kill comes before the reply ended');
    await replicas[0].kill();
    await waitForReconnected(a);
    await sleep(50);
    assert.ok((await replicas[1].connections()) >= 2, 'A reconnected, to replica 2');

    await Promise.all([waitForComplete(a), waitForComplete(b)]);
    const ra = await assertWholeReply(a, expected, 'page A (replica killed mid-reply)');
    const rb = await assertWholeReply(b, expected, 'page B');
    assert.equal(ra.id, rb.id);
    await Promise.all([a.close(), b.close()]);
  } catch (e) {
    failed = true;
    throw e;
  }
});
