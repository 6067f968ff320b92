// The demo page in a real browser, single mode: flowrelayd (broker-local, http.demo, the publish
// proxy to the example agent) and examples/agent as processes. Two pages on one conversation,
// a prompt from page A; both render the agent's streamed reply whole. Page A reaches the daemon
// through a TCP proxy that drops its connection mid-reply; A still ends with the whole reply.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { launchBrowser, openChat, prompts, replies, sendPrompt, waitForComplete,
  waitForReconnected, waitForTokens } from '../support/browser.js';
import { assertWholeReply } from '../support/expect.js';
import { Agent, artifactsDir, cleanup, CuttableProxy, Flowrelayd, freePort, repoDir, waitFor,
  workDir, writeSecret } from '../support/stack.js';

const REPLY_TOKENS = 80;
const TOKEN_DELAY_MS = 30; // about 2.4 s of streaming: time to cut A's connection in the middle

let dir, daemon, agent, proxy, browser;
let failed = false;

before(async () => {
  dir = workDir('single');
  const secretFile = writeSecret(dir);
  const agentPort = await freePort();
  daemon = await Flowrelayd.start({ dir, demo: true, agentPort, secretFile });
  agent = await Agent.start({ dir, port: agentPort, apiPort: daemon.httpPort, secretFile,
                              replyTokens: REPLY_TOKENS, tokenDelayMs: TOKEN_DELAY_MS });
  proxy = await CuttableProxy.start(daemon.wsPort);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await cleanup(dir, [daemon, agent, proxy], failed);
});

function track(fn) {
  return async (t) => {
    try {
      await fn(t);
    } catch (e) {
      failed = true;
      throw e;
    }
  };
}

test('the daemon serves the page it was built with', track(async () => {
  const files = {
    '': ['clients/demo/index.html', 'text/html; charset=utf-8'],
    'index.html': ['clients/demo/index.html', 'text/html; charset=utf-8'],
    'demo.js': ['clients/demo/demo.js', 'text/javascript; charset=utf-8'],
    'demo.css': ['clients/demo/demo.css', 'text/css; charset=utf-8'],
    'flowrelay.js': ['clients/js/flowrelay.js', 'text/javascript; charset=utf-8'],
  };
  for (const [name, [source, type]] of Object.entries(files)) {
    const r = await fetch(`${daemon.http}/demo/${name}`);
    assert.equal(r.status, 200, `/demo/${name}`);
    assert.equal(r.headers.get('content-type'), type, `/demo/${name}`);
    assert.equal(r.headers.get('cache-control'), 'no-cache', `/demo/${name}`);
    assert.equal(await r.text(), readFileSync(join(repoDir, source), 'utf8'),
                 `/demo/${name} is ${source} as it is now (rebuilt when it changed)`);
  }
  const config = await fetch(`${daemon.http}/demo/config.json`);
  assert.equal(config.status, 200);
  assert.match(config.headers.get('content-type'), /^application\/json/);
  assert.deepEqual(await config.json(), { ws: `ws://127.0.0.1:${daemon.wsPort}/ws/` });
  for (const missing of ['nothing.js', 'index.html.bak', 'demo.js/x']) {
    assert.equal((await fetch(`${daemon.http}/demo/${missing}`)).status, 404, missing);
  }
  const post = await fetch(`${daemon.http}/demo/`, { method: 'POST', body: 'x' });
  assert.equal(post.status, 405);
  const bare = await fetch(`${daemon.http}/demo?conversation=7`, { redirect: 'manual' });
  assert.equal(bare.status, 308);
  assert.equal(bare.headers.get('location'), '/demo/?conversation=7');
}));

test('without http.demo there is no page (the packaged default)', track(async () => {
  const plain = await Flowrelayd.start({ dir, name: 'no-demo', demo: false });
  try {
    for (const name of ['', 'demo.js', 'config.json']) {
      assert.equal((await fetch(`${plain.http}/demo/${name}`)).status, 404, `/demo/${name}`);
    }
  } finally {
    await plain.stop();
  }
}));

test('two pages render the streamed reply; A loses its socket mid-reply and ends whole',
  track(async () => {
    const conversation = 'browser-single';
    // A through the cuttable proxy (?ws=), B on the address config.json gives.
    const a = await openChat(browser, daemon.pageUrl({ conversation, ws: proxy.wsBase() }));
    const b = await openChat(browser, daemon.pageUrl({ conversation }));
    assert.equal(await b.textContent('#conversation'), conversation);

    const prompt = 'how do offsets survive a reconnect?';
    const expected = agent.expectedTokens(prompt);
    assert.equal(expected.length, REPLY_TOKENS);
    await sendPrompt(a, prompt);

    const atCut = await waitForTokens(a, 10);
    assert.equal(atCut.complete, false, 'the cut comes before the reply ended');
    assert.ok(proxy.cut() >= 1, "A's connection went through the proxy");
    await waitForReconnected(a);
    assert.ok(proxy.accepted >= 2, 'A reconnected through the proxy');

    await Promise.all([waitForComplete(a), waitForComplete(b)]);
    const ra = await assertWholeReply(a, expected, 'page A (cut mid-reply)');
    const rb = await assertWholeReply(b, expected, 'page B');
    assert.equal(ra.id, rb.id, 'both pages show the same reply');
    assert.deepEqual(await prompts(a), [prompt], 'A shows the prompt once');
    assert.deepEqual(await prompts(b), [prompt], 'B shows the prompt once');
    // The agent's progress lines reached the log panel.
    await waitFor(async () => (await b.$$eval('#log li', (l) => l.map((x) => x.textContent)))
      .some((t) => t.endsWith(': done')), 'the log lane in the side panel');

    await a.screenshot({ path: join(artifactsDir(), 'demo-chat.png'), fullPage: true });
    await Promise.all([a.close(), b.close()]);
  }));

test('text outside the app protocol is shown as text, log lines in the panel', track(async () => {
  const conversation = 'browser-plain';
  const a = await openChat(browser, daemon.pageUrl({ conversation }));
  const markup = 'plain <b>text</b> & <img src=x onerror=alert(1)>';
  await daemon.publish(conversation, markup);
  await daemon.publish(conversation, 'a progress line', 'log');
  await a.waitForSelector('#transcript li.plain');
  assert.equal(await a.textContent('#transcript li.plain .text'), markup, 'shown as it was sent');
  assert.equal(await a.$$eval('#transcript b, #transcript img', (e) => e.length), 0,
               'no HTML from the wire');
  await waitFor(async () => (await a.$$eval('#log li', (l) => l.map((x) => x.textContent)))
    .includes('a progress line'), 'the log line in the side panel');
  assert.deepEqual(await replies(a), []);
  await a.close();
}));

test('a prompt the agent refuses is shown as an error, nothing is published', track(async () => {
  const a = await openChat(browser, daemon.pageUrl({ conversation: 'browser-refused' }));
  await a.fill('#prompt', '/reject');
  await a.press('#prompt', 'Enter');
  await a.waitForSelector('#ack[data-status="error"]');
  assert.match(await a.textContent('#ack'), /422.*rejected by the agent/);
  assert.equal(await a.inputValue('#prompt'), '/reject', 'the text is given back to retry');
  assert.deepEqual(await prompts(a), []);
  await a.close();
}));
