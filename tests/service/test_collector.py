"""The daemon's garbage-collector policy (service/collector.py): survivors are frozen
every FREEZE_PERIOD, young cycles are collected before, and the full pass every
FULL_PERIOD still frees a cycle that became garbage among frozen objects."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from ztone.service.collector import FREEZE_PERIOD, FULL_PERIOD, TRIM_PERIOD, CollectorPolicy


class Node:
    """A tracked object that can be put in a cycle and watched through a weakref."""

    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> tuple[Node, weakref.ref[Node]]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.collect()
    yield
    gc.unfreeze()  # leave the test process as it was
    gc.collect()


def test_nothing_before_the_period() -> None:
    policy = CollectorPolicy(100.0)
    policy.tick(100.0 + FREEZE_PERIOD - 1)
    assert gc.get_freeze_count() == 0


def test_survivors_are_frozen_and_young_cycles_collected_first() -> None:
    policy = CollectorPolicy(0.0)
    kept, _ = cycle()
    garbage, ref = cycle()
    del garbage
    policy.tick(FREEZE_PERIOD)
    assert ref() is None  # collected before the freeze, not frozen with the rest
    assert gc.get_freeze_count() > 0
    assert kept.other is not None


def test_a_cycle_of_frozen_objects_waits_for_the_full_pass() -> None:
    policy = CollectorPolicy(0.0)
    victim, ref = cycle()
    policy.tick(FREEZE_PERIOD)  # frozen while still in use
    del victim
    gc.collect()  # the automatic collections never walk frozen objects
    assert ref() is not None
    policy.tick(FULL_PERIOD)
    assert ref() is None
    assert policy.full_collections == 1 and policy.freed >= 2
    assert gc.get_freeze_count() > 0  # frozen again after the full pass


def test_the_heap_is_trimmed_every_trim_period_from_start() -> None:
    calls: list[float] = []
    policy = CollectorPolicy(0.0, lambda: calls.append(1.0))
    policy.tick(TRIM_PERIOD - 1)
    assert calls == [] and policy.trims == 0
    policy.tick(TRIM_PERIOD)
    policy.tick(TRIM_PERIOD + 1)  # not again before another period
    assert policy.trims == 1 == len(calls)
    policy.tick(2 * TRIM_PERIOD + 1)
    assert policy.trims == 2 == len(calls)


def test_no_trimmer_no_trim() -> None:
    policy = CollectorPolicy(0.0)
    policy.tick(FULL_PERIOD)
    assert policy.trims == 0
