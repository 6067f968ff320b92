"""What the agent tests share: the real flowrelayd and the real example agent as processes
on free ports, signed requests to the agent, and an envelope WebSocket client (Debian's
python3-websocket). The C++ suites' tests/support plays this part for them."""

import http.client
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AGENT_DIR = os.path.join(REPO, "examples", "agent")
sys.path.insert(0, AGENT_DIR)

import signature  # noqa: E402  (the agent's own module: the tests sign as flowrelayd does)

# ctest runs us with SKIP_RETURN_CODE 77: only a machine without the agent's packages skips.
SKIP = 77
API_KEY = "agent-test-api-key"
SECRET = b"agent-test-secret"


def exit_unless_agent_runs():
    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"SKIP: no {', '.join(missing)} in {sys.executable}"
              " (apt-get install python3-fastapi python3-uvicorn)")
        sys.exit(SKIP)


def websocket_module():
    try:
        import websocket
    except ImportError:
        raise AssertionError("the agent tests need Debian's python3-websocket") from None
    return websocket


def build_dir():
    d = os.environ.get("FLOWRELAY_BUILD_DIR")
    if not d:
        raise AssertionError("FLOWRELAY_BUILD_DIR is not set (ctest sets it)")
    return d


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def http_get(port, path, timeout_s=5):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout_s) as r:
        return r.status, r.read().decode()


class Process:
    """A child process whose output goes to files in `workdir` (shown when a test fails)."""

    def __init__(self, name, args, workdir, env=None):
        self.name = name
        self.out_path = os.path.join(workdir, f"{name}.log")
        self._out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._out, stderr=subprocess.STDOUT,
                                     env=env, cwd=workdir)

    def output(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()
        # ctest shows this only when the test failed (--output-on-failure).
        tail = self.output().splitlines()[-30:]
        print(f"--- {self.name} ({self.out_path}), last {len(tail)} lines ---", *tail,
              sep="\n", file=sys.stderr)

    def await_http(self, port, path, timeout_s=15):
        def answers():
            if not self.alive():
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}):\n"
                                     + self.output())
            try:
                return http_get(port, path, 1)[0] == 200
            except OSError:
                return False
        try:
            wait_for(answers, timeout_s, f"{self.name} GET {path}")
        except AssertionError:
            self.stop()
            raise


def write_secret(workdir):
    """The secret file flowrelayd (backend.secret_file) and the agent share."""
    path = os.path.join(workdir, "backend.secret")
    with open(path, "wb") as f:
        f.write(SECRET + b"\n")  # the trailing newline is not part of the secret
    return path


class Daemon:
    """flowrelayd on broker-local with the publish API on; `extra_yaml` is appended at the
    top level (the `backend:` section)."""

    def __init__(self, workdir, extra_yaml=""):
        b = build_dir()
        binary = os.environ.get("FLOWRELAY_TEST_DAEMON", os.path.join(b, "daemon", "flowrelayd"))
        plugins = os.environ.get("FLOWRELAY_TEST_PLUGIN_DIR", os.path.join(b, "plugins"))
        self.ws_port, self.http_port = free_port(), free_port()
        config = os.path.join(workdir, "flowrelay.yaml")
        with open(config, "w") as f:
            f.write(f"plugin_dir: {plugins}\n"
                    "log: { level: information }\n"
                    "transports:\n"
                    "  - plugin: transport-ws\n"
                    f"    listen: 127.0.0.1:{self.ws_port}\n"
                    "    path: /ws/\n"
                    "broker:\n"
                    "  plugin: broker-local\n"
                    "channels: { prefix: \"chat:\", echo: true }\n"
                    f"http: {{ listen: 127.0.0.1:{self.http_port}, api_key: {API_KEY} }}\n"
                    + extra_yaml)
        self.process = Process("flowrelayd", [binary, "--config", config], workdir)
        self.process.await_http(self.http_port, "/ready")

    def metric(self, name):
        """The value of an unlabelled sample of /metrics."""
        for line in http_get(self.http_port, "/metrics")[1].splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"/metrics has no {name}")

    def stop(self):
        self.process.stop()


