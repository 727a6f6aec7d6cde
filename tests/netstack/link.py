"""A virtual Ethernet segment for Stacks on a virtual clock (tests only).

Frames a stack sends reach the stack with the destination MAC (group frames reach every
other stack); ``loss`` drops and ``reorder`` swaps frames with a seeded random.Random.
:meth:`Segment.run` moves frames and time until a condition holds, bounded in steps.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ztone.netstack.ethernet import EthernetFrame, is_group_mac
from ztone.netstack.stack import Stack


class Segment:
    def __init__(
        self, *stacks: Stack, loss: float = 0.0, reorder: float = 0.0, seed: int = 1
    ) -> None:
        self.stacks = list(stacks)
        self.loss = loss
        self.reorder = reorder
        self.random = random.Random(seed)
        self.now = 1000.0
        self.delivered = 0
        self.dropped = 0
        self.taps: list[Callable[[EthernetFrame], None]] = []
        self.strict = True
        """Check that a poll leaves nothing due at its own time (else a host would spin)."""

    def step(self) -> bool:
        """Move every queued frame once; False when nothing moved."""
        moved = False
        for stack in self.stacks:
            stack.poll(self.now)
            if self.strict:
                due = stack.deadline()
                assert due is None or due > self.now, f"due {due} right after poll({self.now})"
        for stack in self.stacks:
            frames = stack.take_frames()
            if self.reorder and len(frames) > 1:
                for i in range(len(frames) - 1):
                    if self.random.random() < self.reorder:
                        frames[i], frames[i + 1] = frames[i + 1], frames[i]
            for frame in frames:
                moved = True
                for tap in self.taps:
                    tap(frame)
                if self.loss and self.random.random() < self.loss:
                    self.dropped += 1
                    continue
                for other in self.stacks:
                    if other is not stack and (is_group_mac(frame[1]) or frame[1] == other.mac):
                        other.receive_frame(frame, self.now)
                        self.delivered += 1
        return moved

    def run(self, done: Callable[[], bool], max_steps: int = 100_000) -> None:
        """Step until ``done()``; when nothing moves, jump the clock to the next deadline."""
        for _ in range(max_steps):
            if done():
                return
            if not self.step():
                deadlines = [d for s in self.stacks if (d := s.deadline()) is not None]
                if not deadlines:
                    if done():
                        return
                    raise AssertionError("nothing to do and the condition does not hold")
                self.now = max(self.now + 1e-4, min(deadlines))
            else:
                self.now += 1e-4
        raise AssertionError(f"condition not reached in {max_steps} steps")
