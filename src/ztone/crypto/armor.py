"""Packet armor: the cipher suites of PROTOCOL-CORE §4.

Suites (3-bit field, flags byte 18 bits 5..3):

* 0  Poly1305 MAC only (HELLO, QoS): key mangled per packet, Salsa20/12 gives the
     one-time key, MAC = first 8 bytes of the tag over ``pkt[27:]``, at ``[19:27]``.
* 1  Salsa20/12 encryption of ``pkt[27:]`` (keystream from block 1), then the MAC.
     Also sets the deprecated 0x80 flag.
* 2  trusted path: no crypto, ``[19:27]`` carries the trusted path id (handled by
     the caller, never here).
* 3  AES-256-GMAC-SIV with K0/K1 from an HMAC-SHA384 KBKDF of the 48-byte peer key:
     ``[0:8]`` and ``[19:27]`` become the SIV tag, ``[27:]`` the CTR ciphertext.

Per-packet key mangling (§4.4.1): ``MK[0:18] = K[0:18] ^ pkt[0:18]``,
``MK[18] = K[18] ^ (pkt[18] & 0xf8)``, ``MK[19:21] = K[19:21] ^ (len & 0xff, len >> 8)``.
"""

from __future__ import annotations

import hmac
from hashlib import sha384
from typing import Protocol

from ztone.crypto import poly1305, salsa20
from ztone.crypto.backend import DEFAULT, Backend
from ztone.errors import LocalUsageError

SUITE_POLY1305_NONE = 0
SUITE_POLY1305_SALSA2012 = 1
SUITE_NONE_TRUSTED = 2
SUITE_AES_GMAC_SIV = 3

FLAG_ENCRYPTED = 0x80
FLAG_FRAGMENTED = 0x40
IDX_FLAGS = 18
IDX_MAC = 19
IDX_VERB = 27
MIN_PACKET_LENGTH = 28


def kbkdf_hmac_sha384(key: bytes, label: int) -> bytes:
    """The suite-3 key derivation of §4.5.1 (48 bytes out; AES uses the first 32)."""
    msg = b"\x00\x00\x00\x00ZT" + bytes((label, 0, 0)) + b"\x00\x00\x01\x80"
    return hmac.new(key, msg, sha384).digest()


def _mangle(key32: bytes, packet: bytearray | bytes) -> bytes:
    n = len(packet)
    mk = bytearray(key32[:32])
    for i in range(18):
        mk[i] ^= packet[i]
    mk[18] ^= packet[18] & 0xF8
    mk[19] ^= n & 0xFF
    mk[20] ^= (n >> 8) & 0xFF
    return bytes(mk)


def _pure_armor_salsa(key32: bytes, packet: bytearray, encrypt: bool) -> None:
    if len(packet) < MIN_PACKET_LENGTH:
        raise ValueError("packet shorter than its header")
    mk = _mangle(key32, packet)
    nonce = bytes(packet[:8])
    otk = salsa20.keystream(mk, nonce, 32, 12)
    if encrypt:
        packet[IDX_VERB:] = salsa20.xor(mk, nonce, packet[IDX_VERB:], 12, 1)
    tag = poly1305.poly1305(otk, packet[IDX_VERB:])
    packet[IDX_MAC : IDX_MAC + 8] = tag[:8]


def _pure_dearmor_salsa(key32: bytes, packet: bytearray, decrypt: bool) -> bool:
    if len(packet) < MIN_PACKET_LENGTH:
        raise ValueError("packet shorter than its header")
    mk = _mangle(key32, packet)
    nonce = bytes(packet[:8])
    otk = salsa20.keystream(mk, nonce, 32, 12)
    tag = poly1305.poly1305(otk, packet[IDX_VERB:])
    if not hmac.compare_digest(tag[:8], bytes(packet[IDX_MAC : IDX_MAC + 8])):
        return False
    if decrypt:
        packet[IDX_VERB:] = salsa20.xor(mk, nonce, packet[IDX_VERB:], 12, 1)
    return True


class _SivEngine(Protocol):
    def armor(self, packet: bytearray) -> None: ...
    def dearmor(self, packet: bytearray) -> bool: ...


