"""No-root mode's local front-ends: SOCKS5 servers and port forwards (issue 15).

:class:`NoRootFrontends` runs what ``local.conf`` asks for
(:mod:`ztone.service.userspace_conf`) over the user-space ports of
:class:`~ztone.osdep.userspace.UserspaceTapFactory`:

* the global SOCKS5 server (every network with a user-space port, by destination) and
  each network's own (that network only): :class:`~ztone.service.socks5.Socks5Server`;
* forwards ``in``: a listener on the network's stack (made when its port comes up,
  closed when it goes), each accepted overlay connection connected to the local ``to``;
* forwards ``out``: a local asyncio server, each client connected into the overlay's
  ``to`` through the network's stack (refused while the network has no port).

A front-end that cannot start (a local port taken, an overlay port in use) is logged
and left out; the others and the daemon go on. Every front-end bounds its concurrent
connections (``maxConnections``); relays bound their buffers and idle time
(:mod:`ztone.service.stack_relay`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ztone.errors import LocalUsageError
from ztone.osdep.factory import ChoosingTapFactory
from ztone.osdep.userspace import StackListener, StackStream, UserspaceTap, UserspaceTapFactory
from ztone.service.socks5 import CONNECT_TIMEOUT, Socks5Server
from ztone.service.stack_relay import cancel_and_wait, relay
from ztone.service.userspace_conf import Forward, UserspaceSettings

log = logging.getLogger(__name__)


class ForwardRunner:
    """One port forward (see the module); :attr:`status` says how it is doing."""

    def __init__(self, forward: Forward, factory: UserspaceTapFactory) -> None:
        self.forward = forward
        self.factory = factory
        self.active = 0
        self.served = 0
        self.status = "waiting for the network's user-space port"
        self._server: asyncio.Server | None = None
        self._listener: StackListener | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def describe(self) -> dict[str, Any]:
        return {
            "direction": self.forward.direction,
            "proto": "tcp",
            "forward": self.forward.describe(),
            "status": self.status,
            "active": self.active,
        }

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- "out": local listener -> overlay ------------------------------------------

    async def start_out(self) -> None:
        assert self.forward.listen is not None
        ip, port = self.forward.listen
        try:
            self._server = await asyncio.start_server(self._local_client, str(ip), port)
        except OSError as e:
            self.status = f"cannot listen: {e.strerror or e}"
            log.error("forward %s: %s", self.forward.describe(), self.status)
            return
        self.status = "listening"

    async def _local_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        fwd = self.forward
        tap = self.factory.taps.get(fwd.nwid)
        if tap is None or tap.closed or self.active >= fwd.max_connections:
            writer.transport.abort()
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.active += 1
        try:
            stream = await tap.host.connect(fwd.to[0], fwd.to[1], CONNECT_TIMEOUT)
            self.served += 1
            await relay(reader, writer, stream, fwd.idle_timeout)
        except (ConnectionError, LocalUsageError, OSError) as e:
            log.info("forward %s: %s", fwd.describe(), e)
            writer.transport.abort()
        except asyncio.CancelledError:  # closing: asyncio's own handler task ends quietly
            writer.transport.abort()
        finally:
            self.active -= 1
            if task is not None:
                self._tasks.discard(task)

    # --- "in": overlay listener -> local ---------------------------------------------

    def port_up(self, tap: UserspaceTap) -> None:
        self.port_down()
        try:
            self._listener = tap.host.listen(self.forward.listen_port)
        except (LocalUsageError, ValueError) as e:
            self.status = f"cannot listen on the overlay: {e}"
            log.error("forward %s: %s", self.forward.describe(), self.status)
            return
        self.status = "listening"
        self._accept_task = asyncio.ensure_future(self._accept(self._listener))

    def port_down(self) -> None:
        if self._accept_task is not None:
            self._accept_task.cancel()
            self._accept_task = None
        if self._listener is not None:
            with contextlib.suppress(Exception):
                self._listener.close()
            self._listener = None
            self.status = "waiting for the network's user-space port"

    async def _accept(self, listener: StackListener) -> None:
        while True:
            try:
                stream = await listener.accept()
            except ConnectionError:
                return  # the port went away
            if self.active >= self.forward.max_connections:
                stream.abort()
                continue
            self.active += 1
            self._spawn(self._overlay_client(stream))

    async def _overlay_client(self, stream: StackStream) -> None:
        fwd = self.forward
        try:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(str(fwd.to[0]), fwd.to[1]), CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError) as e:
                log.info("forward %s: %s", fwd.describe(), e)
                stream.abort()
                return
            self.served += 1
            await relay(reader, writer, stream, fwd.idle_timeout)
        finally:
            self.active -= 1

    async def close(self) -> None:
        self.port_down()
        if self._server is not None:
            self._server.close()
            self._server = None
        await cancel_and_wait(self._tasks)


class NoRootFrontends:
    """Every SOCKS5 server and forward of the current settings (see the module)."""

    def __init__(self, factory: ChoosingTapFactory) -> None:
        self.factory = factory
        self.userspace = factory.userspace
        self.settings = UserspaceSettings()
        self.socks5: Socks5Server | None = None
        self.network_socks5: dict[int, Socks5Server] = {}
        self.forwards: list[ForwardRunner] = []
        self.userspace.on_change = self._port_changed

    async def apply(self, settings: UserspaceSettings) -> None:
        """Replace the running front-ends by those of ``settings`` (when they differ)."""
        if settings == self.settings and (self.socks5 or self.network_socks5 or self.forwards):
            return
        await self._stop_all()
        self.settings = settings
        if settings.socks5 is not None and settings.socks5.enabled:
            self.socks5 = await self._start_socks5(
                Socks5Server(settings.socks5, self.userspace.route, "socks5")
            )
        for nwid, conf in settings.network_socks5.items():
            if conf.enabled:

                def route(ip: Any, nwid: int = nwid) -> UserspaceTap | None:
                    return self.userspace.route(ip, only=nwid)

                server = await self._start_socks5(Socks5Server(conf, route, f"socks5 {nwid:016x}"))
                if server is not None:
                    self.network_socks5[nwid] = server
        for fwd in settings.forwards:
            runner = ForwardRunner(fwd, self.userspace)
            self.forwards.append(runner)
            if fwd.direction == "out":
                await runner.start_out()
            else:
                tap = self.userspace.taps.get(fwd.nwid)
                if tap is not None:
                    runner.port_up(tap)

    async def _start_socks5(self, server: Socks5Server) -> Socks5Server | None:
        try:
            await server.start()
        except OSError as e:
            log.error("%s on %s not started: %s", server.label, server.address, e.strerror or e)
            return None
        log.info("%s listening on %s", server.label, server.address)
        return server

    def _port_changed(self, nwid: int, tap: UserspaceTap | None) -> None:
        for runner in self.forwards:
            if runner.forward.nwid == nwid and runner.forward.direction == "in":
                if tap is None:
                    runner.port_down()
                else:
                    runner.port_up(tap)

    async def _stop_all(self) -> None:
        servers = [self.socks5, *self.network_socks5.values()]
        self.socks5 = None
        self.network_socks5 = {}
        for server in servers:
            if server is not None:
                await server.close()
        forwards, self.forwards = self.forwards, []
        for runner in forwards:
            await runner.close()

    async def close(self) -> None:
        await self._stop_all()
        self.userspace.on_change = None

    def describe(self, nwid: int) -> dict[str, Any] | None:
        """The ``ztone`` object of a network's ``/network`` JSON, or None for a network
        on a platform port with no front-end (its JSON stays exactly zerotier-one's)."""
        backend = self.factory.backend_of(nwid)
        forwards = [r.describe() for r in self.forwards if r.forward.nwid == nwid]
        socks5 = []
        if backend == "userspace" and self.socks5 is not None:
            socks5.append(self.socks5.address)
        if nwid in self.network_socks5:
            socks5.append(self.network_socks5[nwid].address)
        if backend != "userspace" and not forwards and not socks5:
            return None
        return {"portBackend": backend, "socks5": socks5, "forwards": forwards}


__all__ = ["ForwardRunner", "NoRootFrontends"]
