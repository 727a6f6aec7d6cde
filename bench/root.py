"""A ztone root's capacity: ``sudo python3 bench/root.py [--peers 1000,10000,50000]``.

Starts the real daemon as the only root of a private planet, in a network namespace
(198.18.0.1 on a bridge in 198.18.0.0/15, no default route), and simulated peers in
``--workers`` other namespaces (bench/root_worker.py: several thousand peers per
process, each with its own valid identity, its own UDP socket and a source address in
one of ``--sources`` /24s, since the root validates one new identity per /24 per 2 s).
For each N of ``--peers`` (cumulative: the peers of the smaller N stay) it reports:

* joining: how long the N peers took to be answered, and the root's CPU per new peer
  (a key agreement and a memory-hard hash each, §6.2.2);
* steady state at upstream's intervals, over a ``--window`` of real time: every peer
  sends the root a full HELLO every 224 s (a 1.14.1 leaf with a live root path,
  PROTOCOL-CORE §8.4), plus once per 224 s a WHOIS and one packet to another peer
  through the root (relayed, then RENDEZVOUS to both): the root's CPU share (its
  user+system time over the window) and RSS per peer ((RSS_N - RSS_0) / N, RSS_0 the
  idle root with no peer);
* HELLO answers per second at saturation: ``--saturate-peers`` peers keep 2 HELLOs
  each in flight, every OK(HELLO) answered by the next HELLO, for ``--saturate`` s;
* relayed throughput: one peer sends 1,400-byte FRAME packets to a peer in another
  namespace that it has no path to; the root forwards them (Mbit/s that arrive).

Nothing is compressed in time, so the steady figures need no scaling; the window
includes the root's 30 s housekeeping. Identities (the proof of work costs ~0.1-0.5 s
each) are made once in parallel and cached (bench/root_identities.py,
``$XDG_CACHE_HOME/ztone-bench``); the bench makes the missing ones first and says so.
The root's peer table is bounded by ``ztone.node.bounds.MAX_ROOT_PEERS``: a larger N is
reported as capped. The simulated peers share this machine's cores with the root, so
the saturation figure is a lower bound on a machine where they would not.

Needs root and ``ip``. Sends packets only inside the namespaces it makes; every loop is
bounded in count and time; everything is torn down at the end. Prints numbers;
asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the sibling benches
sys.path.insert(0, str(HERE.parent / "tests"))  # the tests' namespace helpers

import root_identities  # noqa: E402
from throughput import PORT, Daemon, _identity, daemon_env, lab_unavailable, wait_until  # noqa: E402

from netns.netns import Namespace, bridge_namespaces  # noqa: E402
from ztone.cli import idtool  # noqa: E402
from ztone.node.bounds import MAX_ROOT_PEERS  # noqa: E402

SUBNET = ipaddress.IPv4Network("198.18.0.0/15")
SETTLE_PERIOD = 254.0
"""One steady period (224 s, bench/root_worker.py) and 30 s for the rejoins it causes."""


class WorkerProcess:
    """One bench/root_worker.py in its namespace, driven by JSON lines."""

    def __init__(self, ns: Namespace, spec_path: Path, log: Path, env: dict[str, str]) -> None:
        self.log = log
        self.proc = ns.popen(
            ["env", *[f"{k}={v}" for k, v in env.items()], sys.executable,
             str(HERE / "root_worker.py"), str(spec_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(log, "ab"),  # noqa: SIM115
            text=True,
        )  # fmt: skip

    def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            try:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
            except OSError:
                tail = []
            raise RuntimeError("a worker died: " + (" / ".join(tail) or "no log"))
        out: dict[str, Any] = json.loads(line)
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send(cmd="stop")
                self.proc.wait(20)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)


def all_answers(workers: list[WorkerProcess]) -> list[dict[str, Any]]:
    return [w.answer() for w in workers]


def source_addresses(count: int, workers: int) -> list[list[str]]:
    """One address in each of ``count`` /24s of 198.18.0.0/15 (not the root's), dealt out."""
    out: list[list[str]] = [[] for _ in range(workers)]
    for k in range(count):
        out[k % workers].append(str(SUBNET.network_address + (k + 1) * 256 + 10))
    return out


def add_addresses(ns: Namespace, addresses: list[str]) -> None:
    batch = "".join(f"addr add {a}/32 dev eth0\n" for a in addresses)
    subprocess.run(["ip", "-n", ns.name, "-batch", "-"], input=batch, text=True, check=True,
                   timeout=120)  # fmt: skip


def core_counters(daemon: Daemon) -> dict[str, int]:
    """The root's ``ztone_packets_total{what=...}`` counters from its /metrics."""
    script = (
        "import sys,urllib.request\n"
        "req = urllib.request.Request('http://127.0.0.1:%s/metrics' % sys.argv[1],\n"
        "    headers={'X-ZT1-Auth': sys.argv[2]})\n"
        "print(urllib.request.urlopen(req, timeout=20).read().decode())\n"
    )
    token = (daemon.home / "authtoken.secret").read_text().strip()
    r = daemon.ns.run([sys.executable, "-c", script, str(PORT), token], timeout=60, check=False)
    out: dict[str, int] = {}
    for m in re.finditer(r'^ztone_packets_total\{what="([^"]+)"\} (\d+)', r.stdout, re.M):
        out[m.group(1)] = int(m.group(2))
    return out


def rss_kib(daemon: Daemon) -> int:
    return daemon.memory()[0]


def fmt_mb(kib: float) -> str:
    return f"{kib / 1024:.1f} MB"


def measure_level(n: int, have: int, root: Daemon, workers: list[WorkerProcess],
                  args: argparse.Namespace, rss0: int) -> dict[str, Any]:  # fmt: skip
    """Grow the root's peers from ``have`` to ``n`` and measure; the figures as a dict."""
    w = len(workers)
    add = n - have
    shares = [add // w + (1 if i < add % w else 0) for i in range(w)]
    cpu0 = root.cpu_seconds()
    t0 = time.monotonic()
    join_bound = add / args.join_rate * 6 + 300
    for worker, share in zip(workers, shares, strict=True):
        worker.send(cmd="join", count=share, seconds=join_bound, rate=args.join_rate / w)
    joins = all_answers(workers)
    join_s = time.monotonic() - t0
    join_cpu = root.cpu_seconds() - cpu0
    joined = sum(j["joined"] for j in joins)
    settle = args.settle if args.settle >= 0 else (SETTLE_PERIOD if join_s > 200 else 0.0)
    if settle > 0:
        # A long join saturates this machine: the simulated peers fall behind their
        # schedule (a late beat is skipped) and the root forgets the ones silent for
        # 500 s (PEER_ACTIVITY_TIMEOUT). One period at the steady schedule brings them
        # back (each costs a validation again) before the window measures.
        for worker in workers:
            worker.send(cmd="steady", seconds=settle)
        all_answers(workers)
    else:
        # Late HELLOs still queued at the root would be validated inside the window:
        # wait (at most 120 s) until the root spends under 5% of a core for 2 s.
        for _ in range(60):
            c = root.cpu_seconds()
            time.sleep(2)
            if root.cpu_seconds() - c < 0.1:
                break
    cpu0 = root.cpu_seconds()
    t0 = time.monotonic()
    for worker in workers:
        worker.send(cmd="steady", seconds=args.window)
    steadies = all_answers(workers)
    window = time.monotonic() - t0
    steady_cpu = root.cpu_seconds() - cpu0
    rss = rss_kib(root)
    sent: dict[str, int] = {}
    received: dict[str, int] = {}
    for s in steadies:
        for k, v in s["sent"].items():
            sent[k] = sent.get(k, 0) + v
        for k, v in s["received"].items():
            received[k] = received.get(k, 0) + v
    cpu0 = root.cpu_seconds()
    t0 = time.monotonic()
    per = max(1, args.saturate_peers // w)
    for worker in workers:
        worker.send(cmd="saturate", seconds=args.saturate, peers=per, window=args.saturate_window)
    sats = all_answers(workers)
    sat_wall = time.monotonic() - t0
    sat_cpu = root.cpu_seconds() - cpu0
    hello_rate = sum(s["per_second"] for s in sats)
    relay: dict[str, Any] = {}
    if w >= 2:
        workers[1].send(cmd="identity")
        dest = workers[1].answer()["public"]
        cpu0 = root.cpu_seconds()
        workers[1].send(cmd="relay_recv", seconds=args.relay + 2)
        workers[0].send(cmd="relay_send", seconds=args.relay, to=dest, size=1400)
        sent_r = workers[0].answer()
        got_r = workers[1].answer()
        relay_cpu = root.cpu_seconds() - cpu0
        relay = {
            "mbps": got_r["bytes"] * 8 / args.relay / 1e6,
            "packets": got_r["packets"],
            "sent": sent_r["sent"],
            "root_cpu_s": relay_cpu,
            "seconds": args.relay,
        }
    peers_known = len(root.api("GET", "/peer") or [])
    counters = core_counters(root)
    return {
        "counters": counters,
        "n": n,
        "joined": joined,
        "join_failed": sum(j["failed"] for j in joins),
        "join_seconds": join_s,
        "join_root_cpu_ms_per_peer": 1000 * join_cpu / max(1, add),
        "root_peers": peers_known,
        "window": window,
        "cpu_share": steady_cpu / window,
        "rss_kib": rss,
        "rss_per_peer_bytes": (rss - rss0) * 1024 / max(1, peers_known),
        "sent": sent,
        "received": received,
        "hello_per_s": hello_rate,
        "saturate_root_cpu_share": sat_cpu / max(sat_wall, 1e-9),
        "relay": relay,
    }


KNOWN_REPLIES = ("ok_hello", "ok_whois", "relayed", "rendezvous", "root_hello", "root_echo")
INTERESTING = ("relayed", "relay_no_route", "relay_refused", "hello_rate_limited",
               "rx_bad_mac", "peers_evicted", "hello_invalid_identity")  # fmt: skip


def args_relay_seconds(level: dict[str, Any]) -> float:
    return float(level["relay"].get("seconds", 1.0))


def report(level: dict[str, Any], rss0: int) -> None:
    n = level["n"]
    print(f"\n== N = {n:,} peers (root knows {level['root_peers']:,}; joined "
          f"{level['joined']:,} new in {level['join_seconds']:.0f} s, "
          f"{level['join_failed']} unanswered)")  # fmt: skip
    print(f"  join: root CPU {level['join_root_cpu_ms_per_peer']:.1f} ms per new peer")
    print(f"  steady ({level['window']:.0f} s at upstream's intervals): root CPU "
          f"{100 * level['cpu_share']:.2f}% of one core")  # fmt: skip
    print(f"  RSS {fmt_mb(level['rss_kib'])} (idle with no peer {fmt_mb(rss0)}): "
          f"{level['rss_per_peer_bytes']:.0f} bytes per peer")  # fmt: skip
    s, r = level["sent"], level["received"]
    print(f"  sent HELLO {s.get('hello', 0)}, WHOIS {s.get('whois', 0)}, relayed "
          f"{s.get('relay', 0)}; got OK(HELLO) {r.get('ok_hello', 0)}, OK(WHOIS) "
          f"{r.get('ok_whois', 0)}, relayed in {r.get('relayed', 0)}, RENDEZVOUS "
          f"{r.get('rendezvous', 0)}, HELLO/ECHO from the root (answered) "
          f"{r.get('root_hello', 0)}/{r.get('root_echo', 0)}, other "
          f"{sum(v for k, v in r.items() if k not in KNOWN_REPLIES)}")  # fmt: skip
    share = level["saturate_root_cpu_share"]
    print(f"  HELLO answers at saturation: {level['hello_per_s']:.0f}/s (root CPU "
          f"{100 * share:.0f}% of one core meanwhile: "
          f"{level['hello_per_s'] / max(share, 1e-9):.0f} per root CPU second)")  # fmt: skip
    c = level["counters"]
    print("  root counters so far: " + ", ".join(f"{k} {c.get(k, 0)}" for k in INTERESTING))
    relay = level["relay"]
    if relay:
        print(f"  relayed throughput peer -> root -> peer: {relay['mbps']:.1f} Mbit/s "
              f"({relay['packets']} of {relay['sent']} packets arrived; root CPU "
              f"{100 * relay['root_cpu_s'] / args_relay_seconds(level):.0f}% of one core, "
              f"{relay['packets'] / max(relay['root_cpu_s'], 1e-9):.0f} packets per root CPU "
              "second)")  # fmt: skip


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", default="1000,10000,50000",
                        help="peer counts, ascending, comma-separated")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2,
                        help="peer processes (each in its own namespace)")  # fmt: skip
    parser.add_argument("--sources", type=int, default=256,
                        help="source /24s the peers are spread over")  # fmt: skip
    parser.add_argument("--window", type=float, default=60.0, help="steady window, seconds")
    parser.add_argument(
        "--settle", type=float, default=-1.0,
        help="seconds at the steady schedule between a join and its window "
        f"(default: {SETTLE_PERIOD:.0f} after a join of over 200 s, else 0)",
    )  # fmt: skip
    parser.add_argument("--join-rate", type=float, default=50.0,
                        help="new HELLOs per second, all workers")  # fmt: skip
    parser.add_argument("--saturate", type=float, default=10.0, help="saturation seconds")
    parser.add_argument("--saturate-peers", type=int, default=200,
                        help="peers sending HELLOs at saturation (all workers)")  # fmt: skip
    parser.add_argument("--saturate-window", type=int, default=8,
                        help="HELLOs each of them keeps in flight")  # fmt: skip
    parser.add_argument("--relay", type=float, default=5.0, help="relay seconds")
    parser.add_argument("--cache-dir", type=Path, default=root_identities.default_cache_dir())
    parser.add_argument("--keep-home", action="store_true",
                        help="print and keep the root's home and logs")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        args.levels = [int(x) for x in args.peers.split(",") if x.strip()]
    except ValueError:
        parser.error("--peers takes numbers, e.g. 1000,10000")
    if not args.levels or args.levels != sorted(args.levels) or args.levels[0] < 2:
        parser.error("--peers must be ascending counts of at least 2")
    if args.levels[-1] > 200_000:
        parser.error("--peers: at most 200,000")
    if not 1 <= args.workers <= 16:
        parser.error("--workers must be in [1, 16]")
    if not 1 <= args.sources <= 500:
        parser.error("--sources must be in [1, 500]")
    if args.settle > 3600:
        parser.error("--settle: at most 3600 seconds")
    if not 1 <= args.window <= 3600 or not 1 <= args.saturate <= 600 or not 1 <= args.relay <= 600:
        parser.error("--window, --saturate and --relay are seconds in [1, 3600]")
    if not 1 <= args.saturate_peers <= 10_000 or not 1 <= args.saturate_window <= 64:
        parser.error("--saturate-peers in [1, 10000], --saturate-window in [1, 64]")
    if not 1 <= args.join_rate <= 10_000:
        parser.error("--join-rate must be in [1, 10000]")
    return args


def enough_workers(peers: int, workers: int) -> int:
    """At least ``workers``, and enough that none needs more sockets than it may open:
    the hard limit on file descriptors, raised first if this process may (root with
    CAP_SYS_RESOURCE; the workers inherit it)."""
    want = -(-peers // workers) + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, want))
            hard = want
        except (ValueError, OSError):
            pass
    while -(-peers // workers) + 64 > hard and workers < 16:
        workers += 1
    return workers


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    unavailable = lab_unavailable(("ip",), "iproute2")
    if unavailable:
        print(unavailable)
        return 2
    capped = [n for n in args.levels if n > MAX_ROOT_PEERS]
    if capped:
        print(f"the root's peer table holds at most MAX_ROOT_PEERS = {MAX_ROOT_PEERS:,} "
              f"(ztone.node.bounds): N = {', '.join(map(str, capped))} would only measure "
              "its eviction; measuring up to the bound")  # fmt: skip
        args.levels = [n for n in args.levels if n <= MAX_ROOT_PEERS] or [MAX_ROOT_PEERS]
    total = args.levels[-1]
    needed = enough_workers(total, args.workers)
    if needed != args.workers:
        print(f"{needed} workers instead of {args.workers}: each opens a socket per peer "
              "and the file descriptor hard limit is "
              f"{resource.getrlimit(resource.RLIMIT_NOFILE)[1]:,}")  # fmt: skip
        args.workers = needed
    t0 = time.monotonic()
    secrets = root_identities.ensure(args.cache_dir, total)
    print(f"{len(secrets):,} peer identities ready ({time.monotonic() - t0:.0f} s)")
    env = daemon_env()
    sources = source_addresses(args.sources, args.workers)
    with (
        tempfile.TemporaryDirectory() as tmp,
        bridge_namespaces(1 + args.workers, str(SUBNET), None) as lan,
    ):
        work = Path(tmp)
        home = work / "root"
        home.mkdir()
        root_secret, root_public = _identity(0)
        root_ip = str(lan.v4[0].ip)
        idtool.main(["genplanet", "--out", str(home / "planet"), "--id", "0x5a5a",
                     f"{root_public}@{root_ip}/{PORT}"])  # fmt: skip
        (home / "identity.secret").write_text(root_secret)
        (home / "local.conf").write_text(json.dumps({"settings": {"allowSecondaryPort": False}}))
        root = Daemon("root", lan.hosts[0], home, env)
        workers: list[WorkerProcess] = []
        try:
            if not wait_until(root.online, 60):
                print(f"the root did not come online; see {work}/root.log")
                return 1
            time.sleep(3)
            rss0 = rss_kib(root)
            print(f"root: pid {root.pid()}, idle RSS with no peer {fmt_mb(rss0)}; "
                  f"{args.workers} worker namespaces, {args.sources} source /24s")  # fmt: skip
            worker_env = {"PYTHONPATH": os.environ.get("ZTONE_BENCH_PYTHONPATH", "")} \
                if os.environ.get("ZTONE_BENCH_PYTHONPATH") else {}  # fmt: skip
            for i in range(args.workers):
                ns = lan.hosts[1 + i]
                add_addresses(ns, sources[i])
                spec = {
                    "root": root_public, "root_ip": root_ip, "root_port": PORT,
                    "identities": secrets[i::args.workers], "sources": sources[i],
                    "seed": i + 1, "period": 224.0,
                }  # fmt: skip
                spec_path = work / f"worker{i}.json"
                spec_path.write_text(json.dumps(spec))
                workers.append(WorkerProcess(ns, spec_path, work / f"worker{i}.log", worker_env))
            have = 0
            levels = []
            for n in args.levels:
                level = measure_level(n, have, root, workers, args, rss0)
                have = n
                levels.append(level)
                report(level, rss0)
            print("\nsummary (N, root CPU % of one core, RSS MB, bytes/peer, HELLO answers/s, "
                  "relayed Mbit/s):")  # fmt: skip
            for lv in levels:
                print(f"  {lv['n']:>7,}  {100 * lv['cpu_share']:6.2f}%  "
                      f"{lv['rss_kib'] / 1024:7.1f}  {lv['rss_per_peer_bytes']:7.0f}  "
                      f"{lv['hello_per_s']:7.0f}  {lv['relay'].get('mbps', 0):7.1f}")  # fmt: skip
            if args.keep_home:
                keep = Path(tempfile.mkdtemp(prefix="ztone-rootbench-"))
                shutil.copytree(work, keep, dirs_exist_ok=True)
                print(f"root home and logs kept in {keep}")
        finally:
            for worker in workers:
                worker.stop()
            root.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