class Agent:
    """examples/agent/agent.py as flowrelayd's backend, publishing into `api_port`."""

    def __init__(self, workdir, api_port, reply_tokens=25, token_delay_ms=2, port=None,
                 api_key=API_KEY):
        self.secret_file = write_secret(workdir)
        self.port = port or free_port()
        self.reply_tokens = reply_tokens
        env = dict(os.environ, AGENT_HOST="127.0.0.1", AGENT_PORT=str(self.port),
                   FLOWRELAY_API=f"http://127.0.0.1:{api_port}", FLOWRELAY_API_KEY=api_key,
                   FLOWRELAY_SECRET_FILE=self.secret_file, TOKEN_DELAY_MS=str(token_delay_ms),
                   REPLY_TOKENS=str(reply_tokens))
        self.process = Process(f"agent-{self.port}",
                               ["/usr/bin/python3", os.path.join(AGENT_DIR, "agent.py")],
                               workdir, env)
        self.process.await_http(self.port, "/health")

    def await_idle(self, timeout_s=10):
        """Waits until every reply the agent started has finished (other tests' replies
        would otherwise be counted in the daemon's metrics)."""
        def idle():
            r = dict(self.stats()["replies"])
            return r.pop("started", 0) == sum(r.values())
        wait_for(idle, timeout_s, "the agent's replies to finish")

    def stats(self):
        return json.loads(http_get(self.port, "/stats")[1])

    def post(self, path, body, timestamp=None, sig=None, secret=SECRET, headers=True):
        """POSTs `body` (an object, or bytes as they are) signed like flowrelayd signs;
        `timestamp`/`sig` override the headers, headers=False leaves them out. Returns
        (status, decoded JSON answer)."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        ts = str(int(time.time())) if timestamp is None else str(timestamp)
        h = {"Content-Type": "application/json"}
        if headers:
            h["X-Flowrelay-Timestamp"] = ts
            h["X-Flowrelay-Signature"] = sig if sig is not None else signature.sign(secret, ts, raw)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("POST", path, body=raw, headers=h)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()

    def reply_summary(self, conversation, timeout_s=10):
        """The /stats summary of the (first) reply streamed into `conversation`."""
        def summary():
            return [r for r in self.stats()["recent_replies"] if r["conversation"] == conversation]
        return wait_for(summary, timeout_s, f"a finished reply in {conversation}")[0]

    def stop(self):
        self.process.stop()


def start_daemon_and_agent(cls, backend_extra="", reply_tokens=25):
    """flowrelayd whose backend is the agent (the publish proxy, plus `backend_extra` where
    AGENT stands for the agent's base URL), and the agent publishing into that daemon."""
    work = temp_dir(cls)
    agent_port = free_port()
    secret_file = write_secret(work)
    cls.daemon = Daemon(work, (
        "backend:\n"
        f"  publish_url: http://127.0.0.1:{agent_port}/flowrelay/publish\n"
        f"  secret_file: {secret_file}\n"
        "  timeout_ms: 2000\n"
        + backend_extra.replace("AGENT", f"http://127.0.0.1:{agent_port}")))
    cls.addClassCleanup(cls.daemon.stop)
    # 20 ms between tokens: the daemon publishes the rewritten prompt within that.
    cls.agent = Agent(work, cls.daemon.http_port, reply_tokens=reply_tokens,
                      token_delay_ms=20, port=agent_port)
    cls.addClassCleanup(cls.agent.stop)


class EnvelopeClient:
    """A flowrelay.v1 client of one conversation."""

    def __init__(self, ws_port, conversation, timeout_s=5, cookie=None):
        ws = websocket_module()
        self.ws = ws.create_connection(f"ws://127.0.0.1:{ws_port}/ws/{conversation}",
                                       subprotocols=["flowrelay.v1"], timeout=timeout_s,
                                       cookie=cookie)
        assert self.ws.getsubprotocol() == "flowrelay.v1", self.ws.getsubprotocol()

    def publish(self, data, lane="message"):
        self.ws.send(json.dumps({"type": "publish", "lane": lane, "data": data}))

    def cancel(self, reply_id, request_id="cancel-1"):
        self.ws.send(json.dumps({"type": "cancel", "reply": reply_id, "id": request_id}))

    def recv(self):
        return json.loads(self.ws.recv())

    def recv_until(self, done):
        """Frames up to and including the first one `done` accepts, in arrival order."""
        frames = []
        while not (frames and done(frames[-1])):
            frames.append(self.recv())
        return frames

    def read_reply(self):
        """Frames (log lines and reply steps) up to and including a reply's "done" log line."""
        frames = self.recv_until(lambda f: f.get("lane") == "log"
                                 and f["data"].endswith(": done"))
        for f in frames:
            assert f["type"] in ("message", "open", "delta", "end"), f
        return frames

    def close(self):
        self.ws.close()


def temp_dir(test):
    d = tempfile.TemporaryDirectory(prefix="flowrelay-agent-")
    test.addClassCleanup(d.cleanup) if isinstance(test, type) else test.addCleanup(d.cleanup)
    return d.name


def check_reply(test, frames, prompt, n, first_offset_after=0):
    """Asserts that `frames` (envelope frames in arrival order, ending with the "done" log
    line) are exactly the agent's reply to `prompt` with `n` tokens: the thinking line, the
    reply's open, deltas 1..n in order, its end (reason done, stats counting every token),
    progress lines, "done"; offsets ascending."""
    from reply_text import reply_tokens
    offsets = [f["offset"] for f in frames]
    test.assertEqual(offsets, sorted(set(offsets)), "offsets not strictly ascending")
    test.assertGreater(offsets[0], first_offset_after)
    logs = [f["data"] for f in frames if f["type"] == "message" and f["lane"] == "log"]
    test.assertEqual([f for f in frames if f["type"] == "message" and f["lane"] != "log"], [])
    steps = [f for f in frames if f["type"] != "message"]
    reply_id = logs[0].split(":")[0]
    test.assertRegex(reply_id, r"^r-[0-9a-f]+$")
    progress = [f"{reply_id}: {k}/{n} tokens" for k in range(20, n + 1, 20)]
    test.assertEqual(logs, [f"{reply_id}: thinking"] + progress + [f"{reply_id}: done"])
    tokens = reply_tokens(prompt, n)
    test.assertEqual(len(tokens), n)
    test.assertEqual({f["reply"] for f in steps}, {reply_id})
    test.assertEqual([f["type"] for f in steps], ["open"] + ["delta"] * n + ["end"])
    deltas = steps[1:-1]
    test.assertEqual([(f["seq"], f["data"]) for f in deltas], list(enumerate(tokens, 1)))
    test.assertTrue(all("from" not in f for f in deltas), "no merged delta for a fast client")
    end = steps[-1]
    test.assertEqual(end["reason"], "done")
    test.assertEqual((end["stats"]["tokens"], end["stats"]["bytes"]),
                     (n, len("".join(tokens).encode())))
    test.assertGreaterEqual(end["stats"]["duration_ms"], end["stats"]["ttft_ms"])
    return reply_id
