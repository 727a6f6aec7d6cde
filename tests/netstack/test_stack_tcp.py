"""TCP through two Stacks on a virtual Ethernet segment (ARP/NDP, IP and the engine)."""

from __future__ import annotations

import hashlib
import ipaddress
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ztone.errors import LocalUsageError
from ztone.netstack import arp
from ztone.netstack.ethernet import ETHERTYPE_IPV4
from ztone.netstack.ipv4 import PROTO_TCP, build_ipv4, parse_ipv4
from ztone.netstack.stack import Stack, StackLimits
from ztone.netstack.tcp_segment import RST, SYN, TcpSegment, build_tcp, parse_tcp
from ztone.netstack.tcp_socket import TcpSocket

from .link import Segment
from .test_stack import IF_A4, IF_A6, IF_B4, IF_B6, MAC_A, MAC_B, make


def transfer(seg: Segment, src: TcpSocket, dst: TcpSocket, data: bytes) -> bytes:
    """Send ``data`` from ``src``, shut it down, read everything at ``dst``."""
    sent = 0
    got = bytearray()

    def done() -> bool:
        nonlocal sent
        if sent < len(data) and src.writable:
            sent += src.send(data[sent : sent + 65536])
            if sent == len(data):
                src.shutdown()
        while dst.readable:
            got.extend(dst.recv())
        return dst.at_eof

    seg.run(done, max_steps=400_000)
    return bytes(got)


def connected(v6: bool = False) -> tuple[Stack, Stack, Segment, TcpSocket, TcpSocket]:
    a = make(MAC_A, IF_A4, IF_A6, seed=1)
    b = make(MAC_B, IF_B4, IF_B6, seed=2)
    seg = Segment(a, b)
    listener = b.tcp_listen(80)
    client = a.tcp_connect(((IF_B6 if v6 else IF_B4).ip, 80), seg.now)
    seg.run(lambda: listener.readable > 0)
    server = listener.accept()
    assert server is not None
    seg.run(lambda: client.established)
    changed = b.changed()
    assert listener in changed and server in changed
    return a, b, seg, client, server


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_connect_transfer_both_ways_and_close(v6: bool) -> None:
    a, b, seg, client, server = connected(v6)
    assert client.remote == ((IF_B6 if v6 else IF_B4).ip, 80)
    assert server.local == ((IF_B6 if v6 else IF_B4).ip, 80)
    assert server.remote == client.local
    data = random.Random(3).randbytes(1 << 20)
    assert transfer(seg, client, server, data) == data
    back = random.Random(4).randbytes(300_000)
    assert transfer(seg, server, client, back) == back
    client.close()
    server.close()
    seg.run(lambda: a.tcp_connection_count == 0 and b.tcp_connection_count == 0)


@pytest.mark.parametrize(("loss", "reorder"), [(0.01, 0.05), (0.05, 0.1)])
def test_transfer_with_loss_and_reordering(loss: float, reorder: float) -> None:
    _a, _b, seg, client, server = connected(False)
    seg.loss, seg.reorder = loss, reorder
    data = random.Random(5).randbytes(1 << 20)
    got = transfer(seg, client, server, data)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert seg.dropped > 0


def test_mss_follows_the_mtu() -> None:
    a = make(MAC_A, IF_A4, IF_A6, seed=1)
    b = make(MAC_B, IF_B4, IF_B6, seed=2)
    seg = Segment(a, b)
    syns: list[tuple[int, int | None]] = []

    def tap(frame: tuple[int, int, int, bytes]) -> None:
        if frame[2] == ETHERTYPE_IPV4:
            pkt = parse_ipv4(frame[3])
            if pkt.protocol == PROTO_TCP:
                s = parse_tcp(pkt.payload, pkt.src, pkt.dst)
                if s.flags & SYN:
                    syns.append((s.src_port, s.mss))

    seg.taps.append(tap)
    b.tcp_listen(22)
    sock = a.tcp_connect((IF_B4.ip, 22), seg.now)
    seg.run(lambda: sock.established)
    assert {m for _, m in syns} == {2800 - 40}


def test_closed_port_is_refused_and_rst_counted() -> None:
    a = make(MAC_A, IF_A4, seed=1)
    b = make(MAC_B, IF_B4, seed=2)
    seg = Segment(a, b)
    sock = a.tcp_connect((IF_B4.ip, 81), seg.now)
    seg.run(lambda: sock.closed)
    assert sock.error == "connection refused"
    assert b.counters.tcp_resets_out == 1
    assert sock in a.changed()
    assert a.tcp_connection_count == 0


def test_abort_resets_the_peer() -> None:
    _a, _b, seg, client, server = connected()
    client.abort()
    seg.run(lambda: server.closed)
    assert server.error == "connection reset"


