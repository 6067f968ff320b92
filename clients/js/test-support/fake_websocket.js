// A scripted stand-in for the WebSocket constructor: the unit tests play the server's side
// (open, frames, closes) deterministically, which a real daemon cannot do on cue (duplicates,
// epoch changes, a 1008 with a given reason).
export function fakeWebSocket() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url, protocols) {
      this.url = new URL(url);
      this.protocols = protocols;
      this.readyState = 0;
      this.protocol = '';
      this.sent = [];
      this.closedWith = null;
      sockets.push(this);
    }
    send(text) {
      if (this.readyState !== 1) throw new Error('send on a socket that is not open');
      this.sent.push(JSON.parse(text));
    }
    close(code) {
      this.closedWith = code;
      this.readyState = 3;
    }
    // --- the server's side ---
    accept(protocol = 'flowrelay.v1') {
      this.readyState = 1;
      this.protocol = protocol;
      this.onopen?.({});
    }
    deliver(frame) {
      this.onmessage?.({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) });
    }
    // Node 20's WebSocket when the connection fails: an error event and no close event.
    fail() {
      this.onerror?.({});
    }
    drop(code = 1006, reason = '') {
      this.readyState = 3;
      this.onerror?.({});
      this.onclose?.({ code, reason });
    }
  }
  return { WebSocket: FakeWebSocket, sockets, last: () => sockets[sockets.length - 1] };
}

export const tick = () => new Promise((r) => setTimeout(r, 0));
