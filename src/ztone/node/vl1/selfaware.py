"""Our external addresses as peers report them (``SelfAwareness``, PROTOCOL-CORE §8.10).

Each report is keyed by (reporter, local socket, the path's remote address, scope);
a trusted reporter (an upstream) seeing our address change within the entry timeout
means our NAT mapping changed: the scope's reports are forgotten and the paths of
that scope and family re-probed. Bounded by ``MAX_SURFACE_ENTRIES`` (oldest goes).
"""

from __future__ import annotations

from ztone.node import bounds as B
from ztone.node import constants as C
from ztone.node.port import NodePort
from ztone.node.vl1.path import Path
from ztone.node.vl1.peer import Peer
from ztone.node.wire.inetaddress import InetAddress

SurfaceKey = tuple[int, int, InetAddress, int]
"""(reporter address, local socket, remote address of the path, IP scope)."""


class SelfAwareness:
    def __init__(self, port: NodePort) -> None:
        self.port = port
        self.surface: dict[SurfaceKey, tuple[InetAddress, int]] = {}
        """Key -> (the address the reporter sees for us, time of the report)."""

    def iam(self, now: int, reporter: Peer, path: Path, reported: InetAddress) -> None:
        """``SelfAwareness::iam``: remember how a peer sees us (§8.10)."""
        scope = int(reported.scope())
        if scope != path.scope or scope in (0, 1, 2):
            return
        port = self.port
        key = (int(reporter.address), path.local_socket, path.address, scope)
        previous = self.surface.get(key)
        trusted = port.topology.is_upstream(int(reporter.address))
        if (
            trusted
            and previous is not None
            and previous[0].ip != reported.ip
            and now - previous[1] < C.SELFAWARENESS_ENTRY_TIMEOUT
        ):
            # Our external address changed: forget this scope and re-probe its paths.
            self.surface = {k: v for k, v in self.surface.items() if k[3] != scope}
            for peer in port.peers.values():
                for slot in peer.slots:
                    p = slot.path
                    if p.scope == scope and p.address.ip.version == reported.ip.version:
                        port.attempt_contact(now, peer, p.local_socket, p.address, False)
                        slot.lr = 0
        if key not in self.surface and len(self.surface) >= B.MAX_SURFACE_ENTRIES:
            del self.surface[next(iter(self.surface))]
        self.surface[key] = (reported, now)

    def addresses(self) -> list[InetAddress]:
        """External addresses peers have reported for us (``SelfAwareness::whoami``)."""
        seen: list[InetAddress] = []
        for addr, _ in self.surface.values():
            if addr not in seen:
                seen.append(addr)
        return seen

    def clean(self, now: int) -> None:
        self.surface = {
            k: v for k, v in self.surface.items() if now - v[1] < C.SELFAWARENESS_ENTRY_TIMEOUT
        }
