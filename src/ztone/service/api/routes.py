"""The local JSON API: authentication and the route table (PROTOCOL-NETWORK-SERVICE C.2).

:class:`ApiRouter` is the :class:`~ztone.service.api.http.ApiServer` handler. For
every request it first runs the reference's ``authCheck`` (C.2.2), then finds the
first route whose method set holds the request's method and whose pattern matches
the whole (decoded) path; no route gives ``404 {}``. The daemon's state is reached
only through an :class:`ApiControl`.

Routes are plain :class:`Route` values grouped in lists (:data:`NODE_ROUTES`,
:data:`PEER_ROUTES`, :data:`MOON_ROUTES`, :data:`NETWORK_ROUTES`); :func:`default_routes`
joins them. The virtual network endpoints (``/network``...) and the controller's are
not served yet: they go into :data:`NETWORK_ROUTES` (or ``extra_routes``) later.

Bodies are compact nlohmann-style JSON (sorted keys); an empty body becomes ``{}`` and
``?jsonp=<fn>`` wraps it as ``<fn>(<json>);`` (``application/javascript``), as the
reference's ``setContent`` does. A ``401`` closes the connection (see :mod:`.http`).

Errors, the same for every route: a request body is read only by
:func:`parse_json_body` (:mod:`ztone.service.strict_json`: UTF-8, valid JSON, finite
numbers, no unpaired surrogates, at most 64 levels deep), and a route refuses bad
input by raising :class:`BadRequest`: both give ``400 {"error": "..."}`` and change
nothing. Anything else a route raises is a bug; it goes on to the server's single
handler (``500``, logged once per kind). Deviation: the reference answers bad JSON
with ``500`` or ignores it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Protocol

import msgspec

from ztone.node.status import MoonStatus, NodeStatus, PeerStatus
from ztone.service import strict_json
from ztone.service.api import render
from ztone.service.api.http import IPAddress, Request, Response
from ztone.util.ctext import strtoull
from ztone.util.jsontext import json_string
from ztone.util.schema import parse_with, validate

log = logging.getLogger(__name__)

ManagementNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ApiControl(Protocol):
    """What the API needs from the daemon (implemented by the service)."""

    auth_token: str
    metrics_token: str
    allow_management_from: list[ipaddress.IPv4Network | ipaddress.IPv6Network]

    def node_status(self) -> NodeStatus: ...

    # The augmented "config.settings" object of /status (primaryPort, secondaryPort,
    # tertiaryPort, homeDir, listeningOn, surfaceAddresses, allowTcpFallbackRelay,
    # forceTcpRelay, portMappingEnabled, softwareUpdate, softwareUpdateChannel, plus
    # whatever local.conf settings hold), ready-made by the daemon.
    def service_settings(self) -> dict[str, object]: ...

    def local_conf(self) -> dict[str, object]: ...  # raw local.conf JSON ({} if none)

    # Validate like a read of local.conf, then write; ValueError naming the key if
    # invalid (nothing written). Called on a worker thread.
    def update_settings(self, changes: dict[str, object]) -> None: ...

    def peers(self) -> list[PeerStatus]: ...

    def moons(self) -> list[MoonStatus]: ...

    def orbit(self, world_id: int, seed: int) -> None: ...

    def deorbit(self, world_id: int) -> None: ...

    def tcp_fallback_active(self) -> bool: ...

    def metrics_text(self) -> str | None: ...


# --- replies -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """A route's answer. With ``content_type`` None the content is JSON text and goes
    through ``setContent`` (empty -> ``{}``, jsonp); otherwise it is sent as is."""

    status: int
    content: str
    content_type: str | None = None


def json_reply(value: object, status: int = 200) -> Reply:
    return Reply(status, render.dump_compact(value))


def error_reply(status: int, message: str) -> Reply:
    return json_reply({"error": message}, status)


EMPTY = Reply(200, "{}")


def set_content(request: Request, status: int, content: str) -> Response:
    """The reference's ``setContent``: jsonp wrapping and the ``{}`` default body."""
    fn = request.query.get("jsonp")
    if fn is not None:
        text = f"{fn}({content});" if content else f"{fn}(null);"
        return Response(status, text.encode("utf-8"), "application/javascript")
    return Response(status, (content or "{}").encode("utf-8"), "application/json")


