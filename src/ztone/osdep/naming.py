"""Virtual port names as zerotier-one gives them (PROTOCOL-NETWORK-SERVICE C.5.2).

Linux (``LinuxEthernetTap``): a ``devicemap`` entry for the network wins if no
interface of that name exists; otherwise ``"zt"`` + 8 base32 characters of a
40-bit value folded from the network ID, bumped by one on each collision::

    n40 = ((nwid ^ (nwid >> 24)) + trial) & (2**40 - 1)    # trial = 0, 1, 2, ...
    name = "zt" + base32(n40 as 5 big-endian bytes)       # RFC 4648 alphabet, lower case

e.g. ``8056c2e21c000001`` -> ``ztmjfmfyq5``. An interface "exists" when
``/proc/sys/net/ipv4/conf/<name>`` does (the test zerotier-one uses).

Pure functions only; the existence test is passed in, so the fake backend and the
tests use the same rule.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

BASE32_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
IFNAMSIZ = 16
"""Linux interface name buffer, terminating NUL included (names are at most 15 characters)."""

DEVICEMAP = "devicemap"
"""``<home>/devicemap``: lines ``<nwid 16 hex>=<device name>`` (read, never written, on Linux)."""

LINUX_NAME_RE = re.compile(r"zt[a-z2-7]{8}")
"""Every name :func:`linux_device_name` can produce (and nothing else)."""

MAX_TRIALS = 1 << 16
"""Give up after this many collisions (zerotier-one loops for ever)."""


def base32_5_to_8(data: bytes) -> str:
    """Five bytes as eight characters of :data:`BASE32_ALPHABET` (``_base32_5_to_8``)."""
    if len(data) != 5:
        raise ValueError("base32_5_to_8 takes exactly 5 bytes")
    value = int.from_bytes(data, "big")
    return "".join(BASE32_ALPHABET[(value >> shift) & 31] for shift in range(35, -1, -5))


def linux_device_name(nwid: int, trial: int = 0) -> str:
    """The Linux port name for network ``nwid`` at collision count ``trial``."""
    n40 = ((nwid ^ (nwid >> 24)) + trial) & 0xFFFFFFFFFF
    return "zt" + base32_5_to_8(n40.to_bytes(5, "big"))


def is_linux_ztone_name(name: str) -> bool:
    """True if ``name`` has the shape of a generated Linux port name (``zt`` + 8 base32)."""
    return LINUX_NAME_RE.fullmatch(name) is not None


def linux_interface_exists(name: str) -> bool:
    """zerotier-one's test: ``/proc/sys/net/ipv4/conf/<name>`` exists (in this netns)."""
    if not name or "/" in name or name in (".", ".."):
        return False
    return os.path.exists(f"/proc/sys/net/ipv4/conf/{name}")


def parse_devicemap(text: str) -> dict[str, str]:
    """``devicemap`` lines as zerotier-one reads them.

    Each line is split on runs of ``=``, CR and LF; the first two non-empty fields
    are the key (network ID, 16 lower-case hex as written by zerotier-one) and the
    device name. Later duplicates replace earlier ones.
    """
    result: dict[str, str] = {}
    for line in text.splitlines():
        fields = [f for f in re.split(r"[=\r\n]+", line) if f]
        if len(fields) >= 2:
            result[fields[0]] = fields[1]
    return result


def read_devicemap(home: str | os.PathLike[str] | None) -> dict[str, str]:
    """``<home>/devicemap`` parsed; empty if there is no home, no file or it is unreadable."""
    if home is None:
        return {}
    path = Path(home) / DEVICEMAP
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as e:
        log.warning("cannot read %s: %s", path, e)
        return {}
    return parse_devicemap(raw.decode("latin-1"))


def choose_linux_device_name(
    nwid: int,
    exists: Callable[[str], bool] = linux_interface_exists,
    devicemap: dict[str, str] | None = None,
) -> str:
    """The name zerotier-one would pick now for network ``nwid``.

    A ``devicemap`` name (cut to 15 characters, as ``Utils::scopy`` into ``ifr_name``
    does) is used when no interface of that name exists; else the first
    :func:`linux_device_name` trial for which ``exists`` is false.
    """
    if devicemap:
        mapped = devicemap.get(f"{nwid:016x}")
        if mapped:
            mapped = mapped[: IFNAMSIZ - 1]
            if not exists(mapped):
                return mapped
    for trial in range(MAX_TRIALS):
        name = linux_device_name(nwid, trial)
        if not exists(name):
            return name
    raise RuntimeError(f"no free device name for network {nwid:016x}")
