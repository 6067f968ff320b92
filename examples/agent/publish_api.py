"""A client of flowrelay's publish API (POST /api/publish, docs/PROTOCOL.md) on one
keep-alive HTTP connection: a streamed reply sends one request per token without a new TCP
handshake each time, and the messages of one connection keep their order."""

import http.client
import json
import urllib.parse
from typing import Callable, Optional


class PublishError(Exception):
    """flowrelay did not publish the message (the status and its error, or the I/O error)."""


class _CountingConnection(http.client.HTTPConnection):
    """Counts the TCP connections it opens: http.client reconnects silently when the server
    closed the previous one, and the stats must show whether keep-alive held."""

    def __init__(self, *args, on_connect: Callable[[], None], **kwargs):
        super().__init__(*args, **kwargs)
        self._on_connect = on_connect
        self.connects = 0

    def connect(self):
        super().connect()
        self.connects += 1
        self._on_connect()


class PublishApi:
    """Not thread-safe: one instance per reply (per thread)."""

    def __init__(self, base_url: str, api_key: str, timeout_s: float = 10.0,
                 on_connect: Optional[Callable[[], None]] = None):
        url = urllib.parse.urlsplit(base_url)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"FLOWRELAY_API {base_url!r}: expected http://host:port")
        self._path = (url.path.rstrip("/") or "") + "/api/publish"
        self._headers = {"X-API-Key": api_key, "Content-Type": "application/json"}
        self._conn = _CountingConnection(url.hostname, url.port or 80, timeout=timeout_s,
                                         on_connect=on_connect or (lambda: None))

    @property
    def connects(self) -> int:
        return self._conn.connects

    def publish(self, conversation: str, data: str, lane: str = "message") -> int:
        """Publishes one message; returns its offset once flowrelay stored it."""
        body = json.dumps({"conversation": conversation, "lane": lane, "data": data},
                          separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        try:
            self._conn.request("POST", self._path, body=body, headers=self._headers)
            resp = self._conn.getresponse()
            # Reading the whole answer is what lets the connection carry the next request.
            answer = resp.read()
        except (OSError, http.client.HTTPException) as e:
            self._conn.close()
            raise PublishError(f"{type(e).__name__}: {e}") from e
        if resp.status != 200:
            raise PublishError(f"HTTP {resp.status}: {answer.decode('utf-8', 'replace').strip()}")
        try:
            return int(json.loads(answer).get("offset", 0))
        except (ValueError, AttributeError) as e:
            raise PublishError(f"unreadable answer {answer[:200]!r}") from e

    def close(self):
        self._conn.close()
