"""The TCP fallback relay: its record framing and the ``ztone-relay`` server.

See docs/TCP-FALLBACK-RELAY.md for the protocol.
"""
