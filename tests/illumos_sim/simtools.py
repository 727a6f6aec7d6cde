"""The OmniOS simulation's commands: dladm, ifconfig, route, routeadm, netstat, svcs, ppriv.

Each accepts the illumos syntax ztone's backend uses (and a little more), enforces
illumos' rules, answers with illumos' texts and exit codes, and builds the topology
in the current Linux network namespace:

* etherstub -> a Linux bridge with no ports, MTU 9000;
* VNIC      -> a macvlan link in bridge mode on that bridge, MTU 9000 unless
               ``-p mtu=`` says otherwise (576..9000), IPv6 off until plumbed;
* plumbing  -> IPv4: a flag; IPv6: ``disable_ipv6=0`` (which makes the
               link-local address); logical interfaces ``IF:N`` -> IPv4 address
               labels (IPv6 addresses are numbered in listing order);
* routes    -> ``ip route``.

Simulation state (link class, link MTU, plumbed families, properties) lives in the
Linux link's alias, so it follows the link: nothing to clean up but the namespace.
Run as ``simtools.py <tool> args...`` or through the wrappers ``simenv.py`` writes.

Texts marked "sim guess" in README.md are not confirmed against illumos sources.
"""

from __future__ import annotations

import getopt
import ipaddress
import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

ETHERSTUB_MTU = 9000
VNIC_MTU_MIN = 576
VNIC_MTU_MAX = 9000
LINUX_IFNAMSIZ = 15
ALIAS_PREFIX = "zsim:"

# illumos errno values (they differ from Linux for some)
ILLUMOS_ERRNO = {"EPERM": 1, "ESRCH": 3, "ENXIO": 6, "EEXIST": 17, "EINVAL": 22, "ENETUNREACH": 128}


