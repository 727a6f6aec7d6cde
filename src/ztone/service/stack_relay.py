"""Relaying one connection between a local asyncio stream and an overlay stack stream.

Used by the SOCKS5 server and both kinds of port forward (issue 15). Two copy loops,
one per direction, each with backpressure: a loop reads at most :data:`CHUNK` bytes
and reads again only once the other side took all of them (the stack's send buffer
accepted them; the local transport drained), so nothing is buffered beyond one chunk
plus the two sides' own bounded buffers. The end of data one way shuts down that
direction only (half-close); a reset on either side resets the other; both sides are
closed when both directions are done, on any error, or after ``idle_timeout`` seconds
without a byte either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections.abc import Iterable
from typing import Any

from ztone.osdep.userspace import StackStream

log = logging.getLogger(__name__)

CHUNK = 64 * 1024


class RelayStats:
    """Bytes each way, for the log and the tests."""

    __slots__ = ("last_activity", "to_local", "to_overlay")

    def __init__(self) -> None:
        self.to_overlay = 0
        self.to_local = 0
        self.last_activity = time.monotonic()


async def _local_to_overlay(
    reader: asyncio.StreamReader, stream: StackStream, stats: RelayStats
) -> None:
    while True:
        data = await reader.read(CHUNK)
        if not data:
            stream.shutdown()
            return
        stats.last_activity = time.monotonic()
        await stream.write(data)
        stats.to_overlay += len(data)


async def _overlay_to_local(
    stream: StackStream, writer: asyncio.StreamWriter, stats: RelayStats
) -> None:
    while True:
        data = await stream.read(CHUNK)
        if not data:
            if writer.can_write_eof():
                writer.write_eof()
            return
        stats.last_activity = time.monotonic()
        writer.write(data)
        await writer.drain()
        stats.to_local += len(data)


async def _idle_watch(stats: RelayStats, idle_timeout: float) -> None:
    while True:
        left = stats.last_activity + idle_timeout - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(left, 5.0))


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close the local side with a TCP RST (linger 0), as the overlay side was reset."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel every task, then wait until each has ended (whatever it ended with)."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(BaseException):
            await task


async def relay(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    stream: StackStream,
    idle_timeout: float,
    initial: bytes = b"",
) -> RelayStats:
    """Copy both ways until both are done (see the module); closes both sides.

    ``initial``: bytes the local side already sent (they go first to the overlay).
    """
    stats = RelayStats()
    reset = False
    try:
        if initial:
            await stream.write(initial)
            stats.to_overlay += len(initial)
        up = asyncio.ensure_future(_local_to_overlay(reader, stream, stats))
        down = asyncio.ensure_future(_overlay_to_local(stream, writer, stats))
        idle = asyncio.ensure_future(_idle_watch(stats, idle_timeout))
        pending: set[asyncio.Future[None]] = {up, down}
        try:
            while pending:
                done, _ = await asyncio.wait(pending | {idle}, return_when=asyncio.FIRST_COMPLETED)
                if idle in done:
                    log.debug("relay idle for %.0f s: closing", idle_timeout)
                    reset = True
                    break
                for task in done:
                    pending.discard(task)
                    error = task.exception()
                    if error is not None:
                        if not isinstance(error, (ConnectionError, OSError)):
                            log.error("relay failed: %r", error)
                        reset = True
                if reset:
                    break
        finally:
            await cancel_and_wait((up, down, idle))
    except (ConnectionError, OSError):
        reset = True
    finally:
        if reset:
            stream.abort()
            _reset(writer)
        else:
            stream.close()
            writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return stats


__all__ = ["CHUNK", "RelayStats", "relay"]
