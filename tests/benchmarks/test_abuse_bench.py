"""bench/abuse.py stays runnable: its arguments, its attack list, and packets its
attacker builds that ztone's own core authenticates and parses (no root needed)."""

from __future__ import annotations

import ipaddress
import random
import sys

import pytest

from locations import ROOT
from sim.network import START, SimNetwork, make_planet, vector_identities
from ztone.crypto import c25519
from ztone.crypto.armor import PeerKey, dearmor
from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.fragment import is_fragment, parse_fragment
from ztone.node.wire.hello import parse_hello
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.packet import MAX_PACKET_LENGTH, Verb, uncompress
from ztone.node.wire.verbs import parse_push_direct_paths, parse_rendezvous, parse_whois
from ztone.node.wire.vl2_verbs import parse_config_request, parse_gather, parse_multicast_like

BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import abuse  # noqa: E402
import abuse_worker as w  # noqa: E402

IDS = vector_identities()
TARGET, ATTACKER = IDS[0], IDS[5]
ENDPOINT = InetAddress(ipaddress.ip_address("198.18.0.1"), 9993)


def _keys() -> tuple[PeerKey, PeerKey]:
    """(the attacker's key, the target's key): the same 48 bytes agreed from both sides."""
    return PeerKey(ATTACKER.agree(TARGET)), PeerKey(TARGET.agree(ATTACKER))


def _open(packet: bytes, key: PeerKey) -> bytearray:
    data = bytearray(packet)
    assert dearmor(data, key), "the target would reject the MAC"
    return uncompress(data)


def test_list_names_every_attack_with_its_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert abuse.main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == abuse.ATTACKS
    assert set(abuse.ATTACKS) == set(abuse.TARGETS) == set(abuse.DESCRIPTIONS)
    assert {abuse.TARGETS[a] for a in abuse.ATTACKS} == {"root", "ctrl", "a", "b"}
    assert all(abuse.TARGETS[a] == "a" for a in w.API_ATTACKS)


def test_arguments() -> None:
    quick = abuse.parse_args(["--quick"])
    assert (quick.seconds, quick.settle, quick.selected) == (5.0, 2.0, abuse.ATTACKS)
    args = abuse.parse_args(["--attacks", "whois, junk", "--seconds", "30", "--settle", "600"])
    assert (args.seconds, args.settle, args.selected) == (30.0, 600.0, ["whois", "junk"])
    assert abuse.parse_args([]).seconds == 60.0
    assert abuse.parse_args(["--senders", "2"]).senders == 2
    assert abuse.parse_args(["--verbs", "8, 0x10"]).verb_list == [8, 16]
    assert abuse.parse_args([]).verb_list == []
    for bad in (["--attacks", "hello,nope"], ["--seconds", "0"], ["--seconds", "7200"],
                ["--settle", "-1"], ["--identities", "0"], ["--senders", "0"], ["--verbs", "x"],
                ["--verbs", "40"]):  # fmt: skip
        with pytest.raises(SystemExit):
            abuse.parse_args(bad)


def test_tallies_of_several_senders_add_up() -> None:
    merged = abuse.merge([{"sent": 3, "bytes": 30, "elapsed_s": 5.0, "setup_s": 0.1},
                          {"sent": 4, "bytes": 40, "elapsed_s": 5.2, "setup_s": 0.0}])  # fmt: skip
    assert merged == {"sent": 7, "bytes": 70, "elapsed_s": 5.2, "setup_s": 0.1, "senders": 2}
    assert abuse.merge([{}]) == {}