class Die(Exception):
    def __init__(self, message: str, code: int = 1, stdout: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.stdout = stdout


# --- Linux side -----------------------------------------------------------------------


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise Die(f"illumos_sim: ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def ip_json(*args: str) -> list[dict[str, object]]:
    out = ip("-j", *args).stdout
    data = json.loads(out) if out.strip() else []
    return [d for d in data if isinstance(d, dict)]


def sysctl_write(path: str, value: str) -> None:
    Path("/proc/sys", path).write_text(value)


def sysctl_read(path: str) -> str:
    return Path("/proc/sys", path).read_text().strip()


@dataclass
class Link:
    name: str
    klass: str  # "etherstub", "vnic", "phys"
    ifindex: int
    mtu: int
    mac: str
    over: str
    state: dict[str, str] = field(default_factory=dict)

    @property
    def link_mtu(self) -> int:
        return int(self.state.get("lm", self.mtu))

    def plumbed(self, family: int) -> bool:
        return self.state.get(f"p{family}") == "1"


def _parse_alias(alias: str) -> dict[str, str]:
    if not alias.startswith(ALIAS_PREFIX):
        return {}
    pairs = (item.partition("=") for item in alias[len(ALIAS_PREFIX) :].split(","))
    return {k: v for k, _, v in pairs if k}


def save_state(link: Link) -> None:
    text = ALIAS_PREFIX + ",".join(f"{k}={v}" for k, v in sorted(link.state.items()))
    ip("link", "set", "dev", link.name, "alias", text)


def all_links() -> dict[str, Link]:
    links: dict[str, Link] = {}
    for d in ip_json("-d", "link", "show"):
        name = str(d.get("ifname", ""))
        if not name or name == "lo":
            continue
        info = d.get("linkinfo")
        kind = str(info.get("info_kind", "")) if isinstance(info, dict) else ""
        state = _parse_alias(str(d.get("ifalias", "")))
        klass = state.get("c") or {"bridge": "etherstub", "macvlan": "vnic"}.get(kind, "phys")
        links[name] = Link(
            name=name,
            klass=klass,
            ifindex=int(str(d.get("ifindex", 0))),
            mtu=int(str(d.get("mtu", 0))),
            mac=str(d.get("address", "")),
            over=str(d.get("link", "")) if klass == "vnic" else "",
            state=state,
        )
    return links


def packet_sockets_on(ifindex: int) -> int:
    """Packet sockets bound to the link (open DLPI handles in the simulation)."""
    count = 0
    try:
        lines = Path("/proc/net/packet").read_text().splitlines()[1:]
    except OSError:
        return 0
    for line in lines:
        words = line.split()
        if len(words) >= 5 and words[4] == str(ifindex):
            count += 1
    return count


# --- names and MACs ------------------------------------------------------------------------


def valid_linkname(name: str) -> bool:
    if not 0 < len(name) < 32 or not re.fullmatch(r"[A-Za-z0-9_.]+", name):
        return False
    if name[0].isdigit():
        return False
    digits = len(name) - len(name.rstrip("0123456789"))
    return digits > 0 and not (digits > 1 and name[-digits] == "0")


def link_aton(text: str) -> bytes | None:
    parts = text.split(":")
    if len(parts) != 6:
        return None
    try:
        values = [int(p, 16) for p in parts]
    except ValueError:
        return None
    if any(not 0 <= v <= 255 or not 1 <= len(p) <= 2 for v, p in zip(values, parts, strict=True)):
        return None
    return bytes(values)


def mac_text(mac: str) -> str:
    """Linux ``02:0a:..`` -> illumos ``2:a:...`` (no zero padding)."""
    return ":".join(f"{int(p, 16):x}" for p in mac.split(":")) if mac else ""


# --- dladm ---------------------------------------------------------------------------------


def _dl_die(message: str) -> Die:
    return Die(f"dladm: {message}")


def _check_new_name(name: str) -> None:
    if len(name) >= 32:
        raise _dl_die(f"link name too long '{name}'")
    if not valid_linkname(name):
        raise _dl_die(f"invalid link name '{name}'")
    if len(name) > LINUX_IFNAMSIZ:
        raise _dl_die(
            f"illumos_sim: link name '{name}' is valid on illumos but longer than Linux's "
            f"{LINUX_IFNAMSIZ} characters; the simulation cannot create it"
        )


def _opts(argv: Sequence[str], spec: str) -> tuple[list[tuple[str, str]], list[str]]:
    try:
        return getopt.getopt(list(argv), spec)
    except getopt.GetoptError as e:
        raise _dl_die(f"option -{e.opt} is not known") from e


def _parse_props(text: str) -> dict[str, str]:
    props: dict[str, str] = {}
    for item in text.split(","):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _dl_die("invalid vnic property")
        props[key] = value
    return props


def _apply_mtu(link: Link, mtu: int) -> None:
    link.state["lm"] = str(mtu)
    ip_mtu = mtu
    if link.plumbed(4) and "m4" in link.state:
        ip_mtu = min(int(link.state["m4"]), mtu)
        link.state["m4"] = str(ip_mtu)
    ip("link", "set", "dev", link.name, "mtu", str(ip_mtu))
    if link.plumbed(6) and "m6" in link.state:
        six = min(int(link.state["m6"]), mtu)
        link.state["m6"] = str(six)
        sysctl_write(f"net/ipv6/conf/{link.name}/mtu", str(six))


def dladm_create_etherstub(argv: Sequence[str]) -> str:
    _, args = _opts(argv, "tR:")
    if len(args) != 1:
        raise _dl_die("usage: create-etherstub [-t] [-R <root-dir>] <etherstub>")
    name = args[0]
    _check_new_name(name)
    if name in all_links():
        raise _dl_die("etherstub creation failed: object already exists")
    ip("link", "add", name, "type", "bridge")
    link = Link(name, "etherstub", 0, ETHERSTUB_MTU, "", "", {"c": "etherstub"})
    sysctl_write(f"net/ipv6/conf/{name}/disable_ipv6", "1")
    ip("link", "set", "dev", name, "mtu", str(ETHERSTUB_MTU))
    ip("link", "set", "dev", name, "up")
    save_state(link)
    return ""


def dladm_create_vnic(argv: Sequence[str]) -> str:
    opts, args = _opts(argv, "tfR:l:m:n:p:r:v:V:A:H")
    over = ""
    mac_arg = ""
    props: dict[str, str] = {}
    for opt, value in opts:
        if opt == "-l":
            over = value
        elif opt == "-m":
            if mac_arg:
                raise _dl_die("cannot specify -m option twice")
            mac_arg = value
        elif opt == "-p":
            props.update(_parse_props(value))
        elif opt in ("-t", "-R"):
            continue
        else:
            raise _dl_die(f"illumos_sim: create-vnic option {opt} is not simulated")
    if not over or len(args) != 1:
        raise _dl_die(
            "usage: create-vnic [-t] -l <link> [-m <value> | auto | random] "
            "[-p <prop>=<value>[,...]] <vnic-link>"
        )
    name = args[0]
    if mac_arg in ("", "auto", "random", "factory"):
        mac = bytes([0x02, 0x08, 0x20, *random.randbytes(3)])
    else:
        parsed = link_aton(mac_arg)
        if parsed is None:
            raise _dl_die("invalid MAC address")
        mac = parsed
    _check_new_name(name)
    links = all_links()
    lower = links.get(over)
    if lower is None:
        raise _dl_die(f"invalid link name '{over}'")
    failed = f"vnic creation over {over} failed"
    if lower.klass != "etherstub":
        raise _dl_die(f"illumos_sim: {failed}: only VNICs over etherstubs are simulated")
    if mac[0] & 1:
        raise _dl_die(f"{failed}: invalid MAC address")
    if name in links:
        raise _dl_die(f"{failed}: object already exists")
    mac_str = ":".join(f"{b:02x}" for b in mac)
    if any(other.over == over and other.mac == mac_str for other in links.values()):
        raise _dl_die(f"{failed}: MAC address already in use")
    mtu = ETHERSTUB_MTU
    for key, value in props.items():
        if key == "mtu":
            if not value.isdigit() or not VNIC_MTU_MIN <= int(value) <= VNIC_MTU_MAX:
                raise _dl_die(f"{failed}: invalid value")
            mtu = int(value)
        elif key != "promisc-filtered":
            raise _dl_die(f"{failed}: object not found")
    ip("link", "add", "link", over, "name", name, "address", mac_str, "type", "macvlan",
       "mode", "bridge")  # fmt: skip
    link = Link(name, "vnic", 0, mtu, mac_str, over, {"c": "vnic", "lm": str(mtu)})
    link.state["pf"] = props.get("promisc-filtered", "on")
    sysctl_write(f"net/ipv6/conf/{name}/disable_ipv6", "1")
    ip("link", "set", "dev", name, "mtu", str(mtu))
    ip("link", "set", "dev", name, "up")
    save_state(link)
    return ""


def _delete(argv: Sequence[str], etherstub: bool) -> str:
    _, args = _opts(argv, "R:t")
    if len(args) != 1:
        raise _dl_die(f"usage: delete-{'etherstub' if etherstub else 'vnic'} [-t] <link>")
    name = args[0]
    links = all_links()
    link = links.get(name)
    if link is None:
        raise _dl_die(f"invalid link name '{name}'")
    if (link.klass == "etherstub") != etherstub:
        raise _dl_die(f"'{name}' is not {'an etherstub' if etherstub else 'a vnic'}")
    if etherstub:
        busy = any(other.over == name for other in links.values())
    else:
        busy = link.plumbed(4) or link.plumbed(6) or packet_sockets_on(link.ifindex) > 0
    if busy:
        raise _dl_die("vnic deletion failed: link busy")
    ip("link", "del", "dev", name)
    return ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def _print_table(
    rows: list[dict[str, str]], fields: list[str], parsable: bool, widths: dict[str, int]
) -> str:
    lines: list[str] = []
    if parsable:
        for row in rows:
            values = [row.get(f, "") for f in fields]
            if len(fields) > 1:
                values = [_escape(v) for v in values]
            lines.append(":".join(values))
    else:
        lines.append(" ".join(f.upper().ljust(widths.get(f, 10)) for f in fields).rstrip())
        for row in rows:
            lines.append(
                " ".join((row.get(f) or "--").ljust(widths.get(f, 10)) for f in fields).rstrip()
            )
    return "".join(line + "\n" for line in lines)


def _show(
    argv: Sequence[str],
    spec: str,
    default_fields: str,
    all_fields: list[str],
    widths: dict[str, int],
    rows_for: Callable[[dict[str, Link], str | None, str | None], list[dict[str, str]]],
    not_found: Callable[[str], str],
    no_l: bool = False,
) -> str:
    opts, args = _opts(argv, spec)
    parsable = False
    fields_text = ""
    over: str | None = None
    for opt, value in opts:
        if opt == "-p":
            parsable = True
        elif opt == "-o":
            fields_text = value
        elif opt == "-l":
            if no_l:
                raise _dl_die("option not supported for this command")
            over = value
        elif opt == "-P":
            continue
        else:
            raise _dl_die(f"illumos_sim: option {opt} is not simulated")
    if parsable and not fields_text:
        raise _dl_die("-p requires -o")
    if parsable and fields_text.lower() == "all":
        raise _dl_die('"-o all" is invalid with -p')
    if len(args) > 1:
        raise _dl_die("usage: too many operands")
    if not fields_text or fields_text.lower() == "all":
        fields_text = default_fields
    fields = [f.strip().lower() for f in fields_text.split(",")]
    for f in fields:
        if f not in all_fields:
            raise _dl_die(f"invalid field(s) specified: {f}")
    links = all_links()
    name = args[0] if args else None
    if name is not None and name not in links:
        raise _dl_die(not_found(name))
    if over is not None and over not in links:
        raise _dl_die(f"invalid link name '{over}': object not found")
    return _print_table(rows_for(links, name, over), fields, parsable, widths)


def _vnic_rows(
    etherstub: bool,
) -> Callable[[dict[str, Link], str | None, str | None], list[dict[str, str]]]:
    def rows(links: dict[str, Link], name: str | None, over: str | None) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for link in links.values():
            if link.klass not in ("vnic", "etherstub") or (link.klass == "etherstub") != etherstub:
                continue
            if name is not None and link.name != name:
                continue
            if over is not None and link.over != over:
                continue
            row = {"link": link.name}
            if not etherstub:
                row.update(over=link.over, speed="0", macaddress=mac_text(link.mac),
                           macaddrtype="fixed", vid="0", zone="--")  # fmt: skip
            out.append(row)
        return out

    return rows


def _link_rows(links: dict[str, Link], name: str | None, _over: str | None) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for link in links.values():
        if name is not None and link.name != name:
            continue
        out.append(
            {
                "link": link.name,
                "class": link.klass,
                "mtu": str(link.link_mtu),
                "state": "up",
                "bridge": "",
                "over": link.over,
            }
        )
    return out


def dladm_set_linkprop(argv: Sequence[str]) -> str:
    opts, args = _opts(argv, "p:R:t")
    props: dict[str, str] = {}
    for opt, value in opts:
        if opt == "-p":
            props.update(_parse_props(value))
    if not props or len(args) != 1:
        raise _dl_die("usage: set-linkprop [-t] -p <prop>=<value>[,...] <name>")
    links = all_links()
    link = links.get(args[0])
    if link is None:
        raise _dl_die(f"link {args[0]} is not valid: object not found")
    for key, value in props.items():
        warn = f"warning: cannot set link property '{key}' on '{link.name}'"
        if key == "mtu" and link.klass == "vnic":
            if not value.isdigit() or not VNIC_MTU_MIN <= int(value) <= VNIC_MTU_MAX:
                raise _dl_die(f"{warn}: invalid argument")
            _apply_mtu(link, int(value))
        elif key == "promisc-filtered" and link.klass == "vnic":
            if value not in ("on", "off"):
                raise _dl_die(f"{warn}: invalid argument")
            link.state["pf"] = value
        else:
            raise _dl_die(f"{warn}: link property not found")
    save_state(link)
    return ""


def dladm_show_linkprop(argv: Sequence[str]) -> str:
    opts, args = _opts(argv, "cPp:o:")
    wanted: list[str] = []
    for opt, value in opts:
        if opt == "-p":
            wanted += value.split(",")
    if len(args) != 1:
        raise _dl_die("usage: show-linkprop [-c] [-o field,...] [-p prop,...] <name>")
    link = all_links().get(args[0])
    if link is None:
        raise _dl_die(f"link {args[0]} is not valid: object not found")
    values = {"mtu": str(link.link_mtu), "promisc-filtered": link.state.get("pf", "on")}
    out = ""
    for prop in wanted or list(values):
        if prop not in values:
            raise _dl_die(f"warning: cannot get link property '{prop}' for {link.name}")
        out += values[prop] + "\n"
    return out


def dladm(argv: Sequence[str]) -> str:
    if not argv:
        raise _dl_die("usage: dladm <subcommand> <args> ...")
    sub, rest = argv[0], argv[1:]
    # Test knob: ZTONE_SIM_DLADM_REFUSE=show-vnic,show-etherstub makes those
    # subcommands refuse "-o" with a usage error, as a dladm whose usage text does
    # not list -o would (nothing relying on them may then skip work silently).
    refused = os.environ.get("ZTONE_SIM_DLADM_REFUSE", "").split(",")
    if sub in refused and "-o" in rest:
        raise Die(f"dladm: illegal option -- o\nusage: dladm {sub} [-p] [<name>]", code=1)
    vnic_fields = ["link", "over", "speed", "macaddress", "macaddrtype", "vid", "zone"]
    widths = {"link": 16, "over": 12, "speed": 6, "macaddress": 18, "macaddrtype": 12,
              "vid": 4, "zone": 8, "class": 10, "mtu": 6, "state": 8, "bridge": 8}  # fmt: skip
    if sub == "create-etherstub":
        return dladm_create_etherstub(rest)
    if sub == "delete-etherstub":
        return _delete(rest, etherstub=True)
    if sub == "create-vnic":
        return dladm_create_vnic(rest)
    if sub == "delete-vnic":
        return _delete(rest, etherstub=False)
    if sub == "show-vnic":
        return _show(rest, "pPl:o:", ",".join(vnic_fields), vnic_fields, widths,
                     _vnic_rows(False),
                     lambda n: f"invalid vnic name '{n}': object not found")  # fmt: skip
    if sub == "show-etherstub":
        return _show(rest, "pPl:o:", "link", vnic_fields, widths, _vnic_rows(True),
                     lambda n: f"invalid vnic name '{n}': object not found", no_l=True)  # fmt: skip
    if sub == "show-link":
        link_fields = ["link", "class", "mtu", "state", "bridge", "over"]
        return _show(rest, "pPo:", ",".join(link_fields), link_fields, widths, _link_rows,
                     lambda n: f"link {n} is not valid: object not found")  # fmt: skip
    if sub == "set-linkprop":
        return dladm_set_linkprop(rest)
    if sub == "show-linkprop":
        return dladm_show_linkprop(rest)
    raise _dl_die(f"illumos_sim: unknown or unsimulated subcommand '{sub}'")


# --- ifconfig ------------------------------------------------------------------------------

IFF = {"UP": 0x1, "BROADCAST": 0x2, "RUNNING": 0x40, "MULTICAST": 0x800,
       "IPv4": 0x1000000, "IPv6": 0x2000000}  # fmt: skip


def _flags(family: int) -> str:
    names = ["UP", "BROADCAST", "RUNNING", "MULTICAST", "IPv4"] if family == 4 else [
        "UP", "RUNNING", "MULTICAST", "IPv6"]  # fmt: skip
    value = sum(IFF[n] for n in names)
    return f"flags={value:x}<{','.join(names)}>"


@dataclass
class Lif:
    name: str
    family: int
    address: str
    prefixlen: int


def lifs(link: Link, family: int) -> list[Lif]:
    """Logical interfaces of a plumbed family, unit 0 first."""
    data = ip_json("-4" if family == 4 else "-6", "addr", "show", "dev", link.name)
    infos: list[dict[str, object]] = []
    for d in data:
        raw = d.get("addr_info")
        if isinstance(raw, list):
            infos += [i for i in raw if isinstance(i, dict)]
    out: list[Lif] = []
    if family == 4:
        out.append(Lif(link.name, 4, "0.0.0.0", 0))
        for info in infos:
            label = str(info.get("label", ""))
            if label.startswith(link.name + ":"):
                out.append(Lif(label, 4, str(info["local"]), int(str(info["prefixlen"]))))
        return [out[0], *sorted(out[1:], key=lambda lf: int(lf.name.partition(":")[2]))]
    local = [i for i in infos if str(i.get("scope")) == "link"]
    first = Lif(link.name, 6, str(local[0]["local"]), 10) if local else Lif(link.name, 6, "::", 0)
    out.append(first)
    others = [i for i in infos if str(i.get("scope")) != "link"]
    for n, info in enumerate(reversed(others), start=1):
        out.append(Lif(f"{link.name}:{n}", 6, str(info["local"]), int(str(info["prefixlen"]))))
    return out


def _status(link: Link, family: int) -> str:
    text = ""
    mtu = int(link.state.get(f"m{family}", link.link_mtu))
    for lif in lifs(link, family):
        text += f"{lif.name}: {_flags(family)} mtu {mtu} index {link.ifindex}\n"
        if family == 4:
            mask = (0xFFFFFFFF << (32 - lif.prefixlen)) & 0xFFFFFFFF if lif.prefixlen else 0
            text += f"\tinet {lif.address} netmask {mask:x}"
            if lif.prefixlen and lif.prefixlen < 32:
                net = ipaddress.IPv4Network(f"{lif.address}/{lif.prefixlen}", strict=False)
                text += f" broadcast {net.broadcast_address}"
            text += "\n"
        else:
            text += f"\tinet6 {lif.address}/{lif.prefixlen} \n"
        if lif.name == link.name and os.geteuid() == 0:
            text += f"\tether {mac_text(link.mac)} \n"
    return text


def _if_die(message: str) -> Die:
    return Die(f"ifconfig: {message}")


def _plumb(link: Link | None, name: str, family: int) -> str:
    if link is None or link.klass != "vnic":
        raise _if_die(f"cannot plumb {name}: Interface does not exist")
    if link.plumbed(family):
        sys.stderr.write(f"ifconfig: cannot plumb {name}: Interface already exists\n")
        return ""
    link.state[f"p{family}"] = "1"
    link.state[f"m{family}"] = str(link.link_mtu)
    if family == 6:
        sysctl_write(f"net/ipv6/conf/{name}/disable_ipv6", "0")
        sysctl_write(f"net/ipv6/conf/{name}/mtu", str(link.link_mtu))
    save_state(link)
    return ""


def _unplumb(link: Link | None, name: str, family: int) -> None:
    if link is None or not link.plumbed(family):
        raise _if_die(f"cannot unplumb {name}: Interface does not exist")
    if family == 4:
        ip("-4", "addr", "flush", "dev", name)
    else:
        ip("-6", "addr", "flush", "dev", name)
        sysctl_write(f"net/ipv6/conf/{name}/disable_ipv6", "1")
    ip("-4" if family == 4 else "-6", "route", "flush", "dev", name, check=False)
    link.state.pop(f"p{family}", None)
    link.state.pop(f"m{family}", None)
    save_state(link)


def _addr(text: str, family: int, allow_prefix: bool) -> tuple[str, int | None]:
    addr, slash, plen = text.partition("/")
    if slash and not allow_prefix:
        raise _if_die(f"{text}: unexpected '/'")
    try:
        parsed = ipaddress.ip_address(addr)
    except ValueError:
        raise _if_die(f"{text}: bad address") from None
    if parsed.version != family:
        raise _if_die(f"{text}: bad address")
    if not slash:
        return str(parsed), None
    if not plen.isdigit() or int(plen) > parsed.max_prefixlen:
        raise _if_die(f"Bad prefix length in {text}")
    return str(parsed), int(plen)


def _addif(link: Link | None, name: str, family: int, text: str) -> str:
    if link is None or not link.plumbed(family):
        raise _if_die(f"addif: SIOCLIFADDIF: {name}: no such interface")
    addr, plen = _addr(text, family, True)
    if plen is None:
        plen = 32 if family == 4 else 64
    existing = {lf.address for lf in lifs(link, family)}
    if addr in existing:
        raise _if_die("could not create address: Address already in use")
    if family == 4:
        used = {int(lf.name.partition(":")[2]) for lf in lifs(link, 4)[1:]}
        unit = next(n for n in range(1, 10000) if n not in used)
        lif = f"{name}:{unit}"
        ip("-4", "addr", "add", f"{addr}/{plen}", "broadcast", "+", "dev", name, "label", lif)
    else:
        ip("-6", "addr", "add", f"{addr}/{plen}", "dev", name, "nodad")
        lif = next(lf.name for lf in lifs(link, 6) if lf.address == addr)
    return f"Created new logical interface {lif}\n"


def _removeif(link: Link | None, name: str, family: int, text: str) -> None:
    if link is None or not link.plumbed(family):
        raise _if_die(f"removeif: SIOCLIFREMOVEIF: {name}: no such interface")
    addr, _ = _addr(text, family, False)
    for lif in lifs(link, family):
        if lif.address == addr:
            if lif.name == name:
                raise _if_die(f"removeif: cannot remove interface: {name}")
            ip("-4" if family == 4 else "-6", "addr", "del", f"{addr}/{lif.prefixlen}",
               "dev", name)  # fmt: skip
            return
    raise _if_die(f"removeif: SIOCLIFREMOVEIF: {name}: Cannot assign requested address")


def _setmtu(link: Link | None, name: str, family: int, value: str) -> None:
    if link is None or not link.plumbed(family):
        raise _if_die(f"setifmtu: SIOCSLIFMTU: {name}: no such interface")
    if not value.isdigit() or not 68 <= int(value) <= link.link_mtu:
        raise _if_die(f"setifmtu: SIOCSLIFMTU: {name}: Invalid argument")
    link.state[f"m{family}"] = value
    if family == 4:
        ip("link", "set", "dev", name, "mtu", value)
    else:
        sysctl_write(f"net/ipv6/conf/{name}/mtu", value)
    save_state(link)


def ifconfig(argv: Sequence[str]) -> str:
    if not argv or argv[0].startswith("-"):
        flags = argv[0][1:] if argv else "a"
        if "a" not in flags:
            raise _if_die(f"{argv[0]}: no such interface")
        families = [4] if "4" in flags else [6] if "6" in flags else [4, 6]
        out = ""
        links = all_links()
        for family in families:
            for each in links.values():
                if each.klass == "vnic" and each.plumbed(family):
                    out += _status(each, family)
        return out
    name, args = argv[0], list(argv[1:])
    if len(name) > 31:
        raise Die(f"{name}: interface name too long")
    family = 4
    if args and args[0] in ("inet", "inet6"):
        family = 6 if args.pop(0) == "inet6" else 4
    base = name.partition(":")[0]
    link = all_links().get(base)
    if not args:
        if link is None or not link.plumbed(family):
            raise _if_die(f"status: SIOCGLIFFLAGS: {name}: no such interface")
        return _status(link, family)
    if ":" in name:
        raise _if_die(f"illumos_sim: commands on logical interface {name} are not simulated")
    out = ""
    while args:
        word = args.pop(0)
        if word in ("addif", "removeif", "mtu") and not args:
            raise _if_die(f"no argument for {word}")
        if word == "plumb":
            out += _plumb(link, name, family)
        elif word == "unplumb":
            _unplumb(link, name, family)
        elif word in ("up", "down"):
            if link is None or not link.plumbed(family):
                raise _if_die(f"setifflags: SIOCGLIFFLAGS: {name}: no such interface")
        elif word == "addif":
            out += _addif(link, name, family, args.pop(0))
        elif word == "removeif":
            _removeif(link, name, family, args.pop(0))
        elif word == "mtu":
            _setmtu(link, name, family, args.pop(0))
        else:
            raise _if_die(f"illumos_sim: '{word}' is not simulated")
        link = all_links().get(base)
    return out


# --- route ---------------------------------------------------------------------------------


def _classful(addr: ipaddress.IPv4Address) -> int:
    value = int(addr)
    for plen in (8, 16, 24):
        if value & ((1 << (32 - plen)) - 1) == 0:
            return plen
    return 32


def route(argv: Sequence[str]) -> str:
    args = list(argv)
    quiet = False
    while args and args[0].startswith("-") and args[0] not in ("-inet", "-inet6"):
        flag = args.pop(0)
        if flag == "-p":
            raise Die("route: illumos_sim: persistent routes (-p) are not simulated")
        if "q" in flag:
            quiet = True
    if not args or args[0] not in ("add", "delete"):
        raise Die("route: illumos_sim: only 'add' and 'delete' are simulated")
    verb = args.pop(0)
    family = 4
    kind = ""
    interface = False
    ifp = ""
    netmask = ""
    operands: list[str] = []
    while args:
        word = args.pop(0)
        if word in ("-net", "-host"):
            kind = word[1:]
        elif word == "-inet":
            family = 4
        elif word == "-inet6":
            family = 6
        elif word in ("-interface", "-iface"):
            interface = True
        elif word == "-ifp":
            if not args:
                raise Die("route: -ifp requires an argument")
            ifp = args.pop(0)
        elif word == "-netmask":
            if not args:
                raise Die("route: -netmask requires an argument")
            netmask = args.pop(0)
        elif word.startswith("-"):
            raise Die(f"route: bad keyword: {word[1:]}")
        else:
            operands.append(word)
    if len(operands) != 2:
        raise Die(f"route: a destination and a gateway are required for {verb}")
    dest_text, gw_text = operands
    try:
        if dest_text == "default":
            net = ipaddress.ip_network("0.0.0.0/0" if family == 4 else "::/0")
        elif "/" in dest_text:
            net = ipaddress.ip_network(dest_text, strict=False)
        else:
            addr = ipaddress.ip_address(dest_text)
            if netmask:
                net = ipaddress.ip_network(f"{addr}/{netmask}", strict=False)
            elif kind == "host" or addr.version == 6:
                net = ipaddress.ip_network(f"{addr}/{addr.max_prefixlen}")
            else:
                net = ipaddress.ip_network(f"{addr}/{_classful(ipaddress.IPv4Address(addr))}")
        gateway = ipaddress.ip_address(gw_text)
    except ValueError as e:
        raise Die(f"route: bad address: {e}") from None
    if net.version != family or gateway.version != family:
        raise Die(f"route: bad address: {dest_text} / {gw_text} (use -inet6 for IPv6)")
    host = net.prefixlen == net.max_prefixlen and kind != "net"
    summary = f"{verb} {'host' if host else 'net'} {dest_text}: gateway {gateway}"
    links = all_links()
    if ifp and ifp not in links:
        raise Die(f"route: {ifp}: bad interface name")
    fam = "-4" if family == 4 else "-6"
    cmd = [fam, "route", "add" if verb == "add" else "del", str(net)]
    if interface:
        dev = ifp
        if not dev and verb == "delete":
            raise Die("route: illumos_sim: delete -interface needs -ifp")
        if not dev:
            for link in links.values():
                if link.klass == "vnic" and any(
                    lf.address == str(gateway) for lf in lifs(link, family)
                ):
                    dev = link.name
        local = dev in links and any(lf.address == str(gateway) for lf in lifs(links[dev], family))
        if not local and verb == "add":
            return _route_error(summary, "ENETUNREACH", "Network is unreachable", quiet)
        cmd += ["dev", dev]
    else:
        cmd += ["via", str(gateway)]
        if ifp:
            cmd += ["dev", ifp]
    proc = ip(*cmd, check=False)
    if proc.returncode == 0:
        return "" if quiet else summary + "\n"
    said = proc.stderr
    if "File exists" in said:
        return _route_error(summary, "EEXIST", "entry exists", quiet)
    if "No such process" in said or "not found" in said:
        return _route_error(summary, "ESRCH", "not in table", quiet)
    if "unreachable" in said or "invalid gateway" in said or "No route" in said:
        return _route_error(summary, "ENETUNREACH", "Network is unreachable", quiet)
    if "not permitted" in said:
        return _route_error(summary, "EPERM", "insufficient privileges", quiet)
    return _route_error(summary, "EINVAL", "Invalid argument", quiet)


def _route_error(summary: str, errname: str, text: str, quiet: bool) -> NoReturn:
    raise Die("", ILLUMOS_ERRNO[errname], "" if quiet else f"{summary}: {text}\n")


# --- routeadm ------------------------------------------------------------------------------

ROUTEADM_OPTIONS = ("ipv4-forwarding", "ipv6-forwarding", "ipv4-routing", "ipv6-routing")


def _state_file() -> Path:
    base = os.environ.get("ZTONE_SIM_STATE")
    if not base:
        ino = os.stat("/proc/self/ns/net").st_ino
        base = f"/tmp/ztone-illumos-sim-{os.geteuid()}-{ino}"
    Path(base).mkdir(parents=True, exist_ok=True)
    return Path(base, "routeadm.json")


def _current_forwarding(option: str) -> bool:
    path = "net/ipv4/ip_forward" if option.startswith("ipv4") else "net/ipv6/conf/all/forwarding"
    return sysctl_read(path) == "1" if option.endswith("forwarding") else False


def routeadm(argv: Sequence[str]) -> str:
    try:
        opts, args = getopt.getopt(list(argv), "e:d:r:upR:s:")
    except getopt.GetoptError as e:
        raise Die(f"routeadm: invalid option -{e.opt}") from e
    if args:
        raise Die("routeadm: illumos_sim: unexpected operands")
    path = _state_file()
    config: dict[str, bool] = json.loads(path.read_text()) if path.exists() else {}
    update = False
    for opt, value in opts:
        if opt in ("-e", "-d", "-r"):
            if value not in ROUTEADM_OPTIONS:
                raise Die(f"routeadm: {value}: invalid option")
            if opt == "-r":
                config.pop(value, None)
            else:
                config[value] = opt == "-e"
        elif opt == "-u":
            update = True
    path.write_text(json.dumps(config))
    if update:
        sysctl_write("net/ipv4/ip_forward", "1" if config.get("ipv4-forwarding") else "0")
        sysctl_write("net/ipv6/conf/all/forwarding",
                     "1" if config.get("ipv6-forwarding") else "0")  # fmt: skip
    if opts:
        return ""
    out = "              Configuration   Current              Current\n"
    out += "                     Option   Configuration        System State\n"
    out += "-" * 63 + "\n"
    for option in ("ipv4-routing", "ipv6-routing", "ipv4-forwarding", "ipv6-forwarding"):
        label = f"IPv{option[3]} {option.split('-')[1]}"
        configured = "enabled" if config.get(option) else "disabled"
        current = "enabled" if _current_forwarding(option) else "disabled"
        out += f"{label:>27}   {configured:<20} {current}\n"
    return out


# --- netstat, svcs, ppriv ----------------------------------------------------------------------


def netstat(argv: Sequence[str]) -> str:
    flags = "".join(a[1:] for a in argv if a.startswith("-") and a != "-f")
    if "g" not in flags:
        raise Die("netstat: illumos_sim: only -g (group memberships) is simulated")
    family_filter = None
    if "-f" in argv:
        index = list(argv).index("-f")
        family_filter = argv[index + 1] if index + 1 < len(argv) else ""
    links = all_links()
    rows4: list[tuple[str, str]] = []
    rows6: list[tuple[str, str]] = []
    for d in ip_json("maddr", "show"):
        name = str(d.get("ifname", ""))
        link = links.get(name)
        if link is None or link.klass != "vnic":
            continue
        entries = d.get("maddr")
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            fam = entry.get("family")
            if fam == "inet" and link.plumbed(4):
                rows4.append((name, str(entry["address"])))
            elif fam == "inet6" and link.plumbed(6):
                rows6.append((name, str(entry["address"])))
    out = ""
    if family_filter in (None, "inet"):
        out += "\nGroup Memberships: IPv4\nInterface Group                RefCnt\n"
        out += "--------- -------------------- ------\n"
        out += "".join(f"{n:<9} {g:<20} {1:>6}\n" for n, g in rows4)
    if family_filter in (None, "inet6"):
        out += "\nGroup Memberships: IPv6\n If       Group                   RefCnt\n"
        out += "------ --------------------------- ------\n"
        out += "".join(f"{n:<6} {g:<27} {1:>6}\n" for n, g in rows6)
    return out


KNOWN_SERVICES = (
    "svc:/network/datalink-management:default",
    "svc:/network/ip-interface-management:default",
    "svc:/network/physical:default",
    "svc:/system/filesystem/local:default",
    "svc:/network/loopback:default",
    # in.ndpd: the Linux kernel's own IPv6 autoconfiguration plays its part here
    "svc:/network/routing/ndp:default",
)


def svcs(argv: Sequence[str]) -> str:
    try:
        _, args = getopt.getopt(list(argv), "Ho:xvpl")
    except getopt.GetoptError as e:
        raise Die(f"svcs: illegal option -- {e.opt}") from e
    offline = [s for s in os.environ.get("ZTONE_SIM_SVCS_OFFLINE", "").split(",") if s]
    out = ""
    for pattern in args:
        matches = [s for s in KNOWN_SERVICES if pattern in s]
        if not matches:
            raise Die(f"svcs: Pattern '{pattern}' doesn't match any instances")
        for fmri in matches:
            out += ("maintenance" if any(o in fmri for o in offline) else "online") + "\n"
    return out


CAPS = {12: ("sys_dl_config", "sys_ip_config", "sys_net_config"), 13: ("net_rawaccess",)}


def ppriv(argv: Sequence[str]) -> str:
    pids = [a for a in argv if not a.startswith("-")]
    if not pids:
        raise Die("usage: ppriv [-v] pid ...")
    out = ""
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            raise Die(f"ppriv: cannot examine {pid}: no such process") from None
        match = re.search(r"^CapEff:\s*([0-9a-f]+)", status, re.M)
        caps = int(match.group(1), 16) if match else 0
        privs = ["basic"]
        for bit, names in CAPS.items():
            if caps >> bit & 1:
                privs += names
        effective = ",".join(privs)
        out += f"{pid}:\t{comm}\nflags = <none>\n\tE: {effective}\n\tI: basic\n"
        out += f"\tP: {effective}\n\tL: all\n"
    return out


TOOLS: dict[str, Callable[[Sequence[str]], str]] = {
    "dladm": dladm,
    "ifconfig": ifconfig,
    "route": route,
    "routeadm": routeadm,
    "netstat": netstat,
    "svcs": svcs,
    "ppriv": ppriv,
}


def main(tool: str, argv: Sequence[str]) -> int:
    try:
        sys.stdout.write(TOOLS[tool](argv))
    except Die as e:
        sys.stdout.write(e.stdout)
        if e.message:
            sys.stderr.write(e.message + "\n")
        return e.code
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in TOOLS:
        sys.stderr.write(f"usage: simtools.py {{{','.join(TOOLS)}}} args...\n")
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2:]))
