"""The local API against hostile local callers, on a real daemon process (issue 11, 2-5).

One ztone daemon (its own private planet, itself the root) on 127.0.0.1; the tests
open bounded numbers of TCP connections to its API port and nothing else. Every wait
is bounded and generous: the assertions are about whether the API answers (and what
it wrote), never about how fast.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import (
    Daemon,
    daemons,
    free_port,
    make_home,
    make_planet,
    vector_identity,
    wait_until,
)

ANSWER_TIMEOUT = 30.0
NWID = "8056c2e21c000001"


class Node:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.port = daemon.port
        self.token = daemon.token()

    def request(
        self, method: str, path: str, body: bytes | None = None, *, token: bool = True
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=ANSWER_TIMEOUT)
        try:
            headers = {"X-ZT1-Auth": self.token} if token else {}
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def status_answers(self) -> bool:
        status, body = self.request("GET", "/status")
        return status == 200 and json.loads(body)["address"] == self.address()

    def address(self) -> str:
        return (self.daemon.home / "identity.public").read_text()[:10]


def _start(home: Path, port: int) -> Daemon:
    d = Daemon(home, port)
    d.wait_for_file("zerotier-one.port")
    assert wait_until(lambda: _api_up(port), 30), d.log.read_text()
    return d


def _api_up(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    secret, public = vector_identity(0)
    port = free_port()
    planet = make_planet(tmp_path, public, port)
    home = make_home(tmp_path / "root", planet, secret)
    with daemons() as started:
        d = _start(home, port)
        started.append(d)
        yield Node(d)


def _log(node: Node) -> str:
    return node.daemon.log.read_text(errors="replace")


# --- item 2: what POST /config/settings writes, the daemon can read back -------------------


REFUSED_SETTINGS = [
    (b'{"mtu": 1e999}', "mtu"),
    (b'{"primaryPort": 1e999}', "primaryPort"),
    (b'{"lowBandwidthMode": -1e999}', "lowBandwidthMode"),
    (b'{"authorized": true}', "authorized"),
    (b'{"name": "x"}', "name"),
    (b'{"routes": []}', "routes"),
    (b'{"rules": [{"type": "ACTION_DROP"}]}', "rules"),
    (b'{"softwareUpdateChannel": "\\ud800"}', "softwareUpdateChannel"),
    (b'{"primaryPort": 70000}', "primaryPort"),
]


def test_config_settings_refuses_what_could_not_be_read_back(node: Node) -> None:
    conf = node.daemon.home / "local.conf"
    before = conf.read_bytes()
    for body, key in REFUSED_SETTINGS:
        status, answer = node.request("POST", "/config/settings", body)
        assert status == 400, (body, answer)
        assert key in json.loads(answer)["error"], (body, answer)
        assert conf.read_bytes() == before, body
        # A valid change next to a bad one is not written either.
        both = b'{"lowBandwidthMode": true, ' + body[1:]
        status, answer = node.request("POST", "/config/settings", both)
        assert status == 400, (both, answer)
        assert conf.read_bytes() == before, both
    assert node.status_answers()


def test_config_settings_written_file_restarts(node: Node, tmp_path: Path) -> None:
    status, answer = node.request(
        "POST",
        "/config/settings",
        b'{"lowBandwidthMode": true, "softwareUpdateChannel": "b\\u00e9ta"}',
    )
    assert (status, answer) == (200, b"{}")
    for bad in (b'{"mtu": 1e999}', b'{"authorized": true}'):
        assert node.request("POST", "/config/settings", bad)[0] == 400
    written = json.loads((node.daemon.home / "local.conf").read_text())
    assert written["settings"]["lowBandwidthMode"] is True
    assert written["settings"]["softwareUpdateChannel"] == "b\u00e9ta"
    assert "mtu" not in written["settings"] and "authorized" not in written["settings"]
    # Every other kind of state the API writes, at the edges of what it accepts.
    for nwid in ("0000000000000000", "ffffffffffffffff"):
        assert node.request("POST", f"/network/{nwid}", b'{"allowDNS": true}')[0] == 200
    assert node.request("POST", "/moon/ffffffffff", b'{"seed": "ffffffffff"}')[0] == 200
    member = "/controller/network/0000000000000000/member/0000000000"
    name = '{"name": "\\u00e9\\ud83d\\ude00 ' + "x" * 10000 + '"}'
    assert node.request("POST", "/controller/network/0000000000000000", name.encode())[0] == 200
    assert node.request("POST", member, b'{"authorized": true, "name": "\\ud83d\\ude00"}')[0] == 200
    assert node.daemon.stop() == 0
    again = _start(node.daemon.home, node.port)
    try:
        restarted = Node(again)
        assert restarted.status_answers()
        status, body = restarted.request("GET", "/network/ffffffffffffffff")
        assert status == 200 and json.loads(body)["allowDNS"] is True
        status, body = restarted.request("GET", member)
        assert status == 200 and json.loads(body)["name"] == "\U0001f600"
        assert (
            json.loads(restarted.request("GET", "/status")[1])["config"]["settings"][
                "softwareUpdateChannel"
            ]
            == "b\u00e9ta"
        )
    finally:
        assert again.stop() == 0
    assert "Traceback" not in again.log.read_text(errors="replace")


# --- item 5: bad JSON of any kind is 400 on every route, never a traceback ---------------


DEEP = b"[" * 100_000 + b"]" * 100_000


BAD_BODIES = {
    "deep-array": DEEP,
    "deep-object": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "invalid": b"{not json",
    "overflow": b'{"allowDNS": 1e999}',
    "not-utf8": b"\xff",
    "surrogate": b'{"name": "\\udc00", "allowDNS": true}',
}
BODY_PATHS = [
    f"/network/{NWID}",
    "/config/settings",
    "/moon/0000000001",
    "/controller/network",
    "/controller/network/" + "3a46f1bf30" + "000001",
]


def test_bad_json_is_400_everywhere(node: Node) -> None:
    for path in BODY_PATHS:
        for name, body in BAD_BODIES.items():
            status, answer = node.request("POST", path, body)
            assert status == 400, (path, name, answer[:200])
            assert json.loads(answer)["error"], (path, name)
    assert "Traceback" not in _log(node)
    assert node.status_answers()
    # Nothing was joined, created or changed by the refused requests.
    assert node.request("GET", f"/network/{NWID}")[0] == 404
    assert node.request("GET", "/controller/network") == (200, b"[]")


# --- item 3: idle and slow connections cannot lock anyone out ------------------------------


def _hold(port: int, count: int) -> list[socket.socket]:
    held = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT)
        held.append(s)
    return held


def test_idle_connections_do_not_lock_out_an_authorized_client(node: Node) -> None:
    held = _hold(node.port, 200)  # more than the API's connection cap
    try:
        time.sleep(0.5)
        assert node.status_answers()
        assert node.status_answers()
    finally:
        for s in held:
            s.close()


def test_slowloris_does_not_lock_out_and_is_cut_off(node: Node) -> None:
    held = _hold(node.port, 120)
    try:
        for s in held:
            s.sendall(b"GET /status HTTP/1.1\r\n")
        stop = threading.Event()

        def dribble() -> None:
            # One header byte per connection every 0.5 s, for at most 25 s.
            for _ in range(50):
                for s in held:
                    try:
                        s.sendall(b"X")
                    except OSError:
                        pass
                if stop.wait(0.5):
                    return

        t = threading.Thread(target=dribble, daemon=True)
        t.start()
        try:
            time.sleep(1.0)
            assert node.status_answers()
            # A dribbling connection is closed long before it could finish its head:
            # the server ends it (an answer then EOF, or a reset) within 20 s.
            s = held[-1]
            s.settimeout(20.0)
            got = b""
            try:
                while chunk := s.recv(4096):
                    got += chunk
            except ConnectionResetError:
                pass
            assert got == b"" or got.startswith(b"HTTP/1.1 408"), got[:100]
        finally:
            stop.set()
            t.join(30)
        assert node.status_answers()
    finally:
        for s in held:
            s.close()


# --- item 4: a token-less pipelined flood costs the daemon almost nothing ------------------


def test_pipelined_tokenless_flood(node: Node) -> None:
    one = b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n"
    burst = one * (1_000_000 // len(one))  # ~1 MB of pipelined requests per connection
    flooders = _hold(node.port, 16)
    sent = [0] * len(flooders)

    def flood(i: int, s: socket.socket) -> None:
        s.settimeout(0.5)
        view = memoryview(burst)
        end = time.monotonic() + 15
        while view and time.monotonic() < end:
            try:
                n = s.send(view[:65536])
            except TimeoutError:
                continue
            except OSError:
                return
            sent[i] += n
            view = view[n:]

    threads = [threading.Thread(target=flood, args=(i, s), daemon=True)
               for i, s in enumerate(flooders)]  # fmt: skip
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        assert node.status_answers()
        for t in threads:
            t.join(30)
        assert node.status_answers()
        # The daemon answered each token-less connection once and closed it, instead
        # of parsing and answering its whole pipelined backlog.
        for s in flooders:
            s.settimeout(ANSWER_TIMEOUT)
            got = b""
            try:
                while (chunk := s.recv(65536)) and len(got) < 1_000_000:
                    got += chunk
            except (ConnectionResetError, TimeoutError):
                pass
            assert got.count(b"HTTP/1.1 401") <= 1, got.count(b"HTTP/1.1 401")
    finally:
        for s in flooders:
            s.close()
    assert "Traceback" not in _log(node)
