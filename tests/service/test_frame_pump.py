"""The service's frame pump against fake ports (real non-blocking descriptors, a real loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from ztone.osdep.fake import FakeTap, FakeTapFactory, Frame
from ztone.service.frame_pump import MAX_READ_ERRORS, FramePump

NWID_A = 0x8056C2E21C000001
NWID_B = 0xA09ACF0233E4B070
MAC = 0x0289E9300C27
PEER = 0x0289E9300C28

Got = list[tuple[int, int, int, int, bytes]]


class Harness:
    def __init__(self, loop: asyncio.AbstractEventLoop, batch: int = 128) -> None:
        self.got: Got = []
        self.events: list[str] = []
        self.factory = FakeTapFactory()
        self.pump = FramePump(loop, self.on_frame, lambda: self.events.append("end"), batch)
        self.fail_on: bytes | None = None

    def on_frame(self, nwid: int, s: int, d: int, e: int, p: bytes) -> None:
        self.events.append("frame")
        if p == self.fail_on:
            raise RuntimeError("handler bug")
        self.got.append((nwid, s, d, e, p))

    def port(self, nwid: int, mtu: int = 1500) -> FakeTap:
        tap = self.factory.create(nwid, MAC, mtu, "x")
        self.pump.attach(nwid, tap)
        return tap


async def _until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


def run(coro: Callable[[], object]) -> None:
    asyncio.run(coro())  # type: ignore[arg-type]


def test_frames_from_the_host_reach_the_sink_with_one_batch_end_per_wakeup() -> None:
    async def main() -> None:
        h = Harness(asyncio.get_running_loop(), batch=2)
        a = h.port(NWID_A)
        b = h.port(NWID_B)
        for i in range(5):
            a.device.inject(PEER, MAC, 0x0800, b"a%d" % i)
        b.device.inject(PEER, 0xFFFFFFFFFFFF, 0x0806, b"b0")
        await _until(lambda: len(h.got) == 6)
        assert [g for g in h.got if g[0] == NWID_A] == [
            (NWID_A, PEER, MAC, 0x0800, b"a%d" % i) for i in range(5)
        ]
        assert (NWID_B, PEER, 0xFFFFFFFFFFFF, 0x0806, b"b0") in h.got
        # batches of at most 2 frames: a's five frames took 3 wakeups, b's one
        assert h.events.count("end") == 4
        assert h.events[-1] == "end"
        assert h.pump.frames_in == 6
        h.pump.close()

    run(main)


def test_payload_over_the_mtu_is_cut_on_read_and_dropped_on_write() -> None:
    async def main() -> None:
        h = Harness(asyncio.get_running_loop())
        tap = h.port(NWID_A, mtu=100)
        tap.device.inject(PEER, MAC, 0x0800, bytes(range(150)))
        await _until(lambda: len(h.got) == 1)
        assert h.got[0][4] == bytes(range(100))
        h.pump.put(NWID_A, MAC, PEER, 0x0800, bytes(101))
        h.pump.put(NWID_A, MAC, PEER, 0x0800, bytes(100))
        h.pump.flush()
        assert tap.device.put_frames == [Frame(MAC, PEER, 0x0800, bytes(100))]
        assert (h.pump.frames_dropped, h.pump.frames_out) == (1, 1)
        tap.link.set_mtu(200)  # the link's MTU counts, as it is now
        h.pump.put(NWID_A, MAC, PEER, 0x0800, bytes(101))
        h.pump.flush()
        assert len(tap.device.put_frames) == 2
        h.pump.close()

    run(main)


def test_frames_for_the_host_wait_for_flush_and_leave_in_order_per_port() -> None:
    async def main() -> None:
        h = Harness(asyncio.get_running_loop())
        a = h.port(NWID_A)
        b = h.port(NWID_B)
        h.pump.put(NWID_A, MAC, PEER, 0x0800, b"1")
        h.pump.put(NWID_B, MAC, PEER, 0x0800, b"x")
        h.pump.put(NWID_A, MAC, PEER, 0x86DD, b"2")
        h.pump.put(0x1234, MAC, PEER, 0x0800, b"no such port")  # ignored
        assert a.device.put_frames == [] and b.device.put_frames == []
        h.pump.flush()
        assert [f.payload for f in a.device.put_frames] == [b"1", b"2"]
        assert [f.payload for f in b.device.put_frames] == [b"x"]
        h.pump.flush()  # nothing queued: nothing written again
        assert len(a.device.put_frames) == 2
        b.device.fail.add("write")  # the device refuses: counted as dropped
        h.pump.put(NWID_B, MAC, PEER, 0x0800, b"y")
        h.pump.flush()
        assert (h.pump.frames_out, h.pump.frames_dropped) == (3, 1)
        h.pump.close()

    run(main)


def test_detach_writes_what_waits_and_stops_reading() -> None:
    async def main() -> None:
        h = Harness(asyncio.get_running_loop())
        tap = h.port(NWID_A)
        h.pump.put(NWID_A, MAC, PEER, 0x0800, b"last")
        h.pump.detach(NWID_A)
        assert tap.device.put_frames == [Frame(MAC, PEER, 0x0800, b"last")]
        assert not h.pump.reading(NWID_A)
        tap.device.inject(PEER, MAC, 0x0800, b"unread")
        await asyncio.sleep(0.05)
        assert h.got == []
        h.pump.flush()  # the detached port is not written again
        assert len(tap.device.put_frames) == 1
        h.pump.detach(NWID_A)  # twice is fine
        tap.close()

    run(main)


def test_a_failing_device_is_given_up_after_repeated_errors() -> None:
    async def main() -> None:
        h = Harness(asyncio.get_running_loop())
        tap = h.port(NWID_A)
        other = h.port(NWID_B)
        tap.device.fail.add("read")
        tap.device.inject(PEER, MAC, 0x0800, b"stuck")  # polls readable for ever
        await _until(lambda: not h.pump.reading(NWID_A))
        assert h.pump.read_errors == MAX_READ_ERRORS
        await asyncio.sleep(0.05)
        assert h.pump.read_errors == MAX_READ_ERRORS  # no more attempts
        other.device.inject(PEER, MAC, 0x0800, b"fine")  # other ports keep working
        await _until(lambda: len(h.got) == 1)
        assert h.pump.reading(NWID_B)
        h.pump.close()

    run(main)


def test_a_read_error_between_good_reads_is_forgiven() -> None:
    async def main() -> None:
        h = Harness(asyncio.get_running_loop())
        tap = h.port(NWID_A)
        for i in range(MAX_READ_ERRORS + 2):
            tap.device.fail.add("read_once")
            tap.device.inject(PEER, MAC, 0x0800, b"%d" % i)
            await _until(lambda n=i + 1: len(h.got) == n)  # type: ignore[misc]
        assert h.pump.read_errors == MAX_READ_ERRORS + 2
        assert h.pump.reading(NWID_A)
        h.pump.close()

    run(main)


def test_a_raising_handler_loses_only_its_frame() -> None:
    async def main() -> None:
        h = Harness(asyncio.get_running_loop())
        tap = h.port(NWID_A)
        h.fail_on = b"bad"
        for payload in (b"one", b"bad", b"two"):
            tap.device.inject(PEER, MAC, 0x0800, payload)
        await _until(lambda: len(h.got) == 2)
        assert [g[4] for g in h.got] == [b"one", b"two"]
        assert h.pump.handler_errors == 1 and h.pump.frames_in == 3
        h.pump.close()

    run(main)


def test_attach_again_replaces_the_port() -> None:
    async def main() -> None:
        h = Harness(asyncio.get_running_loop())
        old = h.port(NWID_A)
        new = h.factory.create(NWID_A, MAC, 1500, "y")
        h.pump.put(NWID_A, MAC, PEER, 0x0800, b"for old")
        h.pump.attach(NWID_A, new)
        assert [f.payload for f in old.device.put_frames] == [b"for old"]
        old.device.inject(PEER, MAC, 0x0800, b"old")
        new.device.inject(PEER, MAC, 0x0800, b"new")
        await _until(lambda: len(h.got) == 1)
        await asyncio.sleep(0.05)
        assert [g[4] for g in h.got] == [b"new"]
        h.pump.close()

    run(main)


@pytest.mark.parametrize("closed_first", [False, True])
def test_close_is_safe_after_the_ports_are_gone(closed_first: bool) -> None:
    async def main() -> None:
        h = Harness(asyncio.get_running_loop())
        tap = h.port(NWID_A)
        if closed_first:
            h.pump.detach(NWID_A)
            tap.close()
        h.pump.close()
        h.pump.close()
        assert not h.pump.reading(NWID_A)

    run(main)
