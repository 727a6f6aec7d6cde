"""Where a ztone daemon's memory goes: ``sudo python3 bench/memory.py [--runs N]``.

Prints four things (numbers only; asserts nothing):

1. **Per package**, each imported alone in a fresh interpreter: the RSS it adds
   (``VmRSS`` after minus before), what ``tracemalloc`` saw allocated by the import
   (current and peak), the modules it brought in, and the import's wall time. Then the
   same packages imported one after the other in the daemon's order, each line the RSS
   it adds on top of the lines above (shared dependencies count once, where the daemon
   first meets them).
2. **Real daemons, idle**, in network namespaces on one bridge (198.18.0.0/24, no
   default route; a private planet): a ztone root, a ztone controller, member ``a``
   (root, with a TAP port for the network it joined) and member ``c`` (the same, but
   without ``CAP_NET_ADMIN``: it joins the network with no port, as a ``-U`` daemon in
   a container would). After the network is up on both members and ``--settle``
   seconds of quiet (default 12: longer than the daemon's heap-trim period,
   ``ztone.service.collector.TRIM_PERIOD``, so the idle state is measured, not the
   join's leftovers), each daemon's ``VmRSS`` and ``VmHWM``; ``--runs`` times, with
   min/median/max. Then, for the last run, where each daemon's RSS sits
   (``/proc/PID/smaps``): malloc's heap, anonymous mappings (CPython's arenas, large
   buffers), the interpreter and libcrypto, other files.
3. **What the steady state has imported**: every daemon runs ``ztone.cli.daemon``'s
   ``main`` under a few lines of driver (:data:`DRIVER`) whose only addition is a
   ``SIGWINCH`` handler that writes ``sys.modules`` to a file; the bench sends the
   signal once the network is up and prints, per daemon, the module count and the
   top-level packages.
4. **A first port's link configuration**, step by step in a fresh process in a
   namespace of its own (:data:`PORT_TIMING`): what joining costs in time and memory.

``--no-lab`` prints only part 1 (no root needed), ``--no-packages`` parts 2 to 4.
``ZTONE_BENCH_PYTHONPATH`` runs everything from another source tree (before/after
comparisons). Needs root, ``ip`` and ``setpriv`` for parts 2 to 4; packets go only
between the namespaces it makes, which are torn down at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' namespace helpers

from netns.netns import Namespace, bridge_namespaces  # noqa: E402

PORT = 9993
IDENTITIES = ROOT / "tests" / "vectors" / "identities.json"

PACKAGES = [
    "asyncio",
    "ssl",
    "concurrent.futures",
    "h11",
    "cryptography.hazmat.primitives.ciphers.aead",
    "cryptography.hazmat.primitives.asymmetric.x25519",
    "lz4.block",
    "msgspec",
    "pyroute2",
    "ztone.node.node",
    "ztone.service.config",
    "ztone.service.api.http",
    "ztone.osdep.linux",
    "ztone.service.runner",
    "ztone.cli.daemon",
    "sqlite3",
    "ztone.controller.objects",
    "ztone.controller.store",
    "ztone.service.controller",
]
"""Part 1's packages; the order is the order of the cumulative listing (the controller
last: a daemon loads it on first use, see ``ztone.service.controller_lazy``). An older
tree that still imports pydantic shows it in the first line that imports it."""

NOT_IN_DAEMON = (
    "ssl",
    "pyroute2",
    "cryptography.hazmat.primitives.ciphers.aead",
    "cryptography.hazmat.primitives.asymmetric.x25519",
)
"""Measured alone for reference, left out of the cumulative listing: asyncio is
imported with ssl hidden, ports are configured with ``ip``, not pyroute2, and with
``ztone._speedups`` built C25519 and AES run on the system libcrypto, not the
``cryptography`` package (where a tree still imports it, it shows in ztone.node.node's
line)."""

MEASURE_ONE = r"""
import importlib, sys, time
def rss():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
name, mode = sys.argv[1], sys.argv[2]
if mode == 'trace':
    import tracemalloc
    tracemalloc.start()
    importlib.import_module(name)
    current, peak = tracemalloc.get_traced_memory()
    print(current, peak)
else:
    before, n = rss(), len(sys.modules)
    t = time.perf_counter()
    importlib.import_module(name)
    t = time.perf_counter() - t
    print(rss() - before, len(sys.modules) - n, round(t * 1e6))
