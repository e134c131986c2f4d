"""The native runner: whole-accelerator jobs on a Verilated model driven from C++, without cocotb or VPI.

The cocotb harness (:mod:`sparq.sim.harness`) runs a Python testbench body cycle by cycle through VPI; that is what
block tests, directed protocol tests and anything interactive want. For whole-accelerator jobs (load an image, run,
read out, compare) the native runner builds the design with Verilator without ``--vpi`` or ``--public-flat-rw``,
links it with a small C++ driver (``driver.cpp``) and sends it each job as one script: the host streams come from
arrays, the random valid gaps and back-pressure are generated in C++, the design runs free from start to done, and
the outputs, counters and timings come back in bulk. Every output word is still compared with the golden model, and
the driver checks the stream rules on every stream port of the design on every cycle.

Entry points, one per testbench body, each taking the component and then the body's own keyword arguments and
returning the body's result (the EIE's per-job dicts add per-stream transfer, stall and starve counts and per-phase
cycles and wall seconds):

* :func:`sparq.sim.native.eie.run_network` -- :func:`sparq.sim.tb.eie.run_network`;
* :func:`sparq.sim.native.systolic.run_program_file`, :func:`~sparq.sim.native.systolic.run_program_files`,
  :func:`~sparq.sim.native.systolic.run_networks` -- the bodies of the same names in :mod:`sparq.sim.tb.systolic`.

:class:`sparq.sim.native.eie.Eie` and :class:`sparq.sim.native.systolic.Accelerator` keep one simulation (one
process, the design's state) across calls of those methods, as a cocotb body that calls the others does: for
example an EIE image loaded once and run on many inputs (``load_image=False`` after the first call).

:func:`run_native` takes a body's name as :func:`sparq.sim.harness.run_verilator` does, so a caller switches
runner by switching the function::

    run_verilator(EIE(config), "sparq.sim.tb.eie:run_network", jobs=jobs, seed=1)   # cocotb
    run_native(EIE(config), "sparq.sim.tb.eie:run_network", jobs=jobs, seed=1)      # native, same result

``SPARQ_WAVES=1`` builds with FST tracing and writes ``dump.fst`` (its path is printed), as the harness does.
"""

from ..harness import run_verilator
from . import eie, systolic
from .build import build_native

__all__ = ["run_native", "native_bodies", "build_native", "NATIVE_BODIES", "RUNNERS"]

NATIVE_BODIES = {
    "sparq.sim.tb.eie:run_network": eie.run_network,
    "sparq.sim.tb.systolic:run_program_file": systolic.run_program_file,
    "sparq.sim.tb.systolic:run_program_files": systolic.run_program_files,
    "sparq.sim.tb.systolic:run_networks": systolic.run_networks,
}
"""The cocotb bodies that have a native twin, by the names :func:`sparq.sim.harness.run_verilator` takes."""


def native_bodies() -> list[str]:
    """The body names :func:`run_native` accepts."""
    return sorted(NATIVE_BODIES)


def run_native(component, body, *, name: str | None = None, optimize: bool | None = None, **params):
    """Run the native twin of the testbench ``body`` (its ``"module:function"`` name, or the function) on
    ``component`` with ``params``; return what the body would return. Raises :class:`AssertionError` on a mismatch,
    a broken stream rule or a timeout, naming the job, the port, the cycle and the rule.

    ``name`` and ``optimize`` are :func:`sparq.sim.harness.run_verilator`'s: the build directory's prefix, and the
    design's C++ level (``None``: the default ``-O1``, ``False``: ``-O0``, ``True``: ``-O2``)."""
    reference = body if isinstance(body, str) else f"{body.__module__}:{body.__qualname__}"
    try:
        twin = NATIVE_BODIES[reference]
    except KeyError:
        raise ValueError(f"no native runner for {reference}; it has {', '.join(native_bodies())} "
                         "(run other bodies with sparq.sim.harness.run_verilator)") from None
    return twin(component, name=name, optimize=optimize, **params)


RUNNERS = {"native": run_native, "cocotb": run_verilator}
"""The whole-accelerator runners by name, each called as ``run(component, body, **params)`` (``--runner`` of the
benches); ``native`` is the default wherever a choice is offered."""
