"""The service's frame pump: every port's frames between its device and the core.

One pump serves the ports of every backend (:class:`~ztone.osdep.base.Tap`):

* host -> core: it watches each port's :class:`~ztone.osdep.base.FrameDevice`
  with ``loop.add_reader``; a wakeup reads up to :data:`MAX_FRAMES_PER_WAKEUP`
  frames, hands each to ``on_frame(nwid, source, destination, ethertype, payload)``
  (a payload longer than the link's MTU is cut there, as upstream's taps read at
  most MTU + 14 bytes), then calls ``on_batch_end`` once: the service acts on the
  core's output per wakeup, not per frame;
* core -> host: :meth:`FramePump.put` queues a frame (dropped if its payload exceeds
  the link's MTU) and :meth:`FramePump.flush` writes each port's queue with one
  ``write_batch``, so a backend can merge a burst (Linux merges TCP segments);
* errors: a read that fails is counted; after :data:`MAX_READ_ERRORS` failed
  wakeups in a row the pump stops watching that device (a descriptor in error
  polls readable for ever) and logs it. A handler that raises is logged and
  counted; the frames after it still go.

With an owner (:meth:`FramePump.set_owner`: the native data plane's reactor thread),
the ports it takes are not watched by the event loop: the owner reads them, and the
frames it does not carry come back through :meth:`FramePump.hand`, which treats them as
a readable wakeup's. The owner is told to stop (``release_port``) before a port closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from ztone.osdep.base import EthernetFrame, FrameDevice, FrameDeviceError, LinkConfig, Tap

log = logging.getLogger(__name__)

MAX_FRAMES_PER_WAKEUP = 128
"""Frames read per wakeup at most (the loop gets a turn between batches)."""
MAX_READ_ERRORS = 3
"""Failed reads in a row after which a device is no longer watched."""

FrameSink = Callable[[int, int, int, int, bytes], None]
"""``(nwid, source MAC, destination MAC, ethertype, payload)`` into the core."""
BurstReader = Callable[[int, FrameDevice, int], list[EthernetFrame] | None]
"""``reader(nwid, device, limit)``: read the device itself (the native data plane sends
what it can) and return the frames left for the sink, or None: the pump reads."""
BatchEnd = Callable[[], None]
"""Called after the frames of one wakeup went to the sink: the service's cue to act."""


class PortOwner(Protocol):
    """Who reads some ports instead of the event loop (the data plane's reactor)."""

    def own_port(self, nwid: int, device: FrameDevice) -> bool:
        """Read ``device`` (network ``nwid``) from now on; False: not this kind of port."""
        ...

    def release_port(self, fd: int) -> None:
        """Stop reading the port ``fd`` (it is about to close, or the loop takes it back)."""
        ...


class _Attached:
    """One watched port."""

    __slots__ = ("device", "fd", "link", "nwid", "outgoing", "owned", "read_errors")

    def __init__(self, nwid: int, tap: Tap) -> None:
        self.nwid = nwid
        self.device: FrameDevice = tap.device
        self.link: LinkConfig = tap.link
        self.fd = -1
        self.outgoing: list[EthernetFrame] = []
        self.read_errors = 0
        self.owned = False  # the owner reads it, not the event loop


