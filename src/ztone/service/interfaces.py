"""Local interface addresses worth advertising to peers (``Binder::refresh``, C.4.2).

Linux: IPv4 from ``SIOCGIFCONF``, IPv6 from ``/proc/net/if_inet6``. Kept are
addresses of scope global, private, pseudo-private or shared on interfaces whose
names do not start with ``lo``, ``zt``, ``tun``, ``tap`` or a configured prefix.
"""

from __future__ import annotations

import array
import fcntl
import ipaddress
import socket
import struct
import sys

from ztone.node.wire.inetaddress import InetAddress, IpScope

_SKIP_PREFIXES = ("lo", "zt", "tun", "tap")
_USABLE = (IpScope.GLOBAL, IpScope.PRIVATE, IpScope.PSEUDOPRIVATE, IpScope.SHARED)
SIOCGIFCONF = 0x8912


def _ipv4_addresses() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        size = 40 * 128
        buf = array.array("B", b"\0" * size)
        addr, _ = buf.buffer_info()
        req = struct.pack("iL", size, addr)
        used = struct.unpack("iL", fcntl.ioctl(sock.fileno(), SIOCGIFCONF, req))[0]
        raw = buf.tobytes()[:used]
        for i in range(0, used, 40):
            name = raw[i : i + 16].split(b"\0", 1)[0].decode(errors="replace")
            ip = socket.inet_ntoa(raw[i + 20 : i + 24])
            out.append((name, ip))
    except OSError:
        pass
    finally:
        sock.close()
    return out


def _ipv6_addresses() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 6:
                    continue
                flags = int(fields[4], 16)
                if flags & 0x01:  # IFA_F_TEMPORARY: never advertise privacy addresses
                    continue
                ip = str(ipaddress.IPv6Address(bytes.fromhex(fields[0])))
                out.append((fields[5], ip))
    except OSError:
        pass
    return out


def local_addresses(port: int, prefix_blacklist: list[str] | None = None) -> list[InetAddress]:
    """Usable local addresses with ``port``, for PUSH_DIRECT_PATHS and ``listeningOn``."""
    if not sys.platform.startswith("linux"):
        return []
    skip = _SKIP_PREFIXES + tuple(prefix_blacklist or ())
    out: list[InetAddress] = []
    for name, ip in _ipv4_addresses() + _ipv6_addresses():
        if name.startswith(skip):
            continue
        addr = InetAddress(ipaddress.ip_address(ip), port)
        if addr.scope() in _USABLE and addr not in out:
            out.append(addr)
    return out
