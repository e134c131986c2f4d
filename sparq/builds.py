"""The Verilator builds of the targets' designs: one (:func:`build`) or several at once in parallel processes
(:func:`build_rtl`). Builds are cached (:func:`sparq.sim.harness.build_verilator`): a second build of the same design
is a cache check."""

import time

from .progress import status

__all__ = ["build", "build_rtl"]


def _build_one(target, config, optimize):
    from sparq.sim.harness import build_verilator
    optimize = target.rtl_optimize if optimize is None else optimize
    started = time.perf_counter()
    build_verilator(target.component(config), name=target.rtl_name, optimize=optimize)
    return time.perf_counter() - started


def build(target, config, console=None, optimize=None):
    """Build ``target``'s design for ``config`` (at ``-O2`` if ``optimize``, ``-O0`` if not, the target's
    :attr:`~sparq.targets.Target.rtl_optimize` if None); return the build seconds."""
    with status(console, f"building {target.rtl_name} with Verilator (cached after the first build)..."):
        return _build_one(target, config, optimize)


def build_rtl(lowereds, console=None, optimize=None):
    """Build the Verilator models of every :class:`sparq.targets.Lowered` in ``lowereds`` at once, one process each
    (a build is mostly a C++ compile, so two builds on two cores take about as long as one); return their build
    seconds."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context
    names = " and ".join(l.target.rtl_name for l in lowereds)
    with status(console, f"building {names} with Verilator in parallel (cached after the first build)..."):
        with ProcessPoolExecutor(len(lowereds), mp_context=get_context("fork")) as pool:
            futures = [pool.submit(_build_one, l.target, l.config, optimize) for l in lowereds]
            return [future.result() for future in futures]
