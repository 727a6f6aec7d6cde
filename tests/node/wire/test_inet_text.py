"""InetAddress text is zerotier-one's (``toIpString`` is the C library's ``inet_ntop``)
for every address kind, IPv4-mapped and IPv4-compatible IPv6 included."""

from __future__ import annotations

import ipaddress
import socket

from hypothesis import given
from hypothesis import strategies as st

from ztone.node.wire.inetaddress import InetAddress, ip_text, ntop6
from ztone.service.api.render import inet_text


def test_ipv4_mapped_prints_dotted() -> None:
    a = InetAddress(ipaddress.ip_address("::ffff:1.2.3.4"), 9993)
    assert str(a) == "::ffff:1.2.3.4/9993"
    assert a.ip_string() == "::ffff:1.2.3.4"
    assert inet_text(a) == "::ffff:1.2.3.4/9993"


def test_every_kind_as_zerotier_one() -> None:
    cases = {
        "1.2.3.4": "1.2.3.4",
        "::": "::",
        "::1": "::1",
        "::2": "::2",
        "::1.2.3.4": "::1.2.3.4",
        "::ffff:0.0.0.0": "::ffff:0.0.0.0",
        "::ffff:1.2.3.4": "::ffff:1.2.3.4",
        "::fffe:1.2.3.4": "::fffe:102:304",
        "64:ff9b::1.2.3.4": "64:ff9b::102:304",
        "fe80::1": "fe80::1",
        "fd80:56c2:e21c:0:199:9389:e92c:eee5": "fd80:56c2:e21c:0:199:9389:e92c:eee5",
        "1:0:0:1:0:0:0:1": "1:0:0:1::1",
        "1:0:0:2:0:0:3:4": "1::2:0:0:3:4",
        "1:2:3:4:5:6:7:0": "1:2:3:4:5:6:7:0",
    }
    for given_text, expected in cases.items():
        ip = ipaddress.ip_address(given_text)
        assert ip_text(ip) == expected, given_text
        family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
        assert socket.inet_ntop(family, ip.packed) == expected, given_text


_words = st.sampled_from([0, 0, 0, 0, 1, 0xFFFF, 0x102, 0xABCD])


@given(st.lists(_words, min_size=8, max_size=8))
def test_matches_inet_ntop(words: list[int]) -> None:
    packed = b"".join(w.to_bytes(2, "big") for w in words)
    assert ntop6(packed) == socket.inet_ntop(socket.AF_INET6, packed)
    ip = ipaddress.IPv6Address(packed)
    assert str(InetAddress(ip, 1)) == socket.inet_ntop(socket.AF_INET6, packed) + "/1"


@given(st.binary(min_size=16, max_size=16))
def test_random_addresses_match_inet_ntop(packed: bytes) -> None:
    assert ntop6(packed) == socket.inet_ntop(socket.AF_INET6, packed)
