"""libdlpi behaviour through the binding and the shim on real links (run in a namespace).

Prints ``BINDING OK`` and exits 0 when every check held.
"""

from __future__ import annotations

import sys
import time

from ztone.osdep.illumos import libdlpi
from ztone.osdep.illumos.commands import Commands
from ztone.osdep.illumos.libdlpi import DlpiError, Libdlpi

A_MAC = bytes.fromhex("02aabbccdd01")
B_MAC = bytes.fromhex("06aabbccdd01")


def code_of(call: object, *args: object) -> int | None:
    try:
        call(*args)  # type: ignore[operator]
    except DlpiError as e:
        return e.code
    return None


def main() -> int:
    cmd = Commands()
    cmd.dladm.create_etherstub("bstub2")
    cmd.dladm.create_vnic("bvis0", "bstub2", int.from_bytes(A_MAC, "big"), 2800)
    cmd.dladm.create_vnic("bback1", "bstub2", int.from_bytes(B_MAC, "big"), 2800)
    dl = Libdlpi()
    assert code_of(dl.open, "net9") == libdlpi.DLPI_ENOLINK
    rx = dl.open("bvis0", libdlpi.DLPI_RAW)
    tx = dl.open("bback1", libdlpi.DLPI_RAW)
    buf = bytearray(16384)
    assert code_of(rx.recv_into, buf, 0) == libdlpi.DL_OUTSTATE
    assert code_of(tx.send, b"\x00" * 60) == libdlpi.DL_OUTSTATE
    info = rx.info()
    assert info.mactype == libdlpi.DL_ETHER and info.max_sdu == 2800, info
    assert info.state == libdlpi.DL_UNBOUND and info.linkname == "bvis0"
    assert rx.bind(libdlpi.DLPI_ANY_SAP) == 0 and tx.bind(libdlpi.DLPI_ANY_SAP) == 0
    assert code_of(rx.bind, libdlpi.DLPI_ANY_SAP) == libdlpi.DL_OUTSTATE
    assert rx.info().physaddr == A_MAC and rx.get_physaddr() == A_MAC
    assert code_of(rx.promiscoff, libdlpi.DL_PROMISC_PHYS) == libdlpi.DL_NOTENAB
    assert code_of(rx.promiscon, libdlpi.DL_PROMISC_INCOMING) == libdlpi.DL_NOTSUPPORTED
    for level in (libdlpi.DL_PROMISC_PHYS, libdlpi.DL_PROMISC_SAP, libdlpi.DL_PROMISC_MULTI):
        rx.promiscon(level)
    rx.set_nonblocking()
    assert rx.recv_into(buf, 0) is None  # idle: DLPI_ETIMEDOUT
    start = time.monotonic()
    assert rx.recv_into(buf, 200) is None
    assert time.monotonic() - start >= 0.15
    frame = A_MAC + bytes.fromhex("82000000000a") + b"\x88\xb5" + bytes(range(200))
    tx.send(frame)
    tx.send(A_MAC + B_MAC + b"\x88\xb5" + bytes(3000))  # above MTU: dropped silently
    got = None
    deadline = time.monotonic() + 5
    while got is None and time.monotonic() < deadline:
        n = rx.recv_into(buf, 500)
        if n is not None and buf[12:14] == b"\x88\xb5":
            got = bytes(buf[:n])
    assert got == frame, got
    assert rx.recv_into(buf, 300) is None  # the oversize frame never arrived
    for h in (rx, tx):
        h.close()
    assert code_of(rx.info) == libdlpi.DLPI_EINHANDLE
    print("BINDING OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
