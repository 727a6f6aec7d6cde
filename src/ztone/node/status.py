"""Read-only snapshots of the core's state for the local API and the CLI (CONTRACT).

The service formats these exactly as zerotier-one's JSON (PROTOCOL-NETWORK-SERVICE
C.2.4, C.2.6, C.2.7); the core never builds JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.world import World


class Role(Enum):
    LEAF = "LEAF"
    MOON = "MOON"
    PLANET = "PLANET"


@dataclass(frozen=True, slots=True)
class PathStatus:
    address: InetAddress
    last_send: int  # ms (the node's clock), 0 if never
    last_receive: int  # ms, 0 if never
    trusted_path_id: int
    preferred: bool
    local_socket: int


@dataclass(frozen=True, slots=True)
class PeerStatus:
    address: int
    version: tuple[int, int, int] | None  # None: not yet reported
    latency: int  # ms, -1 if unknown
    role: Role
    paths: tuple[PathStatus, ...]


@dataclass(frozen=True, slots=True)
class MoonStatus:
    """An orbited moon: the world once fetched, or just its id and seed while waiting."""

    world_id: int
    seed: int
    world: World | None  # None while waiting for the seed to send it

    @property
    def waiting(self) -> bool:
        return self.world is None


@dataclass(frozen=True, slots=True)
class NodeStatus:
    address: int
    public_identity: str
    online: bool
    planet_world_id: int
    planet_world_timestamp: int
    clock: int
