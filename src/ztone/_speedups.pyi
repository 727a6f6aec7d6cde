"""Typing stub and contract of the optional native accelerator ``ztone._speedups``.

Built from ``src/ztone/_speedups.c`` when a C compiler (and OpenSSL's libcrypto
headers) are present; otherwise absent, and ``ztone.crypto.backend`` falls back to
the pure-Python reference. Every function here must give byte-identical results
to its pure-Python counterpart named in the docstring.
"""

from typing import Any

def salsa20_xor(
    key: bytes,
    nonce: bytes,
    data: bytes | bytearray | memoryview,
    rounds: int,
    first_block: int = 0,
) -> bytes:
    """XOR ``data`` with the Salsa20/``rounds`` keystream from block ``first_block``.

    Pure: ``ztone.crypto.salsa20.xor``. ``rounds`` is 8, 12 or 20; key 32, nonce 8 bytes.
    """

def poly1305(key: bytes, message: bytes | bytearray | memoryview) -> bytes:
    """16-byte Poly1305 tag. Pure: ``ztone.crypto.poly1305.poly1305``."""

def memory_hard_hash(digest: bytes) -> bytes:
    """Steps 2-5 of PROTOCOL-CORE §2.4 given ``digest`` = SHA-512(public key) (64 bytes).

    Returns the final 64-byte D. Pure: ``ztone.crypto.mhash.memory_hard_hash_from_digest``.
    """

def trim_heap() -> bool:
    """glibc's ``malloc_trim(0)``: every malloc arena's free pages go back to the kernel;
    True if any did. Absent where the C library is not glibc (no pure counterpart: see
    ``ztone.service.heap``)."""

def armor_salsa(key: bytes, packet: bytearray, encrypt: bool) -> None:
    """Suites 0/1 armor in place (§4.4.2) with the 32-byte Salsa key.

    The header (incl. flags with the cipher bits) must be final. Writes the 8-byte
    MAC at [19:27]; encrypts [27:] when ``encrypt``.
    Pure: ``ztone.crypto.armor._pure_armor_salsa``.
    """

def dearmor_salsa(key: bytes, packet: bytearray, decrypt: bool) -> bool:
    """Suites 0/1 dearmor in place (§4.4.3); False (packet untouched) on MAC mismatch.

    Pure: ``ztone.crypto.armor._pure_dearmor_salsa``.
    """

def inet_sum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """One's complement sum of big-endian 16-bit words plus ``initial``, folded to 16 bits.

    Not complemented. ``initial`` must be below 2**32.
    Pure: ``ztone.util.inet_checksum.inet_sum_pure``.
    """

class AesGmacSiv:
    """AES-256-GMAC-SIV (suite 3, §4.5) keyed with K0 (GMAC) and K1 (SIV/CTR), 32 bytes each."""

    def __init__(self, k0: bytes, k1: bytes) -> None: ...
    def armor(self, packet: bytearray) -> None:
        """Encrypt in place (§4.5.3): [0:8] and [19:27] get the tag, [27:] the ciphertext."""
    def dearmor(self, packet: bytearray) -> bool:
        """Decrypt in place (§4.5.4); False (packet untouched) if the tag fails."""

def seal_frame(
    template: bytes,
    packet_id: bytes,
    ethertype: int,
    payload: bytes | bytearray | memoryview,
    mtu: int,
    siv: AesGmacSiv | None,
    salsa_key: bytes,
) -> list[bytes]:
    """The datagrams of one FRAME in one call: ``packet_id || template || ethertype ||
    payload`` (template: the 28 bytes [8:36], destination, source, flags, zero MAC, verb,
    network id), marked fragmented when longer than ``mtu``, armored with ``siv`` (suite
    3) or, when ``siv`` is None, Salsa20/12 + Poly1305 with ``salsa_key`` (suite 1), cut
    into datagrams. ValueError when the packet cannot be sent with ``mtu``.
    Pure: ``ztone.node.wire.frame_hop.seal_pure``.
    """

def open_packet(
    data: bytes | bytearray | memoryview,
    destination: bytes,
    siv: AesGmacSiv | None,
    salsa_key: bytes,
    assembled: bool = False,
) -> bytearray | None:
    """A copy of ``data`` with [27:] authenticated and decrypted, or None (``data`` is
    never changed) unless it is one unfragmented packet to ``destination`` (5 bytes) with
    0 hops, cipher suite 3 (``siv``) or 1 (``salsa_key``), and its MAC holds. With
    ``assembled`` (a packet put back together from its fragments) the fragmented flag
    may be set. Pure: ``ztone.node.wire.frame_hop.open_pure``.
    """

def x25519_public(private: bytes, /) -> bytes:
    """The 32-byte X25519 public u-coordinate of a 32-byte (unclamped) scalar.

    Reference: ``ztone.crypto.c25519.LIBRARY`` (``cryptography``), same bytes.
    """

def ed25519_public(seed: bytes, /) -> bytes:
    """The 32-byte Ed25519 public key of a 32-byte seed (RFC 8032 §5.1.5)."""

def x25519(private: bytes, peer_public: bytes, /) -> bytes:
    """The raw 32-byte X25519 shared secret; ValueError when it is all zero."""

def ed25519_sign(seed: bytes, message: bytes, /) -> bytes:
    """The 64-byte Ed25519 signature of ``message`` (RFC 8032 §5.1.6)."""

def ed25519_verify(public: bytes, signature: bytes, message: bytes, /) -> bool:
    """True iff ``signature`` is ``public``'s signature of ``message``; False for any
    malformed input (wrong lengths, a public key that is not a curve point)."""