def test_simultaneous_close() -> None:
    a, b, seg, client, server = connected()
    client.shutdown()
    server.shutdown()
    seg.run(lambda: client.at_eof and server.at_eof)
    seg.run(lambda: a.tcp_connection_count == 0 and b.tcp_connection_count == 0)
    assert client.closed and server.closed and client.error is None


def test_connect_errors() -> None:
    a = make(MAC_A, IF_A4)
    with pytest.raises(LocalUsageError):
        a.tcp_connect((IF_B6.ip, 80), 0.0)  # no IPv6 address
    with pytest.raises(LocalUsageError):
        a.tcp_connect((ipaddress.IPv4Address("203.0.113.9"), 80), 0.0)  # no route
    with pytest.raises(LocalUsageError):
        a.tcp_connect((IF_B4.ip, 0), 0.0)
    a.tcp_listen(80)
    with pytest.raises(LocalUsageError):
        a.tcp_listen(80, address=IF_A4.ip)


def syn_frame(src_port: int, seq: int, dst_port: int = 80) -> tuple[int, int, int, bytes]:
    src, dst = IF_B4.ip.packed, IF_A4.ip.packed
    tcp = build_tcp(TcpSegment(src_port, dst_port, seq, 0, SYN, 65535, mss=1400), src, dst)
    return (MAC_B, MAC_A, ETHERTYPE_IPV4, build_ipv4(src, dst, PROTO_TCP, tcp, ident=1))


def test_syn_flood_fills_only_the_half_open_queue() -> None:
    a = make(MAC_A, IF_A4, limits=StackLimits(syn_backlog=32))
    listener = a.tcp_listen(80, backlog=128)
    rng = random.Random(9)
    for i in range(10_000):
        a.receive_frame(syn_frame(1024 + rng.getrandbits(15), rng.getrandbits(32)), i * 1e-3)
        a.poll(i * 1e-3)
        a.take_frames()
    assert listener.half_open == 32
    assert a.tcp_connection_count == 32
    assert a.counters.tcp_syn_dropped >= 10_000 - 32 - 100  # a few reused source ports
    # the half-open connections give up (SYN,ACK retransmissions run out) and free the queue
    now = 10.0
    for _ in range(200):
        deadline = a.deadline()
        if deadline is None:
            break
        now = max(now, deadline)
        a.poll(now)
        a.take_frames()
    assert listener.half_open == 0 and a.tcp_connection_count == 0
    assert listener.accept() is None


def test_connection_table_is_bounded() -> None:
    a = make(MAC_A, IF_A4, limits=StackLimits(tcp_connections=8, syn_backlog=64))
    a.tcp_listen(80)
    for i in range(20):
        a.receive_frame(syn_frame(2000 + i, 1), 0.0)
    assert a.tcp_connection_count == 8
    with pytest.raises(LocalUsageError):
        a.tcp_connect((IF_B4.ip, 80), 0.0)


def test_listener_close_aborts_queued_connections() -> None:
    a, b, seg, _client, _server = connected()
    listener = b.tcp_listen(81)
    second = a.tcp_connect((IF_B4.ip, 81), seg.now)
    seg.run(lambda: listener.readable > 0 and second.established)
    listener.close()
    seg.run(lambda: second.closed)
    assert second.error == "connection reset"
    refused = a.tcp_connect((IF_B4.ip, 81), seg.now)
    seg.run(lambda: refused.closed)
    assert refused.error == "connection refused"


def test_close_with_unread_data_resets() -> None:
    _a, _b, seg, client, server = connected()
    client.send(b"unread")
    seg.run(lambda: server.readable > 0)
    server.close()
    seg.run(lambda: client.closed)
    assert client.error == "connection reset"


def test_rst_for_unknown_connection() -> None:
    a = make(MAC_A, IF_A4)
    src, dst = IF_B4.ip.packed, IF_A4.ip.packed
    tcp = build_tcp(TcpSegment(5555, 80, 1000, 77, 0x10, 1000, b"data"), src, dst)
    a.receive_frame((MAC_B, MAC_A, ETHERTYPE_IPV4, build_ipv4(src, dst, PROTO_TCP, tcp, 1)), 0.0)
    frames = a.take_frames()
    # the reset waits for B's MAC: an ARP request went out, the RST is held
    assert len(frames) == 1 and frames[0][2] == 0x0806
    assert a.counters.tcp_resets_out == 1
    a.receive_frame((MAC_B, MAC_A, 0x0806, arp_reply()), 0.1)
    (frame,) = a.take_frames()
    pkt = parse_ipv4(frame[3])
    reset = parse_tcp(pkt.payload, pkt.src, pkt.dst)
    assert frame[1] == MAC_B and reset.flags == RST and reset.seq == 77
    assert (reset.src_port, reset.dst_port) == (80, 5555)


