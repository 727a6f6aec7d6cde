"""The Certificate of Ownership (PROTOCOL-NETWORK-SERVICE A.3.5, PROTOCOL-CORE §6.22.4).

Wire form (signed over ``7f x8 | everything before the signature section | u16 0 |
7f x8``)::

    <[8] network id> <[8] timestamp> <[8] flags> <[4] COO id> <[2] thing count N>
    N x <[1] thing type (CooThing)> <[16] value, zero padded>
    <[5] issued to> <[5] signed by>
    <[1] signature type 1> <[2] 96> <[96] signature> <[2] extension length> <...>

Quirk: things beyond 16 are neither kept nor consumed on parse, as upstream.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from ztone.node.wire.address import Address
from ztone.node.wire.credential_base import (
    COO_THING_VALUE_SIZE,
    MAX_COO_THINGS,
    NO_SIGNATURE,
    NULL_ADDRESS,
    CooThing,
    SignedCredential,
    WireReader,
    address_bytes,
    read_signature,
    skip_extension,
    to_int64,
    u32_bytes,
    u64_bytes,
)
from ztone.node.wire.inetaddress import InetAddress

IpLike = InetAddress | ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class CertificateOfOwnership(SignedCredential):
    """Proof that a member owns IPs or MACs (A.3.5). ``things``: (type, 16 bytes)."""

    network_id: int
    timestamp: int
    id: int
    issued_to: Address
    things: tuple[tuple[int, bytes], ...] = ()
    flags: int = 0
    signed_by: Address = NULL_ADDRESS
    signature: bytes = NO_SIGNATURE

    @classmethod
    def parse(
        cls, data: bytes | bytearray | memoryview, offset: int = 0
    ) -> tuple[CertificateOfOwnership, int]:
        r = WireReader(data, offset)
        nwid = r.u64("COO network id")
        ts = to_int64(r.u64("COO timestamp"))
        flags = r.u64("COO flags")
        coo_id = r.u32("COO id")
        count = r.u16("COO thing count")
        things: list[tuple[int, bytes]] = []
        for _ in range(min(count, MAX_COO_THINGS)):
            kind = r.u8("COO thing type")
            things.append((kind, r.take(COO_THING_VALUE_SIZE, "COO thing")))
        issued_to = r.address("COO recipient")
        signed_by = r.address("COO signer")
        signature = read_signature(r)
        skip_extension(r)
        coo = cls(nwid, ts, coo_id, issued_to, tuple(things), flags, signed_by, signature)
        return coo, r.pos

    def body(self) -> bytes:
        out = bytearray(
            u64_bytes(self.network_id)
            + u64_bytes(self.timestamp)
            + u64_bytes(self.flags)
            + u32_bytes(self.id)
            + len(self.things).to_bytes(2, "big")
        )
        for kind, value in self.things:
            out.append(kind & 0xFF)
            out += value[:COO_THING_VALUE_SIZE].ljust(COO_THING_VALUE_SIZE, b"\x00")
        out += address_bytes(self.issued_to) + address_bytes(self.signed_by)
        return bytes(out)

    def _with(self, kind: int, value: bytes) -> CertificateOfOwnership:
        if len(self.things) >= MAX_COO_THINGS:
            return self  # silently full, as upstream's addThing
        thing = (kind, value.ljust(COO_THING_VALUE_SIZE, b"\x00"))
        return replace(self, things=(*self.things, thing))

    def add_ip(self, ip: IpLike) -> CertificateOfOwnership:
        """A copy with one more IP thing (unchanged when already 16 things)."""
        addr = ip.ip if isinstance(ip, InetAddress) else ip
        kind = CooThing.IPV4 if addr.version == 4 else CooThing.IPV6
        return self._with(kind, addr.packed)

    def add_mac(self, mac: int) -> CertificateOfOwnership:
        return self._with(CooThing.MAC, (mac & 0xFFFFFFFFFFFF).to_bytes(6, "big"))

    def _owns(self, kind: int, value: bytes) -> bool:
        return any(t == kind and v[: len(value)] == value for t, v in self.things)

    def owns_ip(self, ip: IpLike) -> bool:
        addr = ip.ip if isinstance(ip, InetAddress) else ip
        return self._owns(CooThing.IPV4 if addr.version == 4 else CooThing.IPV6, addr.packed)

    def owns_mac(self, mac: int) -> bool:
        return self._owns(CooThing.MAC, (mac & 0xFFFFFFFFFFFF).to_bytes(6, "big"))
