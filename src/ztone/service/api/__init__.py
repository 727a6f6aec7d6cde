"""The local JSON/HTTP API of the daemon (PROTOCOL-NETWORK-SERVICE C.2).

* :mod:`.http`: :class:`ApiServer`, an asyncio HTTP/1.1 server on h11;
* :mod:`.routes`: authentication, the route table, :class:`ApiRouter` (the server's
  handler) and :class:`ApiControl` (what the daemon provides);
* :mod:`.render`: the reference's JSON objects built from the core's snapshots.

Typical use::

    server = ApiServer(ApiRouter(control))
    await server.start(["127.0.0.1", "::1"], port)
"""

from ztone.service.api.http import ApiServer, Handler, Request, Response
from ztone.service.api.routes import ApiControl, ApiRouter, Route

__all__ = ["ApiControl", "ApiRouter", "ApiServer", "Handler", "Request", "Response", "Route"]
