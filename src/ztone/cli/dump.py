"""``ztone-cli dump``: zerotier-cli 1.14.1's diagnostic report (PROTOCOL-NETWORK-SERVICE
C.3.2, ``dump``).

The report, in order::

    platform: Linux                       ("other unix based OS" elsewhere)
    zerotier version: 1.14.1
    <blank>
    status / ------ / <GET /status body>
    <blank> networks / -------- / <GET /network body>
    <blank> peers / ----- / <GET /peer body>
    <blank> local.conf / ---------- / <the file, or "None Present">
    <blank> Network Interfaces / ------------------ / <blank>
    per interface with an IPv4 address (SIOCGIFCONF), loopback skipped:
      Interface <n> / ----------- / Name: / MTU: / MAC: / "Addresses: " / one address a line

On Linux it is written to ``zerotier_dump.txt`` in the current directory (mode 0664)
after ``Writing dump to: <path>``; elsewhere it goes to stderr, interfaces left out.
One difference: the file is truncated first (the reference leaves the tail of a
longer earlier dump in place).
"""

from __future__ import annotations

import array
import fcntl
import os
import socket
import struct
import sys
from pathlib import Path
from typing import TextIO

SIOCGIFCONF = 0x8912
SIOCGIFFLAGS = 0x8913
SIOCGIFMTU = 0x8921
SIOCGIFHWADDR = 0x8927
IFF_LOOPBACK = 0x8
IFCONF_BUFFER = 1024  # the reference's buffer: interfaces past it are not listed
_IFREQ = 40 if struct.calcsize("P") == 8 else 32
_IFNAMSIZ = 16


def report_head(version: str, bodies: list[str], local_conf: str) -> str:
    """Everything before the interfaces (``bodies``: /status, /network, /peer)."""
    platform = "Linux" if sys.platform.startswith("linux") else "other unix based OS"
    out = [f"platform: {platform}\n", f"zerotier version: {version}\n\n"]
    for title, body in zip(("status", "networks", "peers"), bodies, strict=True):
        if title != "status":
            out.append("\n")
        out.append(f"{title}\n{'-' * len(title)}\n{body}\n")
    out.append("\nlocal.conf\n----------\n")
    out.append((local_conf or "None Present") + "\n")
    out.append("\nNetwork Interfaces\n------------------\n\n")
    return "".join(out)


def _ioctl(sock: socket.socket, request: int, name: bytes) -> bytes | None:
    try:
        return fcntl.ioctl(sock.fileno(), request, name.ljust(_IFREQ, b"\0"))
    except OSError:
        return None


def _configured_names(sock: socket.socket) -> list[bytes]:
    """SIOCGIFCONF: one entry per IPv4 address (so a name may repeat)."""
    buffer = array.array("B", bytes(IFCONF_BUFFER))
    address, _ = buffer.buffer_info()
    request = struct.pack("iL", IFCONF_BUFFER, address)
    try:
        length = struct.unpack("iL", fcntl.ioctl(sock.fileno(), SIOCGIFCONF, request))[0]
    except OSError:
        return []
    raw = buffer.tobytes()
    return [raw[i : i + _IFNAMSIZ].split(b"\0", 1)[0] for i in range(0, length, _IFREQ)]


def _addresses() -> dict[str, list[str]]:
    """Interface (IPv4: label) -> addresses, in the kernel's order (getifaddrs' view)."""
    found: dict[str, list[str]] = {}
    try:
        from pyroute2 import IPRoute  # noqa: PLC0415 (Linux only, loaded when dumping)
    except ImportError:
        return found
    with IPRoute() as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for entry in ipr.get_addr():
            if entry["family"] == socket.AF_INET:
                name = entry.get_attr("IFA_LABEL") or names.get(entry["index"])
                text = entry.get_attr("IFA_LOCAL") or entry.get_attr("IFA_ADDRESS")
            else:
                name = names.get(entry["index"])
                text = entry.get_attr("IFA_ADDRESS")
            if name and text:
                found.setdefault(str(name), []).append(str(text))
    return found


def interfaces_text() -> str:
    out: list[str] = []
    addresses = _addresses()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        count = 0
        for raw_name in _configured_names(sock):
            flags = _ioctl(sock, SIOCGIFFLAGS, raw_name)
            if flags is None:
                continue
            if struct.unpack_from("H", flags, _IFNAMSIZ)[0] & IFF_LOOPBACK:
                continue
            name = raw_name.decode("utf-8", "replace")
            out.append(f"Interface {count}\n-----------\nName: {name}\n")
            count += 1
            mtu = _ioctl(sock, SIOCGIFMTU, raw_name)
            if mtu is not None:
                out.append(f"MTU: {struct.unpack_from('i', mtu, _IFNAMSIZ)[0]}\n")
            hw = _ioctl(sock, SIOCGIFHWADDR, raw_name)
            if hw is not None:
                mac = hw[_IFNAMSIZ + 2 : _IFNAMSIZ + 8]
                out.append("MAC: " + ":".join(f"{b:02x}" for b in mac) + "\n")
            out.append("Addresses: \n")
            out.extend(f"{a}\n" for a in addresses.get(name, []))
    return "".join(out)


def write_report(head: str, stdout: TextIO, stderr: TextIO) -> int:
    """Finish and write the report as the reference does; the exit code."""
    if not sys.platform.startswith("linux"):
        stderr.write(head)
        return 0
    text = head + interfaces_text()
    path = Path(os.getcwd(), "zerotier_dump.txt")
    stdout.write(f"Writing dump to: {path}\n")
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o664)
    except OSError:
        stderr.write("Error creating file.\n")
        return 1
    with os.fdopen(fd, "wb") as f:
        f.write(text.encode("utf-8", "replace"))
    return 0
