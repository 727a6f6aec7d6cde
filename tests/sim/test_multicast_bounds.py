"""MULTICAST_LIKE floods against a root and a member (issue 11, item 1).

A peer that has only said HELLO floods the root with LIKEs for random networks:
the root must store none of them (it keeps LIKEs only of networks the sender proved
membership of, see ``ztone.node.vl1.root_members``), must not answer a GATHER with them,
and may ask for a certificate only a bounded number of times. Real members still
get their LIKEs stored on the root. A member must not let the authorization of one
network id carry over to the next network id of the same LIKE packet.
"""

from __future__ import annotations

import random

from ztone.crypto.armor import PeerKey, dearmor
from ztone.node.actions import SendPacket
from ztone.node.bounds import ROOT_COM_REQUESTS_PER_PEER
from ztone.node.vl2.multicaster import Multicaster
from ztone.node.wire.packet import Verb, uncompress
from ztone.node.wire.vl2_verbs import MulticastGroup

from .test_vl2_sim import build, join_and_authorize


def _like_payload(rng: random.Random, count: int, nwid: int | None = None) -> bytes:
    out = bytearray()
    for _ in range(count):
        n = nwid if nwid is not None else rng.getrandbits(64)
        out += n.to_bytes(8, "big") + rng.getrandbits(48).to_bytes(6, "big")
        out += rng.getrandbits(32).to_bytes(4, "big")
    return bytes(out)


def _known(mc: Multicaster, now: int, nwid: int, mac: int, adi: int) -> int:
    total, _ = mc.gather(now, nwid, MulticastGroup(mac, adi), 0, 16, False, lambda n: 0)
    return total


def test_like_flood_from_a_hello_only_peer_is_not_stored_on_the_root() -> None:
    net, _controller, _nwid = build()
    root, a = net.nodes["root"], net.nodes["a"]
    assert net.run(60_000, lambda: a.node.online)
    rng = random.Random(11)
    root_address = int(root.identity.address)
    flooded: list[tuple[int, int, int]] = []
    for _ in range(300):  # 300 packets x 76 random (network, group) pairs
        payload = _like_payload(rng, 76)
        flooded += [(int.from_bytes(payload[i:i + 8], "big"),
                     int.from_bytes(payload[i + 8:i + 14], "big"),
                     int.from_bytes(payload[i + 14:i + 18], "big"))
                    for i in range(0, len(payload), 18)]  # fmt: skip
        a.node.send(net.now, root_address, Verb.MULTICAST_LIKE, payload, compress=True)
        net._drain(a)
        net.run(5)
    net.run(1_000)
    mc = root.node.multicaster
    assert all(_known(mc, net.now, *f) == 0 for f in flooded[:500])
    assert mc.total == 0
    # the root asked for certificates, but only a bounded number of times
    assert 0 < root.node.counters["root_com_requested"] <= ROOT_COM_REQUESTS_PER_PEER
    assert root.node.counters["multicast_like_unauthorized"] == len(flooded)


def test_members_likes_are_stored_on_the_root_after_proof() -> None:
    net, controller, nwid = build()
    join_and_authorize(net, controller, nwid)
    root, a, b = net.nodes["root"], net.nodes["a"], net.nodes["b"]
    group = MulticastGroup(0x333300000001, 0)
    for sim in (a, b):
        sim.node.multicast_subscribe(net.now, nwid, group.mac, group.adi)
        net._drain(sim)
    members = {int(a.identity.address), int(b.identity.address)}

    def stored() -> bool:
        return set(root.node.multicaster.members(net.now, nwid, group)) == members

    # LIKE -> ERROR(NEED_MEMBERSHIP_CERTIFICATE) -> credentials -> the next LIKE (60 s)
    assert net.run(150_000, stored)
    assert len(root.node.root_memberships) >= 2
    # ... and the root answers a member's GATHER with the other member
    _, picked = root.node.multicaster.gather(net.now, nwid, group, int(a.identity.address), 8,
                                             False, lambda n: 0)  # fmt: skip
    assert picked == [int(b.identity.address)]


def test_authorization_does_not_carry_over_to_the_next_network() -> None:
    net, controller, nwid = build()
    join_and_authorize(net, controller, nwid)
    a, b = net.nodes["a"], net.nodes["b"]
    # a shows b its certificate, as it would before its first frame: now a is allowed
    a.node.networks[nwid].push_credentials(a.node, net.now, int(b.identity.address))
    net._drain(a)
    assert net.run(5_000, lambda: b.node.networks[nwid].is_allowed(
        int(a.identity.address), a.identity.public_only(), net.now))  # fmt: skip
    rng = random.Random(5)
    other = rng.getrandbits(64)
    # one LIKE packet: a group of the shared network, then groups of a network b is not in
    payload = _like_payload(rng, 1, nwid) + _like_payload(rng, 20, other)
    a.node.send(net.now, int(b.identity.address), Verb.MULTICAST_LIKE, payload, compress=True)
    net._drain(a)
    net.run(2_000)
    mc = b.node.multicaster
    first = payload[8:18]
    assert _known(mc, net.now, nwid, int.from_bytes(first[:6], "big"),
                  int.from_bytes(first[6:], "big")) == 1  # fmt: skip
    for i in range(18, len(payload), 18):
        mac = int.from_bytes(payload[i + 8 : i + 14], "big")
        adi = int.from_bytes(payload[i + 14 : i + 18], "big")
        assert _known(mc, net.now, other, mac, adi) == 0


def test_the_roots_certificate_request_is_upstreams_error() -> None:
    """The root's request for a certificate is ERROR(NEED_MEMBERSHIP_CERTIFICATE) as
    spec §6.3 lays it out, so a zerotier-one member answers it: in-re verb
    MULTICAST_LIKE (0x09), the LIKE's packet id, code 0x06, then the network id."""
    net, _controller, _nwid = build()
    root, a = net.nodes["root"], net.nodes["a"]
    assert net.run(60_000, lambda: a.node.online)
    nwid = 0x1122334455000001
    like = nwid.to_bytes(8, "big") + bytes.fromhex("333300000001") + bytes(4)
    a.node.send(net.now, int(root.identity.address), Verb.MULTICAST_LIKE, like)
    sent = [x.data for x in a.node.drain_actions() if isinstance(x, SendPacket)]
    assert len(sent) == 1
    root.node.on_wire_packet(net.now, 1, a.endpoint, sent[0])
    replies = [x.data for x in root.node.drain_actions() if isinstance(x, SendPacket)]
    assert len(replies) == 1
    reply = bytearray(replies[0])
    assert dearmor(reply, PeerKey(a.identity.agree(root.identity)))
    reply = uncompress(reply)
    assert reply[27] & 0x1F == Verb.ERROR
    assert bytes(reply[28:]) == (bytes((0x09,)) + sent[0][0:8] + bytes((0x06,))
                                 + nwid.to_bytes(8, "big"))  # fmt: skip