"""

MEASURE_CHAIN = r"""
import gc, importlib, sys
def rss():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
print('python', rss(), len(sys.modules))
for name in sys.argv[1:]:
    if name == 'asyncio':  # as ztone.cli.daemon imports it: with ssl hidden
        sys.modules['ssl'] = None
        importlib.import_module(name)
        del sys.modules['ssl']
    importlib.import_module(name)
    gc.collect()
    print(name, rss(), len(sys.modules))
"""

DRIVER = r"""
import signal, sys
def dump(signum, frame):
    with open(sys.argv[1], 'w') as f:
        f.write('\n'.join(sorted(sys.modules)))
signal.signal(signal.SIGWINCH, dump)
from ztone.cli.daemon import main
sys.exit(main(sys.argv[2:]))
"""
"""The daemon's ``main`` plus a SIGWINCH handler (a signal the daemon leaves alone)
that writes the names in ``sys.modules`` to the file named by the first argument."""


DAEMON_ENV: dict[str, str] = {}
"""``--daemon-env K=V``: added to the daemons' environment (e.g. ``MALLOC_ARENA_MAX``)."""


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    src = os.environ.get("ZTONE_BENCH_PYTHONPATH") or str(ROOT / "src")
    env["PYTHONPATH"] = src
    return env


def per_package() -> None:
    env = python_env()
    print("1. each package imported alone in a fresh python3 (RSS and tracemalloc in MB;")
    print("   ms: wall time of the import on this machine)")
    print(f"{'package':50s} {'+RSS':>6s} {'traced':>7s} {'peak':>6s} {'mods':>5s} {'ms':>6s}")
    for name in PACKAGES:
        r = subprocess.run([sys.executable, "-c", MEASURE_ONE, name, "rss"],
                           check=False, capture_output=True, text=True, env=env,
                           timeout=120)  # fmt: skip
        if r.returncode != 0:
            print(f"{name:50s} not importable: {r.stderr.strip().splitlines()[-1:]}")
            continue
        added_kb, mods, us = (int(x) for x in r.stdout.split())
        t = subprocess.run([sys.executable, "-c", MEASURE_ONE, name, "trace"],
                           check=False, capture_output=True, text=True, env=env,
                           timeout=120)  # fmt: skip
        current, peak = (int(x) for x in t.stdout.split())
        ms = f"{us / 1000:6.0f}"
        print(f"{name:50s} {added_kb / 1024:6.1f} {current / 2**20:7.1f} "
              f"{peak / 2**20:6.1f} {mods:5d} {ms}")  # fmt: skip
    chain = [name for name in PACKAGES if name not in NOT_IN_DAEMON]
    r = subprocess.run([sys.executable, "-c", MEASURE_CHAIN, *chain],
                       check=False, capture_output=True, text=True, env=env,
                           timeout=120)  # fmt: skip
    print("\n   the same, one after the other (RSS each adds to the ones above, MB), without")
    print(f"   {', '.join(NOT_IN_DAEMON)}")
    print("   (the daemon does not load them; asyncio: ssl hidden; cryptography: only")
    print("   without ztone._speedups, else it shows in ztone.node.node's line)")
    prev_kb, prev_mods = 0, 0
    for line in r.stdout.splitlines():
        name, kb_text, mods_text = line.split()
        kb, mods = int(kb_text), int(mods_text)
        added = f"+{(kb - prev_kb) / 1024:5.1f}" if prev_kb else ""
        print(f"   {name:50s} {kb / 1024:6.1f} {added:>7s}  modules {mods} (+{mods - prev_mods})")
        prev_kb, prev_mods = kb, mods


