"""The illumos port's frame device: two libdlpi handles on the etherstub's VNICs.

Frames the host sends are read on the visible VNIC's handle (``DLPI_RAW``,
promiscuous: it sees every frame on the etherstub, so only those whose source MAC
is the visible VNIC's are kept); frames for the host are sent whole through the
backend VNIC's handle, and the etherstub switches them to the visible VNIC. Both
handles are non-blocking: a flow-controlled send fails with ``EAGAIN`` and the
frame is dropped (as a full TAP queue would) instead of blocking the loop, and a
read stops at "nothing more" (``DLPI_ETIMEDOUT``/``EAGAIN``, ``dlpi_recv`` with
``msec=0``). See :mod:`ztone.osdep.illumos.tap` for the picture.
"""

from __future__ import annotations

import errno as errno_mod
import logging
from collections.abc import Sequence

from ztone.osdep.base import EthernetFrame, FrameDeviceError
from ztone.osdep.illumos import libdlpi
from ztone.osdep.illumos.libdlpi import DlpiError, DlpiHandle

log = logging.getLogger(__name__)

RX_BUFFER = 16384


class DlpiDevice:
    """The :class:`~ztone.osdep.base.FrameDevice` of one port (owns both handles)."""

    def __init__(self, name: str, mac: int, rx: DlpiHandle, tx: DlpiHandle) -> None:
        self.name = name
        self.rx = rx
        """The receive handle, on the visible VNIC."""
        self.tx = tx
        """The send handle, on the backend VNIC."""
        self._mac_bytes = mac.to_bytes(6, "big")
        self._mac = mac
        self._rx_buffer = bytearray(RX_BUFFER)
        self.tx_errors = 0
        """Failed sends so far (flow control included)."""
        self.closed = False

    def fileno(self) -> int:
        return self.rx.fd()

    def read_batch(self, limit: int) -> list[EthernetFrame]:
        frames: list[EthernetFrame] = []
        if self.closed:
            return frames
        buf = self._rx_buffer
        for _ in range(limit):
            try:
                n = self.rx.recv_into(buf, 0)
            except DlpiError as e:
                if frames:
                    break
                raise FrameDeviceError(f"{self.name}: dlpi_recv failed: {e}") from None
            if n is None:
                break
            # Only what the host sent: our own frames injected through the backend
            # VNIC (and anything else on the etherstub) have other source MACs.
            if n < libdlpi.ETHER_HEADER or buf[6:12] != self._mac_bytes:
                continue
            frames.append(
                (
                    self._mac,
                    int.from_bytes(buf[0:6], "big"),
                    (buf[12] << 8) | buf[13],
                    bytes(buf[libdlpi.ETHER_HEADER : n]),
                )
            )
        return frames

    def write_batch(self, frames: Sequence[EthernetFrame]) -> int:
        if self.closed:
            return len(frames)
        dropped = 0
        for source, destination, ethertype, payload in frames:
            frame = (
                destination.to_bytes(6, "big")
                + source.to_bytes(6, "big")
                + (ethertype & 0xFFFF).to_bytes(2, "big")
                + payload
            )
            try:
                self.tx.send(frame)
            except DlpiError as e:
                dropped += 1
                self.tx_errors += 1
                if e.sys_errno in (errno_mod.EAGAIN, errno_mod.EWOULDBLOCK, errno_mod.ENOBUFS):
                    log.debug("%s: dlpi_send flow-controlled, frame dropped", self.name)
                elif self.tx_errors == 1 or self.tx_errors % 1000 == 0:
                    log.warning(
                        "%s: dlpi_send failed (%d so far): %s", self.name, self.tx_errors, e
                    )
        return dropped

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.rx.close()
            self.tx.close()


__all__ = ["RX_BUFFER", "DlpiDevice"]
