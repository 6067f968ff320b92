"""Streams the agent's replies into conversations through flowrelay's publish API, one
worker thread per reply in progress, each on its own keep-alive connection."""

import json
import logging
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

from publish_api import PublishApi, PublishError
from reply_text import reply_tokens
from settings import Settings
from stats import Stats

log = logging.getLogger("agent")

# Replies streamed at the same time; more wait for a free worker (in order).
MAX_CONCURRENT_REPLIES = 16
# A progress line on the log lane every this many tokens.
PROGRESS_EVERY = 20


class _Stopped(Exception):
    """The agent is shutting down: the reply ends where it is."""


def _json(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class ReplyStreamer:
    def __init__(self, settings: Settings, stats: Stats):
        self._settings = settings
        self._stats = stats
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(MAX_CONCURRENT_REPLIES, thread_name_prefix="reply")

    def start(self, conversation: str, prompt: str) -> str:
        """Queues the reply to `prompt` and returns its id at once."""
        reply_id = "r-" + secrets.token_hex(6)
        self._stats.count("replies", "started")
        self._pool.submit(self._stream, reply_id, conversation, prompt)
        return reply_id

    def stop(self):
        """Abandons the replies in progress (at their next token) and those not started."""
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _pause(self):
        if self._stopping.wait(self._settings.token_delay_ms / 1000):
            raise _Stopped("agent shutting down")

    def _stream(self, reply_id: str, conversation: str, prompt: str):
        s = self._settings
        api = PublishApi(s.api_url, s.api_key, on_connect=self._stats.api_connection_opened)
        tokens = reply_tokens(prompt, s.reply_tokens)
        sent, error = 0, None
        try:
            # The reply starts once the proxy answer was sent; flowrelayd publishes the
            # prompt when it reads that answer, and this first wait gives it the time to, so
            # that viewers see the prompt before the reply.
            self._pause()
            api.publish(conversation, f"{reply_id}: thinking", lane="log")
            for seq, token in enumerate(tokens, 1):
                self._pause()
                api.publish(conversation, _json({"role": "assistant", "reply": reply_id,
                                                 "seq": seq, "delta": token}))
                sent = seq
                if seq % PROGRESS_EVERY == 0:
                    api.publish(conversation, f"{reply_id}: {seq}/{len(tokens)} tokens",
                                lane="log")
            api.publish(conversation, _json({"role": "assistant", "reply": reply_id,
                                             "seq": len(tokens) + 1, "end": True,
                                             "tokens": len(tokens)}))
            api.publish(conversation, f"{reply_id}: done", lane="log")
        except (PublishError, _Stopped) as e:
            # Not retried: flowrelay may have published the message before the connection
            # failed, and a resend would show the token twice.
            error = str(e)
            log.warning("%s conversation=%s stopped after %d/%d tokens: %s",
                        reply_id, conversation, sent, len(tokens), error)
        except Exception:  # a bug here must not kill the worker silently
            error = "internal error"
            log.exception("%s conversation=%s failed", reply_id, conversation)
        finally:
            api.close()
        log.info("%s conversation=%s %d/%d tokens over %d connection(s)%s", reply_id,
                 conversation, sent, len(tokens), api.connects, f": {error}" if error else "")
        self._stats.reply_finished({"reply": reply_id, "conversation": conversation,
                                    "tokens": sent, "connections": api.connects,
                                    "ok": error is None, "error": error})
