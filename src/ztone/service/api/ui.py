"""The web UI: static pages under ``/app/``, logins, and session-authenticated API calls.

:class:`UiGate` is the API server's handler in front of the
:class:`~ztone.service.api.routes.ApiRouter`:

* ``/app`` and ``/app/...`` are reachable only from where the API is (loopback and
  ``allowManagementFrom``, the same :func:`~.routes.ip_allowed`); from elsewhere
  ``401``. ``GET /app/`` is the UI (``index.html``), ``GET /app/<file>`` its files
  from the package's ``ui_static`` folder (fixed names, no path from the request
  reaches the file system).
* ``POST /app/session`` ``{"code": "<login code>"}`` exchanges a one-time login code
  (:mod:`.ui_session`) for a session: ``Set-Cookie: ztone_session=...; HttpOnly;
  SameSite=Strict; Path=/; Max-Age=...`` and ``{"csrf": "<token>"}``. ``GET
  /app/session`` gives the CSRF token again to a page holding the cookie (a reload);
  ``DELETE /app/session`` logs out.
* Any other request is the API's. One carrying a token (``X-ZT1-Auth``, ``?auth=``,
  ``Authorization``) goes to the router untouched: the token rules are unchanged. One
  carrying only a live session cookie is let in as if it held the auth token, but a
  state-changing one (any method but GET/HEAD/OPTIONS) must also carry the session's
  CSRF token in ``X-ZTone-CSRF``, or it is refused ``403 {"error": ...}``.
* ``POST /ui/login-code`` (a router route, so it needs the auth token itself; a
  session cannot make codes) answers ``{"code": ..., "expiresIn": <s>}``.

Upstream's convention beside it: with ``enableWebServer`` (local.conf) on, a ``GET
/app/<path>`` that is not one of the UI's own names is a static file under
``<home>/app`` (zerotier-one serves that folder under ``/app``); the UI's names
(``/app/``, ``index.html``, ``app.css``, ``app.js``, ``session``) come first, so apps
kept in sub-folders (``<home>/app/<name>/...``) are served as upstream serves them.
Only regular files inside that folder (symbolic links resolved, ``..`` refused), at
most ``MAX_HOME_APP_FILE`` bytes; answered without the UI's security headers, as
upstream's server sends them.

Every ``/app`` answer of the UI is ``Cache-Control: no-store`` with a Content-Security-Policy
allowing only the page's own files (no inline script, no other origin, no framing).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from ztone.service.api import render
from ztone.service.api.http import Request, Response
from ztone.service.api.routes import (
    AccessPolicy,
    ApiControl,
    Reply,
    Route,
    ip_allowed,
    json_reply,
    route,
)
from ztone.service.api.ui_session import Session, UiSessions

COOKIE = "ztone_session"
CSRF_HEADER = "x-ztone-csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_SOURCES = ("x-zt1-auth", "authorization")
MAX_HOME_APP_FILE = 16 * 1024 * 1024

STATIC_FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
}

_SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    ),
)


def static_file(name: str) -> bytes:
    """A file of the UI shipped in the package (``ui_static/<name>``)."""
    # Loaded on the first page served: importlib.resources brings zipfile, tempfile and
    # shutil, which a daemon nobody browses never needs (bench/memory.py).
    import importlib.resources  # noqa: PLC0415

    return (importlib.resources.files("ztone.service.api") / "ui_static" / name).read_bytes()


def _json(status: int, value: object, *extra: tuple[str, str]) -> Response:
    body = json_reply(value, status).content.encode("utf-8")
    return Response(status, body, "application/json", headers=(*_SECURITY_HEADERS, *extra))


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": message})


def _carries_token(request: Request) -> bool:
    return any(h in request.headers for h in TOKEN_SOURCES) or "auth" in request.query


def session_cookie_value(request: Request) -> str | None:
    """The ``ztone_session`` cookie's value, if the request has a parseable one."""
    raw = request.headers.get("cookie")
    if not raw:
        return None
    import http.cookies  # noqa: PLC0415 (only for requests with cookies: the web UI's)

    jar = http.cookies.SimpleCookie()
    try:
        jar.load(raw)
    except http.cookies.CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


