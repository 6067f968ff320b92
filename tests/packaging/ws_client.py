#!/usr/bin/env python3
"""A small RFC 6455 client for the packaging test (python3 standard library only).

  ws_client.py exchange HOST PORT PATH   two clients join PATH; the first sends a text message,
                                         both must receive it (echo is on in the packaged
                                         config); prints "exchange ok"
  ws_client.py hold HOST PORT PATH       connect, print "connected", wait for the server's close
                                         frame and print "close <code>"
Exit status 0 on success, 1 with the reason on stderr otherwise.
"""
import base64
import hashlib
import os
import socket
import struct
import sys

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TIMEOUT = 10.0


class Client:
    def __init__(self, host, port, path):
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError(f"connection closed during the handshake: {head!r}")
            head += chunk
        head, self.buffer = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            raise RuntimeError(f"handshake refused: {lines[0]}")
        headers = {k.strip().lower(): v.strip()
                   for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
        expected = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != expected:
            raise RuntimeError("wrong Sec-WebSocket-Accept")

    def _read(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed by the server")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def send(self, opcode, payload):
        mask = os.urandom(4)
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def receive(self, want_pong=False):
        """Returns (opcode, payload) of the next data or close frame (or pong, if wanted);
        answers pings."""
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if b1 & 0x80:
                raise RuntimeError("the server sent a masked frame")
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(n)
            if opcode == 0x9:
                self.send(0xA, payload)
                continue
            if opcode == 0xA and not want_pong:
                continue
            if not b0 & 0x80:
                raise RuntimeError("fragmented frames are not expected in this test")
            return opcode, payload


def exchange(host, port, path):
    first, second = Client(host, port, path), Client(host, port, path)
    # A ping answered on each connection: the server has finished setting both up.
    for client in (first, second):
        client.send(0x9, b"sync")
        opcode, payload = client.receive(want_pong=True)
        if (opcode, payload) != (0xA, b"sync"):
            raise RuntimeError(f"expected the pong, got opcode {opcode} {payload!r}")
    message = "hello from the packaging test \u2713"
    first.send(0x1, message.encode())
    for name, client in (("receiver", second), ("sender (echo)", first)):
        opcode, payload = client.receive()
        if opcode != 0x1 or payload.decode() != message:
            raise RuntimeError(f"{name} got opcode {opcode} {payload!r}, expected {message!r}")
    for client in (first, second):
        client.send(0x8, struct.pack("!H", 1000))
    print("exchange ok")


def hold(host, port, path):
    client = Client(host, port, path)
    print("connected", flush=True)
    client.sock.settimeout(60)
    opcode, payload = client.receive()
    if opcode != 0x8:
        raise RuntimeError(f"expected a close frame, got opcode {opcode}")
    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
    print(f"close {code}", flush=True)


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("exchange", "hold"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, host, port, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    try:
        (exchange if mode == "exchange" else hold)(host, port, path)
    except (OSError, RuntimeError) as e:
        print(f"ws_client {mode}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
