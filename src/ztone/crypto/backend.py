"""The two crypto backends: the native accelerator and the pure-Python reference.

``ztone._speedups`` (an optional C extension, see ``_speedups.pyi``) backs
:data:`NATIVE` when it imported; :data:`PURE` is always there. Both give
byte-identical results (tests run both). A :class:`Backend` is a value, chosen once
by whoever builds the node (the daemon forces :data:`PURE` on ``ZTONE_PURE=1``) and
passed to what needs it (:class:`~ztone.crypto.armor.PeerKey`, identity validation,
:class:`~ztone.node.node.Node`). Nothing here can be switched afterwards; the core
itself reads no environment.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from types import ModuleType

from ztone.crypto import mhash, poly1305, salsa20

_native: ModuleType | None
try:
    from ztone import _speedups as _native_module

    _native = _native_module
except ImportError:  # no compiler at install time: the pure path is complete
    _native = None


@dataclass(frozen=True, slots=True)
class Backend:
    """One crypto implementation: ``name`` is ``"native"`` or ``"pure"``; ``native`` is
    the extension module when this is the native backend, else ``None``."""

    name: str
    native: ModuleType | None

    def salsa20_xor(
        self,
        key: bytes,
        nonce: bytes,
        data: bytes | bytearray | memoryview,
        rounds: int,
        first_block: int = 0,
    ) -> bytes:
        n = self.native
        if n is not None:
            result: bytes = n.salsa20_xor(key, nonce, data, rounds, first_block)
            return result
        return salsa20.xor(key, nonce, data, rounds, first_block)

    def poly1305_tag(self, key: bytes, message: bytes | bytearray | memoryview) -> bytes:
        n = self.native
        if n is not None:
            result: bytes = n.poly1305(key, message)
            return result
        return poly1305.poly1305(key, message)

    def memory_hard_hash(self, public_key: bytes) -> bytes:
        """The identity hash of PROTOCOL-CORE §2.4 of a 64-byte public key."""
        digest = hashlib.sha512(public_key).digest()
        n = self.native
        if n is not None:
            result: bytes = n.memory_hard_hash(digest)
            return result
        return mhash.memory_hard_hash_from_digest(digest)


PURE = Backend("pure", None)
NATIVE: Backend | None = Backend("native", _native) if _native is not None else None
DEFAULT: Backend = NATIVE if NATIVE is not None else PURE
"""The best backend built: native if the extension imported, else pure."""


def native_available() -> bool:
    return NATIVE is not None


def named(name: str) -> Backend:
    """The backend called ``name`` (``"native"`` or ``"pure"``).

    :class:`RuntimeError` if native is asked for and not built; :class:`ValueError`
    for any other name.
    """
    if name == "pure":
        return PURE
    if name != "native":
        raise ValueError(f"unknown backend {name!r}")
    if NATIVE is None:
        raise RuntimeError("the native accelerator ztone._speedups is not built")
    return NATIVE
