#!/usr/bin/env python3
"""Writes the hand-made seed corpora of tests/fuzz/corpus/<target>/ (seed-*.bin / seed-*.txt).

Run it after changing a seed here; the output is committed. Crash reproducers found by
tests/ci/fuzz.sh are committed next to the seeds as regression-* files and are left alone.

    python3 tests/fuzz/make_seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --------------------------------------------------------------------------- frame parser
# Input: config byte (bits 0-2: number of read splits, bits 3-4: max_message_size index
# 125/1000/65536/1MiB, bit 5: envelope mode, bit 6: the broker confirms after the stream), the
# splits as little-endian uint16, then the client's byte stream (fed to a real Session).

MASK = bytes([0x37, 0xFA, 0x21, 0x3D])  # the mask of RFC 6455 5.7


def frame(opcode, payload, fin=True, mask=MASK, rsv=0, force_len=None):
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload) if force_len is None else force_len
    m = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n <= 0xFFFF:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if mask is None:
        return head + payload
    body = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return head + mask + body


def stream(data, splits=(), max_index=3, envelope=False, late=False):
    assert len(splits) <= 7
    head = bytes([len(splits) | (max_index << 3) | (0x20 if envelope else 0) |
                  (0x40 if late else 0)])
    return head + b"".join(struct.pack("<H", s) for s in splits) + data


def frames():
    t = "fuzz_frame_parser"
    # RFC 6455 5.7: a single-frame masked text message "Hello".
    hello = bytes.fromhex("818537fa213d7f9f4d5158")
    assert hello == frame(0x1, b"Hello")
    write(t, "seed-rfc5.7-masked-hello.bin", stream(hello))
    write(t, "seed-rfc5.7-masked-hello-split-reads.bin", stream(hello, (1, 3, 7)))
    # RFC 6455 5.7: the unmasked one is a protocol error from a client.
    write(t, "seed-rfc5.7-unmasked-hello.bin", stream(bytes.fromhex("810548656c6c6f")))
    # Fragmented "Hel" + "lo", with a ping between the fragments.
    write(t, "seed-fragmented-hello-with-ping.bin",
          stream(frame(0x1, b"Hel", fin=False) + frame(0x9, b"Hello") + frame(0x0, b"lo"),
                 (5, 12)))
    # A multi-byte code point split across fragments and reads.
    euro = "x\u20acy".encode()
    write(t, "seed-fragmented-utf8-split-codepoint.bin",
          stream(frame(0x1, euro[:2], fin=False) + frame(0x0, euro[2:3], fin=False) +
                 frame(0x0, euro[3:]), (2, 9, 15)))
    write(t, "seed-ping.bin", stream(frame(0x9, b"Hello")))
    write(t, "seed-pong.bin", stream(frame(0xA, b"Hello")))
    write(t, "seed-close-1000-reason.bin", stream(frame(0x8, struct.pack(">H", 1000) + b"bye")))
    write(t, "seed-close-empty.bin", stream(frame(0x8, b"")))
    write(t, "seed-close-1005-invalid.bin", stream(frame(0x8, struct.pack(">H", 1005))))
    write(t, "seed-binary-256.bin", stream(frame(0x2, bytes(range(256)))))
    # 16-bit and 64-bit lengths; the 64-bit one waits for its payload.
    write(t, "seed-text-16bit-length.bin", stream(frame(0x1, b"a" * 300), (2, 4, 8)))
    write(t, "seed-text-64bit-length-partial.bin",
          stream(frame(0x1, b"b" * 40, force_len=70000)[:60], (), 3))
    write(t, "seed-too-big-for-125.bin", stream(frame(0x1, b"c" * 200), (), 0))
    write(t, "seed-invalid-utf8-overlong.bin", stream(frame(0x1, b"\xc0\xaf")))
    write(t, "seed-nonminimal-length.bin", stream(bytes([0x81, 0xFE, 0x00, 0x05]) + MASK))
    write(t, "seed-continuation-without-start.bin", stream(frame(0x0, b"lo")))
    write(t, "seed-rsv-set.bin", stream(frame(0x1, b"x", rsv=4)))
    write(t, "seed-many-messages.bin",
          stream(b"".join(frame(0x1, ("m%d" % i).encode()) for i in range(8)) +
                 frame(0x8, struct.pack(">H", 1001)), (3, 17, 40, 41), 1))
    # Envelope mode: a publish on each lane and a frame that is not JSON (error frame).
    write(t, "seed-envelope-publish-and-error.bin",
          stream(frame(0x1, b'{"type":"publish","data":"hi"}') +
                 frame(0x1, b'{"type":"publish","lane":"log","data":"step"}') +
                 frame(0x1, b"not json"), (9,), 3, envelope=True))
    # Frames sent before the broker confirmed the channel: held, then run in order.
    write(t, "seed-late-confirmation.bin",
          stream(frame(0x1, b"early") + frame(0x9, b"p") + frame(0x1, b"later"), (4,), 3,
                 late=True))


# --------------------------------------------------------------------------- handshake

def request(target="/ws/42", extra="", key="dGhlIHNhbXBsZSBub25jZQ==", version="13",
            method="GET", proto="HTTP/1.1", eol="\r\n",
            connection="Upgrade", upgrade="websocket"):
    lines = [f"{method} {target} {proto}", "Host: server.example.com"]
    if upgrade is not None:
        lines.append(f"Upgrade: {upgrade}")
    if connection is not None:
        lines.append(f"Connection: {connection}")
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    if extra:
        lines.extend(extra.split("\n"))
    return eol.join(lines) + eol + eol


def handshakes():
    t = "fuzz_handshake"
    # RFC 6455 1.3 (Origin not on the fuzzer's allow-list: 403 with the policy).
    write(t, "seed-rfc6455-1.3.txt",
          request("/ws/chat", "Origin: http://example.com\nSec-WebSocket-Protocol: chat, superchat"))
    write(t, "seed-allowed-origin.txt", request("/ws/room-1", "Origin: https://chat.example.com"))
    write(t, "seed-no-origin.txt", request("/ws/a-b_c.d:e"))
    write(t, "seed-query-token.txt", request("/ws/42?token=abc.def.ghi&since=3",
                                             "Authorization: Bearer abc.def.ghi"))
    write(t, "seed-post-405.txt", request(method="POST"))
    write(t, "seed-other-path-404.txt", request("/other/42"))
    write(t, "seed-version-8-426.txt", request(version="8"))
    write(t, "seed-no-upgrade-426.txt", request(upgrade=None))
    write(t, "seed-connection-keepalive-upgrade.txt",
          request(connection="keep-alive, Upgrade", upgrade="WebSocket"))
    write(t, "seed-http10-400.txt", request(proto="HTTP/1.0"))
    write(t, "seed-bad-key-400.txt", request(key="!!!!!!!!!!!!!!!!!!!!!!=="))
    write(t, "seed-bad-id-400.txt", request("/ws/a%20b"))
    write(t, "seed-lowercase-headers.txt",
          request().replace("Upgrade:", "upgrade:").replace("Sec-WebSocket-Key", "sec-websocket-key"))
    write(t, "seed-bare-lf.txt", request(eol="\n"))
    # Envelope mode (flowrelay.v1) and resume (docs/PROTOCOL.md).
    write(t, "seed-envelope.txt", request("/ws/42", "Sec-WebSocket-Protocol: chat, flowrelay.v1"))
    write(t, "seed-resume.txt", request("/ws/42?since=117&epoch=m3k9x2-1f&token=abc.def.ghi",
                                        "Sec-WebSocket-Protocol: flowrelay.v1"))
    write(t, "seed-resume-raw-400.txt", request("/ws/42?since=0"))
    write(t, "seed-resume-bad-since-400.txt",
          request("/ws/42?since=-1&epoch=e", "Sec-WebSocket-Protocol: flowrelay.v1"))
    # Pipelined: a masked frame right after the blank line.
    write(t, "seed-pipelined-frame.bin", request().encode() + bytes.fromhex("818537fa213d7f9f4d5158"))


# --------------------------------------------------------------------------- envelope
# Input: one text message of an envelope-mode client (docs/PROTOCOL.md, "Client to server").

def envelopes():
    t = "fuzz_envelope"
    write(t, "seed-publish.json", '{"type":"publish","lane":"message","data":"Hello"}')
    write(t, "seed-publish-default-lane.json", '{"type":"publish","data":"Hi"}')
    write(t, "seed-publish-log.json", '{"data":"step 1","lane":"log","type":"publish"}')
    write(t, "seed-escapes.json",
          '{"type":"publish","data":"q\\"b\\\\ \\n\\t\\u0001\\u0000 \\u00e9'
          '\\ud83d\\ude00 caf\u00e9 \u65e5\u672c"}')
    write(t, "seed-lane-null.json", '{"type":"publish","lane":null,"data":"x"}')
    write(t, "seed-unknown-lane.json", '{"type":"publish","lane":"video","data":"x"}')
    write(t, "seed-unknown-type.json", '{"type":"subscribe","data":"x"}')
    write(t, "seed-data-number.json", '{"type":"publish","data":5}')
    write(t, "seed-array.json", '[{"type":"publish","data":"x"}]')
    write(t, "seed-nested.json", '{"type":"publish","data":"x","extra":{"a":[1,2.5e3,true,null]}}')
    write(t, "seed-not-json.txt", "Hello")
    write(t, "seed-trailing.json", '{"type":"publish","data":"x"} {}')
    write(t, "seed-surrogate.json", '{"type":"publish","data":"\\ud800\\u0041"}')
    # Reply steps of a producer (docs/PROTOCOL.md, reply streams).
    write(t, "seed-reply-open.json", '{"type":"open","reply":"r17","id":"c1"}')
    write(t, "seed-reply-delta.json",
          '{"type":"delta","reply":"r17","seq":1,"data":"The \\u00e9 \\"q\\"","id":"c2"}')
    write(t, "seed-reply-delta-big-seq.json",
          '{"type":"delta","reply":"r17","seq":18446744073709551615,"data":"x"}')
    write(t, "seed-reply-end-error.json", '{"type":"end","reply":"r17","error":"boom","id":"c3"}')
    write(t, "seed-reply-cancel.json", '{"type":"cancel","reply":"r17","id":"c4"}')
    write(t, "seed-reply-bad-seq.json", '{"type":"delta","reply":"r17","seq":1.5,"data":"x"}')


# --------------------------------------------------------------------------- config

FUZZ_PLUGINS = "/tmp/flowrelay-fuzz-plugins"  # created by fuzz_config's LLVMFuzzerInitialize


def configs():
    t = "fuzz_config"
    with open(os.path.join(ROOT, "etc", "flowrelay.yaml")) as f:
        shipped = f.read()
    write(t, "seed-etc-flowrelay.yaml", shipped)
    write(t, "seed-etc-flowrelay-fuzz-plugins.yaml",
          shipped.replace("plugin_dir: /usr/lib/flowrelay/plugins", f"plugin_dir: {FUZZ_PLUGINS}"))
    minimal = (f"plugin_dir: {FUZZ_PLUGINS}\n"
               "transports:\n"
               "  - plugin: transport-ws\n"
               "    listen: 127.0.0.1:8080\n"
               "broker:\n"
               "  plugin: broker-local\n")
    write(t, "seed-minimal.yaml", minimal)
    write(t, "seed-dev.yaml",
          f"plugin_dir: {FUZZ_PLUGINS}\nlog: {{ level: information }}\ntransports:\n"
          "  - plugin: transport-ws\n    listen: 127.0.0.1:8080\n    path: /ws/\n"
          "broker:\n  plugin: broker-local\nchannels: { prefix: \"chat:\", echo: true }\n"
          "http: { listen: 127.0.0.1:9090 }\n")
    write(t, "seed-cluster-replica.yaml",
          f"plugin_dir: {FUZZ_PLUGINS}\nlog: {{ level: information, format: json }}\n"
          "shutdown_timeout_ms: 250\ntransports:\n"
          "  - plugin: transport-ws\n    listen: 127.0.0.1:8081\n    path: /ws/\n"
          "    auth: jwt\n    jwt:\n      hs256_secret_file: secret.txt\n"
          "    allowed_origins: https://a.example, https://b.example\n"
          "broker:\n  plugin: broker-redis\n  url: redis://127.0.0.1:6379\n"
          "channels: { prefix: \"room/\", echo: false }\nhttp: { listen: \"[::1]:9091\" }\n")
    write(t, "seed-flow-style.yaml",
          f"{{plugin_dir: {FUZZ_PLUGINS}, transports: [{{plugin: transport-ws, listen: "
          "'0.0.0.0:80'}, {plugin: ./x/flowrelay-transport-ws.so}], broker: {plugin: broker-local},"
          " http: {listen: off}}\n")
    write(t, "seed-anchors.yaml",
          f"plugin_dir: {FUZZ_PLUGINS}\ntransports:\n  - &t {{plugin: transport-ws, listen: "
          "127.0.0.1:1}\n  - *t\nbroker: {plugin: broker-local, opts: &o {a: 1, b: [1, 2]}}\n"
          "channels: {prefix: *o}\n")
    write(t, "seed-unknown-key.yaml", minimal + "colour: blue\n")
    write(t, "seed-bad-types.yaml",
          minimal + "log: [debug]\nshutdown_timeout_ms: 99999999999\nhttp: { listen: nope }\n")
    write(t, "seed-null-values.yaml", minimal + "log:\nchannels: { prefix: ~, echo: }\nhttp:\n  listen:\n")
    write(t, "seed-not-a-map.yaml", "- transports\n- broker\n")
    write(t, "seed-missing-plugin.yaml",
          "transports:\n  - listen: 127.0.0.1:8080\nbroker:\n  plugin: ''\n")
    write(t, "seed-multi-doc-tags.yaml",
          "%YAML 1.2\n--- !!map\nplugin_dir: !!str " + FUZZ_PLUGINS +
          "\ntransports: !!seq [ {plugin: transport-ws} ]\nbroker: {plugin: broker-local, "
          "? [complex, key] : value}\n...\n--- second\n")


# --------------------------------------------------------------------------- ws options

def ws_options():
    t = "fuzz_ws_options"
    write(t, "seed-listen-path.txt", "listen=127.0.0.1:8080\npath=/ws/")
    write(t, "seed-every-key.txt", "\n".join([
        "listen=0.0.0.0:80", "path=/chat/", "max_message_size=1048576", "io_threads=2",
        "max_outbound_bytes=8388608", "max_header_size=8192", "handshake_timeout_ms=10000",
        "close_timeout_ms=2000", "backlog=4096", "max_conversation_id_length=64",
        "idle_timeout_ms=0", "max_connections=100000", "max_connections_per_ip=50",
        "publish_rate=0.5", "publish_burst=10", "auth=none", "allowed_origins=",
        "allow_missing_origin=true"]))
    # What the host decides is no option any more (host API fields): refused as unknown.
    write(t, "seed-host-decided-keys.txt", "channel_prefix=chat:\necho=false\nconfig_dir=/etc")
    write(t, "seed-ipv6-listen.txt", "listen=[::1]:8443")
    write(t, "seed-jwt-hs256.txt",
          "auth=jwt\njwt.hs256_secret_file=secret.txt")
    write(t, "seed-jwt-rs256-absolute.txt", "auth=jwt\njwt.rs256_public_key_file=/etc/k.pem")
    write(t, "seed-jwt-without-key.txt", "auth=jwt")
    write(t, "seed-origins.txt",
          "allowed_origins= https://a.example ,,https://b.example, \nallow_missing_origin=false")
    write(t, "seed-bad-numbers.txt", "max_message_size=0\nio_threads=-1\nbacklog=1e3")
    write(t, "seed-bad-listen.txt", "listen=:80")
    write(t, "seed-port-out-of-range.txt", "listen=127.0.0.1:65536")
    write(t, "seed-unknown-key.txt", "colour=blue")
    write(t, "seed-bad-path.txt", "path=ws")
    write(t, "seed-rate-exponent.txt", "publish_rate=1e3\npublish_burst=2.5e2")
    write(t, "seed-nul-in-value.bin", b"path=/w\x00s/\nlisten=127.0.0.1:80\x00")


if __name__ == "__main__":
    frames()
    handshakes()
    envelopes()
    configs()
    ws_options()
    for target in sorted(os.listdir(CORPUS)):
        print(target, len(os.listdir(os.path.join(CORPUS, target))))
