"""IP address assignment for a member (ztone.controller.ipassign, B.3), by exact value.

Every expected address is worked out by hand from PROTOCOL-NETWORK-SERVICE A.5.1
(rfc4193, 6plane) and B.3 (pools), with the arithmetic in the comments.

Numbers used throughout: network ``d41df8ed6a000001``; member ``2d299c6c91``, whose
low 32 bits are ``0x299c6c91`` = 41*2^24 + 156*2^16 + 108*2^8 + 145 = 698117265.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ztone.controller import ipassign
from ztone.controller.ipassign import ConfigRoute, parse_routes

NWID = 0xD41DF8ED6A000001
ADDR = 0x2D299C6C91

ip = ipaddress.ip_address
net = ipaddress.ip_network


def _ips(ips: list[Any] | tuple[Any, ...]) -> list[str]:
    return [str(a) for a in ips]


# --- B.3 IP assignment: ipassign.assign ----------------------------------------------


def _assign(
    network: dict[str, Any],
    member: dict[str, Any] | None = None,
    allocated: frozenset[str] | set[str] = frozenset(),
    address: int = ADDR,
    nwid: int = NWID,
    rand: list[int] | None = None,
) -> tuple[list[str], bool, list[Any]]:
    m = member if member is not None else {}
    values = iter(rand or [])
    ips, ndp = ipassign.assign(
        nwid,
        address,
        network,
        m,
        ipassign.parse_routes(network.get("routes")),
        {ipaddress.ip_address(a) for a in allocated},
        lambda: next(values),
    )
    return _ips(ips), ndp, m.get("ipAssignments", [])


def _v4(start: str, end: str, *routes: str) -> dict[str, Any]:
    return {
        "v4AssignMode": {"zt": True},
        "ipAssignmentPools": [{"ipRangeStart": start, "ipRangeEnd": end}],
        "routes": [{"target": r, "via": None} for r in routes],
    }


def test_v4_pool_exact_address() -> None:
    """Pool 10.1.0.1-10.1.0.101: len 100, 698117265 % 100 = 65, so 10.1.0.66."""
    ips, ndp, saved = _assign(_v4("10.1.0.1", "10.1.0.101", "10.1.0.0/24"))
    assert (ips, ndp, saved) == (["10.1.0.66/24"], False, ["10.1.0.66"])


def test_v4_address_of_another_member_is_not_given_again() -> None:
    """Guards: the ``ip not in allocated`` test removed (a duplicate address).

    10.1.0.66 belongs to another member: the counter moves on, 698117266 % 100 = 66,
    so 10.1.0.67; with .67 taken too, 10.1.0.68."""
    network = _v4("10.1.0.1", "10.1.0.101", "10.1.0.0/24")
    assert _assign(network, allocated={"10.1.0.66"})[0] == ["10.1.0.67/24"]
    assert _assign(network, allocated={"10.1.0.66", "10.1.0.67"})[0] == ["10.1.0.68/24"]


def test_v4_skips_dot_255_and_may_give_dot_0() -> None:
    """Guards: the ``.255`` skip removed.

    Member 1200000037 (low 32 bits 55), pool 10.0.0.200-10.0.1.100: len 156,
    55 % 156 = 55, 10.0.0.200 + 55 = 10.0.0.255 is skipped; then 56 gives 10.0.1.0,
    which upstream allows (only a last octet of 255 is skipped, B.3 step 5)."""
    network = _v4("10.0.0.200", "10.0.1.100", "10.0.0.0/23")
    assert _assign(network, address=0x1200000037)[0] == ["10.0.1.0/23"]
    # .0 taken: 57 -> 10.0.1.1
    assert _assign(network, address=0x1200000037, allocated={"10.0.1.0"})[0] == ["10.0.1.1/23"]


def test_v4_pool_exhausted_gives_nothing() -> None:
    """Pool 10.2.0.1-10.2.0.3 has len 2 (the end is never chosen), so only .1 and .2
    can be given; both taken: no address, nothing saved in the member."""
    network = _v4("10.2.0.1", "10.2.0.3", "10.2.0.0/24")
    assert _assign(network, allocated={"10.2.0.1", "10.2.0.2"}) == ([], False, [])
    assert _assign(network, allocated={"10.2.0.1"})[0] == ["10.2.0.2/24"]


def test_v4_single_address_pool_and_route_rules() -> None:
    """len 0: the start itself. No covering route: nothing. Prefix: first route that
    contains the address (with or without via)."""
    assert _assign(_v4("10.3.0.9", "10.3.0.9", "10.3.0.0/24"))[0] == ["10.3.0.9/24"]
    assert _assign(_v4("10.3.0.9", "10.3.0.9", "10.4.0.0/24"))[0] == []
    assert _assign(_v4("10.3.0.9", "10.3.0.9", "10.3.0.0/16", "10.3.0.0/24"))[0] == ["10.3.0.9/16"]
    assert _assign(_v4("0.0.0.0", "0.0.0.9", "0.0.0.0/8"))[0] == []  # start 0: pool skipped
    assert _assign(_v4("10.3.0.9", "10.3.0.1", "10.3.0.0/24"))[0] == []  # end < start


def test_rfc4193_and_6plane_spec_example() -> None:
    """A.5.1's example: network 8056c2e21c000001, member 89e92ceee5."""
    network = {"v6AssignMode": {"rfc4193": True, "6plane": True, "zt": False}}
    ips, ndp, saved = _assign(network, address=0x89E92CEEE5, nwid=0x8056C2E21C000001)
    assert ips == ["fd80:56c2:e21c:0:199:9389:e92c:eee5/88", "fc9c:56c2:e389:e92c:eee5::1/40"]
    assert ndp is True and saved == []


