"""Stopping the agent's generation: the publish proxy's cancel event (signed as flowrelayd
signs it) stops the reply it names; without the event, the 409 flowrelay answers the next delta
of a cancelled reply stops it too. A real flowrelayd (no backend configured: no cancel event
from it) carries the replies."""

import time
import unittest

import harness

harness.exit_unless_agent_runs()

LONG = 10000  # tokens: the reply outlives every test unless something stops it


def cancel_event(conversation, reply_id, client="t-9"):
    return {"type": "cancel", "conversation": conversation, "reply": reply_id,
            "user": {"sub": "alice"}, "client": client, "remote_addr": "127.0.0.1:40000"}


class AgentCancel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        work = harness.temp_dir(cls)
        cls.daemon = harness.Daemon(work)
        cls.addClassCleanup(cls.daemon.stop)
        cls.agent = harness.Agent(work, cls.daemon.http_port, reply_tokens=LONG,
                                  token_delay_ms=20)
        cls.addClassCleanup(cls.agent.stop)

    def start_reply(self, name):
        """A client of a new conversation, the reply the agent streams into it (its id), and
        the frames up to its third delta."""
        conv = f"{name}-{time.monotonic_ns()}"
        client = harness.EnvelopeClient(self.daemon.ws_port, conv)
        self.addCleanup(client.close)
        body = {"conversation": conv, "lane": "message", "data": "go on and on",
                "user": None, "client": "t-1", "remote_addr": "127.0.0.1:40000"}
        self.assertEqual(self.agent.post("/flowrelay/publish", body)[0], 200)
        frames = client.recv_until(lambda f: f["type"] == "delta" and f["seq"] >= 3)
        return conv, client, frames[-1]["reply"], frames

    def deltas_sent(self):
        return self.agent.stats()["steps"].get("deltas", 0)

    def assert_no_more_deltas(self, summary):
        """The agent's delta count stands still: it stopped generating, not just counting."""
        before = self.deltas_sent()
        time.sleep(0.3)  # 15 tokens' worth at 20 ms
        self.assertEqual(self.deltas_sent(), before, "the agent still sends deltas")
        self.assertLess(summary["tokens"], LONG)

    def test_cancel_event_stops_the_generation(self):
        conv, client, reply_id, frames = self.start_reply("event")
        stopped_before = self.agent.stats()["cancel"].get("stopped", 0)
        self.assertEqual(self.agent.post("/flowrelay/publish", cancel_event(conv, reply_id)),
                         (200, {}))
        summary = self.agent.reply_summary(conv)
        self.assertEqual((summary["reply"], summary["outcome"]), (reply_id, "cancelled"))
        self.assertIn("cancel event from client t-9", summary["detail"])
        self.assertEqual(self.agent.stats()["cancel"].get("stopped", 0), stopped_before + 1)
        self.assert_no_more_deltas(summary)
        # Every delta the agent counted reached the client, then nothing more.
        client.ws.settimeout(0.3)
        try:
            while True:
                frames.append(client.recv())
        except harness.websocket_module().WebSocketTimeoutException:
            pass
        seqs = [f["seq"] for f in frames if f["type"] == "delta"]
        self.assertEqual(seqs, list(range(1, summary["tokens"] + 1)))

    def test_409_for_the_next_delta_stops_the_generation(self):
        conv, client, reply_id, frames = self.start_reply("conflict")
        client.cancel(reply_id, "c-1")
        frames += client.recv_until(lambda f: f["type"] == "end")
        end = frames[-1]
        self.assertEqual((end["reply"], end["reason"]), (reply_id, "cancelled"))
        # The ack may come before or after the end (as a publish's ack and its echo).
        if not any(f["type"] == "ack" for f in frames):
            frames += client.recv_until(lambda f: f["type"] == "ack")
        acks = [f for f in frames if f["type"] == "ack"]
        self.assertEqual([a["id"] for a in acks], ["c-1"])
        self.assertEqual(acks[0]["offset"], end["offset"])
        summary = self.agent.reply_summary(conv)
        self.assertEqual(summary["outcome"], "cancelled")
        self.assertIn("HTTP 409", summary["detail"])
        self.assertIn("cancelled", summary["detail"])
        # The deltas stored before the end are exactly those the agent counted as accepted.
        last = max(f["seq"] for f in frames if f["type"] == "delta")
        self.assertEqual(end["stats"]["tokens"], last)
        self.assertEqual(summary["tokens"], last)
        self.assert_no_more_deltas(summary)

    def test_cancel_of_a_reply_not_streaming_here_is_answered_and_counted(self):
        unknown_before = self.agent.stats()["cancel"].get("unknown", 0)
        self.assertEqual(self.agent.post("/flowrelay/publish", cancel_event("c1", "r-nope")),
                         (200, {}))
        self.assertEqual(self.agent.stats()["cancel"].get("unknown", 0), unknown_before + 1)

    def test_malformed_cancel_events_are_400(self):
        for body in ({"type": "cancel", "conversation": "c1"},
                     {"type": "cancel", "reply": "r-1"},
                     {"type": "cancel", "conversation": "c1", "reply": 5}):
            with self.subTest(body=body):
                status, answer = self.agent.post("/flowrelay/publish", body)
                self.assertEqual(status, 400)
                self.assertIsInstance(answer.get("error"), str)

    def test_unsigned_cancel_event_is_401(self):
        answer = self.agent.post("/flowrelay/publish", cancel_event("c1", "r-1"), headers=False)
        self.assertEqual(answer, (401, {"error": "bad signature"}))


if __name__ == "__main__":
    unittest.main(verbosity=2)
