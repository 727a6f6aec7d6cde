"""The local JSON API through its router: authentication, routes and rendering, served
by the real HTTP server (its own guarantees: test_http.py).

The server runs on 127.0.0.1 (ephemeral port) in a background event loop; the fake
daemon answers with the lab1 root node's recorded state, so bodies can be compared
with what the reference returned (tests/vectors/lab1_api).
"""

from __future__ import annotations

import asyncio
import http.client
import io
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from locations import VECTORS
from ztone.cli import cli
from ztone.node.status import MoonStatus, NodeStatus, PathStatus, PeerStatus, Role
from ztone.node.vl2.network import NetworkView
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.network_config import Route
from ztone.node.wire.vl2_verbs import MulticastGroup
from ztone.node.wire.world import Root, World, WorldType
from ztone.service.api import ApiRouter, ApiServer, Request, Response, render
from ztone.service.api.network_routes import network_routes
from ztone.service.api.routes import authorized, bearer_token_valid
from ztone.service.config import NetworkLocalSettings
from ztone.util.ctext import strtoull

LAB = VECTORS / "lab1_api"
NODES = ("root", "ctrl", "a", "b")
TOKEN = "0123456789abcdefghijklmn"
METRICS_TOKEN = "zyxwvutsrqponmlkjihgfedc"
TIMEOUT = 5.0


