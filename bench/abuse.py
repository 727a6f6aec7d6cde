"""Hostile peers and callers against ztone: ``sudo python3 bench/abuse.py [--quick]``.

Builds, in network namespaces on one bridge (198.18.0.0/16, no default route), a ztone
root, a ztone controller and two members (a, b) with a private planet; creates a
network through the controller API and authorizes the members; then runs each attack
of bench/abuse_worker.py (``--list``) for ``--seconds`` (default 60; ``--quick``: 5)
from an attacker namespace on the same bridge (the API attacks from inside member a's
namespace, to its 127.0.0.1:9993), while

* member a pings member b over the overlay every 0.2 s (loss, RTT min/median/max);
* an authorized client polls ``GET /status`` on the attacked daemon every 0.2 s on a
  new connection each time (latency median/max, failures);
* the attacked daemon's RSS is sampled every 0.2 s (before, peak, after ``--settle``
  seconds; with a ``--settle`` over 5 s both 5 s after and at the end);
* after the attack, the time until that daemon answers ``/status`` within 1 s again
  (at most 120 s, else it is restarted), and the datagrams its kernel dropped during
  the attack because the daemon did not read them fast enough (``RcvbufErrors``).

The attacker's datagrams are built with ztone's own core (bench/abuse_worker.py):
correct HELLO MACs, verbs armored with the agreed key, from a pool of real identities
(proof of work done once and cached under ``--cache-dir``). The attacker has 64
addresses, 198.18.1.66 ... 198.18.64.66, one per /24: "one peer" attacks use the
first, the spread ones all of them.

Issue 11's targets, printed beside the figures (a benchmark: nothing is asserted):
under every attack from one peer at full speed for 60 s, RSS grows by at most 30 MB
(and returns within 10 minutes: ``--settle 600``); legitimate ping loss under 5%;
``/status`` within 200 ms.

Safety: only inside the namespaces it makes; every sender stops at its deadline and
its count (and on SIGTERM); an attack whose target passes ``--rss-limit`` MB is
stopped there, and a target that died or passed the limit is restarted before the next
attack. Needs root, ``ip`` and ``ping``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tests' helpers, imported as the tests do
sys.path.insert(0, str(BENCH))

from abuse_worker import API_ATTACKS, UDP_ATTACKS  # noqa: E402
from throughput import (  # noqa: E402
    PORT,
    Daemon,
    _identity,
    cpu_check,
    daemon_env,
    lab_unavailable,
    wait_until,
)

from netns.netns import Lan, Namespace, bridge_namespaces  # noqa: E402
from ztone.cli import idtool  # noqa: E402
from ztone.node.wire.identity import Identity  # noqa: E402

QUICK_SECONDS = 5
RSS_GROWTH_TARGET_MB = 30
PING_LOSS_TARGET = 5.0
STATUS_TARGET_MS = 200
PING_INTERVAL = 0.2
PING_WAIT = 2
RECOVERED_MS = 1000  # the attacked daemon has recovered when /status answers within this
RECOVERY_LIMIT = 120.0
SOURCES = 64

TARGETS = {
    "hello": "root", "hello-spread": "root", "hello-invalid": "root", "whois": "root",
    "multicast-like": "root", "multicast-gather": "root", "config-random": "ctrl",
    "config-real": "ctrl", "fragments": "b", "junk": "root", "mutated": "b",
    "api-idle": "a", "api-slowloris": "a", "api-pipeline": "a", "api-badtoken": "a",
}  # fmt: skip
DESCRIPTIONS = {
    "hello": "HELLO from the identity pool, one source address",
    "hello-spread": "HELLO from the identity pool, each identity from its own /24",
    "hello-invalid": "HELLO from fresh key pairs without proof of work, 64 /24s",
    "whois": "WHOIS, 100 random addresses each, from one HELLO'd peer",
    "multicast-like": "MULTICAST_LIKE, 76 random groups each, from a HELLO-only peer",
    "multicast-gather": "MULTICAST_GATHER, random and real network groups",
    "config-random": "NETWORK_CONFIG_REQUEST for random network ids, one peer",
    "config-real": "NETWORK_CONFIG_REQUEST for the real network, every pool identity",
    "fragments": "orphan fragments (pieces 1..6 of 7, no head)",
    "junk": "random and mutated datagrams (noise, fake headers, truncated heads)",
    "mutated": "every verb, mutated payload, correctly armored, from a HELLO'd peer",
    "api-idle": "256 idle connections to the local API, reopened when shed",
    "api-slowloris": "256 connections trickling an unfinished header",
    "api-pipeline": "64 connections pipelining token-less GET /status, 4.45 MB each",
    "api-badtoken": "8 clients sending GET /status with wrong tokens",
}
ATTACKS = [*UDP_ATTACKS, *API_ATTACKS]


# ----------------------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list the attacks and exit")
    parser.add_argument("--seconds", type=float, default=60.0, help="per attack (default 60)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_SECONDS} s per attack, 2 s settle: does it all work?",
    )
    parser.add_argument(
        "--attacks", default="all", help="comma-separated names (see --list), default all"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=None,
        help="seconds after each attack before 'after' RSS (default 5, "
        "quick 2); over 5: RSS at 5 s and at the end",
    )
    parser.add_argument(
        "--identities",
        type=int,
        default=64,
        help="identity pool size (proof of work once, then cached)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ztone-bench",
        help="where the identity pool is kept",
    )
    parser.add_argument(
        "--rss-limit",
        type=int,
        default=1024,
        help="stop an attack when its target's RSS passes this many MB",
    )
    parser.add_argument(
        "--senders",
        type=int,
        default=1,
        help="sender processes per UDP attack (default 1: one peer, one core)",
    )
    parser.add_argument(
        "--verbs",
        default="",
        help="mutated: only these verb numbers (comma-separated), to find the one that hurts",
    )
    parser.add_argument(
        "--logs",
        type=Path,
        default=None,
        help="copy the daemons' logs into this directory at the end",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = float(QUICK_SECONDS)
    if args.settle is None:
        args.settle = 2.0 if args.quick else 5.0
    if not 0 < args.seconds <= 3600:
        parser.error("--seconds must be in (0, 3600]")
    if not 0 <= args.settle <= 3600:
        parser.error("--settle must be in [0, 3600]")
    try:
        args.verb_list = [int(v, 0) for v in args.verbs.split(",") if v.strip()]
    except ValueError:
        parser.error("--verbs takes verb numbers, e.g. 8,16")
    if not all(0 <= v <= 31 for v in args.verb_list):
        parser.error("--verbs: verb numbers are 0..31")
    if not 1 <= args.senders <= 16:
        parser.error("--senders must be in [1, 16]")
    if not 1 <= args.identities <= 4096:
        parser.error("--identities must be in [1, 4096]")
    names = ATTACKS if args.attacks == "all" else [a.strip() for a in args.attacks.split(",")]
    unknown = [a for a in names if a not in TARGETS]
    if unknown:
        parser.error(f"unknown attack(s): {', '.join(unknown)} (see --list)")
    args.selected = names
    return args


def attack_list() -> str:
    return "\n".join(f"{name:17} {TARGETS[name]:5} {DESCRIPTIONS[name]}" for name in ATTACKS)


# -------------------------------------------------------------------------- identity pool


def _generate_one(_: int) -> str:
    return Identity.generate(os.urandom).to_string(True)


def identity_pool(cache_dir: Path, n: int) -> Path:
    """A file of ``n`` secret identities; the proof of work (~0.6 s each) is done once."""
    path = cache_dir / "abuse-identities.txt"
    have: list[str] = []
    if path.exists():
        for line in path.read_text().split():
            try:
                Identity.from_string(line)
            except ValueError:
                continue
            have.append(line)
    if len(have) < n:
        missing = n - len(have)
        print(f"generating {missing} identities (proof of work, cached in {path}) ...",
              flush=True)  # fmt: skip
        with multiprocessing.Pool(os.cpu_count() or 1) as pool:
            have += pool.map(_generate_one, range(missing))
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(have) + "\n")
        os.replace(tmp, path)
    out = cache_dir / f"abuse-identities-{n}.txt"
    out.write_text("\n".join(have[:n]) + "\n")
    return out


# ---------------------------------------------------------------------------- measuring


class RssWatch(threading.Thread):
    """Samples a pid's VmRSS every 0.2 s; calls ``on_limit`` once past ``limit_kb``."""

    def __init__(self, pid: int, limit_kb: int, on_limit: Any) -> None:
        super().__init__(daemon=True)
        self.pid, self.limit_kb, self.on_limit = pid, limit_kb, on_limit
        self.peak_kb = 0
        self.limit_hit_at: float | None = None
        self.gone = False
        self._stop_event = threading.Event()
        self._t0 = time.monotonic()

    def run(self) -> None:
        while not self._stop_event.is_set():
            kb = rss_kb(self.pid)
            if kb is None:
                self.gone = True
                return
            self.peak_kb = max(self.peak_kb, kb)
            if kb > self.limit_kb and self.limit_hit_at is None:
                self.limit_hit_at = time.monotonic() - self._t0
                self.on_limit()
            self._stop_event.wait(0.2)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)


