// Debian's chromium (never a downloaded browser) driven by playwright-core, and what the tests
// read off the demo page (clients/demo): the state line, the replies and their tokens.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.FLOWRELAY_CHROMIUM ?? '/usr/bin/chromium';

// One browser with a fresh profile; close() removes the profile.
export async function launchBrowser() {
  const profile = mkdtempSync(join(tmpdir(), 'flowrelay-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 720 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

// A page of the demo with the uncaught errors it raised (a test asserts there are none).
export async function openChat(browser, url) {
  const page = await browser.context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  await page.goto(url);
  await waitForState(page, 'open');
  return page;
}

export async function waitForState(page, state, timeout = 15000) {
  await page.waitForSelector(`#state[data-state="${state}"]`, { timeout });
}

// Waits until the page lost its connection at least `n` times in all and is open again.
export async function waitForReconnected(page, n = 1, timeout = 20000) {
  await page.waitForFunction((min) => {
    const s = document.getElementById('state');
    return s.dataset.state === 'open' && Number(s.dataset.reconnects) >= min;
  }, n, { timeout, polling: 50 });
}

export async function sendPrompt(page, text) {
  await page.fill('#prompt', text);
  await page.press('#prompt', 'Enter');
  await page.waitForSelector('#ack[data-status="ok"], #ack[data-status="error"]');
  const status = await page.getAttribute('#ack', 'data-status');
  if (status !== 'ok')
    throw new Error(`the prompt was not sent: ${await page.textContent('#ack')}`);
}

// What the page shows of every reply: id, how it ended, the last seq and the end's count, how
// many live deltas and snapshot/reply entries built the text, the seqs of the live deltas.
export function replies(page) {
  return page.$$eval('[data-reply-id]', (items) => items.map((li) => ({
    id: li.dataset.replyId,
    complete: li.dataset.complete === 'true',
    reason: li.dataset.reason ?? null,
    seq: Number(li.dataset.seq),
    tokens: li.dataset.tokens === undefined ? null : Number(li.dataset.tokens),
    deltas: Number(li.dataset.deltas),
    replaced: Number(li.dataset.replaced),
    incomplete: li.dataset.incomplete === 'true',
    liveSeqs: [...li.querySelectorAll('[data-seq]')].map((s) => Number(s.dataset.seq)),
    text: li.querySelector('.text').textContent,
    status: li.querySelector('.reply-status').textContent,
    stopButton: li.querySelector('button.stop') !== null,
  })));
}

// The prompts the page shows (user messages), in order.
export function prompts(page) {
  return page.$$eval('#transcript li.user .text', (ps) => ps.map((p) => p.textContent));
}

// Waits until the page shows at least `n` tokens of some reply; returns that count.
export async function waitForTokens(page, n, timeout = 15000) {
  const handle = await page.waitForFunction((min) => {
    const li = document.querySelector('[data-reply-id]');
    const count = li ? Number(li.dataset.seq) : 0;
    return count >= min ? { count, complete: li.dataset.complete === 'true' } : false;
  }, n, { timeout, polling: 50 });
  return handle.jsonValue();
}

export async function waitForComplete(page, timeout = 20000) {
  await page.waitForSelector('[data-reply-id][data-complete="true"]', { timeout });
}
