"""The demo chat's protocol in message `data` (README.md): what the agent answers to each
client message the publish proxy forwards, and whether it starts a reply."""

import json
from dataclasses import dataclass
from typing import Optional

REJECT_COMMAND = "/reject"
PRIVATE_PREFIX = "/private "


@dataclass(frozen=True)
class Decision:
    status: int
    answer: dict
    outcome: str  # for the log line and /stats
    prompt: Optional[str] = None  # a reply to stream, once the answer was sent


def _user_message(data: str):
    """The prompt of a `{"role":"user","text":...}` object; None for plain text; raises
    ValueError for any other JSON object (clients may not speak for the assistant)."""
    if not data.lstrip().startswith("{"):
        return None
    try:
        obj = json.loads(data)
    except ValueError:
        return None  # text that merely starts with "{": a plain prompt
    if not isinstance(obj, dict):
        return None
    if obj.get("role") != "user" or not isinstance(obj.get("text"), str):
        raise ValueError("only {\"role\":\"user\",\"text\":...} objects may be sent")
    return obj["text"]


def decide(lane: str, data: str) -> Decision:
    if lane == "log":
        return Decision(200, {}, "log")
    try:
        prompt = _user_message(data)
    except ValueError as e:
        return Decision(422, {"error": str(e)}, "refused")
    rewrite = prompt is None
    text = data if rewrite else prompt
    if text.strip() == REJECT_COMMAND:
        return Decision(422, {"error": "rejected by the agent"}, "rejected")
    if text.startswith(PRIVATE_PREFIX):
        return Decision(200, {"publish": False}, "private")
    if not text.strip():
        return Decision(422, {"error": "empty prompt"}, "refused")
    if rewrite:
        data = json.dumps({"role": "user", "text": text}, separators=(",", ":"),
                          ensure_ascii=False)
        return Decision(200, {"data": data}, "rewritten", prompt=text)
    return Decision(200, {}, "accepted", prompt=text)