class _PureAesGmacSiv:
    """Suite 3 with ``cryptography`` primitives (reference path).

    ``cryptography`` is imported here, not at module load: with the native extension
    built, suite 3 runs in ``ztone._speedups`` and a daemon never imports it (issue 17).
    """

    __slots__ = ("_ecb_dec", "_ecb_enc", "_gmac", "_k1")

    def __init__(self, k0: bytes, k1: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers import (  # noqa: PLC0415 (lazy)
            Cipher,
            algorithms,
            modes,
        )
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

        if len(k0) != 32 or len(k1) != 32:
            raise LocalUsageError("AES-GMAC-SIV keys must be 32 bytes")
        self._gmac = AESGCM(k0)
        self._k1 = algorithms.AES(k1)
        self._ecb_enc = Cipher(self._k1, modes.ECB()).encryptor()
        self._ecb_dec = Cipher(self._k1, modes.ECB()).decryptor()

    def _tag_half(self, nonce8: bytes, aad11: bytes, plaintext: bytes) -> bytes:
        g = self._gmac.encrypt(nonce8 + b"\x00\x00\x00\x00", b"", aad11 + bytes(5) + plaintext)
        return (int.from_bytes(g[:8], "big") ^ int.from_bytes(g[8:16], "big")).to_bytes(8, "big")

    def _ctr(self, tag: bytes, data: bytes) -> bytes:
        from cryptography.hazmat.primitives.ciphers import Cipher, modes  # noqa: PLC0415

        iv = bytearray(tag)
        iv[12] &= 0x7F
        ctx = Cipher(self._k1, modes.CTR(bytes(iv))).encryptor()
        return ctx.update(data) + ctx.finalize()

    def armor(self, packet: bytearray) -> None:
        if len(packet) < MIN_PACKET_LENGTH:
            raise ValueError("packet shorter than its header")
        nonce = bytes(packet[:8])
        plaintext = bytes(packet[IDX_VERB:])
        t = nonce + self._tag_half(nonce, bytes(packet[8:19]), plaintext)
        s = self._ecb_enc.update(t)
        packet[IDX_VERB:] = self._ctr(s, plaintext)
        packet[0:8] = s[:8]
        packet[IDX_MAC : IDX_MAC + 8] = s[8:]

    def dearmor(self, packet: bytearray) -> bool:
        if len(packet) < MIN_PACKET_LENGTH:
            raise ValueError("packet shorter than its header")
        s = bytes(packet[:8]) + bytes(packet[IDX_MAC : IDX_MAC + 8])
        plaintext = self._ctr(s, bytes(packet[IDX_VERB:]))
        t = self._ecb_dec.update(s)
        aad = bytearray(packet[8:19])
        aad[10] &= 0xF8  # the receiver authenticates the flags without the hop count
        if not hmac.compare_digest(self._tag_half(t[:8], bytes(aad), plaintext), t[8:]):
            return False
        packet[IDX_VERB:] = plaintext
        return True


class PeerKey:
    """The symmetric state shared with one peer: the 48-byte key and what derives from it.

    ``crypto`` is the backend every operation with this key uses (default: the best
    built); the AES engine is bound to it here.
    """

    __slots__ = ("_native", "aes_k0", "aes_k1", "crypto", "key", "salsa_key", "siv")

    def __init__(self, key: bytes, crypto: Backend = DEFAULT) -> None:
        if len(key) != 48:
            raise LocalUsageError("peer key must be 48 bytes")
        self.key = key
        self.salsa_key = key[:32]
        self.aes_k0 = kbkdf_hmac_sha384(key, 0x30)[:32]
        self.aes_k1 = kbkdf_hmac_sha384(key, 0x31)[:32]
        self.crypto = crypto
        n = crypto.native
        self._native = n
        self.siv: _SivEngine
        if n is not None:
            self.siv = n.AesGmacSiv(self.aes_k0, self.aes_k1)
        else:
            self.siv = _PureAesGmacSiv(self.aes_k0, self.aes_k1)


def set_cipher(packet: bytearray, suite: int) -> None:
    """Write the cipher bits and the deprecated 0x80 flag (set iff suite 1), §4.1."""
    flags = (packet[IDX_FLAGS] & 0x47) | ((suite & 7) << 3)
    if suite == SUITE_POLY1305_SALSA2012:
        flags |= FLAG_ENCRYPTED
    packet[IDX_FLAGS] = flags


def cipher_of(packet: bytes | bytearray | memoryview) -> int:
    return (packet[IDX_FLAGS] >> 3) & 7


def armor(packet: bytearray, key: PeerKey, suite: int) -> None:
    """Armor a fully built packet in place with ``suite`` 0, 1 or 3 (§4.4.2, §4.5.3)."""
    if suite == SUITE_AES_GMAC_SIV:  # set_cipher, inline for the common suite
        packet[IDX_FLAGS] = (packet[IDX_FLAGS] & 0x47) | (SUITE_AES_GMAC_SIV << 3)
        key.siv.armor(packet)
        return
    set_cipher(packet, suite)
    if suite not in (SUITE_POLY1305_NONE, SUITE_POLY1305_SALSA2012):
        raise LocalUsageError(f"cannot armor with cipher suite {suite}")
    encrypt = suite == SUITE_POLY1305_SALSA2012
    n = key._native
    if n is not None:
        n.armor_salsa(key.salsa_key, packet, encrypt)
    else:
        _pure_armor_salsa(key.salsa_key, packet, encrypt)


def dearmor(packet: bytearray, key: PeerKey) -> bool:
    """Authenticate and decrypt in place; False for a bad MAC/tag or an unknown suite.

    Suite 2 (trusted path) is never accepted here: the caller checks the path.
    """
    if len(packet) < MIN_PACKET_LENGTH:
        return False
    suite = (packet[IDX_FLAGS] >> 3) & 7
    if suite == SUITE_AES_GMAC_SIV:
        return key.siv.dearmor(packet)
    if suite not in (SUITE_POLY1305_NONE, SUITE_POLY1305_SALSA2012):
        return False
    decrypt = suite == SUITE_POLY1305_SALSA2012
    n = key._native
    if n is not None:
        ok: bool = n.dearmor_salsa(key.salsa_key, packet, decrypt)
        return ok
    return _pure_dearmor_salsa(key.salsa_key, packet, decrypt)


def crypt_field(key: PeerKey, packet: bytearray, start: int) -> None:
    """HELLO's partial encryption (§4.6): XOR ``packet[start:]`` in place.

    Key: the unmangled Salsa key; nonce: the packet id with its last byte's low 3 bits
    cleared; keystream from offset 0. Self-inverse; apply once per packet.
    """
    if start >= len(packet):
        return
    nonce = bytearray(packet[:8])
    nonce[7] &= 0xF8
    packet[start:] = key.crypto.salsa20_xor(key.salsa_key, bytes(nonce), packet[start:], 12, 0)
