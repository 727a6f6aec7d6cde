"""Simulated peers of a ztone root, for bench/root.py: one process, many peers.

``python3 bench/root_worker.py <spec.json>`` (started by bench/root.py inside a
namespace with ``ip netns exec``) owns a share of the cached identities and of the
namespace's source addresses. Every peer has its own valid identity (proof of work),
its own UDP socket (its own source address and port) and its own key with the root,
and builds its packets with ztone's wire codecs and crypto, as any ZeroTier node would.

It reads one command per line (JSON) on stdin and answers each with one JSON line on
stdout; every command is bounded in time (its ``seconds``) and in count:

``join``      make the next ``count`` peers and HELLO each until the root answers
              (OK(HELLO)); at most ``rate`` new HELLOs a second from this process, at most
              one per source /24 per 2.1 s (the root's per-/24 identity gate, §6.2.2),
              an unanswered HELLO again after 6 s.
``steady``    the traffic a 1.14.1 leaf sends its root, for ``seconds``: a full HELLO
              every ``period`` (224 s: ``ZT_PATH_HEARTBEAT_PERIOD`` x
              ``ZT_ROOT_PING_MULTIPLIER``, PROTOCOL-CORE §8.4), a WHOIS for another
              simulated peer once per period and one packet to another simulated peer
              through the root once per period (the root relays it and introduces both
              with RENDEZVOUS, §5.8, §8.8). The phases were spread uniformly over the
              period when each peer joined, so the root sees a steady rate.
``saturate``  the first ``peers`` peers each keep ``window`` HELLOs in flight: each
              OK(HELLO) is answered by the next HELLO from that peer, for ``seconds``.
``relay_send`` the first peer sends ``size``-byte FRAME packets to the peer ``to``
              through the root as fast as its socket takes them, for ``seconds``.
``relay_recv`` the first peer counts the relayed packets and bytes that reach it.
``stop``      close every socket and exit.
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import json
import os
import random
import resource
import select
import socket
import sys
import time
from typing import Any

from ztone.crypto.armor import SUITE_AES_GMAC_SIV, PeerKey, armor, dearmor
from ztone.node.wire.address import Address
from ztone.node.wire.hello import Hello, OkHello, make_hello_packet
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress
from ztone.node.wire.packet import (
    IDX_FLAGS,
    IDX_PAYLOAD,
    IDX_VERB,
    PROTO_VERSION,
    Verb,
    build_packet,
)
from ztone.node.wire.verbs import in_re_payload

VERSION = (1, 14, 1)
GATE_ROUND = 2.1  # seconds: the root validates one new identity per /24 per 2 s
JOIN_RESEND = 6.0
FLAG_COMPRESSED = 0x80


def answer_to_root(data: bytes, key: PeerKey, me: int, root: int, root_endpoint: InetAddress,
                   packet_id: bytes) -> bytes | None:  # fmt: skip
    """The OK a node sends for the root's HELLO (the root confirms a new path with one,
    §8.2) or ECHO; None when ``data`` is neither (or its MAC is wrong)."""
    if len(data) <= IDX_VERB or data[13:18] != root.to_bytes(5, "big"):
        return None
    suite = (data[IDX_FLAGS] >> 3) & 7
    packet = bytearray(data)
    if suite == 0 and data[IDX_VERB] & 0x1F == Verb.HELLO and len(data) >= 41:
        if not dearmor(packet, key):
            return None
        ok = OkHello(int.from_bytes(packet[33:41], "big"), PROTO_VERSION, VERSION,
                     root_endpoint, b"")  # fmt: skip
        payload = in_re_payload(Verb.HELLO, int.from_bytes(packet[0:8], "big")) + ok.serialize()
    elif suite != 0:
        if not dearmor(packet, key) or packet[IDX_VERB] & 0x1F != Verb.ECHO:
            return None
        payload = in_re_payload(Verb.ECHO, int.from_bytes(packet[0:8], "big")) + bytes(
            packet[IDX_PAYLOAD:]
        )
    else:
        return None
    reply = build_packet(packet_id, root, me, Verb.OK, payload)
    armor(reply, key, SUITE_AES_GMAC_SIV)
    return bytes(reply)


def hello_to_root(me: Identity, key: PeerKey, root: int, root_endpoint: InetAddress,
                  now_ms: int, packet_id: bytes) -> bytes:  # fmt: skip
    """A full HELLO as a 1.14.1 leaf sends it to its root (suite 0, §6.2)."""
    hello = Hello(PROTO_VERSION, VERSION, now_ms, me.public_only(), root_endpoint, 0, 0)
    return make_hello_packet(packet_id, Address(root), key, hello)


class SimPeer:
    __slots__ = ("address", "identity", "key", "partner", "partner_key", "sock", "source")

    def __init__(self, identity: Identity, key: PeerKey, sock: socket.socket, source: int) -> None:
        self.identity = identity
        self.address = int(identity.address)
        self.key = key
        self.sock = sock
        self.source = source  # index of the source address (its /24)
        self.partner = 0
        self.partner_key: PeerKey | None = None


class Worker:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.root = Identity.from_string(spec["root"])
        self.root_addr = int(self.root.address)
        self.to = (spec["root_ip"], int(spec["root_port"]))
        self.endpoint = InetAddress(ipaddress.ip_address(spec["root_ip"]), int(spec["root_port"]))
        self.secrets: list[str] = spec["identities"]
        self.sources: list[str] = spec["sources"]
        self.rng = random.Random(spec.get("seed", 1))
        self.peers: list[SimPeer] = []
        self.by_fd: dict[int, SimPeer] = {}
        self.epoll = select.epoll()
        self.due: list[tuple[float, int, int]] = []  # (time, peer index, kind)
        self.period = float(spec.get("period", 224.0))

    # -------------------------------------------------------------- packets

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def hello(self, peer: SimPeer) -> bytes:
        return hello_to_root(peer.identity, peer.key, self.root_addr, self.endpoint,
                             self.now_ms(), self.rng.randbytes(8))  # fmt: skip

    def sealed(self, src: int, dst: int, key: PeerKey, verb: int, payload: bytes) -> bytes:
        packet = build_packet(self.rng.randbytes(8), dst, src, verb, payload)
        armor(packet, key, SUITE_AES_GMAC_SIV)
        return bytes(packet)

    def send(self, peer: SimPeer, data: bytes) -> bool:
        try:
            peer.sock.sendto(data, self.to)
        except (BlockingIOError, InterruptedError):
            return False
        return True

    def classify(self, peer: SimPeer, data: bytes) -> str:
        """What the root sent this peer: ok_hello, ok_whois, rendezvous, relayed, ..."""
        if len(data) < IDX_PAYLOAD:
            return "short"
        if data[13:18] != self.root_addr.to_bytes(5, "big"):
            return "relayed"
        packet = bytearray(data)
        if not dearmor(packet, peer.key):
            return "bad_mac"
        verb = packet[IDX_VERB] & 0x1F
        if verb == Verb.OK:
            if packet[IDX_VERB] & FLAG_COMPRESSED or len(packet) <= IDX_PAYLOAD:
                return "ok_other"
            in_re = packet[IDX_PAYLOAD]
            if in_re == Verb.HELLO:
                return "ok_hello"
            return "ok_whois" if in_re == Verb.WHOIS else "ok_other"
        if verb == Verb.RENDEZVOUS:
            return "rendezvous"
        if verb == Verb.ERROR:
            return "error"
        return f"verb_{verb}"

    def answer_root(self, peer: SimPeer, data: bytes) -> bool:
        """The root's HELLO or ECHO to this peer answered (True), else False."""
        reply = answer_to_root(data, peer.key, peer.address, self.root_addr, self.endpoint,
                               self.rng.randbytes(8))  # fmt: skip
        if reply is None:
            return False
        self.send(peer, reply)
        return True

    def receive(self, timeout: float, tally: dict[str, int] | None,
                on_packet: Any = None) -> None:  # fmt: skip
        """Read what is waiting (up to ``timeout`` for the first), count it by kind."""
        for fd, _ in self.epoll.poll(timeout, 4096):
            peer = self.by_fd[fd]
            for _ in range(256):
                try:
                    data = peer.sock.recv(2048)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                if self.answer_root(peer, data):
                    if tally is not None:
                        plain_hello = not (data[IDX_FLAGS] >> 3) & 7  # suite 0: a HELLO
                        kind = "root_hello" if plain_hello else "root_echo"
                        tally[kind] = tally.get(kind, 0) + 1
                    continue
                if on_packet is not None:
                    on_packet(peer, data)
                elif tally is not None:
                    kind = self.classify(peer, data)
                    tally[kind] = tally.get(kind, 0) + 1

    # -------------------------------------------------------------- commands

    def join(self, count: int, seconds: float, rate: float) -> dict[str, Any]:
        start = time.monotonic()
        deadline = start + seconds
        first = len(self.peers)
        last = min(len(self.secrets), first + count)
        new: list[SimPeer] = []
        for i in range(first, last):
            me = Identity.from_string(self.secrets[i])
            source = i % len(self.sources)
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind((self.sources[source], 0))
            peer = SimPeer(me, PeerKey(me.agree(self.root)), sock, source)
            self.peers.append(peer)
            self.by_fd[sock.fileno()] = peer
            self.epoll.register(sock.fileno(), select.EPOLLIN)
            new.append(peer)
        for i, peer in enumerate(new):  # a fixed partner for the relayed packets
            other = new[(i + 1) % len(new)]
            if other is not peer:
                peer.partner = other.address
                peer.partner_key = PeerKey(peer.identity.agree(other.identity))
        pending = {p.address: p for p in new}
        index = {p.address: first + k for k, p in enumerate(new)}
        sent_at: dict[int, float] = {}
        answered: set[int] = set()

        def schedule(idx: int) -> None:
            # A leaf keeps its schedule from the moment it is in: a join longer than
            # the root's peer expiry (10 min at 50,000 peers) must not let the first
            # ones fall silent and be forgotten.
            now = time.monotonic()
            for kind in (0, 1, 2):  # phases spread over the period from now on
                heapq.heappush(self.due, (now + self.rng.uniform(0, self.period), idx, kind))

        def on_packet(peer: SimPeer, data: bytes) -> None:
            if peer.address in pending and self.classify(peer, data) == "ok_hello":
                answered.add(peer.address)
                del pending[peer.address]
                schedule(index[peer.address])

        per_round = max(1, int(rate * GATE_ROUND))
        next_round = 0.0
        hellos = 0
        steady_sent = {"hello": 0, "whois": 0, "relay": 0}
        while pending and time.monotonic() < deadline:
            self.run_due(steady_sent)  # the peers already joined keep their schedule
            now = time.monotonic()
            if now >= next_round:
                next_round = now + GATE_ROUND
                used: set[int] = set()
                for peer in list(pending.values()):
                    if len(used) >= per_round:
                        break
                    if peer.source in used or now - sent_at.get(peer.address, -1e9) < JOIN_RESEND:
                        continue
                    used.add(peer.source)
                    sent_at[peer.address] = now
                    self.send(peer, self.hello(peer))
                    hellos += 1
            self.receive(min(0.2, max(0.0, next_round - time.monotonic())), None, on_packet)
        elapsed = time.monotonic() - start
        for address in pending:  # never answered: they keep trying on the same schedule
            schedule(index[address])
        return {"joined": len(answered), "failed": len(pending), "hellos": hellos,
                "seconds": round(elapsed, 2), "peers": len(self.peers)}  # fmt: skip

    def run_due(self, sent: dict[str, int]) -> None:
        """Send what is due: each peer's HELLO (kind 0), WHOIS (1) and relayed packet (2),
        once per period on a fixed grid (a beat missed while this process did something
        else is skipped, not caught up: the rate stays the period's)."""
        now = time.monotonic()
        n = len(self.peers)
        while self.due and self.due[0][0] <= now:
            due, idx, kind = heapq.heappop(self.due)
            late = now - due
            heapq.heappush(
                self.due, (due + self.period * (int(late // self.period) + 1), idx, kind)
            )
            if late > 1.0:
                continue
            peer = self.peers[idx]
            if kind == 0:
                self.send(peer, self.hello(peer))
                sent["hello"] += 1
            elif kind == 1 and n > 1:
                target = self.peers[(idx + 1 + self.rng.randrange(n - 1)) % n].address
                self.send(peer, self.sealed(peer.address, self.root_addr, peer.key,
                                            Verb.WHOIS, target.to_bytes(5, "big")))  # fmt: skip
                sent["whois"] += 1
            elif kind == 2 and peer.partner_key is not None:
                payload = self.rng.randbytes(8) + b"\x08\x00" + bytes(40)  # a FRAME
                self.send(peer, self.sealed(peer.address, peer.partner, peer.partner_key,
                                            Verb.FRAME, payload))  # fmt: skip
                sent["relay"] += 1

    def steady(self, seconds: float) -> dict[str, Any]:
        """The leaves' traffic to their root (``run_due``) for ``seconds``, and what came back."""
        tally: dict[str, int] = {}
        sent = {"hello": 0, "whois": 0, "relay": 0}
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.run_due(sent)
            wait = (self.due[0][0] - time.monotonic()) if self.due else 0.2
            self.receive(min(0.2, max(0.0, wait), max(0.0, end - time.monotonic())), tally)
        self.receive(0.5, tally)
        return {"sent": sent, "received": tally}

    def saturate(self, seconds: float, count: int, window: int) -> dict[str, Any]:
        """Closed loop: every OK(HELLO) is answered by the next HELLO from that peer."""
        peers = self.peers[:count]
        root = self.root_addr.to_bytes(5, "big")
        answers = [0]
        sent_one = [0]
        sent = 0
        stamp: dict[int, float] = {}

        def on_packet(peer: SimPeer, data: bytes) -> None:
            # Only OK(HELLO)s come back in this phase; one in 64 is checked for it.
            if data[13:18] != root:
                return
            if answers[0] % 64 == 0 and self.classify(peer, data) != "ok_hello":
                return
            answers[0] += 1
            stamp[peer.address] = time.monotonic()
            sent_one[0] += self.send(peer, self.hello(peer))

        for peer in peers:
            for _ in range(window):
                sent += self.send(peer, self.hello(peer))
        start = time.monotonic()
        end = start + seconds
        mark = answers[0]
        while time.monotonic() < end:
            self.receive(0.1, None, on_packet)
            now = time.monotonic()
            for peer in peers:  # a HELLO lost (full queue): refill after a quiet second
                if now - stamp.get(peer.address, start) > 1.0:
                    stamp[peer.address] = now
                    sent += self.send(peer, self.hello(peer))
        elapsed = time.monotonic() - start
        got = answers[0] - mark
        sent += sent_one[0]
        self.receive(0.5, None, lambda p, d: None)  # drain the stragglers
        return {"answers": got, "sent": sent, "seconds": round(elapsed, 3),
                "per_second": got / elapsed}  # fmt: skip

    def relay_send(self, seconds: float, to: str, size: int, count: int) -> dict[str, Any]:
        peer = self.peers[0]
        dest = Identity.from_string(to)
        key = PeerKey(peer.identity.agree(dest))
        # A ``size``-byte datagram: the 28-byte header, network id, ethertype, frame data.
        frame = self.sealed(peer.address, int(dest.address), key, Verb.FRAME,
                            bytes(8) + b"\x08\x00" + os.urandom(max(0, size - 38)))  # fmt: skip
        sent = dropped = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end and sent < count:
            for _ in range(64):
                if self.send(peer, frame):
                    sent += 1
                else:
                    dropped += 1
                    time.sleep(0.0002)
            self.receive(0.0, None, lambda p, d: None)
        return {"sent": sent, "send_would_block": dropped, "bytes": len(frame)}

    def relay_recv(self, seconds: float) -> dict[str, Any]:
        peer = self.peers[0]
        got = {"packets": 0, "bytes": 0, "first": 0.0, "last": 0.0}

        def on_packet(p: SimPeer, data: bytes) -> None:
            if p is peer and data[13:18] != self.root_addr.to_bytes(5, "big"):
                now = time.monotonic()
                if not got["packets"]:
                    got["first"] = now
                got["last"] = now
                got["packets"] += 1
                got["bytes"] += len(data)

        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.receive(0.1, None, on_packet)
        span = got["last"] - got["first"]
        return {"packets": got["packets"], "bytes": got["bytes"], "span": round(span, 3)}

    def close(self) -> None:
        for peer in self.peers:
            with contextlib.suppress(OSError):
                peer.sock.close()
        self.epoll.close()


def main(argv: list[str]) -> int:
    with open(argv[0]) as f:
        spec = json.load(f)
    # One socket per simulated peer: 25,000 for 50,000 peers on two workers, over the
    # usual hard limit (often 20,000 or less), which root may raise.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = len(spec["identities"]) + 64
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            if hard < want:
                print(f"root_worker: {want} file descriptors needed, the hard limit is "
                      f"{hard}: raise it (ulimit -Hn, as root) or use more --workers",
                      file=sys.stderr)  # fmt: skip
                return 2
    worker = Worker(spec)
    try:
        for line in sys.stdin:
            cmd = json.loads(line)
            op = cmd.get("cmd")
            seconds = min(float(cmd.get("seconds", 10)), 3600.0)
            if op == "join":
                out = worker.join(int(cmd["count"]), seconds, float(cmd.get("rate", 25)))
            elif op == "steady":
                out = worker.steady(seconds)
            elif op == "saturate":
                out = worker.saturate(
                    seconds, int(cmd.get("peers", 100)), int(cmd.get("window", 2))
                )
            elif op == "relay_send":
                out = worker.relay_send(seconds, cmd["to"], int(cmd.get("size", 1400)),
                                        int(cmd.get("count", 10_000_000)))  # fmt: skip
            elif op == "relay_recv":
                out = worker.relay_recv(seconds)
            elif op == "identity":
                out = {"public": worker.peers[0].identity.public_only().to_string()}
            elif op == "stop":
                break
            else:
                out = {"error": f"unknown command {op!r}"}
            print(json.dumps(out), flush=True)
    finally:
        worker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
