"""The example agent as flowrelayd's connect proxy (cookie sessions instead of JWT: the
backend.connect_url) and presence event sink (backend.events_url), through the real daemon."""

import unittest

import harness

harness.exit_unless_agent_runs()


class AgentConnectProxyAndEvents(unittest.TestCase):
    """The agent as connect proxy (cookie sessions) and presence event sink."""

    @classmethod
    def setUpClass(cls):
        harness.start_daemon_and_agent(cls, "  connect_url: AGENT/flowrelay/connect\n"
                                            "  events_url: AGENT/flowrelay/events\n"
                                            "  events_batch_ms: 50\n")

    def test_cookie_decides_admission_and_events_reach_the_agent(self):
        websocket = harness.websocket_module()
        url = f"ws://127.0.0.1:{self.daemon.ws_port}/ws/loop-connect"
        with self.assertRaises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(url, cookie="demo_user=banned", timeout=5)
        self.assertEqual(refused.exception.status_code, 403)
        before = self.agent.stats()
        alice = harness.EnvelopeClient(self.daemon.ws_port, "loop-connect",
                                       cookie="theme=dark; demo_user=alice")
        # The connect proxy's user is the one the publish proxy names.
        alice.publish("/private who am I")
        harness.wait_for(lambda: self.agent.stats()["users"].get("alice"), 10,
                         "alice's message at the agent")
        alice.close()

        def counted(kind):
            return self.agent.stats()["events"].get(kind, 0) - before["events"].get(kind, 0)
        harness.wait_for(lambda: counted("leave") >= 1, 10, "the leave event at the agent")
        self.assertGreaterEqual(counted("join"), 1)
        after = self.agent.stats()["connect"]
        self.assertEqual(after.get("admitted", 0) - before["connect"].get("admitted", 0), 1)
        self.assertEqual(after.get("banned"), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
