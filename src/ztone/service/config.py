"""``local.conf`` and ``networks.d/<nwid>.local.conf`` (PROTOCOL-NETWORK-SERVICE C.1.3, C.1.4).

``local.conf`` is a JSON object::

    {
      "physical": {"<ip/bits>": {"blacklist": bool, "trustedPathId": u64, "mtu": int}},
      "virtual":  {"<10 hex addr>": {"try": ["ip/port", ...], "blacklist": ["ip/bits", ...]}},
      "settings": {"primaryPort": int, ... see :class:`Settings`}
    }

The sections are msgspec records checked by :func:`ztone.util.schema.validate`.
Types are checked strictly (a string where an integer belongs is an error, as is
``1`` for a boolean), unlike zerotier-one which silently falls back to defaults;
every bad value of the file is reported (not only the first), each naming the file
and the key path, e.g.
``local.conf: settings.primaryPort: expected an integer from 0 to 65535, got "abc"``.
The text itself is read by :func:`ztone.service.strict_json.loads` (no infinite
numbers, no unpaired surrogates, at most 64 levels deep). Unknown keys in a file are
kept (zerotier-one ignores them) and listed in :attr:`LocalConf.warnings`. The parsed
JSON is kept as :attr:`LocalConf.raw` for ``GET /config``.

Writes (:func:`update_settings`, for ``POST /config/settings``) accept only the keys
of :class:`Settings`, validate the whole new file as a read would, and then read
back the exact bytes about to be written with :func:`parse_local_conf`; only if that
succeeds are they written. What the daemon writes, it can always start from.

``networks.d/<nwid>.local.conf`` is a Dictionary (A.1) written as exactly
``allowManaged=1\\nallowGlobal=0\\nallowDefault=0\\nallowDNS=0\\n``. On reading, an
``allowManaged`` value longer than 5 bytes is a comma-separated whitelist of
``ip/bits`` networks (and means allowManaged = true).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from ztone.node.wire.dictionary import Dictionary
from ztone.node.wire.inetaddress import InetAddress, IPAddress
from ztone.service import strict_json
from ztone.util.atomic import atomic_write_file
from ztone.util.ctext import U64_MAX
from ztone.util.schema import Invalid, expect, key_path, parse_with, show, then, validate

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PRIMARY_PORT = 9993
DEFAULT_TCP_FALLBACK_RELAY = "204.80.128.1/443"
ADDRESS_MAX = (1 << 40) - 1
U32_MAX = 0xFFFFFFFF
NETWORK_LOCAL_CONF_CAPACITY = 4096  # Dictionary<4096> in the reader
ALLOW_MANAGED_CAPACITY = 1024  # Buffer<1024> for the allowManaged value
SOFTWARE_UPDATE_MODES = ("apply", "download", "disable")
LENIENT_SETTINGS = frozenset({"portBackend", "socks5", "networks"})
"""ztone's no-root keys (issue 15), read by :mod:`ztone.service.userspace_conf`: not in
:class:`Settings`, because a bad value there must leave out only its front-end, never
keep the daemon from starting."""


class ConfigError(Exception):
    """A configuration file cannot be used; ``str()`` names the file and key path(s).

    ``problems`` holds ``(key path, reason)`` pairs; the key path is ``""`` for a
    problem with the whole file.
    """

    def __init__(self, file: str, problems: list[tuple[str, str]]) -> None:
        self.file = file
        self.problems = problems
        lines = [
            f"{file}: {key}: {reason}" if key else f"{file}: {reason}" for key, reason in problems
        ]
        super().__init__("\n".join(lines))


# --- value types ---------------------------------------------------------------------
#
# Plain JSON types are msgspec's own, strict (no "1" for 1, no 1 for true), with
# their ranges as ``Meta`` constraints; :func:`expect` says what was wanted when one
# fails. Addresses and networks have their own parsers: zerotier-one's text forms
# (``ip/port``, ``ip/bits`` with host bits set) are not msgspec's.


def _policies(value: dict[str, Any]) -> dict[str, Any]:
    for name, policy in value.items():
        if not isinstance(policy, dict):
            raise ValueError(f"policy {show(name)}: expected a JSON object, got {show(policy)}")
    return value


def _ip_address(value: Any) -> IPAddress:
    """An IP address; an ``ip/port`` form is accepted too (the port is ignored, as upstream)."""
    if isinstance(value, str):
        ip_text, _, port_text = value.strip().partition("/")
        try:
            ip = ipaddress.ip_address(ip_text)
            if port_text and not 0 <= int(port_text) <= 0xFFFF:
                raise ValueError(port_text)
        except ValueError:
            pass
        else:
            return ip
    raise ValueError(f"expected an IP address, got {show(value)}")


def parse_network(text: str) -> IPNetwork:
    """``ip/bits`` (host bits may be set, as ``InetAddress`` allows); ``ValueError`` if not."""
    ip_text, slash, bits_text = text.strip().partition("/")
    if not slash or not bits_text.isdigit():
        raise ValueError(f"not an ip/bits network: {text!r}")
    ip = ipaddress.ip_address(ip_text)
    bits = int(bits_text)
    if bits > ip.max_prefixlen:
        raise ValueError(f"not an ip/bits network: {text!r}")
    return ipaddress.ip_network((ip, bits), strict=False)


def _network(value: Any) -> IPNetwork:
    if isinstance(value, str):
        try:
            return parse_network(value)
        except ValueError:
            pass
    raise ValueError(f'expected an IP network "ip/bits", got {show(value)}')


def _endpoint(value: Any) -> InetAddress:
    if isinstance(value, str):
        ip_text, slash, port_text = value.strip().partition("/")
        if slash and port_text.isascii() and port_text.isdigit():
            try:
                return InetAddress(ipaddress.ip_address(ip_text), int(port_text))
            except ValueError:
                pass
    raise ValueError(f'expected an address "ip/port", got {show(value)}')


_ADDRESS_TEXT = re.compile(r"[0-9a-fA-F]{10}")


def _address(value: Any) -> int:
    if isinstance(value, str) and _ADDRESS_TEXT.fullmatch(value) and int(value, 16) != 0:
        return int(value, 16)
    raise ValueError(f"expected a ZeroTier address (10 hex digits), got {show(value)}")


Port = Annotated[int, Meta(ge=0, le=0xFFFF), expect("an integer from 0 to 65535")]


def _at_most_u64(value: int) -> int:
    # msgspec's Meta bounds stop at int64.
    if value > U64_MAX:
        raise ValueError("above the 64-bit range")
    return value


U64 = Annotated[int, Meta(ge=0), then(_at_most_u64), expect(f"an integer from 0 to {U64_MAX}")]
U32 = Annotated[int, Meta(ge=0, le=0xFFFFFFFF), expect("an integer from 0 to 4294967295")]
Milliseconds = Annotated[
    int, Meta(ge=1000, le=86_400_000), expect("an integer from 1000 to 86400000")
]
Bool = Annotated[bool, expect("true or false")]
Str = Annotated[str, expect("a string")]
Object = Annotated[dict[str, Any], expect("a JSON object")]
SoftwareUpdate = Annotated[
    Literal["apply", "download", "disable"],
    expect("one of " + ", ".join(f'"{m}"' for m in SOFTWARE_UPDATE_MODES)),
]
Policies = Annotated[Object, then(_policies)]
IpAddressValue = Annotated[IPAddress, parse_with(_ip_address)]
NetworkValue = Annotated[IPNetwork, parse_with(_network)]
EndpointValue = Annotated[InetAddress, parse_with(_endpoint)]
AddressValue = Annotated[int, parse_with(_address)]


# --- the local.conf schema -------------------------------------------------------------

# Unknown keys are not errors (zerotier-one ignores them): the records do not forbid
# them, and LocalConf.from_json lists them as warnings.


class PhysicalConfig(msgspec.Struct, frozen=True):
    """``physical.<ip/bits>``: policy for a physical (underlay) network."""

    blacklist: Bool = False
    """Never use addresses in this network for ZeroTier traffic (ignored for /0)."""
    trusted_path_id: U64 = msgspec.field(default=0, name="trustedPathId")
    """Non-zero: packets to/from this network use the trusted-path (no crypto) suite."""
    mtu: Port = 0
    """Physical UDP payload MTU for paths in this network; 0 = default (1432)."""


class VirtualConfig(msgspec.Struct, frozen=True):
    """``virtual.<10 hex address>``: hints for one peer."""

    try_: list[EndpointValue] = msgspec.field(default_factory=list, name="try")
    """Extra physical endpoints to try for this peer."""
    blacklist: list[NetworkValue] = msgspec.field(default_factory=list)
    """Physical networks never used for this peer."""


class Settings(msgspec.Struct, frozen=True):
    """``settings``: every key of the C.1.3 table, with zerotier-one 1.14.1's defaults.

    Keys are spelled as in the JSON (``primaryPort``, each field's ``name``); the
    Python attributes use snake_case (``primary_port``). Unknown keys stay in
    :attr:`LocalConf.raw` (and are warned about). JSON ``null`` is accepted only for
    the settings whose default is None ("not set").
    """

    primary_port: Port | None = msgspec.field(default=None, name="primaryPort")
    """None: not set (the command line's ``-p``, default 9993, applies). 0 = random."""
    secondary_port: Port = msgspec.field(default=0, name="secondaryPort")
    """0: random."""
    tertiary_port: Port = msgspec.field(default=0, name="tertiaryPort")
    """0: random (port mapping only)."""
    allow_secondary_port: Bool = msgspec.field(default=True, name="allowSecondaryPort")
    port_mapping_enabled: Bool = msgspec.field(default=True, name="portMappingEnabled")
    allow_tcp_fallback_relay: Bool = msgspec.field(default=True, name="allowTcpFallbackRelay")
    force_tcp_relay: Bool = msgspec.field(default=False, name="forceTcpRelay")
    tcp_fallback_relay: EndpointValue = msgspec.field(
        default=InetAddress.parse(DEFAULT_TCP_FALLBACK_RELAY), name="tcpFallbackRelay"
    )
    bind: list[IpAddressValue] = msgspec.field(default_factory=list)
    """Bind only these local IPs (empty: enumerate interfaces)."""
    interface_prefix_blacklist: list[Str] = msgspec.field(
        default_factory=list, name="interfacePrefixBlacklist"
    )
    allow_management_from: list[NetworkValue] = msgspec.field(
        default_factory=list, name="allowManagementFrom"
    )
    """Networks allowed to use the JSON API besides loopback."""
    low_bandwidth_mode: Bool = msgspec.field(default=False, name="lowBandwidthMode")
    multicore_enabled: Bool = msgspec.field(default=False, name="multicoreEnabled")
    concurrency: U32 = 1
    cpu_pinning_enabled: Bool = msgspec.field(default=False, name="cpuPinningEnabled")
    enable_web_server: Bool = msgspec.field(default=False, name="enableWebServer")
    software_update: SoftwareUpdate = msgspec.field(default="disable", name="softwareUpdate")
    software_update_channel: Str = msgspec.field(default="release", name="softwareUpdateChannel")
    software_update_dist: Bool = msgspec.field(default=False, name="softwareUpdateDist")
    controller_db_path: Str | None = msgspec.field(default=None, name="controllerDbPath")
    """None: ``<home>/controller.d``. ``postgres:<libpq string>`` or a
    ``postgresql://`` URI: the controller keeps its networks in PostgreSQL."""
    controller_db_url_file: Str | None = msgspec.field(default=None, name="controllerDbUrlFile")
    """ztone extension: read the controller store's location (a PostgreSQL
    connection string with its password, say) from this file instead of
    ``controllerDbPath``, so that no secret sits in local.conf."""
    controller_db_url_env: Str | None = msgspec.field(default=None, name="controllerDbUrlEnv")
    """ztone extension: the same, from this environment variable (before the file)."""
    sso_redirect_url: Str | None = msgspec.field(default=None, name="ssoRedirectURL")
    controller_db: Object | None = msgspec.field(default=None, name="controllerDb")
    redis: Object | None = None
    vault: Object | None = None
    default_bonding_policy: Str | None = msgspec.field(default=None, name="defaultBondingPolicy")
    policies: Policies = msgspec.field(default_factory=dict)
    peer_specific_bonds: dict[AddressValue, Str] = msgspec.field(
        default_factory=dict, name="peerSpecificBonds"
    )
    tcp_fallback_relay_any_scope: Bool = msgspec.field(
        default=False, name="tcpFallbackRelayAnyScope"
    )
    """ztone extension: the TCP fallback tunnel carries datagrams for IPv4 addresses of
    every scope, and UDP from any address proves UDP works (zerotier-one: global scope
    only). For private deployments whose roots have private addresses."""
    tcp_fallback_after: Milliseconds = msgspec.field(default=60000, name="tcpFallbackAfter")
    """ztone extension: milliseconds without direct UDP before the tunnel engages
    (zerotier-one's fixed ZT_TCP_FALLBACK_AFTER, 60000)."""
    allow_loopback_paths: Bool = msgspec.field(default=False, name="allowLoopbackPaths")
    """ztone extension: accept 127.0.0.0/8 and ::1 as peer paths (zerotier-one never
    does). For several nodes on one host, as in tests; off by default."""


class _Document(msgspec.Struct, frozen=True):
    """The three sections of the file, as checked."""

    physical: dict[NetworkValue, PhysicalConfig] = msgspec.field(default_factory=dict)
    virtual: dict[AddressValue, VirtualConfig] = msgspec.field(default_factory=dict)
    settings: Settings = msgspec.field(default_factory=Settings)


@dataclass(frozen=True, slots=True)
class LocalConf:
    """A parsed ``local.conf``. Build it with :func:`load_local_conf` or :meth:`from_json`."""

    physical: dict[IPNetwork, PhysicalConfig] = field(default_factory=dict)
    virtual: dict[int, VirtualConfig] = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)
    raw: dict[str, Any] = field(default_factory=dict)
    """The parsed JSON object as read (``{}`` when there was no file)."""
    warnings: list[str] = field(default_factory=list)
    """Things accepted but ignored, e.g. ``local.conf: settings.foo: unknown key (ignored)``."""

    @classmethod
    def from_json(cls, data: Any, file: str = "local.conf") -> LocalConf:
        """Validate a parsed JSON value; :class:`ConfigError` naming ``file`` and every
        problem if invalid."""
        if not isinstance(data, dict):
            raise ConfigError(
                file, [("", f"expected a JSON object at the top level, got {show(data)}")]
            )
        try:
            doc = validate(data, _Document)
        except Invalid as e:
            raise ConfigError(file, e.problems) from None
        warnings = [f"{file}: {key}: unknown key (ignored)" for key in _unknown_keys(data)]
        return cls(doc.physical, doc.virtual, doc.settings, data, warnings)

    # --- what the daemon asks ------------------------------------------------

    def physical_path_configs(self) -> list[tuple[IPNetwork, int, int]]:
        """``(network, trustedPathId, mtu)`` for every ``physical`` entry, in a stable order
        (family, network address, prefix length), for the core's path configuration."""
        return [(n, p.trusted_path_id, p.mtu) for n, p in _sorted_networks(self.physical)]

    def trusted_paths(self) -> list[tuple[IPNetwork, int]]:
        """``(network, trustedPathId)`` for entries with a non-zero trusted path id."""
        return [
            (n, p.trusted_path_id)
            for n, p in _sorted_networks(self.physical)
            if p.trusted_path_id != 0
        ]

    def physical_mtu(self, ip: IPAddress | InetAddress) -> int | None:
        """The configured MTU (>0) of the most specific ``physical`` network holding ``ip``."""
        addr = _as_ip(ip)
        best: tuple[int, int] | None = None
        for net, entry in self.physical.items():
            if entry.mtu > 0 and addr in net and (best is None or net.prefixlen > best[0]):
                best = (net.prefixlen, entry.mtu)
        return None if best is None else best[1]

    def blacklisted_networks(self) -> list[IPNetwork]:
        """Global physical blacklist: ``physical`` entries with ``blacklist`` and bits > 0."""
        return [n for n, p in _sorted_networks(self.physical) if p.blacklist and n.prefixlen > 0]

    def is_blacklisted(self, ip: IPAddress | InetAddress) -> bool:
        """Whether ``ip`` lies in the global physical blacklist."""
        addr = _as_ip(ip)
        return any(addr in n for n in self.blacklisted_networks())

    def peer_blacklisted(self, address: int, ip: IPAddress | InetAddress) -> bool:
        """Whether ``ip`` lies in ``virtual.<address>.blacklist``."""
        entry = self.virtual.get(int(address))
        if entry is None:
            return False
        addr = _as_ip(ip)
        return any(addr in n for n in entry.blacklist)

    def peer_try_addresses(self, address: int) -> list[InetAddress]:
        """``virtual.<address>.try`` endpoints (empty if none)."""
        entry = self.virtual.get(int(address))
        return [] if entry is None else list(entry.try_)

    def management_networks(self) -> list[IPNetwork]:
        """``settings.allowManagementFrom`` (loopback is always allowed besides these)."""
        return list(self.settings.allow_management_from)

    def primary_port(self, command_line_port: int = DEFAULT_PRIMARY_PORT) -> int:
        """``settings.primaryPort`` if set, else the command line's port."""
        p = self.settings.primary_port
        return command_line_port if p is None else p


_KNOWN_KEYS: dict[type[msgspec.Struct], frozenset[str]] = {}


def _known_keys(record: type[msgspec.Struct]) -> frozenset[str]:
    """The JSON spellings of ``record``'s fields."""
    keys = _KNOWN_KEYS.get(record)
    if keys is None:
        keys = frozenset(f.encode_name for f in msgspec.structs.fields(record))
        _KNOWN_KEYS[record] = keys
    return keys


def _unknown_keys(raw: dict[str, Any]) -> list[str]:
    """The key paths of ``raw`` that no record of the file knows (the no-root keys of
    ``settings`` are :mod:`ztone.service.userspace_conf`'s, so known)."""
    keys = [key_path((k,)) for k in raw if k not in _known_keys(_Document)]
    settings = raw.get("settings", {})
    keys += [
        key_path(("settings", k))
        for k in settings
        if k not in _known_keys(Settings) and k not in LENIENT_SETTINGS
    ]
    for section, record in (("physical", PhysicalConfig), ("virtual", VirtualConfig)):
        for entry_key, entry in raw.get(section, {}).items():
            keys += [
                key_path((section, entry_key, k)) for k in entry if k not in _known_keys(record)
            ]
    return keys


def _sorted_networks(
    entries: dict[IPNetwork, PhysicalConfig],
) -> list[tuple[IPNetwork, PhysicalConfig]]:
    return sorted(
        entries.items(), key=lambda kv: (kv[0].version, int(kv[0].network_address), kv[0].prefixlen)
    )


def _as_ip(ip: IPAddress | InetAddress) -> IPAddress:
    return ip.ip if isinstance(ip, InetAddress) else ip


def _parse_json(data: bytes, file: str) -> Any:
    try:
        return strict_json.loads(data)
    except strict_json.JsonError as e:
        raise ConfigError(file, [("", f"invalid JSON: {e}")]) from None


def _read_conf_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None if missing or empty; ConfigError otherwise."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(str(path), [("", f"cannot read: {e.strerror or e}")]) from None
    if not data.strip():
        return None
    obj = _parse_json(data, str(path))
    if not isinstance(obj, dict):
        raise ConfigError(
            str(path), [("", f"expected a JSON object at the top level, got {show(obj)}")]
        )
    return obj


def load_local_conf(path: str | os.PathLike[str]) -> LocalConf:
    """Read ``local.conf``: defaults if missing or empty, :class:`ConfigError` if invalid."""
    p = Path(path)
    obj = _read_conf_object(p)
    if obj is None:
        return LocalConf()
    return LocalConf.from_json(obj, str(p))


def parse_local_conf(data: bytes | str, file: str = "local.conf") -> LocalConf:
    """Validate ``local.conf`` text (for instance a request body)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if not raw.strip():
        return LocalConf()
    return LocalConf.from_json(_parse_json(raw, file), file)


def dump_local_conf(obj: dict[str, Any]) -> bytes:
    """JSON as zerotier-one writes ``local.conf``: sorted keys, 4-space indent, no newline.

    ``ValueError`` for a value JSON cannot hold (an infinite number, an unpaired
    surrogate), ``TypeError`` for one that is not JSON at all.
    """
    text = json.dumps(obj, indent=4, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


_write_lock = threading.Lock()  # one read-modify-write of local.conf at a time


def update_settings(path: str | os.PathLike[str], changes: dict[str, Any]) -> LocalConf:
    """``POST /config/settings``: set ``settings.<key>`` for each key of ``changes``.

    Refused with :class:`ConfigError` naming the key, and the file left untouched,
    if a key is not a :class:`Settings` key, if the new file would not validate, if
    its text would not read back (for instance a number Python reads as infinite),
    or if the current file cannot be read. Otherwise it is rewritten atomically
    (sorted keys, 4-space indentation) and the new :class:`LocalConf` is returned.
    Keys already in the file that ztone does not know are kept (the read warns).
    """
    p = Path(path)
    if not isinstance(changes, dict):
        raise ConfigError(str(p), [("settings", f"expected a JSON object, got {show(changes)}")])
    known = _known_keys(Settings)
    unknown = [
        (key_path(("settings", str(k))), "unknown setting (not a zerotier-one 1.14 key)")
        for k in changes
        if k not in known
    ]
    if unknown:
        raise ConfigError(str(p), unknown)
    with _write_lock:
        current = _read_conf_object(p) or {}
        updated = dict(current)
        settings = updated.get("settings")
        settings = dict(settings) if isinstance(settings, dict) else {}
        for key, value in changes.items():
            settings[str(key)] = value
        updated["settings"] = settings
        LocalConf.from_json(updated, str(p))  # names the key of a bad value
        try:
            text = dump_local_conf(updated)
        except (TypeError, ValueError) as e:
            raise ConfigError(str(p), [("settings", f"not storable as JSON: {e}")]) from None
        conf = parse_local_conf(text, str(p))  # exactly what the next start will read
        try:
            atomic_write_file(p, text)
        except OSError as e:
            raise ConfigError(str(p), [("", f"cannot write: {e.strerror or e}")]) from None
    return conf


# --- networks.d/<nwid>.local.conf -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NetworkLocalSettings:
    """Per-network local settings (C.1.4); the defaults are those of a missing file.

    Every construction (also ``dataclasses.replace``) checks the types (``TypeError``),
    so a setting the API or a caller gets wrong fails where it is made, not when the
    file is written or the port configured.
    """

    allow_managed: bool = True
    managed_whitelist: list[IPNetwork] = field(default_factory=list)
    """Non-empty: managed IPs/routes must lie inside one of these networks (C.5.3)."""
    allow_global: bool = False
    allow_default: bool = False
    allow_dns: bool = False

    def __post_init__(self) -> None:
        for name in ("allow_managed", "allow_global", "allow_default", "allow_dns"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise TypeError(f"{name}: expected a bool, got {value!r}")
        whitelist = self.managed_whitelist
        if not isinstance(whitelist, list) or not all(
            isinstance(n, (ipaddress.IPv4Network, ipaddress.IPv6Network)) for n in whitelist
        ):
            raise TypeError(f"managed_whitelist: expected a list of IP networks, got {whitelist!r}")


def _whitelist_entry(text: str) -> IPNetwork | None:
    """One entry as ``InetAddress(text)`` reads it: no ``/bits`` means bits 0."""
    text = text.strip()
    try:
        if "/" in text:
            return parse_network(text)
        return ipaddress.ip_network((ipaddress.ip_address(text), 0), strict=False)
    except ValueError:
        return None


def parse_network_local_conf(data: bytes, file: str = "local.conf") -> NetworkLocalSettings:
    """Decode a per-network local settings dictionary as zerotier-one 1.14.1 reads it."""
    d = Dictionary.parse(data[: NETWORK_LOCAL_CONF_CAPACITY - 1])
    allow_managed = True
    whitelist: list[IPNetwork] = []
    value = d.get("allowManaged")
    if value:
        value = value[: ALLOW_MANAGED_CAPACITY - 1]
        if len(value) <= 5:
            allow_managed = value[:1] in (b"1", b"t", b"T")
        else:
            entries = value.decode("latin-1").split(",")
            for entry in entries:
                net = _whitelist_entry(entry)
                if net is None:
                    log.warning("%s: allowManaged: ignoring invalid network %r", file, entry)
                else:
                    whitelist.append(net)
            if not whitelist:
                # zerotier-one keeps the unparsable entries, which match nothing.
                log.warning("%s: allowManaged: no valid network; managed addresses disabled", file)
                allow_managed = False
    return NetworkLocalSettings(
        allow_managed=allow_managed,
        managed_whitelist=whitelist,
        allow_global=d.get_bool("allowGlobal", False),
        allow_default=d.get_bool("allowDefault", False),
        allow_dns=d.get_bool("allowDNS", False),
    )


def read_network_local_conf(path: str | os.PathLike[str]) -> NetworkLocalSettings:
    """Read ``networks.d/<nwid>.local.conf``; defaults if missing or unreadable (never raises)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        return NetworkLocalSettings()
    except OSError as e:
        log.warning("cannot read %s: %s", p, e)
        return NetworkLocalSettings()
    return parse_network_local_conf(data, str(p))


def format_network_local_conf(settings: NetworkLocalSettings) -> bytes:
    """``setNetworkSettings``' exact output (an allowManaged whitelist is not written)."""
    return (
        f"allowManaged={int(settings.allow_managed)}\n"
        f"allowGlobal={int(settings.allow_global)}\n"
        f"allowDefault={int(settings.allow_default)}\n"
        f"allowDNS={int(settings.allow_dns)}\n"
    ).encode()


def write_network_local_conf(path: str | os.PathLike[str], settings: NetworkLocalSettings) -> bool:
    """Write the file atomically; False if it already had this content."""
    return atomic_write_file(path, format_network_local_conf(settings))