def recorded(node: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((LAB / node / "api.json").read_text())
    return data


def recorded_cli(node: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((LAB / node / "cli.json").read_text())
    return data


def peer_from_json(p: dict[str, Any]) -> PeerStatus:
    version = None
    if p["versionMajor"] >= 0:
        version = (p["versionMajor"], p["versionMinor"], p["versionRev"])
    paths = tuple(
        PathStatus(
            address=InetAddress.parse(x["address"]),
            last_send=x["lastSend"],
            last_receive=x["lastReceive"],
            trusted_path_id=x["trustedPathId"],
            preferred=x["preferred"],
            local_socket=x["localSocket"],
        )
        for x in p["paths"]
    )
    return PeerStatus(int(p["address"], 16), version, p["latency"], Role(p["role"]), paths)


def _mac(text: str) -> int:
    return int(text.replace(":", ""), 16)


def network_from_json(n: dict[str, Any]) -> tuple[NetworkView, NetworkLocalSettings, str, int]:
    """A recorded ``/network/<nwid>`` object as the daemon's view, settings and port."""
    view = NetworkView(
        nwid=int(n["nwid"], 16),
        mac=_mac(n["mac"]),
        name=n["name"],
        status=n["status"],
        type=n["type"],
        mtu=n["mtu"],
        bridge=n["bridge"],
        broadcast_enabled=n["broadcastEnabled"],
        netconf_revision=n["netconfRevision"],
        assigned_addresses=tuple(InetAddress.parse(a) for a in n["assignedAddresses"]),
        routes=tuple(
            Route(
                InetAddress.parse(r["target"]),
                InetAddress.parse(r["via"]) if r["via"] is not None else None,
                r["flags"],
                r["metric"],
            )
            for r in n["routes"]
        ),
        multicast_subscriptions=tuple(
            MulticastGroup(_mac(g["mac"]), g["adi"]) for g in n["multicastSubscriptions"]
        ),
        dns_domain=n["dns"]["domain"],
        dns_servers=tuple(InetAddress.parse(a) for a in n["dns"]["servers"]),
    )
    settings = NetworkLocalSettings(
        allow_managed=n["allowManaged"],
        allow_global=n["allowGlobal"],
        allow_default=n["allowDefault"],
        allow_dns=n["allowDNS"],
    )
    return view, settings, n["portDeviceName"], n["portError"]


@dataclass
class FakeControl:
    """An ApiControl answering with a recorded node's state."""

    node: str = "root"
    auth_token: str = TOKEN
    metrics_token: str = METRICS_TOKEN
    allow_management_from: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(
        default_factory=list
    )
    moon_list: list[MoonStatus] = field(default_factory=list)
    orbits: list[tuple[int, int]] = field(default_factory=list)
    deorbits: list[int] = field(default_factory=list)
    settings_changes: list[dict[str, object]] = field(default_factory=list)
    metrics: str | None = "# HELP x\nx 1\n"
    tunnel: bool = False
    networks: dict[int, tuple[NetworkView, NetworkLocalSettings, str, int]] = field(
        default_factory=dict
    )
    joins: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        for n in self._data()["/network"][1]:
            view, settings, device, error = network_from_json(n)
            self.networks[view.nwid] = (view, settings, device, error)

    def _data(self) -> dict[str, Any]:
        return recorded(self.node)

    # NetworkControl: the recorded node's joined networks

    def network_views(self) -> list[NetworkView]:
        return [self.networks[nwid][0] for nwid in sorted(self.networks)]

    def join(self, nwid: int) -> NetworkView:
        self.joins.append(nwid)
        if nwid not in self.networks:
            view = NetworkView(nwid, 0x02AABBCCDDEE, "", "REQUESTING_CONFIGURATION", "PRIVATE",
                               2800, False, True, 0, (), (), (), "", ())  # fmt: skip
            self.networks[nwid] = (view, NetworkLocalSettings(), "", 0)
        return self.networks[nwid][0]

    def leave(self, nwid: int) -> bool:
        return self.networks.pop(nwid, None) is not None

    def local_settings(self, nwid: int) -> NetworkLocalSettings:
        entry = self.networks.get(nwid)
        return entry[1] if entry is not None else NetworkLocalSettings()

    def set_local_settings(self, nwid: int, settings: NetworkLocalSettings) -> None:
        view, _, device, error = self.networks[nwid]
        self.networks[nwid] = (view, settings, device, error)

    def port_info(self, nwid: int) -> tuple[str, int]:
        entry = self.networks.get(nwid)
        return (entry[2], entry[3]) if entry is not None else ("", 0)

    def node_status(self) -> NodeStatus:
        s = self._data()["/status"][1]
        return NodeStatus(
            address=int(s["address"], 16),
            public_identity=s["publicIdentity"],
            online=s["online"],
            planet_world_id=s["planetWorldId"],
            planet_world_timestamp=s["planetWorldTimestamp"],
            clock=s["clock"],
        )

    def service_settings(self) -> dict[str, object]:
        settings: dict[str, object] = self._data()["/status"][1]["config"]["settings"]
        return settings

    def local_conf(self) -> dict[str, object]:
        conf: dict[str, object] = self._data()["/config"][1]
        return conf

    def update_settings(self, changes: dict[str, object]) -> None:
        if "primaryPort" in changes and not isinstance(changes["primaryPort"], int):
            raise ValueError("settings.primaryPort must be an integer")
        self.settings_changes.append(changes)

    def peers(self) -> list[PeerStatus]:
        return [peer_from_json(p) for p in self._data()["/peer"][1]]

    def moons(self) -> list[MoonStatus]:
        return list(self.moon_list)

    def orbit(self, world_id: int, seed: int) -> None:
        self.orbits.append((world_id, seed))
        self.moon_list.append(MoonStatus(world_id, seed, None))

    def deorbit(self, world_id: int) -> None:
        self.deorbits.append(world_id)
        self.moon_list = [m for m in self.moon_list if m.world_id != world_id]

    def tcp_fallback_active(self) -> bool:
        return self.tunnel

    def metrics_text(self) -> str | None:
        return self.metrics


class ServerThread:
    """An ApiServer in its own event loop thread."""

    def __init__(self, handler: Any, hosts: list[str] | None = None, **kwargs: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = ApiServer(handler, **kwargs)
        self.hosts = hosts or ["127.0.0.1"]

    def __enter__(self) -> ServerThread:
        self.thread.start()
        start = self.server.start(self.hosts, 0)
        asyncio.run_coroutine_threadsafe(start, self.loop).result(TIMEOUT)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()

    @property
    def port(self) -> int:
        return self.server.bound[0][1]


@pytest.fixture
def control() -> FakeControl:
    return FakeControl()


def router(control: FakeControl) -> ApiRouter:
    """The daemon's router: the node routes and the real ``/network`` handlers."""
    return ApiRouter(control, extra_routes=network_routes(control))


@pytest.fixture
def server(control: FakeControl) -> Iterator[ServerThread]:
    with ServerThread(router(control)) as s:
        yield s


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str, bytes]:
    """(status, content type, body) of one request over a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


def auth_get(port: int, path: str) -> tuple[int, Any]:
    status, _, body = request(port, "GET", path, headers={"X-ZT1-Auth": TOKEN})
    return status, json.loads(body)


def raw_exchange(port: int, data: bytes, *, read_all: bool = True) -> bytes:
    """Send raw bytes, read until the server closes (or one response, if not read_all)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may close before reading everything
        return read_until_close(s) if read_all else read_one_response(s)


def read_until_close(s: socket.socket) -> bytes:
    out = b""
    for _ in range(10_000):
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        out += chunk
    return out


def read_one_response(s: socket.socket) -> bytes:
    buf = b""
    for _ in range(10_000):
        if b"\r\n\r\n" in buf:
            break
        chunk = s.recv(65536)
        if not chunk:
            return buf
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    for _ in range(10_000):
        if len(body) >= length:
            break
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body[:length]


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def body_of(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]


# --- rendering -----------------------------------------------------------------------------


@pytest.mark.parametrize("node", NODES)
def test_dump_pretty_equals_nlohmann_dump1(node: str) -> None:
    """The recorded `-j` outputs are nlohmann dump(1) + newline; Python's indent=1 matches."""
    outputs = recorded_cli(node)
    for command in ("-j info", "-j listpeers", "-j listnetworks", "listmoons"):
        text = outputs[command]
        assert render.dump_pretty(json.loads(text)) + "\n" == text
    api = recorded(node)
    assert render.dump_pretty(api["/peer"][1]) + "\n" == outputs["-j listpeers"]
    assert render.dump_pretty(api["/network"][1]) + "\n" == outputs["-j listnetworks"]


def test_dump_compact() -> None:
    assert render.dump_compact({"b": [], "a": {"d": None, "c": "é"}}) == (
        '{"a":{"c":"é","d":null},"b":[]}'
    )


@pytest.mark.parametrize("node", NODES)
def test_render_matches_recorded(node: str) -> None:
    control = FakeControl(node=node)
    api = recorded(node)
    status = render.status_json(
        control.node_status(),
        local_conf=control.local_conf(),
        settings=control.service_settings(),
        tcp_fallback_active=False,
    )
    assert render.dump_compact(status) == render.dump_compact(api["/status"][1])
    peers = [render.peer_json(p, tunneled=False) for p in control.peers()]
    assert render.dump_compact(peers) == render.dump_compact(api["/peer"][1])


def test_peer_json_unknown_version_and_address_forms() -> None:
    path = PathStatus(InetAddress.parse("::ffff:1.2.3.4/9993"), 0, -5, 0, False, 7)
    peer = PeerStatus(0x0102030405, None, -1, Role.MOON, (path,))
    j = render.peer_json(peer, tunneled=True)
    assert j["address"] == "0102030405"
    assert j["version"] == "-1.-1.-1"
    assert (j["versionMajor"], j["versionMinor"], j["versionRev"]) == (-1, -1, -1)
    assert j["role"] == "MOON"
    assert j["tunneled"] is True
    assert j["paths"] == [
        {
            "active": True,
            "address": "::ffff:1.2.3.4/9993",  # inet_ntop's form
            "expired": False,
            "lastReceive": 0,
            "lastSend": 0,
            "localPort": 0,
            "localSocket": 7,
            "preferred": False,
            "trustedPathId": 0,
        }
    ]


def _identity() -> Identity:
    data = json.loads((VECTORS / "identities.json").read_text())
    return Identity.from_string(data["identities"][0]["public"])


def make_moon(world_id: int | None = None) -> World:
    identity = _identity()
    root = Root(
        identity,
        (InetAddress.parse("198.18.0.10/9993"), InetAddress.parse("2001:db8::1/9993")),
        null_endpoint_slots=(1,),
    )
    return World(
        WorldType.MOON,
        world_id if world_id is not None else int(identity.address),
        1700000000000,
        bytes(range(64)),
        bytes(range(96)),
        (root,),
    )


def test_moon_json_shape() -> None:
    world = make_moon()
    j = render.moon_json(MoonStatus(world.id, world.id, world))
    assert j == {
        "id": f"{world.id:016x}",
        "roots": [
            {
                "identity": _identity().to_string(),
                "stableEndpoints": ["198.18.0.10/9993", "", "2001:db8::1/9993"],
            }
        ],
        "signature": bytes(range(96)).hex(),
        "timestamp": 1700000000000,
        "updatesMustBeSignedBy": bytes(range(64)).hex(),
        "waiting": False,
    }


def test_c_helpers() -> None:
    assert strtoull("89e92ceee5", 16) == 0x89E92CEEE5
    assert strtoull("0x10", 16) == 16
    assert strtoull("  12zz", 16) == 0x12
    assert strtoull("zz", 16) == 0
    assert strtoull("1" * 40, 16) == (1 << 64) - 1
    assert strtoull("-1", 16) == (1 << 64) - 1
    assert bearer_token_valid("Bearer tok", "tok")
    assert bearer_token_valid("bEaReR   tok ", "tok")
    assert not bearer_token_valid("Bearer tok extra", "tok")
    assert not bearer_token_valid("Basic tok", "tok")
    assert not bearer_token_valid("tok", "tok")


# --- authentication (router called directly, any source address) ------------------------


def make_request(
    path: str,
    *,
    ip: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    method: str = "GET",
    body: bytes = b"",
) -> Request:
    return Request(method, path, query or {}, headers or {}, body, ipaddress.ip_address(ip))


def test_auth_sources_and_addresses(control: FakeControl) -> None:
    good = {"x-zt1-auth": TOKEN}
    assert authorized(control, make_request("/status", headers=good))
    assert authorized(control, make_request("/status", ip="::1", headers=good))
    assert authorized(control, make_request("/status", ip="::ffff:127.0.0.9", headers=good))
    assert authorized(control, make_request("/status", ip="127.1.2.3", headers=good))
    assert not authorized(control, make_request("/status", ip="10.0.0.5", headers=good))
    assert not authorized(control, make_request("/health", ip="10.0.0.5"))
    control.allow_management_from = [ipaddress.ip_network("10.0.0.0/24")]
    assert authorized(control, make_request("/status", ip="10.0.0.5", headers=good))
    assert not authorized(control, make_request("/status", ip="10.0.0.5"))
    assert authorized(control, make_request("/health", ip="10.0.0.5"))
    assert not authorized(control, make_request("/status", ip="10.0.1.5", headers=good))
    # No token needed for /health, /sso and anything under /app.
    assert authorized(control, make_request("/health"))
    assert authorized(control, make_request("/sso"))
    assert authorized(control, make_request("/app/x"))
    # Only the first present source counts.
    assert authorized(control, make_request("/peer", query={"auth": TOKEN}))
    assert authorized(control, make_request("/peer", headers={"authorization": f"Bearer {TOKEN}"}))
    assert not authorized(
        control, make_request("/peer", headers={"x-zt1-auth": "wrong"}, query={"auth": TOKEN})
    )
    assert not authorized(
        control,
        make_request(
            "/peer", query={"auth": "wrong"}, headers={"authorization": f"Bearer {TOKEN}"}
        ),
    )
    # The metrics token is only good for /metrics, which has no address restriction.
    assert not authorized(control, make_request("/status", headers={"x-zt1-auth": METRICS_TOKEN}))
    assert authorized(
        control, make_request("/metrics", ip="203.0.113.9", headers={"x-zt1-auth": METRICS_TOKEN})
    )
    assert authorized(control, make_request("/metrics", ip="203.0.113.9", query={"auth": TOKEN}))
    assert not authorized(control, make_request("/metrics", ip="203.0.113.9"))


def test_router_metrics(control: FakeControl) -> None:
    router = ApiRouter(control)
    req = make_request("/metrics", ip="203.0.113.9", headers={"authorization": f"bearer {TOKEN}"})
    response = asyncio.run(router(req))
    assert (response.status, response.content_type) == (200, "text/plain")
    assert response.body == b"# HELP x\nx 1\n"
    control.metrics = None
    response = asyncio.run(router(req))
    assert (response.status, response.body) == (500, b"{}")
    response = asyncio.run(router(make_request("/metrics", ip="203.0.113.9")))
    assert (response.status, response.body) == (401, b"{}")


def test_router_handler_exception_is_500_logged_once(
    control: FakeControl, caplog: pytest.LogCaptureFixture
) -> None:
    """A route's unexpected exception reaches the server's one handler: 500, and one
    traceback however often it happens."""

    def broken() -> NodeStatus:
        raise RuntimeError("boom")

    control.node_status = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        asyncio.run(ApiRouter(control)(make_request("/status", headers={"x-zt1-auth": TOKEN})))
    with ServerThread(ApiRouter(control)) as srv, caplog.at_level("ERROR"):
        for _ in range(20):
            status, _, body = request(srv.port, "GET", "/status", headers={"X-ZT1-Auth": TOKEN})
            assert status == 500
            assert json.loads(body) == {"error": 500, "description": "boom"}
        assert auth_get(srv.port, "/peer")[0] == 200
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 1
    assert srv.server.errors.total == 20


# --- over HTTP --------------------------------------------------------------------------------


def test_unauthorized(server: ServerThread) -> None:
    assert request(server.port, "GET", "/status") == (401, "application/json", b"{}")
    bad = {"X-ZT1-Auth": "wrong"}
    assert request(server.port, "GET", "/status", headers=bad)[::2] == (401, b"{}")
    assert request(server.port, "GET", "/nothing-here")[::2] == (401, b"{}")


def test_token_sources(server: ServerThread) -> None:
    for path, headers in (
        ("/status", {"X-ZT1-Auth": TOKEN}),
        (f"/status?auth={TOKEN}", {}),
        ("/status", {"Authorization": f"Bearer {TOKEN}"}),
        ("/status", {"authorization": f"BEARER {TOKEN}"}),
    ):
        assert request(server.port, "GET", path, headers=headers)[0] == 200, (path, headers)


def test_status_equals_recorded(server: ServerThread) -> None:
    status, ctype, body = request(server.port, "GET", "/status", headers={"X-ZT1-Auth": TOKEN})
    assert (status, ctype) == (200, "application/json")
    expected = recorded("root")["/status"][1]
    assert body.decode() == json.dumps(expected, sort_keys=True, separators=(",", ":"))
    assert list(json.loads(body)) == sorted(expected)


def test_health_without_token(server: ServerThread) -> None:
    status, _, body = request(server.port, "GET", "/health")
    assert status == 200
    assert json.loads(body) == {
        "clock": recorded("root")["/status"][1]["clock"],
        "online": True,
        "version": "1.14.1",
        "versionBuild": 0,
        "versionMajor": 1,
        "versionMinor": 14,
        "versionRev": 1,
    }


def test_peers(server: ServerThread, control: FakeControl) -> None:
    assert auth_get(server.port, "/peer") == (200, recorded("root")["/peer"][1])
    status, peer = auth_get(server.port, "/peer/4B3BACDDB4")
    assert (status, peer) == (200, recorded("root")["/peer"][1][1])
    assert auth_get(server.port, "/peer/0000000001") == (200, {})
    assert auth_get(server.port, "/peer/123") == (404, {})
    control.tunnel = True
    assert all(p["tunneled"] for p in auth_get(server.port, "/peer")[1])


def test_moons(server: ServerThread, control: FakeControl) -> None:
    assert auth_get(server.port, "/moon") == (200, [])
    world = make_moon(0x89E92CEEE5)
    control.moon_list.append(MoonStatus(world.id, world.id, world))
    expected = render.moon_json(control.moon_list[0])
    assert auth_get(server.port, "/moon") == (200, [expected])
    assert auth_get(server.port, "/moon/89e92ceee5") == (200, expected)
    assert auth_get(server.port, "/moon/0000000001") == (200, {})
    assert auth_get(server.port, f"/moon/{world.id:016x}") == (404, {})


def test_moon_orbit_and_deorbit(server: ServerThread, control: FakeControl) -> None:
    auth = {"X-ZT1-Auth": TOKEN}
    status, _, body = request(
        server.port, "POST", "/moon/1234567890", b'{"seed":"1234567890"}', auth
    )
    assert status == 200
    assert body == (
        b'{"id":"0000001234567890","roots":[],"signature":null,"timestamp":0,'
        b'"updatesMustBeSignedBy":null,"waiting":true}'
    )
    assert control.orbits == [(0x1234567890, 0x1234567890)]
    # Still waiting for the world: not listed, as upstream.
    assert auth_get(server.port, "/moon") == (200, [])
    # A fetched moon is answered with its object and not orbited again.
    world = make_moon(0x89E92CEEE5)
    control.moon_list.append(MoonStatus(world.id, world.id, world))
    status, _, body = request(server.port, "PUT", "/moon/89e92ceee5", b'{"seed":"1"}', auth)
    assert json.loads(body) == render.moon_json(control.moon_list[-1])
    assert len(control.orbits) == 1
    # No seed (or seed 0, or a number read as hex digits): nothing happens / hex.
    assert request(server.port, "POST", "/moon/00000000aa", b"{}", auth)[::2] == (200, b"{}")
    assert request(server.port, "POST", "/moon/00000000aa", b"", auth)[::2] == (200, b"{}")
    request(server.port, "POST", "/moon/00000000bb", b'{"seed":10}', auth)
    assert control.orbits[-1] == (0xBB, 0x10)
    # Invalid JSON: 400 with a message, nothing done.
    status, _, body = request(server.port, "POST", "/moon/00000000cc", b"{nope", auth)
    assert status == 400
    assert "not valid JSON" in json.loads(body)["error"]
    assert control.orbits[-1] == (0xBB, 0x10)
    status, _, body = request(server.port, "DELETE", "/moon/89e92ceee5", None, auth)
    assert (status, body) == (200, b'{"result":true}')
    assert control.deorbits == [0x89E92CEEE5]


def test_config(server: ServerThread, control: FakeControl) -> None:
    auth = {"X-ZT1-Auth": TOKEN}
    assert auth_get(server.port, "/config") == (200, recorded("root")["/config"][1])
    body = b'{"allowTcpFallbackRelay":true}'
    assert request(server.port, "POST", "/config/settings", body, auth)[::2] == (200, b"{}")
    assert control.settings_changes == [{"allowTcpFallbackRelay": True}]
    for bad in (b"{", b"[1,2]", b"", b"NaN", b'{"primaryPort":"x"}'):
        status, _, answer = request(server.port, "PUT", "/config/settings", bad, auth)
        assert status == 400, bad
        assert json.loads(answer)["error"]
    status, _, answer = request(server.port, "POST", "/config/settings", b"[1,2]", auth)
    assert (status, json.loads(answer)) == (
        400,
        {"error": "request body must be a JSON object of settings"},
    )
    assert control.settings_changes == [{"allowTcpFallbackRelay": True}]
    status, _, answer = request(
        server.port, "PUT", "/config/settings", b'{"primaryPort":"x"}', auth
    )
    assert json.loads(answer) == {"error": "settings.primaryPort must be an integer"}


def test_unknown_paths_and_methods(server: ServerThread) -> None:
    auth = {"X-ZT1-Auth": TOKEN}
    for method, path in (
        ("GET", "/nothing"),
        ("GET", "/status/"),
        ("GET", "/network/1fad486cafe468e2"),  # the root node joined no network
        ("GET", "/network/1fad486cafe468e"),  # not 16 digits
        ("DELETE", "/network"),
        ("POST", "/status"),
        ("DELETE", "/peer"),
        ("GET", "/app/index.html"),  # no token needed, but nothing served
    ):
        assert request(server.port, method, path, headers=auth)[::2] == (404, b"{}"), path


# --- /network (the daemon's real handlers, service/api/network_routes.py) ----------------

NWID = "1fad486cafe468e2"


@pytest.mark.parametrize("node", NODES)
def test_network_get_equals_the_reference(node: str) -> None:
    """GET /network and /network/<nwid> answer what 1.14.1 answered on that node
    (the root and the controller joined nothing: ``[]`` and 404 ``{}``)."""
    control = FakeControl(node=node)
    with ServerThread(router(control)) as srv:
        for path in ("/network", f"/network/{NWID}"):
            status, body = recorded(node)[path]
            assert auth_get(srv.port, path) == (status, body), path
            assert auth_get(srv.port, path.upper().replace("/NETWORK", "/network")) == (
                status,
                body,
            )


def test_network_get_unknown_is_404() -> None:
    """Guards: GET /network/<unknown> answering 200 (or the joined network) instead
    of 404 ``{}``."""
    with ServerThread(router(FakeControl(node="a"))) as srv:
        for other in ("1fad486cafe468e3", "0000000000000000", "ffffffffffffffff"):
            assert request(srv.port, "GET", f"/network/{other}", headers={"X-ZT1-Auth": TOKEN})[
                ::2
            ] == (404, b"{}")
        # no token: 401 before anything is looked up
        assert request(srv.port, "GET", f"/network/{NWID}")[0] == 401


def test_network_join_set_and_leave() -> None:
    """POST joins (idempotent) and takes only JSON booleans; DELETE leaves."""
    control = FakeControl(node="a")
    auth = {"X-ZT1-Auth": TOKEN}
    reference = recorded("a")[f"/network/{NWID}"][1]
    with ServerThread(router(control)) as srv:
        body = b'{"allowDefault": true, "allowGlobal": 1, "allowManaged": "no"}'
        status, _, answer = request(srv.port, "POST", f"/network/{NWID}", body, auth)
        assert status == 200
        assert json.loads(answer) == {**reference, "allowDefault": True}
        assert control.joins == [int(NWID, 16)]
        # an invalid body is refused (400, where zerotier-one ignores it): the network
        # stays joined with its settings unchanged, nothing else is joined
        status, _, answer = request(srv.port, "PUT", f"/network/{NWID}", b"{", auth)
        assert status == 400 and b"JSON" in answer
        assert auth_get(srv.port, f"/network/{NWID}")[1]["allowDefault"] is True
        assert control.joins == [int(NWID, 16)]
        # a new network: joined, and listed after the recorded one
        new = "8056c2e21c000001"
        status, _, answer = request(srv.port, "POST", f"/network/{new}", b"", auth)
        assert (status, json.loads(answer)["id"], json.loads(answer)["nwid"]) == (200, new, new)
        assert [n["id"] for n in auth_get(srv.port, "/network")[1]] == [NWID, new]
        # leave: {"result":true} once, then {} (not joined)
        assert request(srv.port, "DELETE", f"/network/{new}", headers=auth)[::2] == (
            200,
            b'{"result":true}',
        )
        assert request(srv.port, "DELETE", f"/network/{new}", headers=auth)[::2] == (200, b"{}")
        assert auth_get(srv.port, f"/network/{new}") == (404, {})


def test_cli_listnetworks_against_server() -> None:
    """ztone-cli listnetworks on a member node reproduces the reference's output."""
    with ServerThread(router(FakeControl(node="a"))) as srv:
        for command in ("listnetworks", "-j listnetworks"):
            out, err = io.StringIO(), io.StringIO()
            args = [f"-p{srv.port}", f"-T{TOKEN}", *command.split()]
            assert cli.main(args, stdout=out, stderr=err) == 0
            assert out.getvalue() == recorded_cli("a")[command]


def test_jsonp(server: ServerThread) -> None:
    status, ctype, body = request(server.port, "GET", f"/peer/0000000001?jsonp=cb&auth={TOKEN}")
    assert (status, ctype, body) == (200, "application/javascript", b"cb({});")
    status, ctype, body = request(server.port, "GET", "/status?jsonp=f")
    assert (status, ctype, body) == (401, "application/javascript", b"f({});")
    status, _, body = request(server.port, "GET", f"/health?jsonp=h&auth={TOKEN}")
    assert body.startswith(b'h({"clock":') and body.endswith(b"});")


def test_head_request(server: ServerThread) -> None:
    status, ctype, body = request(server.port, "HEAD", "/health")
    assert (status, ctype, body) == (200, "application/json", b"")


def test_zerotier_cli_request_without_host(server: ServerThread) -> None:
    # Exactly what zerotier-cli 1.14.1 sends: HTTP/1.1 and no Host header.
    response = raw_exchange(
        server.port, f"GET /health HTTP/1.1\r\nX-ZT1-Auth: {TOKEN}\r\n\r\n".encode(), read_all=False
    )
    assert status_of(response) == 200
    assert json.loads(body_of(response))["version"] == "1.14.1"


def test_keep_alive_and_pipelining(server: ServerThread) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        for _ in range(3):
            conn.request("GET", "/health")
            resp = conn.getresponse()
            assert resp.status == 200
            resp.read()
    finally:
        conn.close()
    two = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" + (
        b"POST /moon/0000000001 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        + f"X-ZT1-Auth: {TOKEN}\r\nConnection: close\r\n\r\n{{}}".encode()
    )
    answer = raw_exchange(server.port, two)
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert answer.endswith(b"\r\n\r\n{}")


def test_malformed_requests_get_400_and_server_survives(server: ServerThread) -> None:
    garbage = [
        b"\x00\x01\x02\xff\r\n\r\n",
        b"HELLO\r\n\r\n",
        b"GET / FTP/1.0\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /health HTTP/1.1\r\nbad header line\r\n\r\n",
        b"POST /config/settings HTTP/1.1\r\nHost: a\r\nContent-Length: zz\r\n\r\n",
        b"POST /config/settings HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /health HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab",  # then EOF
        b"GET /hea",  # then EOF
    ]
    for data in garbage:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            answer = read_until_close(s)
        assert status_of(answer) == 400, data
        assert json.loads(body_of(answer))["error"]
    assert request(server.port, "GET", "/health")[0] == 200


def test_limits(server: ServerThread) -> None:
    huge_header = b"GET /health HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    endless_header = b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 40000
    for data in (huge_header, endless_header):
        answer = raw_exchange(server.port, data)
        assert status_of(answer) == 431
        assert json.loads(body_of(answer)) == {"error": "request header fields too large"}
    declared = (
        b"POST /config/settings HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n"
        + b"x" * 1000
    )
    assert status_of(raw_exchange(server.port, declared)) == 413
    chunk = b"100000\r\n" + b"x" * 0x100000 + b"\r\n"
    chunked = (
        b"POST /config/settings HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunk * 2
        + b"0\r\n\r\n"
    )
    assert status_of(raw_exchange(server.port, chunked)) == 413
    # Just under the limit is fine (and then rejected as bad JSON, not too large).
    status, _, _ = request(
        server.port, "POST", "/config/settings", b" " * (1 << 20), {"X-ZT1-Auth": TOKEN}
    )
    assert status == 400
    assert request(server.port, "GET", "/health")[0] == 200


def _wait_for(condition: Any) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition()


def test_timeouts(control: FakeControl) -> None:
    with ServerThread(ApiRouter(control), head_timeout=0.3, request_timeout=0.6) as srv:
        with (
            socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT) as idle,
            socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT) as partial,
            socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT) as body,
        ):
            # An idle connection just closes; a partial head or body times out with 408.
            partial.sendall(b"GET /health HTTP/1.1\r\n")
            body.sendall(b"POST /config/settings HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\n{")
            assert read_until_close(idle) == b""
            assert status_of(read_until_close(partial)) == 408
            assert status_of(read_until_close(body)) == 408
        # A dribbled head is cut off at the head deadline, however steady the dribble.
        with socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT) as slow:
            slow.sendall(b"GET /health HTTP/1.1\r\n")
            for _ in range(20):
                try:
                    slow.sendall(b"X")
                except OSError:
                    break
                time.sleep(0.05)
            assert status_of(read_until_close(slow)) == 408
        _wait_for(lambda: srv.server.open_connections == 0)
        assert request(srv.port, "GET", "/health")[0] == 200


