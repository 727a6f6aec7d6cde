"""TCP through no-root mode's SOCKS5 beside TCP over a TAP: ``sudo python3 bench/userspace.py``.

Builds, in network namespaces on one bridge (198.18.0.0/24, no default route), a ztone
root, a ztone controller, ztone member ``a`` (TAP port: the servers), member ``b`` (TAP
port: the kernel's TCP client) and member ``u`` (user-space port, ``ZTONE_TAP_BACKEND=
userspace``, SOCKS5 on 127.0.0.1:1080), with a private planet. Then, ``--runs`` times
each (default 3), ``--mib`` MiB (default 64) one way:

* ``socks5 up``: a client in u's namespace sends through SOCKS5 to a sink on a;
* ``socks5 down``: it reads from a source on a through SOCKS5;
* ``tap up`` / ``tap down``: the same between b's kernel TCP and a, over b's TAP port.

It prints each run's Mbit/s (payload bytes over the client's wall time) and the CPU
seconds per GB of the sending/receiving member's daemon (u for SOCKS5, b for TAP;
user + system), then the median and the spread (min..max) of the runs, and a CPU check
(this kind of VM changes speed from minute to minute). Issue 15's target: at least
100 Mbit/s through SOCKS5. Needs root, ``ip`` and ``ping``; sends packets only inside
the namespaces it makes, tears everything down; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tests' helpers, imported as the tests do
sys.path.insert(0, str(BENCH))

from throughput import (  # noqa: E402
    PORT,
    Daemon,
    _identity,
    cpu_check,
    daemon_env,
    lab_unavailable,
    summarize_profile,
    wait_until,
)

from netns.netns import Namespace, bridge_namespaces  # noqa: E402
from ztone.cli import idtool  # noqa: E402

TOOLS = str(ROOT / "tests" / "netns" / "noroot_tools.py")
SOCKS_PORT = 1080
SERVER_PORT = 9100


def transfer(client: Namespace, server: Namespace, proxy: str, target: str, mode: str,
             size: int) -> tuple[int, float]:  # fmt: skip
    """One transfer; (bytes, seconds) as the client measured them."""
    if mode == "up":
        srv = server.popen([sys.executable, TOOLS, "sink", str(SERVER_PORT)])
        cmd = [sys.executable, TOOLS, "timed-upload", proxy, target, str(SERVER_PORT), str(size)]
    else:
        srv = server.popen([sys.executable, TOOLS, "source", str(SERVER_PORT), str(size)])
        cmd = [sys.executable, TOOLS, "timed-download", proxy, target, str(SERVER_PORT)]
    time.sleep(0.5)
    try:
        r = client.run(cmd, timeout=300, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"transfer failed: {r.stdout}{r.stderr}")
        moved, seconds = r.stdout.split()
        return int(moved), float(seconds)
    finally:
        if srv.poll() is None:
            srv.kill()
        srv.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64, help="MiB per transfer")
    parser.add_argument("--runs", type=int, default=3, help="runs of each transfer")
    parser.add_argument("--only", choices=["socks5 up", "socks5 down", "tap up", "tap down"],
                        action="append", help="measure only these transfers")  # fmt: skip
    parser.add_argument("--profile", metavar="DIR", type=Path,
                        help="py-spy (on PATH) records member u during the SOCKS5 transfers "
                             "(collapsed stacks in DIR, summarized)")  # fmt: skip
    args = parser.parse_args()
    unavailable = lab_unavailable(("ping", "ip"), "iputils-ping iproute2")
    if unavailable:
        print(unavailable)
        return 2
    size = args.mib * 1024 * 1024
    env = daemon_env()
    with tempfile.TemporaryDirectory() as tmp, bridge_namespaces(5, "198.18.0.0/24",
                                                                 None) as lan:  # fmt: skip
        work = Path(tmp)
        names = ["root", "ctrl", "a", "b", "u"]
        homes = {n: work / n for n in names}
        root_secret, root_public = _identity(0)
        idtool.main(["genplanet", "--out", str(work / "planet"), "--id", "0x5a5a",
                     f"{root_public}@{lan.v4[0].ip}/{PORT}"])  # fmt: skip
        for n, h in homes.items():
            h.mkdir()
            shutil.copy(work / "planet", h / "planet")
            settings: dict[str, object] = {"allowSecondaryPort": False}
            if n == "u":
                settings["socks5"] = {"enabled": True, "port": SOCKS_PORT}
            (h / "local.conf").write_text(json.dumps({"settings": settings}))
        (homes["root"] / "identity.secret").write_text(root_secret)
        (homes["ctrl"] / "identity.secret").write_text(_identity(1)[0])
        daemons = {
            n: Daemon(n, lan.hosts[i], homes[n],
                      {**env, "ZTONE_TAP_BACKEND": "userspace"} if n == "u" else env)
            for i, n in enumerate(names)
        }  # fmt: skip
        try:
            for d in daemons.values():
                if not wait_until(d.online, 60):
                    print(f"{d.name} did not come online; see {d.home.parent}/{d.name}.log")
                    return 1
            ctrl = daemons["ctrl"]
            ctrl_addr = (homes["ctrl"] / "identity.public").read_text()[:10]
            net = ctrl.api("POST", f"/controller/network/{ctrl_addr}______", {
                "name": "bench", "private": True, "v4AssignMode": {"zt": True},
                "ipAssignmentPools": [{"ipRangeStart": "198.19.0.10",
                                       "ipRangeEnd": "198.19.0.250"}],
                "routes": [{"target": "198.19.0.0/24", "via": None}],
            })  # fmt: skip
            nwid = net["id"]
            for n in ("a", "b", "u"):
                daemons[n].api("POST", f"/network/{nwid}", {})
                addr = (homes[n] / "identity.public").read_text()[:10]
                wait_until(lambda a=addr: ctrl.api("GET", f"/controller/network/{nwid}/member/{a}")
                           is not None, 30)  # fmt: skip
                ctrl.api("POST", f"/controller/network/{nwid}/member/{addr}", {"authorized": True})

            def ip_of(n: str) -> str | None:
                for x in daemons[n].api("GET", "/network") or []:
                    if x["id"] == nwid and x["status"] == "OK":
                        for a in x["assignedAddresses"]:
                            if "." in a:
                                return str(a.split("/")[0])
                return None

            if not wait_until(lambda: all(ip_of(n) for n in ("a", "b", "u")), 60):
                print("the members did not get their addresses")
                return 1
            a_ip = ip_of("a")
            assert a_ip is not None
            for n in ("b", "u"):  # paths settle (direct, not via the root) before measuring
                host = lan.hosts[names.index(n)]
                ping = ["ping", "-c", "1", "-W", "1", a_ip]
                wait_until(lambda h=host, p=ping: h.run(p, check=False).returncode == 0, 30)
            time.sleep(2)
            print(f"CPU check: {cpu_check():.1f} ms (lower is faster)")
            print(f"{args.mib} MiB per transfer, {args.runs} runs each")
            kinds = [
                ("socks5 up", "u", str(SOCKS_PORT), "up"),
                ("socks5 down", "u", str(SOCKS_PORT), "down"),
                ("tap up", "b", "-", "up"),
                ("tap down", "b", "-", "down"),
            ]
            for label, client, proxy, mode in kinds:
                if args.only and label not in args.only:
                    continue
                spy = None
                if args.profile is not None and client == "u" and shutil.which("py-spy"):
                    args.profile.mkdir(parents=True, exist_ok=True)
                    out = args.profile / f"{label.replace(' ', '-')}.txt"
                    spy = subprocess.Popen(["py-spy", "record", "-p", str(daemons["u"].pid()),
                                            "-r", "200", "--nonblocking", "--format", "raw",
                                            "-o", str(out)], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)  # fmt: skip
                rates: list[float] = []
                cpus: list[float] = []
                for _ in range(args.runs):
                    before = daemons[client].cpu_seconds()
                    moved, seconds = transfer(lan.hosts[names.index(client)], lan.hosts[2],
                                              proxy, a_ip, mode, size)  # fmt: skip
                    cpu = daemons[client].cpu_seconds() - before
                    rates.append(moved * 8 / seconds / 1e6)
                    cpus.append(cpu / (moved / 1e9))
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(30)
                    print(summarize_profile(out, 20))
                runs = ", ".join(f"{r:.0f}" for r in rates)
                print(f"{label:12s} Mbit/s median {statistics.median(rates):6.1f} "
                      f"(runs {runs}; spread {min(rates):.0f}..{max(rates):.0f})  "
                      f"CPU s/GB of {client}: median {statistics.median(cpus):.1f} "
                      f"({min(cpus):.1f}..{max(cpus):.1f})")  # fmt: skip
            print(f"CPU check: {cpu_check():.1f} ms")
        finally:
            for d in daemons.values():
                d.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
