"""The tap scenario, run inside a simulation namespace by test_namespace.py.

    python3 scenario_tap.py     (with the SimEnv environment, inside the namespace)

Prints one JSON line with what it observed and exits 0 when every check held;
on a failed check it prints the reason and exits 1. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from illumos_sim.neighbour import Neighbour, ping
from illumos_sim.scenario_run import check, run_scenario
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.vl2_verbs import MulticastGroup
from ztone.osdep.illumos import IllumosTapFactory
from ztone.osdep.illumos.commands import Commands
from ztone.osdep.illumos.names import link_names
from ztone.osdep.managed import managed_route
from ztone.service.frame_pump import FramePump

NWID = 0x8056C2E21C000001
MAC = 0x82AABBCCDDEE
NEIGHBOUR_MAC = 0x820000000002
MTU = 2800
HOST4 = ipaddress.IPv4Address("198.18.1.1")
PEER4 = ipaddress.IPv4Address("198.18.1.2")
HOST6 = ipaddress.IPv6Address("fd00:5a5a::1")
PEER6 = ipaddress.IPv6Address("fd00:5a5a::2")
STALE_NWID = 0x1122334455667788


def links() -> dict[str, dict[str, Any]]:
    out = subprocess.run(["ip", "-j", "-d", "link", "show"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return {str(d["ifname"]): d for d in json.loads(out)}


def kind(link: dict[str, Any]) -> str:
    return str(link.get("linkinfo", {}).get("info_kind", ""))


def run_routes() -> str:
    v4 = subprocess.run(["ip", "route"], capture_output=True, text=True, check=True).stdout
    v6 = subprocess.run(["ip", "-6", "route"], capture_output=True, text=True, check=True).stdout
    return v4 + v6


async def scenario() -> dict[str, Any]:
    report: dict[str, Any] = {}
    cmd = Commands()
    factory = IllumosTapFactory(cmd)

    # stale links from "an earlier run" and a link that is not ztone's
    stale = link_names(STALE_NWID)
    cmd.dladm.create_etherstub(stale.etherstub)
    cmd.dladm.create_vnic(stale.visible, stale.etherstub, 0x021122334401, 1500)
    cmd.dladm.create_vnic(stale.backend, stale.etherstub, 0x061122334401, 1500)
    cmd.ifconfig.plumb(stale.visible, 4, 1500)
    cmd.dladm.create_etherstub("other0")
    removed = factory.cleanup_stale()
    report["cleanup"] = removed
    check(sorted(removed) == sorted(stale.all()), f"cleanup removed {removed}")
    check("other0" in links(), "cleanup removed a link that is not ztone's")
    cmd.dladm.delete_etherstub("other0")

    tap = factory.create(NWID, MAC, MTU, "ZeroTier One [8056c2e21c000001]")
    names = tap.names
    report["names"] = list(names.all())
    ls = links()
    stub, vis, back = ls[names.etherstub], ls[names.visible], ls[names.backend]
    check(kind(stub) == "bridge" and stub["mtu"] == 9000, f"etherstub {stub}")
    check(kind(vis) == "macvlan" and kind(back) == "macvlan", "VNICs are not macvlans")
    for v in (vis, back):
        check(v["link"] == names.etherstub, f"{v['ifname']} not on the etherstub")
        check(v["linkinfo"]["info_data"]["mode"] == "bridge", "macvlan not in bridge mode")
        check(v["mtu"] == MTU, f"{v['ifname']} MTU {v['mtu']}")
    check(not any(d.get("master") == names.etherstub for d in ls.values()), "bridge has ports")
    check(int(vis["address"].replace(":", ""), 16) == MAC, "visible VNIC MAC")
    report["topology"] = {n: {"kind": kind(ls[n]), "mtu": ls[n]["mtu"]} for n in names.all()}

    check(tap.link.add_ip(InetAddress(HOST4, 24)), "add_ip IPv4")
    check(tap.link.add_ip(InetAddress(HOST6, 88)), "add_ip IPv6")
    check(tap.link.add_ip(InetAddress(HOST4, 24)), "add_ip IPv4 again (idempotent)")
    ips = tap.link.ips()
    report["ips"] = [str(a) for a in ips]
    check(InetAddress(HOST4, 24) in ips and InetAddress(HOST6, 88) in ips, f"ips {ips}")

    loop = asyncio.get_running_loop()

    # The daemon's frame pump drives the port, as in ztone-one.
    def put(source: int, destination: int, ethertype: int, payload: bytes) -> None:
        pump.put(NWID, source, destination, ethertype, payload)
        pump.flush()

    neighbour = Neighbour(NEIGHBOUR_MAC, PEER4, PEER6, put)
    pump = FramePump(loop, lambda nwid, s, d, e, p: neighbour(s, d, e, p))
    pump.attach(NWID, tap)
    pings: dict[str, int] = {}
    for label, addr, size in (
        ("v4", PEER4, 56),
        ("v4-2400", PEER4, 2400),
        ("v6", PEER6, 56),
        ("v6-2400", PEER6, 2400),
    ):
        pings[label] = await asyncio.wait_for(
            loop.run_in_executor(None, ping, addr, size, 3, 2.0), timeout=20
        )
    report["pings"] = pings
    report["answered"] = neighbour.answered
    check(all(n == 3 for n in pings.values()), f"pings {pings}")

    groups = tap.link.multicast_groups()
    report["groups"] = [f"{g.mac:012x}/{g.adi:08x}" for g in groups]
    check(MulticastGroup(0xFFFFFFFFFFFF, int(HOST4)) in groups, "no ARP group")
    check(MulticastGroup(0x3333FF000001, 0) in groups, "no solicited-node group")
    check(MulticastGroup(0x333300000001, 0) in groups, "no all-nodes group (netstat)")

    via = managed_route(ipaddress.IPv4Network("198.19.0.0/16"), PEER4)
    onlink = managed_route(ipaddress.IPv4Network("198.20.0.0/16"))
    via6 = managed_route(ipaddress.IPv6Network("fd00:6666::/64"), PEER6)
    for r in (via, onlink, via6):
        check(tap.link.add_route(r), f"add_route {r}")
    table = run_routes()
    check(f"198.19.0.0/16 via {PEER4} dev {names.visible}" in table, table)
    check(f"198.20.0.0/16 dev {names.visible}" in table, table)
    check(f"fd00:6666::/64 via {PEER6} dev {names.visible}" in table, table)
    check(tap.link.add_route(via), "add_route twice (entry exists) is fine")
    check(tap.link.remove_route(via) and tap.link.remove_route(via6), "remove_route")
    table = run_routes()
    check("198.19.0.0/16" not in table and "fd00:6666" not in table, table)
    check(await asyncio.wait_for(loop.run_in_executor(None, ping, PEER4, 56, 1, 2.0), 10) == 1,
          "ping after route changes")  # fmt: skip

    tap.link.set_mtu(2000)
    check(links()[names.visible]["mtu"] == 2000 and tap.link.mtu == 2000, "set_mtu 2000")
    tap.link.set_mtu(MTU)
    check(links()[names.visible]["mtu"] == MTU and tap.link.mtu == MTU, "set_mtu back")

    check(tap.link.remove_ip(InetAddress(HOST4, 24)), "remove_ip")
    check(InetAddress(HOST4, 24) not in tap.link.ips(), "address still there")

    with_route = onlink  # left in place on purpose: close() must remove it
    report["left_for_close"] = str(with_route.target)
    pump.detach(NWID)
    tap.close()
    tap.close()
    ls = links()
    check(not any(n in ls for n in names.all()), f"links left after close: {sorted(ls)}")
    check("198.20.0.0/16" not in run_routes(), "route left after close")
    check(factory.cleanup_stale() == [], "cleanup after close found something")
    return report


if __name__ == "__main__":
    sys.exit(run_scenario(scenario, timeout=120))