def test_full_server_sheds_oldest_untrusted_first(control: FakeControl) -> None:
    with ServerThread(ApiRouter(control), max_connections=2) as srv:
        trusted = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=TIMEOUT)
        try:
            trusted.request("GET", "/peer", headers={"X-ZT1-Auth": TOKEN})
            assert trusted.getresponse().read()
            with socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT) as slow:
                slow.sendall(b"GET /health HTTP/1.1\r\n")
                _wait_for(lambda: srv.server.open_connections == 2)
                # A third client is served; the token-less partial request made room.
                assert request(srv.port, "GET", "/health")[0] == 200
                assert read_until_close(slow) == b""
            # Many more clients than the cap, each held open: the newest is always
            # served, and the connection that showed a token outlives them all.
            held = []
            try:
                for _ in range(10):
                    s = socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT)
                    held.append(s)
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
                    assert status_of(read_one_response(s)) == 200
                assert srv.server.open_connections <= 2
                assert srv.server.shed >= 10
            finally:
                for s in held:
                    s.close()
            trusted.request("GET", "/peer", headers={"X-ZT1-Auth": TOKEN})
            assert trusted.getresponse().status == 200
        finally:
            trusted.close()


def test_unauthorized_answer_closes_the_pipeline(server: ServerThread) -> None:
    one = b"GET /status HTTP/1.1\r\nHost: a\r\n\r\n"
    answer = raw_exchange(server.port, one * 1000)
    assert answer.count(b"HTTP/1.1 ") == 1
    assert status_of(answer) == 401
    assert b"connection: close\r\n" in answer.lower()


