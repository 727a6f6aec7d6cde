"""What runs inside a namespace for bench/abuse.py: the attacks and the /status probe.

``python3 bench/abuse_worker.py <kind> <spec.json>`` (started by bench/abuse.py with
``ip netns exec``) runs one attack or the probe until its time or count bound, or
SIGTERM, and prints one JSON line: what it sent, what came back.

Hostile datagrams are built with ztone's own core, as a real attacker would build them
with any ZeroTier implementation: HELLOs with correct MACs (PROTOCOL-CORE §6.2, §4.4),
verbs armored with the agreed key (suites 1 and 3, §4), fragments (§5.6). The builders
are plain functions of an explicit ``random.Random`` so tests can check that the core
parses what they make.

UDP attacks (datagrams to the target's port 9993):

==================  ======  ===============================================================
attack              target  what each datagram is
==================  ======  ===============================================================
hello               root    HELLO from one of the identity pool, all from one source address
hello-spread        root    the same, each identity from its own /24 (the per-/24 gate of
                            §6.2.2 lets one new identity per /24 per 2 s through)
hello-invalid       root    HELLO from fresh key pairs without proof of work (cheap to make,
                            each costs the target a key agreement and a memory-hard hash)
whois               root    WHOIS for 100 random addresses, from one HELLO'd peer
multicast-like      root    MULTICAST_LIKE, 76 random (network, MAC, ADI) per datagram, from
                            a peer that has only sent HELLO
multicast-gather    root    MULTICAST_GATHER for random networks and for the real network's
                            broadcast groups (random ADI), random limits
config-random       ctrl    NETWORK_CONFIG_REQUEST for random network ids (half of them under
                            the controller's address), from one peer
config-real         ctrl    NETWORK_CONFIG_REQUEST for the real network from every pool
                            identity (each is a new, unauthorized member to the controller)
fragments           b       orphan fragments (pieces 1..6 of 7, never a head), random ids
junk                root    random bytes, random headers addressed to the target, truncated
                            heads, HELLO-shaped garbage
mutated             b       every verb with a mutated plaintext payload, correctly armored
                            (suites 0/1/3) by a HELLO'd peer
==================  ======  ===============================================================

API attacks (TCP to the target's 127.0.0.1:9993, run inside its namespace): ``api-idle``
(connections held open, reopened when shed), ``api-slowloris`` (an unfinished request
header trickled one line every second), ``api-pipeline`` (token-less ``GET /status``
pipelined without reading, 4.45 MB per connection), ``api-badtoken`` (requests with
wrong tokens, answers read).

Safety: a UDP target outside 198.18.0.0/15 and an API target other than 127.0.0.1 are
refused; every loop stops at its deadline and its count; RENDEZVOUS and
PUSH_DIRECT_PATHS payloads (which make a node send to the addresses inside) carry only
198.18.0.0/16 endpoints and are never mutated.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import http.client
import ipaddress
import json
import random
import select
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ztone.crypto import c25519
from ztone.crypto.armor import (
    SUITE_AES_GMAC_SIV,
    SUITE_POLY1305_NONE,
    SUITE_POLY1305_SALSA2012,
    PeerKey,
    armor,
)
from ztone.node.wire.address import Address
from ztone.node.wire.fragment import Fragment
from ztone.node.wire.hello import Hello, make_hello_packet
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress, serialize_inet
from ztone.node.wire.network_config import request_metadata
from ztone.node.wire.packet import PROTO_VERSION, Verb, build_packet
from ztone.node.wire.verbs import Rendezvous, in_re_payload, serialize_push_direct_paths
from ztone.node.wire.vl2_verbs import (
    MulticastGroup,
    serialize_config_request,
    serialize_gather,
    serialize_multicast_frame,
)

SAFE_UDP = ipaddress.IPv4Network("198.18.0.0/15")
SAFE_ENDPOINTS = ipaddress.IPv4Network("198.18.0.0/16")
VERSION = (1, 14, 1)
LIKES_PER_DATAGRAM = 76  # 28 + 76 * 18 = 1,396 bytes: one datagram under the 1,432 MTU
WHOIS_PER_DATAGRAM = 100
BROADCAST = 0xFFFFFFFFFFFF
INTRODUCE_SECONDS = 10.0

UDP_ATTACKS = (
    "hello", "hello-spread", "hello-invalid", "whois", "multicast-like", "multicast-gather",
    "config-random", "config-real", "fragments", "junk", "mutated",
)  # fmt: skip
API_ATTACKS = ("api-idle", "api-slowloris", "api-pipeline", "api-badtoken")

_stop = False


def _on_term(signum: int, frame: Any) -> None:
    global _stop  # noqa: PLW0603 (a signal handler can only set a flag)
    _stop = True


# --------------------------------------------------------------------- packet builders


def fake_identity(rng: random.Random) -> Identity:
    """A key pair under a random non-reserved address, without the proof of work."""
    public, private = c25519.generate(rng.randbytes)
    return Identity(Address(rng.randrange(1, 0xFF00000000)), public, private)


def hello_packet(rng: random.Random, me: Identity, key: PeerKey, target: int,
                 target_endpoint: InetAddress, now_ms: int) -> bytes:  # fmt: skip
    """A HELLO as a node sends it (suite 0, cryptField moon list, §6.2)."""
    hello = Hello(PROTO_VERSION, VERSION, now_ms, me.public_only(), target_endpoint, 0, 0)
    return make_hello_packet(rng.randbytes(8), Address(target), key, hello)


def sealed(rng: random.Random, me: int, key: PeerKey, target: int, verb: int,
           payload: bytes, suite: int = SUITE_AES_GMAC_SIV) -> bytes:  # fmt: skip
    """A verb packet from ``me`` to ``target``, armored with ``suite`` (0, 1 or 3)."""
    packet = build_packet(rng.randbytes(8), target, me, verb, payload)
    armor(packet, key, suite)
    return bytes(packet)


def whois_payload(rng: random.Random, count: int = WHOIS_PER_DATAGRAM) -> bytes:
    return rng.randbytes(5 * count)


def multicast_like_payload(rng: random.Random, count: int = LIKES_PER_DATAGRAM) -> bytes:
    """``count`` entries ``<[8] nwid> <[6] MAC> <[4] ADI>``, every field random."""
    return rng.randbytes(18 * count)


def gather_payload(rng: random.Random, real_nwid: int) -> bytes:
    """Half for the real network's broadcast group (ARP ADIs), half for random groups."""
    if rng.random() < 0.5:
        nwid, group = real_nwid, MulticastGroup(BROADCAST, rng.getrandbits(32))
    else:
        nwid, group = rng.getrandbits(64), MulticastGroup(rng.getrandbits(48), rng.getrandbits(32))
    return serialize_gather(nwid, group, rng.choice((1, 8, 64, 1000, 65535)), None)


