"""The daemon's asyncio runtime: one node core, its UDP sockets, timer, home and API.

Start-up follows zerotier-one's order (C.3.1): home directory, ``local.conf``,
identity, tokens, the node, the primary UDP port (``zerotier-one.port``), the
secondary port, the local JSON API, then every moon in ``moons.d``. The core is
driven from the event loop: each datagram and each timer expiry is one core call,
after which its actions are carried out and the single ``call_at`` timer re-armed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import platform
import random
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ztone import __version__
from ztone.crypto.backend import DEFAULT, Backend
from ztone.node.actions import (
    ANY_LOCAL_SOCKET,
    Action,
    ConfigRequested,
    DeliverFrame,
    EventKind,
    NetworkConfigChanged,
    NodeEvent,
    PutState,
    SendPacket,
)
from ztone.node.constants import FAST_GRANT_SYNC
from ztone.node.node import Node, PhysicalPathSetting
from ztone.node.wire.identity import Identity
from ztone.node.wire.inetaddress import InetAddress
from ztone.osdep.base import TapError, TapFactory
from ztone.osdep.factory import (
    BACKEND_ENV,
    ILLUMOS,
    USERSPACE,
    ChoosingTapFactory,
    default_tap_factory,
    selected_backend,
)
from ztone.service.api.controller_paths import lazy_controller_routes
from ztone.service.api.http import ApiServer
from ztone.service.api.network_routes import network_routes
from ztone.service.api.routes import ApiRouter
from ztone.service.api.ui import UiGate, ui_routes
from ztone.service.api.ui_session import UiSessions
from ztone.service.clock import now_ms
from ztone.service.collector import CollectorPolicy
from ztone.service.config import (
    DEFAULT_PRIMARY_PORT,
    ConfigError,
    LocalConf,
    load_local_conf,
)
from ztone.service.control import DaemonControl, DaemonCounters, DaemonParts
from ztone.service.controller_lazy import LazyController, controller_location, needed_at_start
from ztone.service.dataplane import NativeDataplane, native_dataplane_module, reactor_wanted
from ztone.service.entropy import RandomPool
from ztone.service.frame_pump import FramePump
from ztone.service.heap import heap_trimmer
from ztone.service.home import FileStateStore, Home
from ztone.service.interfaces import local_addresses
from ztone.service.networks import NetworkPorts
from ztone.service.state_writer import StateWriter
from ztone.service.tcp_fallback import FallbackSettings, TcpFallback
from ztone.service.udp import UdpSockets, trial_bind
from ztone.service.userspace_conf import UserspaceSettings, parse_userspace_settings
from ztone.util.store_location import describe, postgres_conninfo

if TYPE_CHECKING:
    from ztone.controller.lease import ControllerLease
    from ztone.controller.store import ControllerStore
    from ztone.osdep.userspace import UserspaceTapFactory
    from ztone.service.controller import EmbeddedController
    from ztone.service.userspace import NoRootFrontends

log = logging.getLogger(__name__)

LOCAL_CONF_CHECK_INTERVAL = 10.0
MULTICAST_SCAN_INTERVAL = 1.0
TCP_FALLBACK_TICK = 0.5
VERSION = (1, 14, 1)
BINDER_REFRESH_PERIOD = 30.0
LEASE_POLL = 1.0  # seconds: a standby's tries for the controller lease; the active's checks
LEASE_CHECK_TIMEOUT = 2.0  # seconds an active waits for the database before fencing


class StartupError(Exception):
    """The daemon cannot start; the message says why and what to do."""


def random_port() -> int:
    """``_getRandomPort``: 20000 + rand % 45500, then the first that binds."""
    r = 20000 + random.randrange(45500)
    for _ in range(1000):
        r += 1
        if r > 65535:
            r = 20000
        if trial_bind(r):
            return r
    return 0


class NodeService:
    """Runs one node until :meth:`stop`: the event loop's glue between the core, its
    sockets, timer, ports and home. The local API gets a :class:`DaemonControl`."""

    def __init__(
        self,
        home_path: str,
        port: int | None = None,
        crypto: Backend = DEFAULT,
        fast_path: bool | None = None,
    ) -> None:
        self.home = Home(home_path)
        self.crypto = crypto
        self.fast_path = fast_path  # Node's fast_path (None: its default)
        self._cli_port = port
        self.conf = LocalConf()
        self.node: Node
        self.store: FileStateStore
        self.state: StateWriter
        self.udp: UdpSockets
        self.api: ApiServer | None = None
        self.primary_port = 0
        self.secondary_port = 0
        self._loop: asyncio.AbstractEventLoop
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: int | None = None
        self._output_pending = False
        self._stopping: asyncio.Event | None = None
        self._conf_mtime: float | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.exit_reason = ""
        self.ports: NetworkPorts | None = None
        self.pump: FramePump | None = None
        self.dataplane: NativeDataplane | None = None
        self.controller: EmbeddedController | None = None  # once loaded (see lazy_controller)
        self.lazy_controller: LazyController | None = None  # None: no controller at all
        self.controller_store: ControllerStore | None = None
        self.identity_collision = False
        self.lease: ControllerLease | None = None
        self.fenced = False  # the controller lease was lost: stopped, to stand by again
        self.counters = DaemonCounters()
        self.control: DaemonControl | None = None
        self.fallback: TcpFallback | None = None
        self.collector: CollectorPolicy | None = None
        self.userspace_settings = UserspaceSettings()
        self.port_factory: ChoosingTapFactory | None = None
        # The no-root front-ends and the user-space network stack under them are loaded
        # only when used (~2 MB resident, bench/memory.py): see _ensure_frontends.
        self.frontends: NoRootFrontends | None = None

    # ----------------------------------------------------------------- start-up

    def _load_conf(self) -> LocalConf:
        conf = load_local_conf(self.home.local_conf_path)
        for warning in conf.warnings:
            log.warning("%s", warning)
        try:
            self._conf_mtime = self.home.local_conf_path.stat().st_mtime
        except OSError:
            self._conf_mtime = None
        return conf

    def _read_userspace_settings(self) -> UserspaceSettings:
        raw = self.conf.raw.get("settings", {})
        settings = parse_userspace_settings(
            raw if isinstance(raw, dict) else {}, str(self.home.local_conf_path)
        )
        for problem in settings.problems:
            log.error("%s (left out)", problem)
        return settings

    def _ensure_frontends(self) -> NoRootFrontends | None:
        """The SOCKS5 servers' and forwards' keeper, made (and the user-space stack
        loaded) on first need: settings asking for a front-end. A user-space port
        alone does not load it (see :meth:`_describe_frontends`)."""
        factory = self.port_factory
        if factory is None:
            return None
        if self.frontends is None:
            from ztone.service.userspace import NoRootFrontends  # noqa: PLC0415 (lazy)

            self.frontends = NoRootFrontends(factory)
        return self.frontends

    def _describe_frontends(self, nwid: int) -> dict[str, Any] | None:
        """The ``ztone`` object of a network's ``/network`` JSON (None: none)."""
        if self.frontends is not None:
            return self.frontends.describe(nwid)
        # No front-end configured: a user-space port still says so, without loading
        # the SOCKS5 and forward modules (NoRootFrontends.describe's answer for it).
        factory = self.port_factory
        if factory is not None and factory.backend_of(nwid) == "userspace":
            return {"portBackend": "userspace", "socks5": [], "forwards": []}
        return None

    async def _apply_frontends(self) -> None:
        """Start (or restart) the SOCKS5 servers and forwards; their trouble is logged,
        never the daemon's end."""
        settings = self.userspace_settings
        wanted = (
            (settings.socks5 is not None and settings.socks5.enabled)
            or any(conf.enabled for conf in settings.network_socks5.values())
            or bool(settings.forwards)
        )
        try:
            frontends = self._ensure_frontends() if wanted else self.frontends
            if frontends is None:
                return
            await frontends.apply(settings)
        except Exception:
            self.counters.bugs += 1
            log.exception("BUG: starting the SOCKS5 servers and port forwards raised")

    def _port_factory(self) -> ChoosingTapFactory:
        """The platform's ports, or a user-space stack per network (no-root mode)."""
        platform: TapFactory | None = None
        problem = ""
        forced = False
        try:
            backend = selected_backend()
            if backend == USERSPACE:
                forced = True
            else:
                if backend == ILLUMOS:
                    self._illumos_preflight(str(self.home.path))
                platform = default_tap_factory(self.home.path, self.crypto)
                for name in platform.cleanup_stale():
                    log.info("removed a stale virtual port %s", name)
        except TapError as e:
            problem = str(e)
            log.warning("virtual ports unavailable: %s", e)
            platform = None

        # ZTONE_TAP_BACKEND naming a platform backend is an explicit choice of ports:
        # "auto" then does not fall back to a user-space stack (a port error shows).
        explicit = bool(os.environ.get(BACKEND_ENV, "").strip())

        def choose(nwid: int) -> str:
            if forced:
                return USERSPACE
            choice = self.userspace_settings.backend_for(nwid)
            return "tap" if choice == "auto" and explicit else choice

        def make_userspace() -> UserspaceTapFactory:
            from ztone.osdep.userspace import UserspaceTapFactory  # noqa: PLC0415 (lazy)

            return UserspaceTapFactory(self._loop)

        return ChoosingTapFactory(
            platform,
            make_userspace,
            choose,
            problem,
        )

    def _physical(self) -> list[PhysicalPathSetting]:
        return [
            PhysicalPathSetting(net, tp, mtu) for net, tp, mtu in self.conf.physical_path_configs()
        ]

    def _path_check(self, address: int, local_socket: int, remote: InetAddress) -> bool:
        if self.conf.is_blacklisted(remote.ip):
            return False
        return not self.conf.peer_blacklisted(address, remote.ip)

    def _path_lookup(self, address: int, family: int) -> InetAddress | None:
        candidates = [
            a for a in self.conf.peer_try_addresses(address) if family in (0, a.ip.version)
        ]
        return random.choice(candidates) if candidates else None

    def _bind_ports(self) -> None:
        settings = self.conf.settings
        port = settings.primary_port
        if port is None:
            port = self._cli_port if self._cli_port is not None else DEFAULT_PRIMARY_PORT
        if port == 0:
            for _ in range(256):
                candidate = 20000 + random.randrange(45500)
                if trial_bind(candidate):
                    port = candidate
                    break
        if port == 0 or not trial_bind(port):
            raise StartupError(f"cannot bind to local control interface port {port}")
        self.primary_port = port
        self._bind_all(port)
        if settings.allow_secondary_port:
            secondary = settings.secondary_port or random_port()
            if secondary and secondary != port:
                try:
                    self._bind_all(secondary)
                    self.secondary_port = secondary
                except StartupError as e:
                    log.warning("secondary port %d not bound: %s", secondary, e)

    def _bind_all(self, port: int) -> None:
        hosts = [str(ip) for ip in self.conf.settings.bind] or ["0.0.0.0", "::"]
        bound = 0
        for host in hosts:
            try:
                self.udp.bind(host, port)
                bound += 1
            except OSError as e:
                log.warning("cannot bind UDP %s/%d: %s", host, port, e)
        if bound == 0:
            raise StartupError(f"cannot bind UDP port {port} on {', '.join(hosts)}")

    def listening_on(self) -> list[InetAddress]:
        if self.conf.settings.bind:
            return [a for _, a in self.udp.bound]
        out: list[InetAddress] = []
        for port in (self.primary_port, self.secondary_port):
            if port:
                out += local_addresses(port, list(self.conf.settings.interface_prefix_blacklist))
        return out

    @staticmethod
    def _illumos_preflight(home: str) -> None:
        """Log what would keep the illumos backend from working (``ztone-cli doctor``).

        The daemon starts anyway: VL1 works without virtual networks, and a port that
        cannot be made is reported per network.
        """
        from ztone.osdep.illumos import run_preflight  # noqa: PLC0415 (illumos only)

        try:
            problems = run_preflight(home)
        except Exception:
            log.exception("illumos preflight checks failed to run")
            return
        for problem in problems:
            log.error("preflight (%s): %s; fix: %s", problem.check, problem.message, problem.fix)
        if not problems:
            log.info("illumos preflight checks passed")

    async def start(self) -> None:
        """Everything up to the main loop; :class:`StartupError` if something is wrong."""
        self._loop = asyncio.get_running_loop()
        if self._stopping is None:
            self._stopping = asyncio.Event()
        home = self.home
        try:
            home.ensure()
            home.lock_down_secrets()
            home.check_obsolete()
            self.conf = self._load_conf()
            FileStateStore(home).check_planet()
        except ConfigError as e:
            raise StartupError(str(e)) from None
        except OSError as e:
            raise StartupError(f"cannot use home directory {home.path}: {e}") from None
        identity = home.load_or_create_identity(
            lambda: Identity.generate(os.urandom, self.crypto.memory_hard_hash)
        )
        self.store = FileStateStore(home)
        self.state = StateWriter(self.store)
        self.lazy_controller = self._start_controller(identity)
        if self.lease is not None and self.controller is None:
            # Never run the node of a controller identity without its controller.
            await self._release_lease()
            raise StartupError("holding the controller lease, but its store cannot be opened")
        self.node = Node(
            identity,
            now=now_ms(),
            random_bytes=RandomPool(),
            state=self.state,
            crypto=self.crypto,
            path_check=self._path_check,
            path_lookup=self._path_lookup,
            physical=self._physical(),
            version=VERSION,
            allow_loopback_paths=self.conf.settings.allow_loopback_paths,
            controller=self.lazy_controller,
            os_arch=f"{platform.system().lower()}/{platform.machine()}",
            fast_path=self.fast_path,
        )
        self.userspace_settings = self._read_userspace_settings()
        factory = self.port_factory = self._port_factory()
        await self._apply_frontends()
        self.pump = FramePump(self._loop, self._on_tap_frame, self._input_batch_end)
        self.ports = NetworkPorts(home, factory, self.pump)
        self.udp = UdpSockets(self._loop, self._on_datagram, self._input_batch_end)
        self._start_dataplane()
        self.fallback = TcpFallback(
            self._loop, self._on_tunnel_datagram, self._input_batch_end, VERSION, now_ms
        )
        self._configure_fallback()
        self._bind_ports()
        home.write_port(self.primary_port)
        self.node.set_local_addresses(self.listening_on())
        control = DaemonControl(
            DaemonParts(
                node=self.node,
                home=home,
                ports=self.ports,
                pump=self.pump,
                udp=self.udp,
                fallback=self.fallback,
                controller=self.lazy_controller,
                counters=self.counters,
                primary_port=self.primary_port,
                secondary_port=self.secondary_port,
                report_activity=self._report_activity,
                native_stats=self._native_stats,
            ),
            conf=lambda: self.conf,
            listening_on=self.listening_on,
            after_input=self._after_input,
            auth_token=home.auth_token(),
            metrics_token=home.metrics_token(),
            allow_management_from=list(self.conf.management_networks()),
        )
        self.control = control
        api_hosts = ["127.0.0.1", "::1"]
        if control.allow_management_from:
            api_hosts = ["0.0.0.0", "::"]
        extra = network_routes(control, self._describe_frontends)
        lazy = self.lazy_controller
        if lazy is not None:
            extra += lazy_controller_routes(lazy.get)
        sessions = UiSessions()
        seen = lazy.last_requests if lazy is not None else None
        extra += ui_routes(sessions, seen)
        home_app = self.home.path / "app"
        self.api = ApiServer(
            UiGate(
                ApiRouter(control, extra_routes=extra),
                control,
                sessions,
                lambda: home_app if self.conf.settings.enable_web_server else None,
            )
        )
        try:
            await self.api.start(api_hosts, self.primary_port)
        except OSError as e:
            raise StartupError(
                f"cannot listen for the local API on port {self.primary_port}: {e}"
            ) from None
        for world_id in self.store.valid_moon_ids():
            self.node.orbit(now_ms(), world_id, 0)
        for nwid in self.store.network_ids():
            self.node.join(now_ms(), nwid)
        self._after_input()
        self._tasks.append(asyncio.create_task(self._housekeeping()))
        self._tasks.append(asyncio.create_task(self._scan_multicast()))
        self._tasks.append(asyncio.create_task(self._tick_fallback()))
        if self.dataplane is not None:
            self._tasks.append(asyncio.create_task(self._tick_dataplane()))
        if self.lease is not None:
            self._tasks.append(asyncio.create_task(self._watch_lease(self.lease)))
        # What start-up built (modules, settings, the API's routes) lives as long as the
        # daemon. Frozen, it is out of the cyclic collector's reach: a full collection
        # walking those ~50,000 objects holds every packet up for tens of milliseconds.
        gc.collect()
        gc.freeze()
        # Later survivors are frozen periodically too (a root's peers: service/collector),
        # and the C heap's free pages go back to the kernel (service/heap).
        self.collector = CollectorPolicy(time.monotonic(), heap_trimmer())
        log.info(
            "ztone %s node %s listening on UDP %d%s (crypto: %s)",
            __version__,
            identity.address,
            self.primary_port,
            f" and {self.secondary_port}" if self.secondary_port else "",
            self.crypto.name,
        )
        log.info("fast path: %s", "on" if self.node.fastpath is not None else "off")
        log.info(
            "native receive data plane: %s",
            "off"
            if self.dataplane is None
            else "on (reactor thread)"
            if self.dataplane.reactor
            else "on (event loop)",
        )

    async def run(self, ready: Callable[[], None] | None = None) -> None:
        """Start, call ``ready`` (the API answers from then on), serve until :meth:`stop`,
        then shut down cleanly."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        if not await self._standby():
            await self._release_lease()
            return  # stopped while standing by
        await self.start()
        if ready is not None:
            ready()
        assert self._stopping is not None
        try:
            await self._stopping.wait()
        finally:
            await self.shutdown()

    def stop(self, reason: str = "") -> None:
        if self._stopping is not None and not self._stopping.is_set():
            self.exit_reason = reason
            self._stopping.set()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
            self._loop.add_signal_handler(sig, self.stop, signal.Signals(sig).name)
        for sig in (signal.SIGHUP, signal.SIGPIPE, signal.SIGUSR1, signal.SIGUSR2):
            self._loop.add_signal_handler(sig, lambda: None)

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._timer is not None:
            self._timer.cancel()
        try:
            self.node.flush_state(now_ms())
            self._apply(self.node.drain_actions(), send=False)
        except Exception:
            log.exception("flushing state at shutdown failed")
        self.state.close()  # every queued state write is on disk before we exit
        if self.api is not None:
            self.api.close()
            await self.api.wait_closed()
        if self.dataplane is not None:
            self.udp.set_burst_reader(None)
            self.udp.set_owner(None)  # the event loop reads the sockets again
            if self.pump is not None:
                self.pump.set_burst_reader(None)
                self.pump.set_owner(None)
            self.dataplane.close()  # before any port's fd closes
            self.dataplane = None
        if self.ports is not None:
            self.ports.close()
        if self.frontends is not None:
            await self.frontends.close()
        if self.controller is not None:
            self.controller.close()
        if self.controller_store is not None:
            self.controller_store.close()
        if self.fallback is not None:
            self.fallback.close()
        self.udp.close()
        await self._release_lease()
        log.info("ztone stopped%s", f" ({self.exit_reason})" if self.exit_reason else "")

    # ------------------------------------------------------------- event loop

    def _on_datagram(self, sock_id: int, remote: InetAddress, data: bytes) -> None:
        self.counters.udp_rx_bytes += len(data)
        now = now_ms()
        fallback = self.fallback
        if fallback is not None and not fallback.udp_received(now, remote, len(data)):
            return  # forceTcpRelay: UDP is not used at all
        try:
            self.node.on_wire_packet(now, sock_id, remote, data)
        except Exception:
            # The core's contract is that only bugs get here; keep serving anyway.
            self.counters.bugs += 1
            log.exception("BUG: datagram from %s raised", remote)
        self._input_taken()

    def _on_tunnel_datagram(self, remote: InetAddress, data: bytes) -> None:
        try:
            self.node.on_wire_packet(now_ms(), ANY_LOCAL_SOCKET, remote, data)
        except Exception:
            self.counters.bugs += 1
            log.exception("BUG: datagram from %s (TCP relay) raised", remote)
        self._input_taken()

    def _start_dataplane(self) -> None:
        """The native receive data plane, when the accelerator has one (Linux) and the
        node has a fast path (:mod:`ztone.service.dataplane`)."""
        native = native_dataplane_module(self.crypto.native)
        if native is None or self.pump is None or not self.node.enable_receive_grants():
            return
        counters = self.counters

        def received(now: int, remote: InetAddress, size: int) -> None:
            # what _on_datagram notes for each datagram, for those the table carried
            counters.udp_rx_bytes += size
            if self.fallback is not None:
                self.fallback.udp_received(now, remote, size)

        def udp_allowed() -> bool:
            return self.fallback is None or not self.fallback.settings.force

        def udp_only() -> bool:
            # while the TCP fallback tunnels (or is forced), datagrams go by fallback.send
            fallback = self.fallback
            return fallback is None or not (fallback.settings.force or fallback.active)

        def sent(remote: InetAddress, size: int) -> None:
            udp.tx_bytes += size

        udp = self.udp
        self.dataplane = NativeDataplane(
            native,
            self.node,
            self.pump,
            now_ms,
            lambda: udp.queues_empty,
            received,
            udp_allowed,
            udp.socket_fd,
            sent,
            udp_only,
        )
        if reactor_wanted() and self.dataplane.start_reactor(self._loop, udp):
            # the native thread reads the sockets and the Linux TAPs (dataplane.py)
            udp.set_owner(self.dataplane)
            self.pump.set_owner(self.dataplane)
        else:
            udp.set_burst_reader(self.dataplane.reader, self.dataplane.after_burst)
        self.pump.set_burst_reader(self.dataplane.tx_reader)

    def _report_activity(self) -> None:
        """Before the API shows peers, paths or metrics: the native activity in the core."""
        if self.dataplane is not None:
            self.dataplane.report()
            self._after_input()

    def _native_stats(self) -> dict[str, int]:
        return self.dataplane.stats() if self.dataplane is not None else {}

    async def _tick_dataplane(self) -> None:
        while True:
            await asyncio.sleep(FAST_GRANT_SYNC / 1000)
            if self.dataplane is not None and self.dataplane.active:
                self._after_input()

    def _configure_fallback(self) -> None:
        if self.fallback is None:
            return
        s = self.conf.settings
        self.fallback.configure(
            FallbackSettings(
                allow=s.allow_tcp_fallback_relay,
                force=s.force_tcp_relay,
                relay=s.tcp_fallback_relay,
                any_scope=s.tcp_fallback_relay_any_scope,
                after=s.tcp_fallback_after,
            )
        )

    async def _tick_fallback(self) -> None:
        while True:
            await asyncio.sleep(TCP_FALLBACK_TICK)
            if self.fallback is not None:
                self.fallback.tick(now_ms())

    def _input_taken(self) -> None:
        """Act on the core's output once per wakeup's batch of input, not per input.

        A socket or port wakeup reads many datagrams or frames; their output leaves
        together when the reader says the batch ended (``_input_batch_end``), so a
        burst's datagrams can share one UDP GSO send and its frames one TAP write.
        """
        self._output_pending = True

    def _input_batch_end(self) -> None:
        if self._output_pending:
            self._after_input()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_deadline = None
        try:
            self.node.on_timer(now_ms())
        except Exception:
            self.counters.bugs += 1
            log.exception("BUG: timer task raised")
        self._after_input()

    def _after_input(self) -> None:
        self._output_pending = False
        if self.controller is not None:
            try:
                self.controller.push_pending(now_ms())  # store changes since the last turn
            except Exception:
                self.counters.bugs += 1
                log.exception("BUG: pushing configs after a controller change raised")
        dataplane = self.dataplane
        if dataplane is not None:
            dataplane.report()  # may queue actions (a gate's announcements)
        self._apply(self.node.drain_actions(), send=True)
        if dataplane is not None:
            dataplane.mirror()  # after the actions: a port closed is no longer granted
        deadline = self.node.next_deadline()
        if self._timer is not None and self._timer_deadline == deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        delay = max(0.0, (deadline - now_ms()) / 1000.0)
        self._timer_deadline = deadline
        self._timer = self._loop.call_at(self._loop.time() + delay, self._on_timer)

    def _apply(self, actions: list[Action], send: bool) -> None:
        fallback = self.fallback
        pump = self.pump
        now = now_ms() if fallback is not None else 0
        answered = False
        for action in actions:
            if isinstance(action, SendPacket):
                if send and (fallback is None or fallback.send(now, action.remote, action.data)):
                    self.udp.send(action.local_socket, action.remote, action.data, action.ttl)
            elif isinstance(action, DeliverFrame):
                if pump is not None:
                    pump.put(
                        action.nwid,
                        action.source,
                        action.destination,
                        action.ethertype,
                        action.payload,
                    )
            elif isinstance(action, NetworkConfigChanged):
                if self.ports is not None:
                    error = self.ports.apply(action.nwid, action.op, action.view)
                    self.node.set_port_error(action.nwid, error)
            elif isinstance(action, PutState):
                self.state.apply(action)  # on the writer's thread; failures are logged there
            elif isinstance(action, ConfigRequested):
                self._answer_config_request(action)
                answered = True
            else:
                self._on_event(action)
        if answered:  # the answers' replies (and a config for ourselves)
            self._apply(self.node.drain_actions(), send)
        if send:
            self.udp.flush()  # datagrams held to leave together (UDP GSO)
        if pump is not None:
            pump.flush()  # each port's frames leave in one batch

    def _answer_config_request(self, request: ConfigRequested) -> None:
        """Ask the embedded controller (its store I/O runs here, outside the node)."""
        controller = self.lazy_controller.get() if self.lazy_controller is not None else None
        if controller is None:
            return
        now = now_ms()
        try:
            answer = controller.request(now, request.nwid, request.requester, request.metadata)
            self.node.on_config_answer(now, request, answer)
        except Exception:
            self.counters.bugs += 1
            log.exception("BUG: answering a config request for %016x raised", request.nwid)

    def _on_event(self, event: NodeEvent) -> None:
        if event.kind is EventKind.ONLINE:
            log.info("online")
        elif event.kind is EventKind.OFFLINE:
            log.info("offline")
        elif event.kind is EventKind.FATAL_IDENTITY_COLLISION:
            log.error("identity collision: %s; moving the identity aside", event.detail)
            self.identity_collision = True
            self.stop("identity collision")
        elif event.kind is EventKind.USER_MESSAGE:
            log.debug("user message type %x from %010x", event.message_type, event.source)

    def _start_controller(self, identity: Identity) -> LazyController | None:
        """The node's controller: opened now if a store is there to serve (see
        :func:`needed_at_start`), else on first use; None if it cannot be had."""
        default = str(self.home.file("controller.d"))
        try:
            location = controller_location(self.conf.settings, default)
        except Exception as e:
            log.error("the embedded network controller is off: %s", e)
            return None
        lazy = LazyController(lambda: self._load_controller(identity, location))
        if needed_at_start(location, default) and lazy.get() is None:
            return None
        return lazy

    def _load_controller(self, identity: Identity, location: str) -> EmbeddedController | None:
        # The controller's modules (msgspec records, sqlite3) load here, on first use.
        from ztone.service.controller import EmbeddedController, open_location  # noqa: PLC0415

        try:
            self.controller_store = open_location(location)
        except Exception as e:
            log.error("the embedded network controller is off: %s", e)
            if hasattr(self, "node"):
                self.node.controller = None  # as if it had failed at start-up
            return None
        log.info("controller store: %s", describe(location))
        self.controller = EmbeddedController(
            identity,
            self.controller_store,
            lambda: self.node,
            self._wake,
            post=self._post_from_thread,
        )
        return self.controller

    # ---------------------------------------------------- active/standby (issue 16)

    async def _standby(self) -> bool:
        """With a PostgreSQL controller store, wait (off the network: no node, no
        sockets, no API) until this daemon holds its controller's lease. True: go on
        and start; False: stopped while waiting. Problems with the configuration are
        left for :meth:`start` to report."""
        try:
            self.home.ensure()
            conf = load_local_conf(self.home.local_conf_path)
            location = controller_location(conf.settings, str(self.home.file("controller.d")))
        except Exception:
            return True
        conninfo = postgres_conninfo(location)
        if conninfo is None:
            return True
        identity = self.home.load_or_create_identity(
            lambda: Identity.generate(os.urandom, self.crypto.memory_hard_hash)
        )
        try:
            from ztone.controller.lease import ControllerLease  # noqa: PLC0415 (psycopg)
            from ztone.controller.store import StoreError  # noqa: PLC0415
        except ImportError:
            return True  # start() says the PostgreSQL store needs psycopg
        lease = ControllerLease(conninfo, int(identity.address))
        self.lease = lease
        said = ""
        assert self._stopping is not None
        while not self._stopping.is_set():
            try:
                if await asyncio.to_thread(lease.try_acquire):
                    log.info("controller %s: holding the lease, going active", identity.address)
                    return True
                message = "another daemon holds the controller lease; standing by"
            except StoreError as e:
                message = f"standing by: {e}"
            if message != said:
                log.warning("controller %s: %s", identity.address, message)
                said = message
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), LEASE_POLL)
        return False

    async def _watch_lease(self, lease: ControllerLease) -> None:
        """Fencing: the moment the lease is not certainly held, stop answering and stop
        (the daemon then stands by again)."""
        while True:
            await asyncio.sleep(LEASE_POLL)
            try:
                alive = await asyncio.wait_for(asyncio.to_thread(lease.alive), LEASE_CHECK_TIMEOUT)
            except TimeoutError:
                alive = False
            if not alive:
                log.error("controller lease lost: fencing (stopping at once, then standing by)")
                self.fenced = True
                if self.controller is not None:
                    self.controller.fence()
                self.stop("controller lease lost")
                return

    async def _release_lease(self) -> None:
        lease, self.lease = self.lease, None
        if lease is not None:
            await asyncio.to_thread(lease.release)

    def _post_from_thread(self, call: Callable[[], None]) -> None:
        self._loop.call_soon_threadsafe(call)

    def _wake(self) -> None:
        self._loop.call_soon(self._after_input)

    def _on_tap_frame(
        self, nwid: int, source: int, destination: int, ethertype: int, payload: bytes
    ) -> None:
        try:
            self.node.on_tap_frame(now_ms(), nwid, source, destination, ethertype, payload)
        except Exception:
            self.counters.bugs += 1
            log.exception("BUG: frame from the port of %016x raised", nwid)
        self._input_taken()

    async def _scan_multicast(self) -> None:
        while True:
            await asyncio.sleep(MULTICAST_SCAN_INTERVAL)
            if self.ports is None:
                continue
            now = now_ms()
            for nwid, added, removed in self.ports.scan_groups():
                for group in added:
                    self.node.multicast_subscribe(now, nwid, group.mac, group.adi)
                for group in removed:
                    self.node.multicast_unsubscribe(now, nwid, group.mac, group.adi)
            self._after_input()

    async def _housekeeping(self) -> None:
        """Re-read ``local.conf`` when it changes; refresh local addresses; prune peers."""
        last_refresh = time.monotonic()
        while True:
            await asyncio.sleep(LOCAL_CONF_CHECK_INTERVAL)
            try:
                mtime = self.home.local_conf_path.stat().st_mtime
            except OSError:
                mtime = None
            if mtime != self._conf_mtime:
                try:
                    self.conf = self._load_conf()
                    if self.control is not None:
                        networks = list(self.conf.management_networks())
                        self.control.allow_management_from = networks
                    self._configure_fallback()
                    self.userspace_settings = self._read_userspace_settings()
                    await self._apply_frontends()
                    log.info("local.conf reloaded")
                except ConfigError as e:
                    self._conf_mtime = mtime
                    log.error("%s (keeping the previous settings)", e)
            if self.collector is not None:
                self.collector.tick(time.monotonic())
            if time.monotonic() - last_refresh >= BINDER_REFRESH_PERIOD:
                last_refresh = time.monotonic()
                self.node.set_local_addresses(self.listening_on())
                self.state.call(lambda: self.store.prune_peers(time.time()))
