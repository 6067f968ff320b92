// The demo page in a real browser, single mode: flowrelayd (broker-local, http.demo, the publish
// proxy to the example agent) and examples/agent as processes. Two pages on one conversation,
// a prompt from page A; both render the agent's streamed reply whole. Page A reaches the daemon
// through a TCP proxy that drops its connection mid-reply; A still ends with the whole reply.
// Stop on a page ends the reply everywhere and stops the agent.
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
const LONG_REPLY_TOKENS = 3000; // 90 s: a reply to stop never ends on its own first

let dir, daemon, agent, proxy, browser;
const stack = [];  // the processes of the tests that start their own
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
  await cleanup(dir, [daemon, agent, proxy, ...stack], failed);
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
    'replies.js': ['clients/js/replies.js', 'text/javascript; charset=utf-8'],
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
    const rb = await assertWholeReply(b, expected, 'page B', { live: true });
    assert.equal(ra.id, rb.id, 'both pages show the same reply');
    assert.ok(ra.replaced >= 1, 'A resumed mid-reply from a snapshot (or the compacted reply)');
    assert.deepEqual(await prompts(a), [prompt], 'A shows the prompt once');
    assert.deepEqual(await prompts(b), [prompt], 'B shows the prompt once');
    // The agent's progress lines reached the log panel.
    await waitFor(async () => (await b.$$eval('#log li', (l) => l.map((x) => x.textContent)))
      .some((t) => t.endsWith(': done')), 'the log lane in the side panel');

    await a.screenshot({ path: join(artifactsDir(), 'demo-chat.png'), fullPage: true });
    await Promise.all([a.close(), b.close()]);
  }));

test('Stop on page A ends the reply on both pages as cancelled; the agent stops producing',
  track(async () => {
    // A pair of its own whose replies outlast any delay before the click (as slow as CI gets).
    const secretFile = writeSecret(dir);
    const agentPort = await freePort();
    const daemon = await Flowrelayd.start({ dir, name: 'stop-daemon', agentPort, secretFile });
    stack.push(daemon);
    const agent = await Agent.start({ dir, name: 'stop-agent', port: agentPort, secretFile,
                                      apiPort: daemon.httpPort, replyTokens: LONG_REPLY_TOKENS,
                                      tokenDelayMs: TOKEN_DELAY_MS });
    stack.push(agent);
    const conversation = 'browser-stop';
    const a = await openChat(browser, daemon.pageUrl({ conversation }));
    const b = await openChat(browser, daemon.pageUrl({ conversation }));
    const prompt = 'stop me half way';
    const full = agent.expectedTokens(prompt).join('');
    const before = await agent.stats();
    await sendPrompt(a, prompt);
    await waitForTokens(a, 3);
    await waitForTokens(b, 1);
    assert.equal((await replies(b))[0].stopButton, true, 'B may stop it too');
    await a.click('[data-reply-id] button.stop');
    await Promise.all([a, b].map((p) => p.waitForSelector(
      '[data-reply-id][data-complete="true"][data-reason="cancelled"]', { timeout: 10000 })));
    const [ra] = await replies(a);
    const [rb] = await replies(b);
    for (const [r, label] of [[ra, 'A'], [rb, 'B']]) {
      assert.equal(r.stopButton, false, `${label}: no Stop button once it ended`);
      assert.equal(r.status, 'stopped', `${label}: says it was stopped`);
      assert.ok(r.seq >= 3 && r.seq < LONG_REPLY_TOKENS, `${label}: cut short (seq ${r.seq})`);
      assert.equal(r.tokens, r.seq, `${label}: the end counts the deltas shown`);
      assert.ok(full.startsWith(r.text), `${label}: the text is the agent's, up to the stop`);
    }
    assert.equal(ra.text, rb.text, 'both pages show the same text');

    // The agent stopped: its reply ended as cancelled (by the proxy's cancel event or the 409
    // for its next delta), the event reached it, and neither it nor the pages move any more.
    await waitFor(async () => ((await agent.stats()).replies.cancelled ?? 0) >
                              (before.replies.cancelled ?? 0), "the agent's reply cancelled");
    await waitFor(async () => {
      const c = (await agent.stats()).cancel;
      const was = before.cancel ?? {};
      return (c.stopped ?? 0) + (c.unknown ?? 0) > (was.stopped ?? 0) + (was.unknown ?? 0);
    }, 'the cancel event at the agent');
    const summary = (await agent.stats()).recent_replies.find((x) => x.conversation === conversation);
    assert.equal(summary?.outcome, 'cancelled');
    assert.equal(summary.tokens, ra.seq, 'the deltas the agent got accepted are those shown');
    const sent = (await agent.stats()).steps.deltas;
    await new Promise((r) => setTimeout(r, 400));  // about 13 tokens' time
    assert.equal((await agent.stats()).steps.deltas, sent, 'the agent sends no more deltas');
    assert.equal((await replies(a))[0].text, ra.text, "A's text stopped growing");
    assert.equal((await replies(b))[0].text, rb.text, "B's text stopped growing");
    assert.deepEqual([...a.errors, ...b.errors], [], 'no uncaught error in the pages');
    await a.screenshot({ path: join(artifactsDir(), 'demo-stopped.png') });
    await Promise.all([a.close(), b.close()]);
  }));

test('a producer that goes silent: "stalled", then ended as producer_lost, shown discreetly',
  track(async () => {
    const quick = await Flowrelayd.start({ dir, name: 'liveness-daemon',
                                           channels: 'reply_stall_ms: 300, reply_timeout_ms: 1500' });
    stack.push(quick);
    const conversation = 'browser-silent';
    const a = await openChat(browser, quick.pageUrl({ conversation }));
    for (const [seq, delta] of [[1, 'Half '], [2, 'a thought']])
      await quick.api({ conversation, reply: 'r-silent', seq, delta });
    await a.waitForSelector('[data-reply-id="r-silent"][data-stalled="true"]', { timeout: 5000 });
    let [r] = await replies(a);
    assert.deepEqual([r.text, r.complete, r.stopButton], ['Half a thought', false, true]);
    assert.equal(r.status, 'waiting for the agent…');
    await a.waitForSelector('[data-reply-id="r-silent"][data-reason="producer_lost"]',
                            { timeout: 5000 });
    [r] = await replies(a);
    assert.deepEqual([r.text, r.complete, r.stopButton, r.tokens], ['Half a thought', true, false, 2]);
    assert.equal(r.status, 'the agent went silent');
    assert.deepEqual(a.errors, []);
    await a.close();
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
