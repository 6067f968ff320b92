"""A client of flowrelay's publish API (POST /api/publish, docs/PROTOCOL.md) on one
keep-alive HTTP connection: a streamed reply sends its steps without a new TCP handshake each
time, and the requests of one connection keep their order."""

import http.client
import json
import urllib.parse
from typing import Callable, List, Optional


class PublishError(Exception):
    """flowrelay did not publish it: `status` is the HTTP status (0: no answer, the I/O error
    is the message) and `body` the decoded answer (an empty dict if it was not JSON)."""

    def __init__(self, message: str, status: int = 0, body: Optional[dict] = None):
        super().__init__(message)
        self.status = status
        self.body = body if isinstance(body, dict) else {}

    @property
    def retryable(self) -> bool:
        """Nothing was refused (no answer, or 503): the same request may go again. Only reply
        steps are resent: flowrelay stores a resent seq once, a resent message twice."""
        return self.status in (0, 503)


class ReplyConflict(PublishError):
    """409 for a reply step: the reply has `ended` (how: "cancelled", "producer_lost", ...)
    or expects another seq (`expected_seq`). The producer stops."""

    @property
    def ended(self) -> Optional[str]:
        return self.body.get("ended")

    @property
    def expected_seq(self) -> Optional[int]:
        return self.body.get("expected_seq")


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


def _json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


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

    def post(self, items: List[dict]) -> dict:
        """Publishes `items` (messages and reply steps as the API takes them: one alone, more
        as a batch, in order) and returns flowrelay's answer once it stored them all."""
        body = _json(items[0] if len(items) == 1 else {"messages": items})
        try:
            self._conn.request("POST", self._path, body=body, headers=self._headers)
            resp = self._conn.getresponse()
            # Reading the whole answer is what lets the connection carry the next request.
            answer = resp.read()
        except (OSError, http.client.HTTPException) as e:
            self._conn.close()
            raise PublishError(f"{type(e).__name__}: {e}") from e
        try:
            decoded = json.loads(answer)
        except ValueError:
            decoded = None
        if resp.status != 200:
            text = f"HTTP {resp.status}: {answer.decode('utf-8', 'replace').strip()}"
            cls = ReplyConflict if resp.status == 409 else PublishError
            raise cls(text, resp.status, decoded)
        if not isinstance(decoded, dict):
            raise PublishError(f"unreadable answer {answer[:200]!r}", resp.status)
        return decoded

    def publish(self, conversation: str, data: str, lane: str = "message") -> int:
        """Publishes one message; returns its offset once flowrelay stored it."""
        answer = self.post([{"conversation": conversation, "lane": lane, "data": data}])
        try:
            return int(answer.get("offset", 0))
        except (TypeError, ValueError) as e:
            raise PublishError(f"unreadable answer {answer!r}") from e

    def close(self):
        self._conn.close()
