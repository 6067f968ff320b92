"""The agent's HTTP side: the three endpoints flowrelayd calls (publish proxy with its cancel
events, connect proxy, presence events), each signed with the shared secret, plus /stats and
/health."""

import json
import logging
import re
import time
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask

import chat_protocol
import signature
from replies import ReplyStreamer
from settings import Settings
from stats import Stats

log = logging.getLogger("agent")

_DEMO_USER = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class Refusal(Exception):
    """Answered as `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str, outcome: str = "refused"):
        super().__init__(message)
        self.status, self.message, self.outcome = status, message, outcome


class AccessLog:
    """One log line per request (ASGI middleware: it sees the status the client got and
    keeps BackgroundTask semantics, a reply starts only after its answer was sent)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.monotonic(), [0]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            state = scope.get("state", {})
            log.info("%s %s %d %s%s %.1fms", scope["method"], scope["path"], status[0],
                     state.get("outcome", "-"), state.get("detail", ""),
                     (time.monotonic() - start) * 1000)


def _field(body: dict, name: str, kind, optional: bool = False):
    value = body.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kind):
        raise Refusal(400, f"'{name}' missing or not a {kind.__name__}", "bad request")
    return value


def _demo_user(cookie_header: Optional[str]) -> Optional[str]:
    for part in (cookie_header or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "demo_user":
            return value.strip('"')
    return None


def create_app(settings: Settings) -> FastAPI:
    stats = Stats()
    streamer = ReplyStreamer(settings, stats)
    app = FastAPI(title="flowrelay example agent", docs_url=None, redoc_url=None)
    app.add_event_handler("shutdown", streamer.stop)

    @app.exception_handler(Refusal)
    async def refused(request: Request, e: Refusal):
        request.state.outcome = e.outcome
        if request.url.path.startswith("/flowrelay/"):
            stats.count(request.url.path.rsplit("/", 1)[1], e.outcome)
        return JSONResponse({"error": e.message}, status_code=e.status)

    async def signed_json(request: Request) -> dict:
        raw = await request.body()
        error = signature.check(settings.secret, request.headers.get("x-flowrelay-timestamp"),
                                request.headers.get("x-flowrelay-signature"), raw)
        if error:
            raise Refusal(401, error, error.replace(" ", "_"))
        try:
            body = json.loads(raw)
        except ValueError:
            raise Refusal(400, "body is not JSON", "bad request") from None
        if not isinstance(body, dict):
            raise Refusal(400, "body is not a JSON object", "bad request")
        return body

    def cancel(request: Request, body: dict):
        """The publish proxy's cancel event: a client stopped a reply, flowrelay sealed it."""
        conversation = _field(body, "conversation", str)
        reply_id = _field(body, "reply", str)
        client = body.get("client") if isinstance(body.get("client"), str) else "-"
        outcome = "stopped" if streamer.cancel(conversation, reply_id, client) else "unknown"
        stats.count("cancel", outcome)
        request.state.outcome = f"cancel {outcome}"
        request.state.detail = f" conversation={conversation} reply={reply_id} client={client}"
        return {}

    @app.post("/flowrelay/publish")
    async def publish(request: Request):
        body = await signed_json(request)
        if body.get("type") == "cancel":
            return cancel(request, body)
        conversation = _field(body, "conversation", str)
        lane = _field(body, "lane", str)
        data = _field(body, "data", str)
        if lane not in ("message", "log"):
            raise Refusal(400, f"unknown lane '{lane}'", "bad request")
        decision = chat_protocol.decide(lane, data)
        stats.count("publish", decision.outcome)
        user = body.get("user") if isinstance(body.get("user"), dict) else {}
        stats.count("users", str(user.get("sub", "(anonymous)")))
        request.state.outcome = decision.outcome
        request.state.detail = (f" conversation={conversation} lane={lane}"
                                f" user={user.get('sub', '-')} client={body.get('client', '-')}")
        task = None
        if decision.prompt is not None:
            task = BackgroundTask(streamer.start, conversation, decision.prompt)
        return JSONResponse(decision.answer, status_code=decision.status, background=task)

    @app.post("/flowrelay/connect")
    async def connect(request: Request):
        body = await signed_json(request)
        conversation = _field(body, "conversation", str)
        cookie = _field(body, "cookie", str, optional=True)
        name = _demo_user(cookie)
        if name == "banned":
            raise Refusal(403, "this demo user is banned", "banned")
        if name is not None and not _DEMO_USER.fullmatch(name):
            raise Refusal(401, "bad demo_user cookie", "bad cookie")
        user = name or "guest"
        stats.count("connect", "admitted")
        request.state.outcome = "admitted"
        request.state.detail = f" conversation={conversation} user={user}"
        return {"user": {"sub": user}, "publish": True}

    @app.post("/flowrelay/events")
    async def events(request: Request):
        body = await signed_json(request)
        batch = _field(body, "events", list)
        for event in batch:
            kind = event.get("type") if isinstance(event, dict) else None
            stats.count("events", kind if kind in ("join", "leave") else "other")
        request.state.outcome = "counted"
        request.state.detail = f" events={len(batch)}"
        return {}

    @app.get("/stats")
    async def get_stats():
        return stats.snapshot()

    @app.get("/health")
    async def health():
        return {"ok": True}

    app.add_middleware(AccessLog)
    return app
