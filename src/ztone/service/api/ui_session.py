"""Web UI logins: one-time login codes and the sessions they open.

``ztone-cli ui`` asks the API (with the auth token) for a login code and prints a
link holding it in the URL's fragment (never sent to the server, and removed from the
page's history entry by the UI). The UI posts the code once to ``/app/session`` and
gets a session cookie and a CSRF token in exchange.

=====================  ========  ==================================================
table / lifetime       bound     when it is hit
=====================  ========  ==================================================
login codes            16        a new code drops the oldest one
code lifetime          120 s     an older code is refused; a code works once
sessions               32        a new session ends the one used least recently
session lifetime       8 h       from the login, not extended by use
=====================  ========  ==================================================

Codes, session ids and CSRF tokens are 32 random bytes (``secrets``), compared in
constant time. Only holders of the auth token can make codes, and only code holders
can open sessions, so the tables grow only by a local administrator's action; the
bounds keep a runaway script from growing them anyway.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_LOGIN_CODES = 16
LOGIN_CODE_TTL = 120.0
MAX_SESSIONS = 32
SESSION_TTL = 8 * 3600.0


@dataclass(frozen=True, slots=True)
class Session:
    """An open UI session: the cookie's value, the CSRF token, its end (monotonic s)."""

    session_id: str
    csrf: str
    expires: float

    def csrf_ok(self, presented: str) -> bool:
        return hmac.compare_digest(presented.encode("utf-8"), self.csrf.encode("utf-8"))


class UiSessions:
    """The login codes and sessions of one daemon (all in memory, none survive it)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        token: Callable[[], str] = lambda: secrets.token_urlsafe(32),
        max_codes: int = MAX_LOGIN_CODES,
        code_ttl: float = LOGIN_CODE_TTL,
        max_sessions: int = MAX_SESSIONS,
        session_ttl: float = SESSION_TTL,
    ) -> None:
        self._clock = clock
        self._token = token
        self._max_codes = max_codes
        self.code_ttl = code_ttl
        self._max_sessions = max_sessions
        self.session_ttl = session_ttl
        self._codes: OrderedDict[str, float] = OrderedDict()  # code -> expiry
        self._sessions: OrderedDict[str, Session] = OrderedDict()  # least recent first

    def __len__(self) -> int:
        return len(self._sessions)

    @property
    def pending_codes(self) -> int:
        return len(self._codes)

    def new_code(self) -> str:
        """A fresh single-use login code, valid for ``code_ttl`` seconds."""
        code = self._token()
        self._codes[code] = self._clock() + self.code_ttl
        while len(self._codes) > self._max_codes:
            self._codes.popitem(last=False)
        return code

    def redeem(self, code: str) -> Session | None:
        """Open a session for ``code`` (which is used up); None if unknown or expired."""
        now = self._clock()
        found: str | None = None
        for known in self._codes:
            if hmac.compare_digest(known.encode("utf-8"), code.encode("utf-8")):
                found = known
        if found is None:
            return None
        expiry = self._codes.pop(found)
        if now >= expiry:
            return None
        session = Session(self._token(), self._token(), now + self.session_ttl)
        self._sessions[session.session_id] = session
        while len(self._sessions) > self._max_sessions:
            self._sessions.popitem(last=False)
        return session

    def lookup(self, session_id: str) -> Session | None:
        """The live session with this cookie value, or None (an expired one is ended)."""
        session = self._sessions.get(session_id)
        if session is None or not hmac.compare_digest(
            session.session_id.encode("utf-8"), session_id.encode("utf-8")
        ):
            return None
        if self._clock() >= session.expires:
            del self._sessions[session_id]
            return None
        self._sessions.move_to_end(session_id)
        return session

    def end(self, session_id: str) -> bool:
        return self._sessions.pop(session_id, None) is not None