def test_rfc4193_and_6plane_for_our_network() -> None:
    """rfc4193 = fd | d41df8ed6a000001 | 99 93 | 2d299c6c91;
    6plane = fc | (6a000001 ^ d41df8ed = be1df8ec) | 2d299c6c91 | 00*5 | 01."""
    for mode, expected in (
        ({"rfc4193": True}, ["fdd4:1df8:ed6a:0:199:932d:299c:6c91/88"]),
        ({"6plane": True}, ["fcbe:1df8:ec2d:299c:6c91::1/40"]),
    ):
        ips, ndp, _ = _assign({"v6AssignMode": mode})
        assert (ips, ndp) == (expected, True)


def test_order_manual_and_no_auto() -> None:
    """Order: rfc4193, 6plane, manual (largest covering prefix), auto v6, auto v4.
    A manual IPv4 stops auto IPv4; ``noAutoAssignIps`` keeps only manual ones."""
    network = _v4("10.1.0.1", "10.1.0.101", "10.1.0.0/24", "10.0.0.0/8")
    network["v6AssignMode"] = {"rfc4193": True, "6plane": True, "zt": True}
    network["ipAssignmentPools"].append(
        {"ipRangeStart": "fd00::", "ipRangeEnd": "fd00::ffff:ffff:ffff"}
    )
    network["routes"].append({"target": "fd00::/64", "via": None})
    member: dict[str, Any] = {"ipAssignments": ["10.1.0.5", "192.168.9.9"]}
    ips, ndp, saved = _assign(network, member)
    # trial 0 of the v6 pool: e.lo - s.lo = 0xffffffffffff >= 0xffffffffff, so
    # s.lo + member address = fd00::2d:299c:6c91
    assert ips == [
        "fdd4:1df8:ed6a:0:199:932d:299c:6c91/88",
        "fcbe:1df8:ec2d:299c:6c91::1/40",
        "10.1.0.5/24",
        "fd00::2d:299c:6c91/64",
    ]
    assert ndp is True
    assert saved == ["10.1.0.5", "192.168.9.9", "fd00::2d:299c:6c91"]
    member = {"ipAssignments": ["10.1.0.5"], "noAutoAssignIps": True}
    assert _assign(network, member)[:2] == (["10.1.0.5/24"], False)


def test_v6_pool_collision_takes_random_candidates() -> None:
    """Trial 0's fd00::2d:299c:6c91 is taken; then hi = s.hi (e.hi = s.hi, no draw)
    and lo = s.lo + r % (e.lo - s.lo) with the random r = 7: fd00::7."""
    network = {
        "v6AssignMode": {"zt": True},
        "ipAssignmentPools": [{"ipRangeStart": "fd00::", "ipRangeEnd": "fd00::ffff:ffff:ffff"}],
        "routes": [{"target": "fd00::/64", "via": None}],
    }
    ips, _, _ = _assign(network, allocated={"fd00::2d:299c:6c91"}, rand=[7])
    assert ips == ["fd00::7/64"]


def test_manual_ipv6_stops_auto_ipv6() -> None:
    """B.3 step 4: auto IPv6 only when no IPv6 came from the manual assignments.
    Guards ``have6 = have6 or ...`` -> ``and``."""
    network = {
        "v6AssignMode": {"zt": True},
        "ipAssignmentPools": [{"ipRangeStart": "fd00::", "ipRangeEnd": "fd00::ffff:ffff:ffff"}],
        "routes": [{"target": "fd00::/64", "via": None}],
    }
    ips, _, saved = _assign(network, {"ipAssignments": ["fd00::1"]})
    assert (ips, saved) == (["fd00::1/64"], ["fd00::1"])


