// The processes the browser tests run for real: flowrelayd with the demo page and the publish
// proxy on, the example agent (examples/agent) as its backend, nginx in front of replicas, and
// a TCP proxy whose connections a test can cut. Free ports, readiness, logs kept in files and
// shown when a test fails. Ports, waits, redis-server and the proxy come from
// clients/js/test-support.
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { buildDir, daemonBinary, freePort, pluginDir, sleep, waitFor } from
  '../../../clients/js/test-support/daemon.js';

export { buildDir, freePort, sleep, waitFor };
export { Redis } from '../../../clients/js/test-support/daemon.js';
export { CuttableProxy } from '../../../clients/js/test-support/proxy.js';

export const repoDir = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const API_KEY = 'browser-test-api-key';
const AGENT_PYTHON = '/usr/bin/python3'; // Debian's fastapi and uvicorn live there

// A scratch folder for one test file (configs, secret, logs), removed by cleanup().
export function workDir(name) {
  return mkdtempSync(join(tmpdir(), `flowrelay-browser-${name}-`));
}

// A child process whose output goes to <dir>/<name>.log.
class Child {
  constructor(name, argv, dir, env) {
    this.name = name;
    this.logPath = join(dir, `${name}.log`);
    writeFileSync(this.logPath, '');
    this.proc = spawn(argv[0], argv.slice(1), { env: { ...process.env, ...env }, stdio: 'pipe' });
    this.proc.stdout.on('data', (d) => writeFileSync(this.logPath, d, { flag: 'a' }));
    this.proc.stderr.on('data', (d) => writeFileSync(this.logPath, d, { flag: 'a' }));
    this.exited = new Promise((r) => this.proc.once('exit', (code, signal) => r({ code, signal })));
  }

  get running() { return this.proc.exitCode === null && this.proc.signalCode === null; }
  log() { return readFileSync(this.logPath, 'utf8'); }

  async stop(signal = 'SIGTERM') {
    if (!this.running) return;
    this.proc.kill(signal);
    const done = await Promise.race([this.exited, sleep(5000).then(() => null)]);
    if (!done) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
  }
}

async function awaitHttp(child, url, timeoutMs = 15000) {
  await waitFor(async () => {
    if (!child.running) throw new Error(`${child.name} exited:\n${child.log()}`);
    try {
      return (await fetch(url)).status === 200;
    } catch {
      return false;
    }
  }, `${child.name} ${url}`, timeoutMs);
}

// The shared HMAC secret of the daemon (backend.secret_file) and the agent.
export function writeSecret(dir) {
  const path = join(dir, 'backend.secret');
  writeFileSync(path, 'browser-test-secret\n', { mode: 0o600 });
  return path;
}

// One flowrelayd. `redisPort` picks broker-redis (else broker-local); `agentPort` the backend.
export class Flowrelayd {
  // `channels`: more keys of the channels section (e.g. 'reply_stall_ms: 300').
  // `sse`: also load transport-sse on a free port (ssePort), with these keys of its own
  // (e.g. { heartbeat_ms: 300 }); null: transport-ws alone.
  static async start({ dir, name = 'flowrelayd', redisPort, agentPort, secretFile, demo = true,
                       channels = '', sse = null }) {
    const d = new Flowrelayd();
    d.wsPort = await freePort();
    do d.httpPort = await freePort(); while (d.httpPort === d.wsPort);
    let sseEntry = '';
    if (sse) {
      do d.ssePort = await freePort(); while (d.ssePort === d.wsPort || d.ssePort === d.httpPort);
      // JSON strings are valid YAML scalars: an origin list with ':' and ',' stays one value.
      sseEntry = `  - plugin: transport-sse\n    listen: 127.0.0.1:${d.ssePort}\n` +
        Object.entries(sse).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}\n`).join('');
    }
    const broker = redisPort
      ? `  plugin: broker-redis\n  url: redis://127.0.0.1:${redisPort}\n`
      : '  plugin: broker-local\n';
    const backend = agentPort
      ? `backend:\n  publish_url: http://127.0.0.1:${agentPort}/flowrelay/publish\n` +
        `  secret_file: ${secretFile}\n  timeout_ms: 3000\n`
      : '';
    const config = join(dir, `${name}.yaml`);
    writeFileSync(config,
      `plugin_dir: ${pluginDir}\nlog: { level: information }\nshutdown_timeout_ms: 1000\n` +
      `transports:\n  - plugin: transport-ws\n    listen: 127.0.0.1:${d.wsPort}\n    path: /ws/\n` +
      sseEntry +
      `broker:\n${broker}` +
      `channels: { prefix: "chat:", echo: true${channels ? ', ' + channels : ''} }\n` +
      `http: { listen: 127.0.0.1:${d.httpPort}, api_key: ${API_KEY}, demo: ${demo} }\n${backend}`);
    d.child = new Child(name, [daemonBinary, '--config', config], dir);
    await awaitHttp(d.child, `http://127.0.0.1:${d.httpPort}/ready`);
    return d;
  }

  get http() { return `http://127.0.0.1:${this.httpPort}`; }
  pageUrl(query) { return `${this.http}/demo/?${new URLSearchParams(query)}`; }

  // transport-sse's stream of `conversation` (the default path /sse/), or through `port`.
  sseUrl(conversation, port = this.ssePort) {
    return `http://127.0.0.1:${port}/sse/${conversation}`;
  }