def rss_kb(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"VmRSS:\s+(\d+)", text)
    return int(m.group(1)) if m else None


def udp_counters(ns: Namespace) -> dict[str, int]:
    """The namespace's UDP counters (``/proc/net/snmp``): RcvbufErrors counts datagrams the
    kernel dropped because a socket was not read fast enough."""
    r = ns.run(["cat", "/proc/net/snmp"], check=False, timeout=10)
    rows = [line.split()[1:] for line in r.stdout.splitlines() if line.startswith("Udp:")]
    if len(rows) < 2:
        return {}
    return {k: int(v) for k, v in zip(rows[0], rows[1], strict=False) if v.isdigit()}


def ping_figures(output: str) -> tuple[int, int, list[float]]:
    """(transmitted, received, RTTs in ms) from ping's output."""
    m = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", output)
    times = [float(t) for t in re.findall(r"time=([\d.]+)", output)]
    if not m:
        return 0, 0, times
    return int(m.group(1)), int(m.group(2)), times


@dataclass
class Result:
    attack: str
    target: str
    seconds: float
    worker: dict[str, Any] = field(default_factory=dict)
    rss_before: int = 0
    rss_peak: int = 0
    rss_after: int | None = None
    rss_settled: int | None = None
    recovered_s: float | None = None  # from the attack's end to a /status under 1 s
    rcvbuf_drops: int = 0  # datagrams the target's kernel dropped, its socket being full
    cpu_s: float = 0.0
    ping_sent: int = 0
    ping_received: int = 0
    rtts: list[float] = field(default_factory=list)
    status_ms: list[float] = field(default_factory=list)
    status_failures: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return int(self.worker.get("sent", 0))

    @property
    def ping_late(self) -> int:
        """Replies ping counted although they came after its 2 s wait: lost for any use."""
        return sum(1 for t in self.rtts if t > PING_WAIT * 1000)

    @property
    def ping_loss(self) -> float:
        """Percent of pings without a reply within 2 s."""
        if not self.ping_sent:
            return 100.0
        return 100.0 * (1 - (self.ping_received - self.ping_late) / self.ping_sent)

    @property
    def growth_mb(self) -> float:
        return (self.rss_peak - self.rss_before) / 1024

    def misses(self) -> list[str]:
        out = []
        if self.growth_mb > RSS_GROWTH_TARGET_MB:
            out.append(f"RSS +{self.growth_mb:.0f} MB")
        if self.ping_loss >= PING_LOSS_TARGET:
            out.append(f"ping loss {self.ping_loss:.0f}%")
        fails = sum(self.status_failures.values())
        worst = max(self.status_ms, default=0.0)
        if worst > STATUS_TARGET_MS:
            out.append(f"/status max {worst:.0f} ms")
        if fails:
            out.append(f"/status {fails} failed")
        return out


