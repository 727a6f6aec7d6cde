"""A cffi ABI-mode binding of illumos' ``libdlpi.so.1`` (ILLUMOS.md §1).

Nothing is compiled: the declarations below are handed to ``ffi.cdef`` and the
library is opened with ``ffi.dlopen``. The library is ``libdlpi.so.1`` unless the
constructor is given a name or path, or ``ZTONE_LIBDLPI`` names one (the OmniOS
simulation points it at a shim built from ``tests/illumos_sim/libdlpi_shim.c``).

Every libdlpi call that returns something other than ``DLPI_SUCCESS`` raises
:class:`DlpiError` with the code, the function, ``dlpi_strerror``'s text and, for
``DL_SYSERR``, the ``errno`` the call left behind. :meth:`DlpiHandle.recv` is the one
exception: "nothing to read" (``DLPI_ETIMEDOUT``, or ``DL_SYSERR`` with ``EAGAIN`` /
``EWOULDBLOCK`` on a non-blocking descriptor) returns ``None`` (ILLUMOS.md §1.8).
``errno`` is set to 0 before ``dlpi_recv`` and ``dlpi_send``: libdlpi reports a
hang-up as ``DL_SYSERR`` without touching errno, and cffi would otherwise hand over
the previous call's value (a ``DL_SYSERR`` with errno 0 is the hang-up).

Struct layouts (LP64, checked by the tests with ``ffi.sizeof``/``ffi.offsetof``):
``dlpi_info_t`` 244 bytes, ``dlpi_recvinfo_t`` 80, ``dlpi_sendinfo_t`` 12.

A handle must be used by one thread at a time (dlpi_open(3DLPI)); ztone uses each
handle only from its event loop.
"""

from __future__ import annotations

import errno as errno_mod
import importlib
import os
from dataclasses import dataclass
from typing import Any

DEFAULT_LIBRARY = "libdlpi.so.1"
LIBRARY_ENV = "ZTONE_LIBDLPI"

# <libdlpi.h> limits and open flags
DLPI_PHYSADDR_MAX = 64
DLPI_LINKNAME_MAX = 32
DLPI_ANY_SAP = 0xFFFFFFFF
DLPI_DEF_TIMEOUT = 5
DLPI_EXCL = 0x0001
DLPI_PASSIVE = 0x0002
DLPI_RAW = 0x0004
DLPI_SERIAL = 0x0008
DLPI_NOATTACH = 0x0010
DLPI_NATIVE = 0x0020
DLPI_DEVONLY = 0x0040
DLPI_DEVIPNET = 0x0080
DLPI_IPNETINFO = 0x0100

# libdlpi return codes
DLPI_SUCCESS = 10000
DLPI_EINVAL = 10001
DLPI_ELINKNAMEINVAL = 10002
DLPI_ENOLINK = 10003
DLPI_EBADLINK = 10004
DLPI_EINHANDLE = 10005
DLPI_ETIMEDOUT = 10006
DLPI_EVERNOTSUP = 10007
DLPI_EMODENOTSUP = 10008
DLPI_EUNAVAILSAP = 10009
DLPI_FAILURE = 10010
DLPI_ENOTSTYLE2 = 10011
DLPI_EBADMSG = 10012
DLPI_ERAWNOTSUP = 10013
DLPI_ENOTEINVAL = 10014
DLPI_ENOTENOTSUP = 10015
DLPI_ENOTEIDINVAL = 10016
DLPI_EIPNETINFONOTSUP = 10017
DLPI_ERRMAX = 10018

# <sys/dlpi.h> error codes (returned directly by libdlpi functions)
DL_BADSAP = 0x00
DL_BADADDR = 0x01
DL_ACCESS = 0x02
DL_OUTSTATE = 0x03
DL_SYSERR = 0x04
DL_BADCORR = 0x05
DL_BADDATA = 0x06
DL_UNSUPPORTED = 0x07
DL_BADPPA = 0x08
DL_BADPRIM = 0x09
DL_BADQOSPARAM = 0x0A
DL_BADQOSTYPE = 0x0B
DL_BADTOKEN = 0x0C
DL_BOUND = 0x0D
DL_INITFAILED = 0x0E
DL_NOADDR = 0x0F
DL_NOTINIT = 0x10
DL_UNDELIVERABLE = 0x11
DL_NOTSUPPORTED = 0x12
DL_TOOMANY = 0x13
DL_NOTENAB = 0x14
DL_BUSY = 0x15
DL_NOAUTO = 0x16
DL_NOXIDAUTO = 0x17
DL_NOTESTAUTO = 0x18
DL_XIDAUTO = 0x19
DL_TESTAUTO = 0x1A
DL_PENDING = 0x1B

