// transport-sse in a real browser: a plain EventSource (support/sse-page.html, served from an
// origin of its own, so the stream is cross-origin and needs the transport's CORS headers)
// reads a conversation through a TCP proxy that drops the connection mid-stream and refuses
// new ones for a while. The browser reconnects by itself with Last-Event-ID; the page ends
// with every message exactly once, in order, with the ids the publish API gave.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';

import { launchBrowser } from '../support/browser.js';
import { cleanup, CuttableProxy, Flowrelayd, sleep, waitFor, workDir } from '../support/stack.js';

const N = 200;
const CUT_AFTER = 100;   // the cut comes once this many are published
const DOWN_FOR = 50;     // published while the proxy refuses: only history can bring them
const CONNECTING = 0;    // EventSource.readyState values
const CLOSED = 2;
const PAGE = readFileSync(new URL('../support/sse-page.html', import.meta.url));

let dir, pages, origin, daemon, proxy, browser;
let failed = false;

// Serves the page (and nothing else) from its own origin.
async function startPageServer() {
  const server = createServer((req, res) => {
    if (new URL(req.url, 'http://x').pathname !== '/') return res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(PAGE);
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, port: server.address().port,
           stop: () => new Promise((ok) => { server.closeAllConnections(); server.close(ok); }) };
}

before(async () => {
  dir = workDir('sse');
  pages = await startPageServer();
  origin = `http://127.0.0.1:${pages.port}`;
  // Short heartbeat: the daemon notices the cut connection by its next write failing. Short
  // retry: the browser's reconnect delay (EventSource waits for it between attempts).
  daemon = await Flowrelayd.start({ dir, demo: false,
    sse: { heartbeat_ms: 300, retry_ms: 200, allowed_origins: origin } });
  proxy = await CuttableProxy.start(daemon.ssePort);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await cleanup(dir, [daemon, proxy, pages], failed);
});

const seen = (page) => page.evaluate(() => window.seen);
// A two-line message now and then: EventSource must give it back with LF line ends.
const text = (i) => (i % 50 === 0 ? `m${i}\r\nline two of m${i}` : `m${i}`);

test('EventSource through a dropped connection: every message once, in order', async () => {
  try {
    const conversation = 'browser-sse';
    const page = await browser.context.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    const src = daemon.sseUrl(conversation, proxy.port);
    await page.goto(`${origin}/?src=${encodeURIComponent(src)}`);
    await page.waitForFunction(() => window.es.readyState !== 0, null, { timeout: 10000 });
    assert.equal(await page.evaluate(() => window.es.readyState), 1,
                 'the stream opened (CLOSED: refused, e.g. no CORS header for this origin)');

    // The 200 head may come before the subscription behind it: log-lane probes until one
    // arrives, so that no numbered message is published before the stream listens. They
    // also show the log lane arrives as `event: log`, not as a message.
    const probes = [];
    for (let i = 0; i < 50 && (await seen(page)).logs.length === 0; ++i) {
      probes.push(await daemon.publish(conversation, 'probe', 'log'));
      await page.waitForFunction(() => window.seen.logs.length > 0, null, { timeout: 200 })
        .catch(() => {});
    }
    const first = await seen(page);
    assert.ok(first.logs.length > 0, 'a log-lane probe reached the page within 50 tries');
    assert.ok(first.logs.every((l) => l.data === 'probe'));
    assert.ok(probes.some((p) => first.logs[0].id === `${p.epoch}:${p.offset}`),
              `the log event's id is a probe's epoch:offset (${first.logs[0].id})`);
    assert.deepEqual(first.messages, [], 'no log line arrived as a message event');

    const published = [];
    let atCut;
    for (let i = 1; i <= N; ++i) {
      published.push(await daemon.publish(conversation, text(i)));
      if (i === CUT_AFTER) {
        proxy.refuse();
        assert.ok(proxy.cut() >= 1, "the page's stream went through the proxy");
        atCut = (await seen(page)).messages.length;
      }
      if (i === CUT_AFTER + DOWN_FOR) {
        // The browser noticed and is retrying (its attempts are refused meanwhile).
        await page.waitForFunction((c) => window.seen.errors.includes(c), CONNECTING,
                                   { timeout: 10000 });
        proxy.refuse(false);
      }
    }

    await page.waitForFunction((n) => window.seen.messages.length >= n, N, { timeout: 20000 })
      .catch(() => {});  // the assertions below say what is missing
    await sleep(500);  // a late duplicate would land in this time
    const end = await seen(page);
    const expected = published.map((p, i) => ({ data: text(i + 1).replace(/\r\n/g, '\n'),
                                                id: `${p.epoch}:${p.offset}` }));
    assert.equal(end.messages.length, N,
                 `${end.messages.length} of ${N} arrived (${atCut} before the cut)`);
    assert.deepEqual(end.messages, expected, 'each once, in order, with its epoch:offset id');

    // Proof the cut happened and was healed by the browser: an error while CONNECTING,
    // a second open, and the daemon's `resumed` saying it recovered from history.
    assert.ok(end.errors.includes(CONNECTING), `an error while CONNECTING (${end.errors})`);
    assert.ok(!end.errors.includes(CLOSED), 'the EventSource never gave up');
    assert.ok(end.opens >= 2, `the stream opened again (${end.opens} opens)`);
    assert.ok(proxy.accepted >= 2, 'the reconnect came through the proxy');
    assert.ok(end.resumed.length >= 1, 'the reconnect was a resume (Last-Event-ID sent)');
    const epoch = published[0].epoch;
    for (const r of end.resumed) {
      assert.equal(r.type, 'resumed');
      assert.equal(r.recovered, true, 'resumed from history, no gap');
      assert.equal(r.epoch, epoch);
    }
    assert.equal(await page.evaluate(() => window.es.readyState), 1, 'open at the end');
    // The daemon dropped the dead stream (its heartbeat write failed): one left, the page's.
    await waitFor(async () => (await daemon.connections('flowrelay_sse_')) === 1,
                  'flowrelay_sse_connections back to 1', 10000);
    assert.deepEqual(pageErrors, [], 'no uncaught error in the page');
    await page.close();
  } catch (e) {
    failed = true;
    throw e;
  }
});