class FramePump:
    """Moves frames for every attached port; counters say what happened."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_frame: FrameSink,
        on_batch_end: BatchEnd | None = None,
        batch: int = MAX_FRAMES_PER_WAKEUP,
    ) -> None:
        self._loop = loop
        self._on_frame = on_frame
        self._on_batch_end = on_batch_end
        self._batch = batch
        self._ports: dict[int, _Attached] = {}
        self._dirty: list[_Attached] = []
        self.frames_in = 0
        """Frames from the hosts' stacks handed to the sink."""
        self.frames_out = 0
        """Frames written to the hosts' stacks."""
        self.frames_dropped = 0
        """Frames for the hosts that were not written (over the MTU, refused by a device)."""
        self.read_errors = 0
        """Failed reads (every device)."""
        self.handler_errors = 0
        """Frames whose sink raised."""
        self._burst: BurstReader | None = None
        self._owner: PortOwner | None = None

    def set_owner(self, owner: PortOwner | None) -> None:
        """Let ``owner`` read the ports it takes from now on (None: the event loop reads
        every port again); its leftovers come back through :meth:`hand`."""
        for port in self._ports.values():
            if port.fd >= 0:
                self._unwatch(port)
        self._owner = owner
        for port in self._ports.values():
            if port.fd >= 0:
                self._watch(port)

    def _watch(self, port: _Attached) -> None:
        owner = self._owner
        port.owned = owner is not None and owner.own_port(port.nwid, port.device)
        if not port.owned:
            self._loop.add_reader(port.fd, self._readable, port)

    def _unwatch(self, port: _Attached) -> None:
        if port.owned and self._owner is not None:
            self._owner.release_port(port.fd)
        else:
            self._loop.remove_reader(port.fd)
        port.owned = False

    def set_burst_reader(self, reader: BurstReader | None) -> None:
        """Let ``reader`` read the ports first from now on (None: the pump reads)."""
        self._burst = reader

    def attach(self, nwid: int, tap: Tap) -> None:
        """Watch ``tap``'s device for network ``nwid`` (replacing a port attached before)."""
        self.detach(nwid)
        port = _Attached(nwid, tap)
        port.fd = port.device.fileno()
        self._watch(port)
        self._ports[nwid] = port

    def detach(self, nwid: int) -> None:
        """Write what is queued for ``nwid``, then stop watching its device (call before
        closing the port)."""
        port = self._ports.pop(nwid, None)
        if port is None:
            return
        self._write(port)
        self._stop_reading(port)

    def close(self) -> None:
        for nwid in list(self._ports):
            self.detach(nwid)

    def port(self, nwid: int) -> tuple[FrameDevice, LinkConfig] | None:
        """The device and link of ``nwid``'s port while it is attached and read."""
        port = self._ports.get(nwid)
        if port is None or port.fd < 0:
            return None
        return port.device, port.link

    def hand(self, nwid: int, frames: list[EthernetFrame]) -> None:
        """Frames the owner read from ``nwid``'s port and did not carry: to the sink,
        as a readable wakeup's."""
        port = self._ports.get(nwid)
        if port is not None and port.fd >= 0:
            self._deliver(port, frames)

    def failed(self, nwid: int) -> None:
        """The owner could not read ``nwid``'s port any more: it is no longer read."""
        port = self._ports.get(nwid)
        if port is not None and port.fd >= 0:
            log.error("network %016x: giving up reading frames: the port failed", nwid)
            self.read_errors += 1
            self._stop_reading(port)

    def poll(self, nwid: int) -> None:
        """Read ``nwid``'s port now, as a readable wakeup would (nothing if it is not
        watched): for a caller that just wrote to it and expects an answer there (the
        host's stack answers a ping inside the write), which then leaves without waiting
        for the event loop's next turn."""
        port = self._ports.get(nwid)
        if port is not None and port.fd >= 0 and not port.owned:
            self._readable(port)

    def reading(self, nwid: int) -> bool:
        """Whether the pump still watches ``nwid``'s device."""
        port = self._ports.get(nwid)
        return port is not None and port.fd >= 0

    # --- core -> host ---------------------------------------------------------------

    def put(self, nwid: int, source: int, destination: int, ethertype: int, payload: bytes) -> None:
        """Queue a frame for the host; it leaves with the next :meth:`flush`."""
        port = self._ports.get(nwid)
        if port is None:
            return
        if len(payload) > port.link.mtu:
            self.frames_dropped += 1
            return
        if not port.outgoing:
            self._dirty.append(port)
        port.outgoing.append((source, destination, ethertype, payload))

    def flush(self) -> None:
        """Write every queued frame, one ``write_batch`` per port."""
        dirty, self._dirty = self._dirty, []
        for port in dirty:
            self._write(port)

    def _write(self, port: _Attached) -> None:
        frames, port.outgoing = port.outgoing, []
        if not frames:
            return
        try:
            dropped = port.device.write_batch(frames)
        except Exception:
            log.exception("network %016x: writing frames to the port failed", port.nwid)
            dropped = len(frames)
        self.frames_dropped += dropped
        self.frames_out += len(frames) - dropped

    # --- host -> core ---------------------------------------------------------------

    def _readable(self, port: _Attached) -> None:
        try:
            burst = self._burst
            frames = burst(port.nwid, port.device, self._batch) if burst is not None else None
            if frames is None:
                frames = port.device.read_batch(self._batch)
        except FrameDeviceError as e:
            port.read_errors += 1
            self.read_errors += 1
            log.warning("network %016x: %s", port.nwid, e)
            if port.read_errors >= MAX_READ_ERRORS:
                log.error(
                    "network %016x: giving up reading frames after %d errors",
                    port.nwid,
                    port.read_errors,
                )
                self._stop_reading(port)
            return
        self._deliver(port, frames)

    def _deliver(self, port: _Attached, frames: list[EthernetFrame]) -> None:
        if not frames:
            return
        port.read_errors = 0
        mtu = port.link.mtu
        nwid = port.nwid
        on_frame = self._on_frame
        for source, destination, ethertype, data in frames:
            payload = data if len(data) <= mtu else data[:mtu]
            try:
                on_frame(nwid, source, destination, ethertype, payload)
            except Exception:
                self.handler_errors += 1
                log.exception("network %016x: frame handler failed", nwid)
        self.frames_in += len(frames)
        if self._on_batch_end is not None:
            self._on_batch_end()

    def _stop_reading(self, port: _Attached) -> None:
        if port.fd < 0:
            return
        try:
            self._unwatch(port)
        except (ValueError, RuntimeError, OSError) as e:  # the loop may already be closed
            log.debug("network %016x: remove_reader: %s", port.nwid, e)
        port.fd = -1


__all__ = [
    "MAX_FRAMES_PER_WAKEUP",
    "MAX_READ_ERRORS",
    "BatchEnd",
    "BurstReader",
    "FramePump",
    "FrameSink",
    "PortOwner",
]
