"""``/network`` endpoints and the network object (PROTOCOL-NETWORK-SERVICE C.2.3, C.2.5).

GET ``/network`` lists joined networks in ascending id order; GET
``/network/<nwid>`` gives one (404 ``{}`` if not joined); POST/PUT joins (idempotent)
and sets ``allowManaged``/``allowGlobal``/``allowDefault``/``allowDNS`` (JSON booleans
only; other types are ignored, as upstream), always rewriting
``<nwid>.local.conf``; DELETE leaves (``{"result":true}`` if it was joined, else ``{}``).

An empty POST body counts as ``{}``. Deviation: a body that is not acceptable JSON
(:func:`~.routes.parse_json_body`) or not a JSON object is answered ``400`` before
anything is joined or written; upstream ignores it and joins.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any, Protocol

import msgspec

from ztone.node.vl2.network import NetworkView
from ztone.node.wire.mac import MAC
from ztone.service.api.http import Request
from ztone.service.api.routes import (
    EMPTY,
    ApiControl,
    BadRequest,
    Reply,
    Route,
    json_reply,
    parse_json_body,
    route,
)
from ztone.service.config import NetworkLocalSettings
from ztone.util.schema import parse_with, validate


def _bool_or_ignored(value: object) -> bool | None:
    # Upstream reads these keys only when they hold a JSON boolean (is_boolean()).
    return value if isinstance(value, bool) else None


BoolOrIgnored = Annotated[bool | None, parse_with(_bool_or_ignored)]


class NetworkSettingsBody(msgspec.Struct, frozen=True):
    """The body of ``POST /network/<nwid>``: the four local settings; a key whose
    value is not a JSON boolean is ignored, as are unknown keys (as upstream)."""

    allow_managed: BoolOrIgnored = msgspec.field(default=None, name="allowManaged")
    allow_global: BoolOrIgnored = msgspec.field(default=None, name="allowGlobal")
    allow_default: BoolOrIgnored = msgspec.field(default=None, name="allowDefault")
    allow_dns: BoolOrIgnored = msgspec.field(default=None, name="allowDNS")

    def applied_to(self, settings: NetworkLocalSettings) -> NetworkLocalSettings:
        """``settings`` with every setting the body gave replaced; a new
        ``allowManaged`` drops the whitelist (upstream rewrites ``allowManaged=1|0``)."""
        changes: dict[str, Any] = {
            k: v for k, v in msgspec.structs.asdict(self).items() if v is not None
        }
        if "allow_managed" in changes:
            changes["managed_whitelist"] = []
        return replace(settings, **changes)


class NetworkControl(Protocol):
    def network_views(self) -> list[NetworkView]: ...
    def join(self, nwid: int) -> NetworkView: ...
    def leave(self, nwid: int) -> bool: ...
    def local_settings(self, nwid: int) -> NetworkLocalSettings: ...
    def set_local_settings(self, nwid: int, settings: NetworkLocalSettings) -> None: ...
    def port_info(self, nwid: int) -> tuple[str, int]: ...  # (device name, port error)


def network_json(
    view: NetworkView,
    settings: NetworkLocalSettings,
    device: str,
    port_error: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The network object; ``extra`` (ztone's own, e.g. no-root mode's port backend and
    front-ends) is added as the ``ztone`` key only when given."""
    nwid = f"{view.nwid:016x}"
    out = {
        "allowDNS": settings.allow_dns,
        "allowDefault": settings.allow_default,
        "allowGlobal": settings.allow_global,
        "allowManaged": settings.allow_managed,
        "assignedAddresses": [str(a) for a in view.assigned_addresses],
        "bridge": view.bridge,
        "broadcastEnabled": view.broadcast_enabled,
        "dhcp": False,
        "dns": {"domain": view.dns_domain, "servers": [s.ip_string() for s in view.dns_servers]},
        "id": nwid,
        "mac": str(MAC(view.mac)),
        "mtu": view.mtu,
        "multicastSubscriptions": [
            {"adi": g.adi, "mac": str(MAC(g.mac))} for g in view.multicast_subscriptions
        ],
        "name": view.name,
        "netconfRevision": view.netconf_revision,
        "nwid": nwid,
        "portDeviceName": device,
        "portError": port_error,
        "routes": [
            {
                "flags": r.flags,
                "metric": r.metric,
                "target": str(r.target),
                "via": r.via.ip_string() if r.via is not None else None,
            }
            for r in view.routes
        ],
        "status": view.status,
        "type": view.type,
    }
    if extra is not None:
        out["ztone"] = extra
    return out


def network_routes(
    networks: NetworkControl, extra: Callable[[int], dict[str, Any] | None] | None = None
) -> list[Route]:
    """``extra(nwid)``: ztone's own object for a network's JSON (None: none)."""

    def render(view: NetworkView) -> dict[str, Any]:
        device, error = networks.port_info(view.nwid)
        more = extra(view.nwid) if extra is not None else None
        return network_json(view, networks.local_settings(view.nwid), device, error, more)

    def find(nwid: int) -> NetworkView | None:
        return next((v for v in networks.network_views() if v.nwid == nwid), None)

    def list_all(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
        return json_reply([render(v) for v in networks.network_views()])

    def get_one(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
        view = find(int(match.group(1), 16))
        return json_reply(render(view)) if view is not None else Reply(404, "{}")

    def post(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
        nwid = int(match.group(1), 16)
        body = parse_json_body(request) if request.body.strip() else {}
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        wanted = validate(body, NetworkSettingsBody)
        networks.join(nwid)
        networks.set_local_settings(nwid, wanted.applied_to(networks.local_settings(nwid)))
        view = find(nwid)
        return json_reply(render(view)) if view is not None else EMPTY

    def delete(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
        return json_reply({"result": True}) if networks.leave(int(match.group(1), 16)) else EMPTY

    nw = r"/network/([0-9a-fA-F]{16})"
    return [
        route("GET", r"/network", list_all),
        route("GET", nw, get_one),
        route("POST PUT", nw, post),
        route("DELETE", nw, delete),
    ]


RouteFactory = Callable[[NetworkControl], list[Route]]
