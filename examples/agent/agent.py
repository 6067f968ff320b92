#!/usr/bin/python3
"""flowrelay's example agent: the backend of the publish proxy, streaming demo replies.
Run: /usr/bin/python3 examples/agent/agent.py (settings from the environment, README.md)."""

import logging
import sys

import uvicorn

import settings
from app import create_app


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s agent: %(message)s")
    try:
        s = settings.from_env()
    except settings.ConfigError as e:
        print(f"agent: {e}", file=sys.stderr)
        return 2
    logging.getLogger("agent").info("listening on http://%s:%d, publishing to %s", s.host,
                                    s.port, s.api_url)
    # uvicorn's own access log is off: AccessLog writes one line per request with the outcome.
    uvicorn.run(create_app(s), host=s.host, port=s.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
