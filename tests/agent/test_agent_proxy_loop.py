"""The whole chat loop through flowrelayd's publish proxy: a client's prompt goes to the
agent (backend.publish_url), comes back rewritten to every client of the conversation, and the
agent's streamed reply follows; the agent's refusals reach only the sender; a client's cancel
ends the reply for everyone and reaches the agent as the proxy's cancel event."""

import json
import unittest

import harness

harness.exit_unless_agent_runs()

N = 45


class AgentProxyLoop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.start_daemon_and_agent(cls, reply_tokens=N)

    def clients(self, conversation):
        a = harness.EnvelopeClient(self.daemon.ws_port, conversation)
        self.addCleanup(a.close)
        b = harness.EnvelopeClient(self.daemon.ws_port, conversation)
        self.addCleanup(b.close)
        return a, b

    def read_prompt_and_reply(self, client, user_text):
        prompt = client.recv()
        self.assertEqual((prompt["type"], prompt["lane"]), ("message", "message"), prompt)
        self.assertEqual(json.loads(prompt["data"]), {"role": "user", "text": user_text})
        return harness.check_reply(self, client.read_reply(), user_text, N, prompt["offset"])

    def test_prompt_is_rewritten_and_answered_to_every_client(self):
        a, b = self.clients("loop-hello")
        a.publish("hello")
        reply_a = self.read_prompt_and_reply(a, "hello")
        reply_b = self.read_prompt_and_reply(b, "hello")
        self.assertEqual(reply_a, reply_b)
        self.assertEqual(self.agent.stats()["publish"].get("rewritten"), 1)

    def test_refused_and_private_prompts_reach_no_one(self):
        a, b = self.clients("loop-refusals")
        a.publish("/reject")
        error = a.recv()
        self.assertEqual((error["type"], error["code"], error["reason"]),
                         ("error", 422, "rejected by the agent"), error)
        a.publish("/private for the agent only")
        # Published as sent (already a user message): the first thing both clients see.
        a.publish(json.dumps({"role": "user", "text": "after the refusals"}))
        for client in (a, b):
            self.read_prompt_and_reply(client, "after the refusals")
        stats = self.agent.stats()["publish"]
        self.assertEqual((stats.get("rejected"), stats.get("private")), (1, 1))

    def test_cancel_from_a_client_stops_the_agent_through_the_cancel_event(self):
        a, b = self.clients("loop-cancel")
        before = self.agent.stats()["cancel"]
        a.publish(json.dumps({"role": "user", "text": "a reply to stop"}))  # not "rewritten"
        frames = a.recv_until(lambda f: f["type"] == "delta" and f["seq"] >= 3)
        reply_id = frames[-1]["reply"]
        a.cancel(reply_id)
        for client in (a, b):
            end = client.recv_until(lambda f: f["type"] == "end")[-1]
            self.assertEqual((end["reply"], end["reason"]), (reply_id, "cancelled"))
        summary = self.agent.reply_summary("loop-cancel")
        self.assertEqual((summary["reply"], summary["outcome"]), (reply_id, "cancelled"))
        self.assertLess(summary["tokens"], N)
        # flowrelayd told the agent (the publish proxy's cancel event), whether the event or the
        # 409 for the next delta stopped the reply first.
        def event_arrived():
            now = self.agent.stats()["cancel"]
            return sum(now.values()) == sum(before.values()) + 1
        harness.wait_for(event_arrived, 5, "the cancel event at the agent")


if __name__ == "__main__":
    unittest.main(verbosity=2)
