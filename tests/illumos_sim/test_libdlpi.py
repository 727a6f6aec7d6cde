"""The cffi binding against the shim libdlpi: layouts, every error code, recv outcomes."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from ztone.osdep.illumos import libdlpi
from ztone.osdep.illumos.libdlpi import DlpiError, DlpiHandle, Libdlpi

# illumos' texts (usr/src/lib/libdlpi/common/libdlpi.c), code -> dlpi_strerror()
TEXTS = {
    0x00: "bad LSAP selector",
    0x01: "DLSAP address in improper format or invalid",
    0x02: "improper permissions for request",
    0x03: "primitive issued in improper state",
    0x05: "sequence number not from outstanding DL_CONN_IND",
    0x06: "user data exceeded provider limit",
    0x07: "requested service not supplied by provider",
    0x08: "specified PPA was invalid",
    0x09: "primitive received not known by provider",
    0x0A: "QoS parameters contained invalid values",
    0x0B: "QoS structure type is unknown/unsupported",
    0x0C: "token used not an active stream",
    0x0D: "attempted second bind with dl_max_conind",
    0x0E: "physical link initialization failed",
    0x0F: "provider couldn't allocate alternate address",
    0x10: "physical link not initialized",
    0x11: "previous data unit could not be delivered",
    0x12: "primitive is known but unsupported",
    0x13: "limit exceeded",
    0x14: "promiscuous mode not enabled",
    0x15: "other streams for PPA in post-attached",
    0x16: "automatic handling XID&TEST unsupported",
    0x17: "automatic handling of XID unsupported",
    0x18: "automatic handling of TEST unsupported",
    0x19: "automatic handling of XID response",
    0x1A: "automatic handling of TEST response",
    0x1B: "pending outstanding connect indications",
    10001: "invalid argument",
    10002: "invalid DLPI linkname",
    10003: "DLPI link does not exist",
    10004: "bad DLPI link",
    10005: "invalid DLPI handle",
    10006: "DLPI operation timed out",
    10007: "unsupported DLPI version",
    10008: "unsupported DLPI connection mode",
    10009: "unavailable DLPI SAP",
    10010: "DLPI operation failed",
    10011: "DLPI style-2 node reports style-1",
    10012: "bad DLPI message",
    10013: "DLPI raw mode not supported",
    10014: "DLPI notification not supported by link",
    10015: "invalid DLPI notification type",
    10016: "invalid DLPI notification id",
    10017: "DLPI_IPNETINFO not supported",
}


@pytest.fixture(scope="module")
def dl(shim: Path) -> Libdlpi:
    return Libdlpi(str(shim))


@pytest.fixture(scope="module")
def hook(shim: Path) -> Any:
    cffi = pytest.importorskip("cffi")
    ffi = cffi.FFI()
    ffi.cdef("void ztone_shim_fail_next(int code, int err);")
    return ffi.dlopen(str(shim))


def test_struct_layouts_match_illumos_lp64() -> None:
    cffi = pytest.importorskip("cffi")
    ffi = cffi.FFI()
    ffi.cdef(libdlpi.CDEF)
    assert ffi.sizeof("dlpi_info_t") == 244
    assert ffi.sizeof("dlpi_recvinfo_t") == 80
    assert ffi.sizeof("dlpi_sendinfo_t") == 12
    offsets = {
        "di_max_sdu": 4,
        "di_mactype": 16,
        "di_linkname": 20,
        "di_physaddr": 52,
        "di_physaddrlen": 116,
        "di_bcastaddr": 117,
        "di_bcastaddrlen": 181,
        "di_sap": 184,
        "di_timeout": 188,
        "di_qos_sel": 192,
        "di_qos_range": 212,
    }
    for name, offset in offsets.items():
        assert ffi.offsetof("dlpi_info_t", name) == offset, name
    assert ffi.offsetof("dlpi_recvinfo_t", "dri_destaddrtype") == 68
    assert ffi.offsetof("dlpi_recvinfo_t", "dri_totmsglen") == 72


def test_code_table_is_complete() -> None:
    assert set(libdlpi.ERROR_CODES) == set(TEXTS) | {libdlpi.DLPI_SUCCESS, libdlpi.DL_SYSERR}


@pytest.mark.parametrize("code", sorted(TEXTS))
def test_every_error_code_raises_with_its_text(dl: Libdlpi, hook: Any, code: int) -> None:
    hook.ztone_shim_fail_next(code, 0)
    with pytest.raises(DlpiError) as info:
        dl.open("net0")
    e = info.value
    assert e.code == code and e.text == TEXTS[code] and e.function == "dlpi_open"
    assert e.sys_errno is None
    assert TEXTS[code] in str(e) and libdlpi.code_name(code) in str(e)


def test_syserr_carries_errno_and_strerror(dl: Libdlpi, hook: Any) -> None:
    hook.ztone_shim_fail_next(libdlpi.DL_SYSERR, errno.EPERM)
    with pytest.raises(DlpiError) as info:
        dl.open("net0")
    e = info.value
    assert e.code == libdlpi.DL_SYSERR and e.sys_errno == errno.EPERM == e.errno
    assert e.text == os.strerror(errno.EPERM)


def test_unknown_code_text(dl: Libdlpi) -> None:
    assert dl.strerror(12345) == "Unknown DLPI error"
    assert dl.strerror(libdlpi.DL_SYSERR, errno.EIO) == os.strerror(errno.EIO)


def test_link_name_checked_before_anything(dl: Libdlpi) -> None:
    for bad in ("lo", "net01", "zt:1", "0net1", "a" * 32 + "1"):
        with pytest.raises(DlpiError) as info:
            dl.open(bad)
        assert info.value.code == libdlpi.DLPI_ELINKNAMEINVAL, bad


def _closed_handle(dl: Libdlpi) -> DlpiHandle:
    return DlpiHandle(dl, None, "net0", libdlpi.DLPI_RAW)


def test_recv_timeout_and_eagain_mean_no_frame(dl: Libdlpi, hook: Any) -> None:
    handle = _closed_handle(dl)
    buf = bytearray(2048)
    hook.ztone_shim_fail_next(libdlpi.DLPI_ETIMEDOUT, 0)
    assert handle.recv_into(buf, 0) is None
    hook.ztone_shim_fail_next(libdlpi.DL_SYSERR, errno.EAGAIN)
    assert handle.recv_into(buf, 0) is None
    hook.ztone_shim_fail_next(libdlpi.DL_SYSERR, errno.EIO)
    with pytest.raises(DlpiError) as info:
        handle.recv_into(buf, 0)
    assert info.value.sys_errno == errno.EIO and info.value.function == "dlpi_recv"
    with pytest.raises(DlpiError) as info:
        handle.recv_into(buf, 0)  # NULL handle without injection
    assert info.value.code == libdlpi.DLPI_EINHANDLE


def test_library_name_is_configuration(shim: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(libdlpi.LIBRARY_ENV, str(shim))
    assert Libdlpi().library == str(shim)
    with pytest.raises(OSError, match="cannot load"):
        Libdlpi("/nonexistent/libdlpi.so.1")
