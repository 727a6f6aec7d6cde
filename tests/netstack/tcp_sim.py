"""Two TCP connections joined by a simulated link on a virtual clock.

The link can drop, duplicate, reorder and delay segments, all decided by a seeded
``random.Random``; every run is bounded in steps and virtual time. Segments cross as
bytes (``build_tcp`` then ``parse_tcp``) unless ``wire=False``, so the codec is in the
loop too. A SYN reaching the server side while it has no connection is accepted
(``TcpConnection.accept``), anything else to nobody is answered by ``reset_for``.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ztone.netstack.tcp import TcpConnection, TcpState
from ztone.netstack.tcp_limits import TcpLimits
from ztone.netstack.tcp_segment import RST, SYN, TcpSegment, build_tcp, parse_tcp, reset_for

CLIENT_IP4 = bytes([198, 18, 0, 1])
SERVER_IP4 = bytes([198, 18, 0, 2])
CLIENT_IP6 = bytes.fromhex("fd00000000000000000000000000000a")
SERVER_IP6 = bytes.fromhex("fd00000000000000000000000000000b")
CLIENT_PORT = 40000
SERVER_PORT = 80


@dataclass
class Link:
    """One direction's behaviour: each segment is dropped with ``loss``, duplicated with
    ``dup``, and with ``reorder`` held back by up to ``reorder_delay`` extra seconds."""

    delay: float = 0.005
    loss: float = 0.0
    dup: float = 0.0
    reorder: float = 0.0
    reorder_delay: float = 0.02
    drop: Callable[[TcpSegment, bool], bool] | None = None
    """Drops a segment (towards the server when the flag is set) when it answers True."""


@dataclass
class Sim:
    seed: int = 1
    link: Link = field(default_factory=Link)
    limits: TcpLimits = field(default_factory=TcpLimits)
    server_limits: TcpLimits | None = None
    mss: int = 1400
    client_iss: int = 1000
    server_iss: int = 5000
    v6: bool = False
    wire: bool = True
    listening: bool = True
    now: float = 0.0
    steps: int = 0
    client: TcpConnection = field(init=False)
    server: TcpConnection | None = field(init=False, default=None)
    log: list[tuple[float, bool, TcpSegment]] = field(init=False, default_factory=list)
    """Every segment put on the link: (time, towards the server, segment)."""
    dropped: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.client_ip = CLIENT_IP6 if self.v6 else CLIENT_IP4
        self.server_ip = SERVER_IP6 if self.v6 else SERVER_IP4
        self.client = TcpConnection.connect(self.client_ip, CLIENT_PORT, self.server_ip,
                                            SERVER_PORT, mss=self.mss, iss=self.client_iss,
                                            now=self.now, limits=self.limits)  # fmt: skip
        self._queue: list[tuple[float, int, bool, TcpSegment]] = []
        self._count = 0
        self.resets_sent = 0

    def transmit(self, seg: TcpSegment, to_server: bool) -> None:
        self.log.append((self.now, to_server, seg))
        if self.wire:
            src, dst = ((self.client_ip, self.server_ip) if to_server
                        else (self.server_ip, self.client_ip))  # fmt: skip
            seg = parse_tcp(build_tcp(seg, src, dst), src, dst)
        link, rng = self.link, self.rng
        if (link.loss and rng.random() < link.loss) or (link.drop and link.drop(seg, to_server)):
            self.dropped += 1
            return
        t = self.now + link.delay
        if link.reorder and rng.random() < link.reorder:
            t += rng.random() * link.reorder_delay
        self._push(t, to_server, seg)
        if link.dup and rng.random() < link.dup:
            self._push(t + rng.random() * link.delay, to_server, seg)

    def _push(self, t: float, to_server: bool, seg: TcpSegment) -> None:
        self._count += 1
        heapq.heappush(self._queue, (t, self._count, to_server, seg))

    def _deliver(self, to_server: bool, seg: TcpSegment) -> None:
        if not to_server:
            if self.client.closed:  # as the stack does for a segment to no connection
                rst = reset_for(seg)
                if rst is not None:
                    self.transmit(rst, True)
                return
            self.client.receive(seg, self.now)
            return
        if self.server is None or self.server.closed:
            if self.listening and seg.flags & (SYN | RST) == SYN and not seg.flags & 0x10:
                limits = self.server_limits or self.limits
                self.server = TcpConnection.accept(seg, self.server_ip, self.client_ip,
                                                   mss=self.mss, iss=self.server_iss,
                                                   now=self.now, limits=limits)  # fmt: skip
                return
            rst = reset_for(seg)
            if rst is not None:
                self.resets_sent += 1
                self.transmit(rst, False)
            return
        self.server.receive(seg, self.now)

    def conns(self) -> list[tuple[TcpConnection, bool]]:
        out = [(self.client, True)]
        if self.server is not None:
            out.append((self.server, False))
        return out

    def step(self) -> bool:
        """Advance to the next event (a delivery or a deadline); False when none is left."""
        times = [self._queue[0][0]] if self._queue else []
        for conn, _ in self.conns():
            d = conn.deadline()
            if d is not None:
                times.append(d)
        if not times:
            return False
        self.now = max(self.now, min(times))
        self.steps += 1
        while self._queue and self._queue[0][0] <= self.now:
            _, _, to_server, seg = heapq.heappop(self._queue)
            self._deliver(to_server, seg)
        self.flush()
        return True

    def flush(self) -> None:
        """Poll both ends at the current time and put what they send on the link."""
        for conn, to_server in self.conns():
            for seg in conn.poll(self.now):
                self.transmit(seg, to_server)

    def run(self, until: Callable[[], bool], *, app: Callable[[Sim], None] | None = None,
            max_steps: int = 400_000, max_time: float = 900.0) -> bool:  # fmt: skip
        """Step until ``until()`` (True) or the bounds (False); ``app`` runs before every
        step (the applications' side). With nothing pending, time passes in 0.1 s ticks
        while there is an ``app`` (it may be waiting for a time), else the run ends."""
        start = self.steps
        while not until():
            if self.steps - start >= max_steps or self.now >= max_time:
                return False
            if app is not None:
                app(self)
                self.flush()
                if until():
                    return True
            if not self.step():
                if app is None:
                    return until()
                self.now += 0.1  # idle: time passes for the applications
        return True


class Pump:
    """Pushes ``data`` into ``src`` and collects what ``dst`` receives, then half-closes
    ``src`` when ``close`` is set. ``read`` can be switched off (a receiver that stalls)."""

    def __init__(self, get_src: Callable[[], TcpConnection | None],
                 get_dst: Callable[[], TcpConnection | None], data: bytes,
                 *, close: bool = True) -> None:  # fmt: skip
        self.get_src = get_src
        self.get_dst = get_dst
        self.data = memoryview(data)
        self.offset = 0
        self.received = bytearray()
        self.close = close
        self.read = True
        self.shut = False

    def __call__(self, sim: Sim) -> None:
        src, dst = self.get_src(), self.get_dst()
        if src is not None and src.established and not self.shut:
            if self.offset < len(self.data):
                self.offset += src.send(self.data[self.offset :])
            if self.offset == len(self.data) and self.close:
                src.shutdown()
                self.shut = True
        if dst is not None and self.read:
            while dst.readable:
                self.received += dst.recv(1 << 20)

    def done(self) -> bool:
        dst = self.get_dst()
        return len(self.received) == len(self.data) and (
            not self.close or (dst is not None and dst.at_eof)
        )


def established(sim: Sim | None = None) -> tuple[Sim, TcpConnection]:
    """Run ``sim`` (a new one by default) until both ends are established."""
    sim = sim or Sim()
    assert sim.run(lambda: sim.client.established and sim.server is not None
                   and sim.server.established)  # fmt: skip
    assert sim.server is not None
    return sim, sim.server


def client_in(state: TcpState, limits: TcpLimits | None = None) -> tuple[Sim, TcpConnection]:
    """A client connection in ``state`` (the server is its peer)."""
    if state is TcpState.SYN_SENT:
        sim = Sim(limits=limits or TcpLimits())
        sim.flush()
        return sim, sim.client
    sim, server = established(Sim(limits=limits or TcpLimits()))
    client = sim.client
    if state is TcpState.ESTABLISHED:
        return sim, client
    if state is TcpState.FIN_WAIT_1:
        client.send(b"x" * 5000)
        client.shutdown()
        sim.flush()
    elif state is TcpState.FIN_WAIT_2:
        client.shutdown()
        assert sim.run(lambda: client.state is TcpState.FIN_WAIT_2)
    elif state is TcpState.CLOSE_WAIT:
        server.shutdown()
        assert sim.run(lambda: client.state is TcpState.CLOSE_WAIT)
    elif state is TcpState.CLOSING:
        client.shutdown()
        server.shutdown()
        sim.flush()
        assert sim.run(lambda: client.state is TcpState.CLOSING)
    elif state is TcpState.LAST_ACK:
        server.shutdown()
        assert sim.run(lambda: client.state is TcpState.CLOSE_WAIT)
        client.shutdown()
    elif state is TcpState.TIME_WAIT:
        client.shutdown()
        assert sim.run(lambda: client.state is TcpState.FIN_WAIT_2)
        server.shutdown()
        assert sim.run(lambda: client.state is TcpState.TIME_WAIT)
    assert client.state is state
    return sim, client