# promiscuous levels and modifiers
DL_PROMISC_PHYS = 0x01
DL_PROMISC_SAP = 0x02
DL_PROMISC_MULTI = 0x03
DL_PROMISC_RX_ONLY = 0x04
DL_PROMISC_INCOMING = 0x05  # newer than r151054
DL_PROMISC_OUTGOING = 0x06  # newer than r151054
DL_PROMISC_FIXUPS = 0x07

# media types, states, address types, styles
DL_CSMACD = 0x0
DL_TPB = 0x1
DL_TPR = 0x2
DL_ETHER = 0x4
DL_FDDI = 0x8
DL_OTHER = 0x9
DL_IB = 0x1A
DL_UNBOUND = 0x00
DL_IDLE = 0x03
DL_UNATTACHED = 0x04
DL_FACT_PHYS_ADDR = 0x01
DL_CURR_PHYS_ADDR = 0x02
DL_CURR_DEST_ADDR = 0x05
DL_STYLE1 = 0x0500
DL_STYLE2 = 0x0501
DL_CLDLS = 0x02
DL_UNKNOWN = -1
DL_QOS_DONT_CARE = -2

DLPI_ADDRTYPE_UNICAST = 0
DLPI_ADDRTYPE_GROUP = 1

ETHER_HEADER = 14

HANGUP_TEXT = "stream hung up (DL_SYSERR without errno)"
""":class:`DlpiError` text of a receive on a hung-up stream (libdlpi sets no errno)."""

CDEF = """
typedef unsigned int uint_t;
typedef unsigned char uchar_t;
typedef int32_t t_scalar_t;
typedef uint32_t t_uscalar_t;
typedef int boolean_t;

typedef struct __dlpi_handle *dlpi_handle_t;

typedef struct {
    t_scalar_t dl_min;
    t_scalar_t dl_max;
} dl_priority_t;

typedef struct {
    t_scalar_t dl_target_value;
    t_scalar_t dl_accept_value;
} dl_transdelay_t;

typedef struct {
    t_scalar_t dl_min;
    t_scalar_t dl_max;
} dl_protect_t;

typedef struct {
    t_uscalar_t dl_qos_type;
    t_scalar_t dl_trans_delay;
    t_scalar_t dl_priority;
    t_scalar_t dl_protection;
    t_scalar_t dl_residual_error;
} dl_qos_cl_sel1_t;

typedef struct {
    t_uscalar_t dl_qos_type;
    dl_transdelay_t dl_trans_delay;
    dl_priority_t dl_priority;
    dl_protect_t dl_protection;
    t_scalar_t dl_residual_error;
} dl_qos_cl_range1_t;

typedef struct {
    uint_t di_opts;
    uint_t di_max_sdu;
    uint_t di_min_sdu;
    uint_t di_state;
    uint_t di_mactype;
    char di_linkname[32];
    uchar_t di_physaddr[64];
    uchar_t di_physaddrlen;
    uchar_t di_bcastaddr[64];
    uchar_t di_bcastaddrlen;
    uint_t di_sap;
    int di_timeout;
    dl_qos_cl_sel1_t di_qos_sel;
    dl_qos_cl_range1_t di_qos_range;
} dlpi_info_t;

typedef struct {
    uint_t dsi_sap;
    dl_priority_t dsi_prio;
} dlpi_sendinfo_t;

typedef enum {
    DLPI_ADDRTYPE_UNICAST,
    DLPI_ADDRTYPE_GROUP
} dlpi_addrtype_t;

typedef struct {
    uchar_t dri_destaddr[64];
    uchar_t dri_destaddrlen;
    dlpi_addrtype_t dri_destaddrtype;
    size_t dri_totmsglen;
} dlpi_recvinfo_t;

typedef int dlpi_walkfunc_t(const char *, void *);

const char *dlpi_mactype(uint_t);
const char *dlpi_strerror(int);
const char *dlpi_linkname(dlpi_handle_t);
void dlpi_walk(dlpi_walkfunc_t *, void *, uint_t);
int dlpi_open(const char *, dlpi_handle_t *, uint_t);
void dlpi_close(dlpi_handle_t);
int dlpi_info(dlpi_handle_t, dlpi_info_t *, uint_t);
int dlpi_bind(dlpi_handle_t, uint_t, uint_t *);
int dlpi_unbind(dlpi_handle_t);
int dlpi_enabmulti(dlpi_handle_t, const void *, size_t);
int dlpi_disabmulti(dlpi_handle_t, const void *, size_t);
int dlpi_promiscon(dlpi_handle_t, uint_t);
int dlpi_promiscoff(dlpi_handle_t, uint_t);
int dlpi_get_physaddr(dlpi_handle_t, uint_t, void *, size_t *);
int dlpi_set_physaddr(dlpi_handle_t, uint_t, const void *, size_t);
int dlpi_recv(dlpi_handle_t, void *, size_t *, void *, size_t *, int, dlpi_recvinfo_t *);
int dlpi_send(dlpi_handle_t, const void *, size_t, const void *, size_t,
              const dlpi_sendinfo_t *);
int dlpi_fd(dlpi_handle_t);
int dlpi_set_timeout(dlpi_handle_t, int);
uint_t dlpi_arptype(uint_t);
uint_t dlpi_iftype(uint_t);
int dlpi_parselink(const char *, char *, uint_t *);
int dlpi_makelink(char *, const char *, uint_t);
uint_t dlpi_style(dlpi_handle_t);
"""