class Dataplane:
    """The native receive table of the steady state (Linux only; absent elsewhere).

    Grants come from ``ztone.node.fast_grants`` through ``ztone.service.dataplane``;
    bounds from ``ztone.node.bounds`` (FAST_GRANTS, FAST_REASSEMBLY_SLOTS,
    FAST_REASSEMBLY_TIMEOUT ms). Reference behaviour: the general path's DeliverFrame
    (tests/service/test_dataplane.py compares them byte for byte).
    """

    delivered: int
    """Frames written to ports so far (``stats()["delivered"]``, without the dict)."""
    def __init__(
        self, address: bytes, max_grants: int, reassembly_slots: int, reassembly_timeout: int
    ) -> None: ...
    def replace(
        self,
        grants: list[
            tuple[
                int,  # network id
                int,  # peer address
                int,  # socket id
                bytes,  # remote IP, 4 or 16 bytes
                int,  # remote port
                int,  # port fd
                bool,  # the port has a virtio_net_hdr
                int,  # MTU: longer payloads go to the general path
                int,  # our MAC on the network (destination)
                int,  # the peer's MAC (source)
                tuple[int, ...] | None,  # ethertypes granted (None: any), at most 8
                AesGmacSiv | None,  # suite 3 key
                bytes,  # suite 1 key (32 bytes)
                int,  # expires (ms, the core's clock)
            ]
        ],
        kept: list[tuple[Any, ...]] | None = None,
    ) -> bool:
        """Make the table exactly ``grants`` (a grant that stays keeps its undrained
        activity; a removed one's is lost: drain first);
        with ``kept``: ``kept`` instead while the reactor's ring holds a datagram for the
        core (False then)."""
    def drain(self) -> list[tuple[int, int, int, bytes, int, int, int, int, int]]:
        """(nwid, peer, sock_id, ip, port, datagrams, packets, bytes, last_rx) per grant
        that carried something since the last drain."""
    def stats(self) -> dict[str, int]:
        """delivered, passed, reassembly_dropped/_evicted/_expired, tap_errors,
        read_errors, grants, slots; sent, given_back, send_errors, send_grants;
        gro_writes (merged TCP writes to ports), gro_frames (the frames they held)."""
    def rx_burst(
        self, fd: int, sock_id: int, now: int, budget: int
    ) -> list[tuple[str, int, bytes]]:
        """Read ``fd`` until EAGAIN or ``budget`` reads: write the steady state's frames
        to their ports (runs of TCP segments to a port with a virtio_net_hdr merged
        exactly as ``osdep.linux.gro.coalesce`` merges them, written by the end of the
        burst), give back every other datagram as (host, port, datagram), in
        arrival order (a held fragment set that is not the steady state's: head first)."""
    def replace_send(
        self,
        grants: list[
            tuple[
                int,  # network id
                int,  # peer address
                int,  # destination MAC (the member's)
                int,  # source MAC (ours)
                int,  # UDP socket fd to send from
                int,  # its socket id (for drain_send)
                bytes,  # remote IP, 4 or 16 bytes
                int,  # remote port
                bytes,  # FRAME template, bytes [8:36] (frame_hop.frame_template)
                AesGmacSiv | None,  # suite 3 key (None: suite 1)
                bytes,  # suite 1 key (32 bytes)
                tuple[int, ...] | None,  # ethertypes granted (None: any), at most 8
                int,  # largest payload (the port's MTU)
                int,  # physical MTU the packet is cut for
                int,  # expires (ms, the core's clock)
            ]
        ],
    ) -> None:
        """Make the send table exactly ``grants`` (undrained activity is lost)."""
    def drain_send(self) -> list[tuple[int, int, int, bytes, int, int, int, int, int]]:
        """(nwid, peer, sock_id, ip, port, datagrams, packets, bytes, last_tx) per send
        grant that carried something since the last drain."""
    def tx_burst(self, fd: int, vnet: bool, nwid: int, now: int, budget: int) -> list[bytes]:
        """Read port ``fd`` of ``nwid`` until EAGAIN or ``budget`` reads: seal and send
        (sendmmsg) the frames the send grants cover (packet id from getrandom, the cut of
        seal_frame); give back every other read as read, and every read after the first
        one given back. A read whose virtio_net_hdr asks for a checksum or is a TCP
        super-packet (TAP offloads) is finished or cut first, as osdep/linux/tso.py
        does (_dp_tso.h), when its destination is granted. OSError when the first read
        fails."""
    def start(self, ring_items: int, ring_bytes: int) -> int:
        """Start the reactor thread (src/ztone/_dp_reactor.h) with a ring of at most
        ``ring_items`` items and ``ring_bytes`` bytes; return the eventfd readable while
        the ring holds something."""
    def stop(self) -> None:
        """Stop the reactor and join its thread (its watches are forgotten)."""
    def watch_socket(self, fd: int, sock_id: int) -> None:
        """The reactor reads UDP socket ``fd`` (socket id ``sock_id``) from now on."""
    def watch_port(self, fd: int, nwid: int, vnet: bool) -> None:
        """The reactor reads port ``fd`` of ``nwid`` from now on."""
    def unwatch(self, fd: int) -> bool:
        """Stop using ``fd`` (before it closes): not read again, and the grants writing
        to it or sending from it are dropped. False if it was not watched."""
    def take(self) -> list[tuple[int, int, str, int, bytes]]:
        """Empty the ring: (0, sock_id, host, port, datagram), (1, nwid, "", vnet, read),
        (2, nwid, "", 0, b"") a port no longer read; in arrival order. Call taken()
        once the port reads are handed on."""
    def taken(self) -> None:
        """The last take()'s port reads are handed on: their ports may send natively
        again (unless they gave more reads back since)."""
