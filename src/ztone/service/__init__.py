"""The asyncio runtime around the protocol core: home directory, local.conf, sockets, API.

See ``shared/DESIGN.md`` (the runtime) and PROTOCOL-NETWORK-SERVICE part C.
"""
