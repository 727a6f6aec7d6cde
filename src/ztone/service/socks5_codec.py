"""The server side of a SOCKS5 handshake, sans I/O (RFC 1928, RFC 1929).

Feed the client's bytes to :meth:`Socks5Handshake.receive`; it returns the bytes to send
back and, once the client's request is complete, a :class:`Request` (or a
:class:`Failure` after which the server sends the returned bytes and closes). Nothing
raises out of it, whatever the bytes; every message is bounded (at most
:data:`MAX_MESSAGE` bytes are buffered).

Byte layouts (all big-endian):

* greeting: ``VER=5 | NMETHODS | METHODS[NMETHODS]``; answer ``VER=5 | METHOD``
  (0x00 no authentication, 0x02 user/password, 0xFF none acceptable);
* RFC 1929 sub-negotiation: ``VER=1 | ULEN | UNAME | PLEN | PASSWD``; answer
  ``VER=1 | STATUS`` (0 = success);
* request: ``VER=5 | CMD | RSV=0 | ATYP | DST.ADDR | DST.PORT(2)`` with ATYP 1 (4-byte
  IPv4), 3 (length-prefixed domain name), 4 (16-byte IPv6); CMD 1 CONNECT, 2 BIND,
  3 UDP ASSOCIATE;
* reply: ``VER=5 | REP | RSV=0 | ATYP | BND.ADDR | BND.PORT(2)``;
* UDP ASSOCIATE datagrams (both ways): ``RSV=0(2) | FRAG | ATYP | DST.ADDR | DST.PORT(2)
  | DATA``; fragments (FRAG != 0) are not supported (such datagrams are dropped).

A domain name is accepted only when it is an IP literal (``"10.1.2.3"``, ``"fd00::1"``,
``"[fd00::1]"``): ztone never asks the host's resolver about overlay names (no DNS
leaks); any other name gets REP 0x08, address type not supported.
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
from dataclasses import dataclass

from ztone.node.wire.inetaddress import IPAddress

VERSION = 5
AUTH_VERSION = 1
MAX_MESSAGE = 4 + 1 + 255 + 2 + 1 + 255 + 1  # the largest message a client may send


class Method(enum.IntEnum):
    NO_AUTH = 0x00
    USER_PASSWORD = 0x02
    NO_ACCEPTABLE = 0xFF


class Command(enum.IntEnum):
    CONNECT = 0x01
    BIND = 0x02
    UDP_ASSOCIATE = 0x03


class Reply(enum.IntEnum):
    SUCCEEDED = 0x00
    GENERAL_FAILURE = 0x01
    NOT_ALLOWED = 0x02
    NETWORK_UNREACHABLE = 0x03
    HOST_UNREACHABLE = 0x04
    CONNECTION_REFUSED = 0x05
    TTL_EXPIRED = 0x06
    COMMAND_NOT_SUPPORTED = 0x07
    ADDRESS_TYPE_NOT_SUPPORTED = 0x08


@dataclass(frozen=True, slots=True)
class Request:
    """A complete, well-formed request (``host`` is always an IP address)."""

    command: Command
    host: IPAddress
    port: int


@dataclass(frozen=True, slots=True)
class Failure:
    """The handshake failed; ``reason`` says why (for the log)."""

    reason: str


class _State(enum.Enum):
    GREETING = enum.auto()
    AUTH = enum.auto()
    REQUEST = enum.auto()
    DONE = enum.auto()
    FAILED = enum.auto()


def reply(code: Reply, bound: tuple[IPAddress, int] | None = None) -> bytes:
    """A request's reply; ``bound`` is the address the server uses (0.0.0.0:0 if None)."""
    ip, port = bound if bound is not None else (ipaddress.IPv4Address(0), 0)
    atyp = b"\x01" if ip.version == 4 else b"\x04"
    return bytes((VERSION, int(code), 0)) + atyp + ip.packed + port.to_bytes(2, "big")


def ip_literal(name: bytes) -> IPAddress | None:
    """A domain-name field that is an IP literal, else None."""
    try:
        text = name.decode("ascii")
    except UnicodeDecodeError:
        return None
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class BadDatagram(ValueError):
    """A UDP ASSOCIATE datagram that cannot be relayed; the message says why."""


def parse_udp_datagram(data: bytes) -> tuple[IPAddress, int, bytes]:
    """(destination, port, payload) of a client's datagram; :class:`BadDatagram` if not
    well formed, fragmented, or addressed to a host name that is not an IP literal."""
    if len(data) < 4:
        raise BadDatagram("shorter than its header")
    if data[0] or data[1]:
        raise BadDatagram("reserved bytes are not zero")
    if data[2]:
        raise BadDatagram("fragmented (not supported)")
    atyp = data[3]
    if atyp == 1:
        end = 8
    elif atyp == 4:
        end = 20
    elif atyp == 3 and len(data) > 4:
        end = 5 + data[4]
    else:
        raise BadDatagram(f"address type {atyp}")
    if len(data) < end + 2:
        raise BadDatagram("shorter than its header")
    raw = data[4:end]
    host: IPAddress
    if atyp == 1:
        host = ipaddress.IPv4Address(raw)
    elif atyp == 4:
        host = ipaddress.IPv6Address(raw)
    else:
        literal = ip_literal(raw[1:])
        if literal is None:
            raise BadDatagram("a host name (only IP literals are accepted: no DNS)")
        host = literal
    return host, int.from_bytes(data[end : end + 2], "big"), data[end + 2 :]


