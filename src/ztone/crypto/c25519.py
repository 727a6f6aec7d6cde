"""C25519: ZeroTier's X25519 + Ed25519 key pairs, agreement and 96-byte signatures.

Key layout (PROTOCOL-CORE §2.1), public and private alike 64 bytes::

    [0:32]  X25519 public u-coordinate / X25519 private scalar (stored unclamped)
    [32:64] Ed25519 public key        / Ed25519 32-byte seed

Agreement (§3.1): ``SHA-512(X25519(priv[0:32], pub[0:32]))``, extended by repeated
SHA-512 when more than 64 bytes are asked for; peers use 48 bytes.
Signature (§3.2): ``h = SHA-512(m)[0:32]``; ``Ed25519(seed, h) || h`` (96 bytes).

The curve arithmetic itself is a :class:`Primitives`: :data:`NATIVE` (``ztone._speedups``
calling the system's OpenSSL libcrypto, which the interpreter has loaded already for
``hashlib``) when the extension is built and works, else :data:`LIBRARY` (the
``cryptography`` package, imported only then). Both are OpenSSL's code, so their bytes
are the same (tests/crypto/test_c25519.py); a daemon on the native path never imports
``cryptography`` for this (issue 17: it costs ~6 MB RSS).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from types import ModuleType
from typing import Protocol

from ztone.errors import LocalUsageError

PUBLIC_KEY_LEN = 64
PRIVATE_KEY_LEN = 64
SIGNATURE_LEN = 96
SYMMETRIC_KEY_LEN = 48

RandomBytes = Callable[[int], bytes]


class KeyAgreementError(ValueError):
    """The peer's X25519 key yields the all-zero shared secret (a low-order point)."""


class Primitives(Protocol):
    """Bare X25519/Ed25519 on raw 32-byte keys (RFC 7748, RFC 8032); ZeroTier's
    framing (§3.1 hashing, §3.2 signing the hash) is this module's, on top.

    ``x25519`` raises :class:`ValueError` for an all-zero result; ``ed25519_verify``
    returns False for any malformed input.
    """

    def x25519_public(self, private: bytes, /) -> bytes: ...
    def ed25519_public(self, seed: bytes, /) -> bytes: ...
    def x25519(self, private: bytes, peer_public: bytes, /) -> bytes: ...
    def ed25519_sign(self, seed: bytes, message: bytes, /) -> bytes: ...
    def ed25519_verify(self, public: bytes, signature: bytes, message: bytes, /) -> bool: ...


class LibraryPrimitives:
    """The primitives from the ``cryptography`` package, imported at first use: only a
    process without the native extension (or whose libcrypto refused) pays for it."""

    __slots__ = ()

    def x25519_public(self, private: bytes, /) -> bytes:
        from cryptography.hazmat.primitives.asymmetric import x25519  # noqa: PLC0415 (lazy)

        return x25519.X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()

    def ed25519_public(self, seed: bytes, /) -> bytes:
        from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: PLC0415 (lazy)

        return ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()

    def x25519(self, private: bytes, peer_public: bytes, /) -> bytes:
        from cryptography.hazmat.primitives.asymmetric import x25519  # noqa: PLC0415 (lazy)

        return x25519.X25519PrivateKey.from_private_bytes(private).exchange(
            x25519.X25519PublicKey.from_public_bytes(peer_public)
        )

    def ed25519_sign(self, seed: bytes, message: bytes, /) -> bytes:
        from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: PLC0415 (lazy)

        return ed25519.Ed25519PrivateKey.from_private_bytes(seed).sign(message)

    def ed25519_verify(self, public: bytes, signature: bytes, message: bytes, /) -> bool:
        from cryptography.exceptions import InvalidSignature  # noqa: PLC0415 (lazy)
        from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: PLC0415 (lazy)

        try:
            ed25519.Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


LIBRARY: Primitives = LibraryPrimitives()

# RFC 7748 §6.1 (Alice) and RFC 8032 §7.1 test 1: a native module must reproduce both
# public keys before it is trusted (an older build lacks the functions; a libcrypto
# without one of the curves raises), else this module uses LIBRARY.
_PROBE_SCALAR = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
_PROBE_PUBLIC = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
_PROBE_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
_PROBE_ED_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")


