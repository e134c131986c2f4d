"""Testbench bodies: ``async def body(bench, **params)`` functions that run under Verilator and Amaranth alike.

Each drives a design through its ports and checks what comes out against a numpy model, raising
:class:`sparq.sim.scoreboard.Mismatch` at the first difference: a block cycle by cycle against a small model (the
shared blocks' in ``sparq.sim.golden``), an accelerator word for word against its golden model
(``sparq.sim.eie.golden``, ``sparq.sim.systolic.golden``) once its outputs are read back, with its counters
returned for the tests to hold against the cycle models.
"""

import time

from ..bench import resolve_body


async def timed(bench, *, inner: str, **params):
    """Run the body named ``inner`` and return ``{"result": what it returned, "seconds": its wall time, "cycles": cycles it took}``.

    Only the body is timed: not the simulator's start-up, not the Verilator build.
    """
    function, _ = resolve_body(inner)
    start_cycle, start = bench.cycle, time.perf_counter()
    result = await function(bench, **params)
    return {"result": result, "seconds": time.perf_counter() - start, "cycles": bench.cycle - start_cycle}
