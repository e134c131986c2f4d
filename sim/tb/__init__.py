"""Testbench bodies: ``async def body(bench, **params)`` functions that run under Verilator and Amaranth alike.

Each checks the design cycle by cycle against its numpy golden model in ``sparq.sim.golden`` and raises
:class:`sparq.sim.scoreboard.Mismatch` at the first difference.
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
