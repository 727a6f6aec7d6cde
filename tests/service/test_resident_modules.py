"""What an idle daemon keeps imported (issue 17, memory): what only some daemons use
stays out until it is used.

A real daemon (``ztone.cli.daemon.main``, ``-U``, loopback, a private planet whose root
does not answer, one network joined, no ``CAP_NET_ADMIN`` so its port cannot be made
and it stays without one) runs in a child process under a few lines of driver whose
only addition is a ``SIGWINCH`` handler writing ``sys.modules`` to a file. Once it is
up, the test asks for that list and checks it against :data:`LAZY`: modules whose
loading at start-up would cost memory that every daemon then keeps (see
``bench/memory.py`` for the figures). It checks names, not memory figures; modules not
named here may come and go freely.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_harness import free_port, make_home, make_planet, vector_identity, wait_until

from ztone.crypto import c25519

NWID = "8056c2e21c000001"

LAZY = {
    "pyroute2": "a netlink library: ports are configured with ip, only ztone-cli dump uses it",
    "ztone.cli.cli": "ztone-cli (and http.client): loaded only for `ztone -q`",
    "ztone.cli.idtool": "ztone-idtool: loaded only for `ztone -i`",
    "ssl": "asyncio's TLS, which the daemon never uses",
    "pydantic": "no longer used (msgspec checks JSON): ~8 MB when it was resident",
    "ztone.controller": "the embedded controller (its records, the store): first use",
    "ztone.service.controller": "EmbeddedController: loaded with the controller",
    "ztone.service.api.controller_routes": "the /controller handlers: loaded with the controller",
    "sqlite3": "the controller's store: loaded with the controller",
    "ztone.service.userspace": "SOCKS5 servers and forwards: loaded when configured "
    "(a user-space port alone reports its backend without them)",
    "ztone.service.socks5": "the SOCKS5 server: loaded when configured",
    "ztone.service.stack_relay": "the front-ends' relays: loaded when configured",
    "http.cookies": "the web UI's session cookie: parsed when a request carries one",
    "http": "the standard http package: the API's status phrases are ztone's own",
    "mimetypes": "the web UI: content types of <home>/app files, looked up when served",
    "ztone.netstack.tcp": "the user-space TCP engine: loaded by a port's first TCP "
    "listener or connection",
    "ztone.netstack.tcp_socket": "the user-space TCP sockets: loaded with the engine",
}

PORTS = {
    "ztone.osdep.linux.tun": "the TAP device and its offloads: loaded with the first port",
    "ztone.osdep.linux.gro": "TCP segment merging for a TAP: loaded with the TAP code",
    "ztone.osdep.linux.tso": "TCP segmentation for a TAP: loaded with the TAP code",
}
"""Held only by a daemon that has tried to make a port: a root or a controller that
joins nothing never does."""

USERSPACE = {
    "ztone.netstack": "the user-space network stack: loaded for a user-space port",
    "ztone.osdep.userspace": "user-space ports: loaded when a network needs one",
}
"""Held only by a daemon with a user-space port (the daemon of :func:`resident_modules`
falls back to one, since it cannot make a TAP) or a SOCKS5 server or forward configured
(then :data:`LAZY`'s front-end modules are loaded too)."""

# ZTONE_TEST_SRC: run the daemon from another tree (to see this test fail on an older one).
SRC = os.environ.get("ZTONE_TEST_SRC") or str(Path(__file__).resolve().parents[2] / "src")

DRIVER = r"""
import signal, sys
def dump(signum, frame):
    with open(sys.argv[1] + '.tmp', 'w') as f:
        f.write('\n'.join(sorted(sys.modules)))
    import os
    os.replace(sys.argv[1] + '.tmp', sys.argv[1])
signal.signal(signal.SIGWINCH, dump)
from ztone.cli.daemon import main
sys.exit(main(sys.argv[2:]))
"""


def resident_modules(
    tmp_path: Path, env: dict[str, str] | None = None, join: bool = True
) -> set[str]:
    """Start a daemon with one network joined (none without ``join``), let it settle,
    return its sys.modules."""
    root_port, port = free_port(), free_port()
    _, root_public = vector_identity(0)
    secret, _ = vector_identity(2)
    home = make_home(tmp_path / "home", make_planet(tmp_path, root_public, root_port), secret)
    (home / "networks.d").mkdir()
    if join:
        (home / "networks.d" / f"{NWID}.conf").write_bytes(b"")
    out = tmp_path / "modules.txt"
    full_env = {**os.environ, "PYTHONPATH": SRC, "ZTONE_LOG_LEVEL": "INFO", **(env or {})}
    prefix: list[str] = []
    if os.geteuid() == 0:
        # As root the port would be made: a TAP in this (the host's) network namespace.
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("as root this needs setpriv (util-linux) to drop CAP_NET_ADMIN")
        prefix = [setpriv, "--bounding-set=-net_admin", "--inh-caps=-net_admin"]
    log = tmp_path / "daemon.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            [*prefix, sys.executable, "-c", DRIVER, str(out), "-U", f"-p{port}", str(home)],
            stdout=log_file, stderr=subprocess.STDOUT, env=full_env,
        )  # fmt: skip
        try:
            up = wait_until(
                lambda: (home / "zerotier-one.port").exists() or proc.poll() is not None, 60
            )
            assert up and proc.poll() is None, log.read_text()
            # Let it run its first housekeeping and send the join's config request.
            wait_until(lambda: proc.poll() is not None, 2.0)
            proc.send_signal(signal.SIGWINCH)
            assert wait_until(out.exists, 20), log.read_text()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    return set(out.read_text().split("\n"))


