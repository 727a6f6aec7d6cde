"""Datalink and IP interface names for ztone's links on illumos (ILLUMOS.md §2.1, §9.1).

illumos accepts a datalink name only if (``dladm_valid_linkname``, libdlpi's
``ifparse_ifspec``):

* it is at most 31 characters long (``MAXLINKNAMELEN`` is 32 with the NUL),
* its first character is not a digit,
* it holds only letters, digits, ``_`` and ``.``,
* it ends in a run of digits (the PPA), and a run longer than one digit does not
  start with ``0``.

The seed port's ``zt``/``zb``/``zs`` + 13 base-32 characters break the fourth rule
whenever the last character is a letter (31 of 32 network ids).

ztone's names are ``zt`` + 8 characters + one role digit::

    zt<b32><role>      b32  = RFC 4648 base-32 (a-z, 2-7) of the 40-bit fold
                              ``nwid ^ (nwid >> 24)`` (+ trial), exactly as
                              zerotier-one names its Linux taps (PROTOCOL-NETWORK-SERVICE
                              C.5.2), so ``ztmjfmfyq5`` on Linux is ``ztmjfmfyq50`` here
                       role = 0 visible VNIC (carries the IPs; the interface users see)
                              1 backend VNIC (frames for the host are sent through it)
                              2 etherstub

Why that is always valid: the base-32 alphabet's digits are ``2``-``7``, never ``0``
or ``1``, so the trailing digit run either is the role digit alone or starts with a
base-32 digit in 2..7, never with ``0``. The names are 11 characters, so a logical
interface ``name:N`` stays within 31 characters for every ``N`` below 10**19, and
within Linux's 15-character interface names (the simulation) up to ``N`` = 999.

``trial`` is only bumped when two networks joined by one daemon fold to the same 40
bits (the same rule as upstream's Linux naming); the name is otherwise a pure function
of the network id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LINK_NAME = 31
"""Longest datalink name illumos accepts (MAXLINKNAMELEN - 1)."""

MAX_LIF_NAME = 31
"""Longest IP interface name, logical unit included (LIFNAMSIZ - 1)."""

ROLE_VISIBLE = 0
ROLE_BACKEND = 1
ROLE_ETHERSTUB = 2

_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_OWN_RE = re.compile(r"^zt[a-z2-7]{8}[012]$")
_VALID_CHARS_RE = re.compile(r"^[A-Za-z0-9_.]+$")


def valid_link_name(name: str) -> bool:
    """True iff illumos' ``dladm_valid_linkname`` (OmniOS tree) accepts ``name``."""
    if not 0 < len(name) <= MAX_LINK_NAME:
        return False
    if not _VALID_CHARS_RE.match(name) or name[0].isdigit():
        return False
    stem = name.rstrip("0123456789")
    digits = name[len(stem) :]
    if not digits:
        return False
    return not (len(digits) > 1 and digits[0] == "0")


def valid_lif_name(name: str) -> bool:
    """True iff ``name`` is a valid IP interface name: ``link`` or ``link:N``."""
    link, sep, unit = name.partition(":")
    if not valid_link_name(link) or len(name) > MAX_LIF_NAME:
        return False
    if not sep:
        return True
    return unit.isdigit() and (unit == "0" or not unit.startswith("0"))


def _base32_40(value: int) -> str:
    return "".join(_B32[(value >> shift) & 0x1F] for shift in range(35, -1, -5))


def stem(nwid: int, trial: int = 0) -> str:
    """``zt`` + base-32 of the 40-bit fold of ``nwid`` (upstream's Linux name)."""
    if not 0 <= nwid < 1 << 64:
        raise ValueError(f"network id out of range: {nwid:#x}")
    folded = ((nwid ^ (nwid >> 24)) + trial) & 0xFFFFFFFFFF
    return "zt" + _base32_40(folded)


@dataclass(frozen=True, slots=True)
class LinkNames:
    """The three datalinks of one network."""

    visible: str
    backend: str
    etherstub: str

    def all(self) -> tuple[str, str, str]:
        return (self.visible, self.backend, self.etherstub)


def link_names(nwid: int, trial: int = 0) -> LinkNames:
    base = stem(nwid, trial)
    return LinkNames(
        visible=f"{base}{ROLE_VISIBLE}",
        backend=f"{base}{ROLE_BACKEND}",
        etherstub=f"{base}{ROLE_ETHERSTUB}",
    )


def logical_name(link: str, unit: int) -> str:
    """``link:unit`` (``link`` for unit 0); ``ValueError`` if illumos would refuse it."""
    name = link if unit == 0 else f"{link}:{unit}"
    if unit < 0 or not valid_lif_name(name):
        raise ValueError(f"invalid logical interface name {name!r}")
    return name


def is_own_link(name: str) -> bool:
    """True iff ``name`` follows ztone's naming (so cleanup may remove it)."""
    return _OWN_RE.match(name) is not None


def role_of(name: str) -> int | None:
    """The role digit of one of ztone's names, else None."""
    return int(name[-1]) if is_own_link(name) else None