def _native_primitives() -> Primitives | None:
    try:
        from ztone import _speedups  # noqa: PLC0415 (only when this module loads)
    except ImportError:  # no compiler at install time
        return None
    module: ModuleType = _speedups
    names = ("x25519_public", "ed25519_public", "x25519", "ed25519_sign", "ed25519_verify")
    if not all(hasattr(module, name) for name in names):
        return None
    try:
        if module.x25519_public(_PROBE_SCALAR) != _PROBE_PUBLIC:
            return None
        if module.ed25519_public(_PROBE_SEED) != _PROBE_ED_PUBLIC:
            return None
    except (RuntimeError, ValueError):
        return None
    native: Primitives = module
    return native


NATIVE: Primitives | None = _native_primitives()
"""The extension's primitives through the system libcrypto, when usable."""
ACTIVE: Primitives = NATIVE if NATIVE is not None else LIBRARY
"""What the functions below use unless given others."""


def x25519_public(private_half: bytes, primitives: Primitives | None = None) -> bytes:
    return (primitives or ACTIVE).x25519_public(private_half)


def ed25519_public(seed: bytes, primitives: Primitives | None = None) -> bytes:
    return (primitives or ACTIVE).ed25519_public(seed)


def public_from_private(private: bytes, primitives: Primitives | None = None) -> bytes:
    """The 64-byte public key of a 64-byte private key."""
    if len(private) != PRIVATE_KEY_LEN:
        raise LocalUsageError("C25519 private key must be 64 bytes")
    p = primitives or ACTIVE
    return p.x25519_public(bytes(private[:32])) + p.ed25519_public(bytes(private[32:]))


def generate(
    random_bytes: RandomBytes, primitives: Primitives | None = None
) -> tuple[bytes, bytes]:
    """A fresh key pair ``(public, private)`` from 64 injected random bytes."""
    private = random_bytes(PRIVATE_KEY_LEN)
    if len(private) != PRIVATE_KEY_LEN:
        raise LocalUsageError("random source returned the wrong number of bytes")
    return public_from_private(private, primitives), private


def agree(
    private: bytes,
    peer_public: bytes,
    length: int = SYMMETRIC_KEY_LEN,
    primitives: Primitives | None = None,
) -> bytes:
    """Static shared key of ``length`` bytes with the holder of ``peer_public``."""
    if len(private) != PRIVATE_KEY_LEN or len(peer_public) != PUBLIC_KEY_LEN:
        raise LocalUsageError("C25519 keys must be 64 bytes")
    try:
        raw = (primitives or ACTIVE).x25519(bytes(private[:32]), bytes(peer_public[:32]))
    except ValueError as e:
        raise KeyAgreementError(str(e)) from e
    out = hashlib.sha512(raw).digest()
    stream = out
    while len(stream) < length:
        out = hashlib.sha512(out).digest()
        stream += out
    return stream[:length]


def sign(
    private: bytes,
    message: bytes | bytearray | memoryview,
    primitives: Primitives | None = None,
) -> bytes:
    """The 96-byte ZeroTier signature of ``message``."""
    if len(private) != PRIVATE_KEY_LEN:
        raise LocalUsageError("C25519 private key must be 64 bytes")
    h = hashlib.sha512(message).digest()[:32]
    return (primitives or ACTIVE).ed25519_sign(bytes(private[32:]), h) + h


def verify(
    public: bytes,
    message: bytes | bytearray | memoryview,
    signature: bytes,
    primitives: Primitives | None = None,
) -> bool:
    """True iff ``signature`` (96 bytes) is ``public``'s signature of ``message``."""
    if len(public) != PUBLIC_KEY_LEN or len(signature) != SIGNATURE_LEN:
        return False
    h = hashlib.sha512(message).digest()[:32]
    if not hmac.compare_digest(bytes(signature[64:]), h):
        return False
    return (primitives or ACTIVE).ed25519_verify(bytes(public[32:]), bytes(signature[:64]), h)
