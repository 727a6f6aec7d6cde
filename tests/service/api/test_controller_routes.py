"""The controller's HTTP API (B.6) served by the local API server, with the SQLite store.

The server runs on 127.0.0.1 (ephemeral port) in a background event loop. Answers are
compared with what the 1.14.1 controller answered in the lab
(tests/vectors/lab1_api/ctrl/api.json). The durability test runs this file as a child
process serving the API (``python tests/service/api/test_controller_routes.py <db> <port>``) and
kills it with SIGKILL in the middle of a burst of writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from locations import TESTS, VECTORS
from ztone.controller.stores import open_store
from ztone.node.status import MoonStatus, NodeStatus, PeerStatus
from ztone.service.api import ApiRouter, ApiServer
from ztone.service.api.controller_routes import controller_routes

CONTROLLER_D = VECTORS / "lab1_controller" / "controller.d"
API: dict[str, Any] = json.loads((VECTORS / "lab1_api" / "ctrl" / "api.json").read_text())

TOKEN = "0123456789abcdefghijklmn"
TIMEOUT = 10.0
CTRL = 0x1FAD486CAF
NWID_HEX = "1fad486cafe468e2"
NOW = 1_795_310_320_081
REF_NETWORK: dict[str, Any] = API[f"/controller/network/{NWID_HEX}"][1]
REF_MEMBER: dict[str, Any] = API[f"/controller/network/{NWID_HEX}/member/4b3bacddb4"][1]

LAB_BODY = {
    "name": "lab",
    "v4AssignMode": {"zt": True},
    "ipAssignmentPools": [{"ipRangeStart": "198.19.0.10", "ipRangeEnd": "198.19.0.250"}],
    "routes": [{"target": "198.19.0.0/24", "via": None}],
}


@dataclass
class FakeControl:
    """The rest of the daemon: only the token matters here."""

    auth_token: str = TOKEN
    metrics_token: str = ""
    allow_management_from: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(
        default_factory=list
    )

    def node_status(self) -> NodeStatus:
        raise NotImplementedError

    def service_settings(self) -> dict[str, object]:
        return {}

    def local_conf(self) -> dict[str, object]:
        return {}

    def update_settings(self, changes: dict[str, object]) -> None:
        raise ValueError("read-only")

    def peers(self) -> list[PeerStatus]:
        return []

    def moons(self) -> list[MoonStatus]:
        return []

    def orbit(self, world_id: int, seed: int) -> None:
        raise NotImplementedError

    def deorbit(self, world_id: int) -> None:
        raise NotImplementedError

    def tcp_fallback_active(self) -> bool:
        return False

    def metrics_text(self) -> str | None:
        return None


@dataclass
class Backend:
    """A ControllerApiBackend: a fixed address, a ticking clock, scripted randomness."""

    store: Any  # SqliteStore or PostgresStore
    address: int = CTRL
    clock: int | None = NOW  # None: the real clock
    randoms: list[int] = field(default_factory=list)
    notified: list[tuple[int, int | None]] = field(default_factory=list)

    def now_ms(self) -> int:
        if self.clock is None:
            return int(time.time() * 1000)
        self.clock += 1
        return self.clock

    def random_u64(self) -> int:
        if self.randoms:
            return self.randoms.pop(0)
        return int.from_bytes(os.urandom(8), "little")

    def notify_changed(self, nwid: int, member: int | None) -> None:
        self.notified.append((nwid, member))


def make_router(backend: Backend) -> ApiRouter:
    return ApiRouter(FakeControl(), extra_routes=controller_routes(backend))


class ServerThread:
    """An ApiServer in its own event loop thread."""

    def __init__(self, router: ApiRouter) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = ApiServer(router)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        start = self.server.start(["127.0.0.1"], 0)
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


class Client:
    def __init__(self, port: int) -> None:
        self.port = port

    def raw(
        self, method: str, path: str, body: bytes | None = None, token: str | None = TOKEN
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        try:
            headers = {"X-ZT1-Auth": token} if token else {}
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def call(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        status, raw = self.raw(method, path, data)
        return status, json.loads(raw)


@pytest.fixture(params=["sqlite", "postgres"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the store lives: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_conninfo"))
    return str(tmp_path / "controller.d" / "ztone-controller.db")


@pytest.fixture
def backend(store_location: str) -> Iterator[Backend]:
    store = open_store(store_location)
    yield Backend(store)
    store.close()


@pytest.fixture
def client(backend: Backend) -> Iterator[Client]:
    with ServerThread(make_router(backend)) as server:
        yield Client(server.port)


def create_lab(client: Client, backend: Backend) -> dict[str, Any]:
    backend.randoms.append(0x0123456789E468E2)
    status, network = client.call("POST", f"/controller/network/{CTRL:010x}______", LAB_BODY)
    assert status == 200, network
    assert network["id"] == NWID_HEX
    return dict(network)


# --- /controller ----------------------------------------------------------------------


def test_controller_status(client: Client, backend: Backend) -> None:
    status, raw = client.raw("GET", "/controller")
    assert status == 200
    assert backend.clock is not None
    assert raw == (
        b'{\n\t"controller": true,\n\t"apiVersion": 4,\n\t"clock": %d,\n'
        b'\t"databaseReady": true\n}\n' % backend.clock
    )
    ref = API["/controller"][1]
    assert list(json.loads(raw)) == list(ref)
    assert client.raw("GET", "/controller", token=None)[0] == 401


def test_controller_status_when_the_database_is_closed(client: Client, backend: Backend) -> None:
    backend.store.close()
    status, raw = client.raw("GET", "/controller")
    assert status == 503
    assert json.loads(raw)["databaseReady"] is False
    status, body = client.call("GET", "/controller/network")
    assert status == 503 and "error" in body


# --- networks ----------------------------------------------------------------------------


def test_create_network_with_the_legacy_path(client: Client, backend: Backend) -> None:
    assert client.call("GET", "/controller/network") == (200, [])
    network = create_lab(client, backend)
    assert sorted(network) == sorted(REF_NETWORK)
    for key, value in REF_NETWORK.items():
        if key != "creationTime":
            assert network[key] == value, key
    assert client.call("GET", "/controller/network") == (200, [NWID_HEX])
    assert client.call("GET", f"/controller/network/{NWID_HEX}") == (200, network)
    assert client.call("GET", f"/controller/network/{NWID_HEX.upper()}") == (200, network)
    assert backend.notified == [(int(NWID_HEX, 16), None)]


def test_create_network_picks_an_unused_random_id(client: Client, backend: Backend) -> None:
    create_lab(client, backend)
    # Taken, then one whose low 24 bits are zero (made 1).
    backend.randoms += [0xFFFFFFFFFFE468E2, 0xABCDEF0000000000]
    status, network = client.call("POST", "/controller/network", {"name": "second"})
    assert status == 200
    assert network["id"] == network["nwid"] == f"{CTRL:010x}000001"
    assert network["name"] == "second" and network["revision"] == 1
    backend.randoms += [0x42]
    status, network = client.call("PUT", "/controller/network")  # empty body: {}
    assert status == 200 and network["id"] == f"{CTRL:010x}000042"
    assert network["name"] == ""
    ids = client.call("GET", "/controller/network")[1]
    assert ids == [f"{CTRL:010x}000001", f"{CTRL:010x}000042", NWID_HEX]


def test_legacy_create_needs_this_controllers_address(client: Client, backend: Backend) -> None:
    for prefix in ("0123456789", f"{CTRL:010X}"):
        status, body = client.call("POST", f"/controller/network/{prefix}______", {})
        assert status == 400 and "error" in body
    assert client.call("GET", "/controller/network") == (200, [])


def test_network_update_and_revisions(client: Client, backend: Backend) -> None:
    network = create_lab(client, backend)
    path = f"/controller/network/{NWID_HEX}"
    status, updated = client.call("POST", path, {"mtu": 1400, "private": False})
    assert status == 200
    assert updated["revision"] == 2 and updated["mtu"] == 1400 and updated["private"] is False
    # Posting the object back (but for the default rules, which a POST re-renders
    # without not/or as the reference does), or nothing, changes nothing.
    back = {k: v for k, v in updated.items() if k != "rules"}
    status, same = client.call("POST", path, back)
    assert status == 200 and same == updated
    assert client.call("POST", path, {})[1] == updated
    assert len(backend.notified) == 2
    assert network["creationTime"] == updated["creationTime"]
    # Any id may be created by POST to its path.
    status, other = client.call("PUT", "/controller/network/00000000000000AB", {"name": "x"})
    assert status == 200 and other["id"] == "00000000000000ab"


BAD_BODIES: list[bytes] = [
    b"{not json",
    b"[1, 2]",
    b'"text"',
    b"NaN",
    b'{"name": null}',
    b'{"private": "maybe"}',
    b'{"mtu": "big"}',
    b'{"routes": [{"target": "10.0.0.0"}]}',
    b'{"routes": [{"target": "10.0.0.0/8", "via": "fd00::1"}]}',
    b'{"ipAssignmentPools": [{"ipRangeStart": "10.0.0.1", "ipRangeEnd": "fd00::9"}]}',
    b'{"v4AssignMode": 1}',
    b'{"rules": [{"type": "NOT_A_RULE"}]}',
    b'{"dns": "example.com"}',
    b'{"tags": [{"id": "x"}]}',
    b"\xff\xfe",
]


@pytest.mark.parametrize("body", BAD_BODIES)
def test_bad_network_bodies_are_refused(client: Client, backend: Backend, body: bytes) -> None:
    network = create_lab(client, backend)
    notified = list(backend.notified)
    path = f"/controller/network/{NWID_HEX}"
    status, raw = client.raw("POST", path, body)
    assert status == 400
    assert json.loads(raw)["error"]
    assert client.call("GET", path) == (200, network)
    assert backend.notified == notified
    # Nor is a network created by a bad create request.
    status, _ = client.raw("POST", "/controller/network", body)
    assert status == 400
    assert client.call("GET", "/controller/network")[1] == [NWID_HEX]


def test_unknown_network(client: Client) -> None:
    path = "/controller/network/0000000000000001"
    assert client.call("GET", path) == (404, {})
    assert client.call("DELETE", path) == (404, {})
    assert client.call("GET", path + "/member") == (404, {})
    assert client.call("GET", "/unstable" + path + "/member") == (404, {})
    assert client.call("GET", path + "/member/0000000001") == (404, {})
    assert client.call("POST", path + "/member/0000000001", {"authorized": True}) == (404, {})
    assert client.call("GET", "/controller/network") == (200, [])
    assert client.call("GET", "/controller/nope") == (404, {})


def test_delete_network(client: Client, backend: Backend) -> None:
    network = create_lab(client, backend)
    path = f"/controller/network/{NWID_HEX}"
    client.call("POST", path + "/member/4b3bacddb4", {"authorized": True})
    assert client.call("DELETE", path) == (200, network)
    assert client.call("GET", path) == (404, {})
    assert backend.store.list_members(int(NWID_HEX, 16)) == []
    assert backend.notified[-1] == (int(NWID_HEX, 16), None)


# --- members -----------------------------------------------------------------------------


def test_members(client: Client, backend: Backend) -> None:
    create_lab(client, backend)
    base = f"/controller/network/{NWID_HEX}/member"
    assert client.call("GET", base) == (200, {})
    status, a = client.call(
        "POST", base + "/4b3bacddb4", {"authorized": True, "ipAssignments": ["198.19.0.222"]}
    )
    assert status == 200
    # "identity" and the version fields come from the member's own request (B.2).
    assert sorted([*a, "identity"]) == sorted(REF_MEMBER)
    assert a["authorized"] is True and a["lastAuthorizedCredentialType"] == "api"
    assert a["lastAuthorizedTime"] == backend.clock
    assert a["revision"] == 1 and a["ipAssignments"] == ["198.19.0.222"]
    status, b = client.call("PUT", base + "/A49ECF6441", {})
    assert status == 200 and b["id"] == b["address"] == "a49ecf6441" and b["authorized"] is False
    assert client.call("GET", base) == (200, {"4b3bacddb4": 1, "a49ecf6441": 1})
    assert client.call("GET", base + "/4b3bacddb4") == (200, a)
    # Deauthorize.
    status, a2 = client.call("POST", base + "/4b3bacddb4", {"authorized": False})
    assert a2["revision"] == 2 and a2["lastDeauthorizedTime"] == backend.clock
    assert client.call("GET", base) == (200, {"4b3bacddb4": 2, "a49ecf6441": 1})
    nwid = int(NWID_HEX, 16)
    assert backend.notified[1:] == [
        (nwid, 0x4B3BACDDB4),
        (nwid, 0xA49ECF6441),
        (nwid, 0x4B3BACDDB4),
    ]
    # Unstable listings.
    status, listing = client.call("GET", f"/unstable{base}")
    assert status == 200
    assert listing["meta"] == {"totalCount": 2, "authorizedCount": 0}
    assert [m["id"] for m in listing["data"]] == ["4b3bacddb4", "a49ecf6441"]
    status, networks = client.call("GET", "/unstable/controller/network")
    assert networks["meta"] == {"networkCount": 1}
    assert networks["data"][0]["meta"] == {"totalMemberCount": 2, "authorizedMemberCount": 0}
    # Delete.
    assert client.call("DELETE", base + "/a49ecf6441") == (200, b)
    assert client.call("DELETE", base + "/a49ecf6441") == (404, {})
    assert client.call("GET", base + "/a49ecf6441") == (404, {})
    assert client.call("GET", base) == (200, {"4b3bacddb4": 2})


@pytest.mark.parametrize(
    "body",
    [
        b'{"authorized": null}',
        b'{"ipAssignments": [5]}',
        b'{"ipAssignments": ["10.0.0.256"]}',
        b'{"tags": [[1]]}',
        b'{"capabilities": ["x"]}',
        b"[]",
        b"{",
    ],
)
def test_bad_member_bodies_are_refused(client: Client, backend: Backend, body: bytes) -> None:
    create_lab(client, backend)
    path = f"/controller/network/{NWID_HEX}/member/4b3bacddb4"
    status, a = client.call("POST", path, {"authorized": True})
    status, raw = client.raw("POST", path, body)
    assert status == 400 and json.loads(raw)["error"]
    assert client.call("GET", path) == (200, a)
    # A bad first POST creates no member.
    other = f"/controller/network/{NWID_HEX}/member/0000000009"
    assert client.raw("POST", other, body)[0] == 400
    assert client.call("GET", other) == (404, {})


def test_answers_for_the_imported_lab_database(client: Client, backend: Backend) -> None:
    backend.store.import_controller_d(CONTROLLER_D)
    for path, (status, body) in API.items():
        if not path.startswith("/controller"):
            continue
        got_status, got = client.call("GET", path)
        assert got_status == status, path
        if path == "/controller":
            assert got == dict(body, clock=got["clock"])
        else:
            assert json.dumps(got, sort_keys=True) == json.dumps(body, sort_keys=True), path


# --- durability ----------------------------------------------------------------------------

THREADS = 4
MEMBERS_PER_THREAD = 5
MAX_REQUESTS_PER_THREAD = 200
KILL_AFTER_ACKS = 120
DURABILITY_NWID = f"{CTRL:010x}00d00d"


def _child_main(db_path: str, port_file: str) -> None:
    """Serve the controller API over the store at ``db_path`` until killed."""
    store = open_store(db_path)
    router = make_router(Backend(store, clock=None))

    async def serve() -> None:
        server = ApiServer(router)
        await server.start(["127.0.0.1"], 0)
        tmp = port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(server.bound[0][1]))
        os.replace(tmp, port_file)
        await asyncio.Event().wait()

    asyncio.run(serve())


@dataclass
class Burst:
    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: int = 0
    killed: bool = False
    # address -> names sent, in order; and the index of the last acknowledged one.
    sent: dict[int, list[str]] = field(default_factory=dict)
    last_ack: dict[int, int] = field(default_factory=dict)
    ack_revision: dict[int, int] = field(default_factory=dict)


def test_acknowledged_writes_survive_kill_9(tmp_path: Path, store_location: str) -> None:
    db = store_location
    port_file = tmp_path / "port"
    log = open(tmp_path / "child.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, __file__, str(db), str(port_file)],
        stdout=log,
        stderr=log,
        # Run as a script, this file finds tests/locations.py through PYTHONPATH.
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])},
    )
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert proc.poll() is None, (tmp_path / "child.log").read_text()
            assert time.monotonic() < deadline, "child did not start"
            time.sleep(0.05)
        client = Client(int(port_file.read_text()))
        created = client.call("POST", f"/controller/network/{DURABILITY_NWID}", {"name": "d"})
        assert created[0] == 200
        burst = Burst()

        def writer(k: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=TIMEOUT)
            try:
                for i in range(MAX_REQUESTS_PER_THREAD):
                    address = 0x1000000000 + k * 0x100 + i % MEMBERS_PER_THREAD
                    name = f"t{k}-{i}"
                    with burst.lock:
                        burst.sent.setdefault(address, []).append(name)
                    body = json.dumps({"name": name, "authorized": i % 3 != 0})
                    path = f"/controller/network/{DURABILITY_NWID}/member/{address:010x}"
                    conn.request("POST", path, body=body, headers={"X-ZT1-Auth": TOKEN})
                    resp = conn.getresponse()
                    answer = json.loads(resp.read())
                    if resp.status != 200:
                        return
                    with burst.lock:
                        burst.last_ack[address] = len(burst.sent[address]) - 1
                        burst.ack_revision[address] = answer["revision"]
                        burst.acked += 1
                        if burst.acked >= KILL_AFTER_ACKS and not burst.killed:
                            burst.killed = True
                            os.kill(proc.pid, signal.SIGKILL)
            except (OSError, http.client.HTTPException, ValueError):
                return  # the server died mid-request
            finally:
                conn.close()

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        assert burst.killed, f"only {burst.acked} writes acknowledged"
        assert proc.wait(TIMEOUT) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(TIMEOUT)
        log.close()

    with contextlib.closing(open_store(db)) as store:
        nwid = int(DURABILITY_NWID, 16)
        assert store.get_network(nwid) is not None
        for address, index in burst.last_ack.items():
            member = store.get_member(nwid, address)
            assert member is not None, f"{address:010x} acknowledged but lost"
            # The last acknowledged write, or one sent after it (committed, then killed
            # before its answer went out).
            assert member["name"] in burst.sent[address][index:], f"{address:010x}"
            assert member["revision"] >= burst.ack_revision[address]


if __name__ == "__main__":
    _child_main(sys.argv[1], sys.argv[2])