def test_requests_per_connection_are_capped(control: FakeControl) -> None:
    with ServerThread(ApiRouter(control), max_requests=7) as srv:
        one = f"GET /health?auth={TOKEN} HTTP/1.1\r\nHost: a\r\n\r\n".encode()
        answer = raw_exchange(srv.port, one * 50)
        assert answer.count(b"HTTP/1.1 200 OK\r\n") == 7
        assert answer.lower().count(b"connection: close\r\n") == 1


def test_many_pipelined_requests_in_one_buffer(server: ServerThread) -> None:
    # One send holding 100 requests (the default cap) and some bodies: each answered.
    post = (
        b"POST /moon/0000000001 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        + f"X-ZT1-Auth: {TOKEN}\r\n\r\n{{}}".encode()
    )
    get = f"GET /health HTTP/1.1\r\nX-ZT1-Auth: {TOKEN}\r\n\r\n".encode()
    answer = raw_exchange(server.port, (get + post) * 50 + get)
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 100


def test_last_answer_goes_out_whole_before_close() -> None:
    """A slow reader gets a long last answer whole, even past ``write_timeout``, as
    long as it keeps taking bytes."""
    big = bytes(range(256)) * (64 * 1024)  # 16 MiB, far more than the socket buffers

    async def handler(req: Request) -> Response:
        return Response(200, big, "application/octet-stream")

    with ServerThread(handler, write_timeout=0.5) as srv:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(TIMEOUT)
            s.connect(("127.0.0.1", srv.port))
            s.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            answer = bytearray()
            started = time.monotonic()
            while chunk := s.recv(1 << 20):
                answer += chunk
                if time.monotonic() - started < 1.5:
                    time.sleep(0.002)  # slow: the whole answer takes longer than 0.5 s
        assert body_of(bytes(answer)) == big


