"""Cryptographic primitives of ZeroTier's VL1: Salsa20/12 and Poly1305, C25519 keys and
signatures, the memory-hard identity hash, the packet cipher suites (armor), and the
choice between the native accelerator and the pure-Python reference (backend).

Pure and I/O-free like the core that uses it (PROTOCOL-CORE §2, §4); the OS ports may
use it too. Nothing here knows about peers, paths or networks.
"""
