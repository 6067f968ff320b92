"""The demo agent's "model": a reply that depends only on the prompt and its length, so that
tests (and anyone reading the demo) can predict every token."""

from itertools import cycle, islice
from typing import List

_LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud "
    "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat."
).split()


def reply_tokens(prompt: str, n: int) -> List[str]:
    """The n tokens of the reply to `prompt`: the words of "You said: <prompt>." then the
    lorem text, repeated as needed. Every token but the first carries its leading space, so
    the reply is the tokens joined with ""."""
    words = f"You said: {prompt}.".split()
    stream = words + list(islice(cycle(_LOREM), max(0, n - len(words))))
    return [w if i == 0 else " " + w for i, w in enumerate(stream[:max(0, n)])]