def loaded_of(lazy: dict[str, str], modules: set[str]) -> dict[str, str]:
    return {
        name: why
        for name, why in lazy.items()
        if name in modules or any(m.startswith(name + ".") for m in modules)
    }


def test_an_idle_daemon_holds_only_what_it_uses(tmp_path: Path) -> None:
    modules = resident_modules(tmp_path)
    # The list is the running daemon's: its service and the joined network are there.
    assert {"ztone.service.runner", "ztone.node.vl2.controller_link", "asyncio"} <= modules
    if sys.platform.startswith("linux") and not os.environ.get("ZTONE_TAP_BACKEND"):
        # The Linux backend was chosen (its port could not be made).
        assert "ztone.osdep.linux.netlink" in modules
    loaded = loaded_of(LAZY, modules)
    assert not loaded, f"loaded at start-up although an idle daemon never uses them: {loaded}"
    if c25519.NATIVE is not None:
        # Identities and HELLO agreement go through ztone._speedups and the libcrypto the
        # interpreter already holds; AES-GMAC-SIV is native too (issue 17: ~6 MB RSS).
        crypto = sorted(m for m in modules if m == "cryptography" or m.startswith("cryptography."))
        assert not crypto, f"the native path imported the cryptography package: {crypto}"
        # The heap trim is the accelerator's own; ctypes (~0.2 MB) only stands in for it
        # without the accelerator (service/heap.py).
        assert "ctypes" not in modules


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux TAP backend")
def test_a_daemon_on_platform_ports_never_loads_the_user_space_stack(tmp_path: Path) -> None:
    # The platform backend named explicitly: its failing port stays failed (no
    # user-space fallback), as for a daemon whose TAPs work.
    modules = resident_modules(tmp_path, {"ZTONE_TAP_BACKEND": "linux"})
    assert "ztone.osdep.linux.netlink" in modules
    loaded = {**loaded_of(LAZY, modules), **loaded_of(USERSPACE, modules)}
    assert not loaded, f"loaded although no network uses a user-space port: {loaded}"
    assert "ztone.service.userspace_conf" in modules  # the settings are still read


def test_a_daemon_without_networks_never_loads_the_port_code(tmp_path: Path) -> None:
    # A root or a controller: the platform backend is there (it removes stale devices
    # at start) but no port is ever made.
    modules = resident_modules(tmp_path, join=False)
    assert "ztone.service.runner" in modules
    if sys.platform.startswith("linux") and not os.environ.get("ZTONE_TAP_BACKEND"):
        assert "ztone.osdep.linux.stale" in modules
    loaded = {**loaded_of(LAZY, modules), **loaded_of(PORTS, modules)}
    assert not loaded, f"loaded although this daemon has no port: {loaded}"
