"""The controller's HTTP API routes (PROTOCOL-NETWORK-SERVICE B.6).

:func:`controller_routes` returns :class:`~ztone.service.api.routes.Route` values to
plug into the local API (``ApiRouter(control, extra_routes=controller_routes(c))``);
they share its listener, authentication and JSON/jsonp output. What the routes need
from the daemon is a :class:`ControllerApiBackend`.

Why here and not in :mod:`ztone.controller`: the HTTP surface (listener, ``authCheck``,
jsonp, error bodies) is the service's (C.2), and the controller's endpoints are one
more group of routes on it, like :mod:`.network_routes`. Keeping them here leaves
:mod:`ztone.controller` a library with no HTTP in it (objects, rules, store, the
config answer) that imports nothing from the service; moving the HTTP layer into a
package both use would have made the controller depend on a web framework instead.

=======  ==================================================  ==========================
method   path                                                answer
=======  ==================================================  ==========================
GET      ``/controller``                                     status (503 if DB not ready)
GET      ``/controller/network``                             ids, ascending
POST/PUT ``/controller/network``                             create, random id
POST/PUT ``/controller/network/<controller 10 hex>______``   create, random id (legacy)
GET      ``/controller/network/<nwid>``                      network, 404 if unknown
POST/PUT ``/controller/network/<nwid>``                      create or update
DELETE   ``/controller/network/<nwid>``                      the deleted network, or 404
GET      ``/controller/network/<nwid>/member``               ``{id: revision}``, or 404
GET      ``/controller/network/<nwid>/member/<addr>``        member, 404 if unknown
POST/PUT ``/controller/network/<nwid>/member/<addr>``        create or update (404 if no
                                                             such network)
DELETE   ``/controller/network/<nwid>/member/<addr>``        the deleted member, or 404
GET      ``/unstable/controller/network``                    networks with member counts
GET      ``/unstable/controller/network/<nwid>/member``      members with counts, or 404
=======  ==================================================  ==========================

As the reference: ids in paths are hex of any case; network records are stored under
the lower-case id. 404 answers have the body ``{}``.

Deliberate differences: a body that is not JSON, or not a JSON object, or a field of
the wrong type (see :mod:`ztone.controller.bodies`) is answered ``400
{"error": "<message>"}`` and changes nothing (the reference answers 500 or silently
uses a default); an empty body counts as ``{}`` (the reference answers 500); a member
POST stores ``id``/``address``/``nwid`` in lower case (the reference stores the path's
text as typed).

After every committed change the routes call ``backend.notify_changed(nwid, address)``
(``address`` None for a network change or deletion) on the event-loop thread, so the
daemon can push new configurations (B.4). Store writes are synchronous: a request that
changes something blocks the loop for one SQLite commit (one fsync).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

from ztone.controller.bodies import ControllerInputError
from ztone.controller.objects import (
    JsonObject,
    address_hex,
    apply_member_post,
    apply_network_post,
    init_member,
    init_network,
    member_for_api,
    member_revisions,
    network_for_api,
    network_id_hex,
    unstable_member_list,
    unstable_network_entry,
)
from ztone.controller.store import ControllerStore, StoreError, UnknownNetwork
from ztone.service.api.controller_paths import PATHS
from ztone.service.api.http import Request
from ztone.service.api.routes import (
    ApiControl,
    BadRequest,
    Reply,
    Route,
    error_reply,
    json_reply,
    parse_json_body,
    route,
)

API_VERSION = 4
"""``ZT_NETCONF_CONTROLLER_API_VERSION``."""

MAX_ID_TRIALS = 100_000

NOT_FOUND = Reply(404, "{}")

_Handler = Callable[[ApiControl, Request, re.Match[str]], Reply]


class ControllerApiBackend(Protocol):
    """What the controller routes need from the daemon."""

    @property
    def address(self) -> int: ...  # this node's 40-bit ZeroTier address

    @property
    def store(self) -> ControllerStore: ...

    def now_ms(self) -> int: ...  # wall clock, ms since the epoch

    def random_u64(self) -> int: ...  # cryptographically random

    def notify_changed(self, nwid: int, member: int | None) -> None: ...


class _IdTaken(Exception):
    pass


def _body(request: Request) -> object:
    """The request body as JSON; an empty body is ``{}``; :class:`BadRequest` if the
    body is not JSON."""
    if not request.body.strip():
        return {}
    return parse_json_body(request)


def controller_routes(controller: ControllerApiBackend) -> list[Route]:
    """The ``/controller`` and ``/unstable/controller`` routes served for ``controller``."""

    # --- /controller -----------------------------------------------------------------

    def status(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
        ready = controller.store.is_ready()
        # The reference prints this one with a printf template (tabs, final newline).
        text = (
            f'{{\n\t"controller": true,\n\t"apiVersion": {API_VERSION},\n'
            f'\t"clock": {controller.now_ms()},\n'
            f'\t"databaseReady": {"true" if ready else "false"}\n}}\n'
        )
        return Reply(200 if ready else 503, text)

    # --- networks ----------------------------------------------------------------------

    def network_list(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
        return json_reply([network_id_hex(n) for n in controller.store.list_networks()])

    def unstable_network_list(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
        store = controller.store
        data: list[JsonObject] = []
        for nwid in store.list_networks():
            network = store.get_network(nwid)
            if network is not None:
                data.append(unstable_network_entry(network, store.list_members(nwid)))
        return json_reply({"data": data, "meta": {"networkCount": len(data)}})

    def network_get(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
        nwid = int(match.group(1), 16)
        network = controller.store.get_network(nwid)
        if network is None:
            return NOT_FOUND
        return json_reply(network_for_api(network, (), controller.now_ms()))

    def _save_network(nwid: int, body: object, *, new_only: bool) -> JsonObject:
        now = controller.now_ms()

        def mutate(current: JsonObject | None) -> JsonObject:
            if current is not None and new_only:
                raise _IdTaken
            base = current if current is not None else init_network(nwid, now)
            return apply_network_post(base, body, now)

        saved, changed = controller.store.update_network(nwid, mutate)
        if changed:
            controller.notify_changed(nwid, None)
        return saved

    def _create_network(body: object) -> Reply:
        prefix = (controller.address & 0xFFFFFFFFFF) << 24
        store = controller.store
        for _ in range(MAX_ID_TRIALS):
            nwid = prefix | (controller.random_u64() & 0xFFFFFF)
            if nwid & 0xFFFFFF == 0:
                nwid |= 1
            if store.has_network(nwid):
                continue
            try:
                saved = _save_network(nwid, body, new_only=True)
            except _IdTaken:
                continue
            return json_reply(network_for_api(saved, (), controller.now_ms()))
        return error_reply(503, "no unused network id found")

    def network_create(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
        return _create_network(_body(request))

    def network_create_legacy(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
        if match.group(1) != address_hex(controller.address):
            return error_reply(400, f"{match.group(1)} is not this controller's address")
        return _create_network(_body(request))

    def network_post(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
        nwid = int(match.group(1), 16)
        saved = _save_network(nwid, _body(request), new_only=False)
        return json_reply(network_for_api(saved, (), controller.now_ms()))

    def network_delete(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
        nwid = int(match.group(1), 16)
        deleted = controller.store.delete_network(nwid)
        if deleted is None:
            return NOT_FOUND
        controller.notify_changed(nwid, None)
        return json_reply(deleted)

    # --- members -----------------------------------------------------------------------

    def member_list(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
        nwid = int(match.group(1), 16)
        store = controller.store
        if not store.has_network(nwid):
            return NOT_FOUND
        return json_reply(member_revisions(store.list_members(nwid)))

    def unstable_member_list_get(
        control: ApiControl, request: Request, match: re.Match[str]
    ) -> Reply:
        nwid = int(match.group(1), 16)
        store = controller.store
        if not store.has_network(nwid):
            return NOT_FOUND
        return json_reply(unstable_member_list(store.list_members(nwid)))

    def member_get(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
        nwid, address = int(match.group(1), 16), int(match.group(2), 16)
        member = controller.store.get_member(nwid, address)
        if member is None:
            return NOT_FOUND
        return json_reply(member_for_api(member, controller.now_ms()))

    def member_post(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
        nwid, address = int(match.group(1), 16), int(match.group(2), 16)
        body = _body(request)
        now = controller.now_ms()

        def mutate(current: JsonObject | None) -> JsonObject:
            base = current if current is not None else init_member(nwid, address, now)
            return apply_member_post(base, body, now)

        try:
            saved, changed = controller.store.update_member(nwid, address, mutate)
        except UnknownNetwork:
            return NOT_FOUND
        if changed:
            controller.notify_changed(nwid, address)
        return json_reply(member_for_api(saved, now))

    def member_delete(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
        nwid, address = int(match.group(1), 16), int(match.group(2), 16)
        deleted = controller.store.delete_member(nwid, address)
        if deleted is None:
            return NOT_FOUND
        controller.notify_changed(nwid, address)
        return json_reply(deleted)

    handlers: dict[str, _Handler] = {
        "status": status,
        "network_list": network_list,
        "network_create": network_create,
        "unstable_network_list": unstable_network_list,
        "network_get": network_get,
        "network_create_legacy": network_create_legacy,
        "network_post": network_post,
        "network_delete": network_delete,
        "member_list": member_list,
        "unstable_member_list_get": unstable_member_list_get,
        "member_get": member_get,
        "member_post": member_post,
        "member_delete": member_delete,
    }
    return [route(m, p, _with_errors(handlers[name])) for m, p, name in PATHS]


def _with_errors(handler: _Handler) -> _Handler:
    """Bad input -> 400 (via :class:`BadRequest`), a closed store -> 503."""

    def wrapped(control: ApiControl, request: Request, match: re.Match[str]) -> Reply:
        try:
            return handler(control, request, match)
        except ControllerInputError as e:
            raise BadRequest(str(e)) from e
        except StoreError as e:
            return error_reply(503, f"controller database: {e}")

    return wrapped
