"""The ZeroTier protocol core: pure, I/O-free, clock-free and randomness-free.

Everything here takes time, randomness and state as arguments. A test enforces
that no module in this package imports I/O, clocks or randomness.
"""