def test_client_that_does_not_read_is_dropped() -> None:
    big = b"x" * (16 << 20)

    async def handler(req: Request) -> Response:
        return Response(200, big, "text/plain")

    with ServerThread(handler, write_timeout=0.3) as srv:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(TIMEOUT)
            s.connect(("127.0.0.1", srv.port))
            s.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
            _wait_for(lambda: srv.server.open_connections == 0)
        assert request(srv.port, "GET", "/ok")[0] == 200


def test_handler_exception_in_server() -> None:
    async def handler(req: Request) -> Response:
        if req.path == "/boom":
            raise RuntimeError("kaput")
        return Response(200, b"{}")

    with ServerThread(handler) as srv:
        status, _, body = request(srv.port, "GET", "/boom")
        assert status == 500
        assert json.loads(body) == {"error": 500, "description": "kaput"}
        assert request(srv.port, "GET", "/ok")[0] == 200


def test_request_fields() -> None:
    seen: list[Request] = []

    async def handler(req: Request) -> Response:
        seen.append(req)
        return Response(200, b"")

    with ServerThread(handler) as srv:
        request(
            srv.port,
            "PUT",
            "/a%20b/c?x=1&x=2&flag&y=%2F",
            b"payload",
            {"X-Thing": "v", "Content-Type": "text/plain"},
        )
    (req,) = seen
    assert (req.method, req.path, req.body) == ("PUT", "/a b/c", b"payload")
    assert req.query == {"x": "1", "flag": "", "y": "/"}
    assert req.headers["x-thing"] == "v"
    assert req.peer_ip == ipaddress.ip_address("127.0.0.1")


