"""TAP segmentation offload in real daemons (root, network namespaces).

The lab of test_private_network (ztone root, controller, members a and b on a private
planet). Member a's TAP is switched to TCP segmentation offload (the kernel says so:
``ETHTOOL_GTSO``/``ETHTOOL_GTXCSUM``, what ``ethtool -k`` shows), so the host hands the
daemon TCP super-packets; a TCP transfer of a few MB from a to b over the overlay,
IPv4 and IPv6, arrives intact (SHA-256 on both sides). Twice: cut by a's native data
plane (its counters in ``/metrics`` grow; when it is built), and with
``ZTONE_DATAPLANE=0``, cut by the general path (``osdep/linux/tso.py``).
"""

from __future__ import annotations

import array
import fcntl
import socket
import struct
import sys

import pytest

from ztone.crypto import backend
from ztone.service.dataplane import native_dataplane_module

from .netns import Lan
from .test_dataplane_netns import metrics
from .test_private_network import Member, create_network, lab

NATIVE = backend.NATIVE.native if backend.NATIVE is not None else None
SIOCETHTOOL = 0x8946
ETHTOOL_GTXCSUM = 0x16
ETHTOOL_GTSO = 0x1E
PORT = 5201
SIZE = 6 * 1024 * 1024

__all__ = ["lab"]  # the fixture, imported to be used here

SERVER = """
import hashlib, socket, sys, time
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
for _ in range(100):  # a new IPv6 address is tentative until DAD ends: ~10 s of tries
    try:
        s.bind((sys.argv[1], int(sys.argv[2])))
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("no bind")
s.listen(1)
s.settimeout(60)
c, _ = s.accept()
c.settimeout(60)
h, n = hashlib.sha256(), 0
while True:
    d = c.recv(1 << 16)
    if not d:
        break
    h.update(d)
    n += len(d)
print(n, h.hexdigest(), flush=True)
"""

CLIENT = """
import hashlib, random, socket, sys, time
data = random.Random(int(sys.argv[3])).randbytes(int(sys.argv[4]))
for _ in range(100):  # the server may not listen yet: at most ~10 s of tries
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("no connection")
c.settimeout(60)
c.sendall(data)
c.close()
print(len(data), hashlib.sha256(data).hexdigest(), flush=True)
"""


def ethtool_value(device: str, command: int) -> int:
    """``struct ethtool_value`` of a get command (SIOCETHTOOL), in the caller's netns."""
    value = array.array("I", [command, 0])
    ifreq = struct.pack("16sP", device.encode(), value.buffer_info()[0]).ljust(40, b"\0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifreq)
    return value[1]


def transfer(sender: Member, receiver: Member, target: str, seed: int) -> tuple[str, str]:
    """(what the sender sent, what the receiver got): "bytes sha256" each."""
    server = receiver.ns.popen(
        [sys.executable, "-c", SERVER, target, str(PORT)], stdout=-1, stderr=-1, text=True
    )
    try:
        client = sender.ns.run(
            [sys.executable, "-c", CLIENT, target, str(PORT), str(seed), str(SIZE)],
            timeout=90,
            check=False,
        )
        got, server_err = server.communicate(timeout=90)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(5)
    assert client.returncode == 0, (target, client.stderr, server_err)
    return client.stdout.strip(), got.strip()


@pytest.fixture(params=["native", "general"])
def cutter(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which path cuts a's super-packets (set before ``lab`` starts the daemons)."""
    if request.param == "native" and native_dataplane_module(NATIVE) is None:
        pytest.skip("the native data plane is not built")
    if request.param == "general":
        monkeypatch.setenv("ZTONE_DATAPLANE", "0")
    return str(request.param)


def test_tcp_over_a_tap_with_segmentation_offload(
    cutter: str, lab: tuple[Lan, dict[str, Member]]
) -> None:
    _, m = lab
    a, b = m["a"], m["b"]
    joined = create_network(m)
    dev = joined.net_a["portDeviceName"]
    assert a.ns.call(ethtool_value, dev, ETHTOOL_GTSO) == 1
    assert a.ns.call(ethtool_value, dev, ETHTOOL_GTXCSUM) == 1
    assert a.ping(joined.b4, count=2)
    # both ends' IPv6 addresses leave DAD's tentative state about a second after they
    # are set (longer on a loaded machine): wait for an answer, at most ~20 s
    assert any(a.ping(joined.b6, count=1, v6=True) for _ in range(10))
    before = metrics(a).get("dataplane_sent", 0)
    for seed, target in ((1, joined.b4), (2, joined.b6)):
        sent, got = transfer(a, b, target, seed)
        assert sent == got and sent.startswith(f"{SIZE} "), (target, sent, got)
    if cutter == "native":
        assert metrics(a)["dataplane_sent"] > before
    else:
        assert metrics(a).get("dataplane_sent", 0) == before == 0
