"""Network namespaces for tests that need a real network stack (root only).

Everything a test builds lives in namespaces it created; nothing is added to the
host's own namespace. Names are ``ztt-<pid>-<n>`` so concurrent runs never clash
and leftovers are recognisable. Only 198.18.0.0/15 and fd00::/8 are handed out.

* :class:`Namespace` - one namespace: ``ip``/``run``/``popen`` inside it, ``call`` a
  Python function inside it (forked child, bounded in time), ``delete`` (ends the
  processes it started, by pid, then removes the namespace).
* :func:`bridge_namespaces` - n host namespaces, each with ``eth0`` on one bridge that
  lives in a separate "switch" namespace; addresses from the given subnets, no
  default route.
* :func:`netns_unavailable` - why namespaces cannot be used here (for ``pytest.skip``).

Use them as context managers (or call ``delete``) so every namespace goes away.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import itertools
import json
import os
import pickle
import select
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

IP = "ip"
NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
ALLOWED_V4 = ipaddress.IPv4Network("198.18.0.0/15")
ALLOWED_V6 = ipaddress.IPv6Network("fd00::/8")
COMMAND_TIMEOUT = 30.0

_counter = itertools.count(1)


def unique_name(tag: str = "") -> str:
    """``ztt-<pid>-<n>[<tag>]``: unique in this run, recognisable as a test's."""
    return f"ztt-{os.getpid()}-{next(_counter)}{tag}"


def _run(
    cmd: Sequence[str],
    timeout: float = COMMAND_TIMEOUT,
    check: bool = True,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(cmd), capture_output=True, text=True, timeout=timeout, input=input, check=False
    )
    if check and result.returncode != 0:
        raise subprocess.CalledProcessError(
            result.returncode, list(cmd), result.stdout, result.stderr
        )
    return result


_unavailable: list[str | None] = []


def netns_unavailable() -> str | None:
    """None if namespaces can be made here, else the reason (checked once, by trying)."""
    if _unavailable:
        return _unavailable[0]
    reason: str | None = None
    if not sys.platform.startswith("linux"):
        reason = "network namespaces need Linux"
    elif os.geteuid() != 0:
        reason = "network namespaces need root"
    elif shutil.which(IP) is None:
        reason = "the ip command (iproute2) is not installed"
    else:
        probe = unique_name("-probe")
        try:
            _run([IP, "netns", "add", probe], timeout=10)
        except (OSError, subprocess.SubprocessError) as e:
            reason = f"ip netns add failed: {getattr(e, 'stderr', '') or e}".strip()
        else:
            _run([IP, "netns", "del", probe], timeout=10, check=False)
    _unavailable.append(reason)
    return reason


