// The real flowrelayd (and redis-server) for the client's tests: free ports, a temp config,
// readiness, the publish API. Kept outside test/ because node --test runs every file there.
// FLOWRELAY_BUILD_DIR points at the build tree (default ../../build from clients/js).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
export const buildDir = resolve(process.env.FLOWRELAY_BUILD_DIR ?? join(here, '../../../build'));
export const daemonBinary = process.env.FLOWRELAY_TEST_DAEMON ?? join(buildDir, 'daemon/flowrelayd');
export const pluginDir = process.env.FLOWRELAY_TEST_PLUGIN_DIR ?? join(buildDir, 'plugins');
export const API_KEY = 'js-client-test-key';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls `predicate` until it is true; throws with `what` after `timeoutMs` (no unbounded wait).
export async function waitFor(predicate, what, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

function startProcess(argv, name) {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  child.output = '';
  child.stdout.on('data', (d) => (child.output += d));
  child.stderr.on('data', (d) => (child.output += d));
  child.exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  child.label = name;
  return child;
}

async function killProcess(child, signal = 'SIGKILL') {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  await child.exited;
}

// One flowrelayd. `broker` is 'local' or {redisPort}. Ports are chosen once and kept by
// restart(), so that clients reconnect to the same address.
export class Daemon {
  constructor({ broker = 'local', brokerExtra = '', transportExtra = '' } = {}) {
    this.broker = broker;
    this.brokerExtra = brokerExtra;
    this.transportExtra = transportExtra;
    this.dir = mkdtempSync(join(tmpdir(), 'flowrelay-js-'));
    this.proc = null;
  }

  static async start(options) {
    const d = new Daemon(options);
    await d._startOnFreePorts();
    return d;
  }

  wsUrl(conversation) { return `ws://127.0.0.1:${this.wsPort}/ws/${conversation}`; }

  _config() {
    const broker = this.broker === 'local'
      ? '  plugin: broker-local\n'
      : `  plugin: broker-redis\n  url: redis://127.0.0.1:${this.broker.redisPort}\n`;
    return `plugin_dir: ${pluginDir}\nlog: { level: warning }\nshutdown_timeout_ms: 1000\n` +
      `transports:\n  - plugin: transport-ws\n    listen: 127.0.0.1:${this.wsPort}\n` +
      `    path: /ws/\n${this.transportExtra}broker:\n${broker}${this.brokerExtra}` +
      `channels: { prefix: "chat:", echo: true }\n` +
      `http:\n  listen: 127.0.0.1:${this.httpPort}\n  api_key: "${API_KEY}"\n`;
  }

  async _startOnFreePorts() {
    for (let attempt = 1; ; ++attempt) {
      this.wsPort = await freePort();
      do this.httpPort = await freePort(); while (this.httpPort === this.wsPort);
      try {
        return await this._start();
      } catch (e) {
        // A port taken between freePort() and the daemon's bind: try others, a few times.
        if (attempt >= 3 || !/already in use/.test(e.message)) throw e;
      }
    }
  }

  async _start() {
    const config = join(this.dir, 'flowrelay.yaml');
    writeFileSync(config, this._config());
    const proc = startProcess([daemonBinary, '--config', config], 'flowrelayd');
    this.proc = proc;
    let exited = false;
    proc.exited.then(() => (exited = true));
    const deadline = Date.now() + 10000;
    for (;;) {
      if (exited) throw new Error(`flowrelayd exited before it was ready:\n${proc.output}`);
      try {
        const r = await fetch(`http://127.0.0.1:${this.httpPort}/ready`);
        if (r.status === 200) return;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) {
        await killProcess(proc);
        throw new Error(`flowrelayd not ready within 10 s:\n${proc.output}`);
      }
      await sleep(20);
    }
  }

  // Kills the daemon (SIGKILL: clients see the connection drop, no close frame).
  async kill() { if (this.proc) await killProcess(this.proc); }

  // Starts it again on the same ports (bind can need a few tries while the old socket closes).
  async restart() {
    await this.kill();
    for (let attempt = 1; ; ++attempt) {
      try {
        return await this._start();
      } catch (e) {
        if (attempt >= 20 || !/already in use/.test(e.message)) throw e;
        await sleep(100);
      }
    }
  }

  async stop() {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  // POST /api/publish with `body` as it is (a reply step, a batch): {status, body}.
  async api(body) {
    const r = await fetch(`http://127.0.0.1:${this.httpPort}/api/publish`, {
      method: 'POST',
      headers: { 'X-API-Key': API_KEY, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: r.status, body: await r.json() };
  }

  // POST /api/publish: one message. Returns the parsed answer.
  async publish(conversation, data, lane = 'message') {
    const r = await fetch(`http://127.0.0.1:${this.httpPort}/api/publish`, {
      method: 'POST',
      headers: { 'X-API-Key': API_KEY, 'Content-Type': 'application/json' },
      body: JSON.stringify({ conversation, lane, data }),
    });
    const body = await r.json();
    if (r.status !== 200) throw new Error(`publish answered ${r.status}: ${JSON.stringify(body)}`);
    return body;
  }
}

// A redis-server on a free port, without persistence (as tests/cluster does).
export class Redis {
  static async start() {
    const r = new Redis();
    r.dir = mkdtempSync(join(tmpdir(), 'flowrelay-js-redis-'));
    for (let attempt = 1; ; ++attempt) {
      r.port = await freePort();
      r.proc = startProcess(['redis-server', '--port', String(r.port), '--bind', '127.0.0.1',
                             '--save', '', '--appendonly', 'no', '--dir', r.dir], 'redis-server');
      try {
        await waitFor(() => r._answersPing(), 'redis-server PONG', 5000);
        return r;
      } catch (e) {
        await killProcess(r.proc);
        if (attempt >= 3) throw new Error(`${e.message}\n${r.proc.output}`);
      }
    }
  }

  _answersPing() {
    return new Promise((ok) => {
      const s = connect(this.port, '127.0.0.1');
      let buf = '';
      s.on('connect', () => s.write('PING\r\n'));
      s.on('data', (d) => {
        buf += d;
        if (!buf.includes('\r\n')) return;
        s.destroy();
        ok(buf.startsWith('+PONG'));
      });
      s.on('error', () => ok(false));
    });
  }

  async stop() {
    await killProcess(this.proc);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// Collects a client's events, for assertions.
export function record(client) {
  const seen = { message: [], log: [], resumed: [], 'recovered:false': [], state: [], error: [],
                 gap: [], reply: [], 'reply-end': [], 'reply-frame': [] };
  for (const ev of Object.keys(seen)) client.on(ev, (v) => seen[ev].push(v));
  return seen;
}