def test_hello_is_accepted_by_a_real_node() -> None:
    mine, theirs = _keys()
    rng = random.Random(1)
    packet = w.hello_packet(rng, ATTACKER, mine, int(TARGET.address), ENDPOINT, START)
    hello = parse_hello(packet, theirs)
    assert hello.identity == ATTACKER.public_only() and hello.destination == ENDPOINT
    # a core on a virtual clock learns the attacker as a peer from it
    signing = c25519.generate(lambda n: bytes([3]) * n)
    net = SimNetwork(seed=3)
    root = net.add_node("root", TARGET, "198.18.0.1", make_planet([(TARGET, "198.18.0.1")],
                                                                  signing))  # fmt: skip
    source = InetAddress(ipaddress.ip_address("198.18.1.66"), 40000)
    root.node.on_wire_packet(net.now, 1, source, packet)
    assert int(ATTACKER.address) in root.node.peers
    assert root.node.counters["rx_bad_mac"] == 0 and root.node.counters["rx_malformed"] == 0
    # and then authenticates its armored verbs (an ECHO is answered)
    root.node.drain_actions()
    echo = w.sealed(rng, int(ATTACKER.address), mine, int(TARGET.address), Verb.ECHO, b"x")
    root.node.on_wire_packet(net.now + 1000, 1, source, echo)
    assert root.node.counters["rx_bad_mac"] == 0
    assert any(getattr(a, "remote", None) == source for a in root.node.drain_actions())


def test_fake_identities_have_working_keys_but_no_proof_of_work() -> None:
    rng = random.Random(2)
    fake = w.fake_identity(rng)
    assert not fake.address.is_reserved and not fake.locally_validate()
    key = PeerKey(fake.agree(TARGET))
    packet = w.hello_packet(rng, fake, key, int(TARGET.address), ENDPOINT, START)
    assert parse_hello(packet, PeerKey(TARGET.agree(fake))).identity == fake.public_only()


def test_verb_builders_parse() -> None:
    mine, theirs = _keys()
    rng = random.Random(3)
    me, t = int(ATTACKER.address), int(TARGET.address)
    like = _open(w.sealed(rng, me, mine, t, Verb.MULTICAST_LIKE, w.multicast_like_payload(rng)),
                 theirs)  # fmt: skip
    assert len(like) <= 1432 and len(parse_multicast_like(like[28:])) == w.LIKES_PER_DATAGRAM
    whois = _open(w.sealed(rng, me, mine, t, Verb.WHOIS, w.whois_payload(rng)), theirs)
    assert len(parse_whois(whois)) == w.WHOIS_PER_DATAGRAM
    nwids = set()
    for _ in range(40):
        gather = _open(w.sealed(rng, me, mine, t, Verb.MULTICAST_GATHER,
                                w.gather_payload(rng, 0x1234)), theirs)  # fmt: skip
        g = parse_gather(gather[28:], lambda data, pos: (None, pos))
        nwids.add(g.nwid == 0x1234)
        assert g.limit > 0
    assert nwids == {True, False}
    controller = 0x0102030405
    for _ in range(20):
        nwid = w.random_config_nwid(rng, controller)
        req = parse_config_request(_open(w.sealed(rng, me, mine, t, Verb.NETWORK_CONFIG_REQUEST,
                                                  w.config_request_payload(rng, nwid)),
                                         theirs)[28:])  # fmt: skip
        assert req.nwid == nwid and Dictionary.parse(req.metadata).get("v") is not None


def test_orphan_fragments_and_junk() -> None:
    rng = random.Random(4)
    t = int(TARGET.address)
    for _ in range(50):
        data = w.orphan_fragment(rng, t)
        assert is_fragment(data)
        f = parse_fragment(data)
        assert f.destination == t and f.total == 7 and 1 <= f.number < 7
    shapes = set()
    for _ in range(200):
        junk = w.junk_datagram(rng, t)
        assert 1 <= len(junk) <= 1500
        shapes.add(len(junk) >= 18 and junk[8:13] == t.to_bytes(5, "big"))
    assert shapes == {True, False}


