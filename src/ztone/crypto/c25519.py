"""C25519: ZeroTier's X25519 + Ed25519 key pairs, agreement and 96-byte signatures.

Key layout (PROTOCOL-CORE §2.1), public and private alike 64 bytes::

    [0:32]  X25519 public u-coordinate / X25519 private scalar (stored unclamped)
    [32:64] Ed25519 public key        / Ed25519 32-byte seed

Agreement (§3.1): ``SHA-512(X25519(priv[0:32], pub[0:32]))``, extended by repeated
SHA-512 when more than 64 bytes are asked for; peers use 48 bytes.
Signature (§3.2): ``h = SHA-512(m)[0:32]``; ``Ed25519(seed, h) || h`` (96 bytes).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ztone.errors import LocalUsageError

PUBLIC_KEY_LEN = 64
PRIVATE_KEY_LEN = 64
SIGNATURE_LEN = 96
SYMMETRIC_KEY_LEN = 48

RandomBytes = Callable[[int], bytes]


class KeyAgreementError(ValueError):
    """The peer's X25519 key yields the all-zero shared secret (a low-order point)."""


def x25519_public(private_half: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private_half).public_key().public_bytes_raw()


def ed25519_public(seed: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def public_from_private(private: bytes) -> bytes:
    """The 64-byte public key of a 64-byte private key."""
    if len(private) != PRIVATE_KEY_LEN:
        raise LocalUsageError("C25519 private key must be 64 bytes")
    return x25519_public(private[:32]) + ed25519_public(private[32:])


def generate(random_bytes: RandomBytes) -> tuple[bytes, bytes]:
    """A fresh key pair ``(public, private)`` from 64 injected random bytes."""
    private = random_bytes(PRIVATE_KEY_LEN)
    if len(private) != PRIVATE_KEY_LEN:
        raise LocalUsageError("random source returned the wrong number of bytes")
    return public_from_private(private), private


def agree(private: bytes, peer_public: bytes, length: int = SYMMETRIC_KEY_LEN) -> bytes:
    """Static shared key of ``length`` bytes with the holder of ``peer_public``."""
    if len(private) != PRIVATE_KEY_LEN or len(peer_public) != PUBLIC_KEY_LEN:
        raise LocalUsageError("C25519 keys must be 64 bytes")
    try:
        raw = X25519PrivateKey.from_private_bytes(private[:32]).exchange(
            X25519PublicKey.from_public_bytes(peer_public[:32])
        )
    except ValueError as e:
        raise KeyAgreementError(str(e)) from e
    out = hashlib.sha512(raw).digest()
    stream = out
    while len(stream) < length:
        out = hashlib.sha512(out).digest()
        stream += out
    return stream[:length]


def sign(private: bytes, message: bytes | bytearray | memoryview) -> bytes:
    """The 96-byte ZeroTier signature of ``message``."""
    if len(private) != PRIVATE_KEY_LEN:
        raise LocalUsageError("C25519 private key must be 64 bytes")
    h = hashlib.sha512(message).digest()[:32]
    return Ed25519PrivateKey.from_private_bytes(private[32:]).sign(h) + h


def verify(public: bytes, message: bytes | bytearray | memoryview, signature: bytes) -> bool:
    """True iff ``signature`` (96 bytes) is ``public``'s signature of ``message``."""
    if len(public) != PUBLIC_KEY_LEN or len(signature) != SIGNATURE_LEN:
        return False
    h = hashlib.sha512(message).digest()[:32]
    if not hmac.compare_digest(bytes(signature[64:]), h):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public[32:]).verify(bytes(signature[:64]), h)
    except (InvalidSignature, ValueError):
        return False
    return True