class UiGate:
    """The API server's handler: the UI's own paths, then the router (module docstring)."""

    def __init__(
        self,
        router: Callable[[Request], Awaitable[Response]],
        policy: AccessPolicy,
        sessions: UiSessions,
        home_app: Callable[[], Path | None] = lambda: None,
    ) -> None:
        """``home_app`` gives ``<home>/app`` while ``enableWebServer`` is on, else None."""
        self._router = router
        self._policy = policy
        self.sessions = sessions
        self._home_app = home_app

    async def __call__(self, request: Request) -> Response:
        if request.path == "/app" or request.path.startswith("/app/"):
            if not ip_allowed(request.peer_ip, self._policy.allow_management_from):
                return dataclasses.replace(_error(401, "not allowed from this address"), close=True)
            return self._app(request)
        if _carries_token(request):
            return await self._router(request)
        session = self._session(request)
        if session is None:
            return await self._router(request)  # refused there (401) unless a free path
        if request.path == "/ui/login-code":
            return _error(403, "login codes are made with the auth token, not a session")
        if request.method not in SAFE_METHODS and not session.csrf_ok(
            request.headers.get(CSRF_HEADER, "")
        ):
            return _error(403, "missing or wrong CSRF token (reload the page)")
        headers = {**request.headers, "x-zt1-auth": self._policy.auth_token}
        return await self._router(dataclasses.replace(request, headers=headers))

    def _session(self, request: Request) -> Session | None:
        value = session_cookie_value(request)
        if value is None or not ip_allowed(request.peer_ip, self._policy.allow_management_from):
            return None
        return self.sessions.lookup(value)

    def _app(self, request: Request) -> Response:
        path = request.path
        if path == "/app/session":
            return self._session_call(request)
        if request.method not in ("GET", "HEAD"):
            return _error(405, "method not allowed")
        if path == "/app":
            return Response(301, b"", "text/plain", headers=(("Location", "/app/"),))
        name = path[len("/app/") :] or "index.html"
        content_type = STATIC_FILES.get(name)
        if content_type is None:
            found = self._home_app_file(name)
            if found is not None:
                return found
            return _error(404, f"no such file in the UI: {name}")
        return Response(200, static_file(name), content_type, headers=_SECURITY_HEADERS)

    def _home_app_file(self, name: str) -> Response | None:
        """``<home>/app/<name>`` (module docstring), or None if not served."""
        root = self._home_app()
        if root is None or not name or "\0" in name:
            return None
        try:
            base = root.resolve(strict=True)
            target = (base / name).resolve(strict=True)
            if not target.is_relative_to(base) or not target.is_file():
                return None
            if target.stat().st_size > MAX_HOME_APP_FILE:
                return _error(413, f"{name} is larger than {MAX_HOME_APP_FILE} bytes")
            data = target.read_bytes()
        except (OSError, ValueError, RuntimeError):
            return None
        import mimetypes  # noqa: PLC0415 (only for <home>/app files)

        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return Response(200, data, content_type)

    def _session_call(self, request: Request) -> Response:
        if request.method == "POST":
            code = _code_of(request.body)
            session = self.sessions.redeem(code) if code else None
            if session is None:
                return _error(403, "this login link is invalid, used or expired: run ztone-cli ui")
            cookie = (
                f"{COOKIE}={session.session_id}; HttpOnly; SameSite=Strict; Path=/; "
                f"Max-Age={int(self.sessions.session_ttl)}"
            )
            return _json(200, {"csrf": session.csrf}, ("Set-Cookie", cookie))
        session = self._session(request)
        if session is None:
            return _error(401, "not logged in: run ztone-cli ui for a login link")
        if request.method in ("GET", "HEAD"):
            return _json(200, {"csrf": session.csrf})
        if request.method == "DELETE":
            if not session.csrf_ok(request.headers.get(CSRF_HEADER, "")):
                return _error(403, "missing or wrong CSRF token (reload the page)")
            self.sessions.end(session.session_id)
            gone = f"{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
            return _json(200, {"result": True}, ("Set-Cookie", gone))
        return _error(405, "method not allowed")


_CODE = re.compile(r'\{\s*"code"\s*:\s*"([A-Za-z0-9_-]{1,100})"\s*\}')


def _code_of(body: bytes) -> str | None:
    """The code of a ``{"code": "..."}`` body (codes are URL-safe base64), else None."""
    match = _CODE.fullmatch(body.decode("utf-8", errors="replace").strip())
    return match.group(1) if match is not None else None


def ui_routes(
    sessions: UiSessions, last_requests: Callable[[int], dict[int, int]] | None
) -> list[Route]:
    """The UI's own API routes (they need the auth token, or a session):

    * ``POST /ui/login-code``: ``{"code": ..., "expiresIn": <s>}``, a one-time login
      code (the gate refuses this one to sessions: only token holders make codes);
    * ``GET /ui/member-status/<nwid>`` (only with a controller): what the controller
      knows of each member beyond its record, ``{"<10 hex>": {"lastSeen": <ms since
      the epoch>, "physicalAddress": "<ip/port>" | null}}`` for members that asked
      for a config within the online window; the physical address is the preferred
      path of this node's peer of that address.
    """

    def login_code(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
        return json_reply({"code": sessions.new_code(), "expiresIn": int(sessions.code_ttl)})

    def member_status(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
        assert last_requests is not None
        seen = last_requests(int(match.group(1), 16))
        physical: dict[int, str] = {}
        for peer in control.peers():
            if peer.address in seen:
                for path in peer.paths:
                    if path.preferred:
                        physical[peer.address] = str(render.path_json(path)["address"])
        return json_reply(
            {
                f"{addr:010x}": {"lastSeen": when, "physicalAddress": physical.get(addr)}
                for addr, when in sorted(seen.items())
            }
        )

    routes = [route("POST", "/ui/login-code", login_code)]
    if last_requests is not None:
        routes.append(route("GET", "/ui/member-status/([0-9a-fA-F]{16})", member_status))
    return routes
