"""The Verilator builds of the targets' designs for a runner (:data:`sparq.simulation.RUNNERS`): one (:func:`build`) or
several at once in parallel processes (:func:`build_rtl`). Builds are cached (:func:`sparq.sim.harness.cached_build`):
a second build of the same design for the same runner is a cache check, which the run then finds too."""

import time

from .progress import status

__all__ = ["build", "build_rtl"]


def _build_one(target, config, optimize, runner):
    from sparq.sim.harness import waves_requested
    from sparq.sim.native import BUILDERS
    optimize = target.rtl_optimize if optimize is None else optimize
    started = time.perf_counter()
    BUILDERS[runner](target.component(config), name=target.rtl_name, waves=waves_requested(), optimize=optimize)
    return time.perf_counter() - started


def build(target, config, console=None, optimize=None, runner="native"):
    """Build ``target``'s design for ``config`` and ``runner`` (at ``-O2`` if ``optimize``, ``-O0`` if not, the
    target's :attr:`~sparq.targets.Target.rtl_optimize` if None); return the build seconds."""
    with status(console, f"building {target.rtl_name} for the {runner} runner with Verilator (cached after the "
                         "first build)..."):
        return _build_one(target, config, optimize, runner)


def build_rtl(lowereds, console=None, optimize=None, runner="native"):
    """Build the Verilator models of every :class:`sparq.targets.Lowered` in ``lowereds`` for ``runner`` at once, one
    process each (a build is mostly a C++ compile, so two builds on two cores take about as long as one); return
    their build seconds."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context
    names = " and ".join(l.target.rtl_name for l in lowereds)
    with status(console, f"building {names} for the {runner} runner with Verilator in parallel (cached after the "
                         "first build)..."):
        with ProcessPoolExecutor(len(lowereds), mp_context=get_context("fork")) as pool:
            futures = [pool.submit(_build_one, l.target, l.config, optimize, runner) for l in lowereds]
            return [future.result() for future in futures]