def arp_reply() -> bytes:
    msg = arp.Arp(arp.REPLY, MAC_B, IF_B4.ip.packed, MAC_A, IF_A4.ip.packed)
    return arp.build_arp(msg)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 255),
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**32 - 1),
            st.sampled_from([80, 81]),
            st.binary(max_size=40),
        ),
        max_size=12,
    )
)
def test_arbitrary_segments_to_listener_and_connection_never_raise(
    segments: list[tuple[int, int, int, int, bytes]],
) -> None:
    _a, b, seg, client, _server = connected()
    cport = client.local[1]
    src, dst = IF_A4.ip.packed, IF_B4.ip.packed
    for i, (flags, seq, ack, port, payload) in enumerate(segments):
        sport = cport if i % 2 else 3000 + i
        tcp = build_tcp(TcpSegment(sport, port, seq, ack, flags, 512, payload), src, dst)
        frame = (MAC_A, MAC_B, ETHERTYPE_IPV4, build_ipv4(src, dst, PROTO_TCP, tcp, ident=i))
        b.receive_frame(frame, seg.now)
        b.poll(seg.now)
    b.take_frames()
    assert b.tcp_connection_count <= b.limits.tcp_connections


def test_orphan_that_never_finishes_is_reset() -> None:
    a = make(MAC_A, IF_A4, seed=1, limits=StackLimits(orphan_timeout=5.0))
    b = make(MAC_B, IF_B4, seed=2)
    seg = Segment(a, b)
    listener = b.tcp_listen(80)
    client = a.tcp_connect((IF_B4.ip, 80), seg.now)
    seg.run(lambda: listener.readable > 0 and client.established)
    server = listener.accept()
    assert server is not None
    client.close()  # the server never closes its side: the client waits in FIN-WAIT-2
    start = seg.now
    seg.run(lambda: a.tcp_connection_count == 0)
    assert seg.now - start >= 5.0
    seg.run(lambda: server.closed)
    assert server.error == "connection reset"


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_connection_to_our_own_address_loops_back(v6: bool) -> None:
    a = make(MAC_A, IF_A4, IF_A6, seed=1)
    seg = Segment(a)
    seg.strict = False  # a poll delivers a few rounds of looped-back packets, not all
    own = (IF_A6 if v6 else IF_A4).ip
    listener = a.tcp_listen(8080)
    client = a.tcp_connect((own, 8080), seg.now)
    seg.run(lambda: listener.readable > 0 and client.established)
    server = listener.accept()
    assert server is not None and server.remote == client.local
    data = random.Random(8).randbytes(200_000)
    assert transfer(seg, client, server, data) == data
    assert a.counters.frames_out == 0  # nothing went to the network


def test_new_syn_replaces_a_time_wait_connection() -> None:
    _a, b, seg, client, server = connected()
    sent_seqs: list[int] = []

    def tap(frame: tuple[int, int, int, bytes]) -> None:
        if frame[0] == MAC_A and frame[2] == ETHERTYPE_IPV4:
            pkt = parse_ipv4(frame[3])
            s = parse_tcp(pkt.payload, pkt.src, pkt.dst)
            sent_seqs.append((s.seq + len(s.payload) + (s.flags & 1)) & 0xFFFFFFFF)

    seg.taps.append(tap)
    server.shutdown()  # the server closes first: it ends in TIME-WAIT
    seg.run(lambda: client.at_eof)
    client.shutdown()
    seg.run(lambda: server.state.name == "TIME_WAIT")
    assert b.tcp_connection_count == 1
    b.changed()
    # the same 4-tuple again, with a sequence number past everything the old one got
    seq = (sent_seqs[-1] + 100_000) & 0xFFFFFFFF
    syn = TcpSegment(client.local[1], 80, seq, 0, SYN, 65535, mss=1400)
    src, dst = IF_A4.ip.packed, IF_B4.ip.packed
    tcp = build_tcp(syn, src, dst)
    b.receive_frame(
        (MAC_A, MAC_B, ETHERTYPE_IPV4, build_ipv4(src, dst, PROTO_TCP, tcp, 9)), seg.now
    )
    b.poll(seg.now)
    assert b.tcp_connection_count == 1 and server.state.name == "TIME_WAIT"  # forgotten
    (frame,) = b.take_frames()
    answer = parse_ipv4(frame[3])
    synack = parse_tcp(answer.payload, answer.src, answer.dst)
    assert synack.flags == SYN | 0x10 and synack.ack == (seq + 1) & 0xFFFFFFFF


def test_connect_to_a_silent_neighbour_fails_host_unreachable() -> None:
    a = make(MAC_A, IF_A4, seed=1)
    seg = Segment(a)  # nobody else on the segment: ARP is never answered
    sock = a.tcp_connect((IF_B4.ip, 80), seg.now)
    start = seg.now
    seg.run(lambda: sock.closed)
    assert sock.error == "host unreachable"
    assert seg.now - start < 5.0  # three ARP requests a second apart, not the SYN's minute
    assert sock in a.changed() and a.tcp_connection_count == 0