PORT_TIMING = r"""
import ipaddress, json, time
def rss():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
out = {}
t = time.perf_counter()
def lap(name):
    global t
    now = time.perf_counter()
    out[name] = round((now - t) * 1000, 1)
    t = now
from ztone.node.wire.inetaddress import InetAddress
from ztone.osdep.managed import managed_route
before = rss()
start = t = time.perf_counter()
from ztone.osdep.linux.tap import LinuxTapFactory
lap('import the backend')
factory = LinuxTapFactory()
factory.cleanup_stale()
lap('stale cleanup')
tap = factory.create(0x8056C2E21C000001, 0x0289E9300C27, 2800, 'x')
lap('create + alias')
tap.link.add_ip(InetAddress.parse('198.19.0.10/24'))
tap.link.add_ip(InetAddress.parse('fd00:19::10/64'))
lap('2 addresses')
tap.link.add_route(managed_route(ipaddress.ip_network('198.19.1.0/24'),
                                 ipaddress.ip_address('198.19.0.1')))
lap('1 route')
tap.link.ips()
lap('address listing')
out['join, total'] = round((time.perf_counter() - start) * 1000, 1)
out['RSS added MB'] = round((rss() - before) / 1024, 1)
t = time.perf_counter()
tap.close()
factory.close()
lap('leave (close)')
print(json.dumps(out))
"""
"""A port's link configuration, timed step by step in a fresh process (part 4)."""


def port_timing(runs: int) -> None:
    """Part 4: what a join costs in link configuration (first port of the process)."""
    print("\n4. link configuration of a first port, in a fresh process in a namespace (ms)")
    results = []
    for _ in range(runs):
        with Namespace() as ns:
            ns.run(["ip", "link", "set", "lo", "up"])
            r = ns.run(["env", f"PYTHONPATH={python_env()['PYTHONPATH']}", sys.executable,
                        "-c", PORT_TIMING], timeout=120)  # fmt: skip
            results.append(json.loads(r.stdout.strip().splitlines()[-1]))
    for key in results[0]:
        values = [float(x[key]) for x in results]
        print(f"   {key:20s} min {min(values):7.1f}  median {statistics.median(values):7.1f}  "
              f"max {max(values):7.1f}")  # fmt: skip


# --- parts 2 and 3: daemons in namespaces ----------------------------------------


def _identity(i: int) -> str:
    return str(json.loads(IDENTITIES.read_text())["identities"][i]["secret"])


def _public(i: int) -> str:
    return str(json.loads(IDENTITIES.read_text())["identities"][i]["public"])


def wait_until(condition: Any, timeout: float, interval: float = 0.5) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


