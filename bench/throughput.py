"""Data-plane throughput of a ztone network: ``sudo python3 bench/throughput.py [--seconds N]``.

Builds, in network namespaces on one bridge (198.18.0.0/24, no default route), a
ztone root, a ztone controller and two ztone members with a private planet; creates
a network through the controller API, authorizes the members, then measures:

* iperf3 TCP member -> member over the overlay (Mbit/s), and the same over the bare
  underlay veth for reference (once a's path to b is direct, not via the root);
* the members' CPU seconds per GB moved (user + system time of each daemon), the
  frames each way and the root's CPU meanwhile;
* the same both ways: b -> a with ``iperf3 -R`` (b's daemon sends), unless ``--one-way``;
* ping RTT over the overlay (min/avg/max, median and p99 of 200 pings, how many were
  over 5 ms) and over the underlay;
* the peak RSS (VmHWM) of every daemon, and each daemon's RSS when idle with one
  network joined;
* a CPU check (a fixed Python loop): this kind of VM runs at visibly different
  speeds from one minute to the next, and every figure above moves with it.

Options: ``--tcp-relay`` (a fifth namespace runs ``ztone-relay`` with no rate limit
and member a sends everything through it: ``forceTcpRelay`` with
``tcpFallbackRelayAnyScope``; the overlay figures are then through the relay),
``--pure`` (ZTONE_PURE=1 daemons), ``--no-offload`` (ZTONE_TAP_OFFLOAD=0: TAPs
without TCP segmentation offload), ``--compare`` (the same lab a second time with an
installed zerotier-one as members a and b, root and controller still ztone, which it
accepts through the private planet file in its home; both printed side by side;
``--compare-binary PATH`` names the executable; without one it says so and exits 2),
``--profile DIR`` (py-spy on both
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


ZTONE_DAEMON = (sys.executable, "-m", "ztone.cli.daemon")


class Daemon:
    """A node daemon in a namespace: ztone's, or ``command`` (an installed zerotier-one,
    which takes the same ``-U -p<port> <home>`` and writes the same pid file)."""

    def __init__(self, name: str, ns: Namespace, home: Path, env: dict[str, str],
                 command: tuple[str, ...] = ZTONE_DAEMON) -> None:  # fmt: skip
        self.name, self.ns, self.home = name, ns, home
        log = open(home.parent / f"{name}.log", "ab")  # noqa: SIM115
        self.proc = ns.popen(
            ["env", *[f"{k}={v}" for k, v in env.items()], *command, "-U", f"-p{PORT}",
             str(home)],
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

    def dataplane(self) -> dict[str, int]:
        """The native data plane's counters (``dataplane_*`` in ``GET /metrics``)."""
        script = (
            "import sys,urllib.request\n"
            "req = urllib.request.Request('http://127.0.0.1:%s/metrics' % sys.argv[1],\n"
            "    headers={'X-ZT1-Auth': sys.argv[2]})\n"
            "print(urllib.request.urlopen(req, timeout=20).read().decode())\n"
        )
        token = (self.home / "authtoken.secret").read_text().strip()
        r = self.ns.run([sys.executable, "-c", script, str(PORT), token], timeout=60,
                        check=False)  # fmt: skip
        found = re.findall(r'^ztone_packets_total\{what="dataplane_([a-z_]+)"\} (\S+)$',
                           r.stdout, re.M)  # fmt: skip
        return {k: int(float(v)) for k, v in found}

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


def iperf(client: Namespace, server: Namespace, target: str, seconds: int,
          reverse: bool = False) -> float:  # fmt: skip
    """Mbit/s received, client -> server (``reverse``: server -> client, iperf3 -R)."""
    srv = server.popen(["iperf3", "-s", "-1", "-p", "5201"], stdout=open(os.devnull, "w"))  # noqa: SIM115
    time.sleep(0.5)
    try:
        r = client.run(["iperf3", "-c", target, "-p", "5201", "-t", str(seconds), "-J",
                        *(["-R"] if reverse else [])],
                       timeout=seconds + 30, check=False)  # fmt: skip
        data = json.loads(r.stdout)
        return float(data["end"]["sum_received"]["bits_per_second"]) / 1e6
    finally:
        if srv.poll() is None:
            srv.kill()


