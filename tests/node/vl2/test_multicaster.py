"""Who liked which group (``ztone.node.vl2.multicaster``), on its own: expiry, caps,
gathering and queued multicasts offered to members learned later."""

from __future__ import annotations

from ztone.node.vl2.multicaster import (
    MULTICAST_LIKE_EXPIRE,
    MULTICAST_TRANSMIT_TIMEOUT,
    Multicaster,
    OutboundMulticast,
)
from ztone.node.wire.vl2_verbs import MulticastGroup

ME = 0x0A0A0A0A0A
NWID = 0x1122334455000001
OTHER_NWID = 0x1122334455000002
G = MulticastGroup(0x01005E000001, 0)
H = MulticastGroup(0x333300000001, 0)
NOW = 1_000_000


def _never(address: int, payload: bytes) -> None:
    raise AssertionError("nothing queued: nothing to send")


def test_members_expire_after_600_s_and_we_are_never_one() -> None:
    mc = Multicaster(ME)
    assert not mc.add(NOW, NWID, G, ME, _never)
    assert mc.add(NOW, NWID, G, 0x01, _never)
    assert mc.add(NOW + 100, NWID, G, 0x02, _never)
    assert sorted(mc.members(NOW + 1, NWID, G)) == [0x01, 0x02]
    assert mc.members(NOW + MULTICAST_LIKE_EXPIRE, NWID, G) == [0x02]
    assert mc.total == 1 and mc.peer_count(0x01) == 0
    mc.clean(NOW + 100 + MULTICAST_LIKE_EXPIRE)
    assert mc.total == 0 and mc.members(NOW, NWID, G) == []


def test_a_peer_is_capped_and_only_crowds_out_itself() -> None:
    mc = Multicaster(ME, max_per_peer=2, max_per_network=100, max_total=100)
    groups = [MulticastGroup(0x01005E000000 + i, 0) for i in range(4)]
    results = [mc.add(NOW, NWID, g, 0x07, _never) for g in groups]
    assert results == [True, True, False, False] and mc.refused == 2
    assert mc.add(NOW, NWID, groups[3], 0x08, _never)  # another peer is unaffected
    assert mc.add(NOW + 1, NWID, groups[0], 0x07, _never)  # refreshing is not a new record


def test_the_total_cap_evicts_the_least_recently_liked_group() -> None:
    mc = Multicaster(ME, max_per_peer=100, max_per_network=100, max_total=3)
    groups = [MulticastGroup(0x01005E000000 + i, 0) for i in range(4)]
    for i, g in enumerate(groups[:3]):
        mc.add(NOW + i, NWID, g, 0x10 + i, _never)
    mc.add(NOW + 10, NWID, groups[0], 0x10, _never)  # refreshed: now the newest
    mc.add(NOW + 11, NWID, groups[3], 0x13, _never)
    assert mc.total == 3 and mc.evicted == 1
    assert mc.members(NOW + 12, NWID, groups[1]) == []  # the least recently liked went
    assert mc.members(NOW + 12, NWID, groups[0]) == [0x10]


def test_gather_leaves_out_the_requester_and_may_include_us() -> None:
    mc = Multicaster(ME)
    for a in (0x01, 0x02, 0x03):
        mc.add(NOW, NWID, G, a, _never)
    total, picked = mc.gather(NOW, NWID, G, 0x02, 10, True, lambda n: 0)
    assert total == 4 and picked[0] == ME and sorted(picked[1:]) == [0x01, 0x03]
    total, picked = mc.gather(NOW, NWID, G, 0x02, 1, False, lambda n: 0)
    assert total == 3 and len(picked) == 1


def test_removal_and_forgetting_a_network() -> None:
    mc = Multicaster(ME)
    mc.add(NOW, NWID, G, 0x01, _never)
    mc.add(NOW, NWID, G, 0x02, _never)
    mc.add(NOW, OTHER_NWID, H, 0x01, _never)
    mc.remove(NWID, G, 0x01)
    mc.remove(NWID, G, 0x09)  # not a member: nothing happens
    assert mc.members(NOW, NWID, G) == [0x02]
    mc.forget_network(NWID)
    assert mc.members(NOW, NWID, G) == [] and mc.members(NOW, OTHER_NWID, H) == [0x01]
    assert mc.network_count(NWID) == 0 and mc.total == 1


def test_a_queued_multicast_goes_to_members_learned_within_5_s() -> None:
    mc = Multicaster(ME)
    sent: list[tuple[int, bytes]] = []
    assert mc.needs_gather(NOW, NWID, G, 60_000)  # no members yet: gather
    mc.enqueue(NOW, NWID, G, OutboundMulticast(NOW, 2, b"frame", {0x01}))
    mc.add(NOW + 1, NWID, G, 0x01, lambda a, p: sent.append((a, p)))  # the origin: skipped
    mc.add(NOW + 2, NWID, G, 0x02, lambda a, p: sent.append((a, p)))
    assert sent == [(0x02, b"frame")]  # and now the recipient limit (2) is reached
    mc.add(NOW + 3, NWID, G, 0x03, lambda a, p: sent.append((a, p)))
    assert sent == [(0x02, b"frame")]
    mc.enqueue(NOW, NWID, G, OutboundMulticast(NOW, 5, b"late", set()))
    mc.add(NOW + MULTICAST_TRANSMIT_TIMEOUT, NWID, G, 0x04, lambda a, p: sent.append((a, p)))
    assert (0x04, b"late") not in sent  # too old to be offered