def parse_json_body(request: Request) -> object:
    """The request body as JSON (:func:`ztone.service.strict_json.loads`);
    :class:`BadRequest` saying what is wrong and where if it is not acceptable."""
    try:
        return strict_json.loads(request.body)
    except strict_json.JsonError as e:
        raise BadRequest(f"request body is not valid JSON: {e}") from None


class BadRequest(Exception):
    """Raised by a route: ``400 {"error": <message>}``, nothing changed."""


# --- C strtoull ----------------------------------------------------------------------------


# --- authentication -------------------------------------------------------------------------

NO_AUTH_PATHS = frozenset({"/sso", "/health"})


def bearer_token_valid(header: str, token: str) -> bool:
    """``Authorization: Bearer <token>``: exactly two space-separated parts (runs of
    spaces count as one), the scheme compared case-insensitively."""
    parts = [p for p in header.split(" ") if p]
    return len(parts) == 2 and parts[0].lower() == "bearer" and parts[1] == token


def _presented_token_ok(request: Request, tokens: Sequence[str]) -> bool:
    """Only the first present source counts: X-ZT1-Auth, else ?auth=, else Bearer."""
    if "x-zt1-auth" in request.headers:
        return request.headers["x-zt1-auth"] in tokens
    if "auth" in request.query:
        return request.query["auth"] in tokens
    if "authorization" in request.headers:
        header = request.headers["authorization"]
        return any(bearer_token_valid(header, t) for t in tokens)
    return False


def is_loopback(ip: IPAddress) -> bool:
    """127.0.0.0/8, ::1 and IPv4-mapped 127.x."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def ip_allowed(ip: IPAddress, allowed: Iterable[ManagementNetwork]) -> bool:
    if is_loopback(ip):
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in allowed if net.version == ip.version)


class AccessPolicy(Protocol):
    """What authentication reads (an :class:`ApiControl` is one)."""

    @property
    def auth_token(self) -> str: ...

    @property
    def metrics_token(self) -> str: ...

    @property
    def allow_management_from(self) -> Sequence[ManagementNetwork]: ...


def authorized(control: AccessPolicy, request: Request) -> bool:
    """The reference's ``authCheck`` pre-routing handler (C.2.2)."""
    if request.path == "/metrics":
        # Auth token or metrics token, from any source address.
        tokens = [t for t in (control.metrics_token, control.auth_token) if t]
        return _presented_token_ok(request, tokens)
    if not ip_allowed(request.peer_ip, control.allow_management_from):
        return False
    if request.path in NO_AUTH_PATHS or request.path.startswith("/app"):
        return True
    return bool(control.auth_token) and _presented_token_ok(request, [control.auth_token])


# --- routes ---------------------------------------------------------------------------------