def _mb(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.0f}"


def _rtt(r: Result) -> str:
    if not r.rtts:
        return "no reply"
    return f"{min(r.rtts):.2f}/{statistics.median(r.rtts):.2f}/{max(r.rtts):.2f}"


def _status(r: Result) -> str:
    fails = sum(r.status_failures.values())
    failed = f", failed: {json.dumps(r.status_failures)}" if fails else ""
    if not r.status_ms:
        return f"none answered{failed}"
    return f"{statistics.median(r.status_ms):.1f}/{max(r.status_ms):.1f}{failed}"


def report(r: Result) -> str:
    w = dict(r.worker)
    sent = w.pop("sent", 0)
    elapsed = float(w.get("elapsed_s") or r.seconds)
    lines = [
        f"== {r.attack} -> {r.target} ({DESCRIPTIONS[r.attack]})",
        f"   sent {sent} ({sent / max(elapsed, 1e-9):.0f}/s); worker: {json.dumps(w)}",
        f"   target RSS MB before {_mb(r.rss_before)}, peak {_mb(r.rss_peak)}, "
        f"after {_mb(r.rss_after)}"
        + (f", settled {_mb(r.rss_settled)}" if r.rss_settled is not None else "")
        + f"; CPU {r.cpu_s:.1f} s; UDP receive-buffer drops {r.rcvbuf_drops}",
        f"   ping a->b: {r.ping_received}/{r.ping_sent} answered ({r.ping_late} after over "
        f"{PING_WAIT} s), loss {r.ping_loss:.1f}%, RTT ms min/median/max {_rtt(r)}",
        f"   /status ms median/max {_status(r)} ({len(r.status_ms)} answered); after the "
        f"attack answered within {RECOVERED_MS} ms "
        + (f"after {r.recovered_s:.1f} s" if r.recovered_s is not None else "never"),
    ]
    if r.notes:
        lines.append("   notes: " + "; ".join(r.notes))
    misses = r.misses()
    lines.append("   targets: " + ("met" if not misses else "missed: " + ", ".join(misses)))
    return "\n".join(lines)