def config_request_payload(rng: random.Random, nwid: int) -> bytes:
    meta = request_metadata(VERSION, "linux-x64").serialize()
    return serialize_config_request(nwid, meta, 0, 0)


def random_config_nwid(rng: random.Random, controller: int) -> int:
    """Half under the controller's address (its own network id space), half anywhere."""
    if rng.random() < 0.5:
        return (controller << 24) | rng.getrandbits(24)
    return rng.getrandbits(64)


def orphan_fragment(rng: random.Random, target: int) -> bytes:
    """A fragment of a 7-piece packet whose head never comes (§5.6)."""
    data = rng.randbytes(rng.randrange(64, 1400))
    return Fragment(rng.getrandbits(64), Address(target), 7, rng.randrange(1, 7), 0,
                    data).serialize()  # fmt: skip


def junk_datagram(rng: random.Random, target: int) -> bytes:
    """Random bytes in four shapes: noise, a random header to the target, a truncated
    head, a HELLO-shaped packet with a garbage identity."""
    kind = rng.randrange(4)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 1500))
    head = rng.randbytes(8) + target.to_bytes(5, "big") + rng.randbytes(5)
    if kind == 1:
        return head + rng.randbytes(rng.randrange(10, 1400))
    if kind == 2:
        return (head + rng.randbytes(10))[: rng.randrange(17, 28)]
    return (
        head
        + bytes((rng.choice((0, 1 << 3)),))
        + rng.randbytes(8)
        + bytes((Verb.HELLO,))
        + bytes((PROTO_VERSION, 1, 14, 0, 1))
        + rng.randbytes(rng.randrange(8, 200))
    )


