"""No-root mode's settings in ``local.conf``: port backend, SOCKS5 servers, port forwards.

A ztone extension (issue 15), under ``settings`` like zerotier-one's own keys::

    "settings": {
      "portBackend": "auto",                  // "auto" | "tap" | "userspace"
      "socks5": {"enabled": true, "bind": "127.0.0.1", "port": 1080,
                 "username": "u", "password": "p",
                 "maxConnections": 256, "idleTimeout": 600},
      "networks": {
        "8056c2e21c000001": {                 // per joined network (16 hex digits)
          "portBackend": "userspace",         // overrides the global choice
          "socks5": {"enabled": true, "port": 1081},   // a server for this network only
          "forwards": [
            {"direction": "in",  "proto": "tcp", "listenPort": 2222, "to": "127.0.0.1:22"},
            {"direction": "out", "proto": "tcp", "listen": "127.0.0.1:8080",
             "to": "10.147.17.5:80"}
          ]
        }
      }
    }

``portBackend``: ``auto`` (default) uses the platform's virtual port (TAP, VNIC) and a
user-space network stack only when that port cannot be made (not root, no
``/dev/net/tun``...); ``tap`` never uses the user-space stack; ``userspace`` always
does. The global ``socks5`` server reaches every network with a user-space port (by
destination); a network's own ``socks5`` reaches only that network. A forward ``in``
listens on the overlay (the network's user-space stack, TCP port ``listenPort``) and
connects each accepted connection to the local ``to``; ``out`` listens on the local
``listen`` address and connects into the overlay's ``to``. Endpoints are ``ip:port``,
``[ipv6]:port`` or zerotier-one's ``ip/port``; only IP literals, never host names.

These keys are read leniently on purpose: :func:`parse_userspace_settings` never
raises; each bad value is one message naming its key path (``settings.socks5.port:
expected an integer from 1 to 65535, got "x"``) and only that front-end is left out,
so a mistake here never keeps the daemon from starting.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta

from ztone.node.wire.inetaddress import IPAddress
from ztone.util.schema import Invalid, expect, key_path, parse_with, show, validate

PORT_BACKENDS = ("auto", "tap", "userspace")
_M = TypeVar("_M", bound=msgspec.Struct)
DEFAULT_SOCKS5_PORT = 1080
MAX_FORWARDS_PER_NETWORK = 64
MAX_SOCKS5_CONNECTIONS = 4096

Endpoint = tuple[IPAddress, int]


def parse_endpoint(text: str) -> Endpoint:
    """``ip:port``, ``[ipv6]:port`` or ``ip/port`` -> ``(ip, port)``; ValueError if not.

    Port 0 is refused (an endpoint names one real port)."""
    text = text.strip()
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
    elif "/" in text:
        host, sep, port_text = text.partition("/")
    else:
        host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isascii() or not port_text.isdigit():
        raise ValueError(f"not an ip:port endpoint: {text!r}")
    ip = ipaddress.ip_address(host)
    port = int(port_text)
    if not 1 <= port <= 0xFFFF:
        raise ValueError(f"port out of range in {text!r}")
    return ip, port


def format_endpoint(endpoint: Endpoint) -> str:
    ip, port = endpoint
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def _endpoint(value: Any) -> Endpoint:
    if isinstance(value, str):
        try:
            return parse_endpoint(value)
        except ValueError:
            pass
    raise ValueError(f'expected an endpoint "ip:port" (an IP literal), got {show(value)}')


def _ip(value: Any) -> IPAddress:
    if isinstance(value, str):
        try:
            return ipaddress.ip_address(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected an IP address, got {show(value)}")


def _nwid(value: Any) -> int:
    if isinstance(value, str) and len(value) == 16:
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise ValueError(f"expected a network ID (16 hex digits), got {show(value)}")


Bool = Annotated[bool, expect("true or false")]
ListenPort = Annotated[int, Meta(ge=1, le=0xFFFF), expect("an integer from 1 to 65535")]
Text = Annotated[str, Meta(min_length=1, max_length=255), expect("1 to 255 characters")]
Connections = Annotated[
    int,
    Meta(ge=1, le=MAX_SOCKS5_CONNECTIONS),
    expect(f"an integer from 1 to {MAX_SOCKS5_CONNECTIONS}"),
]
Seconds = Annotated[int, Meta(ge=1, le=86400), expect("an integer from 1 to 86400")]
EndpointValue = Annotated[Endpoint, parse_with(_endpoint)]
IpValue = Annotated[IPAddress, parse_with(_ip)]
NwidValue = Annotated[int, parse_with(_nwid)]
Backend = Annotated[
    Literal["auto", "tap", "userspace"], expect('one of "auto", "tap", "userspace"')
]


class Socks5Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One SOCKS5 server (RFC 1928; RFC 1929 user/password when both are set)."""

    enabled: Bool = True
    bind: IpValue = ipaddress.IPv4Address("127.0.0.1")
    port: ListenPort = DEFAULT_SOCKS5_PORT
    username: Text | None = None
    password: Text | None = None
    max_connections: Connections = msgspec.field(default=256, name="maxConnections")
    idle_timeout: Seconds = msgspec.field(default=600, name="idleTimeout")
    """Seconds without a byte either way after which a relayed connection is closed."""

    @property
    def auth(self) -> tuple[str, str] | None:
        if self.username is None or self.password is None:
            return None
        return self.username, self.password


class ForwardSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One port forward of a network (TCP only)."""

    direction: Annotated[Literal["in", "out"], expect('"in" or "out"')]
    proto: Annotated[Literal["tcp"], expect('"tcp" (the only protocol forwarded)')] = "tcp"
    listen_port: ListenPort | None = msgspec.field(default=None, name="listenPort")
    """``in``: the overlay TCP port the network's stack listens on."""
    listen: EndpointValue | None = None
    """``out``: the local address the forward listens on."""
    to: EndpointValue
    max_connections: Connections = msgspec.field(default=64, name="maxConnections")
    idle_timeout: Seconds = msgspec.field(default=600, name="idleTimeout")


class NetworkUserspaceSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    port_backend: Backend | None = msgspec.field(default=None, name="portBackend")
    socks5: Socks5Settings | None = None
    forwards: Annotated[list[Any], Meta(max_length=MAX_FORWARDS_PER_NETWORK)] = msgspec.field(
        default_factory=list
    )


@dataclass(frozen=True)
class Forward:
    nwid: int
    direction: Literal["in", "out"]
    to: Endpoint
    listen_port: int = 0
    listen: Endpoint | None = None
    max_connections: int = 64
    idle_timeout: float = 600.0

    def describe(self) -> str:
        if self.direction == "in":
            return f"overlay tcp/{self.listen_port} -> {format_endpoint(self.to)}"
        assert self.listen is not None
        return f"{format_endpoint(self.listen)} -> overlay {format_endpoint(self.to)}"


@dataclass(frozen=True)
class UserspaceSettings:
    """What the daemon uses; ``problems`` lists what it had to leave out, and why."""

    port_backend: str = "auto"
    socks5: Socks5Settings | None = None
    network_backends: dict[int, str] = field(default_factory=dict)
    network_socks5: dict[int, Socks5Settings] = field(default_factory=dict)
    forwards: list[Forward] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def backend_for(self, nwid: int) -> str:
        return self.network_backends.get(nwid, self.port_backend)


def _validate(
    model: type[_M], value: Any, path: tuple[str | int, ...], out: list[str]
) -> _M | None:
    if not isinstance(value, dict):
        out.append(f"{key_path(path)}: expected a JSON object, got {show(value)}")
        return None
    try:
        return validate(value, model)
    except Invalid as e:
        for where, reason in e.problems:
            full = key_path(path) + ("." + where if where and where[0] != "[" else where)
            out.append(f"{full}: {reason}")
        return None


def _forward(nwid: int, raw: Any, path: tuple[str | int, ...], out: list[str]) -> Forward | None:
    fwd = _validate(ForwardSettings, raw, path, out)
    if fwd is None:
        return None
    if fwd.direction == "in":
        if fwd.listen_port is None or fwd.listen is not None:
            out.append(f'{key_path(path)}: a forward "in" needs "listenPort" (and no "listen")')
            return None
        return Forward(
            nwid, "in", fwd.to, fwd.listen_port, None, fwd.max_connections, float(fwd.idle_timeout)
        )
    if fwd.listen is None or fwd.listen_port is not None:
        out.append(f'{key_path(path)}: a forward "out" needs "listen" (and no "listenPort")')
        return None
    return Forward(nwid, "out", fwd.to, 0, fwd.listen, fwd.max_connections, float(fwd.idle_timeout))


def parse_userspace_settings(
    settings: dict[str, Any], file: str = "local.conf"
) -> UserspaceSettings:
    """The no-root keys of a ``settings`` object (never raises; see the module)."""
    out: list[str] = []
    backend = "auto"
    raw_backend = settings.get("portBackend")
    if raw_backend is not None:
        if raw_backend in PORT_BACKENDS:
            backend = str(raw_backend)
        else:
            out.append(
                f'settings.portBackend: expected one of "auto", "tap", "userspace", '
                f'got {show(raw_backend)} (using "auto")'
            )
    socks5 = None
    if "socks5" in settings:
        socks5 = _validate(Socks5Settings, settings["socks5"], ("settings", "socks5"), out)
    network_backends: dict[int, str] = {}
    network_socks5: dict[int, Socks5Settings] = {}
    forwards: list[Forward] = []
    networks = settings.get("networks", {})
    if not isinstance(networks, dict):
        out.append(f"settings.networks: expected a JSON object, got {show(networks)}")
        networks = {}
    for key, raw in networks.items():
        path: tuple[str | int, ...] = ("settings", "networks", key)
        try:
            nwid = _nwid(key)
        except ValueError as e:
            out.append(f"{key_path(path)}: invalid key: {e}")
            continue
        net = _validate(NetworkUserspaceSettings, raw, path, out)
        if net is None:
            continue
        if net.port_backend is not None:
            network_backends[nwid] = net.port_backend
        if net.socks5 is not None:
            network_socks5[nwid] = net.socks5
        for i, raw_fwd in enumerate(net.forwards):
            fwd = _forward(nwid, raw_fwd, (*path, "forwards", i), out)
            if fwd is not None:
                forwards.append(fwd)
    return UserspaceSettings(
        port_backend=backend,
        socks5=socks5,
        network_backends=network_backends,
        network_socks5=network_socks5,
        forwards=forwards,
        problems=[f"{file}: {p}" for p in out],
    )


__all__ = [
    "DEFAULT_SOCKS5_PORT",
    "PORT_BACKENDS",
    "Endpoint",
    "Forward",
    "ForwardSettings",
    "Socks5Settings",
    "UserspaceSettings",
    "format_endpoint",
    "parse_endpoint",
    "parse_userspace_settings",
]