  // Connections open on this daemon now: the flowrelay_connections gauge (WebSocket), or
  // with prefix 'flowrelay_sse_' transport-sse's flowrelay_sse_connections.
  async connections(prefix = 'flowrelay_') {
    const text = await (await fetch(`${this.http}/metrics`)).text();
    const gauge = new RegExp(`^${prefix}connections(\\{[^}]*\\})? `);
    let n = 0;
    for (const line of text.split('\n')) {
      if (gauge.test(line)) n += Number(line.split(' ').pop());
    }
    return n;
  }

  // POST /api/publish, as a backend does: a message, or any body (a reply step) with api().
  publish(conversation, data, lane = 'message') {
    return this.api({ conversation, lane, data });
  }

  async api(body) {
    const r = await fetch(`${this.http}/api/publish`, {
      method: 'POST', headers: { 'X-API-Key': API_KEY, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (r.status !== 200) throw new Error(`publish answered ${r.status}: ${await r.text()}`);
    return r.json();
  }

  kill() { return this.child.stop('SIGKILL'); }
  stop() { return this.child.stop(); }
}

// examples/agent/agent.py publishing through `apiPort`'s publish API.
export class Agent {
  static async start({ dir, name = 'agent', port, apiPort, secretFile, replyTokens,
                       tokenDelayMs }) {
    const a = new Agent();
    a.port = port ?? (await freePort());
    a.replyTokens = replyTokens;
    a.child = new Child(name, [AGENT_PYTHON, join(repoDir, 'examples/agent/agent.py')], dir, {
      AGENT_HOST: '127.0.0.1', AGENT_PORT: String(a.port),
      FLOWRELAY_API: `http://127.0.0.1:${apiPort}`, FLOWRELAY_API_KEY: API_KEY,
      FLOWRELAY_SECRET_FILE: secretFile, TOKEN_DELAY_MS: String(tokenDelayMs),
      REPLY_TOKENS: String(replyTokens), PYTHONDONTWRITEBYTECODE: '1',
    });
    await awaitHttp(a.child, `http://127.0.0.1:${a.port}/health`);
    return a;
  }

  // The reply the agent streams to `prompt`, from its own reply_tokens() (reply_text.py).
  expectedTokens(prompt) {
    const script = 'import json, sys; sys.path.insert(0, sys.argv[1]); ' +
      'from reply_text import reply_tokens; ' +
      'print(json.dumps(reply_tokens(sys.argv[2], int(sys.argv[3]))))';
    const argv = ['-c', script, join(repoDir, 'examples/agent'), prompt, String(this.replyTokens)];
    return JSON.parse(execFileSync(AGENT_PYTHON, argv,
      { encoding: 'utf8', env: { PYTHONDONTWRITEBYTECODE: '1' } }));
  }

  // GET /stats: what the agent did (replies by outcome, cancel events, deltas sent).
  async stats() {
    return (await fetch(`http://127.0.0.1:${this.port}/stats`)).json();
  }

  stop() { return this.child.stop(); }
}

// nginx from deploy/nginx.conf in front of `replicas` ("host:port"; the template has three
// upstream slots, so two replicas take them round-robin as 1, 2, 1) and, for /sse/, of
// `sseReplicas` (their transport-sse listeners; without them the slots name `replicas`).
export class Nginx {
  static async start({ dir, replicas, sseReplicas = replicas }) {
    const n = new Nginx();
    n.port = await freePort();
    const slots = [replicas[0], replicas[1], replicas[2] ?? replicas[0]];
    let conf = readFileSync(join(repoDir, 'deploy/nginx.conf'), 'utf8');
    const sse = [sseReplicas[0], sseReplicas[1] ?? sseReplicas[0], sseReplicas[2] ?? sseReplicas[0]];
    const values = { LISTEN: `127.0.0.1:${n.port}`, RUN_DIR: dir, REPLICA_1: slots[0],
                     REPLICA_2: slots[1], REPLICA_3: slots[2], SSE_1: sse[0], SSE_2: sse[1],
                     SSE_3: sse[2] };
    conf = conf.replace(/\$\{([A-Z_0-9]+)\}/g, (all, key) => values[key] ?? all);
    const path = join(dir, 'nginx.conf');
    writeFileSync(path, conf);
    n.child = new Child('nginx', ['/usr/sbin/nginx', '-p', `${dir}/`, '-c', path, '-e',
      join(dir, 'nginx-error.log'), '-g', 'daemon off;'], dir);
    await waitFor(() => new Promise((ok) => {
      if (!n.child.running) throw new Error(`nginx exited:\n${n.child.log()}`);
      const s = connect(n.port, '127.0.0.1', () => { s.destroy(); ok(true); });
      s.on('error', () => ok(false));
    }), 'nginx to listen');
    return n;
  }

  wsBase() { return `ws://127.0.0.1:${this.port}/ws/`; }
  stop() { return this.child.stop(); }
}

// Stops what a test started (in reverse order); on failure prints the tail of each log so that
// ctest --output-on-failure shows why; removes the scratch folder.
export async function cleanup(dir, parts, failed) {
  for (const p of [...parts].reverse()) {
    try {
      await p?.stop();
    } catch { /* already gone */ }
  }
  if (failed) {
    for (const p of parts) {
      if (!p?.child) continue;
      const tail = p.child.log().split('\n').slice(-40).join('\n');
      process.stderr.write(`--- ${p.child.name} (last lines) ---\n${tail}\n`);
    }
  }
  rmSync(dir, { recursive: true, force: true });
}

// <build dir>/artifacts: screenshots CI keeps.
export function artifactsDir() {
  const dir = join(buildDir, 'artifacts');
  mkdirSync(dir, { recursive: true });
  return dir;
}
