"""bench/root.py, bench/root_core.py and bench/throughput.py stay runnable without root:
the simulated peers' packets are accepted by ztone's real core (a root learns their
paths from their OK(HELLO)s, answers their WHOIS, relays their frames), the arguments
are checked, and ``--compare`` without a zerotier-one says so and exits 2."""

from __future__ import annotations

import ipaddress
import resource
import subprocess
import sys

import pytest

from locations import ROOT

BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import root  # noqa: E402
import root_core  # noqa: E402

from ztone.node.wire.packet import Verb  # noqa: E402


def test_simulated_peers_join_a_real_root_core_and_their_traffic_is_served() -> None:
    lab = root_core.Lab(seed=3)
    lab.add_identities(40)
    lab.join(0, 40)
    peers = lab.node.peers
    assert {int(i.address) for i in lab.ids} <= set(peers)
    # The root confirms each new path with a HELLO; only the peer's OK(HELLO) to it
    # (root_worker.answer_to_root) installs the path slot.
    assert all(len(peers[int(i.address)].slots) == 1 for i in lab.ids)
    tx_ok = lab.node.metrics.verbs[1][Verb.OK]
    lab.steady(40, 224_000 * 2)
    counters = lab.node.counters
    assert counters["relayed"] == 80  # every peer's frame to another peer, once per period
    assert lab.node.metrics.verbs[1][Verb.OK] - tx_ok == 80 + 80  # OK(HELLO)s + OK(WHOIS)s
    assert counters["rx_bad_mac"] == 0


def test_root_bench_arguments_are_checked() -> None:
    assert root.parse_args(["--peers", "100,1000"]).levels == [100, 1000]
    for bad in (["--peers", "1000,100"], ["--peers", "x"], ["--workers", "0"],
                ["--window", "0"], ["--peers", "1"]):  # fmt: skip
        with pytest.raises(SystemExit):
            root.parse_args(bad)


def test_source_addresses_are_one_per_slash_24_in_the_benchmark_range() -> None:
    dealt = root.source_addresses(300, 2)
    flat = [a for share in dealt for a in share]
    assert len(flat) == 300 and len({a.rsplit(".", 1)[0] for a in flat}) == 300
    assert all(ipaddress.ip_address(a) in root.SUBNET for a in flat)
    assert "198.18.0.10" not in flat  # the root's /24 stays the root's


def test_throughput_compare_without_zerotier_one_exits_2() -> None:
    r = subprocess.run(
        [sys.executable, str(BENCH / "throughput.py"), "--compare", "--compare-binary",
         str(ROOT / "no-such-zerotier-one")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 2
    assert "zerotier-one" in r.stdout


def test_enough_workers_for_one_socket_per_peer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 20_000))

    def refuse(*args: object) -> None:
        raise ValueError("not allowed to raise maximum limit")

    monkeypatch.setattr(resource, "setrlimit", refuse)
    assert root.enough_workers(50_000, 2) == 3  # 25,064 > 20,000 >= 16,731
    assert root.enough_workers(10_000, 2) == 2
    assert root.enough_workers(10_000, 4) == 4  # never fewer than asked
    raised: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "setrlimit", lambda _, limits: raised.append(limits))
    assert root.enough_workers(50_000, 2) == 2  # root with CAP_SYS_RESOURCE raises it
    assert raised == [(1024, 25_064)]