def summary(results: list[Result]) -> str:
    head = (f"{'attack':17} {'target':6} {'sent':>9} {'RSS MB before/peak/after':>25} "
            f"{'+MB':>6} {'loss%':>6} {'RTT ms min/med/max':>20} {'/status ms med/max':>20} "
            f"{'recov s':>7}  missed targets")  # fmt: skip
    rows = [head, "-" * len(head)]
    for r in results:
        rss = f"{_mb(r.rss_before)}/{_mb(r.rss_peak)}/{_mb(r.rss_after)}"
        if r.rss_settled is not None:
            rss += f"/{_mb(r.rss_settled)}"
        fails = sum(r.status_failures.values())
        status = (f"{statistics.median(r.status_ms):.0f}/{max(r.status_ms):.0f}"
                  if r.status_ms else "-") + (f" ({fails} failed)" if fails else "")  # fmt: skip
        rtt = _rtt(r) if r.rtts else "-"
        misses = r.misses() + [n.split(";")[0] for n in r.notes
                               if n.startswith(("CRASHED", "cut"))]  # fmt: skip
        recov = "never" if r.recovered_s is None else f"{r.recovered_s:.1f}"
        rows.append(f"{r.attack:17} {r.target:6} {r.sent:>9} {rss:>25} {r.growth_mb:>6.1f} "
                    f"{r.ping_loss:>6.1f} {rtt:>20} {status:>20} {recov:>7}  "
                    f"{', '.join(misses) or '-'}")  # fmt: skip
    return "\n".join(rows)


# ------------------------------------------------------------------------------- the lab


