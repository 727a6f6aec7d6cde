"""Small TCP tools the no-root namespace test runs inside its namespaces.

``python noroot_tools.py <command> ...``; every server serves a bounded number of
connections and gives up after a timeout; every client is bounded in time.

* ``echo PORT COUNT``: echo server on 0.0.0.0/:: PORT for COUNT connections;
* ``sink PORT``: one connection: read to EOF, answer the SHA-256 (hex) of what came;
* ``socks-upload PROXYPORT HOST PORT SIZE SEED [USER PASS]``: through the SOCKS5 proxy on
  127.0.0.1:PROXYPORT, send SIZE pseudo-random bytes (SEED) to HOST:PORT, shut down,
  print the server's answer and the SHA-256 of what was sent;
* ``socks-echo PROXYPORT HOST PORT SIZE SEED``: through SOCKS5, send SIZE bytes to an echo
  server while reading them back; print "same" if every byte came back identical;
* ``echo-client HOST PORT SIZE``: direct TCP, same check as ``socks-echo``;
* ``socks-reply PROXYPORT HOST PORT``: print the SOCKS5 reply code of a CONNECT;
* ``udp-echo PORT COUNT``: UDP echo on 0.0.0.0/:: PORT for COUNT datagrams;
* ``socks-udp PROXYPORT HOST PORT``: UDP ASSOCIATE, one datagram to HOST:PORT through
  the relay (tried up to 5 times); print "same" if the echo came back with its sender;
* ``source PORT SIZE``: one connection: send SIZE bytes, close;
* ``timed-upload PROXYPORT|- HOST PORT SIZE`` / ``timed-download PROXYPORT|- HOST PORT``:
  through SOCKS5 (or directly with ``-``), send SIZE bytes to a ``sink`` / read a
  ``source`` to its end; print the bytes moved and the seconds it took (for bench/).
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import socket
import sys
import threading
import time

TIMEOUT = 120.0


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def serve(port: int, count: int, handle: object) -> None:
    srv = socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True)
    srv.settimeout(TIMEOUT)
    for _ in range(count):
        conn, _ = srv.accept()
        conn.settimeout(TIMEOUT)
        with conn:
            handle(conn)  # type: ignore[operator]


def echo(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


def sink(conn: socket.socket) -> None:
    digest = hashlib.sha256()
    while data := conn.recv(65536):
        digest.update(data)
    conn.sendall(digest.hexdigest().encode())


def socks_connect(
    proxy_port: int, host: str, port: int, auth: tuple[str, str] | None = None
) -> tuple[socket.socket, int]:
    s = socket.create_connection(("127.0.0.1", proxy_port), timeout=TIMEOUT)
    if auth is None:
        s.sendall(b"\x05\x01\x00")
        assert s.recv(2) == b"\x05\x00"
    else:
        s.sendall(b"\x05\x01\x02")
        assert s.recv(2) == b"\x05\x02"
        user, password = (x.encode() for x in auth)
        s.sendall(b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password)
        assert s.recv(2) == b"\x01\x00"
    ip = ipaddress.ip_address(host)
    atyp = b"\x01" if ip.version == 4 else b"\x04"
    s.sendall(b"\x05\x01\x00" + atyp + ip.packed + port.to_bytes(2, "big"))
    head = recv_exact(s, 4)
    rest = 4 + 2 if head[3] == 1 else 16 + 2
    recv_exact(s, rest)
    return s, head[1]


def socks_udp(proxy_port: int, host: str, port: int) -> bool:
    ctl = socket.create_connection(("127.0.0.1", proxy_port), timeout=TIMEOUT)
    ctl.sendall(b"\x05\x01\x00")
    assert ctl.recv(2) == b"\x05\x00"
    ctl.sendall(b"\x05\x03\x00\x01" + bytes(6))
    head = recv_exact(ctl, 10)
    assert head[1] == 0, head
    relay = (str(ipaddress.ip_address(head[4:8])), int.from_bytes(head[8:10], "big"))
    ip = ipaddress.ip_address(host)
    atyp = b"\x01" if ip.version == 4 else b"\x04"
    header = b"\x00\x00\x00" + atyp + ip.packed + port.to_bytes(2, "big")
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(2.0)
    for _ in range(5):  # the first may wait for ARP; UDP may be lost
        u.sendto(header + b"over the overlay", relay)
        try:
            data = u.recv(65536)
        except TimeoutError:
            continue
        return data == header + b"over the overlay"
    return False


def recv_exact(s: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return bytes(out)


def check_echo(s: socket.socket, data: bytes) -> bool:
    got = bytearray()

    def reader() -> None:
        while len(got) < len(data):
            chunk = s.recv(65536)
            if not chunk:
                return
            got.extend(chunk)

    t = threading.Thread(target=reader)
    t.start()
    s.sendall(data)
    t.join(TIMEOUT)
    return bytes(got) == data


def main(argv: list[str]) -> int:
    cmd, args = argv[0], argv[1:]
    if cmd == "echo":
        serve(int(args[0]), int(args[1]), echo)
    elif cmd == "sink":
        serve(int(args[0]), 1, sink)
    elif cmd == "socks-upload":
        auth = (args[5], args[6]) if len(args) > 6 else None
        s, code = socks_connect(int(args[0]), args[1], int(args[2]), auth)
        assert code == 0, code
        data = payload(int(args[3]), int(args[4]))
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := s.recv(1024):
            answer += chunk
        print(answer.decode(), hashlib.sha256(data).hexdigest())
    elif cmd == "socks-echo":
        s, code = socks_connect(int(args[0]), args[1], int(args[2]))
        assert code == 0, code
        print("same" if check_echo(s, payload(int(args[3]), int(args[4]))) else "different")
    elif cmd == "echo-client":
        s = socket.create_connection((args[0], int(args[1])), timeout=TIMEOUT)
        print("same" if check_echo(s, payload(int(args[2]), 7)) else "different")
    elif cmd == "udp-echo":
        u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        u.bind(("::", int(args[0])))
        u.settimeout(TIMEOUT)
        for _ in range(int(args[1])):
            data, addr = u.recvfrom(65536)
            u.sendto(data, addr)
    elif cmd == "socks-udp":
        print("same" if socks_udp(int(args[0]), args[1], int(args[2])) else "different")
    elif cmd == "source":
        size = int(args[1])
        serve(int(args[0]), 1, lambda conn: conn.sendall(payload(size, 3)))
    elif cmd in ("timed-upload", "timed-download"):
        if args[0] == "-":
            s = socket.create_connection((args[1], int(args[2])), timeout=TIMEOUT)
        else:
            s, code = socks_connect(int(args[0]), args[1], int(args[2]))
            assert code == 0, code
        moved = 0
        if cmd == "timed-upload":
            data = payload(int(args[3]), 5)
            t = time.perf_counter()
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            s.recv(1024)  # the sink's digest: every byte arrived
            moved = len(data)
        else:
            t = time.perf_counter()
            while chunk := s.recv(1 << 20):
                moved += len(chunk)
        print(moved, time.perf_counter() - t)
    elif cmd == "socks-reply":
        try:
            s, code = socks_connect(int(args[0]), args[1], int(args[2]))
        except ConnectionError:
            code = -1
        print(code)
    else:
        print(f"unknown command {cmd}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
