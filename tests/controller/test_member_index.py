"""NetworkMembers: the other members' active bridges and IPs, kept up to date."""

from __future__ import annotations

import ipaddress
from typing import Any

from ztone.controller.member_index import NetworkMembers, member_ips

NWID = "1fad486cafe468e2"


def m(address: int, *ips: str, bridge: bool = False) -> dict[str, Any]:
    return {"id": f"{address:010x}", "nwid": NWID, "ipAssignments": list(ips),
            "activeBridge": bridge}  # fmt: skip


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def test_member_ips_skip_junk_and_drop_ports() -> None:
    assert member_ips({"ipAssignments": ["10.0.0.1/24", "junk", 5, "fd00::1"]}) == (
        ip("10.0.0.1"),
        ip("fd00::1"),
    )
    assert member_ips({"ipAssignments": None}) == ()


def test_allocated_to_others_excludes_only_the_member_itself() -> None:
    view = NetworkMembers([m(1, "10.0.0.1"), m(2, "10.0.0.2"), m(3, "10.0.0.2")])
    assert ip("10.0.0.1") not in view.allocated_to_others(1)
    assert ip("10.0.0.1") in view.allocated_to_others(2)
    # Held by 2 and 3: allocated to others for each of them.
    assert ip("10.0.0.2") in view.allocated_to_others(2)
    assert ip("10.0.0.2") in view.allocated_to_others(9)
    assert ip("10.0.0.9") not in view.allocated_to_others(9)
    assert "10.0.0.1" not in view.allocated_to_others(2)  # not an address object


def test_put_and_remove_keep_the_view_exact() -> None:
    view = NetworkMembers([m(1, "10.0.0.1", bridge=True), m(2, "10.0.0.2")])
    assert view.active_bridges() == [1] and len(view) == 2
    view.put(m(1, "10.0.0.3"))  # changed: old IP freed, no longer a bridge
    assert ip("10.0.0.1") not in view.allocated_to_others(2)
    assert ip("10.0.0.3") in view.allocated_to_others(2)
    assert view.active_bridges() == []
    view.put(m(7, bridge=True))
    view.put(m(4, bridge=True))
    assert view.active_bridges() == [4, 7]
    view.remove(2)
    view.remove(99)
    assert ip("10.0.0.2") not in view.allocated_to_others(1) and len(view) == 3
    view.put({"id": 5})  # no usable id: ignored
    assert len(view) == 3
