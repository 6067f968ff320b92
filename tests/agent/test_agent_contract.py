"""The example agent against the proxy contract (docs/PROTOCOL.md), signed as flowrelayd
signs, with a real flowrelayd receiving its streamed replies through the publish API."""

import json
import os
import subprocess
import time
import unittest

import harness

harness.exit_unless_agent_runs()

N = 45  # two progress lines, and a tail after the last one


def publish_body(data, lane="message", conversation="c1"):
    return {"conversation": conversation, "lane": lane, "data": data,
            "user": {"sub": "alice", "role": "tester"}, "client": "t-1",
            "remote_addr": "127.0.0.1:40000"}


class AgentContract(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        work = harness.temp_dir(cls)
        cls.daemon = harness.Daemon(work)
        cls.addClassCleanup(cls.daemon.stop)
        cls.agent = harness.Agent(work, cls.daemon.http_port, reply_tokens=N)
        cls.addClassCleanup(cls.agent.stop)

    def conversation(self):
        return f"{self.id().rsplit('.', 1)[1]}-{time.monotonic_ns()}"

    def assert_refused(self, answer, status, error):
        self.assertEqual(answer, (status, {"error": error}))

    # Signature and replay defence, on every endpoint.

    def test_missing_signature_is_401(self):
        for path in ("/flowrelay/publish", "/flowrelay/connect", "/flowrelay/events"):
            self.assert_refused(self.agent.post(path, {}, headers=False), 401, "bad signature")

    def test_signature_with_another_secret_is_401(self):
        self.assert_refused(self.agent.post("/flowrelay/publish", publish_body("hi"),
                                            secret=b"not-the-secret"), 401, "bad signature")

    def test_signature_of_another_body_is_401(self):
        ts = str(int(time.time()))
        sig = harness.signature.sign(harness.SECRET, ts, json.dumps(publish_body("a")).encode())
        answer = self.agent.post("/flowrelay/publish", publish_body("b"), timestamp=ts, sig=sig)
        self.assert_refused(answer, 401, "bad signature")

    def test_signature_of_another_timestamp_is_401(self):
        raw = json.dumps(publish_body("hi")).encode()
        ts = int(time.time())
        sig = harness.signature.sign(harness.SECRET, str(ts - 1), raw)
        self.assert_refused(self.agent.post("/flowrelay/publish", raw, timestamp=ts, sig=sig),
                            401, "bad signature")

    def test_malformed_signature_headers_are_401(self):
        raw = json.dumps(publish_body("hi")).encode()
        ts = str(int(time.time()))
        good = harness.signature.sign(harness.SECRET, ts, raw)
        for sig in ("", good[len("sha256="):], good.upper().replace("SHA256", "sha256"),
                    good + "00", "sha256=\u00e9"):
            with self.subTest(sig=sig):
                self.assert_refused(self.agent.post("/flowrelay/publish", raw, timestamp=ts,
                                                    sig=sig), 401, "bad signature")
        for ts in ("", "12.5", "-1", "soon"):
            with self.subTest(timestamp=ts):
                sig = harness.signature.sign(harness.SECRET, ts, raw) if ts else good
                self.assert_refused(self.agent.post("/flowrelay/publish", raw, timestamp=ts,
                                                    sig=sig), 401, "bad signature")

    def test_stale_or_future_timestamp_is_401(self):
        now = int(time.time())
        for ts in (now - 301, now + 301, 0):
            with self.subTest(offset=ts - now):
                self.assert_refused(self.agent.post("/flowrelay/publish", publish_body("hi"),
                                                    timestamp=ts), 401, "stale timestamp")

    def test_timestamp_within_the_window_is_accepted(self):
        now = int(time.time())
        for ts in (now - 290, now + 290):
            with self.subTest(offset=ts - now):
                status, _ = self.agent.post("/flowrelay/publish",
                                            publish_body("/private ok"), timestamp=ts)
                self.assertEqual(status, 200)

    # The publish proxy's answers.

    def test_plain_prompt_is_rewritten_into_a_user_message(self):
        status, answer = self.agent.post("/flowrelay/publish", publish_body("héllo \"you\""))
        self.assertEqual(status, 200)
        self.assertEqual(set(answer), {"data"})
        self.assertEqual(json.loads(answer["data"]), {"role": "user", "text": "héllo \"you\""})

    def test_user_message_object_is_published_as_sent(self):
        data = json.dumps({"role": "user", "text": "already framed"})
        self.assertEqual(self.agent.post("/flowrelay/publish", publish_body(data)), (200, {}))

    def test_client_cannot_publish_as_the_assistant(self):
        data = json.dumps({"role": "assistant", "reply": "r-1", "seq": 1, "delta": "x"})
        status, answer = self.agent.post("/flowrelay/publish", publish_body(data))
        self.assertEqual(status, 422)
        self.assertIn("error", answer)

    def test_private_prompt_is_accepted_not_relayed(self):
        self.assertEqual(self.agent.post("/flowrelay/publish", publish_body("/private psst")),
                         (200, {"publish": False}))

    def test_reject_command_is_refused(self):
        self.assert_refused(self.agent.post("/flowrelay/publish", publish_body("/reject")),
                            422, "rejected by the agent")

    def test_log_lane_is_accepted_as_sent(self):
        self.assertEqual(self.agent.post("/flowrelay/publish",
                                         publish_body("typing…", lane="log")), (200, {}))

    def test_malformed_publish_bodies_are_400(self):
        for body in (b"not json", b"[1]", {"conversation": "c", "lane": "message"},
                     {"conversation": 5, "lane": "message", "data": "x"},
                     publish_body("x", lane="video")):
            with self.subTest(body=body):
                status, answer = self.agent.post("/flowrelay/publish", body)
                self.assertEqual(status, 400)
                self.assertIsInstance(answer.get("error"), str)

    # Connect proxy and events.

    def connect(self, cookie):
        return self.agent.post("/flowrelay/connect", {
            "conversation": "c1", "cookie": cookie, "authorization": None,
            "remote_addr": "127.0.0.1:40000", "transport": "transport-ws"})

    def test_connect_without_cookie_admits_a_guest(self):
        self.assertEqual(self.connect(None), (200, {"user": {"sub": "guest"}, "publish": True}))
        self.assertEqual(self.connect("theme=dark"),
                         (200, {"user": {"sub": "guest"}, "publish": True}))

    def test_connect_with_demo_user_cookie_admits_that_user(self):
        self.assertEqual(self.connect("theme=dark; demo_user=alice"),
                         (200, {"user": {"sub": "alice"}, "publish": True}))

    def test_connect_banned_user_is_403(self):
        status, answer = self.connect("demo_user=banned")
        self.assertEqual(status, 403)
        self.assertIsInstance(answer.get("error"), str)

    def test_events_are_counted(self):
        before = self.agent.stats()["events"]
        events = [{"type": t, "conversation": "c1", "client": f"k{i}", "user": None}
                  for i, t in enumerate(["join", "join", "leave"])]
        self.assertEqual(self.agent.post("/flowrelay/events", {"events": events}), (200, {}))
        after = self.agent.stats()["events"]
        self.assertEqual(after.get("join", 0) - before.get("join", 0), 2)
        self.assertEqual(after.get("leave", 0) - before.get("leave", 0), 1)
        self.assertEqual(self.agent.post("/flowrelay/events", {"events": "join"})[0], 400)

    # The streamed reply, through flowrelayd's publish API.

    def test_prompt_streams_a_complete_ordered_reply_on_one_connection(self):
        conv = self.conversation()
        client = harness.EnvelopeClient(self.daemon.ws_port, conv)
        self.addCleanup(client.close)
        self.agent.await_idle()
        published_before = self.daemon.metric("flowrelay_api_published_total")
        connections_before = self.agent.stats()["api_connections"]
        prompt = "tell me something"
        status, _ = self.agent.post("/flowrelay/publish", publish_body(prompt, conversation=conv))
        self.assertEqual(status, 200)
        frames = client.read_reply()
        reply_id = harness.check_reply(self, frames, prompt, N)
        self.agent.await_idle()
        # Everything the agent published reached the client: no extra message either.
        self.assertEqual(self.daemon.metric("flowrelay_api_published_total") - published_before,
                         len(frames))
        summary = harness.wait_for(
            lambda: [r for r in self.agent.stats()["recent_replies"] if r["reply"] == reply_id],
            5, "the reply's summary")[0]
        self.assertEqual(summary, {"reply": reply_id, "conversation": conv, "tokens": N,
                                   "connections": 1, "outcome": "done", "detail": None})
        self.assertEqual(self.agent.stats()["api_connections"] - connections_before, 1)

    def test_only_replied_prompts_stream(self):
        conv = self.conversation()
        client = harness.EnvelopeClient(self.daemon.ws_port, conv)
        self.addCleanup(client.close)
        for data, lane in (("/private psst", "message"), ("/reject", "message"),
                           ("a log line", "log")):
            self.assertIn(self.agent.post("/flowrelay/publish",
                                          publish_body(data, lane, conv))[0], (200, 422))
        # Give a wrongly started reply time to show its first frames before the real one.
        time.sleep(0.3)
        data = json.dumps({"role": "user", "text": "the real one"})
        self.assertEqual(self.agent.post("/flowrelay/publish", publish_body(data, "message", conv)),
                         (200, {}))
        harness.check_reply(self, client.read_reply(), "the real one", N)


class AgentFailures(unittest.TestCase):
    """What the agent does when its settings or flowrelay's publish API let it down."""

    @classmethod
    def setUpClass(cls):
        cls.work = harness.temp_dir(cls)
        cls.daemon = harness.Daemon(cls.work)
        cls.addClassCleanup(cls.daemon.stop)

    def agent(self, **kwargs):
        agent = harness.Agent(self.work, self.daemon.http_port, **kwargs)
        self.addCleanup(agent.stop)
        return agent

    def test_missing_setting_stops_the_agent_naming_it(self):
        for name in ("FLOWRELAY_SECRET_FILE", "FLOWRELAY_API_KEY"):
            with self.subTest(missing=name):
                env = dict(os.environ, FLOWRELAY_SECRET_FILE=harness.write_secret(self.work),
                           FLOWRELAY_API_KEY=harness.API_KEY, AGENT_PORT="1")
                del env[name]
                done = subprocess.run(["/usr/bin/python3",
                                       os.path.join(harness.AGENT_DIR, "agent.py")],
                                      env=env, capture_output=True, text=True, timeout=30)
                self.assertEqual(done.returncode, 2)
                self.assertIn(name, done.stderr)

    def test_refused_publish_ends_the_reply_and_says_why(self):
        agent = self.agent(api_key="not-the-api-key")
        conv = f"refused-{time.monotonic_ns()}"
        self.assertEqual(agent.post("/flowrelay/publish", publish_body("hi", conversation=conv))[0],
                         200)
        summary = agent.reply_summary(conv)
        self.assertEqual((summary["outcome"], summary["tokens"]), ("failed", 0))
        self.assertIn("HTTP 401", summary["detail"])

    def test_stop_mid_reply_exits_promptly(self):
        agent = self.agent(reply_tokens=10000, token_delay_ms=50)
        client = harness.EnvelopeClient(self.daemon.ws_port, "stop-mid-reply")
        self.addCleanup(client.close)
        agent.post("/flowrelay/publish", publish_body("a long one", conversation="stop-mid-reply"))
        client.recv_until(lambda f: f["type"] == "delta" and f["seq"] >= 3)
        started = time.monotonic()
        agent.process.proc.terminate()
        self.assertEqual(agent.process.proc.wait(10), 0)
        self.assertLess(time.monotonic() - started, 3)
        # The agent ended the reply on its way out: viewers do not wait for it.
        end = client.recv_until(lambda f: f["type"] == "end")[-1]
        self.assertEqual((end["reason"], end.get("error")), ("error", "the agent stopped"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