class Daemon:
    """One daemon under :data:`DRIVER` in namespace ``ns``; ``no_net_admin`` drops
    ``CAP_NET_ADMIN`` from its bounding set (so it cannot make a TAP)."""

    def __init__(self, name: str, ns: Namespace, home: Path, no_net_admin: bool = False) -> None:
        self.name, self.ns, self.home = name, ns, home
        self.dump_file = home.parent / f"{name}.modules"
        log = open(home.parent / f"{name}.log", "ab")  # noqa: SIM115
        env = python_env()
        env["ZTONE_LOG_LEVEL"] = "WARNING"
        env.update(DAEMON_ENV)
        prefix = ["setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin"]
        cmd = [sys.executable, "-c", DRIVER, str(self.dump_file), "-U", f"-p{PORT}", str(home)]
        self.proc = ns.popen([*(prefix if no_net_admin else []), *cmd],
                             stdout=log, stderr=log, env=env)  # fmt: skip

    def pid(self) -> int:
        return int((self.home / "zerotier-one.pid").read_text())

    def where(self) -> dict[str, int]:
        """RSS in KiB by kind of mapping (:func:`rss_by_mapping`)."""
        return rss_by_mapping(Path(f"/proc/{self.pid()}/smaps").read_text())

    def memory(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) in KiB."""
        text = Path(f"/proc/{self.pid()}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
        hwm = int(re.search(r"VmHWM:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
        return rss, hwm

    def modules(self) -> list[str]:
        self.dump_file.unlink(missing_ok=True)
        os.kill(self.pid(), signal.SIGWINCH)
        wait_until(self.dump_file.exists, 10, 0.1)
        time.sleep(0.2)  # written in one call; let it finish
        return self.dump_file.read_text().split("\n")

    def api(self, method: str, path: str, body: object | None = None) -> Any:
        script = (
            "import sys,urllib.request\n"
            "req = urllib.request.Request('http://127.0.0.1:%s%s' % (sys.argv[4], sys.argv[2]),\n"
            "    data=sys.argv[3].encode() or None, method=sys.argv[1],\n"
            "    headers={'X-ZT1-Auth': sys.argv[5]})\n"
            "print(urllib.request.urlopen(req, timeout=20).read().decode())\n"
        )
        try:
            token = (self.home / "authtoken.secret").read_text().strip()
        except OSError:
            return None  # not written yet
        r = self.ns.run([sys.executable, "-c", script, method, path,
                         json.dumps(body) if body is not None else "", str(PORT), token],
                        timeout=60, check=False)  # fmt: skip
        return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else None

    def online(self) -> bool:
        status = self.api("GET", "/status")
        return bool(status and status.get("online"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


NAMES = ["root", "ctrl", "a", "c"]

MAPPING_KINDS = ("heap", "anon", "python", "libcrypto", "other files")


def rss_by_mapping(smaps: str) -> dict[str, int]:
    """RSS in KiB per kind of mapping (:data:`MAPPING_KINDS`) of a ``smaps`` text:
    ``[heap]``; anonymous mappings (CPython's object arenas, large buffers, thread
    stacks); the interpreter (``python3*``/``libpython*``); libcrypto; every other
    file (C libraries, extension modules, locale data)."""
    out = dict.fromkeys(MAPPING_KINDS, 0)
    kind = "anon"
    for line in smaps.splitlines():
        head = line.split(None, 5)
        if head and "-" in head[0] and not head[0].endswith(":"):
            name = head[5].strip() if len(head) > 5 else ""
            base = name.rsplit("/", 1)[-1]
            if name == "[heap]":
                kind = "heap"
            elif not name or name.startswith("["):
                kind = "anon"
            elif base.startswith(("python3", "libpython3")):
                kind = "python"
            elif base.startswith("libcrypto"):
                kind = "libcrypto"
            else:
                kind = "other files"
        elif head and head[0] == "Rss:":
            out[kind] += int(head[1])
    return out


Memory = dict[str, tuple[int, int]]
Where = dict[str, dict[str, int]]


def one_lab(settle: float) -> tuple[Memory, dict[str, list[str]], dict[str, str], Where]:
    """One lab: (VmRSS, VmHWM) per daemon, every daemon's modules, the members' port
    status, where each daemon's RSS sits."""
    with tempfile.TemporaryDirectory() as tmp, bridge_namespaces(4, "198.18.0.0/24",
                                                                 None) as lan:  # fmt: skip
        work = Path(tmp)
        homes = {n: work / n for n in NAMES}
        planet = work / "planet"
        subprocess.run([sys.executable, "-m", "ztone.cli.idtool", "genplanet", "--out", str(planet),
                        "--id", "0x5a5a", f"{_public(0)}@{lan.v4[0].ip}/{PORT}"],
                       check=True, env=python_env(), capture_output=True)  # fmt: skip
        for i, h in enumerate(homes.values()):
            h.mkdir()
            shutil.copy(planet, h / "planet")
            (h / "local.conf").write_text(json.dumps({"settings": {"allowSecondaryPort": False}}))
            (h / "identity.secret").write_text(_identity(i))
        daemons = {n: Daemon(n, lan.hosts[i], homes[n], no_net_admin=(n == "c"))
                   for i, n in enumerate(NAMES)}  # fmt: skip
        try:
            for d in daemons.values():
                if not wait_until(d.online, 90):
                    raise RuntimeError(f"{d.name} did not come online; see {d.home.parent}")
            ctrl = daemons["ctrl"]
            ctrl_addr = _public(1)[:10]
            net = ctrl.api("POST", f"/controller/network/{ctrl_addr}______", {
                "name": "memory", "private": True, "v4AssignMode": {"zt": True},
                "ipAssignmentPools": [{"ipRangeStart": "198.19.0.10",
                                       "ipRangeEnd": "198.19.0.250"}],
                "routes": [{"target": "198.19.0.0/24", "via": None}],
            })  # fmt: skip
            nwid = net["id"]
            for i, n in ((2, "a"), (3, "c")):
                daemons[n].api("POST", f"/network/{nwid}", {})
                addr = _public(i)[:10]
                wait_until(lambda a=addr: ctrl.api("GET", f"/controller/network/{nwid}/member/{a}")
                           is not None, 30)  # fmt: skip
                ctrl.api("POST", f"/controller/network/{nwid}/member/{addr}", {"authorized": True})

            def network(n: str) -> dict[str, Any] | None:
                nets = daemons[n].api("GET", "/network") or []
                # c has no port: zerotier-one's PORT_ERROR, with its config all the same
                return next((x for x in nets if x["id"] == nwid
                             and x["status"] in ("OK", "PORT_ERROR") and x["netconfRevision"]),
                            None)  # fmt: skip

            if not wait_until(lambda: network("a") and network("c"), 60):
                seen = {n: daemons[n].api("GET", "/network") for n in ("a", "c")}
                raise RuntimeError(f"the members did not get their config: {seen}")
            ports = {}
            for n in ("a", "c"):
                got = network(n) or {}
                ports[n] = f"port {got.get('portDeviceName') or '-'} error {got.get('portError')}"
            time.sleep(settle)
            memory = {n: d.memory() for n, d in daemons.items()}
            where = {n: d.where() for n, d in daemons.items()}
            modules = {n: daemons[n].modules() for n in NAMES}
            return memory, modules, ports, where
        finally:
            for d in daemons.values():
                d.stop()