def ping_rtt(ns: Namespace, target: str, count: int) -> str:
    """``count`` pings 0.2 s apart (each finds the daemons idle): min/avg/max, the
    median (which one slow moment of the VM does not move), the 99th percentile
    (nearest rank) and how many of them were lost or over 5 ms."""
    r = ns.run(["ping", "-c", str(count), "-i", "0.2", target], timeout=count * 0.2 + 30,
               check=False)  # fmt: skip
    times = sorted(float(t) for t in re.findall(r"time=([\d.]+)", r.stdout))
    if not times:
        return "no reply"
    avg = sum(times) / len(times)
    p99 = times[min(len(times) - 1, max(0, -(-99 * len(times) // 100) - 1))]
    slow = sum(1 for t in times if t > 5.0)
    return (f"{times[0]:.3f}/{avg:.3f}/{times[-1]:.3f} ms, median "
            f"{times[len(times) // 2]:.3f}, p99 {p99:.3f} ms ({len(times)}/{count} "
            f"answered, {slow} over 5 ms)")  # fmt: skip


def lab_unavailable(tools: tuple[str, ...], packages: str) -> str | None:
    """Why a namespace lab cannot run here (a tool missing, not root), or None."""
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{tool} is required (apt-get install {packages})"
    if os.geteuid() != 0:
        return "run as root (network namespaces)"
    return None


DATAPLANE_SHOWN = (
    "delivered", "sent", "passed", "given_back", "tap_errors", "send_errors", "read_errors",
    "ring_taken", "ring_full", "reactor_wakeups", "gso_runs",
)  # fmt: skip
"""The data plane's counters printed per member (their growth during the iperf3 run)."""


def daemon_env() -> dict[str, str]:
    """The daemons' environment: quiet logs, the data plane switches if set, and
    ``ZTONE_BENCH_PYTHONPATH`` (run the daemons from another source tree, for A/B runs)."""
    env = {"ZTONE_LOG_LEVEL": "WARNING"}
    # ZTONE_DATAPLANE=0: the general path only; ZTONE_DATAPLANE_THREAD=0: the native
    # data plane without its thread
    for name in ("ZTONE_DATAPLANE", "ZTONE_DATAPLANE_THREAD"):
        if os.environ.get(name):
            env[name] = os.environ[name]
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


Results = list[tuple[str, str]]


def zerotier_one_settings() -> dict[str, object]:
    """local.conf settings for a zerotier-one member: no secondary port, no UPnP/NAT-PMP,
    no TCP fallback relay (there is no route out of the namespaces anyway)."""
    return {"allowSecondaryPort": False, "portMappingEnabled": False,
            "allowTcpFallbackRelay": False}  # fmt: skip


def measure(args: argparse.Namespace, env: dict[str, str],
            member_command: tuple[str, ...] | None) -> Results | None:  # fmt: skip
    """Build the lab (members a and b run ``member_command``, default ztone's daemon;
    root and controller are always ztone), measure, tear down; None if it failed."""
    out: Results = []
    hosts = 5 if args.tcp_relay else 4
    with tempfile.TemporaryDirectory() as tmp, bridge_namespaces(hosts, "198.18.0.0/24",
                                                                 None) as lan:  # fmt: skip
        work = Path(tmp)
        names = ["root", "ctrl", "a", "b"]
        relay_ip = str(lan.v4[4].ip) if args.tcp_relay else ""
        homes = {n: work / n for n in names}
        root_public = _identity(0)[1]
        idtool.main(["genplanet", "--out", str(work / "planet"), "--id", "0x5a5a",
                     f"{root_public}@{lan.v4[0].ip}/{PORT}"])  # fmt: skip
        for n, h in homes.items():
            h.mkdir()
            shutil.copy(work / "planet", h / "planet")
            settings: dict[str, object] = {"allowSecondaryPort": False}
            if member_command is not None and n in ("a", "b"):
                settings = zerotier_one_settings()
            if args.tcp_relay:  # every node names the bench's relay, never the public one
                settings["tcpFallbackRelay"] = f"{relay_ip}/{RELAY_PORT}"
                if n == "a":
                    settings.update(forceTcpRelay=True, tcpFallbackRelayAnyScope=True)
            (h / "local.conf").write_text(json.dumps({"settings": settings}))
        # identity.public too: zerotier-one writes it only for an identity it made.
        for i, n in enumerate(names):
            secret, public = _identity(i)
            (homes[n] / "identity.secret").write_text(secret)
            (homes[n] / "identity.public").write_text(public)
        relay = None
        if args.tcp_relay:
            relay_log = open(work / "relay.log", "ab")  # noqa: SIM115
            relay = lan.hosts[4].popen(
                [sys.executable, "-m", "ztone.relay.main", "--listen", relay_ip, "--port",
                 str(RELAY_PORT), "--udp-bind", relay_ip, "--rate", "0"],
                stdout=relay_log, stderr=relay_log, env={**os.environ, **env},
            )  # fmt: skip
        daemons = {
            n: Daemon(n, lan.hosts[i], homes[n], env,
                      member_command if member_command is not None and n in ("a", "b")
                      else ZTONE_DAEMON)
            for i, n in enumerate(names)
        }  # fmt: skip
        try:
            for d in daemons.values():
                if not wait_until(d.online, 60):
                    print(f"{d.name} did not come online; see {d.home.parent}/{d.name}.log:")
                    log = d.home.parent / f"{d.name}.log"
                    print(log.read_text(errors="replace")[-2000:] if log.exists() else "")
                    return None
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

                def asked(a: str = addr) -> bool:  # 404 until the member's first request
                    try:
                        return ctrl.api("GET", f"/controller/network/{nwid}/member/{a}") is not None
                    except subprocess.CalledProcessError:
                        return False

                wait_until(asked, 60)
                ctrl.api("POST", f"/controller/network/{nwid}/member/{addr}", {"authorized": True})

            def ip_of(n: str) -> str | None:
                nets = daemons[n].api("GET", "/network") or []
                for x in nets:
                    if x["id"] == nwid and x["status"] == "OK" and x["assignedAddresses"]:
                        return str(x["assignedAddresses"][0].split("/")[0])
                return None

            if not wait_until(lambda: ip_of("a") and ip_of("b"), 60):
                print("members did not get configured")
                return None
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
            rtt_underlay = ping_rtt(a_ns, str(lan.v4[3].ip), min(args.pings, 50))
            if args.pin:
                for cpu, n in enumerate(("a", "b")):
                    for tid in os.listdir(f"/proc/{daemons[n].pid()}/task"):
                        os.sched_setaffinity(int(tid), {cpu % (os.cpu_count() or 1)})
            tap0 = tap_counters(a_ns)
            cpu0 = {n: daemons[n].cpu_seconds() for n in ("a", "b", "root")}
            dp0 = {n: daemons[n].dataplane() for n in ("a", "b")}
            spies = start_profilers(args.profile, daemons, args.seconds) if args.profile else []
            mbps = iperf(a_ns, b_ns, b_ip, args.seconds)
            for spy in spies:
                spy.wait(60)
            cpu1 = {n: daemons[n].cpu_seconds() for n in ("a", "b", "root")}
            dp1 = {n: daemons[n].dataplane() for n in ("a", "b")}
            tap1 = tap_counters(a_ns)
            gb = mbps * args.seconds / 8 / 1000
            back_mbps = 0.0
            back: dict[str, float] = {}
            if not args.one_way:  # b -> a: iperf3 -R, b's daemon is now the sender
                c0 = {n: daemons[n].cpu_seconds() for n in ("a", "b")}
                back_mbps = iperf(a_ns, b_ns, b_ip, args.seconds, reverse=True)
                back = {n: daemons[n].cpu_seconds() - c0[n] for n in ("a", "b")}
            underlay = iperf(a_ns, b_ns, str(lan.v4[3].ip), args.seconds)
            if args.tcp_relay:
                active = (daemons["a"].api("GET", "/status") or {}).get("tcpFallbackActive")
                out.append(("member a through ztone-relay (forceTcpRelay), tunnel active",
                            str(active)))  # fmt: skip
            out.append(("iperf3 TCP overlay a->b", f"{mbps:.1f} Mbit/s ({args.seconds} s)"))
            for n in ("a", "b"):
                moved = {k: v - dp0[n].get(k, 0) for k, v in dp1[n].items()
                         if k in DATAPLANE_SHOWN and v - dp0[n].get(k, 0)}  # fmt: skip
                shown = ", ".join(f"{k} {v}" for k, v in sorted(moved.items()))
                out.append((f"member {n} data plane during a->b", shown or "-"))
            for n, role in (("a", "sender"), ("b", "receiver")):
                used = cpu1[n] - cpu0[n]
                out.append((f"member {n} CPU a->b ({role})",
                            f"{used:.2f} s = {used / gb if gb else 0:.1f} s per GB"))  # fmt: skip
            if back:
                back_gb = back_mbps * args.seconds / 8 / 1000
                out.append(("iperf3 TCP overlay b->a", f"{back_mbps:.1f} Mbit/s"))
                for n, role in (("b", "sender"), ("a", "receiver")):
                    out.append((f"member {n} CPU b->a ({role})",
                                f"{back[n]:.2f} s = "
                                f"{back[n] / back_gb if back_gb else 0:.1f} s per GB"))  # fmt: skip
            out_n = tap1[0] - tap0[0]
            back_n = tap1[2] - tap0[2]
            avg_out = (tap1[1] - tap0[1]) / max(out_n, 1)
            avg_back = (tap1[3] - tap0[3]) / max(back_n, 1)
            frames = f"{out_n} (avg {avg_out:.0f} B), b->a: {back_n} (avg {avg_back:.0f} B)"
            out.append(("frames a->b during a->b", frames))
            out.append(("root CPU during a->b", f"{cpu1['root'] - cpu0['root']:.2f} s"))
            out.append(("ping RTT overlay a->b (min/avg/max)", rtt))
            out.append(("ping RTT underlay a->b (reference)", rtt_underlay))
            out.append(("iperf3 TCP underlay a->b (reference)", f"{underlay:.1f} Mbit/s"))
            for n, d in daemons.items():
                _, hwm = d.memory()
                out.append((f"{n} RSS idle / peak",
                            f"{idle[n] / 1024:.1f} MB / {hwm / 1024:.1f} MB"))  # fmt: skip
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
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="iperf3 duration")
    parser.add_argument("--pings", type=int, default=200, help="pings for the RTT figures")
    parser.add_argument("--pure", action="store_true", help="force the pure-Python crypto path")
    parser.add_argument("--no-offload", action="store_true",
                        help="TAPs without segmentation offload (ZTONE_TAP_OFFLOAD=0)")  # fmt: skip
    parser.add_argument("--one-way", action="store_true",
                        help="only a->b (skip the b->a iperf3 -R run)")  # fmt: skip
    parser.add_argument(
        "--compare",
        action="store_true",
        help="run the same lab again with zerotier-one as members a and b (the one on "
        "PATH, or --compare-binary) and print both side by side; exits 2 without it",
    )
    parser.add_argument("--compare-binary", type=Path, default=None,
                        help="the zerotier-one executable for --compare")  # fmt: skip
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
    if not 1 <= args.pings <= 2000 or not 1 <= args.seconds <= 600:
        parser.error("--pings must be in [1, 2000] and --seconds in [1, 600]")
    compare: tuple[str, ...] | None = None
    if args.compare or args.compare_binary is not None:
        found = str(args.compare_binary) if args.compare_binary else shutil.which("zerotier-one")
        if not found or not os.access(found, os.X_OK):
            print("--compare needs zerotier-one: none on PATH (or --compare-binary is not an "
                  "executable); install it or name it with --compare-binary")  # fmt: skip
            return 2
        compare = (str(Path(found).resolve()),)
    unavailable = lab_unavailable(("iperf3", "ping", "ip"), "iperf3 iputils-ping iproute2")
    if unavailable:
        print(unavailable)
        return 2
    env = daemon_env()
    if args.pure:
        env["ZTONE_PURE"] = "1"
    if args.no_offload:
        env["ZTONE_TAP_OFFLOAD"] = "0"
    print(f"crypto backend: {'pure' if args.pure else 'native if built'}")
    print(f"TAP offloads: {'off' if args.no_offload else 'on (TSO, checksums)'}")
    thread = env.get("ZTONE_DATAPLANE_THREAD", "1") != "0"
    print(f"data plane reactor thread: {'on' if thread else 'off (ZTONE_DATAPLANE_THREAD=0)'}")
    print(
        f"CPU check: {cpu_check():.1f} ms for a fixed Python loop (lower: a faster "
        "machine right now; the figures below scale with it)"
    )
    ours = measure(args, env, None)
    if ours is None:
        return 1
    if compare is None:
        for label, value in ours:
            print(f"{label}: {value}")
        return 0
    theirs = measure(args, {}, compare)
    if theirs is None:
        print("the zerotier-one run failed (see above); ztone's figures:")
        for label, value in ours:
            print(f"{label}: {value}")
        return 1
    print(f"\nsame lab, members a and b: ztone vs {compare[0]} (root and controller: ztone)")
    other = dict(theirs)
    for label, value in ours:
        print(f"{label}:\n  ztone:        {value}\n  zerotier-one: {other.get(label, '-')}")
    print(f"CPU check after: {cpu_check():.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