def _safe_endpoint(rng: random.Random) -> InetAddress:
    host = SAFE_ENDPOINTS.network_address + rng.randrange(1, SAFE_ENDPOINTS.num_addresses - 1)
    return InetAddress(ipaddress.IPv4Address(host), rng.choice((9993, rng.randrange(1, 65536))))


def verb_payload(rng: random.Random, verb: int, me: Identity, real_nwid: int,
                 controller: int) -> bytes:  # fmt: skip
    """A plausible plaintext payload for ``verb`` (before mutation)."""
    if verb in (Verb.OK, Verb.ERROR):
        return in_re_payload(rng.choice(list(Verb)), rng.getrandbits(64)) + rng.randbytes(
            rng.randrange(0, 200)
        )
    if verb == Verb.HELLO:  # §6.2 fields; the moon count left plain (mutation garbles it)
        return (bytes((PROTO_VERSION, *VERSION[:2])) + VERSION[2].to_bytes(2, "big")
                + rng.getrandbits(63).to_bytes(8, "big") + me.serialize(False)
                + serialize_inet(_safe_endpoint(rng)) + rng.randbytes(16) + bytes(2))  # fmt: skip
    if verb == Verb.WHOIS:
        return whois_payload(rng, rng.randrange(1, 20))
    if verb == Verb.RENDEZVOUS:
        return Rendezvous(Address(rng.randrange(1, 0xFF00000000)), _safe_endpoint(rng),
                          rng.getrandbits(8)).serialize()  # fmt: skip
    if verb in (Verb.FRAME, Verb.EXT_FRAME):
        nwid = rng.choice((real_nwid, rng.getrandbits(64)))
        body = nwid.to_bytes(8, "big")
        if verb == Verb.EXT_FRAME:
            body += bytes((rng.getrandbits(8),)) + rng.randbytes(12)
        return (
            body
            + rng.choice((0x0800, 0x0806, 0x86DD)).to_bytes(2, "big")
            + rng.randbytes(rng.randrange(0, 300))
        )
    if verb == Verb.MULTICAST_LIKE:
        return multicast_like_payload(rng, rng.randrange(1, 20))
    if verb == Verb.MULTICAST_GATHER:
        return gather_payload(rng, real_nwid)
    if verb == Verb.MULTICAST_FRAME:
        group = MulticastGroup(rng.choice((BROADCAST, rng.getrandbits(48))), rng.getrandbits(32))
        return serialize_multicast_frame(rng.choice((real_nwid, rng.getrandbits(64))),
                                         rng.getrandbits(8) & 0x0E, rng.randrange(0, 100),
                                         rng.getrandbits(48), group, 0x0806,
                                         rng.randbytes(rng.randrange(0, 100)))  # fmt: skip
    if verb == Verb.NETWORK_CONFIG_REQUEST:
        return config_request_payload(
            rng, rng.choice((real_nwid, random_config_nwid(rng, controller)))
        )
    if verb == Verb.PUSH_DIRECT_PATHS:
        pushed = serialize_push_direct_paths(
            [_safe_endpoint(rng) for _ in range(rng.randrange(1, 6))]
        )
        records = bytearray(pushed[0])
        for i in range(int.from_bytes(records[:2], "big")):  # random flags, addresses untouched
            records[2 + i * 11] = rng.getrandbits(8)
        return bytes(records)
    return rng.randbytes(rng.randrange(0, 400))  # ECHO, NETWORK_*, USER_MESSAGE, unknown


