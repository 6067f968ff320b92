"""The request signature of flowrelay's backend proxies (docs/PROTOCOL.md): HMAC-SHA256 of
`timestamp + "." + body` with the shared secret, in `X-Flowrelay-Signature: sha256=<hex>`,
the timestamp (unix seconds) in `X-Flowrelay-Timestamp`."""

import hashlib
import hmac
import re
import time
from typing import Optional

# A captured request replayed later than this is refused, whatever its signature.
MAX_SKEW_S = 300

_TIMESTAMP = re.compile(r"[0-9]{1,20}")


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def check(secret: bytes, timestamp: Optional[str], signature: Optional[str], body: bytes,
          now: Optional[float] = None) -> Optional[str]:
    """None when the request is authentic and fresh, else the error of the 401 answer.
    The signature is checked first: a forger learns nothing about the clock."""
    if not timestamp or not signature or not _TIMESTAMP.fullmatch(timestamp):
        return "bad signature"
    expected = sign(secret, timestamp, body).encode("ascii")
    # Headers arrive decoded as latin-1; compare bytes so any header value is comparable.
    if not hmac.compare_digest(expected, signature.encode("latin-1", "replace")):
        return "bad signature"
    if abs((time.time() if now is None else now) - int(timestamp)) > MAX_SKEW_S:
        return "stale timestamp"
    return None
