"""Data-plane throughput of a ztone network: ``sudo python3 bench/throughput.py [--seconds N]``.

Builds, in network namespaces on one bridge (198.18.0.0/24, no default route), a
ztone root, a ztone controller and two ztone members with a private planet; creates
a network through the controller API, authorizes the members, then measures:

* iperf3 TCP member -> member over the overlay (Mbit/s), and the same over the bare
  underlay veth for reference (once a's path to b is direct, not via the root);
* the members' CPU seconds per GB moved (user + system time of each daemon), the
  frames each way and the root's CPU meanwhile;
* ping RTT over the overlay (min/avg/max and median of 50 pings) and over the underlay;
* the peak RSS (VmHWM) of every daemon, and each daemon's RSS when idle with one
  network joined;
* a CPU check (a fixed Python loop): this kind of VM runs at visibly different
  speeds from one minute to the next, and every figure above moves with it.

Options: ``--tcp-relay`` (a fifth namespace runs ``ztone-relay`` with no rate limit
and member a sends everything through it: ``forceTcpRelay`` with
``tcpFallbackRelayAnyScope``; the overlay figures are then through the relay),
``--pure`` (ZTONE_PURE=1 daemons), ``--profile DIR`` (py-spy on both
members during iperf3, with a summary), ``--pin`` (a and b on different CPUs),
``--hold`` (keep the network up for profiling by hand). ``ZTONE_BENCH_PYTHONPATH``
runs the daemons from another source tree (A/B comparisons).

Needs root, ``ip``, ``iperf3`` and ``ping``. Sends packets only inside the
namespaces it makes; everything is torn down at the end. Prints numbers; asserts
nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' helpers, imported as the tests do

from netns.netns import Namespace, bridge_namespaces  # noqa: E402
from ztone.cli import idtool  # noqa: E402

PORT = 9993
RELAY_PORT = 4443
IDENTITIES = ROOT / "tests" / "vectors" / "identities.json"


def _identity(i: int) -> tuple[str, str]:
    entry = json.loads(IDENTITIES.read_text())["identities"][i]
    return entry["secret"], entry["public"]


def wait_until(condition: Any, timeout: float, interval: float = 0.5) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


class Daemon:
    def __init__(self, name: str, ns: Namespace, home: Path, env: dict[str, str]) -> None:
        self.name, self.ns, self.home = name, ns, home
        log = open(home.parent / f"{name}.log", "ab")  # noqa: SIM115
        self.proc = ns.popen(
            ["env", *[f"{k}={v}" for k, v in env.items()], sys.executable, "-m",
             "ztone.cli.daemon", "-U", f"-p{PORT}", str(home)],
            stdout=log, stderr=log,
        )  # fmt: skip

    def pid(self) -> int:
        # ip netns exec + env exec into python: the daemon is the child's child or itself
        return int((self.home / "zerotier-one.pid").read_text())

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid()}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def memory(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) in KiB."""
        text = Path(f"/proc/{self.pid()}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
        hwm = int(re.search(r"VmHWM:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
        return rss, hwm

    def api(self, method: str, path: str, body: object | None = None) -> Any:
        script = (
            "import json,sys,urllib.request\n"
            "req = urllib.request.Request('http://127.0.0.1:%s%s' % (sys.argv[4], sys.argv[2]),\n"
            "    data=sys.argv[3].encode() or None, method=sys.argv[1],\n"
            "    headers={'X-ZT1-Auth': sys.argv[5]})\n"
            "print(urllib.request.urlopen(req, timeout=20).read().decode())\n"
        )
        token = (self.home / "authtoken.secret").read_text().strip()
        r = self.ns.run([sys.executable, "-c", script, method, path,
                         json.dumps(body) if body is not None else "", str(PORT), token],
                        timeout=60)  # fmt: skip
        return json.loads(r.stdout) if r.stdout.strip() else None

    def online(self) -> bool:
        try:
            return bool(self.api("GET", "/status")["online"])
        except Exception:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except Exception:
                self.proc.kill()


def iperf(client: Namespace, server: Namespace, target: str, seconds: int) -> float:
    srv = server.popen(["iperf3", "-s", "-1", "-p", "5201"], stdout=open(os.devnull, "w"))  # noqa: SIM115
    time.sleep(0.5)
    try:
        r = client.run(["iperf3", "-c", target, "-p", "5201", "-t", str(seconds), "-J"],
                       timeout=seconds + 30, check=False)  # fmt: skip
        data = json.loads(r.stdout)
        return float(data["end"]["sum_received"]["bits_per_second"]) / 1e6
    finally:
        if srv.poll() is None:
            srv.kill()


def ping_rtt(ns: Namespace, target: str, count: int) -> str:
    """min/avg/max of ``count`` pings 0.2 s apart (each finds the daemons idle), and
    the median, which one slow moment of the VM does not move."""
    r = ns.run(["ping", "-c", str(count), "-i", "0.2", target], timeout=count * 0.2 + 30,
               check=False)  # fmt: skip
    m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)", r.stdout)
    times = sorted(float(t) for t in re.findall(r"time=([\d.]+)", r.stdout))
    if not m or not times:
        return "no reply"
    return f"{m.group(1)}/{m.group(2)}/{m.group(3)} ms, median {times[len(times) // 2]:.3f} ms"


def lab_unavailable(tools: tuple[str, ...], packages: str) -> str | None:
    """Why a namespace lab cannot run here (a tool missing, not root), or None."""
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{tool} is required (apt-get install {packages})"
    if os.geteuid() != 0:
        return "run as root (network namespaces)"
    return None


def daemon_env() -> dict[str, str]:
    """The daemons' environment: quiet logs, and ``ZTONE_BENCH_PYTHONPATH`` (run the
    daemons from another source tree, for A/B runs)."""
    env = {"ZTONE_LOG_LEVEL": "WARNING"}
    if os.environ.get("ZTONE_BENCH_PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["ZTONE_BENCH_PYTHONPATH"]
    return env


def cpu_check() -> float:
    """Milliseconds for a fixed pure-Python loop, best of 5 (this VM's speed varies)."""
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        total = 0
        for i in range(300_000):
            total += i & 7
        best = min(best, time.perf_counter() - t)
    return best * 1000


def tap_counters(ns: Namespace) -> tuple[int, int, int, int]:
    """Frames and bytes the member's port handed to the daemon (tx) and got from it (rx)."""
    out = [0, 0, 0, 0]
    for link in ns.ip_json("-s", "link", "show"):
        if str(link.get("ifname", "")).startswith("zt"):
            st = link["stats64"]
            out = [st["tx"]["packets"], st["tx"]["bytes"], st["rx"]["packets"], st["rx"]["bytes"]]
    return out[0], out[1], out[2], out[3]


def start_profilers(out: Path, daemons: dict[str, Daemon],
                    seconds: int) -> list[subprocess.Popen[bytes]]:  # fmt: skip
    """py-spy on both members for the iperf3 run (needs ``pip install py-spy``)."""
    if shutil.which("py-spy") is None:
        print("py-spy not found: pip install py-spy")
        return []
    out.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(["py-spy", "record", "-p", str(daemons[n].pid()), "-d", str(seconds),
                          "-r", "250", "--nonblocking", "--format", "raw",
                          "-o", str(out / f"{n}.txt")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for n in ("a", "b")
    ]  # fmt: skip


def summarize_profile(path: Path, top: int = 25) -> str:
    """Self and total time per function from py-spy's collapsed stacks, as percentages."""
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        return f"  (no profile: {e})"
    self_t: dict[str, int] = {}
    total_t: dict[str, int] = {}
    all_samples = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        all_samples += n
        frames = [re.sub(r" \((?:/[^)]*/)?([^/)]*)\)", r" (\1)", f) for f in stack.split(";")]
        leaf = frames[-1]
        self_t[leaf] = self_t.get(leaf, 0) + n
        for f in set(frames):
            total_t[f] = total_t.get(f, 0) + n
    if not all_samples:
        return "  (empty profile)"
    out = [f"  {all_samples} samples; self time:"]
    for f, n in sorted(self_t.items(), key=lambda x: -x[1])[:top]:
        out.append(f"  {100 * n / all_samples:5.1f}%  {f}")
    out.append("  total (inclusive) time:")
    for f, n in sorted(total_t.items(), key=lambda x: -x[1])[:top]:
        out.append(f"  {100 * n / all_samples:5.1f}%  {f}")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="iperf3 duration")
    parser.add_argument("--pings", type=int, default=50, help="pings for the RTT figures")
    parser.add_argument("--pure", action="store_true", help="force the pure-Python crypto path")
    parser.add_argument(
        "--tcp-relay",
        action="store_true",
        help="member a sends everything through a ztone-relay in a fifth namespace "
        "(forceTcpRelay): overlay iperf3 and ping through the TCP fallback tunnel",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        type=Path,
        help="record both members with py-spy during the overlay iperf3 "
        "(raw collapsed stacks in DIR/a.txt, DIR/b.txt)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="pin member a to CPU 0 and member b to CPU 1 (the scheduler "
        "otherwise sometimes runs both on one CPU)",
    )
    parser.add_argument(
        "--hold",
        action="store_true",
        help="after measuring, keep the network up until Enter (or SIGINT) "
        "for profiling by hand; prints the members' pids and addresses",
    )
    args = parser.parse_args()
    unavailable = lab_unavailable(("iperf3", "ping", "ip"), "iperf3 iputils-ping iproute2")
    if unavailable:
        print(unavailable)
        return 2
    env = daemon_env()
    if args.pure:
        env["ZTONE_PURE"] = "1"
    hosts = 5 if args.tcp_relay else 4
    with tempfile.TemporaryDirectory() as tmp, bridge_namespaces(hosts, "198.18.0.0/24",
                                                                 None) as lan:  # fmt: skip
        work = Path(tmp)
        names = ["root", "ctrl", "a", "b"]
        relay_ip = str(lan.v4[4].ip) if args.tcp_relay else ""
        homes = {n: work / n for n in names}
        root_secret, root_public = _identity(0)
        idtool.main(["genplanet", "--out", str(work / "planet"), "--id", "0x5a5a",
                     f"{root_public}@{lan.v4[0].ip}/{PORT}"])  # fmt: skip
        for n, h in homes.items():
            h.mkdir()
            shutil.copy(work / "planet", h / "planet")
            settings: dict[str, object] = {"allowSecondaryPort": False}
            if args.tcp_relay:  # every node names the bench's relay, never the public one
                settings["tcpFallbackRelay"] = f"{relay_ip}/{RELAY_PORT}"
                if n == "a":
                    settings.update(forceTcpRelay=True, tcpFallbackRelayAnyScope=True)
            (h / "local.conf").write_text(json.dumps({"settings": settings}))
        (homes["root"] / "identity.secret").write_text(root_secret)
        (homes["ctrl"] / "identity.secret").write_text(_identity(1)[0])
        (homes["a"] / "identity.secret").write_text(_identity(2)[0])
        (homes["b"] / "identity.secret").write_text(_identity(3)[0])
        relay = None
        if args.tcp_relay:
            relay_log = open(work / "relay.log", "ab")  # noqa: SIM115
            relay = lan.hosts[4].popen(
                [sys.executable, "-m", "ztone.relay.main", "--listen", relay_ip, "--port",
                 str(RELAY_PORT), "--udp-bind", relay_ip, "--rate", "0"],
                stdout=relay_log, stderr=relay_log, env={**os.environ, **env},
            )  # fmt: skip
        daemons = {n: Daemon(n, lan.hosts[i], homes[n], env) for i, n in enumerate(names)}
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
            for n in ("a", "b"):
                daemons[n].api("POST", f"/network/{nwid}", {})
                addr = (homes[n] / "identity.public").read_text()[:10]
                wait_until(lambda a=addr: ctrl.api("GET", f"/controller/network/{nwid}/member/{a}")
                           is not None, 30)  # fmt: skip
                ctrl.api("POST", f"/controller/network/{nwid}/member/{addr}", {"authorized": True})

            def ip_of(n: str) -> str | None:
                nets = daemons[n].api("GET", "/network") or []
                for x in nets:
                    if x["id"] == nwid and x["status"] == "OK" and x["assignedAddresses"]:
                        return str(x["assignedAddresses"][0].split("/")[0])
                return None

            if not wait_until(lambda: ip_of("a") and ip_of("b"), 60):
                print("members did not get configured")
                return 1
            a_ns, b_ns = lan.hosts[2], lan.hosts[3]
            b_ip = ip_of("b")
            assert b_ip is not None
            wait_until(lambda: a_ns.run(["ping", "-c", "1", "-W", "1", b_ip], check=False,
                                        timeout=10).returncode == 0, 30)  # fmt: skip
            b_addr = (homes["b"] / "identity.public").read_text()[:10]
            b_under = f"{lan.v4[3].ip}/{PORT}"

            def direct() -> bool:
                peer = daemons["a"].api("GET", f"/peer/{b_addr}") or {}
                return any(p["address"] == b_under and p["preferred"]
                           for p in peer.get("paths", []))  # fmt: skip

            if not wait_until(direct, 30):
                print("a has no direct path to b (traffic would go through the root)")
            time.sleep(2)
            idle = {n: d.memory()[0] for n, d in daemons.items()}
            rtt = ping_rtt(a_ns, b_ip, args.pings)
            rtt_underlay = ping_rtt(a_ns, str(lan.v4[3].ip), args.pings)
            if args.pin:
                for cpu, n in enumerate(("a", "b")):
                    for tid in os.listdir(f"/proc/{daemons[n].pid()}/task"):
                        os.sched_setaffinity(int(tid), {cpu % (os.cpu_count() or 1)})
            tap0 = tap_counters(a_ns)
            cpu0 = {n: daemons[n].cpu_seconds() for n in ("a", "b", "root")}
            spies = start_profilers(args.profile, daemons, args.seconds) if args.profile else []
            mbps = iperf(a_ns, b_ns, b_ip, args.seconds)
            for spy in spies:
                spy.wait(60)
            cpu1 = {n: daemons[n].cpu_seconds() for n in ("a", "b", "root")}
            tap1 = tap_counters(a_ns)
            gb = mbps * args.seconds / 8 / 1000
            underlay = iperf(a_ns, b_ns, str(lan.v4[3].ip), args.seconds)
            print(f"crypto backend: {'pure' if args.pure else 'native if built'}")
            if args.tcp_relay:
                active = (daemons["a"].api("GET", "/status") or {}).get("tcpFallbackActive")
                print(f"member a through ztone-relay (forceTcpRelay), tunnel active: {active}")
            print(
                f"CPU check: {cpu_check():.1f} ms for a fixed Python loop (lower: a faster "
                "machine right now; the figures below scale with it)"
            )
            print(f"iperf3 TCP overlay a->b: {mbps:.1f} Mbit/s ({args.seconds} s)")
            for n in ("a", "b"):
                used = cpu1[n] - cpu0[n]
                print(f"member {n} CPU: {used:.2f} s = {used / gb if gb else 0:.1f} s per GB")
            out_n = tap1[0] - tap0[0]
            back_n = tap1[2] - tap0[2]
            print(
                f"frames a->b: {out_n} (avg {(tap1[1] - tap0[1]) / max(out_n, 1):.0f} B), "
                f"b->a: {back_n} (avg {(tap1[3] - tap0[3]) / max(back_n, 1):.0f} B)"
            )
            print(f"root CPU meanwhile: {cpu1['root'] - cpu0['root']:.2f} s")
            print(f"ping RTT overlay a->b (min/avg/max): {rtt}")
            print(f"ping RTT underlay a->b (reference): {rtt_underlay}")
            print(f"iperf3 TCP underlay a->b (reference): {underlay:.1f} Mbit/s")
            for n, d in daemons.items():
                _, hwm = d.memory()
                print(f"{n}: idle RSS {idle[n] / 1024:.1f} MB, peak RSS {hwm / 1024:.1f} MB")
            if args.profile:
                for n in ("a", "b"):
                    print(f"profile of member {n}: {args.profile / f'{n}.txt'}")
                    print(summarize_profile(args.profile / f"{n}.txt"))
            if args.hold:
                for n in ("a", "b"):
                    ns_name = lan.hosts[names.index(n)].name
                    print(f"member {n}: pid {daemons[n].pid()}, namespace {ns_name}")
                print(f"b's overlay address: {b_ip}; press Enter to tear down")
                try:
                    input()
                except (EOFError, KeyboardInterrupt):
                    pass
        finally:
            for d in daemons.values():
                d.stop()
            if relay is not None and relay.poll() is None:
                relay.terminate()
                try:
                    relay.wait(15)
                except Exception:
                    relay.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
