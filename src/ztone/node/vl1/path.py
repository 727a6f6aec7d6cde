"""A physical path: one (local socket, remote IP:port) pair (PROTOCOL-CORE §8.2).

Path state is global (shared by every peer reached over it): when something was
last received on it (even unauthenticated, §5.7), last sent, its latency and when a
trust-establishing packet last arrived over it.
"""

from __future__ import annotations

from ztone.node.constants import (
    LATENCY_UNKNOWN,
    PATH_ALIVE_TIMEOUT,
    PATH_HEARTBEAT_PERIOD,
    TRUST_EXPIRATION,
)
from ztone.node.wire.inetaddress import InetAddress


class Path:
    __slots__ = (
        "_scope",
        "address",
        "last_in",
        "last_out",
        "last_trust",
        "latency",
        "local_socket",
    )

    def __init__(self, local_socket: int, address: InetAddress) -> None:
        self.local_socket = local_socket
        self.address = address
        self.last_in = 0
        self.last_out = 0
        self.last_trust = 0
        self.latency = LATENCY_UNKNOWN
        self._scope = int(address.scope())

    @property
    def scope(self) -> int:
        return self._scope

    def alive(self, now: int) -> bool:
        return now - self.last_in < PATH_ALIVE_TIMEOUT

    def needs_heartbeat(self, now: int) -> bool:
        return now - self.last_out >= PATH_HEARTBEAT_PERIOD

    def trusted(self, now: int) -> bool:
        return self.last_trust > 0 and now - self.last_trust < TRUST_EXPIRATION

    def age(self, now: int) -> int:
        return now - self.last_in

    def quality(self, now: int) -> int:
        """Lower is better: latency, heavily penalized once dead, scaled by IP scope."""
        age = min(now - self.last_in, 140_000)
        lat = self.latency
        q = lat if age < PATH_ALIVE_TIMEOUT else lat + 0xFFFF + age
        return q * (8 - self._scope)

    def update_latency(self, sample: int) -> None:
        if sample < 0:
            return
        sample = min(sample, LATENCY_UNKNOWN - 1)
        if self.latency == LATENCY_UNKNOWN:
            self.latency = sample
        else:
            self.latency = (self.latency + sample) // 2

    def __repr__(self) -> str:
        return f"Path({self.local_socket}, {self.address})"
