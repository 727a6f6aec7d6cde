"""The embedded controller loads on first use (issue 17, memory): a node that never
served as a controller keeps none of its modules, and nothing it answers changes.

Unit tests for the start-up decision and the stand-in, then real daemons (child
processes, loopback, a private planet whose root does not answer; as root without
``CAP_NET_ADMIN`` so no port is made on this host): a fresh node's first
``/controller`` call and its first config request load the controller and are answered
as before; a node with a database opens it at start.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import cast

import pytest
from daemon_harness import Daemon, daemons, free_port, make_home, make_planet, vector_identity
from daemon_harness import wait_until as wait

from ztone.cli import cli
from ztone.controller.store import DB_FILENAME
from ztone.service.controller import EmbeddedController
from ztone.service.controller_lazy import SQLITE_FILENAME, LazyController, needed_at_start

# --- the start-up decision -----------------------------------------------------------


def test_the_sqlite_file_name_is_the_stores() -> None:
    assert SQLITE_FILENAME == DB_FILENAME


def test_only_a_store_that_is_there_or_configured_opens_at_start(tmp_path: Path) -> None:
    d = tmp_path / "controller.d"
    default = str(d)
    assert not needed_at_start(default, default)  # no controller.d at all
    (d / "network").mkdir(parents=True)
    assert not needed_at_start(default, default)  # zerotier-one's empty tree
    (d / "network" / "8056c2e21c000001.json").write_text("{}")
    assert needed_at_start(default, default)  # networks to import
    (d / "network" / "8056c2e21c000001.json").unlink()
    (d / SQLITE_FILENAME).write_bytes(b"")
    assert needed_at_start(default, default)  # ztone's own database
    assert needed_at_start(str(tmp_path / "elsewhere"), default)  # controllerDbPath
    assert needed_at_start("postgres:host=db", default)
    assert needed_at_start("postgresql://db/ztone", default)


# --- the stand-in --------------------------------------------------------------------


class _Gates:
    """The gates of an EmbeddedController, recorded (the real one needs a store)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def rate_gate(self, nwid: int, member: int, now: int) -> bool:
        self.calls.append("rate_gate")
        return True

    def recently_authorized(self, nwid: int, member: int, now: int) -> bool:
        self.calls.append("recently_authorized")
        return True

    def note_authorized(self, nwid: int, member: int, now: int) -> None:
        self.calls.append("note_authorized")

    def last_requests(self, nwid: int) -> dict[int, int]:
        return {1: 2}


def test_the_stand_in_loads_once_and_only_for_a_request() -> None:
    gates = _Gates()
    real = cast(EmbeddedController, gates)
    loads: list[int] = []

    def load() -> EmbeddedController | None:
        loads.append(1)
        return real

    lazy = LazyController(load)
    # Before any request: nobody was authorized, nothing was asked, nothing loads.
    assert not lazy.recently_authorized(1, 2, 0)
    lazy.note_authorized(1, 2, 0)
    assert lazy.last_requests(1) == {}
    # The rate gate runs inside the node: it loads nothing, but gates as the real one.
    assert lazy.rate_gate(1, 2, 0)
    assert not lazy.rate_gate(1, 2, 1000)
    assert lazy.rate_gate(1, 2, 1001)
    assert lazy.rate_gate(1, 3, 1001)
    assert loads == [] and lazy.loaded is None and not lazy.failed
    # The request's ConfigRequested loads it; the gate's entries go to the controller.
    assert lazy.get() is real and loads == [1]
    assert lazy.get() is real and loads == [1]
    assert gates.calls == ["rate_gate", "rate_gate"]
    assert lazy.rate_gate(1, 2, 5000)
    assert lazy.recently_authorized(1, 2, 0)
    assert lazy.last_requests(1) == {1: 2}
    assert gates.calls[2:] == ["rate_gate", "recently_authorized"]


def test_the_early_gate_is_bounded() -> None:
    lazy = LazyController(lambda: None)
    lazy.max_early = 3
    for member in range(10):
        assert lazy.rate_gate(1, member, 0)
    assert not lazy.rate_gate(1, 9, 1)  # kept: among the newest
    assert lazy.rate_gate(1, 0, 1)  # dropped as the oldest: asks again


