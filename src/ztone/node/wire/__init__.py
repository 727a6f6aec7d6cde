"""Wire codecs: one module per object ZeroTier puts on the wire or in a file (addresses,
endpoints, packets and fragments, verb payloads, identities, worlds, dictionaries,
credentials, network configs, rule tables). Pure functions and frozen values; parsers
raise only :class:`ztone.errors.MalformedPacket` on hostile bytes.
"""