_CODE_NAMES = (
    "DLPI_SUCCESS",
    "DLPI_EINVAL",
    "DLPI_ELINKNAMEINVAL",
    "DLPI_ENOLINK",
    "DLPI_EBADLINK",
    "DLPI_EINHANDLE",
    "DLPI_ETIMEDOUT",
    "DLPI_EVERNOTSUP",
    "DLPI_EMODENOTSUP",
    "DLPI_EUNAVAILSAP",
    "DLPI_FAILURE",
    "DLPI_ENOTSTYLE2",
    "DLPI_EBADMSG",
    "DLPI_ERAWNOTSUP",
    "DLPI_ENOTEINVAL",
    "DLPI_ENOTENOTSUP",
    "DLPI_ENOTEIDINVAL",
    "DLPI_EIPNETINFONOTSUP",
    "DL_BADSAP",
    "DL_BADADDR",
    "DL_ACCESS",
    "DL_OUTSTATE",
    "DL_SYSERR",
    "DL_BADCORR",
    "DL_BADDATA",
    "DL_UNSUPPORTED",
    "DL_BADPPA",
    "DL_BADPRIM",
    "DL_BADQOSPARAM",
    "DL_BADQOSTYPE",
    "DL_BADTOKEN",
    "DL_BOUND",
    "DL_INITFAILED",
    "DL_NOADDR",
    "DL_NOTINIT",
    "DL_UNDELIVERABLE",
    "DL_NOTSUPPORTED",
    "DL_TOOMANY",
    "DL_NOTENAB",
    "DL_BUSY",
    "DL_NOAUTO",
    "DL_NOXIDAUTO",
    "DL_NOTESTAUTO",
    "DL_XIDAUTO",
    "DL_TESTAUTO",
    "DL_PENDING",
)

ERROR_CODES: dict[int, str] = {int(globals()[name]): name for name in _CODE_NAMES}
"""Every libdlpi/DLPI return code with its symbolic name."""


def code_name(code: int) -> str:
    """``DLPI_ENOLINK`` for 10003 and so on; the number itself if unknown."""
    return ERROR_CODES.get(code, str(code))


class DlpiError(OSError):
    """A libdlpi call failed.

    ``code`` is the libdlpi/DLPI return code, ``text`` what ``dlpi_strerror`` says
    about it, ``function`` the libdlpi function, and ``sys_errno`` the ``errno`` for
    ``DL_SYSERR`` (None otherwise; also exposed as ``errno`` like any ``OSError``).
    """

    def __init__(self, function: str, code: int, text: str, sys_errno: int | None = None) -> None:
        message = f"{function}: {text} ({code_name(code)})"
        if sys_errno is not None:
            message = f"{function}: {text} ({code_name(code)}, errno {sys_errno})"
        super().__init__(sys_errno, message)
        self.function = function
        self.code = code
        self.text = text
        self.sys_errno = sys_errno

    def __str__(self) -> str:
        return str(self.args[1])


@dataclass(frozen=True, slots=True)
class DlpiInfo:
    """The interesting part of ``dlpi_info_t``."""

    linkname: str
    max_sdu: int
    min_sdu: int
    state: int
    mactype: int
    physaddr: bytes
    bcastaddr: bytes
    sap: int
    timeout: int


def _load_cffi() -> Any:
    # cffi ships no type information; treat its objects as Any (imported by name so
    # ``mypy --strict`` needs no stub package).
    return importlib.import_module("cffi")


