"""Who subscribed to which multicast group, and multicasts waiting for members
(PROTOCOL-NETWORK-SERVICE A.5.12.3-A.5.12.5, ``Multicaster``, ``OutboundMulticast``).

Per (network, group): members with the time of their last LIKE (expire after
600 s) and a queue of pending outbound multicasts (each lives 5 s and is offered
to members learned meanwhile until its recipient limit is reached).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .vl2_wire import MulticastGroup

MULTICAST_LIKE_EXPIRE = 600_000
MULTICAST_TRANSMIT_TIMEOUT = 5_000
TX_QUEUE_PER_GROUP = 32
MAX_GATHER_LIMIT = 65535
MAX_GATHER_PAYLOAD = 10024 - 28 - 18 - 6


@dataclass(slots=True)
class OutboundMulticast:
    created: int
    limit: int
    payload: bytes  # MULTICAST_FRAME payload (after the verb)
    sent_to: set[int] = field(default_factory=set)

    def done(self) -> bool:
        return len(self.sent_to) >= self.limit


@dataclass(slots=True)
class _GroupState:
    members: dict[int, int] = field(default_factory=dict)  # address -> last LIKE time
    queue: list[OutboundMulticast] = field(default_factory=list)
    last_explicit_gather: int = 0


Sender = Callable[[int, bytes], None]
"""``send(address, multicast frame payload)``: one copy to one member."""


class Multicaster:
    def __init__(self, my_address: int) -> None:
        self.my_address = my_address
        self._groups: dict[tuple[int, MulticastGroup], _GroupState] = {}

    def _state(self, nwid: int, group: MulticastGroup) -> _GroupState:
        key = (nwid, group)
        st = self._groups.get(key)
        if st is None:
            st = _GroupState()
            self._groups[key] = st
        return st

    def add(self, now: int, nwid: int, group: MulticastGroup, member: int, send: Sender) -> None:
        """A member LIKEd the group (or was gathered): remember it; offer queued frames."""
        if member == self.my_address:
            return
        st = self._state(nwid, group)
        st.members[member] = now
        for om in st.queue:
            if (
                member not in om.sent_to
                and not om.done()
                and now - om.created < (MULTICAST_TRANSMIT_TIMEOUT)
            ):
                om.sent_to.add(member)
                send(member, om.payload)
        st.queue = [om for om in st.queue if not om.done()]

    def remove(self, nwid: int, group: MulticastGroup, member: int) -> None:
        st = self._groups.get((nwid, group))
        if st is not None:
            st.members.pop(member, None)

    def members(self, now: int, nwid: int, group: MulticastGroup) -> list[int]:
        st = self._groups.get((nwid, group))
        if st is None:
            return []
        return [a for a, t in st.members.items() if now - t < MULTICAST_LIKE_EXPIRE]

    def gather(self, now: int, nwid: int, group: MulticastGroup, requester: int, limit: int,
               include_me: bool, rand: Callable[[int], int]) -> tuple[int, list[int]]:  # fmt: skip
        """``Multicaster::gather``: (total known, addresses picked) for a GATHER answer."""
        limit = min(limit, MAX_GATHER_LIMIT)
        picked: list[int] = []
        total = 0
        if include_me:
            picked.append(self.my_address)
            total += 1
        members = self.members(now, nwid, group)
        total += len(members)
        candidates = [m for m in members if m != requester]
        while candidates and len(picked) < limit and (len(picked) + 1) * 5 < MAX_GATHER_PAYLOAD:
            picked.append(candidates.pop(rand(len(candidates))))
        return total, picked

    def needs_gather(self, now: int, nwid: int, group: MulticastGroup, delay: int) -> bool:
        st = self._state(nwid, group)
        if not self.members(now, nwid, group) or now - st.last_explicit_gather >= delay:
            st.last_explicit_gather = now
            return True
        return False

    def enqueue(self, now: int, nwid: int, group: MulticastGroup, om: OutboundMulticast) -> None:
        st = self._state(nwid, group)
        while len(st.queue) >= TX_QUEUE_PER_GROUP:
            st.queue.pop(0)
        if not om.done():
            st.queue.append(om)

    def clean(self, now: int) -> None:
        for key in list(self._groups):
            st = self._groups[key]
            st.queue = [
                om for om in st.queue
                if not om.done() and now - om.created < MULTICAST_TRANSMIT_TIMEOUT
            ]  # fmt: skip
            st.members = {a: t for a, t in st.members.items() if now - t < MULTICAST_LIKE_EXPIRE}
            if not st.members and not st.queue:
                del self._groups[key]

    def forget_network(self, nwid: int) -> None:
        for key in [k for k in self._groups if k[0] == nwid]:
            del self._groups[key]