def test_mutated_packets_authenticate_and_keep_endpoints_in_the_lab() -> None:
    """Every verb comes out correctly armored; RENDEZVOUS and PUSH_DIRECT_PATHS (which
    make a node send to the endpoints inside) only ever name 198.18.0.0/16."""
    mine, theirs = _keys()
    rng = random.Random(5)
    verbs = set()
    for _ in range(600):
        packet = w.mutated_packet(rng, ATTACKER, mine, int(TARGET.address), 0x1234, 0x0102030405)
        assert len(packet) <= MAX_PACKET_LENGTH
        data = bytearray(packet)
        assert dearmor(data, theirs)
        verb = data[27] & 0x1F
        verbs.add(verb)
        if verb == Verb.RENDEZVOUS:
            assert parse_rendezvous(data).endpoint.ip in w.SAFE_ENDPOINTS
        elif verb == Verb.PUSH_DIRECT_PATHS:
            for pushed in parse_push_direct_paths(data):
                assert pushed.endpoint is not None and pushed.endpoint.ip in w.SAFE_ENDPOINTS
    assert set(w.MUTATED_VERBS) <= verbs
    only = w.mutated_packet(rng, ATTACKER, mine, int(TARGET.address), 0x1234, 1, [Verb.ECHO])
    data = bytearray(only)
    assert dearmor(data, theirs) and data[27] == Verb.ECHO


def test_mutated_packets_do_not_break_a_real_node() -> None:
    mine, _ = _keys()
    rng = random.Random(6)
    signing = c25519.generate(lambda n: bytes([4]) * n)
    net = SimNetwork(seed=4)
    node = net.add_node("b", TARGET, "198.18.0.4", make_planet([(IDS[1], "198.18.0.9")],
                                                               signing)).node  # fmt: skip
    source = InetAddress(ipaddress.ip_address("198.18.1.66"), 40000)
    t = int(TARGET.address)
    node.on_wire_packet(net.now, 1, source, w.hello_packet(rng, ATTACKER, mine, t, ENDPOINT,
                                                           net.now))  # fmt: skip
    for i in range(300):
        node.on_wire_packet(
            net.now + i, 1, source, w.mutated_packet(rng, ATTACKER, mine, t, 0x1234, 0x0102030405)
        )
        node.on_wire_packet(net.now + i, 1, source, w.junk_datagram(rng, t))
        node.on_wire_packet(net.now + i, 1, source, w.orphan_fragment(rng, t))
    assert node.counters["rx_bad_mac"] == 0


def test_unsafe_targets_are_refused() -> None:
    spec = {"attack": "junk", "target_ip": "192.0.2.1", "sources": [], "seconds": 1}
    with pytest.raises(SystemExit, match="refusing"):
        w.run_udp(spec)


def test_ping_figures_and_the_targets_missed() -> None:
    out = ("64 bytes from 198.19.0.72: icmp_seq=1 ttl=64 time=0.71 ms\n"
           "64 bytes from 198.19.0.72: icmp_seq=2 ttl=64 time=2500 ms\n"
           "64 bytes from 198.19.0.72: icmp_seq=3 ttl=64 time=1.20 ms\n"
           "--- 198.19.0.72 ping statistics ---\n"
           "4 packets transmitted, 3 received, 25% packet loss, time 600ms\n")  # fmt: skip
    sent, received, rtts = abuse.ping_figures(out)
    assert (sent, received, rtts) == (4, 3, [0.71, 2500.0, 1.2])
    r = abuse.Result("junk", "root", 5.0, ping_sent=sent, ping_received=received, rtts=rtts,
                     rss_before=60 * 1024, rss_peak=100 * 1024, status_ms=[5.0, 250.0])  # fmt: skip
    assert r.ping_late == 1 and r.ping_loss == 50.0  # the reply after 2.5 s counts as lost
    assert r.misses() == ["RSS +40 MB", "ping loss 50%", "/status max 250 ms"]
    met = abuse.Result("junk", "root", 5.0, ping_sent=4, ping_received=4, rtts=[1.0] * 4,
                       rss_before=1000, rss_peak=1000, status_ms=[3.0])  # fmt: skip
    assert met.misses() == []
    assert "junk" in abuse.summary([r, met]) and "targets: met" in abuse.report(met)