class Libdlpi:
    """``libdlpi.so.1`` opened through cffi."""

    def __init__(self, library: str | None = None) -> None:
        self.library = library or os.environ.get(LIBRARY_ENV) or DEFAULT_LIBRARY
        cffi = _load_cffi()
        self.ffi: Any = cffi.FFI()
        self.ffi.cdef(CDEF)
        try:
            self.lib: Any = self.ffi.dlopen(self.library)
        except OSError as e:
            raise OSError(f"cannot load {self.library}: {e}") from e

    # --- errors ---------------------------------------------------------------------

    def strerror(self, code: int, sys_errno: int | None = None) -> str:
        """``dlpi_strerror(code)``; for ``DL_SYSERR`` with ``errno`` = ``sys_errno``."""
        if sys_errno is not None:
            self.ffi.errno = sys_errno  # cffi restores this errno before the call
        text = self.lib.dlpi_strerror(code)
        return "" if text == self.ffi.NULL else str(self.ffi.string(text).decode())

    def error(self, function: str, code: int, sys_errno: int | None = None) -> DlpiError:
        if code == DL_SYSERR:
            saved = self.ffi.errno if sys_errno is None else sys_errno
            return DlpiError(function, code, self.strerror(code, saved), saved)
        return DlpiError(function, code, self.strerror(code))

    def check(self, function: str, code: int) -> None:
        if code != DLPI_SUCCESS:
            raise self.error(function, code)

    # --- library-level functions --------------------------------------------------

    def open(self, linkname: str, flags: int = DLPI_RAW) -> DlpiHandle:
        """``dlpi_open``: a handle on ``linkname`` (left in ``DL_UNBOUND``)."""
        out = self.ffi.new("dlpi_handle_t *")
        rc = self.lib.dlpi_open(linkname.encode(), out, flags)
        self.check("dlpi_open", rc)
        return DlpiHandle(self, out[0], linkname, flags)

    def mactype(self, mactype: int) -> str:
        return str(self.ffi.string(self.lib.dlpi_mactype(mactype)).decode())

    def walk(self) -> list[str]:
        """``dlpi_walk``: names of the active datalinks (needs dlmgmtd on illumos)."""
        names: list[str] = []

        def visit(name: Any, _arg: Any) -> int:
            names.append(self.ffi.string(name).decode())
            return 0

        callback = self.ffi.callback("int(const char *, void *)", visit)
        self.lib.dlpi_walk(callback, self.ffi.NULL, 0)
        return names

    def arptype(self, mactype: int) -> int:
        return int(self.lib.dlpi_arptype(mactype))

    def iftype(self, mactype: int) -> int:
        return int(self.lib.dlpi_iftype(mactype))


