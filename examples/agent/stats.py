"""What the agent did, for GET /stats (tests read it; people watching the demo too)."""

import threading
from collections import Counter, deque
from typing import Dict


class Stats:
    def __init__(self, recent: int = 100):
        self._lock = threading.Lock()
        self._counts: Dict[str, Counter] = {
            "publish": Counter(), "connect": Counter(), "events": Counter(), "replies": Counter(),
            "users": Counter(), "cancel": Counter(), "steps": Counter()}
        self._api_connections = 0
        self._recent = deque(maxlen=recent)

    def count(self, group: str, key: str, n: int = 1):
        with self._lock:
            self._counts[group][key] += n

    def api_connection_opened(self):
        with self._lock:
            self._api_connections += 1

    def reply_finished(self, summary: dict):
        with self._lock:
            self._counts["replies"][summary["outcome"]] += 1
            self._recent.append(summary)

    def snapshot(self) -> dict:
        with self._lock:
            out = {group: dict(c) for group, c in self._counts.items()}
            out["api_connections"] = self._api_connections
            out["recent_replies"] = list(self._recent)
            return out
