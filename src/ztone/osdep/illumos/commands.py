"""The illumos administration commands ztone runs, with configurable paths.

Every command goes through :class:`Runner`, which logs its argv, exit code and
stderr (``ztone.osdep.illumos.commands``: changes at INFO, queries at DEBUG,
failures at WARNING) and turns a failure into :class:`CommandError` (a
:class:`~ztone.osdep.base.TapError`) whose message carries the command's own text.

Paths: ``/usr/sbin/dladm``, ``/usr/sbin/ifconfig``, ``/usr/sbin/route``,
``/usr/sbin/routeadm``, ``/usr/bin/netstat``, ``/usr/bin/svcs``, ``/usr/bin/ppriv`` on
OmniOS. ``ZTONE_ILLUMOS_SBIN=<dir>`` takes all of them from one directory (the
OmniOS simulation), and ``ZTONE_DLADM``, ``ZTONE_IFCONFIG``, ``ZTONE_ROUTE``,
``ZTONE_ROUTEADM``, ``ZTONE_NETSTAT``, ``ZTONE_SVCS``, ``ZTONE_PPRIV`` name single ones.

**ifconfig, not ipadm** (ILLUMOS.md §3): both go through libipadm and ipmgmtd, so
neither is more available than the other, but for a daemon that re-creates its
interfaces at every start ifconfig fits better:

* ifconfig changes are never persistent; with ipadm every call needs ``-t`` and a
  forgotten one leaves configuration behind that outlives a crash;
* ``ifconfig <if> addif A/len`` and ``removeif A`` need no address-object names to
  invent and remember; ipadm needs ``<if>/<name>`` for each address;
* a static IPv6 address through ipadm first needs an ``addrconf`` address (which
  also starts in.ndpd autoconfiguration on the ZeroTier link); ``ifconfig inet6
  plumb`` gives the link-local address by itself;
* it is the syntax the seed port proved on OmniOS r151054.

``route`` rather than ``ipadm``/``routeadm`` for routes: ``route -n add|delete ...
-ifp <if>`` without ``-p`` is not persistent either. ``routeadm`` is only for the
optional router mode (global forwarding).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ztone.osdep.base import TapError

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_TIMEOUT = 30.0

_DEFAULT_PATHS = {
    "dladm": "/usr/sbin/dladm",
    "ifconfig": "/usr/sbin/ifconfig",
    "route": "/usr/sbin/route",
    "routeadm": "/usr/sbin/routeadm",
    "netstat": "/usr/bin/netstat",
    "svcs": "/usr/bin/svcs",
    "ppriv": "/usr/bin/ppriv",
}

SBIN_ENV = "ZTONE_ILLUMOS_SBIN"


@dataclass(frozen=True, slots=True)
class CommandPaths:
    dladm: str = _DEFAULT_PATHS["dladm"]
    ifconfig: str = _DEFAULT_PATHS["ifconfig"]
    route: str = _DEFAULT_PATHS["route"]
    routeadm: str = _DEFAULT_PATHS["routeadm"]
    netstat: str = _DEFAULT_PATHS["netstat"]
    svcs: str = _DEFAULT_PATHS["svcs"]
    ppriv: str = _DEFAULT_PATHS["ppriv"]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CommandPaths:
        env = os.environ if environ is None else environ
        paths = dict(_DEFAULT_PATHS)
        sbin = env.get(SBIN_ENV)
        if sbin:
            paths = {tool: os.path.join(sbin, tool) for tool in paths}
        for tool in paths:
            override = env.get(f"ZTONE_{tool.upper()}")
            if override:
                paths[tool] = override
        return cls(**paths)


@dataclass(frozen=True, slots=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def text(self) -> str:
        """What the command said (stderr, else stdout), on one line."""
        said = self.stderr.strip() or self.stdout.strip()
        return " / ".join(line.strip() for line in said.splitlines() if line.strip())


class CommandError(TapError):
    """An administration command failed; ``result`` holds what it said."""

    def __init__(self, result: CommandResult) -> None:
        self.result = result
        said = result.text() or "no output"
        super().__init__(f"{' '.join(result.argv)} exited {result.returncode}: {said}")


class Runner:
    """Runs commands with a timeout, logs them, raises :class:`CommandError`."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout

    def run(self, argv: Sequence[str], *, check: bool = True, query: bool = False) -> CommandResult:
        args = tuple(argv)
        try:
            proc = subprocess.run(
                args,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            result = CommandResult(args, proc.returncode, proc.stdout, proc.stderr)
        except FileNotFoundError:
            result = CommandResult(args, 127, "", f"{args[0]}: command not found")
        except PermissionError as e:
            result = CommandResult(args, 126, "", f"{args[0]}: {e.strerror}")
        except subprocess.TimeoutExpired:
            result = CommandResult(args, 124, "", f"timed out after {self.timeout:g} s")
        if result.ok:
            log.log(
                logging.DEBUG if query else logging.INFO,
                "ran %s: exit 0%s",
                " ".join(args),
                f", stderr: {result.stderr.strip()}" if result.stderr.strip() else "",
            )
        else:
            log.log(
                logging.DEBUG if not check else logging.WARNING,
                "ran %s: exit %d, stderr: %s",
                " ".join(args),
                result.returncode,
                result.text() or "(none)",
            )
        if check and not result.ok:
            raise CommandError(result)
        return result


def _parsable_fields(line: str) -> list[str]:
    """Split one line of dladm's parsable output (``\\:`` and ``\\\\`` escaped)."""
    fields: list[str] = []
    current: list[str] = []
    chars = iter(line)
    for ch in chars:
        if ch == "\\":
            current.append(next(chars, ""))
        elif ch == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(ch)
    fields.append("".join(current))
    return fields


def format_mac(mac: int) -> str:
    """``2:11:22:33:44:55``: dladm's colon form without zero padding."""
    return ":".join(f"{b:x}" for b in mac.to_bytes(6, "big"))


def parse_mac(text: str) -> int:
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return int.from_bytes(bytes(int(p, 16) for p in parts), "big")


@dataclass(frozen=True, slots=True)
class LinkInfo:
    name: str
    klass: str
    mtu: int
    over: str


class Dladm:
    """``dladm``: etherstubs and VNICs (always temporary, ``-t``)."""

    def __init__(self, path: str, runner: Runner) -> None:
        self.path = path
        self.runner = runner

    def create_etherstub(self, name: str) -> None:
        self.runner.run([self.path, "create-etherstub", "-t", name])

    def delete_etherstub(self, name: str, *, check: bool = True) -> CommandResult:
        return self.runner.run([self.path, "delete-etherstub", "-t", name], check=check)

    def create_vnic(self, name: str, over: str, mac: int, mtu: int) -> None:
        self.runner.run(
            [
                self.path,
                "create-vnic",
                "-t",
                "-l",
                over,
                "-m",
                format_mac(mac),
                "-p",
                f"mtu={mtu}",
                name,
            ]
        )

    def delete_vnic(self, name: str, *, check: bool = True) -> CommandResult:
        return self.runner.run([self.path, "delete-vnic", "-t", name], check=check)

    def set_linkprop(self, name: str, prop: str, value: str, *, check: bool = True) -> bool:
        result = self.runner.run(
            [self.path, "set-linkprop", "-t", "-p", f"{prop}={value}", name], check=check
        )
        return result.ok

    def show_links(self) -> dict[str, LinkInfo]:
        result = self.runner.run(
            [self.path, "show-link", "-p", "-o", "link,class,mtu,over"], query=True
        )
        links: dict[str, LinkInfo] = {}
        for line in result.stdout.splitlines():
            if not line.strip():
                continue
            fields = _parsable_fields(line)
            while len(fields) < 4:
                fields.append("")
            name, klass, mtu, over = fields[:4]
            links[name] = LinkInfo(name, klass, int(mtu) if mtu.isdigit() else 0, over)
        return links

    def _names(self, subcommand: str) -> list[str]:
        result = self.runner.run([self.path, subcommand, "-p", "-o", "link"], query=True)
        return [line.strip() for line in result.stdout.splitlines() if line.strip()]

    def show_vnics(self) -> list[str]:
        return self._names("show-vnic")

    def show_etherstubs(self) -> list[str]:
        return self._names("show-etherstub")


@dataclass(frozen=True, slots=True)
class IfAddress:
    """One logical interface from ``ifconfig -a``."""

    lif: str
    family: int
    ip: IPAddress
    prefixlen: int
    flags: frozenset[str]
    mtu: int

    @property
    def interface(self) -> str:
        return self.lif.partition(":")[0]


def _mask_to_prefix(hexmask: str) -> int:
    return bin(int(hexmask, 16) & 0xFFFFFFFF).count("1")


def parse_ifconfig(text: str) -> list[IfAddress]:
    """Parse ``ifconfig -a`` status output (ifconfig.c ``ifstatus``/``in_status``)."""
    out: list[IfAddress] = []
    lif = ""
    flags: frozenset[str] = frozenset()
    mtu = 0
    for raw in text.splitlines():
        if not raw.strip():
            continue
        if not raw[0].isspace():
            head, _, rest = raw.partition(": flags=")
            lif = head.strip()
            names = rest.partition("<")[2].partition(">")[0]
            flags = frozenset(n for n in names.split(",") if n)
            words = rest.split()
            mtu = int(words[words.index("mtu") + 1]) if "mtu" in words else 0
            continue
        words = raw.split()
        if not words or not lif:
            continue
        if words[0] == "inet" and len(words) >= 2:
            ip4 = ipaddress.IPv4Address(words[1])
            prefix = 32
            if "netmask" in words:
                prefix = _mask_to_prefix(words[words.index("netmask") + 1])
            out.append(IfAddress(lif, 4, ip4, prefix, flags, mtu))
        elif words[0] == "inet6" and len(words) >= 2:
            addr, _, plen = words[1].partition("/")
            ip6 = ipaddress.IPv6Address(addr)
            out.append(IfAddress(lif, 6, ip6, int(plen) if plen else 128, flags, mtu))
    return out


class Ifconfig:
    """``ifconfig``: plumbing, logical interfaces, IP MTU."""

    def __init__(self, path: str, runner: Runner) -> None:
        self.path = path
        self.runner = runner

    def _fam(self, family: int) -> list[str]:
        return ["inet6"] if family == 6 else []

    def plumb(self, interface: str, family: int, mtu: int) -> None:
        self.runner.run([self.path, interface, *self._fam(family), "plumb", "mtu", str(mtu), "up"])

    def unplumb(self, interface: str, family: int, *, check: bool = True) -> CommandResult:
        return self.runner.run([self.path, interface, *self._fam(family), "unplumb"], check=check)

    def addif(self, interface: str, ip: IPAddress, prefixlen: int) -> str:
        """Add ``ip/prefixlen`` on a new logical interface; returns its name."""
        result = self.runner.run(
            [self.path, interface, *self._fam(ip.version), "addif", f"{ip}/{prefixlen}", "up"]
        )
        for word in result.stdout.split():
            if word.startswith(interface + ":"):
                return word
        return ""

    def removeif(self, interface: str, ip: IPAddress) -> None:
        self.runner.run([self.path, interface, *self._fam(ip.version), "removeif", str(ip)])

    def set_mtu(self, interface: str, family: int, mtu: int) -> None:
        self.runner.run([self.path, interface, *self._fam(family), "mtu", str(mtu)])

    def addresses(self) -> list[IfAddress]:
        return parse_ifconfig(self.runner.run([self.path, "-a"], query=True).stdout)


class RouteOutcome:
    DONE = "done"
    EXISTS = "exists"
    MISSING = "missing"


class RouteCommand:
    """``route -n add|delete``: not persistent (no ``-p``)."""

    def __init__(self, path: str, runner: Runner) -> None:
        self.path = path
        self.runner = runner

    @staticmethod
    def argv_tail(
        target: IPNetwork, gateway: IPAddress, interface: str, on_link: bool
    ) -> list[str]:
        args: list[str] = []
        if target.version == 6:
            args.append("-inet6")
        host = target.prefixlen == target.max_prefixlen
        if host:
            args += ["-host", str(target.network_address)]
        elif target.version == 4:
            args += ["-net", str(target)]
        else:
            args.append(str(target))
        args.append(str(gateway))
        if on_link:
            args.append("-interface")
        args += ["-ifp", interface]
        return args

    def _change(
        self, verb: str, target: IPNetwork, gateway: IPAddress, interface: str, on_link: bool
    ) -> str:
        argv = [self.path, "-n", verb, *self.argv_tail(target, gateway, interface, on_link)]
        result = self.runner.run(argv, check=False)
        said = result.text()
        if result.ok:
            return RouteOutcome.DONE
        if verb == "add" and "entry exists" in said:
            return RouteOutcome.EXISTS
        if verb == "delete" and "not in table" in said:
            return RouteOutcome.MISSING
        raise CommandError(result)

    def add(self, target: IPNetwork, gateway: IPAddress, interface: str, on_link: bool) -> str:
        return self._change("add", target, gateway, interface, on_link)

    def delete(self, target: IPNetwork, gateway: IPAddress, interface: str, on_link: bool) -> str:
        return self._change("delete", target, gateway, interface, on_link)


class Routeadm:
    """``routeadm``: global IP forwarding (router mode)."""

    def __init__(self, path: str, runner: Runner) -> None:
        self.path = path
        self.runner = runner

    def set_forwarding(self, family: int, enabled: bool) -> None:
        option = "ipv6-forwarding" if family == 6 else "ipv4-forwarding"
        self.runner.run([self.path, "-e" if enabled else "-d", option, "-u"])


def parse_netstat_groups(text: str) -> dict[str, set[IPAddress]]:
    """Group memberships per interface from ``netstat -gn``."""
    groups: dict[str, set[IPAddress]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2:
            continue
        try:
            ip = ipaddress.ip_address(words[1])
        except ValueError:
            continue
        if ip.is_multicast:
            groups.setdefault(words[0], set()).add(ip)
    return groups


class Netstat:
    def __init__(self, path: str, runner: Runner) -> None:
        self.path = path
        self.runner = runner

    def group_memberships(self) -> dict[str, set[IPAddress]]:
        return parse_netstat_groups(self.runner.run([self.path, "-gn"], query=True).stdout)


class Commands:
    """All the wrappers, built from one :class:`CommandPaths`."""

    def __init__(self, paths: CommandPaths | None = None, runner: Runner | None = None) -> None:
        self.paths = paths or CommandPaths.from_env()
        self.runner = runner or Runner()
        self.dladm = Dladm(self.paths.dladm, self.runner)
        self.ifconfig = Ifconfig(self.paths.ifconfig, self.runner)
        self.route = RouteCommand(self.paths.route, self.runner)
        self.routeadm = Routeadm(self.paths.routeadm, self.runner)
        self.netstat = Netstat(self.paths.netstat, self.runner)
