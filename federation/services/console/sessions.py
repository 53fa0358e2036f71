"""Logged-in sessions: a random id in an HttpOnly, SameSite=Strict cookie, a CSRF token per
session, an idle and an absolute expiry; and a brake on password guessing."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

IDLE_SECONDS = 15 * 60
ABSOLUTE_SECONDS = 8 * 3600
# After this many failed logins of one name within the window, that name waits out the window.
MAX_FAILURES = 5
FAILURE_WINDOW = 300.0


@dataclass
class Session:
    id: str
    user: str
    csrf: str
    created: float
    seen: float


@dataclass
class Sessions:
    idle_seconds: float = IDLE_SECONDS
    absolute_seconds: float = ABSOLUTE_SECONDS
    clock: object = time.monotonic
    _sessions: dict[str, Session] = field(default_factory=dict)
    _failures: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, user: str) -> Session:
        now = self.clock()
        session = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._sessions[session.id] = session
            self._failures.pop(user, None)
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id (its idle time restarts), or None."""
        if not session_id:
            return None
        now = self.clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if (now - session.seen > self.idle_seconds
                    or now - session.created > self.absolute_seconds):
                del self._sessions[session_id]
                return None
            session.seen = now
            return session

    def end(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)

    def may_try(self, user: str) -> bool:
        now = self.clock()
        with self._lock:
            recent = [t for t in self._failures.get(user, []) if now - t < FAILURE_WINDOW]
            self._failures[user] = recent
            return len(recent) < MAX_FAILURES

    def failed(self, user: str) -> None:
        with self._lock:
            self._failures.setdefault(user, []).append(self.clock())
