"""What one RPC established as it ran (who called, under which purpose, which plan, how much it
returned), gathered for the server's observer, which records the call once its outcome is known.
The layers of a call fill the same dict: the guard, then the servicer."""

from __future__ import annotations

import contextvars

_facts: contextvars.ContextVar[dict | None] = contextvars.ContextVar("cityfed_call_facts",
                                                                     default=None)


def begin() -> contextvars.Token:
    return _facts.set({})


def end(token: contextvars.Token) -> None:
    _facts.reset(token)


def current() -> dict:
    """The facts of the call being handled; outside a call, a dict nobody reads."""
    facts = _facts.get()
    return facts if facts is not None else {}