def mutate(rng: random.Random, data: bytes) -> bytes:
    """Flip, overwrite, insert or cut a few bytes (at least one change)."""
    out = bytearray(data)
    for _ in range(rng.randrange(1, 6)):
        op = rng.randrange(4)
        pos = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[min(pos, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and out:
            out[min(pos, len(out) - 1)] = rng.choice((0, 0xFF, rng.getrandbits(8)))
        elif op == 2:
            out[pos:pos] = rng.randbytes(rng.randrange(1, 16))
        else:
            del out[pos:]
    return bytes(out)


MUTATED_VERBS = [int(v) for v in Verb] + [0x11, 0x1F]
UNMUTATED = (Verb.RENDEZVOUS, Verb.PUSH_DIRECT_PATHS)  # their endpoints must stay in the lab


def mutated_packet(rng: random.Random, me: Identity, key: PeerKey, target: int,
                   real_nwid: int, controller: int,
                   verbs: list[int] = MUTATED_VERBS) -> bytes:  # fmt: skip
    """A correctly armored packet of a random verb (of ``verbs``) whose plaintext payload
    is mutated."""
    verb = rng.choice(verbs)
    payload = verb_payload(rng, verb, me, real_nwid, controller)
    if verb not in UNMUTATED:
        payload = mutate(rng, payload)[:1300]
    packet = build_packet(rng.randbytes(8), target, int(me.address), verb, payload)
    if verb == Verb.HELLO:
        suite = SUITE_POLY1305_NONE  # as HELLO is always sent
    else:
        suite = rng.choice((SUITE_POLY1305_NONE, SUITE_POLY1305_SALSA2012, SUITE_AES_GMAC_SIV))
    armor(packet, key, suite)
    return bytes(packet)


# --------------------------------------------------------------------------- UDP attacks


@dataclass
class UdpContext:
    """What an attack generator needs; ``sockets[i]`` is bound to ``sources[i]``."""

    rng: random.Random
    target: Identity
    endpoint: InetAddress
    pool: list[Identity]
    sockets: list[socket.socket]
    real_nwid: int
    controller: int
    verbs: list[int] = field(default_factory=list)  # mutated: only these verbs
    keys: dict[int, PeerKey] = field(default_factory=dict)
    replies: int = 0
    introduced: int = 0

    def key(self, me: Identity) -> PeerKey:
        k = self.keys.get(int(me.address))
        if k is None:
            k = self.keys[int(me.address)] = PeerKey(me.agree(self.target))
        return k

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def drain(self) -> None:
        """Read (and count) whatever the target sent back, without waiting."""
        for s in self.sockets:
            for _ in range(1000):
                try:
                    s.recv(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                self.replies += 1

    def introduce(self, who: list[tuple[int, Identity]], deadline: float) -> set[int]:
        """HELLO from each (socket index, identity) until the target answers it (the
        per-/24 gate, or a backlog, may hold the first ones): every unanswered one again
        each second, until ``deadline``. The addresses answered."""
        answered: set[int] = set()
        target = int(self.target.address)
        last_round = 0.0
        while not _stop and time.monotonic() < deadline and len(answered) < len(who):
            if time.monotonic() - last_round >= 1.0:
                last_round = time.monotonic()
                for sock, me in who:
                    if int(me.address) not in answered:
                        with contextlib.suppress(BlockingIOError):
                            self.sockets[sock].sendto(hello_packet(
                                self.rng, me, self.key(me), target, self.endpoint,
                                self.now_ms()), self._to())  # fmt: skip
            ready, _, _ = select.select(self.sockets, [], [], 0.2)
            for s in ready:
                for _ in range(1000):
                    try:
                        data = s.recv(65535)
                    except OSError:
                        break
                    self.replies += 1
                    if len(data) >= 18 and int.from_bytes(data[13:18], "big") == target:
                        answered.add(int.from_bytes(data[8:13], "big"))
        self.introduced += len(answered)
        return answered

    def _to(self) -> tuple[str, int]:
        return str(self.endpoint.ip), self.endpoint.port


Generator = Iterator[tuple[int, bytes]]
"""(index of the socket to send from, datagram)."""


def _one_peer(ctx: UdpContext, index: int, deadline: float) -> tuple[Identity, PeerKey]:
    """The attack's one peer: HELLO first (for at most 10 s), then attack regardless."""
    me = ctx.pool[index % len(ctx.pool)]
    ctx.introduce([(0, me)], min(deadline, time.monotonic() + INTRODUCE_SECONDS))
    return me, ctx.key(me)


def gen_hello(ctx: UdpContext, spread: bool) -> Generator:
    t = int(ctx.target.address)
    i = 0
    while True:
        me = ctx.pool[i % len(ctx.pool)]
        sock = (i % len(ctx.sockets)) if spread else 0
        yield sock, hello_packet(ctx.rng, me, ctx.key(me), t, ctx.endpoint, ctx.now_ms())
        i += 1


def gen_hello_invalid(ctx: UdpContext) -> Generator:
    fakes = [fake_identity(ctx.rng) for _ in range(256)]
    t = int(ctx.target.address)
    i = 0
    while True:
        me = fakes[i % len(fakes)]
        yield i % len(ctx.sockets), hello_packet(ctx.rng, me, ctx.key(me), t, ctx.endpoint,
                                                 ctx.now_ms())  # fmt: skip
        i += 1


def gen_sealed(ctx: UdpContext, me: Identity, key: PeerKey, verb: int,
               payload: Callable[[], bytes]) -> Generator:  # fmt: skip
    t, a = int(ctx.target.address), int(me.address)
    while True:
        yield 0, sealed(ctx.rng, a, key, t, verb, payload())


def gen_config_real(ctx: UdpContext, deadline: float) -> Generator:
    """Every pool identity HELLOs from its own /24, then asks for the real network."""
    who = [(i % len(ctx.sockets), me) for i, me in enumerate(ctx.pool)]
    known = ctx.introduce(who, min(deadline, time.monotonic() + INTRODUCE_SECONDS))
    members = [(sock, me) for sock, me in who if int(me.address) in known] or who
    t = int(ctx.target.address)
    i = 0
    while True:
        sock, me = members[i % len(members)]
        yield sock, sealed(ctx.rng, int(me.address), ctx.key(me), t,
                           Verb.NETWORK_CONFIG_REQUEST,
                           config_request_payload(ctx.rng, ctx.real_nwid))  # fmt: skip
        i += 1


def generator_for(attack: str, ctx: UdpContext, deadline: float, peer_index: int) -> Generator:
    t = int(ctx.target.address)
    rng = ctx.rng
    if attack in ("hello", "hello-spread"):
        return gen_hello(ctx, spread=attack == "hello-spread")
    if attack == "hello-invalid":
        return gen_hello_invalid(ctx)
    if attack == "fragments":
        return ((0, orphan_fragment(rng, t)) for _ in iter(int, 1))
    if attack == "junk":
        return ((0, junk_datagram(rng, t)) for _ in iter(int, 1))
    if attack == "config-real":
        return gen_config_real(ctx, deadline)
    me, key = _one_peer(ctx, peer_index, deadline)
    if attack == "whois":
        return gen_sealed(ctx, me, key, Verb.WHOIS, lambda: whois_payload(rng))
    if attack == "multicast-like":
        return gen_sealed(ctx, me, key, Verb.MULTICAST_LIKE, lambda: multicast_like_payload(rng))
    if attack == "multicast-gather":
        return gen_sealed(ctx, me, key, Verb.MULTICAST_GATHER,
                          lambda: gather_payload(rng, ctx.real_nwid))  # fmt: skip
    if attack == "config-random":
        return gen_sealed(ctx, me, key, Verb.NETWORK_CONFIG_REQUEST,
                          lambda: config_request_payload(
                              rng, random_config_nwid(rng, ctx.controller)))  # fmt: skip
    if attack == "mutated":
        verbs = ctx.verbs or MUTATED_VERBS
        return ((0, mutated_packet(rng, me, key, t, ctx.real_nwid, ctx.controller, verbs))
                for _ in iter(int, 1))  # fmt: skip
    raise ValueError(f"unknown UDP attack {attack!r}")


def load_pool(path: str) -> list[Identity]:
    return [Identity.from_string(line) for line in Path(path).read_text().split() if line]


def run_udp(spec: dict[str, Any]) -> dict[str, Any]:
    """Send ``spec['attack']`` datagrams until ``seconds`` or ``max_count``; the tally."""
    target_ip = ipaddress.ip_address(spec["target_ip"])
    if target_ip not in SAFE_UDP:
        raise SystemExit(f"refusing UDP target {target_ip}: outside {SAFE_UDP}")
    start = time.monotonic()
    deadline = start + float(spec["seconds"])
    sockets = []
    for source in spec["sources"]:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((source, 0))
        s.setblocking(False)
        sockets.append(s)
    ctx = UdpContext(random.Random(spec["seed"]), Identity.from_string(spec["target_identity"]),
                     InetAddress(target_ip, int(spec["target_port"])),
                     load_pool(spec["pool"]), sockets, int(spec["nwid"], 16),
                     int(spec["controller"], 16), list(spec.get("verbs", [])))  # fmt: skip
    to = ctx._to()
    gen = generator_for(spec["attack"], ctx, deadline, int(spec["peer_index"]))
    setup = time.monotonic() - start
    sent = nbytes = dropped = 0
    max_count = int(spec["max_count"])
    exhausted = False
    while sent < max_count and not _stop and time.monotonic() < deadline and not exhausted:
        for _ in range(64):
            item = next(gen, None)
            if item is None:
                exhausted = True
                break
            sock, data = item
            try:
                sockets[sock].sendto(data, to)
            except OSError as e:  # a full socket buffer: wait for room, count the loss
                if e.errno not in (errno.EAGAIN, errno.ENOBUFS):
                    raise
                dropped += 1
                select.select([], [sockets[sock]], [], 0.01)
                continue
            sent += 1
            nbytes += len(data)
        ctx.drain()
    ctx.drain()
    for s in sockets:
        s.close()
    return {"sent": sent, "bytes": nbytes, "send_dropped": dropped, "replies": ctx.replies,
            "introduced": ctx.introduced, "setup_s": round(setup, 2),
            "elapsed_s": round(time.monotonic() - start, 2)}  # fmt: skip


# --------------------------------------------------------------------------- API attacks

STATUS_REQUEST = b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
PIPELINE_BUDGET = 4_450_000  # bytes per connection, as measured in issue 11
PIPELINE_CONNECTIONS = 64
HELD_CONNECTIONS = 256
BADTOKEN_CLIENTS = 8


@dataclass
class ApiTally:
    requests: int = 0
    opened: int = 0
    refused: int = 0
    shed: int = 0
    bytes: int = 0
    answers: dict[str, int] = field(default_factory=dict)


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _open(port: int, tally: ApiTally) -> Connection | None:
    try:
        pair = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    except (OSError, TimeoutError):
        tally.refused += 1
        await asyncio.sleep(0.01)
        return None
    tally.opened += 1
    return pair


async def _hold(port: int, tally: ApiTally, deadline: float, max_opens: int,
                trickle: bool) -> None:  # fmt: skip
    """One connection slot: open, send nothing (or a header line a second), reopen when shed."""
    while not _stop and time.monotonic() < deadline and tally.opened < max_opens:
        pair = await _open(port, tally)
        if pair is None:
            continue
        reader, writer = pair
        shed = False
        try:
            if trickle:
                writer.write(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                tally.bytes += 40
            while not shed and not _stop and time.monotonic() < deadline:
                try:
                    data = await asyncio.wait_for(reader.read(4096), 1.0)
                except TimeoutError:
                    if trickle:
                        writer.write(b"X-Slow: 1\r\n")
                        tally.bytes += 11
                    continue
                shed = not data  # EOF: the server closed it
        except OSError:
            shed = True
        finally:
            writer.close()
        tally.shed += shed


async def _pipeline(port: int, tally: ApiTally, deadline: float, max_opens: int) -> None:
    chunk = STATUS_REQUEST * (65536 // len(STATUS_REQUEST))
    while not _stop and time.monotonic() < deadline and tally.opened < max_opens:
        pair = await _open(port, tally)
        if pair is None:
            continue
        _, writer = pair
        written = 0
        try:
            while not _stop and time.monotonic() < deadline and written < PIPELINE_BUDGET:
                writer.write(chunk)
                try:
                    await asyncio.wait_for(writer.drain(), 0.5)
                except TimeoutError:
                    continue  # the server is not reading: keep the backlog, check the clock
                written += len(chunk)
                tally.bytes += len(chunk)
                tally.requests += len(chunk) // len(STATUS_REQUEST)
            while not _stop and time.monotonic() < deadline:  # budget spent: hold it open
                await asyncio.sleep(0.5)
        except OSError:
            tally.shed += 1
        finally:
            writer.close()


async def _badtoken(port: int, tally: ApiTally, deadline: float, max_requests: int,
                    rng: random.Random) -> None:  # fmt: skip
    while not _stop and time.monotonic() < deadline and tally.requests < max_requests:
        pair = await _open(port, tally)
        if pair is None:
            continue
        reader, writer = pair
        token = rng.randbytes(12).hex()
        try:
            writer.write(f"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-ZT1-Auth: {token}\r\n"
                         "Connection: close\r\n\r\n".encode())  # fmt: skip
            tally.requests += 1
            head = await asyncio.wait_for(reader.read(64), 2.0)
            code = head.split(b" ")[1].decode() if head.startswith(b"HTTP/") else "none"
            tally.answers[code] = tally.answers.get(code, 0) + 1
        except (OSError, TimeoutError, IndexError):
            tally.answers["timeout/reset"] = tally.answers.get("timeout/reset", 0) + 1
        finally:
            writer.close()


async def _run_api(spec: dict[str, Any]) -> dict[str, Any]:
    port = int(spec["port"])
    start = time.monotonic()
    deadline = start + float(spec["seconds"])
    max_count = int(spec["max_count"])
    tally = ApiTally()
    attack = spec["attack"]
    rng = random.Random(spec["seed"])
    if attack in ("api-idle", "api-slowloris"):
        tasks = [_hold(port, tally, deadline, max_count, attack == "api-slowloris")
                 for _ in range(HELD_CONNECTIONS)]  # fmt: skip
    elif attack == "api-pipeline":
        tasks = [_pipeline(port, tally, deadline, max_count) for _ in range(PIPELINE_CONNECTIONS)]
    elif attack == "api-badtoken":
        tasks = [_badtoken(port, tally, deadline, max_count, rng) for _ in range(BADTOKEN_CLIENTS)]
    else:
        raise ValueError(f"unknown API attack {attack!r}")
    await asyncio.wait_for(asyncio.gather(*tasks), float(spec["seconds"]) + 15)
    sent = tally.requests if attack in ("api-pipeline", "api-badtoken") else tally.opened
    return {"sent": sent, "opened": tally.opened, "refused": tally.refused, "shed": tally.shed,
            "bytes": tally.bytes, "answers": tally.answers,
            "elapsed_s": round(time.monotonic() - start, 2)}  # fmt: skip


def run_api(spec: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_run_api(spec))


# ------------------------------------------------------------------------ the /status probe


def run_probe(spec: dict[str, Any]) -> dict[str, Any]:
    """An authorized ``GET /status`` on a new connection every ``interval`` s (as a CLI
    would); latency of each in ms, failures by kind."""
    start = time.monotonic()
    deadline = start + float(spec["seconds"])
    until_ms = spec.get("until_ms")  # stop at the first answer this fast (recovery check)
    latencies: list[float] = []
    failures: dict[str, int] = {}
    for _ in range(int(spec["max_count"])):
        if _stop or time.monotonic() >= deadline:
            break
        t0 = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", int(spec["port"]),
                                          timeout=float(spec["timeout"]))  # fmt: skip
        try:
            conn.request("GET", "/status", headers={"X-ZT1-Auth": spec["token"]})
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                latencies.append((time.monotonic() - t0) * 1000)
                if until_ms is not None and latencies[-1] < float(until_ms):
                    break
            else:
                failures[str(response.status)] = failures.get(str(response.status), 0) + 1
        except (OSError, http.client.HTTPException) as e:
            kind = type(e).__name__
            failures[kind] = failures.get(kind, 0) + 1
        finally:
            conn.close()
        time.sleep(max(0.0, float(spec["interval"]) - (time.monotonic() - t0)))
    since = float(spec.get("since", time.time() - (time.monotonic() - start)))  # wall clock
    return {"latencies_ms": [round(x, 2) for x in latencies], "failures": failures,
            "elapsed_s": round(time.time() - since, 2)}  # fmt: skip


RUNNERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "udp": run_udp,
    "api": run_api,
    "probe": run_probe,
}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in RUNNERS:
        print("usage: abuse_worker.py udp|api|probe SPEC.json", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    spec = json.loads(Path(argv[1]).read_text())
    print(json.dumps(RUNNERS[argv[0]](spec)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