def _setns(name: str) -> None:
    fd = os.open(os.path.join(NETNS_RUN_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns_fd(fd, name)
    finally:
        os.close(fd)


def _setns_fd(fd: int, what: str) -> None:
    setns = getattr(os, "setns", None)
    if setns is not None:
        setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns({what}): {os.strerror(err)}")


class NamespaceCallError(RuntimeError):
    """The function run by :meth:`Namespace.call` raised; the message has its traceback."""


class Namespace:
    """One network namespace made by a test (``lo`` is brought up)."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or unique_name()
        self._processes: list[subprocess.Popen[Any]] = []
        self.deleted = False
        _run([IP, "netns", "add", self.name])
        try:
            self.ip("link", "set", "lo", "up")
        except BaseException:
            _run([IP, "netns", "del", self.name], check=False)
            raise

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"

    def __enter__(self) -> Namespace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.delete()

    # --- commands ----------------------------------------------------------------

    def ip(
        self, *args: str, timeout: float = COMMAND_TIMEOUT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``ip -n <name> <args>``."""
        return _run([IP, "-n", self.name, *args], timeout=timeout, check=check)

    def ip_json(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> Any:
        """``ip -n <name> -j <args>`` decoded (``[]`` for empty output)."""
        out = _run([IP, "-n", self.name, "-j", *args], timeout=timeout).stdout.strip()
        return json.loads(out) if out else []

    def run(
        self,
        cmd: Sequence[str],
        timeout: float = COMMAND_TIMEOUT,
        check: bool = True,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside the namespace (``ip netns exec``), bounded by ``timeout``."""
        return _run([IP, "netns", "exec", self.name, *cmd], timeout, check, input)

    def popen(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``cmd`` inside the namespace; it is ended (by pid) on :meth:`delete`."""
        proc: subprocess.Popen[Any] = subprocess.Popen(
            [IP, "netns", "exec", self.name, *cmd], **kwargs
        )
        self._processes.append(proc)
        return proc

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 60.0) -> T:
        """Run ``fn(*args)`` in a forked child that joined this namespace; return its result.

        The result (or the exception's traceback) comes back pickled. The child is
        killed if it has not finished after ``timeout`` seconds (:class:`TimeoutError`).
        Only the network namespace changes: ``/sys/class/net`` still shows the parent's
        view; use netlink (``ip``, pyroute2) or ``/proc/net`` (this process's netns).
        """
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                os.close(read_fd)
                try:
                    _setns(self.name)
                    outcome: tuple[str, Any] = ("ok", fn(*args))
                except BaseException as e:
                    outcome = ("err", f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
                try:
                    data = pickle.dumps(outcome)
                except Exception as e:
                    data = pickle.dumps(("err", f"result cannot be pickled: {e}"))
                with os.fdopen(write_fd, "wb") as f:
                    f.write(data)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(write_fd)
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    os.kill(pid, signal.SIGKILL)
                    raise TimeoutError(f"{fn.__name__} in {self.name} took over {timeout:g} s")
                ready, _, _ = select.select([read_fd], [], [], left)
                if ready:
                    chunk = os.read(read_fd, 1 << 16)
                    if not chunk:
                        break
                    chunks.append(chunk)
        finally:
            os.close(read_fd)
            os.waitpid(pid, 0)
        if not chunks:
            raise NamespaceCallError(f"{fn.__name__} in {self.name}: child died without a result")
        kind, value = pickle.loads(b"".join(chunks))
        if kind != "ok":
            raise NamespaceCallError(f"{fn.__name__} in {self.name} failed: {value}")
        result: T = value
        return result

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Move the calling thread into this namespace for the ``with`` block, then back.

        Sockets the thread opens meanwhile, and processes it starts, belong to this
        namespace (a socket keeps its namespace afterwards). Only the calling thread
        moves; use it from the test's own thread and keep the block short.
        """
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(self.name)
            try:
                yield
            finally:
                _setns_fd(home, "the test's own namespace")
        finally:
            os.close(home)

    # --- inspection --------------------------------------------------------------

    def link_names(self) -> list[str]:
        return [str(link["ifname"]) for link in self.ip_json("link", "show")]

    def addresses(
        self, ifname: str | None = None
    ) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
        """Addresses (with prefix) on ``ifname``, or on every link but ``lo``."""
        args = ["addr", "show"] + (["dev", ifname] if ifname else [])
        found: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface] = []
        for link in self.ip_json(*args):
            if ifname is None and link.get("ifname") == "lo":
                continue
            for info in link.get("addr_info", []):
                found.append(ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}"))
        return found

    # --- teardown ----------------------------------------------------------------

    def delete(self) -> None:
        """End the processes started with :meth:`popen` (by pid), then remove the namespace."""
        if self.deleted:
            return
        self.deleted = True
        for proc in self._processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        for proc in self._processes:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=5)
        _run([IP, "netns", "del", self.name], check=False)


def _check_subnet(subnet: ipaddress.IPv4Network | ipaddress.IPv6Network) -> None:
    if isinstance(subnet, ipaddress.IPv4Network):
        inside, allowed = subnet.subnet_of(ALLOWED_V4), str(ALLOWED_V4)
    else:
        inside, allowed = subnet.subnet_of(ALLOWED_V6), str(ALLOWED_V6)
    if not inside:
        raise ValueError(f"test subnets must lie in {allowed}, not {subnet}")


@dataclass
class Lan:
    """Hosts on one Ethernet segment; ``hosts[i]`` has ``eth0`` = ``v4[i]`` (and ``v6[i]``)."""

    switch: Namespace
    hosts: list[Namespace]
    v4: list[ipaddress.IPv4Interface]
    v6: list[ipaddress.IPv6Interface] = field(default_factory=list)

    def delete(self) -> None:
        errors: list[BaseException] = []
        for ns in [*self.hosts, self.switch]:
            try:
                ns.delete()
            except BaseException as e:
                errors.append(e)
        if errors:
            raise errors[0]


@contextlib.contextmanager
def bridge_namespaces(
    n: int,
    subnet: str = "198.18.0.0/24",
    subnet6: str | None = "fd00:5a7e::/64",
    mtu: int = 1500,
) -> Iterator[Lan]:
    """n namespaces on one bridge (in its own "switch" namespace); torn down on exit.

    Host i gets ``eth0`` with the (i+1)-th address of ``subnet`` (and of ``subnet6``
    unless None, with DAD off so it is usable at once). No default route anywhere.
    """
    net4 = ipaddress.IPv4Network(subnet)
    _check_subnet(net4)
    net6 = ipaddress.IPv6Network(subnet6) if subnet6 else None
    if net6 is not None:
        _check_subnet(net6)
    if n < 1 or n + 2 > net4.num_addresses:
        raise ValueError(f"{n} hosts do not fit in {net4}")
    switch = Namespace(unique_name("-sw"))
    lan = Lan(switch, [], [])
    try:
        switch.ip("link", "add", "br0", "type", "bridge")
        switch.ip("link", "set", "br0", "mtu", str(mtu), "up")
        for i in range(n):
            host = Namespace(unique_name(f"-h{i}"))
            lan.hosts.append(host)
            port = f"p{i}"
            switch.ip(
                "link", "add", port, "mtu", str(mtu), "type", "veth",
                "peer", "name", "eth0", "mtu", str(mtu), "netns", host.name,
            )  # fmt: skip
            switch.ip("link", "set", port, "master", "br0", "up")
            v4 = ipaddress.IPv4Interface(f"{net4.network_address + i + 1}/{net4.prefixlen}")
            host.ip("addr", "add", str(v4), "dev", "eth0")
            lan.v4.append(v4)
            if net6 is not None:
                v6 = ipaddress.IPv6Interface(f"{net6.network_address + i + 1}/{net6.prefixlen}")
                host.ip("addr", "add", str(v6), "dev", "eth0", "nodad")
                lan.v6.append(v6)
            host.ip("link", "set", "eth0", "up")
        yield lan
    finally:
        lan.delete()


def leftover_namespaces(pid: int | None = None) -> list[str]:
    """Namespaces named by :func:`unique_name` for process ``pid`` (default: this one)."""
    prefix = f"ztt-{os.getpid() if pid is None else pid}-"
    try:
        names = os.listdir(NETNS_RUN_DIR)
    except FileNotFoundError:
        return []
    return sorted(name for name in names if name.startswith(prefix))
