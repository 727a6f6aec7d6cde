"""The port under libdlpi faults, run inside a simulation namespace by test_faults.py.

    python3 scenario_faults.py     (with the SimEnv environment, inside the namespace)

Three checks on a real port (IllumosTapFactory.create, the daemon's code path):

* FIXUPS: the receive handle has ``DL_PROMISC_FIXUPS`` on; with a kernel that
  answers ``DL_NOTSUPPORTED`` for it the port is still made.
* a full send queue: ``put()`` while the backend stream is flow-controlled never
  waits in ``dlpi_send`` (the shim counts sends made on a blocking descriptor) and
  the frames after the queue drained arrive at the host.
* a hang-up after an ``EAGAIN``: the receive stream hangs up while cffi's saved
  errno is the ``EAGAIN`` of the flow-controlled sends; the reader must give up after
  a bounded number of wake-ups instead of reading "nothing to read" for ever.

Prints one JSON line with what it observed and exits 0 when every check held; on a
failed check it prints the reason and exits 1. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import socket
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from illumos_sim.scenario_run import check, run_scenario
from ztone.osdep.illumos import IllumosTapFactory, libdlpi
from ztone.osdep.illumos.commands import Commands
from ztone.service.frame_pump import FramePump

NWID = 0x8056C2E21C000002
MAC = 0x82AABBCCDD02
PEER_MAC = 0x820000000003
MTU = 2800
ETHERTYPE = 0x88B5  # IEEE local experimental: the host stack ignores it


def shim_hooks() -> Any:
    cffi = importlib.import_module("cffi")  # untyped; as libdlpi.py loads it
    ffi = cffi.FFI()
    ffi.cdef(
        """
        typedef struct shim_handle shim_handle_t;
        int ztone_shim_hangup(void *h);
        void ztone_shim_send_queue_full(void *h, int frames);
        int ztone_shim_blocked_sends(void *h);
        void ztone_shim_unsupported(unsigned int level);
        int ztone_shim_promisc(void *h);
        """
    )
    return ffi.dlopen(os.environ["ZTONE_LIBDLPI"])


def raw_handle(handle: libdlpi.DlpiHandle) -> Any:
    return handle._h  # the dlpi_handle_t the hooks take


async def scenario() -> dict[str, Any]:
    report: dict[str, Any] = {}
    hooks = shim_hooks()
    factory = IllumosTapFactory(Commands())

    # --- FIXUPS: requested on the receive handle; DL_NOTSUPPORTED is not fatal ---
    hooks.ztone_shim_unsupported(libdlpi.DL_PROMISC_FIXUPS)
    try:
        old_kernel = factory.create(NWID, MAC, MTU, "old kernel")
    finally:
        hooks.ztone_shim_unsupported(0)
    mask = hooks.ztone_shim_promisc(raw_handle(old_kernel.device.rx))
    report["promisc_without_fixups"] = mask
    check(not mask & (1 << libdlpi.DL_PROMISC_FIXUPS), "FIXUPS on although refused")
    old_kernel.close()

    tap = factory.create(NWID, MAC, MTU, "faults")
    mask = hooks.ztone_shim_promisc(raw_handle(tap.device.rx))
    report["promisc"] = mask
    wanted = (libdlpi.DL_PROMISC_PHYS, libdlpi.DL_PROMISC_SAP, libdlpi.DL_PROMISC_MULTI,
              libdlpi.DL_PROMISC_FIXUPS)  # fmt: skip
    check(all(mask & (1 << level) for level in wanted), f"promiscuous mask {mask:#x}")

    # --- a full send queue: put() must not wait in dlpi_send ---
    sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE))
    sniffer.bind((tap.device_name, 0))
    sniffer.settimeout(2.0)
    loop = asyncio.get_running_loop()
    frames: list[bytes] = []
    pump = FramePump(loop, lambda *args: frames.append(bytes(args[4])))
    pump.attach(NWID, tap)

    def put(payload: bytes) -> None:
        pump.put(NWID, PEER_MAC, MAC, ETHERTYPE, payload)
        pump.flush()

    tx = raw_handle(tap.device.tx)
    hooks.ztone_shim_send_queue_full(tx, 5)
    for i in range(5):
        pump.put(NWID, PEER_MAC, MAC, ETHERTYPE, b"queued%d" % i + bytes(50))
    pump.flush()
    blocked = hooks.ztone_shim_blocked_sends(tx)
    report["blocked_sends"] = blocked
    report["tx_errors"] = tap.device.tx_errors
    check(blocked == 0, f"{blocked} dlpi_send calls waited on a blocking descriptor")
    tx_errors = tap.device.tx_errors
    check(tx_errors == 5, f"{tx_errors} send errors counted, 5 expected")
    check(pump.frames_dropped == 5, f"the pump counted {pump.frames_dropped} drops, 5 expected")
    put(b"drained" + bytes(50))
    got = await loop.run_in_executor(None, sniffer.recv, 4096)
    report["after_drain"] = got[14:21].decode(errors="replace")
    check(got[14:21] == b"drained", f"first frame after the queue drained: {got[:32].hex()}")
    sniffer.close()

    # --- a hang-up while cffi's saved errno is the sends' EAGAIN ---
    rx = tap.device.rx
    calls = 0
    real_recv = rx.recv_into

    def counting_recv(buffer: bytearray | memoryview, msec: int = 0) -> int | None:
        nonlocal calls
        calls += 1
        return real_recv(buffer, msec)

    rx.recv_into = counting_recv  # type: ignore[method-assign]
    hooks.ztone_shim_send_queue_full(tx, 1)
    put(bytes(60))  # leaves errno = EAGAIN behind
    check(hooks.ztone_shim_hangup(raw_handle(rx)) == 0, "shim could not hang up the stream")
    # The shim swapped the file description under the same fd number (dup2), which
    # epoll forgets; on illumos it is the same stream. Register the reader again.
    pump.detach(NWID)
    pump.attach(NWID, tap)
    await asyncio.sleep(0.5)  # the descriptor now polls readable (POLLHUP) for ever
    report["recv_calls_after_hangup"] = calls
    report["reader_stopped"] = not pump.reading(NWID)
    check(not pump.reading(NWID), f"reader still registered after {calls} dlpi_recv calls")
    check(calls <= 3, f"{calls} dlpi_recv calls on a hung-up stream")
    pump.detach(NWID)
    tap.close()
    return report


if __name__ == "__main__":
    sys.exit(run_scenario(scenario, timeout=60))
