// A TCP proxy to 127.0.0.1:`targetPort` (Node's net): cut() destroys every connection through
// it at once, without a close frame, as a network that drops would; new connections still pass.
// Shared with tests/browser (support/stack.js re-exports it).
import { connect, createServer } from 'node:net';

export class CuttableProxy {
  static async start(targetPort) {
    const p = new CuttableProxy();
    p.pairs = new Set();
    p.accepted = 0;
    p.refusing = false;
    p.server = createServer((client) => {
      if (p.refusing) return client.destroy();  // a network still down: retry later
      p.accepted += 1;
      const upstream = connect(targetPort, '127.0.0.1');
      const pair = [client, upstream];
      p.pairs.add(pair);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        p.pairs.delete(pair);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise((ok) => p.server.listen(0, '127.0.0.1', ok));
    p.port = p.server.address().port;
    return p;
  }

  wsBase() { return `ws://127.0.0.1:${this.port}/ws/`; }

  // While refusing, new connections are dropped at once (the client keeps retrying).
  refuse(on = true) { this.refusing = on; }

  // Destroys every open connection; returns how many there were.
  cut() {
    const n = this.pairs.size;
    for (const [a, b] of [...this.pairs]) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
    return n;
  }

  stop() {
    this.cut();
    return new Promise((ok) => this.server.close(ok));
  }
}
