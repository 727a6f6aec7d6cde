"""The web UI's gate (ztone.service.api.ui) and its logins (ui_session), in process.

The gate sits in front of a real ApiRouter with the node routes' auth rules; requests
are built directly, with any source address.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import json
import re
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ztone.cli import cli
from ztone.service.api.http import ApiServer, Request, Response
from ztone.service.api.routes import ApiControl, ApiRouter, Reply, route
from ztone.service.api.ui import COOKIE, UiGate, static_file, ui_routes
from ztone.service.api.ui_session import UiSessions

TOKEN = "0123456789abcdefghijklmn"


@dataclass
class Control:
    auth_token: str = TOKEN
    metrics_token: str = ""
    allow_management_from: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(
        default_factory=lambda: [ipaddress.ip_network("198.18.5.0/24")]
    )
    changes: int = 0

    def peers(self) -> list[object]:
        return []


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _gate(clock: Clock | None = None) -> tuple[UiGate, Control, UiSessions]:
    control = Control()
    sessions = UiSessions(clock=clock or Clock())

    def change(c: ApiControl, request: Request, match: re.Match[str]) -> Reply:
        control.changes += 1
        return Reply(200, '{"changed":true}')

    def read(c: ApiControl, request: Request, match: re.Match[str]) -> Reply:
        return Reply(200, '{"read":true}')

    extra = [route("POST DELETE", "/thing", change), route("GET", "/thing", read)]
    extra += ui_routes(sessions, lambda nwid: {0x1122334455: 5})
    router = ApiRouter(control, routes=[], extra_routes=extra)  # type: ignore[arg-type]
    return UiGate(router, control, sessions), control, sessions


def call(gate: UiGate, method: str, path: str, *, ip: str = "127.0.0.1", body: bytes = b"",
         headers: dict[str, str] | None = None) -> Response:  # fmt: skip
    request = Request(method, path, {}, headers or {}, body, ipaddress.ip_address(ip))
    return asyncio.run(gate(request))


def body(r: Response) -> dict[str, object]:
    value = json.loads(r.body)
    assert isinstance(value, dict)
    return value


def login(gate: UiGate) -> tuple[str, str]:
    """(cookie header, csrf) of a fresh session opened with a code made by the token."""
    r = call(gate, "POST", "/ui/login-code", headers={"x-zt1-auth": TOKEN})
    assert r.status == 200
    code = body(r)["code"]
    r = call(gate, "POST", "/app/session", body=json.dumps({"code": code}).encode())
    assert r.status == 200, r.body
    cookie = dict(r.headers)["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=28800" in cookie
    return cookie.split(";", 1)[0], str(body(r)["csrf"])


def test_static_files_served_from_the_package_with_a_strict_policy() -> None:
    gate, _, _ = _gate()
    r = call(gate, "GET", "/app/")
    assert r.status == 200 and r.content_type.startswith("text/html")
    assert r.body == static_file("index.html") and b"/app/app.js" in r.body
    headers = dict(r.headers)
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["Cache-Control"] == "no-store"
    assert call(gate, "GET", "/app/app.js").content_type.startswith("text/javascript")
    assert call(gate, "GET", "/app").status == 301
    assert call(gate, "GET", "/app/../authtoken.secret").status == 404
    assert call(gate, "GET", "/app/nothing.js").status == 404


def test_ui_only_where_the_api_is() -> None:
    gate, _, _ = _gate()
    assert call(gate, "GET", "/app/", ip="::1").status == 200
    assert call(gate, "GET", "/app/", ip="198.18.5.7").status == 200  # allowManagementFrom
    r = call(gate, "GET", "/app/", ip="198.18.6.7")
    assert r.status == 401 and r.close


def test_login_code_needs_the_token_and_works_once() -> None:
    gate, _, sessions = _gate()
    assert call(gate, "POST", "/ui/login-code").status == 401
    r = call(gate, "POST", "/ui/login-code", headers={"x-zt1-auth": TOKEN})
    code = str(body(r)["code"])
    assert body(r)["expiresIn"] == 120 and len(code) >= 40
    first = call(gate, "POST", "/app/session", body=json.dumps({"code": code}).encode())
    assert first.status == 200
    again = call(gate, "POST", "/app/session", body=json.dumps({"code": code}).encode())
    assert again.status == 403 and "invalid, used or expired" in str(body(again)["error"])
    for bad in (b"", b"{}", b'{"code": 5}', b"not json", b'{"code": "x"}'):
        assert call(gate, "POST", "/app/session", body=bad).status == 403
    assert len(sessions) == 1


def test_code_expires() -> None:
    clock = Clock()
    _, _, sessions = _gate(clock)
    code = sessions.new_code()
    clock.now += 121
    assert sessions.redeem(code) is None


def test_session_expires_and_tables_are_bounded() -> None:
    clock = Clock()
    sessions = UiSessions(clock=clock, max_codes=3, max_sessions=2, session_ttl=10)
    codes = [sessions.new_code() for _ in range(5)]
    assert sessions.pending_codes == 3
    assert sessions.redeem(codes[0]) is None  # dropped as the oldest
    opened = [sessions.redeem(c) for c in codes[2:]]
    assert all(s is not None for s in opened) and len(sessions) == 2
    assert opened[0] is not None and sessions.lookup(opened[0].session_id) is None
    assert opened[2] is not None and sessions.lookup(opened[2].session_id) is not None
    clock.now += 11
    assert sessions.lookup(opened[2].session_id) is None and len(sessions) == 1


def test_session_cookie_reads_and_csrf_guards_changes() -> None:
    gate, control, _ = _gate()
    cookie, csrf = login(gate)
    assert call(gate, "GET", "/thing").status == 401  # no cookie
    assert body(call(gate, "GET", "/thing", headers={"cookie": cookie})) == {"read": True}
    # state-changing: the CSRF token is required and must match
    r = call(gate, "POST", "/thing", headers={"cookie": cookie})
    assert r.status == 403 and "CSRF" in str(body(r)["error"])
    r = call(gate, "DELETE", "/thing", headers={"cookie": cookie, "x-ztone-csrf": csrf + "x"})
    assert r.status == 403 and control.changes == 0
    r = call(gate, "POST", "/thing", headers={"cookie": cookie, "x-ztone-csrf": csrf})
    assert r.status == 200 and control.changes == 1
    # a wrong cookie is no session; the token rules are unchanged
    assert call(gate, "POST", "/thing", headers={"cookie": f"{COOKIE}=nope"}).status == 401
    assert call(gate, "POST", "/thing", headers={"x-zt1-auth": TOKEN}).status == 200
    bad_token = {"cookie": cookie, "x-zt1-auth": "bad"}
    assert call(gate, "POST", "/thing", headers=bad_token).status == 401
    # a session cannot make login codes; a session from a foreign address is none
    with_csrf = {"cookie": cookie, "x-ztone-csrf": csrf}
    assert call(gate, "POST", "/ui/login-code", headers=with_csrf).status == 403
    assert call(gate, "GET", "/thing", ip="198.18.6.1", headers={"cookie": cookie}).status == 401
    garbage = {"cookie": 'garbage="; ztone_session'}
    assert call(gate, "GET", "/thing", headers=garbage).status == 401


def test_reload_gets_the_csrf_token_and_logout_ends_the_session() -> None:
    gate, _, sessions = _gate()
    cookie, csrf = login(gate)
    assert body(call(gate, "GET", "/app/session", headers={"cookie": cookie})) == {"csrf": csrf}
    assert call(gate, "GET", "/app/session").status == 401
    assert call(gate, "DELETE", "/app/session", headers={"cookie": cookie}).status == 403
    r = call(gate, "DELETE", "/app/session", headers={"cookie": cookie, "x-ztone-csrf": csrf})
    assert r.status == 200 and "Max-Age=0" in dict(r.headers)["Set-Cookie"] and len(sessions) == 0
    assert call(gate, "GET", "/thing", headers={"cookie": cookie}).status == 401


def test_member_status_route() -> None:
    gate, _, _ = _gate()
    r = call(gate, "GET", "/ui/member-status/1122334455000001", headers={"x-zt1-auth": TOKEN})
    assert body(r) == {"1122334455": {"lastSeen": 5, "physicalAddress": None}}


def test_cli_ui_link_logs_in_over_http() -> None:
    """``ztone-cli ui`` against a real ApiServer: its link's code opens a session once."""
    gate, _, _ = _gate()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    server = ApiServer(gate)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(["127.0.0.1"], 0), loop).result(10)
        port = server.bound[0][1]
        out, err = io.StringIO(), io.StringIO()
        assert cli.main([f"-p{port}", f"-T{TOKEN}", "ui"], stdout=out, stderr=err) == 0
        match = re.search(
            r"http://127\.0\.0\.1:(\d+)/app/#login=([A-Za-z0-9_-]+)\n", out.getvalue()
        )
        assert match is not None and int(match.group(1)) == port, out.getvalue()
        assert "works once, for 120 s" in out.getvalue()

        def post_code() -> tuple[int, str]:
            data = json.dumps({"code": match.group(2)}).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/app/session", data=data, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as r:
                    return r.status, r.headers.get("Set-Cookie", "")
            except urllib.error.HTTPError as e:
                return e.code, ""

        status, cookie = post_code()
        assert status == 200 and cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie
        assert post_code()[0] == 403
        # without the token, no link
        out = io.StringIO()
        assert cli.main([f"-p{port}", "-Twrong", "ui"], stdout=out, stderr=err) == 1
        assert out.getvalue().startswith("401 ui")
    finally:

        async def stop() -> None:
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_home_app_served_beside_the_ui_when_enabled(tmp_path: Path) -> None:
    control = Control()
    sessions = UiSessions()
    router = ApiRouter(control, routes=[], extra_routes=[])  # type: ignore[arg-type]
    enabled = [False]
    app = tmp_path / "app"
    (app / "tool").mkdir(parents=True)
    (app / "tool" / "page.html").write_text("<p>mine</p>")
    (app / "index.html").write_text("theirs")
    (tmp_path / "secret.txt").write_text("no")
    (app / "link").symlink_to(tmp_path / "secret.txt")
    gate = UiGate(router, control, sessions, lambda: app if enabled[0] else None)
    assert call(gate, "GET", "/app/tool/page.html").status == 404  # enableWebServer off
    enabled[0] = True
    r = call(gate, "GET", "/app/tool/page.html")
    assert (r.status, r.body, r.content_type) == (200, b"<p>mine</p>", "text/html")
    assert call(gate, "GET", "/app/").body == static_file("index.html")  # the UI first
    for bad in ("/app/../secret.txt", "/app/link", "/app/tool", "/app/tool/none.html"):
        assert call(gate, "GET", bad).status == 404, bad
    assert call(gate, "GET", "/app/tool/page.html", ip="198.18.6.1").status == 401