@dataclass
class Lab:
    lan: Lan
    work: Path
    daemons: dict[str, Daemon]
    names: list[str]
    env: dict[str, str]
    nwid: str
    b_ip: str
    pool: Path
    sources: list[str]

    @property
    def attacker(self) -> Namespace:
        return self.lan.hosts[4]

    def ns(self, name: str) -> Namespace:
        return self.lan.hosts[self.names.index(name)]

    def public(self, name: str) -> str:
        return (self.work / name / "identity.public").read_text().strip()

    def ip(self, name: str) -> str:
        return str(self.lan.v4[self.names.index(name)].ip)

    def restart(self, name: str) -> bool:
        self.daemons[name].stop()
        self.daemons[name] = Daemon(name, self.ns(name), self.work / name, self.env)
        return bool(wait_until(self.daemons[name].online, 60))

    def ping_ok(self) -> bool:
        r = self.ns("a").run(["ping", "-n", "-c", "1", "-W", "1", self.b_ip], check=False,
                             timeout=10)  # fmt: skip
        return r.returncode == 0


def build_lab(lan: Lan, work: Path, pool: Path, env: dict[str, str]) -> Lab | str:
    """Daemons up, network created and joined, a pinging b; or why not."""
    names = ["root", "ctrl", "a", "b"]
    homes = {n: work / n for n in names}
    root_secret, root_public = _identity(0)
    idtool.main(["genplanet", "--out", str(work / "planet"), "--id", "0x5a5a",
                 f"{root_public}@{lan.v4[0].ip}/{PORT}"])  # fmt: skip
    for h in homes.values():
        h.mkdir()
        shutil.copy(work / "planet", h / "planet")
        (h / "local.conf").write_text(json.dumps({"settings": {"allowSecondaryPort": False}}))
    (homes["root"] / "identity.secret").write_text(root_secret)
    (homes["ctrl"] / "identity.secret").write_text(_identity(1)[0])
    (homes["a"] / "identity.secret").write_text(_identity(2)[0])
    (homes["b"] / "identity.secret").write_text(_identity(3)[0])
    attacker = lan.hosts[4]
    attacker.ip("addr", "flush", "dev", "eth0")
    sources = [f"198.18.{k}.66" for k in range(1, SOURCES + 1)]
    batch = "".join(f"addr add {s}/16 dev eth0\n" for s in sources)
    subprocess.run(["ip", "-n", attacker.name, "-batch", "-"], input=batch, text=True,
                   check=True, timeout=30)  # fmt: skip
    daemons = {n: Daemon(n, lan.hosts[i], homes[n], env) for i, n in enumerate(names)}
    lab = Lab(lan, work, daemons, names, env, "", "", pool, sources)
    for d in daemons.values():
        if not wait_until(d.online, 60):
            return f"{d.name} did not come online; see {work}/{d.name}.log"
    ctrl = daemons["ctrl"]
    ctrl_addr = lab.public("ctrl")[:10]
    net = ctrl.api("POST", f"/controller/network/{ctrl_addr}______", {
        "name": "abuse", "private": True, "v4AssignMode": {"zt": True},
        "ipAssignmentPools": [{"ipRangeStart": "198.19.0.10", "ipRangeEnd": "198.19.0.250"}],
        "routes": [{"target": "198.19.0.0/24", "via": None}],
    })  # fmt: skip
    lab.nwid = str(net["id"])
    for n in ("a", "b"):
        daemons[n].api("POST", f"/network/{lab.nwid}", {})
        addr = lab.public(n)[:10]
        wait_until(lambda a=addr: ctrl.api("GET", f"/controller/network/{lab.nwid}/member/{a}")
                   is not None, 30)  # fmt: skip
        ctrl.api("POST", f"/controller/network/{lab.nwid}/member/{addr}", {"authorized": True})

    def ip_of(n: str) -> str | None:
        for x in daemons[n].api("GET", "/network") or []:
            if x["id"] == lab.nwid and x["status"] == "OK" and x["assignedAddresses"]:
                return str(x["assignedAddresses"][0].split("/")[0])
        return None

    if not wait_until(lambda: ip_of("a") and ip_of("b"), 60):
        return "members did not get configured"
    lab.b_ip = ip_of("b") or ""
    if not wait_until(lab.ping_ok, 30):
        return "a cannot ping b over the overlay"
    return lab


# ---------------------------------------------------------------------------- one attack