def build_udp_datagram(source: IPAddress, port: int, payload: bytes) -> bytes:
    """A datagram for the client: what ``source``:``port`` sent on the overlay."""
    atyp = b"\x01" if source.version == 4 else b"\x04"
    return b"\x00\x00\x00" + atyp + source.packed + port.to_bytes(2, "big") + payload


class Socks5Handshake:
    """One client's handshake. ``credentials`` = (user, password) requires RFC 1929
    authentication; None offers no authentication only."""

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self._credentials = (
            None
            if credentials is None
            else (credentials[0].encode("utf-8"), credentials[1].encode("utf-8"))
        )
        self._buffer = bytearray()
        self._state = _State.GREETING

    @property
    def done(self) -> bool:
        """A request or a failure was returned; no more bytes are taken."""
        return self._state in (_State.DONE, _State.FAILED)

    def receive(self, data: bytes) -> tuple[bytes, Request | Failure | None]:
        """Take ``data``; returns (bytes to send, the outcome when there is one).

        Bytes after the request (a client that pipelines its first payload) stay in
        :meth:`leftover`.
        """
        if self.done:
            return b"", None
        self._buffer += data
        out = bytearray()
        while not self.done:
            sent, outcome, progressed = self._step()
            out += sent
            if outcome is not None:
                return bytes(out), outcome
            if not progressed:
                break
        if not self.done and len(self._buffer) > MAX_MESSAGE:
            self._state = _State.FAILED
            return bytes(out), Failure("message too long")
        return bytes(out), None

    def leftover(self) -> bytes:
        """Bytes received after the request (to forward once connected)."""
        return bytes(self._buffer) if self._state is _State.DONE else b""

    def _fail(self, reason: str, answer: bytes) -> tuple[bytes, Failure, bool]:
        self._state = _State.FAILED
        self._buffer.clear()
        return answer, Failure(reason), True

    def _step(self) -> tuple[bytes, Request | Failure | None, bool]:
        buf = self._buffer
        if self._state is _State.GREETING:
            if len(buf) < 2:
                return b"", None, False
            if buf[0] != VERSION:
                return self._fail(f"not SOCKS5 (version byte {buf[0]})", b"")
            n = buf[1]
            if len(buf) < 2 + n:
                return b"", None, False
            methods = set(buf[2 : 2 + n])
            del buf[: 2 + n]
            wanted = Method.NO_AUTH if self._credentials is None else Method.USER_PASSWORD
            if wanted not in methods:
                return self._fail(
                    "no acceptable authentication method", bytes((VERSION, Method.NO_ACCEPTABLE))
                )
            self._state = _State.AUTH if self._credentials is not None else _State.REQUEST
            return bytes((VERSION, wanted)), None, True
        if self._state is _State.AUTH:
            if len(buf) < 2:
                return b"", None, False
            if buf[0] != AUTH_VERSION:
                return self._fail("bad authentication version", bytes((AUTH_VERSION, 1)))
            ulen = buf[1]
            if len(buf) < 2 + ulen + 1:
                return b"", None, False
            plen = buf[2 + ulen]
            end = 3 + ulen + plen
            if len(buf) < end:
                return b"", None, False
            user, password = bytes(buf[2 : 2 + ulen]), bytes(buf[3 + ulen : end])
            del buf[:end]
            assert self._credentials is not None
            good_user = hmac.compare_digest(user, self._credentials[0])
            good_password = hmac.compare_digest(password, self._credentials[1])
            if not (good_user and good_password):
                return self._fail("wrong user name or password", bytes((AUTH_VERSION, 1)))
            self._state = _State.REQUEST
            return bytes((AUTH_VERSION, 0)), None, True
        return self._request()

    def _request(self) -> tuple[bytes, Request | Failure | None, bool]:
        buf = self._buffer
        if len(buf) < 5:
            return b"", None, False
        if buf[0] != VERSION:
            return self._fail("bad request version", reply(Reply.GENERAL_FAILURE))
        command, atyp = buf[1], buf[3]
        host: IPAddress | None
        if atyp == 1:
            end = 4 + 4
        elif atyp == 4:
            end = 4 + 16
        elif atyp == 3:
            end = 5 + buf[4]
        else:
            return self._fail(f"address type {atyp}", reply(Reply.ADDRESS_TYPE_NOT_SUPPORTED))
        if len(buf) < end + 2:
            return b"", None, False
        raw = bytes(buf[4:end])
        port = int.from_bytes(buf[end : end + 2], "big")
        del buf[: end + 2]
        if atyp == 1:
            host = ipaddress.IPv4Address(raw)
        elif atyp == 4:
            host = ipaddress.IPv6Address(raw)
        else:
            host = ip_literal(raw[1:])
            if host is None:
                return self._fail(
                    "a host name (only IP literals are accepted: no DNS)",
                    reply(Reply.ADDRESS_TYPE_NOT_SUPPORTED),
                )
        if command not in (Command.CONNECT, Command.BIND, Command.UDP_ASSOCIATE):
            return self._fail(f"command {command}", reply(Reply.COMMAND_NOT_SUPPORTED))
        self._state = _State.DONE
        return b"", Request(Command(command), host, port), True


__all__ = [
    "MAX_MESSAGE",
    "BadDatagram",
    "Command",
    "Failure",
    "Method",
    "Reply",
    "Request",
    "Socks5Handshake",
    "build_udp_datagram",
    "ip_literal",
    "parse_udp_datagram",
    "reply",
]