class DlpiHandle:
    """One ``dlpi_handle_t``. Close it with :meth:`close` (or use ``with``)."""

    def __init__(self, owner: Libdlpi, handle: Any, linkname: str, flags: int) -> None:
        self._dl = owner
        self._ffi = owner.ffi
        self._lib = owner.lib
        self._h: Any = handle
        self.linkname = linkname
        self.flags = flags
        self._msglen = self._ffi.new("size_t *")

    def __enter__(self) -> DlpiHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._h is None

    def _handle(self) -> Any:
        # A closed handle is passed as NULL, which libdlpi answers with DLPI_EINHANDLE.
        return self._ffi.NULL if self._h is None else self._h

    def close(self) -> None:
        if self._h is not None:
            self._lib.dlpi_close(self._h)
            self._h = None

    def fd(self) -> int:
        """``dlpi_fd``: the descriptor to poll (don't close it, don't ioctl it)."""
        value = int(self._lib.dlpi_fd(self._handle()))
        if value < 0:
            raise self._dl.error("dlpi_fd", DLPI_EINHANDLE)
        return value

    def set_nonblocking(self) -> None:
        """Put ``dlpi_fd`` in ``O_NONBLOCK`` mode, as bhyve's DLPI backend does."""
        os.set_blocking(self.fd(), False)

    def info(self) -> DlpiInfo:
        info = self._ffi.new("dlpi_info_t *")
        self._dl.check("dlpi_info", self._lib.dlpi_info(self._handle(), info, 0))
        return DlpiInfo(
            linkname=self._ffi.string(info.di_linkname).decode(),
            max_sdu=int(info.di_max_sdu),
            min_sdu=int(info.di_min_sdu),
            state=int(info.di_state),
            mactype=int(info.di_mactype),
            physaddr=bytes(self._ffi.buffer(info.di_physaddr, info.di_physaddrlen)),
            bcastaddr=bytes(self._ffi.buffer(info.di_bcastaddr, info.di_bcastaddrlen)),
            sap=int(info.di_sap),
            timeout=int(info.di_timeout),
        )

    def bind(self, sap: int = DLPI_ANY_SAP) -> int:
        """``dlpi_bind``; returns the SAP the provider bound."""
        bound = self._ffi.new("uint_t *")
        self._dl.check("dlpi_bind", self._lib.dlpi_bind(self._handle(), sap, bound))
        return int(bound[0])

    def unbind(self) -> None:
        self._dl.check("dlpi_unbind", self._lib.dlpi_unbind(self._handle()))

    def promiscon(self, level: int) -> None:
        self._dl.check("dlpi_promiscon", self._lib.dlpi_promiscon(self._handle(), level))

    def promiscoff(self, level: int) -> None:
        self._dl.check("dlpi_promiscoff", self._lib.dlpi_promiscoff(self._handle(), level))

    def enabmulti(self, address: bytes) -> None:
        rc = self._lib.dlpi_enabmulti(self._handle(), address, len(address))
        self._dl.check("dlpi_enabmulti", rc)

    def disabmulti(self, address: bytes) -> None:
        rc = self._lib.dlpi_disabmulti(self._handle(), address, len(address))
        self._dl.check("dlpi_disabmulti", rc)

    def get_physaddr(self, kind: int = DL_CURR_PHYS_ADDR) -> bytes:
        buf = self._ffi.new("uchar_t[]", DLPI_PHYSADDR_MAX)
        length = self._ffi.new("size_t *", DLPI_PHYSADDR_MAX)
        rc = self._lib.dlpi_get_physaddr(self._handle(), kind, buf, length)
        self._dl.check("dlpi_get_physaddr", rc)
        return bytes(self._ffi.buffer(buf, length[0]))

    def set_physaddr(self, address: bytes, kind: int = DL_CURR_PHYS_ADDR) -> None:
        rc = self._lib.dlpi_set_physaddr(self._handle(), kind, address, len(address))
        self._dl.check("dlpi_set_physaddr", rc)

    def set_timeout(self, seconds: int) -> None:
        rc = self._lib.dlpi_set_timeout(self._handle(), seconds)
        self._dl.check("dlpi_set_timeout", rc)

    def style(self) -> int:
        return int(self._lib.dlpi_style(self._handle()))

    def recv_into(self, buffer: bytearray | memoryview, msec: int = 0) -> int | None:
        """``dlpi_recv`` into ``buffer``; the number of bytes stored, None if nothing came.

        In raw mode the bytes are a whole Ethernet frame. A frame longer than the
        buffer is cut to it (libdlpi drops the rest). ``msec`` 0 polls, -1 blocks.
        """
        length = self._msglen
        length[0] = len(buffer)  # must be reset before every call (ILLUMOS.md §9.3)
        target = self._ffi.from_buffer(buffer)
        # cffi hands the previous call's errno to the next one, and on a hang-up
        # (POLLHUP) libdlpi returns DL_SYSERR without setting errno: a stale EAGAIN
        # would read as "nothing to read" on every wake-up of a descriptor that
        # stays readable. Starting from 0 makes the hang-up an error.
        self._ffi.errno = 0
        rc = self._lib.dlpi_recv(
            self._handle(), self._ffi.NULL, self._ffi.NULL, target, length, msec, self._ffi.NULL
        )
        if rc == DLPI_SUCCESS:
            return int(length[0])
        if rc == DLPI_ETIMEDOUT:
            return None
        if rc == DL_SYSERR:
            saved = self._ffi.errno
            if saved in (errno_mod.EAGAIN, errno_mod.EWOULDBLOCK):
                return None
            if saved == 0:
                raise DlpiError("dlpi_recv", rc, HANGUP_TEXT, 0)
            raise self._dl.error("dlpi_recv", rc, saved)
        raise self._dl.error("dlpi_recv", rc)

    def recv(self, size: int = 65536, msec: int = 0) -> bytes | None:
        buffer = bytearray(size)
        n = self.recv_into(buffer, msec)
        return None if n is None else bytes(buffer[:n])

    def send(self, frame: bytes | bytearray | memoryview) -> None:
        """``dlpi_send`` of a whole frame (raw mode): no address, no sendinfo."""
        data = self._ffi.from_buffer(frame)
        self._ffi.errno = 0  # a DL_SYSERR must not inherit an older call's EAGAIN
        rc = self._lib.dlpi_send(
            self._handle(), self._ffi.NULL, 0, data, len(frame), self._ffi.NULL
        )
        self._dl.check("dlpi_send", rc)