RouteHandler = Callable[[ApiControl, Request, re.Match[str]], Reply | Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Route:
    methods: frozenset[str]
    pattern: re.Pattern[str]
    handler: RouteHandler


def route(methods: str, pattern: str, handler: RouteHandler) -> Route:
    """``route("GET", r"/peer/([0-9a-fA-F]{10})", fn)``; methods space-separated.

    As with cpp-httplib, a GET route also answers HEAD, and the pattern must match
    the whole path.
    """
    names = set(methods.split())
    if "GET" in names:
        names.add("HEAD")
    return Route(frozenset(names), re.compile(pattern), handler)


# /status, /health, /config, /metrics


def _status(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
    status = control.node_status()
    body = render.status_json(
        status,
        local_conf=control.local_conf(),
        settings=control.service_settings(),
        tcp_fallback_active=control.tcp_fallback_active(),
    )
    return json_reply(body)


def _health(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
    return json_reply(render.health_json(control.node_status()))


def _config_get(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
    return json_reply(control.local_conf() or {})


async def _config_post(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
    changes = parse_json_body(request)
    if not isinstance(changes, dict):
        raise BadRequest("request body must be a JSON object of settings")
    try:
        # Validation and the durable write (an fsync) off the event loop.
        await asyncio.to_thread(control.update_settings, changes)
    except ValueError as e:
        raise BadRequest(str(e)) from e
    return EMPTY


def _metrics(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
    text = control.metrics_text()
    if text is None:
        return Reply(500, "{}", "application/json")
    return Reply(200, text, "text/plain")


# /peer


def _peer_list(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
    tunneled = control.tcp_fallback_active()
    return json_reply([render.peer_json(p, tunneled=tunneled) for p in control.peers()])


def _peer_get(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
    wanted = strtoull(match.group(1), 16)
    for peer in control.peers():
        if peer.address == wanted:
            return json_reply(render.peer_json(peer, tunneled=control.tcp_fallback_active()))
    return EMPTY


# /moon


def _fetched_moons(control: ApiControl) -> list[MoonStatus]:
    # The reference lists only moons whose world has been fetched (Node::moons());
    # one still waiting for its seed is not shown.
    return [m for m in control.moons() if m.world is not None]


def _moon_list(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
    return json_reply([render.moon_json(m) for m in _fetched_moons(control)])


def _moon_get(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
    world_id = strtoull(match.group(1), 16)
    for moon in _fetched_moons(control):
        if moon.world_id == world_id:
            return json_reply(render.moon_json(moon))
    return EMPTY


def _hex_of_text(value: object) -> int:
    # Upstream reads the seed as text (a number's decimal digits) and parses it as hex.
    return strtoull(json_string(value, "0"), 16)


class MoonBody(msgspec.Struct, frozen=True):
    """The body of ``POST /moon/<id>``: ``seed``, the 10-hex address of a node to
    fetch the moon from; anything else (or no body, or not an object) is seed 0.
    Other keys are ignored."""

    seed: Annotated[int, parse_with(_hex_of_text)] = 0


def _moon_post(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
    seed = 0
    if request.body.strip():
        body = parse_json_body(request)
        if isinstance(body, dict):
            seed = validate(body, MoonBody).seed
    world_id = strtoull(match.group(1), 16)
    for moon in _fetched_moons(control):
        if moon.world_id == world_id:
            return json_reply(render.moon_json(moon))
    if seed == 0:
        return EMPTY
    control.orbit(world_id, seed)
    return json_reply(render.waiting_moon_json(world_id))


def _moon_delete(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
    control.deorbit(strtoull(match.group(1), 16))
    return json_reply({"result": True})


HEX10 = "([0-9a-fA-F]{10})"
HEX16 = "([0-9a-fA-F]{16})"

NODE_ROUTES: list[Route] = [
    route("GET", "/status", _status),
    route("GET", "/health", _health),
    route("GET", "/config", _config_get),
    route("POST PUT", "/config/settings", _config_post),
    route("GET", "/metrics", _metrics),
]

PEER_ROUTES: list[Route] = [
    route("GET", "/peer", _peer_list),
    route("GET", f"/peer/{HEX10}", _peer_get),
]

MOON_ROUTES: list[Route] = [
    route("GET", "/moon", _moon_list),
    route("GET", f"/moon/{HEX10}", _moon_get),
    route("POST PUT", f"/moon/{HEX10}", _moon_post),
    route("DELETE", f"/moon/{HEX10}", _moon_delete),
]

# Virtual networks (GET /network, GET|POST|PUT|DELETE /network/<16 hex>) come here.
NETWORK_ROUTES: list[Route] = []


def default_routes() -> list[Route]:
    return [*NODE_ROUTES, *PEER_ROUTES, *MOON_ROUTES, *NETWORK_ROUTES]


# --- the router -----------------------------------------------------------------------------


class ApiRouter:
    """The API request handler: authentication, then the first matching route."""

    def __init__(
        self,
        control: ApiControl,
        routes: Sequence[Route] | None = None,
        *,
        extra_routes: Sequence[Route] = (),
    ) -> None:
        self.control = control
        self.routes: list[Route] = [
            *(default_routes() if routes is None else routes),
            *extra_routes,
        ]

    async def __call__(self, request: Request) -> Response:
        if not authorized(self.control, request):
            answer = set_content(request, 401, "{}")
            return dataclasses.replace(answer, close=True)
        answer = await self._route(request)
        token = self.control.auth_token
        if token and _presented_token_ok(request, [token]):
            return dataclasses.replace(answer, trusted=True)
        return answer

    async def _route(self, request: Request) -> Response:
        for r in self.routes:
            if request.method not in r.methods:
                continue
            match = r.pattern.fullmatch(request.path)
            if match is None:
                continue
            # Anything but BadRequest is a bug: the server's handler answers 500.
            try:
                reply = r.handler(self.control, request, match)
                if inspect.isawaitable(reply):
                    reply = await reply
            except BadRequest as e:
                reply = error_reply(400, str(e))
            assert isinstance(reply, Reply)
            if reply.content_type is not None:
                return Response(reply.status, reply.content.encode("utf-8"), reply.content_type)
            return set_content(request, reply.status, reply.content)
        return set_content(request, 404, "{}")
