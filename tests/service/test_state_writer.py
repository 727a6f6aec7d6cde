"""The state writer: writes leave the event loop's thread, in order, and reads see them
at once (the queued state first), whatever the disk is doing."""

from __future__ import annotations

import threading
from pathlib import Path

from ztone.node.actions import PutState, StateKind
from ztone.service.home import FileStateStore, Home
from ztone.service.state_writer import StateWriter

NWID = 0x8056C2E21C000001


class _SlowStore(FileStateStore):
    """Writes wait until the test opens the gate (a disk that takes its time)."""

    def __init__(self, home: Home) -> None:
        super().__init__(home)
        self.gate = threading.Event()
        self.writes: list[tuple[StateKind, int, bytes | None]] = []
        self.threads: set[str] = set()

    def apply(self, action: PutState) -> None:
        assert self.gate.wait(10)
        self.threads.add(threading.current_thread().name)
        self.writes.append((action.kind, action.object_id, action.data))
        super().apply(action)


def test_writes_are_queued_and_reads_see_them(tmp_path: Path) -> None:
    store = _SlowStore(Home(tmp_path))
    writer = StateWriter(store)
    conf = tmp_path / "networks.d" / f"{NWID:016x}.conf"
    writer.apply(PutState(StateKind.NETWORK_CONFIG, NWID, b"first"))
    writer.apply(PutState(StateKind.NETWORK_CONFIG, NWID, b"second"))
    writer.apply(PutState(StateKind.PEER, 0x89E92CEEE5, b"peer"))
    # nothing is on disk yet, and apply() did not wait for it
    assert not conf.exists() and writer.pending() == 2
    assert writer.get(StateKind.NETWORK_CONFIG, NWID) == b"second"
    assert writer.get(StateKind.PEER, 0x89E92CEEE5) == b"peer"
    writer.apply(PutState(StateKind.PEER, 0x89E92CEEE5, None))
    assert writer.get(StateKind.PEER, 0x89E92CEEE5) is None  # a queued delete reads as gone
    store.gate.set()
    writer.flush(10)
    assert writer.pending() == 0
    assert conf.read_bytes() == b"second"
    assert writer.get(StateKind.PEER, 0x89E92CEEE5) is None
    assert not (tmp_path / "peers.d" / "89e92ceee5.peer").exists()
    assert [w[2] for w in store.writes] == [b"first", b"second", b"peer", None]  # in order
    assert store.threads and threading.current_thread().name not in store.threads
    writer.close()


def test_close_finishes_queued_writes_then_writes_at_once(tmp_path: Path) -> None:
    store = _SlowStore(Home(tmp_path))
    writer = StateWriter(store)
    writer.apply(PutState(StateKind.MOON, 7, b"moon"))
    store.gate.set()
    writer.close()
    moon = tmp_path / "moons.d" / f"{7:016x}.moon"
    assert moon.read_bytes() == b"moon"
    writer.apply(PutState(StateKind.MOON, 7, b"later"))  # after close: on this thread
    assert moon.read_bytes() == b"later"
    assert writer.pending() == 0


def test_call_runs_after_the_queued_writes(tmp_path: Path) -> None:
    store = _SlowStore(Home(tmp_path))
    writer = StateWriter(store)
    writer.apply(PutState(StateKind.NETWORK_CONFIG, NWID, b"x"))
    seen = writer.call(lambda: list(store.writes))
    store.gate.set()
    assert seen.result(10) == [(StateKind.NETWORK_CONFIG, NWID, b"x")]
    writer.close()


def test_a_failing_write_is_logged_and_the_queue_goes_on(tmp_path: Path) -> None:
    (tmp_path / "networks.d").write_text("not a directory")  # the write cannot succeed
    store = FileStateStore(Home(tmp_path))
    writer = StateWriter(store)
    writer.apply(PutState(StateKind.NETWORK_CONFIG, NWID, b"conf"))
    writer.apply(PutState(StateKind.PEER, 0x89E92CEEE5, b"peer"))
    writer.flush(10)
    assert writer.pending() == 0
    assert (tmp_path / "peers.d" / "89e92ceee5.peer").read_bytes() == b"peer"
    assert writer.get(StateKind.NETWORK_CONFIG, NWID) is None
    writer.close()
