"""zerotier-one's JSON objects for the local API, built from the core's snapshots.

Pure functions: no I/O, no clock. They return plain ``dict``/``list`` values that
:func:`dump_compact` (API bodies, nlohmann ``dump()``) or :func:`dump_pretty` (the
CLI's ``-j`` output, nlohmann ``dump(1)``) turn into text. nlohmann::json keeps
object keys in ascending order, so both dumps sort keys; the ``dict`` key order of
the values built here does not matter.

PROTOCOL-NETWORK-SERVICE C.2.4 (``/status``), C.2.3 (``/health``), C.2.6 (peer),
C.2.7 (moon).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from ztone.node.status import MoonStatus, NodeStatus, PathStatus, PeerStatus
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.world import World

VERSION_MAJOR = 1
VERSION_MINOR = 14
VERSION_REV = 1
VERSION_BUILD = 0
VERSION = f"{VERSION_MAJOR}.{VERSION_MINOR}.{VERSION_REV}"

JsonObject = dict[str, object]


# --- dumps -------------------------------------------------------------------------


def dump_compact(obj: object) -> str:
    """nlohmann ``dump()``: sorted keys, no whitespace, non-ASCII kept as UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def dump_pretty(obj: object) -> str:
    """nlohmann ``dump(1)``: sorted keys, one space per indentation level.

    Python's ``indent=1`` output is identical: ``": "`` after keys, ``","`` at line
    ends, and empty arrays/objects as ``[]``/``{}`` on one line.
    """
    return json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False)


# --- addresses -----------------------------------------------------------------------


def ip_text(address: InetAddress) -> str:
    """``InetAddress::toIpString`` (:func:`ztone.node.wire.inetaddress.ip_text`)."""
    return address.ip_string()


def inet_text(address: InetAddress | None) -> str:
    """``InetAddress::toString``: ``ip/port``; an empty string for a null address."""
    if address is None:
        return ""
    return f"{ip_text(address)}/{address.port}"


# --- /status, /health ------------------------------------------------------------------


def _version_fields() -> JsonObject:
    return {
        "version": VERSION,
        "versionMajor": VERSION_MAJOR,
        "versionMinor": VERSION_MINOR,
        "versionRev": VERSION_REV,
        "versionBuild": VERSION_BUILD,
    }


def status_json(
    status: NodeStatus,
    *,
    local_conf: Mapping[str, object],
    settings: Mapping[str, object],
    tcp_fallback_active: bool,
) -> JsonObject:
    """The ``GET /status`` object (C.2.4).

    ``config`` is the whole local.conf content with its ``settings`` member replaced
    by ``settings`` (the daemon's augmented settings object).
    """
    config: JsonObject = dict(local_conf)
    config["settings"] = dict(settings)
    out: JsonObject = {
        "address": f"{status.address:010x}",
        "publicIdentity": status.public_identity,
        "online": status.online,
        "tcpFallbackActive": tcp_fallback_active,
        "clock": status.clock,
        "config": config,
        "planetWorldId": status.planet_world_id,
        "planetWorldTimestamp": status.planet_world_timestamp,
    }
    out.update(_version_fields())
    return out


def health_json(status: NodeStatus) -> JsonObject:
    """The ``GET /health`` object: clock, online and the version fields."""
    out: JsonObject = {"online": status.online, "clock": status.clock}
    out.update(_version_fields())
    return out


# --- peers -----------------------------------------------------------------------------


def path_json(path: PathStatus) -> JsonObject:
    """One element of a peer's ``paths`` (not bonded: no bond fields)."""
    return {
        "address": inet_text(path.address),
        "lastSend": max(path.last_send, 0),
        "lastReceive": max(path.last_receive, 0),
        "trustedPathId": path.trusted_path_id,
        "active": True,
        "expired": False,
        "preferred": path.preferred,
        "localSocket": path.local_socket,
        # Only the bonding layer fills in a path's local port; 0 otherwise.
        "localPort": 0,
    }


def peer_json(peer: PeerStatus, *, tunneled: bool) -> JsonObject:
    """The peer object (C.2.6). ``tunneled`` is true for every peer while the TCP
    fallback relay is connected."""
    major, minor, rev = peer.version if peer.version is not None else (-1, -1, -1)
    return {
        "address": f"{peer.address:010x}",
        "versionMajor": major,
        "versionMinor": minor,
        "versionRev": rev,
        "version": f"{major}.{minor}.{rev}",
        "latency": peer.latency,
        "role": peer.role.value,
        "isBonded": False,
        "tunneled": tunneled,
        "paths": [path_json(p) for p in peer.paths],
    }


# --- moons -----------------------------------------------------------------------------


def world_json(world: World) -> JsonObject:
    """The moon object of an orbited, fetched world (C.2.7)."""
    return {
        "id": f"{world.id:016x}",
        "timestamp": world.timestamp,
        "signature": world.signature.hex(),
        "updatesMustBeSignedBy": world.updates_must_be_signed_by.hex(),
        "roots": [
            {
                "identity": root.identity.to_string(),
                # Null endpoint entries print as empty strings, as upstream.
                "stableEndpoints": [inet_text(e) for e in root.wire_endpoints()],
            }
            for root in world.roots
        ],
        "waiting": False,
    }


def waiting_moon_json(world_id: int) -> JsonObject:
    """What ``POST /moon/<id>`` answers when it starts orbiting a new moon."""
    return {
        "id": f"{world_id:016x}",
        "roots": [],
        "timestamp": 0,
        "signature": None,
        "updatesMustBeSignedBy": None,
        "waiting": True,
    }


def moon_json(moon: MoonStatus) -> JsonObject:
    """A moon as listed by ``GET /moon``; a moon still waiting for its world renders
    as :func:`waiting_moon_json` (upstream does not list those at all)."""
    if moon.world is None:
        return waiting_moon_json(moon.world_id)
    return world_json(moon.world)