def test_binds_every_host_on_one_port(control: FakeControl) -> None:
    with ServerThread(ApiRouter(control), hosts=["127.0.0.1", "::1"]) as srv:
        ports = {port for _, port in srv.server.bound}
        assert len(ports) == 1
        assert ("127.0.0.1", srv.port) in srv.server.bound
        if socket.has_ipv6 and any(h == "::1" for h, _ in srv.server.bound):
            conn = http.client.HTTPConnection("::1", srv.port, timeout=TIMEOUT)
            try:
                conn.request("GET", "/health")
                assert conn.getresponse().status == 200
            finally:
                conn.close()


def test_cli_against_server(server: ServerThread) -> None:
    """ztone-cli talking to the real server reproduces the reference's CLI output."""
    out, err = io.StringIO(), io.StringIO()
    args = [f"-p{server.port}", f"-T{TOKEN}"]
    assert cli.main([*args, "info"], stdout=out, stderr=err) == 0
    assert out.getvalue() == recorded_cli("root")["info"]
    out = io.StringIO()
    now = recorded("root")["/peer"][1][0]["paths"][0]["lastSend"] + 224
    assert cli.main([*args, "listpeers"], now_ms=lambda: now, stdout=out, stderr=err) == 0
    assert out.getvalue() == recorded_cli("root")["listpeers"]
    out = io.StringIO()
    assert cli.main([*args, "orbit", "1234567890", "1234567890"], stdout=out, stderr=err) == 0
    assert out.getvalue() == "200 orbit OK\n"
    out = io.StringIO()
    assert cli.main([*args, "listnetworks"], stdout=out, stderr=err) == 0
    assert out.getvalue() == recorded_cli("root")["listnetworks"]
