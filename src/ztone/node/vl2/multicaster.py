"""Who subscribed to which multicast group, and multicasts waiting for members
(PROTOCOL-NETWORK-SERVICE A.5.12.3-A.5.12.5, ``Multicaster``, ``OutboundMulticast``).

Members: per network, per group, the members with the time of their last LIKE
(expire after 600 s). A root holds these for other people's networks, so the store
is compact and bounded (:mod:`ztone.node.bounds`):

* ``_groups``: ``nwid << 80 | mac << 32 | adi`` -> member record, which is
  ``address << 64 | like time`` for a group with one member (the common case on a
  root) or ``{address: like time}`` once a second member likes it; kept in
  least-recently-liked order (a refreshed group moves to the end): the order of
  expiry and of eviction. About 130 bytes per group (bench/multicast_memory.py).
* per-peer and per-network counts of member records, and their total.

A new record is refused for a peer holding ``MULTICAST_MAX_PER_PEER`` (a peer can
only crowd out itself) or a network holding ``MULTICAST_MAX_PER_NETWORK`` (on a root
only proven members of that network can fill it); at ``MULTICAST_MAX_TOTAL`` the
least recently liked group goes.

Sending state, kept apart because only the networks we are in have it: per
(network, group) a queue of pending outbound multicasts (each lives 5 s and is
offered to members learned meanwhile until its recipient limit is reached) and the
time of the last explicit gather.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ztone.node.bounds import (
    MULTICAST_MAX_PER_NETWORK,
    MULTICAST_MAX_PER_PEER,
    MULTICAST_MAX_TOTAL,
    MULTICAST_MAX_TX_GROUPS,
)
from ztone.node.wire.vl2_verbs import MulticastGroup

MULTICAST_LIKE_EXPIRE = 600_000
MULTICAST_TRANSMIT_TIMEOUT = 5_000
TX_QUEUE_PER_GROUP = 32
MAX_GATHER_LIMIT = 65535
MAX_GATHER_PAYLOAD = 10024 - 28 - 18 - 6

_TIME_MASK = (1 << 64) - 1

Record = int | dict[int, int]


@dataclass(slots=True)
class OutboundMulticast:
    created: int
    limit: int
    payload: bytes  # MULTICAST_FRAME payload (after the verb)
    sent_to: set[int] = field(default_factory=set)

    def done(self) -> bool:
        return len(self.sent_to) >= self.limit


@dataclass(slots=True)
class _TxState:
    queue: list[OutboundMulticast] = field(default_factory=list)
    last_explicit_gather: int = 0


Sender = Callable[[int, bytes], None]
"""``send(address, multicast frame payload)``: one copy to one member."""


def group_key(group: MulticastGroup) -> int:
    return (group.mac << 32) | (group.adi & 0xFFFFFFFF)


class Multicaster:
    def __init__(
        self,
        my_address: int,
        *,
        max_per_peer: int = MULTICAST_MAX_PER_PEER,
        max_per_network: int = MULTICAST_MAX_PER_NETWORK,
        max_total: int = MULTICAST_MAX_TOTAL,
    ) -> None:
        self.my_address = my_address
        self.max_per_peer = max_per_peer
        self.max_per_network = max_per_network
        self.max_total = max_total
        self._groups: dict[int, Record] = {}
        self._net_count: dict[int, int] = {}
        self._peer_count: dict[int, int] = {}
        self._total = 0
        self._tx: dict[tuple[int, int], _TxState] = {}
        self.refused = 0
        self.evicted = 0

    # --- counts ----------------------------------------------------------------

    @property
    def total(self) -> int:
        """Member records stored (one per member per group)."""
        return self._total

    def peer_count(self, address: int) -> int:
        return self._peer_count.get(address, 0)

    def network_count(self, nwid: int) -> int:
        return self._net_count.get(nwid, 0)

    def largest_counts(self) -> tuple[int, int]:
        """(most records held by one peer, most records in one network)."""
        return (max(self._peer_count.values(), default=0), max(self._net_count.values(), default=0))

    def tx_groups(self) -> int:
        return len(self._tx)

    def _dec(self, nwid: int, address: int) -> None:
        self._total -= 1
        n = self._peer_count[address] - 1
        if n:
            self._peer_count[address] = n
        else:
            del self._peer_count[address]
        n = self._net_count[nwid] - 1
        if n:
            self._net_count[nwid] = n
        else:
            del self._net_count[nwid]

    def _drop(self, key: int) -> None:
        record = self._groups.pop(key)
        nwid = key >> 80
        if isinstance(record, int):
            self._dec(nwid, record >> 64)
        else:
            for address in record:
                self._dec(nwid, address)

    # --- members ---------------------------------------------------------------

    def add(self, now: int, nwid: int, group: MulticastGroup, member: int, send: Sender) -> bool:
        """A member LIKEd the group (or was gathered): remember it; offer queued frames.

        False if it was not stored (it is us, or the peer or the network is at its cap).
        """
        if member == self.my_address:
            return False
        gk = group_key(group)
        key = (nwid << 80) | gk
        groups = self._groups
        record = groups.pop(key, None)  # re-inserted below: the newest entry
        if record is None:
            new: Record = (member << 64) | (now & _TIME_MASK)
            known = False
        elif isinstance(record, int):
            known = record >> 64 == member
            if known:
                new = (member << 64) | (now & _TIME_MASK)
            else:
                new = {record >> 64: record & _TIME_MASK, member: now}
        else:
            known = member in record
            record[member] = now
            new = record
        if not known:
            if (
                self._peer_count.get(member, 0) >= self.max_per_peer
                or self._net_count.get(nwid, 0) >= self.max_per_network
            ):
                self.refused += 1
                if record is not None:
                    if isinstance(record, dict):
                        del record[member]
                    groups[key] = record
                return False
            while self._total >= self.max_total and groups:
                self._drop(next(iter(groups)))
                self.evicted += 1
            self._total += 1
            self._peer_count[member] = self._peer_count.get(member, 0) + 1
            self._net_count[nwid] = self._net_count.get(nwid, 0) + 1
        groups[key] = new
        tx = self._tx.get((nwid, gk))
        if tx is not None and tx.queue:
            for om in tx.queue:
                if (
                    member not in om.sent_to
                    and not om.done()
                    and now - om.created < MULTICAST_TRANSMIT_TIMEOUT
                ):
                    om.sent_to.add(member)
                    send(member, om.payload)
            tx.queue = [om for om in tx.queue if not om.done()]
        return True

    def remove(self, nwid: int, group: MulticastGroup, member: int) -> None:
        key = (nwid << 80) | group_key(group)
        record = self._groups.get(key)
        if record is None:
            return
        if isinstance(record, int):
            if record >> 64 != member:
                return
            del self._groups[key]
        else:
            if record.pop(member, None) is None:
                return
            if not record:
                del self._groups[key]
        self._dec(nwid, member)

    def members(self, now: int, nwid: int, group: MulticastGroup) -> list[int]:
        """Members liked within 600 s (expired ones are dropped on the way)."""
        key = (nwid << 80) | group_key(group)
        record = self._groups.get(key)
        if record is None:
            return []
        if isinstance(record, int):
            if now - (record & _TIME_MASK) < MULTICAST_LIKE_EXPIRE:
                return [record >> 64]
            self._drop(key)
            return []
        live = [a for a, t in record.items() if now - t < MULTICAST_LIKE_EXPIRE]
        if len(live) < len(record):
            for a in [a for a in record if now - record[a] >= MULTICAST_LIKE_EXPIRE]:
                del record[a]
                self._dec(nwid, a)
            if not record:
                del self._groups[key]
        return live

    def gather(
        self,
        now: int,
        nwid: int,
        group: MulticastGroup,
        requester: int,
        limit: int,
        include_me: bool,
        rand: Callable[[int], int],
    ) -> tuple[int, list[int]]:
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

    # --- sending state ---------------------------------------------------------

    def _tx_state(self, nwid: int, group: MulticastGroup) -> _TxState:
        key = (nwid, group_key(group))
        st = self._tx.get(key)
        if st is None:
            if len(self._tx) >= MULTICAST_MAX_TX_GROUPS:
                del self._tx[next(iter(self._tx))]
            st = self._tx[key] = _TxState()
        return st

    def needs_gather(self, now: int, nwid: int, group: MulticastGroup, delay: int) -> bool:
        st = self._tx_state(nwid, group)
        if not self.members(now, nwid, group) or now - st.last_explicit_gather >= delay:
            st.last_explicit_gather = now
            return True
        return False

    def enqueue(self, now: int, nwid: int, group: MulticastGroup, om: OutboundMulticast) -> None:
        st = self._tx_state(nwid, group)
        while len(st.queue) >= TX_QUEUE_PER_GROUP:
            st.queue.pop(0)
        if not om.done():
            st.queue.append(om)

    # --- housekeeping ----------------------------------------------------------

    def clean(self, now: int) -> None:
        """Drop expired members and spent multicasts (every 30 s).

        Groups are in least-recently-liked order, so the scan stops at the first
        group liked within the expiry; a stale member of a group that
        others keep liking goes when the group is next read (:meth:`members`).
        """
        for tx_key in list(self._tx):
            st = self._tx[tx_key]
            st.queue = [
                om
                for om in st.queue
                if not om.done() and now - om.created < MULTICAST_TRANSMIT_TIMEOUT
            ]
            if not st.queue and now - st.last_explicit_gather >= MULTICAST_LIKE_EXPIRE:
                del self._tx[tx_key]
        groups = self._groups
        while groups:
            key = next(iter(groups))
            record = groups[key]
            if isinstance(record, int):
                if now - (record & _TIME_MASK) < MULTICAST_LIKE_EXPIRE:
                    break
                self._drop(key)
                continue
            for a in [a for a, t in record.items() if now - t >= MULTICAST_LIKE_EXPIRE]:
                del record[a]
                self._dec(key >> 80, a)
            if record:
                break
            del groups[key]

    def forget_network(self, nwid: int) -> None:
        for key in [k for k in self._groups if k >> 80 == nwid]:
            self._drop(key)
        for tx_key in [k for k in self._tx if k[0] == nwid]:
            del self._tx[tx_key]
