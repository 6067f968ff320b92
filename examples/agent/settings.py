"""The agent's settings, read once from the environment (README.md lists them)."""

import os
from dataclasses import dataclass


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    api_url: str
    api_key: str
    secret: bytes
    token_delay_ms: int
    reply_tokens: int


def read_secret(path: str) -> bytes:
    """The shared HMAC secret: the file's content without its trailing whitespace (the
    newline an editor adds), trimmed as flowrelayd trims `backend.secret_file`."""
    try:
        with open(path, "rb") as f:
            secret = f.read()
    except OSError as e:
        raise ConfigError(f"FLOWRELAY_SECRET_FILE {path}: {e.strerror}") from e
    secret = secret.rstrip()
    if not secret:
        raise ConfigError(f"FLOWRELAY_SECRET_FILE {path} is empty")
    return secret


def _int(env, name: str, default: int, low: int, high: int) -> int:
    text = env.get(name, str(default))
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not an integer") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is outside {low}..{high}")
    return value


def from_env(env=os.environ) -> Settings:
    secret_file = env.get("FLOWRELAY_SECRET_FILE", "")
    if not secret_file:
        raise ConfigError("FLOWRELAY_SECRET_FILE is not set (the daemon's backend.secret_file)")
    api_key = env.get("FLOWRELAY_API_KEY", "")
    if not api_key:
        raise ConfigError("FLOWRELAY_API_KEY is not set (the daemon's http.api_key)")
    return Settings(
        host=env.get("AGENT_HOST", "127.0.0.1"),
        port=_int(env, "AGENT_PORT", 8000, 0, 65535),
        api_url=env.get("FLOWRELAY_API", "http://127.0.0.1:9090").rstrip("/"),
        api_key=api_key,
        secret=read_secret(secret_file),
        token_delay_ms=_int(env, "TOKEN_DELAY_MS", 30, 0, 60000),
        reply_tokens=_int(env, "REPLY_TOKENS", 60, 1, 100000),
    )
