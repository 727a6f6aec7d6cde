"""Choice between the native accelerator and the pure-Python reference.

``ztone._speedups`` (an optional C extension, see ``_speedups.pyi``) is used when it
imported; otherwise, or after ``use("pure")``, the pure-Python modules are. Both
give byte-identical results (tests run both). The service layer may force the pure
path (``ZTONE_PURE=1``); the core itself reads no environment.
"""

from __future__ import annotations

import hashlib
from types import ModuleType

from ztone.crypto import mhash, poly1305, salsa20

_native: ModuleType | None
try:
    from ztone import _speedups as _native_module

    _native = _native_module
except ImportError:  # no compiler at install time: the pure path is complete
    _native = None

_active: str = "native" if _native is not None else "pure"


def native_available() -> bool:
    return _native is not None


def active() -> str:
    """``"native"`` or ``"pure"``."""
    return _active


def use(name: str) -> None:
    """Select ``"native"`` or ``"pure"`` for everything created afterwards."""
    global _active  # noqa: PLW0603 (one process-wide switch, by design)
    if name == "native" and _native is None:
        raise RuntimeError("the native accelerator ztone._speedups is not built")
    if name not in ("native", "pure"):
        raise ValueError(f"unknown backend {name!r}")
    _active = name


def native() -> ModuleType | None:
    """The native module if it is the active backend, else ``None``."""
    return _native if _active == "native" else None


def salsa20_xor(
    key: bytes,
    nonce: bytes,
    data: bytes | bytearray | memoryview,
    rounds: int,
    first_block: int = 0,
) -> bytes:
    n = native()
    if n is not None:
        result: bytes = n.salsa20_xor(key, nonce, data, rounds, first_block)
        return result
    return salsa20.xor(key, nonce, data, rounds, first_block)


def poly1305_tag(key: bytes, message: bytes | bytearray | memoryview) -> bytes:
    n = native()
    if n is not None:
        result: bytes = n.poly1305(key, message)
        return result
    return poly1305.poly1305(key, message)


def memory_hard_hash(public_key: bytes) -> bytes:
    """The identity hash of §2.4 of a 64-byte public key."""
    digest = hashlib.sha512(public_key).digest()
    n = native()
    if n is not None:
        result: bytes = n.memory_hard_hash(digest)
        return result
    return mhash.memory_hard_hash_from_digest(digest)