def lab(runs: int, settle: float) -> int:
    for tool in ("ip", "setpriv"):
        if shutil.which(tool) is None:
            print(f"parts 2 and 3 skipped: {tool} is required")
            return 2
    if os.geteuid() != 0:
        print("parts 2 and 3 skipped: run as root (network namespaces)")
        return 2
    results = []
    for i in range(runs):
        memory, modules, ports, where = one_lab(settle)
        results.append(memory)
        print(f"   run {i + 1}: " + ", ".join(
            f"{n} {memory[n][0] / 1024:.1f}/{memory[n][1] / 1024:.1f}" for n in NAMES))  # fmt: skip
    print("\n2. idle daemons, one network joined (MB; VmRSS then VmHWM; min / median / max)")
    for n, what in (("root", "root (no network)"), ("ctrl", "controller (no network joined)"),
                    ("a", f"member a, TAP ({ports['a']})"),
                    ("c", f"member c, no CAP_NET_ADMIN ({ports['c']})")):  # fmt: skip
        rss = [r[n][0] / 1024 for r in results]
        hwm = [r[n][1] / 1024 for r in results]
        print(f"   {what:55s} RSS {min(rss):5.1f} / {statistics.median(rss):5.1f} / "
              f"{max(rss):5.1f}   HWM {min(hwm):5.1f} / {statistics.median(hwm):5.1f} / "
              f"{max(hwm):5.1f}")  # fmt: skip
    print("\n   where the RSS sits (last run, MB): " + ", ".join(MAPPING_KINDS))
    for n in NAMES:
        print(f"   {n:5s} " + "  ".join(f"{where[n][k] / 1024:5.1f}" for k in MAPPING_KINDS))
    print("\n3. what the idle daemons have imported (last run)")
    for n in NAMES:
        mods = modules[n]
        top = Counter(m.split(".")[0] for m in mods)
        listed = ", ".join(f"{k} {v}" for k, v in sorted(top.items(), key=lambda x: (-x[1], x[0]))
                           if v > 1 or k in WATCHED)  # fmt: skip
        print(f"   {n}: {len(mods)} modules; {listed}")
        print(f"      of note: {', '.join(k for k in WATCHED if k in top) or 'none'}")
    port_timing(runs)
    return 0


WATCHED = (
    "pydantic",
    "msgspec",
    "pyroute2",
    "cryptography",
    "ssl",
    "sqlite3",
    "h11",
    "lz4",
    "asyncio",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="labs to measure (default 3)")
    parser.add_argument("--settle", type=float, default=12.0,
                        help="seconds of quiet before measuring (default 12)")  # fmt: skip
    parser.add_argument("--no-lab", action="store_true", help="only the per-package figures")
    parser.add_argument("--no-packages", action="store_true", help="only the daemons")
    parser.add_argument("--daemon-env", action="append", default=[], metavar="K=V",
                        help="add K=V to the daemons' environment (repeatable)")  # fmt: skip
    args = parser.parse_args()
    for item in args.daemon_env:
        key, _, value = item.partition("=")
        DAEMON_ENV[key] = value
    print(f"python {sys.version.split()[0]}, ztone from {python_env()['PYTHONPATH']}"
          + (f", daemons with {DAEMON_ENV}" if DAEMON_ENV else ""))  # fmt: skip
    if not args.no_packages:
        per_package()
    if args.no_lab:
        return 0
    print()
    return lab(args.runs, args.settle)


if __name__ == "__main__":
    sys.exit(main())
