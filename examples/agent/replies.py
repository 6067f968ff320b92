"""Streams the agent's replies into conversations as reply streams (docs/PROTOCOL.md "Reply
streams") through flowrelay's publish API: open, deltas numbered by seq, end. One worker
thread per reply in progress, each on its own keep-alive connection. A reply stops early when
a client cancels it: the publish proxy's cancel event, or a 409 for its next step."""

import logging
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Optional

from publish_api import PublishApi, PublishError, ReplyConflict
from reply_text import reply_tokens
from settings import Settings
from stats import Stats

log = logging.getLogger("agent")

# Replies streamed at the same time; more wait for a free worker (in order).
MAX_CONCURRENT_REPLIES = 16
# A progress line on the log lane every this many tokens.
PROGRESS_EVERY = 20
# Deltas per request at most, when several were made while the previous request was in flight.
MAX_BATCH = 64
# Waits before sending reply steps again that got no answer (or 503): flowrelay stores a
# resent seq once, so a resend cannot show a token twice.
RETRY_DELAYS_S = (0.1, 0.4, 1.0)


class _Stopped(Exception):
    """The agent is shutting down: the reply ends where it is."""


class _Cancelled(Exception):
    """A client cancelled the reply (the publish proxy's cancel event)."""


class _Reply:
    def __init__(self, reply_id: str, conversation: str):
        self.id = reply_id
        self.conversation = conversation
        self.wake = threading.Event()  # a cancel event or the agent's shutdown
        self.cancelled_by: Optional[str] = None
        self.opened = False
        self.sent = 0  # deltas flowrelay accepted

    def step(self, **fields) -> dict:
        return {"conversation": self.conversation, "reply": self.id, **fields}

    def log_line(self, text: str) -> dict:
        return {"conversation": self.conversation, "lane": "log", "data": f"{self.id}: {text}"}


class ReplyStreamer:
    def __init__(self, settings: Settings, stats: Stats):
        self._settings = settings
        self._stats = stats
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._active: Dict[str, _Reply] = {}  # queued or streaming
        self._pool = ThreadPoolExecutor(MAX_CONCURRENT_REPLIES, thread_name_prefix="reply")

    def start(self, conversation: str, prompt: str) -> str:
        """Queues the reply to `prompt` and returns its id at once."""
        reply = _Reply("r-" + secrets.token_hex(6), conversation)
        with self._lock:
            self._active[reply.id] = reply
        self._stats.count("replies", "started")
        self._pool.submit(self._run, reply, prompt)
        return reply.id

    def cancel(self, conversation: str, reply_id: str, client: str) -> bool:
        """Stops generating `reply_id` (at its next token); False if it is not streaming here."""
        with self._lock:
            reply = self._active.get(reply_id)
            if reply is None or reply.conversation != conversation:
                return False
            reply.cancelled_by = client
            reply.wake.set()
        return True

    def stop(self):
        """Abandons the replies in progress (at their next token) and those not started."""
        self._stopping.set()
        with self._lock:
            for reply in self._active.values():
                reply.wake.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _wait(self, reply: _Reply, seconds: float):
        if reply.wake.wait(max(0.0, seconds)):
            if self._stopping.is_set():
                raise _Stopped("agent shutting down")
            raise _Cancelled(f"cancel event from client {reply.cancelled_by}")

    def _send(self, api: PublishApi, reply: _Reply, items: list, resend: bool):
        for attempt in range(len(RETRY_DELAYS_S) + 1):
            try:
                self._stats.count("steps", "requests")
                return api.post(items)
            except ReplyConflict:
                raise
            except PublishError as e:
                if not resend or not e.retryable or attempt == len(RETRY_DELAYS_S):
                    raise
                self._stats.count("steps", "resent")
                log.warning("%s: sending again after %s", reply.id, e)
                self._wait(reply, RETRY_DELAYS_S[attempt])

    def _stream(self, api: PublishApi, reply: _Reply, prompt: str):
        s = self._settings
        tokens = reply_tokens(prompt, s.reply_tokens)
        delay = s.token_delay_ms / 1000
        # The reply starts once the proxy answer was sent; flowrelayd publishes the prompt
        # when it reads that answer, and this first wait gives it the time to, so that
        # viewers see the prompt before the reply.
        self._wait(reply, delay)
        self._send(api, reply, [reply.log_line("thinking")], resend=False)
        self._send(api, reply, [reply.step(open=True)], resend=True)
        reply.opened = True
        started = time.monotonic()
        while reply.sent < len(tokens):
            # The "model" makes token k at started + k * delay: those it made while the
            # previous request was in flight go together in one batch.
            self._wait(reply, started + (reply.sent + 1) * delay - time.monotonic())
            made = int((time.monotonic() - started) / delay) if delay else len(tokens)
            last = min(len(tokens), reply.sent + MAX_BATCH, max(made, reply.sent + 1))
            seqs = range(reply.sent + 1, last + 1)
            self._send(api, reply, [reply.step(seq=k, delta=tokens[k - 1]) for k in seqs],
                       resend=True)
            self._stats.count("steps", "deltas", len(seqs))
            reply.sent = last
            progress = [reply.log_line(f"{k}/{len(tokens)} tokens")
                        for k in seqs if k % PROGRESS_EVERY == 0]
            if progress:
                self._send(api, reply, progress, resend=False)
        self._send(api, reply, [reply.step(end=True)], resend=True)
        self._send(api, reply, [reply.log_line("done")], resend=False)
        return len(tokens)

    def _end_with_error(self, api: PublishApi, reply: _Reply, text: str):
        """Ends an opened reply with reason error, so that viewers do not wait for it."""
        if not reply.opened:
            return
        try:
            api.post([reply.step(end=True, error=text)])
        except PublishError as e:
            log.warning("%s: could not end it with an error: %s", reply.id, e)

    def _run(self, reply: _Reply, prompt: str):
        s = self._settings
        api = PublishApi(s.api_url, s.api_key, on_connect=self._stats.api_connection_opened)
        outcome, detail = "done", None
        try:
            self._stream(api, reply, prompt)
        except _Cancelled as e:
            # flowrelay sealed it already (the event follows the end): nothing more to send.
            outcome, detail = "cancelled", str(e)
        except ReplyConflict as e:
            detail = str(e)
            if e.ended == "cancelled":  # a client stopped it (no cancel event came first)
                outcome = "cancelled"
            elif e.ended:  # sealed by flowrelay: producer_lost after too long a pause
                outcome = "sealed"
            else:  # a seq flowrelay did not expect: this reply is beyond repair
                outcome = "failed"
                self._end_with_error(api, reply, "the agent lost count of its deltas")
        except _Stopped as e:
            outcome, detail = "stopped", str(e)
            self._end_with_error(api, reply, "the agent stopped")
        except PublishError as e:
            outcome, detail = "failed", str(e)
            self._end_with_error(api, reply, "the agent could not publish")
        except Exception:  # a bug here must not kill the worker silently
            outcome, detail = "failed", "internal error"
            log.exception("%s conversation=%s failed", reply.id, reply.conversation)
            self._end_with_error(api, reply, "internal error")
        finally:
            api.close()
            with self._lock:
                self._active.pop(reply.id, None)
        log.info("%s conversation=%s %d/%d tokens over %d connection(s): %s%s", reply.id,
                 reply.conversation, reply.sent, s.reply_tokens, api.connects, outcome,
                 f" ({detail})" if detail else "")
        self._stats.reply_finished({"reply": reply.id, "conversation": reply.conversation,
                                    "tokens": reply.sent, "connections": api.connects,
                                    "outcome": outcome, "detail": detail})
