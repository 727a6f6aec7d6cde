"""What the core asks its host to do, drained after every input (DESIGN.md, core contract).

The host calls an input method (``Node.on_wire_packet``, ``Node.on_timer``, a
command), then ``Node.drain_actions()``, and carries out each action in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

from ztone.node.vl2.view import ConfigOp, NetworkView
from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.network_config import NetworkConfig

ANY_LOCAL_SOCKET = -1
"""``SendPacket.local_socket`` value meaning: send from every bound socket."""


class StateKind(IntEnum):
    """Persistent state objects, keyed like upstream's ``ZT_StateObjectType``."""

    IDENTITY_PUBLIC = 1
    IDENTITY_SECRET = 2
    PLANET = 3
    MOON = 4
    PEER = 5
    NETWORK_CONFIG = 6


@dataclass(frozen=True, slots=True)
class SendPacket:
    """Send ``data`` as one UDP datagram to ``remote`` from ``local_socket`` (or all)."""

    local_socket: int
    remote: InetAddress
    data: bytes
    ttl: int = 0  # 0: the socket's default; otherwise the IPv4 TTL for this datagram


@dataclass(frozen=True, slots=True)
class PutState:
    """Store (``data``) or delete (``None``) a state object.

    ``object_id`` is the world id for PLANET/MOON, the address for PEER, the
    network id for NETWORK_CONFIG and 0 for identities.
    """

    kind: StateKind
    object_id: int
    data: bytes | None


class EventKind(Enum):
    UP = "up"
    ONLINE = "online"
    OFFLINE = "offline"
    FATAL_IDENTITY_COLLISION = "fatal_identity_collision"
    USER_MESSAGE = "user_message"
    REMOTE_TRACE = "remote_trace"
    TRACE = "trace"


@dataclass(frozen=True, slots=True)
class NodeEvent:
    kind: EventKind
    detail: str = ""
    source: int = 0
    message_type: int = 0
    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class DeliverFrame:
    """Hand an Ethernet frame to the network's virtual port (the host's stack)."""

    nwid: int
    source: int
    destination: int
    ethertype: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class NetworkConfigChanged:
    """A network's port must be brought up, updated or destroyed."""

    nwid: int
    op: ConfigOp
    view: NetworkView


@dataclass(frozen=True, slots=True)
class ConfigRequested:
    """A member asks this node's embedded controller for a network's config (B.1).

    The host asks its controller (storage I/O is the host's, never the core's) and
    hands the answer back with ``Node.on_config_answer(now, request, answer)``, which
    replies exactly as the controller would have inline: OK(NETWORK_CONFIG_REQUEST)
    chunks or an ERROR, over the path the request came in on. ``packet_id`` 0 and
    ``remote`` None: the node asks itself (it is the network's controller).
    """

    nwid: int
    requester: Identity
    metadata: Dictionary  # the request's metadata, as sent
    packet_id: int
    local_socket: int = ANY_LOCAL_SOCKET
    remote: InetAddress | None = None


@dataclass(frozen=True, slots=True)
class ControllerAnswer:
    """What a controller says to a :class:`ConfigRequested`: a config or an error code."""

    config: NetworkConfig | None = None
    error: int | None = None
    error_info: bytes = b""


Action = SendPacket | PutState | NodeEvent | DeliverFrame | NetworkConfigChanged | ConfigRequested