# --- parse_routes (B.2 step 16) -------------------------------------------------------


def test_parse_routes_skips_junk_and_keeps_via_of_the_same_family() -> None:
    routes = parse_routes(
        [
            {"target": "10.0.0.0/8", "via": None},
            {"target": "10.1.0.0/16", "via": "10.0.0.1"},
            {"target": "10.2.0.0/16", "via": "fd00::1"},  # other family: no via
            {"target": "fd00::/64", "via": "bogus"},
            {"target": 5},
            {"via": "10.0.0.1"},
            "10.3.0.0/16",
            {"target": "10.0.0.999/8"},
        ]
    )
    assert routes == [
        ConfigRoute(net("10.0.0.0/8"), None),
        ConfigRoute(net("10.1.0.0/16"), ip("10.0.0.1")),
        ConfigRoute(net("10.2.0.0/16"), None),
        ConfigRoute(net("fd00::/64"), None),
    ]
    assert parse_routes(None) == [] and parse_routes({"target": "10.0.0.0/8"}) == []


def test_parse_routes_stops_at_128() -> None:
    many = [{"target": f"10.{i // 256}.{i % 256}.0/24"} for i in range(300)]
    routes = parse_routes(many)
    assert len(routes) == 128 and routes[-1].target == net("10.0.127.0/24")


def test_a_host_route_target_is_its_network() -> None:
    """Targets may be written with host bits set; they read as their network."""
    assert parse_routes([{"target": "10.1.2.3/16"}]) == [ConfigRoute(net("10.1.0.0/16"), None)]


# --- manual assignments ----------------------------------------------------------------


def test_manual_assignments_take_the_largest_covering_prefix_and_skip_junk() -> None:
    network = {"routes": [{"target": "10.0.0.0/8"}, {"target": "10.1.0.0/16", "via": "10.0.0.1"}]}
    member: dict[str, Any] = {"ipAssignments": ["10.1.2.3", 7, "nonsense", "10.9.0.1/30"]}
    ips, ndp, saved = _assign(network, member)
    assert (ips, ndp) == (["10.1.2.3/16", "10.9.0.1/8"], False)
    assert saved == ["10.1.2.3", 7, "nonsense", "10.9.0.1/30"]  # the member keeps them


def test_member_without_an_assignment_list_gets_one() -> None:
    member: dict[str, Any] = {"ipAssignments": "10.0.0.1"}
    ips, _, saved = _assign(_v4("10.1.0.1", "10.1.0.101", "10.1.0.0/24"), member)
    assert ips == ["10.1.0.66/24"] and saved == ["10.1.0.66"]
    assert member["ipAssignments"] == ["10.1.0.66"]


def test_at_most_32_static_ips() -> None:
    network = {"routes": [{"target": "10.0.0.0/8"}]}
    member = {"ipAssignments": [f"10.0.0.{i}" for i in range(1, 41)]}
    ips, _, _ = _assign(network, member)
    assert ips == [f"10.0.0.{i}/8" for i in range(1, 33)]


def test_auto_modes_need_true_not_truthy() -> None:
    """The modes are read as JSON booleans: ``1`` or ``"true"`` does not turn one on."""
    network = _v4("10.1.0.1", "10.1.0.101", "10.1.0.0/24")
    network["v4AssignMode"] = {"zt": 1}
    network["v6AssignMode"] = {"rfc4193": "true"}
    assert _assign(network)[:2] == ([], False)


def test_auto_v6_needs_an_on_link_route() -> None:
    """The prefix comes from the last IPv6 route without ``via`` containing the
    candidate; a gateway route does not count, so nothing is assigned."""
    network = {
        "v6AssignMode": {"zt": True},
        "ipAssignmentPools": [{"ipRangeStart": "fd00::", "ipRangeEnd": "fd00::ffff:ffff:ffff"}],
        "routes": [{"target": "fd00::/64", "via": "fd00::1"}],
    }
    assert _assign(network, rand=[0] * 2 * ipassign.TRIALS)[0] == []
    network["routes"] = [{"target": "fd00::/48"}, {"target": "fd00::/64"}]
    assert _assign(network)[0] == ["fd00::2d:299c:6c91/64"]


def test_pools_of_the_other_family_or_junk_are_skipped() -> None:
    network = _v4("10.1.0.1", "10.1.0.101", "10.1.0.0/24")
    network["ipAssignmentPools"][:0] = [
        {"ipRangeStart": "fd00::1", "ipRangeEnd": "fd00::9"},
        {"ipRangeStart": "nonsense", "ipRangeEnd": "10.1.0.9"},
        "10.1.0.0/24",
    ]
    assert _assign(network)[0] == ["10.1.0.66/24"]