def _spawn(ns: Namespace, kind: str, spec: dict[str, Any], path: Path) -> subprocess.Popen[str]:
    path.write_text(json.dumps(spec))
    proc: subprocess.Popen[str] = ns.popen(
        [sys.executable, str(BENCH / "abuse_worker.py"), kind, str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return proc


def _collect(proc: subprocess.Popen[str], timeout: float, what: str,
             notes: list[str]) -> dict[str, Any]:  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        notes.append(f"{what} overran and was killed")
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        notes.append(f"{what} failed (exit {proc.returncode}): {err.strip()[-300:]}")
        return {}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def merge(tallies: list[dict[str, Any]]) -> dict[str, Any]:
    """One tally from several sender processes: counts add up, times take the longest."""
    out: dict[str, Any] = {}
    for tally in tallies:
        for k, v in tally.items():
            if k.endswith("_s"):
                out[k] = max(out.get(k, 0.0), v)
            elif isinstance(v, int):
                out[k] = out.get(k, 0) + v
            else:
                out.setdefault(k, v)
    if len(tallies) > 1:
        out["senders"] = len(tallies)
    return out


def run_attack(lab: Lab, attack: str, index: int, args: argparse.Namespace) -> Result:
    target = TARGETS[attack]
    r = Result(attack, target, args.seconds)
    if lab.daemons[target].proc.poll() is not None:
        r.notes.append("target was down: restarted")
        lab.restart(target)
    if not wait_until(lab.ping_ok, 30):
        r.notes.append("a could not ping b before the attack")
    daemon = lab.daemons[target]
    pid = daemon.pid()
    r.rss_before = rss_kb(pid) or 0
    cpu0 = daemon.cpu_seconds()
    udp0 = udp_counters(lab.ns(target))
    seconds = args.seconds
    work = lab.work
    token = (work / target / "authtoken.secret").read_text().strip()
    probe = _spawn(lab.ns(target), "probe", {
        "port": PORT, "token": token, "seconds": seconds, "interval": PING_INTERVAL,
        "timeout": 5.0, "max_count": int(seconds / PING_INTERVAL) + 10,
    }, work / f"{attack}.probe.json")  # fmt: skip
    count = max(1, int(seconds / PING_INTERVAL))
    ping_cmd = ["ping", "-n", "-i", str(PING_INTERVAL), "-c", str(count), "-W", str(PING_WAIT),
                lab.b_ip]  # fmt: skip
    ping = lab.ns("a").popen(ping_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if attack in UDP_ATTACKS:
        spec: dict[str, Any] = {
            "attack": attack, "target_ip": lab.ip(target), "target_port": PORT,
            "target_identity": _identity(0)[1] if target == "root" else lab.public(target),
            "sources": lab.sources, "pool": str(lab.pool), "seconds": seconds,
            "max_count": int(seconds * 200_000), "nwid": lab.nwid,
            "controller": lab.public("ctrl")[:10], "peer_index": index, "verbs": args.verb_list,
        }  # fmt: skip
        workers = [_spawn(lab.attacker, "udp", {**spec, "seed": index * 100 + k},
                          work / f"{attack}.{k}.json") for k in range(args.senders)]  # fmt: skip
    else:
        spec = {"attack": attack, "port": PORT, "seconds": seconds,
                "max_count": int(seconds * 20_000), "seed": index + 1}  # fmt: skip
        workers = [_spawn(lab.ns(target), "api", spec, work / f"{attack}.json")]

    def cut() -> None:
        for w in workers:
            w.terminate()

    watch = RssWatch(pid, args.rss_limit * 1024, cut)
    watch.start()
    r.worker = merge([_collect(w, seconds + 90, "attack worker", r.notes) for w in workers])
    probe_out = _collect(probe, seconds + 60, "status probe", r.notes)
    r.status_ms = list(probe_out.get("latencies_ms", []))
    r.status_failures = dict(probe_out.get("failures", {}))
    try:
        ping_out, _ = ping.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        ping.kill()
        ping_out, _ = ping.communicate(timeout=10)
    r.ping_sent, r.ping_received, r.rtts = ping_figures(ping_out)
    r.rcvbuf_drops = udp_counters(lab.ns(target)).get("RcvbufErrors", 0) - udp0.get(
        "RcvbufErrors", 0
    )
    alive = daemon.proc.poll() is None and rss_kb(pid) is not None
    recovered = True
    if alive:  # the peak is watched through the settle too (queued datagrams still count)
        r.cpu_s = daemon.cpu_seconds() - cpu0
        t_end = time.monotonic()
        recovery = _spawn(lab.ns(target), "probe", {
            "port": PORT, "token": token, "seconds": RECOVERY_LIMIT, "interval": 0.5,
            "timeout": 5.0, "max_count": int(RECOVERY_LIMIT / 0.5) + 10,
            "until_ms": RECOVERED_MS, "since": time.time(),
        }, work / f"{attack}.recovery.json")  # fmt: skip
        time.sleep(min(5.0, args.settle))
        r.rss_after = rss_kb(pid)
        if args.settle > 5.0:
            time.sleep(max(0.0, args.settle - (time.monotonic() - t_end)))
            r.rss_settled = rss_kb(pid)
        answers = _collect(recovery, RECOVERY_LIMIT + 30, "recovery probe", r.notes)
        recovered = any(x < RECOVERED_MS for x in answers.get("latencies_ms", []))
        if recovered:
            r.recovered_s = float(answers.get("elapsed_s", 0.0))
    else:
        r.notes.append(f"CRASHED: {target} exited ({daemon.proc.returncode}); "
                       f"see {work}/{target}.log")  # fmt: skip
    watch.stop()
    r.rss_peak = max(watch.peak_kb, r.rss_before)
    if watch.limit_hit_at is not None:
        r.notes.append(f"cut at the {args.rss_limit} MB RSS limit after {watch.limit_hit_at:.1f} s")
    last = r.rss_settled if r.rss_settled is not None else r.rss_after
    if alive and not recovered:
        r.notes.append(f"{target} did not answer /status within {RECOVERED_MS} ms for "
                       f"{RECOVERY_LIMIT:.0f} s after the attack: restarted")  # fmt: skip
        lab.restart(target)
    elif alive and (watch.limit_hit_at is not None
                    or (last or 0) - r.rss_before > RSS_GROWTH_TARGET_MB * 1024):  # fmt: skip
        # what it still holds would skew the next attacks' figures
        r.notes.append(f"{target} restarted afterwards (RSS still {_mb(last)} MB)")
        lab.restart(target)
    return r


# ---------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        print(attack_list())
        return 0
    unavailable = lab_unavailable(("ping", "ip"), "iputils-ping iproute2")
    if unavailable:
        print(unavailable)
        return 2
    pool = identity_pool(args.cache_dir, args.identities)
    env = daemon_env()
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp, \
            bridge_namespaces(5, "198.18.0.0/16", None) as lan:  # fmt: skip
        work = Path(tmp)
        lab_or_error = build_lab(lan, work, pool, env)
        try:
            if isinstance(lab_or_error, str):
                print(lab_or_error)
                return 1
            lab = lab_or_error
            print(f"CPU check: {cpu_check():.1f} ms for a fixed Python loop (the figures "
                  "below move with this VM's speed)")  # fmt: skip
            print(f"{len(args.selected)} attacks, {args.seconds:g} s each, settle "
                  f"{args.settle:g} s; network {lab.nwid}; b at {lab.b_ip}",
                  flush=True)  # fmt: skip
            for attack in args.selected:
                result = run_attack(lab, attack, ATTACKS.index(attack), args)
                results.append(result)
                print(report(result), flush=True)
            print()
            print(
                f"targets: RSS growth <= {RSS_GROWTH_TARGET_MB} MB, ping loss < "
                f"{PING_LOSS_TARGET:g}%, /status <= {STATUS_TARGET_MS} ms and none failed"
            )
            print(summary(results))
        finally:  # (daemons of a lab that failed half-way end with their namespaces)
            if not isinstance(lab_or_error, str):
                for d in lab_or_error.daemons.values():
                    d.stop()
            if args.logs is not None:
                args.logs.mkdir(parents=True, exist_ok=True)
                for log in work.glob("*.log"):
                    shutil.copy(log, args.logs / log.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
