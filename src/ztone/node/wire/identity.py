"""ZeroTier identities, type 0 / C25519 (PROTOCOL-CORE §2).

String forms (§2.2)::

    <address:10 hex>:0:<public key:128 hex>                       public
    <address:10 hex>:0:<public key:128 hex>:<private key:128 hex> secret

Binary form (§2.3)::

    <[5] address> <[1] type = 0> <[64] public key> <[1] private length 0|64> [<[64] private>]

Validation (§2.5): address not reserved, memory-hard hash ``D`` of the public key
has ``D[0] < 17`` and ``D[59:64]`` equals the address.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ztone.crypto import c25519
from ztone.crypto.backend import DEFAULT
from ztone.errors import MalformedPacket
from ztone.node.wire.address import Address

IDENTITY_TYPE_C25519 = 0
POW_FIRST_BYTE_LESS_THAN = 17
PUBLIC_BINARY_LENGTH = 71

RandomBytes = Callable[[int], bytes]
HashFunction = Callable[[bytes], bytes]


def _unhex64(text: str) -> bytes | None:
    """Hex-decode the first 64 bytes (extra digits ignored, as upstream); None if short."""
    if len(text) < 128:
        return None
    try:
        return bytes.fromhex(text[:128])
    except ValueError:
        return None


@dataclass(frozen=True, slots=True, order=False)
class Identity:
    """An address and its C25519 key pair (private half optional)."""

    address: Address
    public: bytes
    secret: bytes | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.public) != c25519.PUBLIC_KEY_LEN:
            raise ValueError("public key must be 64 bytes")
        if self.secret is not None and len(self.secret) != c25519.PRIVATE_KEY_LEN:
            raise ValueError("private key must be 64 bytes")

    # --- text ------------------------------------------------------------------

    @classmethod
    def from_string(cls, text: str) -> Identity:
        """Parse a public or secret string form (§2.2); ``ValueError`` if malformed.

        This does not validate the address derivation; use :meth:`locally_validate`.
        """
        fields = text.strip().split(":")
        if not 3 <= len(fields) <= 4:
            raise ValueError("identity must have 3 or 4 ':'-separated fields")
        try:
            address = Address.parse(fields[0]) if len(fields[0]) <= 10 else None
        except ValueError:
            address = None
        if address is None or address.is_reserved:
            raise ValueError("identity address is missing or reserved")
        if fields[1] != "0":
            raise ValueError("identity type must be 0")
        public = _unhex64(fields[2])
        if public is None:
            raise ValueError("identity public key must be 128 hex digits")
        secret = None
        if len(fields) == 4:
            secret = _unhex64(fields[3])
            if secret is None:
                raise ValueError("identity private key must be 128 hex digits")
        return cls(address, public, secret)

    def to_string(self, include_private: bool = False) -> str:
        s = f"{self.address}:0:{self.public.hex()}"
        if include_private:
            if self.secret is None:
                raise ValueError("identity has no private key")
            s += ":" + self.secret.hex()
        return s

    def __str__(self) -> str:
        return self.to_string(False)

    # --- binary ----------------------------------------------------------------

    def serialize(self, include_private: bool = False) -> bytes:
        head = self.address.to_bytes5() + b"\x00" + self.public
        if include_private and self.secret is not None:
            return head + b"\x40" + self.secret
        return head + b"\x00"

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[Identity, int]:
        """Decode the binary form at ``offset``; return (identity, end offset)."""
        if offset < 0 or len(data) < offset + PUBLIC_BINARY_LENGTH:
            raise MalformedPacket("truncated identity")
        address = Address.from_bytes5(data, offset)
        if data[offset + 5] != IDENTITY_TYPE_C25519:
            raise MalformedPacket(f"unsupported identity type {data[offset + 5]}")
        public = bytes(data[offset + 6 : offset + 70])
        private_length = data[offset + 70]
        end = offset + 71
        secret = None
        if private_length == 64:
            if len(data) < end + 64:
                raise MalformedPacket("truncated identity private key")
            secret = bytes(data[end : end + 64])
            end += 64
        elif private_length != 0:
            raise MalformedPacket(f"invalid identity private key length {private_length}")
        return cls(address, public, secret), end

    # --- crypto ----------------------------------------------------------------

    @property
    def has_private(self) -> bool:
        return self.secret is not None

    def public_only(self) -> Identity:
        return Identity(self.address, self.public, None)

    def locally_validate(self, hash_function: HashFunction | None = None) -> bool:
        """Full §2.5 validation (the memory-hard proof of work); tens of ms native.

        ``hash_function``: the chosen backend's ``memory_hard_hash`` (default: the best
        built, :data:`ztone.crypto.backend.DEFAULT`).
        """
        if self.address.is_reserved:
            return False
        digest = (hash_function or DEFAULT.memory_hard_hash)(self.public)
        if digest[0] >= POW_FIRST_BYTE_LESS_THAN:
            return False
        if int.from_bytes(digest[59:64], "big") != self.address:
            return False
        if self.secret is not None:
            # A secret that does not belong to the public key is not this identity.
            return c25519.public_from_private(self.secret) == self.public
        return True

    def agree(self, other: Identity) -> bytes:
        """The 48-byte static key shared with ``other`` (§3.1)."""
        if self.secret is None:
            raise ValueError("identity has no private key")
        return c25519.agree(self.secret, other.public)

    def sign(self, message: bytes | bytearray | memoryview) -> bytes:
        if self.secret is None:
            raise ValueError("identity has no private key")
        return c25519.sign(self.secret, message)

    def verify(self, message: bytes | bytearray | memoryview, signature: bytes) -> bool:
        return c25519.verify(self.public, message, signature)

    def sort_key(self) -> tuple[int, bytes]:
        return int(self.address), self.public

    # --- generation ------------------------------------------------------------

    @classmethod
    def generate(
        cls, random_bytes: RandomBytes, hash_function: HashFunction | None = None
    ) -> Identity:
        """A new identity satisfying the proof of work (§2.6), from injected randomness.

        Walks private keys as upstream does (bytes 8..16 incremented, 16..24
        decremented, little-endian) so only the X25519 half changes per try.
        """
        hash_fn = hash_function or DEFAULT.memory_hard_hash
        while True:
            private = bytearray(random_bytes(64))
            if len(private) != 64:
                raise ValueError("random source returned the wrong number of bytes")
            ed_public = c25519.ed25519_public(bytes(private[32:]))
            while True:
                a = (int.from_bytes(private[8:16], "little") + 1) & 0xFFFFFFFFFFFFFFFF
                b = (int.from_bytes(private[16:24], "little") - 1) & 0xFFFFFFFFFFFFFFFF
                private[8:16] = a.to_bytes(8, "little")
                private[16:24] = b.to_bytes(8, "little")
                public = c25519.x25519_public(bytes(private[:32])) + ed_public
                digest = hash_fn(public)
                if digest[0] < POW_FIRST_BYTE_LESS_THAN:
                    break
            address = Address(int.from_bytes(digest[59:64], "big"))
            if not address.is_reserved:
                return cls(address, public, bytes(private))
