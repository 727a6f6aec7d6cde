"""Worlds: the signed root-server lists called planet and moons (PROTOCOL-CORE §7).

Binary form (§7.1), all integers big-endian::

    <[1] type>            0 null, 1 planet, 127 moon; anything else is invalid
    <[8] world id>
    <[8] timestamp>       ms; the revision number
    <[64] updatesMustBeSignedBy>  C25519 public key that must sign the NEXT revision
    <[96] signature>      by the PREVIOUS revision's updatesMustBeSignedBy key
    <[1] root count R>    at most 4
    R x root:
        <[71 or 135] identity>        binary identity (§2.3), public form when written
        <[1] endpoint count E>        at most 32
        E x <InetAddress>             §1.6; reserved/null entries decode as null
    moons only: <[2] dictionary length n> <[n] dictionary>  (reserved, empty in 1.14.1)

A serialized world is at most 8,480 bytes (``ZT_WORLD_MAX_SERIALIZED_LENGTH``).

Signed message (§7.2): ``7f*8 || the world without its signature field || f7*8``,
where a moon's dictionary is always written as ``00 00`` (its bytes are not signed).

Update rule (§7.3, ``World::shouldBeReplacedBy``): a null current world is replaced
by anything; otherwise only by a world of the same id and type with a strictly
greater timestamp whose signature verifies under the current world's
``updatesMustBeSignedBy``.

A root identity decoded with a private key keeps only its public part (the reference
never writes it back out). As in the reference, a null or reserved endpoint entry
(types 0, 1, 2, 3) is kept as a null entry that re-serializes as the single byte
``00``; such entries are not in :attr:`Root.stable_endpoints`, but their positions
are kept in :attr:`Root.null_endpoint_slots` so the signed bytes are reproduced.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum

from ztone.crypto import c25519
from ztone.errors import LocalUsageError, MalformedPacket
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress, parse_inet, serialize_inet
from ztone.util.ctext import U64_MAX

MAX_ROOTS = 4
MAX_STABLE_ENDPOINTS_PER_ROOT = 32
MAX_SERIALIZED_LENGTH = 8480
WORLD_ID_EARTH = 149604618
WORLD_ID_MARS = 227883110

SIGNATURE_PREFIX = b"\x7f" * 8
SIGNATURE_SUFFIX = b"\xf7" * 8
_HEADER_LENGTH = 1 + 8 + 8 + c25519.PUBLIC_KEY_LEN + c25519.SIGNATURE_LEN + 1


class WorldType(IntEnum):
    """``World::Type``."""

    NULL = 0
    PLANET = 1
    MOON = 127


TYPE_NULL = WorldType.NULL
TYPE_PLANET = WorldType.PLANET
TYPE_MOON = WorldType.MOON


@dataclass(frozen=True, slots=True)
class Root:
    """A root server: its identity and the physical endpoints it is reachable at.

    ``null_endpoint_slots`` lists the positions, in the wire endpoint list, of null
    entries (see the module docstring); it is empty for any world ztone makes.
    """

    identity: Identity
    stable_endpoints: tuple[InetAddress, ...] = ()
    null_endpoint_slots: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        total = len(self.stable_endpoints) + len(self.null_endpoint_slots)
        if total > MAX_STABLE_ENDPOINTS_PER_ROOT:
            raise LocalUsageError(f"a root has at most {MAX_STABLE_ENDPOINTS_PER_ROOT} endpoints")
        slots = self.null_endpoint_slots
        if any(not 0 <= s < total for s in slots) or len(set(slots)) != len(slots):
            raise LocalUsageError("null endpoint slots must be distinct positions in the list")

    def wire_endpoints(self) -> list[InetAddress | None]:
        """The endpoint list as on the wire, null entries as ``None``."""
        usable = iter(self.stable_endpoints)
        nulls = set(self.null_endpoint_slots)
        total = len(self.stable_endpoints) + len(nulls)
        return [None if i in nulls else next(usable) for i in range(total)]

    def serialize(self) -> bytes:
        endpoints = self.wire_endpoints()
        parts = [self.identity.serialize(False), bytes((len(endpoints),))]
        parts.extend(serialize_inet(e) for e in endpoints)
        return b"".join(parts)

    def sort_key(self) -> tuple[int, bytes]:
        """``World::Root::operator<``: by identity (address, then public key)."""
        return self.identity.sort_key()


def _serialized_length(world_type: int, roots: Iterable[Root], dictionary: bytes) -> int:
    n = _HEADER_LENGTH
    for r in roots:
        n += len(r.identity.serialize(False)) + 1 + len(r.null_endpoint_slots)
        n += sum(len(serialize_inet(e)) for e in r.stable_endpoints)
    if world_type == WorldType.MOON:
        n += 2 + len(dictionary)
    return n


@dataclass(frozen=True, slots=True)
class World:
    """A planet or moon definition. Immutable; make new revisions with :meth:`make`."""

    type: WorldType
    id: int
    timestamp: int
    updates_must_be_signed_by: bytes
    signature: bytes
    roots: tuple[Root, ...]
    # Moons only: the attached dictionary bytes (not signed, ignored by 1.14.1).
    dictionary: bytes = field(default=b"", compare=False)

    def __post_init__(self) -> None:
        if self.type not in (WorldType.NULL, WorldType.PLANET, WorldType.MOON):
            raise LocalUsageError(f"invalid world type {self.type}")
        object.__setattr__(self, "type", WorldType(self.type))
        if not 0 <= self.id <= U64_MAX or not 0 <= self.timestamp <= U64_MAX:
            raise LocalUsageError("world id and timestamp are unsigned 64-bit")
        if len(self.updates_must_be_signed_by) != c25519.PUBLIC_KEY_LEN:
            raise LocalUsageError("updatesMustBeSignedBy must be 64 bytes")
        if len(self.signature) != c25519.SIGNATURE_LEN:
            raise LocalUsageError("world signature must be 96 bytes")
        if len(self.roots) > MAX_ROOTS:
            raise LocalUsageError(f"a world has at most {MAX_ROOTS} roots")
        if self.dictionary and self.type != WorldType.MOON:
            raise LocalUsageError("only moons carry a dictionary")
        if len(self.dictionary) > 0xFFFF:
            raise LocalUsageError("moon dictionary longer than 65535 bytes")
        if _serialized_length(self.type, self.roots, self.dictionary) > MAX_SERIALIZED_LENGTH:
            raise LocalUsageError(f"world longer than {MAX_SERIALIZED_LENGTH} bytes")

    # --- binary ----------------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> World:
        """Decode exactly one world filling ``data``; trailing bytes are an error."""
        world, end = cls.parse_prefix(data, 0)
        if end != len(data):
            raise MalformedPacket("trailing bytes after world")
        return world

    @classmethod
    def parse_prefix(
        cls, data: bytes | bytearray | memoryview, offset: int = 0
    ) -> tuple[World, int]:
        """Decode one world at ``offset``; return (world, offset just past it).

        For a sequence of worlds (the OK(HELLO) world-update area) or a file read
        leniently as the reference does (trailing bytes ignored).
        """
        end = len(data)
        if offset < 0 or offset + _HEADER_LENGTH > end:
            raise MalformedPacket("truncated world header")
        raw_type = data[offset]
        if raw_type not in (WorldType.NULL, WorldType.PLANET, WorldType.MOON):
            raise MalformedPacket(f"invalid world type {raw_type}")
        world_type = WorldType(raw_type)
        p = offset + 1
        world_id = int.from_bytes(data[p : p + 8], "big")
        timestamp = int.from_bytes(data[p + 8 : p + 16], "big")
        p += 16
        umsb = bytes(data[p : p + c25519.PUBLIC_KEY_LEN])
        p += c25519.PUBLIC_KEY_LEN
        signature = bytes(data[p : p + c25519.SIGNATURE_LEN])
        p += c25519.SIGNATURE_LEN
        root_count = data[p]
        p += 1
        if root_count > MAX_ROOTS:
            raise MalformedPacket(f"world has {root_count} roots (max {MAX_ROOTS})")
        roots: list[Root] = []
        for _ in range(root_count):
            identity, p = Identity.parse(data, p)
            if p >= end:
                raise MalformedPacket("truncated world root")
            endpoint_count = data[p]
            p += 1
            if endpoint_count > MAX_STABLE_ENDPOINTS_PER_ROOT:
                raise MalformedPacket(
                    f"root has {endpoint_count} endpoints (max {MAX_STABLE_ENDPOINTS_PER_ROOT})"
                )
            endpoints: list[InetAddress] = []
            null_slots: list[int] = []
            for i in range(endpoint_count):
                endpoint, p = parse_inet(data, p)
                if endpoint is None:
                    null_slots.append(i)
                else:
                    endpoints.append(endpoint)
            roots.append(Root(identity.public_only(), tuple(endpoints), tuple(null_slots)))
        dictionary = b""
        if world_type == WorldType.MOON:
            if p + 2 > end:
                raise MalformedPacket("truncated moon dictionary length")
            length = int.from_bytes(data[p : p + 2], "big")
            p += 2
            if p + length > end:
                raise MalformedPacket("truncated moon dictionary")
            dictionary = bytes(data[p : p + length])
            p += length
        if p - offset > MAX_SERIALIZED_LENGTH:
            raise MalformedPacket(f"world longer than {MAX_SERIALIZED_LENGTH} bytes")
        world = cls(world_type, world_id, timestamp, umsb, signature, tuple(roots), dictionary)
        return world, p

    def _serialize(self, for_signing: bool) -> bytes:
        parts = [
            bytes((self.type,)),
            self.id.to_bytes(8, "big"),
            self.timestamp.to_bytes(8, "big"),
            self.updates_must_be_signed_by,
        ]
        if not for_signing:
            parts.append(self.signature)
        parts.append(bytes((len(self.roots),)))
        parts.extend(r.serialize() for r in self.roots)
        if self.type == WorldType.MOON:
            dictionary = b"" if for_signing else self.dictionary
            parts.append(len(dictionary).to_bytes(2, "big") + dictionary)
        if for_signing:
            return SIGNATURE_PREFIX + b"".join(parts) + SIGNATURE_SUFFIX
        return b"".join(parts)

    def serialize(self, include_signature: bool = True) -> bytes:
        """Binary form (§7.1); without the signature field if asked (not a wire form)."""
        if include_signature:
            return self._serialize(False)
        return self._serialize(True)[len(SIGNATURE_PREFIX) : -len(SIGNATURE_SUFFIX)]

    def signed_message(self) -> bytes:
        """The exact bytes the signature covers (§7.2)."""
        return self._serialize(True)

    # --- signatures and updates --------------------------------------------------

    def verify_signature(self, public_key: bytes) -> bool:
        """True iff :attr:`signature` is ``public_key``'s signature of this world."""
        return c25519.verify(public_key, self.signed_message(), self.signature)

    @classmethod
    def make(
        cls,
        world_type: int,
        world_id: int,
        timestamp: int,
        updates_must_be_signed_by: bytes,
        roots: Iterable[Root],
        signing_private_key: bytes,
    ) -> World:
        """A new world signed with ``signing_private_key`` (64 bytes), as ``World::make``.

        The signing key is the previous revision's ``updatesMustBeSignedBy`` pair (or
        the same pair as ``updates_must_be_signed_by`` for a first revision).
        """
        if world_type not in (WorldType.NULL, WorldType.PLANET, WorldType.MOON):
            raise LocalUsageError(f"invalid world type {world_type}")
        unsigned = cls(
            WorldType(world_type),
            world_id,
            timestamp,
            bytes(updates_must_be_signed_by),
            bytes(c25519.SIGNATURE_LEN),
            tuple(roots),
        )
        signature = c25519.sign(signing_private_key, unsigned.signed_message())
        return cls(
            unsigned.type,
            world_id,
            timestamp,
            unsigned.updates_must_be_signed_by,
            signature,
            unsigned.roots,
        )

    @property
    def is_null(self) -> bool:
        """A null world (id 0 or type null) is replaced by any world."""
        return self.id == 0 or self.type == WorldType.NULL

    def should_be_replaced_by(self, update: World) -> bool:
        """``World::shouldBeReplacedBy`` (§7.3)."""
        if self.is_null:
            return True
        if update.id != self.id or update.type != self.type:
            return False
        if update.timestamp <= self.timestamp:
            return False
        return update.verify_signature(self.updates_must_be_signed_by)
