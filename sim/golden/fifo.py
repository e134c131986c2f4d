"""Cycle-accurate golden model of :class:`sparq.hw.common.fifo.StreamFIFO`.

The model keeps the same state the hardware keeps: an inner queue of ``depth - 1`` entries behind an output register
(a single register when ``depth == 1``). Each cycle, :meth:`FIFOModel.outputs` gives what the ports show before the
clock edge and :meth:`FIFOModel.step` applies the edge. Payloads are opaque integers: order is preserved exactly.
"""

from collections import deque

__all__ = ["FIFOModel"]


class FIFOModel:
    """Cycle-accurate model of a ``depth``-entry ``SyncFIFOBuffered`` behind stream ports."""

    def __init__(self, depth: int):
        if depth < 1:
            raise ValueError(f"FIFO depth must be at least 1, not {depth}")
        self.depth = depth
        self.inner = deque()       # the memory-backed part, depth - 1 entries
        self.out_valid = False     # the output register
        self.out_data = 0

    @property
    def level(self) -> int:
        """Entries held, including the presented one."""
        return len(self.inner) + self.out_valid

    def outputs(self) -> dict:
        """The port values before the coming edge: ``i_ready``, ``o_valid``, ``o_payload``, ``level``."""
        i_ready = (not self.out_valid) if self.depth == 1 else len(self.inner) != self.depth - 1
        return {"i_ready": i_ready, "o_valid": self.out_valid, "o_payload": self.out_data, "level": self.level}

    def step(self, i_valid: bool, i_payload: int, o_ready: bool) -> tuple[bool, bool]:
        """Apply one clock edge with these inputs; return ``(pushed, popped)``."""
        ports = self.outputs()
        push = bool(i_valid and ports["i_ready"])
        pop = bool(self.out_valid and o_ready)
        if self.depth == 1:
            if push:
                self.out_valid, self.out_data = True, i_payload
            elif pop:
                self.out_valid = False
            return push, pop
        refill = bool(self.inner) and (not self.out_valid or o_ready)
        if refill:
            self.out_data = self.inner.popleft()
            self.out_valid = True
        elif o_ready:
            self.out_valid = False
        if push:
            self.inner.append(i_payload)
        return push, pop