def test_a_failed_load_is_no_controller() -> None:
    loads: list[int] = []

    def load() -> EmbeddedController | None:
        loads.append(1)
        return None

    lazy = LazyController(load)
    assert lazy.get() is None and lazy.failed and loads == [1]
    assert not lazy.rate_gate(1, 2, 0)
    assert lazy.get() is None and loads == [1]


# --- real daemons ---------------------------------------------------------------------


def _prefix() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("as root this needs setpriv (util-linux) to drop CAP_NET_ADMIN")
    return [setpriv, "--bounding-set=-net_admin", "--inh-caps=-net_admin"]


def _http(port: int, token: str, method: str, path: str, body: object = None) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, method=method, headers={"X-ZT1-Auth": token}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _metric(port: int, token: str, name: str) -> float:
    status, text = _http(port, token, "GET", "/metrics")
    assert status == 200
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m is not None, name
    return float(m.group(1))


def _start(tmp_path: Path, name: str = "node") -> tuple[Daemon, Path, str]:
    root_port, port = free_port(), free_port()
    _, root_public = vector_identity(0)
    secret, public = vector_identity(2)
    home = tmp_path / name
    if not home.exists():
        make_home(home, make_planet(tmp_path, root_public, root_port), secret)
    daemon = Daemon(home, port, prefix=_prefix())
    daemon.wait_for_file("zerotier-one.port")
    assert wait(lambda: cli.main([f"-D{home}", "info"], stdout=io.StringIO()) == 0, 30)
    return daemon, home, public[:10]


def test_the_first_controller_call_loads_it(tmp_path: Path) -> None:
    with daemons() as started:
        daemon, home, address = _start(tmp_path)
        started.append(daemon)
        db = home / "controller.d" / DB_FILENAME
        token = daemon.token()
        assert not db.exists()
        assert "controller store:" not in daemon.log.read_text()
        # The controller_* families are there, at zero, as for an unused controller.
        assert _metric(daemon.port, token, "controller_network_count") == 0
        assert _metric(daemon.port, token, "controller_network_config_request") == 0
        assert _http(daemon.port, token, "GET", "/controller/nope") == (404, "{}")
        status, text = _http(daemon.port, token, "GET", "/controller")
        assert status == 200
        assert re.fullmatch(
            r'\{\n\t"controller": true,\n\t"apiVersion": 4,\n\t"clock": \d+,\n'
            r'\t"databaseReady": true\n\}\n',
            text,
        )
        assert db.exists()
        status, text = _http(daemon.port, token, "POST", f"/controller/network/{address}______")
        assert status == 200, text
        nwid = json.loads(text)["id"]
        assert _http(daemon.port, token, "GET", "/controller/network") == (200, f'["{nwid}"]')
        assert _metric(daemon.port, token, "controller_network_count") == 1
        daemon.stop()
        started.clear()
        # Restarted with a database: the controller is up at once.
        daemon, home, _ = _start(tmp_path)
        started.append(daemon)
        assert "controller store:" in daemon.log.read_text()
        assert _metric(daemon.port, daemon.token(), "controller_network_count") == 1


def test_the_first_config_request_loads_it(tmp_path: Path) -> None:
    with daemons() as started:
        daemon, home, address = _start(tmp_path)
        started.append(daemon)
        token = daemon.token()
        # Our own network, unknown to our controller: it must load to say NOT_FOUND.
        nwid = f"{address}00abcd"
        assert cli.main([f"-D{home}", "join", nwid], stdout=io.StringIO()) == 0

        def not_found() -> bool:
            out = io.StringIO()
            cli.main([f"-D{home}", "listnetworks"], stdout=out)
            return "NOT_FOUND" in out.getvalue()

        assert wait(not_found, 30), daemon.log.read_text()
        assert "controller store:" in daemon.log.read_text()
        assert (home / "controller.d" / DB_FILENAME).exists()
        assert _metric(daemon.port, token, "controller_network_config_request") >= 1
