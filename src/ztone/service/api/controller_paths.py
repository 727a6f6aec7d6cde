"""The controller's HTTP paths, and routes that load the controller on first use
(issue 17, memory).

:data:`PATHS` is the one table of the ``/controller`` endpoints (method, path pattern,
handler name): :func:`ztone.service.api.controller_routes.controller_routes` builds its
routes from it, and :func:`lazy_controller_routes` builds routes with the very same
methods and patterns whose handlers load the controller (and the route module, with
its msgspec bodies) only when a request first matches one of them. A router thus
answers every path exactly as with the controller loaded from the start.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ztone.service.api.http import Request
from ztone.service.api.routes import ApiControl, Reply, Route, RouteHandler, route

if TYPE_CHECKING:
    from ztone.service.api.controller_routes import ControllerApiBackend

_NW = "/controller/network/([0-9a-fA-F]{16})"
_MEMBER = _NW + "/member/([0-9a-fA-F]{10})"

PATHS: tuple[tuple[str, str, str], ...] = (
    ("GET", "/controller", "status"),
    ("GET", "/controller/network", "network_list"),
    ("POST PUT", "/controller/network", "network_create"),
    ("GET", "/unstable/controller/network", "unstable_network_list"),
    ("GET", _NW, "network_get"),
    ("POST PUT", "/controller/network/([0-9a-fA-F]{10})______", "network_create_legacy"),
    ("POST PUT", _NW, "network_post"),
    ("DELETE", _NW, "network_delete"),
    ("GET", _NW + "/member", "member_list"),
    ("GET", "/unstable" + _NW + "/member", "unstable_member_list_get"),
    ("GET", _MEMBER, "member_get"),
    ("POST PUT", _MEMBER, "member_post"),
    ("DELETE", _MEMBER, "member_delete"),
)
"""(methods, pattern, handler name) of every controller route, in matching order."""

NOT_FOUND = Reply(404, "{}")
"""What the router answers a path no route serves (a controller that failed to load)."""


def lazy_controller_routes(backend: Callable[[], ControllerApiBackend | None]) -> list[Route]:
    """Routes like ``controller_routes(backend())`` that call ``backend`` (which loads
    the controller, or returns None if it cannot be had) on the first request."""
    real: list[Route] = []

    def handler_for(index: int) -> RouteHandler:
        def handle(
            control: ApiControl, request: Request, match: re.Match[str]
        ) -> Reply | Awaitable[Reply]:
            if not real:
                controller = backend()
                if controller is None:
                    return NOT_FOUND
                from ztone.service.api.controller_routes import (  # noqa: PLC0415
                    controller_routes,
                )

                real.extend(controller_routes(controller))
            return real[index].handler(control, request, match)

        return handle

    return [
        route(methods, pattern, handler_for(i)) for i, (methods, pattern, _) in enumerate(PATHS)
    ]
